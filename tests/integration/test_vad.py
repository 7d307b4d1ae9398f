"""voxline-vad through its real daemon: /detect and /ws/detect find the
speech of a known file (flite sentences in white noise at 20 dB SNR, made
by tools/vad_eval with its truth) within 100 ms; every kind of bad input
gets its JSON error and the daemon keeps serving."""
import json
import os
import struct
import subprocess
import threading
import wave

import numpy as np
import pytest
import websocket

from conftest import TOOLS
from speech import wav_bytes

TOL_MS = 100          # allowed |detected - true| per boundary
FRAME_MS = 20         # WebSocket frames


# ---- the known file ----

@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """(wav bytes, 16 kHz samples, truth segments) of vad_eval's white20
    file, made fresh for this module."""
    d = tmp_path_factory.mktemp("vad")
    wav, truth = d / "white20.wav", d / "white20.json"
    subprocess.run([os.path.join(TOOLS, "vad_eval"), "--write-wav", str(wav),
                    "--write-truth", str(truth), "--condition", "white20",
                    "--no-eval"], check=True, timeout=120)
    data = wav.read_bytes()
    with wave.open(str(wav)) as w:
        assert (w.getframerate(), w.getnchannels()) == (16000, 1)
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    segs = json.loads(truth.read_text())["segments"]
    assert len(segs) == 8
    return data, pcm, [(s["start_ms"], s["end_ms"]) for s in segs]


@pytest.fixture(scope="module")
def truth_8k(tmp_path_factory):
    """The truth for the same file sent at 8 kHz: the same labelling rule on
    the speech low-passed to 3.6 kHz (the /s/ of "Set" and "minutes" and
    the end of "six" lie above 4 kHz, so they are not in 8 kHz audio)."""
    p = tmp_path_factory.mktemp("vad8k") / "truth.json"
    subprocess.run([os.path.join(TOOLS, "vad_eval"), "--write-truth", str(p),
                    "--condition", "white20", "--truth-band-hz", "3600",
                    "--no-eval"], check=True, timeout=120)
    segs = json.loads(p.read_text())["segments"]
    return [(s["start_ms"], s["end_ms"]) for s in segs]


def assert_matches(found, truth, what):
    assert len(found) == len(truth), f"{what}: {found} vs truth {truth}"
    for (s, e), (ts, te) in zip(found, truth):
        assert abs(s - ts) <= TOL_MS and abs(e - te) <= TOL_MS, \
            f"{what}: segment {s}-{e} vs truth {ts}-{te}\nall: {found}"


def segments_of(r):
    assert r.status == 200, r
    j = r.json()
    return [(s["start_ms"], s["end_ms"]) for s in j["segments"]]


def to_8k(pcm16k):
    """Low-pass (windowed sinc, 3.6 kHz) and take every other sample."""
    n = np.arange(-64, 65)
    h = 2 * 3600 / 16000 * np.sinc(2 * 3600 / 16000 * n) * np.hamming(len(n))
    y = np.convolve(pcm16k.astype(np.float64), h, mode="same")[::2]
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)


def mulaw_encode(x):
    """G.711 mu-law (the ITU reference: bias 0x84, clip 32635)."""
    x = x.astype(np.int32)
    sign = np.where(x < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(x), 32635) + 0x84
    exp = np.floor(np.log2(mag)).astype(np.int32) - 7
    mant = (mag >> (exp + 3)) & 0x0F
    return ((exp << 4 | mant) ^ sign).astype(np.uint8)


def healthy(d):
    r = d.get("/healthz")
    assert r.status == 200 and r.json()["status"] == "ok", r


# ---- POST /detect ----

@pytest.mark.parametrize("aggressiveness", [None, 0, 1])
def test_detect_finds_the_sentences_within_100ms(start, speech, aggressiveness):
    data, _, truth = speech
    d = start("vad")
    fields = {} if aggressiveness is None else {"aggressiveness": aggressiveness}
    r = d.post_file("/detect", data, fields)
    assert_matches(segments_of(r), truth, f"aggressiveness {aggressiveness}")
    j = r.json()
    assert j["sample_rate"] == 16000 and j["duration_ms"] == 31345
    assert j["speech_ms"] == sum(e - s for s, e in segments_of(r))
    healthy(d)


def test_detect_webrtc_engine_and_raw_wav_body(start, speech):
    data, _, truth = speech
    d = start("vad", "--engine", "webrtc")
    r = d.post("/detect", data, "audio/wav")
    assert r.json()["engine"] == "webrtc"
    assert len(segments_of(r)) == len(truth)


