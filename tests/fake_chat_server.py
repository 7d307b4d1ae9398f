#!/usr/bin/python3
"""A fake orchestrator /ws/chat for testing voxline-client, and that test.

  fake_chat_server.py --port N         serve (prints "port N" when listening)
  fake_chat_server.py --check CLIENT   run voxline-client against it; prints
                                       "N passed, N failed", exit 1 on failure

Stdlib only: a minimal RFC 6455 server (no extensions). The fake follows the
/ws/chat protocol: start -> ready; an energy VAD on the binary frames sends
speech_started / speech_stopped; after 300 ms of silence (or a "text"
message) it replies: transcript ("<N> ms of speech" or the text),
response_delta, audio_start, 600 ms of a 440 Hz tone paced in real time in
the asked encoding and rate, audio_end, metrics. Speech during the reply is
a barge-in: interrupted, then metrics for the cut turn. Voice "fail" answers
start with an error; voice "silent" never replies; voice "tts_down" fails
every odd turn the way the orchestrator does when a stage is missing
(transcript, response_delta, an error event naming the stage, metrics, no
audio); voice "error_no_metrics" sends an error and never ends the turn. metrics also reports
what the fake received on this connection so far: received_audio_ms,
frame_bytes, stream_ms (first to last input frame).
"""
import base64, hashlib, json, math, os, socket, struct, subprocess, sys
import tempfile, threading, time, wave, warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TONE_MS, TONE_HZ, VAD_RMS, END_SILENCE_MS = 600, 440, 1000, 300


class Conn:
    def __init__(self, sock):
        self.sock, self.lock, self.buf = sock, threading.Lock(), b""

    def _read(self, n):
        while len(self.buf) < n:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError
            self.buf += d
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def handshake(self):
        while b"\r\n\r\n" not in self.buf:
            d = self.sock.recv(4096)
            if not d:
                raise EOFError
            self.buf += d
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        hdr = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
        if lines[0].split()[1] != "/ws/chat" or "sec-websocket-key" not in hdr:
            self.sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            raise EOFError
        acc = base64.b64encode(hashlib.sha1((hdr["sec-websocket-key"] + GUID).encode()).digest())
        self.sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + acc + b"\r\n\r\n")

    def recv(self):
        """One whole message: (opcode, payload); opcode 8 = close."""
        data, first = b"", None
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else b"\0\0\0\0"
            p = bytes(c ^ mask[i % 4] for i, c in enumerate(self._read(n)))
            op = b0 & 0x0F
            if op == 9:
                self.send(p, 10)
                continue
            if op >= 8:
                return op, p
            first = first or op
            data += p
            if b0 & 0x80:
                return first, data

    def send(self, payload, op=1):
        if isinstance(payload, (dict, str)):
            payload = (json.dumps(payload) if isinstance(payload, dict) else payload).encode()
        n = len(payload)
        head = bytes([0x80 | op]) + (bytes([n]) if n < 126 else
                                     b"\x7e" + struct.pack(">H", n) if n < 65536 else
                                     b"\x7f" + struct.pack(">Q", n))
        with self.lock:
            self.sock.sendall(head + payload)


def encode(pcm16, enc):
    return {"pcm16": pcm16, "mulaw": audioop.lin2ulaw(pcm16, 2) if enc == "mulaw" else b"",
            "alaw": audioop.lin2alaw(pcm16, 2) if enc == "alaw" else b""}[enc]


def decode(data, enc):
    return {"pcm16": lambda: data, "mulaw": lambda: audioop.ulaw2lin(data, 2),
            "alaw": lambda: audioop.alaw2lin(data, 2)}[enc]()


