"""The GGUF engine's forward pass against the independent numpy reference.

Run: /usr/bin/python3 -m pytest -q tests/gguf/test_gguf_model.py
(needs build/tools/gguf_run: `make build/tools/gguf_run`; VOXLINE_TOOLS
overrides the directory).

Files are made by mkgguf.py with random weights (tiny dims: 256 hidden,
2 layers) for every architecture x tensor type. Tolerances, relative to the
standard deviation of the reference logits: float weight types 1e-4 (only
float32 rounding differs); quantised types 0.1, because the engine, like
ggml, quantises activations to Q8_0/Q8_K for its integer dot products while
the reference multiplies in float64 (measured: 0.03-0.07).
The engine runs with a float KV cache here (--kv-f32, the reference's
kv16=False), so only float32 rounding differs; its default half-float cache
has a test of its own against the reference with keys and values rounded
to halves as they are cached.
Greedy continuations: every token the engine picks must be the reference's
argmax of the same sequence (teacher-forced) up to that tolerance, and the
reference's own greedy continuation must equal the engine's until the first
step where the reference's top two are within the tolerance (a near tie).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mkgguf  # noqa: E402
import ref  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
TOOLS = os.environ.get("VOXLINE_TOOLS", os.path.join(ROOT, "build", "tools"))
RUN = os.path.join(TOOLS, "gguf_run")

ARCHS = ["llama", "qwen2", "qwen3", "gemma2", "gemma3", "phi3"]
TYPES = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q5_0", "Q4_K", "Q5_K", "Q6_K", "Q4_K_M"]
FLOAT_TOL, QUANT_TOL = 1e-4, 0.1
# the half-float KV cache against the reference that rounds the same
# values: one rounding of a float32 and of a float64 key can land on
# neighbouring halves (measured up to 1.7e-4 std, Phi-3)
KV16_TOL = 5e-4
PROMPT = [1, 5, 9, 200, 33, 7, 100, 42, 17, 300, 2, 8]
N_GREEDY = 8


def tol_for(ty):
    return FLOAT_TOL if ty in ("F32", "F16", "BF16") else QUANT_TOL


def run(path, tokens, *args, kv16=False):
    args = list(args) + ([] if kv16 else ["--kv-f32"])
    p = subprocess.run([RUN, path, "--tokens", ",".join(map(str, tokens))] + args,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    if not os.access(RUN, os.X_OK):
        pytest.fail("%s missing: make build/tools/gguf_run" % RUN)
    return tmp_path_factory.mktemp("gguf")


_cache = {}


def model(tmp, arch, ty, **kw):
    key = (arch, ty, tuple(sorted(kw.items())))
    if key not in _cache:
        path = str(tmp / ("%s_%s_%d.gguf" % (arch, ty, len(_cache))))
        mkgguf.make_model(path, arch, ty, **kw)
        _cache[key] = (path, ref.Ref(path))
    return _cache[key]


def check_greedy(r, prompt, got, abs_tol):
    seq = prompt + got
    lg = r.logits(seq)[len(prompt) - 1: len(seq) - 1]
    for i, row in enumerate(lg):
        assert row[got[i]] >= row.max() - abs_tol, \
            "step %d: engine chose %d (ref %.4f), ref argmax %d (%.4f)" % (
                i, got[i], row[got[i]], row.argmax(), row.max())
    # the reference's own greedy path agrees until a near tie
    want = r.greedy(prompt, len(got))
    seq = list(prompt)
    for i, (g, w) in enumerate(zip(got, want)):
        top2 = np.sort(r.logits(seq)[-1])[-2:]
        if top2[1] - top2[0] < abs_tol:
            break
        assert g == w, "step %d: engine %s, reference %s" % (i, got, want)
        seq.append(w)


@pytest.mark.parametrize("ty", TYPES)
@pytest.mark.parametrize("arch", ARCHS)
def test_logits_and_greedy_match_reference(tmp, arch, ty):
    path, r = model(tmp, arch, ty)
    want = r.logits(PROMPT)[-1]
    got = run(path, PROMPT, "--greedy", str(N_GREEDY))
    assert got["n_vocab"] == r.V
    lg = np.array(got["logits"])
    abs_tol = tol_for(ty) * want.std()
    diff = np.abs(lg - want).max()
    print("%s %s: max |diff| %.3g = %.3g std" % (arch, ty, diff, diff / want.std()))
    assert diff <= abs_tol
    check_greedy(r, PROMPT, got["greedy"], 2 * abs_tol)


@pytest.mark.parametrize("arch,ty", [("llama", "Q8_0"), ("qwen2", "Q4_K_M"), ("qwen3", "Q6_K"),
                                     ("gemma2", "Q8_0"), ("gemma3", "Q4_K_M"),
                                     ("phi3", "Q4_K")])
def test_prefill_batches_and_decode_agree_on_every_position(tmp, arch, ty):
    # 150 tokens: three prefill batches (MODEL_BATCH 64) and decode steps
    rng = np.random.default_rng(7)
    path, r = model(tmp, arch, ty)
    toks = [int(t) for t in rng.integers(0, r.V, 150)]
    want = r.logits(toks)
    batch = np.array(run(path, toks, "--all-logits")["logits"]).reshape(len(toks), -1)
    one = np.array(run(path, toks, "--all-logits", "--one-by-one")["logits"]).reshape(len(toks), -1)
    abs_tol = tol_for(ty) * want.std()
    assert np.abs(batch - want).max() <= abs_tol
    assert np.abs(one - want).max() <= abs_tol
    assert np.abs(batch - one).max() <= abs_tol


@pytest.mark.parametrize("arch", ["gemma2", "gemma3"])
def test_gemma_local_layers_and_softcaps_are_applied(tmp, arch):
    """150 positions, past the 16-position window of the local layers, with
    Gemma 2 capped hard (attention 2, logits 3): the engine follows the
    reference, and the reference without the window (or without Gemma 2's
    caps, or Gemma 3's own rope base for local layers) is far from it, so
    each of them is in use."""
    rng = np.random.default_rng(11)
    path, r = model(tmp, arch, "F32", softcap=(2.0, 3.0))
    toks = [int(t) for t in rng.integers(0, r.V, 150)]
    want = r.logits(toks)
    got = np.array(run(path, toks, "--all-logits")["logits"]).reshape(len(toks), -1)
    assert np.abs(got - want).max() <= FLOAT_TOL * want.std()
    without = [("swa", 0)]
    without += [("attn_cap", 0.0), ("final_cap", 0.0)] if arch == "gemma2" else \
        [("inv_freq_swa", r.inv_freq)]
    for name, value in without:
        other = ref.Ref(path)
        setattr(other, name, value)
        off = np.abs(other.logits(toks) - want).max() / want.std()
        print("%s without %s: %.3f std off" % (arch, name, off))
        assert off > 0.05


@pytest.mark.parametrize("arch", ARCHS)
def test_half_kv_cache_matches_the_reference_that_rounds_kv_to_halves(tmp, arch):
    """The default KV cache holds halves: over 100 positions (4 K blocks,
    prefill and decode) the engine follows the reference that rounds each
    key (after rope and norms) and value to a half as it is cached; the
    float cache's results differ from it, so the halves are in use."""
    rng = np.random.default_rng(5)
    path, _ = model(tmp, arch, "F32")
    r16 = ref.Ref(path, kv16=True)
    toks = [int(t) for t in rng.integers(0, r16.V, 100)]
    want = r16.logits(toks)
    sd = want.std()
    for args in [("--all-logits",), ("--all-logits", "--one-by-one")]:
        half = np.array(run(path, toks, *args, kv16=True)["logits"]).reshape(len(toks), -1)
        full = np.array(run(path, toks, *args)["logits"]).reshape(len(toks), -1)
        print("%s %s: halves %.2e std from the rounded reference, floats %.2e" % (
            arch, args, np.abs(half - want).max() / sd, np.abs(full - want).max() / sd))
        assert np.abs(half - want).max() <= KV16_TOL * sd
        assert np.abs(half - full).max() > 2e-5 * sd


def test_phi3_longrope_takes_its_long_or_short_factors_by_context(tmp):
    """Phi-3's LongRoPE: the long factors when the context (512 here) is
    past the original one (128), the short ones within it (4096); the
    engine follows the reference either way, and the two differ."""
    toks = PROMPT * 4
    got = {}
    for orig in (128, 4096):
        path, r = model(tmp, "phi3", "F32", longrope_ctx=orig)
        want = r.logits(toks)[-1]
        got[orig] = np.array(run(path, toks)["logits"])
        assert np.abs(got[orig] - want).max() <= FLOAT_TOL * want.std()
    assert np.abs(got[128] - got[4096]).max() > 0.05 * got[128].std()


def test_thread_count_does_not_change_results(tmp):
    path, _ = model(tmp, "qwen2", "Q4_K")
    a = run(path, PROMPT, "--threads", "1", "--greedy", "4")
    b = run(path, PROMPT, "--threads", "3", "--greedy", "4")
    assert a == b


@pytest.mark.parametrize("ty", ["Q8_0", "Q5_0", "IQ4_NL", "Q5_1"])
def test_tied_output_weights(tmp, ty):
    """A tied output is packed for the gemm and its file rows given back:
    embeddings are read from the packed copy (widened for Q5_0/IQ4_NL);
    Q5_1's packed rows are not Q8_0 values, so its file rows stay."""
    path, r = model(tmp, "qwen3", ty, tied=True)
    want = r.logits(PROMPT)[-1]
    got = np.array(run(path, PROMPT)["logits"])
    assert np.abs(got - want).max() <= tol_for(ty) * want.std()


@pytest.mark.parametrize("ty", ["Q4_0", "Q5_0", "IQ4_NL", "Q4_K_M", "Q4_1", "Q5_1"])
def test_repacked_and_stored_weights_both_match_reference(tmp, ty):
    """Q4_0/Q5_0/IQ4_NL are widened into the packed gemm's int8 layout at
    load, Q4_1/Q5_1 into bytes with float scales and mins; --no-repack
    keeps them as stored (their own kernels). Both match
    the reference, prompt and decode, and give the same greedy tokens."""
    path, r = model(tmp, "qwen2", ty)
    want = r.logits(PROMPT)[-1]
    abs_tol = tol_for(ty) * want.std()
    a = run(path, PROMPT, "--greedy", str(N_GREEDY))
    b = run(path, PROMPT, "--greedy", str(N_GREEDY), "--no-repack")
    for got in (a, b):
        assert np.abs(np.array(got["logits"]) - want).max() <= abs_tol
        check_greedy(r, PROMPT, got["greedy"], 2 * abs_tol)
    assert np.abs(np.array(a["logits"]) - np.array(b["logits"])).max() <= abs_tol


@pytest.mark.parametrize("kw", [dict(version=2), dict(alignment=64), dict(vocab="spm")],
                         ids=["gguf_v2", "alignment_64", "spm_vocab"])
def test_file_variants_load_and_match(tmp, kw):
    path, r = model(tmp, "llama", "Q8_0", **kw)
    want = r.logits(PROMPT)[-1]
    got = np.array(run(path, PROMPT)["logits"])
    assert np.abs(got - want).max() <= QUANT_TOL * want.std()


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize("key", ["scaling", "legacy"])
def test_linear_rope_scaling_from_metadata(tmp, arch, key):
    path, r = model(tmp, arch, "F32", rope_scale=4.0, rope_scale_key=key)
    plain, _ = model(tmp, arch, "F32")
    toks = PROMPT * 3            # positions up to 36: rotations that differ
    want = r.logits(toks)[-1]
    got = np.array(run(path, toks)["logits"])
    unscaled = np.array(run(plain, toks)["logits"])
    assert np.abs(got - want).max() <= FLOAT_TOL * want.std()
    assert np.abs(unscaled - want).max() > 100 * FLOAT_TOL * want.std()


def test_prompt_longer_than_context_is_refused(tmp):
    path, _ = model(tmp, "qwen2", "Q8_0")
    p = subprocess.run([RUN, path, "--ctx", "8", "--tokens", ",".join(map(str, PROMPT))],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert "too long" in p.stderr.lower() or "argument list" in p.stderr.lower()


def test_bad_token_id_is_refused(tmp):
    path, r = model(tmp, "qwen2", "Q8_0")
    p = subprocess.run([RUN, path, "--tokens", "1,%d" % r.V], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode != 0


def _broken_copy(tmp, name, patch):
    path, _ = model(tmp, "qwen2", "Q8_0")
    data = bytearray(open(path, "rb").read())
    data = patch(data)
    out = str(tmp / name)
    open(out, "wb").write(bytes(data))
    return out


@pytest.mark.parametrize("name,patch,message", [
    ("arch.gguf", lambda d: d.replace(b"qwen2", b"qwenX", 1), "unsupported architecture 'qwenX'"),
    ("trunc.gguf", lambda d: d[:-1], "out of range"),
    ("magic.gguf", lambda d: b"GGUX" + d[4:], "bad magic"),
    ("tensor.gguf", lambda d: d.replace(b"blk.1.ffn_up.weight", b"blk.1.ffn_up.weighX", 1),
     "missing tensor blk.1.ffn_up.weight"),
], ids=["unknown_arch", "truncated", "bad_magic", "missing_tensor"])
def test_broken_models_are_refused_with_a_clear_message(tmp, name, patch, message):
    path = _broken_copy(tmp, name, patch)
    p = subprocess.run([RUN, path, "--tokens", "1,2"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert message in p.stderr, p.stderr
