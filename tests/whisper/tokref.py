#!/usr/bin/python3
"""tokref.py MODEL.bin - the reference Whisper tokenizer for test_whisper_tok.

Reads the vocabulary of a ggml Whisper file, encodes a fixed list of texts
with GPT-2's pre-tokenizer (the `regex` module's \\p{L}/\\p{N} classes) and
byte-level BPE by rank (a token's id is its merge rank, as in tiktoken),
and prints one line per text: the text's bytes in hex, a tab, the ids.
"""
import sys

import regex

sys.dont_write_bytecode = True  # nothing written into the tree
sys.path.insert(0, __file__.rsplit("/", 1)[0])
import mkwhisper  # noqa: E402

PAT = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")

TEXTS = [
    "hello world", "Hello world!", "the quick brown fox jumps over the lazy dog",
    " leading space", "trailing space ", "two  spaces", "tabs\tand\nnewlines\n\nhere",
    "it's what's I'm don't you'll we'd they've", "numbers 12345 and 3.14",
    "punctuation... (really?) yes!!", "café naïve façade", "x", "", "   ",
    "What's the weather tomorrow morning? Please set a timer for 5 minutes.",
    "zqab zqzz qqq", "MiXeD CaSe WoRdS", "\n", "a\n b", "end.\n",
]


def bpe(piece, rank):
    parts = [bytes([b]) for b in piece]
    while len(parts) > 1:
        best, best_i = None, -1
        for i in range(len(parts) - 1):
            r = rank.get(parts[i] + parts[i + 1])
            if r is not None and (best is None or r < best):
                best, best_i = r, i
        if best is None:
            break
        parts[best_i:best_i + 2] = [parts[best_i] + parts[best_i + 1]]
    return [rank[p] for p in parts]


def main():
    vocab = mkwhisper.vocab_from_file(sys.argv[1])
    rank = {}
    for i, t in enumerate(vocab[:50256]):
        if t and t not in rank:
            rank[t] = i
    for text in TEXTS:
        ids = []
        for piece in PAT.findall(text):
            ids += bpe(piece.encode(), rank)
        print(text.encode().hex() + "\t" + " ".join(map(str, ids)))


if __name__ == "__main__":
    main()
