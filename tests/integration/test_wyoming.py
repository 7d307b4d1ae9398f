"""The Wyoming protocol (Home Assistant) on voxline-vad, -stt and -tts
(--wyoming-port), driven by tests/wyoming_client.py, a client written from
the protocol's public description: describe/info, transcription of flite
speech (word error rate as the HTTP route gives on the same audio),
synthesis, the streaming variants, VAD events, bad events answered with an
error event on a connection that stays usable, many and concurrent
connections, and a drain on SIGTERM."""
import json
import os
import signal
import socket
import sys
import threading
import time

import numpy as np
import pytest

from conftest import ROOT
from speech import RATE, SENTENCES, WER_MAX, speak, wav_bytes, wer

sys.path.insert(0, os.path.join(ROOT, "tests"))
from wyoming_client import WyomingClient  # noqa: E402

N_WER = 3      # sentences compared with the HTTP route


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def with_wyoming(start, name, *args):
    """start(name) with a Wyoming port; -> (daemon, port)."""
    for _ in range(5):
        port = free_port()
        try:
            d = start(name, "--wyoming-port", port, *args)
            return d, port
        except RuntimeError as e:
            if "wyoming" not in str(e):
                raise
    raise RuntimeError("no free port for Wyoming")


def client(port, timeout=30):
    return WyomingClient("127.0.0.1", port, timeout)


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    return speak(SENTENCES[:N_WER], str(tmp_path_factory.mktemp("tts")))


def resample(pcm, rate_in, rate_out):
    """Band-limited resampling by FFT (fine for whole test clips)."""
    n_out = int(round(len(pcm) * rate_out / rate_in))
    spec = np.fft.rfft(pcm.astype(np.float64))[:n_out // 2 + 1]
    y = np.fft.irfft(spec, n_out) * (n_out / len(pcm))
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)


def pcm_bytes(pcm):
    return np.asarray(pcm, dtype="<i2").tobytes()


# ---- describe ----

def test_describe_reports_real_engines_voices_and_languages(start):
    stt, sp = with_wyoming(start, "stt")
    tts, tp = with_wyoming(start, "tts")
    vad, vp = with_wyoming(start, "vad")
    with client(sp) as c:
        info = c.describe()
    asr = info["asr"][0]
    http = json.loads(stt.get("/info").body)
    assert asr["supports_transcript_streaming"] is True
    model = asr["models"][0]
    assert model["name"].startswith("pocketsphinx")
    assert model["installed"] is True and "en" in model["languages"]
    assert http["engine"] == "pocketsphinx"
    assert info["tts"] == []
    with client(tp) as c:
        info = c.describe()
    voices = {v["name"]: v for v in info["tts"][0]["voices"]}
    assert info["tts"][0]["supports_synthesize_streaming"] is True
    assert voices["slt"]["languages"] == ["en-US"]
    http_voices = json.loads(tts.get("/voices").body)["voices"]
    assert {v["name"] for v in http_voices} == set(voices)
    with client(vp) as c:
        info = c.describe()
    assert info["vad"][0]["models"][0]["name"] in ("builtin", "webrtc")
    assert info["asr"] == [] and info["tts"] == []


# ---- STT ----

def test_transcribe_flite_speech_wer_as_http(start, speech):
    d, port = with_wyoming(start, "stt")
    refs, hyp_wy, hyp_http = [], [], []
    with client(port) as c:
        for text in SENTENCES[:N_WER]:
            pcm = speech[text]
            tr, evs = c.transcribe(pcm_bytes(pcm), RATE, language="en")
            assert tr.type == "transcript", evs
            assert tr.data["language"] == "en"
            types = [e.type for e in evs]
            # streaming engine: start, chunks, stop, then the transcript
            assert types[0] == "transcript-start" and types[-2:] == [
                "transcript-stop", "transcript"], types
            chunks = "".join(e.data["text"] for e in evs
                             if e.type == "transcript-chunk")
            assert chunks.split()[:1] == tr.data["text"].split()[:1] or not chunks
            r = d.post_file("/transcribe", wav_bytes(pcm), fields={"language": "en"})
            assert r.status == 200, r.body
            refs.append(text)
            hyp_wy.append(tr.data["text"])
            hyp_http.append(json.loads(r.body)["text"])
    w_wy = wer(" ".join(refs), " ".join(hyp_wy))
    w_http = wer(" ".join(refs), " ".join(hyp_http))
    print(f"WER wyoming {w_wy:.3f} http {w_http:.3f}")
    assert w_wy <= max(WER_MAX, w_http + 0.05), (hyp_wy, hyp_http)


