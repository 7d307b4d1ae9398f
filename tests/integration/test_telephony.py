"""Phone calls through voxline-orchestrator: a Twilio Media Streams client
and a Telnyx media streaming client, written from the providers' public
docs (JSON events over a WebSocket, base64 8 kHz G.711 in `media`), run
whole calls against the real stack (vad, stt pocketsphinx, tts flite, llm
on the scripted upstream tests/llm_upstream.py): the greeting, a spoken
question in mu-law, the reply paced in 20 ms frames with marks after its
chunks, marks echoed as the phone would once the audio before them
played, a barge-in answered by `clear` with the history cut at the last
echoed mark, `stop` ending the call; bad messages; the TwiML/TeXML
webhooks and X-Twilio-Signature; 100 calls at once."""
import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import threading
import time
import urllib.parse

import numpy as np
import pytest
import websocket

from conftest import BIN, Daemon
from fake_llm import LlmUpstream

RATE = 8000
FRAME = 160                 # bytes of 20 ms of 8 kHz G.711
SILENCE = b"\xff" * FRAME   # mu-law zero
QUESTION = "what is the weather like in paris today"
GREETING = "Hello, how can I help?"
MARK_RE = re.compile(r"^r(\d+):(\d+)$")


def words(s):
    return re.findall(r"[a-z0-9']+", s.lower())


# ---- G.711 mu-law (ITU-T G.711, the usual biased segment encoder) ----

def mulaw_encode(pcm16):
    x = np.frombuffer(pcm16, dtype="<i2").astype(np.int32)
    sign = (x < 0).astype(np.int32) << 7
    mag = np.minimum(np.abs(x), 32635) + 0x84
    exp = np.floor(np.log2(mag)).astype(np.int32) - 7
    exp = np.clip(exp, 0, 7)
    mant = (mag >> (exp + 3)) & 0x0F
    return (~(sign | (exp << 4) | mant) & 0xFF).astype(np.uint8).tobytes()


# ---- the stack ----

@pytest.fixture(scope="module")
def upstream():
    u = LlmUpstream()
    yield u
    u.stop()


