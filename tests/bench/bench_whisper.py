"""bench_whisper: the built-in Whisper core (issue 12) on 2 threads, a 3 s
clip, a random-weight model of tiny.en's shape (F16, written by
tests/whisper/mkwhisper.py into build/), with the encoder trimmed to the
clip (150 positions) and over the full 30 s context (1500); side by side
with whisper.cpp's whisper-cli on the same file and clip (-t 2, greedy
-bs 1 -bo 1, no fallback; -ac 150 for the trimmed row), when it is found
($WHISPER_CPP_BIN, /tmp/ref/whisper.cpp/build/bin, PATH); otherwise the
comparison is skipped with a message. Medians of BENCH_WHISPER_ROUNDS
(default 2) interleaved rounds. Prints figures; never fails on a number.

Decoding is 16 greedy tokens for voxline (no early stop); whisper-cli
stops where its decoder does, so compare its per-run decode time, not the
total, for the decoder.
"""
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import wave

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
ROUNDS = int(os.environ.get("BENCH_WHISPER_ROUNDS", "2"))
CLI_DIRS = [os.environ.get("WHISPER_CPP_BIN", ""), "/tmp/ref/whisper.cpp/build/bin"]


def whisper_cli():
    for d in CLI_DIRS:
        p = os.path.join(d, "whisper-cli") if d else ""
        if p and os.access(p, os.X_OK):
            return p
    return shutil.which("whisper-cli")


def ensure_inputs(tools_dir):
    work = os.path.join(os.path.dirname(tools_dir), "bench-whisper")
    os.makedirs(work, exist_ok=True)
    model = os.path.join(work, "tiny.en-f16.bin")
    if not os.path.exists(model):
        subprocess.run([sys.executable, os.path.join(ROOT, "tests", "whisper", "mkwhisper.py"),
                        model, "--shape", "tiny.en", "--type", "f16"], check=True)
    clip = os.path.join(work, "clip3s.wav")
    if not os.path.exists(clip):
        import math
        frames = bytearray()
        for i in range(48000):
            t = i / 16000
            v = int(0.3 * math.sin(2 * math.pi * (150 + 30 * t) * t) * 32767)
            frames += v.to_bytes(2, "little", signed=True)
        with wave.open(clip, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(bytes(frames))
    return model, clip


def vox(tools_dir, model, trim):
    args = [os.path.join(tools_dir, "whisper_bench"), model, "--seconds", "3", "--threads", "2",
            "--tokens", "16", "--runs", "1"] + ([] if trim else ["--no-trim"])
    out = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError("whisper_bench failed: " + out.stderr.strip())
    return json.loads(out.stdout)


def cli(path, model, clip, trim):
    args = [path, "-m", model, "-f", clip, "-t", "2", "-bs", "1", "-bo", "1", "-nf"]
    if trim:
        args += ["-ac", "150"]
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
    return {"mel_ms": mel, "encode_ms": enc, "decode_ms_per_run": dec / max(runs, 1),
            "total_ms": total - load}


def main(bin_dir, tools_dir):
    model, clip = ensure_inputs(tools_dir)
    path = whisper_cli()
    print("whisper.cpp: " + (path or "whisper-cli not found ($WHISPER_CPP_BIN, "
                                     "/tmp/ref/whisper.cpp/build/bin, PATH): comparison skipped"))
    rows = {}
    for _ in range(ROUNDS):
        for trim in (True, False):
            rows.setdefault(("vox", trim), []).append(vox(tools_dir, model, trim))
            if path:
                rows.setdefault(("cpp", trim), []).append(cli(path, model, clip, trim))

    def med(key, field):
        vals = [r[field] for r in rows.get(key, [])]
        return statistics.median(vals) if vals else float("nan")
    print("tiny.en shape, F16, 3 s clip, 2 threads (medians of %d)" % ROUNDS)
    print(f"{'':22} {'mel ms':>8} {'encode ms':>10} {'dec ms/tok':>10} {'total ms':>9} {'RTF':>6}")
    for trim in (True, False):
        label = "trimmed (150)" if trim else "full (1500)"
        k = ("vox", trim)
        print(f"{'voxline ' + label:22} {med(k, 'mel_ms'):8.1f} {med(k, 'encode_ms'):10.1f} "
              f"{med(k, 'decode_ms_per_token'):10.2f} {med(k, 'total_ms'):9.1f} "
              f"{med(k, 'rtf'):6.3f}")
        if path:
            k = ("cpp", trim)
            tot = med(k, "total_ms")
            print(f"{'whisper.cpp ' + label:22} {med(k, 'mel_ms'):8.1f} {med(k, 'encode_ms'):10.1f} "
                  f"{med(k, 'decode_ms_per_run'):10.2f} {tot:9.1f} {tot / 3000:6.3f}")
    print("(voxline decodes 16 tokens; whisper.cpp's decode column is ms per decode run; "
          "its total excludes load time)")
