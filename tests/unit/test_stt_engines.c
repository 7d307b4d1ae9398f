/*
 * test_stt_engines.c - the STT engines: pocketsphinx on real speech made by
 * flite in process (word error rate, segments, streaming partials, the
 * decoder pool, cancel), and the remote whisper.cpp / OpenAI engines against
 * tests/stt_fake_server.py (wire format, key, errors, timeout, cancel).
 *
 * The speech check: flite's "slt" voice (the TTS service's default) says
 * each of stt_test_sentences; pocketsphinx must get the set under
 * STT_TEST_WER_MAX word error rate. The integration test uses the same
 * voice and sentences. Figures (WER, real-time factor, load time, resident
 * memory per decoder) are printed as "# ..." lines.
 */
#include "stt_engine.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <flite/flite.h>

#include "vx_buf.h"
#include "vx_test.h"
#include "vx_testproc.h"

cst_voice *register_cmu_us_slt(const char *voxdir);
void unregister_cmu_us_slt(cst_voice *v);
cst_voice *register_cmu_us_kal16(const char *voxdir);
void unregister_cmu_us_kal16(cst_voice *v);
cst_voice *register_cmu_us_awb(const char *voxdir);
void unregister_cmu_us_awb(cst_voice *v);
cst_voice *register_cmu_us_rms(const char *voxdir);
void unregister_cmu_us_rms(cst_voice *v);

#define STT_TEST_WER_MAX 0.15
#define WER_WORDS_MAX 128          /* words per text the WER function takes */
#define WER_WORD_MAX 48            /* bytes per word */
#define STREAM_CHUNK (STT_RATE / 10)   /* 100 ms frames, as a client sends */

/* Everyday requests to an assistant; the integration test uses these too. */
static const char *const stt_test_sentences[] = {
	"What time is it right now?",
	"Can you tell me the weather for tomorrow?",
	"Please turn off the lights in the kitchen.",
	"How far is the nearest train station from here?",
	"Thank you very much for your help today.",
	"Do you know a good place to eat around here?",
	"Could you send me the address again please?",
	"We are going to the beach next weekend.",
};
#define N_SENTENCES (sizeof(stt_test_sentences) / sizeof(stt_test_sentences[0]))

/* ---- helpers: WER, clock, memory, flite ---- */

/* Lowercased words without punctuation (apostrophes kept); returns count. */
static int wer_words(const char *s, char words[][WER_WORD_MAX], int max)
{
	int n = 0, len = 0;

	for (;; s++) {
		unsigned char c = (unsigned char)*s;

		if (isalnum(c) || c == '\'') {
			if (len < WER_WORD_MAX - 1)
				words[n < max ? n : max - 1][len++] = (char)tolower(c);
			continue;
		}
		if (len > 0) {
			words[n < max ? n : max - 1][len] = '\0';
			if (n < max)
				n++;
			len = 0;
		}
		if (!c)
			return n;
	}
}

/* Word-level Levenshtein distance; *ret_ref gets the reference's length. */
static int wer_errors(const char *ref, const char *hyp, int *ret_ref)
{
	static char r[WER_WORDS_MAX][WER_WORD_MAX], h[WER_WORDS_MAX][WER_WORD_MAX];
	static int d[WER_WORDS_MAX + 1][WER_WORDS_MAX + 1];
	int nr = wer_words(ref, r, WER_WORDS_MAX);
	int nh = wer_words(hyp ? hyp : "", h, WER_WORDS_MAX);

	for (int i = 0; i <= nr; i++)
		d[i][0] = i;
	for (int j = 0; j <= nh; j++)
		d[0][j] = j;
	for (int i = 1; i <= nr; i++) {
		for (int j = 1; j <= nh; j++) {
			int best = d[i - 1][j - 1] + (strcmp(r[i - 1], h[j - 1]) != 0);

			if (d[i - 1][j] + 1 < best)
				best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			d[i][j] = best;
		}
	}
	*ret_ref = nr;
	return d[nr][nh];
}

static double wer(const char *ref, const char *hyp)
{
	int nref, e = wer_errors(ref, hyp, &nref);

	return nref ? (double)e / nref : (e ? 1.0 : 0.0);
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "VmRSS:", 6) == 0)
			kb = atol(line + 6);
	fclose(f);
	return kb;
}

static cst_voice *slt;

/* The sentence as 16 kHz PCM16 from a flite voice; caller frees. */
static int16_t *speak_with(cst_voice *v, const char *text, size_t *ret_n)
{
	cst_wave *w;
	int16_t *pcm;

	w = flite_text_to_wave(text, v);
	if (!w)
		return NULL;
	if (w->sample_rate != STT_RATE)
		cst_wave_resample(w, STT_RATE);
	pcm = malloc((size_t)w->num_samples * sizeof(*pcm));
	if (pcm) {
		memcpy(pcm, w->samples, (size_t)w->num_samples * sizeof(*pcm));
		*ret_n = (size_t)w->num_samples;
	}
	delete_wave(w);
	return pcm;
}

