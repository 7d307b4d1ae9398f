/*
 * stt_engine.h - the speech-to-text engine interface.
 *
 * An engine is created once per daemon (it loads its model) and owns a
 * fixed pool of `pool_size` decoders; transcribe() and stream_open() take a
 * decoder from the pool and return -EBUSY at once when none is free (the
 * service's admission control sizes its worker pool to match, so -EBUSY is
 * rare). All entry points are thread-safe unless marked; a stream is used by
 * one thread at a time. Audio is always 16 kHz mono PCM16 (STT_RATE).
 * Engines check *cancel between chunks and return -ECANCELED when set.
 * Each engine declares what it is in its ops (VX_ENGINE_HEAD, vx_engine.h:
 * name, aliases, flags, languages; plus default_model) and registers in
 * stt_engines[] (stt_engine.c); --engine picks one by name or alias.
 *
 * Engines:
 *   "pocketsphinx"  embedded, CMU Sphinx en-us; streams with partials
 *                   (VX_ENGINE_STREAMING). About 90 MB resident and 0.4 s
 *                   load per decoder.
 *   "whisper"       embedded Whisper (engine_whisper.c): a whisper.cpp ggml
 *                   model file (cfg->model), mmap'd once and shared by the
 *                   pool's decoders; segments from timestamp tokens; takes
 *                   prompt, temperature, beam_size, language "auto" and
 *                   (multilingual models) translate.
 *   "whisper-server" a whisper.cpp server: POST {url}/inference.
 *   "openai"        an OpenAI-compatible server: POST {url}/v1/audio/transcriptions.
 *   The remote engines (VX_ENGINE_REMOTE: need a url) cannot stream
 *   (stream_open is NULL): the service buffers the utterance and calls
 *   transcribe.
 *
 * Errors (negative errno): -EINVAL bad argument or config, -ENOENT model
 * files missing, -ENOMEM, -EBUSY no free decoder, -E2BIG more than
 * STT_AUDIO_MAX_SECONDS of audio, -ENOTSUP a language the engine does not
 * know, -ECANCELED, and for remote engines -ECONNREFUSED (server down or
 * host unknown), -ETIMEDOUT, -EPROTO (HTTP error status or an answer that is
 * not a transcription), -EIO anything else.
 *
 * Ownership: strings in stt_config and stt_options are only read during the
 * call (create copies what it keeps). A result belongs to the caller: pair
 * a zeroed stt_result with stt_result_release. On failure *ret is untouched.
 *
 *     void *eng; ops->create(&cfg, &eng);
 *     stt_result r = {0}; ops->transcribe(eng, pcm, n, &opt, &cancel, &r);
 *     puts(r.text); stt_result_release(&r); ops->destroy(eng);
 */
#ifndef STT_ENGINE_H
#define STT_ENGINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vx_engine.h"

#define STT_RATE 16000
#define STT_AUDIO_MAX_SECONDS 600   /* per transcribe call or per utterance */
#define STT_POOL_MAX 64             /* largest pool_size an engine accepts */

typedef struct stt_config {
	int pool_size;            /* decoders to load (remote: concurrent requests); 1..STT_POOL_MAX */
	const char *model_dir;    /* pocketsphinx: acoustic model dir; NULL or "" = default */
	const char *dict;         /* pocketsphinx: dictionary; NULL or "" = default */
	const char *lm;           /* pocketsphinx: language model; NULL or "" = default */
	const char *decoder_args; /* pocketsphinx: extra "-name value" pairs, space
				   * separated, overriding the defaults
				   * (e.g. "-lw 5 -remove_noise yes"); NULL = none */
	const char *url;          /* remote: base URL of the server */
	const char *api_key;      /* remote: bearer key or NULL */
	const char *model;        /* remote: model name to send; NULL = engine default;
				   * whisper: the model file's path */
	int timeout_ms;           /* remote: whole-request timeout; <= 0 = 60 s */
	int trim_below_ms;        /* whisper: a window shorter than this runs the
				   * encoder over its own length, not 30 s;
				   * 0 = default (10 s), < 0 = never */
	char *why;                /* optional: create writes why it failed here */
	size_t why_size;          /* bytes at why (0: no message wanted) */
} stt_config;

