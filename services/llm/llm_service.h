/*
 * llm_service.h - voxline-llm's state, shared by main.c (flags, start/stop),
 * llm_gen.c (one generation: filters, admission, metrics) and the routes:
 * api.c (/generate, health, info), api_openai.c (/v1/chat/completions,
 * /v1/models) and api_ws.c (/ws/generate).
 *
 * One instance per process, passed explicitly (the server's user pointer).
 * Everything is set before vx_server_run and read-only afterwards, except
 * the atomics (generations, probe state) and the probe detail (under
 * probe_lock).
 */
#ifndef LLM_SERVICE_H
#define LLM_SERVICE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "llm_engine.h"
#include "llm_params.h"
#include "vx_daemon.h"
#include "vx_metrics.h"
#include "vx_pool.h"
#include "vx_server.h"

#define LLM_MAX_MODELS 256          /* /v1/models entries listed */
#define LLM_N_ERROR_KINDS 7

typedef struct llm_service {
	vx_daemon_opts d;
	/* flags */
	const char *engine_name;     /* openai | ollama | gguf; "" = by --model */
	const char *url;             /* remote base URL */
	const char *upstream_key;    /* --api-key-upstream */
	const char *model;           /* default model name / gguf path */
	int connect_timeout_ms;
	int first_token_timeout_ms;
	int threads, ctx, slots;     /* gguf */
	bool no_repack;              /* gguf: keep 4/5-bit weights as stored */
	const char *kv_type;         /* gguf: "f16" or "f32" KV cache */
	int max_concurrent;          /* generations at once (HTTP + WS) */
	int max_tokens;              /* default per request */
	int max_tokens_limit;        /* largest a request may ask for */
	int max_prompt_kb;           /* content of all messages, KiB */
	int timeout_s;               /* whole generation deadline */
	double temperature;          /* default */
	const char *system_prompt;   /* default system message, NULL = none */
	const char *template_kwargs_text; /* --chat-template-kwargs, NULL = none */
	cJSON *template_kwargs;      /* ... parsed (an object), or NULL */
	int probe_interval_ms;       /* upstream readiness probe; 0 = off */

	/* running */
	const llm_engine_ops *engine;
	void *eng;                   /* the engine's state */
	bool local;                  /* engine runs here (gguf): its ready() is cheap */
	char model_id[128];          /* default model's id ("" = upstream's default) */
	llm_params_limits limits;
	vx_pool *pool;               /* max_concurrent workers: generations */
	vx_server *server;
	double started;              /* wall clock, for "created" */
	atomic_int generations;      /* admitted and not yet finished */

	/* upstream readiness, kept fresh by a probe thread (remote engines) */
	pthread_t probe_thread;
	bool probe_started;
	pthread_mutex_t probe_lock;
	pthread_cond_t probe_cond;
	bool probe_stop;             /* under probe_lock */
	atomic_int probe_rc;         /* engine->ready() result */
	char probe_detail[200];      /* under probe_lock */

	/* WebSocket generations running, so shutdown can cancel them */
	pthread_mutex_t ws_lock;
	struct ws_gen *ws_live;      /* list through ws_gen.next_live */
	atomic_bool stopping;        /* shutting down: start nothing new */

	/* metrics */
	vx_histogram *ttft;          /* seconds to the first token */
	vx_histogram *tok_rate;      /* completion tokens per second */
	vx_histogram *gen_seconds;   /* whole generation */
	vx_counter *tokens_in, *tokens_out;
	vx_counter *tokens_cached;   /* prompt tokens taken from a cached prefix */
	vx_counter *rejected;        /* refused past max_concurrent */
	vx_counter *errors[LLM_N_ERROR_KINDS];   /* by llm_gen_error_kinds */
	vx_counter *finished[4];     /* stop, length, cancelled, error */
} llm_service;

extern const vx_route llm_routes[];
extern const size_t llm_n_routes;
extern const vx_ws_route llm_ws_routes[];
extern const size_t llm_n_ws_routes;

/* One HTTP generation (/generate, /v1/chat/completions): made by the
 * handler, owned by the pool job from vx_req_run on. */
typedef struct llm_http_gen {
	llm_service *svc;
	vx_req *req;
	llm_params p;
	bool started;                /* the streamed answer has begun */
	vx_buf content, reasoning;   /* the answer when not streamed */
	vx_buf ev;                   /* scratch: one event being written */
	vx_buf held;                 /* streamed content not sent yet: a tail
					that may open "<tool_call>", or all from
					one on (requests with tools, api_openai.c) */
	bool in_call;                /* held starts with "<tool_call>" */
	char id[64];                 /* "chatcmpl-<request id>" */
	long long created;           /* unix seconds */
} llm_http_gen;

/* api.c */
/* Checks media type and body, parses, admits. 0 and *ret, or a negative
 * errno after answering the request (415, 400, 413, 404, 503). */
int llm_api_http_begin(vx_req *req, llm_service *svc, llm_http_gen **ret);
/* Hands h to job on the pool (the job must call llm_api_http_free).
 * On failure (answered 503) h is freed here. */
void llm_api_http_run(llm_http_gen *h, void (*job)(vx_req *, void *));
/* Releases params and buffers and gives the admission slot back. */
void llm_api_http_free(llm_http_gen *h);
/* Starts a text/event-stream answer once; 0 or -EPIPE. */
int llm_api_stream_start(llm_http_gen *h);
/* Writes h->ev to the stream; non-zero when the client is gone. */
int llm_api_stream_ev(llm_http_gen *h);
void llm_service_probe_start(llm_service *svc);
void llm_service_probe_stop(llm_service *svc);
vx_health llm_service_health(void *user, vx_buf *extra, char *detail,
			     size_t detail_len);
void llm_service_info(void *user, vx_buf *out);
/* Answers the voxline + OpenAI error shape:
 * {"error":{"message","type","code","param"}}; 503 adds Retry-After. */
void llm_api_error(vx_req *req, int status, const char *code,
		   const char *param, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* The same object, appended to out (no newline). */
void llm_api_error_json(vx_buf *out, int status, const char *code,
			const char *param, const char *message);
/* The POST /generate answer (not streamed) to b: message, reasoning when
 * asked, finish_reason, model, usage, timings; a newline. NATS jobs too. */
struct llm_gen_result;
void llm_generate_json(llm_service *svc, const llm_params *p,
		       const vx_buf *content, const vx_buf *reasoning,
		       const struct llm_gen_result *res, vx_buf *b);
/* jobs.c: the NATS job, a POST /generate body in "request". */
struct vx_job;
struct vx_job_result;
void llm_jobs_run(void *user, const struct vx_job *job,
		  struct vx_job_result *res);
/* The model name answers carry: the request's, the upstream's, the default. */
const char *llm_service_model(const llm_service *svc, const char *asked,
			      const char *answered);

/* Shutdown: starts nothing new, cancels the WebSocket generations and
 * waits up to timeout_ms for every generation to end; false if some did
 * not (the caller must then not free what they use). */
bool llm_service_quiesce(llm_service *svc, int timeout_ms);

/* api_ws.c */
void llm_ws_cancel_all(llm_service *svc);

/* api_openai.c */
void llm_api_chat_completions(vx_req *req, void *user);
void llm_api_apply_template(vx_req *req, void *user);
void llm_api_models(vx_req *req, void *user);

#endif
