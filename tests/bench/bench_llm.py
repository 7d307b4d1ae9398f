"""voxline-llm's overhead over its upstream, and many streams at once.

1. Time to first token and total time, p50/p95, of ~200 streaming
   /v1/chat/completions requests sent straight to tests/llm_upstream.py and
   ~200 sent through voxline-llm (openai engine) to the same upstream,
   interleaved so both see the same machine load. "First token" is the first
   non-empty content delta in both cases (the upstream's own role chunk is
   not a token). Fresh connection per request on both sides.
2. Total time of streams that take seconds (the "slow" model: 100 tokens,
   50 ms apart), direct and through voxline-llm, many at a time.
3. 200 concurrent streaming clients through voxline-llm (slow model), with
   the daemon's resident memory at the peak and after.
Prints figures (and the load average: on a busy machine every thread
hand-off waits for a CPU, which shows in the p95s); never fails on a number.
Sizes: BENCH_LLM_N, BENCH_LLM_SLOW_N, BENCH_LLM_SLOW_PARALLEL,
BENCH_LLM_CONCURRENT (0 skips a part). The Python upstream is single
process (GIL): at 200 streams it, not voxline-llm, is the likely limit.
"""
import json
import os
import socket
import subprocess
import threading
import time

from benchutil import pct, rss_mb, start

HERE = os.path.dirname(os.path.abspath(__file__))
UPSTREAM = os.path.join(HERE, "..", "llm_upstream.py")
N_FAST = int(os.environ.get("BENCH_LLM_N", "200"))
N_SLOW = int(os.environ.get("BENCH_LLM_SLOW_N", "200"))
SLOW_PARALLEL = int(os.environ.get("BENCH_LLM_SLOW_PARALLEL", "50"))
N_CONCURRENT = int(os.environ.get("BENCH_LLM_CONCURRENT", "200"))
MSGS = [{"role": "user", "content": "measure the overhead of this service please"}]


def stream_once(port, model, timeout=60):
    """One streaming chat completion on a fresh connection.
    Returns (ttft_s, total_s, content tokens, ok)."""
    body = json.dumps({"model": model, "messages": MSGS, "stream": True}).encode()
    t0 = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/json\r\nContent-Length: " +
              str(len(body)).encode() + b"\r\n\r\n" + body)
    buf, ttft, tokens, ok = b"", None, 0, False
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            buf += b
            if ttft is None and b'"content":"' in buf.replace(b'"content":""', b""):
                ttft = time.perf_counter() - t0
            if b"data: [DONE]" in buf:
                ok = buf.startswith(b"HTTP/1.1 200")
                break
    finally:
        s.close()
    total = time.perf_counter() - t0
    tokens = buf.count(b'"content":"') - buf.count(b'"content":""')
    return ttft if ttft is not None else total, total, tokens, ok


def fmt_ms(v):
    return f"{v * 1000:7.2f} ms"


def overhead_fast(up_port, llm_port):
    direct, via = [], []
    for _ in range(10):   # warm up both
        stream_once(up_port, "echo")
        stream_once(llm_port, "echo")
    for _ in range(N_FAST):
        direct.append(stream_once(up_port, "echo"))
        via.append(stream_once(llm_port, "echo"))
    bad = sum(1 for r in direct + via if not r[3])
    print(f"streaming 'echo' (9 tokens, no delay), {N_FAST} requests each side, "
          f"{bad} failed:")
    for name, idx in (("first token", 0), ("total", 1)):
        d50, d95 = pct([r[idx] for r in direct], 50), pct([r[idx] for r in direct], 95)
        v50, v95 = pct([r[idx] for r in via], 50), pct([r[idx] for r in via], 95)
        print(f"  {name:11s} direct p50 {fmt_ms(d50)} p95 {fmt_ms(d95)} | via voxline-llm "
              f"p50 {fmt_ms(v50)} p95 {fmt_ms(v95)} | added p50 {fmt_ms(v50 - d50)} "
              f"p95 {fmt_ms(v95 - d95)}", flush=True)


