"""voxline-orchestrator end to end: the real voxline-vad, -stt (pocketsphinx),
-tts (flite) and -llm (openai engine on tests/llm_upstream.py) daemons, the
orchestrator in front of them, and voxline-client / python websocket
clients on /ws/chat and POST /chat."""
import base64
import io
import json
import os
import signal
import subprocess
import threading
import time
import wave

import pytest
import websocket

from conftest import BIN
from fake_llm import LlmUpstream
from speech import wer

CLIENT = os.path.join(BIN, "voxline-client")
QUESTION = "what is the weather like in paris today"


@pytest.fixture(scope="module")
def upstream():
    u = LlmUpstream()
    yield u
    u.stop()


class Stack:
    def __init__(self, start, upstream, tmp_path):
        self.start = start
        self.upstream = upstream
        self.tmp = tmp_path
        self.vad = start("vad")
        self.stt = start("stt")
        self.tts = start("tts")
        self.llm = start("llm", "--engine", "openai", "--url", upstream.url)
        self.db = str(tmp_path / "orch.db")

    def urls(self):
        return ["--vad-url", self.vad.url, "--stt-url", self.stt.url,
                "--tts-url", self.tts.url, "--llm-url", self.llm.url]

    def orch(self, *args, db=None):
        return self.start("orchestrator", *self.urls(), "--db", db or self.db,
                          "--health-interval-s", "1", *args)

    def speech(self, text, rate=16000):
        """A WAV of flite saying text, made by the voxline-tts daemon."""
        r = self.tts.post_json("/synthesize", {"text": text, "sample_rate": rate})
        assert r.status == 200, r
        path = self.tmp / ("speech-%d.wav" % abs(hash(text)))
        path.write_bytes(r.body)
        return str(path)

    def transcribe(self, wav_bytes):
        r = self.stt.post_file("/transcribe", wav_bytes)
        assert r.status == 200, r
        return r.json()["text"]


@pytest.fixture
def stack(start, upstream, tmp_path):
    upstream.reset()
    return Stack(start, upstream, tmp_path)


def run_client(orch, *args, timeout=90):
    """Runs voxline-client; returns (exit code, [events with "_t" arrival
    times (time.monotonic())], summary)."""
    argv = [CLIENT, "--url", orch.ws_url + "/ws/chat", *map(str, args)]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    events, summary = [], None
    for line in p.stdout:
        t = time.monotonic()
        ev = json.loads(line)
        ev["_t"] = t
        if ev.get("type") == "client_summary":
            summary = ev
        else:
            events.append(ev)
    p.wait(timeout)
    err = p.stderr.read().decode()
    if p.returncode != 0:
        print("client stderr:", err)
    return p.returncode, events, summary


def types(events):
    return [e["type"] for e in events]


def wav_pcm(data):
    with wave.open(io.BytesIO(data)) as w:
        return w.getframerate(), w.readframes(w.getnframes())


class WsChat:
    """A raw /ws/chat client (python-websocket) for protocol-level checks."""

    def __init__(self, orch, **start):
        self.ws = websocket.create_connection(orch.ws_url + "/ws/chat", timeout=30)
        self.audio = bytearray()
        if start is not None and start.get("_no_start") is None:
            self.send({"type": "start", **start})

    def send(self, obj):
        self.ws.send(json.dumps(obj))

    def recv(self, timeout=30):
        self.ws.settimeout(timeout)
        while True:
            op, data = self.ws.recv_data()
            if op == websocket.ABNF.OPCODE_BINARY:
                self.audio += data
                continue
            if op == websocket.ABNF.OPCODE_CLOSE:
                return {"type": "_closed", "data": data}
            return json.loads(data)

    def until(self, typ, timeout=30):
        seen = []
        deadline = time.time() + timeout
        while time.time() < deadline:
            ev = self.recv(deadline - time.time())
            seen.append(ev)
            if ev["type"] in (typ, "_closed"):
                return ev, seen
        raise TimeoutError(f"no {typ}: {seen}")

    def close(self):
        self.ws.close()


