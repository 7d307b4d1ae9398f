#!/usr/bin/python3
"""mkseeds.py DIR - seed inputs for fuzz_whisper: small valid models (Q4_0,
Q8_0) with a few-token vocabulary, and cuts of one (run once; the
files are committed under tests/fuzz/corpus/whisper/)."""
import os
import sys

sys.dont_write_bytecode = True  # nothing written into the tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mkwhisper as mk  # noqa: E402

HP = dict(n_vocab=8, n_audio_ctx=2, n_audio_state=32, n_audio_head=1, n_audio_layer=1,
          n_text_ctx=2, n_text_state=32, n_text_head=1, n_text_layer=1, n_mels=1)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    vocab = [b"a", b"b", b" c", b"<|endoftext|>"]
    for name, t in (("q4_0", mk.T_Q4_0), ("q8_0", mk.T_Q8_0)):
        mk.write(os.path.join(out, "model_" + name), HP, t, seed=3, vocab=vocab)
    d = open(os.path.join(out, "model_q4_0"), "rb").read()
    open(os.path.join(out, "cut_header"), "wb").write(d[:30])
    open(os.path.join(out, "cut_vocab"), "wb").write(d[:56 + 804 + 10])


if __name__ == "__main__":
    main()
