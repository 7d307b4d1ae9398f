/*
 * wfile.c - whisper.cpp ggml model reader: bounds-checked parse over an
 * mmap. See wfile.h.
 */
#include "wfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct reader {
	const uint8_t *p;
	size_t size, pos;
	char *err;
	size_t err_len;
} reader;

__attribute__((format(printf, 2, 3)))
static int fail(reader *r, const char *fmt, ...)
{
	va_list ap;

	if (r->err && r->err_len) {
		va_start(ap, fmt);
		vsnprintf(r->err, r->err_len, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* n bytes at the cursor, or a "truncated in <what>" failure. */
static int rd(reader *r, void *dst, size_t n, const char *what)
{
	if (r->size - r->pos < n)
		return fail(r, "truncated in %s at offset %zu (needs %zu bytes, file has %zu)",
			    what, r->pos, n, r->size - r->pos);
	memcpy(dst, r->p + r->pos, n);
	r->pos += n;
	return 0;
}

static int rd_i32(reader *r, int32_t *v, const char *what) { return rd(r, v, 4, what); }

/* ---------------------------------------------------------------- types */

size_t wfile_type_block_bytes(uint32_t type)
{
	switch (type) {
	case WT_F32: return 4;
	case WT_F16: return 2;
	case WT_Q4_0: return 18;
	case WT_Q4_1: return 20;
	case WT_Q5_0: return 22;
	case WT_Q5_1: return 24;
	case WT_Q8_0: return 34;
	default: return 0;
	}
}

int wfile_type_block_elems(uint32_t type)
{
	switch (type) {
	case WT_F32: case WT_F16: return 1;
	case WT_Q4_0: case WT_Q4_1: case WT_Q5_0: case WT_Q5_1: case WT_Q8_0: return 32;
	default: return 0;
	}
}

const char *wfile_type_name(uint32_t type)
{
	static const char *const names[] = {
		[WT_F32] = "F32", [WT_F16] = "F16", [WT_Q4_0] = "Q4_0", [WT_Q4_1] = "Q4_1",
		[WT_Q5_0] = "Q5_0", [WT_Q5_1] = "Q5_1", [WT_Q8_0] = "Q8_0",
	};
	return type < sizeof names / sizeof names[0] ? names[type] : NULL;
}

static const char *tname(uint32_t type)
{
	const char *n = wfile_type_name(type);
	return n ? n : "unknown";
}

/* The weight type of a file's ftype (ggml_ftype numbers), or -1. */
static int wtype_of_ftype(int32_t base)
{
	switch (base) {
	case 0: return WT_F32;
	case 1: return WT_F16;
	case 2: return WT_Q4_0;
	case 3: return WT_Q4_1;
	case 7: return WT_Q8_0;
	case 8: return WT_Q5_0;
	case 9: return WT_Q5_1;
	default: return -1;
	}
}

/* -------------------------------------------------------------- hparams */

static int check_range(reader *r, const char *name, int32_t v, int32_t lo, int32_t hi)
{
	if (v < lo || v > hi)
		return fail(r, "hparams: %s = %d is out of range [%d, %d]", name, v, lo, hi);
	return 0;
}

static int read_hparams(reader *r, wfile *f)
{
	wfile_hparams *h = &f->hp;
	int32_t v[11];
	uint32_t magic = 0;
	int rc;

	if ((rc = rd(r, &magic, 4, "magic")) < 0)
		return rc;
	if (magic != WFILE_MAGIC)
		return fail(r, "bad magic 0x%08x (not a whisper.cpp ggml file; expected 0x%08x)",
			    magic, WFILE_MAGIC);
	if ((rc = rd(r, v, sizeof v, "hparams")) < 0)
		return rc;
	*h = (wfile_hparams){ v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10] };
	if ((rc = check_range(r, "n_vocab", h->n_vocab, 1, WFILE_MAX_VOCAB)) < 0 ||
	    (rc = check_range(r, "n_audio_ctx", h->n_audio_ctx, 1, WFILE_MAX_CTX)) < 0 ||
	    (rc = check_range(r, "n_audio_state", h->n_audio_state, 1, WFILE_MAX_STATE)) < 0 ||
	    (rc = check_range(r, "n_audio_head", h->n_audio_head, 1, WFILE_MAX_HEAD)) < 0 ||
	    (rc = check_range(r, "n_audio_layer", h->n_audio_layer, 1, WFILE_MAX_LAYER)) < 0 ||
	    (rc = check_range(r, "n_text_ctx", h->n_text_ctx, 1, WFILE_MAX_CTX)) < 0 ||
	    (rc = check_range(r, "n_text_state", h->n_text_state, 1, WFILE_MAX_STATE)) < 0 ||
	    (rc = check_range(r, "n_text_head", h->n_text_head, 1, WFILE_MAX_HEAD)) < 0 ||
	    (rc = check_range(r, "n_text_layer", h->n_text_layer, 1, WFILE_MAX_LAYER)) < 0 ||
	    (rc = check_range(r, "n_mels", h->n_mels, 1, WFILE_MAX_MELS)) < 0)
		return rc;
	if (h->n_audio_state % h->n_audio_head || h->n_text_state % h->n_text_head)
		return fail(r, "hparams: state width not a multiple of the head count "
			    "(audio %d/%d, text %d/%d)", h->n_audio_state, h->n_audio_head,
			    h->n_text_state, h->n_text_head);
	if (h->n_text_state != h->n_audio_state)
		return fail(r, "hparams: n_text_state %d != n_audio_state %d",
			    h->n_text_state, h->n_audio_state);
	if (h->ftype < 0)
		return fail(r, "hparams: ftype %d is negative", h->ftype);
	int wt = wtype_of_ftype(h->ftype % WFILE_QNT_FACTOR);
	int ver = h->ftype / WFILE_QNT_FACTOR;
	if (wt < 0)
		return fail(r, "hparams: ftype %d names no weight type this reader knows "
			    "(F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0)", h->ftype);
	if (wt != WT_F32 && wt != WT_F16 && ver != 2)
		return fail(r, "hparams: quantisation version %d (ftype %d); only version 2, "
			    "ggml's current block layout, is read", ver, h->ftype);
	if (ver > 2)
		return fail(r, "hparams: quantisation version %d (ftype %d) is newer than 2", ver,
			    h->ftype);
	f->wtype = (uint32_t)wt;
	return 0;
}

/* ---------------------------------------------------- filters and vocab */

static int read_filters(reader *r, wfile *f)
{
	int32_t n_mel = 0, n_fb = 0;
	int rc;

	if ((rc = rd_i32(r, &n_mel, "mel filters header")) < 0 ||
	    (rc = rd_i32(r, &n_fb, "mel filters header")) < 0)
		return rc;
	if (n_mel != f->hp.n_mels)
		return fail(r, "mel filters: %d bands, hparams say n_mels = %d", n_mel, f->hp.n_mels);
	if (n_fb != WFILE_N_FB)
		return fail(r, "mel filters: %d frequency bins, expected %d (n_fft 400)", n_fb,
			    WFILE_N_FB);
	size_t n = (size_t)n_mel * (size_t)n_fb;
	f->filters = malloc(n * sizeof(float));
	if (!f->filters)
		return -ENOMEM;
	if ((rc = rd(r, f->filters, n * sizeof(float), "mel filters")) < 0)
		return rc;
	f->n_mel = n_mel;
	f->n_fb = n_fb;
	return 0;
}

static int read_vocab(reader *r, wfile *f)
{
	int32_t n = 0;
	int rc;

	if ((rc = rd_i32(r, &n, "vocabulary count")) < 0)
		return rc;
	if (n < 0 || n > f->hp.n_vocab)
		return fail(r, "vocabulary: %d tokens stored, hparams say n_vocab = %d", n,
			    f->hp.n_vocab);
	/* each token needs at least its 4-byte length: refuse a count the
	 * file cannot hold before allocating for it */
	if ((size_t)n > (r->size - r->pos) / 4)
		return fail(r, "truncated in vocabulary: %d tokens cannot fit in the %zu bytes left",
			    n, r->size - r->pos);
	f->tok = calloc((size_t)n + 1, sizeof *f->tok);
	f->tok_len = calloc((size_t)n + 1, sizeof *f->tok_len);
	if (!f->tok || !f->tok_len)
		return -ENOMEM;
	for (int32_t i = 0; i < n; i++) {
		uint32_t len = 0;
		if ((rc = rd(r, &len, 4, "vocabulary")) < 0)
			return rc;
		if (len > WFILE_MAX_TOKEN)
			return fail(r, "vocabulary: token %d is %u bytes (limit %d)", i, len,
				    WFILE_MAX_TOKEN);
		if (r->size - r->pos < len)
			return fail(r, "truncated in vocabulary at token %d of %d", i, n);
		f->tok[i] = r->p + r->pos;
		f->tok_len[i] = len;
		r->pos += len;
	}
	f->n_tokens = n;
	return 0;
}

/* -------------------------------------------------------------- tensors */

enum kind { K_VEC, K_POS, K_CONV, K_MAT };

/* Per-layer tensors: name suffix, kind, dims as multiples of the width
 * (0 ends the list), whether only decoder layers have it. */
static const struct layer_tensor {
	const char *suffix;
	enum kind kind;
	int m0, m1;
	bool cross;
} layer_tensors[] = {
	{ "attn_ln.weight", K_VEC, 1, 0, false }, { "attn_ln.bias", K_VEC, 1, 0, false },
	{ "attn.query.weight", K_MAT, 1, 1, false }, { "attn.query.bias", K_VEC, 1, 0, false },
	{ "attn.key.weight", K_MAT, 1, 1, false },
	{ "attn.value.weight", K_MAT, 1, 1, false }, { "attn.value.bias", K_VEC, 1, 0, false },
	{ "attn.out.weight", K_MAT, 1, 1, false }, { "attn.out.bias", K_VEC, 1, 0, false },
	{ "mlp_ln.weight", K_VEC, 1, 0, false }, { "mlp_ln.bias", K_VEC, 1, 0, false },
	{ "mlp.0.weight", K_MAT, 1, 4, false }, { "mlp.0.bias", K_VEC, 4, 0, false },
	{ "mlp.2.weight", K_MAT, 4, 1, false }, { "mlp.2.bias", K_VEC, 1, 0, false },
	{ "cross_attn_ln.weight", K_VEC, 1, 0, true }, { "cross_attn_ln.bias", K_VEC, 1, 0, true },
	{ "cross_attn.query.weight", K_MAT, 1, 1, true },
	{ "cross_attn.query.bias", K_VEC, 1, 0, true },
	{ "cross_attn.key.weight", K_MAT, 1, 1, true },
	{ "cross_attn.value.weight", K_MAT, 1, 1, true },
	{ "cross_attn.value.bias", K_VEC, 1, 0, true },
	{ "cross_attn.out.weight", K_MAT, 1, 1, true },
	{ "cross_attn.out.bias", K_VEC, 1, 0, true },
};
#define N_LAYER_TENSORS 24
#define N_ENC_LAYER_TENSORS 15
#define N_GLOBALS 11

static const char *const global_names[N_GLOBALS] = {
	"encoder.positional_embedding", "encoder.conv1.weight", "encoder.conv1.bias",
	"encoder.conv2.weight", "encoder.conv2.bias", "encoder.ln_post.weight",
	"encoder.ln_post.bias", "decoder.positional_embedding",
	"decoder.token_embedding.weight", "decoder.ln.weight", "decoder.ln.bias",
};

typedef struct expect {
	int slot;              /* index among all expected tensors */
	enum kind kind;
	uint32_t n_dims;
	int64_t ne[3];
} expect;

static int n_expected(const wfile_hparams *h)
{
	return N_GLOBALS + N_ENC_LAYER_TENSORS * h->n_audio_layer +
	       N_LAYER_TENSORS * h->n_text_layer;
}

static void set_ne(expect *e, uint32_t n_dims, int64_t a, int64_t b, int64_t c)
{
	e->n_dims = n_dims;
	e->ne[0] = a;
	e->ne[1] = b;
	e->ne[2] = c;
}

/* What a tensor of this name must look like; false for a name no Whisper
 * model has. */
static bool expect_for(const wfile_hparams *h, const char *name, expect *e)
{
	int64_t s = h->n_audio_state;

	for (int i = 0; i < N_GLOBALS; i++) {
		if (strcmp(name, global_names[i]))
			continue;
		e->slot = i;
		switch (i) {
		case 0: e->kind = K_POS; set_ne(e, 2, s, h->n_audio_ctx, 1); break;
		case 1: e->kind = K_CONV; set_ne(e, 3, 3, h->n_mels, s); break;
		case 3: e->kind = K_CONV; set_ne(e, 3, 3, s, s); break;
		case 2: case 4: e->kind = K_POS; set_ne(e, 2, 1, s, 1); break;
		case 7: e->kind = K_POS; set_ne(e, 2, h->n_text_state, h->n_text_ctx, 1); break;
		case 8: e->kind = K_MAT; set_ne(e, 2, h->n_text_state, h->n_vocab, 1); break;
		default: e->kind = K_VEC; set_ne(e, 1, s, 1, 1); break;
		}
		return true;
	}
	bool enc = !strncmp(name, "encoder.blocks.", 15);
	bool dec = !strncmp(name, "decoder.blocks.", 15);
	if (!enc && !dec)
		return false;
	const char *p = name + 15;
	if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] != '.'))
		return false;
	long layer = 0;
	while (*p >= '0' && *p <= '9' && layer < 1000)
		layer = layer * 10 + (*p++ - '0');
	if (*p++ != '.' || layer >= (enc ? h->n_audio_layer : h->n_text_layer))
		return false;
	for (int i = 0; i < N_LAYER_TENSORS; i++) {
		const struct layer_tensor *lt = &layer_tensors[i];
		if (strcmp(p, lt->suffix) || (enc && lt->cross))
			continue;
		int64_t n = enc ? h->n_audio_state : h->n_text_state;
		e->kind = lt->kind;
		if (lt->kind == K_MAT)
			set_ne(e, 2, n * lt->m0, n * lt->m1, 1);
		else
			set_ne(e, 1, n * lt->m0, 1, 1);
		e->slot = enc ? N_GLOBALS + N_ENC_LAYER_TENSORS * (int)layer + i
			      : N_GLOBALS + N_ENC_LAYER_TENSORS * h->n_audio_layer +
				N_LAYER_TENSORS * (int)layer + i;
		return true;
	}
	return false;
}

