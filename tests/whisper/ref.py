#!/usr/bin/python3
"""ref.py - an independent numpy Whisper (float64) for test_whisper_model.

    ref.py MODEL.bin AUDIO.f32 N_CTX OUTDIR TOKEN...

AUDIO.f32 is raw float32 16 kHz mono. Writes to OUTDIR (float32, raw):
  mel.f32     (n_mels, 2 * N_CTX)  log-mel as Whisper computes it (numpy's rfft)
  enc.f32     (N_CTX, n_state)     encoder output
  logits.f32  (len(TOKEN...), n_vocab)  decoder logits after each token,
              all in one causal pass (teacher forcing)
Weights are the file's, dequantised (mkwhisper.Model); activations are
never quantised here.
"""
import os
import sys

import numpy as np

sys.dont_write_bytecode = True  # nothing written into the tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mkwhisper  # noqa: E402

N_FFT, HOP = 400, 160


def log_mel(audio, filters, n_frames):
    """Whisper's log-mel: centred frames (reflect at the start, the audio
    padded with zeros after), periodic Hann, |rfft|^2, mel, log10, clamp
    to max - 8, (x + 4) / 4."""
    total = n_frames * HOP + N_FFT
    padded = np.zeros(total + N_FFT, dtype=np.float64)
    sig = np.zeros(total + N_FFT, dtype=np.float64)
    sig[:min(len(audio), len(sig))] = audio[:len(sig)]
    padded[N_FFT // 2:] = sig[:len(padded) - N_FFT // 2]
    padded[:N_FFT // 2] = sig[1:N_FFT // 2 + 1][::-1]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)
    frames = np.stack([padded[f * HOP:f * HOP + N_FFT] * window for f in range(n_frames)])
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2          # (n_frames, 201)
    mel = filters.astype(np.float64) @ power.T                 # (n_mels, n_frames)
    lg = np.log10(np.maximum(mel, 1e-10))
    lg = np.maximum(lg, lg.max() - 8.0)
    return (lg + 4.0) / 4.0


def gelu(x):
    from math import erf
    verf = np.vectorize(erf)
    return 0.5 * x * (1.0 + verf(x / np.sqrt(2.0)))


def ln(x, w, b):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * w + b


def conv1d(x, w, b, stride):
    """x (c_in, T), w (c_out, c_in, 3), padding 1 -> (c_out, T_out)."""
    c_in, T = x.shape
    xp = np.concatenate([np.zeros((c_in, 1)), x, np.zeros((c_in, 1))], axis=1)
    t_out = (T + 2 - 3) // stride + 1
    cols = np.stack([xp[:, t * stride:t * stride + 3].reshape(-1) for t in range(t_out)])
    return (cols @ w.reshape(w.shape[0], -1).T + b.reshape(-1)).T


def mha(x_q, x_kv, M, pfx, n_head, causal):
    q = x_q @ M[pfx + ".query.weight"].T + M[pfx + ".query.bias"]
    k = x_kv @ M[pfx + ".key.weight"].T
    v = x_kv @ M[pfx + ".value.weight"].T + M[pfx + ".value.bias"]
    d = q.shape[1] // n_head
    out = np.zeros_like(q)
    for h in range(n_head):
        sl = slice(h * d, (h + 1) * d)
        s = q[:, sl] @ k[:, sl].T / np.sqrt(d)
        if causal:
            s = s + np.triu(np.full(s.shape, -np.inf), 1)
        s = np.exp(s - s.max(axis=1, keepdims=True))
        out[:, sl] = (s / s.sum(axis=1, keepdims=True)) @ v[:, sl]
    return out @ M[pfx + ".out.weight"].T + M[pfx + ".out.bias"]


def mlp(x, M, pfx):
    h = ln(x, M[pfx + ".mlp_ln.weight"], M[pfx + ".mlp_ln.bias"])
    h = gelu(h @ M[pfx + ".mlp.0.weight"].T + M[pfx + ".mlp.0.bias"])
    return h @ M[pfx + ".mlp.2.weight"].T + M[pfx + ".mlp.2.bias"]


def encoder(M, hp, mel):
    x = gelu(conv1d(mel, M["encoder.conv1.weight"], M["encoder.conv1.bias"], 1))
    x = gelu(conv1d(x, M["encoder.conv2.weight"], M["encoder.conv2.bias"], 2)).T
    x = x + M["encoder.positional_embedding"][:x.shape[0]]
    for i in range(hp["n_audio_layer"]):
        p = "encoder.blocks.%d" % i
        h = ln(x, M[p + ".attn_ln.weight"], M[p + ".attn_ln.bias"])
        x = x + mha(h, h, M, p + ".attn", hp["n_audio_head"], False)
        x = x + mlp(x, M, p)
    return ln(x, M["encoder.ln_post.weight"], M["encoder.ln_post.bias"])


def decoder(M, hp, enc, tokens):
    x = M["decoder.token_embedding.weight"][tokens] + \
        M["decoder.positional_embedding"][:len(tokens)]
    for i in range(hp["n_text_layer"]):
        p = "decoder.blocks.%d" % i
        h = ln(x, M[p + ".attn_ln.weight"], M[p + ".attn_ln.bias"])
        x = x + mha(h, h, M, p + ".attn", hp["n_text_head"], True)
        h = ln(x, M[p + ".cross_attn_ln.weight"], M[p + ".cross_attn_ln.bias"])
        x = x + mha(h, enc, M, p + ".cross_attn", hp["n_text_head"], False)
        x = x + mlp(x, M, p)
    x = ln(x, M["decoder.ln.weight"], M["decoder.ln.bias"])
    return x @ M["decoder.token_embedding.weight"].T


class F64:
    """The model's tensors as float64 arrays."""

    def __init__(self, model):
        self.m = model

    def __getitem__(self, name):
        return self.m[name].astype(np.float64)


def main():
    path, audio_path, n_ctx, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    tokens = [int(t) for t in sys.argv[5:]]
    model = mkwhisper.Model(path)
    M, hp = F64(model), model.hp
    audio = np.fromfile(audio_path, dtype="<f4").astype(np.float64)
    mel = log_mel(audio, model.filters, 2 * n_ctx)
    enc = encoder(M, hp, mel)
    logits = decoder(M, hp, enc, tokens)
    os.makedirs(out, exist_ok=True)
    mel.astype("<f4").tofile(os.path.join(out, "mel.f32"))
    enc.astype("<f4").tofile(os.path.join(out, "enc.f32"))
    logits.astype("<f4").tofile(os.path.join(out, "logits.f32"))


if __name__ == "__main__":
    main()
