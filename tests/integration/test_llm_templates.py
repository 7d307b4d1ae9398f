"""Request-time chat-template variables through voxline-llm's GGUF engine:
tools, assistant tool_calls, role "tool" answers and chat_template_kwargs
(enable_thinking) in a POST /v1/chat/completions body reach the model's own
Jinja template as llama.cpp's server passes them. POST /apply-template
answers the rendered prompt, which is compared byte for byte with
python3-jinja2 set up as Hugging Face renders chat templates
(tests/gguf/test_jinja.py's hf_render) over the context the server is meant
to build: OpenAI's string arguments kept as strings for templates that
print them (Qwen3) and turned into objects for templates that only show
objects (Qwen2.5, Llama 3.1, Mistral: arguments | tojson), content "" for a
call without text.

Tiny random-weight models from tests/gguf/mkgguf.py (qwen2 arch, ChatML
BPE vocabulary: bos_token renders "<|endoftext|>", eos_token "<|im_end|>")
with the real templates of tests/gguf/templates embedded.
"""
import json
import os
import subprocess
import sys
import time

import pytest

from conftest import BIN, Daemon, PYTHON, ROOT

sys.path.insert(0, os.path.join(ROOT, "tests", "gguf"))
import tokref  # noqa: E402
from test_jinja import Raised, hf_render  # noqa: E402

TEMPLATES = os.path.join(ROOT, "tests", "gguf", "templates")
FAMILIES = {   # name: (template file, tool-call arguments passed as objects)
    "qwen25": ("Qwen-Qwen2.5-7B-Instruct.jinja", True),
    "qwen3": ("Qwen-Qwen3-0.6B.jinja", False),
    "llama31": ("meta-llama-Llama-3.1-8B-Instruct.jinja", True),
    "mistral": ("mistralai-Mistral-7B-Instruct-v0.3.jinja", True),
}
BOS, EOS = "<|endoftext|>", "<|im_end|>"

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather now; \u00e9t\u00e9 \"quoted\"",
    "parameters": {"type": "object", "required": ["city"], "properties": {
        "city": {"type": "string"}, "days": {"type": "integer", "default": 1},
        "threshold": {"type": "number", "default": 0.5}}}}}]
ARGS = '{"city": "Paris", "days": 2}'
CALL_TURNS = [
    {"role": "system", "content": "You are a weather bot."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call12345", "type": "function",
         "function": {"name": "get_weather", "arguments": ARGS}}]},
    {"role": "tool", "tool_call_id": "call12345", "name": "get_weather",
     "content": "{\"temp_c\": 21}"},
    {"role": "assistant", "content": "It is 21 C in Paris."},
    {"role": "user", "content": "And tomorrow?"},
]


def as_the_server_passes(messages, object_args):
    """The Jinja context's messages: content "" for a call without text,
    arguments an object where the template wants one."""
    out = []
    for m in messages:
        m = json.loads(json.dumps(m))
        if m.get("content") is None:
            m["content"] = ""
        for c in m.get("tool_calls", []):
            if object_args and isinstance(c["function"]["arguments"], str):
                c["function"]["arguments"] = json.loads(c["function"]["arguments"])
        out.append(m)
    return out


def expected(family, messages, **variables):
    name, object_args = FAMILIES[family]
    src = open(os.path.join(TEMPLATES, name), encoding="utf-8").read()
    ctx = dict(variables)
    ctx.update(messages=as_the_server_passes(messages, object_args), bos_token=BOS,
               eos_token=EOS, add_generation_prompt=True)
    return hf_render(src, ctx)


def start_family(tmp, family, *args):
    """voxline-llm on a Q8_0 file carrying the family's template."""
    path = tmp / (family + ".gguf")
    if not path.exists():
        subprocess.run([PYTHON, os.path.join(ROOT, "tests", "gguf", "mkgguf.py"), str(path),
                        "--type", "Q8_0", "--chat-template",
                        os.path.join(TEMPLATES, FAMILIES[family][0])], check=True)
    argv = [os.path.join(BIN, "voxline-llm"), "--port", "0", "--engine", "gguf",
            "--model", str(path), "--threads", "1", "--ctx", "1024", *args]
    d = Daemon(argv, str(tmp / (family + ".log")), dict(os.environ))
    d.wait_ready()
    return d


