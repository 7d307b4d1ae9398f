/*
 * engine_whisper.c - the built-in Whisper engine (issue 12): whisper.cpp's
 * ggml model files run in-process by services/stt/whisper/ (wfile, wmel,
 * wmodel, wtok, wdecode).
 *
 * Registered as "whisper" (voxline-stt --engine whisper --model FILE); the
 * remote whisper.cpp server is "whisper-server" (engine_remote.c). Tested
 * through its ops by tests/unit/test_whisper_engine.c and end to end by
 * tests/integration/test_stt_whisper.py. A file that cannot be loaded is
 * refused with the loader's reason in cfg->why.
 *
 * One mapping of the file, one wmodel and tokenizer, shared by pool_size
 * decoders (a wstate each, with a thread team of cores / pool_size).
 * cfg->model is the model file's path. Audio is cut into 30 s windows;
 * each window's encoder runs over the audio's length only when the window
 * is shorter than WHISPER_TRIM_BELOW_MS (positions = frames / 2), over the
 * full context otherwise. Greedy decoding with timestamps per window
 * (wdecode.h); segments carry times from the start of the audio. English
 * only for now on .en models; multilingual models take opt->language
 * (default "en"; no detection yet). No streaming.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stt_engine.h"
#include "whisper/wdecode.h"
#include "whisper/wfile.h"
#include "whisper/wmel.h"
#include "whisper/wmodel.h"
#include "whisper/wtok.h"

#define WHISPER_WINDOW_SAMPLES (30 * STT_RATE)
#define WHISPER_TRIM_BELOW_MS 10000

typedef struct wdecoder {
	wstate *s;
	team *t;
	float *pcm;              /* a window as floats */
	float *mel;              /* (n_mels, 2 * n_audio_ctx) */
	bool busy;
} wdecoder;

typedef struct wengine {
	wfile *f;
	wmodel *m;
	wtok tok;
	wmel mel;
	pthread_mutex_t lock;
	int n_dec;
	wdecoder *dec;
} wengine;

static void whisper_destroy(void *engine)
{
	wengine *e = engine;
	if (!e)
		return;
	for (int i = 0; i < e->n_dec; i++) {
		wstate_free(e->dec[i].s);
		team_free(e->dec[i].t);
		free(e->dec[i].pcm);
		free(e->dec[i].mel);
	}
	free(e->dec);
	if (e->mel.window)
		wmel_release(&e->mel);
	if (e->tok.slots)
		wtok_release(&e->tok);
	wmodel_free(e->m);
	wfile_close(e->f);
	pthread_mutex_destroy(&e->lock);
	free(e);
}

static int whisper_create(const stt_config *cfg, void **ret)
{
	char err[256];
	int rc;

	if (!cfg->model || !cfg->model[0] || cfg->pool_size < 1 || cfg->pool_size > STT_POOL_MAX)
		return -EINVAL;
	wengine *e = calloc(1, sizeof *e);
	if (!e)
		return -ENOMEM;
	pthread_mutex_init(&e->lock, NULL);
	err[0] = '\0';
	if ((rc = wfile_open(cfg->model, &e->f, err, sizeof err)) < 0 ||
	    (rc = wmodel_new(e->f, &e->m, err, sizeof err)) < 0)
		goto out_destroy;
	if ((rc = wtok_init(&e->tok, e->f)) < 0) {
		snprintf(err, sizeof err, "%s: vocabulary: %s", cfg->model, strerror(-rc));
		goto out_destroy;
	}
	if ((rc = wmel_init(&e->mel, e->f->filters, e->f->n_mel)) < 0) {
		snprintf(err, sizeof err, "%s: mel filters: %s", cfg->model, strerror(-rc));
		goto out_destroy;
	}
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	int threads = cores > cfg->pool_size ? (int)(cores / cfg->pool_size) : 1;
	e->dec = calloc((size_t)cfg->pool_size, sizeof *e->dec);
	if (!e->dec) {
		rc = -ENOMEM;
		goto out_destroy;
	}
	for (; e->n_dec < cfg->pool_size; e->n_dec++) {
		wdecoder *d = &e->dec[e->n_dec];
		size_t mel_n = (size_t)e->f->n_mel * 2 * (size_t)e->f->hp.n_audio_ctx;
		d->pcm = malloc(sizeof *d->pcm * WHISPER_WINDOW_SAMPLES);
		d->mel = malloc(sizeof *d->mel * mel_n);
		if (!d->pcm || !d->mel || (rc = team_new(threads, &d->t)) < 0 ||
		    (rc = wstate_new(e->m, d->t, &d->s)) < 0) {
			e->n_dec++;
			rc = rc < 0 ? rc : -ENOMEM;
			goto out_destroy;
		}
	}
	*ret = e;
	return 0;
out_destroy:
	if (cfg->why && cfg->why_size)
		snprintf(cfg->why, cfg->why_size, "%s", err[0] ? err : strerror(rc < 0 ? -rc : ENOMEM));
	whisper_destroy(e);
	return rc == -ENOENT || rc == -ENOMEM ? rc : (rc < 0 ? rc : -EINVAL);
}

