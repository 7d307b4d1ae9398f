"""/ws/transcribe on the built-in Whisper engine: partials from re-decoding
the growing utterance (services/stt/engine_whisper_stream.c), kept stable by
local agreement (services/stt/whisper/wagree.c).

The model is a random-weight tiny Whisper file (tests/whisper/mkwhisper.py,
a short text context so decodes are quick), so no test asserts words. Each
asserts what a stream must do whatever the weights say: partials come while
the audio is still arriving; a word shown at the same place in two partials
in a row (with the same words before it) is committed, and every later
partial and the final begin with the committed words; cancel, end and a
dropped connection mid-utterance leave the daemon serving and give the
decoder back; streams on several workers run at once and one more than the
pool holds is refused by name; bad input is answered as on pocketsphinx.
"""
import json
import os
import socket
import subprocess
import threading
import time

import numpy as np
import pytest

from conftest import ROOT, SANITIZED
from speech import RATE, wav_bytes
from test_stt import WsClient

MKWHISPER = os.path.join(ROOT, "tests", "whisper", "mkwhisper.py")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """tiny-shaped f16, random weights, 96 text positions (decodes stop
    there: random weights never say <|endoftext|>)."""
    path = tmp_path_factory.mktemp("whisper_stream") / "tiny.bin"
    code = ("import sys; sys.path.insert(0, %r); import mkwhisper as m; "
            "hp = dict(m.SHAPES['tiny']); hp['n_text_ctx'] = 96; "
            "m.write(%r, hp, m.TYPE_NAMES['f16'], 3)"
            % (os.path.dirname(MKWHISPER), str(path)))
    subprocess.run(["/usr/bin/python3", "-c", code], check=True, timeout=60)
    return str(path)


@pytest.fixture(scope="module")
def deaf_model(tmp_path_factory):
    """The same shape with the decoder's cross-attention output zeroed: it
    hears nothing, so its hypotheses hardly change as the audio grows and
    its words get committed, segments and all (what cuts a long window)."""
    path = tmp_path_factory.mktemp("whisper_stream") / "deaf.bin"
    code = ("import sys; sys.path.insert(0, %r); import numpy as np; import mkwhisper as m; "
            "hp = dict(m.SHAPES['tiny']); hp['n_text_ctx'] = 96; orig = m.random_tensor; "
            "m.random_tensor = lambda r, n, s, k: (np.zeros(s, np.float32) "
            "if '.cross_attn.out.' in n else orig(r, n, s, k)); "
            "m.write(%r, hp, m.TYPE_NAMES['f16'], 3)"
            % (os.path.dirname(MKWHISPER), str(path)))
    subprocess.run(["/usr/bin/python3", "-c", code], check=True, timeout=60)
    return str(path)


