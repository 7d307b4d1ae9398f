/*
 * conv_int.h - the inside of a conversation (conversation.h), shared by the
 * files that make up its state machine; nothing outside them includes it.
 *
 *   conversation.c  public API: life cycle, start (history load), client
 *                   audio/text, close, events to the client, the ticker
 *   conv_link.c     upstream sockets ("links"): connect, retry elsewhere,
 *                   replay work in flight, reconnect; their callbacks
 *                   dispatch to the stage handlers below
 *   conv_listen.c   VAD events, STT rounds, the ring of recent client audio
 *   conv_reply.c    LLM request and tokens -> sentences -> TTS -> client
 *                   audio; cancelling that work
 *   conv_turn.c     a turn's begin, end (metrics, history), failure, barge-in
 *
 * Phases of a turn:
 *   IDLE          waiting for speech (audio goes to VAD only)
 *   LISTENING     speech: audio streams to STT (partials to the client)
 *   TRANSCRIBING  speech ended: STT was told "end", its final is awaited
 *   RESPONDING    LLM writing and/or TTS speaking, audio forwarded
 *   PLAYING       all work done, the client is still playing the audio
 * Upstream sockets carry a generation number: closing one bumps it, so late
 * callbacks of an old socket are recognised and ignored. LLM requests and
 * TTS sentences carry ids ("t3", "t3.0") for the same reason.
 *
 * Threads: every function here is called with cv->lock held and does not
 * block (sends queue; history writes go to the DB pool).
 * Ownership: each upstream socket holds a reference to the conversation
 * (taken in conv_link_connect, dropped by its on_close), as does each
 * queued job (start, history write).
 *
 *     pthread_mutex_lock(&cv->lock);
 *     conv_turn_begin(cv, true); ... conv_turn_user_done(cv);   // LLM request
 *     pthread_mutex_unlock(&cv->lock);
 */
#ifndef CONV_INT_H
#define CONV_INT_H

#include <cjson/cJSON.h>
#include <stdint.h>
#include <time.h>

#include "conversation.h"
#include "vx_time.h"
#include "sentences.h"
#include "turn.h"
#include "vx_buf.h"

enum conv_phase { PH_IDLE, PH_LISTENING, PH_TRANSCRIBING, PH_RESPONDING, PH_PLAYING };

/* One upstream socket of a conversation. */
typedef struct conv_link {
	vx_wsclient_conn *c;      /* our reference; NULL when none */
	unsigned gen;             /* of the current socket */
	int inst;                 /* upstream instance index */
	bool open;                /* handshake done */
	bool retried;             /* this socket is the retry elsewhere */
	int64_t retry_after;      /* us; no new socket before this after a failure */
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
	char *cfg_msg[ORCH_N_STAGES]; /* first message on each new socket */
	conv_link link[ORCH_N_STAGES];

	uint8_t *ring;                /* recent client audio */
	size_t ring_cap;
	uint64_t bytes_in;            /* client audio bytes received in all */
	uint64_t vad_base;            /* bytes_in when the VAD stream began */
	vx_buf utter;                 /* this utterance's audio (STT retry) */
	size_t utter_max;

	ctx_msg *msgs;                /* history for the LLM, oldest first */
	size_t n_msgs, cap_msgs;

	enum conv_phase phase;
	int turn_seq;
	turn t;                       /* valid while phase != IDLE */
	sentences split;
	vx_buf llm_req;               /* the request in flight (LLM retry) */
	char llm_id[CONV_MAX_ID];
	bool llm_busy;                /* a request runs: no done/error yet */
	int tts_pending;              /* sentences sent, not done */
	int tts_cur;                  /* sentence whose audio is coming, -1 */
	bool tts_draining;            /* cancelled: drop audio until "cancelled" */
	bool audio_open;              /* audio_start sent, audio_end not yet */
	bool again;                   /* speech resumed while transcribing */
	bool again_ended;
	int64_t again_start_ms;
	int64_t deadline[ORCH_N_STAGES]; /* us; 0 = not waiting */
	int64_t llm_retry_at;         /* us; resend the request ("overloaded") */
	int64_t tts_retry_at;         /* us; resend unfinished sentences */
	int64_t stt_retry_at;         /* us; a new STT socket, utterance again */
	int stt_retries;              /* of this utterance */
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
/* {"type":type} */
void conversation_emit_type(conversation *cv, const char *type);
/* {"type":type,"text":text} */
void conversation_emit_text(conversation *cv, const char *type, const char *text,
			    size_t len);
/* {"type":"error","stage":..,"code":..,"message":..}, logged once. */
void conversation_emit_error(conversation *cv, const char *stage, const char *code,
			     const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Appends a message to the LLM context (dropped when out of memory). */
void conversation_ctx_push(conversation *cv, const char *role, const char *content);

/* ---- conv_link.c: upstream sockets ---- */

/* Opens the stage's socket (on another instance than avoid, -1 for any)
 * and sends its config message; retried: this is the retry after a failed
 * connect, so the work in flight is sent again. */
void conv_link_connect(conversation *cv, int st, int avoid, bool retried);
/* Sends one message on the stage's socket, opening one when there is none
 * (not sooner than retry_after). -ENOTCONN when there is none to use. */
int conv_link_send(conversation *cv, int st, const void *data, size_t len, bool binary);
int conv_link_send_str(conversation *cv, int st, const char *s);
/* Closes the stage's socket; its late callbacks are ignored. */
void conv_link_close(conversation *cv, int st);
/* Sends every unfinished sentence of the turn to TTS again, in order. */
void conv_link_replay_tts(conversation *cv, vx_wsclient_conn *c);

/* ---- conv_listen.c: VAD and STT ---- */

/* Keeps the last ring_cap bytes of client audio. */
void conv_listen_ring_put(conversation *cv, const uint8_t *p, size_t len);
/* The utterance ended: STT is told "end" (PH_TRANSCRIBING). */
void conv_listen_end(conversation *cv);
void conv_listen_on_vad(conversation *cv, const char *ev, const cJSON *j);
void conv_listen_on_stt(conversation *cv, const char *ev, const cJSON *j);

/* ---- conv_reply.c: LLM -> sentences -> TTS -> client ---- */

/* Builds and sends the LLM request for the user's message (PH_RESPONDING). */
void conv_reply_start(conversation *cv);
/* Cancels the turn's LLM and TTS work in flight. */
void conv_reply_cancel(conversation *cv);
void conv_reply_on_llm(conversation *cv, const char *ev, const cJSON *j);
void conv_reply_on_tts(conversation *cv, const char *ev, const cJSON *j);
void conv_reply_on_audio(conversation *cv, const void *data, size_t len);

/* ---- conv_turn.c: a turn's life ---- */

void conv_turn_begin(conversation *cv, bool from_text);
/* A user message is complete: reply, or end quietly if it is empty. */
void conv_turn_user_done(conversation *cv);
/* Ends the turn: metrics event and histograms, history, back to IDLE. */
void conv_turn_finish(conversation *cv, bool interrupted, const char *error);
/* Fails the turn on a stage's account (error event, then finish). */
void conv_turn_fail(conversation *cv, int st, const char *code, const char *msg);
/* Barge-in: the user speaks (or types) over the reply. */
void conv_turn_interrupt(conversation *cv);
bool conv_turn_can_barge_in(conversation *cv);

#endif
