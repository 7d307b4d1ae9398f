"""voxline-stt end to end on each embedded engine: pocketsphinx on real
speech (flite's slt voice, made by the voxline-tts daemon when it is built,
else by build/tools/tts_direct) and the built-in Whisper engine on the same
audio with a random-weight test model (tests/integration/whisper_model.py);
the remote engines against tests/stt_fake_server.py (the real whisper.cpp /
OpenAI wire format); real HTTP and WebSocket clients.

Engines: every test that takes the `engine` fixture runs once per engine in
ENGINES. Random weights transcribe nothing real, so what a test asserts
about the recognised words is pocketsphinx's alone, in two visible ways:
a test that is about the words (WER) is marked @pocketsphinx_words(why) and
has no whisper case at all; a test about the service that also looks at
the words does so through says_sentence() / says_something(), which check
words on pocketsphinx only (see there). Whether partials stream is what the
engine declares (GET /info streaming_partials): the WebSocket tests check
partials when it says so and their absence when it does not.

The tests that need no flags of their own share one daemon per engine
(`shared`, module scope: pytest groups the cases by engine); the others
start their own (`stt`).

The sentences and the voice are those of tests/unit/test_stt_engines.c."""
import json
import os
import re
import socket
import subprocess
import threading
import time

import numpy as np
import pytest
import websocket

from conftest import BIN, PYTHON, ROOT, Daemon, multipart
from speech import (RATE, SENTENCES, WER_MAX, edit_distance, speak, wav_bytes,
                    wer, words)
from whisper_model import tiny_model

ENGINES = ("pocketsphinx", "whisper")


# ---- engines ----

def pocketsphinx_words(why):
    """Marks a test about pocketsphinx's words: it is generated for
    pocketsphinx only (no whisper case, so nothing is skipped); why says
    what it checks."""
    def mark(fn):
        fn.engines = ("pocketsphinx",)
        fn.pocketsphinx_only_because = why
        return fn
    return mark


def pytest_generate_tests(metafunc):
    """A test taking `engine` runs on each of ENGINES (or on those its
    @pocketsphinx_words mark names)."""
    if "engine" in metafunc.fixturenames:
        metafunc.parametrize("engine", getattr(metafunc.function, "engines", ENGINES),
                             indirect=True, scope="module")


@pytest.fixture(scope="module")
def engine(request):
    return request.param


@pytest.fixture(scope="session")
def whisper_model(tmp_path_factory):
    """test_stt_whisper's tiny random model with 64 text positions: random
    weights decode until the context is full, at every fallback temperature,
    and these tests need an answer, not 224 tokens of one (whisper_model.py)."""
    return tiny_model(tmp_path_factory.mktemp("whisper") / "tiny.bin", n_text_ctx=64)


def engine_flags(request, engine):
    if engine == "whisper":
        return ("--engine", "whisper", "--model", request.getfixturevalue("whisper_model"))
    return ("--engine", engine)


@pytest.fixture
def stt(start, engine, request):
    """stt(*flags) -> a voxline-stt of the test's own on the test's engine."""
    flags = engine_flags(request, engine)
    return lambda *args: start("stt", *flags, *args)


@pytest.fixture(scope="module")
def shared_daemon(engine, request, tmp_path_factory):
    log = tmp_path_factory.mktemp("stt") / f"voxline-stt-{engine}.log"
    env = dict(os.environ, VOXLINE_STT_DRAIN_DELAY_S="0")
    d = Daemon([os.path.join(BIN, "voxline-stt"), "--port", "0",
                *engine_flags(request, engine), "--workers", "2"], str(log), env)
    try:
        d.wait_ready()
    except Exception:
        d.stop()
        raise
    yield d
    was_alive = d.alive()
    rc = d.stop()
    assert was_alive and rc == 0, f"shared voxline-stt ({engine}) exited {rc}:\n" \
        + d.log()[-3000:]


@pytest.fixture
def shared(shared_daemon):
    """The engine's shared voxline-stt (--workers 2), alive and idle: tests
    on it read counters as differences, never absolute."""
    d = shared_daemon
    deadline = time.time() + 10
    while True:
        assert d.alive(), d.log()[-3000:]
        h = d.get("/healthz").json()
        if h["in_flight"] == 0 and h["busy"] == 0 and h["queued"] == 0:
            return d
        assert time.time() < deadline, h
        time.sleep(0.05)


