#!/usr/bin/python3
"""voxline-orchestrator turn taking (issue 10): the two policy pairs side by
side in one run, on made-up utterances spoken by flite (slt) and espeak-ng
(en-us) through the real voxline-tts, streamed in real time to /ws/chat of
two orchestrators that share one voxline-vad, -stt (pocketsphinx), -tts and
-llm (openai engine on tests/llm_upstream.py):

  before  --eot-policy fixed    --barge-in-policy immediate
  after   --eot-policy adaptive --barge-in-policy backchannel

End of turn: finished utterances ("What time is it?") and unfinished ones
with a 0.6-1.2 s pause placed mid-thought ("My number is five five five
<1.0 s> one two three four"). A turn cut too early is a final transcript
that arrives before the user's last word was sent; the added latency is
speech end -> final transcript (and -> first reply text), for the finished
utterances.
Barge-in: while the assistant speaks (a long #slow reply), backchannels
("uh-huh", "yeah", ...) and cough-like noise bursts of 150-250 ms that
interrupt are false barge-ins; real interruptions ("wait, stop, I meant
Tuesday") must interrupt: their latency is from the speech's onset.

Speech is trimmed to its voiced part and the pauses are inserted exactly;
the client streams 20 ms frames of a continuous microphone (silence between
clips), so times on the client's clock are the stream's. Generated audio
is kept under <build>/turns/ (never in the tree).

    make bench                                  (all benches)
    tests/bench/run.py --bin build/bin turns    (this one)
    tests/bench/bench_turns.py --bin build/bin [--quick] [--voices slt]

An orchestrator built without the policy flags runs "before" only.
Figures are printed; nothing fails on a number.
"""
import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import wave

import numpy as np
import websocket

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from benchutil import pct, start  # noqa: E402

RATE = 16000
FRAME = RATE // 50            # 20 ms of samples per WebSocket frame
VOICES = {"slt": "flite", "en-us": "espeak-ng"}
POLICIES = {
    "before": ["--eot-policy", "fixed", "--barge-in-policy", "immediate"],
    "after": ["--eot-policy", "adaptive", "--barge-in-policy", "backchannel"],
    # barge-in only: 250 ms more speech before "no words yet" interrupts
    # (the orchestrator may count speech_ms from the onset, VAD's
    # min_speech_ms before its detection)
    "after-550": ["--eot-policy", "adaptive", "--barge-in-policy", "backchannel",
                  "--barge-in-min-ms", "550"],
}
EOT_POLICIES = ("before", "after")   # after-550 ends turns as after does
TRAIL_S = 4.0                 # silence after an utterance: > eot_max + STT
BARGE_AFTER_S = 0.8           # clip this long after the reply's audio_start
BARGE_WATCH_S = 2.5           # after the clip's end, for an "interrupted"

# Finished utterances: questions and complete clauses.
FINISHED = [
    "What time is it?",
    "Can you tell me the weather for tomorrow?",
    "Please turn off the lights in the kitchen.",
    "How far is the nearest train station from here?",
    "Thank you very much for your help today.",
    "Do you know a good place to eat around here?",
    "Could you send me the address again please?",
    "What is the weather like in Paris today?",
    "Set an alarm for seven tomorrow morning.",
    "I would like a cup of coffee.",
]

# Unfinished: (first part, pause in seconds, the rest). Most pauses follow
# a word that reads unfinished; the last three do not (honest cases).
UNFINISHED = [
    ("My number is five five five", 1.0, "one two three four"),
    ("I want to book a table for", 0.8, "four people"),
    ("I need a taxi to the airport and", 1.0, "a hotel room for tonight"),
    ("Send a message to", 1.2, "my sister"),
    ("The code is one two", 0.9, "three four"),
    ("I was thinking about the", 1.0, "weekend trip"),
    ("My email is john and", 1.1, "then example dot com"),
    ("Um", 0.8, "what time does the store close"),
    ("Can I get a pizza with", 0.9, "extra cheese"),
    ("Play some music by", 0.6, "the Beatles"),
    ("The meeting is on", 1.0, "Tuesday at three"),
    ("Remind me to call", 0.7, "the doctor tomorrow"),
    ("I would like to order", 0.8, "a large coffee"),
    ("Call my mom", 1.0, "and tell her I am late"),
]

