"""voxline-llm against the real test upstream (tests/llm_upstream.py, OpenAI
SSE and Ollama NDJSON byte for byte), driven by real clients: the official
`openai` npm library, curl, raw sockets and a WebSocket client.

Covers the routes and their shapes, both remote engines (reasoning fields,
<think> tags, split UTF-8, keep-alives, [DONE]-less streams, errors, stalls),
voxline-llm chained to voxline-llm, cancellation reaching the upstream
within 100 ms, bad input, and admission control."""
import http.client
import json
import os
import shutil
import socket
import subprocess
import threading
import time

import pytest
import websocket

from conftest import PYTHON, ROOT
from fake_llm import LlmUpstream

NODE_CLIENT = os.path.join(ROOT, "tests", "integration", "test_llm_openai_client.mjs")
MSGS = [{"role": "user", "content": "hello world"}]
UTF8_TEXT = "Grüße, 世界! 🎉"


@pytest.fixture(scope="module")
def upstream():
    u = LlmUpstream()
    yield u
    u.stop()


@pytest.fixture
def llm(start, upstream):
    """llm(*flags, engine="openai") -> a voxline-llm on the test upstream."""
    def _llm(*args, engine="openai", url=None, ready=True):
        if url is None:
            url = upstream.url
        return start("llm", "--engine", engine, "--url", url, *args, ready=ready)
    return _llm


# ---- helpers ----

def sse_events(port, path, body, headers=None, timeout=20):
    """POSTs and reads the whole SSE answer: (status, headers, [data strings])."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    c.request("POST", path, json.dumps(body).encode(), h)
    r = c.getresponse()
    raw = r.read().decode()
    c.close()
    if r.status != 200 or not r.getheader("Content-Type", "").startswith("text/event-stream"):
        return r.status, dict(r.getheaders()), raw
    events = []
    for block in raw.split("\n\n"):
        data = [line[6:] for line in block.split("\n") if line.startswith("data: ")]
        if data:
            events.append("\n".join(data))
    return r.status, dict(r.getheaders()), events


def chat_stream(port, body, **kw):
    """OpenAI streaming: (content, reasoning, finish, usage, chunks, done_seen)."""
    status, _, events = sse_events(port, "/v1/chat/completions",
                                   dict(body, stream=True), **kw)
    assert status == 200, events
    assert events[-1] == "[DONE]", events[-3:]
    chunks = [json.loads(e) for e in events[:-1]]
    content = "".join((c["choices"][0]["delta"].get("content") or "")
                      for c in chunks if c.get("choices"))
    reasoning = "".join((c["choices"][0]["delta"].get("reasoning_content") or "")
                        for c in chunks if c.get("choices"))
    finish = [c["choices"][0]["finish_reason"] for c in chunks
              if c.get("choices") and c["choices"][0]["finish_reason"]]
    usage = [c["usage"] for c in chunks if c.get("usage")]
    return content, reasoning, finish, usage, chunks


def generate_stream(port, body):
    status, _, events = sse_events(port, "/generate", dict(body, stream=True))
    assert status == 200, events
    evs = [json.loads(e) for e in events]
    content = "".join(e["text"] for e in evs if e["event"] == "token")
    reasoning = "".join(e["text"] for e in evs if e["event"] == "reasoning")
    return content, reasoning, evs


def raw_stream_start(port, body, request_id):
    """Opens a streaming /v1/chat/completions on a raw socket and reads
    until the first content token; returns the socket."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    data = json.dumps(body).encode()
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/json\r\nX-Request-Id: " +
              request_id.encode() + b"\r\nContent-Length: " +
              str(len(data)).encode() + b"\r\n\r\n" + data)
    got = b""
    while b'"content":"w2"' not in got and b'"content":" w2"' not in got:
        b = s.recv(65536)
        assert b, got
        got += b
    return s