@pytest.fixture(scope="module")
def daemons(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tmpl_vars")
    started = {}

    def get(family):
        if family not in started:
            started[family] = start_family(tmp, family)
        return started[family]
    yield get
    for family, d in started.items():
        alive = d.alive()
        rc = d.stop()
        assert alive and rc == 0, (family, d.log()[-3000:])


def apply(d, body):
    r = d.post_json("/apply-template", body)
    assert r.status == 200, r.body
    return r.json()["prompt"]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_tools_and_tool_calls_render_as_jinja2_does(daemons, family):
    d = daemons(family)
    got = apply(d, {"messages": CALL_TURNS, "tools": TOOLS})
    assert got == expected(family, CALL_TURNS, tools=TOOLS)
    assert "get_weather" in got and "Paris" in got
    # the call's arguments are shown as JSON, never as a quoted string
    assert '"city": "Paris"' in got and '\\"city\\"' not in got
    # the tool's answer is there
    assert "temp_c" in got


@pytest.mark.parametrize("family", list(FAMILIES))
def test_without_tools_the_prompt_has_no_tool_section(daemons, family):
    d = daemons(family)
    msgs = [{"role": "user", "content": "Hello"}]
    got = apply(d, {"messages": msgs, "tools": []})
    assert got == expected(family, msgs)
    assert "get_weather" not in got and apply(d, {"messages": msgs}) == got


def test_arguments_sent_as_an_object_are_taken_too(daemons):
    d = daemons("qwen3")
    turns = json.loads(json.dumps(CALL_TURNS))
    turns[2]["tool_calls"][0]["function"]["arguments"] = json.loads(ARGS)
    got = apply(d, {"messages": turns, "tools": TOOLS})
    assert got == expected("qwen3", turns, tools=TOOLS)
    assert '{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}' in got


def test_enable_thinking_reaches_the_qwen3_template(daemons):
    d = daemons("qwen3")
    msgs = [{"role": "user", "content": "2+2?"}]
    off = apply(d, {"messages": msgs, "chat_template_kwargs": {"enable_thinking": False}})
    on = apply(d, {"messages": msgs, "chat_template_kwargs": {"enable_thinking": True}})
    plain = apply(d, {"messages": msgs})
    assert off == expected("qwen3", msgs, enable_thinking=False)
    assert on == expected("qwen3", msgs, enable_thinking=True) == plain
    assert off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n") and off != on
    # "think": false says the same, once (not a second empty section)
    assert apply(d, {"messages": msgs, "think": False}) == off
    # other kwargs are template variables too; the standard ones win
    assert apply(d, {"messages": msgs, "chat_template_kwargs": {
        "enable_thinking": False, "add_generation_prompt": False, "messages": []}}) == off


def test_chat_template_kwargs_flag_sets_defaults_a_request_overrides(daemons, tmp_path):
    """--chat-template-kwargs (llama-server's flag): every request gets
    its variables unless its own chat_template_kwargs sets them."""
    ref = daemons("qwen3")
    msgs = [{"role": "user", "content": "2+2?"}]
    d = start_family(tmp_path, "qwen3", "--chat-template-kwargs",
                     '{"enable_thinking": false, "x_unused": [1, {"a": null}]}')
    try:
        off = apply(d, {"messages": msgs})
        assert off == expected("qwen3", msgs, enable_thinking=False)
        assert off == apply(ref, {"messages": msgs, "chat_template_kwargs":
                                  {"enable_thinking": False}})
        on = apply(d, {"messages": msgs, "chat_template_kwargs": {"enable_thinking": True}})
        assert on == expected("qwen3", msgs, enable_thinking=True) != off
        assert apply(d, {"messages": msgs, "think": True}) == on
        assert apply(d, {"messages": msgs, "chat_template_kwargs": None}) == off
        r = d.post_json("/v1/chat/completions", {"messages": msgs, "max_tokens": 2})
        assert r.status == 200, r.body
    finally:
        alive = d.alive()
        rc = d.stop()
    assert alive and rc == 0, d.log()[-3000:]


@pytest.mark.parametrize("bad", ["[1]", "{", "true", "\"x\""])
def test_chat_template_kwargs_flag_must_be_an_object(tmp_path, bad):
    argv = [os.path.join(BIN, "voxline-llm"), "--port", "0", "--engine", "openai",
            "--url", "http://127.0.0.1:9", "--chat-template-kwargs", bad]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, p
    assert "--chat-template-kwargs: not a JSON object" in p.stderr


def test_the_generation_runs_the_prompt_apply_template_shows(daemons):
    """usage.prompt_tokens of a completion with tools and kwargs is the
    token count of the /apply-template prompt (no BOS: add_bos is off)."""
    d = daemons("qwen25")
    body = {"messages": CALL_TURNS, "tools": TOOLS,
            "chat_template_kwargs": {"enable_thinking": False}}
    prompt = apply(d, body)
    r = d.post_json("/v1/chat/completions", dict(body, max_tokens=2, temperature=0))
    assert r.status == 200, r.body
    tok = tokref.RefTokenizer(tokref.make_bpe_vocab(pre="qwen2"))
    assert r.json()["usage"]["prompt_tokens"] == len(tok.encode(prompt.encode(),
                                                                parse_special=True))
    # streamed too
    r = d.post_json("/v1/chat/completions", dict(body, max_tokens=2, stream=True))
    assert r.status == 200 and b"data: [DONE]" in r.body, r.body


BAD = [
    ({"tools": {"type": "function"}}, "invalid_tools", "tools"),
    ({"tools": [1]}, "invalid_tools", "tools[0]"),
    ({"tools": [{"type": "function"}]}, "invalid_tools", "tools[0]"),
    ({"tools": [{"type": "function", "function": {"name": 5}}]}, "invalid_tools", "tools[0]"),
    ({"tools": [TOOLS[0]] * 129}, "invalid_tools", "tools"),
    ({"chat_template_kwargs": "enable_thinking"}, "invalid_value", "chat_template_kwargs"),
    ({"chat_template_kwargs": [True]}, "invalid_value", "chat_template_kwargs"),
    ({"messages": [{"role": "assistant", "tool_calls": {"id": "x"}}]},
     "invalid_tool_calls", "messages[0].tool_calls"),
    ({"messages": [{"role": "assistant", "tool_calls": [{"function": {"arguments": "{}"}}]}]},
     "invalid_tool_calls", "messages[0].tool_calls"),
    ({"messages": [{"role": "assistant", "tool_calls": [
        {"function": {"name": "f", "arguments": 5}}]}]},
     "invalid_tool_calls", "messages[0].tool_calls"),
    ({"messages": [{"role": "tool", "tool_call_id": 7, "content": "x"}]},
     "invalid_value", "messages[0].tool_call_id"),
    ({"messages": [{"role": "tool", "content": None}]}, "invalid_content", "messages[0].content"),
    ({"messages": [{"role": "function", "content": "x"}]}, "invalid_role", "messages[0].role"),
]


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/apply-template"])
def test_bad_tools_and_kwargs_are_400_with_the_field_named(daemons, route):
    d = daemons("qwen3")
    for extra, code, param in BAD:
        body = dict({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}, **extra)
        r = d.post_json(route, body)
        assert r.status == 400, (extra, r.status, r.body)
        err = r.json()["error"]
        assert (err["code"], err["param"]) == (code, param), (extra, err)
        assert err["message"], extra


def test_tools_count_against_the_prompt_limit(tmp_path, daemons):
    """--max-prompt-kb covers the tools' JSON too (413)."""
    path = os.path.join(TEMPLATES, FAMILIES["qwen3"][0])
    model = tmp_path / "m.gguf"
    subprocess.run([PYTHON, os.path.join(ROOT, "tests", "gguf", "mkgguf.py"), str(model),
                    "--type", "Q8_0", "--chat-template", path], check=True)
    argv = [os.path.join(BIN, "voxline-llm"), "--port", "0", "--engine", "gguf",
            "--model", str(model), "--threads", "1", "--ctx", "256",
            "--max-prompt-kb", "2"]
    d = Daemon(argv, str(tmp_path / "llm.log"), dict(os.environ))
    try:
        d.wait_ready()
        big = [{"type": "function", "function": {"name": "f%d" % i, "description": "x" * 100}}
               for i in range(20)]
        r = d.post_json("/apply-template", {"messages": [{"role": "user", "content": "hi"}],
                                            "tools": big})
        assert r.status == 413, r.body
        assert r.json()["error"]["code"] == "prompt_too_large"
        r = d.post_json("/apply-template", {"messages": [{"role": "user", "content": "hi"}],
                                            "tools": big[:2]})
        assert r.status == 200, r.body
    finally:
        alive = d.alive()
        rc = d.stop()
    assert alive and rc == 0, d.log()[-3000:]


def test_a_template_that_refuses_tools_falls_back_and_says_so(daemons):
    """Mistral's template refuses a tool call id that is not 9 characters;
    the built-in renderer then serves (the marker fallback), as for any
    conversation the template refuses."""
    d = daemons("mistral")
    turns = json.loads(json.dumps(CALL_TURNS))
    turns[2]["tool_calls"][0]["id"] = "call_1"
    turns[3]["tool_call_id"] = "call_1"
    with pytest.raises(Raised):
        expected("mistral", turns, tools=TOOLS)
    got = apply(d, {"messages": turns, "tools": TOOLS})
    assert got.startswith("<s>") is False and "And tomorrow?" in got
    assert d.wait_log("the model's chat template failed"), d.log()


def test_apply_template_is_501_for_an_engine_without_a_template(tmp_path):
    argv = [os.path.join(BIN, "voxline-llm"), "--port", "0", "--engine", "openai",
            "--url", "http://127.0.0.1:9"]
    d = Daemon(argv, str(tmp_path / "llm.log"), dict(os.environ))
    try:
        deadline = time.time() + 30   # answering (its upstream is not there)
        while True:
            try:
                d.get("/healthz", timeout=5)
                break
            except OSError:
                assert time.time() < deadline, d.log()[-2000:]
                time.sleep(0.1)
        r = d.post_json("/apply-template", {"messages": [{"role": "user", "content": "hi"}]})
        assert r.status == 501, r.body
        assert r.json()["error"]["code"] == "not_implemented"
    finally:
        alive = d.alive()
        rc = d.stop()
    assert alive and rc == 0, d.log()[-3000:]


# ---- tool calls in the answer: <tool_call>{...}</tool_call> -> tool_calls ----
# The scripted upstream (tests/llm_upstream.py, voxline-llm --engine openai)
# echoes "You said: <last user message>." in word tokens, so a user message
# holding <tool_call> blocks makes an answer that holds them, cut across
# stream pieces.

CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}\n</tool_call>'
CALL2 = '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>'