BACKCHANNELS = ["uh-huh", "yeah", "okay", "mm-hm", "right", "I see"]
COUGHS_MS = [150, 200, 250]
INTERRUPTIONS = [
    "Wait, stop, I meant Tuesday.",
    "No no, I said Tuesday.",
    "Hold on, that is wrong.",
    "Stop.",
]

QUICK = {  # the bounded set of the integration test and --quick
    "finished": FINISHED[:2],
    "unfinished": UNFINISHED[:2],
    "backchannels": ["uh-huh", "yeah"],
    "coughs": [200],
    "interruptions": INTERRUPTIONS[:1],
}


# ---- audio ----

def voiced_span(pcm, floor_db=-40.0):
    """(first, last+1) sample of the voiced part: 10 ms frames whose RMS is
    within floor_db of the loudest frame."""
    n = len(pcm) // 160
    if n == 0:
        return 0, len(pcm)
    x = pcm[:n * 160].astype(np.float64).reshape(n, 160)
    rms = np.sqrt((x * x).mean(axis=1)) + 1e-9
    on = np.nonzero(20 * np.log10(rms / rms.max()) > floor_db)[0]
    if len(on) == 0:
        return 0, len(pcm)
    return int(on[0]) * 160, int(on[-1] + 1) * 160


def synth(tts, text, voice):
    """16 kHz int16 samples of voice saying text, trimmed to the voiced part
    (20 ms kept each side)."""
    r = tts.post_json("/synthesize", {"text": text, "voice": voice, "sample_rate": RATE})
    if r.status != 200:
        raise RuntimeError(f"tts {voice} {text!r}: {r}")
    with wave.open(io.BytesIO(r.body)) as w:
        assert w.getframerate() == RATE and w.getnchannels() == 1
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").copy()
    a, b = voiced_span(pcm)
    m = RATE // 50
    return pcm[max(0, a - m):b + m]


class Clip:
    """Audio to play and where its speech is: spans of (start, end) in
    samples; the first span starts the speech, the last one ends it."""

    def __init__(self, name, pcm, spans, kind, voice):
        self.name, self.pcm, self.spans, self.kind, self.voice = name, pcm, spans, kind, voice

    @property
    def onset_s(self):
        return self.spans[0][0] / RATE

    @property
    def end_s(self):
        return self.spans[-1][1] / RATE


def join(parts):
    """Concatenates speech arrays and pauses (floats, seconds); returns
    (pcm, spans of the voiced parts)."""
    out, spans, pos = [], [], 0
    for p in parts:
        if isinstance(p, float):
            n = int(p * RATE)
            out.append(np.zeros(n, dtype=np.int16))
        else:
            a, b = voiced_span(p)
            spans.append((pos + a, pos + b))
            out.append(p)
            n = len(p)
        pos += n
    return np.concatenate(out), spans


def cough(ms, seed):
    """A cough-like burst: low-passed noise, fast attack, decaying."""
    rng = np.random.default_rng(seed)
    n = RATE * ms // 1000
    x = rng.normal(0, 1, n + 64)
    x = np.convolve(x, np.ones(6) / 6, mode="same")[:n]          # ~2.5 kHz low-pass
    t = np.arange(n) / n
    env = np.minimum(1, t * 12) * np.exp(-3 * t)
    x = x / (np.abs(x).max() + 1e-9) * env * 14000
    return x.astype(np.int16)


