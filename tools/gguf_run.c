/*
 * gguf_run - runs the GGUF engine's forward pass on token ids and prints
 * JSON, for tests against tests/gguf/ref.py.
 *
 *   gguf_run MODEL --tokens 1,2,3 [--greedy N] [--threads N] [--ctx N]
 *            [--one-by-one] [--all-logits] [--no-repack] [--kv-f32]
 *
 * Prints {"n_vocab":V,"logits":[...],"greedy":[...]}: logits of the last
 * prompt token (or of every prompt token with --all-logits, row after row),
 * then N greedily chosen continuation tokens. --one-by-one feeds the prompt
 * a token at a time (decode path) instead of in batches (prefill path).
 * --no-repack keeps 4/5-bit weights as stored, --kv-f32 makes the KV cache
 * floats instead of halves (model_params).
 */
#include "../common/kern/vmath.h"
#include "../services/llm/gguf/model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RUN_MAX_TOKENS 65536

static int parse_tokens(const char *s, int32_t *out, int max)
{
	int n = 0;
	while (*s && n < max) {
		char *end;
		long v = strtol(s, &end, 10);
		if (end == s)
			return -EINVAL;
		out[n++] = (int32_t)v;
		s = *end == ',' ? end + 1 : end;
	}
	return n;
}

int main(int argc, char **argv)
{
	const char *path = NULL, *toks = NULL;
	int greedy = 0, one = 0, all = 0;
	model_params mp = { .n_threads = 2 };
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--tokens") && i + 1 < argc)
			toks = argv[++i];
		else if (!strcmp(argv[i], "--greedy") && i + 1 < argc)
			greedy = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			mp.n_threads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--ctx") && i + 1 < argc)
			mp.n_ctx = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--one-by-one"))
			one = 1;
		else if (!strcmp(argv[i], "--all-logits"))
			all = 1;
		else if (!strcmp(argv[i], "--no-repack"))
			mp.no_repack = true;
		else if (!strcmp(argv[i], "--kv-f32"))
			mp.kv_f32 = true;
		else if (argv[i][0] != '-' && !path)
			path = argv[i];
		else {
			fprintf(stderr, "usage: gguf_run MODEL --tokens 1,2,3 [--greedy N] "
				"[--threads N] [--ctx N] [--one-by-one] [--all-logits] "
				"[--no-repack] [--kv-f32]\n");
			return 2;
		}
	}
	if (!path || !toks) {
		fprintf(stderr, "gguf_run: MODEL and --tokens are required\n");
		return 2;
	}
	static int32_t tokens[RUN_MAX_TOKENS];
	int n = parse_tokens(toks, tokens, RUN_MAX_TOKENS);
	if (n <= 0) {
		fprintf(stderr, "gguf_run: bad --tokens\n");
		return 2;
	}
	char err[512];
	model *m;
	int rc = model_load(path, &mp, &m, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "gguf_run: %s\n", err);
		return 1;
	}
	int V = model_get_hparams(m)->n_vocab;
	float *logits = malloc((size_t)V * (size_t)(all ? n : 1) * sizeof(float));
	if (!logits)
		return 1;
	if (one) {
		for (int i = 0; i < n && rc == 0; i++)
			rc = model_eval(m, &tokens[i], 1, i,
					all ? logits + (size_t)i * V : logits, false);
	} else {
		rc = model_eval(m, tokens, n, 0, logits, all);
	}
	if (rc < 0) {
		fprintf(stderr, "gguf_run: eval: %s\n", strerror(-rc));
		return 1;
	}
	printf("{\"n_vocab\":%d,\"logits\":[", V);
	for (size_t i = 0; i < (size_t)V * (all ? n : 1); i++)
		printf("%s%.7g", i ? "," : "", logits[i]);
	printf("],\"greedy\":[");
	const float *last = logits + (size_t)V * (all ? n - 1 : 0);
	int32_t tok = vmath_argmax(last, V);
	for (int i = 0; i < greedy; i++) {
		printf("%s%d", i ? "," : "", tok);
		if (i + 1 == greedy)
			break;
		rc = model_eval(m, &tok, 1, n + i, logits, false);
		if (rc < 0) {
			fprintf(stderr, "gguf_run: eval: %s\n", strerror(-rc));
			return 1;
		}
		tok = vmath_argmax(logits, V);
	}
	printf("]}\n");
	free(logits);
	model_free(m);
	return 0;
}
