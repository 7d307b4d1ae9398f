/*
 * test_whisper_stream.c - the built-in Whisper engine's streams
 * (engine_whisper_stream.c) through its stt_engine_ops, on a random-weight
 * tiny model written by tests/whisper/mkwhisper.py: partials come while
 * audio is fed and only when they change, committed words (shown at the
 * same place twice in a row) begin every later partial and the final, a
 * stream takes utterance after utterance, the final of audio fed in one
 * piece equals the greedy transcript while nothing committed disagrees,
 * refusals are named errors, and a stream holds a decoder until closed.
 * An engine test: needs /usr/bin/python3 with numpy (make deps).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../services/stt/stt_engine.h"
#include "vx_test.h"

#ifndef WHISPER_TEST_DIR
#error "WHISPER_TEST_DIR (tests/whisper) must be defined"
#endif

#define MAX_PARTIALS 256

static const stt_engine_ops *ops = &stt_engine_whisper;
static char dir[] = "/tmp/test_whisper_stream_XXXXXX";
static char model[256];

typedef struct seen {
	char *text[MAX_PARTIALS];
	int n;
} seen;

static void on_partial(void *user, const char *text)
{
	seen *s = user;
	if (s->n < MAX_PARTIALS)
		s->text[s->n++] = strdup(text);
}

static void seen_release(seen *s)
{
	for (int i = 0; i < s->n; i++)
		free(s->text[i]);
	s->n = 0;
}

/* Tones changing every half second, with a little noise. */
static int16_t *audio(size_t n, unsigned seed)
{
	int16_t *p = malloc(sizeof *p * (n ? n : 1));
	for (size_t i = 0; i < n; i++) {
		double f = 150 + 40 * (double)((i / (STT_RATE / 2) + seed) % 7);
		seed = seed * 1103515245u + 12345u;
		p[i] = (int16_t)(7000 * sin(2 * M_PI * f * (double)i / STT_RATE) +
				 (double)((seed >> 16) % 4000) - 2000);
	}
	return p;
}

/* Words b shares with a from the first on. */
static int shared_words(const char *a, const char *b)
{
	int n = 0;
	for (;;) {
		a += strspn(a, " ");
		b += strspn(b, " ");
		size_t la = strcspn(a, " "), lb = strcspn(b, " ");
		if (!la || la != lb || memcmp(a, b, la))
			return n;
		n++;
		a += la;
		b += lb;
	}
}

/* Checks that what partials i-1 and i share begins every later text. */
static int check_committed(const seen *s, const char *final)
{
	int longest = 0;
	for (int i = 1; i < s->n; i++) {
		int k = shared_words(s->text[i - 1], s->text[i]);
		for (int j = i + 1; j < s->n; j++)
			VX_CHECK(shared_words(s->text[i], s->text[j]) >= k);
		VX_CHECK(shared_words(s->text[i], final) >= k);
		longest = k > longest ? k : longest;
	}
	return longest;
}

VX_TEST(partials_come_as_audio_grows_and_committed_words_stay)
{
	stt_config cfg = { .pool_size = 1, .model = model };
	void *eng = NULL, *st = NULL;
	VX_CHECK_INT(ops->create(&cfg, &eng), 0);
	if (!eng)
		return;
	VX_CHECK(ops->flags & VX_ENGINE_STREAMING);
	VX_CHECK_INT(ops->stream_open(eng, &(stt_options){ .language = "en" }, &st), 0);
	int longest = 0;
	for (unsigned u = 0; u < 2 && st; u++) {
		size_t n = 4 * STT_RATE;
		int16_t *pcm = audio(n, u);
		seen s = { 0 };
		/* 20 ms at a time in real time: partials are decoded
		 * on the stream's own thread, one at a time; at this pace each
		 * 500 ms of audio gets one, on slow (ASan) builds too, so the
		 * commitments do not depend on the machine's speed */
		for (size_t i = 0; i < n; i += 320) {
			VX_CHECK_INT(ops->stream_feed(st, pcm + i, 320, on_partial, &s), 0);
			if (i + 320 < STT_RATE / 2)
				VX_CHECK_INT(s.n, 0);   /* nothing before 500 ms */
			usleep(20000);
		}
		VX_CHECK(s.n >= 2);
		for (int i = 1; i < s.n; i++)
			VX_CHECK(strcmp(s.text[i - 1], s.text[i]) != 0);   /* only changes */
		stt_result r = { 0 };
		VX_CHECK_INT(ops->stream_finish(st, &r), 0);
		VX_CHECK(r.text && r.language && !strcmp(r.language, "en"));
		for (size_t i = 0; i < r.n_segments; i++)
			VX_CHECK(r.segments[i].start_ms <= r.segments[i].end_ms &&
				 r.segments[i].end_ms <= 4000);
		int k = check_committed(&s, r.text ? r.text : "");
		longest = k > longest ? k : longest;
		stt_result_release(&r);
		seen_release(&s);
		free(pcm);
	}
	VX_CHECK(longest > 0);   /* the random model repeats itself: words commit */
	/* an utterance without audio */
	stt_result r = { 0 };
	VX_CHECK_INT(ops->stream_finish(st, &r), 0);
	VX_CHECK_STR(r.text, "");
	VX_CHECK_INT(r.n_segments, 0);
	stt_result_release(&r);
	ops->stream_close(st);
	ops->destroy(eng);
}