@pytest.fixture(scope="module")
def echo_llm(tmp_path_factory):
    from fake_llm import LlmUpstream
    tmp = tmp_path_factory.mktemp("toolcalls")
    u = LlmUpstream()
    argv = [os.path.join(BIN, "voxline-llm"), "--port", "0", "--engine", "openai",
            "--url", u.url]
    d = Daemon(argv, str(tmp / "llm.log"), dict(os.environ))
    try:
        d.wait_ready()
        yield d
    finally:
        alive = d.alive()
        rc = d.stop()
        u.stop()
        assert alive and rc == 0, d.log()[-3000:]


def chat(d, text, tools=True, stream=False):
    body = {"messages": [{"role": "user", "content": text}], "stream": stream}
    if tools:
        body["tools"] = TOOLS
    r = d.post_json("/v1/chat/completions", body)
    assert r.status == 200, r.body
    if not stream:
        return r.json()["choices"][0]
    content, calls, finish = "", {}, None
    for line in r.body.decode().split("\n"):
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        ch = json.loads(line[6:])["choices"][0]
        content += ch["delta"].get("content") or ""
        for c in ch["delta"].get("tool_calls", []):
            calls[c["index"]] = c
        finish = ch["finish_reason"] or finish
        assert "<tool_call" not in (ch["delta"].get("content") or ""), line
    return {"message": {"content": content or None,
                        "tool_calls": [calls[i] for i in sorted(calls)] or None},
            "finish_reason": finish}


