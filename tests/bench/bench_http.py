"""GET /healthz throughput and latency with wrk (2 threads, 50 connections),
and idle resident memory of each daemon that is built."""
import os
import time

from benchutil import rss_mb, start, wrk


def main(bin_dir, tools_dir):
    for name in ("vad", "stt", "tts", "llm", "orchestrator"):
        if not os.path.exists(os.path.join(bin_dir, "voxline-" + name)):
            continue
        extra = []
        if name == "llm":
            extra = ["--engine", "openai", "--url", "http://127.0.0.1:9",
                     "--probe-interval-ms", "0"]
        d = start(bin_dir, name, *extra)
        try:
            time.sleep(0.5)
            idle = rss_mb(d.proc.pid)
            rps, p50, p99, errs = wrk(d.url + "/healthz", 2, 50, 8)
            print(f"{name:13s} idle RSS {idle:6.1f} MB | GET /healthz {rps:9.0f} req/s "
                  f"p50 {p50:.2f} ms p99 {p99:.2f} ms errors {errs}", flush=True)
        finally:
            d.stop()
