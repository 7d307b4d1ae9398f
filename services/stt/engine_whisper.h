/*
 * engine_whisper.h - what the built-in Whisper engine's two files share:
 * the engine and its decoders (engine_whisper.c: create, destroy,
 * transcribe) and its streams (engine_whisper_stream.c: /ws/transcribe
 * partials). Internal to the engine; the service sees stt_engine.h only.
 *
 * A wengine is immutable after create except for its decoders' busy flags
 * (guarded by lock): whisper_acquire takes a free decoder or returns NULL,
 * whisper_release gives it back. A decoder serves one call or one stream at
 * a time, on its own thread team.
 *
 *     wdecoder *d = whisper_acquire(e);   // NULL: all busy (-EBUSY)
 *     ... wmel_compute(&e->mel, d->pcm, ...); wstate_encode(d->s, ...) ...
 *     whisper_release(e, d);
 */
#ifndef ENGINE_WHISPER_H
#define ENGINE_WHISPER_H

#include <pthread.h>
#include <stdbool.h>

#include "stt_engine.h"
#include "whisper/wdecode.h"
#include "whisper/wfile.h"
#include "whisper/wmel.h"
#include "whisper/wmodel.h"
#include "whisper/wtok.h"

#define WHISPER_WINDOW_SAMPLES (30 * STT_RATE)   /* the model's context: 30 s */
#define WHISPER_TRIM_BELOW_MS 10000              /* default: shorter windows' encoder trimmed */

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
	int trim_below_ms;       /* cfg->trim_below_ms resolved; 0 = never trim */
} wengine;

/* Encoder positions for a window of n samples: its own length (frames / 2)
 * when trim or the window is shorter than e->trim_below_ms, else the
 * model's whole audio context. */
int whisper_encoder_ctx(const wengine *e, size_t n, bool trim);

/* A free decoder (now busy), or NULL when all are busy. */
wdecoder *whisper_acquire(wengine *e);
void whisper_release(wengine *e, wdecoder *d);
/* The request's language as a token (-1 for English-only models): none
 * or "" is English, a region is ignored ("en-US", "pt_BR" -> en, pt), case
 * too; "auto" on a multilingual model sets *ret_detect instead. -ENOTSUP
 * for a language the model does not have. */
int whisper_language(const wengine *e, const stt_options *opt, int32_t *ret_lang, bool *ret_detect);

/* engine_whisper_stream.c: the stream_* ops (stt_engine.h). */
int whisper_stream_open(void *engine, const stt_options *opt, void **ret_stream);
int whisper_stream_feed(void *stream, const int16_t *pcm, size_t n, stt_partial_cb cb,
			void *user);
int whisper_stream_finish(void *stream, stt_result *ret);
void whisper_stream_close(void *stream);

#endif
