/*
 * banter_ws.h - one voxline-banter bot's conversation on the orchestrator's
 * /ws/chat (--stream): a text line in, the reply streamed back (text deltas,
 * audio from the first sentence on), the turn over when the orchestrator
 * says so (`metrics`, sent once the reply has played in real time).
 *
 * The socket is opened once per bot ({"type":"start"} with the persona's
 * conversation id, voice and system prompt) and carries every turn.
 *
 * Threads: the wsclient's service thread delivers events into the session
 * under its lock; one caller thread (the bot) calls the functions below.
 * Ownership: banter_ws_open gives the caller the session; banter_ws_free
 * closes it and waits for the close (never from a wsclient callback).
 *
 *     banter_ws *w; banter_ws_open(wc, "ws://127.0.0.1:3000/ws/chat", start_json, 10000, stop, &w);
 *     banter_ws_turn t = {0}; banter_ws_say(w, "Hello", 60000, &t);  ...  banter_ws_turn_release(&t);
 *     banter_ws_free(w);
 */
#ifndef BANTER_WS_H
#define BANTER_WS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "vx_buf.h"
#include "vx_wsclient.h"

#define BANTER_WS_MAX_REPLY_BYTES (1u << 20)   /* reply text of one turn */
#define BANTER_WS_MAX_AUDIO_BYTES (64u << 20)  /* reply audio of one turn */

typedef struct banter_ws banter_ws;

/* One turn's reply. */
typedef struct banter_ws_turn {
	vx_buf text;            /* the reply text (response_delta joined) */
	vx_buf audio;           /* pcm16 mono at the start's sample_rate */
	double audio_start_ms;  /* vx_now_ms() of audio_start; 0 = none came */
	bool done;              /* metrics came: the reply has played */
} banter_ws_turn;

void banter_ws_turn_release(banter_ws_turn *t);

/* Connects to url (ws://.../ws/chat) with headers (whole lines, or NULL:
 * the bearer key), sends start_json and waits for
 * "ready" up to timeout_ms or until *stop. 0 with *ret; -ECONNREFUSED (or
 * the connection's errno) when nothing answers, -EPROTO with the
 * orchestrator's error in err when it refused the start, -ETIMEDOUT,
 * -ECANCELED (*stop), -ENOMEM. */
int banter_ws_open(vx_wsclient *wc, const char *url, const char *headers,
		   const char *start_json,
		   int timeout_ms, const atomic_bool *stop, char *err, size_t err_cap,
		   banter_ws **ret);

/* Sends {"type":"text","text":line} and collects the reply into *t until
 * the turn's metrics, timeout_ms or *stop. 0 when done; -ECANCELED on
 * *stop (t holds what came so far: audio that started is the part to cut);
 * -ETIMEDOUT; -EPROTO with the error event's "stage code: message" in err;
 * -ECONNRESET (or the close's errno) when the socket closed; -EFBIG past
 * the limits above. */
int banter_ws_say(banter_ws *w, const char *line, int timeout_ms, char *err,
		  size_t err_cap, banter_ws_turn *t);

/* Closes the socket, waits for its close (bounded), frees. NULL: no-op. */
void banter_ws_free(banter_ws *w);

#endif
