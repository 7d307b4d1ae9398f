/*
 * test_whisper_file.c - the whisper.cpp ggml model reader (wfile.c) on a
 * small model built here byte by byte, and on malformed variants:
 * truncated at every byte (each section's cut named in the message), bad
 * magic, absurd hparams, wrong filter shape, vocabulary overruns, unknown,
 * misshapen, mistyped, duplicated and missing tensors, trailing bytes.
 * Buffers are exact-size heap copies so ASan sees any read past the end.
 */
#include "../../services/stt/whisper/wfile.h"
#include "vx_test.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct img { uint8_t *b; size_t n, cap; } img;

static void put(img *m, const void *p, size_t n)
{
	if (m->n + n > m->cap) {
		m->cap = (m->n + n) * 2;
		m->b = realloc(m->b, m->cap);
	}
	memcpy(m->b + m->n, p, n);
	m->n += n;
}
static void i32(img *m, int32_t v) { put(m, &v, 4); }

/* The test model: hparams of a small Whisper, F16 (or wtype) weights. */
enum { VOCAB = 300, TOKENS = 258, CTX = 8, STATE = 32, HEAD = 2, MELS = 4, TCTX = 6 };

/* Offsets in the good image: where each section starts, for the cuts. */
static struct { size_t hparams, filters, vocab, tensors, tensor1; } at;

static void tensor(img *m, const char *name, int type, int nd, int a, int b, int c)
{
	int ne[3] = { a, b, c };
	int be = wfile_type_block_elems((uint32_t)type);
	size_t n = (size_t)a * (size_t)b * (size_t)c;
	size_t bytes = n / (size_t)be * wfile_type_block_bytes((uint32_t)type);
	i32(m, nd);
	i32(m, (int32_t)strlen(name));
	i32(m, type);
	for (int i = 0; i < nd; i++)
		i32(m, ne[i]);
	put(m, name, strlen(name));
	uint8_t *z = calloc(1, bytes);
	for (size_t i = 0; i < bytes; i++)
		z[i] = (uint8_t)(i * 7);
	put(m, z, bytes);
	free(z);
}

static void layer(img *m, const char *pfx, int l, int wt, int cross)
{
	static const char *parts[] = { "attn", "cross_attn" };
	char nm[80];
	for (int p = 0; p <= cross; p++) {
		const char *q = parts[p];
#define T(suffix, type, nd, a, b) \
	snprintf(nm, sizeof nm, "%s.blocks.%d.%s%s", pfx, l, q, suffix); \
	tensor(m, nm, type, nd, a, b, 1)
		T("_ln.weight", 0, 1, STATE, 1); T("_ln.bias", 0, 1, STATE, 1);
		T(".query.weight", wt, 2, STATE, STATE); T(".query.bias", 0, 1, STATE, 1);
		T(".key.weight", wt, 2, STATE, STATE);
		T(".value.weight", wt, 2, STATE, STATE); T(".value.bias", 0, 1, STATE, 1);
		T(".out.weight", wt, 2, STATE, STATE); T(".out.bias", 0, 1, STATE, 1);
#undef T
	}
	const char *q = "";
#define T(suffix, type, nd, a, b) \
	snprintf(nm, sizeof nm, "%s.blocks.%d.%s%s", pfx, l, q, suffix); \
	tensor(m, nm, type, nd, a, b, 1)
	T("mlp_ln.weight", 0, 1, STATE, 1); T("mlp_ln.bias", 0, 1, STATE, 1);
	T("mlp.0.weight", wt, 2, STATE, 4 * STATE); T("mlp.0.bias", 0, 1, 4 * STATE, 1);
	T("mlp.2.weight", wt, 2, 4 * STATE, STATE); T("mlp.2.bias", 0, 1, STATE, 1);
#undef T
}

