/*
 * tts_engine.h - the text-to-speech engine interface.
 *
 * An engine is created once per daemon. synthesize() streams mono PCM16 at
 * the voice's native rate through a callback as the engine produces it, so
 * the first chunk leaves before the sentence is done. Thread safety is the
 * engine's job: flite keeps per-call state and runs concurrently; espeak-ng
 * has global state and serialises internally with a mutex. Engines check
 * *cancel between chunks and return -ECANCELED when set; the callback may
 * return non-zero to stop (the engine then returns -ECANCELED too).
 * Unknown voice: -ENOENT. Engines register in tts_engines[] (tts_engine.c).
 *
 *     void *eng; ops->create(&cfg, &eng);
 *     ops->synthesize(eng, "Hello.", &opt, &cancel, on_audio, user, &rate);
 *     ops->destroy(eng);
 */
#ifndef TTS_ENGINE_H
#define TTS_ENGINE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tts_config {
	const char *default_voice;  /* NULL = engine default */
	const char *url;            /* remote: base URL (POST {url}/v1/audio/speech) */
	const char *api_key;        /* remote: bearer key or NULL */
	const char *model;          /* remote: model name; NULL = "tts-1" */
	int timeout_ms;             /* remote: whole-request timeout */
} tts_config;

typedef struct tts_voice {
	const char *name;           /* as passed in "voice" */
	const char *language;       /* BCP 47, e.g. "en-US" */
	const char *gender;         /* "female" | "male" | NULL */
	int sample_rate;            /* native output rate */
} tts_voice;

typedef struct tts_options {
	const char *voice;          /* NULL = default voice */
	double speed;               /* 1.0 = normal; 0.25 .. 4.0 */
	const char *request_id;     /* may be NULL */
} tts_options;

/* A chunk of mono PCM16 at *the rate synthesize reported*; return non-zero
 * to stop synthesis. */
typedef int (*tts_audio_cb)(void *user, const int16_t *pcm, size_t n);

typedef struct tts_engine_ops {
	const char *name;
	const char *description;
	int (*create)(const tts_config *cfg, void **ret_engine);
	void (*destroy)(void *engine);
	/* Voices the engine offers; the array lives as long as the engine. */
	int (*voices)(void *engine, const tts_voice **ret_voices,
		      size_t *ret_n);
	/* Sets *ret_rate before the first callback. */
	int (*synthesize)(void *engine, const char *text,
			  const tts_options *opt, const atomic_bool *cancel,
			  tts_audio_cb cb, void *user, int *ret_rate);
} tts_engine_ops;

extern const tts_engine_ops *const tts_engines[];   /* NULL-terminated */
const tts_engine_ops *tts_engine_find(const char *name);

#endif
