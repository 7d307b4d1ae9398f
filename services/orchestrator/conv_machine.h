/*
 * conv_machine.h - the turn-taking state machine of one conversation: the
 * only place where its phase changes. Pure: no sockets, no clock (each
 * event brings the time), no locks, no logging. The caller (conversation.c)
 * turns client messages and upstream socket messages into events, feeds
 * them in, and executes the actions that come out, in order: send this to
 * a stage, cancel the reply work, emit this client event, finish the turn.
 *
 * Phases of a turn:
 *   IDLE          waiting for speech (client audio goes to VAD only)
 *   LISTENING     speech: audio streams to STT (partials to the client)
 *   PAUSED        VAD saw the speech end; the end-of-turn policy wants
 *                 more silence (audio still streams to STT); speech that
 *                 resumes continues the same turn and the same STT stream
 *   TRANSCRIBING  the turn ended: STT was told "end", its final is awaited
 *   RESPONDING    LLM writing and/or TTS speaking, audio forwarded
 *   PLAYING       all work done, a real-time client still plays the audio
 *
 * Barge-in (cfg.barge_in): speech during RESPONDING or PLAYING makes a
 * candidate; its audio streams to STT. On every change (a tick, a partial,
 * its end, its final) conv_policy_barge(), given the speech's length from
 * its detection (speech_start) on, says WAIT, INTERRUPT (the reply
 * work is cancelled once, `interrupted` with what was heard, the turn ends,
 * the candidate's speech is the next turn) or IGNORE (the reply goes on,
 * the candidate's STT stream is dropped). A reply that ends on its own
 * while a candidate waits leaves the candidate as the next turn.
 *
 * Heard: a turn cut short keeps the part of the reply the client heard.
 * By default that is what real-time playback from the first audio byte
 * has played by then (turn.h); with cfg.marks the client says it itself
 * (CONV_EV_PLAYED: bytes of this reply played, e.g. from the telephony
 * marks the caller's side echoed) and nothing unconfirmed counts.
 *
 * A turn may also start with the assistant (CONV_EV_SAY: a greeting): its
 * text is spoken as the reply, with no user message and no LLM request.
 *
 * End of turn: after VAD's speech_end (VAD waits cfg.policy.eot_min_ms of
 * silence itself) the turn ends when conv_policy_eot_silence_ms() of the
 * partial transcript has passed since the speech ended.
 *
 * Late events: LLM events carry the request id "t<seq>", TTS events the
 * sentence id "t<seq>.<i>"; after a cancel, TTS audio is dropped until TTS
 * says "cancelled" or starts a sentence of this turn. The caller drops
 * everything a replaced socket says (generation numbers, conv_link.c).
 *
 * Actions point into the machine or into the event (text, the finished
 * turn); they are valid until the next conv_machine_event call. Audio
 * actions mean "the audio of this event" (the caller holds it).
 *
 * Not thread-safe: the conversation's lock guards it.
 * Ownership: conv_machine_init / conv_machine_release pair up.
 *
 *     conv_machine m; conv_machine_init(&m, &cfg);
 *     conv_event e = { .kind = CONV_EV_TEXT, .now = now_us, .text = "hi", .len = 2 };
 *     conv_machine_event(&m, &e);  for (i < m.n_acts) run(&m.acts[i]);
 */
#ifndef CONV_MACHINE_H
#define CONV_MACHINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conv_policy.h"
#include "sentences.h"
#include "turn.h"
#include "vx_buf.h"

#define CONV_MACHINE_MAX_RETRIES 50   /* STT "overloaded" answers per utterance */
#define CONV_MACHINE_RETRY_US 100000  /* "overloaded" stage: ask again after */
#define CONV_MACHINE_MAX_DONE 2   /* turns one event can finish (a reply, its successor) */
#define CONV_MACHINE_FIRST_SOFT_MAX 80 /* bytes; long-run cut of a reply's first sentence */

enum conv_phase { PH_IDLE, PH_LISTENING, PH_PAUSED, PH_TRANSCRIBING, PH_RESPONDING,
		  PH_PLAYING };