static uint32_t type_for(const wfile *f, enum kind k)
{
	switch (k) {
	case K_MAT: return f->wtype;
	case K_CONV: return f->wtype == WT_F32 ? WT_F32 : WT_F16;
	default: return WT_F32;
	}
}

static int read_tensor(reader *r, wfile *f, wfile_tensor *t, int idx, int *slot)
{
	int32_t hdr[3] = { 0 }, ne[3] = { 1, 1, 1 };
	char name[WFILE_MAX_NAME + 1];
	expect e;
	int rc;

	if ((rc = rd(r, hdr, sizeof hdr, "tensor header")) < 0)
		return rc;
	if (hdr[0] < 1 || hdr[0] > 3)
		return fail(r, "tensor %d: %d dimensions (1 to 3 allowed)", idx, hdr[0]);
	if (hdr[1] < 1 || hdr[1] > WFILE_MAX_NAME)
		return fail(r, "tensor %d: name of %d bytes (1 to %d allowed)", idx, hdr[1],
			    WFILE_MAX_NAME);
	if ((rc = rd(r, ne, 4 * (size_t)hdr[0], "tensor dimensions")) < 0 ||
	    (rc = rd(r, name, (size_t)hdr[1], "tensor name")) < 0)
		return rc;
	name[hdr[1]] = 0;
	if (memchr(name, 0, (size_t)hdr[1]))
		return fail(r, "tensor %d: name contains a NUL byte", idx);
	if (!expect_for(&f->hp, name, &e))
		return fail(r, "unknown tensor '%s' (not part of a Whisper model with these hparams)",
			    name);
	if ((uint32_t)hdr[0] != e.n_dims || ne[0] != e.ne[0] || ne[1] != e.ne[1] ||
	    ne[2] != e.ne[2])
		return fail(r, "tensor '%s': shape %dd [%d, %d, %d], expected %ud [%lld, %lld, %lld]",
			    name, hdr[0], ne[0], ne[1], ne[2], e.n_dims, (long long)e.ne[0],
			    (long long)e.ne[1], (long long)e.ne[2]);
	uint32_t want = type_for(f, e.kind);
	if ((uint32_t)hdr[2] != want)
		return fail(r, "tensor '%s': type %s (%d), expected %s for a file of ftype %d",
			    name, tname((uint32_t)hdr[2]), hdr[2], tname(want), f->hp.ftype);
	int be = wfile_type_block_elems(want);
	if (e.ne[0] % be)
		return fail(r, "tensor '%s': rows of %lld values are not whole %s blocks of %d",
			    name, (long long)e.ne[0], tname(want), be);
	memcpy(t->name, name, (size_t)hdr[1] + 1);
	t->type = want;
	t->n_dims = e.n_dims;
	memcpy(t->ne, e.ne, sizeof t->ne);
	t->n_elems = e.ne[0] * e.ne[1] * e.ne[2];
	t->n_bytes = (size_t)(t->n_elems / be) * wfile_type_block_bytes(want);
	if (r->size - r->pos < t->n_bytes)
		return fail(r, "tensor '%s': data truncated (needs %zu bytes at offset %zu, "
			    "file has %zu)", name, t->n_bytes, r->pos, r->size - r->pos);
	t->offset = r->pos;
	t->data = r->p + r->pos;
	t->aligned = ((uintptr_t)t->data % (want == WT_F32 ? 4 : 2)) == 0;
	r->pos += t->n_bytes;
	*slot = e.slot;
	return 0;
}

