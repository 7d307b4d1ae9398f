"""A small Wyoming protocol client, written from the protocol's public
description (github.com/rhasspy/wyoming README): an event is a JSON header
line {"type", "data"?, "data_length"?, "payload_length"?, "version"?} and a
newline, then data_length bytes of JSON object merged into "data", then
payload_length bytes of binary payload. Used by the integration tests and
the benchmark; it shares no code with the daemons."""
import json
import socket
import time

VERSION = "1.5.2"


class Event:
    def __init__(self, type, data=None, payload=b""):
        self.type = type
        self.data = data or {}
        self.payload = payload or b""

    def __repr__(self):
        return (f"Event({self.type!r}, {self.data!r}, "
                f"{len(self.payload)} payload bytes)")


class WyomingClient:
    def __init__(self, host, port, timeout=30.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    # ---- writing ----

    @staticmethod
    def encode(type, data=None, payload=b"", inline=False):
        """Bytes of one event; data as separate JSON (as the reference
        library writes it) unless inline."""
        head = {"type": type, "version": VERSION}
        body = b""
        if data:
            if inline:
                head["data"] = data
            else:
                body = json.dumps(data).encode()
                head["data_length"] = len(body)
        if payload:
            head["payload_length"] = len(payload)
        return json.dumps(head).encode() + b"\n" + body + (payload or b"")

    def send(self, type, data=None, payload=b"", inline=False):
        self.sock.sendall(self.encode(type, data, payload, inline))

    def send_raw(self, raw):
        self.sock.sendall(raw)

    # ---- reading ----

    def _fill(self, deadline):
        left = deadline - time.time()
        if left <= 0:
            raise TimeoutError("no Wyoming event in time")
        self.sock.settimeout(left)
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise EOFError("connection closed")
        self.buf += chunk

    def _take(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self, timeout=None):
        deadline = time.time() + (timeout or self.timeout)
        while b"\n" not in self.buf:
            self._fill(deadline)
        line, self.buf = self.buf.split(b"\n", 1)
        head = json.loads(line)
        data = dict(head.get("data") or {})
        dl = head.get("data_length") or 0
        pl = head.get("payload_length") or 0
        if dl:
            data.update(json.loads(self._take(dl, deadline)))
        payload = self._take(pl, deadline) if pl else b""
        return Event(head["type"], data, payload)

    def recv_until(self, *types, timeout=None):
        """Events up to and including the first of one of types."""
        deadline = time.time() + (timeout or self.timeout)
        out = []
        while True:
            ev = self.recv(max(0.01, deadline - time.time()))
            out.append(ev)
            if ev.type in types:
                return out

    # ---- conversations ----

    def describe(self):
        self.send("describe")
        return self.recv_until("info")[-1].data

    def send_audio(self, pcm_bytes, rate=16000, width=2, channels=1,
                   chunk_bytes=2048):
        fmt = {"rate": rate, "width": width, "channels": channels}
        self.send("audio-start", fmt)
        step = chunk_bytes - chunk_bytes % (width * channels)
        for i in range(0, len(pcm_bytes), step):
            self.send("audio-chunk", fmt, pcm_bytes[i:i + step])
        self.send("audio-stop")

    def transcribe(self, pcm_bytes, rate=16000, language=None, **kw):
        """-> (transcript event, all events received)."""
        self.send("transcribe", {"language": language} if language else None)
        self.send_audio(pcm_bytes, rate, **kw)
        evs = self.recv_until("transcript", "error")
        return evs[-1], evs

    def synthesize(self, text, voice=None):
        """-> (audio-start data, PCM bytes, all events)."""
        d = {"text": text}
        if voice:
            d["voice"] = {"name": voice}
        self.send("synthesize", d)
        evs = self.recv_until("audio-stop", "error")
        start = next((e.data for e in evs if e.type == "audio-start"), None)
        pcm = b"".join(e.payload for e in evs if e.type == "audio-chunk")
        return start, pcm, evs
