/*
 * test_tts_engines.c - the TTS engines with their real libraries: flite and
 * espeak-ng in process, the remote engine against tests/tts_fake_server.py
 * (started here on a free port, stopped at exit).
 *
 * Prints per engine the time to first chunk and the real-time factor, and
 * the resident memory after create.
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "tts_engine.h"
#include "vx_buf.h"
#include "vx_test.h"
#include "vx_testproc.h"

#define LONG_TEXT \
	"The quick brown fox jumps over the lazy dog. It ran into the " \
	"forest, far beyond the river and the hills. Nobody saw it again " \
	"for many years. Then one morning, in the middle of a cold winter, " \
	"it came back to the farm and slept by the fire."
#define SHORT_TEXT "Hello world, this is a test of the voice."

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Collects audio; optionally stops after some chunks. */
struct sink {
	int16_t *pcm;
	size_t n, cap;
	int chunks;
	double t0, t_first;          /* ms */
	int stop_after;              /* 0 = never; else return 1 at that chunk */
	atomic_bool *cancel_after;   /* set instead of returning 1 */
	double energy;               /* sum of squares */
};

static int sink_cb(void *user, const int16_t *pcm, size_t n)
{
	struct sink *s = user;

	if (s->chunks++ == 0)
		s->t_first = now_ms() - s->t0;
	if (s->n + n > s->cap) {
		size_t cap = (s->n + n) * 2;
		int16_t *p = realloc(s->pcm, cap * sizeof(*p));

		if (!p)
			return 1;
		s->pcm = p;
		s->cap = cap;
	}
	memcpy(s->pcm + s->n, pcm, n * sizeof(*pcm));
	for (size_t i = 0; i < n; i++)
		s->energy += (double)pcm[i] * pcm[i];
	s->n += n;
	if (s->stop_after && s->chunks >= s->stop_after) {
		if (s->cancel_after) {
			atomic_store(s->cancel_after, true);
			return 0;
		}
		return 1;
	}
	return 0;
}

static void sink_release(struct sink *s)
{
	free(s->pcm);
	memset(s, 0, sizeof(*s));
}

static double sink_rms(const struct sink *s)
{
	return s->n ? sqrt(s->energy / (double)s->n) : 0.0;
}

static uint64_t sink_hash(const struct sink *s)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < s->n; i++)
		h = (h ^ (uint16_t)s->pcm[i]) * 1099511628211ull;
	return h;
}

/* Synthesises into s; returns the engine's result, *rate the rate. */
static int synth(const tts_engine_ops *ops, void *eng, const char *text,
		 const char *voice, double speed, const atomic_bool *cancel,
		 struct sink *s, int *rate)
{
	tts_options opt = { .voice = voice, .speed = speed,
			    .request_id = "test-req-1" };
	int r;

	s->t0 = now_ms();
	r = ops->synthesize(eng, text, &opt, cancel, sink_cb, s, rate);
	return r;
}

static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static bool sanitized(void)
{
#if defined(__SANITIZE_ADDRESS__)
	return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
	return true;
#endif
#endif
	return false;
}

/* ---- registry and argument checks ---- */

VX_TEST(registry_finds_engines_by_name)
{
	VX_CHECK(tts_engine_find(NULL) == &tts_engine_flite);
	VX_CHECK(tts_engine_find("") == &tts_engine_flite);
	VX_CHECK(tts_engine_find("espeak") == &tts_engine_espeak);
	VX_CHECK(tts_engine_find("openai") == &tts_engine_openai);
	VX_CHECK(tts_engine_find("nope") == NULL);
}

