"""test_tokenizer.py - the C tokenizer (build/tools/gguf_tok) against the
independent Python reference (tokref.py) on tricky text.

Run: /usr/bin/python3 -m pytest -q tests/gguf/test_tokenizer.py
(VOXLINE_TOOLS=/abs/build-asan/tools to test the sanitizer build.)
"""

import json
import os
import random
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import tokref  # noqa: E402

TOOLS = os.environ.get("VOXLINE_TOOLS", os.path.join(ROOT, "build", "tools"))
GGUF_TOK = os.path.join(TOOLS, "gguf_tok")

TRICKY = [
    "Hello world",
    "Hello, world! How are you?",
    "  leading and trailing spaces   ",
    "multiple    spaces\tand\ttabs\t\t here",
    "new\nlines\n\nand\r\nCRLF\r\n\r\n  \n indented",
    "digits 1234567 and 3.14159 and 1,000,000 and ١٢٣ and ½",
    "contractions: don't I'll we're they've she'd it's I'M DON'T 'tis '",
    "unicode: Grüße, naïve café, Ελληνικά, Привет мир",
    "CJK: 你好，世界！今天天气很好。こんにちは世界。안녕하세요",
    "emoji: 😀😀 🎉 👍🏽 ❤️ 👨‍👩‍👧 flags 🇩🇪",
    "combining: e\u0301 a\u0308 \u0915\u093f",
    "weird spaces:\u00a0nbsp\u2003em\u3000ideographic\u200bzwsp",
    "code: def f(x):\n    return x**2  # square\n\tif (a && b) { c++; }",
    "punctuation!!! ??? ... --- ''' \"\"\" ((()))",
    "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "almost special <|im_start <|im_end|x <think>reasoning</think> answer",
    "<|endoftext|><|endoftext|>back to back<|im_end|>",
    "",
    " ",
    "\n",
    "a",
    "'s",
    "x\u2581y with a literal lower one eighth block",
]

VOCABS = {
    "qwen2": lambda: tokref.make_bpe_vocab("qwen2"),
    "llama-bpe": lambda: tokref.make_bpe_vocab("llama-bpe"),
    "gpt2": lambda: tokref.make_bpe_vocab("gpt2"),
    "spm": lambda: tokref.make_spm_vocab(),
    # Qwen-trained merges hold no digit pairs, hiding how qwen2 and gpt2
    # split digit runs: run them on Llama 3's merges too
    "qwen2-x": lambda: dict(tokref.make_bpe_vocab("llama-bpe"), pre="qwen2"),
    "gpt2-x": lambda: dict(tokref.make_bpe_vocab("llama-bpe"), pre="gpt2"),
}


@pytest.fixture(scope="module")
def vocabs(tmp_path_factory):
    if not os.access(GGUF_TOK, os.X_OK):
        pytest.fail("missing %s: run `make build/tools/gguf_tok`" % GGUF_TOK)
    d = tmp_path_factory.mktemp("vocab")
    out = {}
    for name, make in VOCABS.items():
        v = make()
        path = d / (name + ".json")
        path.write_text(json.dumps(v, ensure_ascii=False), encoding="utf-8")
        out[name] = (str(path), v, tokref.RefTokenizer(v))
    return out


