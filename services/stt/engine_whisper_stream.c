/*
 * engine_whisper_stream.c - the built-in Whisper engine's streams: the
 * stream_open / stream_feed / stream_finish / stream_close ops of
 * stt_engine.h, which give /ws/transcribe its partials (issue 12).
 *
 * Whisper has no incremental decoder, so a stream keeps the utterance's
 * audio and re-decodes it as it grows: after every WSTREAM_STEP_MS of new
 * audio the window (the utterance, or what follows its last cut) is encoded
 * with the encoder trimmed to its length and decoded greedily, at most
 * WSTREAM_TOKENS_MIN + WSTREAM_TOKENS_PER_S tokens a second of audio. Each
 * hypothesis goes through local agreement (whisper/wagree.h): the partial
 * is the committed words followed by the rest of the latest hypothesis, and
 * the words shown at the same places in two partials in a row (from the
 * first word on) are committed: never withdrawn, by later partials or by
 * the final.
 *
 * Partials are decoded on the stream's own thread (the worker), so
 * stream_feed only queues audio and hands out the partial the worker last
 * made: a client's "end" never waits behind a partial. Cost: a re-decode is
 * skipped while the previous one runs, and waits until as much time as the
 * previous one took has passed since it ended, so a stream spends at most
 * about half its decoder's time on partials and one whose audio comes
 * faster than it decodes skips partials instead of falling behind.
 *
 * Long utterances: when the window passes WSTREAM_CUT_MS, it is cut at the
 * end of the last segment of the latest hypothesis whose words are all
 * committed (and are that hypothesis's words): those words and segments
 * are settled, the audio before the cut is dropped, and the tail of the
 * settled text is the prompt (<|startofprev|>) of every later decode. A
 * window that reaches WSTREAM_WINDOW_MAX_MS without such a cut is decoded
 * as a final and all of it settled. The window never holds more than the
 * model's 30 s.
 *
 * stream_finish stops a partial decode of less than all the audio (at its
 * next token; an encoder run finishes first), lets one of all of it finish,
 * and decodes the window once more as transcribe does a window (the
 * encoder trimmed under --trim-below-s, the full token budget;
 * greedy, no temperature fallback: a streamed final must come fast), or
 * takes the last partial decode when it covered all the audio and ended on
 * its own. The final is that hypothesis with the committed words in their
 * places: it begins with every committed word. When no committed word
 * disagrees (the usual case), it is the greedy transcript of the window.
 *
 * Threads: a stream holds one decoder from the engine's pool from open to
 * close and is used by one thread at a time (stt_engine.h); its worker
 * uses the decoder only while busy, and the stream's thread only after
 * worker_idle(). The agreement, the window and the callback are the
 * stream's thread's alone.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine_whisper.h"
#include "whisper/wagree.h"

#define WSTREAM_STEP_MS 500           /* new audio that triggers a partial decode */
#define WSTREAM_TOKENS_MIN 16         /* partial decodes: at most MIN + PER_S * s tokens */
#define WSTREAM_TOKENS_PER_S 10
#define WSTREAM_CUT_MS 15000          /* a longer window is cut at a settled segment */
#define WSTREAM_WINDOW_MAX_MS 25000   /* a window this long is settled whole */
#define WSTREAM_PROMPT_MAX_BYTES 1024 /* of the settled text, given as the prompt */

#define MS_SAMPLES(ms) ((size_t)(ms) * STT_RATE / 1000)
#define WSTREAM_MAX_SAMPLES ((size_t)STT_AUDIO_MAX_SECONDS * STT_RATE)

