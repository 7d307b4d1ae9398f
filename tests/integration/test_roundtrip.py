"""Text -> voxline-tts -> voxline-stt -> text: the real daemons, talking
HTTP. flite's slt voice says the sentences tests/unit/test_stt_engines.c
uses; pocketsphinx must get them back with under 15% word error rate."""
import os
import re

import pytest

from conftest import BIN

# The same voice and sentences as tests/unit/test_stt_engines.c.
VOICE = "slt"
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
WER_MAX = 0.15


def words(text):
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def edit_distance(ref, hyp):
    """Word-level Levenshtein distance."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def test_edit_distance_counts_words():
    assert edit_distance(words("turn on the lights"), words("Turn on the lights!")) == 0
    assert edit_distance(words("a b c"), words("a x c d")) == 2
    assert edit_distance(words("a b c"), []) == 3


@pytest.mark.skipif(not os.path.exists(os.path.join(BIN, "voxline-stt")),
                    reason="build/bin/voxline-stt is not built (make)")
def test_tts_to_stt_round_trip_under_wer_limit(start):
    tts = start("tts")
    stt = start("stt")
    errors = n_ref = 0
    for s in SENTENCES:
        r = tts.post_json("/synthesize", {"text": s, "voice": VOICE})
        assert r.status == 200, r
        assert r.headers["Content-Type"] == "audio/wav"
        t = stt.post_file("/transcribe", r.body, fields={"language": "en"})
        assert t.status == 200, t
        ref, hyp = words(s), words(t.json()["text"])
        e = edit_distance(ref, hyp)
        print(f"[{e}/{len(ref)}] {s} -> {t.json()['text']}")
        errors += e
        n_ref += len(ref)
    wer = errors / n_ref
    print(f"round-trip WER {wer * 100:.1f}% ({errors}/{n_ref} words)")
    assert wer < WER_MAX