def session(c):
    c.handshake()
    op, msg = c.recv()
    start = json.loads(msg)
    rate, enc, voice = start["sample_rate"], start["encoding"], start.get("voice")
    if voice == "fail":
        c.send({"type": "error", "error": {"code": "bad_voice", "message": "no such voice"}})
    else:
        c.send({"type": "ready", "conversation_id": start.get("conversation_id") or "fake-conv-1"})
    st = {"speaking": False, "silence": 0.0, "speech": 0.0, "recv_ms": 0.0, "sizes": set(),
          "t0": None, "t1": None, "turn": 0, "reply": None, "cancel": None}

    def reply(text, cancel):
        c.send({"type": "transcript", "text": text})
        c.send({"type": "response_delta", "text": "You said: " + text})
        if voice == "error_no_metrics" or (voice == "tts_down" and st["turn"] % 2 == 1):
            c.send({"type": "error", "stage": "tts", "code": "unavailable",
                    "message": "voxline-tts unreachable: Connection refused"})
            if voice == "tts_down":
                c.send(metrics(False))
            return
        c.send({"type": "audio_start", "sample_rate": rate, "encoding": enc})
        per = rate // 50
        for i in range(TONE_MS // 20):
            if cancel.is_set():
                return
            pcm = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * TONE_HZ * (i * per + k) / rate)))
                           for k in range(per))
            c.send(encode(pcm, enc), 2)
            time.sleep(0.02)
        c.send({"type": "audio_end"})
        c.send(metrics(False))

    def metrics(interrupted):
        m = {"type": "metrics", "turn": st["turn"], "interrupted": interrupted,
             "received_audio_ms": round(st["recv_ms"]), "frame_bytes": sorted(st["sizes"]),
             "stream_ms": round(1000 * (st["t1"] - st["t0"])) if st["t0"] else 0}
        return m

    def start_reply(text):
        st["turn"] += 1
        st["cancel"] = threading.Event()
        st["reply"] = threading.Thread(target=reply, args=(text, st["cancel"]))
        st["reply"].start()

    while True:
        op, msg = c.recv()
        if op == 8:
            c.send(b"\x03\xe8", 8)
            break
        if op == 1:
            m = json.loads(msg)
            if m.get("type") == "text" and voice != "silent":
                start_reply(m["text"])
            continue
        now = time.monotonic()
        st["t0"], st["t1"] = st["t0"] or now, now
        st["sizes"].add(len(msg))
        pcm = decode(msg, enc)
        dur = 1000.0 * len(pcm) / 2 / rate
        st["recv_ms"] += dur
        if audioop.rms(pcm, 2) > VAD_RMS:
            if not st["speaking"]:
                st["speaking"] = True
                c.send({"type": "speech_started"})
                if st["reply"] and st["reply"].is_alive():
                    st["cancel"].set()
                    st["reply"].join()
                    c.send({"type": "interrupted"})
                    c.send(metrics(True))
            st["silence"], st["speech"] = 0.0, st["speech"] + dur
        elif st["speaking"]:
            st["silence"] += dur
            if st["silence"] >= END_SILENCE_MS:
                st["speaking"] = False
                c.send({"type": "speech_stopped"})
                if voice != "silent":
                    start_reply("%d ms of speech" % round(st["speech"], -1))
                st.update(speech=0.0)


def serve(port, ready=None):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(16)
    if ready:
        ready(ls.getsockname()[1])
    else:
        print("port", ls.getsockname()[1], flush=True)
    while True:
        s, _ = ls.accept()
        threading.Thread(target=run_session, args=(s,), daemon=True).start()


def run_session(s):
    try:
        session(Conn(s))
    except (EOFError, OSError, ValueError, KeyError):
        pass
    finally:
        s.close()


# ---- the client test --------------------------------------------------------

