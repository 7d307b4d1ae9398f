/*
 * conv_int.h - the inside of a conversation (conversation.h), shared by its
 * three files; nothing outside them includes it. Events go up, actions go
 * down, nothing calls back:
 *
 *   conversation.c  public API: life cycle, start (history load, configs),
 *                   client audio/text/stop/close, the ticker; each turns
 *                   its input into a conv_event for conv_run
 *   conv_link.c     upstream sockets ("links") to VAD, STT, LLM and TTS:
 *                   connect, retry elsewhere, reconnect; their callbacks
 *                   turn what a stage says into a conv_event for conv_run
 *   conv_act.c      conv_run: one event through the state machine
 *                   (conv_machine.h, where every decision is), then its
 *                   actions executed: sends on the links, client events
 *                   and audio, the end of a turn (metrics, history)
 *
 * Upstream sockets carry a generation number: closing one bumps it, so late
 * callbacks of an old socket are recognised and dropped before they become
 * events. A send that finds no socket marks the stage in `down`; conv_run
 * delivers that as CONV_EV_LINK_DOWN after the actions, never inside them.
 *
 * Threads: every function here is called with cv->lock held and does not
 * block (sends queue; history writes go to the DB pool).
 * Ownership: each upstream socket holds a reference to the conversation
 * (taken in conv_link_connect, dropped by its on_close), as does each
 * queued job (start, history write).
 *
 *     pthread_mutex_lock(&cv->lock);
 *     conv_event e = { .kind = CONV_EV_TEXT, .now = conv_now_us(), .text = s, .len = n };
 *     conv_run(cv, &e, NULL, 0);   // LLM request sent, events emitted
 *     pthread_mutex_unlock(&cv->lock);
 */
#ifndef CONV_INT_H
#define CONV_INT_H

#include <stdint.h>

#include "conv_machine.h"
#include "conversation.h"
#include "upstream.h"
#include "vx_buf.h"
#include "vx_time.h"

/* One upstream socket of a conversation. */
typedef struct conv_link {
	vx_wsclient_conn *c;      /* our reference; NULL when none */
	unsigned gen;             /* of the current socket */
	int inst;                 /* upstream instance index */
	bool open;                /* handshake done */
	bool retried;             /* this socket is the retry elsewhere */
	int64_t retry_after;      /* us; no new socket before this after a failure */
	char url[UPSTREAM_MAX_URL]; /* the last one tried */
} conv_link;

/* One message of the history sent to the LLM. */
typedef struct ctx_msg {
	char *role, *content;
} ctx_msg;

struct conversation {
	orch_service *svc;
	conversation *next, *prev;    /* svc->convs */
	atomic_int refs;
	pthread_mutex_t lock;         /* guards everything below */
	conv_sink sink;
	void *sink_user;
	bool realtime;
	bool closed, started, ready;
	char req_id[48];
	char id[HISTORY_ID_MAX + 1];
	int rate;
	vx_encoding enc;
	double bpm;                   /* client audio bytes per ms */
	size_t sample_bytes;          /* 2 for pcm16, 1 for G.711 */
	char *voice, *system_prompt;
	char *model;                  /* the start's "model"; NULL: --llm-model */
	char *language;               /* the start's "language"; NULL: "en" */
	char *cfg_msg[ORCH_N_STAGES]; /* first message on each new socket */
	conv_link link[ORCH_N_STAGES];
	unsigned down;                /* stages a send found no socket for */

	uint8_t *ring;                /* recent client audio */
	size_t ring_cap;
	uint64_t bytes_in;            /* client audio bytes received in all */
	uint64_t vad_base;            /* bytes_in when the VAD stream began */
	vx_buf utter;                 /* this utterance's audio (STT retry) */

	ctx_msg *msgs;                /* history for the LLM, oldest first */
	size_t n_msgs, cap_msgs;
	vx_buf llm_req;               /* the request in flight (LLM retry) */

	conv_machine m;               /* the turn-taking state */
};

/* Monotonic clock, microseconds. */
static inline int64_t conv_now_us(void)
{
	return (int64_t)(vx_now() * 1e6);
}

/* The wire name of a client encoding. */
static inline const char *conv_enc_name(vx_encoding e)
{
	return e == VX_ENC_MULAW ? "mulaw" : e == VX_ENC_ALAW ? "alaw" : "pcm16";
}

/* ---- conversation.c: events to the client (none once closed) ---- */

void conversation_emit(conversation *cv, const char *type, const char *json, size_t len);
/* {"type":"error","stage":..,"code":..,"message":..}, logged once. */
void conversation_emit_error(conversation *cv, const char *stage, const char *code,
			     const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Appends a message to the LLM context (dropped when out of memory). */
void conversation_ctx_push(conversation *cv, const char *role, const char *content);

/* ---- conv_link.c: upstream sockets ---- */

/* Opens the stage's socket (on another instance than avoid, -1 for any)
 * and sends its config message; retried: this is the retry after a failed
 * connect, so the work in flight is sent again (CONV_EV_LINK_UP). */
void conv_link_connect(conversation *cv, int st, int avoid, bool retried);
/* Sends one message on the stage's socket, opening one when there is none
 * (not sooner than retry_after). -ENOTCONN when there is none to use. */
int conv_link_send(conversation *cv, int st, const void *data, size_t len, bool binary);
/* Sends on the stage's socket only if there is one. */
void conv_link_send_if_open(conversation *cv, int st, const char *s);
/* Closes the stage's socket; its late callbacks are ignored. */
void conv_link_close(conversation *cv, int st);
/* "cannot reach voxline-llm at http://...: start it ..." for the stage. */
void conv_link_unreachable(conversation *cv, int st, char *buf, size_t len);

/* ---- conv_act.c: the machine and its actions ---- */

/* Runs the event through cv->m and executes the actions; data[0..len) is
 * the event's audio (client or TTS). Returns conv_machine_event's answer. */
int conv_run(conversation *cv, const conv_event *e, const void *data, size_t len);
/* Runs a CONV_EV_* that carries nothing but the time and a stage. */
void conv_run_simple(conversation *cv, enum conv_ev_kind kind, int st);

#endif