/* The sentence from flite's slt voice (the TTS default); caller frees. */
static int16_t *speak(const char *text, size_t *ret_n)
{
	if (!slt) {
		flite_init();
		slt = register_cmu_us_slt(NULL);
	}
	return speak_with(slt, text, ret_n);
}

static void speak_done(void)
{
	if (slt)
		unregister_cmu_us_slt(slt);
	slt = NULL;
}

static int sphinx_new(int pool, const char *args, void **ret)
{
	return stt_engine_pocketsphinx.create(&(stt_config){
		.pool_size = pool, .decoder_args = args }, ret);
}

/* Segments are in order, inside the audio, and spell the text. */
static void check_segments(const stt_result *r, size_t n_samples)
{
	int64_t audio_ms = (int64_t)n_samples * 1000 / STT_RATE, prev = 0;
	vx_buf joined = { 0 };

	VX_CHECK(r->n_segments > 0);
	for (size_t i = 0; i < r->n_segments; i++) {
		const stt_segment *s = &r->segments[i];

		VX_CHECK(s->start_ms >= prev);
		VX_CHECK(s->end_ms > s->start_ms);
		VX_CHECK(s->end_ms <= audio_ms + 20);
		VX_CHECK(s->text && *s->text && !strchr(s->text, '('));
		prev = s->end_ms;
		vx_buf_printf(&joined, "%s%s", i ? " " : "", s->text);
	}
	VX_CHECK_STR(joined.data ? joined.data : "", r->text);
	vx_buf_release(&joined);
}

/* ---- registry and WER ---- */

VX_TEST(registry_finds_engines_by_name_default_first)
{
	VX_CHECK(stt_engine_find(NULL) == &stt_engine_pocketsphinx);
	VX_CHECK(stt_engine_find("") == &stt_engine_pocketsphinx);
	VX_CHECK(stt_engine_find("pocketsphinx") == &stt_engine_pocketsphinx);
	VX_CHECK(stt_engine_find("whisper-server") == &stt_engine_whisper_server);
	VX_CHECK(stt_engine_find("whisper.cpp") == &stt_engine_whisper_server);
	VX_CHECK(stt_engine_find("whisper") == &stt_engine_whisper);
	VX_CHECK(stt_engine_find("openai") == &stt_engine_openai);
	VX_CHECK(stt_engine_find("nope") == NULL);
	VX_CHECK(stt_engine_pocketsphinx.stream_open != NULL);
	VX_CHECK(stt_engine_whisper_server.stream_open == NULL);
	stt_result_release(&(stt_result){ 0 });
	stt_result_release(NULL);
}

VX_TEST(wer_counts_word_edits_ignoring_case_and_punctuation)
{
	VX_CHECK(wer("Hello, world!", "hello world") == 0.0);
	VX_CHECK(wer("a b c d", "a x c d") == 0.25);        /* substitution */
	VX_CHECK(wer("a b c d", "a c d") == 0.25);          /* deletion */
	VX_CHECK(wer("a b c d", "a b b c d") == 0.25);      /* insertion */
	VX_CHECK(wer("it's here", "its here") == 0.5);
	VX_CHECK(wer("a b", "") == 1.0);
	VX_CHECK(wer("", "") == 0.0);
}

/* ---- pocketsphinx ---- */

VX_TEST(sphinx_transcribes_flite_speech_under_wer_limit)
{
	const stt_engine_ops *ops = &stt_engine_pocketsphinx;
	void *eng = NULL;
	int errors = 0, words = 0;
	double audio_s = 0, proc_s = 0, t;

	t = now_s();
	VX_CHECK_INT(sphinx_new(1, NULL, &eng), 0);
	printf("# pocketsphinx load (1 decoder): %.2f s\n", now_s() - t);
	if (!eng)
		return;
	for (size_t i = 0; i < N_SENTENCES; i++) {
		size_t n = 0;
		int16_t *pcm = speak(stt_test_sentences[i], &n);
		stt_result r = { 0 };
		int nref, e;

		VX_CHECK(pcm != NULL);
		if (!pcm)
			continue;
		t = now_s();
		VX_CHECK_INT(ops->transcribe(eng, pcm, n, &(stt_options){
			.language = "en" }, NULL, &r), 0);
		proc_s += now_s() - t;
		audio_s += (double)n / STT_RATE;
		e = wer_errors(stt_test_sentences[i], r.text, &nref);
		errors += e;
		words += nref;
		printf("#   [%d/%d] %s -> %s\n", e, nref, stt_test_sentences[i],
		       r.text ? r.text : "(null)");
		VX_CHECK_STR(r.language, "en");
		check_segments(&r, n);
		stt_result_release(&r);
		free(pcm);
	}
	printf("# pocketsphinx on flite slt: WER %.1f%% (%d/%d words), "
	       "RTF %.3f (%.2f s for %.2f s of audio)\n", 100.0 * errors / words,
	       errors, words, proc_s / audio_s, proc_s, audio_s);
	VX_CHECK(words > 0 && (double)errors / words < STT_TEST_WER_MAX);
	ops->destroy(eng);
}