VX_TEST(checks_refuse_bad_text_and_speed)
{
	tts_options o = { .speed = 0 };
	double sp = 0;
	char *big = malloc(TTS_TEXT_MAX + 2);

	VX_CHECK_INT(tts_engine_check("hi", NULL, &sp), 0);
	VX_CHECK(sp == 1.0);
	VX_CHECK_INT(tts_engine_check("", &o, &sp), -EINVAL);
	VX_CHECK_INT(tts_engine_check(NULL, &o, &sp), -EINVAL);
	o.speed = 4.5;
	VX_CHECK_INT(tts_engine_check("hi", &o, &sp), -EINVAL);
	o.speed = 0.1;
	VX_CHECK_INT(tts_engine_check("hi", &o, &sp), -EINVAL);
	o.speed = NAN;
	VX_CHECK_INT(tts_engine_check("hi", &o, &sp), -EINVAL);
	o.speed = 2.0;
	VX_CHECK_INT(tts_engine_check("hi", &o, &sp), 0);
	VX_CHECK(sp == 2.0);
	if (big) {
		memset(big, 'a', TTS_TEXT_MAX + 1);
		big[TTS_TEXT_MAX + 1] = '\0';
		VX_CHECK_INT(tts_engine_check(big, NULL, &sp), -E2BIG);
		big[TTS_TEXT_MAX] = '\0';
		VX_CHECK_INT(tts_engine_check(big, NULL, &sp), 0);
	}
	free(big);
}

/* ---- flite ---- */

VX_TEST(flite_every_voice_makes_plausible_audio)
{
	const tts_engine_ops *ops = &tts_engine_flite;
	const tts_voice *v;
	size_t n = 0;
	void *eng = NULL;
	long before = rss_kb();

	VX_CHECK_INT(ops->create(&(tts_config){0}, &eng), 0);
	if (!eng)
		return;
	printf("  flite: rss after create %ld kB (+%ld)\n", rss_kb(),
	       rss_kb() - before);
	VX_CHECK_INT(ops->voices(eng, &v, &n), 0);
	VX_CHECK_INT(n, 5);
	VX_CHECK_STR(v[0].name, "slt");
	for (size_t i = 0; i < n; i++) {
		struct sink s = {0};
		int rate = 0;
		double t, secs;

		VX_CHECK_INT(synth(ops, eng, SHORT_TEXT, v[i].name, 0, NULL,
				   &s, &rate), 0);
		t = now_ms() - s.t0;
		secs = (double)s.n / (rate ? rate : 1);
		VX_CHECK_INT(rate, v[i].sample_rate);
		VX_CHECK(rate == 8000 || rate == 16000);
		/* ~9 words: 1.5 .. 5 s of speech, not silence */
		VX_CHECK(secs > 1.5 && secs < 5.0);
		VX_CHECK(sink_rms(&s) > 300);
		printf("  flite %-6s %5d Hz %.2f s audio, first chunk %.1f ms, "
		       "rtf %.4f\n", v[i].name, rate, secs, s.t_first,
		       t / 1e3 / secs);
		sink_release(&s);
	}
	ops->destroy(eng);
}

VX_TEST(flite_first_chunk_arrives_before_synthesis_ends)
{
	const tts_engine_ops *ops = &tts_engine_flite;
	void *eng = NULL;
	struct sink s = {0};
	int rate = 0;
	double total;

	VX_CHECK_INT(ops->create(NULL, &eng), 0);
	if (!eng)
		return;
	VX_CHECK_INT(synth(ops, eng, LONG_TEXT, "slt", 1.0, NULL, &s, &rate), 0);
	total = now_ms() - s.t0;
	printf("  flite slt long text: first chunk %.1f ms of %.1f ms, "
	       "%d chunks, %.2f s audio\n", s.t_first, total, s.chunks,
	       (double)s.n / rate);
	VX_CHECK(s.chunks > 10);
	VX_CHECK(s.t_first < total / 3);
	sink_release(&s);
	ops->destroy(eng);
}

VX_TEST(flite_speed_changes_length)
{
	const tts_engine_ops *ops = &tts_engine_flite;
	void *eng = NULL;
	struct sink a = {0}, b = {0};
	int rate = 0;

	VX_CHECK_INT(ops->create(NULL, &eng), 0);
	if (!eng)
		return;
	VX_CHECK_INT(synth(ops, eng, SHORT_TEXT, "kal16", 1.0, NULL, &a, &rate), 0);
	VX_CHECK_INT(synth(ops, eng, SHORT_TEXT, "kal16", 2.0, NULL, &b, &rate), 0);
	VX_CHECK(a.n > 0 && (double)b.n / a.n > 0.35 && (double)b.n / a.n < 0.7);
	sink_release(&a);
	sink_release(&b);
	ops->destroy(eng);
}

