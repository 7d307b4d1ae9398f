"""bench_whisper: the built-in Whisper core (issue 12) on 2 threads, side by
side with whisper.cpp's whisper-cli on the same model file and clip.

Models: random-weight files of tiny.en's and base.en's shapes (F16, written
by tests/whisper/mkwhisper.py into build/bench-whisper/). Clips: 3 s and
10 s chirps. Each with the encoder trimmed to the clip (150 / 500
positions; whisper-cli -ac N) and over the full 30 s context (1500).
whisper-cli runs with -t 2, greedy (-bs 1 -bo 1), no fallback (-nf); it is
looked for in $WHISPER_CPP_BIN, /tmp/ref/whisper.cpp/build/bin and PATH,
and when absent the comparison is skipped with a message.

Figures: encoder ms, decoder ms per token (voxline: 16 greedy tokens, no
early stop, the first run feeding 2; whisper.cpp: its decode time per
decode run, one token a run: on the random 3 s clip it stops after 3 runs,
so that figure is mostly its cold first runs; on the 10 s clip it decodes
~80 runs, the steady-state comparison),
total and RTF (mel + encoder + decoder over the clip's length; whisper.cpp's
total excludes its load time), and the ratio voxline / whisper.cpp of the
encoder and decoder figures. Then voxline-stt's resident memory with
--workers 1 and --workers 4 after each worker transcribed a clip (4
concurrent requests), and the ratio. Medians of BENCH_WHISPER_ROUNDS
(default 2) interleaved rounds; the load average is printed with them (the
machine is shared). Never fails on a number.
"""
import concurrent.futures
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import urllib.request
import wave

from benchutil import rss_mb, start

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
ROUNDS = int(os.environ.get("BENCH_WHISPER_ROUNDS", "2"))
CLI_DIRS = [os.environ.get("WHISPER_CPP_BIN", ""), "/tmp/ref/whisper.cpp/build/bin"]
SHAPES = ("tiny.en", "base.en")
CLIPS = (3, 10)
TOKENS = 16


def whisper_cli():
    for d in CLI_DIRS:
        p = os.path.join(d, "whisper-cli") if d else ""
        if p and os.access(p, os.X_OK):
            return p
    return shutil.which("whisper-cli")


def write_clip(path, seconds):
    """The chirp whisper_bench synthesises itself, as 16-bit PCM."""
    frames = bytearray()
    for i in range(16000 * seconds):
        t = i / 16000
        v = int(0.3 * math.sin(2 * math.pi * (150 + 30 * t) * t) * 32767)
        frames += v.to_bytes(2, "little", signed=True)
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(bytes(frames))


def ensure_inputs(tools_dir):
    work = os.path.join(os.path.dirname(tools_dir), "bench-whisper")
    os.makedirs(work, exist_ok=True)
    models, clips = {}, {}
    for shape in SHAPES:
        models[shape] = os.path.join(work, f"{shape}-f16.bin")
        if not os.path.exists(models[shape]):
            subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tests", "whisper", "mkwhisper.py"),
                            models[shape], "--shape", shape, "--type", "f16"], check=True)
    for sec in CLIPS:
        clips[sec] = os.path.join(work, f"clip{sec}s.wav")
        if not os.path.exists(clips[sec]):
            write_clip(clips[sec], sec)
    return models, clips


def vox(tools_dir, model, seconds, trim):
    args = [os.path.join(tools_dir, "whisper_bench"), model, "--seconds", str(seconds),
            "--threads", "2", "--tokens", str(TOKENS), "--runs", "1"] + ([] if trim else ["--no-trim"])
    out = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError("whisper_bench failed: " + out.stderr.strip())
    return json.loads(out.stdout)


def cli(path, model, clip, n_ctx):
    args = [path, "-m", model, "-f", clip, "-t", "2", "-bs", "1", "-bo", "1", "-nf",
            "-ac", str(n_ctx)]
    out = subprocess.run(args, capture_output=True, text=True, timeout=600)
    text = out.stdout + out.stderr
    if out.returncode != 0:
        raise RuntimeError("whisper-cli failed: " + text[-400:])

    def ms(what):
        m = re.search(r"%s time =\s*([0-9.]+) ms(?: /\s*(\d+) runs)?" % what, text)
        return (float(m.group(1)), int(m.group(2) or 1)) if m else (float("nan"), 1)
    enc, _ = ms("encode")
    dec, runs = ms("decode")
    mel, _ = ms("mel")
    total, _ = ms("total")
    load, _ = ms("load")
    return {"mel_ms": mel, "encode_ms": enc, "decode_ms_per_token": dec / max(runs, 1),
            "total_ms": total - load}


