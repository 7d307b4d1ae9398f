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
    # Mid-conversation screenshot for the README (docs/img/web.png).
    page.say("and what about tomorrow")
    page.wait("voxline.events.filter(e => e.type === 'metrics').length >= 2", timeout=60,
              why="the typed turn")
    shot = os.environ.get("VOXLINE_SCREENSHOT") or str(tmp_path / "web.png")
    page.call("screenshot", path=shot)
    assert 0 < os.path.getsize(shot) < 200 * 1024, os.path.getsize(shot)


def metrics_count(page):
    return page.eval("voxline.events.filter(e => e.type === 'metrics').length")


def wait_turns(page, n, timeout=60):
    page.wait(f"voxline.events.filter(e => e.type === 'metrics').length >= {n}",
              timeout=timeout, why=f"{n} finished turn(s)")
    return last(page, "metrics")


def test_barge_in_shows_what_was_heard(stack, browser):
    """A long reply, then the user speaks over it: playback stops and the
    reply's bubble is cut to the text the orchestrator says was heard."""
    orch = stack.orch()
    page = browser.open(orch)
    page.say("#slow please count for me")
    page.wait("voxline.playedSec() > 1.5", timeout=60, why="the long reply to play")
    page.click("#mic")   # hands-free: the fake microphone says QUESTION
    page.wait("voxline.events.some(e => e.type === 'interrupted')", timeout=60,
              why="the barge-in")
    ev = last(page, "interrupted")
    m = wait_turns(page, 1)
    assert m["interrupted"] is True, m
    assert "heard" in ev, f"interrupted has no 'heard' field yet (waits on H1): {ev}"
    b = bubbles(page)
    bot = [x for x in b if x["cls"] == "bubble assistant"][0]
    full = "".join(e["text"] for e in page.events("response_delta"))
    assert bot["text"] == (ev["heard"] or "…"), (bot, ev)
    assert len(ev["heard"]) < len(full), (ev, full)
    assert "Interrupted" in bot["note"], bot
    # The stored reply is the heard one too, and the next turn is the speech.
    conv = json.load(urllib.request.urlopen(
        f"{orch.url}/conversations/{page.eval('voxline.conversation()')}"))
    said = [t for t in conv["turns"] if t["role"] == "assistant"]
    assert said and said[0]["content"] == ev["heard"] and said[0]["interrupted"], conv


def test_stop_button_stops_the_reply(stack, browser):
    """The stop button (and Escape) sends {"type":"stop"}: playback ends at
    once and the orchestrator ends the turn as interrupted."""
    orch = stack.orch()
    page = browser.open(orch)
    page.say("#slow go on and on")
    page.wait("!document.getElementById('stop').disabled && voxline.playedSec() > 1", timeout=60,
              why="the reply to play")
    page.click("#stop")
    assert page.eval("voxline.state()") in ("idle", "listening")
    m = wait_turns(page, 1, timeout=30)
    assert m["interrupted"] is True, f"stop did not end the turn (waits on H1's stop): {m}"
    played = page.eval("voxline.playedSec()")
    page.eval("new Promise(r => setTimeout(r, 1000))")
    assert page.eval("voxline.playedSec()") == played


def test_tts_down_shows_error_then_recovers(stack, browser):
    """TTS stopped: its stage shows down, a turn shows an error saying the
    reply was not spoken and what to do; TTS back: the next turn speaks."""
    orch = stack.orch()
    page = browser.open(orch)
    tts_port = stack.tts.port
    stack.tts.stop()
    page.wait("document.querySelector('#stages li[data-stage=tts]').dataset.status === 'down'",
              timeout=20, why="the TTS chip to say down")
    page.say("are you there")
    m = wait_turns(page, 1)
    assert m["error"] == "tts", m
    err = page.wait("(() => { const e = [...document.querySelectorAll('#log .note.err, #log .bubble.error')]"
                    ".find(e => e.offsetParent !== null); return e && e.textContent; })()",
                    why="a visible error in the conversation")
    assert "text-to-speech" in err and "Start voxline-tts" in err, err
    assert page.eval("document.getElementById('live').textContent").count("text-to-speech")
    stack.tts = stack.start("tts", "--port", tts_port)
    page.wait("document.querySelector('#stages li[data-stage=tts]').dataset.status === 'ok'",
              timeout=30, why="the TTS chip to say up")
    played = page.eval("voxline.playedSec()")
    page.say("and now")
    m = wait_turns(page, 2)
    assert m["error"] is None, m
    page.wait(f"voxline.playedSec() > {played} + 0.5", timeout=30, why="the reply audio")


