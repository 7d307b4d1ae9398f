#!/usr/bin/python3
"""tokref.py - an independent reference for the GGUF tokenizers, and made-up
vocabularies to put into test GGUF files.

Reference (written from the published algorithms, not from our C code):
  * byte-level BPE ("gpt2" model): the pre-tokenizer regexes of GPT-2,
    Llama 3 ("llama-bpe") and Qwen2 ("qwen2") run by the `regex` module
    (Debian python3-regex), GPT-2's bytes_to_unicode mapping, and the
    classic GPT-2 merge loop (lowest rank first, all occurrences);
  * SentencePiece-style BPE ("llama" model): spaces -> U+2581, a space
    prefixed to each text fragment at the start or after a special token,
    the highest-scoring adjacent pair merged first (leftmost on ties),
    unknown symbols as <0xNN> byte tokens.
  * special tokens: control (3) and unknown (2) tokens only with
    parse_special, user-defined (4) always; leftmost, then longest match.

Vocabularies: make_bpe_vocab() and make_spm_vocab() train a few hundred
merges on SAMPLE_TEXT (with unicode) and return a dict with model, pre,
tokens, scores, types, merges, bos, eos, eot, unk, pad, add_bos - the
tokenizer.ggml.* metadata of a GGUF file.

Command line:
  tokref.py vocab bpe|spm [--pre qwen2|llama-bpe|gpt2] [--merges N] OUT.json
  tokref.py encode VOCAB.json [--parse-special]   (stdin bytes -> JSON ids)
  tokref.py ctable     (the unicode range tables of tokenizer_pre.c)
"""

import json
import sys
import unicodedata

import regex

# ---------------------------------------------------------------------------
# Pre-tokenizers (the regexes as llama.cpp / Hugging Face spell them)

