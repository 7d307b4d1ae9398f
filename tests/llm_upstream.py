#!/usr/bin/python3
"""llm_upstream.py - the test LLM upstream used by the whole test suite.

A small threaded HTTP server that answers like the real upstreams do, byte
for byte in the parts a client parses:

  POST /v1/chat/completions   OpenAI / llama.cpp server (JSON, or SSE when
                              "stream": true: `data: {json}\\n\\n` chunks, a
                              finish_reason chunk, a usage chunk when
                              stream_options.include_usage, `data: [DONE]`)
  GET  /v1/models             OpenAI model list
  POST /api/chat              Ollama native (NDJSON stream, or one object when
                              "stream": false; Go's JSON escaping of < > &)
  GET  /api/tags              Ollama model list
  GET  /health                {"status":"ok"} (llama.cpp style)

Behaviours are chosen by the model name, whose '+'-separated words are
behaviour names (e.g. "reasoner+slow"), plus any "#word" in the last user
message. Unknown words are ignored, so any model name means "echo".

  echo (default)  reply "You said: <last user message>." in word tokens
  reasoner        reasoning first: OpenAI delta.reasoning_content / Ollama
                  message.thinking ("Let me think about it." in tokens); for
                  Ollama only when "think" is not false
  reasoning_field with reasoner: the OpenAI field is delta.reasoning instead
  thinktags       reasoning inline in content: "<think>...</think>" with the
                  tags cut across tokens ("<th", "ink>")
  splitutf8       reply has multi-byte characters ("Grüße, 世界! 🎉") and the
                  byte stream is written in pieces cut inside characters
  rawsplit        OpenAI deltas themselves carry half characters as raw bytes
                  (a naive server's tokens); Ollama unaffected
  keepalive       SSE ": ping" comment lines before and between events
  crlf            SSE lines end in CRLF
  nodone          SSE stream ends (cleanly) without usage chunk and [DONE];
                  the last chunk has finish_reason "length"
  midstreamerror  two tokens, then an error event / {"error":..} line
  error500        HTTP 500 with the API's error JSON
  missing         HTTP 404 model not found (OpenAI code model_not_found)
  needkey         HTTP 401 unless "Authorization: Bearer sk-test"
  stall           200 and headers, then nothing until the client closes
  slow            a token every 50 ms, 100 tokens ("w1 w2 ... w100")
  toolcall        when the request has "tools": no content, a call of each
                  tool (at most two) with arguments {"said": <last user
                  message>} as the APIs stream them: OpenAI delta.tool_calls
                  with the arguments' JSON text cut in three fragments and
                  finish_reason "tool_calls"; Ollama one message.tool_calls
                  line with the arguments as an object
Also: max_tokens / num_predict cut the reply (finish "length"); stop strings
cut it (finish "stop"); empty messages -> OpenAI 400 invalid_request_error.

Debug endpoints (for tests):
  GET  /debug/requests   every request seen: path, model, request_id,
                         authorization, body, tokens_sent, closed_early,
                         closed_at (time.monotonic(), the same clock as C's
                         CLOCK_MONOTONIC), finished
  GET  /debug/closes     only the requests whose client closed early
  POST /debug/reset      forget them
A client closing a stream early is noticed within a millisecond or two: the
server waits for the socket to become readable (EOF) between tokens.

Usage: llm_upstream.py [--port N]   (0 = pick a free port; the chosen port
is printed alone on the first stdout line). Stops on SIGTERM / SIGINT.
"""

import argparse
import json
import select
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SLOW_TOKENS = 100
SLOW_DELAY_S = 0.050
STALL_MAX_S = 120.0
MAX_BODY = 8 << 20
CREATED = 1735689600
MODELS = ["echo", "reasoner", "thinktags", "splitutf8", "slow"]
UTF8_TEXT = "Grüße, 世界! 🎉"

_lock = threading.Lock()
_requests = []


def _record(rec):
    with _lock:
        rec["seq"] = len(_requests)
        _requests.append(rec)
        if len(_requests) > 1000:
            del _requests[0]


