"""Phone calls through voxline-orchestrator (Twilio media streams, the
client of tests/integration/test_telephony.py) on the real stack with the
scripted LLM upstream:

  voice-to-voice   end of the caller's speech (its last voiced 20 ms frame,
                   from VAD's segment end) -> the first reply media frame
                   at the caller, p50/p95 over 20 calls, one at a time,
                   8 kHz mu-law both ways, default end-of-turn policy
                   (adaptive) and --eot-policy fixed
  CPU per call     orchestrator and VAD CPU over 10 s with N calls open,
                   each streaming 20 ms frames of audio in and getting a
                   greeting's paced frames out; per call, in % of a core

Numbers only: it never fails on a figure."""
import os
import subprocess
import sys
import tempfile
import threading
import time

from benchutil import pct, start

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
CALLS = 20
LOAD_CALLS = (10, 50)
QUESTION = "what is the weather like in paris today"


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Orch:
    def __init__(self, d):
        self.ws_url = d.ws_url
        self.d = d


def one_call(tel, orch, speech, speech_end_s):
    """One call: the question, then silence until the first reply frame.
    Returns ms from the end of speech to that frame, or None."""
    call = tel.Call(orch, "twilio")
    try:
        call.begin()
        done = threading.Event()
        t0 = time.monotonic()
        talk = threading.Thread(target=call.talk, args=(speech, 15000),
                                kwargs={"stop_when": lambda: bool(call.frames)})
        talk.start()
        deadline = time.monotonic() + 30
        while not call.frames and time.monotonic() < deadline:
            time.sleep(0.002)
        done.set()
        talk.join()
        if not call.frames:
            return None
        return (call.frames[0][0] - (t0 + speech_end_s)) * 1000
    finally:
        try:
            call.stop()
        except Exception:
            pass
        call.close()


def voice_to_voice(tel, stack_urls, bin_dir, tmp, speech, speech_end_s, policy):
    orch = start(bin_dir, "orchestrator", *stack_urls, "--db",
                 os.path.join(tmp, f"v2v-{policy}.db"), "--eot-policy", policy)
    try:
        v = []
        for _ in range(CALLS):
            ms = one_call(tel, Orch(orch), speech, speech_end_s)
            if ms is not None:
                v.append(ms)
            time.sleep(0.2)
        print(f"  voice-to-voice (eot {policy:8}) {len(v)}/{CALLS} calls: "
              f"p50 {pct(v, 50):7.0f}  p95 {pct(v, 95):7.0f}  max {max(v):7.0f} ms",
              flush=True)
    finally:
        orch.stop()


def cpu_per_call(tel, stack_urls, bin_dir, tmp, vad, n):
    orch = start(bin_dir, "orchestrator", *stack_urls, "--db",
                 os.path.join(tmp, f"load-{n}.db"), "--max-calls", str(n + 10),
                 "--telephony-greeting",
                 "Hello, thank you for calling. How can I help you today? "
                 "I am listening, take your time.")
    calls = []
    stop = threading.Event()
    try:
        def one(i):
            c = tel.Call(Orch(orch), "twilio" if i % 2 else "telnyx")
            calls.append(c)
            c.begin()
            c.talk(b"", 20000, stop_when=stop.is_set)
        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        time.sleep(2)
        o0, v0, t0 = cpu_s(orch.proc.pid), cpu_s(vad.proc.pid), time.monotonic()
        f0 = sum(len(c.frames) for c in calls)
        time.sleep(10)
        o1, v1, t1 = cpu_s(orch.proc.pid), cpu_s(vad.proc.pid), time.monotonic()
        f1 = sum(len(c.frames) for c in calls)
        stop.set()
        for t in threads:
            t.join(30)
        wall = t1 - t0
        print(f"  {n:3d} calls open: orchestrator {100 * (o1 - o0) / wall:5.1f}% of a core "
              f"({100 * (o1 - o0) / wall / n:.2f}% per call), vad "
              f"{100 * (v1 - v0) / wall:5.1f}% ({100 * (v1 - v0) / wall / n:.2f}% per call); "
              f"{(f1 - f0) / wall:.0f} reply frames/s out", flush=True)
    finally:
        for c in calls:
            try:
                c.stop()
            except Exception:
                pass
            c.close()
        orch.stop()


def main(bin_dir, tools_dir):
    sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
    import test_telephony as tel
    up = subprocess.Popen(["/usr/bin/python3", os.path.join(ROOT, "tests", "llm_upstream.py"),
                           "--port", "0"], stdout=subprocess.PIPE)
    port = int(up.stdout.readline())
    daemons = []
    tmp = tempfile.mkdtemp(prefix="bench-tel-")
    try:
        vad = start(bin_dir, "vad", "--max-connections", "1024")
        stt = start(bin_dir, "stt", "--max-connections", "1024")
        tts = start(bin_dir, "tts", "--max-connections", "1024", "--queue", "256")
        llm = start(bin_dir, "llm", "--engine", "openai", "--url",
                    f"http://127.0.0.1:{port}", "--max-connections", "1024")
        daemons += [vad, stt, tts, llm]
        urls = ["--vad-url", vad.url, "--stt-url", stt.url, "--tts-url", tts.url,
                "--llm-url", llm.url]
        r = tts.post_json("/synthesize", {"text": QUESTION, "sample_rate": 8000,
                                          "return_format": "pcm"})
        speech = tel.mulaw_encode(r.body)
        for _ in range(2):   # each STT decoder hears phone audio once first
            stt.post("/transcribe", speech, "audio/pcmu;rate=8000")
        seg = vad.post("/detect", speech, "audio/pcmu;rate=8000").json()["segments"]
        speech_end_s = seg[-1]["end_ms"] / 1000.0
        print(f"question: {len(speech) / 8000:.2f} s of 8 kHz mu-law, speech ends at "
              f"{speech_end_s * 1000:.0f} ms (VAD)", flush=True)
        for policy in ("adaptive", "fixed"):
            voice_to_voice(tel, urls, bin_dir, tmp, speech, speech_end_s, policy)
        for n in LOAD_CALLS:
            cpu_per_call(tel, urls, bin_dir, tmp, vad, n)
    finally:
        for d in reversed(daemons):
            d.stop()
        up.terminate()
        up.wait(10)