/* All sentences in one request to a fresh decoder, as the integration test
 * round-trips them through the TTS and STT services. */
VX_TEST(sphinx_transcribes_all_sentences_in_one_request_under_wer_limit)
{
	void *eng = NULL;
	vx_buf text = { 0 };
	int16_t *pcm;
	size_t n = 0;
	stt_result r = { 0 };
	double t, w;

	for (size_t i = 0; i < N_SENTENCES; i++)
		vx_buf_printf(&text, "%s%s", i ? " " : "", stt_test_sentences[i]);
	pcm = speak(text.data, &n);
	VX_CHECK(pcm != NULL);
	VX_CHECK_INT(sphinx_new(1, NULL, &eng), 0);
	if (!eng || !pcm)
		goto out;
	t = now_s();
	VX_CHECK_INT(stt_engine_pocketsphinx.transcribe(eng, pcm, n, NULL, NULL,
							&r), 0);
	t = now_s() - t;
	w = wer(text.data, r.text);
	printf("# one request, %.1f s of audio: WER %.1f%%, RTF %.3f\n#   %s\n",
	       (double)n / STT_RATE, 100.0 * w, t * STT_RATE / (double)n,
	       r.text ? r.text : "(null)");
	VX_CHECK(w < STT_TEST_WER_MAX);
	check_segments(&r, n);
	stt_result_release(&r);
out:
	stt_engine_pocketsphinx.destroy(eng);
	free(pcm);
	vx_buf_release(&text);
}

struct partials {
	int calls;
	int repeats;            /* a partial equal to the one before */
	char last[1024];
};

static void on_partial(void *user, const char *text)
{
	struct partials *p = user;

	p->calls++;
	if (strcmp(p->last, text) == 0)
		p->repeats++;
	snprintf(p->last, sizeof(p->last), "%s", text);
}

/* Feeds one sentence in 100 ms chunks and finishes; returns its WER. */
static double stream_sentence(void *st, const char *text, struct partials *p)
{
	const stt_engine_ops *ops = &stt_engine_pocketsphinx;
	size_t n = 0;
	int16_t *pcm = speak(text, &n);
	stt_result r = { 0 };
	double w = 1.0;

	if (!pcm)
		return w;
	for (size_t off = 0; off < n; off += STREAM_CHUNK) {
		size_t len = n - off < STREAM_CHUNK ? n - off : STREAM_CHUNK;

		VX_CHECK_INT(ops->stream_feed(st, pcm + off, len, on_partial, p), 0);
	}
	VX_CHECK_INT(ops->stream_finish(st, &r), 0);
	if (r.text) {
		w = wer(text, r.text);
		check_segments(&r, n);
	}
	stt_result_release(&r);
	free(pcm);
	return w;
}

VX_TEST(sphinx_stream_gives_changing_partials_then_final_twice)
{
	const stt_engine_ops *ops = &stt_engine_pocketsphinx;
	void *eng = NULL, *st = NULL;
	struct partials p1 = { 0 }, p2 = { 0 };
	stt_result empty = { 0 };

	VX_CHECK_INT(sphinx_new(1, NULL, &eng), 0);
	if (!eng)
		return;
	VX_CHECK_INT(ops->stream_open(eng, NULL, &st), 0);
	if (st) {
		VX_CHECK(stream_sentence(st, stt_test_sentences[2], &p1) < 0.3);
		VX_CHECK(p1.calls >= 2);
		VX_CHECK_INT(p1.repeats, 0);
		VX_CHECK(wer(stt_test_sentences[2], p1.last) < 0.5);
		/* the same stream takes the next utterance */
		VX_CHECK(stream_sentence(st, stt_test_sentences[4], &p2) < 0.3);
		VX_CHECK(p2.calls >= 2);
		VX_CHECK(wer(stt_test_sentences[4], p2.last) < 0.5);
		/* finish with nothing fed: an empty result, not an error */
		VX_CHECK_INT(ops->stream_finish(st, &empty), 0);
		VX_CHECK_STR(empty.text, "");
		VX_CHECK_INT(empty.n_segments, 0);
		stt_result_release(&empty);
		ops->stream_close(st);
	}
	ops->stream_close(NULL);
	ops->destroy(eng);
}

