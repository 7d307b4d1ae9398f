"""voxline-llm's built-in GGUF engine serving several generations at once
(continuous batching over --slots KV slots), end to end over HTTP on a
random-weight file with Qwen2.5-0.5B's width and vocabulary but 4 layers
(tests/gguf/mkgguf.py; ~300 MB in the temp dir, written once per module):

- streams that run together give the tokens each gives alone, greedy and
  seeded;
- past the slots plus the queue (--max-concurrent) a request gets 503 with
  Retry-After, and a client that leaves frees its slot at once;
- a conversation's next turn runs only its new prompt tokens while other
  streams decode (usage.prompt_tokens_details.cached_tokens and
  timings.prompt_n / cache_n, llama-server's names).
"""
import json
import os
import re
import socket
import subprocess
import threading
import time

import pytest

from conftest import BIN, Daemon, PYTHON, ROOT

THREADS = 2


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """mkgguf's small shape: logits far apart, so float rounding never
    changes a token (on the wide random model near-ties among 150k tokens
    do where the kernels depend on the batch shape)."""
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    subprocess.run([PYTHON, os.path.join(ROOT, "tests", "gguf", "mkgguf.py"), str(path),
                    "--arch", "qwen2", "--type", "Q8_0", "--seed", "11"], check=True)
    yield str(path)
    path.unlink()


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("gguf") / "qwen05-l4.gguf"
    subprocess.run([PYTHON, os.path.join(ROOT, "tests", "gguf", "mkgguf.py"), str(path),
                    "--shape", "qwen2.5-0.5b", "--type", "Q8_0", "--layers", "4"], check=True)
    yield str(path)
    path.unlink()


def start_llm(tmp, model, *args):
    argv = [os.path.join(BIN, "voxline-llm"), "--port", "0", "--engine", "gguf",
            "--model", model, "--threads", str(THREADS), *map(str, args)]
    d = Daemon(argv, str(tmp / "voxline-llm-batch.log"), dict(os.environ))
    d.wait_ready()
    return d


def stop_clean(d):
    was_alive = d.alive()
    rc = d.stop()
    assert was_alive, "voxline-llm died during the test:\n" + d.log()[-3000:]
    assert rc == 0, f"voxline-llm exited {rc}:\n" + d.log()[-3000:]


USERS = ["Say hello to the voice assistant.", "What time is it in Paris?",
         "Name three colours.", "Count to four."]


def msgs(i):
    return [{"role": "system", "content": "You are terse."},
            {"role": "user", "content": USERS[i % len(USERS)]}]


def generate(d, messages, max_tokens=12, temperature=0, seed=7, stream=False):
    body = {"messages": messages, "max_tokens": max_tokens, "temperature": temperature,
            "seed": seed, "stream": stream}
    return d.post_json("/generate", body, timeout=120)


def streamed_text(r):
    ev = []
    for block in r.body.decode().split("\n\n"):
        for line in block.split("\n"):
            if line.startswith("data: "):
                ev.append(json.loads(line[6:]))
    assert ev and ev[-1]["event"] == "done", ev[-3:]
    return "".join(e["text"] for e in ev if e["event"] == "token"), ev[-1]


class OpenStream:
    """A long streamed generation on a raw socket, read until its first
    token (so it holds a slot), closed by close()."""

    def __init__(self, d, i, max_tokens=3000):
        body = json.dumps({"messages": msgs(i), "max_tokens": max_tokens, "temperature": 1.0,
                           "seed": 100 + i, "stream": True}).encode()
        self.s = socket.create_connection(("127.0.0.1", d.port))
        self.s.settimeout(60)
        self.s.sendall(b"POST /generate HTTP/1.1\r\nHost: x\r\n"
                       b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                       % len(body) + body)
        self.buf = b""

    def wait_token(self):
        while not re.search(rb'"event":"token"', self.buf):
            chunk = self.s.recv(4096)
            assert chunk, "stream ended early: %r" % self.buf[-500:]
            self.buf += chunk
        assert b" 200 " in self.buf.split(b"\r\n")[0], self.buf[:200]
        return self

    def close(self):
        self.s.close()