# ---- end to end ----

def test_spoken_question_gets_a_spoken_answer(stack):
    orch = stack.orch()
    wav = stack.speech(QUESTION)
    out = str(stack.tmp / "reply.wav")
    code, events, summary = run_client(orch, "--file", wav, "--out", out)
    assert code == 0, events
    t = types(events)
    for want in ("ready", "speech_started", "transcript_partial", "speech_stopped", "transcript",
                 "response_delta", "audio_start", "audio_end", "metrics"):
        assert want in t, (want, t)
    assert t.index("speech_started") < t.index("transcript") < t.index("audio_start")
    # Partials come while the user speaks, before the speech ends.
    assert t.index("transcript_partial") < t.index("speech_stopped")
    transcript = next(e["text"] for e in events if e["type"] == "transcript")
    assert wer(QUESTION, transcript) <= 0.34, transcript
    reply = "".join(e["text"] for e in events if e["type"] == "response_delta")
    assert reply == "You said: %s." % transcript
    m = next(e for e in events if e["type"] == "metrics")
    assert m["interrupted"] is False and m["error"] is None
    for k in ("stt_ms", "llm_first_token_ms", "tts_first_audio_ms",
              "voice_to_voice_ms", "total_ms"):
        assert m[k] is not None and m[k] >= 0, (k, m)
    assert m["voice_to_voice_ms"] >= m["stt_ms"]
    # The reply audio says the reply.
    with open(out, "rb") as f:
        heard = stack.transcribe(f.read())
    w = wer(reply, heard)
    print("question WER %.2f (%r), reply WER %.2f (%r)" % (
        wer(QUESTION, transcript), transcript, w, heard))
    assert w < 0.5, (reply, heard)
    # History: the user turn and the reply.
    cid = summary["conversation_id"]
    h = orch.get("/conversations/" + cid).json()
    assert [x["role"] for x in h["turns"]] == ["user", "assistant"]
    assert h["turns"][0]["content"] == transcript
    assert h["turns"][1]["content"] == reply
    assert h["turns"][1]["timings"]["voice_to_voice_ms"] > 0
    prom = orch.get("/metrics").body.decode()
    assert 'voxline_orch_turn_seconds_count{stage="voice_to_voice"} 1' in prom


def test_text_turns_mulaw_8k_and_history_continues(stack):
    orch = stack.orch()
    code, events, s = run_client(orch, "--text", "hello there", "--rate", "8000",
                                 "--encoding", "mulaw", "--turns", "2")
    assert code == 0, events
    starts = [e for e in events if e["type"] == "audio_start"]
    assert starts and starts[0]["sample_rate"] == 8000 and starts[0]["encoding"] == "mulaw"
    assert s["reply_audio_ms"] > 500
    assert types(events).count("metrics") == 2
    cid = s["conversation_id"]
    # Reconnect with the id: the LLM gets the earlier messages.
    stack.upstream.reset()
    code, events, _ = run_client(orch, "--text", "again", "--conversation", cid)
    assert code == 0, events
    ready = next(e for e in events if e["type"] == "ready")
    assert ready["conversation_id"] == cid and ready["turns"] == 4
    body = stack.upstream.requests()[-1]["body"]
    msgs = body["messages"] if isinstance(body, dict) else json.loads(body)["messages"]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user",
                                         "assistant", "user"]
    assert msgs[1]["content"] == "hello there"
    assert msgs[2]["content"] == "You said: hello there."
    assert msgs[-1]["content"] == "again"
    lst = orch.get("/conversations").json()["conversations"]
    assert any(c["id"] == cid and c["turns"] == 6 for c in lst)


def test_conversations_rest_and_delete(stack):
    orch = stack.orch()
    code, _, s = run_client(orch, "--text", "keep this", "--conversation", "abc-1")
    assert code == 0
    assert s["conversation_id"] == "abc-1"
    assert orch.get("/conversations/abc-1").json()["turns"][0]["content"] == "keep this"
    assert orch.request("DELETE", "/conversations/abc-1").status == 200
    r = orch.get("/conversations/abc-1")
    assert r.status == 404 and r.json()["error"]["code"] == "not_found"
    assert orch.request("DELETE", "/conversations/abc-1").status == 404
    assert orch.get("/conversations/no-such").status == 404


