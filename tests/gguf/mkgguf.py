#!/usr/bin/python3
"""mkgguf.py - writes small GGUF files with random weights for the tests of
the built-in GGUF engine (and one model-shaped file for benchmarks).

  mkgguf.py OUT.gguf [--arch llama|qwen2|qwen3|gemma2|gemma3|phi3] [--type TYPE|PRESET] [--pure]
            [--version 2|3] [--seed N] [--layers N] [--alignment N]
            [--vocab bpe|spm] [--shape tiny|qwen2.5-0.5b] [--summary]

TYPE: F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K Q4_K Q5_K Q6_K IQ4_NL
IQ4_XS. PRESET: llama-quantize's names (Q2_K, Q3_K_M, Q4_K_M, Q5_K_M,
Q6_K, IQ4_NL, IQ4_XS, Q4_1, Q5_1, ...): the per-tensor mix llama.cpp's
llama_tensor_get_type makes (output Q6_K, attn_v / ffn_down / attn_output
raised per layer), written with its general.file_type. --pure: every 2-D
tensor in the one type (llama-quantize --pure).

Weights are quantised in numpy following ggml's reference quantisers
(quantize_row_q8_0_ref, q4_0, and the q4_K/q5_K/q6_K ones with
make_qkx2_quants / make_qx_quants); float32 sums may be ordered
differently from C, so a rare rounding choice can differ - the files are
valid either way, and the tests compare the engine with ref.py reading the
same file. Tokenizer metadata comes from tokref.py's made-up vocabularies.

--shape qwen2.5-0.5b writes Qwen2.5-0.5B's real dimensions (hidden 896,
24 layers, 14 heads, 2 KV heads, FFN 4864, vocab 151936, tied embeddings)
with random quantised blocks drawn directly (fast); rows of 896 are not a
whole number of 256-blocks, so those tensors fall back as llama.cpp's
quantize does: Q4_K->Q5_0, Q5_K->Q5_1, Q6_K->Q8_0, Q2_K/Q3_K/IQ4_XS->IQ4_NL.
The quantisers of Q4_1/Q5_1 are ggml's; those of Q2_K, Q3_K, IQ4_NL and
IQ4_XS search less than ggml's (same formats, a little more error).
"""

import argparse
import math
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokref  # noqa: E402

GGML = {"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q5_0": 6, "Q5_1": 7, "Q8_0": 8,
        "Q2_K": 10, "Q3_K": 11, "Q4_K": 12, "Q5_K": 13, "Q6_K": 14, "IQ4_NL": 20,
        "IQ4_XS": 23, "BF16": 30}
BLOCK = {"F32": (1, 4), "F16": (1, 2), "BF16": (1, 2), "Q8_0": (32, 34),
         "Q4_0": (32, 18), "Q4_1": (32, 20), "Q5_0": (32, 22), "Q5_1": (32, 24),
         "IQ4_NL": (32, 18), "Q2_K": (256, 84), "Q3_K": (256, 110), "Q4_K": (256, 144),
         "Q5_K": (256, 176), "Q6_K": (256, 210), "IQ4_XS": (256, 136)}

# llama.cpp's presets (llama-quantize's ftype names): LLAMA_FTYPE number
# written as general.file_type, and the type most tensors get. A preset
# mixes types per tensor (preset_type); a single type name not in this
# table, or any name with pure=True, puts every 2-D tensor in that type
# (llama-quantize --pure; the file_type is then the preset of that type).
PRESETS = {"F32": (0, "F32"), "F16": (1, "F16"), "Q4_0": (2, "Q4_0"), "Q4_1": (3, "Q4_1"),
           "Q8_0": (7, "Q8_0"), "Q5_0": (8, "Q5_0"), "Q5_1": (9, "Q5_1"),
           "Q2_K": (10, "Q2_K"), "Q3_K_M": (12, "Q3_K"), "Q4_K_M": (15, "Q4_K"),
           "Q5_K_M": (17, "Q5_K"), "Q6_K": (18, "Q6_K"), "IQ4_NL": (25, "IQ4_NL"),
           "IQ4_XS": (30, "IQ4_XS"), "BF16": (32, "BF16")}
PURE_FTYPE = {"Q3_K": 12, "Q4_K": 15, "Q5_K": 17}
IQ4_VALUES = np.array([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69,
                       89, 113], np.float32)

# GGUF metadata value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)


# ---------------------------------------------------------------------------
# GGUF writer

def _s(b):
    if isinstance(b, str):
        b = b.encode("utf-8", "surrogateescape")
    return struct.pack("<Q", len(b)) + b


def _val(t, v):
    fmt = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i",
           F32: "<f", BOOL: "<?", U64: "<Q", I64: "<q", F64: "<d"}
    if t == STR:
        return _s(v)
    return struct.pack(fmt[t], v)


def encode_kv(key, t, v, at=None):
    out = _s(key) + struct.pack("<I", t)
    if t == ARR:
        out += struct.pack("<IQ", at, len(v))
        if at == STR:
            out += b"".join(_s(x) for x in v)
        elif at == F32:
            out += np.asarray(v, "<f4").tobytes()
        elif at == I32:
            out += np.asarray(v, "<i4").tobytes()
        else:
            out += b"".join(_val(at, x) for x in v)
        return out
    return out + _val(t, v)


