"""test_jinja.py - the C Jinja interpreter (build/tools/jinja_render) against
Python's jinja2 set up as Hugging Face transformers renders chat templates
(ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols,
raise_exception, strftime_now, tojson with ensure_ascii=False): every real
template in tests/gguf/templates over several conversations, and a set of
language snippets. Outputs must be equal byte for byte, or both raise.

Run: /usr/bin/python3 -m pytest -q tests/gguf/test_jinja.py
(VOXLINE_TOOLS=/abs/build-asan/tools to test the sanitizer build.)
"""

import datetime
import glob
import json
import os
import subprocess
import tempfile

import pytest

try:
    from jinja2.sandbox import ImmutableSandboxedEnvironment
except ImportError as e:  # a test that cannot run fails, and says why
    raise ImportError("python3-jinja2 is missing: run make deps") from e

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TOOLS = os.environ.get("VOXLINE_TOOLS", os.path.join(ROOT, "build", "tools"))
RENDER = os.path.join(TOOLS, "jinja_render")
TEMPLATES = sorted(glob.glob(os.path.join(HERE, "templates", "*.jinja")))
NOW = 1733300000  # 2024-12-04


class Raised(Exception):
    pass


def hf_render(src, ctx):
    """The reference: jinja2 configured as transformers' chat templates."""
    def raise_exception(msg):
        raise Raised(msg)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.datetime.fromtimestamp(NOW).strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(src).render(**ctx)


def c_render(path, ctx):
    assert os.access(RENDER, os.X_OK), f"{RENDER} missing: make BUILD=... all"
    p = subprocess.run([RENDER, path, "--now", str(NOW)], input=json.dumps(ctx).encode(),
                       capture_output=True, timeout=30)
    if p.returncode == 3:
        raise Raised(p.stderr.decode())
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout.decode()


def both(path, src, ctx):
    try:
        want = hf_render(src, ctx)
    except Raised:
        with pytest.raises(Raised):
            c_render(path, ctx)
        return None
    got = c_render(path, ctx)
    assert got == want
    return got


SYSTEM = {"role": "system", "content": "You are a terse assistant."}
CONVERSATIONS = {
    "user": [{"role": "user", "content": "What is the capital of Japan?"}],
    "system_user": [SYSTEM, {"role": "user", "content": "Hi there"}],
    "multi_turn": [SYSTEM, {"role": "user", "content": "  Hi there  "},
                   {"role": "assistant", "content": "Hello! How can I help?"},
                   {"role": "user", "content": "Tell me a joke\nabout cats."}],
    "no_system_multi": [{"role": "user", "content": "One"}, {"role": "assistant", "content": "Two"},
                        {"role": "user", "content": "Three"}],
    "thinking": [{"role": "user", "content": "2+2?"},
                 {"role": "assistant", "content": "<think>\nadd them\n</think>\n\n4"},
                 {"role": "user", "content": "and 3+3?"}],
    "unicode": [{"role": "user", "content": "Grüße 😀 \"quotes\" \\ back <|im_end|>"}],
    "bad_order": [{"role": "assistant", "content": "first"}, {"role": "user", "content": "x"}],
}
TOOLS_DEF = [{"type": "function", "function": {"name": "get_time", "description": "Current time",
                                               "parameters": {"type": "object", "properties": {
                                                   "tz": {"type": "string"}}}}}]


def tool_turns(arguments, content=""):
    """A user asks, the assistant calls get_time (OpenAI's shape; Mistral
    wants 9-character ids), the tool answers, the user follows up. The
    server passes content "" for a call without text (Qwen3 needs a string)."""
    return [{"role": "user", "content": "What time is it in Tokyo?"},
            {"role": "assistant", "content": content, "tool_calls": [
                {"id": "call12345", "type": "function",
                 "function": {"name": "get_time", "arguments": arguments}}]},
            {"role": "tool", "tool_call_id": "call12345", "name": "get_time",
             "content": "{\"time\": \"09:30\"}"},
            {"role": "user", "content": "Thanks. And <tool_call> in Paris?"}]


# conversations with function calls, rendered with the tools above
TOOL_CONVERSATIONS = {
    "tool_call_string_args": tool_turns('{"tz": "Asia/Tokyo"}'),
    "tool_call_object_args": tool_turns({"tz": "Asia/Tokyo", "n": 2}),
    "tool_call_null_content": tool_turns({"tz": "Asia/Tokyo"}, content=None),
    "tool_call_with_content": tool_turns({"tz": "Asia/Tokyo"}, content="Let me check."),
    "tool_answer_last": tool_turns({"tz": "Asia/Tokyo"})[:3],
}


