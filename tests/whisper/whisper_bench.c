/*
 * whisper_bench.c - times the built-in Whisper core on one model file:
 * log-mel, encoder (trimmed to the clip or over the full 30 s context),
 * and greedy decoding of a fixed number of tokens (no early stop, so runs
 * compare). Prints one JSON object. Used by tests/bench/bench_whisper.py.
 *
 *   whisper_bench MODEL.bin [--seconds 3] [--threads 2] [--tokens 16]
 *                 [--no-trim] [--runs 3]   (the best run is reported)
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../services/stt/whisper/wfile.h"
#include "../../services/stt/whisper/wmel.h"
#include "../../services/stt/whisper/wmodel.h"

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	double seconds = 3;
	int threads = 2, n_tokens = 16, trim = 1, runs = 3;
	const char *path = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) n_tokens = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--no-trim")) trim = 0;
		else if (argv[i][0] != '-') path = argv[i];
		else { fprintf(stderr, "unknown option %s\n", argv[i]); return 2; }
	}
	if (!path || seconds <= 0 || seconds > 30 || threads < 1 || n_tokens < 1 || runs < 1) {
		fprintf(stderr, "usage: whisper_bench MODEL.bin [--seconds S<=30] [--threads N] "
			"[--tokens N] [--no-trim] [--runs N]\n");
		return 2;
	}
	char err[256];
	wfile *f;
	wmodel *m;
	wstate *s;
	team *t;
	wmel mel;
	if (wfile_open(path, &f, err, sizeof err) < 0 || wmodel_new(f, &m, err, sizeof err) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (team_new(threads, &t) < 0 || wstate_new(m, t, &s) < 0 ||
	    wmel_init(&mel, f->filters, f->n_mel) < 0) {
		fprintf(stderr, "out of memory\n");
		return 1;
	}
	int n = (int)(seconds * WMEL_RATE);
	float *pcm = malloc(sizeof *pcm * (size_t)n);
	for (int i = 0; i < n; i++)
		pcm[i] = 0.3f * sinf(2.0f * (float)M_PI * (150.0f + 30.0f * i / WMEL_RATE) * i / WMEL_RATE);
	int n_ctx = trim ? (wmel_frames_for(n) + 1) / 2 : f->hp.n_audio_ctx;
	if (n_ctx > f->hp.n_audio_ctx)
		n_ctx = f->hp.n_audio_ctx;
	float *mbuf = malloc(sizeof *mbuf * (size_t)f->n_mel * 2 * (size_t)n_ctx);
	float *logits = malloc(sizeof *logits * (size_t)f->hp.n_vocab);
	double best_mel = 1e30, best_enc = 1e30, best_dec = 1e30;
	for (int r = 0; r < runs; r++) {
		double t0 = now_ms();
		wmel_compute(&mel, pcm, n, 2 * n_ctx, t, mbuf);
		double t1 = now_ms();
		wstate_encode(s, mbuf, n_ctx);
		double t2 = now_ms();
		int32_t tok[2] = { 50257, 50362 };
		wstate_decode(s, tok, 2, logits);
		for (int i = 1; i < n_tokens; i++) {
			int32_t b = 0;
			for (int v = 1; v < 50256; v++)
				b = logits[v] > logits[b] ? v : b;
			wstate_decode(s, &b, 1, logits);
		}
		double t3 = now_ms();
		best_mel = fmin(best_mel, t1 - t0);
		best_enc = fmin(best_enc, t2 - t1);
		best_dec = fmin(best_dec, t3 - t2);
	}
	double total = best_mel + best_enc + best_dec;
	printf("{\"seconds\":%.2f,\"threads\":%d,\"n_ctx\":%d,\"tokens\":%d,\"mel_ms\":%.2f,"
	       "\"encode_ms\":%.2f,\"decode_ms\":%.2f,\"decode_ms_per_token\":%.3f,\"total_ms\":%.2f,"
	       "\"rtf\":%.4f,\"copied_mb\":%.2f}\n", seconds, threads, n_ctx, n_tokens, best_mel,
	       best_enc, best_dec, best_dec / n_tokens, total, total / (seconds * 1000),
	       wmodel_copied_bytes(m) / 1e6);
	free(pcm); free(mbuf); free(logits);
	wmel_release(&mel);
	wstate_free(s);
	team_free(t);
	wmodel_free(m);
	wfile_close(f);
	return 0;
}