def wait_close_record(upstream, request_id, timeout=3.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for r in upstream.closes():
            if r.get("request_id") == request_id:
                return r
        time.sleep(0.02)
    raise AssertionError("upstream never saw the close of " + request_id)


# ---- shapes ----

def test_generate_answers_the_design_shape(llm):
    d = llm()
    r = d.post_json("/generate", {"messages": MSGS, "temperature": 0.2,
                                  "max_tokens": 20, "stream": False})
    assert r.status == 200, r
    j = r.json()
    assert j["message"] == {"role": "assistant", "content": "You said: hello world."}
    assert j["reasoning"] == ""
    assert j["finish_reason"] == "stop"
    assert j["usage"] == {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6}
    assert j["timings"]["total_ms"] >= j["timings"]["first_token_ms"] > 0


def test_generate_streams_server_sent_events(llm):
    d = llm()
    content, reasoning, evs = generate_stream(d.port, {"messages": MSGS, "model": "reasoner"})
    assert content == "You said: hello world."
    assert reasoning == "Let me think about it."
    assert [e["event"] for e in evs].count("token") == 4
    done = evs[-1]
    assert done["event"] == "done" and done["finish_reason"] == "stop"
    assert done["usage"]["completion_tokens"] == 9 and "first_token_ms" in done["timings"]


def test_chat_completions_answers_as_openai_does(llm):
    d = llm()
    r = d.post_json("/v1/chat/completions", {"model": "reasoner", "messages": MSGS})
    assert r.status == 200, r
    j = r.json()
    assert j["id"].startswith("chatcmpl-") and j["object"] == "chat.completion"
    assert isinstance(j["created"], int) and j["model"] == "reasoner"
    ch = j["choices"][0]
    assert ch["index"] == 0 and ch["finish_reason"] == "stop"
    assert ch["message"]["role"] == "assistant"
    assert ch["message"]["content"] == "You said: hello world."
    assert ch["message"]["reasoning_content"] == "Let me think about it."
    assert j["usage"] == {"prompt_tokens": 2, "completion_tokens": 9, "total_tokens": 11}
    # no reasoning -> no reasoning_content field
    j = d.post_json("/v1/chat/completions", {"messages": MSGS}).json()
    assert "reasoning_content" not in j["choices"][0]["message"]


def test_chat_completions_stream_chunks(llm):
    d = llm()
    body = {"model": "echo", "messages": MSGS, "stream_options": {"include_usage": True}}
    content, reasoning, finish, usage, chunks = chat_stream(d.port, body)
    assert content == "You said: hello world." and reasoning == ""
    first = chunks[0]
    assert first["object"] == "chat.completion.chunk"
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert len({c["id"] for c in chunks}) == 1
    assert finish == ["stop"]
    last_choice = [c for c in chunks if c["choices"]][-1]["choices"][0]
    assert last_choice["delta"] == {} and last_choice["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and usage == [
        {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6}]
    # without include_usage: no usage anywhere
    _, _, _, usage, chunks = chat_stream(d.port, {"messages": MSGS})
    assert usage == [] and all("usage" not in c for c in chunks)


def test_models_health_info_metrics(llm):
    d = llm("--model", "echo")
    j = d.get("/v1/models").json()
    assert j["object"] == "list"
    assert "reasoner" in [m["id"] for m in j["data"]]
    h = d.get("/healthz").json()
    assert h["status"] == "ok" and h["engine"] == "openai" and h["model"] == "echo"
    assert d.get("/livez").status == 200
    info = d.get("/info").json()
    assert set(info["engines"]) >= {"openai", "ollama"}
    assert "POST /v1/chat/completions" in info["routes"] and "/ws/generate" in info["websocket"]
    d.post_json("/v1/chat/completions", {"messages": MSGS})
    m = d.get("/metrics").body.decode()
    for name in ("voxline_llm_time_to_first_token_seconds_bucket",
                 "voxline_llm_tokens_per_second_bucket",
                 "voxline_llm_prompt_tokens_total", "voxline_llm_completion_tokens_total",
                 "voxline_llm_generations_in_flight", "voxline_llm_rejected_total",
                 'voxline_llm_upstream_errors_total{kind="timeout"}'):
        assert name in m, name
    line = [x for x in m.splitlines() if x.startswith("voxline_llm_completion_tokens_total")][0]
    assert float(line.split()[-1]) >= 4


# ---- real clients ----

@pytest.mark.skipif(not shutil.which("node"), reason="node is not installed")
def test_official_openai_node_client(llm):
    if not os.path.isdir(os.path.join(ROOT, "tests", "node_modules", "openai")):
        pytest.fail("tests/node_modules/openai missing: run `make deps` (npm install in tests/)")
    d = llm("--api-key", "svc-key")
    p = subprocess.run(["node", NODE_CLIENT, d.url, "svc-key"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr + p.stdout
    res = {j["case"]: j for j in map(json.loads, p.stdout.splitlines())}
    c = res["create"]
    assert c["object"] == "chat.completion" and c["id"].startswith("chatcmpl-")
    assert c["content"] == "You said: hello from node." and c["role"] == "assistant"
    assert c["reasoning"] == "Let me think about it." and c["finish"] == "stop"
    assert c["usage"]["total_tokens"] == c["usage"]["prompt_tokens"] + c["usage"]["completion_tokens"]
    s = res["stream"]
    assert s["content"] == "You said: hello from node."
    assert s["reasoning"] == "Let me think about it."
    assert s["finish"] == "stop" and s["firstRole"] == "assistant"
    assert s["usage"]["completion_tokens"] == 10
    assert res["stream_helper"]["content"] == UTF8_TEXT + " You said: hello from node."
    assert res["error_missing"]["status"] == 404
    assert res["error_missing"]["type"] == "not_found_error"
    assert res["error_error500"]["status"] == 502
    assert "reasoner" in res["models"]["ids"]
    # the key is enforced: the same client without it is refused
    p = subprocess.run(["node", NODE_CLIENT, d.url, "wrong"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode != 0 and "401" in p.stderr


def test_curl_streaming_and_not(llm):
    d = llm()
    body = json.dumps({"model": "reasoner", "messages": MSGS})
    out = subprocess.run(["curl", "-sS", "-f", d.url + "/v1/chat/completions",
                          "-H", "Content-Type: application/json", "-d", body],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["choices"][0]["message"]["content"] == "You said: hello world."
    body = json.dumps({"model": "echo", "messages": MSGS, "stream": True})
    out = subprocess.run(["curl", "-sS", "-N", "-f", d.url + "/v1/chat/completions",
                          "-H", "Content-Type: application/json", "-d", body],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    lines = [x[6:] for x in out.stdout.splitlines() if x.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    text = "".join(json.loads(x)["choices"][0]["delta"].get("content", "") for x in lines[:-1])
    assert text == "You said: hello world."
    # curl's default form content type is refused with 415, in the OpenAI error shape
    out = subprocess.run(["curl", "-sS", "-w", "%{http_code}", d.url + "/generate",
                          "-d", body], capture_output=True, text=True, timeout=30)
    assert out.stdout.endswith("415")
    err = json.loads(out.stdout[:-3])["error"]
    assert err["type"] == "invalid_request_error" and err["code"] == "unsupported_media_type"


def test_websocket_generate_tokens_done_and_a_second_request(llm):
    d = llm()
    ws = websocket.create_connection(d.ws_url + "/ws/generate", timeout=10)
    try:
        for round_ in range(2):
            ws.send(json.dumps({"messages": MSGS, "model": "reasoner", "id": round_}))
            evs = []
            while True:
                e = json.loads(ws.recv())
                evs.append(e)
                if e["event"] in ("done", "error"):
                    break
            assert all(e["id"] == round_ for e in evs)
            assert "".join(e["text"] for e in evs if e["event"] == "token") == "You said: hello world."
            assert "".join(e["text"] for e in evs if e["event"] == "reasoning") == "Let me think about it."
            assert evs[-1]["event"] == "done" and evs[-1]["finish_reason"] == "stop"
            assert evs[-1]["usage"]["completion_tokens"] == 9
        # reasoning can be turned off; bad requests answer an error event
        ws.send(json.dumps({"messages": MSGS, "model": "thinktags", "reasoning": False}))
        evs = []
        while not evs or evs[-1]["event"] != "done":
            evs.append(json.loads(ws.recv()))
        assert not [e for e in evs if e["event"] == "reasoning"]
        assert "".join(e["text"] for e in evs if e["event"] == "token") == "You said: hello world."
        ws.send(json.dumps({"messages": [{"role": "robot", "content": "x"}]}))
        e = json.loads(ws.recv())
        assert e["event"] == "error" and e["code"] == "invalid_role" and e["status"] == 400
        ws.send("{not json")
        assert json.loads(ws.recv())["code"] == "invalid_json"
        ws.send(json.dumps({"event": "end"}))          # idle: answered at once
        assert json.loads(ws.recv()) == {"event": "done", "end": True}
        ws.send(json.dumps({"event": "dance"}))
        assert json.loads(ws.recv())["code"] == "unknown_event"
        ws.send(json.dumps({"event": "generate", "messages": MSGS, "id": "g"}))
        evs = []
        while not evs or evs[-1]["event"] != "done":
            evs.append(json.loads(ws.recv()))
        assert all(e["id"] == "g" for e in evs) and len(evs) == 5
    finally:
        ws.close()


# ---- upstream protocols ----

# reasoning_field is an OpenAI field: Ollama's protocol has no such case.
@pytest.mark.parametrize("engine,model", [
    (e, m) for e in ("openai", "ollama")
    for m in ("reasoner", "reasoner+reasoning_field", "thinktags")
    if not (e == "ollama" and m == "reasoner+reasoning_field")])
def test_reasoning_is_split_from_content(llm, engine, model):
    d = llm(engine=engine)
    want_r = "Hmm, thinking.\n" if model == "thinktags" else "Let me think about it."
    j = d.post_json("/generate", {"messages": MSGS, "model": model}).json()
    assert j["message"]["content"] == "You said: hello world."
    assert j["reasoning"] == want_r
    content, reasoning, _, _, _ = chat_stream(d.port, {"messages": MSGS, "model": model})
    assert (content, reasoning) == ("You said: hello world.", want_r)
    # asked to drop it: not sent at all
    j = d.post_json("/generate", {"messages": MSGS, "model": model, "reasoning": False}).json()
    assert "reasoning" not in j and j["message"]["content"] == "You said: hello world."
    content, reasoning, _, _, chunks = chat_stream(
        d.port, {"messages": MSGS, "model": model, "include_reasoning": False})
    assert reasoning == "" and content == "You said: hello world."
    assert "reasoning_content" not in json.dumps(chunks)


@pytest.mark.parametrize("engine,model", [("openai", "splitutf8"), ("openai", "rawsplit"),
                                          ("ollama", "splitutf8"),
                                          ("openai", "splitutf8+keepalive+crlf")])
def test_split_utf8_keepalive_crlf(llm, engine, model):
    d = llm(engine=engine)
    want = UTF8_TEXT + " You said: hello world."
    assert d.post_json("/generate", {"messages": MSGS, "model": model}).json()[
        "message"]["content"] == want
    content, _, finish, _, chunks = chat_stream(d.port, {"messages": MSGS, "model": model})
    assert content == want and finish == ["stop"]
    for c in chunks:    # every delta is whole characters
        json.dumps(c, ensure_ascii=False).encode("utf-8")
    content, _, _ = generate_stream(d.port, {"messages": MSGS, "model": model})
    assert content == want


def test_stream_without_done_ends_cleanly(llm):
    d = llm()
    j = d.post_json("/v1/chat/completions", {"messages": MSGS, "model": "nodone"}).json()
    assert j["choices"][0]["finish_reason"] == "length"
    assert j["choices"][0]["message"]["content"] == "You said: hello world."


@pytest.mark.parametrize("engine", ["openai", "ollama"])
def test_upstream_errors_map_to_gateway_statuses(llm, engine):
    d = llm(engine=engine)
    r = d.post_json("/v1/chat/completions", {"messages": MSGS, "model": "error500"})
    assert r.status == 502, r
    e = r.json()["error"]
    assert e["code"] == "upstream_error" and e["type"] == "server_error" and e["message"]
    r = d.post_json("/generate", {"messages": MSGS, "model": "missing", "stream": True})
    assert r.status == 404 and r.json()["error"]["code"] == "model_not_found"
    # an error after the first token: a final error event, then [DONE]
    status, _, events = sse_events(d.port, "/v1/chat/completions",
                                   {"messages": MSGS, "model": "midstreamerror", "stream": True})
    assert status == 200 and events[-1] == "[DONE]"
    assert json.loads(events[-2])["error"]["code"] == "upstream_error"
    assert json.loads(events[1])["choices"][0]["delta"]["content"] == "You"
    r = d.post_json("/v1/chat/completions", {"messages": MSGS, "model": "midstreamerror"})
    assert r.status == 502
    status, _, events = sse_events(d.port, "/generate",
                                   {"messages": MSGS, "model": "midstreamerror", "stream": True})
    last = json.loads(events[-1])
    assert status == 200 and json.loads(events[0]) == {"event": "token", "text": "You"}
    assert last["event"] == "error" and last["code"] == "upstream_error" and last["status"] == 502


def test_upstream_needs_its_own_key(llm):
    d = llm("--api-key-upstream", "sk-test")
    j = d.post_json("/generate", {"messages": MSGS, "model": "needkey"}).json()
    assert j["message"]["content"] == "You said: hello world."
    d2 = llm()
    assert d2.post_json("/generate", {"messages": MSGS, "model": "needkey"}).status == 502


def test_stalled_upstream_is_504_within_the_first_token_timeout(llm):
    d = llm("--first-token-timeout-ms", "1000")
    for engine_path, stream in (("/v1/chat/completions", False), ("/generate", True)):
        t0 = time.monotonic()
        r = d.post_json(engine_path, {"messages": MSGS, "model": "stall", "stream": stream})
        dt = time.monotonic() - t0
        assert r.status == 504, r
        assert r.json()["error"]["code"] == "upstream_timeout"
        assert 0.9 < dt < 2.5, dt
    assert 'voxline_llm_upstream_errors_total{kind="timeout"} 2' in d.get("/metrics").body.decode()


def test_generation_deadline_is_enforced(llm):
    d = llm("--timeout-s", "1")
    t0 = time.monotonic()
    r = d.post_json("/v1/chat/completions", {"messages": MSGS, "model": "slow"})
    assert r.status == 504 and 0.9 < time.monotonic() - t0 < 2.5, r
    # streamed: tokens, then the error event and [DONE]
    status, _, events = sse_events(d.port, "/v1/chat/completions",
                                   {"messages": MSGS, "model": "slow", "stream": True})
    assert status == 200 and events[-1] == "[DONE]"
    assert json.loads(events[-2])["error"]["code"] == "upstream_timeout"
    assert 10 < len(events) < 30


def test_upstream_down_is_502_and_not_ready(llm):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()   # nothing listens there now
    d = llm("--probe-interval-ms", "200", url=f"http://127.0.0.1:{port}", ready=False)
    r = d.post_json("/v1/chat/completions", {"messages": MSGS})
    assert r.status == 502 and r.json()["error"]["code"] == "upstream_unavailable"
    h = d.get("/healthz")
    assert h.status == 503 and h.json()["status"] == "unavailable"
    assert d.get("/livez").status == 200
    assert d.get("/v1/models").status == 502


def test_chained_voxline_llm_keeps_reasoning(llm, start):
    inner = llm()
    outer = start("llm", "--engine", "openai", "--url", inner.url)
    for model in ("reasoner", "thinktags"):
        want_r = "Hmm, thinking.\n" if model == "thinktags" else "Let me think about it."
        j = outer.post_json("/v1/chat/completions", {"messages": MSGS, "model": model}).json()
        msg = j["choices"][0]["message"]
        assert msg["content"] == "You said: hello world."
        assert msg["reasoning_content"] == want_r
        content, reasoning, finish, usage, _ = chat_stream(
            outer.port, {"messages": MSGS, "model": model,
                         "stream_options": {"include_usage": True}})
        assert (content, reasoning, finish) == ("You said: hello world.", want_r, ["stop"])
        assert usage[0]["completion_tokens"] == j["usage"]["completion_tokens"]
    content, _, _ = generate_stream(outer.port, {"messages": MSGS, "model": "splitutf8"})
    assert content == UTF8_TEXT + " You said: hello world."
    r = outer.post_json("/v1/chat/completions", {"messages": MSGS, "model": "error500"})
    assert r.status == 502


# ---- generation controls ----

def test_generation_controls_reach_the_upstream(llm, upstream):
    d = llm("--max-tokens", "33", "--system-prompt", "Be brief.")
    body = {"messages": MSGS, "model": "echo", "temperature": 0.3, "top_p": 0.9,
            "top_k": 40, "min_p": 0.05, "repeat_penalty": 1.1, "seed": 42,
            "stop": "zzz"}
    assert d.post_json("/generate", body, headers={"X-Request-Id": "ctl-1"}).status == 200
    sent = upstream.requests("ctl-1")[0]["body"]
    assert sent["temperature"] == 0.3 and sent["top_p"] == 0.9 and sent["top_k"] == 40
    assert sent["min_p"] == 0.05 and sent["repeat_penalty"] == 1.1 and sent["seed"] == 42
    assert sent["max_tokens"] == 33 and sent["stop"] == ["zzz"]
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    # a request with its own system message keeps it alone; max_completion_tokens counts
    body = {"messages": [{"role": "system", "content": "Mine."}] + MSGS,
            "max_completion_tokens": 3}
    j = d.post_json("/v1/chat/completions", body, headers={"X-Request-Id": "ctl-2"}).json()
    sent = upstream.requests("ctl-2")[0]["body"]
    assert [m["content"] for m in sent["messages"]] == ["Mine.", "hello world"]
    assert sent["max_tokens"] == 3 and j["choices"][0]["finish_reason"] == "length"
    assert j["choices"][0]["message"]["content"] == "You said: hello"
    # ollama gets them as options, think as a switch
    d = llm(engine="ollama")
    body = {"messages": MSGS, "model": "reasoner", "temperature": 0.5, "max_tokens": 7,
            "think": False, "seed": 1}
    j = d.post_json("/generate", body, headers={"X-Request-Id": "ctl-3"}).json()
    sent = upstream.requests("ctl-3")[0]["body"]
    assert sent["think"] is False and sent["options"]["num_predict"] == 7
    assert sent["options"]["temperature"] == 0.5 and sent["options"]["seed"] == 1
    assert j["reasoning"] == ""


def test_stop_strings_are_enforced_by_the_service(llm):
    # "rawsplit" tokens are bytes the test upstream never matches stops in,
    # so only voxline-llm can cut here.
    d = llm()
    for stop in ("世界", ["nope", "界!"]):
        j = d.post_json("/v1/chat/completions",
                        {"messages": MSGS, "model": "rawsplit", "stop": stop}).json()
        ch = j["choices"][0]
        assert ch["message"]["content"] == "Grüße, " if stop == "世界" else "Grüße, 世"
        assert ch["finish_reason"] == "stop"
    content, _, finish, _, _ = chat_stream(d.port, {"messages": MSGS, "model": "rawsplit",
                                                    "stop": ["You said"]})
    assert content == UTF8_TEXT + " " and finish == ["stop"]


# ---- cancellation ----

def test_websocket_cancel_closes_the_upstream_within_100ms(llm, upstream):
    d = llm()
    ws = websocket.create_connection(d.ws_url + "/ws/generate", timeout=10,
                                     header=["X-Request-Id: ws-cancel-1"])
    try:
        ws.send(json.dumps({"messages": MSGS, "model": "slow"}))
        tokens = 0
        while tokens < 3:
            e = json.loads(ws.recv())
            assert e["event"] == "token", e
            tokens += 1
        t_cancel = time.monotonic()
        ws.send(json.dumps({"event": "cancel"}))
        while True:
            e = json.loads(ws.recv())
            if e["event"] != "token":
                break
        assert e["event"] == "done" and e["finish_reason"] == "cancelled", e
        rec = wait_close_record(upstream, "ws-cancel-1")
        print(f"ws cancel -> upstream closed in {1e3 * (rec['closed_at'] - t_cancel):.1f} ms")
        assert rec["closed_at"] - t_cancel < 0.100, rec["closed_at"] - t_cancel
        assert rec["tokens_sent"] < 20
        # the socket stays usable: a new request right away, and a barge-in
        # (cancel + new request at once) starts the new one
        ws.send(json.dumps({"messages": MSGS, "model": "slow"}))
        assert json.loads(ws.recv())["event"] == "token"
        ws.send(json.dumps({"event": "cancel"}))
        ws.send(json.dumps({"messages": MSGS, "model": "echo", "id": "next"}))
        evs = []
        while not (evs and evs[-1].get("id") == "next" and evs[-1]["event"] == "done"):
            evs.append(json.loads(ws.recv()))
        assert "".join(e["text"] for e in evs
                       if e.get("id") == "next" and e["event"] == "token") == "You said: hello world."
        # a second request while one runs is refused
        ws.send(json.dumps({"messages": MSGS, "model": "slow"}))
        assert json.loads(ws.recv())["event"] == "token"
        ws.send(json.dumps({"messages": MSGS}))
        while True:
            e = json.loads(ws.recv())
            if e["event"] != "token":
                break
        assert e["event"] == "error" and e["code"] == "busy"
    finally:
        ws.close()


def test_websocket_close_cancels_the_upstream(llm, upstream):
    d = llm()
    ws = websocket.create_connection(d.ws_url + "/ws/generate", timeout=10,
                                     header=["X-Request-Id: ws-close-1"])
    ws.send(json.dumps({"messages": MSGS, "model": "slow"}))
    assert json.loads(ws.recv())["event"] == "token"
    t_close = time.monotonic()
    ws.close()
    rec = wait_close_record(upstream, "ws-close-1")
    print(f"ws closed -> upstream closed in {1e3 * (rec['closed_at'] - t_close):.1f} ms")
    assert rec["closed_at"] - t_close < 0.100, rec["closed_at"] - t_close


@pytest.mark.parametrize("engine", ["openai", "ollama"])
def test_http_client_disconnect_closes_the_upstream_within_100ms(llm, upstream, engine):
    d = llm(engine=engine)
    rid = "http-gone-" + engine
    path_body = {"messages": MSGS, "model": "slow", "stream": True}
    s = raw_stream_start(d.port, path_body, rid)
    t_gone = time.monotonic()
    s.close()
    rec = wait_close_record(upstream, rid)
    print(f"{engine}: client gone mid-stream -> upstream closed in "
          f"{1e3 * (rec['closed_at'] - t_gone):.1f} ms")
    assert rec["closed_at"] - t_gone < 0.100, rec["closed_at"] - t_gone
    assert rec["tokens_sent"] < 20
    # a non-streamed request whose client leaves is cancelled too
    rid2 = rid + "-json"
    s = socket.create_connection(("127.0.0.1", d.port))
    data = json.dumps({"messages": MSGS, "model": "slow"}).encode()
    s.sendall(b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"X-Request-Id: " + rid2.encode() + b"\r\nContent-Length: " +
              str(len(data)).encode() + b"\r\n\r\n" + data)
    deadline = time.time() + 5
    while not upstream.requests(rid2) and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    t_gone = time.monotonic()
    s.close()
    rec = wait_close_record(upstream, rid2)
    print(f"{engine}: client gone before the answer -> upstream closed in "
          f"{1e3 * (rec['closed_at'] - t_gone):.1f} ms")
    assert rec["closed_at"] - t_gone < 0.100, rec["closed_at"] - t_gone


# ---- bad input and admission ----

def test_bad_requests_are_400_413_415_in_both_error_shapes(llm):
    d = llm("--max-prompt-kb", "1", "--max-tokens", "50", "--max-tokens-limit", "100")
    cases = [
        ({"model": "echo"}, 400, "missing_messages"),
        ({"messages": []}, 400, "invalid_messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, 400, "invalid_role"),
        ({"messages": [{"role": "user", "content": 42}]}, 400, "invalid_content"),
        ({"messages": [{"role": "user"}]}, 400, "invalid_content"),
        ({"messages": MSGS, "temperature": 9}, 400, "invalid_value"),
        ({"messages": MSGS, "max_tokens": 101}, 400, "invalid_value"),
        ({"messages": MSGS, "stop": [1]}, 400, "invalid_value"),
        ({"messages": [{"role": "user", "content": "x" * 2000}]}, 413, "prompt_too_large"),
    ]
    for path in ("/generate", "/v1/chat/completions"):
        for body, status, code in cases:
            r = d.post_json(path, body)
            assert r.status == status, (body, r)
            e = r.json()["error"]
            assert e["code"] == code and e["message"] and e["type"] == "invalid_request_error", e
        r = d.post(path, b'{"messages": [', "application/json")
        assert r.status == 400 and r.json()["error"]["code"] == "invalid_json"
        r = d.post(path, b'{"messages":[{"role":"user","content":"\xff\xfe"}]}',
                   "application/json")
        assert r.status == 400 and r.json()["error"]["code"] == "invalid_utf8"
        r = d.post(path, json.dumps({"messages": MSGS}).encode(), "text/plain")
        assert r.status == 415 and r.json()["error"]["code"] == "unsupported_media_type"
    r = d.post_json("/v1/chat/completions", {"messages": MSGS, "model": "missing"})
    assert r.status == 404 and r.json()["error"]["type"] == "not_found_error"
    assert d.get("/v1/chat/completions").status == 405


def test_over_max_concurrent_is_503_with_retry_after(llm):
    d = llm("--max-concurrent", "2")
    socks = [raw_stream_start(d.port, {"messages": MSGS, "model": "slow", "stream": True},
                              f"busy-{i}") for i in range(2)]
    try:
        r = d.post_json("/v1/chat/completions", {"messages": MSGS})
        assert r.status == 503 and r.headers.get("Retry-After")
        assert r.json()["error"]["code"] == "overloaded"
        ws = websocket.create_connection(d.ws_url + "/ws/generate", timeout=10)
        ws.send(json.dumps({"messages": MSGS}))
        e = json.loads(ws.recv())
        assert e["event"] == "error" and e["status"] == 503
        ws.close()
        h = d.get("/healthz")
        assert h.status == 503 and h.json()["status"] == "overloaded"
        assert "voxline_llm_rejected_total 2" in d.get("/metrics").body.decode()
    finally:
        for s in socks:
            s.close()
    deadline = time.time() + 5
    while d.get("/healthz").status != 200 and time.time() < deadline:
        time.sleep(0.05)
    assert d.post_json("/v1/chat/completions", {"messages": MSGS}).status == 200


def test_many_concurrent_streams_all_complete(llm):
    d = llm("--max-concurrent", "16")
    results = []

    def one(i):
        c, _, f, _, _ = chat_stream(d.port, {"messages": [{"role": "user", "content": f"n{i}"}]})
        results.append((i, c, f))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [(i, f"You said: n{i}.", ["stop"]) for i in range(16)]


# ---- the built-in GGUF engine ----

@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    """A small GGUF file with random weights (tests/gguf/mkgguf.py)."""
    path = str(tmp_path_factory.mktemp("gguf") / "tiny.gguf")
    subprocess.run([PYTHON, os.path.join(ROOT, "tests", "gguf", "mkgguf.py"), path],
                   check=True, capture_output=True, timeout=120)
    return path


def test_gguf_engine_is_the_default_with_a_model_file(start, tiny_gguf):
    d = start("llm", "--model", tiny_gguf, "--threads", "1")
    h = d.get("/healthz").json()
    assert h["status"] == "ok" and h["engine"] == "gguf" and h["model"] == "tiny"
    assert [m["id"] for m in d.get("/v1/models").json()["data"]] == ["tiny"]
    j = d.post_json("/generate", {"messages": MSGS, "max_tokens": 8, "seed": 7,
                                  "temperature": 0}).json()
    assert j["model"] == "tiny" and j["usage"]["prompt_tokens"] > 0
    assert 1 <= j["usage"]["completion_tokens"] <= 8
    assert j["finish_reason"] in ("length", "stop")
    # greedy decoding is deterministic: the stream says the same
    content, _, evs = generate_stream(d.port, {"messages": MSGS, "max_tokens": 8, "seed": 7,
                                               "temperature": 0})
    assert content == j["message"]["content"]
    body = {"model": "tiny", "messages": MSGS, "max_tokens": 5, "temperature": 0}
    _, _, finish, _, chunks = chat_stream(d.port, body)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert finish and finish[0] in ("length", "stop")
    r = d.post_json("/v1/chat/completions", {"model": "nope", "messages": MSGS})
    assert r.status == 404 and r.json()["error"]["code"] == "model_not_found"
    ws = websocket.create_connection(d.ws_url + "/ws/generate", timeout=20)
    ws.send(json.dumps({"messages": MSGS, "max_tokens": 4}))
    evs = []
    while not evs or evs[-1]["event"] not in ("done", "error"):
        evs.append(json.loads(ws.recv()))
    ws.close()
    assert evs[-1]["event"] == "done" and evs[-1]["usage"]["completion_tokens"] <= 4