def test_reconnects_after_orchestrator_restart(stack, browser):
    """The orchestrator goes away: the page says so and retries with backoff;
    once it is back the page reconnects by itself to the same conversation."""
    orch = stack.orch()
    page = browser.open(orch)
    page.say("remember me")
    wait_turns(page, 1)
    conv = page.eval("voxline.conversation()")
    port = orch.port
    orch.stop()
    page.wait("document.getElementById('conn').textContent === 'Disconnected'", timeout=20)
    banner = page.wait("(() => { const b = document.getElementById('banner'); "
                       "return !b.hidden && b.textContent; })()", why="the banner")
    assert "orchestrator" in banner and "Retrying in" in banner, banner
    orch2 = stack.start("orchestrator", *stack.urls(), "--db", stack.db,
                        "--health-interval-s", "1", "--port", port)
    page.wait("document.getElementById('conn').textContent === 'Connected'", timeout=30,
              why="the page to reconnect by itself")
    readies = page.events("ready")
    assert readies[-1]["conversation_id"] == conv and readies[-1]["turns"] >= 2, readies
    assert page.eval("document.getElementById('banner').hidden")
    page.say("still there")
    m = wait_turns(page, 2)
    assert m["error"] is None, m
    orch2.stop()


def test_voice_change_takes_effect(stack, browser):
    """Picking another voice in Settings: it is stored, the next start
    message carries it, and the reply audio differs for the same text."""
    orch = stack.orch()
    page = browser.open(orch)
    page.wait("document.querySelectorAll('#voice option').length > 2", timeout=15,
              why="the voice list from GET /voices (H7)")
    page.say("hello there")
    wait_turns(page, 1)
    page.wait("voxline.state() !== 'speaking'", timeout=30)
    before = page.eval("voxline.audioBytes")
    page.select("#voice", "awb")
    page.wait("voxline.starts.length === 2 && document.getElementById('conn').textContent === 'Connected'",
              why="the page to start again with the new voice")
    assert page.eval("voxline.starts[1].voice") == "awb"
    assert page.eval("localStorage.getItem('voxline.voice')") == "awb"
    page.say("hello there")
    wait_turns(page, 2)
    after = page.eval("voxline.audioBytes") - before
    assert before > 0 and after > 0 and abs(after - before) > 1000, (before, after)
    page.call("reload")
    page.wait("document.getElementById('voice').value === 'awb'", why="the voice kept")