/* ftype: the file's; wt: its matrix type; n_layer audio and text layers. */
static img build(int ftype, int wt, int n_layer)
{
	img m = { 0 };
	uint32_t magic = WFILE_MAGIC;
	int conv = wt == 0 ? 0 : 1;

	put(&m, &magic, 4);
	at.hparams = m.n;
	int32_t hp[11] = { VOCAB, CTX, STATE, HEAD, n_layer, TCTX, STATE, HEAD, n_layer, MELS, ftype };
	put(&m, hp, sizeof hp);
	at.filters = m.n;
	i32(&m, MELS);
	i32(&m, WFILE_N_FB);
	for (int i = 0; i < MELS * WFILE_N_FB; i++) {
		float f = (float)i / 1000.0f;
		put(&m, &f, 4);
	}
	at.vocab = m.n;
	i32(&m, TOKENS);
	for (int i = 0; i < TOKENS; i++) {
		uint8_t tok[3] = { (uint8_t)i, 'x', 'y' };
		uint32_t len = i < 256 ? 1 : 3;
		put(&m, &len, 4);
		put(&m, tok, len);
	}
	at.tensors = m.n;
	tensor(&m, "encoder.positional_embedding", 0, 2, STATE, CTX, 1);
	at.tensor1 = m.n;
	tensor(&m, "encoder.conv1.weight", conv, 3, 3, MELS, STATE);
	tensor(&m, "encoder.conv1.bias", 0, 2, 1, STATE, 1);
	tensor(&m, "encoder.conv2.weight", conv, 3, 3, STATE, STATE);
	tensor(&m, "encoder.conv2.bias", 0, 2, 1, STATE, 1);
	for (int l = 0; l < n_layer; l++)
		layer(&m, "encoder", l, wt, 0);
	tensor(&m, "encoder.ln_post.weight", 0, 1, STATE, 1, 1);
	tensor(&m, "encoder.ln_post.bias", 0, 1, STATE, 1, 1);
	tensor(&m, "decoder.positional_embedding", 0, 2, STATE, TCTX, 1);
	tensor(&m, "decoder.token_embedding.weight", wt, 2, STATE, VOCAB, 1);
	for (int l = 0; l < n_layer; l++)
		layer(&m, "decoder", l, wt, 1);
	tensor(&m, "decoder.ln.weight", 0, 1, STATE, 1, 1);
	tensor(&m, "decoder.ln.bias", 0, 1, STATE, 1, 1);
	return m;
}

/* Parses an exact-size copy of the first n bytes; returns rc, fills err. */
static int parse_n(const img *m, size_t n, char *err, size_t len, wfile **ret)
{
	uint8_t *copy = malloc(n ? n : 1);
	wfile *f = NULL;
	memcpy(copy, m->b, n);
	err[0] = 0;
	int rc = wfile_open_mem(copy, n, &f, err, len);
	if (ret && rc == 0) {
		*ret = f;   /* copy leaks into the caller's hands: freed with it */
		return rc;
	}
	wfile_close(f);
	free(copy);
	return rc;
}

static int refused_with(const img *m, const char *want)
{
	char err[256];
	int rc = parse_n(m, m->n, err, sizeof err, NULL);
	if (rc != -EINVAL || !strstr(err, want)) {
		fprintf(stderr, "  rc %d, err \"%s\", wanted \"%s\"\n", rc, err, want);
		return 0;
	}
	return 1;
}

static void poke(img *m, size_t off, int32_t v) { memcpy(m->b + off, &v, 4); }

VX_TEST(reads_a_whole_model_in_place)
{
	img m = build(1, WT_F16, 2);
	char err[256];
	wfile *f = NULL;
	VX_CHECK_INT(parse_n(&m, m.n, err, sizeof err, &f), 0);
	if (!f) {
		fprintf(stderr, "  %s\n", err);
		free(m.b);
		return;
	}
	VX_CHECK_INT(f->hp.n_vocab, VOCAB);
	VX_CHECK_INT(f->hp.n_audio_layer, 2);
	VX_CHECK_INT(f->wtype, WT_F16);
	VX_CHECK_INT(f->n_mel, MELS);
	VX_CHECK(f->filters[1] == 0.001f);
	VX_CHECK_INT(f->n_tokens, TOKENS);
	VX_CHECK_INT(f->tok_len[257], 3);
	VX_CHECK(!memcmp(f->tok[257], "\001xy", 3));
	VX_CHECK_INT(f->n_tensors, 11 + 15 * 2 + 24 * 2);
	const wfile_tensor *t = wfile_tensor_get(f, "decoder.blocks.1.cross_attn.key.weight");
	VX_CHECK(t != NULL);
	if (t) {
		VX_CHECK_INT(t->type, WT_F16);
		VX_CHECK_INT(t->n_bytes, STATE * STATE * 2);
		VX_CHECK(t->data == f->base + t->offset);   /* in place, not copied */
	}
	t = wfile_tensor_get(f, "encoder.conv1.weight");
	VX_CHECK(t && t->n_dims == 3 && t->ne[0] == 3 && t->ne[1] == MELS && t->ne[2] == STATE);
	VX_CHECK(wfile_tensor_get(f, "encoder.blocks.0.cross_attn.key.weight") == NULL);
	void *base = (void *)f->base;
	wfile_close(f);
	free(base);
	free(m.b);
}