VX_TEST(flite_unknown_voice_is_enoent)
{
	const tts_engine_ops *ops = &tts_engine_flite;
	void *eng = NULL;
	struct sink s = {0};
	int rate = 0;

	VX_CHECK_INT(ops->create(&(tts_config){ .default_voice = "nope" }, &eng),
		     -ENOENT);
	VX_CHECK_INT(ops->create(&(tts_config){ .default_voice = "kal" }, &eng), 0);
	if (!eng)
		return;
	VX_CHECK_INT(synth(ops, eng, "Hi.", "nope", 1.0, NULL, &s, &rate), -ENOENT);
	VX_CHECK_INT(s.n, 0);
	/* the configured default is used and listed first */
	VX_CHECK_INT(synth(ops, eng, "Hi there.", NULL, 1.0, NULL, &s, &rate), 0);
	VX_CHECK_INT(rate, 8000);
	{
		const tts_voice *v;
		size_t n;

		ops->voices(eng, &v, &n);
		VX_CHECK_STR(v[0].name, "kal");
		VX_CHECK_INT(n, 5);
	}
	sink_release(&s);
	ops->destroy(eng);
}

VX_TEST(flite_cancel_stops)
{
	const tts_engine_ops *ops = &tts_engine_flite;
	void *eng = NULL, *eng2 = NULL;
	struct sink full = {0}, s = {0}, c = {0}, pre = {0};
	atomic_bool cancel = false;
	int rate = 0;

	VX_CHECK_INT(ops->create(NULL, &eng), 0);
	/* two engine objects share the process-wide voices */
	VX_CHECK_INT(ops->create(NULL, &eng2), 0);
	if (!eng || !eng2)
		return;
	VX_CHECK_INT(synth(ops, eng, LONG_TEXT, "slt", 1.0, NULL, &full, &rate), 0);
	/* the callback says stop */
	s.stop_after = 2;
	VX_CHECK_INT(synth(ops, eng, LONG_TEXT, "slt", 1.0, NULL, &s, &rate),
		     -ECANCELED);
	VX_CHECK_INT(s.chunks, 2);
	/* the cancel flag is set from the callback (as another thread would) */
	c.stop_after = 3;
	c.cancel_after = &cancel;
	VX_CHECK_INT(synth(ops, eng2, LONG_TEXT, "rms", 1.0, &cancel, &c, &rate),
		     -ECANCELED);
	VX_CHECK(c.chunks <= 4);
	VX_CHECK(c.n < full.n / 4);
	/* already cancelled: no audio at all */
	VX_CHECK_INT(synth(ops, eng, LONG_TEXT, "kal", 1.0, &cancel, &pre, &rate),
		     -ECANCELED);
	VX_CHECK_INT(pre.n, 0);
	sink_release(&full);
	sink_release(&s);
	sink_release(&c);
	sink_release(&pre);
	ops->destroy(eng);
	ops->destroy(eng2);
}

struct thread_job {
	const tts_engine_ops *ops;
	void *eng;
	const char *voice;
	int runs;
	double tol;           /* allowed relative change of length and RMS */
	size_t want_n;
	double want_rms;
	uint64_t want_hash;   /* 0 = do not compare samples */
	int bad;
};

static bool thread_job_matches(const struct thread_job *j,
			       const struct sink *s)
{
	double dn = fabs((double)s->n - (double)j->want_n) / (double)j->want_n;
	double dr = fabs(sink_rms(s) - j->want_rms) / j->want_rms;

	if (j->want_hash)
		return s->n == j->want_n && sink_hash(s) == j->want_hash;
	return dn <= j->tol && dr <= j->tol;
}

