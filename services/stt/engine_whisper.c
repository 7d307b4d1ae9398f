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
 * is shorter than cfg->trim_below_ms (--trim-below-s, default 10 s;
 * positions = frames / 2), over the full context otherwise. Decoding per window (wdecode.h): greedy, or beam
 * search with opt->beam_size > 1 (a KV snapshot per beam, wstate_kv_*),
 * temperature fallback from opt->temperature (0.2 steps up to 1.0, seeded
 * sampling, so the same request gives the same answer), opt->prompt as the
 * initial prompt of every window (" " + the trimmed text, tokenized),
 * segments with times from the start of the audio and each window's
 * temperature / avg_logprob / compression_ratio / no_speech_prob.
 * Languages: English-only models take "en" or "auto"; multilingual models
 * take any Whisper language code, or "auto": the language is detected on
 * the first window (wdec_detect_language) and reported in the result;
 * opt->translate decodes with <|translate|> (multilingual models only,
 * -ENOTSUP otherwise).
 *
 * Streams (VX_ENGINE_STREAMING, /ws/transcribe partials) are in
 * engine_whisper_stream.c: the growing utterance re-decoded, with local
 * agreement keeping shown words from being withdrawn.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_whisper.h"
#include "stt_engine.h"
#include "whisper/wdecode.h"
#include "whisper/wfile.h"
#include "whisper/wmel.h"
#include "whisper/wmodel.h"
#include "whisper/wtok.h"

#define WHISPER_PROMPT_MAX_BYTES 4096   /* of opt->prompt tokenized (its tail kept) */

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
	e->trim_below_ms = cfg->trim_below_ms < 0 ? 0 :
			   cfg->trim_below_ms ? cfg->trim_below_ms : WHISPER_TRIM_BELOW_MS;
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

wdecoder *whisper_acquire(wengine *e)
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

void whisper_release(wengine *e, wdecoder *d)
{
	pthread_mutex_lock(&e->lock);
	d->busy = false;
	pthread_mutex_unlock(&e->lock);
}


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
						    .text = copy,
						    .temperature = w->temperature,
						    .avg_logprob = w->avg_logprob,
						    .compression_ratio = w->compression_ratio,
						    .no_speech_prob = w->no_speech_prob };
	}
	r->decoded = true;
	size_t add = strlen(w->text);
	char *t = realloc(r->text, *text_len + add + 1);
	if (!t)
		return -ENOMEM;
	memcpy(t + *text_len, w->text, add + 1);
	r->text = t;
	*text_len += add;
	return 0;
}

/* The wdec_model over a wstate with a KV snapshot per slot (beam search). */
typedef struct wkv {
	wstate *s;
	void *snap[WDEC_SLOTS(WDEC_BEAM_MAX)];
	size_t cap[WDEC_SLOTS(WDEC_BEAM_MAX)];
} wkv;

static void kv_reset(void *ctx) { wstate_decode_reset(((wkv *)ctx)->s); }

static int kv_decode(void *ctx, const int32_t *t, int n, float *l)
{
	return wstate_decode(((wkv *)ctx)->s, t, n, l);
}

static int kv_save(void *ctx, int slot)
{
	wkv *k = ctx;
	size_t need = wstate_kv_bytes(k->s);
	if (slot < 0 || slot >= WDEC_SLOTS(WDEC_BEAM_MAX))
		return -EINVAL;
	if (k->cap[slot] < need) {
		size_t cap = need + need / 2;
		void *p = realloc(k->snap[slot], cap);
		if (!p)
			return -ENOMEM;
		k->snap[slot] = p;
		k->cap[slot] = cap;
	}
	wstate_kv_save(k->s, k->snap[slot]);
	return 0;
}

static int kv_load(void *ctx, int slot)
{
	wkv *k = ctx;
	if (slot < 0 || slot >= WDEC_SLOTS(WDEC_BEAM_MAX) || !k->snap[slot])
		return -EINVAL;
	wstate_kv_load(k->s, k->snap[slot]);
	return 0;
}

static void kv_release(wkv *k)
{
	for (int i = 0; i < WDEC_SLOTS(WDEC_BEAM_MAX); i++)
		free(k->snap[i]);
}

/* opt->language as Whisper's language token (engine_whisper.h). */
int whisper_language(const wengine *e, const stt_options *opt, int32_t *ret_lang, bool *ret_detect)
{
	const char *l = opt && opt->language && opt->language[0] ? opt->language : "en";
	size_t n = strcspn(l, "-_");
	char code[16];
	*ret_detect = false;
	*ret_lang = -1;
	if (!strcmp(l, "auto")) {
		*ret_detect = e->tok.multilingual;
		return 0;
	}
	if (n == 0 || n >= sizeof(code))
		return -ENOTSUP;
	for (size_t i = 0; i < n; i++)
		code[i] = (char)tolower((unsigned char)l[i]);
	code[n] = 0;
	if (!e->tok.multilingual)
		return strcmp(code, "en") ? -ENOTSUP : 0;
	*ret_lang = wtok_language(&e->tok, code);
	return *ret_lang < 0 ? -ENOTSUP : 0;
}

