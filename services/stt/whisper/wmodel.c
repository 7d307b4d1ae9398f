/*
 * wmodel.c - Whisper's encoder and decoder on the GGUF engine's kernels
 * (quant.h) and thread team (team.h). See wmodel.h.
 */
#include "wmodel.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kern/fgemm.h"
#include "kern/quant.h"
#include "kern/vmath.h"

#define LN_EPS 1e-5f
#define ROWS_PER_TASK 16
/* Products of F32/F16 weights with at least GEMM_MIN_TOK activation rows
 * go through fgemm in tasks of FGEMM_NB weight rows x GEMM_MB activation
 * rows (each task widens its weight block once); fewer rows use the dot
 * kernels. Encoder self-attention runs per head and block of ATTN_QB
 * queries as two fgemm products around a softmax. */
#define GEMM_MIN_TOK 8
#define GEMM_MB 192
#define ATTN_QB 48
/* Encoder buffers grow in steps of CTX_STEP positions (2.56 s). */
#define CTX_STEP 128

typedef struct wmat {
	const uint8_t *w;        /* n_out rows of row_bytes */
	uint32_t type;
	int n_in, n_out;
	size_t row_bytes;
	quant_dot_fn dot;        /* the best kernels for type (tile may be NULL) */
	quant_tile_fn tile;
} wmat;

typedef struct attn_w {
	const float *ln_w, *ln_b;
	wmat q, k, v, o;
	const float *qb, *vb, *ob;
} attn_w;

typedef struct layer_w {
	attn_w attn, cross;      /* cross: decoder layers only */
	const float *mlp_ln_w, *mlp_ln_b, *mlp0_b, *mlp2_b;
	wmat mlp0, mlp2;
} layer_w;

struct wmodel {
	const wfile *f;
	wfile_hparams hp;
	int n_state;
	wmat conv1, conv2;       /* as (n_state, 3 * n_in) matrices */
	const float *conv1_b, *conv2_b, *enc_pos, *enc_ln_w, *enc_ln_b;
	const float *dec_pos, *dec_ln_w, *dec_ln_b;
	wmat tok_emb;            /* (n_vocab, n_state) */
	layer_w *enc, *dec;
	void **copies;           /* aligned copies of misaligned tensors */
	int n_copies;
	size_t copied;
	bool any_quant;          /* some matrix needs quantised activations */
};

/* Buffers that depend on the encoder context or the rows of a call are
 * grown on demand (reserve()), so a decoder that only ever sees short
 * utterances never holds full 30 s buffers. */
struct wstate {
	const wmodel *m;
	team *t;
	int n_threads;
	int n_ctx;               /* encoder positions of the last encode */
	int n_past;              /* decoder tokens in the KV cache */
	int cap_ctx;             /* positions enc_out, cross_k/v, kt hold */
	int cap_rows;            /* rows x, h, q, k, v, a, mlp hold */
	int cap_conv;            /* rows col, h1 hold (two per position) */
	float *col;              /* im2col: (cap_conv, 3 * max(n_mels, n_state)) */
	float *h1;               /* conv1 out: (cap_conv, n_state) */
	float *x, *h, *q, *k, *v, *a;   /* (cap_rows, n_state) */
	float *mlp;              /* (cap_rows, 4 * n_state) */
	float *enc_out;          /* (cap_ctx, n_state) */
	float *cross_k;          /* per decoder layer K transposed per head (kt_task):
				    (n_state, pad16(n_ctx)) in n_state * pad16(cap_ctx) */
	float *cross_v;          /* per decoder layer (cap_ctx, n_state) */
	float *kt;               /* encoder K per head transposed: (n_state, pad16(cap_ctx)) */
	float *self_k, *self_v;     /* per decoder layer (n_text_ctx, n_state) */
	uint8_t *act;            /* quantised activations: rows x act row bytes */
	size_t act_cap;          /* bytes */
	float *scores;           /* per thread: score_len floats */
	size_t score_len;
	float *pack;             /* per thread: pack_len floats (fgemm weight blocks) */
	size_t pack_len;
};

/* ------------------------------------------------------------- loading */

/* The tensor's bytes at an address its type's kernels may load from. */
static const void *place(wmodel *m, const wfile_tensor *t)
{
	if (t->aligned)
		return t->data;
	void *c = aligned_alloc(64, (t->n_bytes + 63) / 64 * 64);
	void **grown = realloc(m->copies, sizeof *m->copies * (size_t)(m->n_copies + 1));
	if (!c || !grown) {
		free(c);
		if (grown)
			m->copies = grown;
		return NULL;
	}
	m->copies = grown;
	memcpy(c, t->data, t->n_bytes);
	m->copies[m->n_copies++] = c;
	m->copied += t->n_bytes;
	return c;
}

