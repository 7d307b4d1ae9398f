"""Whisper test models for the integration tests: random-weight files in
whisper.cpp's format, written by tests/whisper/mkwhisper.py (no real
weights can be fetched in tests).

Random weights transcribe nothing real: a test on such a model asserts what
the engine must do whatever its weights are, never words. They also never
say <|endoftext|>: every window decodes until the text context is full, and
its temperature fallback tries every temperature. A service test that only
needs an answer can take a short text context (n_text_ctx) to bound that:
64 positions decode about four times faster than tiny's 448.

    from whisper_model import tiny_model
    path = tiny_model(tmp_path / "tiny.bin", n_text_ctx=64)
    d = start("stt", "--engine", "whisper", "--model", path)
"""
import os
import sys

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "tests", "whisper"))
import mkwhisper  # noqa: E402


def tiny_model(path, seed=3, wtype="f16", n_text_ctx=None):
    """Writes the tiny-shaped model (f16, seed 3: test_stt_whisper's) to
    path, with n_text_ctx text positions when given; returns path."""
    hp = dict(mkwhisper.SHAPES["tiny"])
    if n_text_ctx:
        hp["n_text_ctx"] = n_text_ctx
    mkwhisper.write(str(path), hp, mkwhisper.TYPE_NAMES[wtype], seed)
    return str(path)