VX_TEST(sphinx_pool_refuses_when_all_decoders_are_taken)
{
	const stt_engine_ops *ops = &stt_engine_pocketsphinx;
	void *eng = NULL, *st = NULL, *st2 = NULL;
	int16_t pcm[1600] = { 0 };
	stt_result r = { 0 };

	VX_CHECK_INT(sphinx_new(1, NULL, &eng), 0);
	if (!eng)
		return;
	VX_CHECK_INT(ops->stream_open(eng, NULL, &st), 0);
	VX_CHECK_INT(ops->transcribe(eng, pcm, 1600, NULL, NULL, &r), -EBUSY);
	VX_CHECK_INT(ops->stream_open(eng, NULL, &st2), -EBUSY);
	VX_CHECK(r.text == NULL);
	/* an unfinished utterance is dropped on close; the decoder is reusable */
	VX_CHECK_INT(ops->stream_feed(st, pcm, 1600, NULL, NULL), 0);
	ops->stream_close(st);
	VX_CHECK_INT(ops->transcribe(eng, pcm, 1600, NULL, NULL, &r), 0);
	VX_CHECK(r.text != NULL);
	stt_result_release(&r);
	ops->destroy(eng);
}

VX_TEST(sphinx_cancel_stops_transcribe_and_keeps_decoder_usable)
{
	const stt_engine_ops *ops = &stt_engine_pocketsphinx;
	void *eng = NULL;
	size_t n = 0;
	int16_t *pcm = speak(stt_test_sentences[0], &n);
	atomic_bool cancel = true;
	stt_result r = { 0 };

	VX_CHECK_INT(sphinx_new(1, NULL, &eng), 0);
	if (!eng || !pcm)
		goto out;
	VX_CHECK_INT(ops->transcribe(eng, pcm, n, NULL, &cancel, &r), -ECANCELED);
	VX_CHECK(r.text == NULL);
	atomic_store(&cancel, false);
	VX_CHECK_INT(ops->transcribe(eng, pcm, n, NULL, &cancel, &r), 0);
	/* usable, not a WER check: one short sentence on a fresh decoder */
	VX_CHECK(wer(stt_test_sentences[0], r.text) < 0.5);
	stt_result_release(&r);
out:
	free(pcm);
	ops->destroy(eng);
}

VX_TEST(sphinx_rejects_bad_input_and_config)
{
	const stt_engine_ops *ops = &stt_engine_pocketsphinx;
	void *eng = NULL, *st = NULL;
	stt_result r = { 0 };
	int16_t one = 0;

	VX_CHECK_INT(sphinx_new(0, NULL, &eng), -EINVAL);
	VX_CHECK_INT(sphinx_new(STT_POOL_MAX + 1, NULL, &eng), -EINVAL);
	VX_CHECK_INT(ops->create(NULL, &eng), -EINVAL);
	VX_CHECK_INT(sphinx_new(1, "-nosuchoption 1", &eng), -EINVAL);
	VX_CHECK_INT(sphinx_new(1, "-lw", &eng), -EINVAL);
	VX_CHECK_INT(ops->create(&(stt_config){ .pool_size = 1,
		.model_dir = "/nonexistent/model" }, &eng), -ENOENT);
	VX_CHECK_INT(ops->create(&(stt_config){ .pool_size = 1,
		.lm = "/nonexistent/lm.bin" }, &eng), -ENOENT);
	VX_CHECK(eng == NULL);
	/* empty strings mean the defaults */
	VX_CHECK_INT(ops->create(&(stt_config){ .pool_size = 1, .model_dir = "",
		.dict = "", .lm = "", .decoder_args = "" }, &eng), 0);
	ops->destroy(eng);
	eng = NULL;
	/* overriding a default is not a duplicate */
	VX_CHECK_INT(sphinx_new(1, "-remove_noise yes  -lw 6.5", &eng), 0);
	if (!eng)
		return;
	VX_CHECK_INT(ops->transcribe(eng, NULL, 5, NULL, NULL, &r), -EINVAL);
	VX_CHECK_INT(ops->transcribe(eng, &one,
		(size_t)STT_AUDIO_MAX_SECONDS * STT_RATE + 1, NULL, NULL, &r), -E2BIG);
	VX_CHECK_INT(ops->transcribe(eng, &one, 1, &(stt_options){
		.language = "de" }, NULL, &r), -ENOTSUP);
	VX_CHECK_INT(ops->stream_open(eng, &(stt_options){ .language = "fr" },
				      &st), -ENOTSUP);
	VX_CHECK(r.text == NULL);
	/* no audio at all is an empty transcript */
	VX_CHECK_INT(ops->transcribe(eng, NULL, 0, &(stt_options){
		.language = "en-US" }, NULL, &r), 0);
	VX_CHECK_STR(r.text, "");
	stt_result_release(&r);
	ops->destroy(eng);
	ops->destroy(NULL);
}

struct worker {
	void *eng;
	const char *text;
	int16_t *pcm;           /* flite is not thread-safe: spoken beforehand */
	size_t n;
	double wer;
	int err;
};

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	stt_result r = { 0 };

	w->wer = 1.0;
	w->err = stt_engine_pocketsphinx.transcribe(w->eng, w->pcm, w->n, NULL,
						    NULL, &r);
	if (w->err == 0)
		w->wer = wer(w->text, r.text);
	stt_result_release(&r);
	return NULL;
}