def write_gguf(path, kvs, tensors, version=3, alignment=32):
    """kvs: [(key, type, value[, arr_type])]; tensors: [(name, shape
    (ne0 first), ggml type, bytes)]."""
    if alignment != 32:
        kvs = kvs + [("general.alignment", U32, alignment)]
    head = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    head += b"".join(encode_kv(*kv) for kv in kvs)
    off = 0
    infos = b""
    for name, shape, ty, data in tensors:
        infos += _s(name) + struct.pack("<I", len(shape))
        infos += b"".join(struct.pack("<Q", d) for d in shape)
        infos += struct.pack("<IQ", ty, off)
        off += (len(data) + alignment - 1) // alignment * alignment
    with open(path, "wb") as f:
        f.write(head + infos)
        f.write(b"\0" * (-f.tell() % alignment))
        for _, _, _, data in tensors:
            f.write(data)
            f.write(b"\0" * (-len(data) % alignment))


# ---------------------------------------------------------------------------
# quantisers (numpy, vectorised over blocks, after ggml-quants.c *_ref)

def nearest_int(x):
    return np.rint(x).astype(np.int32)          # ties to even, as ggml's trick


def round_away(x):
    return (np.sign(x) * np.floor(np.abs(x) + np.float32(0.5))).astype(np.int32)


def f16_bits(x):
    return np.asarray(x, np.float32).astype(np.float16).view(np.uint16)


def bf16_bits(x):
    b = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)


def q8_0(x):
    x = x.reshape(-1, 32).astype(np.float32)
    amax = np.abs(x).max(1)
    d = amax / np.float32(127)
    idv = np.where(d != 0, 1 / np.where(d != 0, d, 1), 0).astype(np.float32)
    q = round_away(x * idv[:, None]).astype(np.int8)
    out = np.zeros(len(x), [("d", "<u2"), ("qs", "i1", 32)])
    out["d"], out["qs"] = f16_bits(d), q
    return out.tobytes()


def q4_0(x):
    x = x.reshape(-1, 32).astype(np.float32)
    idx = np.abs(x).argmax(1)
    mx = x[np.arange(len(x)), idx]
    d = mx / np.float32(-8)
    idv = np.where(d != 0, 1 / np.where(d != 0, d, 1), 0).astype(np.float32)
    q = np.minimum(15, (x * idv[:, None] + np.float32(8.5)).astype(np.int8))
    q = q.astype(np.uint8)
    out = np.zeros(len(x), [("d", "<u2"), ("qs", "u1", 16)])
    out["d"], out["qs"] = f16_bits(d), q[:, :16] | (q[:, 16:] << 4)
    return out.tobytes()


def q5_0(x):
    x = x.reshape(-1, 32).astype(np.float32)
    idx = np.abs(x).argmax(1)
    mx = x[np.arange(len(x)), idx]
    d = mx / np.float32(-16)
    idv = np.where(d != 0, 1 / np.where(d != 0, d, 1), 0).astype(np.float32)
    q = np.minimum(31, (x * idv[:, None] + np.float32(16.5)).astype(np.int8)).astype(np.uint32)
    qh = ((q >> 4) & 1) << np.arange(32, dtype=np.uint32)[None, :]
    out = np.zeros(len(x), [("d", "<u2"), ("qh", "<u4"), ("qs", "u1", 16)])
    out["d"], out["qh"] = f16_bits(d), qh.sum(1, dtype=np.uint64).astype(np.uint32)
    out["qs"] = (q[:, :16] & 0xF) | ((q[:, 16:] & 0xF) << 4)
    return out.tobytes()


def make_qkx2_quants(x, nmax, rmin, rdelta, nstep):
    """x: (G, n) float32 groups; weights av_x + |x|. Returns (L uint8,
    scale, the_min) per group, as ggml's make_qkx2_quants (use_mad false)."""
    f = np.float32
    n = x.shape[1]
    av = np.sqrt((x * x).sum(1) / f(n))
    w = av[:, None] + np.abs(x)
    mn = np.minimum(x.min(1), 0).astype(f)
    mx = x.max(1)
    sum_w = w.sum(1)
    sum_x = (w * x).sum(1)
    flat = mx == mn
    rng = np.where(flat, 1, mx - mn).astype(f)
    iscale = f(nmax) / rng
    scale = (1 / iscale).astype(f)
    L = np.clip(nearest_int(iscale[:, None] * (x - mn[:, None])), 0, nmax)
    diff = scale[:, None] * L + mn[:, None] - x
    best = (w * diff * diff).sum(1)
    for s in range(nstep + 1):
        isc = (f(rmin) + f(rdelta) * f(s) + f(nmax)) / rng
        La = np.clip(nearest_int(isc[:, None] * (x - mn[:, None])), 0, nmax).astype(f)
        sl = (w * La).sum(1)
        sl2 = (w * La * La).sum(1)
        sxl = (w * La * x).sum(1)
        D = sum_w * sl2 - sl * sl
        ok = D > 0
        Ds = np.where(ok, D, 1)
        ts = (sum_w * sxl - sum_x * sl) / Ds
        tm = (sl2 * sum_x - sl * sxl) / Ds
        pos = tm > 0
        tm = np.where(pos, 0, tm).astype(f)
        ts = np.where(pos, sxl / np.where(sl2 > 0, sl2, 1), ts).astype(f)
        d2 = ts[:, None] * La + tm[:, None] - x
        mad = (w * d2 * d2).sum(1)
        take = ok & (mad < best)
        L = np.where(take[:, None], La.astype(np.int32), L)
        best = np.where(take, mad, best)
        scale = np.where(take, ts, scale).astype(f)
        mn = np.where(take, tm, mn).astype(f)
    L = np.where(flat[:, None], 0, L)
    scale = np.where(flat, 0, scale).astype(f)
    return L, scale, (-mn).astype(f)