def make_clips(tts, voice, sel, out_dir):
    """{kind: [Clip]} for one voice; WAVs saved under out_dir."""
    clips = {"finished": [], "unfinished": [], "backchannel": [], "cough": [],
             "interruption": []}
    for text in sel["finished"]:
        pcm, spans = join([synth(tts, text, voice)])
        clips["finished"].append(Clip(text, pcm, spans, "finished", voice))
    for first, pause, rest in sel["unfinished"]:
        pcm, spans = join([synth(tts, first, voice), float(pause), synth(tts, rest, voice)])
        name = f"{first} <{pause:.1f} s> {rest}"
        c = Clip(name, pcm, spans, "unfinished", voice)
        c.pause_s = pause
        clips["unfinished"].append(c)
    for text in sel["backchannels"]:
        pcm, spans = join([synth(tts, text, voice)])
        clips["backchannel"].append(Clip(text, pcm, spans, "backchannel", voice))
    for i, ms in enumerate(sel["coughs"]):
        b = cough(ms, 7 + i)
        clips["cough"].append(Clip(f"cough {ms} ms", b, [(0, len(b))], "cough", voice))
    for text in sel["interruptions"]:
        pcm, spans = join([synth(tts, text, voice)])
        clips["interruption"].append(Clip(text, pcm, spans, "interruption", voice))
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        for kind, cs in clips.items():
            for i, c in enumerate(cs):
                with wave.open(os.path.join(out_dir, f"{voice}-{kind}-{i}.wav"), "wb") as w:
                    w.setnchannels(1)
                    w.setsampwidth(2)
                    w.setframerate(RATE)
                    w.writeframes(c.pcm.astype("<i2").tobytes())
    return clips


# ---- a /ws/chat session with a live microphone ----

class Session:
    """A /ws/chat conversation: a thread sends 20 ms frames in real time
    (silence unless a clip is playing), another collects the events with
    their arrival times (time.monotonic())."""

    def __init__(self, ws_url):
        self.ws = websocket.create_connection(ws_url + "/ws/chat", timeout=30)
        self.ws.send(json.dumps({"type": "start", "sample_rate": RATE}))
        while True:
            ev = json.loads(self.ws.recv())
            if ev.get("type") == "ready":
                break
            if ev.get("type") == "error":
                raise RuntimeError(f"start refused: {ev}")
        self.events = []                 # (t, event)
        self.cond = threading.Condition()
        self.lock = threading.Lock()
        self.pending = np.zeros(0, dtype=np.int16)
        self.t0 = time.monotonic()
        self.frames = 0                  # frames sent
        self.stop = False
        self.mic = threading.Thread(target=self._mic, daemon=True)
        self.rx = threading.Thread(target=self._rx, daemon=True)
        self.mic.start()
        self.rx.start()

    def _mic(self):
        silence = np.zeros(FRAME, dtype=np.int16)
        while not self.stop:
            due = self.t0 + self.frames * FRAME / RATE
            d = due - time.monotonic()
            if d > 0:
                time.sleep(d)
            with self.lock:
                if len(self.pending):
                    f = self.pending[:FRAME]
                    self.pending = self.pending[FRAME:]
                    if len(f) < FRAME:
                        f = np.concatenate([f, silence[:FRAME - len(f)]])
                else:
                    f = silence
                self.frames += 1
            try:
                self.ws.send_binary(f.astype("<i2").tobytes())
            except Exception:
                return

    def _rx(self):
        while True:
            try:
                op, data = self.ws.recv_data()
            except Exception:
                break
            t = time.monotonic()
            if op == websocket.ABNF.OPCODE_BINARY:
                continue
            if op == websocket.ABNF.OPCODE_CLOSE:
                break
            try:
                ev = json.loads(data)
            except ValueError:
                continue
            with self.cond:
                self.events.append((t, ev))
                self.cond.notify_all()
        with self.cond:
            self.events.append((time.monotonic(), {"type": "_closed"}))
            self.cond.notify_all()

    def play(self, pcm):
        """Queues pcm after what is queued; returns the time its first
        sample is sent."""
        with self.lock:
            t = self.t0 + (self.frames + len(self.pending) / FRAME) * FRAME / RATE
            self.pending = np.concatenate([self.pending, pcm.astype(np.int16)])
        return t

    def text(self, s):
        self.ws.send(json.dumps({"type": "text", "text": s}))

    def wait(self, types, until, after=0.0):
        """The first (t, event) of one of types that arrived at or after
        after, or None at until."""
        with self.cond:
            while True:
                for t, ev in self.events:
                    if t >= after and ev.get("type") in types:
                        return t, ev
                left = until - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def of_type(self, typ):
        with self.cond:
            return [(t, ev) for t, ev in self.events if ev.get("type") == typ]

    def close(self):
        self.stop = True
        self.mic.join(2)
        try:
            self.ws.close()
        except Exception:
            pass
        self.rx.join(2)