VX_TEST(sphinx_pool_of_four_decodes_in_parallel)
{
	const stt_engine_ops *ops = &stt_engine_pocketsphinx;
	void *eng = NULL, *st[4] = { 0 }, *fifth = NULL;
	struct worker w[2] = { 0 };
	pthread_t th[2];

	VX_CHECK_INT(sphinx_new(4, NULL, &eng), 0);
	if (!eng)
		return;
	for (int i = 0; i < 4; i++)
		VX_CHECK_INT(ops->stream_open(eng, NULL, &st[i]), 0);
	VX_CHECK_INT(ops->stream_open(eng, NULL, &fifth), -EBUSY);
	for (int i = 0; i < 4; i++)
		ops->stream_close(st[i]);
	for (int i = 0; i < 2; i++) {
		w[i].eng = eng;
		w[i].text = stt_test_sentences[i + 4];
		w[i].pcm = speak(w[i].text, &w[i].n);
		VX_CHECK(w[i].pcm != NULL);
	}
	for (int i = 0; i < 2; i++)
		VX_CHECK_INT(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < 2; i++) {
		VX_CHECK_INT(w[i].err, 0);
		VX_CHECK(w[i].wer < 0.3);
		free(w[i].pcm);
	}
	ops->destroy(eng);
}

/*
 * Load time and resident memory of a pool, measured in a fresh process:
 * the test re-executes itself with STT_TEST_MEASURE_POOL=n, which the
 * constructor below handles before main (a fork would reuse the parent's
 * freed heap and hide the cost).
 */
__attribute__((constructor)) static void measure_pool_child(void)
{
	const char *env = getenv("STT_TEST_MEASURE_POOL");
	void *eng = NULL;
	long rss0;
	double t;
	int pool, err;

	if (!env)
		return;
	pool = atoi(env);
	rss0 = rss_kb();
	t = now_s();
	err = sphinx_new(pool, NULL, &eng);
	printf("# pocketsphinx pool of %d: load %.2f s, resident +%ld MB\n",
	       pool, now_s() - t, (rss_kb() - rss0) / 1024);
	stt_engine_pocketsphinx.destroy(eng);
	fflush(stdout);
	_exit(err == 0 ? 0 : 1);
}

static int measure_pool(int pool)
{
	char n[16];
	pid_t pid;
	int status = 0;

	snprintf(n, sizeof(n), "%d", pool);
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		setenv("STT_TEST_MEASURE_POOL", n, 1);
		execl("/proc/self/exe", "test_stt_engines", (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

VX_TEST(sphinx_pool_load_time_and_memory)
{
	VX_CHECK_INT(measure_pool(1), 0);
	VX_CHECK_INT(measure_pool(4), 0);
}

/* ---- remote engines, against tests/stt_fake_server.py ---- */

#define FAKE_KEY "sk-test-456"
#define FAKE_SAMPLES 24000         /* 1.5 s: two segments from the fake */

static vx_testproc fake;

static void fake_stop(void)
{
	vx_testproc_stop(&fake);
}

static int fake_start(void)
{
	const char *py = getenv("PYTHON") ? getenv("PYTHON") : "/usr/bin/python3";
	const char *script = getenv("VOXLINE_STT_FAKE_SERVER")
			     ? getenv("VOXLINE_STT_FAKE_SERVER")
			     : "tests/stt_fake_server.py";
	char *argv[] = { (char *)py, (char *)script, "--port", "0", "--key",
			 FAKE_KEY, NULL };

	if (fake.pid > 0)
		return 0;
	int r = vx_testproc_start(&fake, argv);
	if (r == 0)
		atexit(fake_stop);
	return r;
}

static int fake_engine(const stt_engine_ops *ops, const char *mode,
		       const char *key, const char *model, int timeout_ms,
		       int pool, void **ret)
{
	char url[128];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s%s/", fake.port,
		 *mode ? "/" : "", mode);
	return ops->create(&(stt_config){ .pool_size = pool, .url = url,
		.api_key = key, .model = model, .timeout_ms = timeout_ms }, ret);
}

static size_t fake_get_write(char *p, size_t sz, size_t nm, void *ud)
{
	return vx_buf_append(ud, p, sz * nm) == 0 ? sz * nm : 0;
}

/* GET /last from the fake: what it saw of the last request; caller deletes. */
static cJSON *fake_last(void)
{
	char url[64];
	vx_buf out = { 0 };
	CURL *h = curl_easy_init();
	cJSON *j = NULL;

	if (!h)
		return NULL;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/last", fake.port);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fake_get_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
	if (curl_easy_perform(h) == CURLE_OK && out.data)
		j = cJSON_Parse(out.data);
	curl_easy_cleanup(h);
	vx_buf_release(&out);
	return j;
}

/* obj.a.b as a string, or "" */
static const char *jstr(const cJSON *j, const char *a, const char *b)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, a);

	if (b)
		v = cJSON_GetObjectItemCaseSensitive(v, b);
	return cJSON_IsString(v) ? v->valuestring : "";
}