/* Stages, numbered as orch_stage. */
enum conv_stage { CONV_VAD = 0, CONV_STT, CONV_LLM, CONV_TTS, CONV_N_STAGES };

enum conv_ev_kind {
	/* client */
	CONV_EV_AUDIO,       /* bytes of audio; utter_len: the utterance buffer now */
	CONV_EV_TEXT,        /* a typed turn: text */
	CONV_EV_UTTERANCE,   /* a whole utterance (POST /chat): bytes */
	CONV_EV_STOP,        /* {"type":"stop"} */
	CONV_EV_PLAYED,      /* bytes: reply audio the client has played (cfg.marks) */
	CONV_EV_SAY,         /* text: the assistant speaks it (a greeting); -EBUSY
			      * unless idle */
	CONV_EV_CLOSE,       /* the client left */
	/* VAD */
	CONV_EV_SPEECH_START, /* start_ms: its onset, VAD stream time */
	CONV_EV_SPEECH_END,
	CONV_EV_VAD_ERROR,   /* text: message */
	/* STT */
	CONV_EV_STT_PARTIAL, /* text */
	CONV_EV_STT_FINAL,   /* text */
	CONV_EV_STT_ERROR,   /* code, text */
	/* LLM: id */
	CONV_EV_LLM_TOKEN,   /* text */
	CONV_EV_LLM_REASONING,
	CONV_EV_LLM_DONE,
	CONV_EV_LLM_ERROR,   /* code, text */
	/* TTS: id */
	CONV_EV_TTS_START,
	CONV_EV_TTS_AUDIO,   /* bytes */
	CONV_EV_TTS_DONE,
	CONV_EV_TTS_ERROR,   /* code, text */
	CONV_EV_TTS_CANCELLED,
	/* links */
	CONV_EV_LINK_UP,     /* stage: a new socket replaced one that failed to
			      * connect; the work in flight is sent again */
	CONV_EV_LINK_DOWN,   /* stage, text: why (it closed, or is unreachable) */
	CONV_EV_TICK,        /* every ORCH_TICK_MS */
};

typedef struct conv_event {
	enum conv_ev_kind kind;
	int64_t now;           /* monotonic us */
	int stage;             /* link events */
	const char *id;        /* LLM/TTS request id, may be NULL */
	const char *code;      /* error code, may be NULL */
	const char *text;      /* NUL-terminated, may be NULL */
	size_t len;            /* of text */
	size_t bytes;          /* of audio */
	size_t utter_len;      /* CONV_EV_AUDIO: bytes in the utterance buffer */
	int64_t start_ms;      /* CONV_EV_SPEECH_START: VAD stream time */
} conv_event;

enum conv_act_kind {
	CONV_ACT_AUDIO_TO_VAD,   /* this event's audio to VAD */
	CONV_ACT_AUDIO_TO_UTTER, /* ... appended to the utterance buffer */
	CONV_ACT_AUDIO_TO_STT,   /* ... to STT */
	CONV_ACT_UTTER_RESET,    /* empty the utterance buffer */
	CONV_ACT_STT_BEGIN,      /* utterance = ring from at_ms - pre-roll; to STT */
	CONV_ACT_STT_UTTER,      /* the whole utterance buffer to STT again */
	CONV_ACT_STT_END,        /* {"event":"end"} to STT (failure: LINK_DOWN) */
	CONV_ACT_STT_CANCEL,     /* {"event":"cancel"} to STT */
	CONV_ACT_LLM_REQUEST,    /* build and send the request: id, text = user
				  * (failure: LINK_DOWN) */
	CONV_ACT_LLM_RESEND,     /* the request again */
	CONV_ACT_TTS_SEND,       /* sentence "t<seq>.<index>": text (failure: LINK_DOWN) */
	CONV_ACT_CANCEL_REPLY,   /* {"event":"cancel"} to LLM if llm, TTS if tts */
	CONV_ACT_AUDIO_TO_CLIENT, /* this event's audio to the client */
	CONV_ACT_EMIT,           /* {"type":type} or, with_text, {"type":..,"text":..} */
	CONV_ACT_EMIT_AUDIO_START,
	CONV_ACT_EMIT_INTERRUPTED, /* text: what the user heard */
	CONV_ACT_ERROR,          /* stage, code, text: error event, counted */
	CONV_ACT_LINK_RESET,     /* close the stage's socket (next send opens one) */
	CONV_ACT_FINISH,         /* turn: metrics, history (text = reply kept) */
};

