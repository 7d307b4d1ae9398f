/*
 * wmodel.h - the Whisper network: encoder and decoder over a wfile.
 *
 * Encoder: conv1 (kernel 3, pad 1) + GELU, conv2 (kernel 3, stride 2,
 * pad 1) + GELU, sinusoidal positions (the file's encoder.positional_
 * embedding), pre-LN blocks (multi-head self-attention, GELU MLP), final
 * LN. Decoder: token embedding + learned positions, pre-LN blocks (causal
 * self-attention with a KV cache, cross-attention over the encoder output
 * whose K/V are computed once per utterance, GELU MLP), final LN, logits by
 * the token embedding. GELU is the exact (erf) one, LN eps 1e-5.
 *
 * Trimming: wstate_encode() runs the encoder over n_ctx positions (each
 * two mel frames); a 3 s clip needs 150 of the model's 1500, which makes
 * the encoder ~10x+ cheaper. Full 30 s windows pass n_audio_ctx.
 *
 * Weights: the matrices are used where the file maps them (quant.h's
 * kernels, the GGUF engine's, linked). The ggml format has no alignment
 * padding, so a tensor whose bytes are not at an address aligned for its
 * type (the kernels load 2- and 4-byte fields) is copied once into an
 * aligned buffer owned by the wmodel (wmodel_copied_bytes() says how
 * much). Every type wfile reads has kernels (F32, F16, Q4_0, Q4_1, Q5_0,
 * Q5_1, Q8_0); a type without one would be refused by name. Products of
 * F32/F16 weights with 8 or more activation rows (the encoder, a prompt)
 * run as register-blocked float gemms (kern/fgemm.h), encoder attention
 * per head as two gemms around a softmax; the decoder's cross-attention K
 * is kept transposed per head for the same.
 *
 * Ownership and threads: a wmodel is immutable after wmodel_new and shared
 * by any number of wstates (one per worker); it borrows the wfile, which
 * must outlive it. A wstate (activations, caches) serves one utterance at a
 * time and runs its math on the team it is given (a team serves one call
 * at a time). Its buffers are sized to the largest context it has encoded
 * (grown in steps of 128 positions, never shrunk) and to the rows of its
 * calls, so a decoder that only sees short utterances holds no full 30 s
 * buffers.
 *
 *     wmodel *m; wmodel_new(file, &m, err, sizeof err);
 *     wstate *s; wstate_new(m, team, &s);
 *     wstate_encode(s, mel, n_ctx); wstate_decode(s, toks, n, logits);
 */
#ifndef WMODEL_H
#define WMODEL_H

#include <stddef.h>
#include <stdint.h>

#include "kern/team.h"
#include "wfile.h"

typedef struct wmodel wmodel;
typedef struct wstate wstate;

int wmodel_new(const wfile *f, wmodel **ret, char *err, size_t err_len);
void wmodel_free(wmodel *m);   /* accepts NULL */
const wfile *wmodel_file(const wmodel *m);
size_t wmodel_copied_bytes(const wmodel *m);

/* Caller owns *ret; t may be NULL (single-threaded). 0 or -ENOMEM. */
int wstate_new(const wmodel *m, team *t, wstate **ret);
void wstate_free(wstate *s);   /* accepts NULL */

/* mel: (n_mels, 2 * n_ctx) as wmel_compute makes it; 1 <= n_ctx <=
 * n_audio_ctx. Runs the encoder and the decoder's cross K/V, and resets
 * the decoder. 0, -EINVAL, or -ENOMEM when its buffers could not grow
 * (then there is no encoder output until the next successful encode). */
int wstate_encode(wstate *s, const float *mel, int n_ctx);
/* The encoder output of the last wstate_encode: (n_ctx, n_state). */
const float *wstate_encoder_out(const wstate *s, int *ret_n_ctx);
/* Feeds n tokens at the next positions (after those fed since the last
 * encode) and writes the last one's n_vocab logits. 0, -EINVAL when the
 * text context (n_text_ctx) would overflow or an id is out of range, or
 * -ENOMEM when its buffers could not grow to n rows. */
int wstate_decode(wstate *s, const int32_t *tokens, int n, float *logits);
/* Forgets the decoded tokens (keeps the encoder output). */
void wstate_decode_reset(wstate *s);
int wstate_n_past(const wstate *s);

/* Snapshots of the decoder's state (its self-attention cache after the
 * tokens fed since the encode), for beam search: wstate_kv_bytes() is what
 * a snapshot of the current state takes (it grows with n_past); save
 * writes it to snap (caller-owned, that size, aligned as malloc's); load
 * makes it current again (same encode, same wstate or one of the same
 * wmodel). */
size_t wstate_kv_bytes(const wstate *s);
void wstate_kv_save(const wstate *s, void *snap);
void wstate_kv_load(wstate *s, const void *snap);

#endif