# ---- POST /chat ----

def test_post_chat_text_and_audio(stack):
    orch = stack.orch()
    r = orch.post_json("/chat", {"text": "good morning", "conversation_id": "c-rest"})
    assert r.status == 200, r
    j = r.json()
    assert j["reply"] == "You said: good morning." and j["conversation_id"] == "c-rest"
    rate, pcm = wav_pcm(base64.b64decode(j["audio_base64"]))
    assert rate == 16000 and len(pcm) > 16000
    assert j["timings"]["llm_first_token_ms"] >= 0
    heard = stack.transcribe(base64.b64decode(j["audio_base64"]))
    assert wer(j["reply"], heard) < 0.5, heard
    # Audio in, audio/wav out.
    with open(stack.speech(QUESTION), "rb") as f:
        speech = f.read()
    r = orch.post_file("/chat", speech, headers={"Accept": "audio/wav"})
    assert r.status == 200 and r.headers["Content-Type"].startswith("audio/wav"), r
    rate, pcm = wav_pcm(r.body)
    assert len(pcm) > 16000
    r = orch.post_file("/chat", speech, fields={"conversation_id": "c-rest"})
    j = r.json()
    assert wer(QUESTION, j["transcript"]) <= 0.34, j["transcript"]
    assert j["reply"] == "You said: %s." % j["transcript"]
    assert j["timings"]["stt_ms"] > 0
    turns = orch.get("/conversations/c-rest").json()["turns"]
    assert len(turns) == 4
    # Bad input.
    assert orch.post_json("/chat", {"text": ""}).status == 400
    assert orch.post("/chat", b"not audio", "text/plain").status == 415


# ---- barge-in ----