typedef struct conv_action {
	enum conv_act_kind kind;
	int stage;
	int seq, index;        /* TTS_SEND: turn and sentence */
	int64_t at_ms;         /* STT_BEGIN */
	const char *type;      /* EMIT */
	bool with_text;        /* EMIT */
	const char *id;        /* LLM_REQUEST */
	const char *code;      /* ERROR */
	const char *text;      /* NUL-terminated where not NULL */
	size_t len;
	bool llm, tts;         /* CANCEL_REPLY */
	bool interrupted;      /* FINISH */
	const char *error;     /* FINISH: the failed stage's name, or NULL */
	const turn *turn;      /* FINISH: the finished turn */
} conv_action;

typedef struct conv_machine_cfg {
	bool realtime;         /* the client plays the reply as it comes */
	bool barge_in;         /* speech over the reply may interrupt it */
	bool marks;            /* heard = CONV_EV_PLAYED's bytes, not the clock */
	conv_policy_cfg policy;
	int64_t stage_timeout_us; /* a silent stage fails the turn */
	double bytes_per_ms;   /* client audio */
	size_t utter_max;      /* bytes of one utterance; longer is cut */
} conv_machine_cfg;

/* Speech over the reply, not (yet) an interruption. */
typedef struct conv_candidate {
	bool on;
	bool ended;            /* VAD saw its end */
	bool end_sent;         /* STT was told "end" for it */
	bool final;            /* its final transcript came */
	int64_t t_start, t_end; /* us: VAD's speech_start and speech_end came */
	int64_t start_ms;      /* VAD stream time */
	vx_buf text;           /* its transcript so far */
} conv_candidate;

typedef struct conv_machine {
	conv_machine_cfg cfg;
	enum conv_phase phase;
	int turn_seq;
	turn t;                /* valid while phase != IDLE */
	turn done[CONV_MACHINE_MAX_DONE]; /* of FINISH actions, until the next event */
	vx_buf kept[CONV_MACHINE_MAX_DONE]; /* their replies as stored (FINISH text) */
	int n_done;
	sentences split;
	char llm_id[32];
	bool audio_seen;       /* VAD in use */
	bool llm_busy;         /* a request runs: no done/error yet */
	int tts_pending;       /* sentences sent, not done */
	int tts_cur;           /* sentence whose audio is coming, -1 */
	bool tts_draining;     /* cancelled: drop audio until "cancelled" */
	bool audio_open;       /* audio_start emitted, audio_end not yet */
	int64_t speech_end_at; /* PAUSED: us VAD reported the end */
	uint64_t played;       /* cfg.marks: reply audio bytes the client played */
	vx_buf partial;        /* the latest partial transcript of this round */
	vx_buf shown;          /* transcript_partial text of the last event */
	int64_t now;           /* of the event being run */
	bool again, again_ended; /* speech resumed while TRANSCRIBING */
	int64_t again_start_ms;
	conv_candidate cand;
	int64_t deadline[CONV_N_STAGES]; /* us; 0 = not waiting */
	int64_t llm_retry_at, tts_retry_at, stt_retry_at; /* us */
	int stt_retries;
	conv_action *acts;     /* of the last event */
	size_t n_acts, cap_acts;
	bool oom;              /* an action was lost (out of memory) */
} conv_machine;

void conv_machine_init(conv_machine *m, const conv_machine_cfg *cfg);
void conv_machine_release(conv_machine *m);

/* Runs one event: m->acts[0..n_acts) are what the caller must do, in
 * order. 0, or for TEXT, UTTERANCE and SAY -EBUSY (a turn is in progress),
 * -ENOMEM (nothing happened). */
int conv_machine_event(conv_machine *m, const conv_event *e);

/* The phase's name ("idle", "listening", ...). */
const char *conv_phase_name(enum conv_phase p);

#endif
