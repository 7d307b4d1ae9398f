/*
 * test_whisper_model.c - the Whisper network in C (wmel.c, wmodel.c)
 * against tests/whisper/ref.py, an independent float64 numpy Whisper, on
 * random-weight tiny models written by tests/whisper/mkwhisper.py in every
 * weight type (F32, F16, Q8_0, Q5_0, Q5_1, Q4_0, Q4_1): log-mel (within
 * 1e-4 absolute), encoder output and the decoder's logits at
 * each greedy step agree within the GGUF engine's tolerances (max |diff|
 * <= 1e-4 * std for F32/F16, 0.1 * std for quantised weights, whose
 * activations are quantised too), and each greedy token is the reference's
 * best up to twice that. The encoder runs trimmed (3 s -> 150 positions)
 * and, for F16, over the full 1500. Tokens are fed one at a time after a
 * two-token prompt, so the KV cache is checked against one causal pass.
 * Greedy decoding with timestamps (wdecode.c) then runs over each model
 * and must give a well-formed result.
 * Needs /usr/bin/python3 with numpy (make deps); fails if absent.
 */
#include "../../services/stt/whisper/wdecode.h"
#include "../../services/stt/whisper/wfile.h"
#include "../../services/stt/whisper/wmel.h"
#include "../../services/stt/whisper/wmodel.h"
#include "vx_test.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#ifndef WHISPER_TEST_DIR
#error "WHISPER_TEST_DIR (tests/whisper) must be defined"
#endif

#define FLOAT_TOL 1e-4
#define QUANT_TOL 0.1
/* the mel's limit is absolute: its float32 DFT loses ~1e-3 of the power
 * of the quietest bins against numpy's float64 rfft (observed 3.4e-5) */
#define MEL_TOL 1e-4
#define N_GREEDY 6
#define N_SAMPLES (3 * WMEL_RATE)

static void ad_reset(void *ctx) { wstate_decode_reset(ctx); }
static int ad_decode(void *ctx, const int32_t *t, int n, float *l) { return wstate_decode(ctx, t, n, l); }

/* Greedy decoding with timestamps over the real network: whatever the
 * random weights say, the result is well formed. */
static void check_greedy_decode(const wfile *f, wstate *s)
{
	wtok t;
	wdec_result r;
	wdec_model dm = { .ctx = s, .reset = ad_reset, .decode = ad_decode,
			  .n_text_ctx = f->hp.n_text_ctx };
	wdec_params p = wdec_defaults();
	p.audio_ms = 3000;
	p.max_tokens = 12;
	VX_CHECK_INT(wtok_init(&t, f), 0);
	VX_CHECK_INT(wdec_greedy(&dm, &t, &p, &r), 0);
	VX_CHECK(r.n_tokens >= 1 && r.n_tokens <= 12);
	VX_CHECK(r.tokens[0] >= t.beg && r.tokens[0] <= t.beg + 50);
	VX_CHECK(r.no_speech_prob >= 0 && r.no_speech_prob <= 1);
	for (int i = 0; i < r.n_segments; i++)
		VX_CHECK(r.segments[i].start_ms <= r.segments[i].end_ms &&
			 r.segments[i].end_ms <= 3000);
	printf("    greedy with timestamps: %d tokens, %d segments, no-speech %.3f\n", r.n_tokens,
	       r.n_segments, r.no_speech_prob);
	wdec_result_release(&r);
	wtok_release(&t);
}

static char dir[] = "/tmp/test_whisper_model_XXXXXX";
static float audio[N_SAMPLES];

static int run(const char *cmd)
{
	int rc = system(cmd);
	if (rc != 0)
		fprintf(stderr, "  command failed (%d): %s\n", rc, cmd);
	return rc;
}

static float *read_f32(const char *path, size_t n)
{
	FILE *fp = fopen(path, "rb");
	float *v = malloc(n * sizeof *v);
	if (!fp || fread(v, sizeof *v, n, fp) != n) {
		fprintf(stderr, "  cannot read %zu floats from %s\n", n, path);
		free(v);
		v = NULL;
	}
	if (fp)
		fclose(fp);
	return v;
}

static double stddev(const float *v, size_t n)
{
	double m = 0, s = 0;
	for (size_t i = 0; i < n; i++)
		m += v[i];
	m /= (double)n;
	for (size_t i = 0; i < n; i++)
		s += (v[i] - m) * (v[i] - m);
	return sqrt(s / (double)n);
}