typedef struct loader {
	wmodel *m;
	char *err;
	size_t err_len;
	int rc;
} loader;

static const void *get(loader *l, const char *name)
{
	const wfile_tensor *t = wfile_tensor_get(l->m->f, name);
	if (l->rc)
		return NULL;
	if (!t) {   /* wfile checked every tensor is there */
		snprintf(l->err, l->err_len, "tensor '%s' missing", name);
		l->rc = -EINVAL;
		return NULL;
	}
	const void *p = place(l->m, t);
	if (!p) {
		snprintf(l->err, l->err_len, "out of memory copying '%s'", name);
		l->rc = -ENOMEM;
	}
	return p;
}

static const float *vec(loader *l, const char *name)
{
	return get(l, name);
}

static wmat mat(loader *l, const char *name)
{
	wmat w = { 0 };
	const wfile_tensor *t = wfile_tensor_get(l->m->f, name);
	w.w = get(l, name);
	if (!t || l->rc)
		return w;
	w.type = t->type;
	w.n_in = (int)(t->ne[0] * (t->n_dims == 3 ? t->ne[1] : 1));
	w.n_out = (int)t->ne[t->n_dims - 1];
	w.row_bytes = t->n_bytes / (size_t)w.n_out;
	if (quant_vec_type((int)w.type) != QT_F32)
		l->m->any_quant = true;
	w.dot = quant_supported((int)w.type) ? quant_dot_get((int)w.type, QUANT_IMPL_BEST) : NULL;
	w.tile = w.dot ? quant_tile_get((int)w.type, QUANT_IMPL_BEST) : NULL;
	if (!w.dot) {
		snprintf(l->err, l->err_len, "tensor '%s': no kernel for type %s yet", name,
			 wfile_type_name(w.type));
		l->rc = -EINVAL;
	}
	return w;
}

/* "<side>.blocks.<i>.<part><suffix>" */
static const char *lname(char *buf, size_t len, const char *side, int i, const char *part,
			 const char *suffix)
{
	snprintf(buf, len, "%s.blocks.%d.%s%s", side, i, part, suffix);
	return buf;
}

static void load_attn(loader *l, attn_w *a, const char *side, int i, const char *part)
{
	char b[96];
	a->ln_w = vec(l, lname(b, sizeof b, side, i, part, "_ln.weight"));
	a->ln_b = vec(l, lname(b, sizeof b, side, i, part, "_ln.bias"));
	a->q = mat(l, lname(b, sizeof b, side, i, part, ".query.weight"));
	a->qb = vec(l, lname(b, sizeof b, side, i, part, ".query.bias"));
	a->k = mat(l, lname(b, sizeof b, side, i, part, ".key.weight"));
	a->v = mat(l, lname(b, sizeof b, side, i, part, ".value.weight"));
	a->vb = vec(l, lname(b, sizeof b, side, i, part, ".value.bias"));
	a->o = mat(l, lname(b, sizeof b, side, i, part, ".out.weight"));
	a->ob = vec(l, lname(b, sizeof b, side, i, part, ".out.bias"));
}

static void load_layer(loader *l, layer_w *w, const char *side, int i, bool cross)
{
	char b[96];
	load_attn(l, &w->attn, side, i, "attn");
	if (cross)
		load_attn(l, &w->cross, side, i, "cross_attn");
	w->mlp_ln_w = vec(l, lname(b, sizeof b, side, i, "mlp_ln", ".weight"));
	w->mlp_ln_b = vec(l, lname(b, sizeof b, side, i, "mlp_ln", ".bias"));
	w->mlp0 = mat(l, lname(b, sizeof b, side, i, "mlp.0", ".weight"));
	w->mlp0_b = vec(l, lname(b, sizeof b, side, i, "mlp.0", ".bias"));
	w->mlp2 = mat(l, lname(b, sizeof b, side, i, "mlp.2", ".weight"));
	w->mlp2_b = vec(l, lname(b, sizeof b, side, i, "mlp.2", ".bias"));
}