VX_TEST(reads_quantised_and_f32_files)
{
	static const struct { int ftype, wt; } cases[] = {
		{ 0, WT_F32 }, { 2002, WT_Q4_0 }, { 2003, WT_Q4_1 }, { 2007, WT_Q8_0 },
		{ 2008, WT_Q5_0 }, { 2009, WT_Q5_1 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		img m = build(cases[i].ftype, cases[i].wt, 1);
		char err[256];
		wfile *f = NULL;
		int rc = parse_n(&m, m.n, err, sizeof err, &f);
		VX_CHECK_INT(rc, 0);
		if (rc)
			fprintf(stderr, "  ftype %d: %s\n", cases[i].ftype, err);
		if (f) {
			VX_CHECK_INT(f->wtype, cases[i].wt);
			void *base = (void *)f->base;
			wfile_close(f);
			free(base);
		}
		free(m.b);
	}
}

VX_TEST(opens_by_mmap_and_names_missing_files)
{
	img m = build(1, WT_F16, 1);
	char path[] = "/tmp/test_whisper_file_XXXXXX", err[256];
	int fd = mkstemp(path);
	VX_CHECK(fd >= 0 && write(fd, m.b, m.n) == (ssize_t)m.n);
	close(fd);
	wfile *f = NULL;
	VX_CHECK_INT(wfile_open(path, &f, err, sizeof err), 0);
	VX_CHECK(f && f->mapped && f->size == m.n);
	wfile_close(f);
	unlink(path);
	f = NULL;
	VX_CHECK_INT(wfile_open(path, &f, err, sizeof err), -ENOENT);
	VX_CHECK(f == NULL && strstr(err, path));
	free(m.b);
}

/* Every prefix of the file is refused, and the message names the section
 * the cut falls in. */
VX_TEST(truncation_at_every_byte_is_refused)
{
	img m = build(1, WT_F16, 1);
	char err[256];
	int bad = 0;
	for (size_t n = 0; n < m.n; n++) {
		int rc = parse_n(&m, n, err, sizeof err, NULL);
		const char *want = n < at.hparams ? "truncated in magic"
			: n < at.filters ? "truncated in hparams"
			: n < at.filters + 8 ? "truncated in mel filters header"
			: n < at.vocab ? "truncated in mel filters"
			: n < at.tensors ? "vocabulary"
			: n == at.tensors ? "no tensors"
			: n == at.tensor1 ? "missing tensor 'encoder.conv1.weight'"
			: n < at.tensor1 ? "truncated" : NULL;
		if (rc != -EINVAL || (want && !strstr(err, want)) ||
		    (!want && !strstr(err, "truncated") && !strstr(err, "missing tensor"))) {
			if (bad++ < 5)
				fprintf(stderr, "  cut at %zu: rc %d \"%s\" (wanted %s)\n", n, rc, err,
					want ? want : "truncated/missing");
		}
	}
	VX_CHECK_INT(bad, 0);
	free(m.b);
}

VX_TEST(bad_magic_is_refused)
{
	img m = build(1, WT_F16, 1);
	m.b[0] ^= 1;
	VX_CHECK(refused_with(&m, "bad magic"));
	free(m.b);
}

VX_TEST(absurd_hparams_are_refused)
{
	static const struct { int idx; int32_t v; const char *want; } cases[] = {
		{ 0, 0, "n_vocab = 0" }, { 0, 1 << 30, "n_vocab" }, { 1, -1, "n_audio_ctx" },
		{ 2, 1 << 20, "n_audio_state" }, { 3, 0, "n_audio_head" }, { 3, 3, "multiple of the head" },
		{ 4, 1000, "n_audio_layer" }, { 5, 1 << 20, "n_text_ctx" }, { 6, 64, "n_text_state 64" },
		{ 7, -5, "n_text_head" }, { 8, 0, "n_text_layer" }, { 9, 100000, "n_mels" },
		{ 10, 5, "ftype 5" }, { 10, -1, "ftype -1" }, { 10, 1007, "quantisation version 1" },
		{ 10, 3001, "newer than 2" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		img m = build(1, WT_F16, 1);
		poke(&m, at.hparams + 4 * (size_t)cases[i].idx, cases[i].v);
		if (!refused_with(&m, cases[i].want)) {
			fprintf(stderr, "  case %zu\n", i);
			vx_test_case_failed = 1;
		}
		free(m.b);
	}
}

VX_TEST(filter_and_vocabulary_shapes_are_checked)
{
	img m = build(1, WT_F16, 1);
	poke(&m, at.filters, MELS + 1);
	VX_CHECK(refused_with(&m, "5 bands, hparams say n_mels = 4"));
	poke(&m, at.filters, MELS);
	poke(&m, at.filters + 4, 257);
	VX_CHECK(refused_with(&m, "257 frequency bins"));
	poke(&m, at.filters + 4, WFILE_N_FB);
	poke(&m, at.vocab, VOCAB + 1);
	VX_CHECK(refused_with(&m, "301 tokens stored"));
	poke(&m, at.vocab, -1);
	VX_CHECK(refused_with(&m, "-1 tokens stored"));
	poke(&m, at.vocab, TOKENS);
	poke(&m, at.vocab + 4, 5000);
	VX_CHECK(refused_with(&m, "token 0 is 5000 bytes"));
	poke(&m, at.vocab + 4, 1000);
	VX_CHECK(refused_with(&m, ""));   /* swallows the rest: some refusal */
	free(m.b);
}

VX_TEST(bad_tensors_are_refused_with_their_name)
{
	img m = build(1, WT_F16, 1);
	size_t t1 = at.tensor1;   /* "encoder.conv1.weight": 3 dims, F16 */
	poke(&m, t1, 4);
	VX_CHECK(refused_with(&m, "tensor 1: 4 dimensions"));
	poke(&m, t1, 3);
	poke(&m, t1 + 4, 0);
	VX_CHECK(refused_with(&m, "tensor 1: name of 0 bytes"));
	poke(&m, t1 + 4, 20);
	poke(&m, t1 + 8, WT_F32);
	VX_CHECK(refused_with(&m, "'encoder.conv1.weight': type F32 (0), expected F16"));
	poke(&m, t1 + 8, 99);
	VX_CHECK(refused_with(&m, "type unknown (99)"));
	poke(&m, t1 + 8, WT_F16);
	poke(&m, t1 + 16, MELS + 1);
	VX_CHECK(refused_with(&m, "'encoder.conv1.weight': shape 3d [3, 5, 32], expected 3d [3, 4, 32]"));
	poke(&m, t1 + 16, MELS);
	m.b[t1 + 24 + 8] = 'X';   /* "encoder.Xonv1.weight" */
	VX_CHECK(refused_with(&m, "unknown tensor 'encoder.Xonv1.weight'"));
	memcpy(m.b + t1 + 24, "encoder.ln_post.bias", 20);   /* 20 bytes: same length */
	VX_CHECK(refused_with(&m, "'encoder.ln_post.bias': shape 3d"));
	free(m.b);

	m = build(1, WT_F16, 1);
	img extra = { 0 };
	put(&extra, m.b, m.n);
	put(&extra, m.b + at.tensors, at.tensor1 - at.tensors);   /* pos embedding again */
	VX_CHECK(refused_with(&extra, "more than the"));
	free(extra.b);
	free(m.b);

	/* a duplicate in place of the last tensor (same size: ln.bias / ln.weight) */
	m = build(1, WT_F16, 1);
	size_t last = m.n - (12 + 4 + 15 + STATE * 4);
	VX_CHECK(!memcmp(m.b + last + 16, "decoder.ln.bias", 15));
	memcpy(m.b + last + 16, "decoder.ln.XXXX", 15);
	VX_CHECK(refused_with(&m, "unknown tensor 'decoder.ln.XXXX'"));
	m.n = last;
	VX_CHECK(refused_with(&m, "missing tensor 'decoder.ln.bias'"));
	m.n = last + 5;
	VX_CHECK(refused_with(&m, "truncated in tensor header"));
	free(m.b);
}

VX_TEST(layer_names_out_of_range_are_unknown)
{
	img m = build(1, WT_F16, 1);
	img bad = { 0 };
	/* rename encoder.blocks.0.* to encoder.blocks.1.* (only 1 layer) */
	put(&bad, m.b, m.n);
	for (size_t i = at.tensors; i + 17 < bad.n; i++)
		if (!memcmp(bad.b + i, "encoder.blocks.0.", 17)) {
			bad.b[i + 15] = '1';
			break;
		}
	VX_CHECK(refused_with(&bad, "unknown tensor 'encoder.blocks.1.attn_ln.weight'"));
	free(bad.b);
	free(m.b);
}

VX_TEST_MAIN(reads_a_whole_model_in_place, reads_quantised_and_f32_files,
	     opens_by_mmap_and_names_missing_files, truncation_at_every_byte_is_refused,
	     bad_magic_is_refused, absurd_hparams_are_refused,
	     filter_and_vocabulary_shapes_are_checked, bad_tensors_are_refused_with_their_name,
	     layer_names_out_of_range_are_unknown)