def _pack_scales_k4(ls, lm):
    """ls, lm: (nb, 8) 6-bit values -> (nb, 12) bytes (ggml's layout)."""
    sc = np.zeros((len(ls), 12), np.uint8)
    sc[:, 0:4] = ls[:, 0:4]
    sc[:, 4:8] = lm[:, 0:4]
    sc[:, 8:12] = (ls[:, 4:8] & 0xF) | ((lm[:, 4:8] & 0xF) << 4)
    sc[:, 0:4] |= (ls[:, 4:8] >> 4) << 6
    sc[:, 4:8] |= (lm[:, 4:8] >> 4) << 6
    return sc


def _kquant_scales(x, nmax, rmin, rdelta, nstep):
    f = np.float32
    nb = x.shape[0]
    L, scales, mins = make_qkx2_quants(x.reshape(-1, 32), nmax, rmin, rdelta, nstep)
    scales = scales.reshape(nb, 8)
    mins = mins.reshape(nb, 8)
    max_scale = scales.max(1)
    max_min = mins.max(1)
    inv_s = np.where(max_scale > 0, f(63) / np.where(max_scale > 0, max_scale, 1), 0).astype(f)
    inv_m = np.where(max_min > 0, f(63) / np.where(max_min > 0, max_min, 1), 0).astype(f)
    ls = np.minimum(63, nearest_int(inv_s[:, None] * scales)).astype(np.uint8)
    lm = np.minimum(63, nearest_int(inv_m[:, None] * mins)).astype(np.uint8)
    d = f16_bits(max_scale / f(63))
    dmin = f16_bits(max_min / f(63))
    # requantise with the rounded scales
    dd = d.view(np.float16).astype(f)[:, None] * ls
    dm = dmin.view(np.float16).astype(f)[:, None] * lm
    xs = x.reshape(nb, 8, 32)
    dsafe = np.where(dd != 0, dd, 1)
    Lq = np.clip(nearest_int((xs + dm[:, :, None]) / dsafe[:, :, None]), 0, nmax)
    L = np.where((dd != 0)[:, :, None], Lq, L.reshape(nb, 8, 32)).astype(np.uint8)
    return d, dmin, _pack_scales_k4(ls, lm), L.reshape(nb, 256)


def q4_K(x):
    x = x.reshape(-1, 256).astype(np.float32)
    d, dmin, sc, L = _kquant_scales(x, 15, -1.0, 0.1, 20)
    L = L.reshape(-1, 4, 2, 32)
    qs = (L[:, :, 0, :] | (L[:, :, 1, :] << 4)).reshape(-1, 128)
    out = np.zeros(len(x), [("d", "<u2"), ("dmin", "<u2"), ("scales", "u1", 12),
                            ("qs", "u1", 128)])
    out["d"], out["dmin"], out["scales"], out["qs"] = d, dmin, sc, qs
    return out.tobytes()


def q5_K(x):
    x = x.reshape(-1, 256).astype(np.float32)
    d, dmin, sc, L = _kquant_scales(x, 31, -0.5, 0.1, 15)
    L = L.reshape(-1, 4, 2, 32)
    lo = L & 0xF
    hi = (L >> 4).astype(np.uint8)            # 0/1
    qs = (lo[:, :, 0, :] | (lo[:, :, 1, :] << 4)).reshape(-1, 128)
    qh = np.zeros((len(x), 32), np.uint8)
    for n in range(4):
        qh |= hi[:, n, 0, :] << (2 * n)
        qh |= hi[:, n, 1, :] << (2 * n + 1)
    out = np.zeros(len(x), [("d", "<u2"), ("dmin", "<u2"), ("scales", "u1", 12),
                            ("qh", "u1", 32), ("qs", "u1", 128)])
    out["d"], out["dmin"], out["scales"], out["qh"], out["qs"] = d, dmin, sc, qh, qs
    return out.tobytes()


def make_qx_quants(x, nmax):
    """x: (G, n); ggml's make_qx_quants with rmse_type 1 (weights x^2).
    Returns (L in 0..2*nmax-1, scale)."""
    f = np.float32
    G = len(x)
    idx = np.abs(x).argmax(1)
    mx = x[np.arange(G), idx]
    small = np.abs(mx) < 1e-15
    mxs = np.where(small, 1, mx).astype(f)
    w = x * x

    def try_scale(isc):
        l = np.clip(nearest_int(isc[:, None] * x), -nmax, nmax - 1)
        sumlx = (w * x * l).sum(1, dtype=f)
        suml2 = (w * l * l).sum(1, dtype=f)
        return l, sumlx, suml2

    L, sumlx, suml2 = try_scale(f(-nmax) / mxs)
    scale = np.where(suml2 != 0, sumlx / np.where(suml2 != 0, suml2, 1), 0).astype(f)
    best = scale * sumlx
    for s in range(-9, 10):
        if s == 0:
            continue
        l, sx, s2 = try_scale(-(f(nmax) + f(0.1) * f(s)) / mxs)
        take = (s2 > 0) & (sx * sx > best * s2)
        L = np.where(take[:, None], l, L)
        scale = np.where(take, sx / np.where(s2 > 0, s2, 1), scale).astype(f)
        best = np.where(take, scale * sx, best)
    L = np.where(small[:, None], 0, L + nmax)
    scale = np.where(small, 0, scale).astype(f)
    return L, scale