int wmodel_new(const wfile *f, wmodel **ret, char *err, size_t err_len)
{
	wmodel *m = calloc(1, sizeof *m);
	if (!m)
		return -ENOMEM;
	loader l = { .m = m, .err = err, .err_len = err_len };
	m->f = f;
	m->hp = f->hp;
	m->n_state = f->hp.n_audio_state;
	m->enc = calloc((size_t)f->hp.n_audio_layer, sizeof *m->enc);
	m->dec = calloc((size_t)f->hp.n_text_layer, sizeof *m->dec);
	if (!m->enc || !m->dec) {
		wmodel_free(m);
		return -ENOMEM;
	}
	m->conv1 = mat(&l, "encoder.conv1.weight");
	m->conv1_b = vec(&l, "encoder.conv1.bias");
	m->conv2 = mat(&l, "encoder.conv2.weight");
	m->conv2_b = vec(&l, "encoder.conv2.bias");
	m->enc_pos = vec(&l, "encoder.positional_embedding");
	m->enc_ln_w = vec(&l, "encoder.ln_post.weight");
	m->enc_ln_b = vec(&l, "encoder.ln_post.bias");
	m->dec_pos = vec(&l, "decoder.positional_embedding");
	m->dec_ln_w = vec(&l, "decoder.ln.weight");
	m->dec_ln_b = vec(&l, "decoder.ln.bias");
	m->tok_emb = mat(&l, "decoder.token_embedding.weight");
	for (int i = 0; i < f->hp.n_audio_layer; i++)
		load_layer(&l, &m->enc[i], "encoder", i, false);
	for (int i = 0; i < f->hp.n_text_layer; i++)
		load_layer(&l, &m->dec[i], "decoder", i, true);
	if (l.rc) {
		wmodel_free(m);
		return l.rc;
	}
	*ret = m;
	return 0;
}

void wmodel_free(wmodel *m)
{
	if (!m)
		return;
	for (int i = 0; i < m->n_copies; i++)
		free(m->copies[i]);
	free(m->copies);
	free(m->enc);
	free(m->dec);
	free(m);
}

const wfile *wmodel_file(const wmodel *m) { return m->f; }
size_t wmodel_copied_bytes(const wmodel *m) { return m->copied; }

/* --------------------------------------------------------------- state */

static int imax(int a, int b) { return a > b ? a : b; }
static int pad16(int n) { return (n + 15) / 16 * 16; }

int wstate_new(const wmodel *m, team *t, wstate **ret)
{
	const wfile_hparams *h = &m->hp;
	wstate *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->m = m;
	s->t = t;
	s->n_threads = t ? team_size(t) : 1;
	size_t n = (size_t)m->n_state, tctx = (size_t)h->n_text_ctx, dl = (size_t)h->n_text_layer;
	size_t kmax = (size_t)imax(4 * m->n_state, 3 * imax(h->n_mels, m->n_state));
	s->pack_len = kmax * FGEMM_NB;
#define ALLOC(p, count) ((p) = aligned_alloc(64, ((count) * sizeof *(p) + 63) / 64 * 64))
	if (!ALLOC(s->self_k, dl * tctx * n) || !ALLOC(s->self_v, dl * tctx * n) ||
	    !ALLOC(s->pack, (size_t)s->n_threads * s->pack_len)) {
		wstate_free(s);
		return -ENOMEM;
	}
#undef ALLOC
	*ret = s;
	return 0;
}

/* *p holds at least count floats (contents not kept). */
static int grow(float **p, size_t count)
{
	free(*p);
	*p = aligned_alloc(64, (count * sizeof **p + 63) / 64 * 64);
	return *p ? 0 : -ENOMEM;
}

/* Makes the buffers hold an encode of n_ctx positions (0: no encode) and
 * calls of n_rows rows; grows only. 0 or -ENOMEM (then the capacities say
 * what is still there). */
