#!/usr/bin/python3
"""mkwhisper.py - write a random-weight Whisper model in whisper.cpp's ggml format.

The layout (all little-endian):

    u32  magic 0x67676d6c ("ggml")
    i32  n_vocab n_audio_ctx n_audio_state n_audio_head n_audio_layer
         n_text_ctx n_text_state n_text_head n_text_layer n_mels ftype
         (ftype: 0 all f32, 1 f16; quantised files add 1000 * 2, the ggml
         quantisation version, to 2 q4_0, 3 q4_1, 7 q8_0, 8 q5_0, 9 q5_1)
    i32  n_mel, n_fb (= n_fft / 2 + 1), then n_mel * n_fb f32 mel filters
    i32  n_tokens, then per token: u32 length, bytes (raw, not GPT-2's
         unicode-mapped form)
    tensors to the end of the file, each:
         i32 n_dims, i32 name_len, i32 ggml type, i32 ne[n_dims] (ggml
         order: fastest dimension first), name bytes, data (no padding)

Which tensors get which type follows whisper.cpp's converter and quantiser:
1-D tensors, the conv biases and both positional embeddings stay F32; the
conv kernels (3-D) are F16 unless the file is all-F32; the other 2-D
matrices take the file's weight type.

Used as a module by ref.py (Model, dequantize) and as a command:

    mkwhisper.py OUT.bin [--shape tiny|tiny-ml|tiny.en|base.en] [--type f16] [--seed 1]
                 [--vocab-from FILE.bin] [--n-vocab N]
"""
import argparse
import struct
import sys

import numpy as np

MAGIC = 0x67676D6C
QNT_VERSION = 2
QNT_FACTOR = 1000

# ggml_type numbers
T_F32, T_F16, T_Q4_0, T_Q4_1, T_Q5_0, T_Q5_1, T_Q8_0 = 0, 1, 2, 3, 6, 7, 8
TYPE_NAMES = {"f32": T_F32, "f16": T_F16, "q4_0": T_Q4_0, "q4_1": T_Q4_1,
              "q5_0": T_Q5_0, "q5_1": T_Q5_1, "q8_0": T_Q8_0}
# the file's ftype for each weight type (ggml_ftype numbers)
FTYPE_OF = {T_F32: 0, T_F16: 1, T_Q4_0: 2, T_Q4_1: 3, T_Q8_0: 7, T_Q5_0: 8, T_Q5_1: 9}
# (values per block, bytes per block)
BLOCK = {T_F32: (1, 4), T_F16: (1, 2), T_Q4_0: (32, 18), T_Q4_1: (32, 20),
         T_Q5_0: (32, 22), T_Q5_1: (32, 24), T_Q8_0: (32, 34)}

SHAPES = {
    # n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer,
    # n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels
    "tiny": dict(n_vocab=51864, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2,
                 n_audio_layer=2, n_text_ctx=448, n_text_state=64, n_text_head=2,
                 n_text_layer=2, n_mels=80),
    # the tiny test shape with a multilingual vocabulary (99 languages)
    "tiny-ml": dict(n_vocab=51865, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2,
                    n_audio_layer=2, n_text_ctx=448, n_text_state=64, n_text_head=2,
                    n_text_layer=2, n_mels=80),
    "tiny.en": dict(n_vocab=51864, n_audio_ctx=1500, n_audio_state=384, n_audio_head=6,
                    n_audio_layer=4, n_text_ctx=448, n_text_state=384, n_text_head=6,
                    n_text_layer=4, n_mels=80),
    "base.en": dict(n_vocab=51864, n_audio_ctx=1500, n_audio_state=512, n_audio_head=8,
                    n_audio_layer=6, n_text_ctx=448, n_text_state=512, n_text_head=8,
                    n_text_layer=6, n_mels=80),
}
HPARAM_ORDER = ["n_vocab", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer",
                "n_text_ctx", "n_text_state", "n_text_head", "n_text_layer", "n_mels"]