def check(client):
    tmp = tempfile.mkdtemp(prefix="test_voxline_client.")
    wav_in = os.path.join(tmp, "in.wav")
    with wave.open(wav_in, "wb") as w:  # 1 s of 300 Hz, 22050 Hz stereo
        w.setnchannels(2), w.setsampwidth(2), w.setframerate(22050)
        w.writeframes(b"".join(struct.pack("<hh", v, v) for v in
                               (int(10000 * math.sin(2 * math.pi * 300 * i / 22050)) for i in range(22050))))
    got = {}
    threading.Thread(target=serve, args=(0, lambda p: got.setdefault("port", p)), daemon=True).start()
    while "port" not in got:
        time.sleep(0.01)
    url = "ws://127.0.0.1:%d/ws/chat" % got["port"]
    results = []

    def run(name, args, want_rc, checks):
        t = time.monotonic()
        p = subprocess.run([client, "--url", url] + args, capture_output=True, text=True, timeout=60)
        el = time.monotonic() - t
        ev = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
        types = [e.get("type") for e in ev]
        errs = [] if p.returncode == want_rc else ["exit %d, want %d" % (p.returncode, want_rc)]
        try:
            for ok, what in checks(ev, types, el):
                if not ok:
                    errs.append(what)
        except Exception as e:  # a missing event or file
            errs.append("%s: %r" % (type(e).__name__, e))
        print(("ok   " if not errs else "FAIL ") + name, flush=True)
        for e in errs:
            print("   ", e, "\n    stdout:", p.stdout, "\n    stderr:", p.stderr)
        results.append(not errs)

    def first(ev, t):
        return next(e for e in ev if e.get("type") == t)

    def tone_wav(path, rate):
        with wave.open(path) as w:
            data = w.readframes(w.getnframes())
            ok = w.getframerate() == rate and w.getnchannels() == 1
        s = struct.unpack("<%dh" % (len(data) // 2), data)
        ms = 1000 * len(s) / rate
        cross = sum(1 for a, b in zip(s, s[1:]) if a < 0 <= b)
        hz = cross / (len(s) / rate) if s else 0
        return [(ok, "wav format"), (abs(ms - TONE_MS) <= 20, "reply %d ms" % ms),
                (abs(hz - TONE_HZ) <= 10, "reply tone %.1f Hz" % hz)]

    out = lambda n: os.path.join(tmp, n)
    run("pcm16_16k_speed4_prints_events_and_writes_reply",
        ["--file", wav_in, "--speed", "4", "--silence-ms", "600", "--out", out("a.wav"),
         "--conversation", "conv-a"], 0,
        lambda ev, ty, el: [
            (ty[:3] == ["ready", "speech_started", "speech_stopped"], "order %s" % ty),
            (all(t in ty for t in ("transcript", "response_delta", "audio_start", "audio_end",
                                   "metrics")), "events %s" % ty),
            (ty[-1] == "client_summary" and ev[-1]["exit"] == 0 and ev[-1]["turns"] == 1, "summary"),
            (first(ev, "ready")["conversation_id"] == "conv-a", "conversation id"),
            (first(ev, "metrics")["frame_bytes"] == [640], "frames %s" % first(ev, "metrics")),
            (abs(first(ev, "metrics")["received_audio_ms"] - 1600) <= 40, "received audio"),
            (300 <= first(ev, "metrics")["stream_ms"] <= 700, "paced at 4x: %s" % first(ev, "metrics")),
            (first(ev, "transcript")["text"] in ("980 ms of speech", "1000 ms of speech",
                                                 "1020 ms of speech"), "speech length"),
            (abs(ev[-1]["reply_audio_ms"] - TONE_MS) <= 20, "summary audio"),
            (0 <= ev[-1]["last_input_end_to_first_audio_ms"] < 2000, "first audio")]
        + tone_wav(out("a.wav"), 16000))
    run("mulaw_8k_fast_decodes_reply", ["--file", wav_in, "--fast", "--rate", "8000", "--encoding",
                                        "mulaw", "--out", out("b.wav")], 0,
        lambda ev, ty, el: [(first(ev, "metrics")["frame_bytes"] == [160], "frames"),
                            (first(ev, "metrics")["stream_ms"] < 250, "unpaced")]
        + tone_wav(out("b.wav"), 8000))
    run("alaw_24k_decodes_reply", ["--file", wav_in, "--speed", "8", "--rate", "24000", "--encoding",
                                   "alaw", "--silence-ms", "500", "--out", out("c.wav")], 0,
        lambda ev, ty, el: [(first(ev, "metrics")["frame_bytes"] == [480], "frames")]
        + tone_wav(out("c.wav"), 24000))
    run("real_time_by_default", ["--file", wav_in, "--silence-ms", "400", "--quiet"], 0,
        lambda ev, ty, el: [(ty == ["client_summary"], "quiet"), (1.3 <= el < 4, "took %.2f s" % el)])
    run("text_two_turns", ["--text", "hello there", "--turns", "2"], 0,
        lambda ev, ty, el: [(ty.count("metrics") == 2 and ev[-1]["turns"] == 2, "two turns"),
                            ([e["text"] for e in ev if e["type"] == "transcript"] ==
                             ["hello there"] * 2, "transcripts"),
                            ("speech_started" not in ty, "no audio sent")])
    run("barge_in_interrupts_reply", ["--file", wav_in, "--fast", "--silence-ms", "500",
                                      "--barge-in-ms", "100"], 0,
        lambda ev, ty, el: [("interrupted" in ty, "interrupted"),
                            (ty.count("metrics") == 2 and ev[-1]["interrupted"] == 1, "two turns"),
                            (ty.index("interrupted") < ty.index("audio_end"), "cut first reply")])
    run("error_event_fails", ["--text", "x", "--voice", "fail"], 1,
        lambda ev, ty, el: [(ty[0] == "error", "error printed")])
    run("turn_error_waits_for_metrics_and_next_turn_runs",
        ["--text", "hi", "--turns", "2", "--voice", "tts_down", "--out", out("d.wav")], 1,
        lambda ev, ty, el: [(ty.count("metrics") == 2, "both turns ended %s" % ty),
                            (ty.index("error") < ty.index("metrics") < ty.index("audio_start"),
                             "turn 2 ran after turn 1's error and metrics"),
                            (ev[-1]["turns"] == 2 and ev[-1]["turns_failed"] == 1, "summary"),
                            ([(e["turn"], e["stage"], e["code"]) for e in ev[-1]["errors"]] ==
                             [(1, "tts", "unavailable")], "errors %s" % ev[-1]["errors"])]
        + tone_wav(out("d.wav"), 16000))
    run("turn_error_without_audio_writes_no_wav",
        ["--text", "hi", "--voice", "tts_down", "--out", out("e.wav")], 1,
        lambda ev, ty, el: [(ty[-2] == "metrics", "waited for metrics"),
                            (not os.path.exists(out("e.wav")), "no e.wav"),
                            (not os.path.exists(out("e.wav.part")), "no e.wav.part"),
                            (ev[-1]["turns_failed"] == 1, "summary")])
    run("turn_error_without_metrics_gives_up",
        ["--text", "hi", "--voice", "error_no_metrics", "--out", out("f.wav")], 1,
        lambda ev, ty, el: [(4 <= el < 9, "gave up after %.1f s" % el),
                            (not os.path.exists(out("f.wav")), "no f.wav")])
    run("timeout_without_reply", ["--file", wav_in, "--fast", "--voice", "silent",
                                  "--timeout-s", "1"], 2,
        lambda ev, ty, el: [(el < 4, "took %.2f s" % el)])
    run("bad_usage", ["--encoding", "opus", "--text", "x"], 64, lambda ev, ty, el: [])
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    url = "ws://127.0.0.1:%d/ws/chat" % ls.getsockname()[1]  # bound, not listening
    run("connection_refused_fails", ["--text", "x", "--timeout-s", "5"], 1,
        lambda ev, ty, el: [(el < 4, "took %.2f s" % el)])
    ls.close()
    subprocess.run(["rm", "-rf", tmp])
    print("%d passed, %d failed" % (results.count(True), results.count(False)))
    return 0 if all(results) else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        sys.exit(check(sys.argv[2]))
    if len(sys.argv) == 3 and sys.argv[1] == "--port":
        serve(int(sys.argv[2]))
    sys.exit("usage: fake_chat_server.py --port N | --check CLIENT")