def streams(d):
    """Whether the daemon's engine streams partials, as it declares."""
    return d.get("/info").json()["streaming_partials"]


def metric(d, sample):
    """The value of one /metrics sample (name and labels as printed), 0 when
    the daemon has not printed it yet."""
    for line in d.get("/metrics").body.decode().splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# What is asserted about the words. Pocketsphinx only: whisper runs here on
# a random-weight model (no real weights can be fetched in tests) whose
# words are noise, so for whisper these check only that a transcript (a
# string) came; what whisper must do whatever its weights are (same samples,
# same text; durations; segment times) is asserted beside the calls.

def says_sentence(engine, sentence, text, wer_max=0.3):
    """text is sentence within wer_max word errors (pocketsphinx only)."""
    assert isinstance(text, str), text
    if engine == "pocketsphinx":
        assert wer(sentence, text) < wer_max, (sentence, text)


def says_something(engine, text):
    """text has words (pocketsphinx only)."""
    assert isinstance(text, str), text
    if engine == "pocketsphinx":
        assert words(text), text


def pieces_make_the_text(engine, pieces, text):
    """Segment or cue texts, in order, are the transcript. pocketsphinx's
    segments are its words (and phrases of them): joined with spaces they
    are the text. whisper's are its timestamps' phrases with their leading
    spaces cut off, and a phrase may start inside a word (random weights do
    that): the same characters, spaces aside."""
    if engine == "pocketsphinx":
        assert " ".join(pieces) == text, (pieces, text)
    else:
        assert "".join("".join(pieces).split()) == "".join(text.split()), (pieces, text)


def segments_hold_the_text(engine, j):
    """A transcript's segments (of /transcribe or a WebSocket final) hold
    its text, in order, inside its audio."""
    segs = j["segments"]
    pieces_make_the_text(engine, [x["text"] for x in segs], j["text"])
    assert all(0 <= x["start_ms"] <= x["end_ms"] for x in segs), segs
    assert all(a["end_ms"] <= b["start_ms"] for a, b in zip(segs, segs[1:])), segs
    assert not segs or segs[-1]["end_ms"] <= j["duration_ms"] + 20, j


# ---- speech and audio ----

@pytest.fixture(scope="session")
def speech(tmp_path_factory):
    """{sentence: 16 kHz mono int16 samples} in flite's slt voice."""
    texts = SENTENCES + ["one two three four five six seven eight nine ten"]
    return speak(texts, str(tmp_path_factory.mktemp("tts")))


def resample(pcm, rate_in, rate_out):
    """Band-limited resampling by FFT (fine for whole test clips)."""
    n_out = int(round(len(pcm) * rate_out / rate_in))
    spec = np.fft.rfft(pcm.astype(np.float64))
    keep = n_out // 2 + 1
    spec = spec[:keep] if keep <= len(spec) else np.pad(spec, (0, keep - len(spec)))
    y = np.fft.irfft(spec, n_out) * (n_out / len(pcm))
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)


def ulaw_encode(pcm):
    """G.711 mu-law (the segment algorithm of ITU-T G.711)."""
    x = pcm.astype(np.int32) >> 2                     # 14-bit
    sign = np.where(x < 0, 0x00, 0x80)
    mag = np.minimum(np.abs(x), 8158) + 33
    seg = np.zeros_like(mag)
    for s, bound in enumerate([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF]):
        seg = np.where((mag > bound) & (seg == s), s + 1, seg)
    mant = (mag >> (seg + 1)) & 0x0F
    return ((~(sign | (seg << 4) | mant)) & 0xFF).astype(np.uint8).tobytes()


# ---- over HTTP ----

@pocketsphinx_words("the word error rate of pocketsphinx on flite's sentences")
def test_transcribe_flite_sentences_under_wer_limit(shared, engine, speech):
    errors = total = 0
    for s in SENTENCES:
        r = shared.post_file("/transcribe", wav_bytes(speech[s]), fields={"language": "en"})
        assert r.status == 200, r
        j = r.json()
        assert j["engine"] == engine and j["segments"]
        errors += edit_distance(words(s), words(j["text"]))
        total += len(words(s))
        print(f"# {s!r} -> {j['text']!r}")
    print(f"# WER {errors}/{total} = {errors / total:.1%}")
    assert errors / total < WER_MAX