static void *thread_job_run(void *arg)
{
	struct thread_job *j = arg;

	for (int i = 0; i < j->runs; i++) {
		struct sink s = {0};
		int rate = 0;

		if (synth(j->ops, j->eng, LONG_TEXT, j->voice, 1.0, NULL, &s,
			  &rate) != 0 || !thread_job_matches(j, &s))
			j->bad++;
		sink_release(&s);
	}
	return NULL;
}

/*
 * Runs two threads on (voice a, voice b); each result must match the
 * single-thread reference: bit-exact when exact, else length and RMS
 * within tol (flite's CG voices use random excitation; espeak-ng's output
 * wobbles by a few samples from run to run).
 */
static void two_threads(const tts_engine_ops *ops, void *eng, const char *va,
			const char *vb, bool exact, double tol, int runs)
{
	struct thread_job job[2] = {
		{ .ops = ops, .eng = eng, .voice = va, .runs = runs, .tol = tol },
		{ .ops = ops, .eng = eng, .voice = vb, .runs = runs, .tol = tol },
	};
	pthread_t t[2];

	for (int k = 0; k < 2; k++) {
		struct sink s = {0};
		int rate = 0;

		VX_CHECK_INT(synth(ops, eng, LONG_TEXT, job[k].voice, 1.0, NULL,
				   &s, &rate), 0);
		job[k].want_n = s.n;
		job[k].want_rms = sink_rms(&s);
		job[k].want_hash = exact ? sink_hash(&s) : 0;
		sink_release(&s);
	}
	for (int k = 0; k < 2; k++)
		VX_CHECK_INT(pthread_create(&t[k], NULL, thread_job_run, &job[k]), 0);
	for (int k = 0; k < 2; k++)
		pthread_join(t[k], NULL);
	VX_CHECK_INT(job[0].bad, 0);
	VX_CHECK_INT(job[1].bad, 0);
}

VX_TEST(flite_concurrent_calls_on_one_voice_are_safe)
{
	void *eng = NULL;

	VX_CHECK_INT(tts_engine_flite.create(NULL, &eng), 0);
	if (!eng)
		return;
	/* slt's excitation is random: compare lengths; kal is deterministic */
	two_threads(&tts_engine_flite, eng, "slt", "slt", false, 0.01, 3);
	two_threads(&tts_engine_flite, eng, "kal", "kal", true, 0, 5);
	tts_engine_flite.destroy(eng);
}

/* ---- espeak-ng ---- */

VX_TEST(espeak_voices_are_named_by_language)
{
	const tts_engine_ops *ops = &tts_engine_espeak;
	const tts_voice *v;
	size_t n = 0;
	void *eng = NULL;
	bool de = false, fr = false, en_gb = false;
	long before = rss_kb();

	VX_CHECK_INT(ops->create(NULL, &eng), 0);
	if (!eng)
		return;
	printf("  espeak: rss after create %ld kB (+%ld)\n", rss_kb(),
	       rss_kb() - before);
	VX_CHECK_INT(ops->voices(eng, &v, &n), 0);
	VX_CHECK(n > 50);
	VX_CHECK_STR(v[0].name, "en-us");
	VX_CHECK_STR(v[0].language, "en-US");
	VX_CHECK_INT(v[0].sample_rate, 22050);
	for (size_t i = 0; i < n; i++) {
		de |= strcmp(v[i].name, "de") == 0;
		fr |= strcmp(v[i].name, "fr") == 0 &&
		      strcmp(v[i].language, "fr-FR") == 0;
		en_gb |= strcmp(v[i].language, "en-GB") == 0;
		VX_CHECK(v[i].name && *v[i].name && v[i].language);
	}
	VX_CHECK(de && fr && en_gb);
	printf("  espeak: %zu voices\n", n);
	ops->destroy(eng);
}

