/*
 * stt_service.h - voxline-stt's state and the pieces of its service layer:
 * main.c (flags, engine, start/stop), api.c (POST /transcribe and the
 * shared transcription job), api_openai.c (POST /v1/audio/transcriptions)
 * and api_ws.c (/ws/transcribe).
 *
 * Invariants: one stt_service per process, filled by main.c before the
 * server starts and read-only afterwards (metrics series are updated
 * atomically). The engine owns `workers` decoders and the vx_pool has
 * `workers` threads: every engine call runs on the pool, never on an HTTP
 * connection thread or the WebSocket service thread. A WebSocket utterance
 * holds one decoder from its first audio to its final (or cancel/close).
 *
 * Thread-safety: everything here may be read from any thread.
 *
 *     stt_service svc = {0};   ... main.c fills it ...
 *     cfg.routes = stt_routes; cfg.n_routes = stt_n_routes;
 *     cfg.ws_routes = stt_ws_routes; cfg.health = stt_service_health;
 */
#ifndef STT_SERVICE_H
#define STT_SERVICE_H

#include "stt_engine.h"
#include "vx_daemon.h"
#include "vx_metrics.h"
#include "vx_pool.h"
#include "vx_req.h"
#include "vx_server.h"

/* Bytes of audio a WebSocket may have waiting for the decoder (16 kHz
 * PCM16: 4 MiB is about 131 s). Past it the utterance is dropped. */
#define STT_WS_QUEUE_MAX_BYTES (4u << 20)
#define STT_WS_DECODER_WAIT_MS 30000   /* an utterance's end waits this long for a
					* decoder other sockets hold */

typedef struct stt_service {
	vx_daemon_opts d;
	const char *engine_name;
	const char *url;             /* remote engines: server base URL */
	const char *upstream_key;    /* remote engines: bearer key */
	const char *model;           /* remote engines: model name */
	const char *language;        /* default language ("en") */
	const char *hmm, *dict, *lm; /* pocketsphinx model files (NULL = Debian's) */
	const char *decoder_args;    /* pocketsphinx: extra "-name value" pairs */
	int max_audio_s;             /* per request / per WebSocket utterance */
	int timeout_s;               /* remote engines: per upstream request */
	int trim_below_s;            /* whisper: --trim-below-s (0: never trim) */

	const stt_engine_ops *engine;
	void *eng;                   /* the engine's state */
	const char *model_name;      /* what /healthz and /info report */
	vx_pool *pool;

	vx_histogram *audio_seconds;    /* audio per transcription, s */
	vx_histogram *processing_seconds;
	vx_histogram *rtf;              /* processing / audio duration */
	vx_counter *ws_utterances;      /* WebSocket finals sent */
	vx_metrics *metrics;            /* for per-engine error counters */
	atomic_int ws_jobs;             /* WebSocket jobs running or queued */
} stt_service;

/* What one transcription produced, for the answer writers. */
typedef struct stt_outcome {
	stt_result r;
	double audio_ms;             /* duration of the audio */
	double processing_ms;        /* engine time */
	const char *language;        /* result's, else the request's, else "en" */
} stt_outcome;

/* An engine error as an HTTP answer: status, code and message. */
typedef struct stt_http_error {
	int status;
	const char *code;
	char message[160];
} stt_http_error;

extern const vx_route stt_routes[];
extern const size_t stt_n_routes;
extern const vx_ws_route stt_ws_routes[];
extern const size_t stt_n_ws_routes;

/* Maps an engine's negative errno to status/code/message and counts it in
 * voxline_stt_engine_errors_total{engine,kind}. */
void stt_error_map(stt_service *svc, int err, stt_http_error *ret);

/* Runs the engine on 16 kHz mono pcm (on the calling pool thread), times
 * it and records the metrics. 0 and *ret filled, or the engine's error. */
int stt_run(stt_service *svc, const int16_t *pcm, size_t n,
	    const stt_options *opt, const atomic_bool *cancel, stt_outcome *ret);
/* Records audio/processing/RTF metrics for one transcription. */
void stt_observe(stt_service *svc, double audio_ms, double processing_ms);

/* The POST /transcribe answer: {"text","language","duration_ms",
 * "segments","engine","processing_ms"} and a newline (NATS jobs too). */
void stt_transcript_json(const stt_service *svc, const stt_outcome *o,
			 vx_buf *b);
struct vx_job;
struct vx_job_result;
/* The NATS job (jobs.c): a transcription as POST /transcribe runs it. */
void stt_jobs_run(void *user, const struct vx_job *job,
		  struct vx_job_result *res);

/* Appends segments as [{"start_ms":N,"end_ms":N,"text":"..."}...]. */
void stt_segments_json(const stt_result *r, vx_buf *out);

/* After the server stopped serving: waits up to timeout_s for WebSocket
 * jobs to finish (they use the metrics, which the server frees). */
void stt_ws_quiesce(stt_service *svc, int timeout_s);

/* POST /v1/audio/transcriptions and /v1/audio/translations (api_openai.c). */
void stt_openai_handle(vx_req *req, void *user);
/* The request's temperature, temperature_inc, beam_size and translate into
 * opt (api.c); a bad value is answered 400 and -EINVAL returned. */
int stt_decode_options(vx_req *req, stt_options *opt);
/* False (and a 400 answered) when opt asks to translate and the engine
 * cannot. */
bool stt_can_translate(vx_req *req, const stt_service *svc, const stt_options *opt);

vx_health stt_service_health(void *user, vx_buf *extra, char *detail,
			     size_t detail_len);
void stt_service_info(void *user, vx_buf *out);

/* Wyoming (wyoming.c) over /ws/transcribe's ops (api_ws.c). */
typedef struct vx_wy_server vx_wy_server;
const struct vx_svcws_ops *stt_ws_ops(void);
int stt_wyoming_start(stt_service *svc, vx_server *server, int port,
		      vx_wy_server **ret);

#endif
