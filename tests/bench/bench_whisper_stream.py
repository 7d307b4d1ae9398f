"""bench_whisper_stream: end of speech -> final transcript over
/ws/transcribe with the built-in Whisper engine (issue 12's target: under
300 ms for a 3 s utterance at tiny.en size on 2 cores), with the partials'
cadence and the CPU a stream costs.

The model is random-weight, tiny.en-shaped, F16 (tests/whisper/mkwhisper.py),
written into build/bench-whisper/. Random weights never say <|endoftext|>,
so every decode would run to its token limit, which no speech does; this
file's copy is changed so that the decoder says <|endoftext|> after
BENCH_STREAM_TOKENS (16) tokens: the decoder's learned positions from there
on point far along the <|endoftext|> embedding. Each decode thus runs as
many decoder steps as a spoken 3 s utterance takes (about 8 words plus
timestamps), the encoder and mel as for any audio.

Each utterance (a tone with noise) is sent in 20 ms frames in real time,
then {"event":"end"}; the time from sending "end" to the final's arrival is
the end-of-speech -> final figure. Utterance lengths spread from 2.75 s to
3.25 s so that "end" falls at every phase of the 500 ms partial step (a
partial decode may be running when it comes). One daemon with --workers 1
(one stream, 2 threads) and one with --workers 2 (two streams at once, 1
thread each). Prints figures; never fails on a number.
"""
import json
import os
import statistics
import subprocess
import sys
import threading
import time

import numpy as np
import websocket

from benchutil import pct, start

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
TOKENS = int(os.environ.get("BENCH_STREAM_TOKENS", "16"))
ROUNDS = int(os.environ.get("BENCH_STREAM_ROUNDS", "12"))
RATE = 16000
FRAME = 320                      # 20 ms


def bench_model(tools_dir):
    """tiny.en-shaped F16 whose decoder ends after TOKENS tokens."""
    work = os.path.join(os.path.dirname(tools_dir), "bench-whisper")
    os.makedirs(work, exist_ok=True)
    path = os.path.join(work, "tiny.en-f16-eot%d.bin" % TOKENS)
    if os.path.exists(path):
        return path
    sys.path.insert(0, os.path.join(ROOT, "tests", "whisper"))
    import mkwhisper
    hp = dict(mkwhisper.SHAPES["tiny.en"])
    eot = 50256                  # English-only models (wtok.h)
    v = np.random.default_rng(7).standard_normal(hp["n_text_state"])
    v -= v.mean()
    v /= np.linalg.norm(v)
    orig = mkwhisper.random_tensor

    def patched(rng, name, shape, kind):
        x = orig(rng, name, shape, kind)
        if name == "decoder.token_embedding.weight":
            x[eot] = 0.6 * v
        elif name == "decoder.positional_embedding":
            # logits at position p pick token p + 1; sampled tokens sit at
            # positions 1.. after <|startoftranscript|>
            x[TOKENS:] = 5000.0 * v
        return x.astype(np.float32)
    mkwhisper.random_tensor = patched
    try:
        mkwhisper.write(path + ".tmp", hp, mkwhisper.TYPE_NAMES["f16"], 1)
    finally:
        mkwhisper.random_tensor = orig
    os.rename(path + ".tmp", path)
    return path