VX_TEST(espeak_languages_make_audio)
{
	const tts_engine_ops *ops = &tts_engine_espeak;
	static const char *const voices[] = { "en-us", "de", "fr", "en-GB",
					      "pt-br", "gmw/en-US" };
	void *eng = NULL;

	VX_CHECK_INT(ops->create(&(tts_config){ .default_voice = "de" }, &eng), 0);
	if (!eng)
		return;
	for (size_t i = 0; i < sizeof(voices) / sizeof(voices[0]); i++) {
		struct sink s = {0};
		int rate = 0;
		double t, secs;

		VX_CHECK_INT(synth(ops, eng, SHORT_TEXT, voices[i], 1.0, NULL,
				   &s, &rate), 0);
		t = now_ms() - s.t0;
		secs = (double)s.n / (rate ? rate : 1);
		VX_CHECK_INT(rate, 22050);
		VX_CHECK(secs > 1.5 && secs < 6.0);
		VX_CHECK(sink_rms(&s) > 300);
		printf("  espeak %-9s %.2f s audio, first chunk %.1f ms, rtf %.4f\n",
		       voices[i], secs, s.t_first, t / 1e3 / secs);
		sink_release(&s);
	}
	{
		struct sink s = {0};
		int rate = 0;

		VX_CHECK_INT(synth(ops, eng, "Hi.", "xx-nope", 1.0, NULL, &s,
				   &rate), -ENOENT);
		VX_CHECK_INT(s.n, 0);
	}
	ops->destroy(eng);
}

VX_TEST(espeak_streams_speed_and_cancel)
{
	const tts_engine_ops *ops = &tts_engine_espeak;
	void *eng = NULL;
	struct sink full = {0}, fast = {0}, s = {0}, c = {0};
	atomic_bool cancel = false;
	int rate = 0;
	double total;

	VX_CHECK_INT(ops->create(NULL, &eng), 0);
	if (!eng)
		return;
	VX_CHECK_INT(synth(ops, eng, LONG_TEXT, NULL, 1.0, NULL, &full, &rate), 0);
	total = now_ms() - full.t0;
	printf("  espeak long text: first chunk %.1f ms of %.1f ms, %d chunks\n",
	       full.t_first, total, full.chunks);
	VX_CHECK(full.chunks > 10);
	VX_CHECK(full.t_first < total / 3);

	VX_CHECK_INT(synth(ops, eng, LONG_TEXT, NULL, 2.0, NULL, &fast, &rate), 0);
	VX_CHECK(full.n > 0 && (double)fast.n / full.n > 0.35 &&
		 (double)fast.n / full.n < 0.75);

	s.stop_after = 2;
	VX_CHECK_INT(synth(ops, eng, LONG_TEXT, NULL, 1.0, NULL, &s, &rate),
		     -ECANCELED);
	VX_CHECK_INT(s.chunks, 2);
	c.stop_after = 2;
	c.cancel_after = &cancel;
	VX_CHECK_INT(synth(ops, eng, LONG_TEXT, NULL, 1.0, &cancel, &c, &rate),
		     -ECANCELED);
	VX_CHECK(c.chunks <= 3);
	/* the engine still works after a cancel */
	sink_release(&s);
	VX_CHECK_INT(synth(ops, eng, SHORT_TEXT, NULL, 1.0, NULL, &s, &rate), 0);
	VX_CHECK(s.n > 22050);
	sink_release(&full);
	sink_release(&fast);
	sink_release(&s);
	sink_release(&c);
	ops->destroy(eng);
}

VX_TEST(espeak_concurrent_calls_from_two_threads_are_safe)
{
	void *eng = NULL;

	VX_CHECK_INT(tts_engine_espeak.create(NULL, &eng), 0);
	if (!eng)
		return;
	/* different voices and the same voice */
	two_threads(&tts_engine_espeak, eng, "en-us", "de", false, 0.03, 6);
	two_threads(&tts_engine_espeak, eng, "fr", "fr", false, 0.03, 4);
	tts_engine_espeak.destroy(eng);
}

/* ---- remote, against tests/tts_fake_server.py ---- */

#define FAKE_KEY "sk-test-123"
#define FAKE_PCM_RATE 24000
#define FAKE_MS_PER_CHAR 60

static vx_testproc fake;

static void fake_stop(void)
{
	vx_testproc_stop(&fake);
}