def test_detect_8khz_stereo_wav_is_resampled(start, speech, truth_8k):
    _, pcm, _ = speech
    truth = truth_8k
    x = to_8k(pcm)
    st = np.stack([x, (x // 2)], axis=1).reshape(-1)   # two different channels
    d = start("vad")
    r = d.post_file("/detect", wav_bytes(st, 8000, 2))
    assert_matches(segments_of(r), truth, "8 kHz stereo")


def test_detect_raw_mulaw_and_l16(start, speech, truth_8k):
    _, pcm, _ = speech
    truth = truth_8k
    x = to_8k(pcm)
    d = start("vad")
    r = d.post("/detect", mulaw_encode(x).tobytes(), "audio/pcmu")
    assert_matches(segments_of(r), truth, "audio/pcmu")
    r = d.post("/detect", x.astype("<i2").tobytes(), "audio/L16;rate=8000")
    assert_matches(segments_of(r), truth, "audio/L16;rate=8000")
    assert r.json()["duration_ms"] == pytest.approx(31345, abs=2)


def test_detect_bad_input_gets_json_errors(start, speech):
    data, _, truth = speech
    d = start("vad")
    cases = [
        ("empty body", d.post("/detect", b"", "audio/wav"), 400, "empty_audio"),
        ("cut at 30 bytes", d.post("/detect", data[:30], "audio/wav"), 400, "bad_audio"),
        ("corrupt", d.post("/detect", b"RIFF\x10\x00\x00\x00WAVEjunk" + os.urandom(4000),
                           "audio/wav"), 400, "bad_audio"),
        ("text/plain", d.post("/detect", b"hello", "text/plain"), 415,
         "unsupported_media_type"),
        ("json", d.post_json("/detect", {"audio": "x"}), 415, "unsupported_media_type"),
        ("aggressiveness 9", d.post_file("/detect", data, {"aggressiveness": 9}),
         400, "bad_parameter"),
        ("min_silence_ms -1", d.post_file("/detect", data, {"min_silence_ms": -1}),
         400, "bad_parameter"),
        ("no file field", d.post("/detect", *multipart_without_file()), 400,
         "missing_file"),
    ]
    for what, r, status, code in cases:
        assert r.status == status, (what, r)
        assert r.json()["error"]["code"] == code, (what, r)
        assert r.json()["error"]["message"], what
    # Cut mid-data: what is there is decoded (the first 7 s: 2 sentences).
    r = d.post("/detect", data[:44 + 16000 * 2 * 7], "audio/wav")
    assert r.json()["duration_ms"] == 7000
    assert_matches(segments_of(r), truth[:2], "cut at 7 s")
    healthy(d)


def multipart_without_file():
    from conftest import multipart
    return multipart({}, {"aggressiveness": "1"})


def test_detect_body_over_limit_is_413(start, speech):
    _, pcm, _ = speech
    big = wav_bytes(np.tile(pcm, 3), 16000)        # 3 MB
    d = start("vad", "--max-body-mb", "1")
    r = d.post("/detect", big, "audio/wav")
    assert r.status == 413 and r.json()["error"]["code"] == "body_too_large", r
    r = d.post_file("/detect", big)
    assert r.status == 413, r
    healthy(d)


def test_detect_overload_is_503_then_serves(start, speech):
    _, pcm, truth = speech
    long_wav = wav_bytes(np.tile(pcm, 10), 16000)  # 313 s, 10 MB
    d = start("vad", "--workers", "1", "--queue", "0")
    results = []
    lock = threading.Lock()

    def one():
        r = d.post("/detect", long_wav, "audio/wav", timeout=120)
        with lock:
            results.append(r)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(r.status for r in results)
    assert 200 in statuses and 503 in statuses, statuses
    assert set(statuses) <= {200, 503}, statuses
    for r in results:
        if r.status == 503:
            assert r.headers.get("Retry-After"), r.headers
            assert r.json()["error"]["code"], r
        else:
            assert len(r.json()["segments"]) == 10 * len(truth)
    # Load gone: every request is served.
    for _ in range(3):
        assert d.post("/detect", long_wav, "audio/wav", timeout=120).status == 200
    healthy(d)


# ---- /ws/detect ----

def ws_connect(d):
    ws = websocket.create_connection(d.ws_url + "/ws/detect", timeout=30)
    return ws


def ws_round(ws, frames):
    """Sends binary frames then end; returns (segments, done event)."""
    for f in frames:
        ws.send_binary(f)
    ws.send(json.dumps({"event": "end"}))
    segs, open_start = [], None
    while True:
        ev = json.loads(ws.recv())
        if ev["event"] == "speech_start":
            assert open_start is None, ev
            open_start = ev["start_ms"]
        elif ev["event"] == "speech_end":
            assert ev["start_ms"] == open_start, ev
            segs.append((ev["start_ms"], ev["end_ms"]))
            open_start = None
        elif ev["event"] == "done":
            assert open_start is None
            return segs, ev
        else:
            raise AssertionError(f"unexpected event {ev}")


def configure(ws, **cfg):
    ws.send(json.dumps({"event": "config", **cfg}))
    ev = json.loads(ws.recv())
    assert ev["event"] == "ready", ev
    return ev


def chunks(b, n):
    return [b[i:i + n] for i in range(0, len(b), n)]


def test_ws_pcm16_matches_truth_and_takes_a_second_round(start, speech):
    _, pcm, truth = speech
    d = start("vad")
    ws = ws_connect(d)
    configure(ws, sample_rate=16000)
    frames = chunks(pcm.astype("<i2").tobytes(), 16000 * 2 * FRAME_MS // 1000)
    segs, done = ws_round(ws, frames)
    assert_matches(segs, truth, "ws pcm16")
    assert done["duration_ms"] == 31345
    # Second round on the same socket: times restart at 0.
    segs, done = ws_round(ws, frames[:350])           # first 7 s
    assert_matches(segs, truth[:2], "ws second round")
    assert done["duration_ms"] == 7000
    ws.close()
    healthy(d)


def test_ws_mulaw_8khz_is_resampled(start, speech, truth_8k):
    _, pcm, _ = speech
    truth = truth_8k
    d = start("vad")
    ws = ws_connect(d)
    configure(ws, sample_rate=8000, encoding="mulaw")
    frames = chunks(mulaw_encode(to_8k(pcm)).tobytes(), 8000 * FRAME_MS // 1000)
    segs, _ = ws_round(ws, frames)
    assert_matches(segs, truth, "ws mulaw 8 kHz")
    ws.close()


def test_ws_errors_keep_the_socket_usable(start, speech):
    _, pcm, truth = speech
    d = start("vad")
    ws = ws_connect(d)
    ws.send_binary(b"\x00" * 640)                     # audio before config
    ev = json.loads(ws.recv())
    assert ev["event"] == "error" and ev["code"] == "not_configured", ev
    for garbage in ("not json", "[1,2]", '{"event":', "\x00\x01"):
        ws.send(garbage)
        ev = json.loads(ws.recv())
        assert ev["event"] == "error" and ev["code"] == "invalid_json", ev
    ws.send(json.dumps({"event": "end"}))             # end before config
    assert json.loads(ws.recv())["code"] == "not_configured"
    ws.send(json.dumps({"event": "config", "sample_rate": 5}))
    assert json.loads(ws.recv())["code"] == "bad_config"
    ws.send(json.dumps({"event": "config", "encoding": "opus"}))
    assert json.loads(ws.recv())["code"] == "bad_config"
    ws.send(json.dumps({"event": "dance"}))
    ev = json.loads(ws.recv())
    assert ev["event"] == "error", ev
    configure(ws)
    ws.send(json.dumps({"event": "dance"}))
    assert json.loads(ws.recv())["code"] == "unknown_event"
    frames = chunks(pcm.astype("<i2").tobytes(), 640)
    segs, _ = ws_round(ws, frames[:350])
    assert_matches(segs, truth[:2], "ws after errors")
    ws.close()
    healthy(d)


def test_ws_client_leaving_mid_stream_does_not_hurt(start, speech):
    data, pcm, truth = speech
    d = start("vad")
    for _ in range(5):
        ws = ws_connect(d)
        configure(ws)
        for f in chunks(pcm.astype("<i2").tobytes(), 640)[:200]:
            ws.send_binary(f)
        ws.sock.close()                               # no close frame
    ws = ws_connect(d)
    configure(ws)
    segs, _ = ws_round(ws, chunks(pcm.astype("<i2").tobytes(), 640)[:350])
    assert_matches(segs, truth[:2], "ws after abandoned sockets")
    ws.close()
    assert_matches(segments_of(d.post_file("/detect", data)), truth, "detect")
    healthy(d)


def test_info_and_metrics(start, speech):
    data, _, _ = speech
    d = start("vad")
    info = d.get("/info").json()
    assert info["engine"] == "builtin" and "webrtc" in info["engines"]
    d.post_file("/detect", data)
    m = d.get("/metrics").body.decode()
    line = [ln for ln in m.splitlines()
            if ln.startswith("voxline_vad_segments_total")]
    assert line and float(line[0].split()[-1]) == 8, line