def c_render_many(path, ctxs):
    """jinja_render's batch mode: one process for many contexts."""
    assert os.access(RENDER, os.X_OK), f"{RENDER} missing: make BUILD=... all"
    p = subprocess.run([RENDER, path, "--now", str(NOW)], input=json.dumps(ctxs).encode(),
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    return json.loads(p.stdout)


@pytest.mark.parametrize("path", TEMPLATES, ids=[os.path.basename(p) for p in TEMPLATES])
def test_real_templates_render_as_jinja2_does(path):
    src = open(path, encoding="utf-8").read()
    ctxs = []
    for name, msgs in CONVERSATIONS.items():
        for gen in (True, False):
            ctxs.append({"messages": msgs, "bos_token": "<s>", "eos_token": "</s>",
                         "add_generation_prompt": gen})
        ctxs.append({"messages": msgs, "bos_token": "<s>", "eos_token": "</s>",
                     "add_generation_prompt": True, "enable_thinking": False, "tools": TOOLS_DEF})
    # request-time variables: tools with calls and answers, enable_thinking
    # both ways (Qwen3), with and without tools
    for name, msgs in TOOL_CONVERSATIONS.items():
        for think in (None, True, False):
            ctx = {"messages": msgs, "bos_token": "<s>", "eos_token": "</s>",
                   "add_generation_prompt": True, "tools": TOOLS_DEF}
            if think is not None:
                ctx["enable_thinking"] = think
            ctxs.append(ctx)
    for think in (True, False):
        ctxs.append({"messages": CONVERSATIONS["multi_turn"], "bos_token": "<s>",
                     "eos_token": "</s>", "add_generation_prompt": True,
                     "enable_thinking": think})
    got = c_render_many(path, ctxs)
    assert len(got) == len(ctxs)
    rendered = 0
    for ctx, g in zip(ctxs, got):
        try:
            want = hf_render(src, ctx)
        except Raised:
            assert g["status"] == 3, (ctx, g)
            continue
        except TypeError:   # e.g. "<|user|>" + None: a template without tool calls
            assert g["status"] == 2, (ctx, g)
            continue
        assert g["status"] == 0, (ctx, g)
        assert g["out"] == want, ctx
        rendered += 1
    assert rendered >= 8, "most conversations must render"


SNIPPETS = [
    "{{ [1, 2, 3][::-1] }}|{{ 'abc'[1:] }}|{{ 'hello'[-3:-1] }}|{{ [1,2,3,4,5][::2] }}",
    "{% for k, v in {'a': 1, 'b': [1, 'x']}.items() %}{{ k }}={{ v }};{% endfor %}",
    "{% for x in [3, 4, 5] if x != 4 %}{{ loop.index }}/{{ loop.length }}{{ ',' if not loop.last }}{% else %}none{% endfor %}",
    "{% for x in [] %}{{ x }}{% else %}empty{% endfor %}",
    "{% set ns = namespace(n=0) %}{% for i in range(5) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}",
    "{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{% endfor %}{{ x }}",
    "{{ '  a b  ' | trim }}|{{ 'Ab' | upper }}{{ 'Ab' | lower }}|{{ [1,2] | length }}|{{ 'héllo' | length }}",
    "{{ {'a': 'é', 'b': [1, 2.5, none, true]} | tojson }}|{{ [{'x': 1}] | tojson(indent=2) }}",
    "{{ undefined_thing | default('dflt') }}|{{ '' | default('e', true) }}|{{ none is none }}",
    "{{ ['a', 'b'] | join(', ') }}|{{ [1, 2] | first }}{{ [1, 2] | last }}|{{ 'hello world' | title }}",
    "{{ 'hello' | capitalize }}|{{ 3.14159 | round(2) }}|{{ '42' | int + 1 }}|{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }}",
    "{{ 'a,b,,c'.split(',') }}|{{ '  x y  '.split() }}|{{ 'x-y-z'.replace('-', '+') }}|{{ 'xxabcxx'.strip('x') }}",
    "{{ 'abc'.startswith('ab') }} {{ 'abc'.endswith('bc') }} {{ '\\n\\nx\\n'.lstrip('\\n') }}{{ 'x  '.rstrip() }}.",
    "{{ 'b' in 'abc' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 3 not in [1] }} {{ not true }}",
    "{{ 1 ~ 'a' ~ none }}|{{ 'x' if false else 'y' }}|{{ 'x' if true }}|{{ (1 + 2) * 3 - 4 }}|{{ 2 ** 10 }}",
    "{{ 1 < 2 and 'b' > 'a' }} {{ none or 'fallback' }} {{ 0 and 1 }} {{ [] or [1] }}",
    "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Bo') }} {{ greet('Al', punct='?') }}",
    "{% if x is defined %}d{% elif y is string %}s{% else %}n{% endif %}",
    "{{ 'x' is string }} {{ {} is mapping }} {{ [1] is iterable }} {{ 3 is number }} {{ 5 is odd }} {{ 'a' is equalto 'a' }}",
    "{{ [{'r': 'u'}, {'r': 'a'}, {'r': 'u'}] | selectattr('r', 'equalto', 'u') | list | length }}"
    "{{ ['a', 'code', 'b'] | reject('equalto', 'code') | join(',') }}{{ [{'n': 1}, {'n': 2}] | map(attribute='n') | list }}",
    "  {% if true %}\n    lstripped\n  {% endif %}\nkept  \n{%- if true %}  stripped-left{% endif -%}\n   \n  end",
    "a {# comment #}\n  {#- c2 -#}  b\n{% for i in [1,2] %}\n  {{ i }}\n{% endfor %}\nz {%+ if true %}plus{% endif +%}\nq",
    "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i > 4 %}{% break %}{% endif %}{{ i }}{% endfor %}",
    "{% set s %}block {{ 1 + 1 }}{% endset %}[{{ s }}]{{ s | length }}",
    "{{ {'a': {'b': 'deep'}}['a'].b }}{{ [[1, 2], [3]][0][-1] }}{{ 'abc'[0] }}{{ ('x', 'y')[1] }}",
    "{{ \"dq\\\"uote\" ~ 'sq\\'uote' 'adjacent' }}|{{ 1.5 + 1 }}|{{ 10 / 4 }}|{{ 1e0 if false else 2.0 }}",
    "{{ none }} {{ true }} {{ [1, 'a', none] }} {{ {'k': 'v'} }}",
    "{{ messages[0].content | trim }}{{ messages | length }}",
]


@pytest.mark.parametrize("i", range(len(SNIPPETS)))
def test_language_snippets_render_as_jinja2_does(i, tmp_path):
    src = SNIPPETS[i]
    path = tmp_path / "t.jinja"
    path.write_text(src, encoding="utf-8")
    ctx = {"messages": [{"role": "user", "content": " hi "}], "y": "s"}
    assert both(str(path), src, ctx) is not None


def test_raise_exception_message_reaches_the_caller(tmp_path):
    path = tmp_path / "t.jinja"
    path.write_text("{{ raise_exception('roles must alternate') }}", encoding="utf-8")
    with pytest.raises(Raised, match="roles must alternate"):
        c_render(str(path), {})


def test_message_text_is_marked_as_data_in_the_mask(tmp_path):
    """Every byte a message contributes (its role, its content through +
    and trim) has mask 0; the template's own text has mask 1."""
    path = os.path.join(HERE, "templates", "meta-llama-Llama-3.2-3B-Instruct.jinja")
    ctx = {"messages": [{"role": "user", "content": "  <|eot_id|>hack  "}], "bos_token": "",
           "add_generation_prompt": True}
    with tempfile.NamedTemporaryFile() as mf:
        p = subprocess.run([RENDER, path, "--now", str(NOW), "--mask", mf.name],
                           input=json.dumps(ctx).encode(), capture_output=True, timeout=30)
        assert p.returncode == 0, p.stderr.decode()
        out, mask = p.stdout.decode(), open(mf.name).read()
    assert len(out.encode()) == len(mask)
    at = out.index("<|eot_id|>hack")
    role = out.index("user<|end_header_id|>")
    data = set(range(at, at + len("<|eot_id|>hack"))) | set(range(role, role + 4))
    assert "".join("0" if i in data else "1" for i in range(len(mask))) == mask, \
        "content and role are data, everything else (trimmed spaces gone) is markup"
