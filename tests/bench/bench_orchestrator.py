"""voxline-orchestrator: what the orchestrator itself adds to a voice turn,
and what a conversation costs it.

  - voice turns (flite speech of a question streamed in real time with
    voxline-client): voice-to-voice broken down by stage from the turn's
    metrics event; orchestrator overhead = voice-to-voice minus the time
    inside STT, the LLM (to its first sentence) and TTS (to its first audio),
    p50/p95 (target p95 < 10 ms); forward = first TTS audio chunk received
    -> first reply byte sent to the client (target < 50 ms);
  - 100 concurrent conversations with text turns: orchestrator memory per
    open conversation and CPU time per turn.
The other services run on the same 2 cores, so their figures are not the
point here; the LLM is tests/llm_upstream.py (echo) behind voxline-llm.
"""
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import websocket

from benchutil import pct, rss_mb, start

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
VOICE_TURNS = 8
CONVERSATIONS = 100
QUESTION = "what is the weather like in paris today"


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def voice_turns(bin_dir, orch, wav):
    """Runs voxline-client turns; returns the metrics events."""
    out = subprocess.run([os.path.join(bin_dir, "voxline-client"), "--url",
                          orch.ws_url + "/ws/chat", "--file", wav,
                          "--turns", str(VOICE_TURNS), "--timeout-s", "60"],
                         capture_output=True, text=True, timeout=600)
    events = [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")]
    return [e for e in events if e.get("type") == "metrics"]


def show(name, values, target=None):
    v = [x for x in values if x is not None]
    if not v:
        print(f"  {name:<22} n/a", flush=True)
        return
    t = f"   (target {target})" if target else ""
    print(f"  {name:<22} p50 {pct(v, 50):8.2f}  p95 {pct(v, 95):8.2f}  "
          f"max {max(v):8.2f} ms{t}", flush=True)


def chat(orch, i, results, barrier):
    ws = websocket.create_connection(orch.ws_url + "/ws/chat", timeout=120)
    ws.send(json.dumps({"type": "start", "sample_rate": 16000}))
    while json.loads(ws.recv()).get("type") != "ready":
        pass
    barrier.wait()      # all open: the memory figure is taken here
    barrier.wait()      # then all send at once
    ws.send(json.dumps({"type": "text", "text": "conversation number %d" % i}))
    ok = False
    while True:
        m = ws.recv()
        if isinstance(m, bytes):
            continue
        ev = json.loads(m)
        if ev["type"] == "error":
            break
        if ev["type"] == "metrics":
            ok = ev["error"] is None
            break
    results[i] = ok
    barrier.wait()      # finished
    ws.close()


def concurrent(orch):
    pid = orch.proc.pid
    base = rss_mb(pid)
    results = {}
    barrier = threading.Barrier(CONVERSATIONS + 1)
    threads = [threading.Thread(target=chat, args=(orch, i, results, barrier))
               for i in range(CONVERSATIONS)]
    for t in threads:
        t.start()
    barrier.wait()
    time.sleep(0.5)
    opened = rss_mb(pid)
    c0, t0 = cpu_s(pid), time.monotonic()
    barrier.wait()
    peak = opened
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_mb(pid))
            time.sleep(0.05)
    s = threading.Thread(target=sample)
    s.start()
    barrier.wait()
    wall = time.monotonic() - t0
    cpu = cpu_s(pid) - c0
    done.set()
    s.join()
    for t in threads:
        t.join()
    ok = sum(1 for v in results.values() if v)
    print(f"{CONVERSATIONS} concurrent conversations: {ok} turns completed in "
          f"{wall:.1f} s (each plays ~1.5 s of reply audio in real time)", flush=True)
    print(f"  orchestrator RSS {base:.1f} MB idle, {opened:.1f} MB with "
          f"{CONVERSATIONS} open ({(opened - base) * 1024 / CONVERSATIONS:.0f} KB "
          f"per conversation), {peak:.1f} MB peak during the turns", flush=True)
    print(f"  orchestrator CPU {cpu:.2f} s for {CONVERSATIONS} turns "
          f"({cpu * 1000 / CONVERSATIONS:.1f} ms per turn, "
          f"{100 * cpu / wall:.0f}% of one core)", flush=True)


def main(bin_dir, tools_dir):
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    up = subprocess.Popen(["/usr/bin/python3", os.path.join(ROOT, "tests", "llm_upstream.py"),
                           "--port", "0"], stdout=subprocess.PIPE)
    port = int(up.stdout.readline())
    daemons = []
    tmp = tempfile.mkdtemp(prefix="bench-orch-")
    try:
        vad = start(bin_dir, "vad")
        stt = start(bin_dir, "stt")
        tts = start(bin_dir, "tts", "--queue", "256")
        llm = start(bin_dir, "llm", "--engine", "openai", "--url",
                    f"http://127.0.0.1:{port}", "--queue", "256",
                    "--max-concurrent", "256")
        daemons += [vad, stt, tts, llm]
        orch = start(bin_dir, "orchestrator", "--vad-url", vad.url, "--stt-url", stt.url,
                     "--tts-url", tts.url, "--llm-url", llm.url,
                     "--db", os.path.join(tmp, "bench.db"), "--max-calls", "200")
        daemons.append(orch)
        r = tts.post_json("/synthesize", {"text": QUESTION})
        wav = os.path.join(tmp, "question.wav")
        with open(wav, "wb") as f:
            f.write(r.body)

        ms = voice_turns(bin_dir, orch, wav)
        print(f"voice turns: {len(ms)} (speech streamed in real time, 16 kHz pcm16)",
              flush=True)
        for k, target in (("stt_ms", None), ("llm_first_token_ms", None),
                          ("llm_first_sentence_ms", None), ("tts_first_audio_ms", None),
                          ("forward_ms", "< 50 ms"), ("voice_to_voice_ms", None),
                          ("orchestrator_ms", "p95 < 10 ms"), ("total_ms", None)):
            show(k, [m.get(k) for m in ms], target)
        concurrent(orch)
    finally:
        for d in reversed(daemons):
            d.stop()
        up.terminate()
        up.wait(10)