typedef struct wstream {
	wengine *e;
	wdecoder *d;
	int32_t lang;            /* language token; -1 on English-only models */

	/* the window: the utterance's audio after what is settled */
	int16_t *pcm;            /* n samples used of cap */
	size_t n, cap;
	size_t off;              /* samples of the utterance before the window */
	size_t total;            /* samples of the utterance fed */
	size_t decoded_n;        /* window samples the last partial decode covered */
	wagree agree;            /* the window's shown and committed words */
	wdec_result hyp;         /* the last partial decode (window times) */
	bool have_hyp;           /* hyp is of the window's first decoded_n samples */
	bool hyp_complete;       /* it ended at <|endoftext|>, not at a limit */

	/* settled: earlier windows and cut-off segments */
	char *done;              /* their words, one space apart; NULL: none */
	stt_segment *segs;       /* their segments, utterance times */
	size_t n_segs;
	int32_t *prompt;         /* done's tail as tokens */
	int n_prompt;

	char *shown;             /* the last partial given out, or NULL */
	size_t sched_n;          /* window samples of the last partial asked for */
	unsigned gen;            /* the window's generation: + 1 at every cut */

	/* the partial decoder thread: lock guards the flags and the result;
	 * job_* are written by the stream's thread only while the worker is
	 * idle and read by the worker while busy */
	pthread_t th;
	bool th_started;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	bool quit, pending, busy, ready;
	atomic_bool abort;       /* stop the running decode at its next token */
	int16_t *job_pcm;        /* the window to decode */
	size_t job_n, job_cap;
	int32_t *job_prompt;
	int job_n_prompt, job_prompt_cap;
	unsigned job_gen;
	wdec_result res;         /* ready: the worker's last hypothesis */
	bool res_complete;
	size_t res_n;
	unsigned res_gen;
	int werr;                /* a decode failed (not cancelled): -errno */
	double last_ms;          /* how long the last partial decode took */
	double last_end;         /* when it ended (monotonic ms) */
} wstream;

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The decoder as wdecode sees it: stops (-ECANCELED) once *abort is set. */
typedef struct actx {
	wstate *s;
	const atomic_bool *abort;
} actx;

static void ad_reset(void *ctx) { wstate_decode_reset(((actx *)ctx)->s); }

static int ad_decode(void *ctx, const int32_t *t, int n, float *l)
{
	actx *a = ctx;
	if (a->abort && atomic_load(a->abort))
		return -ECANCELED;
	return wstate_decode(a->s, t, n, l);
}

static const char *skip_spaces(const char *s)
{
	return s + strspn(s, " \t\r\n");
}

/* Forgets the utterance; keeps the decoder and the buffers. */
static void stream_reset(wstream *st)
{
	st->n = st->off = st->total = st->decoded_n = 0;
	wagree_reset(&st->agree);
	if (st->have_hyp)
		wdec_result_release(&st->hyp);
	st->have_hyp = false;
	free(st->done);
	st->done = NULL;
	for (size_t i = 0; i < st->n_segs; i++)
		free(st->segs[i].text);
	free(st->segs);
	st->segs = NULL;
	st->n_segs = 0;
	free(st->prompt);
	st->prompt = NULL;
	st->n_prompt = 0;
	free(st->shown);
	st->shown = NULL;
	st->sched_n = 0;
	st->gen++;               /* a result still to come is of no use */
	st->last_ms = st->last_end = 0;
}

static void forget_hyp(wstream *st)
{
	if (st->have_hyp)
		wdec_result_release(&st->hyp);
	st->have_hyp = false;
}

/* The prompt of later decodes: the settled text's last
 * WSTREAM_PROMPT_MAX_BYTES (from a word's start), " " first, tokenized. */
static int make_prompt(wstream *st)
{
	const wtok *tok = &st->e->tok;
	const char *t = st->done ? st->done : "";
	size_t len = strlen(t);
	if (len > WSTREAM_PROMPT_MAX_BYTES) {
		t += len - WSTREAM_PROMPT_MAX_BYTES;
		while (*t && *t != ' ')
			t++;
		len = strlen(t);
	}
	free(st->prompt);
	st->prompt = NULL;
	st->n_prompt = 0;
	if (!len)
		return 0;
	char *buf = malloc(len + 2);
	if (!buf)
		return -ENOMEM;
	buf[0] = ' ';
	memcpy(buf + 1, skip_spaces(t), strlen(skip_spaces(t)) + 1);
	int rc = wtok_encode(tok, buf, strlen(buf), NULL, 0);
	if (rc > 0 && (st->prompt = malloc(sizeof *st->prompt * (size_t)rc)))
		st->n_prompt = wtok_encode(tok, buf, strlen(buf), st->prompt, rc);
	else if (rc > 0)
		rc = -ENOMEM;
	free(buf);
	return rc < 0 ? rc : 0;
}

/* Appends words (may be "" or NULL) to the settled text. */
static int settle_text(wstream *st, const char *words)
{
	words = words ? skip_spaces(words) : "";
	if (!*words)
		return 0;
	size_t have = st->done ? strlen(st->done) : 0, add = strlen(words);
	char *t = realloc(st->done, have + add + 2);
	if (!t)
		return -ENOMEM;
	if (have)
		t[have++] = ' ';
	memcpy(t + have, words, add + 1);
	st->done = t;
	return 0;
}

