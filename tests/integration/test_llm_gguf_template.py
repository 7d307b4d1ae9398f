"""voxline-llm's GGUF engine renders prompts with the model's own Jinja chat
template (tokenizer.chat_template), and falls back to the built-in
marker-based renderer, with a log line, when the template does not parse or
fails on a conversation.

Tiny random-weight models from tests/gguf/mkgguf.py (qwen2 arch, BPE
vocabulary with ChatML control tokens); prompt sizes are checked through
usage.prompt_tokens against the Python reference tokenizer (tokref.py).
"""
import json
import os
import subprocess
import sys

import pytest

from conftest import BIN, Daemon, PYTHON, ROOT

sys.path.insert(0, os.path.join(ROOT, "tests", "gguf"))
import tokref  # noqa: E402

TEMPLATES = os.path.join(ROOT, "tests", "gguf", "templates")
QWEN_DEFAULT = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
USER = [{"role": "user", "content": "Hi there"}]


def make(tmp, name, template_text, *args):
    tpl = tmp / (name + ".jinja")
    tpl.write_text(template_text, encoding="utf-8")
    path = tmp / (name + ".gguf")
    subprocess.run([PYTHON, os.path.join(ROOT, "tests", "gguf", "mkgguf.py"), str(path),
                    "--type", "Q8_0", "--chat-template", str(tpl), *args], check=True)
    return str(path)


def start(tmp, model):
    argv = [os.path.join(BIN, "voxline-llm"), "--port", "0", "--engine", "gguf",
            "--model", model, "--threads", "2", "--ctx", "256"]
    d = Daemon(argv, str(tmp / "voxline-llm.log"), dict(os.environ))
    d.wait_ready()
    return d


def stop_clean(d):
    alive = d.alive()
    rc = d.stop()
    assert alive and rc == 0, d.log()[-3000:]


def count(text):
    """Tokens of a prompt whose control tokens are all template markup."""
    if not hasattr(count, "tok"):
        count.tok = tokref.RefTokenizer(tokref.make_bpe_vocab(pre="qwen2"))
    return len(count.tok.encode(text.encode(), parse_special=True))


def prompt_tokens(d, messages):
    r = d.post_json("/v1/chat/completions", {"messages": messages, "max_tokens": 2,
                                             "temperature": 0})
    assert r.status == 200, r.body
    return r.json()["usage"]["prompt_tokens"]


def chatml(messages):
    return "".join("<|im_start|>%s\n%s<|im_end|>\n" % (m["role"], m["content"])
                   for m in messages) + "<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("tmpl")


def test_the_models_template_adds_its_default_system_prompt(tmp):
    """Qwen2.5's real template injects its default system prompt; the
    built-in ChatML renderer would not."""
    src = open(os.path.join(TEMPLATES, "Qwen-Qwen2.5-7B-Instruct.jinja"), encoding="utf-8").read()
    d = start(tmp, make(tmp, "qwen25", src))
    try:
        want = count("<|im_start|>system\n" + QWEN_DEFAULT + "<|im_end|>\n" + chatml(USER))
        assert want > count(chatml(USER)) + 10
        assert prompt_tokens(d, USER) == want
        sys_msgs = [{"role": "system", "content": "Be brief."}] + USER
        assert prompt_tokens(d, sys_msgs) == count(chatml(sys_msgs))
        assert "not usable" not in d.log() and "failed" not in d.log()
    finally:
        stop_clean(d)


def test_a_template_that_does_not_parse_falls_back_to_the_markers(tmp):
    d = start(tmp, make(tmp, "broken", "{% for m in messages %}<|im_start|>{{ m.content }"))
    try:
        assert prompt_tokens(d, USER) == count(chatml(USER))
        assert "chat template is not usable" in d.log()
    finally:
        stop_clean(d)


def test_a_template_that_refuses_the_conversation_falls_back_per_request(tmp):
    src = ("{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
           "{% endif %}{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + "
           "'<|im_end|>\\n' }}{% endfor %}{{ '<|im_start|>assistant\\n' }}")
    d = start(tmp, make(tmp, "refuses", src))
    try:
        assert prompt_tokens(d, USER) == count(chatml(USER))
        assert "System role not supported" not in d.log()
        sys_msgs = [{"role": "system", "content": "Be brief."}] + USER
        assert prompt_tokens(d, sys_msgs) == count(chatml(sys_msgs))
        assert d.wait_log("System role not supported"), d.log()
    finally:
        stop_clean(d)


@pytest.mark.parametrize("arch,template,rendered", [
    # the template's bos_token is the one BOS; no system role: its text opens the user turn
    ("gemma3", "google-gemma-3-4b-it.jinja",
     "<s><start_of_turn>user\nBe brief.\n\nHi there<end_of_turn>\n<start_of_turn>model\n"),
    # no bos_token in the template: the vocabulary's add_bos adds it
    ("phi3", "microsoft-Phi-3.5-mini-instruct.jinja",
     "<s><|system|>\nBe brief.<|end|>\n<|user|>\nHi there<|end|>\n<|assistant|>\n"),
])
def test_gemma3_and_phi3_files_answer_with_their_own_template(tmp, arch, template, rendered):
    """A Gemma 3 file (five local layers and a global one) and a Phi-3 file
    (fused attn_qkv and ffn_up, LongRoPE), SentencePiece vocabularies, each
    with its model's template as shipped: the prompt is the template's
    rendering with one BOS, and the streamed answer is the plain one."""
    src = open(os.path.join(TEMPLATES, template), encoding="utf-8").read()
    d = start(tmp, make(tmp, arch, src, "--arch", arch, "--vocab", "spm"))
    try:
        msgs = [{"role": "system", "content": "Be brief."}] + USER
        spm = tokref.RefTokenizer(tokref.make_spm_vocab())
        assert prompt_tokens(d, msgs) == len(spm.encode(rendered.encode(), parse_special=True))
        body = {"messages": msgs, "max_tokens": 6, "temperature": 0}
        r = d.post_json("/v1/chat/completions", body)
        assert r.status == 200, r.body
        plain = r.json()["choices"][0]["message"]["content"]
        r = d.post_json("/v1/chat/completions", dict(body, stream=True))
        assert r.status == 200, r.body
        streamed = "".join((c.get("delta") or {}).get("content") or ""
                           for line in r.body.decode().split("\n")
                           if line.startswith("data: {")
                           for c in json.loads(line[6:])["choices"])
        assert plain and streamed == plain
        assert "not usable" not in d.log() and "failed" not in d.log()
    finally:
        stop_clean(d)
