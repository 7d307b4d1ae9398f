/*
 * fuzz_tok.c - the GGUF tokenizer on any text, with the small made-up
 * vocabularies in tests/fuzz/data/ (tests/gguf/tokref.py vocab ...: BPE
 * with the qwen2, llama-bpe and gpt2 pre-tokenizers, and SPM).
 *
 * Input: byte 0 picks the vocabulary (bits 0-1) and parse_special (bit 2);
 * the rest is the text. Checked: every id is in the vocabulary and has a
 * piece; byte-level BPE without special parsing gives back the text
 * exactly; tok_encode_masked with an all-0 / all-1 mask equals tok_encode
 * without / with special parsing.
 *
 * With bit 3 of byte 0 set the vocabulary comes from the input too (as a
 * GGUF file's tokenizer.ggml.* would give it): byte 1 picks the model
 * (bit 0: gpt2 / llama), the pre-tokenizer (bits 1-2) and whether tokens
 * get mixed types (bit 3); bytes 2-4 are bos, eos and unk (0xFF = none);
 * then tokens separated by 0x01 up to a 0x02, merges likewise, then the
 * text. Checked: tok_new refuses or builds; encode gives ids in range.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../gguf/tok_fixture.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const vocab_files[4] = {
	"vocab_bpe_qwen2.json", "vocab_bpe_llama-bpe.json",
	"vocab_bpe_gpt2.json", "vocab_spm.json",
};
static tok *toks[4];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	for (int i = 0; i < 4; i++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", FUZZ_DATA_DIR, vocab_files[i]);
		if (tok_fixture_load(path, &toks[i]) != 0) {
			fprintf(stderr, "fuzz_tok: cannot load %s\n", path);
			abort();
		}
	}
	return 0;
}

static const char *const pres[4] = { NULL, "qwen2", "llama-bpe", "gpt2" };

/* Splits data[*pos..] at 0x01 up to a 0x02 (or the end) into parts. */
static size_t split_list(const uint8_t *data, size_t size, size_t *pos,
			 const char **ptrs, size_t *lens, size_t max)
{
	size_t n = 0, start = *pos, i = *pos;
	for (; i <= size; i++) {
		if (i < size && data[i] != 1 && data[i] != 2)
			continue;
		if (n < max && (i > start || i < size)) {
			ptrs[n] = (const char *)data + start;
			lens[n++] = i - start;
		}
		start = i + 1;
		if (i == size || data[i] == 2)
			break;
	}
	*pos = i < size ? i + 1 : size;
	return n;
}

static int32_t id_of(uint8_t b)
{
	return b == 0xFF ? -1 : b;
}

static void fuzz_vocab(const uint8_t *data, size_t size)
{
	enum { MAXN = 512 };
	static const char *tv[MAXN], *mv[MAXN];
	static size_t tl[MAXN], ml[MAXN];
	static float sv[MAXN];
	static int32_t yv[MAXN];
	if (size < 5)
		return;
	size_t pos = 5;
	size_t nt = split_list(data, size, &pos, tv, tl, MAXN);
	size_t nm = split_list(data, size, &pos, mv, ml, MAXN);
	for (size_t i = 0; i < nt; i++) {
		sv[i] = -(float)i;
		yv[i] = data[1] & 8 ? 1 + (int32_t)((tl[i] * 31 + i) % 6) : 1;
	}
	tok_spec spec = {
		.model = data[1] & 1 ? "llama" : "gpt2", .pre = pres[(data[1] >> 1) & 3],
		.tokens = tv, .token_lens = tl, .n_tokens = nt, .scores = sv,
		.types = yv, .merges = mv, .merge_lens = ml, .n_merges = nm,
		.bos = id_of(data[2]), .eos = id_of(data[3]), .eot = -1,
		.unk = id_of(data[4]), .pad = -1, .add_bos = true,
	};
	tok *t = NULL;
	if (tok_new(&spec, &t) != 0)
		return;
	const char *text = (const char *)data + pos;
	size_t len = size - pos, max = 4 * len + 8, n = 0;
	int32_t *ids = malloc(max * sizeof(*ids));
	if (!ids)
		abort();
	for (int special = 0; special < 2; special++) {
		int r = tok_encode(t, text, len, special, ids, max, &n);
		if (r != 0 && r != -E2BIG)
			abort();
		for (size_t i = 0; r == 0 && i < n; i++) {
			char p[TOK_PIECE_MAX];
			if (ids[i] < 0 || (size_t)ids[i] >= nt ||
			    tok_piece(t, ids[i], p, sizeof(p)) < 0)
				abort();
			(void)tok_is_eog(t, ids[i]);
			(void)tok_is_control(t, ids[i]);
		}
	}
	for (size_t i = 0; i < nt; i++)
		if (tok_find(t, tv[i], tl[i]) < 0)
			abort();
	free(ids);
	tok_free(t);
}

static void same_ids(const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
	if (na != nb || (na && memcmp(a, b, na * sizeof(*a)) != 0))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 8) {
		fuzz_vocab(data, size);
		return 0;
	}
	const tok *t = toks[data[0] & 3];
	bool special = data[0] & 4;
	bool bpe = (data[0] & 3) != 3;
	const char *text = (const char *)data + 1;
	size_t len = size - 1, max = 2 * len + 8, n = 0, n2 = 0;
	int32_t *ids = malloc(max * sizeof(*ids));
	int32_t *ids2 = malloc(max * sizeof(*ids2));
	unsigned char *mask = malloc(len + 1);
	char *back = malloc(len * 2 + 16);
	if (!ids || !ids2 || !mask || !back)
		abort();

	if (tok_encode(t, text, len, special, ids, max, &n) != 0)
		abort();
	size_t blen = 0;
	bool fits = true;
	for (size_t i = 0; i < n; i++) {
		char p[TOK_PIECE_MAX];
		if (ids[i] < 0 || (size_t)ids[i] >= tok_n_vocab(t))
			abort();
		int l = tok_piece(t, ids[i], p, sizeof(p));
		if (l < 0 || l > TOK_PIECE_MAX)
			abort();
		if (blen + (size_t)l <= len * 2 + 16)
			memcpy(back + blen, p, (size_t)l);
		else
			fits = false;
		blen += (size_t)l;
	}
	if (bpe && !special && (!fits || blen != len || (len && memcmp(back, text, len) != 0)))
		abort();

	memset(mask, special ? 1 : 0, len + 1);
	if (tok_encode_masked(t, text, len, mask, ids2, max, &n2) != 0)
		abort();
	same_ids(ids, n, ids2, n2);

	free(ids);
	free(ids2);
	free(mask);
	free(back);
	return 0;
}