# ---- the two kinds of runs ----

def run_eot(orch, clip):
    """Plays an utterance; returns {cut, latency_ms, reply_ms, transcripts}."""
    s = Session(orch.ws_url)
    try:
        time.sleep(0.3)
        t = s.play(clip.pcm)
        t_end = t + clip.end_s
        # the turn after the last word, or nothing by TRAIL_S
        got = s.wait(("transcript", "_closed"), t_end + TRAIL_S, after=t_end)
        done = got[0] if got else t_end + TRAIL_S
        s.wait((), min(done + 0.3, t_end + TRAIL_S))
        trs = s.of_type("transcript")
        early = [x for x, _ in trs if x < t_end]
        late = [x for x, _ in trs if x >= t_end]
        replies = [x for x, _ in s.of_type("response_delta") if x >= t_end]
        return {
            "cut": bool(early),
            "turns": len(trs),
            "latency_ms": (late[0] - t_end) * 1000 if late and not early else None,
            "reply_ms": (replies[0] - t_end) * 1000 if replies and late and not early else None,
            "texts": [ev.get("text") for _, ev in trs],
        }
    finally:
        s.close()


def run_barge(orch, clip):
    """Plays clip while the assistant speaks; returns {interrupted,
    latency_ms (from the speech onset), ok (the reply was playing)}."""
    s = Session(orch.ws_url)
    try:
        time.sleep(0.2)
        s.text("tell me a long story #slow")
        a = s.wait(("audio_start", "error", "_closed"), time.monotonic() + 30)
        if not a or a[1].get("type") != "audio_start":
            return {"ok": False, "interrupted": False, "latency_ms": None, "why": str(a)}
        s.wait((), a[0] + BARGE_AFTER_S)
        t = s.play(clip.pcm)
        onset, end = t + clip.onset_s, t + clip.end_s
        got = s.wait(("interrupted", "metrics", "_closed"), end + BARGE_WATCH_S, after=t)
        partials = [ev.get("text") for _, ev in s.of_type("transcript_partial")]
        if got and got[1].get("type") == "interrupted":
            return {"ok": True, "interrupted": True,
                    "latency_ms": (got[0] - onset) * 1000, "partials": partials}
        return {"ok": got is None, "interrupted": False, "latency_ms": None,
                "why": str(got[1]) if got else "", "partials": partials}
    finally:
        s.close()