VX_TEST(audio_fed_at_once_gives_the_greedy_transcript)
{
	stt_config cfg = { .pool_size = 1, .model = model };
	void *eng = NULL, *st = NULL;
	VX_CHECK_INT(ops->create(&cfg, &eng), 0);
	if (!eng)
		return;
	size_t n = 3 * STT_RATE;
	int16_t *pcm = audio(n, 5);
	stt_result ref = { 0 }, r = { 0 };
	stt_options greedy = { .temperature_inc = -1 };
	VX_CHECK_INT(ops->transcribe(eng, pcm, n, &greedy, NULL, &ref), 0);
	VX_CHECK_INT(ops->stream_open(eng, NULL, &st), 0);
	seen s = { 0 };
	/* one piece: one partial decode (of all of it), then the final */
	VX_CHECK_INT(ops->stream_feed(st, pcm, n, on_partial, &s), 0);
	VX_CHECK(s.n <= 1);
	VX_CHECK_INT(ops->stream_finish(st, &r), 0);
	VX_CHECK_STR(r.text, ref.text ? ref.text : "");
	VX_CHECK_INT(r.n_segments, ref.n_segments);
	for (size_t i = 0; i < r.n_segments && i < ref.n_segments; i++) {
		VX_CHECK_INT(r.segments[i].start_ms, ref.segments[i].start_ms);
		VX_CHECK_INT(r.segments[i].end_ms, ref.segments[i].end_ms);
		VX_CHECK_STR(r.segments[i].text, ref.segments[i].text);
	}
	if (s.n == 1) {   /* the same greedy decode, stopped at the partials' token cap */
		int words = 0;
		for (const char *p = s.text[0]; *(p += strspn(p, " ")); p += strcspn(p, " "))
			words++;
		VX_CHECK_INT(shared_words(s.text[0], ref.text ? ref.text : ""), words);
	}
	seen_release(&s);
	stt_result_release(&r);
	stt_result_release(&ref);
	ops->stream_close(st);
	free(pcm);
	ops->destroy(eng);
}

VX_TEST(refusals_are_named_and_a_stream_holds_its_decoder)
{
	stt_config cfg = { .pool_size = 1, .model = model };
	void *eng = NULL, *st = NULL, *st2 = NULL;
	VX_CHECK_INT(ops->create(&cfg, &eng), 0);
	if (!eng)
		return;
	VX_CHECK_INT(ops->stream_open(eng, &(stt_options){ .language = "de" }, &st), -ENOTSUP);
	VX_CHECK_INT(ops->stream_open(eng, &(stt_options){ .language = "auto" }, &st), 0);
	VX_CHECK_INT(ops->stream_open(eng, NULL, &st2), -EBUSY);
	int16_t *pcm = audio(STT_RATE, 1);
	VX_CHECK_INT(ops->transcribe(eng, pcm, STT_RATE, NULL, NULL, &(stt_result){ 0 }), -EBUSY);
	VX_CHECK_INT(ops->stream_feed(st, NULL, 10, NULL, NULL), -EINVAL);
	VX_CHECK_INT(ops->stream_feed(st, NULL, 0, NULL, NULL), 0);
	VX_CHECK_INT(ops->stream_feed(st, pcm, STT_RATE, NULL, NULL), 0);   /* no callback */
	/* over STT_AUDIO_MAX_SECONDS in one utterance */
	VX_CHECK_INT(ops->stream_feed(st, pcm, (size_t)STT_AUDIO_MAX_SECONDS * STT_RATE, NULL, NULL),
		     -E2BIG);
	ops->stream_close(st);   /* mid-utterance: the decoder comes back */
	VX_CHECK_INT(ops->stream_open(eng, NULL, &st2), 0);
	ops->stream_close(st2);
	ops->stream_close(NULL);
	free(pcm);
	ops->destroy(eng);
}

int main(void)
{
	char cmd[700];
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(model, sizeof model, "%s/tiny.bin", dir);
	/* tiny, 96 text positions: random weights decode until the context is full */
	snprintf(cmd, sizeof cmd,
		 "/usr/bin/python3 -c \"import sys; sys.path.insert(0, '%s'); import mkwhisper as m; "
		 "hp = dict(m.SHAPES['tiny']); hp['n_text_ctx'] = 96; "
		 "m.write('%s', hp, m.TYPE_NAMES['f16'], 3)\"", WHISPER_TEST_DIR, model);
	if (system(cmd) != 0) {
		fprintf(stderr, "test_whisper_stream: cannot write the test model (python3, numpy?)\n");
		return 1;
	}
	vx_test_fn fns[] = { partials_come_as_audio_grows_and_committed_words_stay,
			     audio_fed_at_once_gives_the_greedy_transcript,
			     refusals_are_named_and_a_stream_holds_its_decoder };
	int rc = vx_test_run("partials_come_as_audio_grows_and_committed_words_stay, "
			     "audio_fed_at_once_gives_the_greedy_transcript, "
			     "refusals_are_named_and_a_stream_holds_its_decoder", fns, 3);
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		rc = 1;
	return rc;
}