static int fake_start(void)
{
	const char *py = getenv("PYTHON") ? getenv("PYTHON") : "/usr/bin/python3";
	const char *script = getenv("VOXLINE_TTS_FAKE_SERVER")
			     ? getenv("VOXLINE_TTS_FAKE_SERVER")
			     : "tests/tts_fake_server.py";
	char *argv[] = { (char *)py, (char *)script, "--port", "0", "--key",
			 FAKE_KEY, "--exit-on-stdin-eof", NULL };

	if (fake.pid > 0)
		return 0;
	int r = vx_testproc_start(&fake, argv);
	if (r == 0)
		atexit(fake_stop);
	return r;
}

static int fake_engine(const char *mode, const char *key, int timeout_ms,
		       void **ret)
{
	char url[128];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s%s/", fake.port,
		 *mode ? "/" : "", mode);
	return tts_engine_openai.create(&(tts_config){
		.url = url, .api_key = key, .model = "tts-test",
		.timeout_ms = timeout_ms }, ret);
}

static size_t fake_get_write(char *p, size_t sz, size_t nm, void *ud)
{
	return vx_buf_append(ud, p, sz * nm) == 0 ? sz * nm : 0;
}

/* GET /last from the fake: what it saw of the last speech request. */
static int fake_last(vx_buf *out)
{
	char url[64];
	CURL *h = curl_easy_init();
	CURLcode res;

	if (!h)
		return -ENOMEM;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/last", fake.port);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fake_get_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
	res = curl_easy_perform(h);
	curl_easy_cleanup(h);
	return res == CURLE_OK ? 0 : -EIO;
}

VX_TEST(remote_streams_pcm_from_an_openai_server)
{
	const tts_engine_ops *ops = &tts_engine_openai;
	const char *text = "Hello from the remote engine.";
	void *eng = NULL;
	struct sink s = {0}, fast = {0};
	vx_buf last = {0};
	int rate = 0;
	size_t want = (size_t)strlen(text) * FAKE_MS_PER_CHAR * FAKE_PCM_RATE / 1000;

	VX_CHECK_INT(fake_start(), 0);
	VX_CHECK_INT(ops->create(&(tts_config){0}, &eng), -EINVAL);
	VX_CHECK_INT(fake_engine("", FAKE_KEY, 5000, &eng), 0);
	if (!eng)
		return;
	VX_CHECK_INT(synth(ops, eng, text, "nova", 1.0, NULL, &s, &rate), 0);
	VX_CHECK_INT(rate, FAKE_PCM_RATE);
	VX_CHECK_INT(s.n, want);
	VX_CHECK(sink_rms(&s) > 1000);
	VX_CHECK_INT(fake_last(&last), 0);
	VX_CHECK(last.data && strstr(last.data, "\"authorization\": \"Bearer " FAKE_KEY "\""));
	VX_CHECK(last.data && strstr(last.data, "\"x-request-id\": \"test-req-1\""));
	VX_CHECK(last.data && strstr(last.data, "\"path\": \"/v1/audio/speech\""));
	VX_CHECK(last.data && strstr(last.data, "\\\"response_format\\\":\\\"pcm\\\""));
	VX_CHECK(last.data && strstr(last.data, "\\\"voice\\\":\\\"nova\\\""));
	VX_CHECK(last.data && strstr(last.data, "\\\"model\\\":\\\"tts-test\\\""));

	VX_CHECK_INT(synth(ops, eng, text, NULL, 2.0, NULL, &fast, &rate), 0);
	VX_CHECK_INT(fast.n, want / 2);
	ops->destroy(eng);

	/* a base URL given with /v1 (as OpenAI clients take it) is the same */
	{
		char url[64];

		snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/", fake.port);
		VX_CHECK_INT(ops->create(&(tts_config){ .url = url,
			.api_key = FAKE_KEY }, &eng), 0);
		sink_release(&s);
		VX_CHECK_INT(synth(ops, eng, "Hi.", "alloy", 1.0, NULL, &s,
				   &rate), 0);
		VX_CHECK(s.n > 0);
		vx_buf_reset(&last);
		VX_CHECK_INT(fake_last(&last), 0);
		VX_CHECK(last.data && strstr(last.data,
					     "\"path\": \"/v1/audio/speech\""));
		VX_CHECK(last.data && strstr(last.data, "\\\"model\\\":\\\"tts-1\\\""));
		ops->destroy(eng);
	}
	vx_buf_release(&last);
	sink_release(&s);
	sink_release(&fast);
}

