/*
 * conversation.h - one voice conversation (a /ws/chat socket or one POST
 * /chat turn): drives voxline-vad, -stt, -llm and -tts over their
 * WebSockets and sends the client its events and audio. Its decisions are
 * one state machine (conv_machine.h); conv_int.h says how the parts fit.
 *
 * A turn: client audio goes to /ws/detect all the time and is kept in a
 * ring (CONV_RING_MS). On speech_start the STT round begins with the audio
 * from CONV_PREROLL_MS before the speech, then live audio (partials go to
 * the client). After speech_end the end-of-turn policy (conv_policy.h,
 * --eot-policy) may want more silence; speech before then continues the
 * turn. STT's final transcript becomes the user's message; /ws/generate
 * streams the reply (system prompt + history + user message); each
 * complete sentence goes to /ws/synthesize at once, asking for the
 * client's rate and encoding, and its audio is forwarded as it comes. When
 * the reply is generated, spoken and (for a real-time client) played, the
 * turn ends: a `metrics` event, then both messages are stored.
 *
 * Barge-in (with --barge-in): speech while a reply is being made or played
 * is judged by the barge-in policy (--barge-in-policy); a typed turn or a
 * stop message interrupts at once. An interruption cancels the reply's LLM
 * and TTS work ({"event":"cancel"}), sends `interrupted` (with what was
 * heard) and `metrics`, and stores only the part of the reply that was
 * played (turn.h), marked interrupted. Speech that resumes while the last
 * words are being transcribed joins the same user message.
 *
 * Failures: an upstream that cannot be reached is retried once on another
 * instance (upstream.h); one that fails, closes or stays silent past
 * --stage-timeout-s ends the turn with {"type":"error","stage":...} and a
 * `metrics` event; its socket is reconnected when next needed, so the
 * conversation stays usable.
 *
 * Threads: the client side (conversation_audio/_text/_stop/_close) is
 * called on a serving loop or a POST /chat job, upstream callbacks come on
 * the vx_wsclient thread, the ticker sends the time; one mutex per
 * conversation guards everything and nothing under it blocks (sends queue).
 * The sink is called with the lock held: it must only queue.
 * Ownership: conversation_new gives the caller one reference; upstream
 * sockets and jobs hold their own, so the memory goes after the caller's
 * conversation_unref and the last upstream on_close.
 *
 *     conversation *cv; conversation_new(svc, &sink, ws, req_id, true, &cv);
 *     conversation_start(cv, &cfg, false);   // "ready" event follows
 *     conversation_audio(cv, frame, n); ...  conversation_close(cv); conversation_unref(cv);
 */
#ifndef CONVERSATION_H
#define CONVERSATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "orch_service.h"
#include "vx_audio.h"

#define CONV_RING_MS 3000          /* recent client audio kept for pre-roll */
#define CONV_PREROLL_MS 300        /* audio before speech_start sent to STT */
#define CONV_RECONNECT_MS 1000     /* a failed upstream is not retried sooner */

/* Where the client's events and audio go. Both are called with the
 * conversation's lock held and must not block. */
typedef struct conv_sink {
	/* One JSON event ({"type":...}); type is its "type" value. */
	void (*event)(void *user, const char *type, const char *json, size_t len);
	/* Reply audio in the client's rate and encoding. */
	void (*audio)(void *user, const void *data, size_t len);
} conv_sink;

typedef struct conv_config {
	int sample_rate;                /* client audio, both ways */
	vx_encoding encoding;           /* PCM16, MULAW or ALAW */
	const char *conversation_id;    /* NULL or "": a new conversation */
	const char *voice;              /* NULL: the stored one, else --voice */
	const char *system_prompt;      /* NULL: the stored one, else --system-prompt */
	const char *model;              /* NULL or "": --llm-model */
	const char *language;           /* NULL or "": "en"; passed to STT */
	/* Telephony (tel.h); zero for /ws/chat: */
	bool marks;                     /* what was heard comes from conversation_played */
	const char *meta_json;          /* NULL, or a JSON object stored as the meta */
	const char *greeting;           /* NULL, or said (conversation_say) once ready */
} conv_config;

/* realtime: the client plays the reply as it comes, so a turn lasts until
 * its audio has played (barge-in is possible until then); false for POST
 * /chat. Caller owns one reference. */
int conversation_new(orch_service *svc, const conv_sink *sink, void *sink_user,
		     const char *req_id, bool realtime, conversation **ret);
void conversation_ref(conversation *cv);
void conversation_unref(conversation *cv);

/* Loads or creates the conversation's history and connects the LLM and
 * TTS; then the sink gets "ready" (or an error event). sync does the
 * database work on this thread (a POST /chat job), else on the DB pool.
 * -EALREADY when started before, -ENOMEM. */
int conversation_start(conversation *cv, const conv_config *cfg, bool sync);
bool conversation_ready(conversation *cv);
/* The id, once ready ("" before). */
void conversation_id(conversation *cv, char ret[HISTORY_ID_MAX + 1]);

/* One frame of client audio (any length; pcm16 frames should be whole
 * samples). -ENOTCONN before start. */
int conversation_audio(conversation *cv, const void *data, size_t len);
/* A typed user turn (skips VAD and STT). -ENOTCONN before ready, -EBUSY
 * while the user is speaking (or a reply runs and barge-in is off). */
int conversation_text(conversation *cv, const char *text, size_t len);
/* A whole utterance at once (POST /chat): one STT round, no VAD. */
int conversation_utterance(conversation *cv, const void *data, size_t len);
/* {"type":"stop"}: the reply being made or played is interrupted as by a
 * barge-in (no new speech); nothing happens when none runs. -ENOTCONN
 * before ready. */
int conversation_stop(conversation *cv);

/* The assistant says text as a turn of its own (no user message, no
 * LLM; a greeting). -ENOTCONN before ready, -EBUSY unless idle. */
int conversation_say(conversation *cv, const char *text, size_t len);
/* With conv_config.marks: the client has played `bytes` of the current
 * reply's audio (a telephony mark came back); barge-in keeps that much. */
void conversation_played(conversation *cv, uint64_t bytes);

/* The client left: no more sink calls; upstream sockets close; a reply
 * in progress is stored as far as it was played. Idempotent. */
void conversation_close(conversation *cv);

/* The ticker: one thread giving every open conversation the time every
 * ORCH_TICK_MS (stage timeouts, retries, end of playback, end of turn,
 * barge-in decisions). */
int conversation_ticker_start(orch_service *svc);
void conversation_ticker_stop(orch_service *svc);

#endif
