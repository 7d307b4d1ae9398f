"""voxline-tts end to end: the real daemon with real flite and espeak-ng
(and the remote engine against tests/tts_fake_server.py), real HTTP and
WebSocket clients. Audio is checked by decoding it (wave, struct, magic
bytes) and by its length and loudness, not just by status codes."""
import base64
import io
import json
import math
import os
import struct
import subprocess
import threading
import time
import urllib.request
import wave

import pytest
import websocket

from conftest import PYTHON, ROOT

SENTENCE = "Hello there, this is a test of the speech service."
LONG = " ".join([
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Afterwards it ran across the wide green field and into the forest.",
    "Nobody saw where it went, but everybody talked about it for days.",
    "Then the farmer came home and counted his chickens twice.",
] * 3)


def rms(samples):
    return math.sqrt(sum(s * s for s in samples) / max(1, len(samples)))


def pcm16(data):
    return struct.unpack("<%dh" % (len(data) // 2), data[:len(data) // 2 * 2])


def similar(a, b):
    """Same length and strongly correlated (flite adds random noise to
    unvoiced sounds, so two runs are not bit-identical)."""
    if len(a) != len(b) or not a:
        return False
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    va = sum((x - ma) ** 2 for x in a)
    vb = sum((y - mb) ** 2 for y in b)
    return cov / math.sqrt(va * vb) > 0.8


def read_wav(data):
    w = wave.open(io.BytesIO(data))
    frames = w.readframes(w.getnframes())
    return w.getframerate(), w.getnchannels(), w.getsampwidth(), pcm16(frames)


def ws_connect(d, config=None, timeout=30):
    ws = websocket.create_connection(d.ws_url + "/ws/synthesize", timeout=timeout)
    if config is not None:
        ws.send(json.dumps(config))
        ev = json.loads(ws.recv())
        assert ev["event"] == "ready", ev
    return ws


def ws_collect(ws, until=("done",), limit=60):
    """Reads frames until an event in `until`; returns [(time, kind, obj)]."""
    out = []
    deadline = time.time() + limit
    while time.time() < deadline:
        op, data = ws.recv_data()
        t = time.time()
        if op == websocket.ABNF.OPCODE_BINARY:
            out.append((t, "audio", data))
            continue
        ev = json.loads(data)
        out.append((t, "event", ev))
        if ev["event"] in until:
            return out
    raise AssertionError("no %s event in time: %r" % (until, out[-3:]))


@pytest.fixture
def tts(start):
    return start("tts")


# ---- POST /synthesize ----

def test_synthesize_default_is_wav_of_real_speech(tts):
    r = tts.post_json("/synthesize", {"text": SENTENCE})
    assert r.status == 200, r
    assert r.headers["Content-Type"] == "audio/wav"
    rate, ch, width, s = read_wav(r.body)
    assert (rate, ch, width) == (16000, 1, 2)
    assert r.headers["X-Sample-Rate"] == "16000"
    dur_ms = len(s) * 1000 // rate
    assert abs(int(r.headers["X-Duration-Ms"]) - dur_ms) <= 1
    assert 1500 < dur_ms < 6000          # ~10 words of speech
    assert rms(s) > 500                  # not silence
    assert r.headers["X-Voice"] == "slt" and r.headers["X-Engine"] == "flite"


def test_synthesize_return_formats(tts):
    wav = tts.post_json("/synthesize", {"text": SENTENCE, "return_format": "wav"})
    _, _, _, ref = read_wav(wav.body)
    pcm = tts.post_json("/synthesize", {"text": SENTENCE, "return_format": "pcm"})
    assert pcm.status == 200 and pcm.headers["Content-Type"] == "audio/pcm"
    assert len(pcm.body) == 2 * len(ref)
    assert similar(pcm16(pcm.body), ref)
    b = tts.post_json("/synthesize", {"text": SENTENCE, "return_format": "base64"})
    assert b.status == 200 and b.headers["Content-Type"] == "application/json"
    j = b.json()
    assert j["format"] == "wav" and j["sample_rate"] == 16000
    assert j["duration_ms"] == len(ref) * 1000 // 16000
    assert similar(read_wav(base64.b64decode(j["audio_base64"]))[3], ref)
    b = tts.post_json("/synthesize", {"text": SENTENCE, "return_format": "base64",
                                      "format": "flac"}).json()
    assert b["format"] == "flac"
    assert base64.b64decode(b["audio_base64"])[:4] == b"fLaC"


def test_synthesize_audio_formats(tts):
    def get(fmt, **kw):
        r = tts.post_json("/synthesize", dict(text=SENTENCE, format=fmt, **kw))
        assert r.status == 200, (fmt, r)
        return r
    ref_ms = int(get("wav").headers["X-Duration-Ms"])
    assert get("flac").body[:4] == b"fLaC"
    op = get("opus").body
    assert op[:4] == b"OggS" and b"OpusHead" in op[:100]
    mp3 = get("mp3").body
    assert mp3[:3] == b"ID3" or (mp3[0] == 0xFF and mp3[1] & 0xE0 == 0xE0)
    mu = get("mulaw", sample_rate=8000)
    assert mu.headers["X-Sample-Rate"] == "8000"
    assert abs(len(mu.body) * 1000 // 8000 - ref_ms) <= 20   # 1 byte a sample
    assert get("alaw").headers["Content-Type"] == "audio/pcma"


def test_sample_rate_resamples_and_speed_changes_length(tts):
    base = read_wav(tts.post_json("/synthesize", {"text": SENTENCE}).body)[3]
    r = tts.post_json("/synthesize", {"text": SENTENCE, "sample_rate": 22050})
    rate, _, _, s = read_wav(r.body)
    assert rate == 22050 and r.headers["X-Sample-Rate"] == "22050"
    assert abs(len(s) / 22050 - len(base) / 16000) < 0.02
    fast = read_wav(tts.post_json("/synthesize", {"text": SENTENCE, "speed": 2.0}).body)[3]
    assert 0.35 < len(fast) / len(base) < 0.65


def test_espeak_voices_by_name_language_and_prefix(tts):
    for voice in ("en-us", "de", "espeak:fr", "espeak-ng:en-gb"):
        r = tts.post_json("/synthesize", {"text": "Guten Tag, bonjour, hello.",
                                          "voice": voice})
        assert r.status == 200, (voice, r)
        assert r.headers["X-Engine"] == "espeak-ng"
        rate, _, _, s = read_wav(r.body)
        assert rate == 22050 and len(s) > 0.5 * rate and rms(s) > 300
    # one name, two engines: the prefix decides
    assert tts.post_json("/synthesize", {"text": "Hi.", "voice": "flite:slt"}
                         ).headers["X-Engine"] == "flite"
    r = tts.post_json("/synthesize", {"text": "Hi.", "voice": "espeak:slt"})
    assert r.status == 400 and r.json()["error"]["code"] == "unknown_voice"


def test_voices_lists_flite_and_espeak(tts):
    j = tts.get("/voices").json()
    by = {}
    for v in j["voices"]:
        assert set(v) == {"name", "language", "gender", "sample_rate", "engine"}
        by.setdefault(v["engine"], {})[v["name"]] = v
    assert {"slt", "kal", "awb", "rms"} <= set(by["flite"])
    assert by["flite"]["slt"]["sample_rate"] == 16000
    assert by["flite"]["slt"]["gender"] == "female"
    assert {"en-us", "de", "fr"} <= set(by["espeak-ng"])
    assert len(by["espeak-ng"]) > 50
    assert j["default"] == "slt"
    de = tts.get("/voices?language=de").json()["voices"]
    assert de and all(v["language"].lower().startswith("de") for v in de)
    fl = tts.get("/voices?engine=flite").json()["voices"]
    assert {v["engine"] for v in fl} == {"flite"}


def test_metrics_count_characters_audio_and_first_chunk(tts):
    assert tts.post_json("/synthesize", {"text": LONG}).status == 200
    m = tts.get("/metrics").body.decode()
    line = [x for x in m.splitlines()
            if x.startswith('voxline_tts_characters_total{engine="flite"}')]
    assert line and int(float(line[0].split()[-1])) >= len(LONG)
    sec = [x for x in m.splitlines()
           if x.startswith('voxline_tts_audio_seconds_total{engine="flite"}')]
    assert sec and int(float(sec[0].split()[-1])) >= 20
    assert 'voxline_tts_first_chunk_seconds_count{engine="flite"} 1' in m
    assert 'voxline_tts_real_time_factor_bucket{engine="flite"' in m


# ---- bad input ----

def test_bad_input_answers_json_errors(start):
    d = start("tts", "--max-text-chars", "100")

    def err(status, code, body, ctype="application/json", path="/synthesize"):
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        r = d.post(path, body, ctype)
        assert r.status == status, (body[:80], r)
        assert r.json()["error"]["code"] == code, r
        return r.json()["error"]
    err(400, "empty_text", {"text": ""})
    err(400, "empty_text", {"text": "  \n\t "})
    err(400, "missing_text", {"voice": "slt"})
    err(400, "invalid_type", {"text": 42})
    err(400, "invalid_type", {"text": ["a"]})
    err(400, "invalid_utf8", b'{"text":"caf\xe9"}')
    err(400, "invalid_json", b'{"text": "unterminated')
    err(400, "invalid_json", b'["text"]')
    err(400, "empty_body", b"")
    err(415, "unsupported_media_type", b"text=hello", "application/x-www-form-urlencoded")
    err(415, "unsupported_media_type", b'{"text":"hi"}', "text/plain")
    e = err(400, "unknown_voice", {"text": "hi", "voice": "nobody"})
    assert "slt" in e["message"] and "en-us" in e["message"]
    err(413, "text_too_long", {"text": "a" * 101})
    assert d.post_json("/synthesize", {"text": "é" * 100}).status == 200  # characters, not bytes
    err(400, "bad_speed", {"text": "hi", "speed": 10})
    err(400, "bad_speed", {"text": "hi", "speed": "fast"})
    err(400, "bad_sample_rate", {"text": "hi", "sample_rate": 100})
    err(400, "bad_sample_rate", {"text": "hi", "sample_rate": 16000.5})
    err(400, "bad_format", {"text": "hi", "return_format": "aiff"})
    err(400, "bad_format", {"text": "hi", "return_format": "wav", "format": "flac"})
    err(400, "invalid_type", {"text": "hi", "voice": 3})
    assert d.get("/synthesize").status == 405
    # and the daemon still works
    assert d.post_json("/synthesize", {"text": "Still here."}).status == 200


# ---- POST /v1/audio/speech ----

def test_openai_speech_formats_decode(tts):
    def speech(fmt=None, **kw):
        body = {"model": "tts-1", "input": SENTENCE, "voice": "alloy", **kw}
        if fmt:
            body["response_format"] = fmt
        r = tts.post_json("/v1/audio/speech", body)
        assert r.status == 200, (fmt, r)
        return r
    r = speech("wav")
    rate, ch, _, s = read_wav(r.body)
    assert (rate, ch) == (24000, 1) and rms(s) > 500
    dur = len(s) / 24000
    pcm = speech("pcm").body                      # raw 24 kHz s16le, as OpenAI's
    assert abs(len(pcm) / 48000 - dur) < 0.01
    assert speech("flac").body[:4] == b"fLaC"
    assert speech("opus").body[:4] == b"OggS"
    for body in (speech("mp3").body, speech().body):   # mp3 is the default
        assert body[:3] == b"ID3" or (body[0] == 0xFF and body[1] & 0xE0 == 0xE0)
        assert len(body) > 2000
    slow = read_wav(speech("wav", speed=0.5).body)[3]
    assert 1.6 < len(slow) / len(s) < 2.4
    for v in ("echo", "fable", "onyx", "nova", "shimmer", "slt", "de"):
        assert speech("wav", voice=v).status == 200


def test_openai_speech_errors_are_openai_shaped(tts):
    def err(status, body, ctype="application/json"):
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        r = tts.post("/v1/audio/speech", body, ctype)
        assert r.status == status, r
        e = r.json()["error"]
        assert set(e) >= {"message", "type", "code"}, e
        assert e["type"] == "invalid_request_error"
        return e
    e = err(400, {"model": "tts-1", "input": "hi", "voice": "alloy",
                  "response_format": "aac"})
    assert "aac" in e["message"] and e["param"] == "response_format"
    assert err(400, {"model": "tts-1", "input": "", "voice": "alloy"})["code"] == "empty_text"
    assert err(400, {"model": "tts-1", "voice": "alloy"})["param"] == "input"
    assert err(400, {"input": "hi", "voice": "zzz"})["code"] == "unknown_voice"
    assert err(400, {"input": "hi", "speed": 5})["param"] == "speed"
    assert err(400, {"input": "hi", "response_format": "aiff"})["param"] == "response_format"
    err(400, b"{nope")
    err(415, b'{"input":"hi"}', "text/plain")


# ---- /ws/synthesize ----

def test_ws_streams_first_audio_long_before_done(tts):
    ws = ws_connect(tts, {"voice": "slt"})
    t0 = time.time()
    ws.send(json.dumps({"text": LONG, "id": "long"}))
    frames = ws_collect(ws)
    events = [f[2] for f in frames if f[1] == "event"]
    audio = [f for f in frames if f[1] == "audio"]
    assert events[0] == {"event": "start", "id": "long", "sample_rate": 16000,
                         "encoding": "pcm16"}
    done = events[-1]
    assert done["event"] == "done" and done["id"] == "long"
    t_first = audio[0][0] - t0
    t_done = frames[-1][0] - t0
    nbytes = sum(len(a[2]) for a in audio)
    audio_s = nbytes / 2 / 16000
    assert abs(done["duration_ms"] - audio_s * 1000) <= 1
    assert audio_s > 30
    assert len(audio) > 20                       # streamed in many chunks
    print(f"first chunk {t_first * 1000:.0f} ms, done {t_done * 1000:.0f} ms, "
          f"audio {audio_s:.1f} s")
    assert t_first < 0.3 * t_done
    assert t_first < 0.05 * audio_s
    assert rms(pcm16(b"".join(a[2] for a in audio))) > 500
    ws.close()


def test_ws_texts_come_back_in_order(tts):
    ws = ws_connect(tts, {})
    texts = ["First sentence.", "The second one is a little longer than the first.",
             "Third."]
    for i, t in enumerate(texts):
        ws.send(json.dumps({"text": t, "id": i}))
    ws.send(json.dumps({"event": "end"}))
    seen, cur, lens = [], None, {}
    while True:
        op, data = ws.recv_data()
        if op == websocket.ABNF.OPCODE_BINARY:
            assert cur is not None, "audio outside start/done"
            lens[cur] = lens.get(cur, 0) + len(data)
            continue
        ev = json.loads(data)
        if ev["event"] == "start":
            assert cur is None
            cur = ev["id"]
            seen.append(("start", cur))
        elif ev["event"] == "done" and ev.get("end"):
            break
        elif ev["event"] == "done":
            assert ev["id"] == cur
            assert abs(ev["duration_ms"] - lens[cur] / 32) <= 1
            seen.append(("done", cur))
            cur = None
        else:
            raise AssertionError(ev)
    assert seen == [("start", 0), ("done", 0), ("start", 1), ("done", 1),
                    ("start", 2), ("done", 2)]
    assert lens[1] > lens[0] > lens[2]
    ws.close()


def test_ws_encoding_and_rate_from_config(tts):
    ws = ws_connect(tts, {"voice": "en-us", "sample_rate": 8000, "encoding": "mulaw"})
    ws.send(json.dumps({"text": SENTENCE, "id": "m"}))
    frames = ws_collect(ws)
    assert frames[0][2]["sample_rate"] == 8000 and frames[0][2]["encoding"] == "mulaw"
    n = sum(len(f[2]) for f in frames if f[1] == "audio")
    assert abs(frames[-1][2]["duration_ms"] - n / 8) <= 1    # 1 byte a sample
    assert n > 8000
    ws.close()


def test_ws_cancel_stops_current_and_queued(tts):
    ws = ws_connect(tts, {"voice": "slt"})
    ws.send(json.dumps({"text": LONG * 3, "id": "a"}))
    ws.send(json.dumps({"text": LONG, "id": "b"}))
    while ws.recv_data()[0] != websocket.ABNF.OPCODE_BINARY:
        pass
    ws.send(json.dumps({"event": "cancel"}))
    got = 0
    while True:
        op, data = ws.recv_data()
        if op == websocket.ABNF.OPCODE_BINARY:
            got += len(data)
            continue
        ev = json.loads(data)
        assert ev["event"] != "done" and ev["event"] != "start", ev
        if ev["event"] == "cancelled":
            break
    assert got / 32000 < 60          # the full text is ~150 s of audio
    # nothing more for a or b; the socket is usable for the next text
    ws.send(json.dumps({"text": "After the cancel.", "id": "c"}))
    frames = ws_collect(ws)
    evs = [f[2] for f in frames if f[1] == "event"]
    assert [e["event"] for e in evs] == ["start", "done"] and evs[1]["id"] == "c"
    # cancel on an idle socket answers at once
    ws.send(json.dumps({"event": "cancel"}))
    assert json.loads(ws.recv()) == {"event": "cancelled"}
    ws.close()


def test_ws_disconnect_mid_stream_daemon_keeps_serving(tts):
    for _ in range(3):
        ws = ws_connect(tts, {"voice": "slt"})
        ws.send(json.dumps({"text": LONG * 4}))
        while ws.recv_data()[0] != websocket.ABNF.OPCODE_BINARY:
            pass
        ws.sock.close()   # no close frame: the peer just goes
    assert tts.get("/healthz").status == 200
    assert tts.post_json("/synthesize", {"text": "Still alive."}).status == 200
    ws = ws_connect(tts, {})
    ws.send(json.dumps({"text": "And streaming."}))
    assert ws_collect(ws)[-1][2]["event"] == "done"
    ws.close()
    # the abandoned syntheses stopped early instead of running to the end
    time.sleep(0.3)
    m = tts.get("/metrics").body.decode()
    sec = [x for x in m.splitlines()
           if x.startswith('voxline_tts_audio_seconds_total{engine="flite"}')]
    assert int(float(sec[0].split()[-1])) < 3 * 200


def test_ws_errors_keep_the_socket_usable(tts):
    ws = ws_connect(tts)
    ws.send(json.dumps({"voice": "nobody"}))
    e = json.loads(ws.recv())
    assert e["event"] == "error" and e["code"] == "unknown_voice"
    ws.send("not json")
    assert json.loads(ws.recv())["code"] == "invalid_json"
    ws.send(json.dumps({"text": "", "id": "x"}))
    e = json.loads(ws.recv())
    assert e["code"] == "empty_text" and e["id"] == "x"
    ws.send(json.dumps({"text": 5}))
    assert json.loads(ws.recv())["code"] == "invalid_type"
    ws.send(json.dumps({"sample_rate": 3}))
    assert json.loads(ws.recv())["code"] == "bad_config"
    ws.send(json.dumps({"event": "dance"}))
    assert json.loads(ws.recv())["code"] == "unknown_event"
    ws.send_binary(b"\x00\x01")
    assert json.loads(ws.recv())["code"] == "unsupported"
    # a first text configures with defaults
    ws.send(json.dumps({"text": "Works now.", "id": 1}))
    frames = ws_collect(ws)
    assert frames[0][2]["event"] == "ready"
    assert frames[-1][2] == {**frames[-1][2], "event": "done", "id": 1}
    ws.close()


# ---- the remote engine ----

@pytest.fixture
def fake_tts():
    p = subprocess.Popen([PYTHON, os.path.join(ROOT, "tests", "tts_fake_server.py"),
                          "--key", "sekrit", "--exit-on-stdin-eof"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    line = p.stdout.readline().decode()
    assert line.startswith("PORT "), line
    yield "http://127.0.0.1:%d" % int(line.split()[1])
    p.stdin.close()
    p.terminate()
    p.wait(10)


def test_remote_engine_through_the_daemon(start, fake_tts):
    d = start("tts", "--engine", "remote", "--url", fake_tts,
              "--upstream-key", "sekrit", "--model", "kokoro")
    text = "Hello from far away."
    r = d.post_json("/synthesize", {"text": text, "voice": "nova"})
    assert r.status == 200, r
    rate, _, _, s = read_wav(r.body)
    assert rate == 24000 and r.headers["X-Engine"] == "remote"
    assert abs(len(s) / 24000 - len(text) * 0.060) < 0.01   # the fake: 60 ms a char
    assert rms(s) > 5000
    last = json.loads(urllib.request.urlopen(fake_tts + "/last").read())
    body = json.loads(last["body"])
    assert body["voice"] == "nova" and body["model"] == "kokoro" and body["input"] == text
    assert last["headers"]["authorization"] == "Bearer sekrit"
    assert last["headers"].get("x-request-id") == r.headers["X-Request-Id"]
    r = d.post_json("/v1/audio/speech", {"model": "tts-1", "input": text,
                                         "voice": "any-name", "response_format": "pcm"})
    assert r.status == 200 and abs(len(r.body) / 48000 - len(text) * 0.060) < 0.01
    ws = ws_connect(d, {"voice": "alloy", "sample_rate": 16000})
    ws.send(json.dumps({"text": text}))
    frames = ws_collect(ws)
    n = sum(len(f[2]) for f in frames if f[1] == "audio")
    assert abs(n / 32000 - len(text) * 0.060) < 0.02
    ws.close()
    assert any(v["engine"] == "remote" and v["name"] == "alloy"
               for v in d.get("/voices").json()["voices"])


def test_remote_engine_failures_map_to_502(start, fake_tts):
    d = start("tts", "--engine", "remote", "--url", fake_tts + "/500",
              "--upstream-key", "sekrit")
    r = d.post_json("/synthesize", {"text": "hi"})
    assert r.status == 502 and r.json()["error"]["code"] == "upstream_error"
    r = d.post_json("/v1/audio/speech", {"input": "hi"})
    assert r.status == 502 and r.json()["error"]["type"] == "server_error"
    down = start("tts", "--engine", "remote", "--url", "http://127.0.0.1:9")
    r = down.post_json("/synthesize", {"text": "hi"})
    assert r.status == 502


def test_timeout_stops_a_long_synthesis(start):
    d = start("tts", "--timeout-s", "1")
    t0 = time.time()
    r = d.post_json("/synthesize", {"text": LONG * 4})     # ~3 min of audio
    assert r.status == 504 and r.json()["error"]["code"] == "timeout", r
    assert time.time() - t0 < 3
    ws = ws_connect(d, {})
    ws.send(json.dumps({"text": LONG * 4, "id": "t"}))
    ev = ws_collect(ws, until=("error",))[-1][2]
    assert ev["code"] == "timeout" and ev["id"] == "t"
    ws.send(json.dumps({"text": "Short one.", "id": "u"}))
    assert ws_collect(ws)[-1][2]["id"] == "u"
    ws.close()


# ---- admission control and concurrency ----

def test_pool_full_is_503_then_success(start):
    d = start("tts", "--workers", "1", "--queue", "0")
    results = []

    def one():
        r = d.post_json("/synthesize", {"text": LONG * 2})
        results.append(r)
    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.status for r in results)
    assert codes.count(200) >= 1 and codes.count(503) >= 1, codes
    busy = [r for r in results if r.status == 503][0]
    assert busy.headers.get("Retry-After") and busy.json()["error"]["code"]
    assert d.post_json("/synthesize", {"text": "Now there is room."}).status == 200


def test_espeak_four_parallel_requests_all_succeed(start):
    d = start("tts", "--workers", "4")
    # lengths far apart, so a mixed-up answer shows; espeak-ng itself varies
    # by tens of ms from run to run, so lengths are compared within 8% + 100 ms
    texts = ["Yes.", "Guten Morgen, wie geht es dir?",
             "Bonjour tout le monde, comment allez-vous aujourd'hui, mes amis?",
             "One two three four five six seven eight nine ten eleven twelve "
             "thirteen fourteen fifteen sixteen."]
    voices = ["en-us", "de", "fr", "en-gb"]
    ref = {}
    for t, v in zip(texts, voices):
        ref[t] = len(read_wav(d.post_json("/synthesize", {"text": t, "voice": v}).body)[3])
    durs = sorted(ref.values())
    assert all(b > 1.3 * a for a, b in zip(durs, durs[1:])), durs
    results = {}

    def one(t, v):
        for _ in range(3):
            r = d.post_json("/synthesize", {"text": t, "voice": v})
            results.setdefault(t, []).append(r)
    threads = [threading.Thread(target=one, args=tv) for tv in zip(texts, voices)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for t in texts:
        assert len(results[t]) == 3
        for r in results[t]:
            assert r.status == 200, r
            s = read_wav(r.body)[3]
            assert abs(len(s) - ref[t]) < 0.08 * ref[t] + 2205, (t, len(s), ref[t])
            assert rms(s) > 300