def test_past_conversations_listed_opened_deleted(stack, browser):
    """Two conversations: both listed, the first reopened (its bubbles back,
    the socket continues it), kept over a reload, the second deleted."""
    orch = stack.orch()
    page = browser.open(orch)
    page.say("first conversation")
    wait_turns(page, 1)
    first = page.eval("voxline.conversation()")
    page.click("#new-conv")
    page.wait(f"voxline.conversation() !== {json.dumps(first)} && "
              "document.getElementById('conn').textContent === 'Connected'", why="a new conversation")
    assert page.eval("document.querySelectorAll('#log li').length") == 0
    page.say("second one")
    wait_turns(page, 2)
    second = page.eval("voxline.conversation()")
    page.wait("document.querySelectorAll('#convs li[data-id]').length === 2", why="two listed")
    page.click(f'#convs li[data-id="{first}"] .open')
    page.wait(f"voxline.conversation() === {json.dumps(first)} && "
              "document.getElementById('conn').textContent === 'Connected'", why="the first reopened")
    texts = [b["text"] for b in bubbles(page)]
    assert texts == ["first conversation", "You said: first conversation."], texts
    page.call("reload")
    page.wait("document.querySelectorAll('#log li').length === 2", why="the bubbles after a reload")
    assert [b["text"] for b in bubbles(page)] == texts
    page.wait("document.querySelectorAll('#convs li[data-id]').length === 2", why="the list")
    page.click(f'#convs li[data-id="{second}"] .del')
    page.wait(f"!document.querySelector('#convs li[data-id=\"{second}\"]')", why="deleted")
    ids = [c["id"] for c in json.load(urllib.request.urlopen(orch.url + "/conversations"))["conversations"]]
    assert second not in ids and first in ids, ids


def axe_serious(page):
    return [v for v in page.call("axe") if v["impact"] in ("serious", "critical")]


def test_accessibility(stack, browser):
    """axe-core: no serious or critical violation, with bubbles and a
    reasoning fold on the page, settings open; a main landmark and a live
    region; labelled controls; the mic button takes the keyboard focus."""
    orch = stack.orch()
    page = browser
    page.goto(orch.url + "/")
    page.eval("localStorage.setItem('voxline.model', 'reasoner')")
    page.call("reload")
    page.wait("document.getElementById('conn').textContent === 'Connected'")
    page.say("hello")
    wait_turns(page, 1)
    assert page.eval("!!document.querySelector('#log details')")
    assert axe_serious(page) == []
    page.click("#settings-box summary")
    assert axe_serious(page) == []
    assert page.eval("document.querySelectorAll('main').length") == 1
    assert page.eval("document.getElementById('live').getAttribute('aria-live')") == "polite"
    # Every form control has a label; the mic button is reachable by keyboard.
    assert page.eval("[...document.querySelectorAll('input, select, textarea')]"
                     ".every(e => e.labels && e.labels.length > 0)")
    page.eval("document.getElementById('mic').focus()")
    assert page.eval("document.activeElement.id") == "mic"


def test_phone_width(stack, browser):
    """At 390 px wide: no sideways scrolling, the controls in view, a turn
    works, and axe still finds nothing serious."""
    orch = stack.orch()
    page = browser
    page.call("viewport", width=390, height=844)
    page.open(orch)
    page.say("small screen")
    wait_turns(page, 1)
    assert page.eval("document.documentElement.scrollWidth") <= 390
    for sel in ("#mic", "#text", "#stop", ".bubble.assistant"):
        box = page.eval(f"(() => {{ const r = document.querySelector('{sel}').getBoundingClientRect(); "
                        "return [r.left, r.right, r.width]; })()")
        assert box[0] >= 0 and box[1] <= 390 and box[2] > 0, (sel, box)
    assert axe_serious(page) == []


def test_mic_permission_denied(stack, browser_mic_blocked):
    """The microphone refused: the page says so where the mic is, and what
    to do; typing still works."""
    orch = stack.orch()
    page = browser_mic_blocked.open(orch)
    page.click("#mic")
    msg = page.wait("(() => { const m = document.getElementById('mic-msg'); "
                    "return !m.hidden && m.dataset.kind === 'error' && m.textContent; })()",
                    why="the permission error")
    assert "blocked" in msg and "Allow" in msg, msg
    assert page.eval("document.getElementById('mic').getAttribute('aria-pressed')") == "false"
    page.say("typing works")
    assert wait_turns(page, 1)["error"] is None