def _compact(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _go_json(obj):
    """JSON as Go's encoding/json writes it (HTML characters escaped)."""
    s = _compact(obj)
    return (s.replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("&", "\\u0026").replace("\u2028", "\\u2028")
            .replace("\u2029", "\\u2029"))


def _words(text):
    """Splits text into tokens: first word, then " word" for each next one."""
    out = []
    for i, w in enumerate(text.split(" ")):
        out.append(w if i == 0 else " " + w)
    return [t for t in out if t]


def _last_user(messages):
    for m in reversed(messages or []):
        if isinstance(m, dict) and m.get("role") == "user":
            c = m.get("content")
            return c if isinstance(c, str) else json.dumps(c)
    return ""


def _behaviours(model, messages):
    b = set((model or "").split("+"))
    for w in _last_user(messages).split():
        if w.startswith("#"):
            b.add(w[1:])
    return b


def _prompt_tokens(messages):
    n = 0
    for m in messages or []:
        c = m.get("content") if isinstance(m, dict) else ""
        n += len(c.split()) if isinstance(c, str) else 1
    return n


class Plan:
    """What to answer: reasoning tokens, content tokens (str or bytes),
    finish reason."""

    def __init__(self, beh, messages, max_tokens, stops, think):
        self.reasoning = []
        self.content = []
        self.finish = "stop"
        user = _last_user(messages)
        if "slow" in beh:
            self.content = _words(" ".join("w%d" % i
                                           for i in range(1, SLOW_TOKENS + 1)))
        else:
            self.content = _words("You said: %s." % user)
        if "splitutf8" in beh:
            self.content = _words(UTF8_TEXT + " ") + self.content
        if "rawsplit" in beh:
            raw = UTF8_TEXT.encode()
            cuts = [0, 3, 5, 10, 13, 19, len(raw)]   # inside ü, ß, 世, 界, 🎉
            self.content = [raw[a:b] for a, b in zip(cuts, cuts[1:])] + \
                [b" "] + [t.encode() for t in self.content]
        if "reasoner" in beh and think is not False:
            self.reasoning = _words("Let me think about it.")
        if "thinktags" in beh:
            self.content = ["<th", "ink>", "\n", "Hmm,", " thinking.", "\n</",
                            "think", ">\n\n"] + self.content
        self._cut(max_tokens, stops)

    def _cut(self, max_tokens, stops):
        if stops:
            joined = ""
            for i, t in enumerate(self.content):
                if isinstance(t, bytes):
                    continue
                joined += t
                hits = [joined.find(s) for s in stops if s and s in joined]
                if hits:
                    keep = len(t) - (len(joined) - min(hits))
                    self.content = self.content[:i] + ([t[:keep]] if keep > 0 else [])
                    self.finish = "stop"
                    break
        if max_tokens and max_tokens > 0:
            total = self.reasoning + self.content
            if len(total) > max_tokens:
                nr = min(len(self.reasoning), max_tokens)
                self.reasoning = self.reasoning[:nr]
                self.content = self.content[:max_tokens - nr]
                self.finish = "length"

    def tokens(self):
        return ([("reasoning", t) for t in self.reasoning] +
                [("content", t) for t in self.content])

    def text(self, kind):
        parts = self.reasoning if kind == "reasoning" else self.content
        return b"".join(p if isinstance(p, bytes) else p.encode()
                        for p in parts).decode("utf-8", "replace")


def _tool_calls(beh, body):
    """[(name, arguments dict)] the toolcall behaviour answers."""
    tools = body.get("tools")
    if "toolcall" not in beh or not isinstance(tools, list):
        return []
    said = _last_user(body.get("messages"))
    return [(t["function"]["name"], {"said": said}) for t in tools[:2]]


class ClientGone(Exception):
    pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "voxline-test-upstream/1"

    def log_message(self, fmt, *args):   # quiet
        pass

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # ---- plumbing ----

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise ValueError("body too large")
        raw = self.rfile.read(n) if n else b""
        return json.loads(raw) if raw else {}

    def _send_json(self, status, text, ctype="application/json"):
        data = text.encode() if isinstance(text, str) else text
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        if self.rec.get("request_id"):
            self.send_header("X-Request-Id", self.rec["request_id"])
        self.end_headers()
        self.wfile.write(data)

    def _start_stream(self, ctype):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        if self.rec.get("request_id"):
            self.send_header("X-Request-Id", self.rec["request_id"])
        self.end_headers()
        self.wfile.flush()

    def _client_closed(self, wait_s):
        """Waits up to wait_s; True when the client closed the connection."""
        sock = self.connection
        deadline = time.monotonic() + wait_s
        while True:
            left = max(0.0, deadline - time.monotonic())
            r, _, _ = select.select([sock], [], [], left)
            if r:
                try:
                    data = sock.recv(1, socket.MSG_PEEK)
                except (ConnectionError, OSError):
                    data = b""
                if not data:
                    return True
                time.sleep(min(left, 0.005))   # pipelined bytes: ignore
            if time.monotonic() >= deadline:
                return False

    def _gone(self):
        if not self.rec.get("closed_early"):
            self.rec["closed_early"] = True
            self.rec["closed_at"] = time.monotonic()
        self.close_connection = True
        raise ClientGone()

    def _write_chunk(self, data, split_utf8=False):
        if self._client_closed(0):
            self._gone()
        pieces = [data]
        if split_utf8:
            cuts = [0] + [i for i in range(1, len(data))
                          if (data[i] & 0xC0) == 0x80] + [len(data)]
            pieces = [data[a:b] for a, b in zip(cuts, cuts[1:]) if b > a]
        try:
            for i, p in enumerate(pieces):
                self.connection.sendall(b"%x\r\n%s\r\n" % (len(p), p))
                if split_utf8 and i + 1 < len(pieces):
                    time.sleep(0.002)
        except (ConnectionError, OSError):
            self._gone()

    def _end_stream(self):
        try:
            self.connection.sendall(b"0\r\n\r\n")
        except (ConnectionError, OSError):
            self._gone()

    def _pause(self, beh):
        if "slow" in beh and self._client_closed(SLOW_DELAY_S):
            self._gone()

    def _stall(self):
        if self._client_closed(STALL_MAX_S):
            self._gone()
        self.close_connection = True

    # ---- routes ----

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        self.rec = {"method": "GET", "path": self.path,
                    "request_id": self.headers.get("X-Request-Id")}
        if self.path == "/health":
            self._send_json(200, '{"status":"ok"}')
        elif self.path == "/v1/models":
            self._send_json(200, _compact({"object": "list", "data": [
                {"id": m, "object": "model", "created": CREATED,
                 "owned_by": "voxline-test"} for m in MODELS]}))
        elif self.path == "/api/tags":
            self._send_json(200, _go_json({"models": [
                {"name": m + ":latest", "model": m + ":latest",
                 "modified_at": "2025-01-01T00:00:00.000000000Z",
                 "size": 1000000 + i, "digest": "%064x" % (i + 1),
                 "details": {"parent_model": "", "format": "gguf",
                             "family": "llama", "families": ["llama"],
                             "parameter_size": "1B",
                             "quantization_level": "Q4_K_M"}}
                for i, m in enumerate(MODELS)]}),
                "application/json; charset=utf-8")
        elif self.path == "/debug/requests":
            with _lock:
                self._send_json(200, _compact(_requests))
        elif self.path == "/debug/closes":
            with _lock:
                self._send_json(200, _compact(
                    [r for r in _requests if r.get("closed_early")]))
        else:
            self._send_json(404, _compact({"error": {
                "message": "Unknown request URL: GET %s" % self.path,
                "type": "invalid_request_error", "param": None,
                "code": "unknown_url"}}))

    def do_POST(self):
        self.rec = {"method": "POST", "path": self.path,
                    "request_id": self.headers.get("X-Request-Id"),
                    "authorization": self.headers.get("Authorization"),
                    "accept": self.headers.get("Accept"),
                    "started": time.monotonic(), "tokens_sent": 0,
                    "closed_early": False, "finished": False}
        if self.path == "/debug/reset":
            with _lock:
                del _requests[:]
            self._send_json(200, "{}")
            return
        try:
            body = self._body()
        except ValueError as e:
            self._send_json(400, _compact({"error": {"message": str(e),
                                                     "type": "invalid_request_error",
                                                     "param": None, "code": None}}))
            return
        self.rec["body"] = body
        self.rec["model"] = body.get("model")
        _record(self.rec)
        try:
            if self.path == "/v1/chat/completions":
                self._openai(body)
            elif self.path == "/api/chat":
                self._ollama(body)
            else:
                self._send_json(404, _compact({"error": {
                    "message": "Unknown request URL: POST %s" % self.path,
                    "type": "invalid_request_error", "param": None,
                    "code": "unknown_url"}}))
            self.rec["finished"] = True
        except ClientGone:
            pass

    # ---- OpenAI ----

    def _openai_error(self, status, message, etype, code=None, param=None):
        self._send_json(status, _compact({"error": {
            "message": message, "type": etype, "param": param, "code": code}}))

    def _openai(self, body):
        model = body.get("model") or "echo"
        msgs = body.get("messages")
        beh = _behaviours(model, msgs)
        if "needkey" in beh and self.rec["authorization"] != "Bearer sk-test":
            return self._openai_error(
                401, "Incorrect API key provided: %s." %
                (self.rec["authorization"] or "(none)"),
                "invalid_request_error", "invalid_api_key")
        if "missing" in beh:
            return self._openai_error(
                404, "The model `%s` does not exist or you do not have access to it." % model,
                "invalid_request_error", "model_not_found")
        if not isinstance(msgs, list) or not msgs:
            return self._openai_error(400, "[] is too short - 'messages'",
                                      "invalid_request_error", None, "messages")
        if "error500" in beh:
            return self._openai_error(
                500, "The server had an error while processing your request. Sorry about that!",
                "server_error")
        stops = body.get("stop")
        stops = [stops] if isinstance(stops, str) else stops
        plan = Plan(beh, msgs, body.get("max_completion_tokens") or body.get("max_tokens"),
                    stops, None)
        rid = "chatcmpl-voxline%06d" % self.rec["seq"]
        usage = {"prompt_tokens": _prompt_tokens(msgs),
                 "completion_tokens": len(plan.tokens()),
                 "total_tokens": _prompt_tokens(msgs) + len(plan.tokens())}
        if not body.get("stream"):
            msg = {"role": "assistant", "content": plan.text("content"),
                   "refusal": None}
            if plan.reasoning:
                msg["reasoning_content"] = plan.text("reasoning")
            return self._send_json(200, _compact({
                "id": rid, "object": "chat.completion", "created": CREATED,
                "model": model, "choices": [{"index": 0, "message": msg,
                                             "logprobs": None,
                                             "finish_reason": plan.finish}],
                "usage": usage, "system_fingerprint": "fp_voxline"}))
        self._openai_stream(body, beh, plan, rid, model, usage)

    def _openai_stream(self, body, beh, plan, rid, model, usage):
        nl = b"\r\n" if "crlf" in beh else b"\n"
        split = "splitutf8" in beh
        with_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        rfield = "reasoning" if "reasoning_field" in beh else "reasoning_content"

        def event(payload):
            if isinstance(payload, dict):
                payload = _compact(payload).encode("utf-8", "surrogateescape")
            if "keepalive" in beh:
                self._write_chunk(b": ping" + nl + nl)
            self._write_chunk(b"data: " + payload + nl + nl, split)

        def chunk(delta, finish=None):
            d = {"id": rid, "object": "chat.completion.chunk",
                 "created": CREATED, "model": model,
                 "system_fingerprint": "fp_voxline",
                 "choices": [{"index": 0, "delta": delta, "logprobs": None,
                              "finish_reason": finish}]}
            if with_usage:
                d["usage"] = None
            return d

        self._start_stream("text/event-stream; charset=utf-8")
        if "stall" in beh:
            return self._stall()
        calls = _tool_calls(beh, body)
        if calls:
            event(chunk({"role": "assistant", "content": None, "refusal": None}))
            for i, (name, args) in enumerate(calls):
                event(chunk({"tool_calls": [{"index": i, "id": "call_up%d" % i,
                                             "type": "function",
                                             "function": {"name": name, "arguments": ""}}]}))
                text = json.dumps(args)
                cuts = [0, len(text) // 3, 2 * len(text) // 3, len(text)]
                for a, b in zip(cuts, cuts[1:]):
                    event(chunk({"tool_calls": [{"index": i,
                                                 "function": {"arguments": text[a:b]}}]}))
            event(chunk({}, "tool_calls"))
            event(b"[DONE]")
            self._end_stream()
            return
        event(chunk({"role": "assistant", "content": "", "refusal": None}))
        sent = 0
        for kind, tok in plan.tokens():
            self._pause(beh)
            if "midstreamerror" in beh and sent == 2:
                event({"error": {"message": "upstream model crashed mid-stream",
                                 "type": "server_error", "param": None,
                                 "code": None}})
                self._end_stream()
                return
            if isinstance(tok, bytes):
                tok = tok.decode("utf-8", "surrogateescape")
            if kind == "reasoning":
                event(chunk({"content": None, rfield: tok}))
            else:
                event(chunk({"content": tok}))
            sent += 1
            self.rec["tokens_sent"] = sent
        if "nodone" in beh:
            event(chunk({}, "length"))
            self._end_stream()
            return
        event(chunk({}, plan.finish))
        if with_usage:
            u = dict(usage)
            u["prompt_tokens_details"] = {"cached_tokens": 0, "audio_tokens": 0}
            u["completion_tokens_details"] = {
                "reasoning_tokens": len(plan.reasoning), "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
            event({"id": rid, "object": "chat.completion.chunk",
                   "created": CREATED, "model": model,
                   "system_fingerprint": "fp_voxline", "choices": [],
                   "usage": u})
        event(b"[DONE]")
        self._end_stream()

    # ---- Ollama ----

    def _ollama(self, body):
        model = body.get("model") or "echo"
        msgs = body.get("messages") or []
        beh = _behaviours(model, msgs)
        ctype = "application/json; charset=utf-8"
        if "missing" in beh:
            return self._send_json(404, _go_json(
                {"error": "model '%s' not found" % model}), ctype)
        if "error500" in beh:
            return self._send_json(500, _go_json(
                {"error": "llama runner process has terminated: exit status 2"}), ctype)
        opts = body.get("options") or {}
        stops = opts.get("stop")
        plan = Plan(beh, msgs, opts.get("num_predict"), stops, body.get("think"))
        if not msgs:
            plan.reasoning, plan.content, plan.finish = [], [], "load"
        created = "2025-01-01T00:00:00.%09dZ"
        pt = _prompt_tokens(msgs)
        final = {"model": model, "created_at": created % 999999999,
                 "message": {"role": "assistant", "content": ""},
                 "done_reason": plan.finish, "done": True,
                 "total_duration": 123456789, "load_duration": 1234567,
                 "prompt_eval_count": pt, "prompt_eval_duration": 2345678,
                 "eval_count": len(plan.tokens()), "eval_duration": 98765432}
        if body.get("stream") is False:
            final["message"]["content"] = plan.text("content")
            if plan.reasoning:
                final["message"]["thinking"] = plan.text("reasoning")
            return self._send_json(200, _go_json(final), ctype)
        self._start_stream("application/x-ndjson")
        if "stall" in beh:
            return self._stall()
        split = "splitutf8" in beh
        calls = _tool_calls(beh, body)
        if calls:
            plan.reasoning, plan.content = [], []
            line = {"model": model, "created_at": created % 1,
                    "message": {"role": "assistant", "content": "", "tool_calls": [
                        {"function": {"name": n, "arguments": a}} for n, a in calls]},
                    "done": False}
            self._write_chunk(_go_json(line).encode() + b"\n", split)
        sent = 0
        for kind, tok in plan.tokens():
            self._pause(beh)
            if "midstreamerror" in beh and sent == 2:
                self._write_chunk(_go_json({"error": "an error was encountered while running the model"}).encode() + b"\n")
                self._end_stream()
                return
            if isinstance(tok, bytes):
                tok = tok.decode("utf-8", "replace")
            msg = {"role": "assistant", "content": tok if kind == "content" else ""}
            if kind == "reasoning":
                msg["thinking"] = tok
            line = {"model": model, "created_at": created % (sent + 1),
                    "message": msg, "done": False}
            self._write_chunk(_go_json(line).encode() + b"\n", split)
            sent += 1
            self.rec["tokens_sent"] = sent
        self._write_chunk(_go_json(final).encode() + b"\n", split)
        self._end_stream()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return   # a client that went away: expected in these tests
        super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    args = ap.parse_args()
    srv = Server((args.host, args.port), Handler)
    print(srv.server_address[1], flush=True)

    def stop(signum, frame):
        raise KeyboardInterrupt()

    signal.signal(signal.SIGTERM, stop)
    try:
        srv.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