/* Appends a segment (window times, text owned: taken or freed). */
static int settle_segment(wstream *st, const wdec_result *h, int64_t start_ms, int64_t end_ms,
			  char *text)
{
	stt_segment *s = realloc(st->segs, sizeof *s * (st->n_segs + 1));
	if (!s) {
		free(text);
		return -ENOMEM;
	}
	st->segs = s;
	int64_t off_ms = (int64_t)(st->off * 1000 / STT_RATE);
	s[st->n_segs++] = (stt_segment){ .start_ms = off_ms + start_ms, .end_ms = off_ms + end_ms,
					 .text = text, .temperature = h->temperature,
					 .avg_logprob = h->avg_logprob,
					 .compression_ratio = h->compression_ratio,
					 .no_speech_prob = h->no_speech_prob };
	return 0;
}

/* Decodes n samples of window audio with a prompt: a partial (encoder
 * trimmed, tokens capped, stops when *abort is set) or as a final
 * (transcribe's trim rule and token budget). *ret_complete: the decoder
 * stopped on its own, not at a limit. Uses the stream's decoder: one call
 * at a time, from the worker or (worker idle) the stream's thread. */
static int decode_audio(wstream *st, const int16_t *pcm, size_t n, const int32_t *prompt,
			int n_prompt, bool final, const atomic_bool *abort, wdec_result *ret,
			bool *ret_complete)
{
	wengine *e = st->e;
	wdecoder *d = st->d;
	int audio_ms = (int)(n * 1000 / STT_RATE);
	int n_ctx = whisper_encoder_ctx(e, n, !final), n_text_ctx = e->f->hp.n_text_ctx;
	for (size_t i = 0; i < n; i++)
		d->pcm[i] = pcm[i] / 32768.0f;
	int rc = wmel_compute(&e->mel, d->pcm, (int)n, 2 * n_ctx, d->t, d->mel);
	if (rc < 0 || (rc = wstate_encode(d->s, d->mel, n_ctx)) < 0)
		return rc;
	actx a = { .s = d->s, .abort = abort };
	wdec_model dm = { .ctx = &a, .reset = ad_reset, .decode = ad_decode,
			  .n_text_ctx = n_text_ctx };
	wdec_params p = wdec_defaults();
	p.audio_ms = audio_ms;
	p.language = st->lang;
	p.prompt = prompt;
	p.n_prompt = n_prompt;
	if (!final) {
		int cap = WSTREAM_TOKENS_MIN + WSTREAM_TOKENS_PER_S * audio_ms / 1000;
		p.max_tokens = cap < p.max_tokens ? cap : p.max_tokens;
	}
	if ((rc = wdec_greedy(&dm, &e->tok, &p, ret)) < 0)
		return rc;
	int used = n_prompt > 0 ? (n_prompt < n_text_ctx / 2 - 1 ? n_prompt : n_text_ctx / 2 - 1) + 1
				: 0;
	*ret_complete = ret->n_tokens < p.max_tokens && used + 4 + ret->n_tokens < n_text_ctx;
	return 0;
}

/* The window's segment ends: h's segments, the committed words put in
 * their places (wagree_rewrite), committed words h lacks in one more
 * segment to the window's end. */
static int settle_spliced(wstream *st, const wdec_result *h)
{
	int pos = 0, rc = 0;
	int64_t last_end = 0, win_ms = (int64_t)(st->n * 1000 / STT_RATE);
	bool agrees = wagree_agrees(&st->agree, h->text, st->agree.n_committed);
	for (int i = 0; i < h->n_segments && rc == 0; i++) {
		char *text;
		if (agrees) {
			text = strdup(skip_spaces(h->segments[i].text));
			rc = text ? 0 : -ENOMEM;
		} else {
			rc = wagree_rewrite(&st->agree, h->segments[i].text, &pos, &text);
		}
		if (rc == 0)
			rc = settle_segment(st, h, h->segments[i].start_ms, h->segments[i].end_ms, text);
		last_end = h->segments[i].end_ms;
	}
	char *rest = NULL;
	if (rc == 0 && !agrees && (rc = wagree_committed_from(&st->agree, pos, &rest)) == 0 &&
	    rest[0]) {
		rc = settle_segment(st, h, last_end < win_ms ? last_end : win_ms, win_ms, rest);
		rest = NULL;
	}
	free(rest);
	if (rc < 0)
		return rc;
	if (agrees)
		return settle_text(st, h->text);
	char *all;
	if ((rc = wagree_splice(&st->agree, h->text, &all)) < 0)
		return rc;
	rc = settle_text(st, all);
	free(all);
	return rc;
}