VX_TEST(remote_reads_a_wav_answer_at_its_rate)
{
	const char *text = "A wave file.";
	void *eng = NULL;
	struct sink s = {0};
	int rate = 0;

	VX_CHECK_INT(fake_start(), 0);
	VX_CHECK_INT(fake_engine("wav", FAKE_KEY, 5000, &eng), 0);
	if (!eng)
		return;
	VX_CHECK_INT(synth(&tts_engine_openai, eng, text, NULL, 1.0, NULL, &s,
			   &rate), 0);
	VX_CHECK_INT(rate, 22050);
	VX_CHECK_INT(s.n, strlen(text) * FAKE_MS_PER_CHAR * 22050 / 1000);
	sink_release(&s);
	tts_engine_openai.destroy(eng);
}

VX_TEST(remote_first_chunk_arrives_before_the_body_ends)
{
	void *eng = NULL;
	struct sink s = {0};
	int rate = 0;
	double total;

	VX_CHECK_INT(fake_start(), 0);
	VX_CHECK_INT(fake_engine("slow", FAKE_KEY, 10000, &eng), 0);
	if (!eng)
		return;
	/* 40 chars: 2.4 s of audio in 24 chunks 50 ms apart */
	VX_CHECK_INT(synth(&tts_engine_openai, eng,
			   "Forty characters of text, give or take.", NULL, 1.0,
			   NULL, &s, &rate), 0);
	total = now_ms() - s.t0;
	printf("  openai (fake, slow): first chunk %.1f ms of %.1f ms, "
	       "%d chunks\n", s.t_first, total, s.chunks);
	VX_CHECK(s.chunks >= 10);
	VX_CHECK(s.t_first < total / 3);
	sink_release(&s);
	tts_engine_openai.destroy(eng);
}

