"""Many streams at once on the built-in GGUF engine (continuous batching),
side by side with llama-server, on the Qwen2.5-0.5B-shaped Q8_0 and
Q4_K_M files of bench_gguf (random weights, real dimensions; BENCH_BATCH_TYPES
names others), 2 threads each.

1. For 1, 4, 8 and 16 concurrent streams, each server with as many slots
   (voxline --slots N; llama-server -np N, continuous batching on): the
   aggregate decode rate (tokens of all streams per second while all of
   them decode) and the p95 time to first token over all requests. Every
   request has its own prompt (no cached prefix) and asks for MAX_TOKENS.
2. One conversation's 5 turns while 3 other conversations stream: the
   prompt tokens each turn ran (timings.prompt_n) and took from its slot
   (timings.cache_n), on both servers.

llama-server comes from the reference build in /tmp/ref/llama.cpp (or
LLAMA_SERVER=path); when it is not there the comparison is skipped with a
message. The reference build uses OpenMP, whose threads spin while they
wait: on a machine that is busy with other work, run with
OMP_WAIT_POLICY=passive (inherited by llama-server) or its figures collapse
(measured here under load: 0.4 tok/s spinning, 24 tok/s passive). Targets
are quoted, never enforced: 8 streams >= 4x one stream (from the table,
and from BENCH_BATCH_PAIRS (5) interleaved pairs of rounds on one server),
and >= llama-server's aggregate. BENCH_BATCH_ROUNDS (2) rounds per row; BENCH_BATCH_STREAMS
(1,4,8,16) the stream counts.
"""
import json
import os
import socket
import subprocess
import tempfile
import threading
import time

from benchutil import pct, start
from bench_gguf import model_file

THREADS = 2
STREAMS = [int(x) for x in os.environ.get("BENCH_BATCH_STREAMS", "1,4,8,16").split(",")]
MAX_TOKENS = 64
CTX_PER_SLOT = 512
ROUNDS = int(os.environ.get("BENCH_BATCH_ROUNDS", "2"))
PAIRS = int(os.environ.get("BENCH_BATCH_PAIRS", "5"))
TYPES = [t for t in os.environ.get("BENCH_BATCH_TYPES", "Q8_0,Q4_K_M").split(",") if t]
LLAMA_SERVER = os.environ.get("LLAMA_SERVER", "/tmp/ref/llama.cpp/build/bin/llama-server")
LLAMA_BUILT = "/tmp/ref/llama.cpp/BUILT"


def stream(port, messages, max_tokens, out, k):
    """One streaming chat completion; out[k] = (first token, end, tokens,
    [time of each token]) in perf_counter seconds."""
    body = json.dumps({"messages": messages, "max_tokens": max_tokens, "temperature": 0,
                       "stream": True, "ignore_eos": True}).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=600)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
              b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
              + body)
    buf, ttft, tokens, tail, stamps = b"", None, 0, b"", []
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            buf += b
            lines = (tail + b).split(b"\n")
            tail = lines.pop()
            for line in lines:
                if not line.startswith(b"data: {"):
                    continue
                ch = json.loads(line[6:])
                for c in ch.get("choices") or []:
                    if (c.get("delta") or {}).get("content"):
                        tokens += 1
                        stamps.append(time.perf_counter())
                        if ttft is None:
                            ttft = time.perf_counter()
            if b"data: [DONE]" in buf:
                break
    finally:
        s.close()
    if not buf.startswith(b"HTTP/1.1 200") or ttft is None:
        raise RuntimeError("bad stream: %r" % buf[:300])
    out[k] = (ttft, time.perf_counter(), tokens, stamps)


def prompt(tag):
    return [{"role": "system", "content": "You are a helpful voice assistant."},
            {"role": "user", "content": f"Request {tag}: tell me a short story about a "
                                        f"lighthouse keeper and a storm at sea."}]


def decode_rate(out):
    """Tokens per second of all streams together while all of them decode
    (from the last first token to the first end: prefill is not in it)."""
    lo, hi = max(o[0] for o in out), min(o[1] for o in out)
    n = sum(1 for o in out for t in o[3] if lo < t <= hi)
    if hi - lo < 0.5 or n < len(out):      # hardly overlapped: whole rounds
        return sum(o[2] for o in out) / (max(o[1] for o in out) - min(o[0] for o in out))
    return n / (hi - lo)


