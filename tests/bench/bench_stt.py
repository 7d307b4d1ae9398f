"""voxline-stt: service overhead against pocketsphinx called directly
(build/tools/stt_direct) on the same WAV, real-time factor, and idle
resident memory with 1, 2 and 4 decoders loaded.

Speech is flite's slt voice (build/tools/tts_direct), four of the sentences
the STT tests use, about 9 s of audio."""
import io
import json
import os
import re
import subprocess
import tempfile
import time
import urllib.request
import wave

from benchutil import rss_mb, start

SENTENCES = [
    "What time is it right now?",
    "Can you tell me the weather for tomorrow?",
    "Please turn off the lights in the kitchen.",
    "How far is the nearest train station from here?",
]
ROUNDS = 3
PER_ROUND = 2


def make_wav(tools_dir, path):
    pcm = b""
    with tempfile.TemporaryDirectory() as tmp:
        for i, s in enumerate(SENTENCES):
            out = os.path.join(tmp, f"{i}.pcm")
            subprocess.run([os.path.join(tools_dir, "tts_direct"), "-v", "slt",
                            "-o", out, s], check=True, capture_output=True)
            with open(out, "rb") as f:
                pcm += f.read()
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm)
    return len(pcm) / 2 / 16000


def post_wav(url, data):
    req = urllib.request.Request(url + "/transcribe", data=data, method="POST",
                                 headers={"Content-Type": "audio/wav"})
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=300) as r:
        body = json.loads(r.read())
    return (time.perf_counter() - t) * 1000, body


def main(bin_dir, tools_dir):
    fd, wav = tempfile.mkstemp(prefix="bench-stt-", suffix=".wav")
    os.close(fd)
    try:
        audio_s = make_wav(tools_dir, wav)
        with open(wav, "rb") as f:
            data = f.read()
        # Interleaved rounds (the machine is shared: load drifts): each round
        # runs stt_direct -n PER_ROUND (mean decode time, one decoder) and
        # POSTs the WAV PER_ROUND times to a warm daemon with one decoder.
        d = start(bin_dir, "stt", "--workers", "1")
        try:
            post_wav(d.url, data)                      # warm-up
            direct, walls, procs = [], [], []
            for _ in range(ROUNDS):
                out = subprocess.run([os.path.join(tools_dir, "stt_direct"), "-n",
                                      str(PER_ROUND), wav], check=True,
                                     capture_output=True, text=True).stdout
                m = re.search(r"load_ms ([\d.]+) audio_ms ([\d.]+) decode_ms ([\d.]+)", out)
                direct.append(float(m.group(3)))
                for _ in range(PER_ROUND):
                    wall, body = post_wav(d.url, data)
                    walls.append(wall)
                    procs.append(body["processing_ms"])
            direct_ms = sum(direct) / len(direct)
            wall = sum(walls) / len(walls)
            proc = sum(procs) / len(procs)
            print(f"audio {audio_s:.2f} s; stt_direct: load {float(m.group(1)):.0f} ms, "
                  f"decode mean {direct_ms:.1f} ms (rtf {direct_ms / audio_s / 1000:.3f}), "
                  f"min {min(direct):.1f} ms", flush=True)
            print(f"POST /transcribe x{len(walls)}: client wall mean {wall:.1f} ms "
                  f"min {min(walls):.1f} ms, engine time mean {proc:.1f} ms "
                  f"(rtf {proc / audio_s / 1000:.3f})", flush=True)
            print(f"service overhead vs direct: {100 * (wall - direct_ms) / direct_ms:+.1f}% "
                  f"(wall {wall - direct_ms:+.1f} ms; client wall minus engine time "
                  f"{wall - proc:.1f} ms; target <= 10%)", flush=True)
            print(f"last text: {body['text']!r}", flush=True)
        finally:
            d.stop()

        for workers in (1, 2, 4):
            d = start(bin_dir, "stt", "--workers", str(workers))
            try:
                time.sleep(0.5)
                print(f"idle RSS, {workers} decoder(s): {rss_mb(d.proc.pid):.1f} MB",
                      flush=True)
            finally:
                d.stop()
    finally:
        os.unlink(wav)