def call_shape(c):
    assert c["type"] == "function" and c["id"].startswith("call_")
    return c["function"]["name"], json.loads(c["function"]["arguments"])


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_a_tool_call_in_the_answer_becomes_tool_calls(echo_llm, stream):
    got = chat(echo_llm, CALL, stream=stream)
    assert got["finish_reason"] == "tool_calls"
    assert [call_shape(c) for c in got["message"]["tool_calls"]] == [
        ("get_weather", {"city": "Paris", "days": 2})]
    # the text around the block stays content (trimmed when not streamed)
    assert got["message"]["content"] == "You said: ."


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_two_calls_keep_their_order_and_ids(echo_llm, stream):
    got = chat(echo_llm, CALL + " " + CALL2, stream=stream)
    calls = got["message"]["tool_calls"]
    assert [call_shape(c) for c in calls] == [("get_weather", {"city": "Paris", "days": 2}),
                                              ("get_time", {})]
    assert len({c["id"] for c in calls}) == 2 and got["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_without_tools_or_with_a_broken_block_the_text_stays_content(echo_llm, stream):
    r = echo_llm.post_json("/v1/chat/completions", {   # no tools: nothing is parsed
        "messages": [{"role": "user", "content": CALL}], "stream": stream})
    assert r.status == 200, r.body
    assert '"tool_calls"' not in r.body.decode() and '"finish_reason":"stop"' in r.body.decode()
    if stream:
        text = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                       for line in r.body.decode().split("\n")
                       if line.startswith("data: {"))
    else:
        text = r.json()["choices"][0]["message"]["content"]
    assert text == "You said: " + CALL + "."
    broken = '<tool_call>\n{"name": "get_weather", "arguments": [1]}\n</tool_call>'
    r = echo_llm.post_json("/v1/chat/completions", {
        "messages": [{"role": "user", "content": broken}], "tools": TOOLS, "stream": stream})
    assert r.status == 200, r.body
    text = r.body.decode()
    assert '"tool_calls"' not in text and '"finish_reason":"stop"' in text
    assert "get_weather" in text


