/*
 * synth.c - choosing the engine and voice for a request, checking its text,
 * and running the engine with the service's metrics (characters, audio
 * seconds, time to first chunk, real-time factor).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "tts_service.h"
#include "vx_reqbody.h"
#include "vx_time.h"

/* OpenAI's voice names on the local flite voices (no remote loaded). */
static const struct {
	const char *openai;
	const char *local;
} synth_openai_map[] = {
	{ "alloy", "slt" }, { "nova", "slt" }, { "shimmer", "slt" },
	{ "coral", "slt" }, { "sage", "slt" }, { "echo", "rms" },
	{ "ash", "rms" }, { "fable", "awb" }, { "ballad", "awb" },
	{ "onyx", "kal16" }, { "verse", "kal16" },
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

tts_backend *tts_synth_backend(tts_service *svc, const char *name)
{
	for (size_t i = 0; i < svc->n_backends; i++)
		if (vx_engine_is(&svc->backends[i].ops->engine, name))
			return &svc->backends[i];
	return NULL;
}

static int synth_target(tts_backend *be, const char *voice, int rate,
			tts_target *ret)
{
	if (strlen(voice) >= sizeof(ret->voice))
		return -ENAMETOOLONG;
	ret->be = be;
	snprintf(ret->voice, sizeof(ret->voice), "%s", voice);
	ret->rate = rate;
	return 0;
}

/* By name, then by language, within be (or every backend when be is NULL). */
static int synth_find_listed(tts_service *svc, tts_backend *only,
			     const char *name, tts_target *ret)
{
	for (int by_lang = 0; by_lang < 2; by_lang++) {
		for (size_t i = 0; i < svc->n_backends; i++) {
			tts_backend *be = &svc->backends[i];
			if (only && be != only)
				continue;
			for (size_t k = 0; k < be->n_voices; k++) {
				const tts_voice *v = &be->voices[k];
				const char *key = by_lang ? v->language : v->name;
				if (key && !strcasecmp(key, name))
					return synth_target(be, v->name,
							    v->sample_rate, ret);
			}
		}
	}
	return -ENOENT;
}

/* True when name's primary language subtag ("pt" of "pt-br") is that of
 * a listed voice: espeak-ng may know it under another language. */
static bool synth_same_language(const tts_backend *be, const char *name)
{
	size_t n = strcspn(name, "-_");
	if (n < 2 || n > 3)
		return false;
	for (size_t k = 0; k < be->n_voices; k++) {
		const char *l = be->voices[k].language;
		if (l && strlen(l) >= n && !strncasecmp(l, name, n) &&
		    (l[n] == '\0' || l[n] == '-'))
			return true;
	}
	return false;
}

/* The last resort for a name no list has: the remote server, or espeak-ng,
 * which also knows voices by any of their languages. */
static int synth_fallback(tts_service *svc, tts_backend *only,
			  const char *name, tts_target *ret)
{
	for (size_t i = 0; i < svc->n_backends; i++) {
		tts_backend *be = &svc->backends[i];
		if ((only && be != only) || !be->passthrough)
			continue;
		return synth_target(be, name, be->n_voices ?
				    be->voices[0].sample_rate : 0, ret);
	}
	tts_backend *es = tts_synth_backend(svc, "espeak-ng");
	if (es && (!only || only == es) && synth_same_language(es, name))
		return synth_target(es, name, es->voices[0].sample_rate, ret);
	return -ENOENT;
}

int tts_synth_resolve(tts_service *svc, const char *name, tts_target *ret)
{
	tts_backend *only = NULL;
	char prefix[32];
	int r;

	if (!name || !*name) {
		if (svc->default_target.be) {
			*ret = svc->default_target;
			return 0;
		}
		if (!svc->n_backends || !svc->backends[0].n_voices)
			return -ENOENT;
		tts_backend *be = &svc->backends[0];
		return synth_target(be, be->voices[0].name,
				    be->voices[0].sample_rate, ret);
	}
	if (strlen(name) >= TTS_VOICE_NAME_MAX)
		return -ENAMETOOLONG;
	const char *colon = strchr(name, ':');
	if (colon && (size_t)(colon - name) < sizeof(prefix)) {
		snprintf(prefix, sizeof(prefix), "%.*s", (int)(colon - name), name);
		only = tts_synth_backend(svc, prefix);
		if (!only)
			return -ENOENT;
		name = colon + 1;
		if (!*name) {
			if (!only->n_voices)
				return -ENOENT;
			return synth_target(only, only->voices[0].name,
					    only->voices[0].sample_rate, ret);
		}
	}
	r = synth_find_listed(svc, only, name, ret);
	if (r != -ENOENT)
		return r;
	for (size_t i = 0; i < N_OF(synth_openai_map); i++) {
		if (strcasecmp(synth_openai_map[i].openai, name))
			continue;
		tts_backend *fl = tts_synth_backend(svc, "flite");
		if (fl && (!only || only == fl) &&
		    synth_find_listed(svc, fl, synth_openai_map[i].local, ret) == 0)
			return 0;
		/* without flite: the default voice speaks for every alias */
		if (!only && svc->default_target.be &&
		    !svc->default_target.be->passthrough) {
			*ret = svc->default_target;
			return 0;
		}
	}
	return synth_fallback(svc, only, name, ret);
}

void tts_synth_some_voices(const tts_service *svc, char *buf, size_t size)
{
	size_t off = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < svc->n_backends; i++) {
		const tts_backend *be = &svc->backends[i];
		for (size_t k = 0; k < be->n_voices && k < 6; k++) {
			int n = snprintf(buf + off, size - off, "%s%s",
					 off ? ", " : "", be->voices[k].name);
			if (n < 0 || (size_t)n >= size - off)
				return;
			off += (size_t)n;
		}
	}
	if (off + 16 < size)
		snprintf(buf + off, size - off, " (GET /voices)");
}