def test_transcribe_answer_has_the_audio_times_and_segments(shared, engine, speech):
    for s in SENTENCES[:3]:
        pcm = speech[s]
        r = shared.post_file("/transcribe", wav_bytes(pcm), fields={"language": "en"})
        assert r.status == 200, r
        j = r.json()
        assert j["engine"] == engine and j["language"] == "en"
        assert abs(j["duration_ms"] - len(pcm) * 1000 / RATE) <= 1
        assert j["processing_ms"] > 0
        says_sentence(engine, s, j["text"])
        segments_hold_the_text(engine, j)


def test_raw_bodies_stereo_mulaw_and_8k_work(shared, engine, speech):
    # pocketsphinx's en-us model is wideband: audio band-limited to 4 kHz
    # (8 kHz telephony) decodes, but with a poor WER, so the 8 kHz cases
    # check the conversion (duration, a transcript) and the WER checks run
    # on full-band audio through the same decoders (stereo mix, G.711, 48k).
    d = shared
    s = SENTENCES[2]
    pcm = speech[s]
    ms = len(pcm) * 1000 / RATE

    def ok(body, ctype):
        r = d.post("/transcribe", body, ctype)
        assert r.status == 200, r
        assert abs(r.json()["duration_ms"] - ms) <= 1, r
        says_sentence(engine, s, r.json()["text"])
        return r.json()["text"]

    stereo = np.stack([pcm, pcm // 2], axis=1).reshape(-1)
    ok(wav_bytes(stereo, RATE, 2), "audio/wav")
    ok(ulaw_encode(pcm), "audio/pcmu;rate=16000")
    ok(wav_bytes(resample(pcm, RATE, 48000), 48000), "audio/wav")
    text = ok(pcm.astype("<i2").tobytes(), "audio/L16;rate=16000")
    if engine == "whisper":
        # greedy decoding: the same samples as a WAV, the same transcript
        assert ok(wav_bytes(pcm), "audio/wav") == text
    pcm8 = resample(pcm, RATE, 8000)
    stereo8 = np.stack([pcm8, pcm8], axis=1).reshape(-1)
    for body, ctype in ((wav_bytes(stereo8, 8000, 2), "audio/wav"),
                        (ulaw_encode(pcm8), "audio/pcmu")):
        r = d.post("/transcribe", body, ctype)
        assert r.status == 200, r
        assert abs(r.json()["duration_ms"] - len(pcm8) / 8) <= 1
        says_something(engine, r.json()["text"])


def test_bad_input_gets_json_errors(shared, engine, speech):
    d = shared
    good = wav_bytes(speech[SENTENCES[0]])

    def err(r, status, code):
        assert r.status == status, r
        assert r.json()["error"]["code"] == code, r

    err(d.post("/transcribe", b"", "audio/wav"), 400, "empty_audio")
    err(d.post("/transcribe", good[:30], "audio/wav"), 400, "bad_audio")
    err(d.post("/transcribe", b"RIFF\x24\x00\x00\x00WAVEjunk" + os.urandom(400),
               "audio/wav"), 400, "bad_audio")
    err(d.post_file("/transcribe", os.urandom(3000)), 400, "bad_audio")
    err(d.post("/transcribe", b"hello", "text/plain"), 415, "unsupported_media_type")
    err(d.post("/transcribe", good, "application/json"), 415,
        "unsupported_media_type")
    # a WAV cut inside its data: the samples present are transcribed
    r = d.post("/transcribe", good[:len(good) // 2], "audio/wav")
    assert r.status == 200 and r.json()["duration_ms"] < len(good) / 32 * 0.6, r
    # OpenAI route: OpenAI-shaped errors
    body, ctype = multipart({"file": ("a.wav", "audio/wav", good)},
                            {"response_format": "docx"})
    r = d.post("/v1/audio/transcriptions", body, ctype)
    assert r.status == 400, r
    e = r.json()["error"]
    assert e["param"] == "response_format" and e["type"] == "invalid_request_error"
    assert e["message"]
    r = d.post("/v1/audio/transcriptions", good, "audio/wav")
    assert r.status == 415 and "message" in r.json()["error"]
    body, ctype = multipart({}, {"model": "whisper-1"})
    r = d.post("/v1/audio/transcriptions", body, ctype)
    assert r.status == 400 and r.json()["error"]["param"] == "file", r
    body, ctype = multipart({"file": ("a.wav", "audio/wav", b"RIFFjunk" * 20)}, {})
    r = d.post("/v1/audio/transcriptions", body, ctype)
    assert r.status == 400 and r.json()["error"]["code"] == "bad_audio", r
    # a language the engine does not have (pocketsphinx: en-us; the whisper
    # test model is English-only)
    sample = f'voxline_stt_engine_errors_total{{engine="{engine}",kind="language"}}'
    before = metric(d, sample)
    r = d.post_file("/transcribe", good, fields={"language": "fr"})
    err(r, 400, "unsupported_language")
    assert metric(d, sample) == before + 1
    # a region or case does not matter (BCP 47 tags as docs/websocket.md shows)
    for tag in ["en-US", "en_us", "EN"]:
        r = d.post_file("/transcribe", good, fields={"language": tag})
        assert r.status == 200, (tag, r)


def test_body_over_limit_is_413_and_audio_over_limit_too(stt, speech):
    d = stt("--max-body-mb", "1", "--max-audio-s", "2")
    big = wav_bytes(np.zeros(RATE * 40, dtype=np.int16))   # 1.28 MB
    r = d.post("/transcribe", big, "audio/wav")
    assert r.status == 413 and r.json()["error"]["code"] == "body_too_large", r
    r = d.post("/transcribe", wav_bytes(np.zeros(RATE * 3, dtype=np.int16)), "audio/wav")
    assert r.status == 413 and r.json()["error"]["code"] == "audio_too_long", r
    r = d.post_file("/transcribe", wav_bytes(speech[SENTENCES[0]]))
    assert r.status == 200, r


def test_openai_formats(shared, engine, speech):
    d = shared
    s = SENTENCES[1]
    audio = wav_bytes(speech[s])
    dur = len(speech[s]) / RATE

    def post(fmt, **fields):
        body, ctype = multipart({"file": ("q.wav", "audio/wav", audio)},
                                dict(fields, model="whisper-1", response_format=fmt))
        r = d.post("/v1/audio/transcriptions", body, ctype)
        assert r.status == 200, r
        return r

    r = post("json")
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.headers["OpenAI-Model"] == "whisper-1"
    j = r.json()
    assert list(j) == ["text"]
    says_sentence(engine, s, j["text"])
    text = j["text"]
    r = post("text")
    assert r.headers["Content-Type"].startswith("text/plain")
    assert r.body.decode() == text + "\n"
    v = post("verbose_json", language="en").json()
    assert v["task"] == "transcribe" and v["language"] == "english"
    assert abs(v["duration"] - dur) < 0.01 and v["text"] == text
    assert v["segments"] or not text, v
    for i, seg in enumerate(v["segments"]):
        assert seg["id"] == i and 0 <= seg["start"] < seg["end"] <= dur + 0.02, seg
        for k in ("seek", "tokens", "temperature", "avg_logprob",
                  "compression_ratio", "no_speech_prob"):
            assert k in seg
    pieces_make_the_text(engine, [x["text"] for x in v["segments"]], text)
    srt = post("srt").body.decode()
    cues = [c for c in srt.strip().split("\n\n") if c]
    assert len(cues) == len(v["segments"])
    lines = cues[0].split("\n")
    assert lines[0] == "1"
    assert re.fullmatch(r"\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}", lines[1])
    pieces_make_the_text(engine, [c.split("\n", 2)[2] for c in cues], text)
    r = post("vtt")
    vtt = r.body.decode()
    assert r.headers["Content-Type"].startswith("text/vtt")
    assert vtt.startswith("WEBVTT\n\n")
    assert re.search(r"^\d\d:\d\d:\d\d\.\d{3} --> \d\d:\d\d:\d\d\.\d{3}$", vtt, re.M)


# ---- WebSocket ----

class WsClient:
    """A /ws/transcribe client that collects events on a thread."""
    open = []       # not closed yet: close_websockets closes them after a test

    def __init__(self, d, **config):
        self.ws = websocket.create_connection(d.ws_url + "/ws/transcribe", timeout=30)
        WsClient.open.append(self)
        self.events = []
        self.cond = threading.Condition()
        self.t = threading.Thread(target=self._rx, daemon=True)
        self.t.start()
        self.send(config)
        self.ready = self.wait("ready")

    def _rx(self):
        try:
            while True:
                m = self.ws.recv()
                if not m:
                    break
                with self.cond:
                    self.events.append(json.loads(m))
                    self.cond.notify_all()
        except Exception:
            pass

    def send(self, obj):
        self.ws.send(json.dumps(obj))

    def wait(self, event, timeout=60, start=0):
        deadline = time.time() + timeout
        with self.cond:
            while True:
                for e in self.events[start:]:
                    if e.get("event") == event:
                        return e
                left = deadline - time.time()
                assert left > 0, f"no {event} in {self.events}"
                self.cond.wait(left)

    def stream(self, data, frame_bytes, pace_s=0.0):
        for i in range(0, len(data), frame_bytes):
            self.ws.send_binary(data[i:i + frame_bytes])
            if pace_s:
                time.sleep(pace_s)

    def close(self):
        self.ws.close()
        self.t.join(5)
        if self in WsClient.open:
            WsClient.open.remove(self)


@pytest.fixture(autouse=True)
def close_websockets():
    """A test that failed half way leaves no socket open on the shared
    daemon (the next test would find it busy)."""
    yield
    while WsClient.open:
        c = WsClient.open.pop()
        try:
            c.ws.close()
        except Exception:       # a socket the test cut itself: its reader
            continue            # thread may sit in recv (a daemon thread)
        c.t.join(5)


def test_ws_streams_partials_then_final_and_takes_another_utterance(shared, engine, speech):
    d = shared
    partials_declared = streams(d)
    utterances = metric(d, "voxline_stt_ws_utterances_total")
    c = WsClient(d, sample_rate=16000, encoding="pcm16", language="en")
    assert c.ready["engine"] == engine and c.ready["sample_rate"] == 16000
    assert c.ready["partials"] is partials_declared
    s = SENTENCES[3]
    # 20 ms frames at twice real time
    c.stream(speech[s].astype("<i2").tobytes(), 640, 0.01)
    time.sleep(0.3)
    partials = [e for e in c.events if e["event"] == "partial"]
    if partials_declared:
        assert partials, c.events           # partials came while streaming
        says_sentence(engine, s, partials[-1]["text"], 0.6)
    else:
        assert not partials, c.events       # none from an engine without
    n = len(c.events)
    c.send({"event": "end"})
    f = c.wait("final", start=n)
    says_sentence(engine, s, f["text"])
    assert abs(f["duration_ms"] - len(speech[s]) * 1000 / RATE) < 60
    assert isinstance(f["segments"], list) and f["processing_ms"] >= 0
    segments_hold_the_text(engine, f)
    if not partials_declared:
        # a buffered utterance is transcribed as the same samples over HTTP
        assert f["text"] == d.post_file("/transcribe", wav_bytes(speech[s])).json()["text"]
    # the same socket, the next utterance
    s2 = SENTENCES[4]
    n = len(c.events)
    c.stream(speech[s2].astype("<i2").tobytes(), 640)
    c.send({"event": "end"})
    f2 = c.wait("final", start=n)
    says_sentence(engine, s2, f2["text"])
    segments_hold_the_text(engine, f2)
    assert abs(f2["duration_ms"] - len(speech[s2]) * 1000 / RATE) < 60
    # end with no audio: an empty final
    n = len(c.events)
    c.send({"event": "end"})
    assert c.wait("final", start=n)["text"] == ""
    c.close()
    assert metric(d, "voxline_stt_ws_utterances_total") == utterances + 3


def test_ws_mulaw_48k_8k_and_cancel(shared, engine, speech):
    d = shared
    s = SENTENCES[0]
    # mu-law, cancel half way, then the whole utterance
    c = WsClient(d, sample_rate=16000, encoding="mulaw")
    assert c.ready["encoding"] == "mulaw"
    mu = ulaw_encode(speech[s])
    n = len(c.events)
    c.stream(mu[:len(mu) // 2], 320)
    c.send({"event": "cancel"})
    c.wait("cancelled", start=n)
    n = len(c.events)
    c.stream(mu, 320)                           # 20 ms of mu-law
    c.send({"event": "end"})
    f = c.wait("final", start=n)
    says_sentence(engine, s, f["text"])
    assert abs(f["duration_ms"] - len(mu) / 16) < 60
    assert not [e for e in c.events[n:] if e["event"] == "cancelled"]
    if not streams(d):
        # nothing of the cancelled half is in it: the same mu-law over HTTP
        r = d.post("/transcribe", mu, "audio/pcmu;rate=16000")
        assert f["text"] == r.json()["text"], (f, r)
    c.close()
    # 48 kHz pcm16, resampled by the daemon
    c = WsClient(d, sample_rate=48000)
    c.stream(resample(speech[s], RATE, 48000).astype("<i2").tobytes(), 1920)
    c.send({"event": "end"})
    f = c.wait("final")
    says_sentence(engine, s, f["text"])
    assert abs(f["duration_ms"] - len(speech[s]) * 1000 / RATE) < 60
    c.close()
    # 8 kHz A-law... as mu-law's sibling: a transcript of the right length
    c = WsClient(d, sample_rate=8000, encoding="mulaw")
    mu8 = ulaw_encode(resample(speech[s], RATE, 8000))
    c.stream(mu8, 160)
    c.send({"event": "end"})
    f = c.wait("final")
    assert abs(f["duration_ms"] - len(mu8) / 8) < 60, f
    says_something(engine, f["text"])
    # bad messages are errors, the socket stays usable
    n = len(c.events)
    c.ws.send("not json")
    assert c.wait("error", start=n)["code"] == "invalid_json"
    c.send({"event": "dance"})
    assert c.wait("error", start=n + 1)["code"] == "unknown_event"
    c.close()


def test_ws_audio_over_limit_drops_the_utterance(stt, speech):
    d = stt("--max-audio-s", "1")
    c = WsClient(d)
    s = SENTENCES[1]                            # > 1 s
    n = len(c.events)
    c.stream(speech[s].astype("<i2").tobytes(), 3200)
    assert c.wait("error", start=n)["code"] == "audio_too_long"
    c.send({"event": "end"})
    assert c.wait("error", start=n + 1)["code"] == "utterance_dropped"
    n = len(c.events)
    short = speech[s][:RATE // 2].astype("<i2").tobytes()
    c.stream(short, 3200)
    c.send({"event": "end"})
    assert "text" in c.wait("final", start=n)    # usable again
    c.close()


def test_ws_disconnect_mid_stream_returns_the_decoder(stt, engine, speech):
    d = stt("--workers", "1")
    s = SENTENCES[5]
    audio = wav_bytes(speech[s])
    c = WsClient(d)
    pcm = speech[s].astype("<i2").tobytes()
    c.stream(pcm[:2 * RATE], 640)               # 1 s at once
    if streams(d):
        # a partial shows the utterance took the decoder; an engine may hand
        # out one decoded after the last audio only with the next audio
        # (whisper's streams), so talk on in real time until one comes
        for i in range(2 * RATE, len(pcm), 640):
            if [e for e in c.events if e["event"] == "partial"]:
                break
            c.stream(pcm[i:i + 640], 640, 0.02)
        c.wait("partial")
        # the utterance holds the only decoder: HTTP is refused meanwhile
        r = d.post_file("/transcribe", audio)
        assert r.status == 503 and r.headers.get("Retry-After"), r
        assert r.json()["error"]["code"] == "overloaded"
    else:
        # an engine that does not stream buffers the utterance and holds
        # no decoder until its end: HTTP is served meanwhile
        r = d.post_file("/transcribe", audio)
        assert r.status == 200, r
    # hang up mid-utterance without a close frame
    sk = c.ws.sock
    sk.shutdown(socket.SHUT_RDWR)
    sk.close()
    deadline = time.time() + 5
    while True:
        r = d.post_file("/transcribe", audio)
        if r.status == 200 or time.time() > deadline:
            break
        time.sleep(0.1)
    assert r.status == 200, r
    says_sentence(engine, s, r.json()["text"])
    assert d.alive()


def test_ws_utterances_past_the_decoders_wait_for_one(stt, engine, speech):
    """Wyoming satellites and sockets that talk at once are more than
    --workers: the utterance that finds every decoder taken keeps its audio
    and is answered once one is free, not dropped."""
    d = stt("--workers", "1")
    s0, s1 = SENTENCES[0], SENTENCES[1]
    holder, waiter = WsClient(d), WsClient(d)
    pcm0 = speech[s0].astype("<i2").tobytes()
    holder.stream(pcm0[:RATE], 640)             # half a second at once
    if streams(d):
        for i in range(RATE, len(pcm0), 640):   # until it holds the decoder
            if [e for e in holder.events if e["event"] == "partial"]:
                break
            holder.stream(pcm0[i:i + 640], 640, 0.02)
        holder.wait("partial")
    waiter.stream(speech[s1].astype("<i2").tobytes(), 3200)
    waiter.send({"event": "end"})
    if streams(d):
        time.sleep(0.5)                         # the decoder is still held
        assert not [e for e in waiter.events if e["event"] in ("final", "error")], \
            waiter.events
    holder.stream(pcm0[RATE:], 3200)
    holder.send({"event": "end"})
    says_sentence(engine, s0, holder.wait("final")["text"])
    f = waiter.wait("final", timeout=30)
    assert not [e for e in waiter.events if e["event"] == "error"], waiter.events
    assert abs(f["duration_ms"] - len(speech[s1]) * 1000 / RATE) < 60, f
    says_sentence(engine, s1, f["text"])
    # a cancel reaches an utterance waiting for a decoder at once
    n, m = len(holder.events), len(waiter.events)
    holder.stream(pcm0[:RATE], 640)
    if streams(d):
        for i in range(RATE, len(pcm0), 640):
            if [e for e in holder.events[n:] if e["event"] == "partial"]:
                break
            holder.stream(pcm0[i:i + 640], 640, 0.02)
        holder.wait("partial", start=n)
    waiter.stream(speech[s1].astype("<i2").tobytes(), 3200)
    waiter.send({"event": "end"})
    t0 = time.monotonic()
    waiter.send({"event": "cancel"})
    waiter.wait("cancelled", start=m, timeout=5)
    assert time.monotonic() - t0 < 2
    assert not [e for e in waiter.events[m:] if e["event"] in ("final", "error")], \
        waiter.events[m:]
    holder.send({"event": "end"})
    holder.wait("final", start=n)
    holder.close()
    waiter.close()
    assert d.alive()


def test_more_requests_than_the_pool_holds_get_503_then_succeed(stt, engine, speech):
    d = stt("--workers", "1", "--queue", "0")
    long_pcm = np.concatenate([speech[s] for s in SENTENCES] * 2)   # ~40 s
    result = {}

    def slow():
        result["r"] = d.post_file("/transcribe", wav_bytes(long_pcm), timeout=120)

    t = threading.Thread(target=slow)
    t.start()
    deadline = time.time() + 10
    while time.time() < deadline:
        h = d.get("/healthz").json()
        if h["busy"] >= 1:
            break
        time.sleep(0.02)
    assert h["busy"] == 1 and h["status"] == "overloaded", h
    r = d.post_file("/transcribe", wav_bytes(speech[SENTENCES[0]]))
    assert r.status == 503 and r.headers.get("Retry-After") == "1", r
    t.join(120)
    assert result["r"].status == 200, result["r"]
    assert abs(result["r"].json()["duration_ms"] - len(long_pcm) * 1000 / RATE) <= 1
    text = result["r"].json()["text"]
    assert isinstance(text, str)
    if engine == "pocketsphinx":
        assert len(words(text)) > 50, text      # words: see says_sentence
    # the worker is freed just after it answered: wait for /healthz to say so
    deadline = time.time() + 5
    while d.get("/healthz").status != 200 and time.time() < deadline:
        time.sleep(0.02)
    r = d.post_file("/transcribe", wav_bytes(speech[SENTENCES[0]]))
    assert r.status == 200, r
    says_sentence(engine, SENTENCES[0], r.json()["text"])


def test_health_info_and_metrics(shared, engine, speech, request):
    d = shared
    h = d.get("/healthz").json()
    assert h["status"] == "ok" and h["engine"] == engine
    assert h["model"] and h["workers"] == 2 and h["in_flight"] == 0
    if engine == "whisper":
        assert h["model"] == request.getfixturevalue("whisper_model")
    i = d.get("/info").json()
    assert i["engine"] == engine and i["model"] == h["model"]
    assert "/ws/transcribe" in i["websocket"] and "whisper" in i["engines"] and "whisper-server" in i["engines"]
    assert "POST /v1/audio/transcriptions" in i["routes"]
    count = metric(d, "voxline_stt_real_time_factor_count")
    seconds = metric(d, "voxline_stt_audio_seconds_sum")
    r = d.post_file("/transcribe", wav_bytes(speech[SENTENCES[0]]))
    assert r.status == 200, r
    assert metric(d, "voxline_stt_real_time_factor_count") == count + 1
    dur = len(speech[SENTENCES[0]]) / RATE
    assert abs(metric(d, "voxline_stt_audio_seconds_sum") - seconds - dur) < 0.01


# ---- remote engines through the daemon ----

@pytest.fixture
def fake():
    """tests/stt_fake_server.py on a free port: (base_url, proc)."""
    p = subprocess.Popen([PYTHON, os.path.join(ROOT, "tests", "stt_fake_server.py"),
                          "--key", "sekret"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line.startswith("PORT "), line
    yield f"http://127.0.0.1:{int(line.split()[1])}"
    p.stdin.close()
    p.terminate()
    p.wait(10)


def last(base):
    import urllib.request
    with urllib.request.urlopen(base + "/last", timeout=5) as r:
        return json.loads(r.read())


def heard(pcm):
    return f"heard {len(pcm)} samples at 16000 hz checksum {int(pcm.astype(np.int64).sum()) % 65536}"


@pytest.mark.parametrize("remote", ["whisper-server", "openai"])
def test_remote_engines_through_the_daemon(start, fake, remote):
    d = start("stt", "--engine", remote, "--url", fake, "--upstream-key", "sekret",
            "--model", "big-model")
    rng = np.random.default_rng(7)
    pcm = (rng.standard_normal(RATE * 3 // 2) * 3000).astype(np.int16)
    r = d.post_file("/transcribe", wav_bytes(pcm), fields={"language": "en"},
                    headers={"X-Request-Id": "stt-remote-1"})
    assert r.status == 200, r
    j = r.json()
    assert j["text"] == heard(pcm) and j["engine"] == remote
    assert j["language"] == "en"
    assert [s["text"] for s in j["segments"]] == ["second 0", "second 1"]
    assert j["segments"][1] == {"start_ms": 1000, "end_ms": 1500, "text": "second 1"}
    seen = last(fake)
    assert seen["headers"]["x-request-id"] == "stt-remote-1"
    assert seen["fields"]["language"] == "en"
    if remote == "openai":
        assert seen["path"] == "/v1/audio/transcriptions"
        assert seen["fields"]["model"] == "big-model"
        assert seen["headers"]["authorization"] == "Bearer sekret"
    else:
        assert seen["path"] == "/inference"
    # the OpenAI route over a remote engine
    body, ctype = multipart({"file": ("a.wav", "audio/wav", wav_bytes(pcm))},
                            {"model": "whisper-1", "response_format": "verbose_json"})
    v = d.post("/v1/audio/transcriptions", body, ctype).json()
    assert v["text"] == heard(pcm) and len(v["segments"]) == 2
    assert v["segments"][1]["start"] == 1.0 and v["language"] == "english"
    # WebSocket: buffered, transcribed at end, no partials
    c = WsClient(d)
    assert c.ready["partials"] is False
    n = len(c.events)
    c.stream(pcm.astype("<i2").tobytes(), 640)
    c.send({"event": "end"})
    f = c.wait("final", start=n)
    assert f["text"] == heard(pcm) and f["duration_ms"] == 1500
    c.close()


def test_remote_upstream_down_slow_and_failing(start, fake, speech):
    audio = wav_bytes(speech[SENTENCES[0]])
    with socket.socket() as s:       # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    d = start("stt", "--engine", "whisper-server", "--url", dead)
    r = d.post_file("/transcribe", audio)
    assert r.status == 502 and r.json()["error"]["code"] == "upstream_unavailable", r
    d2 = start("stt", "--engine", "openai", "--url", fake + "/stall",
             "--upstream-key", "sekret", "--timeout-s", "1")
    t0 = time.time()
    r = d2.post_file("/transcribe", audio)
    assert r.status == 504 and r.json()["error"]["code"] == "upstream_timeout", r
    assert time.time() - t0 < 5
    body, ctype = multipart({"file": ("a.wav", "audio/wav", audio)}, {"model": "x"})
    r = d2.post("/v1/audio/transcriptions", body, ctype)
    assert r.status == 504 and r.json()["error"]["type"] == "server_error", r
    d3 = start("stt", "--engine", "whisper.cpp", "--url", fake + "/500")
    r = d3.post_file("/transcribe", audio)
    assert r.status == 502 and r.json()["error"]["code"] == "upstream_error", r
    m = d3.get("/metrics").body.decode()
    assert 'voxline_stt_engine_errors_total{engine="whisper-server",kind="upstream_error"} 1' in m