/* Ends the window: decodes it as a final (or takes the last partial when
 * that covered it all and stopped on its own), settles all of it, and
 * starts an empty window after it. */
static int window_end(wstream *st)
{
	wdec_result h;
	bool complete;
	int rc = 0;
	if (st->n == 0)
		return 0;
	int audio_ms = (int)(st->n * 1000 / STT_RATE);
	if (st->have_hyp && st->decoded_n == st->n && st->hyp_complete &&
	    audio_ms < st->e->trim_below_ms) {
		h = st->hyp;             /* the same decode again: take it */
		st->have_hyp = false;
	} else if ((rc = decode_audio(st, st->pcm, st->n, st->prompt, st->n_prompt, true, NULL,
				      &h, &complete)) < 0) {
		return rc;
	}
	rc = settle_spliced(st, &h);
	wdec_result_release(&h);
	if (rc < 0)
		return rc;
	forget_hyp(st);
	st->off += st->n;
	st->n = st->decoded_n = st->sched_n = 0;
	st->gen++;
	wagree_reset(&st->agree);
	return make_prompt(st);
}

/* After a partial of a long window: cuts it at the end of the latest
 * hypothesis's last segment whose words are committed and its own. */
static int maybe_cut(wstream *st)
{
	const wdec_result *h = &st->hyp;
	int words = 0, cut_seg = -1, cut_words = 0;
	if (st->n < MS_SAMPLES(WSTREAM_CUT_MS) || !st->have_hyp)
		return 0;
	for (int i = 0; i < h->n_segments; i++) {
		words += wagree_count(h->segments[i].text);
		if (words > st->agree.n_committed)
			break;
		if (h->segments[i].end_ms > 0 && wagree_agrees(&st->agree, h->text, words)) {
			cut_seg = i;
			cut_words = words;
		}
	}
	if (cut_seg < 0)
		return 0;
	size_t cut = MS_SAMPLES(h->segments[cut_seg].end_ms);
	if (cut > st->decoded_n)
		return 0;
	int rc = 0;
	for (int i = 0; i <= cut_seg && rc == 0; i++) {
		char *text = strdup(skip_spaces(h->segments[i].text));
		rc = text ? settle_segment(st, h, h->segments[i].start_ms, h->segments[i].end_ms, text)
			  : -ENOMEM;
	}
	char *words_txt = NULL;
	if (rc == 0 && (rc = wagree_splice(&st->agree, "", &words_txt)) == 0) {
		/* the committed words' first cut_words */
		char *p = words_txt;
		for (int k = 0; k < cut_words && *p; k++) {
			p += strspn(p, " ");
			p += strcspn(p, " ");
		}
		*p = '\0';
		rc = settle_text(st, words_txt);
	}
	free(words_txt);
	if (rc < 0)
		return rc;
	wagree_drop(&st->agree, cut_words);
	memmove(st->pcm, st->pcm + cut, sizeof *st->pcm * (st->n - cut));
	st->n -= cut;
	st->off += cut;
	st->decoded_n -= cut;
	st->sched_n = st->sched_n > cut ? st->sched_n - cut : 0;
	st->gen++;
	forget_hyp(st);
	return make_prompt(st);
}

/* Gives the callback the partial (settled text + the window's shown
 * words) when it changed. */
static int report(wstream *st, stt_partial_cb cb, void *user)
{
	const char *a = st->done ? st->done : "", *b = st->agree.text ? st->agree.text : "";
	size_t la = strlen(a), lb = strlen(b);
	char *t = malloc(la + lb + 2);
	if (!t)
		return -ENOMEM;
	memcpy(t, a, la);
	t[la] = ' ';
	memcpy(t + (la && lb ? la + 1 : la), b, lb + 1);
	if (!t[0] || (st->shown && !strcmp(st->shown, t))) {
		free(t);
		return 0;
	}
	free(st->shown);
	st->shown = t;
	if (cb)
		cb(user, t);
	return 0;
}