size_t tts_synth_chars(const char *text, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		n += ((unsigned char)text[i] & 0xC0) != 0x80;
	return n;
}

int tts_synth_check_text(const tts_service *svc, const char *text, size_t len)
{
	if (!vx_utf8_valid(text, len) || memchr(text, '\0', len))
		return -EILSEQ;
	if (tts_synth_chars(text, len) > (size_t)svc->max_text_chars)
		return -E2BIG;
	for (size_t i = 0; i < len; i++)
		if (!strchr(" \t\r\n\f\v", text[i]))
			return 0;
	return -EINVAL;
}

/* Wraps the caller's callback to time the first chunk and count samples. */
typedef struct synth_call {
	tts_audio_cb cb;
	void *user;
	double t0;
	tts_synth_stats *st;
} synth_call;

static int synth_chunk(void *user, const int16_t *pcm, size_t n)
{
	synth_call *c = user;
	if (c->st->first_chunk_ms < 0)
		c->st->first_chunk_ms = vx_now_ms() - c->t0;
	c->st->samples += n;
	return c->cb(c->user, pcm, n);
}

int tts_synth_run(tts_service *svc, const tts_target *t, const char *text,
		  double speed, const char *request_id,
		  const atomic_bool *cancel, tts_audio_cb cb, void *user,
		  tts_synth_stats *ret)
{
	tts_backend *be = t->be;
	tts_options opt = { .voice = t->voice, .speed = speed,
			    .request_id = request_id };
	synth_call c = { .cb = cb, .user = user, .t0 = vx_now_ms(), .st = ret };
	(void)svc;

	*ret = (tts_synth_stats){ .first_chunk_ms = -1 };
	int r = be->ops->synthesize(be->engine, text, &opt, cancel, synth_chunk,
				    &c, &ret->rate);
	ret->total_ms = vx_now_ms() - c.t0;
	vx_counter_add(be->chars, tts_synth_chars(text, strlen(text)));
	if (ret->first_chunk_ms >= 0)
		vx_histogram_observe(be->first_chunk, ret->first_chunk_ms / 1e3);
	if (ret->rate > 0 && ret->samples > 0) {
		unsigned long long us = (unsigned long long)ret->samples *
					1000000ull / (unsigned long long)ret->rate;
		unsigned long long old = atomic_fetch_add(&be->audio_us, us);
		vx_counter_add(be->audio_seconds,
			       (old + us) / 1000000ull - old / 1000000ull);
		if (r >= 0 && us)
			vx_histogram_observe(be->rtf, ret->total_ms * 1e3 / (double)us);
	}
	if (r < 0 && r != -ECANCELED)
		vx_counter_add(be->failures, 1);
	return r;
}

int tts_synth_error_status(int err, const char **ret_code)
{
	switch (err) {
	case -EINVAL:
	case -E2BIG:
		*ret_code = "bad_text";
		return 400;
	case -ENOENT:
		*ret_code = "unknown_voice";
		return 400;
	case -ETIMEDOUT:
		*ret_code = "upstream_timeout";
		return 504;
	case -ECONNREFUSED:
	case -EPROTO:
		*ret_code = "upstream_error";
		return 502;
	case -ENOMEM:
		*ret_code = "out_of_memory";
		return 500;
	default:
		*ret_code = "synthesis_failed";
		return 500;
	}
}
