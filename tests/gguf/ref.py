#!/usr/bin/python3
"""ref.py - an independent numpy reference for the GGUF engine: its own
GGUF reader, dequantisers written from the block layouts, and a float64
forward pass (RMSNorm, RoPE normal/neox with rope_freqs, GQA attention,
SwiGLU, qwen2 biases, qwen3 q/k norms, tied or separate output).

  ref.py MODEL.gguf --tokens 1,2,3 [--greedy N] [--kv16]   -> JSON like gguf_run

As a module: Ref(path).logits(tokens) -> (n, vocab) array of every
position's logits.
"""

import argparse
import json
import struct
import sys

import numpy as np

BLOCK = {0: (1, 4), 1: (1, 2), 30: (1, 2), 8: (32, 34), 2: (32, 18), 6: (32, 22),
         12: (256, 144), 13: (256, 176), 14: (256, 210), 3: (32, 20), 7: (32, 24),
         20: (32, 18), 10: (256, 84), 11: (256, 110), 23: (256, 136)}
IQ4NL = np.array([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89,
                  113], np.float32)


class GGUF:
    def __init__(self, path):
        self.buf = open(path, "rb").read()
        self.pos = 0
        if self.buf[:4] != b"GGUF":
            raise ValueError("bad magic")
        self.pos = 4
        self.version = self.u("<I")
        n_t, n_kv = self.u("<Q"), self.u("<Q")
        self.kv = {}
        for _ in range(n_kv):
            k = self.s()
            self.kv[k] = self.value(self.u("<I"))
        infos = []
        for _ in range(n_t):
            name = self.s()
            nd = self.u("<I")
            shape = [self.u("<Q") for _ in range(nd)]
            ty, off = self.u("<I"), self.u("<Q")
            infos.append((name, shape, ty, off))
        al = self.kv.get("general.alignment", 32)
        base = (self.pos + al - 1) // al * al
        self.tensors = {}
        for name, shape, ty, off in infos:
            n = int(np.prod(shape))
            be, bb = BLOCK[ty]
            nbytes = n // be * bb
            self.tensors[name] = (shape, ty, self.buf[base + off: base + off + nbytes])

    def u(self, fmt):
        v = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return v

    def s(self):
        n = self.u("<Q")
        v = self.buf[self.pos:self.pos + n].decode("utf-8", "surrogateescape")
        self.pos += n
        return v

    def value(self, t):
        fmts = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f",
                7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
        if t == 8:
            return self.s()
        if t == 9:
            at, n = self.u("<I"), self.u("<Q")
            return [self.value(at) for _ in range(n)]
        return self.u(fmts[t])

    def get(self, name):
        """Tensor as float64 array of shape (ne1, ne0) (rows) or (ne0,)."""
        shape, ty, data = self.tensors[name]
        x = dequant(ty, data).astype(np.float64)
        return x.reshape(list(reversed(shape)))


def f16(u):
    return np.asarray(u, np.uint16).view(np.float16).astype(np.float32)


def _scale_min_k4(sc):
    """sc: (nb, 12) -> (scales (nb, 8), mins (nb, 8)) as 6-bit ints."""
    sc = sc.astype(np.int32)
    d = np.zeros((len(sc), 8), np.int32)
    m = np.zeros((len(sc), 8), np.int32)
    d[:, :4] = sc[:, 0:4] & 63
    m[:, :4] = sc[:, 4:8] & 63
    d[:, 4:] = (sc[:, 8:12] & 0xF) | ((sc[:, 0:4] >> 6) << 4)
    m[:, 4:] = (sc[:, 8:12] >> 4) | ((sc[:, 4:8] >> 6) << 4)
    return d, m