/* The worker's hypothesis, if one is ready: the window's new partial
 * (dropped when the window was cut since it was asked for). */
static int take_result(wstream *st)
{
	wdec_result h;
	bool have = false;
	int rc;
	pthread_mutex_lock(&st->lock);
	rc = st->werr;
	st->werr = 0;
	if (st->ready && st->res_gen == st->gen) {
		h = st->res;
		have = true;
		forget_hyp(st);
		st->hyp_complete = st->res_complete;
		st->decoded_n = st->res_n;
	} else if (st->ready) {
		wdec_result_release(&st->res);
	}
	st->ready = false;
	pthread_mutex_unlock(&st->lock);
	if (rc < 0 || !have)
		return rc;
	st->hyp = h;
	st->have_hyp = true;
	if ((rc = wagree_push(&st->agree, h.text)) < 0)
		return rc;
	return maybe_cut(st);
}

/* Asks the worker for a partial of the window so far, when WSTREAM_STEP_MS
 * of audio came since the last one asked for, the worker is idle, and as
 * long as the last decode took has passed since it ended. */
static int ask_partial(wstream *st)
{
	int rc = 0;
	if (st->n < st->sched_n + MS_SAMPLES(WSTREAM_STEP_MS))
		return 0;
	pthread_mutex_lock(&st->lock);
	if (st->busy || st->pending || st->ready || now_ms() - st->last_end < st->last_ms)
		goto out_unlock;
	if (st->job_cap < st->n) {
		int16_t *p = realloc(st->job_pcm, sizeof *p * st->n);
		if (!p) {
			rc = -ENOMEM;
			goto out_unlock;
		}
		st->job_pcm = p;
		st->job_cap = st->n;
	}
	if (st->job_prompt_cap < st->n_prompt) {
		int32_t *p = realloc(st->job_prompt, sizeof *p * (size_t)st->n_prompt);
		if (!p) {
			rc = -ENOMEM;
			goto out_unlock;
		}
		st->job_prompt = p;
		st->job_prompt_cap = st->n_prompt;
	}
	memcpy(st->job_pcm, st->pcm, sizeof *st->pcm * st->n);
	if (st->n_prompt)
		memcpy(st->job_prompt, st->prompt, sizeof *st->prompt * (size_t)st->n_prompt);
	st->job_n = st->n;
	st->job_n_prompt = st->n_prompt;
	st->job_gen = st->gen;
	st->sched_n = st->n;
	st->pending = true;
	pthread_cond_broadcast(&st->cv);
out_unlock:
	pthread_mutex_unlock(&st->lock);
	return rc;
}

/* Makes the worker idle: a decode of the whole window as it is now is
 * waited for (the final may take it); any other is stopped. */
static void worker_idle(wstream *st)
{
	pthread_mutex_lock(&st->lock);
	bool whole = st->job_gen == st->gen && st->job_n == st->n;
	if (st->pending && !st->busy)
		st->pending = false;     /* not started: never mind */
	if (!whole)
		atomic_store(&st->abort, true);
	while (st->busy || st->pending)
		pthread_cond_wait(&st->cv, &st->lock);
	atomic_store(&st->abort, false);
	pthread_mutex_unlock(&st->lock);
}

/* The worker: decodes the windows it is given, one at a time. */
static void *worker(void *arg)
{
	wstream *st = arg;
	pthread_mutex_lock(&st->lock);
	for (;;) {
		while (!st->quit && !st->pending)
			pthread_cond_wait(&st->cv, &st->lock);
		if (st->quit)
			break;
		st->pending = false;
		st->busy = true;
		pthread_mutex_unlock(&st->lock);
		wdec_result h;
		bool complete = false;
		double t0 = now_ms();
		int rc = decode_audio(st, st->job_pcm, st->job_n, st->job_prompt, st->job_n_prompt,
				      false, &st->abort, &h, &complete);
		pthread_mutex_lock(&st->lock);
		st->busy = false;
		st->last_end = now_ms();
		st->last_ms = st->last_end - t0;
		if (rc == 0) {
			if (st->ready)
				wdec_result_release(&st->res);
			st->res = h;
			st->res_complete = complete;
			st->res_n = st->job_n;
			st->res_gen = st->job_gen;
			st->ready = true;
		} else if (rc != -ECANCELED) {
			st->werr = rc;
		}
		pthread_cond_broadcast(&st->cv);
	}
	pthread_mutex_unlock(&st->lock);
	return NULL;
}

