#!/usr/bin/python3
"""soak.py - mixed good, bad, slow and vanishing clients against all five
daemons on loopback for a while (`make soak`, SOAK_S seconds; not in CI).

    soak.py --bin build/bin [--seconds 600] [--clients 50] [--seed N]

Starts voxline-vad, -stt, -tts, -llm (openai engine on tests/llm_upstream.py)
and -orchestrator (pointed at the other four) on free loopback ports, with
logs in a temporary folder. Then --clients threads (bounded concurrency)
each pick a client behaviour at random until the time is up:

  good      HTTP and WebSocket requests every daemon should answer 200 /
            done / final (a 503 "overloaded" is counted as a refusal)
  bad       corrupt audio (the 58-byte Ogg/Vorbis reproducer), bad JSON,
            unknown routes, smuggling heads, bad WebSocket configs and close
            frames: each must get its 4xx JSON error, error event or 1002
  slow      heads and bodies sent a byte at a time, idle WebSockets (closed
            1008 at --ws-config-timeout-s), slow readers
  vanishing clients that leave mid-head, mid-body, before the answer or
            mid-stream, some with a TCP reset

A probe thread checks /healthz of every daemon each second. At the start
and the end it prints RSS, open fds and threads per daemon; at the end the
outcome counts per behaviour, unexpected outcomes ("errors") by kind, and
/healthz latency. Exits 1 when a daemon died, did not exit cleanly on
SIGTERM, stopped answering /healthz, or more than 1% of client runs ended
unexpectedly.
"""
import argparse
import base64
import collections
import http.client
import io
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import wave

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PYTHON = "/usr/bin/python3"
WS_CONFIG_TIMEOUT_S = 5
SERVICES = ["vad", "stt", "tts", "llm", "orchestrator"]
SENTENCE = "Please turn off the lights in the kitchen."
LONG_TEXT = " ".join(["This sentence is here to make a long answer."] * 12)


# ---- daemons ----

class Daemon:
    """One daemon on a free port; its stderr goes to a log file."""

    def __init__(self, name, argv, logdir):
        self.name = name
        self.log_path = os.path.join(logdir, name + ".log")
        self.logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self.port = None
        pat = re.compile(rb'listening on [^"]*:(\d+)')
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.logf.write(line)
            m = pat.search(line)
            if m:
                self.port = int(m.group(1))
                break
        if self.port is None:
            self.proc.kill()
            raise RuntimeError(f"{name} did not start; see {self.log_path}")
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stderr:
            self.logf.write(line)
        self.logf.flush()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def stats(self):
        """(RSS kB, open fds, threads) from /proc."""
        pid = self.proc.pid
        rss = threads = 0
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
        return rss, len(os.listdir(f"/proc/{pid}/fd")), threads

    def stop(self, timeout):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return "killed after %d s" % timeout
        return self.proc.returncode