def pair(orchs, fn, clip, only=None):
    """fn(orch, clip) for each policy (of only) at the same time;
    {policy: result}."""
    out, threads = {}, []
    orchs = {k: v for k, v in orchs.items() if only is None or k in only}

    def one(name, orch):
        try:
            out[name] = fn(orch, clip)
        except Exception as e:  # a failed run is reported, not fatal
            out[name] = {"error": repr(e)}
    for name, orch in orchs.items():
        threads.append(threading.Thread(target=one, args=(name, orch)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


# ---- the stack ----

def has_policy_flags(bin_dir):
    out = subprocess.run([os.path.join(bin_dir, "voxline-orchestrator"), "--help"],
                         capture_output=True, text=True)
    return "--eot-policy" in out.stdout + out.stderr


class Stack:
    """vad, stt (pocketsphinx), tts, llm (openai on tests/llm_upstream.py)
    and one orchestrator per policy pair. start(name, *args) starts a
    daemon (benchutil.start or the tests' fixture)."""

    def __init__(self, start_fn, bin_dir, db_dir, policies):
        self.up = subprocess.Popen(["/usr/bin/python3", os.path.join(ROOT, "tests", "llm_upstream.py"),
                                    "--port", "0"], stdout=subprocess.PIPE)
        self.daemons = []
        self.start = start_fn
        try:
            port = int(self.up.stdout.readline())
            self.vad = self._start("vad")
            self.stt = self._start("stt")
            self.tts = self._start("tts", "--queue", "64")
            self.llm = self._start("llm", "--engine", "openai", "--url",
                                   f"http://127.0.0.1:{port}")
            self.orchs = {}
            for name in policies:
                self.orchs[name] = self._start(
                    "orchestrator", "--vad-url", self.vad.url, "--stt-url", self.stt.url,
                    "--tts-url", self.tts.url, "--llm-url", self.llm.url,
                    "--db", os.path.join(db_dir, f"turns-{name}.db"), *POLICIES[name])
        except BaseException:
            self.stop()
            raise

    def _start(self, name, *args):
        d = self.start(name, *args)
        self.daemons.append(d)
        return d

    def stop(self):
        for d in reversed(self.daemons):
            if hasattr(d, "stop"):
                d.stop()
        self.daemons = []
        self.up.terminate()
        self.up.wait(10)


# ---- the measurement ----

def measure(stack, voices, sel, out_dir, log=print):
    """Runs every clip under every policy; returns {voice: {policy: {...}}}
    and logs one line per run."""
    res = {}
    for voice in voices:
        clips = make_clips(stack.tts, voice, sel, os.path.join(out_dir, voice) if out_dir else None)
        r = {p: {"eot": [], "barge": []} for p in stack.orchs}
        log(f"-- {VOICES.get(voice, voice)} ({voice})")
        for c in clips["finished"] + clips["unfinished"]:
            got = pair(stack.orchs, run_eot, c, EOT_POLICIES)
            for p, x in got.items():
                x["clip"] = c
                r[p]["eot"].append(x)
            log(f"   eot   {c.kind:<11} {c.name[:52]:<52} " + "  ".join(
                f"{p}: {fmt_eot(got[p])}" for p in got))
        for c in clips["backchannel"] + clips["cough"] + clips["interruption"]:
            got = pair(stack.orchs, run_barge, c)
            for p, x in got.items():
                x["clip"] = c
                r[p]["barge"].append(x)
            log(f"   barge {c.kind:<12} {c.name[:30]:<30} " + "  ".join(
                f"{p}: {fmt_barge(got[p])}" for p in stack.orchs))
        res[voice] = r
    return res


def fmt_eot(x):
    if "error" in x:
        return "error " + x["error"][:40]
    if not x["turns"]:
        return "no transcript"
    lat = "" if x["latency_ms"] is None else f"{x['latency_ms']:.0f} ms"
    return f"{'CUT' if x['cut'] else 'ok '} {lat:>8} {x['texts']!r:.60}"


def fmt_barge(x):
    if "error" in x:
        return "error " + x["error"][:40]
    if not x.get("ok", True):
        return "no reply? " + x.get("why", "")[:40]
    if x["interrupted"]:
        return f"INTERRUPTED {x['latency_ms']:.0f} ms {x.get('partials', [])!r:.40}"
    return f"ignored {x.get('partials', [])!r:.40}"


def summarize(r):
    """Figures of one voice x policy."""
    # a run with no transcript at all (STT overloaded) tells nothing
    ok = [x for x in r["eot"] if "error" not in x and x["turns"]]
    fin = [x for x in ok if x["clip"].kind == "finished"]
    unf = [x for x in ok if x["clip"].kind == "unfinished"]
    played = [x for x in r["barge"] if "error" not in x and x.get("ok", True)]
    bc = [x for x in played if x["clip"].kind in ("backchannel", "cough")]
    it = [x for x in played if x["clip"].kind == "interruption"]
    lat = [x["latency_ms"] for x in fin if x["latency_ms"] is not None]
    rep = [x["reply_ms"] for x in fin if x["reply_ms"] is not None]
    ilat = [x["latency_ms"] for x in it if x["interrupted"]]
    return {
        "cut": sum(x["cut"] for x in unf), "unfinished": len(unf),
        "split": sum(x["cut"] for x in fin), "finished": len(fin),
        "lat_p50": pct(lat, 50) if lat else None, "lat_n": len(lat),
        "reply_p50": pct(rep, 50) if rep else None,
        "false_barge": sum(x["interrupted"] for x in bc), "backchannels": len(bc),
        "interrupted": len(ilat), "interruptions": len(it),
        "int_p50": pct(ilat, 50) if ilat else None,
        "int_max": max(ilat) if ilat else None,
        "errors": sum("error" in x or not x.get("turns", 1) or not x.get("ok", True)
                      for x in r["eot"] + r["barge"]),
    }


def report(res, log=print):
    def ms(v):
        return "n/a" if v is None else f"{v:.0f} ms"

    def rate(a, b):
        return f"{a}/{b} ({100 * a / b:.0f}%)" if b else "n/a"
    for voice, by in res.items():
        pols = list(by)
        s = {p: summarize(by[p]) for p in pols}
        log(f"\nturn taking, {VOICES.get(voice, voice)} voice ({voice}):")
        log("  " + " " * 44 + "".join(f"{p:>24}" for p in pols))
        rows = [
            ("unfinished turns cut at the pause", lambda x: rate(x["cut"], x["unfinished"])),
            ("finished turns split", lambda x: rate(x["split"], x["finished"])),
            ("median speech end -> transcript", lambda x: ms(x["lat_p50"])),
            ("median speech end -> first reply text", lambda x: ms(x["reply_p50"])),
            ("backchannels/coughs that interrupted", lambda x: rate(x["false_barge"], x["backchannels"])),
            ("interruptions that interrupted", lambda x: rate(x["interrupted"], x["interruptions"])),
            ("  their latency from speech onset, p50", lambda x: ms(x["int_p50"])),
            ("  max", lambda x: ms(x["int_max"])),
            ("runs without a transcript or reply (left out)", lambda x: str(x["errors"])),
        ]
        for label, f in rows:
            log(f"  {label:<44}" + "".join(f"{f(s[p]):>24}" for p in pols))
    return {v: {p: summarize(by[p]) for p in by} for v, by in res.items()}


def main(bin_dir, tools_dir, quick=False, voices=None):
    del tools_dir
    policies = list(POLICIES) if has_policy_flags(bin_dir) else ["before"]
    if policies == ["before"]:
        print("this orchestrator has no --eot-policy: measuring its fixed behaviour "
              "(VAD silence 300 ms, immediate barge-in) as 'before' only", flush=True)
        POLICIES["before"] = []
    sel = QUICK if quick else {"finished": FINISHED, "unfinished": UNFINISHED,
                               "backchannels": BACKCHANNELS, "coughs": COUGHS_MS,
                               "interruptions": INTERRUPTIONS}
    out_dir = os.path.join(os.path.dirname(os.path.abspath(bin_dir)), "turns")
    db = tempfile.mkdtemp(prefix="bench-turns-")
    stack = Stack(lambda name, *a: start(bin_dir, name, *a, env={
        f"VOXLINE_{name.upper()}_DRAIN_DELAY_S": "0"}), bin_dir, db, policies)
    load0 = os.getloadavg()[0]
    try:
        res = measure(stack, voices or list(VOICES), sel, out_dir,
                      log=lambda m: print(m, flush=True))
        figures = report(res, log=lambda m: print(m, flush=True))
        print(f"load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end "
              f"({os.cpu_count()} cores): latencies grow with it", flush=True)
    finally:
        stack.stop()
    with open(os.path.join(out_dir, "figures.json"), "w") as f:
        json.dump(figures, f, indent=1)
    print(f"(audio and figures.json under {out_dir})", flush=True)
    return figures


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--quick", action="store_true", help="the small set of the integration test")
    ap.add_argument("--voices", default="", help="comma-separated: slt,en-us")
    a = ap.parse_args()
    main(os.path.abspath(a.bin), None, a.quick,
         [v for v in a.voices.split(",") if v] or None)