def run_c(path, data, parse_special, extra=()):
    args = [GGUF_TOK, path] + (["--parse-special"] if parse_special else []) + list(extra)
    p = subprocess.run(args, input=data, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    return json.loads(p.stdout)


def expected_decode(v, ref, ids, data):
    """What the pieces of ids must add up to."""
    got = ref.decode(ids)
    if v["model"] == "gpt2":
        assert got == data  # byte-level BPE round-trips exactly
    return got


@pytest.mark.parametrize("vocab", list(VOCABS))
@pytest.mark.parametrize("parse_special", [False, True])
def test_tricky_text_matches_reference(vocabs, vocab, parse_special):
    path, v, ref = vocabs[vocab]
    for text in TRICKY:
        data = text.encode("utf-8")
        want = ref.encode(data, parse_special)
        got = run_c(path, data, parse_special)
        assert got["ids"] == want, (vocab, text)
        assert bytes.fromhex(got["decoded_hex"]) == expected_decode(v, ref, want, data), text


def test_special_tokens_parsed_only_when_asked(vocabs):
    path, v, ref = vocabs["qwen2"]
    im_start = v["tokens"].index("<|im_start|>")
    think = v["tokens"].index("<think>")
    data = "<|im_start|>user <think>".encode()
    on = run_c(path, data, True)["ids"]
    off = run_c(path, data, False)["ids"]
    assert on[0] == im_start and im_start not in off
    assert think in on and think in off  # user-defined: always


def test_spm_prefix_space_and_byte_fallback(vocabs):
    path, v, ref = vocabs["spm"]
    data = "Hello 🦊 world".encode()  # not in the sample text
    got = run_c(path, data, False)
    assert bytes.fromhex(got["decoded_hex"]) == b" " + data
    byte_ids = {i for i, t in enumerate(v["types"]) if t == 6}
    assert len([i for i in got["ids"] if i in byte_ids]) == 4  # the emoji's bytes


def test_digit_grouping_differs_between_llama3_and_qwen2(vocabs):
    data = b"1234567"
    q = run_c(vocabs["qwen2"][0], data, False)["ids"]
    l3 = run_c(vocabs["llama-bpe"][0], data, False)["ids"]
    assert len(q) == 7  # one digit per token
    qx = run_c(vocabs["qwen2-x"][0], data, False)["ids"]
    assert len(qx) == 7  # even where merges of digits exist
    assert len(l3) < 7  # groups of up to three, merged by the trained vocab
    assert [len(w) for w in tokref.pre_split("1234567", "llama-bpe")] == [3, 3, 1]


ALPHABET = (list("abcXYZ019 '\t\n\r.,!?-_<>|") + ["  ", "'s", "'LL", "é", "ß", "Ж", "你",
            "好", "😀", "👍🏽", "\u00a0", "\u3000", "\u0301", "١", "½", "<|im_end|>",
            "<think>", "\u2581", "don't", "12345"])


@pytest.mark.parametrize("vocab", list(VOCABS))
def test_random_strings_match_reference(vocabs, vocab):
    path, v, ref = vocabs[vocab]
    rnd = random.Random(1234)
    for case in range(150):
        s = "".join(rnd.choice(ALPHABET) for _ in range(rnd.randint(1, 24)))
        data = s.encode()
        ps = bool(case % 2)
        got = run_c(path, data, ps)
        want = ref.encode(data, ps)
        assert got["ids"] == want, repr(s)
        assert bytes.fromhex(got["decoded_hex"]) == expected_decode(v, ref, want, data)


@pytest.mark.parametrize("vocab", list(VOCABS))
def test_invalid_utf8_round_trips(vocabs, vocab):
    path, v, ref = vocabs[vocab]
    for data in (b"\xff\xfe abc", b"caf\xc3", b"\xe4\xbd x \xed\xa0\x80 \xf0\x9f\x98", b"\x80\x80\x80"):
        got = run_c(path, data, False)
        want = ref.encode(data, False)
        assert got["ids"] == want, data
        dec = bytes.fromhex(got["decoded_hex"])
        assert dec == (data if v["model"] == "gpt2" else b" " + data)


def test_encodes_100kb_fast(vocabs):
    path, v, ref = vocabs["qwen2"]
    data = (tokref.SAMPLE_TEXT * 100).encode()[:100_000]
    got = run_c(path, data, True, ["--bench", "5"])
    assert bytes.fromhex(got["decoded_hex"]) == data
    limit = 100.0 * (10 if "asan" in TOOLS else 1)
    print("encode 100 KB: %.1f ms, %d tokens" % (got["ms_per_encode"], len(got["ids"])))
    assert got["ms_per_encode"] < limit
    assert got["ids"] == ref.encode(data, True)