/* max |got - want| <= tol * std(want) (or <= -tol when tol < 0: an
 * absolute limit); prints the figures either way */
static int close_enough(const char *what, const float *got, const float *want, size_t n, double tol)
{
	double mx = 0, lim = tol < 0 ? -tol : tol * stddev(want, n);
	for (size_t i = 0; i < n; i++)
		mx = fmax(mx, fabs((double)got[i] - want[i]));
	printf("    %-8s max|diff| %.3g, limit %.3g\n", what, mx, lim);
	return mx <= lim;
}

/* One model type: C forward, reference, comparison. */
static void check_type(const char *type, double tol, int full_ctx)
{
	char model[256], cmd[1024], out[256], path[300], err[256];
	wfile *f = NULL;
	wmodel *m = NULL;
	wstate *s = NULL;
	team *t = NULL;
	float *mel = NULL, *logits = NULL, *rmel = NULL, *renc = NULL, *rlog = NULL;
	wmel mm = { 0 };

	snprintf(model, sizeof model, "%s/%s.bin", dir, type);
	snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/mkwhisper.py %s --type %s --seed 7",
		 WHISPER_TEST_DIR, model, type);
	VX_CHECK_INT(run(cmd), 0);
	VX_CHECK_INT(wfile_open(model, &f, err, sizeof err), 0);
	if (!f) {
		fprintf(stderr, "  %s\n", err);
		return;
	}
	VX_CHECK_INT(wmodel_new(f, &m, err, sizeof err), 0);
	VX_CHECK_INT(team_new(2, &t), 0);
	if (!m || !t)
		goto out;
	VX_CHECK_INT(wstate_new(m, t, &s), 0);
	VX_CHECK_INT(wmel_init(&mm, f->filters, f->n_mel), 0);
	int n_ctx = full_ctx ? f->hp.n_audio_ctx : (wmel_frames_for(N_SAMPLES) + 1) / 2;
	int n_vocab = f->hp.n_vocab, n_state = f->hp.n_audio_state, n_mels = f->hp.n_mels;
	mel = malloc(sizeof *mel * (size_t)n_mels * 2 * (size_t)n_ctx);
	logits = malloc(sizeof *logits * (size_t)n_vocab * (N_GREEDY + 1));
	VX_CHECK_INT(wmel_compute(&mm, audio, N_SAMPLES, 2 * n_ctx, t, mel), 0);
	VX_CHECK_INT(wstate_encode(s, mel, n_ctx), 0);

	/* prompt <|startoftranscript|><|notimestamps|>, then greedy */
	int32_t toks[2 + N_GREEDY] = { 50257, 50362 };
	VX_CHECK_INT(wstate_decode(s, toks, 2, logits), 0);
	for (int i = 0; i < N_GREEDY; i++) {
		const float *row = logits + (size_t)i * n_vocab;
		int best = 0;
		for (int v = 1; v < n_vocab; v++)
			best = row[v] > row[best] ? v : best;
		toks[2 + i] = best;
		if (i + 1 < N_GREEDY + 1)
			VX_CHECK_INT(wstate_decode(s, &toks[2 + i], 1, logits + (size_t)(i + 1) * n_vocab), 0);
	}
	VX_CHECK_INT(wstate_n_past(s), 2 + N_GREEDY);

	snprintf(out, sizeof out, "%s/ref_%s_%d", dir, type, n_ctx);
	snprintf(path, sizeof path, "%s/audio.f32", dir);
	int len = snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/ref.py %s %s %d %s",
			   WHISPER_TEST_DIR, model, path, n_ctx, out);
	for (int i = 0; i < 2 + N_GREEDY; i++)
		len += snprintf(cmd + len, sizeof cmd - (size_t)len, " %d", toks[i]);
	VX_CHECK_INT(run(cmd), 0);
	snprintf(path, sizeof path, "%s/mel.f32", out);
	rmel = read_f32(path, (size_t)n_mels * 2 * (size_t)n_ctx);
	snprintf(path, sizeof path, "%s/enc.f32", out);
	renc = read_f32(path, (size_t)n_ctx * n_state);
	snprintf(path, sizeof path, "%s/logits.f32", out);
	rlog = read_f32(path, (size_t)n_vocab * (2 + N_GREEDY));
	if (!rmel || !renc || !rlog) {
		vx_test_case_failed = 1;
		goto out;
	}
	printf("  %s, n_ctx %d, greedy", type, n_ctx);
	for (int i = 0; i < N_GREEDY; i++)
		printf(" %d", toks[2 + i]);
	printf("\n");
	VX_CHECK(close_enough("mel", mel, rmel, (size_t)n_mels * 2 * (size_t)n_ctx, -MEL_TOL));
	int n_enc;
	const float *enc = wstate_encoder_out(s, &n_enc);
	VX_CHECK_INT(n_enc, n_ctx);
	VX_CHECK(close_enough("encoder", enc, renc, (size_t)n_ctx * n_state, tol));
	/* logits after token 1 (the prompt's last) .. after the last greedy one */
	VX_CHECK(close_enough("logits", logits, rlog + (size_t)n_vocab, (size_t)n_vocab * (N_GREEDY + 1),
			      tol));
	double abs_tol = tol * stddev(rlog + n_vocab, (size_t)n_vocab * (N_GREEDY + 1));
	for (int i = 0; i < N_GREEDY; i++) {
		const float *row = rlog + (size_t)(1 + i) * n_vocab;
		float mx = row[0];
		for (int v = 1; v < n_vocab; v++)
			mx = fmaxf(mx, row[v]);
		if (row[toks[2 + i]] < mx - 2 * abs_tol) {
			fprintf(stderr, "  step %d: token %d is %.4f below the reference's best\n", i,
				toks[2 + i], mx - row[toks[2 + i]]);
			vx_test_case_failed = 1;
		}
	}
	/* a decode past the text context is refused, the cache untouched */
	int32_t many[448] = { 0 };
	VX_CHECK_INT(wstate_decode(s, many, 448, logits), -EINVAL);
	VX_CHECK_INT(wstate_n_past(s), 2 + N_GREEDY);
	int32_t bad = n_vocab;
	VX_CHECK_INT(wstate_decode(s, &bad, 1, logits), -EINVAL);
	check_greedy_decode(f, s);