def test_transcribe_stereo_bad_language_and_half_close(start, speech):
    d, port = with_wyoming(start, "stt")
    pcm = speech[SENTENCES[0]]
    stereo = np.stack([pcm, pcm], axis=1).reshape(-1)
    with client(port) as c:
        tr, _ = c.transcribe(pcm_bytes(stereo), RATE, channels=2)
        assert tr.type == "transcript" and wer(SENTENCES[0], tr.data["text"]) <= 0.3
        # a bad language is an error; the next transcription still works
        c.send("transcribe", {"language": "../etc"})
        assert c.recv().data["code"] == "bad_language"
        assert c.describe()["asr"]
    # a client that half-closes after audio-stop still gets its transcript
    with client(port) as c:
        c.send("transcribe")
        c.send_audio(pcm_bytes(pcm), RATE)
        c.sock.shutdown(socket.SHUT_WR)
        evs = c.recv_until("transcript")
        assert wer(SENTENCES[0], evs[-1].data["text"]) <= 0.3
        with pytest.raises(EOFError):
            c.recv(10)


# ---- TTS ----

def test_synthesize_gives_audio_that_transcribes(start):
    tts, tp = with_wyoming(start, "tts")
    stt, sp = with_wyoming(start, "stt")
    text = "Please turn off the lights in the kitchen."
    with client(tp) as c:
        fmt, pcm, evs = c.synthesize(text, voice="slt")
        types = [e.type for e in evs]
        assert types[0] == "audio-start" and types[-1] == "audio-stop"
        assert fmt == {"rate": 16000, "width": 2, "channels": 1}
        assert all(e.data["rate"] == 16000 for e in evs if e.type == "audio-chunk")
        assert len(pcm) / 2 / 16000 > 1.0
        # the HTTP route says the same audio
        r = tts.post_json("/synthesize", {"text": text, "voice": "slt",
                                          "return_format": "pcm"})
        assert r.status == 200 and abs(len(r.body) - len(pcm)) <= 0.05 * len(pcm)
        # unknown voice: an error event, and the connection goes on
        c.send("synthesize", {"text": "Hi.", "voice": {"name": "nobody-x"}})
        err = c.recv()
        assert err.type == "error" and err.data["code"] == "unknown_voice"
        fmt2, pcm2, _ = c.synthesize("Hello.", voice="kal")
        assert fmt2["rate"] > 0 and len(pcm2) > 1000
    with client(sp) as c:
        tr, _ = c.transcribe(pcm, 16000)
        assert wer(text, tr.data["text"]) <= 0.3, tr.data


def test_synthesize_streaming_one_audio_stream_per_synthesis(start):
    _, tp = with_wyoming(start, "tts")
    whole = "Hello there. How are you today? I am fine."
    with client(tp) as c:
        _, ref_pcm, _ = c.synthesize(whole)
        c.send("synthesize-start", {"voice": {"name": "slt"}})
        for part in ["Hello th", "ere. How are", " you today? I am", " fine."]:
            c.send("synthesize-chunk", {"text": part})
        c.send("synthesize", {"text": whole})     # for older servers: ignored
        c.send("synthesize-stop")
        evs = c.recv_until("synthesize-stopped")
        types = [e.type for e in evs if e.type != "audio-chunk"]
        assert types == ["audio-start", "audio-stop", "synthesize-stopped"], types
        pcm = b"".join(e.payload for e in evs if e.type == "audio-chunk")
        # the same words (said sentence by sentence), not twice
        assert 0.7 * len(ref_pcm) < len(pcm) < 1.4 * len(ref_pcm)
        # the first audio comes before the last text would have been needed
        c.send("synthesize-start")
        c.send("synthesize-chunk", {"text": "First sentence here. "})
        first = c.recv(20)
        assert first.type == "audio-start"
        c.send("synthesize-chunk", {"text": "And a second one."})
        c.send("synthesize-stop")
        evs = c.recv_until("synthesize-stopped")
        assert [e.type for e in evs if e.type != "audio-chunk"] == [
            "audio-stop", "synthesize-stopped"]
        # chunk without a start
        c.send("synthesize-chunk", {"text": "x"})
        assert c.recv().data["code"] == "not_started"
        assert c.describe()["tts"]


# ---- VAD ----

def test_vad_voice_started_and_stopped(start, speech):
    _, port = with_wyoming(start, "vad")
    pcm = speech[SENTENCES[1]]
    sil = np.zeros(RATE, dtype=np.int16)
    audio = np.concatenate([sil, pcm, sil, sil])
    with client(port) as c:
        c.send_audio(pcm_bytes(audio), RATE, chunk_bytes=640)
        c.send("describe")
        evs = c.recv_until("info")[:-1]
        types = [e.type for e in evs]
        assert types[0] == "voice-started" and types[-1] == "voice-stopped", types
        t0 = evs[0].data["timestamp"]
        t1 = evs[-1].data["timestamp"]
        assert 700 <= t0 <= 1500, t0
        speech_end = 1000 + len(pcm) * 1000 // RATE
        assert speech_end - 600 <= t1 <= speech_end + 1000, (t1, speech_end)
        # a second round on the same connection, 8 kHz this time
        c.send_audio(pcm_bytes(resample(audio, RATE, 8000)), 8000)
        c.send("describe")
        types = [e.type for e in c.recv_until("info")[:-1]]
        assert "voice-started" in types and types[-1] == "voice-stopped"