/* Name of the expected tensor in slot s (for "missing" messages). */
static void slot_name(const wfile_hparams *h, int s, char *buf, size_t len)
{
	if (s < N_GLOBALS) {
		snprintf(buf, len, "%s", global_names[s]);
		return;
	}
	s -= N_GLOBALS;
	if (s < N_ENC_LAYER_TENSORS * h->n_audio_layer) {
		snprintf(buf, len, "encoder.blocks.%d.%s", s / N_ENC_LAYER_TENSORS,
			 layer_tensors[s % N_ENC_LAYER_TENSORS].suffix);
		return;
	}
	s -= N_ENC_LAYER_TENSORS * h->n_audio_layer;
	snprintf(buf, len, "decoder.blocks.%d.%s", s / N_LAYER_TENSORS,
		 layer_tensors[s % N_LAYER_TENSORS].suffix);
}

static int read_tensors(reader *r, wfile *f)
{
	int n = n_expected(&f->hp), rc = 0;
	int *seen = calloc((size_t)n, sizeof *seen);   /* slot -> index + 1 */

	f->tensors = calloc((size_t)n, sizeof *f->tensors);
	if (!seen || !f->tensors) {
		rc = -ENOMEM;
		goto out_free_seen;
	}
	while (r->pos < r->size) {
		int slot = 0;
		if (f->n_tensors == n) {
			rc = fail(r, "more than the %d tensors a model with these hparams has "
				  "(extra data at offset %zu)", n, r->pos);
			goto out_free_seen;
		}
		wfile_tensor *t = &f->tensors[f->n_tensors];
		if ((rc = read_tensor(r, f, t, f->n_tensors, &slot)) < 0)
			goto out_free_seen;
		if (seen[slot]) {
			rc = fail(r, "tensor '%s' appears twice", t->name);
			goto out_free_seen;
		}
		seen[slot] = ++f->n_tensors;
	}
	if (f->n_tensors == 0) {
		rc = fail(r, "no tensors (a vocabulary-only test file?)");
		goto out_free_seen;
	}
	for (int s = 0; s < n; s++) {
		if (!seen[s]) {
			char name[96];
			slot_name(&f->hp, s, name, sizeof name);
			rc = fail(r, "missing tensor '%s' (file has %d of %d)", name, f->n_tensors, n);
			goto out_free_seen;
		}
	}
out_free_seen:
	free(seen);
	return rc;
}