out:
	free(mel); free(logits); free(rmel); free(renc); free(rlog);
	if (mm.window)
		wmel_release(&mm);
	wstate_free(s);
	team_free(t);
	wmodel_free(m);
	wfile_close(f);
}

VX_TEST(f32_matches_the_reference) { check_type("f32", FLOAT_TOL, 0); }
VX_TEST(f16_matches_the_reference) { check_type("f16", FLOAT_TOL, 0); }
VX_TEST(f16_full_30s_context_matches_the_reference) { check_type("f16", FLOAT_TOL, 1); }
VX_TEST(q8_0_matches_the_reference) { check_type("q8_0", QUANT_TOL, 0); }
VX_TEST(q5_0_matches_the_reference) { check_type("q5_0", QUANT_TOL, 0); }
VX_TEST(q4_0_matches_the_reference) { check_type("q4_0", QUANT_TOL, 0); }

VX_TEST(q5_1_matches_the_reference) { check_type("q5_1", QUANT_TOL, 0); }
VX_TEST(q4_1_matches_the_reference) { check_type("q4_1", QUANT_TOL, 0); }

int main(void)
{
	char path[300];
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	/* 3 s: a gliding tone with harmonics, a pause, and a little noise */
	uint32_t r = 12345;
	for (int i = 0; i < N_SAMPLES; i++) {
		double t = (double)i / WMEL_RATE, f0 = 150 + 100 * t;
		double v = (t > 1.2 && t < 1.6) ? 0 : 0.3 * sin(2 * M_PI * f0 * t) +
			   0.1 * sin(6 * M_PI * f0 * t);
		r = r * 1664525u + 1013904223u;
		audio[i] = (float)(v + 0.01 * ((double)(r >> 8) / (1 << 24) - 0.5));
	}
	snprintf(path, sizeof path, "%s/audio.f32", dir);
	FILE *fp = fopen(path, "wb");
	if (!fp || fwrite(audio, sizeof audio, 1, fp) != 1) {
		perror(path);
		return 1;
	}
	fclose(fp);
	vx_test_fn fns[] = { f32_matches_the_reference, f16_matches_the_reference,
			     f16_full_30s_context_matches_the_reference, q8_0_matches_the_reference,
			     q5_0_matches_the_reference, q4_0_matches_the_reference,
			     q5_1_matches_the_reference, q4_1_matches_the_reference };
	int rc = vx_test_run("f32_matches_the_reference, f16_matches_the_reference, "
			     "f16_full_30s_context_matches_the_reference, q8_0_matches_the_reference, "
			     "q5_0_matches_the_reference, q4_0_matches_the_reference, "
			     "q5_1_matches_the_reference, q4_1_matches_the_reference", fns, 8);
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	run(cmd);
	return rc;
}
