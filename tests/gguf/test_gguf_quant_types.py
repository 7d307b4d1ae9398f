"""The quant types real downloads use (Q4_1, Q5_1, Q2_K, Q3_K, IQ4_NL,
IQ4_XS), end to end: files written by mkgguf.py, run by the engine
(gguf_run), compared with the numpy reference ref.py (its own dequantisers
written from ggml's block layouts) within test_gguf_model.py's tolerances.

Run: /usr/bin/python3 -m pytest -q tests/gguf/test_gguf_quant_types.py
(needs build/tools/gguf_run; VOXLINE_TOOLS overrides the directory).

- every new type alone (--pure) for each architecture: last-position
  logits and greedy continuation;
- llama.cpp's presets (the per-tensor mixes of llama_tensor_get_type) with
  their general.file_type;
- rows that are not whole 256-blocks (a 384-wide model): the fallbacks
  llama.cpp's quantize makes (Q2_K/Q3_K/IQ4_XS -> IQ4_NL, Q5_K -> Q5_1,
  Q4_K -> Q5_0, Q6_K -> Q8_0) load and match;
- prefill batches and one-token decode agree for the new types (they have
  no tile kernel: the prefill runs their dot kernels).
"""

import os
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mkgguf  # noqa: E402
import ref  # noqa: E402
from test_gguf_model import PROMPT, N_GREEDY, QUANT_TOL, check_greedy, run, tmp  # noqa: E402,F401

NEW_TYPES = ["Q4_1", "Q5_1", "Q2_K", "Q3_K", "IQ4_NL", "IQ4_XS"]
ARCHS = ["llama", "qwen2", "qwen3"]
# a shape whose 384-wide rows are not whole 256-blocks
mkgguf.SHAPES.setdefault("narrow", dict(n_embd=384, n_layer=2, n_head=6, n_head_kv=2,
                                        n_ff=768, n_ctx=512))

_cache = {}


def model(tmp, arch, ty, **kw):
    key = (arch, ty, tuple(sorted(kw.items())))
    if key not in _cache:
        path = str(tmp / ("q_%s_%s_%d.gguf" % (arch, ty, len(_cache))))
        info = mkgguf.make_model(path, arch, ty, **kw)
        _cache[key] = (path, ref.Ref(path), info["types"])
    return _cache[key]


def check_logits(path, r, greedy=True):
    want = r.logits(PROMPT)[-1]
    got = run(path, PROMPT, "--greedy", str(N_GREEDY)) if greedy else run(path, PROMPT)
    assert got["n_vocab"] == r.V
    lg = np.array(got["logits"])
    abs_tol = QUANT_TOL * want.std()
    diff = np.abs(lg - want).max()
    print("max |diff| %.3g = %.3g std" % (diff, diff / want.std()))
    assert diff <= abs_tol
    if greedy:
        check_greedy(r, PROMPT, got["greedy"], 2 * abs_tol)


@pytest.mark.parametrize("ty", NEW_TYPES)
@pytest.mark.parametrize("arch", ARCHS)
def test_each_new_type_alone_matches_reference(tmp, arch, ty):
    path, r, types = model(tmp, arch, ty, pure=True)
    held = {t for n, t in types.items() if n.endswith(".weight") and "norm" not in n}
    assert held == {ty}
    assert r.g.kv["general.file_type"] == mkgguf.file_type(ty)
    check_logits(path, r)


# preset -> (general.file_type, types its tiny (256-wide, 2-layer, GQA 2)
# file must hold besides F32)
PRESETS = {
    "Q2_K": (10, {"Q2_K", "Q3_K", "Q6_K"}),
    "Q3_K_M": (12, {"Q3_K", "Q4_K", "Q5_K", "Q6_K"}),
    "Q4_K_M": (15, {"Q4_K", "Q6_K"}),
    "Q5_K_M": (17, {"Q5_K", "Q6_K"}),
    "IQ4_NL": (25, {"IQ4_NL", "Q6_K"}),
    "IQ4_XS": (30, {"IQ4_XS", "Q6_K"}),
    "Q4_1": (3, {"Q4_1", "Q6_K"}),
    "Q5_1": (9, {"Q5_1", "Q6_K"}),
}


@pytest.mark.parametrize("preset", list(PRESETS))
def test_llama_cpp_presets_mix_types_and_match_reference(tmp, preset):
    path, r, types = model(tmp, "qwen2", preset)
    ftype, want_types = PRESETS[preset]
    assert r.g.kv["general.file_type"] == ftype
    assert set(types.values()) - {"F32"} == want_types
    assert types["output.weight"] == "Q6_K"
    if preset == "Q2_K":   # attn_v (GQA < 4), ffn_down, attn_output raised to Q3_K
        assert types["blk.0.attn_v.weight"] == types["blk.1.ffn_down.weight"] == "Q3_K"
        assert types["blk.0.attn_output.weight"] == "Q3_K"
        assert types["blk.0.attn_q.weight"] == "Q2_K"
    check_logits(path, r)


@pytest.mark.parametrize("preset,fallbacks", [
    ("Q2_K", {"IQ4_NL", "Q8_0"}), ("Q3_K_M", {"IQ4_NL", "Q5_0", "Q5_1", "Q8_0"}),
    ("IQ4_XS", {"IQ4_NL", "Q8_0"}),
    ("Q4_K_M", {"Q5_0", "Q8_0"}), ("Q5_K_M", {"Q5_1", "Q8_0"}),
])
def test_rows_not_whole_blocks_fall_back_like_llama_cpp(tmp, preset, fallbacks):
    path, r, types = model(tmp, "qwen2", preset, shape="narrow", tied=False)
    narrow = {t for n, t in types.items()
              if n.endswith(("attn_q.weight", "attn_k.weight", "attn_v.weight",
                             "attn_output.weight", "ffn_gate.weight", "ffn_up.weight",
                             "output.weight", "token_embd.weight"))}
    assert narrow == fallbacks, types
    assert types["output.weight"] == "Q8_0"     # llama.cpp: output rows not whole blocks
    # 768-wide ffn_down rows are whole blocks: no fallback there
    assert types["blk.0.ffn_down.weight"] not in fallbacks - {"Q8_0"}
    check_logits(path, r, greedy=False)


def test_fallback_table_is_llama_cpps():
    want = {"Q2_K": "IQ4_NL", "Q3_K": "IQ4_NL", "IQ4_XS": "IQ4_NL", "Q4_K": "Q5_0",
            "Q5_K": "Q5_1", "Q6_K": "Q8_0"}
    for ty, fb in want.items():
        assert mkgguf.fallback_type(ty, 896) == fb
        assert mkgguf.fallback_type(ty, 4864) == ty
    assert mkgguf.fallback_type("Q4_K", 100) == "F16"


@pytest.mark.parametrize("ty", ["Q2_K", "Q3_K", "IQ4_XS", "IQ4_NL", "Q4_1", "Q5_1"])
def test_prefill_batches_and_decode_agree_for_new_types(tmp, ty):
    rng = np.random.default_rng(11)
    path, r, _ = model(tmp, "qwen2", ty, pure=True)
    toks = [int(t) for t in rng.integers(0, r.V, 80)]
    want = r.logits(toks)
    batch = np.array(run(path, toks, "--all-logits")["logits"]).reshape(len(toks), -1)
    one = np.array(run(path, toks, "--all-logits", "--one-by-one")["logits"]).reshape(len(toks), -1)
    abs_tol = QUANT_TOL * want.std()
    assert np.abs(batch - want).max() <= abs_tol
    assert np.abs(one - want).max() <= abs_tol
    assert np.abs(batch - one).max() <= abs_tol
