"""The serving core (issue 8): keep-alive GET throughput against a bare
libmicrohttpd server in the same run (wrk, 2 threads, 50 connections,
interleaved pairs, medians and their ratio), and 10,000 idle or slow
connections held on one daemon: resident memory, threads, /healthz latency
while they are held."""
import os
import resource
import socket
import statistics
import subprocess
import time

from benchutil import pct, rss_mb, start, wrk
from conftest import proc_status

HOLD = 10000


def bare(tools_dir, mode):
    p = subprocess.Popen([os.path.join(tools_dir, "mhd_bare"), mode],
                         stdout=subprocess.PIPE, text=True)
    port = int(p.stdout.readline())
    return p, f"http://127.0.0.1:{port}"


def throughput(bin_dir, tools_dir, rounds=3, secs=6):
    """Interleaved rounds; the anchor is the best of libmicrohttpd's own
    modes (epoll thread pool, one epoll thread, thread per connection)."""
    d = start(bin_dir, "vad")
    modes = ("pool", "epoll", "thread")
    got = {k: [] for k in ("healthz", "livez") + modes}
    try:
        for _ in range(rounds):
            for m in modes:
                p, url = bare(tools_dir, m)
                try:
                    got[m].append(wrk(url + "/", 2, 50, secs)[0])
                finally:
                    p.kill()        # its thread-per-connection stop can hang
                    p.wait()
            got["healthz"].append(wrk(d.url + "/healthz", 2, 50, secs)[0])
            got["livez"].append(wrk(d.url + "/livez", 2, 50, secs)[0])
    finally:
        d.stop()
    med = {k: statistics.median(v) for k, v in got.items()}
    best = max(modes, key=lambda m: med[m])
    print("bare libmicrohttpd: " + ", ".join(f"{m} {med[m]:.0f} req/s" for m in modes),
          flush=True)
    for k in ("healthz", "livez"):
        print(f"GET /{k:8s} voxline-vad {med[k]:9.0f} req/s | best bare "
              f"({best}) {med[best]:9.0f} req/s | ratio {med[k] / med[best]:.2f}"
              f"  (medians of {rounds})", flush=True)


def hold(bin_dir, n=HOLD):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    d = start(bin_dir, "vad", "--max-connections", "20000",
              "--head-timeout-s", "300", "--idle-timeout-s", "300")
    socks = []
    try:
        time.sleep(0.3)
        rss0, thr0 = rss_mb(d.proc.pid), proc_status(d.proc.pid, "Threads")
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", d.port), timeout=30)
            kind = i % 3
            if kind == 1:      # slow head: never finished
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            elif kind == 2:    # one request, then idle keep-alive
                s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
            socks.append((kind, s))
        for kind, s in socks:
            if kind == 2:
                s.recv(4096)
        time.sleep(1.0)
        rss1, thr1 = rss_mb(d.proc.pid), proc_status(d.proc.pid, "Threads")
        lat = []
        for _ in range(200):
            t0 = time.perf_counter()
            r = d.get("/healthz", timeout=10)
            lat.append((time.perf_counter() - t0) * 1000)
            assert r.status == 200
        print(f"{n} connections held (1/3 silent, 1/3 slow heads, 1/3 idle "
              f"keep-alive): RSS {rss0:.1f} -> {rss1:.1f} MB (+{rss1 - rss0:.1f}), "
              f"threads {thr0} -> {thr1}, /healthz p50 {pct(lat, 50):.2f} ms "
              f"p99 {pct(lat, 99):.2f} ms", flush=True)
    finally:
        for _, s in socks:
            s.close()
        d.stop()


def main(bin_dir, tools_dir):
    throughput(bin_dir, tools_dir)
    hold(bin_dir)