int whisper_encoder_ctx(const wengine *e, size_t n, bool trim)
{
	int n_ctx = e->f->hp.n_audio_ctx;
	if (trim || (int64_t)n * 1000 / STT_RATE < e->trim_below_ms) {
		int want = (wmel_frames_for((int)n) + 1) / 2;
		n_ctx = want < 1 ? 1 : (want < n_ctx ? want : n_ctx);
	}
	return n_ctx;
}

/* opt->prompt as tokens (" " + the trimmed text, as openai-whisper does);
 * *ret NULL when there is none. Caller frees *ret. */
static int whisper_prompt(const wengine *e, const char *text, int32_t **ret, int *ret_n)
{
	*ret = NULL;
	*ret_n = 0;
	if (!text)
		return 0;
	text += strspn(text, " \t\r\n");
	size_t len = strlen(text);
	while (len && strchr(" \t\r\n", text[len - 1]))
		len--;
	if (!len)
		return 0;
	if (len > WHISPER_PROMPT_MAX_BYTES) {   /* the tail, from a character's start */
		text += len - WHISPER_PROMPT_MAX_BYTES;
		len = WHISPER_PROMPT_MAX_BYTES;
		while (len && ((unsigned char)*text & 0xc0) == 0x80)
			text++, len--;
	}
	char *buf = malloc(len + 2);
	if (!buf)
		return -ENOMEM;
	buf[0] = ' ';
	memcpy(buf + 1, text, len);
	buf[len + 1] = 0;
	int n = wtok_encode(&e->tok, buf, len + 1, NULL, 0);
	int32_t *tok = n > 0 ? malloc(sizeof *tok * (size_t)n) : NULL;
	if (n < 0 || (n > 0 && !tok)) {
		free(buf);
		return n < 0 ? n : -ENOMEM;
	}
	if (n > 0)
		wtok_encode(&e->tok, buf, len + 1, tok, n);
	free(buf);
	*ret = tok;
	*ret_n = n;
	return 0;
}

static int whisper_transcribe(void *engine, const int16_t *pcm, size_t n, const stt_options *opt,
			      const atomic_bool *cancel, stt_result *ret)
{
	wengine *e = engine;
	stt_result r = { 0 };
	size_t text_len = 0;
	int32_t lang = -1, *prompt = NULL;
	int n_prompt = 0, rc = 0;
	bool detect;

	if (n > (size_t)STT_AUDIO_MAX_SECONDS * STT_RATE)
		return -E2BIG;
	if ((rc = whisper_language(e, opt, &lang, &detect)) < 0)
		return rc;
	if (opt && opt->translate && !e->tok.multilingual)
		return -ENOTSUP;
	if ((rc = whisper_prompt(e, opt ? opt->prompt : NULL, &prompt, &n_prompt)) < 0)
		return rc;
	wdecoder *d = whisper_acquire(e);
	if (!d) {
		free(prompt);
		return -EBUSY;
	}
	wkv kv = { .s = d->s };
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
		int n_ctx = whisper_encoder_ctx(e, w, false);
		wmel_compute(&e->mel, d->pcm, (int)w, 2 * n_ctx, d->t, d->mel);
		if ((rc = wstate_encode(d->s, d->mel, n_ctx)) < 0)
			break;
		wdec_model dm = { .ctx = &kv, .reset = kv_reset, .decode = kv_decode,
				  .n_text_ctx = e->f->hp.n_text_ctx, .save = kv_save,
				  .load = kv_load, .n_slots = WDEC_SLOTS(WDEC_BEAM_MAX) };
		if (detect) {
			if ((rc = wdec_detect_language(&dm, &e->tok, &lang, &r.language_prob,
						       NULL)) < 0)
				break;
			detect = false;
		}
		wdec_params p = wdec_defaults();
		wdec_result wr;
		p.audio_ms = audio_ms;
		p.language = lang;
		p.prompt = prompt;
		p.n_prompt = n_prompt;
		p.translate = opt && opt->translate;
		p.beam_size = opt && opt->beam_size > 1 ? opt->beam_size : 1;
		p.temperature = opt && opt->temperature > 0 ? opt->temperature : 0;
		if (opt && opt->temperature_inc != 0)
			p.temperature_inc = opt->temperature_inc > 0 ? opt->temperature_inc : 0;
		p.seed = off / WHISPER_WINDOW_SAMPLES;
		if ((rc = wdec_decode(&dm, &e->tok, &p, &wr)) < 0)
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
		const char *code = lang >= 0 ? wtok_language_code(&e->tok, lang) : "en";
		r.language = strdup(code ? code : "en");
		if (!r.language)
			rc = -ENOMEM;
	}
out_release:
	kv_release(&kv);
	whisper_release(e, d);
	free(prompt);
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
	.flags = VX_ENGINE_STREAMING,
	.languages = "en",
	.default_model = "",
	.can_translate = true,
	.create = whisper_create,
	.destroy = whisper_destroy,
	.transcribe = whisper_transcribe,
	.stream_open = whisper_stream_open,
	.stream_feed = whisper_stream_feed,
	.stream_finish = whisper_stream_finish,
	.stream_close = whisper_stream_close,
};
