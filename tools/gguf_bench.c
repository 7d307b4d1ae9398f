/*
 * gguf_bench - speed of the built-in GGUF engine on a model file.
 *
 *   gguf_bench MODEL [--threads N (2)] [--prompt N (512)] [--gen N (64)]
 *              [--ctx N (prompt + gen)] [--no-repack]
 *
 * Prints one JSON object: load_ms (map + check + touching every weight
 * page), prompt tokens/s (one prefill of N random tokens), decode tokens/s
 * (N greedy steps after it), the CPU seconds each phase used (on a busy
 * machine: wall speed x threads / cpu shows what a free machine gives),
 * peak RSS in MiB. Never fails on a number.
 */
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

static int argmax(const float *x, int n)
{
	int b = 0;
	for (int i = 1; i < n; i++)
		if (x[i] > x[b])
			b = i;
	return b;
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	int n_prompt = 512, n_gen = 64;
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
		else if (!strcmp(argv[i], "--no-repack"))
			mp.no_repack = true;
		else if (argv[i][0] != '-' && !path)
			path = argv[i];
		else {
			fprintf(stderr, "usage: gguf_bench MODEL [--threads N] [--prompt N] "
				"[--gen N] [--ctx N] [--no-repack]\n");
			return 2;
		}
	}
	if (!path || n_prompt < 1 || n_gen < 1) {
		fprintf(stderr, "gguf_bench: MODEL required; --prompt/--gen >= 1\n");
		return 2;
	}
	if (!mp.n_ctx)
		mp.n_ctx = n_prompt + n_gen;
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
		int32_t t = argmax(logits, V);
		if (model_eval(m, &t, 1, n_prompt + i, logits, false) < 0) {
			fprintf(stderr, "gguf_bench: decode failed\n");
			return 1;
		}
	}
	double t_gen = now_ms() - t0, c_gen = cpu_s() - c0;
	printf("{\"model\":\"%s\",\"arch\":\"%s\",\"weight_type\":%d,\"threads\":%d,"
	       "\"n_embd\":%d,\"n_layer\":%d,\"n_vocab\":%d,\"load_ms\":%.0f,"
	       "\"prompt_tokens\":%d,\"prompt_tok_s\":%.1f,\"gen_tokens\":%d,"
	       "\"decode_tok_s\":%.2f,\"prompt_cpu_s\":%.2f,\"decode_cpu_s\":%.2f,"
	       "\"rss_mib\":%.0f,\"rss_peak_mib\":%.0f}\n",
	       path, hp->arch_name, hp->weight_type, mp.n_threads, hp->n_embd, hp->n_layer,
	       V, t_load, n_prompt, n_prompt / t_prompt * 1e3, n_gen, n_gen / t_gen * 1e3, c_prompt, c_gen,
	       status_kib("VmRSS:") / 1024.0, status_kib("VmHWM:") / 1024.0);
	free(toks);
	free(logits);
	model_free(m);
	return 0;
}