def stream_pcm(ws, pcm, rate=16000, silence_ms=1000):
    """Sends pcm16 audio as 20 ms frames in real time, then silence."""
    step = rate // 50 * 2
    data = pcm + b"\0" * (rate * 2 * silence_ms // 1000)
    t0 = time.monotonic()
    for i in range(0, len(data), step):
        delay = t0 + (i // step) * 0.02 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        ws.send_binary(data[i:i + step])


def test_barge_in_cancels_the_reply_and_keeps_what_was_played(stack):
    orch = stack.orch()
    with open(stack.speech(QUESTION), "rb") as f:
        speech = f.read()
    rate, pcm = wav_pcm(speech)
    onset_ms = stack.vad.post_file("/detect", speech).json()["segments"][0]["start_ms"]
    c = WsChat(orch, sample_rate=16000, conversation_id="barge")
    c.until("ready")
    c.send({"type": "text", "text": "tell me a long story #slow"})
    ev, _ = c.until("audio_start", timeout=30)
    time.sleep(0.3)
    t_send = time.monotonic()
    sender = threading.Thread(target=stream_pcm, args=(c.ws, pcm))
    sender.start()
    ev, seen = c.until("interrupted", timeout=15)
    t_int = time.monotonic()
    assert ev["type"] == "interrupted", seen
    # min_speech_ms (250) after the speech starts is when it is detectable.
    late_ms = (t_int - t_send) * 1000 - onset_ms - 250
    print("interrupted %.0f ms after the speech was detectable" % late_ms)
    assert late_ms < 300, late_ms
    m, _ = c.until("metrics")
    assert m["interrupted"] is True
    # The barge-in itself is the next turn.
    tr, _ = c.until("transcript", timeout=30)
    assert wer(QUESTION, tr["text"]) <= 0.34
    m2, seen = c.until("metrics", timeout=60)
    assert m2["interrupted"] is False, seen
    sender.join()
    c.close()
    # The slow generation was cancelled upstream (its socket closed early).
    closes = stack.upstream.closes()
    assert any("slow" in json.dumps(x.get("body", "")) for x in closes), closes
    turns = orch.get("/conversations/barge").json()["turns"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user", "assistant"]
    cut = turns[1]
    full = " ".join("w%d" % i for i in range(1, 101))
    assert cut["interrupted"] is True
    assert cut["content"] and full.startswith(cut["content"]), cut["content"]
    assert len(cut["content"]) < len(full) // 2
    assert turns[3]["content"] == "You said: %s." % tr["text"]
    assert "voxline_orch_barge_ins_total 1" in orch.get("/metrics").body.decode()


# ---- concurrency and admission ----

def test_conversations_run_side_by_side(stack):
    orch = stack.orch()
    wav = stack.speech(QUESTION)
    results = {}

    def one(i, args):
        results[i] = run_client(orch, *args, timeout=120)

    jobs = [(i, ["--text", "number %d please" % i, "--turns", "2", "--quiet"])
            for i in range(20)]
    jobs += [(100 + i, ["--file", wav]) for i in range(3)]
    threads = [threading.Thread(target=one, args=j) for j in jobs]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("23 conversations in %.1f s" % (time.monotonic() - t0))
    ids = set()
    for i, (code, events, s) in results.items():
        assert code == 0, (i, events, s)
        assert s["turns"] == (2 if i < 100 else 1)
        ids.add(s["conversation_id"])
        h = orch.get("/conversations/" + s["conversation_id"]).json()
        if i < 100:
            assert [t["content"] for t in h["turns"]] == [
                "number %d please" % i, "You said: number %d please." % i] * 2
        else:
            transcript = next((e["text"] for e in events
                               if e["type"] == "transcript"), None)
            assert transcript is not None, (i, events)
            assert wer(QUESTION, transcript) <= 0.34
            assert h["turns"][1]["content"] == "You said: %s." % transcript
    assert len(ids) == 23


def test_max_calls_refuses_cleanly(stack):
    orch = stack.orch("--max-calls", "3")
    held = [WsChat(orch, sample_rate=16000) for _ in range(3)]
    for c in held:
        c.until("ready")
    # The 4th upgrade is answered 503 + Retry-After, before any handshake.
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(orch.ws_url + "/ws/chat", timeout=5)
    assert e.value.status_code == 503
    assert orch.get("/healthz").status == 503
    r = orch.post_json("/chat", {"text": "hi"})
    assert r.status == 503 and r.headers.get("Retry-After")
    held[0].close()
    time.sleep(0.3)
    code, _, _ = run_client(orch, "--text", "now there is room")
    assert code == 0
    assert "voxline_orch_refused_total 2" in orch.get("/metrics").body.decode()
    for c in held[1:]:
        c.close()


# ---- durability ----

def test_kill_9_loses_no_finished_turn(stack):
    from conftest import Daemon
    argv = [os.path.join(BIN, "voxline-orchestrator"), "--port", "0", *stack.urls(),
            "--db", stack.db]
    d = Daemon(argv, str(stack.tmp / "orch-killed.log"))
    d.wait_ready()
    code, _, s = run_client(d, "--text", "remember me", "--turns", "3",
                            "--conversation", "durable")
    assert code == 0
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    d.logf.close()
    orch = stack.orch()
    turns = orch.get("/conversations/durable").json()["turns"]
    assert len(turns) == 6 and turns[-1]["content"] == "You said: remember me."


# ---- bad input ----

def test_bad_client_input_is_answered_and_the_socket_stays_usable(stack):
    orch = stack.orch()
    c = WsChat(orch, _no_start=True)
    c.ws.send_binary(b"\0\0" * 160)
    ev = c.recv()
    assert ev["type"] == "error" and ev["code"] == "not_started"
    c.ws.send("garbage{")
    assert c.recv()["code"] == "bad_message"
    c.send({"type": "hello"})
    assert c.recv()["code"] == "bad_message"
    c.send({"type": "text", "text": "too early"})
    assert c.recv()["code"] == "not_started"
    c.send({"type": "start", "encoding": "opus"})
    ev = c.recv()
    assert ev["code"] == "bad_start" and "encoding" in ev["message"]
    c.send({"type": "start", "sample_rate": 3})
    assert c.recv()["code"] == "bad_start"
    c.send({"type": "start", "conversation_id": "bad id!"})
    ev, _ = c.until("error")
    assert ev["code"] == "bad_conversation_id"
    c.send({"type": "start", "sample_rate": 16000})
    ev, _ = c.until("ready")
    c.send({"type": "start"})
    assert c.recv()["code"] == "already_started"
    c.send({"type": "text", "text": "fine now"})
    ev, seen = c.until("metrics")
    assert "You said: fine now." == "".join(
        e["text"] for e in seen if e["type"] == "response_delta")
    c.close()


def test_client_that_vanishes_mid_reply_frees_everything(stack):
    orch = stack.orch()
    c = WsChat(orch, sample_rate=16000, conversation_id="gone")
    c.until("ready")
    c.send({"type": "text", "text": "a long one #slow"})
    c.until("audio_start", timeout=30)
    time.sleep(0.8)       # some of the reply is played
    c.ws.sock.close()     # no close frame: the client just vanishes
    deadline = time.time() + 5
    while time.time() < deadline:
        if (stack.llm.get("/healthz").json()["in_flight"] == 0 and
                stack.tts.get("/healthz").json()["in_flight"] == 0 and
                stack.upstream.closes()):
            break
        time.sleep(0.1)
    assert stack.llm.get("/healthz").json()["in_flight"] == 0
    assert stack.tts.get("/healthz").json()["in_flight"] == 0
    assert stack.upstream.closes(), "the generation was not cancelled"
    assert orch.get("/healthz").json()["calls"] == 0
    code, _, _ = run_client(orch, "--text", "still here")
    assert code == 0
    turns = orch.get("/conversations/gone").json()["turns"]
    assert turns[1]["interrupted"] is True
    assert turns[1]["content"].startswith("w1")


# ---- failures and balancing ----

def test_tts_down_names_the_stage_and_the_conversation_recovers(stack):
    orch = stack.orch("--stage-timeout-s", "5")
    c = WsChat(orch, sample_rate=16000)
    c.until("ready")
    c.send({"type": "text", "text": "first"})
    c.until("metrics")
    port = stack.tts.port
    stack.tts.stop()
    c.send({"type": "text", "text": "second"})
    ev, seen = c.until("error", timeout=15)
    assert ev["stage"] == "tts", seen
    m, _ = c.until("metrics")
    assert m["error"] == "tts"
    stack.tts = stack.start("tts", "--port", port)
    time.sleep(1.2)
    c.send({"type": "text", "text": "third"})
    ev, seen = c.until("metrics", timeout=30)
    assert ev["error"] is None and "audio_start" in types(seen), seen
    c.close()


def test_balancing_skips_a_dead_instance(stack):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    s.close()
    dead_url = "http://127.0.0.1:%d" % dead
    orch = stack.start("orchestrator", "--vad-url", stack.vad.url,
                       "--stt-url", stack.stt.url, "--db", stack.db,
                       "--tts-url", dead_url + "," + stack.tts.url,
                       "--llm-url", dead_url + "," + stack.llm.url)
    info = orch.get("/info").json()
    assert len(info["upstreams"][3]["instances"]) == 2
    for i in range(4):   # some picks hit the dead one first: retried elsewhere
        code, events, _ = run_client(orch, "--text", "turn %d" % i)
        assert code == 0, events
    h = orch.get("/healthz").json()
    assert h["upstreams"]["tts"] == {"healthy": 1, "instances": 2}


def test_web_page_is_served(stack):
    orch = stack.orch()
    r = orch.get("/")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
    assert b"/ws/chat" in r.body and b"getUserMedia" in r.body
    # The page is built into the binary: a --web-root without it changes
    # nothing (tests/browser/test_web_static.py checks the files).
    assert stack.start("orchestrator", *stack.urls(), "--db", stack.db,
                       "--web-root", "/nonexistent").get("/").body == r.body