def q6_K(x):
    f = np.float32
    x = x.reshape(-1, 256).astype(f)
    nb = len(x)
    _, scales = make_qx_quants(x.reshape(-1, 16), 32)
    scales = scales.reshape(nb, 16)
    idx = np.abs(scales).argmax(1)
    max_scale = scales[np.arange(nb), idx]
    zero = np.abs(max_scale) < 1e-15
    iscale = np.where(zero, 0, f(-128) / np.where(zero, 1, max_scale)).astype(f)
    d = f16_bits(np.where(zero, 0, 1 / np.where(iscale != 0, iscale, 1)))
    sc = np.minimum(127, nearest_int(iscale[:, None] * scales)).astype(np.int8)
    dd = d.view(np.float16).astype(f)[:, None] * sc
    xs = x.reshape(nb, 16, 16)
    dsafe = np.where(dd != 0, dd, 1)
    L = np.clip(nearest_int(xs / dsafe[:, :, None]), -32, 31) + 32
    L = np.where((dd != 0)[:, :, None], L, 0).reshape(nb, 2, 4, 32).astype(np.uint8)
    ql = np.zeros((nb, 2, 64), np.uint8)
    qh = np.zeros((nb, 2, 32), np.uint8)
    ql[:, :, :32] = (L[:, :, 0] & 0xF) | ((L[:, :, 2] & 0xF) << 4)
    ql[:, :, 32:] = (L[:, :, 1] & 0xF) | ((L[:, :, 3] & 0xF) << 4)
    for k in range(4):
        qh |= (L[:, :, k] >> 4) << (2 * k)
    out = np.zeros(nb, [("ql", "u1", 128), ("qh", "u1", 64), ("scales", "i1", 16),
                        ("d", "<u2")])
    out["ql"], out["qh"] = ql.reshape(nb, 128), qh.reshape(nb, 64)
    out["scales"], out["d"] = np.where(zero[:, None], 0, sc), np.where(zero, 0, d)
    return out.tobytes()


def q4_1(x, bits=4):
    """ggml's quantize_row_q4_1_ref / q5_1 (min and range per 32)."""
    f = np.float32
    nmax = (1 << bits) - 1
    x = x.reshape(-1, 32).astype(f)
    mn, mx = x.min(1), x.max(1)
    d = ((mx - mn) / f(nmax)).astype(f)
    idv = np.where(d != 0, 1 / np.where(d != 0, d, 1), 0).astype(f)
    q = np.minimum(nmax, ((x - mn[:, None]) * idv[:, None] + f(0.5)).astype(np.int32))
    q = q.astype(np.uint32)
    if bits == 4:
        out = np.zeros(len(x), [("d", "<u2"), ("m", "<u2"), ("qs", "u1", 16)])
    else:
        out = np.zeros(len(x), [("d", "<u2"), ("m", "<u2"), ("qh", "<u4"), ("qs", "u1", 16)])
        qh = ((q >> 4) & 1) << np.arange(32, dtype=np.uint32)[None, :]
        out["qh"] = qh.sum(1, dtype=np.uint64).astype(np.uint32)
    out["d"], out["m"] = f16_bits(d), f16_bits(mn)
    out["qs"] = (q[:, :16] & 0xF) | ((q[:, 16:] & 0xF) << 4)
    return out.tobytes()


def q5_1(x):
    return q4_1(x, 5)


def _iq4_fit(x):
    """x: (G, 32) -> (indices (G, 32), scale (G,)): scale from the value of
    largest magnitude, nearest table entries, then the least-squares scale
    for those entries (a simpler search than ggml's, same format)."""
    f = np.float32
    G = len(x)
    mx = x[np.arange(G), np.abs(x).argmax(1)]
    d = (mx / f(-127)).astype(f)
    idv = np.where(d != 0, 1 / np.where(d != 0, d, 1), 0).astype(f)
    L = np.abs((x * idv[:, None])[:, :, None] - IQ4_VALUES[None, None, :]).argmin(2)
    v = IQ4_VALUES[L]
    s2 = (v * v).sum(1)
    d = np.where(s2 > 0, (x * v).sum(1) / np.where(s2 > 0, s2, 1), 0).astype(f)
    return L.astype(np.uint8), d


def _iq4_pack(L):
    """(G, 32) indices -> (G, 16) bytes: element j < 16 low nibble of byte j."""
    return (L[:, :16] | (L[:, 16:] << 4)).astype(np.uint8)


def iq4_nl(x):
    x = x.reshape(-1, 32).astype(np.float32)
    L, d = _iq4_fit(x)
    out = np.zeros(len(x), [("d", "<u2"), ("qs", "u1", 16)])
    out["d"], out["qs"] = f16_bits(d), _iq4_pack(L)
    return out.tobytes()


def iq4_xs(x):
    """Sub-block scales as IQ4_NL's, then 6-bit (ls - 32) against a
    super-block scale (ggml: d = -max_scale / 32), indices refitted."""
    f = np.float32
    x = x.reshape(-1, 256).astype(f)
    nb = len(x)
    _, sub = _iq4_fit(x.reshape(-1, 32))
    sub = sub.reshape(nb, 8)
    ms = sub[np.arange(nb), np.abs(sub).argmax(1)]
    d = f16_bits(-ms / f(32)).view(np.float16).astype(f)
    idv = np.where(d != 0, 1 / np.where(d != 0, d, 1), 0).astype(f)
    ls = np.clip(nearest_int(idv[:, None] * sub), -32, 31)
    dl = (d[:, None] * ls).astype(f).reshape(-1)
    xs = x.reshape(-1, 32)
    inv = np.where(dl != 0, 1 / np.where(dl != 0, dl, 1), 0).astype(f)
    L = np.abs((xs * inv[:, None])[:, :, None] - IQ4_VALUES[None, None, :]).argmin(2)
    L = np.where((dl != 0)[:, None], L, 8)
    u = (ls + 32).astype(np.uint32)
    sl = (u[:, 0::2] & 0xF) | ((u[:, 1::2] & 0xF) << 4)
    sh = ((u >> 4) << (2 * np.arange(8, dtype=np.uint32))[None, :]).sum(1)
    out = np.zeros(nb, [("d", "<u2"), ("scales_h", "<u2"), ("scales_l", "u1", 4),
                        ("qs", "u1", 128)])
    out["d"], out["scales_h"], out["scales_l"] = f16_bits(d), sh, sl
    out["qs"] = _iq4_pack(L.astype(np.uint8)).reshape(nb, 128)
    return out.tobytes()


