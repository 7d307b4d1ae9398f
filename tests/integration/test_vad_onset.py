"""voxline-vad finds where speech starts, weak onsets included (issue 12,
item 5): sentences that start with th, f, s, h and p (and vowel and plosive
controls) spoken by flite and espeak-ng voices are placed at a known time in
silence and in white and pink noise at 20 dB SNR; POST /detect must report
each weak onset class within 100 ms (per-class median) and no segment may
start more than MAX_ERR_MS away from the true onset; noise-only audio gives
no segment at all.

The set is built at run time (nothing stored); the true onset of a clip is
its first sample above a tiny threshold in the clean synthesis. The same
code is the measurement of tests/bench/bench_vad.py (evaluate, report)."""
import io
import json
import subprocess
import tempfile
import wave

import numpy as np
import pytest
import websocket

RATE = 16000
LEAD_MS = 1500            # speech is placed here (plus the synth's own lead)
TAIL_MS = 700
SNR_DB = 20
ONSET_THRESHOLD = 0.003   # of the clip's peak (-50 dB), or
FLOOR_FACTOR = 4.0        # times the synthesizer's own background RMS, if
                          # higher: the first sample above is the true onset
MEDIAN_MS = 100           # per class and condition, |median error|
MAX_ERR_MS = 250          # any single clip, early or late: the worst
                          # measured is 166 ms (an /f/ of flite awb in white
                          # noise, whose first 150 ms lie under the noise);
                          # 250 ms is min_speech_ms, the detector's own lag
NOISE_SEED = 0x0e5e7

ONSETS = {
    "th": ["The quick brown fox jumps over the lazy dog.",
           "This is the last call.", "Think about it tomorrow.",
           "Those boxes are heavy.", "Thirty people came to the party."],
    "f": ["Five minutes left.", "Find my phone please.",
          "Forget the last message.", "Fifty percent done.",
          "Follow the road to the end."],
    "s": ["Set a timer for ten minutes.", "Send a message to Anna.",
          "Show me the weather.", "Seven days a week.",
          "Start the music again."],
    "h": ["How far is the station?", "Hello there.", "Help me with dinner.",
          "Here is the report.", "Hold on a second."],
    "p": ["Please turn on the lights.", "Play some jazz.",
          "Pick up the kids at noon.", "Put the kettle on.",
          "Pause the music."],
    "vowel": ["Open the window.", "I would like some tea.",
              "All of them are here.", "Every morning at eight.",
              "Add milk to the list."],
    "plosive": ["Turn off the radio.", "Call my mother.",
                "Bring the umbrella.", "Do it again.", "Give me a minute."],
}
WEAK = ("th", "f", "s", "h", "p")
VOICES = (("flite", "slt"), ("flite", "awb"), ("espeak-ng", "en-us"))
CONDITIONS = ("clean", "white20", "pink20")


# ---- synthesis and mixing ----

def read_wav(data):
    with wave.open(io.BytesIO(data)) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2
        rate = w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return x.astype(np.float64), rate