def test_text_typed_while_disconnected_is_sent_later(stack, browser):
    """Typed while disconnected: kept and sent once the connection is back."""
    orch = stack.orch()
    page = browser.open(orch)
    port = orch.port
    orch.stop()
    page.wait("document.getElementById('conn').textContent === 'Disconnected'", timeout=20)
    page.say("queued message")
    err = page.wait("(() => { const e = document.getElementById('send-err'); return !e.hidden && e.textContent; })()")
    assert "not connected" in err, err
    orch2 = stack.start("orchestrator", *stack.urls(), "--db", stack.db, "--port", port)
    m = wait_turns(page, 1, timeout=40)
    assert m["error"] is None and bubbles(page)[0]["text"] == "queued message"
    orch2.stop()


def test_push_to_talk(stack, browser):
    """Push-to-talk: audio goes out only while the button is held (Space on
    it); the release ends the turn."""
    orch = stack.orch()
    page = browser.open(orch)
    page.click('input[name="mode"][value="ptt"]')
    page.click("#mic")                       # opens the microphone, sends nothing
    page.wait("document.getElementById('mic-label').textContent === 'Hold to talk'")
    assert page.eval("voxline.sentFrames") == 0
    page.eval("document.getElementById('mic').focus()")
    page.call("keydown", key=" ")            # the fake microphone starts talking
    page.eval("new Promise(r => setTimeout(r, 4000))")
    assert page.eval("document.getElementById('mic').getAttribute('aria-pressed')") == "true"
    page.call("keyup", key=" ")
    m = wait_turns(page, 1)
    assert m["error"] is None, m
    assert len(WORDS & set(last(page, "transcript")["text"].split())) >= 3
    sent = page.eval("voxline.sentFrames")
    page.eval("new Promise(r => setTimeout(r, 1000))")
    assert page.eval("voxline.sentFrames") == sent, "audio sent while not held"


def test_reasoning_behind_a_toggle(stack, browser):
    """A thinking model's reasoning is in the bubble, folded away behind
    "Show reasoning", never in the reply text."""
    orch = stack.orch()
    page = browser
    page.goto(orch.url + "/")
    page.eval("localStorage.setItem('voxline.model', 'reasoner')")
    page.call("reload")
    page.wait("document.getElementById('conn').textContent === 'Connected'")
    assert page.eval("voxline.starts[0].model") == "reasoner"
    page.say("think first")
    m = wait_turns(page, 1)
    assert m["error"] is None, f"{m} (the start's model field waits on H1)"
    assert page.events("reasoning"), "no reasoning events (the start's model field waits on H1)"
    d = page.eval("(() => { const d = document.querySelector('.bubble.assistant details'); "
                  "return d && {open: d.open, summary: d.querySelector('summary').textContent, "
                  "text: d.querySelector('p').textContent, visible: d.querySelector('p').checkVisibility()}; })()")
    assert d and not d["open"] and d["summary"] == "Show reasoning" and not d["visible"], d
    assert "think about it" in d["text"], d
    assert "think about it" not in page.eval("document.querySelector('.bubble.assistant .text').textContent")
    page.click(".bubble.assistant summary")
    assert page.eval("document.querySelector('.bubble.assistant details').open")


def test_stage_down_says_how_to_start_it(stack, browser):
    """The LLM stage down: its chip says so and the banner carries the
    orchestrator's hint on how to start it; back up: the banner goes."""
    orch = stack.orch()
    page = browser.open(orch)
    llm_argv = stack.llm.argv[3:]
    port = stack.llm.port
    stack.llm.stop()
    page.wait("document.querySelector('#stages li[data-stage=llm]').dataset.status === 'down'",
              timeout=20, why="the LLM chip to say down")
    text = page.wait("(() => { const b = document.getElementById('banner'); "
                     "return !b.hidden && b.textContent; })()", timeout=15, why="the banner")
    assert "language model (LLM)" in text and "voxline-llm" in text, text
    stack.llm = stack.start("llm", *llm_argv, "--port", port)
    page.wait("document.getElementById('banner').hidden", timeout=30, why="the banner to go")