def _pack_2bit(L):
    """(nb, 256) values 0..3 -> (nb, 64) bytes: element n*128 + j*32 + l in
    bits 2j of byte n*32 + l (Q2_K/Q3_K)."""
    L = L.reshape(-1, 2, 4, 32).astype(np.uint8)
    qs = np.zeros((len(L), 2, 32), np.uint8)
    for j in range(4):
        qs |= (L[:, :, j] & 3) << (2 * j)
    return qs.reshape(-1, 64)


def q2_K(x):
    """16 groups of 16: make_qkx2_quants scale and min per group, both
    4-bit against the super-block's d and dmin (ggml's layout)."""
    f = np.float32
    x = x.reshape(-1, 256).astype(f)
    nb = len(x)
    _, scale, mins = make_qkx2_quants(x.reshape(-1, 16), 3, -0.5, 0.1, 15)
    scale, mins = scale.reshape(nb, 16), mins.reshape(nb, 16)
    msc, mmn = scale.max(1), mins.max(1)
    isc = np.where(msc > 0, f(15) / np.where(msc > 0, msc, 1), 0).astype(f)
    imn = np.where(mmn > 0, f(15) / np.where(mmn > 0, mmn, 1), 0).astype(f)
    ls = np.clip(nearest_int(isc[:, None] * scale), 0, 15)
    lm = np.clip(nearest_int(imn[:, None] * mins), 0, 15)
    d, dmin = f16_bits(msc / f(15)), f16_bits(mmn / f(15))
    dd = d.view(np.float16).astype(f)[:, None] * ls
    dm = dmin.view(np.float16).astype(f)[:, None] * lm
    xs = x.reshape(nb, 16, 16)
    dsafe = np.where(dd != 0, dd, 1)
    L = np.clip(nearest_int((xs + dm[:, :, None]) / dsafe[:, :, None]), 0, 3)
    L = np.where((dd != 0)[:, :, None], L, 0).reshape(nb, 256)
    out = np.zeros(nb, [("scales", "u1", 16), ("qs", "u1", 64), ("d", "<u2"), ("dmin", "<u2")])
    out["scales"] = (ls | (lm << 4)).astype(np.uint8)
    out["qs"], out["d"], out["dmin"] = _pack_2bit(L), d, dmin
    return out.tobytes()


