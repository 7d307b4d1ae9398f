"""voxline-vad: POST /detect throughput and latency on the 31 s white20 file
(sequential and 4 concurrent clients), real-time factor, idle and loaded
resident memory, tools/vad_eval's precision/recall/boundary table, and the
onset table of tests/integration/test_vad_onset.py (sentences starting with
th, f, s, h, p and controls, flite and espeak-ng voices, clean and 20 dB
white/pink noise: onset error median/p90/max and frame precision/recall per
class and condition)."""
import os
import subprocess
import tempfile
import threading
import time

import test_vad_onset as onset   # tests/integration is on sys.path
from benchutil import pct, rss_mb, start

SEQ_REQUESTS = 40
CONC_CLIENTS = 4
CONC_REQUESTS = 20          # per client


def timed_posts(d, body, n, out):
    for _ in range(n):
        t0 = time.perf_counter()
        r = d.post("/detect", body, "audio/wav")
        out.append((time.perf_counter() - t0) * 1000.0)
        assert r.status == 200, r


def main(bin_dir, tools_dir):
    vad_eval = os.path.join(tools_dir, "vad_eval")
    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "white20.wav")
        subprocess.run([vad_eval, "--write-wav", wav, "--condition", "white20",
                        "--no-eval"], check=True)
        with open(wav, "rb") as f:
            body = f.read()
    audio_s = (len(body) - 44) / 32000.0

    d = start(bin_dir, "vad")
    try:
        time.sleep(0.5)
        idle = rss_mb(d.proc.pid)
        print(f"idle RSS {idle:.1f} MB (target < 10 MB)", flush=True)

        timed_posts(d, body, 3, [])                  # warm up
        lat = []
        t0 = time.perf_counter()
        timed_posts(d, body, SEQ_REQUESTS, lat)
        wall = time.perf_counter() - t0
        j = d.post("/detect", body, "audio/wav").json()
        print(f"sequential: {SEQ_REQUESTS / wall:.1f} req/s, "
              f"{SEQ_REQUESTS * audio_s / wall:.0f} s of audio per s; "
              f"latency p50 {pct(lat, 50):.1f} ms p99 {pct(lat, 99):.1f} ms; "
              f"server processing {j['processing_ms']:.1f} ms for {audio_s:.1f} s "
              f"(RTF {j['processing_ms'] / 1000.0 / audio_s:.4f})", flush=True)

        lat = []
        threads = [threading.Thread(target=timed_posts,
                                    args=(d, body, CONC_REQUESTS, lat))
                   for _ in range(CONC_CLIENTS)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        n = CONC_CLIENTS * CONC_REQUESTS
        print(f"{CONC_CLIENTS} concurrent (2 workers): {n / wall:.1f} req/s, "
              f"{n * audio_s / wall:.0f} s of audio per s; latency p50 "
              f"{pct(lat, 50):.1f} ms p99 {pct(lat, 99):.1f} ms", flush=True)
        print(f"RSS after load {rss_mb(d.proc.pid):.1f} MB", flush=True)

        print("\nonset (ms, detected - true; p90/max of |error|):",
              flush=True)
        clips, noise_only = onset.build_set()
        onset.evaluate(d, clips)
        onset.report(clips, lambda line: print(line, flush=True))
        for c in noise_only:
            print(f"noise only {c['cond']}: {len(onset.detect(d, c['wav']))}"
                  " segment(s)", flush=True)
    finally:
        d.stop()

    print("\nvad_eval (frame precision/recall, segment boundary errors):",
          flush=True)
    out = subprocess.run([vad_eval], capture_output=True, text=True, check=True)
    print(out.stdout, flush=True)