static int16_t fake_pcm[FAKE_SAMPLES];

/* A sawtooth the fake sums; the checksum proves the WAV crossed intact. */
static long fake_audio(void)
{
	long long sum = 0;

	for (int i = 0; i < FAKE_SAMPLES; i++) {
		fake_pcm[i] = (int16_t)((i * 37) % 20000 - 10000);
		sum += fake_pcm[i];
	}
	return (long)(((sum % 65536) + 65536) % 65536);
}

VX_TEST(remote_whisper_posts_wav_and_fields_reads_verbose_json)
{
	const stt_engine_ops *ops = &stt_engine_whisper_server;
	void *eng = NULL;
	stt_result r = { 0 };
	char want[128];
	cJSON *last;

	VX_CHECK_INT(fake_start(), 0);
	snprintf(want, sizeof(want), "heard %d samples at 16000 hz checksum %ld",
		 FAKE_SAMPLES, fake_audio());
	VX_CHECK_INT(fake_engine(ops, "", NULL, NULL, 10000, 2, &eng), 0);
	if (!eng)
		return;
	VX_CHECK_INT(ops->transcribe(eng, fake_pcm, FAKE_SAMPLES, &(stt_options){
		.language = "en", .prompt = "voxline", .request_id = "req-42" },
		NULL, &r), 0);
	VX_CHECK_STR(r.text, want);
	VX_CHECK_STR(r.language, "en");
	VX_CHECK_INT(r.n_segments, 2);
	if (r.n_segments == 2) {
		VX_CHECK_INT(r.segments[1].start_ms, 1000);
		VX_CHECK_INT(r.segments[1].end_ms, 1500);
		VX_CHECK_STR(r.segments[1].text, "second 1");
	}
	stt_result_release(&r);
	last = fake_last();
	VX_CHECK(last != NULL);
	VX_CHECK_STR(jstr(last, "path", NULL), "/inference");
	VX_CHECK_STR(jstr(last, "headers", "x-request-id"), "req-42");
	VX_CHECK_STR(jstr(last, "headers", "authorization"), "");
	VX_CHECK_STR(jstr(last, "fields", "temperature"), "0.0");
	VX_CHECK_STR(jstr(last, "fields", "response_format"), "verbose_json");
	VX_CHECK_STR(jstr(last, "fields", "language"), "en");
	VX_CHECK_STR(jstr(last, "fields", "prompt"), "voxline");
	VX_CHECK_STR(jstr(last, "fields", "model"), "");
	{
		const cJSON *f = cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(last, "fields"), "file");

		VX_CHECK_STR(jstr(f, "filename", NULL), "audio.wav");
		VX_CHECK_STR(jstr(f, "content_type", NULL), "audio/wav");
		VX_CHECK_INT(cJSON_GetNumberValue(
			cJSON_GetObjectItemCaseSensitive(f, "bytes")),
			44 + 2 * FAKE_SAMPLES);
	}
	cJSON_Delete(last);
	ops->destroy(eng);
}

VX_TEST(remote_openai_sends_model_and_bearer_key)
{
	const stt_engine_ops *ops = &stt_engine_openai;
	void *eng = NULL;
	stt_result r = { 0 };
	cJSON *last;

	VX_CHECK_INT(fake_start(), 0);
	fake_audio();
	VX_CHECK_INT(fake_engine(ops, "", FAKE_KEY, NULL, 10000, 1, &eng), 0);
	if (!eng)
		return;
	VX_CHECK_INT(ops->transcribe(eng, fake_pcm, FAKE_SAMPLES, NULL, NULL, &r), 0);
	VX_CHECK(r.text && strncmp(r.text, "heard 24000 samples", 19) == 0);
	VX_CHECK_STR(r.language, "en");
	stt_result_release(&r);
	last = fake_last();
	VX_CHECK_STR(jstr(last, "path", NULL), "/v1/audio/transcriptions");
	VX_CHECK_STR(jstr(last, "headers", "authorization"), "Bearer " FAKE_KEY);
	VX_CHECK_STR(jstr(last, "fields", "model"), "whisper-1");
	VX_CHECK_STR(jstr(last, "fields", "response_format"), "verbose_json");
	VX_CHECK_STR(jstr(last, "fields", "temperature"), "");
	VX_CHECK_STR(jstr(last, "fields", "language"), "");
	cJSON_Delete(last);
	ops->destroy(eng);

	/* a configured model is sent as given; a wrong key is refused */
	VX_CHECK_INT(fake_engine(ops, "", FAKE_KEY, "large-v3", 10000, 1, &eng), 0);
	if (eng) {
		VX_CHECK_INT(ops->transcribe(eng, fake_pcm, 1600, NULL, NULL, &r), 0);
		stt_result_release(&r);
		last = fake_last();
		VX_CHECK_STR(jstr(last, "fields", "model"), "large-v3");
		cJSON_Delete(last);
		ops->destroy(eng);
	}
	VX_CHECK_INT(fake_engine(ops, "", "sk-wrong", NULL, 10000, 1, &eng), 0);
	if (eng) {
		VX_CHECK_INT(ops->transcribe(eng, fake_pcm, 1600, NULL, NULL, &r),
			     -EPROTO);
		VX_CHECK(r.text == NULL);
		ops->destroy(eng);
	}
}