def q3_K(x):
    """16 groups of 16: make_qx_quants scale per group, 6-bit signed
    against the super-block's d (ggml: iscale = -32 / max_scale)."""
    f = np.float32
    x = x.reshape(-1, 256).astype(f)
    nb = len(x)
    _, scale = make_qx_quants(x.reshape(-1, 16), 4)
    scale = scale.reshape(nb, 16)
    ms = scale[np.arange(nb), np.abs(scale).argmax(1)]
    zero = np.abs(ms) < 1e-15
    isc = np.where(zero, 0, f(-32) / np.where(zero, 1, ms)).astype(f)
    ls = np.clip(nearest_int(isc[:, None] * scale), -32, 31)
    d = f16_bits(np.where(zero, 0, 1 / np.where(zero, 1, isc)))
    dd = d.view(np.float16).astype(f)[:, None] * ls
    xs = x.reshape(nb, 16, 16)
    dsafe = np.where(dd != 0, dd, 1)
    L = np.clip(nearest_int(xs / dsafe[:, :, None]), -4, 3) + 4
    L = np.where((dd != 0)[:, :, None], L, 4).reshape(nb, 256).astype(np.uint8)
    u = (ls + 32).astype(np.uint8)                       # (nb, 16) 6-bit
    sc = np.zeros((nb, 12), np.uint8)
    sc[:, 0:8] = (u[:, 0:8] & 0xF) | ((u[:, 8:16] & 0xF) << 4)
    for k in range(16):
        sc[:, 8 + k % 4] |= (u[:, k] >> 4) << (2 * (k // 4))
    hi = (L >> 2).reshape(nb, 2, 4, 32)
    hm = np.zeros((nb, 32), np.uint8)
    for c in range(2):
        for j in range(4):
            hm |= hi[:, c, j] << (4 * c + j)
    out = np.zeros(nb, [("hmask", "u1", 32), ("qs", "u1", 64), ("scales", "u1", 12),
                        ("d", "<u2")])
    out["hmask"], out["qs"], out["scales"], out["d"] = hm, _pack_2bit(L & 3), sc, d
    return out.tobytes()


def quantize(x, ty):
    x = np.ascontiguousarray(x, np.float32)
    if ty == "F32":
        return x.astype("<f4").tobytes()
    if ty == "F16":
        return f16_bits(x).tobytes()
    if ty == "BF16":
        return bf16_bits(x).tobytes()
    return {"Q8_0": q8_0, "Q4_0": q4_0, "Q5_0": q5_0, "Q4_K": q4_K, "Q5_K": q5_K,
            "Q6_K": q6_K, "Q4_1": q4_1, "Q5_1": q5_1, "IQ4_NL": iq4_nl, "IQ4_XS": iq4_xs,
            "Q2_K": q2_K, "Q3_K": q3_K}[ty](x)


def random_blocks(rng, n, ty):
    """Random valid quantised data for n values (no quantiser run): what
    the model-shaped file uses, as quantising 500M values in numpy is slow."""
    be, bb = BLOCK[ty]
    nb = n // be
    if ty == "Q8_0":
        out = np.zeros(nb, [("d", "<u2"), ("qs", "i1", 32)])
        out["qs"] = rng.integers(-127, 128, (nb, 32), dtype=np.int8)
        out["d"] = f16_bits(rng.uniform(0.5, 1.5, nb).astype(np.float32) / 127 * 0.05)
        return out.tobytes()
    if ty == "Q5_0":
        out = np.zeros(nb, [("d", "<u2"), ("qh", "<u4"), ("qs", "u1", 16)])
        out["qs"] = rng.integers(0, 256, (nb, 16), dtype=np.uint8)
        out["qh"] = rng.integers(0, 1 << 32, nb, dtype=np.uint64).astype(np.uint32)
        out["d"] = f16_bits(rng.uniform(0.5, 1.5, nb).astype(np.float32) * 0.05 / 16)
        return out.tobytes()
    if ty == "Q4_0":
        out = np.zeros(nb, [("d", "<u2"), ("qs", "u1", 16)])
        out["qs"] = rng.integers(0, 256, (nb, 16), dtype=np.uint8)
        out["d"] = f16_bits(rng.uniform(0.5, 1.5, nb).astype(np.float32) * 0.05 / 8)
        return out.tobytes()
    raw = np.frombuffer(rng.bytes(nb * bb), np.uint8).reshape(nb, bb).copy()

    def put(off, val, count=1):   # count f16 fields of the same value at off
        h = f16_bits(np.full(count * nb, val, np.float32)).tobytes()
        raw[:, off:off + 2 * count] = np.frombuffer(h, np.uint8).reshape(nb, 2 * count)
    # scales such that values stay within about +-0.05, as above
    if ty in ("Q4_K", "Q5_K"):   # d, dmin: small positive halves
        put(0, 0.05 / 63 / 15, 2)
    elif ty == "Q6_K":
        put(208, 0.05 / 127 / 32)
    elif ty in ("Q4_1", "Q5_1"):
        put(0, 0.1 / (15 if ty == "Q4_1" else 31))
        put(2, -0.05)
    elif ty == "IQ4_NL":
        put(0, 0.05 / 127)
    elif ty == "IQ4_XS":
        put(0, 0.05 / 127 / 32)
    elif ty == "Q2_K":
        put(80, 0.1 / 15 / 3, 2)
    elif ty == "Q3_K":
        put(108, 0.05 / 32 / 4)
    return raw.tobytes()


# ---------------------------------------------------------------------------
# models

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
          "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
# Qwen3: ChatML whose generation prompt closes an empty thinking section
# when the caller sets enable_thinking=false
QWEN3 = CHATML[:-len("{% endif %}")] + (
    "{% if enable_thinking is defined and enable_thinking is false %}"
    "{{ '<think>\\n\\n</think>\\n\\n' }}{% endif %}{% endif %}")
LLAMA3 = ("{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + "
          "message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + "
          "'<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")

TINY = dict(n_embd=256, n_layer=2, n_head=4, n_head_kv=2, n_ff=512, n_ctx=512)
SHAPES = {
    "tiny": TINY,
    "qwen2.5-0.5b": dict(n_embd=896, n_layer=24, n_head=14, n_head_kv=2, n_ff=4864,
                         n_ctx=32768, n_vocab=151936),
}


def base_type(wtype, pure=False):
    """The type most 2-D tensors of a preset (or pure type) get."""
    return wtype if pure or wtype not in PRESETS else PRESETS[wtype][1]


def file_type(wtype):
    """general.file_type (LLAMA_FTYPE) for a preset or pure type."""
    if wtype in PRESETS:
        return PRESETS[wtype][0]
    return PURE_FTYPE[wtype]


def _more_bits(i, n):
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def preset_type(wtype, name, layer, dims, has_output, pure=False):
    """The type llama.cpp's quantize (llama_tensor_get_type, Feb 2025, no
    imatrix) gives a llama/qwen 2-D tensor under preset wtype, before the
    row-width fallback. layer: the tensor's block index; dims: the shape."""
    ty = base_type(wtype, pure)
    if pure or wtype not in PRESETS or ty in ("F32", "F16", "BF16"):
        return ty
    n, gqa = dims["n_layer"], dims["n_head"] // dims["n_head_kv"]
    if name == "output.weight" or (not has_output and name == "token_embd.weight"):
        if dims["n_embd"] % BLOCK[ty][0]:
            return "Q8_0"
        return ty if ty == "Q8_0" else "Q6_K"
    if name == "attn_v.weight":
        if wtype == "Q2_K":
            return "Q4_K" if gqa >= 4 else "Q3_K"
        if wtype == "Q3_K_M":
            return "Q5_K" if layer < 2 else "Q4_K"
        if wtype in ("IQ4_NL", "IQ4_XS") and gqa >= 4:
            return "Q5_K"
        if wtype in ("Q4_K_M", "Q5_K_M") and _more_bits(layer, n):
            return "Q6_K"
        return ty
    if name == "ffn_down.weight":
        if wtype == "Q2_K":
            return "Q3_K"
        if wtype == "Q3_K_M":
            return "Q5_K" if layer < n // 16 else "Q4_K"
        if wtype in ("Q4_K_M", "Q5_K_M") and _more_bits(layer, n):
            return "Q6_K"
        if wtype in ("IQ4_NL", "IQ4_XS") and layer < n // 8:
            return "Q5_K"
        return ty
    if name == "attn_output.weight":
        return {"Q2_K": "Q3_K", "Q3_K_M": "Q4_K"}.get(wtype, ty)
    return ty


# llama.cpp's fallback for rows that are not whole blocks of the chosen type
FALLBACK = {"Q2_K": "IQ4_NL", "Q3_K": "IQ4_NL", "IQ4_XS": "IQ4_NL", "Q4_K": "Q5_0",
            "Q5_K": "Q5_1", "Q6_K": "Q8_0"}


def fallback_type(ty, n_in):
    if n_in % BLOCK[ty][0] == 0:
        return ty
    ty = FALLBACK.get(ty, "F16")
    return ty if n_in % BLOCK[ty][0] == 0 else "F16"


def vocab_kvs(v, template):
    kvs = [("tokenizer.ggml.model", STR, v["model"])]
    if v.get("pre"):
        kvs.append(("tokenizer.ggml.pre", STR, v["pre"]))
    kvs += [("tokenizer.ggml.tokens", ARR, v["tokens"], STR),
            ("tokenizer.ggml.scores", ARR, v["scores"], F32),
            ("tokenizer.ggml.token_type", ARR, v["types"], I32)]
    if v["merges"]:
        kvs.append(("tokenizer.ggml.merges", ARR, v["merges"], STR))
    for k, key in (("bos", "bos_token_id"), ("eos", "eos_token_id"),
                   ("eot", "eot_token_id"), ("unk", "unknown_token_id"),
                   ("pad", "padding_token_id")):
        if v.get(k, -1) >= 0:
            kvs.append(("tokenizer.ggml." + key, U32, v[k]))
    kvs.append(("tokenizer.ggml.add_bos_token", BOOL, bool(v["add_bos"])))
    kvs.append(("tokenizer.chat_template", STR, template))
    return kvs


def make_model(path, arch="qwen2", wtype="Q8_0", version=3, seed=0, layers=None,
               alignment=32, vocab="bpe", shape="tiny", rope_freqs=None, tied=None,
               rope_scale=None, rope_scale_key="scaling", pure=False, chat_template=None,
               swa=16, softcap=(50.0, 30.0), longrope_ctx=128):
    """rope_scale: linear RoPE scaling factor, written as rope.scaling.type
    "linear" + rope.scaling.factor, or with rope_scale_key "legacy" as the
    older rope.scale_linear, or with "yarn" as type "yarn" with
    original_context_length n_ctx / 4. wtype: a llama.cpp preset (PRESETS: per-tensor
    mix as llama-quantize makes it) or a type; pure: every 2-D tensor in
    wtype's base type (llama-quantize --pure). gemma2 / gemma3: the
    sliding window swa (their local layers), Gemma 2's attention and final
    logit softcapping, post-attention and post-FFN norms; a tiny gemma3 has
    6 layers (five local, one global). phi3: fused attn_qkv and ffn_up
    (gate, then up), LongRoPE factors (long ones in use when the context is
    past longrope_ctx, the original context) and their attn_factor, and a
    sliding window that llama.cpp ignores for Phi-3. Returns {"n_vocab", "vocab",
    "types": {tensor name: type name}}."""
    rng = np.random.default_rng(seed)
    dims = dict(SHAPES[shape])
    gemma = arch in ("gemma2", "gemma3")
    if arch == "gemma3" and shape == "tiny":
        dims["n_layer"] = 6
    if layers:
        dims["n_layer"] = layers
    E, H, KV, F = dims["n_embd"], dims["n_head"], dims["n_head_kv"], dims["n_ff"]
    hd = E // H
    if arch == "qwen3" and shape == "tiny":
        hd = 128                     # key_length != n_embd / n_head, as in Qwen3
    if vocab == "spm":
        v = tokref.make_spm_vocab()
    else:
        v = tokref.make_bpe_vocab(pre="llama-bpe" if arch == "llama" else "qwen2",
                                  pad_to=dims.get("n_vocab", 0))
    V = len(v["tokens"])
    big = shape != "tiny"
    if rope_freqs is None:
        rope_freqs = arch == "llama" and not big
    a = arch
    kvs = [("general.architecture", STR, a), ("general.name", STR, "voxline test %s %s" % (a, wtype)),
           (a + ".context_length", U32, dims["n_ctx"]), (a + ".embedding_length", U32, E),
           (a + ".block_count", U32, dims["n_layer"]), (a + ".feed_forward_length", U32, F),
           (a + ".attention.head_count", U32, H), (a + ".attention.head_count_kv", U32, KV),
           (a + ".attention.layer_norm_rms_epsilon", F32, 1e-6 if a != "llama" else 1e-5),
           (a + ".rope.freq_base", F32,
            {"llama": 500000.0, "gemma2": 10000.0, "phi3": 10000.0}.get(a, 1e6)),
           ("general.file_type", U32, file_type(wtype))]
    if arch in ("qwen3", "gemma2", "gemma3"):
        kvs += [(a + ".attention.key_length", U32, hd), (a + ".attention.value_length", U32, hd)]
    if gemma:
        kvs.append((a + ".attention.sliding_window", U32, swa))
    if arch == "gemma2":
        kvs += [(a + ".attn_logit_softcapping", F32, softcap[0]),
                (a + ".final_logit_softcapping", F32, softcap[1])]
    if arch == "phi3":   # as convert_hf_to_gguf.py writes LongRoPE
        kvs += [(a + ".rope.scaling.original_context_length", U32, longrope_ctx),
                (a + ".rope.scaling.attn_factor", F32,   # as for 32x the original context
                 math.sqrt(1 + math.log(32) / math.log(longrope_ctx))),
                (a + ".attention.sliding_window", U32, 2047)]
    if rope_scale and rope_scale_key == "legacy":
        kvs.append((a + ".rope.scale_linear", F32, rope_scale))
    elif rope_scale and rope_scale_key == "yarn":   # YaRN over a quarter of n_ctx
        kvs += [(a + ".rope.scaling.type", STR, "yarn"),
                (a + ".rope.scaling.factor", F32, rope_scale),
                (a + ".rope.scaling.original_context_length", U32, dims["n_ctx"] // 4)]
    elif rope_scale:
        kvs += [(a + ".rope.scaling.type", STR, "linear"),
                (a + ".rope.scaling.factor", F32, rope_scale)]
    kvs += vocab_kvs(v, chat_template if chat_template is not None else
                     {"llama": LLAMA3, "qwen3": QWEN3}.get(arch, CHATML))

    tensors = []
    types = {}
    if tied is None:   # tiny: separate output (a tied random model mostly repeats its input)
        tied = big

    def mix(name, layer):
        return preset_type(wtype, name, layer, dims, not tied, pure)

    def add(name, shape_, ty, layer=-1, scale=1.0, mean=0.0):
        n_in = shape_[0]
        n = int(np.prod(shape_))
        if len(shape_) == 1:
            ty = "F32"
        ty = fallback_type(ty, n_in)
        full = name if layer < 0 else "blk.%d.%s" % (layer, name)
        if big and len(shape_) > 1 and ty not in ("F32", "F16", "BF16"):
            data = random_blocks(rng, n, ty)
        else:
            x = (rng.standard_normal(n, dtype=np.float32) * np.float32(scale) + np.float32(mean))
            data = quantize(x, ty)
        tensors.append((full, list(shape_), GGML[ty], data))
        types[full] = ty

    add("token_embd.weight", (E, V), mix("token_embd.weight", 0), scale=1.0)
    for il in range(dims["n_layer"]):
        def t(name, shp, scale=1.0, mean=0.0):
            add(name, shp, mix(name, il), il, scale, mean)
        t("attn_norm.weight", (E,), 0.1, 1.0)
        if arch == "phi3":
            t("attn_qkv.weight", (E, (H + 2 * KV) * hd), E ** -0.5)
        else:
            t("attn_q.weight", (E, H * hd), E ** -0.5)
            t("attn_k.weight", (E, KV * hd), E ** -0.5)
            t("attn_v.weight", (E, KV * hd), E ** -0.5)
        if arch == "qwen2":
            t("attn_q.bias", (H * hd,), 0.5)
            t("attn_k.bias", (KV * hd,), 0.5)
            t("attn_v.bias", (KV * hd,), 0.5)
        if arch in ("qwen3", "gemma3"):
            t("attn_q_norm.weight", (hd,), 0.1, 1.0)
            t("attn_k_norm.weight", (hd,), 0.1, 1.0)
        t("attn_output.weight", (H * hd, E), (H * hd) ** -0.5)
        if gemma:
            t("post_attention_norm.weight", (E,), 0.1, 1.0)
        t("ffn_norm.weight", (E,), 0.1, 1.0)
        if arch == "phi3":
            t("ffn_up.weight", (E, 2 * F), E ** -0.5)
        else:
            t("ffn_gate.weight", (E, F), E ** -0.5)
            t("ffn_up.weight", (E, F), E ** -0.5)
        t("ffn_down.weight", (F, E), F ** -0.5)
        if gemma:
            t("post_ffw_norm.weight", (E,), 0.1, 1.0)
    add("output_norm.weight", (E,), "F32", scale=0.1, mean=1.0)
    if not tied:
        add("output.weight", (E, V), mix("output.weight", 0), scale=E ** -0.5 * 4)
    if arch == "phi3":
        for name, top in (("long", 8.0), ("short", 1.5)):
            f = np.linspace(1.0, top, hd // 2, dtype=np.float32)
            tensors.append(("rope_factors_%s.weight" % name, [hd // 2], GGML["F32"], f.tobytes()))
    if rope_freqs:
        f = np.ones(hd // 2, np.float32)
        f[hd // 4:] = np.linspace(1.0, 8.0, hd // 2 - hd // 4, dtype=np.float32)
        tensors.append(("rope_freqs.weight", [hd // 2], GGML["F32"], f.tobytes()))
    write_gguf(path, kvs, tensors, version=version, alignment=alignment)
    return {"n_vocab": V, "vocab": v, "types": types}


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--arch", default="qwen2",
                    choices=["llama", "qwen2", "qwen3", "gemma2", "gemma3", "phi3"])
    ap.add_argument("--type", default="Q8_0", choices=sorted(set(GGML) | set(PRESETS)))
    ap.add_argument("--pure", action="store_true",
                    help="every 2-D tensor in the type (no preset mix)")
    ap.add_argument("--summary", action="store_true",
                    help="print how many tensors each type holds")
    ap.add_argument("--version", type=int, default=3, choices=[2, 3])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layers", type=int)
    ap.add_argument("--alignment", type=int, default=32)
    ap.add_argument("--vocab", default="bpe", choices=["bpe", "spm"])
    ap.add_argument("--shape", default="tiny", choices=list(SHAPES))
    ap.add_argument("--tied", action="store_true", help="output = token_embd")
    ap.add_argument("--chat-template", help="file whose text is tokenizer.chat_template")
    a = ap.parse_args(argv)
    r = make_model(a.out, a.arch, a.type, a.version, a.seed, a.layers, a.alignment,
                   a.vocab, a.shape, tied=True if a.tied else None, pure=a.pure,
                   chat_template=open(a.chat_template, encoding="utf-8").read()
                   if a.chat_template else None)
    if a.summary:
        counts = {}
        for ty in r["types"].values():
            counts[ty] = counts.get(ty, 0) + 1
        print(" ".join("%s:%d" % kv for kv in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