static int reserve(wstate *s, int n_ctx, int n_rows)
{
	const wmodel *m = s->m;
	const wfile_hparams *h = &m->hp;
	size_t n = (size_t)m->n_state, dl = (size_t)h->n_text_layer;
	size_t col_w = 3 * (size_t)imax(h->n_mels, m->n_state);

	if (n_ctx > s->cap_ctx) {
		int c = imax(n_ctx, s->cap_ctx + CTX_STEP);
		c = (c + CTX_STEP - 1) / CTX_STEP * CTX_STEP;
		c = c < h->n_audio_ctx ? c : h->n_audio_ctx;
		c = imax(c, n_ctx);
		s->cap_ctx = 0;
		if (grow(&s->enc_out, (size_t)c * n) || grow(&s->cross_k, dl * n * (size_t)pad16(c)) ||
		    grow(&s->cross_v, dl * (size_t)c * n) || grow(&s->kt, n * (size_t)pad16(c)))
			return -ENOMEM;
		s->cap_ctx = c;
	}
	if (2 * n_ctx > s->cap_conv) {
		int c = 2 * s->cap_ctx;
		s->cap_conv = 0;
		if (grow(&s->col, (size_t)c * col_w) || grow(&s->h1, (size_t)c * n))
			return -ENOMEM;
		s->cap_conv = c;
	}
	int rows = imax(n_ctx ? s->cap_ctx : 0, n_rows);
	if (rows > s->cap_rows) {
		rows = imax(rows, imax(s->cap_rows, 32));
		s->cap_rows = 0;
		if (grow(&s->x, (size_t)rows * n) || grow(&s->h, (size_t)rows * n) ||
		    grow(&s->q, (size_t)rows * n) || grow(&s->k, (size_t)rows * n) ||
		    grow(&s->v, (size_t)rows * n) || grow(&s->a, (size_t)rows * n) ||
		    grow(&s->mlp, (size_t)rows * 4 * n))
			return -ENOMEM;
		s->cap_rows = rows;
	}
	/* quantised activations of the widest input (4 * n_state, or a conv row) */
	size_t act_rows = (size_t)imax(s->cap_conv, s->cap_rows);
	size_t widest = 4 * n > col_w ? 4 * n : col_w;
	size_t act = m->any_quant ? act_rows * (widest * sizeof(float) + 64) : 0;
	if (act > s->act_cap) {
		free(s->act);
		s->act_cap = 0;
		if (!(s->act = aligned_alloc(64, (act + 63) / 64 * 64)))
			return -ENOMEM;
		s->act_cap = act;
	}
	size_t sl = (size_t)imax(imax(s->cap_ctx, h->n_text_ctx), ATTN_QB * pad16(s->cap_ctx));
	if (sl > s->score_len) {
		s->score_len = 0;
		if (grow(&s->scores, (size_t)s->n_threads * sl))
			return -ENOMEM;
		s->score_len = sl;
	}
	return 0;
}

void wstate_free(wstate *s)
{
	if (!s)
		return;
	free(s->col); free(s->h1); free(s->x); free(s->h); free(s->q); free(s->k);
	free(s->v); free(s->a); free(s->mlp); free(s->enc_out); free(s->cross_k);
	free(s->cross_v); free(s->kt); free(s->self_k); free(s->self_v); free(s->act);
	free(s->scores); free(s->pack);
	free(s);
}

static void run(wstate *s, team_fn fn, void *arg, int n_tasks)
{
	if (s->t)
		team_run(s->t, fn, arg, n_tasks);
	else
		for (int i = 0; i < n_tasks; i++)
			fn(arg, i, 0);
}

/* -------------------------------------------------------------- matmul */

typedef struct mm_job {
	const wmat *w;
	const uint8_t *act;
	size_t act_bytes;
	int n_tok;
	float *y;
	const float *bias;
	quant_dot_fn dot;
	quant_tile_fn tile;
} mm_job;

static void mm_task(void *arg, int task, int thread)
{
	const mm_job *j = arg;
	const wmat *w = j->w;
	int r0 = task * ROWS_PER_TASK;
	int r1 = r0 + ROWS_PER_TASK < w->n_out ? r0 + ROWS_PER_TASK : w->n_out;
	(void)thread;

	int r = r0;
	if (j->tile) {
		for (; r + QUANT_TILE_R <= r1; r += QUANT_TILE_R) {
			int t = 0;
			for (; t + QUANT_TILE_T <= j->n_tok; t += QUANT_TILE_T)
				j->tile(w->n_in, w->w + (size_t)r * w->row_bytes, w->row_bytes,
					j->act + (size_t)t * j->act_bytes, j->act_bytes,
					j->y + (size_t)t * w->n_out + r, (size_t)w->n_out);
			for (; t < j->n_tok; t++)
				for (int rr = r; rr < r + QUANT_TILE_R; rr++)
					j->y[(size_t)t * w->n_out + rr] = j->dot(w->n_in,
						w->w + (size_t)rr * w->row_bytes,
						j->act + (size_t)t * j->act_bytes);
		}
	}
	for (; r < r1; r++)
		for (int t = 0; t < j->n_tok; t++)
			j->y[(size_t)t * w->n_out + r] = j->dot(w->n_in, w->w + (size_t)r * w->row_bytes,
								j->act + (size_t)t * j->act_bytes);
	if (j->bias)
		for (int t = 0; t < j->n_tok; t++)
			for (r = r0; r < r1; r++)
				j->y[(size_t)t * w->n_out + r] += j->bias[r];
}

typedef struct gm_job {
	const wmat *w;
	const float *x;
	int n_tok, n_mb;
	float *y;
	const float *bias;
	float *pack;
	size_t pack_len;
} gm_job;