# ---- tools through the remote engines ----
# voxline-llm in front of an OpenAI-compatible server or Ollama passes the
# request's tools and the conversation's tool calls and answers on, and
# turns the upstream's structured tool calls back into tool_calls.

TIME_TOOL = {"type": "function", "function": {
    "name": "get_time", "parameters": {"type": "object", "properties": {}}}}


@pytest.fixture(scope="module", params=["openai", "ollama"])
def remote_llm(request, tmp_path_factory):
    from fake_llm import LlmUpstream
    tmp = tmp_path_factory.mktemp("remote_tools")
    u = LlmUpstream()
    argv = [os.path.join(BIN, "voxline-llm"), "--port", "0", "--engine",
            request.param, "--url", u.url]
    d = Daemon(argv, str(tmp / "llm.log"), dict(os.environ))
    try:
        d.wait_ready()
        yield request.param, d, u
    finally:
        alive = d.alive()
        rc = d.stop()
        u.stop()
        assert alive and rc == 0, d.log()[-3000:]


def test_tools_and_tool_turns_reach_the_upstream(remote_llm):
    engine, d, u = remote_llm
    u.reset()
    r = d.post_json("/v1/chat/completions", {"messages": CALL_TURNS, "tools": TOOLS})
    assert r.status == 200, r.body
    body = u.requests()[-1]["body"]
    assert body["tools"] == TOOLS
    msgs = body["messages"]
    assert [m["role"] for m in msgs] == [m["role"] for m in CALL_TURNS]
    call = msgs[2]["tool_calls"][0]
    assert call["id"] == "call12345" and call["function"]["name"] == "get_weather"
    # OpenAI's API takes the arguments as JSON text, Ollama's as an object
    args = call["function"]["arguments"]
    assert args == (json.loads(ARGS) if engine == "ollama" else ARGS), args
    assert msgs[3]["tool_call_id"] == "call12345" and msgs[3]["name"] == "get_weather"
    assert msgs[3]["content"] == "{\"temp_c\": 21}"
    # without tools, none are sent
    r = d.post_json("/v1/chat/completions", {"messages": CALL_TURNS[:2]})
    assert r.status == 200, r.body
    body = u.requests()[-1]["body"]
    assert "tools" not in body and "tool_calls" not in body["messages"][1]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_the_upstreams_tool_calls_come_back_as_tool_calls(remote_llm, stream):
    _, d, _ = remote_llm
    body = {"messages": [{"role": "user", "content": "Weather in Paris? #toolcall"}],
            "tools": TOOLS + [TIME_TOOL], "stream": stream}
    r = d.post_json("/v1/chat/completions", body)
    assert r.status == 200, r.body
    if stream:
        content, calls, finish = "", {}, None
        for line in r.body.decode().split("\n"):
            if not line.startswith("data: {"):
                continue
            ch = (json.loads(line[6:])["choices"] or [{}])[0]
            if not ch:
                continue
            content += ch["delta"].get("content") or ""
            for c in ch["delta"].get("tool_calls", []):
                calls[c["index"]] = c
            finish = ch["finish_reason"] or finish
        got = {"content": content or None, "tool_calls": [calls[i] for i in sorted(calls)]}
    else:
        ch = r.json()["choices"][0]
        got, finish = ch["message"], ch["finish_reason"]
    said = {"said": "Weather in Paris? #toolcall"}
    assert [call_shape(c) for c in got["tool_calls"]] == [("get_weather", said),
                                                          ("get_time", said)], got
    assert finish == "tool_calls" and not got["content"], got