VX_TEST(remote_bad_answers_are_eproto)
{
	static const char *const modes[] = { "500", "garbage", "notext" };
	void *eng = NULL;
	stt_result r = { 0 };

	VX_CHECK_INT(fake_start(), 0);
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		VX_CHECK_INT(fake_engine(&stt_engine_whisper_server, modes[i], NULL, NULL,
					 10000, 1, &eng), 0);
		if (!eng)
			continue;
		VX_CHECK_INT(stt_engine_whisper_server.transcribe(eng, fake_pcm, 1600,
							   NULL, NULL, &r), -EPROTO);
		VX_CHECK(r.text == NULL);
		stt_engine_whisper_server.destroy(eng);
		eng = NULL;
	}
	/* a path the server does not have (404) */
	VX_CHECK_INT(fake_engine(&stt_engine_whisper_server, "v1", NULL, NULL, 10000, 1,
				 &eng), 0);
	if (eng) {
		VX_CHECK_INT(stt_engine_whisper_server.transcribe(eng, fake_pcm, 1600,
							   NULL, NULL, &r), -EPROTO);
		stt_engine_whisper_server.destroy(eng);
	}
}

VX_TEST(remote_stalled_server_times_out)
{
	void *eng = NULL;
	stt_result r = { 0 };
	double t, took;

	VX_CHECK_INT(fake_start(), 0);
	VX_CHECK_INT(fake_engine(&stt_engine_whisper_server, "stall", NULL, NULL, 600, 1,
				 &eng), 0);
	if (!eng)
		return;
	t = now_s();
	VX_CHECK_INT(stt_engine_whisper_server.transcribe(eng, fake_pcm, 1600, NULL,
						   NULL, &r), -ETIMEDOUT);
	took = now_s() - t;
	VX_CHECK(took >= 0.5 && took < 3.0);
	stt_engine_whisper_server.destroy(eng);
}

struct stall_call {
	void *eng;
	atomic_bool cancel;
	int err;
	double took;
};

static void *stall_run(void *arg)
{
	struct stall_call *c = arg;
	stt_result r = { 0 };
	double t = now_s();

	c->err = stt_engine_openai.transcribe(c->eng, fake_pcm, 1600, NULL,
					      &c->cancel, &r);
	c->took = now_s() - t;
	stt_result_release(&r);
	return NULL;
}

VX_TEST(remote_cancel_stops_a_stalled_request_and_frees_the_slot)
{
	struct stall_call c = { 0 };
	stt_result r = { 0 };
	pthread_t th;
	atomic_bool set = true;

	VX_CHECK_INT(fake_start(), 0);
	VX_CHECK_INT(fake_engine(&stt_engine_openai, "stall", FAKE_KEY, NULL,
				 20000, 1, &c.eng), 0);
	if (!c.eng)
		return;
	atomic_init(&c.cancel, false);
	VX_CHECK_INT(pthread_create(&th, NULL, stall_run, &c), 0);
	usleep(300 * 1000);
	/* the only slot is in use */
	VX_CHECK_INT(stt_engine_openai.transcribe(c.eng, fake_pcm, 1600, NULL,
						  NULL, &r), -EBUSY);
	atomic_store(&c.cancel, true);
	pthread_join(th, NULL);
	VX_CHECK_INT(c.err, -ECANCELED);
	VX_CHECK(c.took < 1.5);
	/* cancelled before it starts; the slot is free again */
	VX_CHECK_INT(stt_engine_openai.transcribe(c.eng, fake_pcm, 1600, NULL,
						  &set, &r), -ECANCELED);
	stt_engine_openai.destroy(c.eng);
}

VX_TEST(remote_unreachable_server_is_econnrefused)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = 0;
	char url[64];
	void *eng = NULL;
	stt_result r = { 0 };

	/* a port that was just free: nobody listens there */
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	VX_CHECK(port > 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	VX_CHECK_INT(stt_engine_whisper_server.create(&(stt_config){ .pool_size = 1,
		.url = url, .timeout_ms = 5000 }, &eng), 0);
	if (!eng)
		return;
	VX_CHECK_INT(stt_engine_whisper_server.transcribe(eng, fake_pcm, 1600, NULL,
						   NULL, &r), -ECONNREFUSED);
	VX_CHECK(r.text == NULL);
	stt_engine_whisper_server.destroy(eng);
}