def run_parallel(port, model, n, parallel):
    results, lock = [], threading.Lock()
    todo = list(range(n))

    def worker():
        while True:
            with lock:
                if not todo:
                    return
                todo.pop()
            r = stream_once(port, model, timeout=120)
            with lock:
                results.append(r)

    threads = [threading.Thread(target=worker) for _ in range(parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def overhead_slow(up_port, llm_port):
    print(f"streaming 'slow' (100 tokens 50 ms apart), {N_SLOW} requests each side, "
          f"{SLOW_PARALLEL} at a time:", flush=True)
    rows = {}
    for name, port in (("direct", up_port), ("via voxline-llm", llm_port)):
        res = run_parallel(port, "slow", N_SLOW, SLOW_PARALLEL)
        rows[name] = res
        bad = sum(1 for r in res if not r[3] or r[2] != 100)
        print(f"  {name:15s} first token p50 {fmt_ms(pct([r[0] for r in res], 50))} "
              f"p95 {fmt_ms(pct([r[0] for r in res], 95))} | total p50 "
              f"{fmt_ms(pct([r[1] for r in res], 50))} p95 {fmt_ms(pct([r[1] for r in res], 95))}"
              f" | {bad} incomplete", flush=True)
    d95 = pct([r[1] for r in rows["direct"]], 95)
    v95 = pct([r[1] for r in rows["via voxline-llm"]], 95)
    d50 = pct([r[1] for r in rows["direct"]], 50)
    v50 = pct([r[1] for r in rows["via voxline-llm"]], 50)
    print(f"  total time added: p50 {100 * (v50 - d50) / d50:+.2f}%  "
          f"p95 {100 * (v95 - d95) / d95:+.2f}%", flush=True)


def concurrent_streams(d, up_port):
    t0 = time.time()
    res = run_parallel(up_port, "slow", N_CONCURRENT, N_CONCURRENT)
    direct_wall = time.time() - t0
    ok = sum(1 for r in res if r[3] and r[2] == 100)
    print(f"{N_CONCURRENT} concurrent 'slow' streams straight to the upstream: {ok} complete, "
          f"wall {direct_wall:.1f} s, total p50 {fmt_ms(pct([r[1] for r in res], 50))} "
          f"p95 {fmt_ms(pct([r[1] for r in res], 95))}", flush=True)
    peak = [rss_mb(d.proc.pid)]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak.append(rss_mb(d.proc.pid))
            time.sleep(0.1)

    idle = peak[0]
    sampler = threading.Thread(target=sample)
    sampler.start()
    t0 = time.time()
    res = run_parallel(d.port, "slow", N_CONCURRENT, N_CONCURRENT)
    wall = time.time() - t0
    stop.set()
    sampler.join()
    ok = sum(1 for r in res if r[3] and r[2] == 100)
    print(f"{N_CONCURRENT} concurrent 'slow' streams through voxline-llm: {ok} complete, "
          f"{len(res) - ok} failed, wall {wall:.1f} s (ideal 5.0 s), "
          f"total p50 {fmt_ms(pct([r[1] for r in res], 50))} "
          f"p95 {fmt_ms(pct([r[1] for r in res], 95))}; "
          f"daemon RSS idle {idle:.1f} MB, peak {max(peak):.1f} MB, "
          f"after {rss_mb(d.proc.pid):.1f} MB", flush=True)
    if wall > 5.5 and direct_wall > 5.5:
        print("  (the Python upstream and Python clients, one process each under "
              "the GIL, are slower than 5 s on their own at this many streams)")


def main(bin_dir, tools_dir):
    up = subprocess.Popen(["/usr/bin/python3", UPSTREAM, "--port", "0"],
                          stdout=subprocess.PIPE)
    try:
        up_port = int(up.stdout.readline())
        d = start(bin_dir, "llm", "--engine", "openai", "--url",
                  f"http://127.0.0.1:{up_port}", "--max-concurrent",
                  str(max(N_CONCURRENT, SLOW_PARALLEL) + 16),
                  "--max-connections", "4096")
        try:
            print(f"load average before: {os.getloadavg()[0]:.2f} "
                  f"({os.cpu_count()} CPUs)", flush=True)
            if N_FAST:
                overhead_fast(up_port, d.port)
            if N_SLOW:
                overhead_slow(up_port, d.port)
            if N_CONCURRENT:
                concurrent_streams(d, up_port)
        finally:
            d.stop()
    finally:
        up.terminate()
        up.wait(10)

