"""Speech helpers shared by the integration tests: the test sentences,
word error rate, WAV bytes, and real speech made by flite's slt voice
(through the voxline-tts daemon when it is built, else through
build/tools/tts_direct).

The sentences and the voice are those of tests/unit/test_stt_engines.c.
Import with `from speech import ...` (pytest puts this folder, the one of
conftest.py, on sys.path)."""
import io
import json
import os
import re
import subprocess
import tempfile
import wave

import numpy as np

from conftest import BIN, TOOLS

VOICE = "slt"
RATE = 16000          # what slt speaks and pocketsphinx hears
WER_MAX = 0.15        # the word error rate the STT tests allow over SENTENCES
SENTENCES = [
    "What time is it right now?",
    "Can you tell me the weather for tomorrow?",
    "Please turn off the lights in the kitchen.",
    "How far is the nearest train station from here?",
    "Thank you very much for your help today.",
    "Do you know a good place to eat around here?",
    "Could you send me the address again please?",
    "We are going to the beach next weekend.",
]


# ---- word error rate ----

def words(s):
    """Lower-case words: letters, digits and apostrophes."""
    return re.findall(r"[a-z0-9']+", s.lower())


def edit_distance(ref, hyp):
    """Word-level Levenshtein distance between two word lists."""
    d = list(range(len(hyp) + 1))
    for i in range(1, len(ref) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(hyp) + 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (ref[i - 1] != hyp[j - 1]))
            prev, d[j] = d[j], cur
    return d[len(hyp)]


def wer(ref, hyp):
    """Word error rate of the text hyp against the text ref."""
    r = words(ref)
    return edit_distance(r, words(hyp)) / max(1, len(r))


# ---- WAV ----

def wav_bytes(pcm, rate=RATE, channels=1):
    """A PCM16 WAV of pcm (frames x channels, or mono)."""
    b = io.BytesIO()
    with wave.open(b, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(pcm, dtype="<i2").tobytes())
    return b.getvalue()


def read_wav(data):
    """(rate, channels, int16 samples) of WAV bytes."""
    with wave.open(io.BytesIO(data)) as w:
        return (w.getframerate(), w.getnchannels(),
                np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"))


# ---- making speech ----

def _speak_with_daemon(texts):
    """{text: int16 array} from the voxline-tts daemon, or None."""
    exe = os.path.join(BIN, "voxline-tts")
    if not os.path.exists(exe):
        return None
    from conftest import Daemon
    log = tempfile.NamedTemporaryFile(prefix="speech-tts-", suffix=".log",
                                      delete=False).name
    try:
        d = Daemon([exe, "--port", "0"], log)
    except Exception:
        return None
    try:
        d.wait_ready(30)
        out = {}
        for t in texts:
            r = d.post_json("/synthesize", {"text": t, "voice": VOICE})
            if r.status != 200:
                return None
            rate, ch, pcm = read_wav(r.body)
            if rate != RATE or ch != 1:
                return None
            out[t] = pcm
        return out
    except Exception:
        return None
    finally:
        d.stop()


def _speak_with_tool(texts, tmp):
    out = {}
    for i, t in enumerate(texts):
        path = os.path.join(tmp, f"s{i}.pcm")
        info = json.loads(subprocess.run(
            [os.path.join(TOOLS, "tts_direct"), "-v", VOICE, "-o", path, t],
            check=True, capture_output=True, text=True).stdout)
        assert info["sample_rate"] == RATE
        out[t] = np.fromfile(path, dtype="<i2").astype(np.int16)
    return out


def speak(texts, tmp):
    """{text: 16 kHz mono int16 samples} in flite's slt voice; tmp is a
    scratch folder for the tool's files."""
    return _speak_with_daemon(texts) or _speak_with_tool(texts, tmp)