/* Zeroed options are the defaults. What an engine cannot do it ignores
 * (temperature, beam_size, prompt) or refuses (language: -ENOTSUP; translate
 * on an engine without can_translate is refused by the service). */
typedef struct stt_options {
	const char *language;     /* "en", NULL, or "auto" (whisper: detect it) */
	const char *prompt;       /* remote engines; whisper: its initial prompt
				   * (text before the audio); may be NULL */
	const char *request_id;   /* passed downstream as X-Request-Id; may be NULL */
	float temperature;        /* whisper: the first try's (0..1); failing
				   * windows retry temperature_inc higher up to 1.0 */
	float temperature_inc;    /* whisper: 0 = default (0.2), < 0 = no fallback */
	int beam_size;            /* whisper: > 1 beam search (at most
				   * STT_BEAM_MAX); 0 = the engine's default (greedy) */
	bool translate;           /* whisper, multilingual model: into English
				   * (-ENOTSUP on an English-only model) */
} stt_options;

#define STT_BEAM_MAX 8

typedef struct stt_segment {
	int64_t start_ms, end_ms; /* from the start of the audio (stream: of the utterance) */
	char *text;               /* owned */
	/* whisper (stt_result.decoded): its window's decoding, as OpenAI's
	 * verbose_json reports per segment */
	float temperature, avg_logprob, compression_ratio, no_speech_prob;
} stt_segment;

typedef struct stt_result {
	char *text;               /* owned, UTF-8, never NULL on success */
	char *language;           /* owned; may be NULL */
	float language_prob;      /* > 0 when the engine detected the language */
	stt_segment *segments;    /* owned array: words (pocketsphinx) or phrases (remote) */
	size_t n_segments;
	bool phrases;             /* segments are phrases as the engine cut them
				   * (whisper's timestamps): never joined */
	bool decoded;             /* whisper: the segments' decoding numbers are set */
} stt_result;

/* Frees what r owns and zeroes it; accepts a zeroed result. */
void stt_result_release(stt_result *r);

/* A partial hypothesis while a stream runs; text is only valid in the call. */
typedef void (*stt_partial_cb)(void *user, const char *text);

typedef struct stt_engine_ops {
	/* name, aliases, description, flags (VX_ENGINE_STREAMING exactly when
	 * the stream_* functions are there, VX_ENGINE_REMOTE when it needs a
	 * url), languages (NULL: the server's) */
	VX_ENGINE_HEAD;
	const char *default_model;     /* what /healthz and /info report when
					* no model is configured */
	bool can_translate;            /* takes stt_options.translate (the
					* model may still refuse: -ENOTSUP) */
	int (*create)(const stt_config *cfg, void **ret_engine);
	void (*destroy)(void *engine);           /* accepts NULL; no stream may be open */
	int (*transcribe)(void *engine, const int16_t *pcm, size_t n,
			  const stt_options *opt, const atomic_bool *cancel,
			  stt_result *ret);
	/* Optional (NULL when the engine cannot stream). */
	int (*stream_open)(void *engine, const stt_options *opt,
			   void **ret_stream);
	/* Feeds audio; may call cb with a new partial (only when it changed). */
	int (*stream_feed)(void *stream, const int16_t *pcm, size_t n,
			   stt_partial_cb cb, void *user);
	/* Ends the utterance and gives the final result; the stream can then
	 * take a new utterance with stream_feed. */
	int (*stream_finish)(void *stream, stt_result *ret);
	void (*stream_close)(void *stream);   /* returns the decoder to the pool; accepts NULL */
} stt_engine_ops;

extern const stt_engine_ops stt_engine_pocketsphinx;  /* engine_pocketsphinx.c */
extern const stt_engine_ops stt_engine_whisper;       /* engine_whisper.c */
extern const stt_engine_ops stt_engine_whisper_server; /* engine_remote.c */
extern const stt_engine_ops stt_engine_openai;        /* engine_remote.c */

extern const stt_engine_ops *const stt_engines[];   /* NULL-terminated, default first */
/* The engine called name or aliased so (case ignored), the default for
 * NULL or "", NULL when unknown. */
const stt_engine_ops *stt_engine_find(const char *name);
/* stt_engines[i] as a vx_engine, NULL past the last (for vx_engine_*). */
const vx_engine *stt_engine_at(size_t i);

#endif