def http_request(port, method, path, body=None, headers=None, timeout=60):
    """(status, parsed JSON or raw bytes) of one request on a new connection."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
    finally:
        c.close()
    try:
        return r.status, json.loads(data)
    except ValueError:
        return r.status, data


def wait_healthy(d, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if http_request(d.port, "GET", "/healthz", timeout=5)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{d.name} not healthy; see {d.log_path}")


# ---- a raw WebSocket client ----

def ws_kind(e, key="event"):
    """The outcome of a WebSocket round that did not end as it should."""
    code = e.get("code")
    if code in ("overloaded", "at_capacity"):
        return "refused_503"
    return "ws_" + str(code or e.get(key))


class Ws:
    def __init__(self, port, path, timeout=60):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise EOFError("closed in the handshake")
            head += chunk
        status, _, self.buf = head.partition(b"\r\n\r\n")
        self.status = int(status.split()[1])

    def send(self, opcode, payload):
        if isinstance(payload, str):
            payload = payload.encode()
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        key = os.urandom(4)
        k = (key * (n // 4 + 1))[:n]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")
                  ).to_bytes(n, "big") if n else b""
        self.sock.sendall(head + key + masked)

    def send_json(self, obj):
        self.send(0x1, json.dumps(obj))

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def frame(self):
        b0, b1 = self._read(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read(8))[0]
        return b0 & 0x0F, self._read(n)

    def event(self, key="event"):
        """The next JSON message; ("close", code) as an event on a close."""
        while True:
            op, data = self.frame()
            if op == 0x1:
                return json.loads(data)
            if op == 0x8:
                code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
                return {key: "close", "code": code}

    def until(self, names, key="event", limit=100000):
        """Reads events until one whose key is in names (or an error/close)."""
        for _ in range(limit):
            e = self.event(key)
            if e.get(key) in names or e.get(key) in ("error", "close"):
                return e
        return {key: "too_many_events"}

    def close(self, reset=False):
        if reset:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 struct.pack("ii", 1, 0))
        self.sock.close()


def rst(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# ---- test material ----

def ogg_crc(data):
    crc = 0
    for b in data:
        crc ^= b << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def vorbis_ident_only():
    """The issue's 58-byte reproducer: an Ogg page with only a Vorbis
    identification header."""
    ident = (b"\x01vorbis" + struct.pack("<IBIiii", 0, 1, 16000, 0, 32000, 0) +
             bytes([0xB8, 1]))
    page = bytearray(b"OggS\x00\x02" + struct.pack("<qIII", 0, 1, 0, 0) +
                     bytes([1, len(ident)]) + ident)
    page[22:26] = struct.pack("<I", ogg_crc(page))
    return bytes(page)


class Material:
    def __init__(self, tts):
        status, wav = http_request(tts.port, "POST", "/synthesize",
                                   json.dumps({"text": SENTENCE,
                                               "sample_rate": 16000}),
                                   {"Content-Type": "application/json"})
        if status != 200:
            raise RuntimeError(f"cannot make speech: {status} {wav!r:.200}")
        self.wav = wav
        with wave.open(io.BytesIO(wav)) as w:
            self.pcm = w.readframes(w.getnframes())
        self.bad_ogg = vorbis_ident_only()
        self.truncated_wav = wav[:30]   # inside the header


# ---- client behaviours: each returns "ok" or an outcome kind ----

JSON = {"Content-Type": "application/json"}
MSGS = [{"role": "user", "content": "hello there"}]


def status_kind(status, want, body):
    if status == want:
        return "ok"
    if status == 503:
        return "refused_503"   # admission control: a clean refusal
    code = body.get("error", {}).get("code") if isinstance(body, dict) else None
    return f"status_{status}" + (f"_{code}" if code else "")


def good_detect(ctx, rng):
    s, b = http_request(ctx.port("vad"), "POST", "/detect", ctx.m.wav,
                        {"Content-Type": "audio/wav"})
    return status_kind(s, 200, b)


def good_transcribe(ctx, rng):
    s, b = http_request(ctx.port("stt"), "POST", "/transcribe", ctx.m.wav,
                        {"Content-Type": "audio/wav"})
    return status_kind(s, 200, b)


def good_synthesize(ctx, rng):
    s, b = http_request(ctx.port("tts"), "POST", "/synthesize",
                        json.dumps({"text": "Hello there."}), JSON)
    return status_kind(s, 200, b)


def good_generate(ctx, rng):
    s, b = http_request(ctx.port("llm"), "POST", "/generate",
                        json.dumps({"messages": MSGS, "stream": rng.random() < 0.5}),
                        JSON)
    return status_kind(s, 200, b)


def good_chat(ctx, rng):
    s, b = http_request(ctx.port("orchestrator"), "POST", "/chat",
                        json.dumps({"text": "what time is it"}), JSON, timeout=90)
    return status_kind(s, 200, b)


def good_builtin(ctx, rng):
    name = rng.choice(SERVICES)
    path = rng.choice(["/healthz", "/livez", "/metrics", "/info"])
    s, b = http_request(ctx.port(name), "GET", path)
    return status_kind(s, 200, b)


def ws_audio_round(ctx, service, path, done):
    ws = Ws(ctx.port(service), path)
    try:
        ws.send_json({"sample_rate": 16000, "encoding": "pcm16"})
        e = ws.event()
        if e.get("event") != "ready":
            return ws_kind(e)
        for i in range(0, len(ctx.m.pcm), 6400):
            ws.send(0x2, ctx.m.pcm[i:i + 6400])
        ws.send_json({"event": "end"})
        e = ws.until({done})
        return "ok" if e.get("event") == done else ws_kind(e)
    finally:
        ws.close()


def good_ws_detect(ctx, rng):
    return ws_audio_round(ctx, "vad", "/ws/detect", "done")


def good_ws_transcribe(ctx, rng):
    return ws_audio_round(ctx, "stt", "/ws/transcribe", "final")


def good_ws_synthesize(ctx, rng):
    ws = Ws(ctx.port("tts"), "/ws/synthesize")
    try:
        ws.send_json({"text": "Good morning.", "id": "a"})
        e = ws.until({"done"})
        return "ok" if e.get("event") == "done" else ws_kind(e)
    finally:
        ws.close()


def good_ws_generate(ctx, rng):
    ws = Ws(ctx.port("llm"), "/ws/generate")
    try:
        ws.send_json({"messages": MSGS})
        e = ws.until({"done"})
        if e.get("event") != "done":
            return ws_kind(e)
        ws.send_json({"event": "end"})
        e = ws.event()
        return "ok" if e == {"event": "done", "end": True} else "ws_end_unanswered"
    finally:
        ws.close()


def good_ws_chat(ctx, rng):
    ws = Ws(ctx.port("orchestrator"), "/ws/chat", timeout=90)
    try:
        ws.send_json({"type": "start"})
        e = ws.event("type")
        if e.get("type") != "ready":
            return ws_kind(e, "type")
        ws.send_json({"type": "text", "text": "hello"})
        e = ws.until({"metrics"}, key="type")
        if e.get("type") != "metrics" or e.get("error"):
            return ws_kind(e, "type") if e.get("type") != "metrics" else \
                "chat_stage_failed_" + str(e.get("error"))
        return "ok"
    finally:
        ws.close()


def bad_ogg(ctx, rng):
    name, path = rng.choice([("vad", "/detect"), ("stt", "/transcribe")])
    s, b = http_request(ctx.port(name), "POST", path, ctx.m.bad_ogg,
                        {"Content-Type": "audio/ogg"})
    return status_kind(s, 400, b)


def bad_audio(ctx, rng):
    name, path = rng.choice([("vad", "/detect"), ("stt", "/transcribe")])
    body = rng.choice([ctx.m.truncated_wav, os.urandom(3000)])
    s, b = http_request(ctx.port(name), "POST", path, body,
                        {"Content-Type": "audio/wav"})
    return status_kind(s, 400, b)


def bad_json(ctx, rng):
    name, path = rng.choice([("tts", "/synthesize"), ("llm", "/generate"),
                             ("orchestrator", "/chat")])
    body = rng.choice([b"{not json", b"[]", b'{"messages":[{"role":"robot"}]}',
                       b'{"text":""}'])
    s, b = http_request(ctx.port(name), "POST", path, body, JSON)
    if 400 <= s < 500 and isinstance(b, dict) and "error" in b:
        return "ok"
    return status_kind(s, 400, b)


def bad_route(ctx, rng):
    s, b = http_request(ctx.port(rng.choice(SERVICES)), "GET",
                        "/nope/" + "x" * rng.randint(1, 200))
    return status_kind(s, 404, b)


def bad_smuggling(ctx, rng):
    """Content-Length and Transfer-Encoding both: refused 400 and closed."""
    sock = socket.create_connection(("127.0.0.1", ctx.port(rng.choice(SERVICES))),
                                    timeout=30)
    try:
        sock.sendall(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                     b"GET /info HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        answers = data.count(b"HTTP/1.1 ")
        if data.startswith(b"HTTP/1.1 400") and answers == 1:
            return "ok"
        return "smuggling_" + (data[9:12].decode(errors="replace") or "none") + \
            f"_{answers}_answers"
    finally:
        sock.close()


def bad_ws_config(ctx, rng):
    service, path, cfg = rng.choice([
        ("stt", "/ws/transcribe", '{"language":"../../etc/passwd"}'),
        ("vad", "/ws/detect", '{"sample_rate":5}'),
        ("tts", "/ws/synthesize", '{"voice":"slt\\u0000x"}'),
        ("llm", "/ws/generate", '{"messages":"nope"}'),
    ])
    ws = Ws(ctx.port(service), path)
    try:
        ws.send(0x1, cfg)
        e = ws.event()
        return "ok" if e.get("event") == "error" else "ws_bad_config_" + str(e.get("event"))
    finally:
        ws.close()


WS_ROUTES = [("vad", "/ws/detect"), ("stt", "/ws/transcribe"),
             ("tts", "/ws/synthesize"), ("llm", "/ws/generate"),
             ("orchestrator", "/ws/chat")]


def ws_route(ctx, rng):
    """(port, path) of a random service WebSocket."""
    name, path = rng.choice(WS_ROUTES)
    return ctx.port(name), path


def bad_ws_close(ctx, rng):
    ws = Ws(*ws_route(ctx, rng))
    try:
        if ws.status != 101:
            return f"ws_upgrade_{ws.status}"
        payload = rng.choice([b"\x03", struct.pack("!H", 5000), struct.pack("!H", 1005)])
        ws.send(0x8, payload)
        e = ws.event()
        return "ok" if e == {"event": "close", "code": 1002} else "ws_close_" + str(e)
    finally:
        ws.close()


def slow_head(ctx, rng):
    sock = socket.create_connection(("127.0.0.1", ctx.port(rng.choice(SERVICES))),
                                    timeout=30)
    try:
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nUser-Agent: soak\r\n\r\n"
        for i in range(0, len(head), 4):
            sock.sendall(head[i:i + 4])
            time.sleep(0.15)
        data = sock.recv(65536)
        if data.startswith(b"HTTP/1.1 503"):
            return "refused_503"   # /healthz: overloaded
        return "ok" if data.startswith(b"HTTP/1.1 200") else "slow_head_" + repr(data[:12])
    finally:
        sock.close()


def slow_never_ending_head(ctx, rng):
    """A head that never ends: the daemon answers 408 or closes (head
    timeout); holds at most 15 s here."""
    sock = socket.create_connection(("127.0.0.1", ctx.port(rng.choice(SERVICES))),
                                    timeout=2)
    t0 = time.time()
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        while time.time() - t0 < 15:
            try:
                sock.sendall(b"X-A: b\r\n")
                data = sock.recv(65536)
                if not data or data.startswith(b"HTTP/1.1 408"):
                    return "ok"
                return "never_ending_head_" + repr(data[:12])
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                return "ok"
        return "never_ending_head_held_15s"
    finally:
        sock.close()


def slow_body(ctx, rng):
    sock = socket.create_connection(("127.0.0.1", ctx.port("vad")), timeout=60)
    try:
        body = ctx.m.wav
        sock.sendall(b"POST /detect HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
        step = max(1, len(body) // 10)
        for i in range(0, len(body), step):
            sock.sendall(body[i:i + step])
            time.sleep(0.2)
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return "ok" if data.startswith(b"HTTP/1.1 200") else "slow_body_" + repr(data[:12])
    finally:
        sock.close()


def slow_idle_ws(ctx, rng):
    ws = Ws(*ws_route(ctx, rng), timeout=WS_CONFIG_TIMEOUT_S + 10)
    try:
        if ws.status != 101:
            return f"ws_upgrade_{ws.status}"
        e = ws.event()
        return "ok" if e == {"event": "close", "code": 1008} else "idle_ws_" + str(e)
    finally:
        ws.close()


def slow_ws_reader(ctx, rng):
    ws = Ws(ctx.port("tts"), "/ws/synthesize")
    try:
        ws.send_json({"text": LONG_TEXT, "id": "long"})
        time.sleep(rng.uniform(1, 4))
        e = ws.until({"done"})
        return "ok" if e.get("event") == "done" else ws_kind(e)
    finally:
        ws.close()


def vanish_connect(ctx, rng):
    sock = socket.create_connection(("127.0.0.1", ctx.port(rng.choice(SERVICES))),
                                    timeout=10)
    if rng.random() < 0.5:
        sock.sendall(b"POST /detect HTTP/1.1\r\nHost: x\r\nContent-Len")
    rst(sock) if rng.random() < 0.5 else sock.close()
    return "ok"


def vanish_mid_body(ctx, rng):
    name, path = rng.choice([("vad", "/detect"), ("stt", "/transcribe")])
    sock = socket.create_connection(("127.0.0.1", ctx.port(name)), timeout=10)
    sock.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n"
                 b"Content-Length: %d\r\n\r\n" % (path.encode(), len(ctx.m.wav)))
    sock.sendall(ctx.m.wav[:len(ctx.m.wav) // 3])
    rst(sock)
    return "ok"


def vanish_before_answer(ctx, rng):
    name, path, body, ctype = rng.choice([
        ("stt", "/transcribe", ctx.m.wav, "audio/wav"),
        ("llm", "/generate", json.dumps({"messages": MSGS, "stream": True}).encode(),
         "application/json"),
        ("tts", "/synthesize", json.dumps({"text": LONG_TEXT}).encode(),
         "application/json"),
    ])
    sock = socket.create_connection(("127.0.0.1", ctx.port(name)), timeout=10)
    sock.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\n"
                 b"Content-Length: %d\r\n\r\n" % (path.encode(), ctype.encode(),
                                                   len(body)) + body)
    time.sleep(rng.uniform(0, 0.3))
    rst(sock) if rng.random() < 0.5 else sock.close()
    return "ok"


def vanish_mid_stream(ctx, rng):
    kind = rng.choice(["tts", "llm", "orchestrator"])
    if kind == "tts":
        ws = Ws(ctx.port("tts"), "/ws/synthesize")
        ws.send_json({"text": LONG_TEXT})
        ws.frame()
    elif kind == "llm":
        ws = Ws(ctx.port("llm"), "/ws/generate")
        ws.send_json({"messages": MSGS, "model": "slow"})
    else:
        ws = Ws(ctx.port("orchestrator"), "/ws/chat")
        ws.send_json({"type": "start"})
        ws.event("type")
        ws.send_json({"type": "text", "text": "tell me a story"})
        ws.event("type")
    ws.close(reset=rng.random() < 0.5)
    return "ok"


BEHAVIOURS = [
    # (group, function, weight)
    ("good", good_detect, 6), ("good", good_transcribe, 3),
    ("good", good_synthesize, 5), ("good", good_generate, 6),
    ("good", good_chat, 2), ("good", good_builtin, 10),
    ("good", good_ws_detect, 4), ("good", good_ws_transcribe, 2),
    ("good", good_ws_synthesize, 4), ("good", good_ws_generate, 4),
    ("good", good_ws_chat, 2),
    ("bad", bad_ogg, 6), ("bad", bad_audio, 4), ("bad", bad_json, 5),
    ("bad", bad_route, 3), ("bad", bad_smuggling, 2), ("bad", bad_ws_config, 4),
    ("bad", bad_ws_close, 3),
    ("slow", slow_head, 3), ("slow", slow_never_ending_head, 1),
    ("slow", slow_body, 2), ("slow", slow_idle_ws, 2), ("slow", slow_ws_reader, 2),
    ("vanishing", vanish_connect, 5), ("vanishing", vanish_mid_body, 3),
    ("vanishing", vanish_before_answer, 4), ("vanishing", vanish_mid_stream, 3),
]


class Context:
    def __init__(self, daemons, material):
        self.daemons = daemons
        self.m = material
        self.lock = threading.Lock()
        self.outcomes = collections.Counter()   # (group, name, outcome)
        self.runs = 0

    def port(self, name):
        return self.daemons[name].port

    def record(self, group, name, outcome):
        with self.lock:
            self.outcomes[(group, name, outcome)] += 1
            self.runs += 1


def client_loop(ctx, seed, deadline):
    rng = random.Random(seed)
    weights = [w for _, _, w in BEHAVIOURS]
    while time.time() < deadline:
        group, fn, _ = rng.choices(BEHAVIOURS, weights)[0]
        try:
            outcome = fn(ctx, rng)
        except socket.timeout:
            outcome = "timeout"
        except (OSError, EOFError, http.client.HTTPException, ValueError) as e:
            outcome = type(e).__name__
        ctx.record(group, fn.__name__, outcome)


def health_loop(daemons, stop, lat, busy, failures):
    """/healthz each second: 503 "overloaded" is readiness doing its job
    (counted as busy); anything else but 200 is a failure."""
    while not stop.is_set():
        for name, d in daemons.items():
            t0 = time.monotonic()
            try:
                s, b = http_request(d.port, "GET", "/healthz", timeout=10)
            except OSError as e:
                s, b = type(e).__name__, None
            lat[name].append((time.monotonic() - t0) * 1000)
            if s == 503 and isinstance(b, dict) and b.get("status") == "overloaded":
                busy[name] += 1
            elif s != 200:
                failures[name][str(s)] += 1
        stop.wait(1)


def print_stats(title, daemons):
    print(f"\n{title}")
    print(f"  {'daemon':<14}{'RSS kB':>10}{'fds':>8}{'threads':>9}")
    out = {}
    for name, d in daemons.items():
        try:
            rss, fds, threads = d.stats()
        except OSError:
            print(f"  {name:<14} (gone)")
            continue
        out[name] = (rss, fds, threads)
        print(f"  {name:<14}{rss:>10}{fds:>8}{threads:>9}")
    sys.stdout.flush()
    return out


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p / 100))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--tools", default=os.path.join(ROOT, "build", "tools"))
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    a = ap.parse_args()

    logdir = tempfile.mkdtemp(prefix="voxline-soak-")
    print(f"soak: {a.seconds} s, {a.clients} clients, seed {a.seed}, logs in {logdir}")
    upstream = subprocess.Popen([PYTHON, os.path.join(ROOT, "tests", "llm_upstream.py"),
                                 "--port", "0"], stdout=subprocess.PIPE)
    up_url = "http://127.0.0.1:%d" % int(upstream.stdout.readline())
    daemons = {}
    failed = []
    try:
        common = ["--port", "0", "--ws-config-timeout-s", str(WS_CONFIG_TIMEOUT_S)]
        for name in ["vad", "stt", "tts"]:
            daemons[name] = Daemon(name, [os.path.join(a.bin, "voxline-" + name), *common], logdir)
        daemons["llm"] = Daemon("llm", [os.path.join(a.bin, "voxline-llm"), *common, "--engine", "openai",
                                        "--url", up_url], logdir)
        for name in ["vad", "stt", "tts", "llm"]:
            wait_healthy(daemons[name])
        daemons["orchestrator"] = Daemon("orchestrator", [
            os.path.join(a.bin, "voxline-orchestrator"), *common,
            "--vad-url", daemons["vad"].url, "--stt-url", daemons["stt"].url,
            "--tts-url", daemons["tts"].url, "--llm-url", daemons["llm"].url,
            "--db", os.path.join(logdir, "soak.db")], logdir)
        wait_healthy(daemons["orchestrator"])
        ctx = Context(daemons, Material(daemons["tts"]))
        # Warm-up: one of each good behaviour, so the start figures hold
        # loaded engines and pools rather than a cold process.
        rng = random.Random(a.seed)
        for group, fn, _ in BEHAVIOURS:
            if group == "good":
                try:
                    outcome = fn(ctx, rng)
                except (OSError, EOFError, http.client.HTTPException) as e:
                    outcome = type(e).__name__
                if outcome != "ok":
                    print(f"  warm-up {fn.__name__}: {outcome}")
        start_stats = print_stats("start (after one request of each kind)", daemons)

        stop = threading.Event()
        lat = collections.defaultdict(list)
        hfail = collections.defaultdict(collections.Counter)
        hbusy = collections.Counter()
        prober = threading.Thread(target=health_loop,
                                  args=(daemons, stop, lat, hbusy, hfail),
                                  daemon=True)
        prober.start()
        t0 = time.time()
        deadline = t0 + a.seconds
        threads = [threading.Thread(target=client_loop,
                                    args=(ctx, a.seed * 1000 + i, deadline),
                                    daemon=True) for i in range(a.clients)]
        for t in threads:
            t.start()
        next_report = t0 + 60
        while any(t.is_alive() for t in threads):
            time.sleep(1)
            for name, d in daemons.items():
                if d.proc.poll() is not None and name not in [f[0] for f in failed]:
                    failed.append((name, f"died during the soak ({d.proc.returncode})"))
            if time.time() >= next_report:
                next_report += 60
                with ctx.lock:
                    bad = sum(n for (g, f, o), n in ctx.outcomes.items() if o != "ok")
                    print(f"  t={time.time() - t0:5.0f} s: {ctx.runs} client runs, "
                          f"{bad} not ok", flush=True)
            if time.time() > deadline + 120:
                failed.append(("soak", "client threads still running 120 s "
                               "after the end"))
                break
        time.sleep(WS_CONFIG_TIMEOUT_S + 1)   # let idle timers and drains settle
        stop.set()
        prober.join(15)
        end_stats = print_stats("end", daemons)
        for name, (rss, fds, thr) in end_stats.items():
            r0, f0, t0_ = start_stats.get(name, (rss, fds, thr))
            print(f"  {name:<14} delta: RSS {rss - r0:+d} kB, fds {fds - f0:+d}, "
                  f"threads {thr - t0_:+d}")

        print(f"\nclient runs: {ctx.runs}")
        groups = collections.Counter()
        for (g, f, o), n in ctx.outcomes.items():
            groups[(g, o == "ok")] += n
        for g in ["good", "bad", "slow", "vanishing"]:
            print(f"  {g:<10} ok {groups[(g, True)]:>7}   not ok {groups[(g, False)]:>6}")
        errors = [(n, g, f, o) for (g, f, o), n in ctx.outcomes.items() if o != "ok"]
        print("\nerrors by kind (client behaviour: outcome):")
        if not errors:
            print("  none")
        for n, g, f, o in sorted(errors, reverse=True):
            print(f"  {n:>6}  {f}: {o}")
        unexpected = sum(n for n, g, f, o in errors if o != "refused_503")
        print(f"  ({unexpected} unexpected; refused_503 is admission control "
              "answering 503 / an overloaded event, a clean refusal)")
        print("\n/healthz (probe each second):")
        for name in daemons:
            fails = dict(hfail[name])
            print(f"  {name:<14} p50 {pct(lat[name], 50):6.1f} ms  p99 "
                  f"{pct(lat[name], 99):6.1f} ms  max {max(lat[name] or [0]):6.1f} ms"
                  f"  overloaded {hbusy[name]}  failures {fails or 0}")
            if sum(fails.values()) > 3:
                failed.append((name, f"/healthz failed {fails}"))
        if ctx.runs and unexpected > ctx.runs / 100:
            failed.append(("clients", f"{unexpected} of {ctx.runs} runs unexpected"))
    finally:
        for name in reversed(list(daemons)):
            rc = daemons[name].stop(timeout=20)
            if rc != 0:
                failed.append((name, f"exit {rc} on SIGTERM"))
        upstream.terminate()
        upstream.wait(10)
    print()
    for name, why in failed:
        print(f"FAIL {name}: {why}")
    print("soak: " + ("FAILED" if failed else "passed") + f" (logs in {logdir})")
    if not failed:
        shutil.rmtree(logdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