def clip(seconds, seed=3):
    """Tones that change every half second, with noise: audio whose
    hypotheses change as it grows."""
    rng = np.random.default_rng(seed)
    n = int(RATE * seconds)
    t = np.arange(n) / RATE
    f = 150 + 40 * ((np.arange(n) // (RATE // 2)) % 7)
    x = np.sin(2 * np.pi * f * t) * 7000 + rng.standard_normal(n) * 2000
    return x.astype("<i2").tobytes()


def send_paced(c, data, speed=2.0, frame=640):
    """Sends data in 20 ms frames at speed times real time (a third of it
    on a sanitizer build, whose decodes take several times longer: the
    tests count on a partial every second or so of audio)."""
    speed = speed / 3 if SANITIZED else speed
    t0 = time.monotonic()
    for i in range(0, len(data), frame):
        due = t0 + (i / 2 / RATE) / speed
        d = due - time.monotonic()
        if d > 0:
            time.sleep(d)
        c.ws.send_binary(data[i:i + frame])


def partials(c, start=0):
    return [e["text"] for e in c.events[start:] if e["event"] == "partial"]


def committed_runs(shown):
    """For each partial after the first: the words it shares with the one
    before, from the first word on (what the stream committed by then)."""
    out = []
    for a, b in zip(shown, shown[1:]):
        a, b = a.split(), b.split()
        k = 0
        while k < min(len(a), len(b)) and a[k] == b[k]:
            k += 1
        out.append((len(out) + 1, b[:k]))
    return out


def assert_committed_stay(shown, final):
    """Every committed run is a prefix of every later partial and of the
    final; returns the longest run."""
    longest = []
    for i, words in committed_runs(shown):
        for later in shown[i + 1:]:
            assert later.split()[:len(words)] == words, (words, later, shown)
        assert final.split()[:len(words)] == words, (words, final, shown)
        longest = words if len(words) > len(longest) else longest
    return longest


def test_partials_arrive_while_speaking_and_committed_words_stay(start, model):
    d = start("stt", "--model", model, "--workers", "1")
    c = WsClient(d)
    assert c.ready["engine"] == "whisper" and c.ready["partials"] is True
    data = clip(4.0)
    longest = []
    for seed in (3, 4):
        n = len(c.events)
        send_paced(c, clip(4.0, seed), speed=2.0)
        during = partials(c, n)
        assert during, c.events[n:]            # partials while the audio came
        c.send({"event": "end"})
        f = c.wait("final", start=n)
        shown = partials(c, n)
        assert len(shown) >= 2, shown
        assert all(s.strip() == s and s for s in shown), shown
        longest = max(longest, assert_committed_stay(shown, f["text"]), key=len)
        assert f["duration_ms"] == 4000 and f["language"] == "en"
        segs = f["segments"]
        assert all(0 <= s["start_ms"] <= s["end_ms"] <= 4000 for s in segs), segs
        assert all(a["start_ms"] <= b["start_ms"] for a, b in zip(segs, segs[1:])), segs
        assert " ".join(s["text"] for s in segs).split() == f["text"].split()
    # the random model repeats itself: words do get committed
    assert longest, "no partial ever repeated a word at the same place"
    # an utterance without audio: an empty final; the socket goes on
    n = len(c.events)
    c.send({"event": "end"})
    assert c.wait("final", start=n)["text"] == ""
    n = len(c.events)
    c.ws.send_binary(data[:RATE])              # 0.5 s
    c.send({"event": "end"})
    assert c.wait("final", start=n)["duration_ms"] == 500
    c.close()
    m = d.get("/metrics").body.decode()
    assert "voxline_stt_ws_utterances_total 4" in m


def test_a_long_utterance_is_cut_into_windows(start, model):
    """27 s in one utterance: past the 25 s window the stream settles what
    it has and goes on with a new window prompted by it; the final still
    begins with every committed word and covers all the audio."""
    d = start("stt", "--model", model, "--workers", "1")
    c = WsClient(d)
    n = len(c.events)
    send_paced(c, clip(27.0, 9), speed=5.0)
    c.send({"event": "end"})
    f = c.wait("final", start=n, timeout=120)
    shown = partials(c, n)
    assert len(shown) >= 2, shown
    assert_committed_stay(shown, f["text"])
    assert f["duration_ms"] == 27000
    segs = f["segments"]
    assert segs and all(0 <= s["start_ms"] <= s["end_ms"] <= 27000 for s in segs), segs
    assert all(a["start_ms"] <= b["start_ms"] for a, b in zip(segs, segs[1:])), segs
    assert segs[-1]["end_ms"] > 25000, segs    # the second window's segments
    c.close()


def test_a_long_utterance_is_cut_where_a_committed_segment_ends(start, deaf_model):
    """Past 15 s the window is cut at the end of a segment whose words are
    committed; what follows is decoded with them as its prompt. The final
    still begins with every committed word, its segments in order."""
    d = start("stt", "--model", deaf_model, "--workers", "1")
    c = WsClient(d)
    n = len(c.events)
    send_paced(c, clip(22.0, 9), speed=6.0)
    c.send({"event": "end"})
    f = c.wait("final", start=n, timeout=120)
    shown = partials(c, n)
    assert assert_committed_stay(shown, f["text"]), shown     # words did commit
    assert f["duration_ms"] == 22000
    segs = f["segments"]
    assert segs and all(0 <= s["start_ms"] <= s["end_ms"] <= 22000 for s in segs), segs
    assert all(a["end_ms"] <= b["start_ms"] for a, b in zip(segs, segs[1:])), segs
    c.close()


def test_cancel_end_and_hangup_mid_stream(start, model):
    d = start("stt", "--model", model, "--workers", "1")
    data = clip(3.0, 5)
    c = WsClient(d)
    # cancel half way: "cancelled", no final, and the next utterance works
    n = len(c.events)
    send_paced(c, data[:len(data) // 2], speed=3.0)
    c.send({"event": "cancel"})
    c.wait("cancelled", start=n)
    n = len(c.events)
    send_paced(c, data, speed=4.0)
    c.send({"event": "end"})
    f = c.wait("final", start=n)
    assert f["duration_ms"] == 3000
    assert not [e for e in c.events[n:] if e["event"] == "cancelled"]
    # the same audio again gives the same final on a fresh utterance only
    # when the partials agree; what must hold is the committed prefix
    assert_committed_stay(partials(c, n), f["text"])
    # mid-utterance, the stream holds the only decoder: HTTP is refused
    # (a partial is handed out with the audio that follows its decode:
    # keep sending until one comes)
    n = len(c.events)
    for i in range(0, len(data), 640):
        c.ws.send_binary(data[i:i + 640])
        time.sleep(0.005)
        if partials(c, n):
            break
    assert partials(c, n), c.events[n:]
    r = d.post_file("/transcribe", wav_bytes(np.frombuffer(data, "<i2")))
    assert r.status == 503 and r.json()["error"]["code"] == "overloaded", r
    # hang up without a close frame: the decoder comes back
    sk = c.ws.sock
    sk.shutdown(socket.SHUT_RDWR)
    sk.close()
    deadline = time.time() + 10
    while True:
        r = d.post_file("/transcribe", wav_bytes(np.frombuffer(data, "<i2")),
                        {"temperature_inc": "0"})
        if r.status == 200 or time.time() > deadline:
            break
        time.sleep(0.1)
    assert r.status == 200, r
    # a close frame mid-utterance: the same
    c = WsClient(d)
    send_paced(c, data[:RATE], speed=4.0)
    c.close()
    deadline = time.time() + 10
    while d.post_file("/transcribe", wav_bytes(np.frombuffer(data[:RATE], "<i2")),
                      {"temperature_inc": "0"}).status != 200:
        assert time.time() < deadline, "the decoder did not come back"
        time.sleep(0.1)
    assert d.alive()


def test_streams_on_every_worker_at_once_and_one_more_waits(start, model):
    d = start("stt", "--model", model, "--workers", "2")
    clients = [WsClient(d) for _ in range(2)]
    out = [None, None]
    ended = [None, None]

    def run(k):
        c = clients[k]
        n = len(c.events)
        send_paced(c, clip(3.0, 20 + k), speed=2.0)
        c.send({"event": "end"})
        out[k] = (c.wait("final", start=n), partials(c, n))
        ended[k] = time.monotonic()

    ts = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    [t.start() for t in ts]
    time.sleep(0.5)
    # both decoders are taken by the streams: a third utterance keeps its
    # audio and its "end" waits for a decoder, as a queued request does
    third = WsClient(d)
    n = len(third.events)
    third.ws.send_binary(clip(1.0))
    third.send({"event": "end"})
    f = third.wait("final", start=n, timeout=60)
    got = time.monotonic()
    assert f["duration_ms"] == 1000, f
    assert not [e for e in third.events[n:] if e["event"] == "error"], third.events[n:]
    [t.join(60) for t in ts]
    # it was answered only once one of the streams had let go
    assert got >= min(ended) - 0.05, (got, ended)
    for f, shown in out:
        assert f["duration_ms"] == 3000
        assert shown, "no partials"
        assert_committed_stay(shown, f["text"])
    # the socket goes on with the next utterance
    n = len(third.events)
    third.ws.send_binary(clip(1.0))
    third.send({"event": "end"})
    assert third.wait("final", start=n)["duration_ms"] == 1000
    for c in clients + [third]:
        c.close()


def test_bad_input_is_answered_as_on_pocketsphinx(start, model):
    d = start("stt", "--model", model, "--max-audio-s", "2")
    c = WsClient(d)
    n = len(c.events)
    c.ws.send("not json")
    assert c.wait("error", start=n)["code"] == "invalid_json"
    c.send({"event": "dance"})
    assert c.wait("error", start=n + 1)["code"] == "unknown_event"
    # over --max-audio-s: the utterance is dropped, the socket goes on
    n = len(c.events)
    send_paced(c, clip(3.0), speed=8.0)
    assert c.wait("error", start=n)["code"] == "audio_too_long"
    n = len(c.events)
    c.send({"event": "end"})
    assert c.wait("error", start=n)["code"] == "utterance_dropped"
    n = len(c.events)
    c.ws.send_binary(clip(1.0))
    c.ws.send_binary(b"\x01")                  # half a sample: kept for the next
    c.send({"event": "end"})
    assert "text" in c.wait("final", start=n)
    c.close()
    # a language the English-only model does not know: refused by name
    c = WsClient(d, language="de")
    n = len(c.events)
    c.ws.send_binary(clip(0.5))
    assert c.wait("error", start=n)["code"] == "unsupported_language"
    c.send({"event": "end"})
    assert c.wait("error", start=n + 1)["code"] == "utterance_dropped"
    c.close()
    # a bad config is refused before any audio
    ws = WsClient.__new__(WsClient)
    import websocket
    ws.ws = websocket.create_connection(d.ws_url + "/ws/transcribe", timeout=30)
    ws.ws.send(json.dumps({"sample_rate": 5}))
    ev = json.loads(ws.ws.recv())
    assert ev["event"] == "error" and ev["code"] == "bad_config", ev
    ws.ws.close()
    assert d.alive()
