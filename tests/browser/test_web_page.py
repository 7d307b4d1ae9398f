"""The orchestrator's web page in headless chromium with a fake microphone
(tests/browser/conftest.py): spoken turns, barge-in, failures and recovery,
settings, past conversations, accessibility, a phone-sized screen."""
import json
import math
import os
import urllib.request

from conftest import QUESTION

WORDS = set(QUESTION.split())


def last(page, type_):
    ev = page.events(type_)
    return ev[-1] if ev else None


def bubbles(page):
    return page.eval("[...document.querySelectorAll('#log li')].map(l => ({cls: l.className, "
                     "text: l.querySelector('.text').textContent, "
                     "note: (l.querySelector('.note') || {}).textContent || ''}))")


def test_spoken_turn(stack, browser, tmp_path):
    """Sound check, then one spoken turn: live partials, the transcript and
    the reply as bubbles (oldest first), the reply audio played, the state
    indicator through listening -> thinking -> speaking, the latency panel."""
    orch = stack.orch()
    page = browser.open(orch, sound_checked=False)
    page.click("#mic")
    page.wait("document.getElementById('mic-msg').dataset.kind === 'ok'", timeout=30,
              why="the sound check to pass")
    page.wait("voxline.events.some(e => e.type === 'metrics')", timeout=60, why="a whole turn")
    partials = page.events("transcript_partial")
    transcript = last(page, "transcript")["text"]
    reply = "".join(e["text"] for e in page.events("response_delta"))
    assert partials, "no partial transcript"
    assert len(WORDS & set(transcript.split())) >= 3, transcript
    assert reply == f"You said: {transcript}.", reply
    b = bubbles(page)
    assert [x["cls"] for x in b[:2]] == ["bubble user", "bubble assistant"], b
    assert b[0]["text"] == transcript and b[1]["text"] == reply, b
    page.wait("voxline.playedSec() > 1.0", timeout=30, why="the reply audio to play")
    states = page.eval("voxline.states")
    for s in ("listening", "hearing", "thinking", "speaking"):
        assert s in states, states
    assert states.index("hearing") < states.index("thinking") < states.index("speaking"), states
    m = last(page, "metrics")
    assert m["error"] is None and not m["interrupted"], m
    cell = page.eval("[...document.querySelectorAll('#lat-table tbody tr')]"
                     ".find(r => r.textContent.includes('Voice to voice')).cells[1].textContent")
    assert cell == f"{math.floor(m['voice_to_voice_ms'] + 0.5)} ms", cell
    assert page.eval("!!document.querySelector('#chart svg rect')")
    assert page.eval("document.getElementById('live').textContent") == "voxline: " + reply
    assert not [x for x in page.call("logs") if "pageerror" in x or "http 4" in x or "http 5" in x]
