/*
 * test_whisper_beam.c - the decoder state snapshots beam search keeps per
 * beam (wstate_kv_bytes/save/load, wmodel.h) on a real model: a random
 * tiny Whisper file from tests/whisper/mkwhisper.py (an engine test: it
 * needs python3 with numpy).
 *
 * A snapshot restored gives the logits the state gave when it was taken,
 * and beam search over snapshots picks exactly the tokens it picks when
 * each extension is re-fed from the start.
 */
#include "../../services/stt/whisper/wdecode.h"
#include "../../services/stt/whisper/wfile.h"
#include "../../services/stt/whisper/wmel.h"
#include "../../services/stt/whisper/wmodel.h"
#include "../../services/stt/whisper/wtok.h"
#include "vx_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef WHISPER_TEST_DIR
#error "WHISPER_TEST_DIR (tests/whisper) must be defined"
#endif

static char dir[] = "/tmp/test_whisper_beam_XXXXXX";
static wfile *file;
static wmodel *model;
static wstate *st;
static wtok tok;

typedef struct kv {
	void *snap[WDEC_SLOTS(WDEC_BEAM_MAX)];
	int fed;
} kv;

static void k_reset(void *c) { (void)c; wstate_decode_reset(st); }

static int k_decode(void *c, const int32_t *t, int n, float *l)
{
	((kv *)c)->fed += n;
	return wstate_decode(st, t, n, l);
}

static int k_save(void *c, int slot)
{
	kv *k = c;
	free(k->snap[slot]);
	if (!(k->snap[slot] = malloc(wstate_kv_bytes(st))))
		return -1;
	wstate_kv_save(st, k->snap[slot]);
	return 0;
}

static int k_load(void *c, int slot)
{
	wstate_kv_load(st, ((kv *)c)->snap[slot]);
	return 0;
}

static void k_release(kv *k)
{
	for (int i = 0; i < WDEC_SLOTS(WDEC_BEAM_MAX); i++)
		free(k->snap[i]);
}

/* 3 s of a gliding tone, encoded (trimmed to 150 positions). */
static int encode(void)
{
	int n = 3 * WMEL_RATE, n_ctx = (wmel_frames_for(n) + 1) / 2;
	float *pcm = malloc(sizeof *pcm * (size_t)n);
	float *mel = malloc(sizeof *mel * (size_t)file->n_mel * 2 * (size_t)n_ctx);
	wmel m;
	int rc = -1;
	if (pcm && mel && wmel_init(&m, file->filters, file->n_mel) == 0) {
		for (int i = 0; i < n; i++)
			pcm[i] = 0.3f * sinf(2.0f * (float)M_PI * (150.0f + 30.0f * i / WMEL_RATE) *
					     i / WMEL_RATE);
		wmel_compute(&m, pcm, n, 2 * n_ctx, NULL, mel);
		rc = wstate_encode(st, mel, n_ctx);
		wmel_release(&m);
	}
	free(pcm);
	free(mel);
	return rc;
}

VX_TEST(a_restored_snapshot_gives_the_same_logits)
{
	int32_t nv = tok.n_vocab, pre[] = { tok.sot, tok.notimestamps, 1000, 1001 };
	int32_t more[] = { 1002, 1003, 1004 };
	float *a = malloc(sizeof *a * (size_t)nv), *b = malloc(sizeof *b * (size_t)nv);
	void *snap = NULL;
	VX_CHECK(a && b);
	if (!a || !b)
		goto out;
	wstate_decode_reset(st);
	VX_CHECK_INT(wstate_decode(st, pre, 4, a), 0);
	snap = malloc(wstate_kv_bytes(st));
	VX_CHECK(snap != NULL);
	if (!snap)
		goto out;
	wstate_kv_save(st, snap);
	VX_CHECK_INT(wstate_decode(st, more, 1, a), 0);      /* logits after 1002 */
	VX_CHECK_INT(wstate_decode(st, more + 1, 2, b), 0);  /* the state moves on */
	VX_CHECK_INT(wstate_n_past(st), 7);
	wstate_kv_load(st, snap);
	VX_CHECK_INT(wstate_n_past(st), 4);
	VX_CHECK_INT(wstate_decode(st, more, 1, b), 0);
	float worst = 0;
	for (int32_t i = 0; i < nv; i++)
		worst = fmaxf(worst, fabsf(a[i] - b[i]));
	VX_CHECK(worst == 0.0f);
	if (worst != 0.0f)
		fprintf(stderr, "  largest logit difference %g\n", worst);
out:
	free(snap);
	free(a);
	free(b);
}

