/*
 * gguf_bench - speed of the built-in GGUF engine on a model file.
 *
 *   gguf_bench MODEL [--threads N (2)] [--prompt N (512)] [--gen N (64)]
 *              [--ctx N (prompt + gen)] [--no-repack] [--kv-f32] [--streams N (1)]
 *
 * Prints one JSON object: load_ms (map + check + touching every weight
 * page), prompt tokens/s (one prefill of N random tokens), decode tokens/s
 * (N greedy steps after it), the CPU seconds each phase used (on a busy
 * machine: wall speed x threads / cpu shows what a free machine gives),
 * peak RSS in MiB. With --streams N (2..MODEL_BATCH) it also runs N
 * sequences in their own KV slots, each after a 64-token prompt, N tokens a
 * forward pass (model_step, as the daemon's scheduler does), and prints
 * their aggregate decode tokens/s and its ratio to the one-stream figure:
 * the batching gain without HTTP or scheduling in it. Never fails on a
 * number.
 */
#include "../common/kern/vmath.h"
#include "../services/llm/gguf/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* CPU seconds (user + system) used by the process so far. */
static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

static long status_kib(const char *field)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;
	size_t n = strlen(field);
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n))
			v = atol(line + n + 1);
	if (f)
		fclose(f);
	return v;
}

#define STREAM_PROMPT 64   /* each stream's prompt under --streams */

/* n sequences in slots 0..n-1, one model_step a token for all of them;
 * their aggregate decode tokens/s, or -1. */
static double streams_decode(model *m, int n, int n_gen)
{
	int V = model_get_hparams(m)->n_vocab;
	float *logits = malloc((size_t)n * V * sizeof(float));
	int32_t prompt[STREAM_PROMPT], next[MODEL_BATCH];
	model_seq seqs[MODEL_BATCH];
	double r = -1, t0 = 0;
	if (!logits)
		return -1;
	for (int s = 0; s < n; s++) {
		for (int i = 0; i < STREAM_PROMPT; i++)
			prompt[i] = rand() % V;
		model_seq p = { .slot = s, .tokens = prompt, .n = STREAM_PROMPT, .want_logits = true };
		if (model_step(m, &p, 1, logits + (size_t)s * V) < 0)
			goto out;
	}
	for (int i = 0; i <= n_gen; i++) {
		if (i == 1)
			t0 = now_ms();   /* from the second step: the first warms the slots */
		for (int s = 0; s < n; s++) {
			next[s] = vmath_argmax(logits + (size_t)s * V, V);
			seqs[s] = (model_seq){ .slot = s, .tokens = &next[s], .n = 1,
					       .pos = STREAM_PROMPT + i, .want_logits = true,
					       .decode = true };
		}
		if (model_step(m, seqs, n, logits) < 0)
			goto out;
	}
	r = (double)n * n_gen / (now_ms() - t0) * 1e3;
out:
	free(logits);
	return r;
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	int n_prompt = 512, n_gen = 64, n_streams = 1;
	model_params mp = { .n_threads = 2 };
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			mp.n_threads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--prompt") && i + 1 < argc)
			n_prompt = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--gen") && i + 1 < argc)
			n_gen = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--ctx") && i + 1 < argc)
			mp.n_ctx = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--streams") && i + 1 < argc)
			n_streams = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--no-repack"))
			mp.no_repack = true;
		else if (!strcmp(argv[i], "--kv-f32"))
			mp.kv_f32 = true;
		else if (argv[i][0] != '-' && !path)
			path = argv[i];
		else {
			fprintf(stderr, "usage: gguf_bench MODEL [--threads N] [--prompt N] "
				"[--gen N] [--ctx N] [--no-repack] [--kv-f32] [--streams N]\n");
			return 2;
		}
	}
	if (!path || n_prompt < 1 || n_gen < 1 || n_streams < 1 || n_streams > MODEL_BATCH) {
		fprintf(stderr, "gguf_bench: MODEL required; --prompt/--gen >= 1; "
			"--streams 1..%d\n", MODEL_BATCH);
		return 2;
	}
	if (!mp.n_ctx)
		/* the streams' last step is at STREAM_PROMPT + n_gen */
		mp.n_ctx = (n_streams > 1 && n_prompt <= STREAM_PROMPT ? STREAM_PROMPT + 1 : n_prompt) +
			   n_gen;
	mp.n_slots = n_streams;
	char err[512];
	model *m;
	double t0 = now_ms();
	if (model_load(path, &mp, &m, err, sizeof(err)) < 0) {
		fprintf(stderr, "gguf_bench: %s\n", err);
		return 1;
	}
	if (model_warm(m) < 0) {
		fprintf(stderr, "gguf_bench: out of memory for packed weights\n");
		model_free(m);
		return 1;
	}
	double t_load = now_ms() - t0;
	const model_hparams *hp = model_get_hparams(m);
	int V = hp->n_vocab;
	float *logits = malloc((size_t)V * sizeof(float));
	int32_t *toks = malloc((size_t)n_prompt * sizeof(int32_t));
	if (!logits || !toks)
		return 1;
	srand(1);
	for (int i = 0; i < n_prompt; i++)
		toks[i] = rand() % V;
	t0 = now_ms();
	double c0 = cpu_s();
	if (model_eval(m, toks, n_prompt, 0, logits, false) < 0) {
		fprintf(stderr, "gguf_bench: prompt eval failed\n");
		return 1;
	}
	double t_prompt = now_ms() - t0, c_prompt = cpu_s() - c0;
	t0 = now_ms();
	c0 = cpu_s();
	for (int i = 0; i < n_gen; i++) {
		int32_t t = vmath_argmax(logits, V);
		if (model_eval(m, &t, 1, n_prompt + i, logits, false) < 0) {
			fprintf(stderr, "gguf_bench: decode failed\n");
			return 1;
		}
	}
	double t_gen = now_ms() - t0, c_gen = cpu_s() - c0;
	double streams_tok_s = n_streams > 1 ? streams_decode(m, n_streams, n_gen) : 0;
	if (streams_tok_s < 0) {
		fprintf(stderr, "gguf_bench: batched decode failed\n");
		return 1;
	}
	printf("{\"model\":\"%s\",\"arch\":\"%s\",\"weight_type\":%d,\"threads\":%d,"
	       "\"n_embd\":%d,\"n_layer\":%d,\"n_vocab\":%d,\"load_ms\":%.0f,"
	       "\"prompt_tokens\":%d,\"prompt_tok_s\":%.1f,\"gen_tokens\":%d,"
	       "\"decode_tok_s\":%.2f,\"prompt_cpu_s\":%.2f,\"decode_cpu_s\":%.2f,"
	       "\"rss_mib\":%.0f,\"rss_peak_mib\":%.0f",
	       path, hp->arch_name, hp->weight_type, mp.n_threads, hp->n_embd, hp->n_layer,
	       V, t_load, n_prompt, n_prompt / t_prompt * 1e3, n_gen, n_gen / t_gen * 1e3, c_prompt, c_gen,
	       status_kib("VmRSS:") / 1024.0, status_kib("VmHWM:") / 1024.0);
	if (n_streams > 1)
		printf(",\"streams\":%d,\"streams_decode_tok_s\":%.2f,\"vs_one_stream\":%.2f",
		       n_streams, streams_tok_s, streams_tok_s / (n_gen / t_gen * 1e3));
	printf("}\n");
	free(toks);
	free(logits);
	model_free(m);
	return 0;
}