/* One block of FGEMM_NB weight rows times one block of GEMM_MB tokens. */
static void gm_task(void *arg, int task, int thread)
{
	const gm_job *j = arg;
	const wmat *w = j->w;
	int r0 = task / j->n_mb * FGEMM_NB, t0 = task % j->n_mb * GEMM_MB;
	int nr = w->n_out - r0 < FGEMM_NB ? w->n_out - r0 : FGEMM_NB;
	int nt = j->n_tok - t0 < GEMM_MB ? j->n_tok - t0 : GEMM_MB;
	float *bp = j->pack + (size_t)thread * j->pack_len;

	fgemm_pack((int)w->type, w->w + (size_t)r0 * w->row_bytes, w->row_bytes, nr, w->n_in, bp);
	float *y = j->y + (size_t)t0 * w->n_out + r0;
	fgemm(nt, nr, w->n_in, j->x + (size_t)t0 * w->n_in, (size_t)w->n_in, bp, FGEMM_NB, y,
	      (size_t)w->n_out, false);
	if (j->bias)
		for (int t = 0; t < nt; t++)
			for (int r = 0; r < nr; r++)
				y[(size_t)t * w->n_out + r] += j->bias[r0 + r];
}

/* y (n_tok, n_out) = x (n_tok, n_in) . W^T + bias (bias may be NULL). */
static void matmul(wstate *s, const wmat *w, const float *x, int n_tok, float *y, const float *bias)
{
	if ((w->type == QT_F16 || w->type == QT_F32) && n_tok >= GEMM_MIN_TOK) {
		gm_job g = { .w = w, .x = x, .n_tok = n_tok, .n_mb = (n_tok + GEMM_MB - 1) / GEMM_MB,
			     .y = y, .bias = bias, .pack = s->pack, .pack_len = s->pack_len };
		run(s, gm_task, &g, (w->n_out + FGEMM_NB - 1) / FGEMM_NB * g.n_mb);
		return;
	}
	int vt = quant_vec_type((int)w->type);
	size_t ab = quant_row_bytes(vt, w->n_in);
	const uint8_t *act = (const uint8_t *)x;   /* float weights dot float rows as they are */
	if (vt != QT_F32) {
		for (int t = 0; t < n_tok; t++)
			quant_quantize_row(vt, x + (size_t)t * w->n_in, s->act + (size_t)t * ab, w->n_in);
		act = s->act;
	}
	mm_job j = { .w = w, .act = act, .act_bytes = ab, .n_tok = n_tok, .y = y, .bias = bias,
		     .dot = w->dot, .tile = w->tile };
	run(s, mm_task, &j, (w->n_out + ROWS_PER_TASK - 1) / ROWS_PER_TASK);
}

/* -------------------------------------------------- norms, GELU, attention */

static void layer_norm(const float *x, int n_tok, int n, const float *w, const float *b, float *y)
{
	for (int t = 0; t < n_tok; t++) {
		const float *xr = x + (size_t)t * n;
		float *yr = y + (size_t)t * n;
		double mean = 0, var = 0;
		for (int i = 0; i < n; i++)
			mean += xr[i];
		mean /= n;
		for (int i = 0; i < n; i++)
			var += (xr[i] - mean) * (xr[i] - mean);
		float inv = (float)(1.0 / sqrt(var / n + LN_EPS));
		for (int i = 0; i < n; i++)
			yr[i] = ((float)(xr[i] - mean)) * inv * w[i] + b[i];
	}
}

static void gelu(float *x, size_t n)
{
	vmath_gelu(x, n);
}

static float dotf(const float *a, const float *b, int n)
{
	float acc[8] = { 0 };
	int i = 0;
	for (; i + 8 <= n; i += 8)
		for (int k = 0; k < 8; k++)
			acc[k] += a[i + k] * b[i + k];
	float s = 0;
	for (; i < n; i++)
		s += a[i] * b[i];
	for (int k = 0; k < 8; k++)
		s += acc[k];
	return s;
}

typedef struct attn_job {
	wstate *s;
	const float *q, *k, *v;  /* rows of n_state; k, v: n_kv rows */
	float *kt;               /* K transposed (kt_task), written or read */
	float *out;
	int n_q, n_kv, n_head, d;
	int causal_past;         /* query i sees keys <= causal_past + i; -1: all */
} attn_job;

