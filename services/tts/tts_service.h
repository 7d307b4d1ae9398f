/*
 * tts_service.h - voxline-tts's state, shared by main.c (flags, engines,
 * start/stop), synth.c (voice choice, the engine call with its metrics),
 * api.c (POST /synthesize, POST /v1/audio/speech, GET /voices) and
 * api_ws.c (/ws/synthesize).
 *
 * Engines: several may be loaded at once ("backends": flite, espeak-ng, a
 * remote OpenAI-compatible server); a voice name picks the backend
 * (tts_synth_resolve). One tts_service per process, passed explicitly.
 *
 * Invariants: after start-up the backends, their voice lists and the
 * default target are read-only, so every function here is thread-safe
 * (the engines are, see tts_engine.h); metrics updates are atomic.
 *
 *     tts_target t;
 *     if (tts_synth_resolve(svc, "espeak:de", &t) == 0)
 *         tts_synth_run(svc, &t, "Guten Tag.", 1.0, req_id, cancel, cb, user, &st);
 */
#ifndef TTS_SERVICE_H
#define TTS_SERVICE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tts_engine.h"
#include "vx_daemon.h"
#include "vx_metrics.h"
#include "vx_pool.h"
#include "vx_server.h"

#define TTS_MAX_BACKENDS 4          /* engines loaded at once */
#define TTS_VOICE_NAME_MAX 64       /* bytes of a voice name, NUL included */
#define TTS_RATE_MIN 8000           /* output sample_rate a client may ask */
#define TTS_RATE_MAX 48000
#define TTS_OPENAI_RATE 24000       /* /v1/audio/speech output, as OpenAI's */

/* One loaded engine. */
typedef struct tts_backend {
	const char *name;             /* "flite" | "espeak-ng" | "remote" */
	const tts_engine_ops *ops;
	void *engine;
	const tts_voice *voices;      /* the engine's list, default first */
	size_t n_voices;
	bool passthrough;             /* takes any voice name (remote) */
	atomic_ullong audio_us;       /* audio produced, microseconds */
	vx_counter *chars;            /* characters synthesised */
	vx_counter *audio_seconds;    /* whole seconds of audio produced */
	vx_histogram *first_chunk;    /* call -> first audio chunk, seconds */
	vx_histogram *rtf;            /* synthesis time / audio duration */
	vx_counter *failures;         /* engine calls that failed (not cancels) */
} tts_backend;

/* A resolved voice: which backend, and the name to give its engine. */
typedef struct tts_target {
	tts_backend *be;
	char voice[TTS_VOICE_NAME_MAX];
	int rate;                     /* the voice's listed native rate, Hz */
} tts_target;

typedef struct tts_service {
	vx_daemon_opts d;
	const char *engines;          /* --engines: comma-separated */
	const char *engine;           /* --engine: one engine, overrides --engines */
	const char *voice;            /* --voice: default voice, NULL = first */
	const char *url;              /* --url: remote server */
	const char *upstream_key;     /* --upstream-key */
	const char *model;            /* --model: remote model */
	int max_text_chars;           /* per text, in characters (code points) */
	int timeout_s;                /* per synthesis */

	tts_backend backends[TTS_MAX_BACKENDS];
	size_t n_backends;
	tts_target default_target;
	vx_pool *pool;
} tts_service;

/* Result of one engine call (tts_synth_run). */
typedef struct tts_synth_stats {
	int rate;                     /* of the audio the callback saw */
	size_t samples;               /* delivered to the callback */
	double total_ms;              /* wall time of the call */
	double first_chunk_ms;        /* call -> first chunk; -1 = no audio */
} tts_synth_stats;

/* ---- synth.c ---- */

/* The loaded backend whose engine is called name or aliased so (case
 * ignored; tts_engine.h), or NULL. */
tts_backend *tts_synth_backend(tts_service *svc, const char *name);
/*
 * Picks backend and voice for a request's voice name: NULL or "" = the
 * default; "engine:voice" restricts to one backend; then a voice name of
 * any backend (case-insensitive), a language of a listed voice ("en-US"),
 * an OpenAI voice name (alloy, nova, ...) mapped to a local voice, and last
 * a remote backend (any name) or espeak-ng (its languages). -ENOENT when
 * nothing takes it, -ENAMETOOLONG for a name past TTS_VOICE_NAME_MAX.
 */
int tts_synth_resolve(tts_service *svc, const char *name, tts_target *ret);
/* A few voice names for an "unknown voice" message. */
void tts_synth_some_voices(const tts_service *svc, char *buf, size_t size);
/* Text checks: 0, or -EINVAL empty (or only spaces), -EILSEQ invalid
 * UTF-8 or a NUL inside, -E2BIG more than max_text_chars characters. */
int tts_synth_check_text(const tts_service *svc, const char *text,
			 size_t len);
/* Characters (code points) of valid UTF-8. */
size_t tts_synth_chars(const char *text, size_t len);
/* Runs the engine with metrics; returns its result (tts_engine.h). *ret is
 * filled while the call runs: cb gets the engine's chunks at ret->rate,
 * which is set before the first chunk (so cb may read it). */
int tts_synth_run(tts_service *svc, const tts_target *t, const char *text,
		  double speed, const char *request_id,
		  const atomic_bool *cancel, tts_audio_cb cb, void *user,
		  tts_synth_stats *ret);
/* The answer for an engine error: HTTP status and a short code. */
int tts_synth_error_status(int err, const char **ret_code);

/* ---- api.c / api_ws.c ---- */
extern const vx_route tts_routes[];
extern const size_t tts_n_routes;
extern const vx_ws_route tts_ws_routes[];
extern const size_t tts_n_ws_routes;

void tts_service_info(void *user, vx_buf *out);

/* Wyoming (wyoming.c) over /ws/synthesize's ops (api_ws.c). */
typedef struct vx_wy_server vx_wy_server;
const struct vx_svcws_ops *tts_ws_ops(void);
int tts_wyoming_start(tts_service *svc, vx_server *server, int port,
		      vx_wy_server **ret);
/* jobs.c: the NATS job, a POST /synthesize body in "request". */
struct vx_job;
struct vx_job_result;
void tts_jobs_run(void *user, const struct vx_job *job,
		  struct vx_job_result *res);
vx_health tts_service_health(void *user, vx_buf *extra, char *detail,
			     size_t detail_len);

#endif
