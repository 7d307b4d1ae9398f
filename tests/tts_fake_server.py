#!/usr/bin/python3
"""A fake OpenAI-compatible speech server for the remote TTS engine's tests.

Speaks the real wire format: POST {base}/v1/audio/speech with JSON
{"model", "input", "voice", "response_format", "speed"} and an optional
"Authorization: Bearer <key>"; answers "pcm" as raw 24 kHz s16le mono and
"wav" as a RIFF/WAVE file, streamed with chunked transfer encoding.
Errors are OpenAI-shaped JSON: {"error": {"message", "type", "code"}}.

The audio is a tone whose length follows the text: AUDIO_MS_PER_CHAR
milliseconds a character, divided by speed, so a test can check length.

A path prefix before /v1 picks a behaviour, so one server covers every case:
    /v1/...         normal
    /slow/v1/...    normal audio, in 100 ms chunks sent 50 ms apart
    /stall/v1/...   headers and one chunk of audio, then silence (stalls)
    /500/v1/...     500 with a JSON error body
    /wav/v1/...     answers WAV at 22050 Hz whatever response_format says
    /json200/v1/... 200 with a JSON body (a broken server)
GET /last returns the last speech request seen: {"path","headers","body"}.

Usage: tts_fake_server.py [--port 0] [--key KEY] [--exit-on-stdin-eof];
prints "PORT <n>" on stdout once listening, then serves until SIGTERM (or,
with --exit-on-stdin-eof, until its stdin closes: a parent that dies
without cleaning up still stops it).
"""
import argparse
import json
import math
import signal
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PCM_RATE = 24000
WAV_RATE = 22050
AUDIO_MS_PER_CHAR = 60
STALL_MAX_S = 30
MAX_BODY = 1 << 20


def tone(n_samples, rate):
    """A 440 Hz tone at half scale, s16le."""
    return b"".join(
        struct.pack("<h", int(16000 * math.sin(2 * math.pi * 440 * i / rate)))
        for i in range(n_samples))


def wav_header(rate, n_samples):
    data = n_samples * 2
    return (b"RIFF" + struct.pack("<I", 36 + data) + b"WAVE" +
            b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) +
            b"data" + struct.pack("<I", data))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-openai-tts/1"
    key = None
    last = {}
    lock = threading.Lock()

    def log_message(self, fmt, *args):  # quiet
        pass

    def send_json(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def error(self, status, message, code):
        self.send_json(status, {"error": {"message": message,
                                          "type": "invalid_request_error",
                                          "code": code}})

    def chunk(self, data):
        self.wfile.write(b"%x\r\n" % len(data) + data + b"\r\n")
        self.wfile.flush()

    def do_GET(self):
        if self.path == "/last":
            with Handler.lock:
                self.send_json(200, Handler.last)
        else:
            self.error(404, "not found", "not_found")

    def do_POST(self):
        mode, sep, rest = self.path.lstrip("/").partition("/")
        if not sep or not ("/" + rest).startswith("/v1/"):
            mode, rest = "", self.path.lstrip("/")
        if rest != "v1/audio/speech":
            self.error(404, "not found", "not_found")
            return
        length = int(self.headers.get("Content-Length", "0"))
        if length > MAX_BODY:
            self.error(413, "body too large", "too_large")
            return
        raw = self.rfile.read(length)
        with Handler.lock:
            Handler.last = {"path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": raw.decode("utf-8", "replace")}
        if Handler.key and self.headers.get("Authorization") != "Bearer " + Handler.key:
            self.error(401, "bad key", "invalid_api_key")
            return
        try:
            req = json.loads(raw)
        except ValueError:
            self.error(400, "body is not JSON", "bad_json")
            return
        for field in ("model", "input", "voice"):
            if not isinstance(req.get(field), str) or not req[field]:
                self.error(400, "missing " + field, "missing_field")
                return
        fmt = req.get("response_format", "mp3")
        speed = req.get("speed", 1.0)
        if fmt not in ("pcm", "wav"):
            self.error(400, "this fake speaks pcm and wav only", "bad_format")
            return
        if not isinstance(speed, (int, float)) or not 0.25 <= speed <= 4.0:
            self.error(400, "speed out of range", "bad_speed")
            return
        if mode == "500":
            self.error(500, "the fake was told to fail", "server_error")
            return
        if mode == "json200":
            self.send_json(200, {"not": "audio"})
            return
        if mode == "wav":
            fmt = "wav"
        rate = WAV_RATE if fmt == "wav" else PCM_RATE
        n = int(len(req["input"]) * AUDIO_MS_PER_CHAR / speed * rate / 1000)
        audio = tone(n, rate)
        self.send_response(200)
        self.send_header("Content-Type", "audio/wav" if fmt == "wav" else "audio/pcm")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            if fmt == "wav":
                self.chunk(wav_header(rate, n))
            step = rate // 10 * 2  # 100 ms of audio
            for i in range(0, len(audio), step):
                self.chunk(audio[i:i + step])
                if mode == "stall":
                    deadline = time.monotonic() + STALL_MAX_S
                    while time.monotonic() < deadline:
                        time.sleep(0.05)
                    return
                if mode == "slow":
                    time.sleep(0.05)
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that cancels or times out closes its socket: not news.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--key", default=None)
    ap.add_argument("--exit-on-stdin-eof", action="store_true")
    args = ap.parse_args()
    Handler.key = args.key
    srv = Server(("127.0.0.1", args.port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown).start())

    def watch_stdin():  # the parent closed our stdin (or died): stop
        while sys.stdin.buffer.read(4096):
            pass
        srv.shutdown()
    if args.exit_on_stdin_eof:
        threading.Thread(target=watch_stdin, daemon=True).start()
    print("PORT %d" % srv.server_address[1], flush=True)
    srv.serve_forever()
    srv.server_close()


if __name__ == "__main__":
    main()