static void attn_task(void *arg, int task, int thread)
{
	const attn_job *j = arg;
	int n = j->n_head * j->d;
	int hd = task % j->n_head, i = task / j->n_head;
	float *sc = j->s->scores + (size_t)thread * (size_t)j->s->score_len;
	float scale = 1.0f / sqrtf((float)j->d);
	const float *qi = j->q + (size_t)i * n + (size_t)hd * j->d;
	int n_kv = j->causal_past >= 0 ? j->causal_past + i + 1 : j->n_kv;
	float mx = -INFINITY;

	for (int t = 0; t < n_kv; t++) {
		sc[t] = dotf(qi, j->k + (size_t)t * n + (size_t)hd * j->d, j->d) * scale;
		mx = sc[t] > mx ? sc[t] : mx;
	}
	float sum = 0;
	for (int t = 0; t < n_kv; t++) {
		sc[t] = expf(sc[t] - mx);
		sum += sc[t];
	}
	float *o = j->out + (size_t)i * n + (size_t)hd * j->d;
	memset(o, 0, sizeof *o * (size_t)j->d);
	for (int t = 0; t < n_kv; t++) {
		const float *vt = j->v + (size_t)t * n + (size_t)hd * j->d;
		float p = sc[t] / sum;
		for (int e = 0; e < j->d; e++)
			o[e] += p * vt[e];
	}
}

/* K (n_kv, n_state) -> kt, per head h the (d, pad16(n_kv)) matrix
 * kt[(h * d + e) * ldk + t] = K[t][h * d + e], padding columns zero. */
static void kt_task(void *arg, int task, int thread)
{
	const attn_job *j = arg;
	int n = j->n_head * j->d, ldk = pad16(j->n_kv);
	float *kt = j->kt + (size_t)task * j->d * ldk;
	(void)thread;
	for (int e = 0; e < j->d; e++) {
		float *row = kt + (size_t)e * ldk;
		for (int t = 0; t < j->n_kv; t++)
			row[t] = j->k[(size_t)t * n + (size_t)task * j->d + e];
		for (int t = j->n_kv; t < ldk; t++)
			row[t] = 0;
	}
}

/* One head, ATTN_QB queries: S = Q K^T (fgemm against kt), softmax rows,
 * out = P V (fgemm against V's rows as they are). */
static void attn_block_task(void *arg, int task, int thread)
{
	const attn_job *j = arg;
	int n = j->n_head * j->d, ldk = pad16(j->n_kv), hd = task % j->n_head;
	int i0 = task / j->n_head * ATTN_QB;
	int nq = j->n_q - i0 < ATTN_QB ? j->n_q - i0 : ATTN_QB;
	float *sc = j->s->scores + (size_t)thread * j->s->score_len;
	float scale = 1.0f / sqrtf((float)j->d);

	fgemm(nq, j->n_kv, j->d, j->q + (size_t)i0 * n + (size_t)hd * j->d, (size_t)n,
	      j->kt + (size_t)hd * j->d * ldk, (size_t)ldk, sc, (size_t)ldk, false);
	for (int i = 0; i < nq; i++) {
		float *r = sc + (size_t)i * ldk, mx = -INFINITY;
		for (int t = 0; t < j->n_kv; t++)
			mx = r[t] > mx ? r[t] : mx;
		float inv = 1.0f / vmath_softmax_exp(r, j->n_kv, scale, mx * scale);
		for (int t = 0; t < j->n_kv; t++)
			r[t] *= inv;
	}
	fgemm(nq, j->d, j->n_kv, sc, (size_t)ldk, j->v + (size_t)hd * j->d, (size_t)n,
	      j->out + (size_t)i0 * n + (size_t)hd * j->d, (size_t)n, false);
}

/* out = softmax(Q K^T / sqrt(d)) V per head. kt: K already transposed
 * (kt_task's layout; the decoder's cross K), or NULL to use k's rows. */
static void attention(wstate *s, const float *q, const float *k, float *kt, const float *v,
		      int n_q, int n_kv, int n_head, int causal_past, float *out)
{
	attn_job j = { .s = s, .q = q, .k = k, .kt = kt, .v = v, .out = out, .n_q = n_q,
		       .n_kv = n_kv, .n_head = n_head, .d = s->m->n_state / n_head,
		       .causal_past = causal_past };
	int blocks = n_head * ((n_q + ATTN_QB - 1) / ATTN_QB);
	if (kt) {
		run(s, attn_block_task, &j, blocks);
		return;
	}
	if (causal_past < 0 && n_q >= GEMM_MIN_TOK && n_kv <= s->cap_ctx &&
	    (size_t)ATTN_QB * (size_t)pad16(n_kv) <= s->score_len) {
		j.kt = s->kt;
		run(s, kt_task, &j, n_head);
		run(s, attn_block_task, &j, blocks);
		return;
	}
	run(s, attn_task, &j, n_q * n_head);
}

static void add(float *x, const float *y, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] += y[i];
}