def dequant(ty, data):
    b = np.frombuffer(data, np.uint8)
    if ty == 0:
        return np.frombuffer(data, "<f4").astype(np.float32)
    if ty == 1:
        return np.frombuffer(data, "<f2").astype(np.float32)
    if ty == 30:
        return (np.frombuffer(data, "<u2").astype(np.uint32) << 16).view(np.float32)
    if ty == 8:
        r = b.reshape(-1, 34)
        d = f16(r[:, 0:2].copy().view("<u2")[:, 0])
        return (d[:, None] * r[:, 2:].view(np.int8)).ravel()
    if ty == 2:
        r = b.reshape(-1, 18)
        d = f16(r[:, 0:2].copy().view("<u2")[:, 0])
        q = r[:, 2:].astype(np.int32)
        v = np.concatenate([(q & 0xF) - 8, (q >> 4) - 8], axis=1)
        return (d[:, None] * v).ravel()
    if ty == 6:
        r = b.reshape(-1, 22)
        d = f16(r[:, 0:2].copy().view("<u2")[:, 0])
        qh = r[:, 2:6].copy().view("<u4")[:, 0].astype(np.int64)
        q = r[:, 6:].astype(np.int32)
        lo = np.concatenate([q & 0xF, q >> 4], axis=1)                 # (nb, 32)
        hi = ((qh[:, None] >> np.arange(32)[None, :]) & 1).astype(np.int32)
        return (d[:, None] * (lo + 16 * hi - 16)).ravel()
    if ty in (12, 13):
        bb = 144 if ty == 12 else 176
        r = b.reshape(-1, bb)
        d = f16(r[:, 0:2].copy().view("<u2")[:, 0])
        dmin = f16(r[:, 2:4].copy().view("<u2")[:, 0])
        sc, mn = _scale_min_k4(r[:, 4:16])
        qs = r[:, bb - 128:].astype(np.int32).reshape(-1, 4, 32)
        q = np.stack([qs & 0xF, qs >> 4], axis=2).reshape(-1, 8, 32)  # sub-block j
        if ty == 13:
            qh = r[:, 16:48].astype(np.int32)
            bits = np.stack([(qh >> j) & 1 for j in range(8)], axis=1)   # (nb, 8, 32)
            q = q + 16 * bits
        v = d[:, None, None] * sc[:, :, None] * q - dmin[:, None, None] * mn[:, :, None]
        return v.ravel()
    if ty == 14:
        r = b.reshape(-1, 210)
        ql = r[:, 0:128].astype(np.int32).reshape(-1, 2, 64)
        qh = r[:, 128:192].astype(np.int32).reshape(-1, 2, 32)
        sc = r[:, 192:208].view(np.int8).astype(np.int32).reshape(-1, 2, 8)
        d = f16(r[:, 208:210].copy().view("<u2")[:, 0])
        q = np.zeros((len(r), 2, 4, 32), np.int32)
        q[:, :, 0] = (ql[:, :, :32] & 0xF) | (((qh >> 0) & 3) << 4)
        q[:, :, 1] = (ql[:, :, 32:] & 0xF) | (((qh >> 2) & 3) << 4)
        q[:, :, 2] = (ql[:, :, :32] >> 4) | (((qh >> 4) & 3) << 4)
        q[:, :, 3] = (ql[:, :, 32:] >> 4) | (((qh >> 6) & 3) << 4)
        q = (q - 32).reshape(-1, 2, 8, 16)     # groups of 16 in order
        v = d[:, None, None, None] * sc[:, :, :, None] * q
        return v.ravel()
    if ty in (3, 7):          # Q4_1, Q5_1: d * q + m
        bb = 20 if ty == 3 else 24
        r = b.reshape(-1, bb)
        d = f16(r[:, 0:2].copy().view("<u2")[:, 0])
        m = f16(r[:, 2:4].copy().view("<u2")[:, 0])
        q = r[:, bb - 16:].astype(np.int32)
        q = np.concatenate([q & 0xF, q >> 4], axis=1)
        if ty == 7:
            qh = r[:, 4:8].copy().view("<u4")[:, 0].astype(np.int64)
            q = q + 16 * ((qh[:, None] >> np.arange(32)[None, :]) & 1).astype(np.int32)
        return (d[:, None] * q + m[:, None]).ravel()
    if ty == 20:              # IQ4_NL
        r = b.reshape(-1, 18)
        d = f16(r[:, 0:2].copy().view("<u2")[:, 0])
        q = r[:, 2:].astype(np.int32)
        return (d[:, None] * IQ4NL[np.concatenate([q & 0xF, q >> 4], axis=1)]).ravel()
    if ty == 23:              # IQ4_XS: 8 sub-blocks of 32, 6-bit scales - 32
        r = b.reshape(-1, 136)
        d = f16(r[:, 0:2].copy().view("<u2")[:, 0])
        sh = r[:, 2:4].copy().view("<u2")[:, 0].astype(np.int32)
        sl = r[:, 4:8].astype(np.int32)
        ib = np.arange(8)
        ls = ((sl[:, ib // 2] >> (4 * (ib % 2))) & 0xF) | (((sh[:, None] >> (2 * ib)) & 3) << 4)
        q = r[:, 8:].astype(np.int32).reshape(-1, 8, 16)
        v = IQ4NL[np.concatenate([q & 0xF, q >> 4], axis=2)]          # (nb, 8, 32)
        return (d[:, None, None] * (ls - 32)[:, :, None] * v).ravel()
    if ty in (10, 11):        # Q2_K, Q3_K: 16 groups of 16, 2 low bits
        bb = 84 if ty == 10 else 110
        r = b.reshape(-1, bb)
        qs = r[:, 16:80] if ty == 10 else r[:, 32:96]
        qs = qs.astype(np.int32).reshape(-1, 2, 1, 32)
        low = (qs >> (2 * np.arange(4)[None, None, :, None])) & 3     # (nb, 2, 4, 32)
        if ty == 10:
            sc = r[:, 0:16].astype(np.int32)
            d = f16(r[:, 80:82].copy().view("<u2")[:, 0])
            dmin = f16(r[:, 82:84].copy().view("<u2")[:, 0])
            v = (d[:, None, None] * (sc & 0xF)[:, :, None] * low.reshape(-1, 16, 16)
                 - dmin[:, None, None] * (sc >> 4)[:, :, None])
            return v.ravel()
        hm = r[:, 0:32].astype(np.int32)
        bit = 4 * np.arange(2)[:, None] + np.arange(4)[None, :]           # (2, 4)
        h = (hm[:, None, None, :] >> bit[None, :, :, None]) & 1
        q = (low - 4 * (1 - h)).reshape(-1, 16, 16)
        p = r[:, 96:108].astype(np.int32)
        k = np.arange(16)
        lo = np.where(k < 8, p[:, k % 8] & 0xF, p[:, k % 8] >> 4)
        hi = (p[:, 8 + k % 4] >> (2 * (k // 4))) & 3
        sc = (lo | (hi << 4)) - 32
        d = f16(r[:, 108:110].copy().view("<u2")[:, 0])
        return (d[:, None, None] * sc[:, :, None] * q).ravel()
    raise ValueError("type %d" % ty)


class Ref:
    """kv16: keys and values rounded to IEEE halves as they are cached (the
    engine's default KV cache, llama.cpp's f16 one); by default kept whole
    (gguf_run --kv-f32)."""

    def __init__(self, path, kv16=False):
        self.kv16 = kv16
        g = self.g = GGUF(path)
        a = self.arch = g.kv["general.architecture"]
        kv = g.kv
        self.E = kv[a + ".embedding_length"]
        self.L = kv[a + ".block_count"]
        self.H = kv[a + ".attention.head_count"]
        self.KV = kv.get(a + ".attention.head_count_kv", self.H)
        self.hd = kv.get(a + ".attention.key_length", self.E // self.H)
        self.eps = kv.get(a + ".attention.layer_norm_rms_epsilon", 1e-5)
        base = kv.get(a + ".rope.freq_base", 10000.0)
        self.neox = a != "llama"
        scale = 1.0
        if kv.get(a + ".rope.scaling.type") == "linear":
            scale = kv.get(a + ".rope.scaling.factor", 1.0)
        elif a + ".rope.scaling.type" not in kv:     # older files
            scale = kv.get(a + ".rope.scale_linear", 1.0)
        i = np.arange(self.hd // 2, dtype=np.float64)
        self.inv_freq = base ** (-2 * i / self.hd) / scale
        self.mscale = 1.0
        if "rope_freqs.weight" in g.tensors:
            self.inv_freq = self.inv_freq / g.get("rope_freqs.weight")
        elif "rope_factors_long.weight" in g.tensors:   # Phi-3 LongRoPE
            orig = kv.get(a + ".rope.scaling.original_context_length", 0)
            long_ = kv[a + ".context_length"] > orig
            self.inv_freq = self.inv_freq / g.get("rope_factors_%s.weight" %
                                                  ("long" if long_ else "short"))
            self.mscale = kv.get(a + ".rope.scaling.attn_factor", 1.0)
        # Gemma 2 / 3 (llama.cpp's reading): embeddings x sqrt(E), tanh-GELU
        # gate, norms after attention and FFN, local (sliding-window)
        # layers, Gemma 3's local layers rotated with base 10000, Gemma 2's
        # softcapping
        self.gemma = a in ("gemma2", "gemma3")
        self.scale = 1 / np.sqrt(self.hd)
        self.swa, self.swa_pattern, self.inv_freq_swa = 0, 1, None
        self.attn_cap = self.final_cap = 0.0
        if self.gemma:
            g2 = a == "gemma2"
            self.swa = kv.get(a + ".attention.sliding_window", 4096 if g2 else 0)
            self.swa_pattern = 2 if g2 else 6
            if not g2:
                self.inv_freq_swa = 10000.0 ** (-2 * i / self.hd)
            if g2:
                self.attn_cap = kv.get(a + ".attn_logit_softcapping", 50.0)
            self.final_cap = kv.get(a + ".final_logit_softcapping", 30.0 if g2 else 0.0)
            if self.L == (46 if g2 else 62):
                self.scale = 1 / np.sqrt(self.E // self.H)
        self.emb = g.get("token_embd.weight")            # (V, E)
        self.out = g.get("output.weight") if "output.weight" in g.tensors else self.emb
        self.V = self.emb.shape[0]

    def t(self, il, name):
        key = "blk.%d.%s" % (il, name)
        return self.g.get(key) if key in self.g.tensors else None

    def norm(self, x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + self.eps) * w

    def rope(self, x, pos, inv_freq=None):
        """x: (n, heads, hd); pos: (n,)"""
        inv_freq = self.inv_freq if inv_freq is None else inv_freq
        ang = pos[:, None] * inv_freq[None, :]       # (n, hd/2)
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        c, s = c * self.mscale, s * self.mscale
        if self.neox:
            h = self.hd // 2
            a, b = x[..., :h], x[..., h:]
            return np.concatenate([a * c - b * s, a * s + b * c], axis=-1)
        a, b = x[..., 0::2], x[..., 1::2]
        y = np.empty_like(x)
        y[..., 0::2] = a * c - b * s
        y[..., 1::2] = a * s + b * c
        return y

    def logits(self, tokens):
        n = len(tokens)
        x = self.emb[np.asarray(tokens)]
        if self.gemma:
            x = x * np.sqrt(self.E)
        pos = np.arange(n, dtype=np.float64)
        mask = np.triu(np.full((n, n), -np.inf), 1)
        if self.swa:     # a local layer sees the last swa positions
            ij = np.arange(n)[:, None] - np.arange(n)[None, :]
            local_mask = np.where(ij >= self.swa, -np.inf, mask)
        grp = self.H // self.KV
        for il in range(self.L):
            local = self.swa > 0 and il % self.swa_pattern < self.swa_pattern - 1
            h = self.norm(x, self.t(il, "attn_norm.weight"))
            qkv = self.t(il, "attn_qkv.weight")     # Phi-3: fused, q then k then v
            if qkv is not None:
                q, k, v = np.split(h @ qkv.T, [self.H * self.hd, (self.H + self.KV) * self.hd], -1)
            else:
                q = h @ self.t(il, "attn_q.weight").T
                k = h @ self.t(il, "attn_k.weight").T
                v = h @ self.t(il, "attn_v.weight").T
            for name, arr in (("attn_q.bias", q), ("attn_k.bias", k), ("attn_v.bias", v)):
                b = self.t(il, name)
                if b is not None:
                    arr += b
            q = q.reshape(n, self.H, self.hd)
            k = k.reshape(n, self.KV, self.hd)
            v = v.reshape(n, self.KV, self.hd)
            qn, kn = self.t(il, "attn_q_norm.weight"), self.t(il, "attn_k_norm.weight")
            if qn is not None:
                q = self.norm(q, qn)
                k = self.norm(k, kn)
            inv = self.inv_freq_swa if local else None
            q, k = self.rope(q, pos, inv), self.rope(k, pos, inv)
            if self.kv16:
                k = k.astype(np.float16).astype(np.float64)
                v = v.astype(np.float16).astype(np.float64)
            k = np.repeat(k, grp, axis=1)
            v = np.repeat(v, grp, axis=1)
            att = np.einsum("ihd,jhd->hij", q, k) * self.scale
            if self.attn_cap:
                att = self.attn_cap * np.tanh(att / self.attn_cap)
            att = att + (local_mask if local else mask)
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            o = np.einsum("hij,jhd->ihd", att, v).reshape(n, self.H * self.hd)
            o = o @ self.t(il, "attn_output.weight").T
            if self.gemma:
                o = self.norm(o, self.t(il, "post_attention_norm.weight"))
            x = x + o
            h = self.norm(x, self.t(il, "ffn_norm.weight"))
            if self.t(il, "ffn_gate.weight") is None:   # Phi-3: fused, gate then up
                g, u = np.split(h @ self.t(il, "ffn_up.weight").T, 2, -1)
            else:
                g = h @ self.t(il, "ffn_gate.weight").T
                u = h @ self.t(il, "ffn_up.weight").T
            if self.gemma:   # tanh GELU
                a = 0.5 * g * (1 + np.tanh(np.sqrt(2 / np.pi) * (g + 0.044715 * g ** 3)))
            else:
                a = g / (1 + np.exp(-g))
            y = (a * u) @ self.t(il, "ffn_down.weight").T
            if self.gemma:
                y = self.norm(y, self.t(il, "post_ffw_norm.weight"))
            x = x + y
        x = self.norm(x, self.g.get("output_norm.weight"))
        lg = x @ self.out.T
        if self.final_cap:
            lg = self.final_cap * np.tanh(lg / self.final_cap)
        return lg

    def greedy(self, tokens, n):
        seq = list(tokens)
        out = []
        for _ in range(n):
            t = int(np.argmax(self.logits(seq)[-1]))
            out.append(t)
            seq.append(t)
        return out


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--greedy", type=int, default=0)
    ap.add_argument("--kv16", action="store_true")
    a = ap.parse_args(argv)
    toks = [int(t) for t in a.tokens.split(",")]
    r = Ref(a.model, kv16=a.kv16)
    lg = r.logits(toks)[-1]
    print(json.dumps({"n_vocab": r.V, "logits": [float(v) for v in lg],
                      "greedy": r.greedy(toks, a.greedy)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
