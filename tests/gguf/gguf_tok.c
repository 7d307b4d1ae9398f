/*
 * gguf_tok - test tool: tokenises stdin with a vocabulary written by
 * tests/gguf/tokref.py and prints {"ids":[...],"decoded_hex":"..."} where
 * decoded_hex is the concatenation of tok_piece() of every id.
 *
 *   gguf_tok VOCAB.json [--parse-special] [--bench N] < text
 *
 * --bench N encodes the text N times and adds "ms_per_encode" and
 * "ms_load" (JSON parse + tok_new).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tok_fixture.h"

#define GGUF_TOK_MAX_INPUT (16u << 20)

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	bool parse_special = false;
	int bench = 0, rc;
	const char *vocab = NULL;
	tok *t;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--parse-special") == 0)
			parse_special = true;
		else if (strcmp(argv[i], "--bench") == 0 && i + 1 < argc)
			bench = atoi(argv[++i]);
		else
			vocab = argv[i];
	}
	if (!vocab) {
		fprintf(stderr, "usage: gguf_tok VOCAB.json [--parse-special] [--bench N] < text\n");
		return 2;
	}
	double l0 = now_ms();
	rc = tok_fixture_load(vocab, &t);
	double load_ms = now_ms() - l0;
	if (rc) {
		fprintf(stderr, "gguf_tok: %s: %s\n", vocab, strerror(-rc));
		return 1;
	}
	char *text = malloc(GGUF_TOK_MAX_INPUT);
	int32_t *ids = malloc(GGUF_TOK_MAX_INPUT * sizeof(*ids));
	if (!text || !ids) {
		fprintf(stderr, "gguf_tok: out of memory\n");
		return 1;
	}
	size_t len = fread(text, 1, GGUF_TOK_MAX_INPUT, stdin), n = 0;
	double t0 = now_ms();
	for (int k = 0; k < (bench > 0 ? bench : 1); k++) {
		rc = tok_encode(t, text, len, parse_special, ids, GGUF_TOK_MAX_INPUT, &n);
		if (rc) {
			fprintf(stderr, "gguf_tok: encode: %s\n", strerror(-rc));
			return 1;
		}
	}
	double ms = (now_ms() - t0) / (bench > 0 ? bench : 1);
	printf("{\"ids\":[");
	for (size_t i = 0; i < n; i++)
		printf("%s%d", i ? "," : "", ids[i]);
	printf("],\"decoded_hex\":\"");
	for (size_t i = 0; i < n; i++) {
		char p[TOK_PIECE_MAX];
		int l = tok_piece(t, ids[i], p, sizeof(p));
		for (int j = 0; j < l && j < (int)sizeof(p); j++)
			printf("%02x", (unsigned char)p[j]);
	}
	printf("\"");
	if (bench > 0)
		printf(",\"ms_per_encode\":%.3f,\"ms_load\":%.3f", ms, load_ms);
	printf(",\"n_vocab\":%zu}\n", tok_n_vocab(t));
	free(text);
	free(ids);
	tok_free(t);
	return 0;
}
