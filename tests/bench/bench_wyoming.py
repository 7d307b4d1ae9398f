"""Wyoming (Home Assistant) against the HTTP routes of the same daemons,
on the same audio and text: round trip of a transcription (STT), of a
synthesis (first audio and last byte, TTS), of a detection (VAD), and of
the smallest message (describe vs GET /info). Prints milliseconds (p50)
and the ratio Wyoming / HTTP; it never fails on a number.

The client is tests/wyoming_client.py (written from the protocol
description), sending audio in 1024-sample chunks as Home Assistant does."""
import http.client
import json
import os
import socket
import sys
import time
import wave
import io

from benchutil import pct, start

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from wyoming_client import WyomingClient  # noqa: E402

TEXT = ("Can you tell me the weather for tomorrow? "
        "Please turn off the lights in the kitchen.")
ROUNDS = 5
SMALL_ROUNDS = 200
REALTIME_ROUNDS = 3


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def http_post(port, path, body, ctype, first_byte=False):
    """-> (ms to first body byte, ms to the end, body)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    t = time.perf_counter()
    c.request("POST", path, body, {"Content-Type": ctype})
    r = c.getresponse()
    first = r.read(1)
    t1 = time.perf_counter()
    rest = r.read()
    t2 = time.perf_counter()
    c.close()
    assert r.status == 200, (r.status, first + rest)
    return (t1 - t) * 1000, (t2 - t) * 1000, first + rest


def wav(pcm, rate=16000):
    b = io.BytesIO()
    with wave.open(b, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return b.getvalue()


def line(what, http_ms, wy_ms):
    print(f"{what:34s} http p50 {pct(http_ms, 50):8.2f} ms   wyoming p50 "
          f"{pct(wy_ms, 50):8.2f} ms   ratio {pct(wy_ms, 50) / pct(http_ms, 50):5.2f}",
          flush=True)


def bench_tts(bin_dir):
    port = free_port()
    d = start(bin_dir, "tts", "--wyoming-port", port)
    try:
        body = json.dumps({"text": TEXT, "voice": "slt",
                           "return_format": "pcm"}).encode()
        h_first, h_all, w_first, w_all = [], [], [], []
        pcm = b""
        with WyomingClient("127.0.0.1", port, 300) as c:
            for _ in range(ROUNDS):
                f, a, pcm = http_post(d.port, "/synthesize", body,
                                      "application/json")
                h_first.append(f)
                h_all.append(a)
                t = time.perf_counter()
                c.send("synthesize", {"text": TEXT, "voice": {"name": "slt"}})
                tf = None
                while True:
                    ev = c.recv()
                    if ev.type == "audio-chunk" and tf is None:
                        tf = time.perf_counter()
                    if ev.type == "audio-stop":
                        break
                w_first.append((tf - t) * 1000)
                w_all.append((time.perf_counter() - t) * 1000)
        print(f"TTS: {len(pcm) / 32000:.1f} s of audio, {ROUNDS} rounds each")
        line("TTS first audio byte", h_first, w_first)
        line("TTS whole synthesis", h_all, w_all)
        return pcm
    finally:
        d.stop()


def bench_stt(bin_dir, pcm):
    port = free_port()
    d = start(bin_dir, "stt", "--wyoming-port", port)
    try:
        body = wav(pcm)
        h, w = [], []
        texts = set()
        with WyomingClient("127.0.0.1", port, 300) as c:
            for _ in range(ROUNDS):
                _, a, out = http_post(d.port, "/transcribe", body, "audio/wav")
                h.append(a)
                texts.add("http: " + json.loads(out)["text"])
                t = time.perf_counter()
                tr, _ = c.transcribe(pcm, 16000, chunk_bytes=2048)
                w.append((time.perf_counter() - t) * 1000)
                texts.add("wyoming: " + tr.data.get("text", ""))
        print(f"STT: {len(pcm) / 32000:.1f} s of audio; " + " | ".join(sorted(texts)))
        line("STT transcription (whole audio)", h, w)
        # As Home Assistant streams: audio in real time, then the time from
        # audio-stop to the transcript (HTTP can only start at the end).
        tail = []
        fmt = {"rate": 16000, "width": 2, "channels": 1}
        with WyomingClient("127.0.0.1", port, 300) as c:
            for _ in range(REALTIME_ROUNDS):
                c.send("transcribe")
                c.send("audio-start", fmt)
                t0 = time.perf_counter()
                for i in range(0, len(pcm), 2048):
                    c.send("audio-chunk", fmt, pcm[i:i + 2048])
                    due = t0 + (i + 2048) / 32000
                    time.sleep(max(0.0, due - time.perf_counter()))
                t = time.perf_counter()
                c.send("audio-stop")
                c.recv_until("transcript")
                tail.append((time.perf_counter() - t) * 1000)
        line("STT end of audio -> transcript", h, tail)
        hs, ws = [], []
        with WyomingClient("127.0.0.1", port, 30) as c:
            conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
            for _ in range(SMALL_ROUNDS):
                t = time.perf_counter()
                conn.request("GET", "/info")
                conn.getresponse().read()
                hs.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                c.describe()
                ws.append((time.perf_counter() - t) * 1000)
            conn.close()
        line("describe vs GET /info (keep-alive)", hs, ws)
    finally:
        d.stop()


def bench_vad(bin_dir, pcm):
    port = free_port()
    d = start(bin_dir, "vad", "--wyoming-port", port)
    try:
        audio = b"\0" * 32000 + pcm + b"\0" * 32000
        body = wav(audio)
        h, w = [], []
        with WyomingClient("127.0.0.1", port, 60) as c:
            for _ in range(ROUNDS * 4):
                _, a, _ = http_post(d.port, "/detect", body, "audio/wav")
                h.append(a)
                t = time.perf_counter()
                c.send_audio(audio, 16000, chunk_bytes=2048)
                c.send("describe")            # a fence: answered after the events
                c.recv_until("info")
                w.append((time.perf_counter() - t) * 1000)
        line("VAD detection (whole audio)", h, w)
    finally:
        d.stop()


def main(bin_dir, tools_dir):
    pcm = bench_tts(bin_dir)
    bench_stt(bin_dir, pcm)
    bench_vad(bin_dir, pcm)


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "..", "integration"))
    main(sys.argv[1] if len(sys.argv) > 1 else "build/bin", "build/tools")