PRE_REGEX = {
    "gpt2": r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
    "llama3": r"""(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
    "qwen2": r"""(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
}
_COMPILED = {k: regex.compile(v) for k, v in PRE_REGEX.items()}


def pre_kind(pre):
    """tokenizer.ggml.pre -> one of PRE_REGEX's keys."""
    if pre in ("llama-bpe", "llama3", "llama-v3", "smaug-bpe"):
        return "llama3"
    if pre in ("qwen2", "deepseek-r1-qwen"):
        return "qwen2"
    return "gpt2"


def pre_split(text, pre):
    return _COMPILED[pre_kind(pre)].findall(text)


def bytes_to_unicode():
    """GPT-2's map of the 256 bytes to printable unicode characters."""
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
          + list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


BYTE_ENCODER = bytes_to_unicode()
BYTE_DECODER = {v: k for k, v in BYTE_ENCODER.items()}


def to_text(data):
    """bytes -> str; invalid UTF-8 bytes become lone surrogates (which the
    regexes treat as 'other' characters) and come back by to_bytes."""
    return data.decode("utf-8", "surrogateescape")


def to_bytes(text):
    return text.encode("utf-8", "surrogateescape")


def map_bytes(word):
    return "".join(BYTE_ENCODER[b] for b in to_bytes(word))


# ---------------------------------------------------------------------------
# Sample text for training made-up vocabularies

SAMPLE_TEXT = """\
The quick brown fox jumps over the lazy dog. The dog didn't care; it's a lazy dog.
I'll say it again: the weather in the north is cold, and the weather in the south is warm.
She sells sea shells by the sea shore, and the shells she sells are surely sea shells.
In 1984 there were 365 days, and in 2024 there were 366 days; 12 months, 52 weeks.
Hello, world! Hello again, world. How are you today? I'm fine, thanks, and you?
We're going to the market, they've got fresh bread, and he'd like some cheese.
Voice assistants listen, think and speak: speech to text, language model, text to speech.
def tokenize(text):\n    return [t for t in text.split() if t]\n
Grüße aus München! Über den Wolken muss die Freiheit wohl grenzenlos sein.
Ça va très bien, merci. L'été dernier, nous étions à la mer près de Nice.
¿Dónde está la biblioteca? El niño comió una manzana y la niña una naranja.
Привет, как дела? Сегодня хорошая погода, и мы идём гулять в парк.
你好，世界！今天天气很好，我们去公园散步吧。你好你好，世界世界。
こんにちは世界。今日はいい天気ですね。ありがとうございます。
안녕하세요, 세계! 오늘 날씨가 좋네요.
Emoji: 😀 😀 🎉 👍 ❤️ — and math: 3.14159 ≈ π, 2² = 4, ½ + ¼ = ¾.
the the the and and and of of of to to to in in in is is is that that that
"""


def _train(words, n_merges, min_count=1):
    """Classic BPE training: words is {tuple of symbols: count}. Returns the
    list of merges (a, b) in rank order."""
    words = dict(words)
    merges = []
    for _ in range(n_merges):
        pairs = {}
        for w, c in words.items():
            for i in range(len(w) - 1):
                p = (w[i], w[i + 1])
                pairs[p] = pairs.get(p, 0) + c
        if not pairs:
            break
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        if best[1] < min_count:
            break
        a, b = best[0]
        merges.append((a, b))
        new = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            t = tuple(out)
            new[t] = new.get(t, 0) + c
        words = new
    return merges


BPE_SPECIALS = [  # (text, type)
    ("<|endoftext|>", 3), ("<|im_start|>", 3), ("<|im_end|>", 3),
    ("<|begin_of_text|>", 3), ("<|end_of_text|>", 3),
    ("<|start_header_id|>", 3), ("<|end_header_id|>", 3), ("<|eot_id|>", 3),
    ("<think>", 4), ("</think>", 4),
]


def make_bpe_vocab(pre="qwen2", n_merges=400, pad_to=0):
    """A byte-level BPE vocabulary: the 256 byte tokens, n_merges trained
    merges, the BPE_SPECIALS; pre 'qwen2' gives Qwen-like special ids
    (no BOS added), 'llama-bpe' Llama 3-like ones (BOS added). pad_to pads
    with normal tokens [PADn] up to that many tokens."""
    kind = pre_kind(pre)
    words = {}
    for w in pre_split(SAMPLE_TEXT, pre):
        t = tuple(map_bytes(w))
        words[t] = words.get(t, 0) + 1
    merges = _train(words, n_merges)
    tokens = [BYTE_ENCODER[b] for b in range(256)]
    seen = set(tokens)
    for a, b in merges:
        if a + b not in seen:
            seen.add(a + b)
            tokens.append(a + b)
    types = [1] * len(tokens)
    ids = {}
    for text, ty in BPE_SPECIALS:
        ids[text] = len(tokens)
        tokens.append(text)
        types.append(ty)
    while len(tokens) < pad_to:     # normal tokens no merge makes: a random
        tokens.append("[PAD%d]" % len(tokens))   # model's output stays visible
        types.append(1)
    v = {"model": "gpt2", "pre": pre, "tokens": tokens,
         "scores": [0.0] * len(tokens), "types": types,
         "merges": ["%s %s" % m for m in merges], "unk": -1}
    if kind == "llama3":
        v.update(bos=ids["<|begin_of_text|>"], eos=ids["<|end_of_text|>"],
                 eot=ids["<|eot_id|>"], pad=-1, add_bos=True)
    else:
        v.update(bos=ids["<|endoftext|>"], eos=ids["<|im_end|>"],
                 eot=ids["<|im_end|>"], pad=ids["<|endoftext|>"], add_bos=False)
    return v


SPM_SPACE = "\u2581"


def make_spm_vocab(n_merges=300):
    """A SentencePiece-style vocabulary: <unk> <s> </s>, the 256 <0xNN> byte
    tokens, the characters seen at least twice in SAMPLE_TEXT, and trained
    merges scored so that earlier merges score higher."""
    text = SAMPLE_TEXT.replace(" ", SPM_SPACE)
    words = {}
    for line in text.split("\n"):
        # sentencepiece does not merge across whitespace pieces: split
        # before each U+2581 so pieces start with it
        for w in regex.findall(SPM_SPACE + "?[^" + SPM_SPACE + "]+|" + SPM_SPACE + "+", SPM_SPACE + line):
            t = tuple(w)
            words[t] = words.get(t, 0) + 1
    merges = _train(words, n_merges)
    tokens = ["<unk>", "<s>", "</s>"]
    types = [2, 3, 3]
    scores = [0.0, 0.0, 0.0]
    for b in range(256):
        tokens.append("<0x%02X>" % b)
        types.append(6)
        scores.append(0.0)
    seen = set(tokens)
    for i, (a, b) in enumerate(merges):
        if a + b not in seen:
            seen.add(a + b)
            tokens.append(a + b)
            types.append(1)
            scores.append(-float(i))
    counts = {}
    for ch in text:
        counts[ch] = counts.get(ch, 0) + 1
    chars = sorted((c for c, n in counts.items() if n >= 2 and c != "\n"),
                   key=lambda c: (-counts[c], c))
    for i, ch in enumerate(chars):
        if ch not in seen:
            seen.add(ch)
            tokens.append(ch)
            types.append(1)
            scores.append(-1000.0 - i)
    return {"model": "llama", "pre": None, "tokens": tokens, "scores": scores,
            "types": types, "merges": [], "bos": 1, "eos": 2, "eot": -1,
            "unk": 0, "pad": -1, "add_bos": True}


# ---------------------------------------------------------------------------
# Reference tokenizer

class RefTokenizer:
    def __init__(self, v):
        self.v = v
        self.model = v["model"]
        self.tokens = v["tokens"]
        self.types = v.get("types") or [1] * len(self.tokens)
        if not v.get("types"):
            for k in ("bos", "eos", "eot", "pad"):
                if v.get(k, -1) >= 0:
                    self.types[v[k]] = 3
        self.ids, self.byte_ids = {}, {}
        for i, t in enumerate(self.tokens):
            if self.types[i] in (1, 4):
                self.ids.setdefault(t, i)
            elif self.types[i] == 6:
                self.byte_ids.setdefault(t, i)
        self.ranks = {}
        for r, m in enumerate(v.get("merges", [])):
            pos = m.find(" ", 1)
            if pos < 0:
                continue
            self.ranks.setdefault((m[:pos], m[pos + 1:]), r)
        self.scores = v.get("scores")

    # -- special tokens
    def split_special(self, text, parse_special):
        allowed = [(t, i) for i, t in enumerate(self.tokens) if t and (
            self.types[i] == 4 or (parse_special and self.types[i] in (2, 3)))]
        frags, start, i = [], 0, 0
        while i < len(text):
            best = None
            for t, tid in allowed:
                if text.startswith(t, i) and (best is None or len(t) > len(best[0])):
                    best = (t, tid)
            if best:
                if i > start:
                    frags.append(text[start:i])
                frags.append(best[1])
                i += len(best[0])
                start = i
            else:
                i += 1
        if start < len(text):
            frags.append(text[start:])
        return frags

    def encode(self, text, parse_special=False):
        """text: str (or bytes) -> list of ids; BOS not added."""
        if isinstance(text, bytes):
            text = to_text(text)
        out = []
        prev_special = True
        for f in self.split_special(text, parse_special):
            if isinstance(f, int):
                out.append(f)
                prev_special = True
                continue
            if self.model == "gpt2":
                for w in pre_split(f, self.v.get("pre")):
                    out.extend(self._bpe(map_bytes(w)))
            else:
                if prev_special:
                    f = " " + f
                out.extend(self._spm(f.replace(" ", SPM_SPACE)))
            prev_special = False
        return out

    def _bpe(self, word):
        syms = list(word)
        while len(syms) > 1:
            best, rank = None, None
            for i in range(len(syms) - 1):
                r = self.ranks.get((syms[i], syms[i + 1]))
                if r is not None and syms[i] + syms[i + 1] in self.ids and (rank is None or r < rank):
                    best, rank = (syms[i], syms[i + 1]), r
            if best is None:
                break
            new, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and (syms[i], syms[i + 1]) == best:
                    new.append(syms[i] + syms[i + 1])
                    i += 2
                else:
                    new.append(syms[i])
                    i += 1
            syms = new
        out = []
        for s in syms:
            if s in self.ids:
                out.append(self.ids[s])
            elif self.v.get("unk", -1) >= 0:
                out.append(self.v["unk"])
        return out

    def _spm(self, text):
        syms = list(text)
        while len(syms) > 1:
            best, score = None, None
            for i in range(len(syms) - 1):
                tid = self.ids.get(syms[i] + syms[i + 1])
                if tid is not None and (score is None or self.scores[tid] > score):
                    best, score = i, self.scores[tid]
            if best is None:
                break
            syms[best:best + 2] = [syms[best] + syms[best + 1]]
        out = []
        for s in syms:
            if s in self.ids:
                out.append(self.ids[s])
                continue
            for b in to_bytes(s):
                name = "<0x%02X>" % b
                if name in self.byte_ids:
                    out.append(self.byte_ids[name])
                elif self.v.get("unk", -1) >= 0:
                    out.append(self.v["unk"])
        return out

    def piece(self, tid):
        t = self.tokens[tid]
        ty = self.types[tid]
        if ty in (2, 3, 4, 5):
            return t.encode("utf-8")
        if self.model == "gpt2":
            return bytes(BYTE_DECODER[c] for c in t)
        if ty == 6:
            return bytes([int(t[3:5], 16)])
        return t.replace(SPM_SPACE, " ").encode("utf-8")

    def decode(self, ids):
        return b"".join(self.piece(i) for i in ids)


def c_table():
    """C source of the \\p{L} and \\p{N} range tables in
    services/llm/gguf/tokenizer_pre.c, taken from the regex module so that
    the C pre-tokenizer and this reference classify alike."""
    out = []
    for name, pat in (("letter", r"\p{L}"), ("number", r"\p{N}")):
        rx = regex.compile(pat)
        r, start = [], None
        for c in range(0x110001):
            hit = c < 0x110000 and not 0xD800 <= c <= 0xDFFF and rx.match(chr(c))
            if hit and start is None:
                start = c
            elif not hit and start is not None:
                r.append((start, c - 1))
                start = None
        out.append("static const uint32_t tok_pre_%s_ranges[][2] = {" % name)
        for i in range(0, len(r), 4):
            out.append("\t" + " ".join("{0x%x, 0x%x}," % x for x in r[i:i + 4]))
        out.append("};")
    return "\n".join(out) + "\n"


def main(argv):
    if len(argv) == 2 and argv[1] == "ctable":
        sys.stdout.write(c_table())
        return 0
    if len(argv) >= 3 and argv[1] == "vocab":
        kind = argv[2]
        pre, n, out = "qwen2", None, None
        i = 3
        while i < len(argv):
            if argv[i] == "--pre":
                pre = argv[i + 1]
                i += 2
            elif argv[i] == "--merges":
                n = int(argv[i + 1])
                i += 2
            else:
                out = argv[i]
                i += 1
        if kind == "bpe":
            v = make_bpe_vocab(pre, n or 400)
        elif kind == "spm":
            v = make_spm_vocab(n or 300)
        else:
            sys.exit("unknown vocab kind " + kind)
        s = json.dumps(v, ensure_ascii=False)
        if out:
            with open(out, "w", encoding="utf-8") as f:
                f.write(s)
        else:
            print(s)
        return 0
    if len(argv) >= 3 and argv[1] == "encode":
        with open(argv[2], encoding="utf-8") as f:
            t = RefTokenizer(json.load(f))
        ids = t.encode(sys.stdin.buffer.read(), "--parse-special" in argv)
        print(json.dumps({"ids": ids}))
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