class Stack:
    """vad, stt, tts and llm, started once for the file (the orchestrator
    of each test is its own, through the `start` fixture)."""

    def __init__(self, upstream, tmp):
        self.tmp = tmp
        self.daemons = []
        env = dict(os.environ)
        for svc in ("vad", "stt", "tts", "llm"):
            env[f"VOXLINE_{svc.upper()}_DRAIN_DELAY_S"] = "0"

        def up(name, *args):
            d = Daemon([os.path.join(BIN, "voxline-" + name), "--port", "0", *args],
                       str(tmp / f"voxline-{name}.log"), env)
            self.daemons.append(d)
            return d
        self.vad = up("vad", "--max-connections", "1024")
        self.stt = up("stt", "--max-connections", "1024")
        self.tts = up("tts", "--max-connections", "1024")
        self.llm = up("llm", "--engine", "openai", "--url", upstream.url,
                      "--max-connections", "1024")
        for d in self.daemons:
            d.wait_ready()
        self.start = None
        self.db = None

    def orch(self, *args):
        return self.start("orchestrator", "--vad-url", self.vad.url,
                          "--stt-url", self.stt.url, "--tts-url", self.tts.url,
                          "--llm-url", self.llm.url, "--db", self.db,
                          "--health-interval-s", "1", *args)

    def warm_stt(self, mulaw):
        """pocketsphinx's first 8 kHz utterance on a fresh decoder is often
        misheard (seen here: "one" or "what a hurricane what" for the
        question, fine from the second on): each decoder hears the phone
        audio once first."""
        ts = [threading.Thread(target=self.stt.post, args=(
            "/transcribe", mulaw, "audio/pcmu;rate=8000")) for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    def mulaw_speech(self, text):
        """flite saying text, 8 kHz mu-law (the phone network's format)."""
        r = self.tts.post_json("/synthesize", {"text": text, "sample_rate": RATE,
                                               "return_format": "pcm"})
        assert r.status == 200, r
        return mulaw_encode(r.body)

    def stop(self):
        bad = []
        for d in self.daemons:
            alive = d.alive()
            rc = d.stop()
            if not alive or rc not in (0, None):
                bad.append(f"{d.argv[0]} exited {rc}:\n{d.log()[-2000:]}")
        return bad


@pytest.fixture(scope="module")
def services(upstream, tmp_path_factory):
    s = Stack(upstream, tmp_path_factory.mktemp("telephony"))
    s.warm_stt(s.mulaw_speech(QUESTION))
    yield s
    bad = s.stop()
    assert not bad, "\n".join(bad)


@pytest.fixture
def stack(services, start, upstream, tmp_path):
    upstream.reset()
    services.start = start
    services.db = str(tmp_path / "orch.db")
    return services


# ---- a phone provider's side of the stream ----

class Call:
    """The provider's end of one media stream: sends the call's events and
    the caller's audio; plays the reply in real time (a 20 ms frame after
    the one before, from its arrival on) and echoes each mark once the
    audio sent before it has played, as Twilio and Telnyx do; `clear` drops
    what is unplayed and returns its marks at once.

    ack_until: reply bytes; from the first mark past it on none is echoed
    (a phone that stopped reporting), None echoes all."""

    def __init__(self, orch, provider="twilio", ack_until=None):
        self.provider = provider
        self.ws = websocket.create_connection(f"{orch.ws_url}/ws/{provider}", timeout=30)
        self.ack_until = ack_until
        self.lock = threading.Lock()
        self.got = []            # (monotonic time, message) in arrival order
        self.frames = []         # (time, payload bytes) of media
        self.echoed = []         # mark names echoed
        self.pending = []        # (play end time, mark name)
        self.play_end = 0.0      # when the queued audio has played
        self.acks_stopped = False
        self.closed = None       # close frame payload once closed
        self.seq = 0
        self.sent_ms = 0
        self.stream_sid = "MZ" + hashlib.md5(str(time.time()).encode()).hexdigest()
        self.ws.settimeout(None)   # a socket timeout would also cut sends
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.echoer = threading.Thread(target=self._echo_due, daemon=True)
        self.echoer.start()

    # -- sending (the caller) --
    def send(self, obj):
        self.seq += 1
        if self.provider == "twilio":
            obj.setdefault("sequenceNumber", str(self.seq))
            if obj["event"] != "connected":
                obj.setdefault("streamSid", self.stream_sid)
        else:
            obj.setdefault("sequence_number", str(self.seq))
            if obj["event"] != "connected":
                obj.setdefault("stream_id", self.stream_sid)
        self.ws.send(json.dumps(obj))

    def begin(self, custom=None, encoding=None):
        if self.provider == "twilio":
            self.send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
            self.call_sid = "CA" + self.stream_sid[2:]
            self.send({"event": "start", "start": {
                "streamSid": self.stream_sid, "accountSid": "AC0123",
                "callSid": self.call_sid, "tracks": ["inbound"],
                "customParameters": custom or {},
                "mediaFormat": {"encoding": encoding or "audio/x-mulaw",
                                "sampleRate": RATE, "channels": 1}}})
        else:
            self.send({"event": "connected", "version": "1.0.0"})
            self.call_sid = "v3:" + self.stream_sid
            self.send({"event": "start", "start": {
                "user_id": "3e6f995f", "call_control_id": self.call_sid,
                "call_session_id": "sess-" + self.stream_sid[2:10],
                "from": "+13125550100", "to": "+13125550199",
                "client_state": "aGVsbG8=", "custom_parameters": custom or {},
                "media_format": {"encoding": encoding or "PCMU",
                                 "sample_rate": RATE, "channels": 1}}})

    def media(self, payload):
        self.sent_ms += 20
        m = {"payload": base64.b64encode(payload).decode()}
        m.update(track="inbound", chunk=str(self.sent_ms // 20),
                 timestamp=str(self.sent_ms))   # the same in both
        self.send({"event": "media", "media": m})

    def talk(self, audio, silence_ms=0, stop_when=None):
        """Sends audio then silence as 20 ms frames in real time."""
        data = audio + SILENCE * (silence_ms // 20)
        data += b"\xff" * (-len(data) % FRAME)
        t0 = time.monotonic()
        for i in range(0, len(data), FRAME):
            if stop_when and stop_when():
                return
            delay = t0 + (i // FRAME) * 0.02 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                self.media(data[i:i + FRAME])
            except (websocket.WebSocketException, OSError):
                if self.closed is None:
                    raise
                return   # the server closed the call

    def stop(self):
        if self.provider == "twilio":
            self.send({"event": "stop", "stop": {"accountSid": "AC0123",
                                                 "callSid": self.call_sid}})
        else:
            self.send({"event": "stop", "stop": {"user_id": "3e6f995f",
                                                 "call_control_id": self.call_sid}})

    # -- receiving (the phone playing the reply) --
    def _echo(self, name):
        self.echoed.append(name)
        try:
            self.send({"event": "mark", "mark": {"name": name}})
        except (websocket.WebSocketException, OSError):
            pass

    def _echo_due(self):
        while self.closed is None:
            now = time.monotonic()
            with self.lock:
                due = [p for p in self.pending if p[0] <= now]
                self.pending = [p for p in self.pending if p[0] > now]
            for _, name in due:
                self._echo(name)
            time.sleep(0.005)

    def _read(self):
        while self.closed is None:
            try:
                op, data = self.ws.recv_data()
            except (websocket.WebSocketException, OSError):
                self.closed = b""
                break
            t = time.monotonic()
            if op == websocket.ABNF.OPCODE_CLOSE:
                self.closed = data
                break
            if op != websocket.ABNF.OPCODE_TEXT:
                self.got.append((t, {"event": "_binary"}))
                continue
            msg = json.loads(data)
            with self.lock:
                self.got.append((t, msg))
                ev = msg.get("event")
                if ev == "media":
                    payload = base64.b64decode(msg["media"]["payload"])
                    self.frames.append((t, payload))
                    self.play_end = max(self.play_end, t) + len(payload) / RATE
                elif ev == "mark":
                    name = msg["mark"]["name"]
                    m = MARK_RE.match(name)
                    if self.acks_stopped:
                        continue
                    if self.ack_until is not None and m and int(m[2]) > self.ack_until:
                        self.acks_stopped = True
                        continue
                    self.pending.append((max(self.play_end, t), name))
                elif ev == "clear":
                    # Unplayed audio is dropped; its marks come back now.
                    self.play_end = t
                    due, self.pending = self.pending, []
                    for _, name in due:
                        self._echo(name)

    def events(self, name):
        with self.lock:
            return [(t, m) for t, m in self.got if m.get("event") == name]

    def wait(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            time.sleep(0.02)
        raise AssertionError(f"{what}: not within {timeout} s; got "
                             f"{[m.get('event') for _, m in self.got][-20:]}")

    def wait_reply_played(self, n_frames_before, quiet_s=0.6, timeout=30):
        """Waits until frames beyond n_frames_before came, then none for
        quiet_s and every echo is out."""
        def done():
            with self.lock:
                if len(self.frames) <= n_frames_before:
                    return False
                last = self.frames[-1][0]
                return (time.monotonic() - last > quiet_s and not self.pending
                        and time.monotonic() > self.play_end)
        self.wait(done, timeout, "reply audio")

    def close(self):
        try:
            if self.closed is None:
                self.ws.sock.shutdown(2)   # wakes the reader
        except (AttributeError, OSError):
            pass
        self.reader.join(5)
        self.closed = self.closed if self.closed is not None else b""
        self.echoer.join(5)
        try:
            self.ws.close()
        except (websocket.WebSocketException, OSError):
            pass


def check_frames(frames, what):
    """Every media payload is 160 bytes; a reply of N frames is spread over
    about (N - 1) * 20 ms: paced in real time, not sent in a burst."""
    assert frames, f"{what}: no media"
    assert all(len(p) == FRAME for _, p in frames), \
        f"{what}: frame sizes {sorted(set(len(p) for _, p in frames))}"
    n = len(frames)
    span = frames[-1][0] - frames[0][0]
    want = (n - 1) * 0.02
    print(f"{what}: {n} frames over {span * 1000:.0f} ms (real time {want * 1000:.0f} ms)")
    assert span >= want * 0.85 - 0.06, (span, want)
    assert span <= want + 3.0, (span, want)
    # No burst: at most 10 frames (5 due, 5 caught up after a stall) in
    # any 100 ms window.
    times = [t for t, _ in frames]
    j = 0
    for i in range(n):
        while times[i] - times[j] > 0.1:
            j += 1
        assert i - j + 1 <= 10, f"{what}: {i - j + 1} frames within 100 ms"


def check_marks(call, what):
    """Marks are ours (r<reply>:<bytes>), come after media, with growing
    byte counts within a reply, and were echoed."""
    marks = [m["mark"]["name"] for _, m in call.events("mark")]
    assert marks, f"{what}: no marks"
    last = {}
    for name in marks:
        m = MARK_RE.match(name)
        assert m, name
        r, b = int(m[1]), int(m[2])
        assert b > last.get(r, 0), marks
        last[r] = b
    return marks


def get_conv(orch, cid, n_turns, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        r = orch.get(f"/conversations/{cid}")
        if r.status == 200 and len(r.json()["turns"]) >= n_turns:
            return r.json()
        assert time.monotonic() < deadline, (r.status, r.body[:2000])
        time.sleep(0.1)


# ---- whole calls ----

def whole_call(stack, orch, provider, greeting):
    cid = f"{provider}-call"
    call = Call(orch, provider)
    call.begin(custom={"conversation_id": cid, "account": "42"})
    n0 = 0
    if greeting:
        # The caller listens (silence on the line) while the greeting plays.
        stop = threading.Event()
        t = threading.Thread(target=call.talk, args=(b"", 30000),
                             kwargs={"stop_when": stop.is_set})
        t.start()
        call.wait_reply_played(0, timeout=30)
        stop.set()
        t.join()
        check_frames(call.frames, f"{provider} greeting")
        n0 = len(call.frames)
        assert call.echoed, "greeting marks not echoed"
    speech = stack.mulaw_speech(QUESTION)
    call.talk(speech)
    t_end = time.monotonic()
    stop = threading.Event()
    t = threading.Thread(target=call.talk, args=(b"", 30000),
                         kwargs={"stop_when": stop.is_set})
    t.start()
    call.wait_reply_played(n0, timeout=45)
    stop.set()
    t.join()
    reply = call.frames[n0:]
    check_frames(reply, f"{provider} reply")
    print(f"{provider}: end of speech -> first reply frame "
          f"{(reply[0][0] - t_end) * 1000:.0f} ms")
    marks = check_marks(call, provider)
    assert set(marks) <= set(call.echoed) | set(n for _, n in call.pending)
    assert not call.events("clear"), "clear without a barge-in"
    n_turns = 3 if greeting else 2
    conv = get_conv(orch, cid, n_turns)
    call.stop()
    call.wait(lambda: call.closed is not None, 10, "close after stop")
    code = int.from_bytes(call.closed[:2], "big") if len(call.closed) >= 2 else None
    assert code in (1000, None), call.closed
    call.close()
    turns = conv["turns"]
    roles = [t["role"] for t in turns]
    if greeting:
        assert roles[:3] == ["assistant", "user", "assistant"], turns
        assert turns[0]["content"] == GREETING
        turns = turns[1:]
    assert roles[-2:] == ["user", "assistant"], turns
    assert len(set(words(QUESTION)) & set(words(turns[0]["content"]))) >= 3, conv["turns"]
    assert turns[1]["content"] == "You said: %s." % turns[0]["content"]
    assert turns[1]["interrupted"] is False
    return conv, call


def test_twilio_whole_call_with_greeting(stack):
    orch = stack.orch("--telephony-greeting", GREETING)
    conv, call = whole_call(stack, orch, "twilio", greeting=True)
    tel = conv["meta"]["telephony"]
    assert tel["provider"] == "twilio"
    assert tel["stream_sid"] == call.stream_sid and tel["call_sid"] == call.call_sid
    assert tel["account_sid"] == "AC0123"
    assert tel["custom_parameters"] == {"conversation_id": "twilio-call", "account": "42"}
    # Every outgoing message names the stream (Twilio needs streamSid).
    for _, m in call.got:
        if m.get("event") in ("media", "mark", "clear"):
            assert m.get("streamSid") == call.stream_sid, m


def test_telnyx_whole_call_without_greeting(stack):
    orch = stack.orch()
    conv, call = whole_call(stack, orch, "telnyx", greeting=False)
    tel = conv["meta"]["telephony"]
    assert tel["provider"] == "telnyx"
    assert tel["call_control_id"] == call.call_sid
    assert tel["stream_id"] == call.stream_sid
    assert tel["from"] == "+13125550100" and tel["to"] == "+13125550199"
    assert tel["client_state"] == "aGVsbG8="
    for _, m in call.got:
        if m.get("event") == "media":
            assert set(m) == {"event", "media"} and set(m["media"]) == {"payload"}, m


def barge_call(stack, orch, cid, ack_until):
    """A question with a long reply (the upstream's slow words), the phone
    echoing marks up to ack_until bytes, then the caller talks over it."""
    call = Call(orch, "twilio", ack_until=ack_until)
    call.begin(custom={"conversation_id": cid})
    call.talk(stack.mulaw_speech("tell me a long story"))
    stop = threading.Event()
    t = threading.Thread(target=call.talk, args=(b"", 30000),
                         kwargs={"stop_when": stop.is_set})
    t.start()
    call.wait(lambda: len(call.frames) >= 100, 40, "2 s of reply audio")
    stop.set()
    t.join()
    t_talk = time.monotonic()
    call.talk(stack.mulaw_speech("stop please, that is enough"), silence_ms=1500)
    clears = call.events("clear")
    assert clears, "no clear after the barge-in"
    print(f"clear {(clears[0][0] - t_talk) * 1000:.0f} ms after the caller began")
    # The cut turn is stored at the barge-in: the question and the part
    # of the reply heard (none: no assistant message). The caller's words
    # then are the next turn, whose slow reply the stop ends.
    get_conv(orch, cid, 1, timeout=15)
    time.sleep(0.3)
    call.stop()
    call.wait(lambda: call.closed is not None, 10, "close after stop")
    call.close()
    time.sleep(0.5)
    turns = get_conv(orch, cid, 1)["turns"]
    assert turns[0]["role"] == "user", turns
    if len(turns) == 1 or turns[1]["role"] == "user":
        return None, call   # nothing of the reply was heard: not stored
    cut = turns[1]
    assert cut["interrupted"] is True, cut
    # Audio queued after the clear is not sent.
    t_clear = clears[0][0]
    late = [t for t, _ in call.frames if t > t_clear + 0.1]
    assert len(late) < 10 or late[0] > t_clear + 0.5, "reply frames after clear"
    return cut["content"], call


def test_barge_in_clears_and_history_keeps_what_was_marked_played(stack):
    orch = stack.orch("--llm-model", "slow", "--barge-in-policy", "immediate")
    full = " ".join("w%d" % i for i in range(1, 101))
    # The phone confirms nothing: although seconds of reply were sent in
    # real time, nothing counts as heard.
    heard, call = barge_call(stack, orch, "barge-none", ack_until=0)
    assert heard is None, heard
    assert len(call.frames) >= 100 and not call.echoed
    # The phone confirms about the first second: that much is kept.
    heard, call = barge_call(stack, orch, "barge-some", ack_until=RATE)
    acked = [int(MARK_RE.match(n)[2]) for n in call.echoed if MARK_RE.match(n)]
    print(f"heard {heard!r} after marks up to {max(acked)} bytes")
    assert heard and full.startswith(heard), heard
    # The reply audio sent was well past the acknowledged part: the clock
    # would have kept more words than the marks.
    assert len(call.frames) * FRAME > 2 * max(acked)
    assert len(heard.split()) <= 6, heard


def test_bad_messages_do_not_crash_and_the_call_goes_on(stack):
    orch = stack.orch("--telephony-greeting", "Hi.")
    call = Call(orch, "twilio")
    for junk in ["not json", "[]", '{"event": 5}', '{"event":"media"}',
                 '{"event":"media","media":{"payload":"%%%"}}', '{"event":"what"}',
                 '{"event":"mark","mark":{"name":"r99:12"}}', '{"event":"start"}',
                 '{"event":"start","start":7}', '{"event":"mark"}',
                 '{"event":"media","media":{"payload":"' + "A" * 70000 + '"}}',
                 '{"event":"dtmf","dtmf":{"digit":"1"}}', '{"ev\\u0000ent":"x"}']:
        call.ws.send(junk)
    call.ws.send_binary(b"\x00\x01")
    call.begin(custom={"conversation_id": "junk"})
    call.send({"event": "start", "start": {"streamSid": "other"}})   # a second start
    call.send({"event": "media", "media": {"payload": "////"}})
    stop = threading.Event()
    t = threading.Thread(target=call.talk, args=(b"", 20000), kwargs={"stop_when": stop.is_set})
    t.start()
    call.wait_reply_played(0, timeout=30)
    stop.set()
    t.join()
    check_frames(call.frames, "greeting after junk")
    call.stop()
    call.wait(lambda: call.closed is not None, 10, "close after stop")
    call.close()
    assert orch.get("/healthz").status == 200
    # A format we cannot take is refused with 1003, not misheard.
    call = Call(orch, "telnyx")
    call.begin(encoding="L16")
    call.wait(lambda: call.closed is not None, 10, "close on a bad format")
    assert int.from_bytes(call.closed[:2], "big") == 1003, call.closed
    call.close()
    # Gone without a stop (the provider dropped): the conversation ends.
    call = Call(orch, "twilio")
    call.begin(custom={"conversation_id": "dropped"})
    call.talk(b"", silence_ms=300)
    call.close()
    assert orch.get("/healthz").status == 200
    deadline = time.monotonic() + 10
    while "voxline_orch_calls 0" not in orch.get("/metrics").body.decode():
        assert time.monotonic() < deadline, "calls not freed"
        time.sleep(0.1)


# ---- webhooks ----

def twilio_signature(token, url, params):
    data = url + "".join(k + v for k, v in sorted(params.items()))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1)
                            .digest()).decode()


def test_twiml_and_texml_connect_the_call_to_the_stream(stack):
    orch = stack.orch()
    form = {"CallSid": "CA1", "From": "+15551234567", "To": "+15557654321"}
    body = urllib.parse.urlencode(form).encode()
    ctype = "application/x-www-form-urlencoded"
    r = orch.post("/twilio/voice", body, ctype, headers={"Host": "voice.example.com"})
    assert r.status == 200, r
    x = r.body.decode()
    assert r.headers.get("Content-Type", "").startswith("application/xml")
    assert "<Response><Connect><Stream url=\"wss://voice.example.com/ws/twilio\">" in x, x
    assert '<Parameter name="from" value="+15551234567"/>' in x, x
    r = orch.post("/telnyx/voice", body, ctype, headers={"Host": "voice.example.com"})
    assert r.status == 200, r
    assert 'url="wss://voice.example.com/ws/telnyx" bidirectionalMode="rtp"' in r.body.decode()


def test_twilio_signature_is_checked_when_a_token_is_set(stack):
    token = "12345678901234567890123456789012"
    orch = stack.orch("--twilio-auth-token", token, "--public-url", "https://voice.example.com/")
    url = "https://voice.example.com/twilio/voice"
    form = {"CallSid": "CA1", "From": "+1 555 & co", "To": "+15557654321",
            "AccountSid": "AC1", "Digits": "1234"}
    body = urllib.parse.urlencode(form).encode()
    ctype = "application/x-www-form-urlencoded"
    good = twilio_signature(token, url, form)
    r = orch.post("/twilio/voice", body, ctype, headers={"X-Twilio-Signature": good})
    assert r.status == 200, r
    assert 'url="wss://voice.example.com/ws/twilio"' in r.body.decode()
    assert 'value="+1 555 &amp; co"' in r.body.decode()
    for bad in [None, "x" * 28, twilio_signature("wrong", url, form),
                twilio_signature(token, url + "?", form),
                twilio_signature(token, url, {**form, "Digits": "9"})]:
        headers = {"X-Twilio-Signature": bad} if bad else {}
        r = orch.post("/twilio/voice", body, ctype, headers=headers)
        assert r.status == 403, (bad, r)
        assert r.json()["error"]["code"] == "bad_signature"


def test_telnyx_signature_is_checked_when_a_key_is_set(stack):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    orch = stack.orch("--telnyx-public-key", base64.b64encode(raw).decode(),
                      "--public-url", "https://voice.example.com")
    body = urllib.parse.urlencode({"CallSid": "v3:abc", "From": "+15551234567",
                                   "To": "+15557654321"}).encode()
    ctype = "application/x-www-form-urlencoded"

    def signed(ts, signer=key, payload=body):
        sig = signer.sign(str(ts).encode() + b"|" + payload)
        return {"telnyx-timestamp": str(ts), "telnyx-signature-ed25519": base64.b64encode(sig).decode()}

    now = int(time.time())
    r = orch.post("/telnyx/voice", body, ctype, headers=signed(now))
    assert r.status == 200, r
    assert 'url="wss://voice.example.com/ws/telnyx"' in r.body.decode()
    bad = [({}, "missing"),
           (signed(now - 400), "5 minutes"),                 # a replay
           (signed(now + 400), "5 minutes"),
           (signed(now, Ed25519PrivateKey.generate()), "does not match"),
           (signed(now, payload=body + b"&Digits=9"), "does not match"),
           ({**signed(now), "telnyx-signature-ed25519": "AAAA"}, "does not match"),
           ({**signed(now), "telnyx-timestamp": "12x"}, "5 minutes")]
    for headers, why in bad:
        r = orch.post("/telnyx/voice", body, ctype, headers=headers)
        assert r.status == 403, (headers, r)
        err = r.json()["error"]
        assert err["code"] == "bad_signature" and why in err["message"], (headers, err)
    # Twilio's route is not affected by the Telnyx key
    r = orch.post("/twilio/voice", body, ctype)
    assert r.status == 200, r


def test_a_bad_telnyx_key_stops_the_orchestrator(stack):
    for key in ["not base64!", base64.b64encode(b"x" * 31).decode()]:
        p = subprocess.run([os.path.join(BIN, "voxline-orchestrator"), "--port", "0",
                            "--telnyx-public-key", key], capture_output=True, text=True, timeout=20)
        assert p.returncode == 2, p
        assert "--telnyx-public-key" in p.stderr, p.stderr


# ---- load ----

def test_100_concurrent_calls(stack):
    n = 100
    orch = stack.orch("--telephony-greeting", "Hello there.", "--max-calls", str(n))
    calls, errors = [], []

    def one(i):
        try:
            c = Call(orch, "twilio" if i % 2 else "telnyx")
            calls.append(c)
            c.begin(custom={"conversation_id": f"load-{i}"})
            stop = threading.Event()
            t = threading.Thread(target=c.talk, args=(b"", 60000),
                                 kwargs={"stop_when": stop.is_set}, daemon=True)
            t.start()
            c.wait_reply_played(0, quiet_s=0.8, timeout=60)
            stop.set()
            t.join()
            c.stop()
            c.wait(lambda: c.closed is not None, 15, "close after stop")
        except Exception as e:   # collected and reported below
            errors.append(f"call {i}: {e!r}")

    t0 = time.monotonic()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    elapsed = time.monotonic() - t0
    print(f"{n} calls in {elapsed:.1f} s")
    for c in calls:
        c.close()
    assert not errors, errors[:5]
    frames = [len(c.frames) for c in calls]
    assert min(frames) >= 25, frames   # "Hello there." is about a second
    for c in calls:
        assert all(len(p) == FRAME for _, p in c.frames)
        assert c.echoed
    # Every call's greeting is in its conversation, with its ids.
    lst = orch.get("/conversations?limit=1000").json()["conversations"]
    ids = {x["id"] for x in lst if x["id"].startswith("load-")}
    assert len(ids) == n, len(ids)
    conv = get_conv(orch, "load-7", 1)
    assert conv["turns"][0]["content"] == "Hello there."
    assert conv["meta"]["telephony"]["provider"] == "twilio"
    assert orch.get("/healthz").status == 200
