"""test_yarn.py - YaRN rope scaling (rope.scaling.type "yarn") in the GGUF
engine against a float64 numpy reference written from the YaRN paper
(Peng et al. 2023, "YaRN: Efficient Context Window Extension") with
llama.cpp's defaults: beta_fast 32, beta_slow 1, extrapolation mix 1,
magnitude attn_factor * (1 + 0.1 ln s) on cos and sin.

Run: /usr/bin/python3 -m pytest -q tests/gguf/test_yarn.py
(needs build/tools/gguf_run; VOXLINE_TOOLS overrides the directory).
"""

import json
import math
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
PROMPT = [1, 5, 9, 200, 33, 7, 100, 42, 17, 300, 2, 8] * 4   # positions up to 48
TOL = 1e-4   # of the reference logits' standard deviation (F32 weights)


class YarnRef(ref.Ref):
    """ref.Ref with YaRN frequencies and magnitude."""

    def __init__(self, path):
        super().__init__(path)
        kv, a = self.g.kv, self.arch
        assert kv[a + ".rope.scaling.type"] == "yarn"
        s = kv[a + ".rope.scaling.factor"]
        orig = kv[a + ".rope.scaling.original_context_length"]
        base = kv.get(a + ".rope.freq_base", 10000.0)
        d = self.hd
        # the dimension whose wavelength turns `rotations` times over the original context
        def corr_dim(rotations):
            return d * math.log(orig / (rotations * 2 * math.pi)) / (2 * math.log(base))
        lo = max(0.0, math.floor(corr_dim(32.0)))
        hi = min(d - 1.0, math.ceil(corr_dim(1.0)))
        i = np.arange(d // 2, dtype=np.float64)
        extrap = base ** (-2 * i / d)
        if "rope_freqs.weight" in self.g.tensors:
            extrap = extrap / self.g.get("rope_freqs.weight")
        # 1 where a dimension keeps its frequency, 0 where it is interpolated by 1/s
        keep = self.keep = 1 - np.clip((i - lo) / max(0.001, hi - lo), 0, 1)
        self.inv_freq = extrap / s * (1 - keep) + extrap * keep
        # the cos/sin magnitude (ref.Ref.rope applies it)
        self.mscale = kv.get(a + ".rope.scaling.attn_factor", 1.0) * (1 + 0.1 * math.log(s))


def run(path, tokens):
    p = subprocess.run([RUN, path, "--tokens", ",".join(map(str, tokens)), "--kv-f32"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return np.array(json.loads(p.stdout)["logits"])


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    if not os.access(RUN, os.X_OK):
        pytest.fail("%s missing: make build/tools/gguf_run" % RUN)
    return tmp_path_factory.mktemp("yarn")


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_yarn_logits_match_the_reference(tmp, arch):
    yarn = str(tmp / ("%s_yarn.gguf" % arch))
    linear = str(tmp / ("%s_linear.gguf" % arch))
    mkgguf.make_model(yarn, arch, "F32", rope_scale=4.0, rope_scale_key="yarn")
    mkgguf.make_model(linear, arch, "F32", rope_scale=4.0)
    r = YarnRef(yarn)
    assert r.keep[0] == 1 and r.keep[-1] == 0 and ((r.keep > 0) & (r.keep < 1)).any(), \
        "the file exercises kept, interpolated and ramped dimensions"
    want = r.logits(PROMPT)[-1]
    got = run(yarn, PROMPT)
    assert np.abs(got - want).max() <= TOL * want.std()
    # not what linear scaling gives: YaRN is really applied
    assert np.abs(run(linear, PROMPT) - want).max() > 100 * TOL * want.std()
