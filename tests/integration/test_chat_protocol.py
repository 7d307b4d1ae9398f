"""/ws/chat protocol additions of issue 10 on the real stack (vad, stt
pocketsphinx, tts flite, llm openai engine on tests/llm_upstream.py):
the start message's "model" and "language", {"type":"stop"}, the
"heard" text of `interrupted`, errors that name an unreachable stage and
say how to start it, and the turn-taking flags (--eot-policy,
--barge-in-policy and their bounds) as named."""
import os
import socket
import subprocess
import threading
import time

from conftest import BIN
from test_orchestrator import (QUESTION, Stack, WsChat, stream_pcm,  # noqa: F401
                               types, upstream, wav_pcm)
import pytest

ORCH = os.path.join(BIN, "voxline-orchestrator")


@pytest.fixture
def stack(start, upstream, tmp_path):  # noqa: F811
    upstream.reset()
    return Stack(start, upstream, tmp_path)


def dead_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_start_model_goes_to_the_llm_and_stop_interrupts_with_what_was_heard(stack):
    orch = stack.orch()
    c = WsChat(orch, sample_rate=16000, conversation_id="stop", model="slow")
    c.until("ready")
    c.send({"type": "stop"})                 # nothing runs: ignored
    c.send({"type": "text", "text": "tell me something"})
    c.until("audio_start", timeout=30)
    time.sleep(1.0)                          # some of the reply is played
    c.send({"type": "stop"})
    ev, seen = c.until("interrupted", timeout=15)
    assert ev["type"] == "interrupted", seen
    assert "error" not in types(seen), seen
    heard = ev["heard"]
    full = " ".join("w%d" % i for i in range(1, 101))
    assert heard and full.startswith(heard), heard
    assert len(heard) < len(full) // 2
    m, _ = c.until("metrics")
    assert m["interrupted"] is True and m["error"] is None
    # The model of the start message reached the upstream ("slow" replies
    # w1 ... w100 without "#slow" in the text).
    reqs = stack.upstream.requests()
    assert reqs and reqs[-1]["model"] == "slow", reqs[-1:]
    # Stored as heard; the conversation goes on (a stop with no reply
    # running is ignored).
    c.send({"type": "stop"})
    c.send({"type": "text", "text": "hello"})
    _, seen = c.until("audio_start", timeout=60)
    assert "interrupted" not in types(seen) and "error" not in types(seen), seen
    c.close()
    turns = orch.get("/conversations/stop").json()["turns"]
    assert turns[1]["interrupted"] is True
    assert turns[1]["content"] == heard


def test_start_language_goes_to_stt(stack):
    orch = stack.orch()
    with open(stack.speech(QUESTION), "rb") as f:
        _, pcm = wav_pcm(f.read())
    c = WsChat(orch, sample_rate=16000, language="xx-unknown")
    c.until("ready")
    sender = threading.Thread(target=stream_pcm, args=(c.ws, pcm))
    sender.start()
    ev, seen = c.until("error", timeout=30)
    sender.join()
    assert ev.get("stage") == "stt", seen
    assert "language" in ev["message"], ev
    c.close()
    # "en" is what pocketsphinx speaks: a normal turn.
    c = WsChat(orch, sample_rate=16000, language="en")
    c.until("ready")
    stream_pcm(c.ws, pcm)
    tr, seen = c.until("transcript", timeout=30)
    assert tr["text"], seen
    c.close()


def test_unreachable_stage_is_named_with_how_to_start_it(stack):
    port = dead_port()
    orch = stack.start("orchestrator", "--vad-url", stack.vad.url,
                       "--stt-url", stack.stt.url, "--tts-url", stack.tts.url,
                       "--llm-url", "http://127.0.0.1:%d" % port, "--db", stack.db)
    c = WsChat(orch, sample_rate=16000)
    c.until("ready")
    c.send({"type": "text", "text": "hello"})
    ev, seen = c.until("error", timeout=30)
    assert ev["stage"] == "llm" and ev["code"] == "unavailable", seen
    msg = ev["message"]
    assert "cannot reach voxline-llm at http://127.0.0.1:%d" % port in msg, msg
    assert "make run" in msg and "--llm-url" in msg, msg
    assert "VOXLINE_ORCHESTRATOR_LLM_URL" in msg, msg
    m, _ = c.until("metrics")
    assert m["error"] == "llm"
    c.close()


def test_turn_taking_flags_work_as_named(stack, tmp_path):
    # Both policy pairs the measurement harness compares.
    for args in (["--eot-policy", "fixed", "--barge-in-policy", "immediate"],
                 ["--eot-policy", "adaptive", "--barge-in-policy", "backchannel",
                  "--eot-min-ms", "250", "--eot-max-ms", "1500",
                  "--barge-in-min-ms", "300"]):
        orch = stack.orch(*args)
        c = WsChat(orch, sample_rate=16000)
        c.until("ready")
        c.send({"type": "text", "text": "hi"})
        m, seen = c.until("metrics", timeout=60)
        assert m["error"] is None, seen
        c.close()
    # Bad values stop the start, naming the flag; the env form is read too.
    for argv, env, flag in (
            (["--eot-policy", "sometimes"], {}, "--eot-policy"),
            ([], {"VOXLINE_ORCHESTRATOR_BARGE_IN_POLICY": "never"}, "--barge-in-policy"),
            (["--eot-min-ms", "900", "--eot-max-ms", "600"], {}, "--eot-max-ms")):
        p = subprocess.run([ORCH, "--port", "0", "--db", str(tmp_path / "x.db"), *argv],
                           env={**os.environ, **env}, capture_output=True, text=True,
                           timeout=30)
        assert p.returncode == 2, (argv, env, p.stderr)
        assert flag in p.stderr, p.stderr