VX_TEST(remote_errors_map_to_errno)
{
	void *eng = NULL;
	struct sink s = {0};
	int rate = 0, fd, one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	double t;

	VX_CHECK_INT(fake_start(), 0);
	/* 500 with a JSON error */
	VX_CHECK_INT(fake_engine("500", FAKE_KEY, 5000, &eng), 0);
	VX_CHECK_INT(synth(&tts_engine_openai, eng, "Hi.", NULL, 1.0, NULL, &s,
			   &rate), -EPROTO);
	VX_CHECK_INT(s.n, 0);
	tts_engine_openai.destroy(eng);
	/* wrong key: 401 */
	VX_CHECK_INT(fake_engine("", "sk-wrong", 5000, &eng), 0);
	VX_CHECK_INT(synth(&tts_engine_openai, eng, "Hi.", NULL, 1.0, NULL, &s,
			   &rate), -EPROTO);
	tts_engine_openai.destroy(eng);
	/* 200 with JSON is not audio */
	VX_CHECK_INT(fake_engine("json200", FAKE_KEY, 5000, &eng), 0);
	VX_CHECK_INT(synth(&tts_engine_openai, eng, "Hi.", NULL, 1.0, NULL, &s,
			   &rate), -EPROTO);
	VX_CHECK_INT(s.n, 0);
	tts_engine_openai.destroy(eng);

	/* stall after the first chunk: the whole-request timeout fires */
	VX_CHECK_INT(fake_engine("stall", FAKE_KEY, 600, &eng), 0);
	VX_CHECK_INT(synth(&tts_engine_openai, eng, "A stalled answer.", NULL,
			   1.0, NULL, &s, &rate), -ETIMEDOUT);
	t = now_ms() - s.t0;
	VX_CHECK(s.n > 0);
	VX_CHECK(t > 500 && t < 3000);
	tts_engine_openai.destroy(eng);
	sink_release(&s);

	/* server down: a port nobody listens on */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	VX_CHECK_INT(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	getsockname(fd, (struct sockaddr *)&a, &alen);
	close(fd);
	{
		char url[64];

		snprintf(url, sizeof(url), "http://127.0.0.1:%d",
			 ntohs(a.sin_port));
		VX_CHECK_INT(tts_engine_openai.create(&(tts_config){
			.url = url, .timeout_ms = 2000 }, &eng), 0);
		VX_CHECK_INT(synth(&tts_engine_openai, eng, "Hi.", NULL, 1.0,
				   NULL, &s, &rate), -ECONNREFUSED);
		tts_engine_openai.destroy(eng);
	}
}

struct canceller {
	atomic_bool *flag;
	int after_ms;
};

static void *canceller_run(void *arg)
{
	struct canceller *c = arg;

	usleep((useconds_t)c->after_ms * 1000);
	atomic_store(c->flag, true);
	return NULL;
}

VX_TEST(remote_cancel_stops_a_stalled_request)
{
	void *eng = NULL;
	struct sink s = {0};
	atomic_bool cancel = false;
	struct canceller cc = { &cancel, 200 };
	pthread_t t;
	int rate = 0;
	double dt;

	VX_CHECK_INT(fake_start(), 0);
	VX_CHECK_INT(fake_engine("stall", FAKE_KEY, 20000, &eng), 0);
	if (!eng)
		return;
	pthread_create(&t, NULL, canceller_run, &cc);
	VX_CHECK_INT(synth(&tts_engine_openai, eng, "Cancel me, please.", NULL,
			   1.0, &cancel, &s, &rate), -ECANCELED);
	dt = now_ms() - s.t0;
	pthread_join(t, NULL);
	printf("  openai: cancel of a stalled request returned after %.0f ms\n",
	       dt);
	VX_CHECK(dt < 1000);
	/* the callback asking to stop cancels too */
	sink_release(&s);
	tts_engine_openai.destroy(eng);
	VX_CHECK_INT(fake_engine("", FAKE_KEY, 5000, &eng), 0);
	s.stop_after = 1;
	VX_CHECK_INT(synth(&tts_engine_openai, eng, LONG_TEXT, NULL, 1.0, NULL,
			   &s, &rate), -ECANCELED);
	VX_CHECK_INT(s.chunks, 1);
	sink_release(&s);
	tts_engine_openai.destroy(eng);
}

VX_TEST(idle_engines_stay_small)
{
	void *f = NULL, *e = NULL;
	long kb;

	VX_CHECK_INT(tts_engine_flite.create(NULL, &f), 0);
	VX_CHECK_INT(tts_engine_espeak.create(NULL, &e), 0);
	kb = rss_kb();
	printf("  rss with flite + espeak created (after use): %ld kB%s\n", kb,
	       sanitized() ? " (sanitizer build, not checked)" : "");
	if (!sanitized())
		VX_CHECK(kb > 0 && kb < 40 * 1024);
	tts_engine_flite.destroy(f);
	tts_engine_espeak.destroy(e);
}

VX_TEST_MAIN(registry_finds_engines_by_name, checks_refuse_bad_text_and_speed,
	     flite_every_voice_makes_plausible_audio,
	     flite_first_chunk_arrives_before_synthesis_ends,
	     flite_speed_changes_length, flite_unknown_voice_is_enoent,
	     flite_cancel_stops, flite_concurrent_calls_on_one_voice_are_safe,
	     espeak_voices_are_named_by_language, espeak_languages_make_audio,
	     espeak_streams_speed_and_cancel,
	     espeak_concurrent_calls_from_two_threads_are_safe,
	     remote_streams_pcm_from_an_openai_server,
	     remote_reads_a_wav_answer_at_its_rate,
	     remote_first_chunk_arrives_before_the_body_ends,
	     remote_errors_map_to_errno, remote_cancel_stops_a_stalled_request,
	     idle_engines_stay_small)