def clip(seconds, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(int(RATE * seconds)) / RATE
    x = np.sin(2 * np.pi * 180 * t) * 6000 + rng.standard_normal(len(t)) * 1500
    return x.astype("<i2").tobytes()


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


class Stream:
    """A /ws/transcribe socket whose events are read on a thread, each
    stamped with its arrival (time.monotonic())."""

    def __init__(self, d):
        self.ws = websocket.create_connection(d.ws_url + "/ws/transcribe", timeout=60)
        self.ws.send(json.dumps({"sample_rate": RATE}))
        assert json.loads(self.ws.recv())["event"] == "ready"
        self.events = []
        self.cond = threading.Condition()
        self.t = threading.Thread(target=self._rx, daemon=True)
        self.t.start()

    def _rx(self):
        try:
            while True:
                m = self.ws.recv()
                if not m:
                    break
                with self.cond:
                    self.events.append((time.monotonic(), json.loads(m)))
                    self.cond.notify_all()
        except Exception:
            pass

    def wait_final(self, start, timeout=60):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for t, e in self.events[start:]:
                    if e["event"] == "final":
                        return t, e
                    if e["event"] == "error":
                        raise RuntimeError("stream error: %s" % e)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError("no final")
                self.cond.wait(left)

    def utterance(self, data):
        """Sends data in real time, then end; returns (end->final ms, the
        final, [(ms from the first frame, partial text)])."""
        n = len(self.events)
        t0 = time.monotonic()
        for i in range(0, len(data), FRAME * 2):
            d = t0 + (i // 2) / RATE - time.monotonic()
            if d > 0:
                time.sleep(d)
            self.ws.send_binary(data[i:i + FRAME * 2])
        t_end = time.monotonic()
        self.ws.send(json.dumps({"event": "end"}))
        t_fin, fin = self.wait_final(n)
        partials = [((t - t0) * 1000, e["text"]) for t, e in self.events[n:]
                    if e["event"] == "partial"]
        return (t_fin - t_end) * 1000, fin, partials

    def close(self):
        self.ws.close()
        self.t.join(5)


def stream_rounds(s, results, k0, rounds):
    for k in range(rounds):
        # 2.75 .. 3.25 s: "end" at every phase of the partial step
        secs = 2.75 + 0.5 * (k % rounds) / max(rounds - 1, 1)
        ms, fin, partials = s.utterance(clip(secs, k0 + k))
        results.append((secs, ms, fin["processing_ms"], partials))


def summarize(label, results, cpu, wall_audio_s):
    lat = [r[1] for r in results]
    eng = [r[2] for r in results]
    gaps, counts, firsts = [], [], []
    for _, _, _, ps in results:
        counts.append(len(ps))
        if ps:
            firsts.append(ps[0][0])
        gaps += [b[0] - a[0] for a, b in zip(ps, ps[1:])]
    print(f"{label}: {len(results)} utterances of 2.75-3.25 s")
    print(f"  end of speech -> final: p50 {pct(lat, 50):.0f} ms, p95 {pct(lat, 95):.0f} ms, "
          f"max {max(lat):.0f} ms (engine part p50 {pct(eng, 50):.0f} ms)")
    if gaps:
        print(f"  partials: {statistics.mean(counts):.1f} per utterance, one every "
              f"{statistics.median(gaps):.0f} ms (median gap), first after "
              f"{statistics.median(firsts):.0f} ms of audio")
    else:
        print(f"  partials: {statistics.mean(counts):.1f} per utterance")
    print(f"  CPU: {cpu / wall_audio_s:.2f} CPU-seconds per second of streamed audio "
          f"({cpu:.1f} s over {wall_audio_s:.1f} s of audio)")


def encoder_costs(tools_dir, model):
    exe = os.path.join(tools_dir, "whisper_bench")
    if not os.access(exe, os.X_OK):
        print("whisper_bench not built: encoder cost per window skipped")
        return
    row = []
    for s in (0.5, 1.0, 2.0, 3.0):
        out = subprocess.run([exe, model, "--seconds", str(s), "--threads", "2", "--tokens",
                              str(TOKENS), "--runs", "2"], capture_output=True, text=True,
                             timeout=300)
        if out.returncode != 0:
            print("whisper_bench failed: " + out.stderr.strip())
            return
        j = json.loads(out.stdout)
        row.append(f"{s:.1f} s: mel {j['mel_ms']:.0f} + encoder {j['encode_ms']:.0f} ms, "
                   f"decoder {j['decode_ms_per_token']:.1f} ms/token")
    print("a partial's decode by window length (2 threads, whisper_bench):")
    for r in row:
        print("  " + r)


def main(bin_dir, tools_dir):
    model = bench_model(tools_dir)
    print(f"model: {model} (tiny.en shape, F16, random weights, <|endoftext|> "
          f"after {TOKENS} tokens)")
    try:
        print("load average: %.2f %.2f %.2f" % os.getloadavg())
    except OSError:
        pass
    encoder_costs(tools_dir, model)
    for workers in (1, 2):
        d = start(bin_dir, "stt", "--engine", "whisper", "--model", model,
                  "--workers", workers, env={"VOXLINE_STT_DRAIN_DELAY_S": "0"})
        try:
            streams = [Stream(d) for _ in range(workers)]
            for s in streams:        # one utterance first: pages of the file, buffers
                s.utterance(clip(1.0, 99))
            c0 = cpu_s(d.proc.pid)
            results = []
            rounds = ROUNDS if workers == 1 else max(ROUNDS // 2, 2)
            ts = [threading.Thread(target=stream_rounds, args=(s, results, 100 * w, rounds))
                  for w, s in enumerate(streams)]
            [t.start() for t in ts]
            [t.join(600) for t in ts]
            cpu = cpu_s(d.proc.pid) - c0
            for s in streams:
                s.close()
            audio = sum(r[0] for r in results)
            summarize(f"--workers {workers}, {workers} stream(s) at once", results, cpu,
                      audio)
        finally:
            d.stop()
    print("(target: end of speech -> final under 300 ms for a 3 s utterance, tiny.en, "
          "2 cores)")
