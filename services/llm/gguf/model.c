/*
 * model.c - hyperparameters, weight binding and the forward pass of the
 * llama/qwen2/qwen3 decoders (see model.h). Matrix products are spread
 * over the team by blocks of output rows; attention by (token, head).
 */
#include "model.h"

#include "kern/fgemm.h"
#include "kern/quant.h"
#include "kern/team.h"
#include "kern/vmath.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define MM_MAX_W 3          /* weights sharing one input in a fused product */
#define MM_TILE 16          /* tokens per tile in the batched product */
#define GEMM16_MIN_TOKENS 8  /* fewest tokens for the two-group packed gemm */
#define MM_GEMM8_MIN_B 4    /* tokens from which the 8-row gemm pays */
#define MODEL_ACT_SLOTS 4
#define KT_BLOCK 32         /* positions per transposed K block: 2 x FGEMM_NR */
/* activation slots: 0 Q8_0, 1 Q8_K, 2 Q8_0U (gemm8), 3 Q8_0S (packed) */
static const int act_slot_type[MODEL_ACT_SLOTS] = { QT_Q8_0, QT_Q8_K, QT_Q8_0U, QT_Q8_0S };

typedef struct weight {     /* a 2-D weight: n_out rows of n_in values */
	const uint8_t *data;
	int type;
	int n_in, n_out;
	size_t row_bytes;
	quant_dot_fn dot;
	quant_tile_fn tile;         /* NULL: no tile kernel for the type */
	quant_gemm8_fn gemm8;       /* NULL: no 8-row gemm for the type */
	quant_mdot_fn mdot;         /* NULL: decode tokens by dot, one at a time */
	/* packed rows (quant_pack8_fn) and their gemm, which then takes every
	 * token (prompt and decode alike); NULL: not packed */
	uint8_t *packed;            /* (n_out / 8) groups of pack_bytes, owned (mmap) */
	size_t pack_bytes, packed_len;
	quant_gemm8_fn gemmp;
	quant_gemm8_fn gemmp16;     /* two groups at once (512-bit VNNI), or NULL */
} weight;

typedef struct layer {
	float *attn_norm;           /* (n_embd) */
	weight wq, wk, wv, wo;      /* (q_dim, n_embd) (kv_dim, n_embd) x2 (n_embd, q_dim) */
	float *bq, *bk, *bv;        /* qwen2 biases or NULL */
	float *q_norm, *k_norm;     /* qwen3: (head_dim) or NULL */
	float *ffn_norm;            /* (n_embd) */
	weight gate, up, down;      /* (n_ff, n_embd) x2, (n_embd, n_ff) */
	float *post_attn_norm, *post_ffn_norm;   /* Gemma: (n_embd) or NULL */
	bool swa;                   /* attends to the last n_swa positions only */
	/* its KV cache: positions held per slot (ctx_pad, or a local layer's
	 * ring: position p at p % kv_cap) and where it starts (in values) */
	int kv_cap;
	size_t kv_base;
} layer;

struct model {
	model_hparams hp;
	gguf *g;
	team *team;
	layer *layers;
	weight tok_embd, output;
	float *output_norm;         /* (n_embd) */
	float *rope_freqs;          /* (head_dim/2) llama3 frequency factors or NULL */
	float *rope_long, *rope_short;  /* Phi-3 LongRoPE's (head_dim/2), or NULL */
	float *inv_freq;            /* (head_dim/2) */
	float *inv_freq_swa;        /* Gemma 3's local layers' (head_dim/2), or NULL */
	/* KV cache, anonymous mappings, a layer after another (layer.kv_base):
	 * V (n_slots, kv_cap, kv_dim); K (n_slots, n_head_kv, kv_cap / KT_BLOCK,
	 * head_dim, KT_BLOCK), each block of positions transposed, a head's
	 * scores one float product (see att_task). kv_cap is ctx_pad (n_ctx
	 * rounded up to KT_BLOCK), or for a local layer a ring of its window
	 * and a batch (swa_ring), when that is less;
	 * values as IEEE halves (kv_half, the default, as llama.cpp's) or
	 * floats, kv_es bytes each */
	void *k_cache, *v_cache;
	size_t kv_bytes, kv_es;     /* kv_bytes: each of the two mappings */
	bool kv_half;
	int n_slots;
	/* the batch being run: KV slot and position of each token */
	int tok_slot[MODEL_BATCH], tok_pos[MODEL_BATCH];
	int out_rows[MODEL_BATCH];  /* tokens whose logits are wanted */
	/* model_step: the first n_gemm tokens (prompt tokens) take the 8-row
	 * gemm and the rest (generated tokens) the decode kernel (mdot, one
	 * weight pass for all of them), whatever else is in the batch, so a
	 * sequence's results do not depend on its company; -1: model_eval's
	 * choice by batch size */
	int n_gemm;
	/* scratch for a batch of up to MODEL_BATCH tokens */
	float *x, *xb, *q, *k, *v, *att, *hg, *hu;
	uint8_t *act;               /* quantised activations */
	size_t act_row;             /* bytes per token row in act */
	float *scores;              /* (n_threads, heads per KV head, ctx_pad) */
	int ctx_pad;                /* n_ctx rounded up to KT_BLOCK */
	int swa_ring;               /* the local layers' kv_cap when a ring, else 0 */
	float *cs;                  /* (MODEL_BATCH, head_dim) cos/sin pairs */
	float *cs_swa;              /* the same from inv_freq_swa, or NULL */
	uint8_t *emb_row;           /* one tok_embd row rebuilt from the packed output */
	bool no_repack;             /* model_params.no_repack, for pack_weights */
	int packed_rc;              /* 0 not yet packed, 1 packed, < 0 -errno */
	int n_threads;
};