static wdecoder *acquire(wengine *e)
{
	wdecoder *d = NULL;
	pthread_mutex_lock(&e->lock);
	for (int i = 0; i < e->n_dec && !d; i++)
		if (!e->dec[i].busy) {
			d = &e->dec[i];
			d->busy = true;
		}
	pthread_mutex_unlock(&e->lock);
	return d;
}

static void release(wengine *e, wdecoder *d)
{
	pthread_mutex_lock(&e->lock);
	d->busy = false;
	pthread_mutex_unlock(&e->lock);
}

static void ad_reset(void *ctx) { wstate_decode_reset(ctx); }
static int ad_decode(void *ctx, const int32_t *t, int n, float *l) { return wstate_decode(ctx, t, n, l); }

/* Appends a window's segments (offset by off_ms) and text to r. */
static int collect(stt_result *r, const wdec_result *w, int64_t off_ms, size_t *text_len)
{
	for (int i = 0; i < w->n_segments; i++) {
		stt_segment *s = realloc(r->segments, sizeof *s * (r->n_segments + 1));
		if (!s)
			return -ENOMEM;
		r->segments = s;
		const char *txt = w->segments[i].text;
		while (*txt == ' ')
			txt++;
		char *copy = strdup(txt);
		if (!copy)
			return -ENOMEM;
		s[r->n_segments++] = (stt_segment){ .start_ms = off_ms + w->segments[i].start_ms,
						    .end_ms = off_ms + w->segments[i].end_ms,
						    .text = copy };
	}
	size_t add = strlen(w->text);
	char *t = realloc(r->text, *text_len + add + 1);
	if (!t)
		return -ENOMEM;
	memcpy(t + *text_len, w->text, add + 1);
	r->text = t;
	*text_len += add;
	return 0;
}

static int whisper_transcribe(void *engine, const int16_t *pcm, size_t n, const stt_options *opt,
			      const atomic_bool *cancel, stt_result *ret)
{
	wengine *e = engine;
	stt_result r = { 0 };
	size_t text_len = 0;
	int32_t lang = -1;
	int rc = 0;

	if (n > (size_t)STT_AUDIO_MAX_SECONDS * STT_RATE)
		return -E2BIG;
	if (opt && opt->language && opt->language[0] && strcmp(opt->language, "auto")) {
		if (e->tok.multilingual) {
			if ((lang = wtok_language(&e->tok, opt->language)) < 0)
				return -ENOTSUP;
		} else if (strcmp(opt->language, "en")) {
			return -ENOTSUP;
		}
	} else if (e->tok.multilingual) {
		lang = wtok_language(&e->tok, "en");
	}
	wdecoder *d = acquire(e);
	if (!d)
		return -EBUSY;
	r.phrases = true;
	if (!(r.text = calloc(1, 1))) {
		rc = -ENOMEM;
		goto out_release;
	}
	for (size_t off = 0; off < n || (n == 0 && off == 0); off += WHISPER_WINDOW_SAMPLES) {
		if (cancel && atomic_load(cancel)) {
			rc = -ECANCELED;
			break;
		}
		size_t w = n - off < WHISPER_WINDOW_SAMPLES ? n - off : WHISPER_WINDOW_SAMPLES;
		for (size_t i = 0; i < w; i++)
			d->pcm[i] = pcm[off + i] / 32768.0f;
		int audio_ms = (int)(w * 1000 / STT_RATE);
		int n_ctx = e->f->hp.n_audio_ctx;
		if (audio_ms < WHISPER_TRIM_BELOW_MS) {
			int want = (wmel_frames_for((int)w) + 1) / 2;
			n_ctx = want < 1 ? 1 : (want < n_ctx ? want : n_ctx);
		}
		wmel_compute(&e->mel, d->pcm, (int)w, 2 * n_ctx, d->t, d->mel);
		if ((rc = wstate_encode(d->s, d->mel, n_ctx)) < 0)
			break;
		wdec_model dm = { .ctx = d->s, .reset = ad_reset, .decode = ad_decode,
				  .n_text_ctx = e->f->hp.n_text_ctx };
		wdec_params p = wdec_defaults();
		wdec_result wr;
		p.audio_ms = audio_ms;
		p.language = lang;
		if ((rc = wdec_greedy(&dm, &e->tok, &p, &wr)) < 0)
			break;
		rc = collect(&r, &wr, (int64_t)(off * 1000 / STT_RATE), &text_len);
		wdec_result_release(&wr);
		if (rc < 0 || n == 0)
			break;
	}
	if (rc == 0) {
		/* the text without Whisper's leading space */
		size_t lead = strspn(r.text, " ");
		memmove(r.text, r.text + lead, strlen(r.text + lead) + 1);
		r.language = strdup(opt && opt->language && opt->language[0] &&
				    strcmp(opt->language, "auto") ? opt->language : "en");
		if (!r.language)
			rc = -ENOMEM;
	}
out_release:
	release(e, d);
	if (rc < 0) {
		stt_result_release(&r);
		return rc;
	}
	*ret = r;
	return 0;
}

const stt_engine_ops stt_engine_whisper = {
	.name = "whisper",
	.aliases = "whisper-builtin",
	.description = "Whisper, embedded (a whisper.cpp ggml model file, --model FILE)",
	.flags = 0,
	.languages = "en",
	.default_model = "",
	.create = whisper_create,
	.destroy = whisper_destroy,
	.transcribe = whisper_transcribe,
};
