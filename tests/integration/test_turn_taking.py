"""Turn taking end to end (issue 10): the real voxline-vad, -stt
(pocketsphinx), -tts (flite and espeak-ng), -llm (openai engine on
tests/llm_upstream.py) and two orchestrators side by side, one per policy
pair, fed the same speech in real time over /ws/chat:

  before  --eot-policy fixed    --barge-in-policy immediate   (as it was)
  after   --eot-policy adaptive --barge-in-policy backchannel

A bounded version of tests/bench/bench_turns.py (which has the figures):
a 1.0 s pause mid-thought does not end an unfinished turn under adaptive
(it does under fixed); a finished question still ends soon; "uh-huh" while
the assistant speaks does not interrupt it under backchannel (it does under
immediate); "Wait, stop, I meant Tuesday" interrupts under both, within
300 ms of being detectable. Both voices, flite's slt and espeak-ng's en-us.
"""
import os
import sys

import pytest

from conftest import BIN, ROOT

sys.path.insert(0, os.path.join(ROOT, "tests", "bench"))
import bench_turns as bt  # noqa: E402

VAD_MIN_SPEECH_MS = 250       # VAD's speech_start comes this long after the onset
BARGE_BUDGET_MS = 300         # an interruption interrupts this soon after
SLACK_MS = 100                # scheduling on a shared 2-core machine


@pytest.fixture
def stack(start, tmp_path):
    assert bt.has_policy_flags(BIN), (
        "voxline-orchestrator has no --eot-policy / --barge-in-policy yet "
        "(the conversation machine's wiring of conv_policy, issue 10 item 6)")
    s = bt.Stack(start, BIN, str(tmp_path), ["before", "after"])
    yield s
    s.stop()


def clip(stack, voice, kind, **sel):
    """The one clip of kind that sel selects, spoken by voice."""
    full = {"finished": [], "unfinished": [], "backchannels": [], "coughs": [],
            "interruptions": []}
    full.update(sel)
    (c,) = bt.make_clips(stack.tts, voice, full, None)[kind]
    return c


# Utterances the recogniser gets right enough with each voice: pocketsphinx
# hears espeak-ng's "my number is five five five" as "fight fight fight"
# and its "table for" as "table far".
UNFINISHED = {
    "slt": ("My number is five five five", 1.0, "one two three four"),
    "en-us": ("I need a taxi to the airport and", 1.0, "a hotel room for tonight"),
}


@pytest.mark.parametrize("voice", ["slt", "en-us"])
def test_a_pause_mid_thought_ends_the_turn_only_under_fixed(stack, voice):
    c = clip(stack, voice, "unfinished", unfinished=[UNFINISHED[voice]])
    got = bt.pair(stack.orchs, bt.run_eot, c)
    print(voice, {p: bt.fmt_eot(x) for p, x in got.items()})
    assert "error" not in got["before"] and "error" not in got["after"], got
    assert got["before"]["cut"], ("fixed: a 1.0 s pause ends the turn", got["before"])
    assert not got["after"]["cut"], ("adaptive: the pause must not end the turn", got["after"])
    assert got["after"]["turns"] == 1, got["after"]
    assert got["after"]["latency_ms"] is not None, got["after"]


@pytest.mark.parametrize("voice", ["slt", "en-us"])
def test_a_finished_question_still_ends_soon(stack, voice):
    c = clip(stack, voice, "finished", finished=["What time is it?"])
    got = bt.pair(stack.orchs, bt.run_eot, c)
    print(voice, {p: bt.fmt_eot(x) for p, x in got.items()})
    b, a = got["before"], got["after"]
    assert not b["cut"] and not a["cut"], got
    assert a["latency_ms"] is not None and b["latency_ms"] is not None, got
    # adaptive adds (next to) nothing to a question: far less than the
    # 1.2 s it would add to an unfinished turn
    assert a["latency_ms"] - b["latency_ms"] < 600, got


# flite's "uh-huh" is a known miss (strict: the day it passes, this says so):
# pocketsphinx's first partial for it comes ~830 ms after VAD's detection,
# and with no words yet past barge_min_ms the policy must interrupt, or a
# real interruption would wait as long. A recogniser with earlier partials
# (issue 12) is what would move it.
UH_HUH_FLITE = pytest.param("slt", marks=pytest.mark.xfail(
    strict=True, reason="no partial within --barge-in-min-ms of detection (pocketsphinx)"))


@pytest.mark.parametrize("voice", [UH_HUH_FLITE, "en-us"])
def test_uh_huh_during_the_reply_does_not_interrupt_under_backchannel(stack, voice):
    c = clip(stack, voice, "backchannel", backchannels=["uh-huh"])
    got = bt.pair(stack.orchs, bt.run_barge, c)
    print(voice, {p: bt.fmt_barge(x) for p, x in got.items()})
    assert got["before"].get("interrupted"), ("immediate: any speech interrupts", got)
    # Fails when the orchestrator counts speech_ms from the onset VAD reports
    # (then barge_min_ms passes ~50 ms after the detection, before STT's
    # first partial): conv_policy.h counts it from the detection.
    assert got["after"].get("ok"), ("the reply was not playing", got["after"])
    assert not got["after"]["interrupted"], (
        "backchannel: uh-huh interrupted the reply", got["after"])


@pytest.mark.parametrize("voice", ["slt", "en-us"])
def test_wait_stop_i_meant_tuesday_interrupts_under_both(stack, voice):
    c = clip(stack, voice, "interruption", interruptions=["Wait, stop, I meant Tuesday."])
    got = bt.pair(stack.orchs, bt.run_barge, c)
    print(voice, {p: bt.fmt_barge(x) for p, x in got.items()})
    for p in ("before", "after"):
        x = got[p]
        assert x.get("interrupted"), (p, x)
        late = x["latency_ms"] - VAD_MIN_SPEECH_MS
        print(f"{voice} {p}: interrupted {late:.0f} ms after the speech was detectable")
        assert late < BARGE_BUDGET_MS + SLACK_MS, (p, x)