def resample(x, rate):
    """To 16 kHz by FFT (band-limited; espeak-ng speaks at 22.05 kHz)."""
    if rate == RATE:
        return x
    n = int(round(len(x) * RATE / rate))
    X = np.fft.rfft(x)
    Y = np.zeros(n // 2 + 1, dtype=complex)
    m = min(len(X), len(Y))
    Y[:m] = X[:m]
    return np.fft.irfft(Y, n) * (n / len(x))


def synth(engine, voice, text):
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        if engine == "flite":
            argv = ["flite", "-voice", voice, "-t", text, "-o", f.name]
        else:
            argv = ["espeak-ng", "-v", voice, "-w", f.name, text]
        subprocess.run(argv, check=True, timeout=60, capture_output=True)
        x, rate = read_wav(f.read())
    return resample(x, rate)


def wav_bytes(x):
    pcm = np.clip(np.round(x), -32768, 32767).astype("<i2")
    b = io.BytesIO()
    with wave.open(b, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
    return b.getvalue()


def noise(kind, n, rng):
    w = rng.standard_normal(n)
    if kind == "pink":
        W = np.fft.rfft(w)
        f = np.arange(len(W), dtype=np.float64)
        f[0] = 1.0
        w = np.fft.irfft(W / np.sqrt(f), n)
    return w / np.sqrt(np.mean(w * w))


def true_span(x):
    """(first, last) sample above a tiny threshold: ONSET_THRESHOLD of the
    peak, or FLOOR_FACTOR times the RMS of the synthesis's quietest 10 ms
    blocks (its 20th percentile) when that is higher. flite's unit voices
    (awb, slt) carry the recording's background (~-58 dB below the peak) in
    their leading silence and pauses; that is not speech. espeak-ng's
    pauses are digital silence, so its threshold stays the tiny one."""
    n = len(x) // 160
    rms = np.sqrt(np.mean(x[:n * 160].reshape(n, 160) ** 2, axis=1))
    thr = max(ONSET_THRESHOLD * np.max(np.abs(x)),
              FLOOR_FACTOR * float(np.percentile(rms, 20)))
    idx = np.nonzero(np.abs(x) > thr)[0]
    return int(idx[0]), int(idx[-1])


def build_set(classes=None, voices=VOICES, conditions=CONDITIONS):
    """[{cls, voice, text, cond, wav, onset_ms, offset_ms}] and the
    noise-only clips [{cond, wav}]; speech power for the SNR is measured
    over the true span of the clip."""
    rng = np.random.default_rng(NOISE_SEED)
    clips, levels = [], []
    for cls, texts in ONSETS.items():
        if classes and cls not in classes:
            continue
        for engine, voice in voices:
            for text in texts:
                s = synth(engine, voice, text)
                a, b = true_span(s)
                s = s * (0.3 * 32767 / np.max(np.abs(s)))   # same peak level
                lead = LEAD_MS * RATE // 1000
                x = np.zeros(lead + len(s) + TAIL_MS * RATE // 1000)
                x[lead:lead + len(s)] = s
                p = np.mean(s[a:b + 1] ** 2)
                levels.append(p)
                for cond in conditions:
                    y = x
                    if cond != "clean":
                        kind = cond.rstrip("0123456789")
                        y = x + noise(kind, len(x), rng) * np.sqrt(
                            p / 10 ** (SNR_DB / 10))
                    clips.append(dict(cls=cls, voice=f"{engine}:{voice}",
                                      text=text, cond=cond, wav=wav_bytes(y),
                                      onset_ms=(lead + a) * 1000.0 / RATE,
                                      offset_ms=(lead + b) * 1000.0 / RATE))
    # noise-only: 5 s of each noise at the typical 20 dB level, and 10 dB
    # louder (a quieter talker's 10 dB SNR)
    p = float(np.median(levels))
    noise_only = [dict(cond="silence", wav=wav_bytes(np.zeros(5 * RATE)))]
    for kind in ("white", "pink"):
        for snr in (SNR_DB, SNR_DB - 10):
            y = noise(kind, 5 * RATE, rng) * np.sqrt(p / 10 ** (snr / 10))
            noise_only.append(dict(cond=f"{kind}{snr}", wav=wav_bytes(y)))
    return clips, noise_only


# ---- measurement ----

def detect(d, wav):
    r = d.post("/detect", wav, "audio/wav")
    assert r.status == 200, r
    return [(s["start_ms"], s["end_ms"]) for s in r.json()["segments"]]


def evaluate(d, clips):
    """Adds to each clip: segs, err_ms (start of the first segment that
    overlaps the true span minus the true onset; None: missed), false
    (segments wholly outside the span) and frame counts (10 ms frames over
    the clip: tp, fp, fn)."""
    for c in clips:
        segs = detect(d, c["wav"])
        on, off = c["onset_ms"], c["offset_ms"]
        hit = [s for s in segs if s[0] < off and s[1] > on]
        c["segs"] = segs
        c["err_ms"] = hit[0][0] - on if hit else None
        c["false"] = len(segs) - len(hit)
        n = int(len(c["wav"]) - 44) // 320
        t = np.arange(n) * 10.0 + 5.0
        truth = (t >= on) & (t <= off)
        found = np.zeros(n, dtype=bool)
        for s, e in segs:
            found |= (t >= s) & (t < e)
        c["tp"] = int(np.sum(truth & found))
        c["fp"] = int(np.sum(~truth & found))
        c["fn"] = int(np.sum(truth & ~found))
    return clips


def summary(clips, cls, cond):
    cs = [c for c in clips if c["cls"] == cls and c["cond"] == cond]
    errs = [c["err_ms"] for c in cs if c["err_ms"] is not None]
    missed = len(cs) - len(errs)
    tp = sum(c["tp"] for c in cs)
    fp = sum(c["fp"] for c in cs)
    fn = sum(c["fn"] for c in cs)
    e = np.array(errs) if errs else np.array([np.nan])
    return dict(n=len(cs), missed=missed, false=sum(c["false"] for c in cs),
                median=float(np.median(e)),
                p90=float(np.percentile(np.abs(e), 90)),
                max=float(np.max(np.abs(e))),
                late_max=float(np.max(e)), early_max=float(-np.min(e)),
                precision=tp / (tp + fp) if tp + fp else 1.0,
                recall=tp / (tp + fn) if tp + fn else 1.0)


def report(clips, out=print):
    """The table: onset error (signed median; p90 and max of |error|) per
    class and condition, misses, false segments, frame precision/recall."""
    out(f"{'class':8} {'cond':8} {'n':>3} {'miss':>4} {'false':>5} "
        f"{'median':>7} {'p90':>5} {'max':>5} {'prec':>6} {'recall':>6}")
    for cond in CONDITIONS:
        for cls in ONSETS:
            s = summary(clips, cls, cond)
            if not s["n"]:
                continue
            out(f"{cls:8} {cond:8} {s['n']:3d} {s['missed']:4d} "
                f"{s['false']:5d} {s['median']:7.0f} {s['p90']:5.0f} "
                f"{s['max']:5.0f} {s['precision']:6.3f} {s['recall']:6.3f}")
    tp = sum(c["tp"] for c in clips)
    fp = sum(c["fp"] for c in clips)
    fn = sum(c["fn"] for c in clips)
    out(f"all: frame precision {tp / max(tp + fp, 1):.3f} "
        f"recall {tp / max(tp + fn, 1):.3f}")


# ---- the test ----

@pytest.fixture(scope="module")
def onset_set():
    return build_set()


def test_weak_onsets_found_within_100ms(start, onset_set):
    clips, noise_only = onset_set
    d = start("vad")
    evaluate(d, clips)
    lines = []
    report(clips, lines.append)
    table = "\n".join(lines)
    bad = []
    for cond in CONDITIONS:
        for cls in ONSETS:
            s = summary(clips, cls, cond)
            if s["missed"]:
                bad.append(f"{cls}/{cond}: {s['missed']} sentence(s) missed")
            if s["false"]:
                bad.append(f"{cls}/{cond}: {s['false']} false segment(s)")
            if cls in WEAK and abs(s["median"]) > MEDIAN_MS:
                bad.append(f"{cls}/{cond}: median onset error "
                           f"{s['median']:.0f} ms")
            if s["max"] > MAX_ERR_MS:
                worst = max((c for c in clips if c["cls"] == cls and
                             c["cond"] == cond and c["err_ms"] is not None),
                            key=lambda c: abs(c["err_ms"]))
                bad.append(f"{cls}/{cond}: {worst['voice']} "
                           f"'{worst['text']}' off by "
                           f"{worst['err_ms']:.0f} ms")
    assert not bad, "\n".join(bad) + "\n" + table
    for c in noise_only:
        segs = detect(d, c["wav"])
        assert segs == [], f"noise only ({c['cond']}): {segs}"


def test_ws_speech_start_carries_the_onset(start, onset_set):
    """/ws/detect's speech_start events report the same (looked-back)
    start as POST /detect, for weak onsets in noise."""
    clips, _ = onset_set
    d = start("vad")
    some = [c for c in clips if c["cls"] in ("f", "h", "th")
            and c["cond"] == "white20"][::4]
    for c in some:
        want = detect(d, c["wav"])
        pcm = c["wav"][44:]
        ws = websocket.create_connection(d.ws_url + "/ws/detect", timeout=30)
        try:
            ws.send(json.dumps({"event": "config", "sample_rate": RATE}))
            assert json.loads(ws.recv())["event"] == "ready"
            for i in range(0, len(pcm), 640):
                ws.send_binary(pcm[i:i + 640])
            ws.send(json.dumps({"event": "end"}))
            starts = []
            while True:
                ev = json.loads(ws.recv())
                if ev["event"] == "speech_start":
                    starts.append(ev["start_ms"])
                elif ev["event"] == "done":
                    break
        finally:
            ws.close()
        assert starts == [s for s, _ in want], (c["text"], starts, want)
        assert abs(starts[0] - c["onset_ms"]) <= MAX_ERR_MS, (c["text"], starts)