__attribute__((format(printf, 3, 4)))
static int fail(char *err, size_t len, const char *fmt, ...)
{
	if (err && len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, len, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* ---- loading ---- */

typedef struct loader {
	model *m;
	char *err;
	size_t err_len;
} loader;

static int get_int(loader *L, const char *suffix, int def, int lo, int hi, int *ret)
{
	char key[128];
	snprintf(key, sizeof(key), "%s.%s", L->m->hp.arch_name, suffix);
	int64_t v;
	int rc = gguf_get_i64(L->m->g, key, &v);
	if (rc == -ENOENT && def >= 0) {
		*ret = def;
		return 0;
	}
	if (rc == -ENOENT)
		return fail(L->err, L->err_len, "missing metadata %s", key);
	if (rc < 0 || v < lo || v > hi)
		return fail(L->err, L->err_len, "metadata %s out of range [%d, %d]", key, lo, hi);
	*ret = (int)v;
	return 0;
}

static float get_float(loader *L, const char *suffix, float def)
{
	char key[128];
	float v;
	snprintf(key, sizeof(key), "%s.%s", L->m->hp.arch_name, suffix);
	return gguf_get_f32(L->m->g, key, &v) == 0 && isfinite(v) ? v : def;
}

static bool is_gemma(const model_hparams *hp)
{
	return hp->arch == MODEL_GEMMA2 || hp->arch == MODEL_GEMMA3;
}

/* Gemma 2 / 3's keys, with llama.cpp's defaults and fixed choices: local
 * (sliding-window) layers every other one (Gemma 2) or five of six (Gemma
 * 3), Gemma 3's local layers rotated with base 10000, unscaled; the 27B
 * models (46, 62 layers) scale scores by n_embd / n_head, not head_dim. */
static int read_gemma(loader *L)
{
	model_hparams *hp = &L->m->hp;
	bool g2 = hp->arch == MODEL_GEMMA2;
	int rc = get_int(L, "attention.sliding_window", g2 ? 4096 : 0, 0, MODEL_MAX_CTX, &hp->n_swa);
	if (rc < 0)
		return rc;
	hp->swa_pattern = g2 ? 2 : 6;
	hp->rope_base_swa = g2 ? 0 : 10000.0f;
	hp->attn_softcap = g2 ? get_float(L, "attn_logit_softcapping", 50.0f) : 0;
	hp->final_softcap = get_float(L, "final_logit_softcapping", g2 ? 30.0f : 0);
	if (hp->n_layer == (g2 ? 46 : 62))
		hp->attn_scale = 1.0f / sqrtf((float)(hp->n_embd / hp->n_head));
	if (!(hp->attn_softcap >= 0) || !(hp->final_softcap >= 0))
		return fail(L->err, L->err_len, "bad logit softcapping");
	return 0;
}

static int read_hparams(loader *L)
{
	model_hparams *hp = &L->m->hp;
	gguf_str a;
	if (gguf_get_str(L->m->g, "general.architecture", &a) < 0)
		return fail(L->err, L->err_len, "missing general.architecture");
	if (a.len == 5 && !memcmp(a.ptr, "llama", 5))
		hp->arch = MODEL_LLAMA;
	else if (a.len == 5 && !memcmp(a.ptr, "qwen2", 5))
		hp->arch = MODEL_QWEN2;
	else if (a.len == 5 && !memcmp(a.ptr, "qwen3", 5))
		hp->arch = MODEL_QWEN3;
	else if (a.len == 6 && !memcmp(a.ptr, "gemma2", 6))
		hp->arch = MODEL_GEMMA2;
	else if (a.len == 6 && !memcmp(a.ptr, "gemma3", 6))
		hp->arch = MODEL_GEMMA3;
	else if (a.len == 4 && !memcmp(a.ptr, "phi3", 4))
		hp->arch = MODEL_PHI3;
	else
		return fail(L->err, L->err_len, "unsupported architecture '%.*s' (llama, qwen2, qwen3, "
			    "gemma2, gemma3, phi3 are)", (int)(a.len > 32 ? 32 : a.len), a.ptr);
	memcpy(hp->arch_name, a.ptr, a.len);
	hp->arch_name[a.len] = 0;
	hp->rope_neox = hp->arch != MODEL_LLAMA;
	int rc, rope_dim;
	if ((rc = get_int(L, "embedding_length", -1, 1, MODEL_MAX_EMBD, &hp->n_embd)) < 0 ||
	    (rc = get_int(L, "block_count", -1, 1, MODEL_MAX_LAYER, &hp->n_layer)) < 0 ||
	    (rc = get_int(L, "feed_forward_length", -1, 1, MODEL_MAX_FF, &hp->n_ff)) < 0 ||
	    (rc = get_int(L, "attention.head_count", -1, 1, MODEL_MAX_HEADS, &hp->n_head)) < 0 ||
	    (rc = get_int(L, "attention.head_count_kv", hp->n_head, 1, hp->n_head, &hp->n_head_kv)) < 0 ||
	    (rc = get_int(L, "context_length", 2048, 1, MODEL_MAX_CTX, &hp->n_ctx_train)) < 0 ||
	    (rc = get_int(L, "attention.key_length", hp->n_embd / hp->n_head, 2,
			  MODEL_MAX_HEAD_DIM, &hp->head_dim)) < 0)
		return rc;
	int vlen;
	if ((rc = get_int(L, "attention.value_length", hp->head_dim, 1, MODEL_MAX_HEAD_DIM, &vlen)) < 0 ||
	    (rc = get_int(L, "rope.dimension_count", hp->head_dim, 1, MODEL_MAX_HEAD_DIM, &rope_dim)) < 0)
		return rc;
	if (hp->head_dim % 2 || vlen != hp->head_dim || rope_dim != hp->head_dim)
		return fail(L->err, L->err_len, "unsupported head shape: key %d, value %d, rope %d",
			    hp->head_dim, vlen, rope_dim);
	if (hp->n_head % hp->n_head_kv)
		return fail(L->err, L->err_len, "head_count %d not a multiple of head_count_kv %d",
			    hp->n_head, hp->n_head_kv);
	hp->rms_eps = get_float(L, "attention.layer_norm_rms_epsilon", 1e-5f);
	hp->rope_base = get_float(L, "rope.freq_base", 10000.0f);
	hp->rope_scale = 1.0f;
	hp->rope_mscale = 1.0f;
	char key[128];
	gguf_str st;
	snprintf(key, sizeof(key), "%s.rope.scaling.type", hp->arch_name);
	if (gguf_get_str(L->m->g, key, &st) == 0) {
		if (st.len == 6 && !memcmp(st.ptr, "linear", 6))
			hp->rope_scale = get_float(L, "rope.scaling.factor", 1.0f);
		if (st.len == 4 && !memcmp(st.ptr, "yarn", 4)) {   /* as llama.cpp's defaults */
			hp->rope_yarn = true;
			hp->rope_scale = get_float(L, "rope.scaling.factor", 1.0f);
			hp->rope_yarn_orig_ctx = (int)get_float(L, "rope.scaling.original_context_length",
								(float)hp->n_ctx_train);
			hp->rope_mscale = get_float(L, "rope.scaling.attn_factor", 1.0f) *
					  (1.0f + 0.1f * logf(hp->rope_scale));
			if (!(hp->rope_yarn_orig_ctx > 0) || !(hp->rope_scale >= 1.0f))
				return fail(L->err, L->err_len, "bad YaRN original context / factor");
		}
	} else {   /* files from before rope.scaling.*: rope.scale_linear */
		hp->rope_scale = get_float(L, "rope.scale_linear", 1.0f);
	}
	if (!(hp->rms_eps > 0) || !(hp->rope_base > 0) || !(hp->rope_scale > 0))
		return fail(L->err, L->err_len, "bad rms epsilon / rope base / rope scale");
	hp->attn_scale = 1.0f / sqrtf((float)hp->head_dim);
	if (hp->arch == MODEL_PHI3) {   /* LongRoPE (llama.cpp: no sliding window) */
		hp->rope_mscale = get_float(L, "rope.scaling.attn_factor", 1.0f);
		hp->rope_orig_ctx = (int)get_float(L, "rope.scaling.original_context_length",
						   (float)hp->n_ctx_train);
		if (!(hp->rope_mscale > 0))
			return fail(L->err, L->err_len, "bad rope attn_factor");
	}
	return is_gemma(hp) ? read_gemma(L) : 0;
}

static const gguf_tensor *find(loader *L, const char *name, int il, bool required)
{
	char full[96];
	if (il >= 0)
		snprintf(full, sizeof(full), "blk.%d.%s", il, name);
	else
		snprintf(full, sizeof(full), "%s", name);
	const gguf_tensor *t = gguf_find_tensor(L->m->g, full);
	if (!t && required)
		fail(L->err, L->err_len, "missing tensor %s", full);
	return t;
}

static int bind_weight(loader *L, const char *name, int il, int n_in, int n_out, weight *w)
{
	const gguf_tensor *t = find(L, name, il, true);
	if (!t)
		return -EINVAL;
	if (t->n_dims != 2 || t->ne[0] != n_in || t->ne[1] != n_out)
		return fail(L->err, L->err_len, "tensor %s: shape [%lld, %lld], want [%d, %d]",
			    t->name, (long long)t->ne[0], (long long)t->ne[1], n_in, n_out);
	w->data = t->data;
	w->type = (int)t->type;
	w->n_in = n_in;
	w->n_out = n_out;
	w->row_bytes = quant_row_bytes(w->type, n_in);
	w->dot = quant_dot_get(w->type, QUANT_IMPL_BEST);
	w->tile = quant_tile_get(w->type, QUANT_IMPL_BEST);
	w->gemm8 = quant_gemm8_get(w->type);
	w->mdot = quant_mdot_get(w->type);
	if (!w->dot)
		return fail(L->err, L->err_len, "tensor %s: no kernel for type %s", t->name,
			    quant_type_name(w->type));
	/* activations are quantised in whole blocks of their vec type */
	if (n_in % quant_block_elems(quant_vec_type(w->type)))
		return fail(L->err, L->err_len, "tensor %s: rows of %d do not fit %s blocks",
			    t->name, n_in, quant_type_name(quant_vec_type(w->type)));
	return 0;
}

/* A 1-D tensor of n values (any float/quant type), copied to floats.
 * Absent optional ones give NULL and 0. */
static int bind_vec(loader *L, const char *name, int il, int n, bool required, float **ret)
{
	const gguf_tensor *t = find(L, name, il, required);
	if (!t)
		return required ? -EINVAL : 0;
	if (t->n_elems != n)
		return fail(L->err, L->err_len, "tensor %s: %lld values, want %d", t->name,
			    (long long)t->n_elems, n);
	if (!(*ret = malloc((size_t)n * sizeof(float))))
		return -ENOMEM;
	quant_dequantize_row((int)t->type, t->data, *ret, n);
	return 0;
}

/* Rows [r0, r0 + n) of the (n_out, n_in) tensor name as a weight of their
 * own: one part of Phi-3's fused attn_qkv or ffn_up (gate, then up). */
static int bind_rows(loader *L, const char *name, int il, int n_in, int n_out, int r0, int n,
		     weight *w)
{
	int rc = bind_weight(L, name, il, n_in, n_out, w);
	if (rc < 0)
		return rc;
	w->data += (size_t)r0 * w->row_bytes;
	w->n_out = n;
	return 0;
}

static int bind_layer(loader *L, int il)
{
	const model_hparams *hp = &L->m->hp;
	layer *ly = &L->m->layers[il];
	int qd = hp->n_head * hp->head_dim, kvd = hp->n_head_kv * hp->head_dim, rc;
	int E = hp->n_embd, F = hp->n_ff;
	if (find(L, "attn_qkv.weight", il, false)) {
		if ((rc = bind_rows(L, "attn_qkv.weight", il, E, qd + 2 * kvd, 0, qd, &ly->wq)) < 0 ||
		    (rc = bind_rows(L, "attn_qkv.weight", il, E, qd + 2 * kvd, qd, kvd, &ly->wk)) < 0 ||
		    (rc = bind_rows(L, "attn_qkv.weight", il, E, qd + 2 * kvd, qd + kvd, kvd,
				    &ly->wv)) < 0)
			return rc;
	} else if ((rc = bind_weight(L, "attn_q.weight", il, E, qd, &ly->wq)) < 0 ||
		   (rc = bind_weight(L, "attn_k.weight", il, E, kvd, &ly->wk)) < 0 ||
		   (rc = bind_weight(L, "attn_v.weight", il, E, kvd, &ly->wv)) < 0) {
		return rc;
	}
	if (hp->arch == MODEL_PHI3 && !find(L, "ffn_gate.weight", il, false)) {
		if ((rc = bind_rows(L, "ffn_up.weight", il, E, 2 * F, 0, F, &ly->gate)) < 0 ||
		    (rc = bind_rows(L, "ffn_up.weight", il, E, 2 * F, F, F, &ly->up)) < 0)
			return rc;
	} else if ((rc = bind_weight(L, "ffn_gate.weight", il, E, F, &ly->gate)) < 0 ||
		   (rc = bind_weight(L, "ffn_up.weight", il, E, F, &ly->up)) < 0) {
		return rc;
	}
	if ((rc = bind_vec(L, "attn_norm.weight", il, E, true, &ly->attn_norm)) < 0 ||
	    (rc = bind_weight(L, "attn_output.weight", il, qd, E, &ly->wo)) < 0 ||
	    (rc = bind_vec(L, "ffn_norm.weight", il, E, true, &ly->ffn_norm)) < 0 ||
	    (rc = bind_weight(L, "ffn_down.weight", il, F, E, &ly->down)) < 0)
		return rc;
	bool qwen2 = hp->arch == MODEL_QWEN2, gemma = is_gemma(hp);
	bool qk_norm = hp->arch == MODEL_QWEN3 || hp->arch == MODEL_GEMMA3;
	if ((rc = bind_vec(L, "attn_q.bias", il, qd, qwen2, &ly->bq)) < 0 ||
	    (rc = bind_vec(L, "attn_k.bias", il, kvd, qwen2, &ly->bk)) < 0 ||
	    (rc = bind_vec(L, "attn_v.bias", il, kvd, qwen2, &ly->bv)) < 0 ||
	    (rc = bind_vec(L, "attn_q_norm.weight", il, hp->head_dim, qk_norm, &ly->q_norm)) < 0 ||
	    (rc = bind_vec(L, "attn_k_norm.weight", il, hp->head_dim, qk_norm, &ly->k_norm)) < 0 ||
	    (rc = bind_vec(L, "post_attention_norm.weight", il, hp->n_embd, gemma,
			   &ly->post_attn_norm)) < 0 ||
	    (rc = bind_vec(L, "post_ffw_norm.weight", il, hp->n_embd, gemma, &ly->post_ffn_norm)) < 0)
		return rc;
	ly->swa = hp->n_swa > 0 && il % hp->swa_pattern < hp->swa_pattern - 1;
	return 0;
}

static int bind_all(loader *L)
{
	model *m = L->m;
	model_hparams *hp = &m->hp;
	const gguf_tensor *te = find(L, "token_embd.weight", -1, true);
	if (!te)
		return -EINVAL;
	if (te->n_dims != 2 || te->ne[1] > MODEL_MAX_VOCAB)
		return fail(L->err, L->err_len, "tensor token_embd.weight: bad shape");
	hp->n_vocab = (int)te->ne[1];
	int rc = bind_weight(L, "token_embd.weight", -1, hp->n_embd, hp->n_vocab, &m->tok_embd);
	if (rc < 0)
		return rc;
	hp->weight_type = m->tok_embd.type;
	hp->tied_output = !find(L, "output.weight", -1, false);
	if (hp->tied_output)
		m->output = m->tok_embd;
	else if ((rc = bind_weight(L, "output.weight", -1, hp->n_embd, hp->n_vocab, &m->output)) < 0)
		return rc;
	if ((rc = bind_vec(L, "output_norm.weight", -1, hp->n_embd, true, &m->output_norm)) < 0 ||
	    (rc = bind_vec(L, "rope_freqs.weight", -1, hp->head_dim / 2, false, &m->rope_freqs)) < 0 ||
	    (rc = bind_vec(L, "rope_factors_long.weight", -1, hp->head_dim / 2, false,
			   &m->rope_long)) < 0 ||
	    (rc = bind_vec(L, "rope_factors_short.weight", -1, hp->head_dim / 2, false,
			   &m->rope_short)) < 0)
		return rc;
	if (!(m->layers = calloc((size_t)hp->n_layer, sizeof(layer))))
		return -ENOMEM;
	for (int il = 0; il < hp->n_layer; il++)
		if ((rc = bind_layer(L, il)) < 0)
			return rc;
	hp->weight_type = m->layers[0].wq.type;
	return 0;
}

static int alloc_state(model *m)
{
	const model_hparams *hp = &m->hp;
	size_t B = MODEL_BATCH, qd = (size_t)hp->n_head * hp->head_dim;
	size_t kvd = (size_t)hp->n_head_kv * hp->head_dim;
	m->ctx_pad = (hp->n_ctx + KT_BLOCK - 1) / KT_BLOCK * KT_BLOCK;
	/* a local layer keeps the positions its window and a batch's chunk
	 * can reach: a chunk's keys are stored before its first token looks
	 * n_swa - 1 back, so the ring must not wrap within them */
	int ring = (hp->n_swa + MODEL_BATCH + KT_BLOCK - 1) / KT_BLOCK * KT_BLOCK;
	m->swa_ring = hp->n_swa > 0 && ring < m->ctx_pad ? ring : 0;
	size_t values = 0;
	for (int il = 0; il < hp->n_layer; il++) {
		layer *ly = &m->layers[il];
		ly->kv_cap = ly->swa && m->swa_ring ? m->swa_ring : m->ctx_pad;
		ly->kv_base = values;
		values += (size_t)m->n_slots * ly->kv_cap * kvd;
	}
	m->kv_bytes = values * m->kv_es;
	m->k_cache = mmap(NULL, m->kv_bytes, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m->k_cache == MAP_FAILED) {
		m->k_cache = NULL;
		return -ENOMEM;
	}
	m->v_cache = mmap(NULL, m->kv_bytes, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m->v_cache == MAP_FAILED) {
		m->v_cache = NULL;
		return -ENOMEM;
	}
	size_t widest = (size_t)hp->n_embd;
	if (qd > widest)
		widest = qd;
	if ((size_t)hp->n_ff > widest)
		widest = (size_t)hp->n_ff;
	/* enough for a row of any activation type (Q8_0, Q8_K, Q8_0U, Q8_0S) */
	size_t wk = (widest + QK_K - 1) / QK_K * QK_K;
	m->act_row = 0;
	for (int t = 0; t < MODEL_ACT_SLOTS; t++) {
		size_t rb = quant_row_bytes(act_slot_type[t], (int64_t)wk);
		m->act_row = rb > m->act_row ? rb : m->act_row;
	}
	m->x = malloc(B * hp->n_embd * sizeof(float));
	m->xb = malloc(B * widest * sizeof(float));
	m->q = malloc(B * qd * sizeof(float));
	m->k = malloc(B * kvd * sizeof(float));
	m->v = malloc(B * kvd * sizeof(float));
	m->att = malloc(B * qd * sizeof(float));
	m->hg = malloc(B * hp->n_ff * sizeof(float));
	m->hu = malloc(B * hp->n_ff * sizeof(float));
	m->act = malloc(MODEL_ACT_SLOTS * B * m->act_row);
	m->scores = malloc((size_t)m->n_threads * (hp->n_head / hp->n_head_kv) * m->ctx_pad *
			   sizeof(float));
	m->cs = malloc(B * hp->head_dim * sizeof(float));
	m->inv_freq = malloc(hp->head_dim / 2 * sizeof(float));
	if (!m->x || !m->xb || !m->q || !m->k || !m->v || !m->att || !m->hg || !m->hu ||
	    !m->act || !m->scores || !m->cs || !m->inv_freq)
		return -ENOMEM;
	if (hp->rope_base_swa > 0) {   /* Gemma 3's local layers: plain, unscaled */
		m->cs_swa = malloc(B * hp->head_dim * sizeof(float));
		m->inv_freq_swa = malloc(hp->head_dim / 2 * sizeof(float));
		if (!m->cs_swa || !m->inv_freq_swa)
			return -ENOMEM;
		for (int i = 0; i < hp->head_dim / 2; i++)
			m->inv_freq_swa[i] = powf(hp->rope_base_swa, -2.0f * i / hp->head_dim);
	}
	/* YaRN (llama.cpp's ggml_rope_yarn_corr_dims, beta_fast 32, beta_slow 1,
	 * ext_factor 1): dims below lo keep their frequency (extrapolate), dims
	 * above hi are interpolated by 1/factor, a linear ramp between */
	float lo = 0, hi = 0, d = (float)hp->head_dim;
	if (hp->rope_yarn) {
		float two_pi = 2.0f * 3.14159265358979f, lb = 2.0f * logf(hp->rope_base);
		lo = floorf(d * logf((float)hp->rope_yarn_orig_ctx / (32.0f * two_pi)) / lb);
		hi = ceilf(d * logf((float)hp->rope_yarn_orig_ctx / (1.0f * two_pi)) / lb);
		lo = lo > 0 ? lo : 0;
		hi = hi < d - 1 ? hi : d - 1;
	}
	/* frequency factors: llama3's, or Phi-3's long ones past its original
	 * context and its short ones within it (llama.cpp's choice) */
	const float *factors = m->rope_freqs;
	if (!factors)
		factors = hp->n_ctx > hp->rope_orig_ctx && m->rope_long ? m->rope_long : m->rope_short;
	for (int i = 0; i < hp->head_dim / 2; i++) {
		float f = powf(hp->rope_base, -2.0f * i / hp->head_dim) / hp->rope_scale;
		if (hp->rope_yarn) {
			float y = ((float)i - lo) / (hi - lo > 0.001f ? hi - lo : 0.001f);
			float mix = 1.0f - (y < 0 ? 0 : y > 1 ? 1 : y);
			f = f * (1.0f - mix) + f * hp->rope_scale * mix;
		}
		if (factors)
			f /= factors[i];
		m->inv_freq[i] = f;
	}
	return 0;
}

/* Weight i of the n_layer * 7 + 1 that products use (the output last). */
static weight *nth_weight(model *m, int i)
{
	if (i == m->hp.n_layer * 7)
		return &m->output;
	layer *ly = &m->layers[i / 7];
	weight *ws[7] = { &ly->wq, &ly->wk, &ly->wv, &ly->wo, &ly->gate, &ly->up, &ly->down };
	return ws[i % 7];
}

typedef struct pack_job {
	weight *w;
	quant_pack8_fn pack;
} pack_job;

static void pack_task(void *arg, int g, int thread)
{
	(void)thread;
	const pack_job *pj = arg;
	const weight *w = pj->w;
	pj->pack(w->n_in, w->data + (size_t)g * 8 * w->row_bytes, w->row_bytes,
		 w->packed + (size_t)g * w->pack_bytes);
}

/* Copies the weights that have a packed gemm into its layout (rows in
 * groups of 8) and gives their file pages back (a tied output's too: the
 * embeddings are then read from the packed copy, where it holds Q8_0
 * values). Q4_0, Q5_0 and IQ4_NL go into Q8_0's layout as 4-bit codes,
 * Q4_1, Q5_1, Q4_K and Q5_K as codes with their scales and mins, Q6_K and
 * Q3_K as codes (Q6_K with its high bits apart) with their 16-value
 * scales, IQ4_XS as codes with float scales (unless no_repack): the
 * file's bytes (Q8_0, Q4_0, Q5_0, IQ4_NL, Q4_1, Q5_1) or 1.15-1.6x them
 * (the K types, IQ4_XS), for kernels that take every token of a batch with
 * the weights in registers (Q4_K_M files are mostly Q5_0, Q5_K_M ones
 * Q5_1). */
static int pack_weights(model *m, bool no_repack)
{
	for (int i = 0; i <= m->hp.n_layer * 7; i++) {
		weight *w = nth_weight(m, i);
		if (no_repack && w->type != QT_Q8_0)
			continue;
		quant_pack8_fn pack = NULL;
		quant_gemm8_fn gp = quant_gemm8_packed_get(w->type, &pack);
		size_t gb = quant_pack8_bytes(w->type, w->n_in);
		if (!gp || !pack || !gb || w->n_out % 8)
			continue;
		/* one populated mapping: page faults one by one trap to the
		 * hypervisor here (4 s of a 0.5B model's load) */
		size_t total = gb * (size_t)(w->n_out / 8);
		void *p = mmap(NULL, total, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (p == MAP_FAILED)
			return -ENOMEM;
		w->packed = p;
		w->packed_len = total;
		madvise((void *)((uintptr_t)w->data & ~(uintptr_t)4095),
			w->row_bytes * (size_t)w->n_out + 4096, MADV_WILLNEED);
		w->pack_bytes = gb;
		w->gemmp = gp;
		w->gemmp16 = quant_gemm16_packed_get(w->type);
		pack_job pj = { w, pack };
		team_run(m->team, pack_task, &pj, w->n_out / 8);
		/* tied output: embeddings are then rebuilt from the packed rows
		 * (as Q8_0); Q4_1 / Q5_1 rows cannot be, so they stay mapped */
		if (w->data == m->tok_embd.data) {
			if (!quant_pack8_as_q8_0(w->type))
				continue;
			if (!(m->emb_row = malloc(quant_row_bytes(QT_Q8_0, w->n_in))))
				return -ENOMEM;
		}
		uintptr_t lo = ((uintptr_t)w->data + 4095) & ~(uintptr_t)4095;
		uintptr_t hi = ((uintptr_t)w->data + w->row_bytes * (size_t)w->n_out) &
			       ~(uintptr_t)4095;
		if (hi > lo)
			madvise((void *)lo, hi - lo, MADV_DONTNEED);
	}
	return 0;
}

int model_load(const char *path, const model_params *p, model **ret, char *err,
	       size_t err_len)
{
	model *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->n_threads = p && p->n_threads > 0 ? p->n_threads : 1;
	if (m->n_threads > TEAM_MAX_THREADS)
		m->n_threads = TEAM_MAX_THREADS;
	m->n_slots = p && p->n_slots > 0 ? p->n_slots : 1;
	if (m->n_slots > MODEL_MAX_SLOTS)
		m->n_slots = MODEL_MAX_SLOTS;
	m->kv_half = !(p && p->kv_f32);
	m->kv_es = m->kv_half ? sizeof(uint16_t) : sizeof(float);
	loader L = { .m = m, .err = err, .err_len = err_len };
	int rc = gguf_open(path, &m->g, err, err_len);
	if (rc < 0)
		goto out_free_model;
	if ((rc = read_hparams(&L)) < 0 || (rc = bind_all(&L)) < 0)
		goto out_free_model;
	m->hp.n_ctx = p && p->n_ctx > 0 ? p->n_ctx : m->hp.n_ctx_train;
	if (m->hp.n_ctx > MODEL_MAX_CTX) {
		rc = fail(err, err_len, "context %d exceeds limit %d", m->hp.n_ctx, MODEL_MAX_CTX);
		goto out_free_model;
	}
	if ((rc = alloc_state(m)) < 0) {
		fail(err, err_len, "out of memory for a %d-token context", m->hp.n_ctx);
		goto out_free_model;
	}
	if ((rc = team_new(m->n_threads, &m->team)) < 0) {
		fail(err, err_len, "cannot start %d threads", m->n_threads);
		goto out_free_model;
	}
	m->no_repack = p && p->no_repack;
	*ret = m;
	return 0;
out_free_model:
	model_free(m);
	return rc;
}

void model_free(model *m)
{
	if (!m)
		return;
	team_free(m->team);
	if (m->layers)
		for (int il = 0; il < m->hp.n_layer; il++) {
			layer *ly = &m->layers[il];
			free(ly->attn_norm); free(ly->ffn_norm);
			free(ly->bq); free(ly->bk); free(ly->bv);
			free(ly->q_norm); free(ly->k_norm);
			free(ly->post_attn_norm); free(ly->post_ffn_norm);
		}
	if (m->layers)
		for (int i = 0; i <= m->hp.n_layer * 7; i++)
			if (nth_weight(m, i)->packed)
				munmap(nth_weight(m, i)->packed, nth_weight(m, i)->packed_len);
	free(m->layers);
	free(m->output_norm); free(m->rope_freqs); free(m->inv_freq); free(m->inv_freq_swa);
	free(m->rope_long); free(m->rope_short);
	if (m->k_cache)
		munmap(m->k_cache, m->kv_bytes);
	if (m->v_cache)
		munmap(m->v_cache, m->kv_bytes);
	free(m->x); free(m->xb); free(m->q); free(m->k); free(m->v); free(m->att);
	free(m->hg); free(m->hu); free(m->act); free(m->scores); free(m->cs); free(m->cs_swa);
	free(m->emb_row);
	gguf_close(m->g);
	free(m);
}

const model_hparams *model_get_hparams(const model *m) { return &m->hp; }
size_t model_kv_bytes(const model *m)
{
	return 2 * m->kv_bytes;
}

int model_reusable(const model *m, int n_hist, int prefix)
{
	int r = m->swa_ring;
	/* positions below n_hist - r are gone from the rings; the next
	 * position's window starts at prefix + 1 - n_swa */
	if (!r || n_hist <= r || prefix + 1 - m->hp.n_swa >= n_hist - r)
		return prefix;
	return 0;
}

int model_n_slots(const model *m) { return m->n_slots; }
const gguf *model_get_gguf(const model *m) { return m->g; }

static bool is_packed_data(model *m, const uint8_t *d)
{
	for (int i = 0; i <= m->hp.n_layer * 7; i++)
		if (nth_weight(m, i)->packed && nth_weight(m, i)->data == d)
			return true;
	return false;
}

/* Packs once, before the first forward pass (so a daemon can answer
 * "loading" while it runs); every pass after a failure gets its error. */
static int ensure_packed(model *m)
{
	if (m->packed_rc == 0) {
		int rc = pack_weights(m, m->no_repack);
		m->packed_rc = rc < 0 ? rc : 1;
	}
	return m->packed_rc < 0 ? m->packed_rc : 0;
}

int model_warm(model *m)
{
	int rc = ensure_packed(m);
	if (rc < 0)
		return rc;
	volatile uint8_t sink = 0;
	for (size_t i = 0; i < m->g->n_tensors; i++) {
		const gguf_tensor *t = &m->g->tensors[i];
		const uint8_t *d = t->data;
		if (is_packed_data(m, d))
			continue;   /* read from its packed copy */
		for (size_t o = 0; o < t->n_bytes; o += 4096)
			sink += d[o];
	}
	(void)sink;
	return 0;
}

/* ---- elementwise ---- */

/* y = x / rms(x) * w; the squares summed in double, in 8 interleaved
 * chains (one chain, 4 cycles an add, had 1.7% of the time at 8 streams) */
static void rmsnorm(float *y, const float *x, const float *w, int n, float eps)
{
	double p[8] = { 0 };
	int i = 0;
	for (; i + 8 <= n; i += 8)
		for (int k = 0; k < 8; k++)
			p[k] += (double)x[i + k] * x[i + k];
	for (; i < n; i++)
		p[0] += (double)x[i] * x[i];
	double ss = ((p[0] + p[4]) + (p[1] + p[5])) + ((p[2] + p[6]) + (p[3] + p[7]));
	float s = 1.0f / sqrtf((float)(ss / n) + eps);
	for (i = 0; i < n; i++)
		y[i] = x[i] * s * w[i];
}

/* Rotates one head vector by the angles in cs (cos, sin pairs). */
static void rope(float *v, const float *cs, int hd, bool neox)
{
	int half = hd / 2;
	for (int i = 0; i < half; i++) {
		float c = cs[2 * i], s = cs[2 * i + 1];
		int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
		float x0 = v[a], x1 = v[b];
		v[a] = x0 * c - x1 * s;
		v[b] = x0 * s + x1 * c;
	}
}

/* ---- matrix products ---- */

typedef struct mm_job {
	int n_w;
	const weight *w[MM_MAX_W];
	float *y[MM_MAX_W];         /* (B, w->n_out) each */
	const float *bias[MM_MAX_W];
	bool accumulate;            /* y += W x instead of y = W x */
	const void *act[MM_MAX_W];  /* activations in w's vec type, B rows */
	const void *act_g[MM_MAX_W];/* the same for the gemm: Q8_0U for gemm8,
				     * Q8_0S for the packed gemm */
	quant_gemm8_fn gemm8[MM_MAX_W];
	size_t act_stride[MM_MAX_W];
	bool tiles;                 /* prefill tokens may take tile kernels (model_eval) */
	int B;
	int n_gemm;                 /* with gemm8: tokens [0, n_gemm) by gemm8, the rest by mm_decode_row */
	int rows_per_task;
	int total_rows;             /* sum of n_out */
} mm_job;

static inline void mm_store(const mm_job *j, int wi, int t, int r, float s)
{
	const weight *w = j->w[wi];
	float *dst = &j->y[wi][(size_t)t * w->n_out + r];
	if (j->bias[wi])
		s += j->bias[wi][r];
	*dst = j->accumulate ? *dst + s : s;
}

/* mm_store of token t's rows [r0, r0 + n) from s[0 .. n): the same sums
 * in loops the compiler vectorises (the per-value stores had 4.6% of the
 * samples at 8 streams). */
static inline void mm_store_rows(const mm_job *j, int wi, int t, int r0, const float *s, int n)
{
	float *dst = &j->y[wi][(size_t)t * j->w[wi]->n_out + r0];
	const float *b = j->bias[wi] ? j->bias[wi] + r0 : NULL;
	if (b && j->accumulate)
		for (int k = 0; k < n; k++)
			dst[k] += s[k] + b[k];
	else if (b)
		for (int k = 0; k < n; k++)
			dst[k] = s[k] + b[k];
	else if (j->accumulate)
		for (int k = 0; k < n; k++)
			dst[k] += s[k];
	else if (n == 8)   /* inlined: a call for 32 bytes had 2.5% of the samples */
		memcpy(dst, s, sizeof(float) * 8);
	else
		memcpy(dst, s, sizeof(float) * (size_t)n);
}

/* Tokens [t0, t1) of row r by the decode kernel: mdot for up to
 * QUANT_MDOT_T tokens a call (the row read once for them), else the dot per
 * token. Either way a token's result does not depend on the others. */
static void mm_decode_row(const mm_job *j, int wi, int r, int t0, int t1)
{
	const weight *w = j->w[wi];
	const uint8_t *row = w->data + (size_t)r * w->row_bytes;
	const uint8_t *act = j->act[wi];
	size_t as = j->act_stride[wi];
	if (!w->mdot) {
		for (int t = t0; t < t1; t++)
			mm_store(j, wi, t, r, w->dot(w->n_in, row, act + (size_t)t * as));
		return;
	}
	float out[QUANT_MDOT_T];
	for (int t = t0; t < t1; t += QUANT_MDOT_T) {
		int nt = t1 - t < QUANT_MDOT_T ? t1 - t : QUANT_MDOT_T;
		w->mdot(w->n_in, row, act + (size_t)t * as, as, nt, out);
		for (int k = 0; k < nt; k++)
			mm_store(j, wi, t + k, r, out[k]);
	}
}

/* Rows [lo, hi) of gemm8 weight wi: tokens [0, n_gemm) by the 8-row gemm
 * (rows past the last group of 8 by the decode kernel), the rest by the
 * decode kernel: each token's result is the same whatever the other tokens
 * are. */
static void mm_rows_gemm8(const mm_job *j, int wi, int lo, int hi)
{
	const weight *w = j->w[wi];
	const uint8_t *au = j->act_g[wi];
	size_t as = j->act_stride[wi];
	float tile[QUANT_GEMM8_TOKENS * 8];
	_Static_assert(MM_TILE <= QUANT_GEMM8_TOKENS, "gemm8 token tile");
	for (int t0 = 0; t0 < j->n_gemm; t0 += MM_TILE) {
		int t1 = t0 + MM_TILE < j->n_gemm ? t0 + MM_TILE : j->n_gemm;
		int r = lo;
		for (; r + 8 <= hi; r += 8) {
			j->gemm8[wi](w->n_in, w->data + (size_t)r * w->row_bytes, w->row_bytes,
				     au + (size_t)t0 * as, as, t1 - t0, tile, 8);
			for (int tt = t0; tt < t1; tt++)
				mm_store_rows(j, wi, tt, r, tile + (tt - t0) * 8, 8);
		}
		for (; r < hi; r++)
			mm_decode_row(j, wi, r, t0, t1);
	}
	for (int r = lo; r < hi && j->n_gemm < j->B; r++)
		mm_decode_row(j, wi, r, j->n_gemm, j->B);
}

/* Rows [lo, hi) of packed weight wi, every token by the packed gemm (the
 * groups of 8 are fixed by row number, so a row's result does not depend
 * on how rows are split between tasks). */
static void mm_rows_packed(const mm_job *j, int wi, int lo, int hi)
{
	const weight *w = j->w[wi];
	const uint8_t *au = j->act_g[wi];
	size_t as = j->act_stride[wi];
	float tile[QUANT_GEMM8_TOKENS * 16];
	for (int t0 = 0; t0 < j->B; t0 += MM_TILE) {
		int t1 = t0 + MM_TILE < j->B ? t0 + MM_TILE : j->B;
		for (int g = lo / 8, n; g * 8 < hi; g += n / 8) {
			/* two groups in one pass where the CPU has 512-bit VNNI
			 * (the same bits as one at a time), for runs of 8 tokens
			 * or more: a lone token's decode is slower with it (55 ->
			 * 45 tok/s on the 0.5B Q8_0 file), 8 streams faster once
			 * it prefetched and its loop was unrolled (Q4_K_M 337 ->
			 * 365, IQ4_NL 373 -> 410, Q3_K_M 370 -> 389 tok/s; Q8_0
			 * 343 -> 337), a 512-token prompt 15-24% */
			const uint8_t *pg = w->packed + (size_t)g * w->pack_bytes;
			n = w->gemmp16 && t1 - t0 >= GEMM16_MIN_TOKENS && (g + 1) * 8 < hi ? 16 : 8;
			int r0 = g * 8 > lo ? g * 8 : lo, r1 = g * 8 + n < hi ? g * 8 + n : hi;
			/* a whole group's plain results go straight to y */
			bool direct = !j->bias[wi] && !j->accumulate && r0 == g * 8 && r1 == g * 8 + n;
			float *o = direct ? &j->y[wi][(size_t)t0 * w->n_out + r0] : tile;
			size_t os = direct ? (size_t)w->n_out : (size_t)n;
			if (n == 16)
				w->gemmp16(w->n_in, pg, w->pack_bytes, au + (size_t)t0 * as, as,
					   t1 - t0, o, os);
			else
				w->gemmp(w->n_in, pg, 0, au + (size_t)t0 * as, as, t1 - t0, o, os);
			for (int tt = t0; tt < t1 && !direct; tt++)
				mm_store_rows(j, wi, tt, r0, tile + (tt - t0) * n + r0 - g * 8,
					      r1 - r0);
		}
	}
}

/* Rows [lo, hi) of weight wi for every token. model_eval: tiles of
 * QUANT_TILE_R rows x QUANT_TILE_T tokens where a tile kernel exists, the
 * decode kernel for the rest; model_step: the decode kernel for every token
 * (a token's kernel must not depend on its company). */
static void mm_rows(const mm_job *j, int wi, int lo, int hi)
{
	if (j->w[wi]->gemmp) {
		mm_rows_packed(j, wi, lo, hi);
		return;
	}
	if (j->gemm8[wi]) {
		mm_rows_gemm8(j, wi, lo, hi);
		return;
	}
	const weight *w = j->w[wi];
	if (!j->tiles || !w->tile) {
		for (int r = lo; r < hi; r++)
			mm_decode_row(j, wi, r, 0, j->B);
		return;
	}
	const uint8_t *act = j->act[wi];
	size_t as = j->act_stride[wi];
	float tile[QUANT_TILE_T * QUANT_TILE_R];
	for (int t0 = 0; t0 < j->B; t0 += MM_TILE) {
		int t1 = t0 + MM_TILE < j->B ? t0 + MM_TILE : j->B;
		int tt1 = t0 + (t1 - t0) / QUANT_TILE_T * QUANT_TILE_T;
		int r = lo;
		for (; r + QUANT_TILE_R <= hi; r += QUANT_TILE_R) {
			const uint8_t *row = w->data + (size_t)r * w->row_bytes;
			for (int t = t0; t < tt1; t += QUANT_TILE_T) {
				w->tile(w->n_in, row, w->row_bytes, act + (size_t)t * as, as,
					tile, QUANT_TILE_R);
				for (int tt = 0; tt < QUANT_TILE_T; tt++)
					mm_store_rows(j, wi, t + tt, r,
						      tile + tt * QUANT_TILE_R, QUANT_TILE_R);
			}
			for (int rr = 0; rr < QUANT_TILE_R && tt1 < t1; rr++)
				mm_decode_row(j, wi, r + rr, tt1, t1);
		}
		for (; r < hi; r++)
			mm_decode_row(j, wi, r, t0, t1);
	}
}

static void mm_task(void *arg, int task, int thread)
{
	(void)thread;
	const mm_job *j = arg;
	int r0 = task * j->rows_per_task, r1 = r0 + j->rows_per_task;
	if (r1 > j->total_rows)
		r1 = j->total_rows;
	int base = 0;
	for (int wi = 0; wi < j->n_w; wi++) {
		const weight *w = j->w[wi];
		int lo = r0 > base ? r0 - base : 0;
		int hi = r1 - base < w->n_out ? r1 - base : w->n_out;
		base += w->n_out;
		if (lo < hi)
			mm_rows(j, wi, lo, hi);
	}
}

/* A product's input: B rows of n floats at x, made (mm_in_row) in the
 * tasks that quantise them, so in parallel and with no pass of their own. */
typedef struct mm_in {
	float *x;
	int n;
	const float *src, *norm;    /* x = rmsnorm(src) * norm */
	float eps;
	const float *up;            /* x = silu(x) * up, or with gelu gelu(x) * up */
	bool gelu;
} mm_in;

/* fn(arg, t, thread) for rows t = 0 .. B - 1: on the team from 4 rows,
 * inline for fewer (not worth waking it). */
static void run_rows(model *m, team_fn fn, void *arg, int B)
{
	if (B >= 4)
		team_run(m->team, fn, arg, B);
	else
		for (int t = 0; t < B; t++)
			fn(arg, t, 0);
}

/* Makes row t of a product's input (in->x) from the layer's state: normed
 * (x = rmsnorm(src) * norm) or gated (x = silu(x) * up or gelu(x) * up),
 * or, with neither, takes it as it is. */
static void mm_in_row(const mm_in *in, int t)
{
	float *x = in->x + (size_t)t * in->n;
	if (in->norm)
		rmsnorm(x, in->src + (size_t)t * in->n, in->norm, in->n, in->eps);
	else if (in->up)
		(in->gelu ? vmath_gelu_tanh_mul : vmath_silu_mul)(x, in->up + (size_t)t * in->n,
								    (size_t)in->n);
}

static void mm_in_task(void *arg, int t, int thread)
{
	(void)thread;
	mm_in_row(arg, t);
}

typedef struct quant_job {
	const mm_in *make;          /* the rows to make first, or NULL */
	const float *x;
	int n;
	int type;
	uint8_t *dst;
	size_t stride;
} quant_job;

static void quant_task(void *arg, int t, int thread)
{
	(void)thread;
	const quant_job *q = arg;
	if (q->make)
		mm_in_row(q->make, t);
	quant_quantize_row(q->type, q->x + (size_t)t * q->n, q->dst + (size_t)t * q->stride, q->n);
}

/* Quantises the B input rows to type into activation slot `slot`, making
 * them first (in the same tasks) when *make is set, which it then clears. */
static const uint8_t *prepare_act(model *m, int slot, int type, const mm_in **make,
				  const float *x, int n_in, int B)
{
	uint8_t *dst = m->act + (size_t)slot * MODEL_BATCH * m->act_row;
	quant_job q = { *make, x, n_in, type, dst, m->act_row };
	run_rows(m, quant_task, &q, B);
	*make = NULL;
	return dst;
}

/* y_i = W_i x (+ b_i) for up to MM_MAX_W weights sharing the input
 * in->x (B rows of n_in floats), made first as *in says. */
static void matmul(model *m, int n_w, const weight *const *w, float *const *y,
		   const float *const *bias, const mm_in *in, int B, bool accumulate)
{
	const float *x = in->x;
	const mm_in *make = in->norm || in->up ? in : NULL;
	mm_job j = { .n_w = n_w, .B = B, .accumulate = accumulate };
	j.n_gemm = m->n_gemm >= 0 ? m->n_gemm : B >= MM_GEMM8_MIN_B ? B : 0;
	bool step = m->n_gemm >= 0;
	j.tiles = !step;
	int n_in = w[0]->n_in;
	const uint8_t *slot[MODEL_ACT_SLOTS] = { NULL, NULL, NULL, NULL };
	for (int i = 0; i < n_w; i++) {
		j.w[i] = w[i];
		j.y[i] = y[i];
		j.bias[i] = bias ? bias[i] : NULL;
		j.total_rows += w[i]->n_out;
		if (w[i]->gemmp) {      /* every token in Q8_0S */
			if (!slot[3])
				slot[3] = prepare_act(m, 3, act_slot_type[3], &make, x, n_in, B);
			j.act_g[i] = slot[3];
			j.act_stride[i] = m->act_row;
			continue;
		}
		j.gemm8[i] = step || j.n_gemm > 0 ? w[i]->gemm8 : NULL;
		int vt = quant_vec_type(w[i]->type);
		if (vt == QT_F32) {
			j.act[i] = x;
			j.act_stride[i] = (size_t)n_in * sizeof(float);
			continue;
		}
		int need[2] = { vt == QT_Q8_K, -1 }, k = 0;
		if (j.gemm8[i]) {
			/* rows past the last whole group of 8 still take the dot
			 * (in the vec type: Q8_K for Q2_K, Q3_K, IQ4_XS) */
			need[0] = j.n_gemm > 0 ? 2 : vt == QT_Q8_K;
			need[1] = j.n_gemm > 0 && (w[i]->n_out % 8 || j.n_gemm < B) ? vt == QT_Q8_K : -1;
		}
		for (k = 0; k < 2 && need[k] >= 0; k++)
			if (!slot[need[k]])
				slot[need[k]] = prepare_act(m, need[k], act_slot_type[need[k]], &make,
							     x, n_in, B);
		j.act[i] = slot[vt == QT_Q8_K];
		j.act_g[i] = slot[2];
		j.act_stride[i] = m->act_row;
	}
	if (make)   /* no weight quantised its input */
		run_rows(m, mm_in_task, (void *)make, B);
	/* enough tasks to balance (a descheduled thread holds up one small
	 * task, not a big share), each a multiple of 8 rows */
	int tasks_wanted = m->n_threads * 16;
	int rpt = (j.total_rows + tasks_wanted - 1) / tasks_wanted;
	rpt = (rpt + 7) & ~7;
	if (rpt < 8)
		rpt = 8;
	j.rows_per_task = rpt;
	team_run(m->team, mm_task, &j, (j.total_rows + rpt - 1) / rpt);
}

static void matmul1(model *m, const weight *w, float *y, const mm_in *in, int B, bool acc)
{
	const weight *ws[1] = { w };
	float *ys[1] = { y };
	matmul(m, 1, ws, ys, NULL, in, B, acc);
}

/* ---- attention ---- */

typedef struct att_job {
	model *m;
	int il, split;   /* split: tasks per KV head and token */
} att_job;

/* Offset (in values) of entry r (position r, or r in a ring) of layer
 * il in slot's V cache. */
static inline size_t v_off(const model *m, int slot, int il, int r)
{
	const model_hparams *hp = &m->hp;
	const layer *ly = &m->layers[il];
	size_t kvd = (size_t)hp->n_head_kv * hp->head_dim;
	return ly->kv_base + ((size_t)slot * ly->kv_cap + r) * kvd;
}

/* Offset (in values) of KV head kvh of layer il in slot's K cache: its
 * entries' blocks of head_dim x KT_BLOCK (value d of entry r at
 * (r / KT_BLOCK) * head_dim * KT_BLOCK + d * KT_BLOCK + r % KT_BLOCK). */
static inline size_t k_off(const model *m, int slot, int il, int kvh)
{
	const model_hparams *hp = &m->hp;
	const layer *ly = &m->layers[il];
	return ly->kv_base + ((size_t)slot * hp->n_head_kv + kvh) * ly->kv_cap * hp->head_dim;
}

/* Address of value `off` of a cache (halves or floats). */
static inline void *kv_at(const model *m, void *cache, size_t off)
{
	return (char *)cache + off * m->kv_es;
}

/* C (+)= A . B with B in the cache's values (fgemm or fgemm_h). */
static void kv_gemm(const model *m, int rows, int cols, int k, const float *a, size_t lda,
		    const void *b, size_t ldb, float *c, size_t ldc, bool acc)
{
	if (m->kv_half)
		fgemm_h(rows, cols, k, a, lda, b, ldb, c, ldc, acc);
	else
		fgemm(rows, cols, k, a, lda, b, ldb, c, ldc, acc);
}

/* One token's attention for some of the query heads that share a KV
 * head: their scores against the cached positions, a block of KT_BLOCK
 * at a time, as one float product each (query rows times the block's
 * transposed keys: every key value is loaded once for all the heads,
 * and no sums across a vector), then the probabilities times V as one
 * more. Each result is its own chain of multiply-adds in position order,
 * however the heads are split between tasks. */
static void att_task(void *arg, int task, int thread)
{
	const att_job *j = arg;
	model *m = j->m;
	const model_hparams *hp = &m->hp;
	int G = hp->n_head / hp->n_head_kv, per = (G + j->split - 1) / j->split;
	int part = task % j->split, kvh = task / j->split % hp->n_head_kv;
	int t = task / j->split / hp->n_head_kv;
	int g0 = part * per, ng = G - g0 < per ? G - g0 : per;
	if (ng <= 0)
		return;
	int hd = hp->head_dim, kvd = hp->n_head_kv * hd, h0 = kvh * G + g0;
	int n = m->tok_pos[t] + 1;   /* causal: its slot's positions p0..pos */
	/* a local layer's window: the last n_swa positions (scores from the
	 * K block that holds the first) */
	int p0 = m->layers[j->il].swa && n > hp->n_swa ? n - hp->n_swa : 0;
	const float *q = m->q + ((size_t)t * hp->n_head + h0) * hd;
	int slot = m->tok_slot[t], R = m->layers[j->il].kv_cap;
	const void *kc = kv_at(m, m->k_cache, k_off(m, slot, j->il, kvh));
	size_t ls = (size_t)m->ctx_pad;   /* a head's row of scores, by position */
	float *sc = m->scores + (size_t)thread * G * ls;
	float *out = m->att + ((size_t)t * hp->n_head + h0) * hd;
	float scale = hp->attn_scale, cap = hp->attn_softcap, inv[MODEL_MAX_HEADS];
	/* positions p0..n-1 in at most two runs of the cache (a ring wraps
	 * once: n - p0 <= n_swa < R), each from the K block that holds its
	 * first entry */
	int seg[3] = { p0, n, n }, nseg = 1;
	if (p0 / R != (n - 1) / R) {
		seg[1] = (p0 / R + 1) * R;
		nseg = 2;
	}
	for (int e = 0; e < nseg; e++) {
		int r0 = seg[e] % R;
		for (int b = r0 / KT_BLOCK * KT_BLOCK; b < r0 + seg[e + 1] - seg[e]; b += KT_BLOCK) {
			int p = seg[e] - r0 + b, cols = seg[e + 1] - p;
			kv_gemm(m, ng, cols < KT_BLOCK ? cols : KT_BLOCK, hd, q, (size_t)hd,
				(const char *)kc + (size_t)b * hd * m->kv_es, KT_BLOCK, sc + p, ls,
				false);
		}
	}
	for (int g = 0; g < ng; g++) {
		float *row = sc + (size_t)g * ls + p0, mx = -INFINITY, sg = scale;
		if (cap > 0) {   /* Gemma 2: scaled scores capped at +-cap */
			vmath_softcap(row, (size_t)(n - p0), scale, cap);
			sg = 1.0f;
		}
		for (int s = 0; s < n - p0; s++)
			mx = row[s] > mx ? row[s] : mx;
		inv[g] = 1.0f / vmath_softmax_exp(row, n - p0, sg, mx * sg);
	}
	if (hd % FGEMM_NR)
		memset(out, 0, (size_t)ng * hd * sizeof(float));
	for (int e = 0; e < nseg; e++) {   /* out (+)= P V, V's rows as cached (kvd apart) */
		int a = seg[e], len = seg[e + 1] - a;
		const void *vc = kv_at(m, m->v_cache, v_off(m, slot, j->il, a % R) + (size_t)kvh * hd);
		if (hd % FGEMM_NR == 0) {
			kv_gemm(m, ng, hd, len, sc + a, ls, vc, (size_t)kvd, out, (size_t)hd, e > 0);
			continue;
		}
		for (int g = 0; g < ng; g++)
			for (int s = 0; s < len; s++)
				for (int d = 0; d < hd; d++) {
					size_t i = (size_t)s * kvd + d;
					float v = m->kv_half ? quant_f16_to_f32(((const uint16_t *)vc)[i])
							     : ((const float *)vc)[i];
					out[g * hd + d] += sc[g * ls + a + s] * v;
				}
	}
	for (int g = 0; g < ng; g++)
		for (int d = 0; d < hd; d++)
			out[g * hd + d] *= inv[g];
}

/* ---- the forward pass ---- */

typedef struct rope_job {
	model *m;
	int il;
} rope_job;

/* Token t's query and key heads normed (Qwen3, Gemma 3) and rotated, and its key
 * and value stored in its slot's cache at its position. */
static void rope_task(void *arg, int t, int thread)
{
	(void)thread;
	const rope_job *rj = arg;
	model *m = rj->m;
	const model_hparams *hp = &m->hp;
	const layer *ly = &m->layers[rj->il];
	int hd = hp->head_dim, qd = hp->n_head * hd, kvd = hp->n_head_kv * hd;
	const float *cs = (ly->swa && m->cs_swa ? m->cs_swa : m->cs) + (size_t)t * hd;
	for (int h = 0; h < hp->n_head; h++) {
		float *qh = m->q + (size_t)t * qd + (size_t)h * hd;
		if (ly->q_norm)
			rmsnorm(qh, qh, ly->q_norm, hd, hp->rms_eps);
		rope(qh, cs, hd, hp->rope_neox);
	}
	for (int h = 0; h < hp->n_head_kv; h++) {
		float *kh = m->k + (size_t)t * kvd + (size_t)h * hd;
		if (ly->k_norm)
			rmsnorm(kh, kh, ly->k_norm, hd, hp->rms_eps);
		rope(kh, cs, hd, hp->rope_neox);
	}
	int slot = m->tok_slot[t], r = m->tok_pos[t] % ly->kv_cap;   /* its entry */
	const float *kt = m->k + (size_t)t * kvd, *vt = m->v + (size_t)t * kvd;
	void *vdst = kv_at(m, m->v_cache, v_off(m, slot, rj->il, r));
	if (m->kv_half)
		vmath_to_half(vt, vdst, (size_t)kvd);
	else
		memcpy(vdst, vt, (size_t)kvd * sizeof(float));
	for (int h = 0; h < hp->n_head_kv; h++) {   /* one column of its K block */
		size_t at = k_off(m, slot, rj->il, h) + (size_t)(r / KT_BLOCK) * hd * KT_BLOCK +
			    r % KT_BLOCK;
		if (m->kv_half) {
			uint16_t kh[MODEL_MAX_HEAD_DIM], *kb = kv_at(m, m->k_cache, at);
			vmath_to_half(kt + (size_t)h * hd, kh, (size_t)hd);
			for (int d = 0; d < hd; d++)
				kb[(size_t)d * KT_BLOCK] = kh[d];
		} else {
			float *kb = kv_at(m, m->k_cache, at);
			for (int d = 0; d < hd; d++)
				kb[(size_t)d * KT_BLOCK] = kt[(size_t)h * hd + d];
		}
	}
}

typedef struct post_job {
	model *m;
	const float *norm;
} post_job;

/* Gemma's norm after attention and FFN: x += rmsnorm(xb) * norm, row t. */
static void post_task(void *arg, int t, int thread)
{
	(void)thread;
	const post_job *pj = arg;
	int E = pj->m->hp.n_embd;
	float *y = pj->m->xb + (size_t)t * E, *x = pj->m->x + (size_t)t * E;
	rmsnorm(y, y, pj->norm, E, pj->m->hp.rms_eps);
	for (int i = 0; i < E; i++)
		x[i] += y[i];
}

/* Adds W in to the residual stream x: as it is, or with a post-norm
 * (Gemma) as rmsnorm(W in) * norm, W in made in xb first. */
static void residual(model *m, const weight *w, const mm_in *in, const float *norm, int B)
{
	if (!norm) {
		matmul1(m, w, m->x, in, B, true);
		return;
	}
	matmul1(m, w, m->xb, in, B, false);
	post_job pj = { m, norm };
	run_rows(m, post_task, &pj, B);
}

/* One layer for B tokens. The norms, the gate and the rotations run in
 * the team's tasks, row by row (at 8 streams they had 6% of the time on
 * one thread while the other waited). */
static void layer_forward(model *m, int il, int B)
{
	const model_hparams *hp = &m->hp;
	const layer *ly = &m->layers[il];
	int E = hp->n_embd;

	const weight *wqkv[3] = { &ly->wq, &ly->wk, &ly->wv };
	float *yqkv[3] = { m->q, m->k, m->v };
	const float *bqkv[3] = { ly->bq, ly->bk, ly->bv };
	mm_in attn_in = { .x = m->xb, .n = E, .src = m->x, .norm = ly->attn_norm,
			  .eps = hp->rms_eps };
	matmul(m, 3, wqkv, yqkv, bqkv, &attn_in, B, false);

	rope_job rj = { m, il };
	run_rows(m, rope_task, &rj, B);
	/* a task per token and KV head, its query heads split while there
	 * are fewer such tasks than threads */
	int G = hp->n_head / hp->n_head_kv, split = 1;
	while (split < G && B * hp->n_head_kv * split < m->n_threads)
		split++;
	att_job aj = { m, il, split };
	team_run(m->team, att_task, &aj, B * hp->n_head_kv * split);
	mm_in att_in = { .x = m->att, .n = hp->n_head * hp->head_dim };
	residual(m, &ly->wo, &att_in, ly->post_attn_norm, B);

	const weight *wgu[2] = { &ly->gate, &ly->up };
	float *ygu[2] = { m->hg, m->hu };
	mm_in ffn_in = { .x = m->xb, .n = E, .src = m->x, .norm = ly->ffn_norm,
			 .eps = hp->rms_eps };
	matmul(m, 2, wgu, ygu, NULL, &ffn_in, B, false);
	mm_in gated = { .x = m->hg, .n = hp->n_ff, .up = m->hu, .gelu = is_gemma(hp) };
	residual(m, &ly->down, &gated, ly->post_ffn_norm, B);
}

typedef struct cap_job {
	float *logits;
	int n;
	float cap;
} cap_job;

/* Gemma 2's final softcapping of row t: l = cap tanh(l / cap). */
static void cap_task(void *arg, int t, int thread)
{
	(void)thread;
	const cap_job *cj = arg;
	vmath_softcap(cj->logits + (size_t)t * cj->n, (size_t)cj->n, 1.0f, cj->cap);
}

/* The cos/sin pairs (times mscale) that rotate position pos. */
static void rope_angles(float *cs, const float *inv_freq, int pos, int hd, float mscale)
{
	for (int i = 0; i < hd / 2; i++) {
		float a = (float)pos * inv_freq[i];
		cs[2 * i] = cosf(a) * mscale;
		cs[2 * i + 1] = sinf(a) * mscale;
	}
}

/* Runs B tokens, token t at m->tok_slot[t] / m->tok_pos[t]; logits gets
 * n_vocab floats for each of the n_out tokens in m->out_rows. */
static int eval_batch(model *m, const int32_t *tokens, int B, float *logits, int n_out)
{
	const model_hparams *hp = &m->hp;
	int E = hp->n_embd, hd = hp->head_dim;
	float emb_scale = sqrtf((float)E);   /* Gemma's */
	for (int t = 0; t < B; t++) {
		if (tokens[t] < 0 || tokens[t] >= hp->n_vocab)
			return -EINVAL;
		const uint8_t *row = m->tok_embd.data + (size_t)tokens[t] * m->tok_embd.row_bytes;
		int row_type = m->tok_embd.type;
		if (m->emb_row) {   /* the file's rows were given back: from the packed copy */
			const weight *o = &m->output;
			quant_unpack8_row(o->type, E, o->packed + (size_t)(tokens[t] / 8) * o->pack_bytes,
					  tokens[t] % 8, m->emb_row);
			row = m->emb_row;
			row_type = QT_Q8_0;     /* the same values */
		}
		float *x = m->x + (size_t)t * E;
		quant_dequantize_row(row_type, row, x, E);
		for (int i = 0; is_gemma(hp) && i < E; i++)
			x[i] *= emb_scale;
		rope_angles(m->cs + (size_t)t * hd, m->inv_freq, m->tok_pos[t], hd, hp->rope_mscale);
		if (m->cs_swa)
			rope_angles(m->cs_swa + (size_t)t * hd, m->inv_freq_swa, m->tok_pos[t], hd, 1.0f);
	}
	for (int il = 0; il < hp->n_layer; il++)
		layer_forward(m, il, B);
	if (!logits || n_out <= 0)
		return 0;
	for (int o = 0; o < n_out; o++)
		rmsnorm(m->xb + (size_t)o * E, m->x + (size_t)m->out_rows[o] * E, m->output_norm,
			E, hp->rms_eps);
	if (m->n_gemm >= 0)
		m->n_gemm = 0;      /* logits rows: all by dot, as a batch of one */
	mm_in out_in = { .x = m->xb, .n = E };
	matmul1(m, &m->output, logits, &out_in, n_out, false);
	if (hp->final_softcap > 0) {
		cap_job cj = { logits, hp->n_vocab, hp->final_softcap };
		run_rows(m, cap_task, &cj, n_out);
	}
	return 0;
}

int model_eval(model *m, const int32_t *tokens, int n, int pos, float *ret_logits,
	       bool all_logits)
{
	if (n <= 0 || pos < 0)
		return -EINVAL;
	if (pos > m->hp.n_ctx - n)
		return -E2BIG;
	for (int i = 0; i < n; i++)
		if (tokens[i] < 0 || tokens[i] >= m->hp.n_vocab)
			return -EINVAL;
	int rc = ensure_packed(m);
	if (rc < 0)
		return rc;
	for (int done = 0; done < n; done += MODEL_BATCH) {
		int B = n - done < MODEL_BATCH ? n - done : MODEL_BATCH;
		bool last = done + B == n;
		float *lg = NULL;
		if (all_logits && ret_logits)
			lg = ret_logits + (size_t)done * m->hp.n_vocab;
		else if (last)
			lg = ret_logits;
		int first = all_logits ? 0 : B - 1;
		m->n_gemm = -1;
		for (int t = 0; t < B; t++) {
			m->tok_slot[t] = 0;
			m->tok_pos[t] = pos + done + t;
			m->out_rows[t] = first + t;
		}
		rc = eval_batch(m, tokens + done, B, lg, B - first);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int model_step(model *m, const model_seq *seqs, int n_seqs, float *ret_logits)
{
	int32_t toks[MODEL_BATCH];
	int last[MODEL_BATCH];      /* each sequence's last token in the batch */
	int B = 0, n_out = 0;
	if (n_seqs <= 0 || n_seqs > MODEL_BATCH)
		return -EINVAL;
	for (int i = 0; i < n_seqs; i++) {
		const model_seq *s = &seqs[i];
		if (s->slot < 0 || s->slot >= m->n_slots || s->n <= 0 || s->pos < 0 ||
		    s->n > MODEL_BATCH - B || (s->decode && s->n != 1))
			return -EINVAL;
		if (s->pos > m->hp.n_ctx - s->n)
			return -E2BIG;
		for (int o = 0; o < i; o++)   /* one entry per slot a step */
			if (seqs[o].slot == s->slot)
				return -EINVAL;
		for (int k = 0; k < s->n; k++)
			if (s->tokens[k] < 0 || s->tokens[k] >= m->hp.n_vocab)
				return -EINVAL;
		B += s->n;
	}
	int rc = ensure_packed(m);
	if (rc < 0)
		return rc;
	/* prompt tokens first (gemm), then generated ones (decode kernel) */
	B = 0;
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < n_seqs; i++) {
			const model_seq *s = &seqs[i];
			if (s->decode != (pass == 1))
				continue;
			for (int k = 0; k < s->n; k++, B++) {
				toks[B] = s->tokens[k];
				m->tok_slot[B] = s->slot;
				m->tok_pos[B] = s->pos + k;
			}
			last[i] = B - 1;
		}
		if (pass == 0)
			m->n_gemm = B;
	}
	for (int i = 0; i < n_seqs; i++)
		if (seqs[i].want_logits)
			m->out_rows[n_out++] = last[i];
	rc = eval_batch(m, toks, B, ret_logits, ret_logits ? n_out : 0);
	m->n_gemm = -1;
	return rc;
}
