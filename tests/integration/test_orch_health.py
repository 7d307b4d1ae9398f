"""The orchestrator with a stage missing, end to end on real daemons: its
/healthz reports every stage (ok / unavailable, with detail and a hint that
says how to start it) and says "degraded" while staying ready (200); the
voxline_orch_stage_up gauge; GET /voices and GET /v1/models passed through
(503 naming the stage when it is down); POST /chat's 502 naming the stage
and how to start it, as JSON even with Accept: audio/wav (curl --fail exits
non-zero and writes nothing); voxline-client on a real `error` event.

The LLM is voxline-llm's openai engine on tests/llm_upstream.py (a scripted
OpenAI-compatible server), or on a closed loopback port for "no model, no
server" (the first run)."""
import json
import os
import socket
import subprocess
import time

import pytest

from conftest import BIN
from fake_llm import LlmUpstream

CLIENT = os.path.join(BIN, "voxline-client")


def closed_port():
    """A loopback port nothing listens on (bound, not listening, released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def upstream():
    u = LlmUpstream()
    yield u
    u.stop()


class Stack:
    """vad, stt, tts, llm and the orchestrator; llm_url None: the LLM's
    upstream is a closed port (voxline-llm runs, /healthz 503)."""

    def __init__(self, start, tmp_path, llm_url):
        self.start = start
        self.vad = start("vad")
        self.stt = start("stt")
        self.tts = start("tts")
        self.llm = start("llm", "--engine", "openai", "--url",
                         llm_url or "http://127.0.0.1:%d" % closed_port(),
                         ready=bool(llm_url))
        self.orch = start("orchestrator", "--vad-url", self.vad.url,
                          "--stt-url", self.stt.url, "--tts-url", self.tts.url,
                          "--llm-url", self.llm.url, "--db", str(tmp_path / "o.db"),
                          "--health-interval-s", "1", "--stage-timeout-s", "10")

    def health(self, want=None, stage=None, timeout=10):
        """GET /healthz (status, body); with want, polls until
        stages[stage].status == want (or the body's status when no stage)."""
        deadline = time.time() + timeout
        while True:
            r = self.orch.get("/healthz")
            body = r.json()
            got = body["stages"][stage]["status"] if stage else body["status"]
            if want is None or got == want or time.time() > deadline:
                return r.status, body
            time.sleep(0.2)


def stop_tts(stack):
    """Stops voxline-tts (SIGTERM, drain delay 0) and waits until the
    orchestrator's checker has seen it."""
    stack.tts.stop()
    deadline = time.time() + 10
    while True:   # past any check that saw it draining: refused now
        code, body = stack.health("unavailable", "tts")
        if "not reachable" in body["stages"]["tts"].get("hint", "") or \
                time.time() > deadline:
            break
        time.sleep(0.2)
    assert body["stages"]["tts"]["status"] == "unavailable", body
    return code, body


def test_healthz_reports_every_stage_ok(start, upstream, tmp_path):
    upstream.reset()
    s = Stack(start, tmp_path, upstream.url)
    code, body = s.health("ok")
    assert code == 200 and body["status"] == "ok", body
    assert "detail" not in body
    for name, d in (("vad", s.vad), ("stt", s.stt), ("llm", s.llm), ("tts", s.tts)):
        st = body["stages"][name]
        assert st["status"] == "ok" and st["url"] == d.url, (name, st)
        assert "hint" not in st
    ready = s.orch.get("/readyz")
    assert ready.status == 200 and set(ready.json()["stages"]) == {"vad", "stt", "llm", "tts"}
    m = s.orch.get("/metrics").body.decode()
    for name in ("vad", "stt", "llm", "tts"):
        assert 'voxline_orch_stage_up{stage="%s"} 1' % name in m


def test_first_run_llm_without_model_is_degraded_with_setup_hint(start, tmp_path):
    s = Stack(start, tmp_path, None)
    code, body = s.health("degraded")
    # Degraded but ready: the orchestrator still accepts calls.
    assert code == 200 and body["status"] == "degraded", body
    assert "llm" in body["detail"]
    llm = body["stages"]["llm"]
    assert llm["status"] == "unavailable" and llm["url"] == s.llm.url, llm
    assert "/healthz 503" in llm["detail"], llm
    for words in ("voxline-llm", s.llm.url, "make models", "VOXLINE_LLM_URL=",
                  "llama", "Ollama", "vLLM"):
        assert words in llm["hint"], (words, llm["hint"])
    assert all(body["stages"][n]["status"] == "ok" for n in ("vad", "stt", "tts"))
    m = s.orch.get("/metrics").body.decode()
    assert 'voxline_orch_stage_up{stage="llm"} 0' in m
    assert 'voxline_orch_stage_up{stage="tts"} 1' in m

    # A typed turn: 502 that names the stage and what to do.
    r = s.orch.post_json("/chat", {"text": "hello"})
    assert r.status == 502, r
    msg = r.json()["error"]["message"]
    assert msg.startswith("llm: ") and "make models" in msg, msg
    # The LLM's model list through the orchestrator: 503 with the hint.
    r = s.orch.get("/v1/models")
    assert r.status == 503 and r.headers.get("Retry-After"), r
    err = r.json()["error"]
    assert err["code"] == "stage_unavailable" and "make models" in err["message"], err


def test_stage_down_then_back(start, upstream, tmp_path):
    upstream.reset()
    s = Stack(start, tmp_path, upstream.url)
    s.health("ok")
    code, body = stop_tts(s)
    assert code == 200 and body["status"] == "degraded", body
    tts = body["stages"]["tts"]
    assert "refused" in tts["detail"].lower(), tts
    for words in ("voxline-tts is not reachable at " + s.tts.url, "make run",
                  "VOXLINE_ORCHESTRATOR_TTS_URL", "--tts-url"):
        assert words in tts["hint"], (words, tts["hint"])
    # Back on the same port: ok again within a few checks.
    port = s.tts.port
    s.tts = s.start("tts", "--port", port)
    code, body = s.health("ok")
    assert code == 200 and body["status"] == "ok", body


def test_voices_and_models_pass_through(start, upstream, tmp_path):
    upstream.reset()
    s = Stack(start, tmp_path, upstream.url)
    s.health("ok")
    for path, d in (("/voices", s.tts), ("/v1/models", s.llm)):
        mine, theirs = s.orch.get(path), d.get(path)
        assert mine.status == 200 == theirs.status, (path, mine)
        assert mine.json() == theirs.json(), path
        assert mine.headers["Content-Type"].startswith("application/json")
    assert any(v["name"] for v in s.orch.get("/voices").json()["voices"])
    info = s.orch.get("/info").json()
    assert "GET /voices" in info["routes"] and "GET /v1/models" in info["routes"]

    stop_tts(s)
    r = s.orch.get("/voices")
    assert r.status == 503 and r.headers.get("Retry-After"), r
    err = r.json()["error"]
    assert err["code"] == "stage_unavailable", err
    assert err["message"].startswith("tts: voxline-tts is not reachable"), err
    assert "make run" in err["message"] and "--tts-url" in err["message"], err
    # The other stage's list still comes.
    assert s.orch.get("/v1/models").status == 200


def test_chat_with_stage_down_names_it_even_for_wav(start, upstream, tmp_path):
    upstream.reset()
    s = Stack(start, tmp_path, upstream.url)
    s.health("ok")
    stop_tts(s)
    r = s.orch.post_json("/chat", {"text": "hello there"},
                         headers={"Accept": "audio/wav"})
    assert r.status == 502, r
    assert r.headers["Content-Type"].startswith("application/json"), r.headers
    err = r.json()["error"]
    assert err["message"].startswith("tts: "), err
    assert "voxline-tts" in err["message"] and s.tts.url in err["message"], err
    assert "make run" in err["message"] and "--tts-url" in err["message"], err
    assert err["message"].count("make run") == 1, err   # said once

    # curl --fail: non-zero exit, and no reply.wav.
    out = tmp_path / "reply.wav"
    p = subprocess.run(["curl", "-s", "--fail", "-o", str(out), "-H", "Accept: audio/wav",
                        "-H", "Content-Type: application/json", "-d", '{"text":"hi"}',
                        s.orch.url + "/chat"], capture_output=True, timeout=60)
    assert p.returncode == 22, p
    assert not out.exists()


def test_chat_wav_when_all_up_is_a_wav(start, upstream, tmp_path):
    upstream.reset()
    s = Stack(start, tmp_path, upstream.url)
    s.health("ok")
    r = s.orch.post_json("/chat", {"text": "hello there"},
                         headers={"Accept": "audio/wav"})
    assert r.status == 200 and r.headers["Content-Type"] == "audio/wav", r
    assert r.body[:4] == b"RIFF" and len(r.body) > 44 + 1600, len(r.body)


def client(url, *args, timeout=90):
    p = subprocess.run([CLIENT, "--url", url + "/ws/chat", *args], capture_output=True,
                       text=True, timeout=timeout)
    ev = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    return p, ev


def test_client_on_error_events_waits_for_metrics_and_reports_per_turn(
        start, upstream, tmp_path):
    upstream.reset()
    s = Stack(start, tmp_path, upstream.url)
    s.health("ok")
    stop_tts(s)
    out = tmp_path / "reply.wav"
    ws = s.orch.url.replace("http://", "ws://")
    p, ev = client(ws, "--text", "hello there", "--turns", "2", "--out", str(out),
                   "--timeout-s", "30")
    types = [e["type"] for e in ev]
    assert p.returncode == 1, (p.returncode, p.stderr)
    # Both turns ran: each ended with metrics after its error.
    assert types.count("metrics") == 2, types
    errs = [i for i, t in enumerate(types) if t == "error"]
    mets = [i for i, t in enumerate(types) if t == "metrics"]
    assert errs and errs[0] < mets[0] < mets[1], types
    summary = ev[-1]
    assert summary["type"] == "client_summary" and summary["exit"] == 1, summary
    assert summary["turns"] == 2 and summary["turns_failed"] == 2, summary
    assert {e["turn"] for e in summary["errors"]} == {1, 2}, summary
    assert all(e["stage"] == "tts" for e in summary["errors"]), summary
    assert "voxline-client: turn 1: tts" in p.stderr, p.stderr
    assert "turn 2: tts" in p.stderr, p.stderr
    # No reply audio came: no WAV at all (nor a .part).
    assert not out.exists() and not (tmp_path / "reply.wav.part").exists()
    assert "not written" in p.stderr

    # With the stage back, the same client run succeeds and writes the WAV.
    s.tts = s.start("tts", "--port", s.tts.port)
    s.health("ok", "tts")
    p, ev = client(ws, "--text", "hello there", "--out", str(out), "--timeout-s", "30")
    assert p.returncode == 0, p.stderr
    assert ev[-1]["turns_failed"] == 0 and ev[-1]["errors"] == []
    assert out.read_bytes()[:4] == b"RIFF" and out.stat().st_size > 44


def test_chat_wav_with_no_reply_audio_is_an_error_not_an_empty_wav(start, upstream, tmp_path):
    # A reasoning model cut after two tokens: reasoning only, no reply text,
    # so nothing to speak. JSON callers get the empty reply; a WAV caller
    # gets an error instead of a 44-byte WAV.
    upstream.reset()
    s = Stack(start, tmp_path, upstream.url)
    s.health("ok")
    orch = s.start("orchestrator", "--vad-url", s.vad.url, "--stt-url", s.stt.url,
                   "--tts-url", s.tts.url, "--llm-url", s.llm.url,
                   "--db", str(tmp_path / "o2.db"), "--llm-model", "reasoner",
                   "--max-tokens", "2")
    r = orch.post_json("/chat", {"text": "hello there"})
    assert r.status == 200, r
    j = r.json()
    assert j["reply"] == "" and j["reasoning"], j
    r = orch.post_json("/chat", {"text": "hello there"}, headers={"Accept": "audio/wav"})
    assert r.status == 502 and r.headers["Content-Type"].startswith("application/json"), r
    assert r.json()["error"]["code"] == "no_audio", r