VX_TEST(remote_create_rejects_bad_config)
{
	void *eng = NULL;
	stt_result r = { 0 };

	VX_CHECK_INT(stt_engine_openai.create(&(stt_config){ .pool_size = 1 },
					      &eng), -EINVAL);
	VX_CHECK_INT(stt_engine_openai.create(&(stt_config){ .pool_size = 0,
		.url = "http://127.0.0.1:1" }, &eng), -EINVAL);
	VX_CHECK_INT(stt_engine_whisper_server.create(NULL, &eng), -EINVAL);
	VX_CHECK(eng == NULL);
	VX_CHECK_INT(stt_engine_whisper_server.create(&(stt_config){ .pool_size = 1,
		.url = "http://127.0.0.1:1" }, &eng), 0);
	if (!eng)
		return;
	VX_CHECK_INT(stt_engine_whisper_server.transcribe(eng, NULL, 3, NULL, NULL, &r),
		     -EINVAL);
	VX_CHECK_INT(stt_engine_whisper_server.transcribe(eng, fake_pcm, 16000,
		&(stt_options){ .request_id = "a\r\nX-Evil: 1" }, NULL, &r), -EINVAL);
	stt_engine_whisper_server.destroy(eng);
	stt_engine_whisper_server.destroy(NULL);
}

/*
 * Not a check: WER and real-time factor for every 16 kHz flite voice, run
 * when STT_TEST_ALL_VOICES=1 (takes a minute); the figures for the report.
 */
VX_TEST(sphinx_measures_every_flite_voice_when_asked)
{
	static const struct {
		const char *name;
		cst_voice *(*reg)(const char *);
		void (*unreg)(cst_voice *);
	} voices[] = {
		{ "slt", register_cmu_us_slt, unregister_cmu_us_slt },
		{ "kal16", register_cmu_us_kal16, unregister_cmu_us_kal16 },
		{ "awb", register_cmu_us_awb, unregister_cmu_us_awb },
		{ "rms", register_cmu_us_rms, unregister_cmu_us_rms },
	};
	const char *args = getenv("STT_TEST_DECODER_ARGS");
	void *eng = NULL;

	if (!getenv("STT_TEST_ALL_VOICES"))
		return;
	flite_init();
	VX_CHECK_INT(sphinx_new(1, args, &eng), 0);
	for (size_t v = 0; eng && v < sizeof(voices) / sizeof(voices[0]); v++) {
		cst_voice *voice = voices[v].reg(NULL);
		int errors = 0, words = 0;
		double audio_s = 0, proc_s = 0;

		for (size_t i = 0; i < N_SENTENCES; i++) {
			size_t n = 0;
			int16_t *pcm = speak_with(voice, stt_test_sentences[i], &n);
			stt_result r = { 0 };
			double t = now_s();
			int nref;

			if (!pcm)
				continue;
			if (stt_engine_pocketsphinx.transcribe(eng, pcm, n, NULL,
							       NULL, &r) == 0) {
				proc_s += now_s() - t;
				audio_s += (double)n / STT_RATE;
				errors += wer_errors(stt_test_sentences[i], r.text, &nref);
				words += nref;
			}
			stt_result_release(&r);
			free(pcm);
		}
		printf("# voice %-6s WER %5.1f%% (%d/%d) RTF %.3f [%s]\n",
		       voices[v].name, words ? 100.0 * errors / words : 100.0,
		       errors, words, audio_s > 0 ? proc_s / audio_s : 0.0,
		       args ? args : "defaults");
		voices[v].unreg(voice);
	}
	stt_engine_pocketsphinx.destroy(eng);
}

VX_TEST(cleanup_releases_flite)
{
	speak_done();
	fake_stop();
}

VX_TEST_MAIN(registry_finds_engines_by_name_default_first,
	     wer_counts_word_edits_ignoring_case_and_punctuation,
	     sphinx_transcribes_flite_speech_under_wer_limit,
	     sphinx_transcribes_all_sentences_in_one_request_under_wer_limit,
	     sphinx_stream_gives_changing_partials_then_final_twice,
	     sphinx_pool_refuses_when_all_decoders_are_taken,
	     sphinx_cancel_stops_transcribe_and_keeps_decoder_usable,
	     sphinx_rejects_bad_input_and_config,
	     sphinx_pool_of_four_decodes_in_parallel,
	     sphinx_pool_load_time_and_memory,
	     remote_whisper_posts_wav_and_fields_reads_verbose_json,
	     remote_openai_sends_model_and_bearer_key,
	     remote_bad_answers_are_eproto,
	     remote_stalled_server_times_out,
	     remote_cancel_stops_a_stalled_request_and_frees_the_slot,
	     remote_unreachable_server_is_econnrefused,
	     remote_create_rejects_bad_config,
	     sphinx_measures_every_flite_voice_when_asked,
	     cleanup_releases_flite)
