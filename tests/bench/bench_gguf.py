"""The built-in GGUF engine's speed on Qwen2.5-0.5B-shaped files (random
weights, real dimensions: 24 layers, hidden 896, vocab 151936), one file
per llama.cpp preset (Q8_0, Q4_K_M, Q5_K_M, Q3_K_M, Q2_K, IQ4_XS, IQ4_NL,
Q4_1, Q5_1: the per-tensor mix llama-quantize makes, with its fallbacks for
the 896-wide rows; each file's make-up is printed), 2 threads.

1. The engine alone (build/tools/gguf_bench) side by side with llama.cpp's
   llama-bench on the same file, single stream: prompt tokens/s for a
   512-token prompt and decode tokens/s (64 steps), interleaved (voxline,
   llama.cpp, next type, ...; BENCH_GGUF_ROUNDS rounds, medians) with the
   ratio voxline / llama.cpp. Decode is measured as llama-bench's tg64
   is, from an (almost) empty context: gguf_bench --prompt 1 --gen 64; the
   decode after the 512-token prompt (attention over ~540 positions) is
   printed in its own column, voxline only, and so is the aggregate decode
   of 8 sequences at once (gguf_bench --streams 8: continuous batching's
   gain without HTTP). llama-bench is taken from PATH, from
   $LLAMA_CPP_BIN, or from /tmp/ref/llama.cpp/build/bin (a build from the
   fetched source, never committed); without it the comparison is skipped
   with a message and voxline's figures are printed alone.
2. Q8_0 and Q4_K_M through voxline-llm: time until /healthz says ok, time
   to first token and decode tokens/s of streaming /v1/chat/completions
   (short prompt, and a ~512-token prompt), the daemon's RSS: the service
   overhead.

The files are made once by tests/gguf/mkgguf.py and cached in
build/bench-models/ (named for the preset and a hash of the generator, so
a changed generator makes new ones). Prints figures; never fails on a
number. BENCH_GGUF_TYPES (comma list) narrows the presets;
BENCH_GGUF_ROUNDS (3) rounds of part 1; BENCH_GGUF_RUNS (3) requests per
row of part 2. BENCH_GGUF_BASE=DIR (a tools directory of an older build)
adds that build's gguf_bench to each round and prints its table too (a
before/after under the same load); BENCH_GGUF_SERVICE=0 skips part 2.
"""
import hashlib
import json
import os
import shutil
import socket
import subprocess
import time

from benchutil import pct, rss_mb, start

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
GEN = os.path.join(ROOT, "tests", "gguf", "mkgguf.py")
CACHE = os.path.join(ROOT, "build", "bench-models")
THREADS = 2
RUNS = int(os.environ.get("BENCH_GGUF_RUNS", "3"))
ROUNDS = int(os.environ.get("BENCH_GGUF_ROUNDS", "3"))
STREAMS = 8
ALL_TYPES = ["Q8_0", "Q4_K_M", "Q5_K_M", "Q3_K_M", "Q2_K", "IQ4_XS", "IQ4_NL", "Q4_1", "Q5_1"]
TYPES = [t for t in os.environ.get("BENCH_GGUF_TYPES", ",".join(ALL_TYPES)).split(",") if t]
SERVICE_TYPES = [t for t in ("Q8_0", "Q4_K_M") if t in TYPES]
PY = "/usr/bin/python3"
BASE = os.environ.get("BENCH_GGUF_BASE", "")
LLAMA_DIRS = [os.environ.get("LLAMA_CPP_BIN", ""), "/tmp/ref/llama.cpp/build/bin"]


def model_file(ty):
    h = hashlib.sha1()
    for f in (GEN, os.path.join(ROOT, "tests", "gguf", "tokref.py")):
        with open(f, "rb") as fh:
            h.update(fh.read())
    stem = f"qwen2.5-0.5b-shape-{ty}-"
    path = os.path.join(CACHE, f"{stem}{h.hexdigest()[:8]}.gguf")
    if not os.path.exists(path) or not os.path.exists(path + ".types"):
        os.makedirs(CACHE, exist_ok=True)
        for old in os.listdir(CACHE):           # stale files of an older generator
            if old.startswith(stem) or old.startswith(f"qwen2.5-0.5b-shape-{ty.lower()}-"):
                os.unlink(os.path.join(CACHE, old))
        t0 = time.time()
        out = subprocess.run([PY, GEN, path + ".part", "--shape", "qwen2.5-0.5b", "--type", ty,
                              "--summary"], check=True, capture_output=True, text=True)
        with open(path + ".types", "w") as f:
            f.write(out.stdout.strip() + "\n")
        os.rename(path + ".part", path)
        print(f"  made {os.path.basename(path)} in {time.time() - t0:.1f} s", flush=True)
    return path