static int window_append(wstream *st, const int16_t *pcm, size_t n)
{
	if (st->n + n > st->cap) {
		size_t cap = st->cap ? st->cap : MS_SAMPLES(4000);
		while (cap < st->n + n)
			cap *= 2;
		cap = cap < WHISPER_WINDOW_SAMPLES ? cap : WHISPER_WINDOW_SAMPLES;
		int16_t *p = realloc(st->pcm, sizeof *p * cap);
		if (!p)
			return -ENOMEM;
		st->pcm = p;
		st->cap = cap;
	}
	memcpy(st->pcm + st->n, pcm, sizeof *pcm * n);
	st->n += n;
	return 0;
}

int whisper_stream_open(void *engine, const stt_options *opt, void **ret_stream)
{
	wengine *e = engine;
	int32_t lang = -1;
	bool detect;
	if (whisper_language(e, opt, &lang, &detect) < 0)
		return -ENOTSUP;
	if (detect)
		lang = wtok_language(&e->tok, "en");   /* streams do not detect: English */
	wstream *st = calloc(1, sizeof *st);
	if (!st)
		return -ENOMEM;
	st->e = e;
	st->lang = lang;
	wagree_init(&st->agree);
	if (!(st->d = whisper_acquire(e))) {
		free(st);
		return -EBUSY;
	}
	pthread_mutex_init(&st->lock, NULL);
	pthread_cond_init(&st->cv, NULL);
	atomic_init(&st->abort, false);
	if (pthread_create(&st->th, NULL, worker, st) != 0) {
		whisper_stream_close(st);
		return -ENOMEM;
	}
	st->th_started = true;
	*ret_stream = st;
	return 0;
}

int whisper_stream_feed(void *stream, const int16_t *pcm, size_t n, stt_partial_cb cb, void *user)
{
	wstream *st = stream;
	int rc;
	if (!pcm && n > 0)
		return -EINVAL;
	if (n > WSTREAM_MAX_SAMPLES - st->total)
		return -E2BIG;
	if ((rc = take_result(st)) < 0)
		return rc;
	while (n > 0) {
		size_t room = MS_SAMPLES(WSTREAM_WINDOW_MAX_MS) - st->n;
		size_t take = n < room ? n : room;
		if ((rc = window_append(st, pcm, take)) < 0)
			return rc;
		pcm += take;
		n -= take;
		st->total += take;
		if (st->n >= MS_SAMPLES(WSTREAM_WINDOW_MAX_MS)) {
			worker_idle(st);
			if ((rc = take_result(st)) < 0 || (rc = window_end(st)) < 0)
				return rc;
		}
	}
	if ((rc = report(st, cb, user)) < 0)
		return rc;
	return ask_partial(st);
}

int whisper_stream_finish(void *stream, stt_result *ret)
{
	wstream *st = stream;
	stt_result r = { 0 };
	int rc = take_result(st);
	worker_idle(st);
	if (rc < 0 || (rc = take_result(st)) < 0 || (rc = window_end(st)) < 0)
		goto out_reset;
	r.phrases = true;
	r.decoded = true;
	const char *code = st->lang >= 0 ? wtok_language_code(&st->e->tok, st->lang) : "en";
	if (!(r.text = strdup(st->done ? st->done : "")) || !(r.language = strdup(code ? code : "en"))) {
		rc = -ENOMEM;
		goto out_reset;
	}
	r.segments = st->segs;
	r.n_segments = st->n_segs;
	st->segs = NULL;
	st->n_segs = 0;
	*ret = r;
	r = (stt_result){ 0 };
out_reset:
	stt_result_release(&r);
	stream_reset(st);
	return rc;
}

void whisper_stream_close(void *stream)
{
	wstream *st = stream;
	if (!st)
		return;
	if (st->th_started) {
		pthread_mutex_lock(&st->lock);
		st->quit = true;
		atomic_store(&st->abort, true);
		pthread_cond_broadcast(&st->cv);
		pthread_mutex_unlock(&st->lock);
		pthread_join(st->th, NULL);
	}
	if (st->ready)
		wdec_result_release(&st->res);
	stream_reset(st);
	whisper_release(st->e, st->d);
	pthread_cond_destroy(&st->cv);
	pthread_mutex_destroy(&st->lock);
	free(st->pcm);
	free(st->job_pcm);
	free(st->job_prompt);
	free(st);
}
