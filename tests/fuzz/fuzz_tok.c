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
 */
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

static void same_ids(const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
	if (na != nb || (na && memcmp(a, b, na * sizeof(*a)) != 0))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
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