/* ----------------------------------------------------------- open/close */

static int parse(const uint8_t *p, size_t size, bool mapped, wfile **ret, char *err,
		 size_t err_len)
{
	reader r = { .p = p, .size = size, .err = err, .err_len = err_len };
	wfile *f = calloc(1, sizeof *f);
	int rc;

	if (!f)
		return -ENOMEM;
	f->base = p;
	f->size = size;
	f->mapped = mapped;
	if ((rc = read_hparams(&r, f)) < 0 || (rc = read_filters(&r, f)) < 0 ||
	    (rc = read_vocab(&r, f)) < 0 || (rc = read_tensors(&r, f)) < 0) {
		if (rc == -ENOMEM)
			fail(&r, "out of memory");
		f->mapped = false;   /* the caller unmaps on failure */
		wfile_close(f);
		return rc;
	}
	*ret = f;
	return 0;
}

int wfile_open_mem(const void *data, size_t size, wfile **ret, char *err, size_t err_len)
{
	return parse(data, size, false, ret, err, err_len);
}

int wfile_open(const char *path, wfile **ret, char *err, size_t err_len)
{
	struct stat st;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, err_len, "%s: %s", path, strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		snprintf(err, err_len, "%s: fstat: %s", path, strerror(-rc));
		goto out_close;
	}
	if (st.st_size == 0) {
		rc = -EINVAL;
		snprintf(err, err_len, "%s: empty file", path);
		goto out_close;
	}
	void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED) {
		rc = -errno;
		snprintf(err, err_len, "%s: mmap: %s", path, strerror(-rc));
		goto out_close;
	}
	char why[240] = "";
	rc = parse(map, (size_t)st.st_size, true, ret, why, sizeof why);
	if (rc < 0) {
		snprintf(err, err_len, "%s: %s", path, why);
		munmap(map, (size_t)st.st_size);
	}
out_close:
	close(fd);
	return rc;
}

void wfile_close(wfile *f)
{
	if (!f)
		return;
	if (f->mapped)
		munmap((void *)f->base, f->size);
	free(f->filters);
	free(f->tok);
	free(f->tok_len);
	free(f->tensors);
	free(f);
}

const wfile_tensor *wfile_tensor_get(const wfile *f, const char *name)
{
	for (int i = 0; i < f->n_tensors; i++)
		if (!strcmp(f->tensors[i].name, name))
			return &f->tensors[i];
	return NULL;
}