def transcribe(url, data):
    req = urllib.request.Request(url + "/transcribe", data=data, method="POST",
                                 headers={"Content-Type": "audio/wav"})
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.loads(r.read())


def rss_after(bin_dir, model, clip, workers):
    """voxline-stt's RSS (MB) once each of its workers transcribed the clip."""
    with open(clip, "rb") as f:
        data = f.read()
    d = start(bin_dir, "stt", "--engine", "whisper", "--model", model,
              "--workers", workers, "--queue", 16)
    try:
        idle = rss_mb(d.proc.pid)
        with concurrent.futures.ThreadPoolExecutor(workers) as ex:
            list(ex.map(lambda _: transcribe(d.url, data), range(workers)))
        return idle, rss_mb(d.proc.pid)
    finally:
        d.stop()


def load():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def main(bin_dir, tools_dir):
    models, clips = ensure_inputs(tools_dir)
    path = whisper_cli()
    print("whisper.cpp: " + (path or "whisper-cli not found ($WHISPER_CPP_BIN, "
                                     "/tmp/ref/whisper.cpp/build/bin, PATH): comparison skipped"))
    rows, loads = {}, []
    for _ in range(ROUNDS):
        for shape in SHAPES:
            for sec in CLIPS:
                for trim in (True, False):
                    loads.append(load())
                    r = vox(tools_dir, models[shape], sec, trim)
                    rows.setdefault(("vox", shape, sec, trim), []).append(r)
                    if path:
                        rows.setdefault(("cpp", shape, sec, trim), []).append(
                            cli(path, models[shape], clips[sec], r["n_ctx"]))

    def med(key, field):
        vals = [r[field] for r in rows.get(key, [])]
        return statistics.median(vals) if vals else float("nan")
    print("F16 random-weight models, 2 threads, medians of %d interleaved rounds "
          "(load average %.2f-%.2f on %d cores)" % (ROUNDS, min(loads), max(loads), os.cpu_count()))
    print(f"{'':34} {'mel ms':>7} {'enc ms':>8} {'dec ms/tok':>10} {'total ms':>9} {'RTF':>6}"
          f" {'enc x':>6} {'dec x':>6}")
    for shape in SHAPES:
        for sec in CLIPS:
            for trim in (True, False):
                kv, kc = ("vox", shape, sec, trim), ("cpp", shape, sec, trim)
                n_ctx = rows[kv][0]["n_ctx"]
                label = f"{shape} {sec:2d} s {'trim ' if trim else 'full '}{n_ctx:4d}"
                enc_x = med(kv, "encode_ms") / med(kc, "encode_ms") if path else float("nan")
                dec_x = (med(kv, "decode_ms_per_token") / med(kc, "decode_ms_per_token")
                         if path else float("nan"))
                print(f"{'voxline ' + label:34} {med(kv, 'mel_ms'):7.1f} {med(kv, 'encode_ms'):8.1f} "
                      f"{med(kv, 'decode_ms_per_token'):10.2f} {med(kv, 'total_ms'):9.1f} "
                      f"{med(kv, 'total_ms') / (sec * 1000):6.3f} {enc_x:6.2f} {dec_x:6.2f}")
                if path:
                    tot = med(kc, "total_ms")
                    print(f"{'whisper.cpp ' + label:34} {med(kc, 'mel_ms'):7.1f} "
                          f"{med(kc, 'encode_ms'):8.1f} {med(kc, 'decode_ms_per_token'):10.2f} "
                          f"{tot:9.1f} {tot / (sec * 1000):6.3f}")
    print("(enc x, dec x: voxline / whisper.cpp, under 1 is faster; voxline decodes %d tokens, "
          "whisper.cpp's decoder column is ms per decode run)" % TOKENS)

    for shape in SHAPES:
        one_idle, one = rss_after(bin_dir, models[shape], clips[3], 1)
        four_idle, four = rss_after(bin_dir, models[shape], clips[3], 4)
        print(f"voxline-stt RSS, {shape} F16, after a 3 s transcription per worker: "
              f"1 worker {one:.0f} MB (idle {one_idle:.0f}), 4 workers {four:.0f} MB "
              f"(idle {four_idle:.0f}): 4/1 = {four / one:.2f}")


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
    main(os.path.join(ROOT, "build", "bin"), os.path.join(ROOT, "build", "tools"))