SAMPLE_RATE = 16000
N_FFT = 400


# ---------------------------------------------------------------- mel filters

def _hz_to_mel(f):
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    lin = f / (200.0 / 3)
    logstep = np.log(6.4) / 27.0
    return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / logstep, lin)


def _mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    logstep = np.log(6.4) / 27.0
    return np.where(m >= 15.0, 1000.0 * np.exp(logstep * (m - 15.0)), m * (200.0 / 3))


def mel_filters(n_mels, sr=SAMPLE_RATE, n_fft=N_FFT):
    """Triangular, area-normalised (Slaney) filters, shape (n_mels, n_fft/2+1)."""
    n_fb = n_fft // 2 + 1
    fft_hz = np.linspace(0, sr / 2, n_fb)
    mel_pts = np.linspace(_hz_to_mel(0.0), _hz_to_mel(sr / 2), n_mels + 2)
    hz = _mel_to_hz(mel_pts)
    w = np.zeros((n_mels, n_fb))
    for i in range(n_mels):
        lo, c, hi = hz[i], hz[i + 1], hz[i + 2]
        up = (fft_hz - lo) / (c - lo)
        down = (hi - fft_hz) / (hi - c)
        w[i] = np.maximum(0, np.minimum(up, down)) * (2.0 / (hi - lo))
    return w.astype(np.float32)


# ----------------------------------------------------------------- vocabulary

def byte_order():
    """The 256 single-byte tokens in GPT-2's order: printable bytes first."""
    first = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + \
        list(range(0xAE, 0xFF + 1))
    rest = [b for b in range(256) if b not in first]
    return first + rest


WORDS = ("the be to of and a in that have it for not on with he as you do at this but his by "
         "from they we say her she or an will my one all would there their what so up out if "
         "about who get which go me when make can like time no just him know take people into "
         "year your good some could them see other than then now look only come its over think "
         "also back after use two how our work first well way even new want because any these "
         "give day most us hello world quick brown fox jumps lazy dog voice assistant speech "
         "weather today tomorrow morning evening please thank thanks yes okay turn light music "
         "play stop open close set timer minute minutes hour hours what's it's I'm don't").split()


def synthetic_vocab(n_text=50256):
    """A deterministic byte-level BPE-style vocabulary: 256 bytes, common
    word pieces (with and without a leading space), fillers; then
    <|endoftext|> (id n_text). Every token is unique."""
    toks = [bytes([b]) for b in byte_order()]
    seen = set(toks)

    def add(t):
        if t not in seen and len(toks) < n_text:
            seen.add(t)
            toks.append(t)
    for w in WORDS:
        for pre in (b" ", b""):
            wb = pre + w.encode()
            for k in range(2, len(wb) + 1):
                add(wb[:k])
    for w in WORDS:
        add(b" " + w.capitalize().encode())
    for p in ".,!?;:'\"":
        add(p.encode() + b" ")
    i = 0
    while len(toks) < n_text:
        # fillers: " zq" + base-26 digits, printable, unique
        s, k = "", i
        while True:
            s = chr(ord("a") + k % 26) + s
            k //= 26
            if k == 0:
                break
        add((" zq" + s).encode())
        i += 1
    toks.append(b"<|endoftext|>")
    return toks


def vocab_from_file(path):
    """The token list of an existing ggml Whisper file."""
    with open(path, "rb") as f:
        d = f.read()
    p = 4 + 11 * 4
    n_mel, n_fb = struct.unpack_from("<ii", d, p)
    p += 8 + n_mel * n_fb * 4
    (n,) = struct.unpack_from("<i", d, p)
    p += 4
    toks = []
    for _ in range(n):
        (ln,) = struct.unpack_from("<I", d, p)
        p += 4
        toks.append(d[p:p + ln])
        p += ln
    return toks


# -------------------------------------------------------------- quantisation

def f16_bits(x):
    return np.asarray(x, dtype=np.float16).view(np.uint16)