# ---- bad events ----

def expect_error(c, code):
    ev = c.recv(10)
    assert ev.type == "error" and ev.data["code"] == code, ev
    assert ev.data["text"]


def test_bad_events_answer_errors_and_the_connection_stays_usable(start):
    _, sp = with_wyoming(start, "stt")
    _, tp = with_wyoming(start, "tts")
    _, vp = with_wyoming(start, "vad")
    fmt = {"rate": 16000, "width": 2, "channels": 1}
    for port in (sp, tp, vp):
        with client(port) as c:
            c.send("no-such-event")
            expect_error(c, "unknown_event")
            c.send_raw(b"this is not json\n")
            expect_error(c, "bad_event")
            c.send_raw(b'{"data":{}}\n')                       # no type
            expect_error(c, "bad_event")
            c.send_raw(b'{"type":"describe","payload_length":-3}\n')
            expect_error(c, "bad_event")
            c.send_raw(b'{"type":"describe","data_length":5}\nnotjs')
            expect_error(c, "bad_data")
            # a payload over the limit is read and thrown away
            big = 5 << 20
            c.send_raw(json.dumps({"type": "audio-chunk", "data": fmt,
                                   "payload_length": big}).encode() + b"\n")
            c.send_raw(b"\0" * big)
            expect_error(c, "too_large")
            # a payload longer than said: the rest reads as a bad header
            c.send_raw(json.dumps({"type": "describe", "payload_length": 2})
                       .encode() + b"\nxxTRAILING GARBAGE\n")
            evs = c.recv_until("error")
            assert evs[-1].data["code"] == "bad_event"
            # a payload shorter than said: dropped after the stall limit
            t0 = time.time()
            c.send_raw(json.dumps({"type": "describe", "payload_length": 100})
                       .encode() + b"\nshort")
            expect_error(c, "incomplete_event")
            assert time.time() - t0 < 8
            # an endless header line
            c.send_raw(b"{" + b" " * (70 * 1024) + b"\n")
            expect_error(c, "too_large")
            assert c.describe()                                 # still usable
        if port != tp:
            with client(port) as c:
                c.send("audio-chunk", fmt, b"\0\0" * 160)
                expect_error(c, "not_started")
                c.send("audio-stop")
                expect_error(c, "not_started")
                c.send("audio-start", {"rate": 16000, "width": 4, "channels": 1})
                expect_error(c, "bad_format")
                c.send("audio-start", fmt)
                c.send("audio-chunk", fmt, b"\0\0\0")            # half a frame
                expect_error(c, "bad_audio")
                c.send("audio-stop")
                assert c.describe()
        # inline data (in the header) is accepted as well as data_length
        with client(port) as c:
            c.send("describe", {"x": 1}, inline=True)
            assert c.recv().type == "info"


# ---- many connections, drain ----

def test_concurrent_connections(start, speech):
    _, sp = with_wyoming(start, "stt", "--workers", "2")
    _, tp = with_wyoming(start, "tts")
    pcm = pcm_bytes(speech[SENTENCES[0]])
    results, errors = [], []

    def stt_job():
        try:
            with client(sp, 60) as c:
                tr, _ = c.transcribe(pcm, RATE)
                results.append(wer(SENTENCES[0], tr.data.get("text", "")))
        except Exception as e:       # reported below
            errors.append(repr(e))

    def tts_job():
        try:
            with client(tp, 60) as c:
                fmt, out, _ = c.synthesize("Thank you very much.")
                results.append(0.0 if fmt and len(out) > 8000 else 1.0)
        except Exception as e:
            errors.append(repr(e))

    idle = [client(sp) for _ in range(50)]       # held open meanwhile
    threads = [threading.Thread(target=f) for f in [stt_job] * 4 + [tts_job] * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not errors, errors
    assert len(results) == 8 and max(results) <= 0.5, results
    for c in idle:
        assert c.describe()["asr"]
        c.close()


def test_sigterm_closes_the_listener_and_connections(start):
    d, port = with_wyoming(start, "tts", "--drain-s", "5")
    c = client(port)
    assert c.describe()
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(10) == 0
    with pytest.raises((EOFError, ConnectionError, OSError)):
        c.recv(5)
    c.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2)


def test_off_by_default(start):
    d = start("vad")
    assert "wyoming" not in d.log()
