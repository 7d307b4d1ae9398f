"""NATS JetStream jobs (docs/jobs.md): jobs/s for short TTS and STT jobs
with 1 and 2 worker instances (one engine thread each), and the latency the
JetStream path adds over the HTTP route on the same work (one at a time, the
same daemon). A real nats-server -js on loopback, store in a temp dir.
Prints figures; never fails on a number."""
import base64
import json
import os
import shutil
import sys
import tempfile
import time
import pathlib
import uuid

from benchutil import pct, start

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from nats_client import Nats  # noqa: E402

TTS_TEXT = "Hello, how can I help you today?"
STT_TEXT = "Please turn off the lights in the kitchen."
N_TTS, N_STT, N_LAT = 60, 12, 20


def job(nc, svc, request, audio=None, reply="bench.r"):
    jid = "b-" + uuid.uuid4().hex[:12]
    j = {"id": jid, "reply": reply, "request": request}
    if audio is not None:
        j["audio"] = {"base64": base64.b64encode(audio).decode(),
                      "content_type": "audio/wav"}
    nc.js_publish(f"voxline.{svc}.jobs", json.dumps(j).encode())
    return jid


def throughput(nc, svc, request, audio, n):
    sid, q = nc.subscribe("bench.tp")
    nc.flush()
    t0 = time.perf_counter()
    for _ in range(n):
        job(nc, svc, request, audio, "bench.tp")
    ok = 0
    for _ in range(n):
        ok += q.get(timeout=120).json()["status"] == "ok"
    dt = time.perf_counter() - t0
    nc.unsubscribe(sid)
    return n / dt, ok


def latency(nc, d, svc, request, audio, n):
    """(HTTP median ms, job median ms) over n alternating runs."""
    sid, q = nc.subscribe("bench.lat")
    nc.flush()
    http, jobs = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        if svc == "tts":
            r = d.post_json("/synthesize", request)
        else:
            r = d.post_file("/transcribe", audio)
        assert r.status == 200
        http.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        job(nc, svc, request, audio, "bench.lat")
        assert q.get(timeout=60).json()["status"] == "ok"
        jobs.append((time.perf_counter() - t0) * 1000)
    nc.unsubscribe(sid)
    return pct(http, 50), pct(jobs, 50), pct(http, 90), pct(jobs, 90)


def main(bin_dir, tools_dir):
    if not shutil.which("nats-server"):
        print("nats-server is not installed (make deps): skipped")
        return
    from test_nats import NatsServer, wait_consumer
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="bench-nats-"))
    srv = NatsServer(tmp)
    nc = Nats(srv.port)
    daemons = []
    try:
        tts = start(bin_dir, "tts", "--nats", srv.url, "--workers", "1")
        daemons.append(tts)
        wav = tts.post_json("/synthesize", {"text": STT_TEXT, "voice": "slt"}).body
        wait_consumer(nc, "tts")
        req = {"text": TTS_TEXT, "voice": "slt"}
        job(nc, "tts", req)          # warm up
        time.sleep(0.3)
        h50, j50, h90, j90 = latency(nc, tts, "tts", req, None, N_LAT)
        print(f"tts short text, one at a time: HTTP p50 {h50:.1f} ms (p90 "
              f"{h90:.1f}), JetStream job p50 {j50:.1f} ms (p90 {j90:.1f}): "
              f"+{j50 - h50:.1f} ms")
        rate, ok = throughput(nc, "tts", req, None, N_TTS)
        print(f"tts {N_TTS} short jobs, 1 worker (1 thread): {rate:.1f} jobs/s ({ok} ok)")
        tts2 = start(bin_dir, "tts", "--nats", srv.url, "--workers", "1")
        daemons.append(tts2)
        time.sleep(0.5)
        rate, ok = throughput(nc, "tts", req, None, N_TTS)
        print(f"tts {N_TTS} short jobs, 2 workers (1 thread each): {rate:.1f} jobs/s ({ok} ok)")

        stt = start(bin_dir, "stt", "--nats", srv.url, "--workers", "1")
        daemons.append(stt)
        wait_consumer(nc, "stt")
        h50, j50, h90, j90 = latency(nc, stt, "stt", {}, wav, N_LAT // 2)
        print(f"stt {len(wav) / 32000:.1f} s sentence, one at a time: HTTP p50 "
              f"{h50:.1f} ms (p90 {h90:.1f}), JetStream job p50 {j50:.1f} ms "
              f"(p90 {j90:.1f}): +{j50 - h50:.1f} ms")
        rate, ok = throughput(nc, "stt", {}, wav, N_STT)
        print(f"stt {N_STT} short jobs, 1 worker (1 decoder): {rate:.2f} jobs/s ({ok} ok)")
        stt2 = start(bin_dir, "stt", "--nats", srv.url, "--workers", "1")
        daemons.append(stt2)
        time.sleep(0.5)
        rate, ok = throughput(nc, "stt", {}, wav, N_STT)
        print(f"stt {N_STT} short jobs, 2 workers (1 decoder each): {rate:.2f} jobs/s ({ok} ok)")
    finally:
        for d in daemons:
            d.stop()
        nc.close()
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