def make_up(path):
    """'Q4_K:12 Q5_0:132 ...': the 2-D tensors' types (F32 norms left out)."""
    with open(path + ".types") as f:
        return " ".join(w for w in f.read().split() if not w.startswith("F32:"))


def llama_bench_path():
    for d in LLAMA_DIRS:
        p = os.path.join(d, "llama-bench") if d else ""
        if p and os.access(p, os.X_OK):
            return p
    return shutil.which("llama-bench")


def llama_bench(lb, path):
    """One llama-bench run (-r 1: the rounds interleave instead): prompt and
    decode tokens/s."""
    env = dict(os.environ, LD_LIBRARY_PATH=os.path.dirname(lb))
    out = subprocess.run([lb, "-m", path, "-t", str(THREADS), "-p", "512", "-n", "64",
                          "-r", "1", "-o", "json"], capture_output=True, text=True,
                         timeout=900, env=env)
    if out.returncode != 0:
        raise RuntimeError("llama-bench failed on %s: %s" % (os.path.basename(path),
                                                             out.stderr.strip()[-300:]))
    res = {}
    for e in json.loads(out.stdout):
        res["prompt_tok_s" if e["n_prompt"] else "decode_tok_s"] = e["avg_ts"]
    return res


def side_by_side(tools_dir, paths, lb):
    """ROUNDS rounds of (voxline, llama.cpp) per type, interleaved."""
    vox = {ty: [] for ty in TYPES}
    ll = {ty: [] for ty in TYPES}
    base = {ty: [] for ty in TYPES}
    for r in range(ROUNDS):
        for ty in TYPES:
            vox[ty].append(engine_alone(tools_dir, paths[ty], runs=1))
            if lb:
                ll[ty].append(llama_bench(lb, paths[ty]))
            if BASE:   # an older gguf_bench may not know --streams
                base[ty].append(engine_alone(BASE, paths[ty], runs=1, streams=1))
        print(f"  round {r + 1}/{ROUNDS} done (load {os.getloadavg()[0]:.2f})", flush=True)
    return vox, ll, base


def print_side_by_side(paths, vox, ll, lb, label="voxline"):
    med = lambda xs: pct(xs, 50)  # noqa: E731
    print(f"\n{label}: single stream, {THREADS} threads, prompt 512, 64 decode steps; medians of "
          f"{ROUNDS} interleaved rounds:")
    print(f"{'preset':8} {'MB':>5} | {'prompt t/s vox':>14} {'llama':>7} {'ratio':>6} | "
          f"{'decode t/s vox':>14} {'llama':>7} {'ratio':>6} | {'vox CPU ms/tok: prompt':>22} "
          f"{'decode':>7} | {'vox decode@512 t/s':>18} {'CPU ms/tok':>10} | "
          f"{f'{STREAMS} streams t/s':>14} {'x one':>6} | file holds")
    for ty in TYPES:
        v = vox[ty]
        vp, vd = med([x["prompt_tok_s"] for x in v]), med([x["decode_tok_s"] for x in v])
        cp = med([x["prompt_cpu_s"] / x["prompt_tokens"] * 1e3 for x in v])
        cd = med([x["decode_cpu_s"] / x["gen_tokens"] * 1e3 for x in v])
        dd = med([x["depth_decode_tok_s"] for x in v])
        cdd = med([x["depth_decode_cpu_s"] / x["gen_tokens"] * 1e3 for x in v])
        if lb:
            lp = med([x["prompt_tok_s"] for x in ll[ty]])
            ld = med([x["decode_tok_s"] for x in ll[ty]])
            lcol = f"{lp:7.1f} {vp / lp:6.2f} | {vd:14.2f} {ld:7.2f} {vd / ld:6.2f}"
        else:
            lcol = f"{'-':>7} {'-':>6} | {vd:14.2f} {'-':>7} {'-':>6}"
        mb = os.path.getsize(paths[ty]) / 1e6
        st, sx = med([x["streams_tok_s"] for x in v]), med([x["streams_x"] for x in v])
        print(f"{ty:8} {mb:5.0f} | {vp:14.1f} {lcol} | {cp:22.2f} {cd:7.2f} | {dd:18.2f} "
              f"{cdd:10.2f} | {st:14.1f} {sx:6.2f} | {make_up(paths[ty])}")
    print("(ratio = voxline / llama.cpp, >1 is voxline faster; target 1.2 on every type. decode:\n"
          " from a 1-token prompt as llama-bench's tg64; decode@512: after the 512-token prompt.\n"
          f" {STREAMS} streams: that many sequences after 64-token prompts, one forward pass a\n"
          " step (the engine alone; bench_batch measures it through HTTP), and its ratio to\n"
          " the single-stream decode of the same run.\n"
          " CPU ms/tok:\n"
          " voxline's CPU time per token over both threads, what an idle machine's wall time\n"
          " would be x2; wall-clock figures swing +-40% on this shared machine, the interleaving\n"
          " spreads that over both engines)")
    if not lb:
        print("\nllama.cpp: llama-bench not found (PATH, $LLAMA_CPP_BIN, "
              "/tmp/ref/llama.cpp/build/bin): comparison skipped.")