def cpu_has_avx_vnni():
    with open("/proc/cpuinfo") as f:
        return any(l.startswith("flags") and " avx_vnni" in l for l in f)


@pytest.mark.parametrize("temperature", [0, 1.0])
def test_streams_that_run_together_give_what_each_gives_alone(model, tiny, tmp_path, temperature):
    # Q8_0 with AVX-VNNI takes the 8-row gemm: logits are bit-identical
    # alone or batched (model_step), so the wide random file, whose
    # near-ties among 150k tokens would show any difference, must agree.
    # Without it the kernels depend on the batch shape: the small file.
    d = start_llm(tmp_path, model if cpu_has_avx_vnni() else tiny, "--slots", 4, "--ctx", 512)
    try:
        alone = []
        for i in range(4):
            r = generate(d, msgs(i), max_tokens=24, temperature=temperature, seed=20 + i)
            assert r.status == 200, r
            alone.append(r.json()["message"]["content"])
        got = [None] * 4

        def one(i):
            got[i] = generate(d, msgs(i), max_tokens=24, temperature=temperature, seed=20 + i,
                              stream=True)

        ts = [threading.Thread(target=one, args=(i,)) for i in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        for i in range(4):
            assert got[i].status == 200, got[i]
            text, done = streamed_text(got[i])
            assert text == alone[i], (i, text, alone[i])
    finally:
        stop_clean(d)


def test_past_slots_and_queue_503_and_a_leaving_client_frees_its_slot(model, tmp_path):
    # one slot, one queued: the third is refused
    d = start_llm(tmp_path, model, "--slots", 1, "--max-concurrent", 2, "--ctx", 4096)
    try:
        t0 = time.time()
        assert generate(d, msgs(0), max_tokens=4).status == 200
        alone = time.time() - t0
        running = OpenStream(d, 0).wait_token()
        queued = OpenStream(d, 1)       # waits for the slot: no token yet
        time.sleep(0.3)
        r = generate(d, msgs(2), max_tokens=4)
        assert r.status == 503, r
        assert r.headers.get("Retry-After"), r.headers
        assert r.json()["error"]
        # the running one leaves: the queued one gets the slot at once
        running.close()
        queued.wait_token()
        queued.close()
        t0 = time.time()
        r = generate(d, msgs(0), max_tokens=4)
        took = time.time() - t0
        assert r.status == 200, r
        print(f"alone {alone:.2f} s, after two streams that left {took:.2f} s")
        assert took < 3 * alone + 2, f"{took:.1f} s: a slot was held by a client that left"
    finally:
        stop_clean(d)


def test_next_turn_prefills_only_its_new_tokens_while_others_decode(model, tmp_path):
    d = start_llm(tmp_path, model, "--slots", 4, "--ctx", 2048)
    others = []
    try:
        others = [OpenStream(d, i).wait_token() for i in range(3)]
        conv = msgs(3)
        prev_prompt = 0
        for turn in range(4):
            r = generate(d, conv, max_tokens=8)
            assert r.status == 200, r
            j = r.json()
            u, tm = j["usage"], j["timings"]
            cached = u["prompt_tokens_details"]["cached_tokens"]
            assert tm["cache_n"] == cached
            assert tm["prompt_n"] + cached == u["prompt_tokens"]
            print(f"turn {turn + 1}: prompt {u['prompt_tokens']}, prefilled {tm['prompt_n']}, "
                  f"cached {cached}")
            if turn > 0:
                new = u["prompt_tokens"] - prev_prompt
                assert cached >= prev_prompt - 1, (turn, u, tm)
                assert tm["prompt_n"] <= new + 4, (turn, u, tm)
            prev_prompt = u["prompt_tokens"]
            conv = conv + [j["message"], {"role": "user", "content": f"And turn {turn + 2}?"}]
        metrics = d.get("/metrics").body.decode()
        m = re.search(r"^voxline_llm_prompt_cached_tokens_total (\d+)", metrics, re.M)
        assert m and int(m.group(1)) >= prev_prompt // 2, m
    finally:
        for s in others:
            s.close()
        stop_clean(d)
