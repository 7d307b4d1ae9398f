"""Text -> voxline-tts -> voxline-stt -> text: the real daemons, talking
HTTP. flite's slt voice says the sentences tests/unit/test_stt_engines.c
uses; pocketsphinx must get them back with under 15% word error rate."""
import os

import pytest

from conftest import BIN
from speech import SENTENCES, VOICE, WER_MAX, edit_distance, wer, words


def test_edit_distance_counts_words():
    assert edit_distance(words("turn on the lights"), words("Turn on the lights!")) == 0
    assert edit_distance(words("a b c"), words("a x c d")) == 2
    assert edit_distance(words("a b c"), []) == 3
    assert wer("a b c", "a x c d") == 2 / 3


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
    rate = errors / n_ref
    print(f"round-trip WER {rate * 100:.1f}% ({errors}/{n_ref} words)")
    assert rate < WER_MAX
