/*
 * tts_engine.h - the text-to-speech engine interface.
 *
 * An engine is created once per daemon. synthesize() streams mono PCM16 at
 * the voice's native rate through a callback as the engine produces it, so
 * the first chunk leaves before the sentence is done (flite: one callback
 * per ~64 ms of audio, sentence by sentence; espeak-ng: per ~50 ms; remote:
 * as the HTTP body arrives).
 *
 * Thread safety: every entry point but create/destroy may be called from
 * several threads at once. flite keeps per-call state and runs concurrently
 * (checked with helgrind: no shared mutable state on a shared voice);
 * espeak-ng has global state and serialises internally with one process-wide
 * mutex; remote calls are independent HTTP requests.
 *
 * Cancellation: engines check *cancel (may be NULL) between chunks and
 * return -ECANCELED when set; the callback may return non-zero to stop (the engine then
 * returns -ECANCELED too). Nothing blocks forever: the remote engine has a
 * whole-request timeout.
 *
 * Errors (negative errno): -EINVAL empty/NULL text or speed out of range,
 * -E2BIG text longer than TTS_TEXT_MAX, -ENOENT unknown voice (local
 * engines; the remote engine passes any voice name through), -ECANCELED,
 * -ETIMEDOUT, -ECONNREFUSED (remote down or its host unknown), -EPROTO
 * (remote answered with an HTTP error or a body that is not audio, or cut
 * the body short), -ENOMEM, -EIO (engine failure).
 * create: -ENOENT unknown default voice (local engines), -EINVAL remote
 * without url, -EIO library init failure.
 * Suggested HTTP mapping: EINVAL/E2BIG 400, ENOENT 400 (unknown voice),
 * ETIMEDOUT 504, ECONNREFUSED/EPROTO 502, others 500.
 *
 * Ownership: strings in tts_config are copied by create; voice arrays live
 * as long as the engine; pcm passed to the callback is valid only during
 * the call.
 *
 * Each engine declares what it is in its ops (VX_ENGINE_HEAD, vx_engine.h):
 * the name the service reports ("flite", "espeak-ng", "remote"), aliases
 * ("espeak", "openai"), VX_ENGINE_REMOTE for one that needs a url and takes
 * any voice name, languages; voices() lists its voices. Engines register
 * in tts_engines[] (tts_engine.c); --engines and "engine:voice" prefixes
 * name them by name or alias.
 *
 *     const tts_engine_ops *ops = tts_engine_find("flite"); void *eng;
 *     ops->create(&cfg, &eng);
 *     ops->synthesize(eng, "Hello.", &opt, &cancel, on_audio, user, &rate);
 *     ops->destroy(eng);
 */
#ifndef TTS_ENGINE_H
#define TTS_ENGINE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "vx_engine.h"

#define TTS_TEXT_MAX 65536        /* bytes of text per synthesize call */
#define TTS_SPEED_MIN 0.25
#define TTS_SPEED_MAX 4.0

typedef struct tts_config {
	const char *default_voice;  /* NULL = engine default */
	const char *url;            /* remote: base URL (POST {url}/v1/audio/speech) */
	const char *api_key;        /* remote: bearer key or NULL */
	const char *model;          /* remote: model name; NULL = "tts-1" */
	int timeout_ms;             /* remote: whole-request timeout; <= 0 = 60 s */
} tts_config;

typedef struct tts_voice {
	const char *name;           /* as passed in "voice" */
	const char *language;       /* BCP 47, e.g. "en-US" */
	const char *gender;         /* "female" | "male" | NULL */
	int sample_rate;            /* native output rate */
} tts_voice;

typedef struct tts_options {
	const char *voice;          /* NULL or "" = default voice */
	double speed;               /* 1.0 = normal; 0 = 1.0; else 0.25 .. 4.0 */
	const char *request_id;     /* may be NULL; remote sends X-Request-Id */
} tts_options;

/* A chunk of mono PCM16 at *the rate synthesize reported*; return non-zero
 * to stop synthesis. */
typedef int (*tts_audio_cb)(void *user, const int16_t *pcm, size_t n);

typedef struct tts_engine_ops {
	VX_ENGINE_HEAD;     /* name, aliases, description, flags, languages */
	int (*create)(const tts_config *cfg, void **ret_engine);
	void (*destroy)(void *engine);       /* accepts NULL */
	/* Voices the engine offers, default first; the array lives as long as
	 * the engine. */
	int (*voices)(void *engine, const tts_voice **ret_voices,
		      size_t *ret_n);
	/* Sets *ret_rate before the first callback (also when no audio
	 * comes); 0 or more on success. */
	int (*synthesize)(void *engine, const char *text,
			  const tts_options *opt, const atomic_bool *cancel,
			  tts_audio_cb cb, void *user, int *ret_rate);
} tts_engine_ops;

/* The engines (engine_<name>.c). */
extern const tts_engine_ops tts_engine_flite;
extern const tts_engine_ops tts_engine_espeak;
extern const tts_engine_ops tts_engine_openai;

extern const tts_engine_ops *const tts_engines[];   /* NULL-terminated */
/* The engine called name or aliased so (case ignored); NULL or "" gives
 * the default (first) engine; unknown names give NULL. */
const tts_engine_ops *tts_engine_find(const char *name);
/* tts_engines[i] as a vx_engine, NULL past the last (for vx_engine_*). */
const vx_engine *tts_engine_at(size_t i);
/* The checks every engine makes first: text non-empty (-EINVAL) and at
 * most TTS_TEXT_MAX bytes (-E2BIG); speed 0 -> 1.0, else within
 * TTS_SPEED_MIN..TTS_SPEED_MAX (-EINVAL). opt may be NULL. */
int tts_engine_check(const char *text, const tts_options *opt,
		     double *ret_speed);

#endif
