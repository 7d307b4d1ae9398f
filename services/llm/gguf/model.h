/*
 * model.h - a transformer language model over a GGUF file: weight binding,
 * the forward pass, the KV cache and the worker team.
 *
 * Architectures: llama (Llama 2/3.x, SmolLM2, TinyLlama; RoPE "normal"),
 * qwen2 (q/k/v biases; RoPE neox), qwen3 (per-head q/k RMSNorm; neox),
 * gemma2 / gemma3 (norms after attention and FFN, GeGLU, sliding-window
 * local layers, softcapping) and phi3 (fused qkv and gate/up, LongRoPE).
 * All are pre-norm decoders with RMSNorm, RoPE (freq base, linear or YaRN scaling
 * and llama3 rope_freqs from the metadata), grouped-query attention with a
 * KV cache of halves (or floats: params.kv_f32), gated feed-forward, tied or
 * separate output weights.
 *
 * Weights stay in the mmap'd file (model_load binds pointers, checks every
 * shape and type, copies only the small norm/bias vectors). The KV cache is
 * an anonymous mapping of n_ctx positions: pages are only touched as the
 * context fills, so a large n_ctx costs address space, not RSS.
 *
 * The cache has params.n_slots independent slots of n_ctx positions each
 * (one per sequence being served). model_eval() runs tokens at positions
 * pos..pos+n-1 of slot 0, writing their K/V into the cache (positions >=
 * pos are overwritten, so rewinding is just evaluating from an earlier
 * pos), and returns logits. Prompts are run in batches of MODEL_BATCH
 * tokens (matrix-matrix products, each weight row reused across the
 * batch); decode is a batch of one.
 *
 * model_step() runs one forward pass over several sequences at once, each
 * in its own slot (continuous batching: a prefill chunk of one request next
 * to the decode tokens of others, MODEL_BATCH tokens in all). The matrix
 * products see one batch of rows; attention of each token reads only its
 * own slot, so sequences never see each other's tokens.
 *
 * Thread-safety: a model is used by one thread at a time (it owns the KV
 * cache and scratch); internally work is spread over params.n_threads.
 *
 *     model *m; char err[256];
 *     model_load("m.gguf", &(model_params){ .n_threads = 4 }, &m, err, sizeof err);
 *     model_eval(m, toks, n, 0, logits, false);   // logits of the last token
 *     model_free(m);
 */
#ifndef MODEL_H
#define MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

#define MODEL_BATCH     64          /* prompt tokens per forward batch */
#define MODEL_MAX_CTX   (1 << 20)
#define MODEL_MAX_EMBD  65536
#define MODEL_MAX_LAYER 512
#define MODEL_MAX_HEADS 1024
#define MODEL_MAX_HEAD_DIM 1024
#define MODEL_MAX_FF    (1 << 20)
#define MODEL_MAX_VOCAB (1 << 22)
#define MODEL_MAX_SLOTS 256

typedef enum model_arch {
	MODEL_LLAMA, MODEL_QWEN2, MODEL_QWEN3, MODEL_GEMMA2, MODEL_GEMMA3, MODEL_PHI3
} model_arch;

typedef struct model_params {
	int n_threads;      /* worker threads incl. the caller; <= 0 means 1 */
	int n_ctx;          /* context length (per slot); 0 = the model's */
	int n_slots;        /* KV cache slots (sequences at once); <= 0 means 1 */
	bool no_repack;     /* pack Q8_0 only: the other types stay as stored */
	bool kv_f32;        /* a float KV cache; else (default) IEEE halves, as
			     * llama.cpp's f16 cache: half the memory and reads */
} model_params;

