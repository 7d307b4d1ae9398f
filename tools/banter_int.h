/*
 * banter_int.h - what voxline-banter's files share (voxline_banter.c: flags,
 * bots, NATS, output; banter_orch.c: the orchestrator side). Not a library:
 * the structs are the program's state, described where they are defined.
 *
 * Threads: `banter` is shared by main and the two bot threads, guarded by
 * its lock except `stop` (atomic, also set from the signal handler); a `bot`
 * belongs to its thread after start.
 */
#ifndef BANTER_INT_H
#define BANTER_INT_H

#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>

#include "banter_record.h"
#include "banter_ws.h"
#include "vx_audio.h"
#include "vx_wsclient.h"

#define BANTER_MAX_NAME 32             /* bytes of a persona's name */
#define BANTER_MAX_LINE 16384          /* bytes of a line (the orchestrator's limit) */
#define BANTER_MAX_ANSWER (64u << 20)  /* bytes of a POST /chat answer */
#define BANTER_MAX_REPLY_S 600         /* seconds of one reply's audio */
#define BANTER_MAX_WAV_S 3600          /* seconds of the whole recording */
#define BANTER_MAX_PERSONAS_FILE (1u << 20)  /* bytes of --personas */
#define BANTER_POLL_MS 50              /* waits look at the stop flag this often */
#define BANTER_SUBJECT_MAX 200         /* bytes of a subject */
#define BANTER_ID_MAX 64               /* the orchestrator's conversation id limit */

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

struct config {
	const char *orchestrator, *nats, *prefix, *first_line, *model, *api_key;
	const char *out_text, *out_wav, *personas;
	const char *name[2], *voice[2], *prompt[2];
	int turns, rate;
	double timeout_s, playback_timeout_s;
	bool wait_playback, quiet, stream;
	char ws_url[1100];             /* --stream: ws://<orchestrator>/ws/chat */
};

typedef struct banter banter;

typedef struct bot {
	banter *b;
	int idx;                       /* 0: first bot (left channel), 1: second */
	const char *name, *voice, *prompt;
	char conv_id[BANTER_ID_MAX + 1];
	char subject[BANTER_SUBJECT_MAX];        /* lines to this bot */
	char play_subject[BANTER_SUBJECT_MAX];   /* --wait-playback: its WAV */
	char played_prefix[BANTER_SUBJECT_MAX];  /* ... and the done events */
	natsSubscription *sub, *played_sub;
	banter_ws *ws;                 /* --stream: its /ws/chat session */
	pthread_t thread;
	bool started;
} bot;

struct banter {
	const struct config *cfg;
	natsConnection *nc;
	vx_wsclient *wc;               /* --stream: every bot's socket */
	bot bots[2];
	atomic_bool stop;              /* turns reached, failure, or a signal */
	pthread_mutex_t lock;          /* guards everything below */
	int turns;                     /* replies played so far */
	int code;                      /* exit code once failed */
	char why[96];                  /* why it stopped */
	double t0_ms;                  /* the opening line was sent */
	double line_sent_ms;           /* the last line was published */
	banter_record rec;             /* the stereo timeline */
	FILE *text;
	double *latency_ms;            /* per turn: POST /chat round trip */
	double *gap_ms;                /* per turn: the previous reply's end (or
					* the opening) -> this one's start */
	double last_end_ms;            /* the last reply's end, from t0 */
	double audio_ms;               /* reply audio played, all turns */
};

typedef struct reply {
	double start_ms;    /* --stream: its audio started (from t0); 0: not yet */
	char *text;         /* owned */
	vx_pcm pcm;         /* mono at cfg->rate */
	double latency_ms;  /* line sent -> reply audio (POST: the whole answer) */
} reply;

/* Ends the run with code and a message on stderr (the first failure only);
 * sets stop. Any thread. */
void banter_fail(banter *b, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* banter_orch.c. GET /healthz before anything else: 0, or a negative errno
 * after banter_fail with what to start. */
int banter_orch_check(banter *b);
/* The bot's turn: line in, rp's text and audio out (POST /chat, or its
 * /ws/chat with --stream). 0; -ECANCELED on stop (no banter_fail); other
 * negative errno after banter_fail. Caller releases rp. */
int banter_orch_ask(bot *me, const char *line, reply *rp);
/* --stream: opens me->ws, started with the bot's persona. */
int banter_orch_open_stream(bot *me);
void banter_reply_release(reply *rp);

#endif
