/*
 * orch_service.h - voxline-orchestrator's state, shared by main.c (flags,
 * start/stop), api.c (REST routes, /ws/chat glue, POST /chat) and the
 * conversation (conversation.h; its state machine is conv_machine.h). One
 * instance per process, passed explicitly; everything in it is set up
 * before the server starts and read-only afterwards, except the atomics and
 * what `lock` guards.
 *
 * Threads: /ws/chat callbacks run on the server's serving loops (vx_loop),
 * upstream callbacks on the vx_wsclient service thread, history writes on
 * db_pool (one worker, so a conversation's turns are written in order),
 * POST /chat on chat_pool, the conversations' clock on the ticker thread.
 */
#ifndef ORCH_SERVICE_H
#define ORCH_SERVICE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "conv_policy.h"
#include "history.h"
#include "upstream.h"
#include "vx_daemon.h"
#include "vx_metrics.h"
#include "vx_pool.h"
#include "vx_server.h"
#include "vx_wsclient.h"

#define ORCH_TICK_MS 50             /* the conversations' clock tick */
#define ORCH_DB_QUEUE 4096          /* history writes waiting for the DB worker */
#define ORCH_MAX_TEXT_BYTES 16384   /* a {"type":"text"} turn or a POST /chat text */
#define ORCH_MAX_CHAT_AUDIO_S 120   /* POST /chat audio */
#define ORCH_MAX_UPSTREAM_KEY 256   /* bytes of --upstream-api-key */

enum orch_stage { ORCH_VAD = 0, ORCH_STT, ORCH_LLM, ORCH_TTS, ORCH_N_STAGES };

/* Per-turn timings observed as Prometheus histograms (seconds). */
enum orch_timing {
	ORCH_T_STT = 0,          /* VAD speech end -> final transcript */
	ORCH_T_LLM_FIRST_TOKEN,  /* LLM request -> first token */
	ORCH_T_LLM_FIRST_SENTENCE, /* LLM request -> first complete sentence */
	ORCH_T_TTS_FIRST_AUDIO,  /* first sentence to TTS -> its first audio */
	ORCH_T_VOICE_TO_VOICE,   /* end of speech (or text) -> first audio byte sent */
	ORCH_T_OVERHEAD,         /* voice-to-voice minus the stages above */
	ORCH_T_TOTAL,            /* end of speech (or text) -> turn end */
	ORCH_N_TIMINGS,
};

typedef struct conversation conversation;

typedef struct orch_service {
	vx_daemon_opts d;
	const char *urls[ORCH_N_STAGES];  /* --vad-url ... comma-separated lists */
	const char *db_path;
	const char *voice;                /* default TTS voice; NULL = the service's */
	const char *system_prompt;        /* default; NULL = none */
	const char *llm_model;            /* sent as "model"; NULL = the service's */
	const char *web_root;             /* folder holding index.html */
	int max_calls;                    /* concurrent conversations (ws + POST /chat) */
	int max_tokens;                   /* per reply */
	bool barge_in;
	conv_policy_cfg policy;           /* --eot-* and --barge-in-* */
	int health_interval_s;
	int stage_timeout_s;
	int max_context_messages;         /* history sent to the LLM, newest kept */
	int max_utterance_s;              /* one user utterance; longer is cut */
	/* Telephony (tel.h) */
	const char *public_url;           /* https base the phone provider reaches; "" = Host */
	const char *twilio_auth_token;    /* "": Twilio webhooks are not checked */
	const char *telnyx_public_key;    /* base64; "": Telnyx webhooks are not checked */
	unsigned char telnyx_key[32];     /* its raw Ed25519 key (tel_telnyx_key_parse) */
	const char *tel_greeting;         /* "": the caller speaks first */
	struct tel_pacer *tel;            /* the media pacer (tel.c) */
	/* --upstream-api-key as a header line for every call to a stage
	 * ("Authorization: Bearer KEY\r\n"), "" when unset */
	const char *upstream_key;
	char upstream_auth[ORCH_MAX_UPSTREAM_KEY + 32];

	upstream *up[ORCH_N_STAGES];
	upstream_checker *checker;
	vx_wsclient *wsc;                 /* every upstream socket */
	history *hist;
	vx_pool *db_pool;                 /* history writes, in order */
	vx_pool *chat_pool;               /* POST /chat turns */
	atomic_int calls;                 /* conversations now open */

	/* Open conversations, for the ticker (stage timeouts). */
	pthread_mutex_t lock;
	conversation *convs;              /* list through conversation.next */
	pthread_t ticker;
	atomic_bool stopping;

	vx_histogram *timing[ORCH_N_TIMINGS];
	vx_counter *turns;                /* turns finished */
	vx_counter *barge_ins;
	vx_counter *refused;              /* conversations refused at --max-calls */
	vx_counter *stage_errors[ORCH_N_STAGES];
} orch_service;

extern const char *const orch_stage_names[ORCH_N_STAGES];

extern const vx_route orch_routes[];
extern const size_t orch_n_routes;
extern const vx_ws_route orch_ws_routes[];
extern const size_t orch_n_ws_routes;

vx_health orch_service_health(void *user, vx_buf *extra, char *detail,
			      size_t detail_len);
void orch_service_info(void *user, vx_buf *out);

/* Upgrade admission (vx_server_config.ws_admit): false answers 503. */
bool orch_ws_admit(void *user, const char *path);
/* Admission: takes one of --max-calls; false when all are taken. */
bool orch_call_enter(orch_service *svc);
void orch_call_leave(orch_service *svc);

#endif