def concurrency(port, n, label, rounds=ROUNDS):
    """`rounds` rounds of n streams at once: (aggregate decode tok/s of the
    best round, p95 ttft ms over all requests)."""
    ttfts, best = [], 0.0
    for r in range(rounds):
        out = [None] * n
        t0 = time.perf_counter()
        ts = [threading.Thread(target=stream, args=(port, prompt(f"{label}-{n}-{r}-{i}"),
                                                     MAX_TOKENS, out, i)) for i in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if any(o is None for o in out):
            raise RuntimeError(f"{label}: a stream failed")
        best = max(best, decode_rate(out))
        ttfts += [(o[0] - t0) * 1e3 for o in out]
    return best, pct(ttfts, 95)


def start_llama(path, slots, ctx_per_slot=CTX_PER_SLOT):
    log = tempfile.NamedTemporaryFile(prefix="bench-llama-server-", suffix=".log",
                                      delete=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen([LLAMA_SERVER, "-m", path, "--host", "127.0.0.1", "--port", str(port),
                          "-t", str(THREADS), "-tb", str(THREADS), "-np", str(slots),
                          "-c", str(ctx_per_slot * slots), "-cb"],
                         stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    import urllib.request
    while time.time() < deadline:
        if p.poll() is not None:
            raise RuntimeError("llama-server exited: " + open(log.name).read()[-2000:])
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return p, port
        except OSError:
            pass
        time.sleep(0.2)
    p.kill()
    raise RuntimeError("llama-server did not get ready")


def stop_llama(p):
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def chat(port, messages, max_tokens):
    import urllib.request
    body = json.dumps({"messages": messages, "max_tokens": max_tokens, "temperature": 0,
                       "ignore_eos": True}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.load(r)


def turns(port, label):
    """5 turns of one conversation while 3 others stream; prints what each
    turn prefilled."""
    stop = threading.Event()

    def background(i):
        k = 0
        while not stop.is_set():
            out = [None]
            try:
                stream(port, prompt(f"{label}-bg-{i}-{k}"), 200, out, 0)
            except Exception:
                return
            k += 1

    bg = [threading.Thread(target=background, args=(i,), daemon=True) for i in range(3)]
    for t in bg:
        t.start()
    time.sleep(1.0)
    conv = prompt(f"{label}-conversation")
    rows = []
    for t in range(5):
        t0 = time.perf_counter()
        j = chat(port, conv, 12)
        ms = (time.perf_counter() - t0) * 1e3
        tm = j.get("timings") or {}
        rows.append((t + 1, j["usage"]["prompt_tokens"], tm.get("prompt_n"), tm.get("cache_n"), ms))
        conv = conv + [{"role": "assistant", "content": j["choices"][0]["message"]["content"]},
                       {"role": "user", "content": f"And what happened next, part {t + 2}?"}]
    stop.set()
    for t in bg:
        t.join(timeout=120)
    print(f"  {label}: one conversation's turns while 3 others stream")
    for r in rows:
        print(f"    turn {r[0]}: prompt {r[1]:4d} tokens, prefilled {r[2]}, from cache {r[3]}, "
              f"answer in {r[4]:.0f} ms")


def interleaved_ratio(bin_dir, ty):
    """8 streams over 1 stream on one server (--slots 8): a round of one
    stream, then a round of 8, PAIRS times. The machine's drift over
    minutes (this one's single stream moves by 20% between runs) then
    falls on both sides of each pair, not on one side of the ratio as in
    the table, where each count has its own server and minute. Prints
    each pair and the median ratio."""
    path = model_file(ty)
    d = start(bin_dir, "llm", "--engine", "gguf", "--model", path, "--threads", THREADS,
              "--ctx", CTX_PER_SLOT, "--slots", 8, "--max-tokens-limit", 4096)
    try:
        pairs = [(concurrency(d.port, 1, f"p1-{r}", 1)[0],
                  concurrency(d.port, 8, f"p8-{r}", 1)[0]) for r in range(PAIRS)]
    finally:
        d.stop()
    ratios = sorted(e / o for o, e in pairs)
    print(f"  target: 8 streams >= 4x one stream, {PAIRS} interleaved pairs on one server: "
          + ", ".join(f"{e:.0f}/{o:.1f}" for o, e in pairs)
          + f" tok/s = {ratios[0]:.2f}-{ratios[-1]:.2f}x, median {ratios[len(ratios) // 2]:.2f}x")


def streams_table(bin_dir, ty, have_llama):
    """Part 1 on the file of preset ty."""
    path = model_file(ty)
    print(f"  {ty}:")
    res = {}
    for n in STREAMS:
        d = start(bin_dir, "llm", "--engine", "gguf", "--model", path, "--threads", THREADS,
                  "--ctx", CTX_PER_SLOT, "--slots", n, "--max-tokens-limit", 4096)
        try:
            res[("voxline", n)] = concurrency(d.port, n, "vx")
        finally:
            d.stop()
        if have_llama:
            p, port = start_llama(path, n)
            try:
                res[("llama", n)] = concurrency(port, n, "ll")
            finally:
                stop_llama(p)
        line = f"  {n:2d} streams: voxline {res[('voxline', n)][0]:6.1f} tok/s, p95 ttft " \
               f"{res[('voxline', n)][1]:6.0f} ms"
        if have_llama:
            line += f" | llama-server {res[('llama', n)][0]:6.1f} tok/s, p95 ttft " \
                    f"{res[('llama', n)][1]:6.0f} ms"
        print(line, flush=True)
    if ("voxline", 1) in res and ("voxline", 8) in res:
        one, eight = res[("voxline", 1)][0], res[("voxline", 8)][0]
        print(f"  target: 8 streams >= 4x one stream: {eight:.1f} / {one:.1f} = "
              f"{eight / one:.2f}x")
        if PAIRS > 0:
            interleaved_ratio(bin_dir, ty)
        if have_llama:
            ll8 = res[("llama", 8)][0]
            print(f"  target: 8 streams >= llama-server's: {eight:.1f} / {ll8:.1f} = "
                  f"{eight / ll8:.2f}x")
    print(f"  (load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs: "
          "a busy machine makes these figures meaningless)")


def main(bin_dir, tools_dir):
    have_llama = os.path.exists(LLAMA_BUILT) and os.access(LLAMA_SERVER, os.X_OK)
    if not have_llama:
        print(f"llama-server: not found ({LLAMA_SERVER}, {LLAMA_BUILT}); "
              "the comparison is skipped")
    for ty in TYPES:
        streams_table(bin_dir, ty, have_llama)
    path = model_file("Q8_0")
    d = start(bin_dir, "llm", "--engine", "gguf", "--model", path, "--threads", THREADS,
              "--ctx", 2048, "--slots", 4)
    try:
        turns(d.port, "voxline")
    finally:
        d.stop()
    if have_llama:
        p, port = start_llama(path, 4, 2048)
        try:
            turns(port, "llama-server")
        finally:
            stop_llama(p)