def quantize(x, t):
    """Row-major float32 array (rows of ne0 values) -> bytes of ggml type t."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if t == T_F32:
        return x.tobytes()
    if t == T_F16:
        return x.astype(np.float16).tobytes()
    b = x.reshape(-1, 32)
    nb = b.shape[0]
    if t == T_Q8_0:
        amax = np.abs(b).max(axis=1)
        d = amax / 127.0
        idv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1), 0)
        q = np.clip(np.rint(b * idv[:, None]), -127, 127).astype(np.int8)
        out = np.zeros(nb, dtype=[("d", "<u2"), ("qs", "i1", 32)])
        out["d"] = f16_bits(d)
        out["qs"] = q
        return out.tobytes()
    if t in (T_Q4_0, T_Q5_0):
        nlev = 8 if t == T_Q4_0 else 16
        idx = np.abs(b).argmax(axis=1)
        mx = b[np.arange(nb), idx]
        d = mx / -nlev
        idv = np.where(d != 0, 1.0 / np.where(d != 0, d, 1), 0)
        q = np.clip(np.floor(b * idv[:, None] + nlev + 0.5), 0, 2 * nlev - 1).astype(np.uint8)
        return _pack_nibbles(q, d, None, t == T_Q5_0)
    if t in (T_Q4_1, T_Q5_1):
        nlev = 15 if t == T_Q4_1 else 31
        mn, mx = b.min(axis=1), b.max(axis=1)
        d = (mx - mn) / nlev
        idv = np.where(d != 0, 1.0 / np.where(d != 0, d, 1), 0)
        q = np.clip(np.floor((b - mn[:, None]) * idv[:, None] + 0.5), 0, nlev).astype(np.uint8)
        return _pack_nibbles(q, d, mn, t == T_Q5_1)
    raise ValueError("unsupported type %d" % t)


def _pack_nibbles(q, d, m, five):
    nb = q.shape[0]
    fields = [("d", "<u2")]
    if m is not None:
        fields.append(("m", "<u2"))
    if five:
        fields.append(("qh", "<u4"))
    fields.append(("qs", "u1", 16))
    out = np.zeros(nb, dtype=fields)
    out["d"] = f16_bits(d)
    if m is not None:
        out["m"] = f16_bits(m)
    if five:
        hi = ((q >> 4) & 1).astype(np.uint64)
        out["qh"] = (hi << np.arange(32, dtype=np.uint64)).sum(axis=1).astype(np.uint32)
    lo = q & 15
    out["qs"] = lo[:, :16] | (lo[:, 16:] << 4)
    return out.tobytes()


def dequantize(raw, t, n):
    """Bytes of n values of ggml type t -> float32 array (what ref.py computes with)."""
    if t == T_F32:
        return np.frombuffer(raw, dtype="<f4", count=n).astype(np.float32)
    if t == T_F16:
        return np.frombuffer(raw, dtype="<f2", count=n).astype(np.float32)
    nb = n // 32
    if t == T_Q8_0:
        a = np.frombuffer(raw, dtype=[("d", "<f2"), ("qs", "i1", 32)], count=nb)
        return (a["d"].astype(np.float32)[:, None] * a["qs"].astype(np.float32)).reshape(-1)
    has_m = t in (T_Q4_1, T_Q5_1)
    five = t in (T_Q5_0, T_Q5_1)
    fields = [("d", "<f2")] + ([("m", "<f2")] if has_m else []) + \
        ([("qh", "<u4")] if five else []) + [("qs", "u1", 16)]
    a = np.frombuffer(raw, dtype=fields, count=nb)
    q = np.concatenate([a["qs"] & 15, a["qs"] >> 4], axis=1).astype(np.int32)
    if five:
        bits = (a["qh"][:, None].astype(np.uint64) >> np.arange(32, dtype=np.uint64)) & 1
        q |= (bits.astype(np.int32) << 4)
    d = a["d"].astype(np.float32)[:, None]
    if has_m:
        v = d * q.astype(np.float32) + a["m"].astype(np.float32)[:, None]
    else:
        v = d * (q - (8 if t == T_Q4_0 else 16)).astype(np.float32)
    return v.reshape(-1)


# -------------------------------------------------------------------- model

def tensor_specs(hp):
    """(name, numpy shape (slowest first), kind) for every tensor; kind is
    'vec' (F32 always), 'conv' (F16 unless all-F32), 'pos' (F32) or 'mat'."""
    a, t = hp["n_audio_state"], hp["n_text_state"]
    specs = [("encoder.positional_embedding", (hp["n_audio_ctx"], a), "pos"),
             ("encoder.conv1.weight", (a, hp["n_mels"], 3), "conv"),
             ("encoder.conv1.bias", (a, 1), "pos"),
             ("encoder.conv2.weight", (a, a, 3), "conv"),
             ("encoder.conv2.bias", (a, 1), "pos")]

    def block(pfx, n, cross):
        parts = ["attn"] + (["cross_attn"] if cross else [])
        out = []
        for p in parts:
            out += [(f"{pfx}.{p}_ln.weight", (n,), "ln"), (f"{pfx}.{p}_ln.bias", (n,), "vec"),
                    (f"{pfx}.{p}.query.weight", (n, n), "mat"), (f"{pfx}.{p}.query.bias", (n,), "vec"),
                    (f"{pfx}.{p}.key.weight", (n, n), "mat"),
                    (f"{pfx}.{p}.value.weight", (n, n), "mat"), (f"{pfx}.{p}.value.bias", (n,), "vec"),
                    (f"{pfx}.{p}.out.weight", (n, n), "mat"), (f"{pfx}.{p}.out.bias", (n,), "vec")]
        out += [(f"{pfx}.mlp_ln.weight", (n,), "ln"), (f"{pfx}.mlp_ln.bias", (n,), "vec"),
                (f"{pfx}.mlp.0.weight", (4 * n, n), "mat"), (f"{pfx}.mlp.0.bias", (4 * n,), "vec"),
                (f"{pfx}.mlp.2.weight", (n, 4 * n), "mat"), (f"{pfx}.mlp.2.bias", (n,), "vec")]
        return out
    for i in range(hp["n_audio_layer"]):
        specs += block(f"encoder.blocks.{i}", a, False)
    specs += [("encoder.ln_post.weight", (a,), "ln"), ("encoder.ln_post.bias", (a,), "vec"),
              ("decoder.positional_embedding", (hp["n_text_ctx"], t), "pos"),
              ("decoder.token_embedding.weight", (hp["n_vocab"], t), "mat")]
    for i in range(hp["n_text_layer"]):
        specs += block(f"decoder.blocks.{i}", t, True)
    specs += [("decoder.ln.weight", (t,), "ln"), ("decoder.ln.bias", (t,), "vec")]
    return specs


def sinusoids(length, channels):
    """Whisper's encoder positions: sin in the first half, cos in the second."""
    inc = np.log(10000) / (channels // 2 - 1)
    inv = np.exp(-inc * np.arange(channels // 2))
    t = np.arange(length)[:, None] * inv[None, :]
    return np.concatenate([np.sin(t), np.cos(t)], axis=1).astype(np.float32)


def random_tensor(rng, name, shape, kind):
    if kind == "ln":
        return (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
    if kind == "vec":
        return (0.02 * rng.standard_normal(shape)).astype(np.float32)
    if name == "encoder.positional_embedding":
        return sinusoids(*shape)
    if kind == "pos":
        return (0.02 * rng.standard_normal(shape)).astype(np.float32)
    if name == "decoder.token_embedding.weight":
        return (0.5 * rng.standard_normal(shape) / np.sqrt(shape[1])).astype(np.float32)
    fan_in = int(np.prod(shape[1:]))
    return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)


def tensor_type(name, kind, wtype):
    if kind in ("ln", "vec", "pos"):
        return T_F32
    if kind == "conv":
        return T_F32 if wtype == T_F32 else T_F16
    return wtype


def write(path, hp, wtype, seed=1, vocab=None):
    rng = np.random.default_rng(seed)
    # multilingual models have one more text token (eot 50257, not 50256)
    vocab = vocab if vocab is not None else \
        synthetic_vocab(50257 if hp["n_vocab"] >= 51865 else 50256)
    ftype = FTYPE_OF[wtype]
    if wtype not in (T_F32, T_F16):
        ftype += QNT_VERSION * QNT_FACTOR
    filt = mel_filters(hp["n_mels"])
    with open(path, "wb") as f:
        f.write(struct.pack("<I", MAGIC))
        f.write(struct.pack("<11i", *[hp[k] for k in HPARAM_ORDER], ftype))
        f.write(struct.pack("<ii", *filt.shape))
        f.write(filt.astype("<f4").tobytes())
        f.write(struct.pack("<i", len(vocab)))
        for tok in vocab:
            f.write(struct.pack("<I", len(tok)))
            f.write(tok)
        for name, shape, kind in tensor_specs(hp):
            x = random_tensor(rng, name, shape, kind)
            t = tensor_type(name, kind, wtype)
            nb = name.encode()
            f.write(struct.pack("<iii", len(shape), len(nb), t))
            f.write(struct.pack("<%di" % len(shape), *reversed(shape)))
            f.write(nb)
            f.write(quantize(x, t))


class Model:
    """A ggml Whisper file read back: hparams, filters, vocab, and each
    tensor as (type, numpy shape slowest-first, float32 values)."""

    def __init__(self, path):
        with open(path, "rb") as f:
            d = f.read()
        (magic,) = struct.unpack_from("<I", d, 0)
        assert magic == MAGIC, "bad magic"
        vals = struct.unpack_from("<11i", d, 4)
        self.hp = dict(zip(HPARAM_ORDER, vals[:10]))
        self.ftype = vals[10]
        p = 48
        n_mel, n_fb = struct.unpack_from("<ii", d, p)
        p += 8
        self.filters = np.frombuffer(d, dtype="<f4", count=n_mel * n_fb, offset=p) \
            .reshape(n_mel, n_fb).astype(np.float32)
        p += n_mel * n_fb * 4
        (n,) = struct.unpack_from("<i", d, p)
        p += 4
        self.vocab = []
        for _ in range(n):
            (ln,) = struct.unpack_from("<I", d, p)
            p += 4
            self.vocab.append(d[p:p + ln])
            p += ln
        self.tensors = {}
        while p < len(d):
            nd, nl, t = struct.unpack_from("<iii", d, p)
            p += 12
            ne = struct.unpack_from("<%di" % nd, d, p)
            p += 4 * nd
            name = d[p:p + nl].decode()
            p += nl
            cnt = int(np.prod(ne))
            vpb, bpb = BLOCK[t]
            nbytes = cnt // vpb * bpb
            vals = dequantize(d[p:p + nbytes], t, cnt)
            p += nbytes
            self.tensors[name] = (t, tuple(reversed(ne)), vals.reshape(tuple(reversed(ne))))

    def __getitem__(self, name):
        return self.tensors[name][2]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--shape", default="tiny", choices=sorted(SHAPES))
    ap.add_argument("--type", default="f16", choices=sorted(TYPE_NAMES))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--vocab-from", help="take the token list from this ggml Whisper file")
    ap.add_argument("--n-audio-layer", type=int)
    ap.add_argument("--n-text-layer", type=int)
    a = ap.parse_args(argv)
    hp = dict(SHAPES[a.shape])
    if a.n_audio_layer:
        hp["n_audio_layer"] = a.n_audio_layer
    if a.n_text_layer:
        hp["n_text_layer"] = a.n_text_layer
    vocab = vocab_from_file(a.vocab_from) if a.vocab_from else None
    write(a.out, hp, TYPE_NAMES[a.type], a.seed, vocab)
    return 0


if __name__ == "__main__":
    sys.exit(main())
