#!/usr/bin/python3
"""A fake whisper.cpp / OpenAI-compatible transcription server for the
remote STT engines' tests.

Speaks the real wire format: multipart/form-data with the audio in field
"file" (a WAV), on
    POST {base}/inference                  whisper.cpp server: temperature,
                                           response_format, language, prompt
    POST {base}/v1/audio/transcriptions    OpenAI: model (required),
                                           response_format, language, prompt,
                                           "Authorization: Bearer <key>"
and answers as they do: response_format json -> {"text": ...}, verbose_json
-> {"task","language","duration","text","segments":[{"id","start","end",
"text",...}]}, text -> the text. Errors are JSON; OpenAI's are
{"error": {"message", "type", "code"}}.

A fake cannot listen, so the "transcript" describes what arrived, which lets
a test check the audio crossed intact:
    "heard <samples> samples at <rate> hz checksum <sum of samples mod 65536>"
with one segment per started second of audio ("second <i>").

A path prefix picks a behaviour, so one server covers every case:
    /...           normal
    /stall/...     reads the request, then never answers (up to STALL_MAX_S)
    /500/...       500 with a JSON error body
    /garbage/...   200 with a body that is not JSON
    /notext/...    200 with JSON that has no "text" (as whisper.cpp's errors)
GET /last returns the last transcription request seen:
{"path","headers","fields":{name: value, file fields as {"filename",
"content_type","bytes"}}}.

Usage: stt_fake_server.py [--port 0] [--key KEY]; prints "PORT <n>" on
stdout once listening, then serves until SIGTERM or stdin closes.
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

STALL_MAX_S = 30
MAX_BODY = 64 << 20
MODES = ("stall", "500", "garbage", "notext")
ROUTES = ("inference", "v1/audio/transcriptions")


def parse_multipart(content_type, body):
    """Returns {name: bytes or (filename, content_type, bytes)}; raises ValueError."""
    params = {}
    kind, _, rest = content_type.partition(";")
    if kind.strip().lower() != "multipart/form-data":
        raise ValueError("not multipart/form-data")
    for p in rest.split(";"):
        k, _, v = p.strip().partition("=")
        params[k.lower()] = v.strip('"')
    boundary = params.get("boundary")
    if not boundary:
        raise ValueError("no boundary")
    delim = b"--" + boundary.encode()
    parts = body.split(delim)
    if len(parts) < 3 or not parts[-1].startswith(b"--"):
        raise ValueError("no closing boundary")
    fields = {}
    for part in parts[1:-1]:
        if not part.startswith(b"\r\n") or not part.endswith(b"\r\n"):
            raise ValueError("bad part framing")
        head, sep, data = part[2:-2].partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("part without headers")
        hdrs = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        disp = hdrs.get("content-disposition", "")
        if not disp.startswith("form-data"):
            raise ValueError("part is not form-data")
        attrs = {}
        for a in disp.split(";")[1:]:
            k, _, v = a.strip().partition("=")
            attrs[k.lower()] = v.strip('"')
        if "name" not in attrs:
            raise ValueError("part without a name")
        if "filename" in attrs:
            fields[attrs["name"]] = (attrs["filename"],
                                     hdrs.get("content-type", ""), data)
        else:
            fields[attrs["name"]] = data
    return fields


def parse_wav(data):
    """Returns (rate, samples) for 16-bit mono PCM; raises ValueError."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    off, rate = 12, None
    while off + 8 <= len(data):
        cid, size = data[off:off + 4], struct.unpack("<I", data[off + 4:off + 8])[0]
        body = data[off + 8:off + 8 + size]
        if cid == b"fmt ":
            fmt, ch, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            if fmt != 1 or ch != 1 or bits != 16:
                raise ValueError("not 16-bit mono PCM")
        elif cid == b"data":
            if rate is None or len(body) != size or size % 2:
                raise ValueError("bad data chunk")
            return rate, struct.unpack("<%dh" % (size // 2), body)
        off += 8 + size + (size & 1)
    raise ValueError("no data chunk")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-whisper-stt/1"
    key = None
    last = {}
    lock = threading.Lock()

    def log_message(self, fmt, *args):  # quiet
        pass

    def send_body(self, status, body, ctype):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status, obj):
        self.send_body(status, json.dumps(obj).encode(), "application/json")

    def error(self, status, message, code):
        self.send_json(status, {"error": {"message": message,
                                          "type": "invalid_request_error",
                                          "code": code}})

    def do_GET(self):
        if self.path == "/last":
            with Handler.lock:
                self.send_json(200, Handler.last)
        else:
            self.error(404, "not found", "not_found")

    def do_POST(self):
        path = self.path.lstrip("/")
        mode = ""
        first, sep, rest = path.partition("/")
        if sep and first in MODES:
            mode, path = first, rest
        if path not in ROUTES:
            self.error(404, "not found", "not_found")
            return
        openai = path != "inference"
        length = int(self.headers.get("Content-Length", "0"))
        if length > MAX_BODY:
            self.error(413, "body too large", "too_large")
            return
        raw = self.rfile.read(length)
        try:
            fields = parse_multipart(self.headers.get("Content-Type", ""), raw)
        except ValueError as e:
            self.error(400, "bad multipart: %s" % e, "bad_multipart")
            return
        with Handler.lock:
            Handler.last = {
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "fields": {k: ({"filename": v[0], "content_type": v[1],
                                "bytes": len(v[2])} if isinstance(v, tuple)
                               else v.decode("utf-8", "replace"))
                           for k, v in fields.items()}}
        if openai and Handler.key and \
                self.headers.get("Authorization") != "Bearer " + Handler.key:
            self.error(401, "bad key", "invalid_api_key")
            return
        if mode == "stall":
            deadline = time.monotonic() + STALL_MAX_S
            while time.monotonic() < deadline:
                time.sleep(0.05)
            return
        if mode == "500":
            self.error(500, "the fake was told to fail", "server_error")
            return
        if mode == "garbage":
            self.send_body(200, b"<html>not json</html>", "text/html")
            return
        if mode == "notext":
            self.send_json(200, {"error": "failed to read WAV file"})
            return
        f = fields.get("file")
        if not isinstance(f, tuple):
            self.error(400, "no file field", "missing_file")
            return
        if openai and not fields.get("model"):
            self.error(400, "you must provide a model parameter", "missing_model")
            return
        try:
            rate, samples = parse_wav(f[2])
        except ValueError as e:
            self.error(400, "bad audio: %s" % e, "bad_audio")
            return
        fmt = fields.get("response_format", b"json").decode()
        text = "heard %d samples at %d hz checksum %d" % (
            len(samples), rate, sum(samples) % 65536)
        dur = len(samples) / rate
        segs = [{"id": i, "seek": 0, "start": float(i),
                 "end": min(float(i + 1), dur), "text": " second %d" % i,
                 "tokens": [], "temperature": 0.0}
                for i in range(int(math.ceil(dur)))]
        lang = fields.get("language", b"en").decode()
        if fmt == "json":
            self.send_json(200, {"text": " " + text})
        elif fmt == "verbose_json":
            self.send_json(200, {"task": "transcribe",
                                 "language": "english" if lang == "en" else lang,
                                 "duration": dur, "text": " " + text,
                                 "segments": segs})
        elif fmt == "text":
            self.send_body(200, (text + "\n").encode(), "text/plain")
        else:
            self.error(400, "unsupported response_format", "bad_format")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--key", default=None)
    args = ap.parse_args()
    Handler.key = args.key
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown).start())

    def watch_stdin():  # the test closes our stdin (or dies): stop
        sys.stdin.read()
        srv.shutdown()
    threading.Thread(target=watch_stdin, daemon=True).start()
    print("PORT %d" % srv.server_address[1], flush=True)
    srv.serve_forever()
    srv.server_close()


if __name__ == "__main__":
    main()