VX_TEST(beam_search_over_snapshots_equals_re_feeding)
{
	wdec_params p = wdec_defaults();
	wdec_result with, without, greedy;
	kv k1 = { 0 }, k2 = { 0 }, k3 = { 0 };
	wdec_model m = { .ctx = &k1, .reset = k_reset, .decode = k_decode,
			 .n_text_ctx = file->hp.n_text_ctx, .save = k_save, .load = k_load,
			 .n_slots = WDEC_SLOTS(WDEC_BEAM_MAX) };
	p.audio_ms = 3000;
	p.max_tokens = 24;
	p.temperature_inc = 0;
	p.beam_size = 4;
	VX_CHECK_INT(wdec_decode(&m, &tok, &p, &with), 0);
	wdec_model r = m;
	r.ctx = &k2;
	r.save = NULL;
	r.load = NULL;
	r.n_slots = 0;
	VX_CHECK_INT(wdec_decode(&r, &tok, &p, &without), 0);
	VX_CHECK_INT(with.n_tokens, without.n_tokens);
	VX_CHECK(with.n_tokens > 0);
	for (int i = 0; i < with.n_tokens && i < without.n_tokens; i++)
		VX_CHECK_INT(with.tokens[i], without.tokens[i]);
	VX_CHECK(fabsf(with.avg_logprob - without.avg_logprob) < 1e-4f);
	VX_CHECK(k2.fed > 3 * k1.fed);    /* re-feeding is the slow way */
	/* greedy through the snapshot path equals greedy without one */
	wdec_result plain;
	p.beam_size = 1;
	m.ctx = &k3;
	VX_CHECK_INT(wdec_decode(&m, &tok, &p, &greedy), 0);
	VX_CHECK_INT(wdec_greedy(&r, &tok, &p, &plain), 0);
	VX_CHECK_INT(greedy.n_tokens, plain.n_tokens);
	for (int i = 0; i < greedy.n_tokens && i < plain.n_tokens; i++)
		VX_CHECK_INT(greedy.tokens[i], plain.tokens[i]);
	wdec_result_release(&plain);
	wdec_result_release(&with);
	wdec_result_release(&without);
	wdec_result_release(&greedy);
	k_release(&k1);
	k_release(&k2);
	k_release(&k3);
}

int main(void)
{
	char path[128], cmd[512], err[256];
	int rc = 1;
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(path, sizeof path, "%s/tiny.bin", dir);
	snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/mkwhisper.py %s --seed 5", WHISPER_TEST_DIR,
		 path);
	if (system(cmd) != 0) {
		fprintf(stderr, "test_whisper_beam: cannot write the test model (python3, numpy?)\n");
		goto out_rm;
	}
	if (wfile_open(path, &file, err, sizeof err) < 0 ||
	    wmodel_new(file, &model, err, sizeof err) < 0) {
		fprintf(stderr, "test_whisper_beam: %s\n", err);
		goto out_rm;
	}
	if (wtok_init(&tok, file) < 0 || wstate_new(model, NULL, &st) < 0 || encode() < 0) {
		fprintf(stderr, "test_whisper_beam: setup failed\n");
		goto out_free;
	}
	vx_test_fn fns[] = { a_restored_snapshot_gives_the_same_logits,
			     beam_search_over_snapshots_equals_re_feeding };
	rc = vx_test_run("a_restored_snapshot_gives_the_same_logits, "
			 "beam_search_over_snapshots_equals_re_feeding", fns, 2);
out_free:
	wstate_free(st);
	if (tok.slots)
		wtok_release(&tok);
	wmodel_free(model);
	wfile_close(file);
out_rm:
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		rc = 1;
	return rc;
}
