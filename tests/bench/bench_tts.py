"""voxline-tts: service overhead against flite called directly
(build/tools/tts_direct) on the same text and voice, time to first audio
chunk over /ws/synthesize, and resident memory idle and after work.
Targets (printed, never enforced): overhead <= 10%, idle RSS < 40 MB."""
import json
import os
import subprocess
import time
import urllib.request

import websocket

from benchutil import pct, rss_mb, start

TEXT = ("Please turn off the lights in the kitchen, and tell me what the "
        "weather will be like tomorrow morning.")
LONG = " ".join([
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Afterwards it ran across the wide green field and into the forest.",
    "Nobody saw where it went, but everybody talked about it for days.",
] * 4)
RUNS = 20


def post(url, obj):
    req = urllib.request.Request(url, data=json.dumps(obj).encode(),
                                 headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=120) as r:
        body = r.read()
    return (time.perf_counter() - t0) * 1000, body


def direct(tools_dir, text, runs):
    out = subprocess.run([os.path.join(tools_dir, "tts_direct"), "-v", "slt",
                          "-n", str(runs), text], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)


def ws_first_chunk(d, text, runs):
    """Per run: (ms to first binary frame, ms to done, audio ms)."""
    ws = websocket.create_connection(d.ws_url + "/ws/synthesize", timeout=60)
    ws.send(json.dumps({"voice": "slt"}))
    json.loads(ws.recv())
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        ws.send(json.dumps({"text": text}))
        first = None
        while True:
            op, data = ws.recv_data()
            if op == websocket.ABNF.OPCODE_BINARY:
                if first is None:
                    first = (time.perf_counter() - t0) * 1000
                continue
            ev = json.loads(data)
            if ev["event"] == "done":
                out.append((first, (time.perf_counter() - t0) * 1000,
                            ev["duration_ms"]))
                break
    ws.close()
    return out


def main(bin_dir, tools_dir):
    d = start(bin_dir, "tts", "--workers", "1")
    try:
        time.sleep(0.5)
        idle = rss_mb(d.proc.pid)
        print(f"idle RSS {idle:.1f} MB (target < 40 MB)", flush=True)

        # Interleaved, one service request then one direct run, so both see
        # the same load on a shared machine; tts_direct times the synthesis
        # alone (voice loaded before its clock starts).
        for label, text, runs in (("sentence", TEXT, RUNS), ("paragraph", LONG, 6)):
            post(d.url + "/synthesize", {"text": text, "return_format": "pcm"})  # warm
            svc, dir_ms = [], []
            for _ in range(runs):
                svc.append(post(d.url + "/synthesize",
                                {"text": text, "return_format": "pcm"})[0])
                dj = direct(tools_dir, text, 1)
                dir_ms.append(dj["wall_ms"])
            s_mean, d_mean = sum(svc) / runs, sum(dir_ms) / runs
            over = (s_mean - d_mean) / d_mean * 100
            over50 = (pct(svc, 50) - pct(dir_ms, 50)) / pct(dir_ms, 50) * 100
            print(f"{label:9s} ({dj['audio_ms'] / 1000:.1f} s audio, {runs} runs): "
                  f"direct flite mean {d_mean:.1f} ms p50 {pct(dir_ms, 50):.1f} "
                  f"min {min(dir_ms):.1f} | POST /synthesize pcm mean {s_mean:.1f} ms "
                  f"p50 {pct(svc, 50):.1f} min {min(svc):.1f} | overhead mean "
                  f"{over:+.1f}% p50 {over50:+.1f}% (target <= 10%)", flush=True)
        wav = [post(d.url + "/synthesize", {"text": TEXT})[0] for _ in range(RUNS)]
        print(f"POST /synthesize wav: mean {sum(wav) / len(wav):.1f} ms", flush=True)

        for label, text, runs in (("sentence", TEXT, RUNS), ("paragraph", LONG, 5)):
            r = ws_first_chunk(d, text, runs)
            first = [x[0] for x in r]
            done = [x[1] for x in r]
            print(f"/ws/synthesize {label:9s}: first chunk p50 {pct(first, 50):.1f} ms "
                  f"p90 {pct(first, 90):.1f} ms; done p50 {pct(done, 50):.1f} ms; "
                  f"audio {r[0][2] / 1000:.1f} s", flush=True)
        print(f"RSS after work {rss_mb(d.proc.pid):.1f} MB", flush=True)
    finally:
        d.stop()