/* x += MLP(LN(x)) over n_tok rows. */
static void mlp_block(wstate *s, const layer_w *w, int n_tok)
{
	int n = s->m->n_state;
	layer_norm(s->x, n_tok, n, w->mlp_ln_w, w->mlp_ln_b, s->h);
	matmul(s, &w->mlp0, s->h, n_tok, s->mlp, w->mlp0_b);
	gelu(s->mlp, (size_t)n_tok * 4 * (size_t)n);
	matmul(s, &w->mlp2, s->mlp, n_tok, s->a, w->mlp2_b);
	add(s->x, s->a, (size_t)n_tok * (size_t)n);
}

/* -------------------------------------------------------------- encoder */

int wstate_encode(wstate *s, const float *mel, int n_ctx)
{
	const wmodel *m = s->m;
	int n = m->n_state, n_mels = m->hp.n_mels, T1 = 2 * n_ctx;

	if (n_ctx < 1 || n_ctx > m->hp.n_audio_ctx)
		return -EINVAL;
	s->n_ctx = 0;   /* no encoder output until this one is complete */
	if (reserve(s, n_ctx, 0) < 0)
		return -ENOMEM;
	/* conv1: im2col over (n_mels, T1), zero padding 1 */
	for (int t = 0; t < T1; t++)
		for (int c = 0; c < n_mels; c++)
			for (int k = 0; k < 3; k++) {
				int src = t + k - 1;
				s->col[(size_t)t * 3 * n_mels + (size_t)c * 3 + k] =
					src >= 0 && src < T1 ? mel[(size_t)c * T1 + src] : 0.0f;
			}
	matmul(s, &m->conv1, s->col, T1, s->h1, m->conv1_b);
	gelu(s->h1, (size_t)T1 * n);
	/* conv2: stride 2 over (T1, n) */
	for (int t = 0; t < n_ctx; t++)
		for (int c = 0; c < n; c++)
			for (int k = 0; k < 3; k++) {
				int src = 2 * t + k - 1;
				s->col[(size_t)t * 3 * n + (size_t)c * 3 + k] =
					src >= 0 && src < T1 ? s->h1[(size_t)src * n + c] : 0.0f;
			}
	matmul(s, &m->conv2, s->col, n_ctx, s->x, m->conv2_b);
	gelu(s->x, (size_t)n_ctx * n);
	add(s->x, m->enc_pos, (size_t)n_ctx * n);

	for (int l = 0; l < m->hp.n_audio_layer; l++) {
		const layer_w *w = &m->enc[l];
		layer_norm(s->x, n_ctx, n, w->attn.ln_w, w->attn.ln_b, s->h);
		matmul(s, &w->attn.q, s->h, n_ctx, s->q, w->attn.qb);
		matmul(s, &w->attn.k, s->h, n_ctx, s->k, NULL);
		matmul(s, &w->attn.v, s->h, n_ctx, s->v, w->attn.vb);
		attention(s, s->q, s->k, NULL, s->v, n_ctx, n_ctx, m->hp.n_audio_head, -1, s->a);
		matmul(s, &w->attn.o, s->a, n_ctx, s->h, w->attn.ob);
		add(s->x, s->h, (size_t)n_ctx * n);
		mlp_block(s, w, n_ctx);
	}
	layer_norm(s->x, n_ctx, n, m->enc_ln_w, m->enc_ln_b, s->enc_out);

	size_t per = (size_t)s->cap_ctx * n, per_t = (size_t)pad16(s->cap_ctx) * n;
	for (int l = 0; l < m->hp.n_text_layer; l++) {
		const attn_w *c = &m->dec[l].cross;
		matmul(s, &c->k, s->enc_out, n_ctx, s->k, NULL);
		attn_job j = { .s = s, .k = s->k, .kt = s->cross_k + l * per_t, .n_kv = n_ctx,
			       .n_head = m->hp.n_text_head, .d = n / m->hp.n_text_head };
		run(s, kt_task, &j, j.n_head);
		matmul(s, &c->v, s->enc_out, n_ctx, s->cross_v + l * per, c->vb);
	}
	s->n_ctx = n_ctx;
	s->n_past = 0;
	return 0;
}

const float *wstate_encoder_out(const wstate *s, int *ret_n_ctx)
{
	*ret_n_ctx = s->n_ctx;
	return s->enc_out;
}

/* -------------------------------------------------------------- decoder */

