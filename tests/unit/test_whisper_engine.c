/*
 * test_whisper_engine.c - the built-in Whisper engine (engine_whisper.c)
 * through its stt_engine_ops, on a random-weight tiny model written by
 * tests/whisper/mkwhisper.py: it loads, transcribes short (trimmed) and
 * long (two 30 s windows) audio into well-formed results with segment
 * times inside the audio, shares one model among its decoders, refuses
 * other languages on an English-only model, too much audio, and stops on
 * cancel. The words are noise: the weights are random.
 * Needs /usr/bin/python3 with numpy (make deps); fails if absent.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../../services/stt/stt_engine.h"
#include "vx_test.h"

#ifndef WHISPER_TEST_DIR
#error "WHISPER_TEST_DIR (tests/whisper) must be defined"
#endif

static const stt_engine_ops *ops = &stt_engine_whisper;
static char dir[] = "/tmp/test_whisper_engine_XXXXXX";
static char model[256];

static int16_t *tone(size_t n)
{
	int16_t *p = malloc(sizeof *p * (n ? n : 1));
	for (size_t i = 0; i < n; i++)
		p[i] = (int16_t)(8000 * sin(2 * M_PI * 220.0 * (double)i / STT_RATE));
	return p;
}

static void check_result(const stt_result *r, int64_t audio_ms)
{
	VX_CHECK(r->text != NULL);
	VX_CHECK(r->language && !strcmp(r->language, "en"));
	for (size_t i = 0; i < r->n_segments; i++) {
		VX_CHECK(r->segments[i].text != NULL);
		VX_CHECK(r->segments[i].start_ms >= 0);
		VX_CHECK(r->segments[i].start_ms <= r->segments[i].end_ms);
		VX_CHECK(r->segments[i].end_ms <= audio_ms);
	}
}

VX_TEST(transcribes_short_and_long_audio)
{
	stt_config cfg = { .pool_size = 2, .model = model };
	void *eng = NULL;
	VX_CHECK_INT(ops->create(&cfg, &eng), 0);
	if (!eng)
		return;
	stt_options opt = { .language = "en" };
	stt_result r = { 0 };
	int16_t *pcm = tone(3 * STT_RATE);
	VX_CHECK_INT(ops->transcribe(eng, pcm, 3 * STT_RATE, &opt, NULL, &r), 0);
	check_result(&r, 3000);
	printf("  3 s: %zu segments, text \"%.40s\"\n", r.n_segments, r.text ? r.text : "");
	stt_result_release(&r);
	free(pcm);
	/* 31 s: a full 30 s window, then a 1 s one (times offset by 30 s) */
	pcm = tone(31 * STT_RATE);
	VX_CHECK_INT(ops->transcribe(eng, pcm, 31 * STT_RATE, NULL, NULL, &r), 0);
	check_result(&r, 31000);
	stt_result_release(&r);
	free(pcm);
	/* empty audio: an empty or noise transcript, not an error */
	VX_CHECK_INT(ops->transcribe(eng, NULL, 0, NULL, NULL, &r), 0);
	check_result(&r, 30000);
	stt_result_release(&r);
	ops->destroy(eng);
}

typedef struct par { void *eng; int rc; } par;

static void *worker(void *arg)
{
	par *p = arg;
	int16_t *pcm = tone(2 * STT_RATE);
	stt_result r = { 0 };
	p->rc = ops->transcribe(p->eng, pcm, 2 * STT_RATE, NULL, NULL, &r);
	stt_result_release(&r);
	free(pcm);
	return NULL;
}

VX_TEST(decoders_run_side_by_side_on_one_model)
{
	stt_config cfg = { .pool_size = 2, .model = model };
	void *eng = NULL;
	VX_CHECK_INT(ops->create(&cfg, &eng), 0);
	if (!eng)
		return;
	pthread_t th[2];
	par p[2] = { { eng, -1 }, { eng, -1 } };
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, worker, &p[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	/* each got a decoder, or (rarely, by timing) -EBUSY: never anything else */
	for (int i = 0; i < 2; i++)
		VX_CHECK(p[i].rc == 0 || p[i].rc == -EBUSY);
	VX_CHECK(p[0].rc == 0 || p[1].rc == 0);
	ops->destroy(eng);
}

VX_TEST(refusals_are_named_errors)
{
	stt_config cfg = { .pool_size = 1, .model = model };
	void *eng = NULL;
	stt_result r = { 0 };
	VX_CHECK_INT(ops->create(&cfg, &eng), 0);
	if (!eng)
		return;
	stt_options de = { .language = "de" };
	int16_t pcm[160] = { 0 };
	VX_CHECK_INT(ops->transcribe(eng, pcm, 160, &de, NULL, &r), -ENOTSUP);
	VX_CHECK_INT(ops->transcribe(eng, pcm, (size_t)STT_AUDIO_MAX_SECONDS * STT_RATE + 1, NULL,
				     NULL, &r), -E2BIG);
	atomic_bool cancel = true;
	VX_CHECK_INT(ops->transcribe(eng, pcm, 160, NULL, &cancel, &r), -ECANCELED);
	VX_CHECK(r.text == NULL);
	ops->destroy(eng);
	stt_config none = { .pool_size = 1, .model = "/nonexistent/ggml.bin" };
	eng = NULL;
	VX_CHECK_INT(ops->create(&none, &eng), -ENOENT);
	stt_config empty = { .pool_size = 1 };
	VX_CHECK_INT(ops->create(&empty, &eng), -EINVAL);
	VX_CHECK(eng == NULL);
}

int main(void)
{
	char cmd[600];
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(model, sizeof model, "%s/tiny-q8_0.bin", dir);
	snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/mkwhisper.py %s --type q8_0", WHISPER_TEST_DIR,
		 model);
	if (system(cmd) != 0) {
		fprintf(stderr, "test_whisper_engine: cannot write the test model (python3, numpy?)\n");
		return 1;
	}
	vx_test_fn fns[] = { transcribes_short_and_long_audio, decoders_run_side_by_side_on_one_model,
			     refusals_are_named_errors };
	int rc = vx_test_run("transcribes_short_and_long_audio, "
			     "decoders_run_side_by_side_on_one_model, refusals_are_named_errors",
			     fns, 3);
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		rc = 1;
	return rc;
}
