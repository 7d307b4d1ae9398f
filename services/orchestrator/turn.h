/*
 * turn.h - one conversation turn's record: the reply as it was generated,
 * cut into sentences with the reply audio sent for each, and the stage
 * timestamps from which the per-turn metrics are computed.
 *
 * The conversation machine (conv_machine.c) fills it as events come: the user's
 * text, reply tokens and reasoning, each sentence as it goes to TTS, audio
 * bytes sent per sentence, and a timestamp per milestone. At the end it
 * asks for the metrics JSON and, after a barge-in, for the part of the
 * reply that was actually played.
 *
 * What was played: playback started at t_audio_start and runs in real time,
 * so at time `now` the client has played min(now - t_audio_start, audio
 * sent) ms. Whole sentences whose audio fits in that are kept; of the
 * sentence being played, the words in proportion to how much of its audio
 * was played (its length is known once TTS finished it, else estimated from
 * its text at TURN_MS_PER_CHAR and never less than what was sent).
 *
 * Times are monotonic microseconds (0 = did not happen). Not thread-safe:
 * the owner's lock guards it. turn_init / turn_release pair up.
 *
 *     turn t; turn_init(&t, 1, 32.0);   // 16 kHz pcm16: 32 bytes a ms
 *     int i = turn_add_sentence(&t, "Hello there.", 12); turn_audio(&t, i, 640);
 *     turn_played_text(&t, now_us, &out); turn_metrics_json(&t, &json); turn_release(&t);
 */
#ifndef TURN_H
#define TURN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vx_buf.h"

#define TURN_MAX_SENTENCES 1024   /* per reply; later text is not spoken */
#define TURN_MS_PER_CHAR 65       /* speech length estimate for unfinished sentences */

typedef struct turn_sentence {
	char *text;          /* owned, NUL-terminated */
	size_t len;
	uint64_t audio_bytes; /* reply audio sent to the client */
	bool done;           /* TTS finished it */
} turn_sentence;

typedef struct turn {
	int seq;                  /* 1, 2, ... within the conversation */
	double bytes_per_ms;      /* client audio format: bytes per ms of audio */
	bool from_text;           /* a typed turn (no VAD / STT) */
	vx_buf user;              /* what the user said */
	vx_buf reply;             /* reply content as generated */
	vx_buf reasoning;         /* never spoken */
	turn_sentence *sent;      /* n_sent sentences, in order */
	size_t n_sent, cap_sent;
	uint64_t audio_bytes;     /* total reply audio sent */
	/* milestones, monotonic us */
	int64_t t_speech_start;   /* VAD speech_start received */
	int64_t t_input_end;      /* VAD speech_end received, or the text turn came */
	int64_t t_eot;            /* the turn judged ended (STT told "end"); 0: t_input_end */
	int64_t t_final;          /* STT final transcript */
	int64_t t_llm_request;
	int64_t t_llm_first_token;
	int64_t t_first_sentence; /* first sentence sent to TTS */
	int64_t t_llm_done;
	int64_t t_tts_first_audio; /* first TTS audio chunk received */
	int64_t t_audio_start;    /* first reply audio byte sent to the client */
	int64_t t_end;
} turn;

void turn_init(turn *t, int seq, double bytes_per_ms);
void turn_release(turn *t);

/* Records a sentence sent to TTS; returns its index, -E2BIG past
 * TURN_MAX_SENTENCES or -ENOMEM. */
int turn_add_sentence(turn *t, const char *text, size_t len);
/* Counts len bytes of audio sent for sentence i. */
void turn_audio(turn *t, int i, size_t len);
/* Milliseconds of reply audio sent so far. */
double turn_sent_ms(const turn *t);
/* Appends the reply text the user heard by now_us (see above). */
void turn_played_text(const turn *t, int64_t now_us, vx_buf *out);

/* A stage duration in ms (b - a) or -1 when either did not happen. */
double turn_span_ms(int64_t a, int64_t b);

/* The per-stage durations (ms, -1 = did not happen), as named in orch_timing:
 * stt (from t_eot when set: the end-of-turn wait is not STT's), llm_first_token, llm_first_sentence, tts_first_audio, voice_to_voice,
 * overhead, total; forward_ms is TTS audio received -> first byte sent. */
typedef struct turn_timings {
	double stt_ms, llm_first_token_ms, llm_first_sentence_ms;
	double tts_first_audio_ms, forward_ms, voice_to_voice_ms, overhead_ms;
	double total_ms;
} turn_timings;
void turn_get_timings(const turn *t, turn_timings *ret);

/* Appends the timings as a JSON object's fields (no braces):
 * "stt_ms":..,"llm_first_token_ms":..,... plus reply_audio_ms. */
void turn_timings_json(const turn *t, vx_buf *out);

#endif