int wstate_decode(wstate *s, const int32_t *tokens, int n_tok, float *logits)
{
	const wmodel *m = s->m;
	int n = m->n_state, p0 = s->n_past;

	if (n_tok < 1 || p0 + n_tok > m->hp.n_text_ctx || s->n_ctx < 1)
		return -EINVAL;
	if (reserve(s, 0, n_tok) < 0)
		return -ENOMEM;
	for (int i = 0; i < n_tok; i++) {
		if (tokens[i] < 0 || tokens[i] >= m->hp.n_vocab)
			return -EINVAL;
		float *xr = s->x + (size_t)i * n;
		quant_dequantize_row((int)m->tok_emb.type,
				     m->tok_emb.w + (size_t)tokens[i] * m->tok_emb.row_bytes, xr, n);
		add(xr, m->dec_pos + (size_t)(p0 + i) * n, (size_t)n);
	}
	size_t per_self = (size_t)m->hp.n_text_ctx * n, per_cross = (size_t)s->cap_ctx * n;
	size_t per_cross_t = (size_t)pad16(s->cap_ctx) * n;
	for (int l = 0; l < m->hp.n_text_layer; l++) {
		const layer_w *w = &m->dec[l];
		float *kc = s->self_k + l * per_self, *vc = s->self_v + l * per_self;
		layer_norm(s->x, n_tok, n, w->attn.ln_w, w->attn.ln_b, s->h);
		matmul(s, &w->attn.q, s->h, n_tok, s->q, w->attn.qb);
		matmul(s, &w->attn.k, s->h, n_tok, kc + (size_t)p0 * n, NULL);
		matmul(s, &w->attn.v, s->h, n_tok, vc + (size_t)p0 * n, w->attn.vb);
		attention(s, s->q, kc, NULL, vc, n_tok, p0 + n_tok, m->hp.n_text_head, p0, s->a);
		matmul(s, &w->attn.o, s->a, n_tok, s->h, w->attn.ob);
		add(s->x, s->h, (size_t)n_tok * n);

		layer_norm(s->x, n_tok, n, w->cross.ln_w, w->cross.ln_b, s->h);
		matmul(s, &w->cross.q, s->h, n_tok, s->q, w->cross.qb);
		attention(s, s->q, NULL, s->cross_k + l * per_cross_t, s->cross_v + l * per_cross,
			  n_tok, s->n_ctx, m->hp.n_text_head, -1, s->a);
		matmul(s, &w->cross.o, s->a, n_tok, s->h, w->cross.ob);
		add(s->x, s->h, (size_t)n_tok * n);
		mlp_block(s, w, n_tok);
	}
	s->n_past = p0 + n_tok;
	layer_norm(s->x + (size_t)(n_tok - 1) * n, 1, n, m->dec_ln_w, m->dec_ln_b, s->h);
	matmul(s, &m->tok_emb, s->h, 1, logits, NULL);
	return 0;
}

void wstate_decode_reset(wstate *s) { s->n_past = 0; }
int wstate_n_past(const wstate *s) { return s->n_past; }

/* ------------------------------------------- decoder state snapshots */

/* A snapshot: n_past, then per decoder layer its n_past K rows and V rows
 * (beam search keeps one per beam; wdecode.h). */
size_t wstate_kv_bytes(const wstate *s)
{
	const wmodel *m = s->m;
	return sizeof(double) + sizeof(float) * 2 * (size_t)m->hp.n_text_layer *
	       (size_t)s->n_past * (size_t)m->n_state;
}

void wstate_kv_save(const wstate *s, void *snap)
{
	const wmodel *m = s->m;
	size_t n = (size_t)m->n_state, rows = (size_t)s->n_past * n;
	size_t per_self = (size_t)m->hp.n_text_ctx * n;
	float *out = (float *)((char *)snap + sizeof(double));
	*(int *)snap = s->n_past;
	for (int l = 0; l < m->hp.n_text_layer; l++) {
		memcpy(out, s->self_k + l * per_self, sizeof *out * rows);
		memcpy(out + rows, s->self_v + l * per_self, sizeof *out * rows);
		out += 2 * rows;
	}
}

void wstate_kv_load(wstate *s, const void *snap)
{
	const wmodel *m = s->m;
	int n_past = *(const int *)snap;
	size_t n = (size_t)m->n_state, rows = (size_t)n_past * n;
	size_t per_self = (size_t)m->hp.n_text_ctx * n;
	const float *in = (const float *)((const char *)snap + sizeof(double));
	for (int l = 0; l < m->hp.n_text_layer; l++) {
		memcpy(s->self_k + l * per_self, in, sizeof *in * rows);
		memcpy(s->self_v + l * per_self, in + rows, sizeof *in * rows);
		in += 2 * rows;
	}
	s->n_past = n_past;
}