def gguf_bench(tools_dir, path, n_prompt, n_gen, streams=1):
    extra = ["--streams", str(streams)] if streams > 1 else []
    out = subprocess.run([os.path.join(tools_dir, "gguf_bench"), path, "--threads",
                          str(THREADS), "--prompt", str(n_prompt), "--gen", str(n_gen)] + extra,
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError("gguf_bench failed: " + out.stderr)
    return json.loads(out.stdout)


def engine_alone(tools_dir, path, runs=2, streams=STREAMS):
    """gguf_bench, best of runs (the machine is shared: the best run is the
    one least disturbed): prompt 512 then 64 decode steps at that depth, and
    64 decode steps from a 1-token prompt (what llama-bench's tg64 does),
    then `streams` sequences decoding together (model_step, no HTTP)."""
    best = None
    for _ in range(runs):
        j = gguf_bench(tools_dir, path, 512, 64)
        j["depth_decode_tok_s"] = j["decode_tok_s"]
        j["depth_decode_cpu_s"] = j["decode_cpu_s"]
        e = gguf_bench(tools_dir, path, 1, 64, streams)
        j["decode_tok_s"], j["decode_cpu_s"] = e["decode_tok_s"], e["decode_cpu_s"]
        j["streams_tok_s"] = e.get("streams_decode_tok_s", float("nan"))
        j["streams_x"] = e.get("vs_one_stream", float("nan"))
        # what the CPU time says an idle machine would give (workers spin,
        # so wall * threads == cpu when nothing else runs)
        j["decode_idle_tok_s"] = j["gen_tokens"] / (j["decode_cpu_s"] / THREADS)
        j["prompt_idle_tok_s"] = j["prompt_tokens"] / (j["prompt_cpu_s"] / THREADS)
        if best is None or j["decode_tok_s"] > best["decode_tok_s"]:
            best = j
    return best


def cpu_s(pid):
    """CPU seconds (user + system) the process has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stream_once(port, messages, max_tokens):
    """One streaming chat completion. Returns (ttft_s, decode tok/s,
    prompt_tokens, completion_tokens)."""
    body = json.dumps({"messages": messages, "max_tokens": max_tokens, "temperature": 0,
                       "stream": True, "stream_options": {"include_usage": True}}).encode()
    t0 = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port), timeout=300)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
              b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
              + body)
    buf, ttft = b"", None
    try:
        while b"data: [DONE]" not in buf:
            b = s.recv(65536)
            if not b:
                break
            buf += b
            if ttft is None and b'"content":"' in buf.replace(b'"content":""', b""):
                ttft = time.perf_counter() - t0
    finally:
        s.close()
    total = time.perf_counter() - t0
    usage = None
    for line in buf.split(b"\n"):
        if line.startswith(b"data: {") and b'"usage":{' in line:
            usage = json.loads(line[6:])["usage"]
    if not buf.startswith(b"HTTP/1.1 200") or not usage or ttft is None:
        raise RuntimeError("bad stream: %r" % buf[:300])
    n = usage["completion_tokens"]
    rate = (n - 1) / (total - ttft) if n > 1 and total > ttft else float("nan")
    return ttft, rate, usage["prompt_tokens"], n


def long_prompt(i, target=512):
    """About target prompt tokens (counted with the files' vocabulary by the
    reference tokenizer); a different start each time, so no cached prefix."""
    import sys
    sys.path.insert(0, os.path.join(ROOT, "tests", "gguf"))
    import tokref
    if not hasattr(long_prompt, "tok"):
        long_prompt.tok = tokref.RefTokenizer(tokref.make_bpe_vocab(pre="qwen2"))
    words = tokref.SAMPLE_TEXT.split()
    text, j = f"Run {i}: ", 0
    while len(long_prompt.tok.encode(text.encode())) < target - 20:
        text += words[j % len(words)] + " "
        j += 1
    return [{"role": "user", "content": text}]


def through_service(bin_dir, path):
    t0 = time.time()
    d = start(bin_dir, "llm", "--engine", "gguf", "--model", path, "--threads", THREADS,
              "--ctx", 1024)
    ready_ms = (time.time() - t0) * 1e3
    try:
        short = [{"role": "user", "content": f"Hello number {i}, say something."}
                 for i in range(RUNS)]
        c0 = cpu_s(d.proc.pid)
        res_s = [stream_once(d.port, [m], 64) for m in short]
        cpu_tok = (cpu_s(d.proc.pid) - c0) / sum(r[3] for r in res_s)
        res_l = [stream_once(d.port, long_prompt(i), 16) for i in range(RUNS)]
        rss = rss_mb(d.proc.pid)
    finally:
        d.stop()
    med = lambda xs: pct(xs, 50)  # noqa: E731
    return {
        "ready_ms": ready_ms,
        "ttft_short_ms": med([r[0] for r in res_s]) * 1e3,
        "short_prompt_tokens": res_s[0][2],
        "decode_tok_s": med([r[1] for r in res_s]),
        "cpu_ms_per_token": cpu_tok * 1e3,
        "ttft_long_ms": med([r[0] for r in res_l]) * 1e3,
        "long_prompt_tokens": res_l[0][2],
        "rss_mib": rss,
    }


def main(bin_dir, tools_dir):
    print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores; other work "
          "running at the same time lowers every figure)")
    paths = {ty: model_file(ty) for ty in TYPES}
    lb = llama_bench_path()
    print("llama.cpp: " + (lb or "not found, comparison skipped"))
    vox, ll, base = side_by_side(tools_dir, paths, lb)
    print_side_by_side(paths, vox, ll, lb)
    if BASE:
        print_side_by_side(paths, base, ll, lb, label=f"baseline {BASE}")
    if os.environ.get("BENCH_GGUF_SERVICE", "1") == "0":
        return

    svc = {ty: through_service(bin_dir, paths[ty]) for ty in SERVICE_TYPES}
    eng = {ty: max(vox[ty], key=lambda x: x["decode_tok_s"]) for ty in SERVICE_TYPES}
    print(f"\nthrough voxline-llm (streaming /v1/chat/completions, {THREADS} threads, "
          f"median of {RUNS}):")
    print(f"{'type':8} {'ready ms':>9} {'TTFT short':>11} {'(tokens)':>9} {'TTFT long':>10} "
          f"{'(tokens)':>9} {'decode tok/s':>13} {'vs engine':>10} {'RSS MiB':>8} "
          f"{'CPU ms/token':>13} {'(engine)':>9}")
    for ty in SERVICE_TYPES:
        s, e = svc[ty], eng[ty]
        print(f"{ty:8} {s['ready_ms']:9.0f} {s['ttft_short_ms']:9.0f}ms "
              f"{s['short_prompt_tokens']:9d} {s['ttft_long_ms']:8.0f}ms "
              f"{s['long_prompt_tokens']:9d} {s['decode_tok_s']:13.2f} "
              f"{s['decode_tok_s'] / e['decode_tok_s'] * 100:9.0f}% {s['rss_mib']:8.0f} "
              f"{s['cpu_ms_per_token']:13.1f} {e['decode_cpu_s'] / e['gen_tokens'] * 1e3:9.1f}")
    print("(TTFT long ~ the long prompt's prefill: compare with tokens / engine prompt tok/s;\n"
          " CPU ms/token: the daemon's CPU time over the short-prompt requests, prefill included,\n"
          " per completion token, next to gguf_bench's decode CPU per token: the load-independent\n"
          " overhead)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