typedef struct model_hparams {
	model_arch arch;
	char arch_name[16];
	int n_vocab;        /* rows of token_embd */
	int n_embd;
	int n_layer;
	int n_head;
	int n_head_kv;
	int head_dim;
	int n_ff;
	int n_ctx_train;    /* from the metadata */
	int n_ctx;          /* in use (KV cache positions) */
	float rms_eps;
	float rope_base;
	float rope_scale;   /* linear or YaRN scaling factor (1 = none) */
	bool rope_yarn;     /* rope.scaling.type "yarn" */
	int rope_yarn_orig_ctx;  /* YaRN: rope.scaling.original_context_length */
	float rope_mscale;  /* cos/sin magnitude: YaRN attn_factor * (1 + 0.1 ln factor),
			     * Phi-3 rope.scaling.attn_factor; else 1 */
	int rope_orig_ctx;  /* Phi-3 LongRoPE: its long factors past this context, else short */
	bool rope_neox;     /* rotate halves (neox) instead of pairs */
	float attn_scale;   /* of the scores: 1 / sqrt(head_dim) (Gemma's 27B: of n_embd / n_head) */
	/* Gemma 2 / 3 (llama.cpp's reading): embeddings times sqrt(n_embd),
	 * the tanh GELU as the gate, norms after attention and FFN */
	float attn_softcap; /* Gemma 2: scores c tanh(s / c); 0 = none */
	float final_softcap;/* logits likewise; 0 = none */
	int n_swa;          /* sliding window of the local layers (positions); 0 = none */
	int swa_pattern;    /* layer il is local when il % swa_pattern < swa_pattern - 1 */
	float rope_base_swa;/* Gemma 3: the local layers' rope base (unscaled); 0 = rope_base */
	bool tied_output;   /* output = token_embd */
	int weight_type;    /* ggml type of most weights, for display */
} model_hparams;

typedef struct model model;

/* Opens, checks and binds path. Caller owns *ret. On failure a message
 * naming the problem (tensor, key, shape) is in err. */
int model_load(const char *path, const model_params *p, model **ret, char *err,
	       size_t err_len);
void model_free(model *m);  /* accepts NULL */

const model_hparams *model_get_hparams(const model *m);
const gguf *model_get_gguf(const model *m);

/* Runs n tokens at positions pos..pos+n-1. ret_logits (may be NULL) gets
 * n_vocab floats for the last token, or n * n_vocab when all_logits.
 * -EINVAL for a bad token id, -E2BIG when pos + n > n_ctx. */
int model_eval(model *m, const int32_t *tokens, int n, int pos,
	       float *ret_logits, bool all_logits);

/* One sequence's share of a model_step: n tokens at positions
 * pos..pos+n-1 of KV slot `slot`. */
typedef struct model_seq {
	int slot;                   /* 0..n_slots-1, at most once a step */
	const int32_t *tokens;      /* (n) */
	int n;
	int pos;
	bool want_logits;           /* logits of its last token */
	bool decode;                /* n == 1 generated token (else prompt tokens) */
} model_seq;

/* Runs the sequences in one forward pass (sum of n <= MODEL_BATCH).
 * Batch-invariant: a token's kernel depends only on whether it is a prompt
 * or a generated token, never on its company, and every kernel computes a
 * token's result independently of the other tokens it serves. Q8_0, Q4_0,
 * Q5_0, IQ4_NL, Q4_1, Q5_1, Q3_K, Q4_K, Q5_K and Q6_K weights are packed
 * (model_warm) on CPUs with VNNI and every token takes the packed 8-row gemm (each weight block read once
 * for all tokens of a step; two groups at once for full 16-token runs, the
 * same bits); other types:
 * prompt tokens the 8-row gemm where the type has one, generated tokens and
 * logits rows the decode kernel (quant_mdot_fn: one row, up to 4 tokens a
 * pass) or the dot. So a sequence's logits are bit-identical alone or next
 * to others, however its prompt was chunked.
 * ret_logits (may be NULL) gets n_vocab floats per sequence that wants
 * logits, in order. -EINVAL for a bad slot, token, or a slot twice;
 * -E2BIG when a sequence passes n_ctx. */
int model_step(model *m, const model_seq *seqs, int n_seqs, float *ret_logits);
int model_n_slots(const model *m);
/* Bytes the KV cache can take (all slots full; pages are taken only as
 * contexts fill). */
size_t model_kv_bytes(const model *m);
/* Of a slot's n_hist cached positions, the first `prefix` are a new
 * sequence's: how many it can keep and continue after. All of them, unless
 * the local layers' rings (sliding-window layers keep their window and a
 * batch, not the whole context) have since overwritten part of the window
 * the next position reads: then 0. */
int model_reusable(const model *m, int n_hist, int prefix);

/* Packs the weights that have a packed gemm (see model_step; otherwise the
 * first model_eval / model_step does it) and touches every other weight
 * page, so the first request waits on neither. Seconds for a large model:
 * a daemon runs it after it has started answering /healthz. -ENOMEM when
 * the packed copies do not fit (every pass after that fails the same). */
int model_warm(model *m);

#endif
