/*
 * conversation.c - the per-call state machine (see conversation.h).
 *
 * Phases of a turn:
 *   IDLE          waiting for speech (audio goes to VAD only)
 *   LISTENING     speech: audio streams to STT (partials to the client)
 *   TRANSCRIBING  speech ended: STT was told "end", its final is awaited
 *   RESPONDING    LLM writing and/or TTS speaking, audio forwarded
 *   PLAYING       all work done, the client is still playing the audio
 * Upstream sockets ("links") carry a generation number: closing one bumps
 * it, so late callbacks of an old socket are recognised and ignored. LLM
 * requests and TTS sentences carry ids ("t3", "t3.0") for the same reason.
 */
#include "conversation.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sentences.h"
#include "turn.h"
#include "vx_log.h"

enum phase { PH_IDLE, PH_LISTENING, PH_TRANSCRIBING, PH_RESPONDING, PH_PLAYING };

/* The user pointer of one upstream socket. */
typedef struct link_ref {
	conversation *cv;
	int stage;
	unsigned gen;
} link_ref;

typedef struct conv_link {
	vx_wsclient_conn *c;      /* our reference; NULL when none */
	unsigned gen;             /* of the current socket */
	int inst;                 /* upstream instance index */
	bool open;                /* handshake done */
	bool retried;             /* this socket is the retry elsewhere */
	int64_t retry_after;      /* us; no new socket before this after a failure */
} conv_link;

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

	enum phase phase;
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

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static const char *enc_name(vx_encoding e)
{
	return e == VX_ENC_MULAW ? "mulaw" : e == VX_ENC_ALAW ? "alaw" : "pcm16";
}

static void link_connect(conversation *cv, int st, int avoid, bool retried);
static void finish_turn(conversation *cv, bool interrupted, const char *error);
static void maybe_finish(conversation *cv);

/* ---- events to the client ---- */

static void emit(conversation *cv, const char *type, const char *json, size_t len)
{
	if (!cv->closed && cv->sink.event)
		cv->sink.event(cv->sink_user, type, json, len);
}

static void emit_type(conversation *cv, const char *type)
{
	char m[64];
	int n = snprintf(m, sizeof(m), "{\"type\":\"%s\"}", type);
	emit(cv, type, m, (size_t)n);
}

/* {"type":type,"text":text} */
static void emit_text(conversation *cv, const char *type, const char *text, size_t len)
{
	vx_buf b = {0};
	vx_buf_printf(&b, "{\"type\":\"%s\",\"text\":", type);
	vx_buf_json_str(&b, text, len);
	vx_buf_puts(&b, "}");
	if (b.data)
		emit(cv, type, b.data, b.len);
	vx_buf_release(&b);
}

static void emit_error(conversation *cv, const char *stage, const char *code,
		       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void emit_error(conversation *cv, const char *stage, const char *code,
		       const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	vx_log_warn(cv->req_id, "conversation %s: %s: %s", cv->id, stage, msg);
	vx_buf b = {0};
	vx_buf_puts(&b, "{\"type\":\"error\",\"stage\":");
	vx_buf_json_str(&b, stage, strlen(stage));
	vx_buf_puts(&b, ",\"code\":");
	vx_buf_json_str(&b, code, strlen(code));
	vx_buf_puts(&b, ",\"message\":");
	vx_buf_json_str(&b, msg, strlen(msg));
	vx_buf_puts(&b, "}");
	if (b.data)
		emit(cv, "error", b.data, b.len);
	vx_buf_release(&b);
}

/* ---- upstream sockets ---- */

/* Sends one message on the stage's socket, opening one when there is none
 * (not sooner than retry_after). -ENOTCONN when there is none to use. */
static int link_send(conversation *cv, int st, const void *data, size_t len,
		     bool binary)
{
	conv_link *l = &cv->link[st];
	if (!l->c && !cv->closed && now_us() >= l->retry_after)
		link_connect(cv, st, -1, false);
	if (!l->c)
		return -ENOTCONN;
	int r = binary ? vx_wsclient_send_binary(l->c, data, len) :
			 vx_wsclient_send_text(l->c, data, len);
	if (r < 0 && r != -EPIPE)
		vx_log_warn(cv->req_id, "%s: send: %s", orch_stage_names[st],
			    strerror(-r));
	return r;
}

static int link_send_str(conversation *cv, int st, const char *s)
{
	return link_send(cv, st, s, strlen(s), false);
}

/* Closes the stage's socket; its late callbacks are ignored. */
static void link_close(conversation *cv, int st)
{
	conv_link *l = &cv->link[st];
	if (!l->c)
		return;
	vx_wsclient_close(l->c);
	vx_wsclient_unref(l->c);
	l->c = NULL;
	l->open = false;
	l->gen++;
}

/* Sends every unfinished sentence of the turn to TTS again, in order. */
static void link_replay_tts(conversation *cv, vx_wsclient_conn *c)
{
	for (size_t i = 0; i < cv->t.n_sent; i++) {
		if (cv->t.sent[i].done)
			continue;
		vx_buf m = {0};
		vx_buf_puts(&m, "{\"text\":");
		vx_buf_json_str(&m, cv->t.sent[i].text, cv->t.sent[i].len);
		vx_buf_printf(&m, ",\"id\":\"t%d.%zu\"}", cv->t.seq, i);
		if (m.data)
			vx_wsclient_send_text(c, m.data, m.len);
		vx_buf_release(&m);
	}
}

/* After a retry connect: what the stage's work in flight needs again. */
static void link_replay(conversation *cv, int st)
{
	conv_link *l = &cv->link[st];
	if (st == ORCH_VAD) {
		cv->vad_base = cv->bytes_in;
	} else if (st == ORCH_STT &&
		   (cv->phase == PH_LISTENING || cv->phase == PH_TRANSCRIBING)) {
		if (cv->utter.len)
			vx_wsclient_send_binary(l->c, cv->utter.data, cv->utter.len);
		if (cv->phase == PH_TRANSCRIBING)
			vx_wsclient_send_text(l->c, "{\"event\":\"end\"}", 15);
	} else if (st == ORCH_LLM && cv->llm_busy && cv->llm_req.len) {
		vx_wsclient_send_text(l->c, cv->llm_req.data, cv->llm_req.len);
	} else if (st == ORCH_TTS && cv->phase == PH_RESPONDING) {
		link_replay_tts(cv, l->c);
	}
}

static const vx_wsclient_callbacks link_callbacks;

static void link_connect(conversation *cv, int st, int avoid, bool retried)
{
	orch_service *svc = cv->svc;
	conv_link *l = &cv->link[st];
	char url[UPSTREAM_MAX_URL], hdr[96];
	l->inst = upstream_pick(svc->up[st], avoid, url, sizeof(url));
	snprintf(hdr, sizeof(hdr), "X-Request-Id: %s\r\n", cv->req_id);
	link_ref *ref = malloc(sizeof(*ref));
	if (!ref)
		return;
	*ref = (link_ref){ .cv = cv, .stage = st, .gen = ++l->gen };
	atomic_fetch_add(&cv->refs, 1);
	int r = vx_wsclient_connect(svc->wsc, url, hdr, &link_callbacks, ref, &l->c);
	if (r < 0) {
		/* No callback will come: undo (the caller holds a reference). */
		atomic_fetch_sub(&cv->refs, 1);
		free(ref);
		l->c = NULL;
		l->retry_after = now_us() + CONV_RECONNECT_MS * 1000;
		vx_log_warn(cv->req_id, "%s: connect %s: %s", orch_stage_names[st],
			    url, strerror(-r));
		return;
	}
	l->open = false;
	l->retried = retried;
	if (cv->cfg_msg[st])
		vx_wsclient_send_text(l->c, cv->cfg_msg[st], strlen(cv->cfg_msg[st]));
	if (st == ORCH_VAD)
		cv->vad_base = cv->bytes_in;
	if (retried)
		link_replay(cv, st);
}

static bool is_current(conversation *cv, const link_ref *ref)
{
	return !cv->closed && cv->link[ref->stage].gen == ref->gen &&
	       cv->link[ref->stage].c;
}

/* ---- the turn ---- */

static void begin_turn(conversation *cv, bool from_text)
{
	turn_init(&cv->t, ++cv->turn_seq, cv->bpm);
	cv->t.from_text = from_text;
	sentences_reset(&cv->split);
	cv->tts_cur = -1;
	cv->tts_pending = 0;
	cv->again = cv->again_ended = false;
	cv->stt_retries = 0;
	cv->stt_retry_at = 0;
	vx_buf_reset(&cv->utter);
}

static void ctx_push(conversation *cv, const char *role, const char *content)
{
	if (cv->n_msgs == cv->cap_msgs) {
		size_t cap = cv->cap_msgs ? cv->cap_msgs * 2 : 16;
		ctx_msg *m = realloc(cv->msgs, cap * sizeof(*m));
		if (!m)
			return;
		cv->msgs = m;
		cv->cap_msgs = cap;
	}
	char *r = strdup(role), *c = strdup(content);
	if (!r || !c) {
		free(r);
		free(c);
		return;
	}
	cv->msgs[cv->n_msgs++] = (ctx_msg){ r, c };
}

/* Cancels the turn's LLM and TTS work in flight. */
static void cancel_work(conversation *cv)
{
	static const char cancel[] = "{\"event\":\"cancel\"}";
	if (cv->llm_busy && cv->link[ORCH_LLM].c)
		vx_wsclient_send_text(cv->link[ORCH_LLM].c, cancel, sizeof(cancel) - 1);
	cv->llm_busy = false;
	if (cv->tts_pending > 0 && cv->link[ORCH_TTS].c) {
		vx_wsclient_send_text(cv->link[ORCH_TTS].c, cancel, sizeof(cancel) - 1);
		cv->tts_draining = true;
	}
	cv->tts_pending = 0;
	cv->tts_cur = -1;
	cv->deadline[ORCH_LLM] = cv->deadline[ORCH_TTS] = 0;
	cv->llm_retry_at = cv->tts_retry_at = 0;
}

/* The history write of one finished turn (DB pool). The turn's metrics
 * event goes to the client once the turn is committed, so a client that
 * saw it can rely on the history (and a kill -9 after it loses nothing). */
typedef struct hist_job {
	conversation *cv;
	char id[HISTORY_ID_MAX + 1];
	char *user, *reply, *reasoning, *timings, *event;
	bool interrupted;
} hist_job;

static void hist_job_free(hist_job *j)
{
	free(j->user);
	free(j->reply);
	free(j->reasoning);
	free(j->timings);
	free(j->event);
	free(j);
}

static void hist_job_run(void *arg)
{
	hist_job *j = arg;
	conversation *cv = j->cv;
	history *h = cv->svc->hist;
	int r = history_append_turn(h, j->id, "user", j->user, NULL, false, NULL);
	if (r >= 0 && j->reply)
		r = history_append_turn(h, j->id, "assistant", j->reply, j->reasoning,
					j->interrupted, j->timings);
	if (r < 0)
		vx_log_warn(cv->req_id, "history %s: %s", j->id, strerror(-r));
	pthread_mutex_lock(&cv->lock);
	if (j->event)
		emit(cv, "metrics", j->event, strlen(j->event));
	pthread_mutex_unlock(&cv->lock);
	hist_job_free(j);
	conversation_unref(cv);
}

/* Stores the turn, then sends its metrics event (at once when there is
 * nothing to store or the store cannot take it). */
static void store_turn(conversation *cv, const char *reply, bool interrupted,
		       const char *timings, const char *event)
{
	hist_job *j = NULL;
	if (cv->t.user.len) {
		ctx_push(cv, "user", cv->t.user.data);
		if (reply && *reply)
			ctx_push(cv, "assistant", reply);
		j = calloc(1, sizeof(*j));
	}
	if (j) {
		j->cv = cv;
		snprintf(j->id, sizeof(j->id), "%s", cv->id);
		j->user = strdup(cv->t.user.data);
		j->reply = reply && *reply ? strdup(reply) : NULL;
		j->reasoning = cv->t.reasoning.len ? strdup(cv->t.reasoning.data) : NULL;
		j->timings = timings ? strdup(timings) : NULL;
		j->event = event ? strdup(event) : NULL;
		j->interrupted = interrupted;
		atomic_fetch_add(&cv->refs, 1);
		if (vx_pool_submit(cv->svc->db_pool, hist_job_run, j) == 0)
			return;
		vx_log_error(cv->req_id, "history queue full: turn %d of %s lost",
			     cv->t.seq, cv->id);
		atomic_fetch_sub(&cv->refs, 1);
		hist_job_free(j);
	}
	if (event)
		emit(cv, "metrics", event, strlen(event));
}

/* Ends the turn: metrics event and histograms, history, back to IDLE. */
static void finish_turn(conversation *cv, bool interrupted, const char *error)
{
	orch_service *svc = cv->svc;
	turn *t = &cv->t;
	int64_t now = now_us();
	t->t_end = now;
	cancel_work(cv);
	if (cv->audio_open && !interrupted)
		emit_type(cv, "audio_end");
	cv->audio_open = false;
	cv->deadline[ORCH_STT] = 0;

	vx_buf timings = {0};
	vx_buf_puts(&timings, "{");
	turn_timings_json(t, &timings);
	vx_buf_puts(&timings, "}");
	vx_buf ev = {0};
	vx_buf_printf(&ev, "{\"type\":\"metrics\",\"turn\":%d,\"interrupted\":%s,"
		      "\"error\":", t->seq, interrupted ? "true" : "false");
	if (error)
		vx_buf_json_str(&ev, error, strlen(error));
	else
		vx_buf_puts(&ev, "null");
	vx_buf_puts(&ev, ",");
	turn_timings_json(t, &ev);
	vx_buf_puts(&ev, "}");

	turn_timings m;
	turn_get_timings(t, &m);
	const double v[ORCH_N_TIMINGS] = {
		m.stt_ms, m.llm_first_token_ms, m.llm_first_sentence_ms,
		m.tts_first_audio_ms, m.voice_to_voice_ms, m.overhead_ms, m.total_ms,
	};
	for (int i = 0; i < ORCH_N_TIMINGS; i++)
		if (v[i] >= 0)
			vx_histogram_observe(svc->timing[i], v[i] / 1000.0);
	vx_counter_add(svc->turns, 1);
	if (interrupted)
		vx_counter_add(svc->barge_ins, 1);

	/* A cut or failed reply is kept as far as it was played. */
	vx_buf played = {0};
	const char *reply = t->reply.data;
	if (interrupted || error) {
		turn_played_text(t, cv->realtime ? now : INT64_MAX / 2, &played);
		reply = played.data;
	}
	store_turn(cv, reply, interrupted, timings.data, ev.data);
	vx_buf_release(&ev);
	vx_buf_release(&played);
	vx_buf_release(&timings);
	turn_release(t);
	cv->phase = PH_IDLE;
}

/* Fails the turn on a stage's account. */
static void fail_turn(conversation *cv, int st, const char *code, const char *msg)
{
	vx_counter_add(cv->svc->stage_errors[st], 1);
	emit_error(cv, orch_stage_names[st], code, "%s", msg);
	if (cv->phase == PH_LISTENING || cv->phase == PH_TRANSCRIBING) {
		if (cv->link[ORCH_STT].c)
			vx_wsclient_send_text(cv->link[ORCH_STT].c,
					      "{\"event\":\"cancel\"}", 18);
	}
	if (cv->phase != PH_IDLE)
		finish_turn(cv, false, orch_stage_names[st]);
}

/* Builds and sends the LLM request for the user's message. */
static void start_reply(conversation *cv)
{
	orch_service *svc = cv->svc;
	turn *t = &cv->t;
	cv->phase = PH_RESPONDING;
	/* A run-on first sentence is cut early: it sets voice-to-voice. */
	cv->split.soft_max = CONV_FIRST_SOFT_MAX;
	snprintf(cv->llm_id, sizeof(cv->llm_id), "t%d", t->seq);
	vx_buf *b = &cv->llm_req;
	vx_buf_reset(b);
	vx_buf_printf(b, "{\"id\":\"%s\",\"max_tokens\":%d,", cv->llm_id, svc->max_tokens);
	if (svc->llm_model) {
		vx_buf_puts(b, "\"model\":");
		vx_buf_json_str(b, svc->llm_model, strlen(svc->llm_model));
		vx_buf_puts(b, ",");
	}
	vx_buf_puts(b, "\"messages\":[");
	bool first = true;
	if (cv->system_prompt && *cv->system_prompt) {
		vx_buf_puts(b, "{\"role\":\"system\",\"content\":");
		vx_buf_json_str(b, cv->system_prompt, strlen(cv->system_prompt));
		vx_buf_puts(b, "}");
		first = false;
	}
	size_t from = cv->n_msgs > (size_t)svc->max_context_messages ?
		      cv->n_msgs - (size_t)svc->max_context_messages : 0;
	for (size_t i = from; i < cv->n_msgs; i++) {
		vx_buf_puts(b, first ? "{\"role\":" : ",{\"role\":");
		vx_buf_json_str(b, cv->msgs[i].role, strlen(cv->msgs[i].role));
		vx_buf_puts(b, ",\"content\":");
		vx_buf_json_str(b, cv->msgs[i].content, strlen(cv->msgs[i].content));
		vx_buf_puts(b, "}");
		first = false;
	}
	vx_buf_puts(b, first ? "{\"role\":\"user\",\"content\":" :
			       ",{\"role\":\"user\",\"content\":");
	vx_buf_json_str(b, t->user.data, t->user.len);
	if (vx_buf_puts(b, "}]}") < 0) {
		fail_turn(cv, ORCH_LLM, "no_memory", "cannot build the request");
		return;
	}
	cv->llm_busy = true;
	t->t_llm_request = now_us();
	cv->deadline[ORCH_LLM] = t->t_llm_request + (int64_t)svc->stage_timeout_s * 1000000;
	if (link_send(cv, ORCH_LLM, b->data, b->len, false) < 0 && !cv->link[ORCH_LLM].c)
		fail_turn(cv, ORCH_LLM, "unavailable", "cannot reach voxline-llm");
}

/* sentences callback: one complete sentence goes to TTS. */
static int speak_sentence(void *user, const char *text, size_t len)
{
	conversation *cv = user;
	turn *t = &cv->t;
	int i = turn_add_sentence(t, text, len);
	if (i < 0)
		return 0;   /* past the limit: not spoken */
	cv->split.soft_max = SENTENCES_SOFT_MAX;
	int64_t now = now_us();
	if (!t->t_first_sentence)
		t->t_first_sentence = now;
	if (cv->tts_pending++ == 0)
		cv->deadline[ORCH_TTS] = now + (int64_t)cv->svc->stage_timeout_s * 1000000;
	if (cv->tts_retry_at)
		return 0;   /* sent in order with the ones being retried */
	vx_buf m = {0};
	vx_buf_puts(&m, "{\"text\":");
	vx_buf_json_str(&m, text, len);
	vx_buf_printf(&m, ",\"id\":\"t%d.%d\"}", t->seq, i);
	int r = m.data ? link_send(cv, ORCH_TTS, m.data, m.len, false) : -ENOMEM;
	vx_buf_release(&m);
	if (r < 0 && !cv->link[ORCH_TTS].c) {
		fail_turn(cv, ORCH_TTS, "unavailable", "cannot reach voxline-tts");
		return -ECONNABORTED;
	}
	return 0;
}

/* Barge-in: the user speaks (or types) over the reply. */
static void interrupt_turn(conversation *cv)
{
	vx_log_info(cv->req_id, "conversation %s: barge-in on turn %d", cv->id,
		    cv->t.seq);
	cancel_work(cv);
	emit_type(cv, "interrupted");
	finish_turn(cv, true, NULL);
}

/* A user message is complete: reply, or end quietly if it is empty. */
static void user_message_done(conversation *cv)
{
	turn *t = &cv->t;
	while (t->user.len && t->user.data[t->user.len - 1] == ' ')
		t->user.data[--t->user.len] = 0;
	if (!t->user.len) {
		emit_text(cv, "transcript", "", 0);
		finish_turn(cv, false, NULL);
		return;
	}
	if (!t->from_text)
		emit_text(cv, "transcript", t->user.data, t->user.len);
	start_reply(cv);
}

/* ---- STT ---- */

/* Begins an STT round with the audio from from_ms (VAD stream time) on. */
static void stt_begin(conversation *cv, int64_t from_ms)
{
	cv->phase = PH_LISTENING;
	vx_buf_reset(&cv->utter);
	if (!cv->ring)
		return;
	int64_t from = (int64_t)cv->vad_base +
		       (int64_t)((double)(from_ms - CONV_PREROLL_MS) * cv->bpm);
	uint64_t oldest = cv->bytes_in > cv->ring_cap ? cv->bytes_in - cv->ring_cap : 0;
	uint64_t start = from < (int64_t)oldest ? oldest : (uint64_t)from;
	start -= start % cv->sample_bytes;
	if (start < oldest)
		start += cv->sample_bytes;
	for (uint64_t p = start; p < cv->bytes_in;) {
		size_t off = (size_t)(p % cv->ring_cap);
		size_t n = cv->ring_cap - off;
		if (n > cv->bytes_in - p)
			n = (size_t)(cv->bytes_in - p);
		vx_buf_append(&cv->utter, cv->ring + off, n);
		p += n;
	}
	if (cv->utter.len)
		link_send(cv, ORCH_STT, cv->utter.data, cv->utter.len, true);
}

static void stt_end(conversation *cv)
{
	cv->phase = PH_TRANSCRIBING;
	cv->deadline[ORCH_STT] = now_us() + (int64_t)cv->svc->stage_timeout_s * 1000000;
	if (cv->stt_retry_at)
		return;   /* the retry sends the utterance and "end" */
	if (link_send_str(cv, ORCH_STT, "{\"event\":\"end\"}") < 0 &&
	    !cv->link[ORCH_STT].c)
		fail_turn(cv, ORCH_STT, "unavailable", "cannot reach voxline-stt");
}

static void on_stt_event(conversation *cv, const char *ev, const cJSON *j)
{
	const char *text = cJSON_GetStringValue(cJSON_GetObjectItem(j, "text"));
	if (!strcmp(ev, "partial") && text &&
	    (cv->phase == PH_LISTENING || cv->phase == PH_TRANSCRIBING)) {
		vx_buf b = {0};
		if (cv->t.user.len)
			vx_buf_printf(&b, "%s ", cv->t.user.data);
		vx_buf_puts(&b, text);
		if (b.data)
			emit_text(cv, "transcript_partial", b.data, b.len);
		vx_buf_release(&b);
	} else if (!strcmp(ev, "final") && cv->phase == PH_TRANSCRIBING) {
		cv->deadline[ORCH_STT] = 0;
		cv->t.t_final = now_us();
		if (text && *text) {
			if (cv->t.user.len)
				vx_buf_puts(&cv->t.user, " ");
			vx_buf_puts(&cv->t.user, text);
		}
		if (cv->again) {
			/* The user went on speaking: one message, another round. */
			cv->again = false;
			stt_begin(cv, cv->again_start_ms);
			if (cv->again_ended) {
				cv->again_ended = false;
				cv->t.t_input_end = now_us();
				stt_end(cv);
			}
			return;
		}
		user_message_done(cv);
	} else if (!strcmp(ev, "error") &&
		   (cv->phase == PH_LISTENING || cv->phase == PH_TRANSCRIBING)) {
		const char *msg = cJSON_GetStringValue(cJSON_GetObjectItem(j, "message"));
		const char *code = cJSON_GetStringValue(cJSON_GetObjectItem(j, "code"));
		if (code && !strcmp(code, "overloaded") &&
		    cv->stt_retries++ < CONV_MAX_RETRIES) {
			/* The service closes the stream: a new one shortly, with
			 * the utterance so far (link_replay). */
			link_close(cv, ORCH_STT);
			cv->stt_retry_at = now_us() + CONV_RETRY_MS * 1000;
			return;
		}
		fail_turn(cv, ORCH_STT, "stt_failed", msg ? msg : "transcription failed");
	}
}

/* ---- VAD ---- */

static bool barge_in_possible(conversation *cv)
{
	return cv->svc->barge_in &&
	       (cv->phase == PH_RESPONDING || cv->phase == PH_PLAYING);
}

static void on_vad_event(conversation *cv, const char *ev, const cJSON *j)
{
	const cJSON *sm = cJSON_GetObjectItem(j, "start_ms");
	int64_t start_ms = cJSON_IsNumber(sm) ? (int64_t)sm->valuedouble : 0;
	if (!strcmp(ev, "speech_start")) {
		if (barge_in_possible(cv))
			interrupt_turn(cv);
		if (cv->phase == PH_IDLE) {
			begin_turn(cv, false);
			cv->t.t_speech_start = now_us();
			emit_type(cv, "speech_started");
			stt_begin(cv, start_ms);
		} else if (cv->phase == PH_TRANSCRIBING && !cv->again) {
			cv->again = true;
			cv->again_ended = false;
			cv->again_start_ms = start_ms;
			emit_type(cv, "speech_started");
		}
	} else if (!strcmp(ev, "speech_end")) {
		if (cv->phase == PH_LISTENING) {
			emit_type(cv, "speech_stopped");
			cv->t.t_input_end = now_us();
			stt_end(cv);
		} else if (cv->phase == PH_TRANSCRIBING && cv->again) {
			emit_type(cv, "speech_stopped");
			cv->again_ended = true;
		}
	} else if (!strcmp(ev, "error")) {
		const char *msg = cJSON_GetStringValue(cJSON_GetObjectItem(j, "message"));
		vx_counter_add(cv->svc->stage_errors[ORCH_VAD], 1);
		emit_error(cv, "vad", "vad_failed", "%s", msg ? msg : "detection failed");
	}
}

/* ---- LLM ---- */

static void on_llm_event(conversation *cv, const char *ev, const cJSON *j)
{
	const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(j, "id"));
	if (!cv->llm_busy || cv->phase != PH_RESPONDING ||
	    (id && strcmp(id, cv->llm_id)))
		return;   /* a cancelled or finished request's late events */
	turn *t = &cv->t;
	const char *text = cJSON_GetStringValue(cJSON_GetObjectItem(j, "text"));
	int64_t now = now_us();
	if (!strcmp(ev, "token") || !strcmp(ev, "reasoning"))
		cv->deadline[ORCH_LLM] = now + (int64_t)cv->svc->stage_timeout_s * 1000000;
	if (!strcmp(ev, "token") && text) {
		if (!t->t_llm_first_token)
			t->t_llm_first_token = now;
		size_t len = strlen(text);
		vx_buf_append(&t->reply, text, len);
		emit_text(cv, "response_delta", text, len);
		sentences_feed(&cv->split, text, len, speak_sentence, cv);
	} else if (!strcmp(ev, "reasoning") && text) {
		if (!t->t_llm_first_token)
			t->t_llm_first_token = now;
		vx_buf_puts(&t->reasoning, text);
		emit_text(cv, "reasoning", text, strlen(text));
	} else if (!strcmp(ev, "done")) {
		cv->llm_busy = false;
		cv->deadline[ORCH_LLM] = 0;
		t->t_llm_done = now;
		if (sentences_flush(&cv->split, speak_sentence, cv) < 0 ||
		    cv->phase != PH_RESPONDING)
			return;
		maybe_finish(cv);
	} else if (!strcmp(ev, "error")) {
		const char *msg = cJSON_GetStringValue(cJSON_GetObjectItem(j, "message"));
		const char *code = cJSON_GetStringValue(cJSON_GetObjectItem(j, "code"));
		if (code && !strcmp(code, "overloaded") && !t->t_llm_first_token) {
			/* Admission control upstream: again shortly, until the
			 * stage deadline (not refreshed by this) passes. */
			cv->llm_retry_at = now + CONV_RETRY_MS * 1000;
			return;
		}
		cv->llm_busy = false;
		fail_turn(cv, ORCH_LLM, "llm_failed", msg ? msg : "generation failed");
	}
}

/* ---- TTS ---- */

/* Sentence index from a "t<seq>.<i>" id of this turn, or -1. */
static int tts_index(conversation *cv, const char *id)
{
	int seq, i;
	char tail;
	if (!id || sscanf(id, "t%d.%d%c", &seq, &i, &tail) != 2 ||
	    cv->phase == PH_IDLE || seq != cv->t.seq || i < 0 ||
	    (size_t)i >= cv->t.n_sent)
		return -1;
	return i;
}

/* Ends the turn's work when the LLM is done and every sentence spoken. */
static void maybe_finish(conversation *cv)
{
	if (cv->phase != PH_RESPONDING || cv->llm_busy || cv->tts_pending > 0)
		return;
	cv->deadline[ORCH_TTS] = 0;
	if (cv->audio_open) {
		emit_type(cv, "audio_end");
		cv->audio_open = false;
	}
	/* A real-time client still plays the audio; the ticker ends the
	 * turn when it has (barge-in stays possible until then). */
	if (cv->realtime && cv->t.t_audio_start &&
	    now_us() < cv->t.t_audio_start + (int64_t)(turn_sent_ms(&cv->t) * 1000))
		cv->phase = PH_PLAYING;
	else
		finish_turn(cv, false, NULL);
}

static void on_tts_event(conversation *cv, const char *ev, const cJSON *j)
{
	const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(j, "id"));
	int i = tts_index(cv, id);
	if (!strcmp(ev, "cancelled")) {
		cv->tts_draining = false;
		return;
	}
	if (!strcmp(ev, "ready")) {
		const cJSON *sr = cJSON_GetObjectItem(j, "sample_rate");
		const char *enc = cJSON_GetStringValue(cJSON_GetObjectItem(j, "encoding"));
		if ((cJSON_IsNumber(sr) && (int)sr->valuedouble != cv->rate) ||
		    (enc && strcmp(enc, enc_name(cv->enc))))
			emit_error(cv, "tts", "bad_format",
				   "voxline-tts answers %d Hz %s, not %d Hz %s",
				   cJSON_IsNumber(sr) ? (int)sr->valuedouble : 0,
				   enc ? enc : "?", cv->rate, enc_name(cv->enc));
		return;
	}
	if (i >= 0 && !strcmp(ev, "start"))
		cv->tts_draining = false;
	if (cv->tts_draining || cv->phase != PH_RESPONDING || i < 0) {
		if (!strcmp(ev, "error") && !cv->tts_draining &&
		    cv->phase == PH_RESPONDING && cv->tts_pending > 0) {
			const char *msg = cJSON_GetStringValue(cJSON_GetObjectItem(j, "message"));
			fail_turn(cv, ORCH_TTS, "tts_failed", msg ? msg : "synthesis failed");
		}
		return;
	}
	if (strcmp(ev, "error"))
		cv->deadline[ORCH_TTS] = now_us() + (int64_t)cv->svc->stage_timeout_s * 1000000;
	if (!strcmp(ev, "start")) {
		cv->tts_cur = i;
	} else if (!strcmp(ev, "done")) {
		if (!cv->t.sent[i].done) {
			cv->t.sent[i].done = true;
			cv->tts_pending--;
		}
		cv->tts_cur = -1;
		maybe_finish(cv);
	} else if (!strcmp(ev, "error")) {
		const char *msg = cJSON_GetStringValue(cJSON_GetObjectItem(j, "message"));
		const char *code = cJSON_GetStringValue(cJSON_GetObjectItem(j, "code"));
		if (code && !strcmp(code, "overloaded")) {
			/* The whole queue of the socket was refused: send every
			 * unfinished sentence again shortly, in order. */
			if (!cv->tts_retry_at)
				cv->tts_retry_at = now_us() + CONV_RETRY_MS * 1000;
			return;
		}
		fail_turn(cv, ORCH_TTS, "tts_failed", msg ? msg : "synthesis failed");
	}
}

static void on_tts_audio(conversation *cv, const void *data, size_t len)
{
	if (cv->tts_draining || cv->phase != PH_RESPONDING || !len)
		return;
	turn *t = &cv->t;
	int i = cv->tts_cur;
	if (i < 0) {   /* no "start" seen: the oldest unfinished sentence */
		for (size_t k = 0; k < t->n_sent && i < 0; k++)
			if (!t->sent[k].done)
				i = (int)k;
	}
	int64_t now = now_us();
	cv->deadline[ORCH_TTS] = now + (int64_t)cv->svc->stage_timeout_s * 1000000;
	if (!t->t_tts_first_audio)
		t->t_tts_first_audio = now;
	if (!cv->audio_open) {
		char m[128];
		int n = snprintf(m, sizeof(m), "{\"type\":\"audio_start\",\"sample_rate\":%d,"
				 "\"encoding\":\"%s\"}", cv->rate, enc_name(cv->enc));
		emit(cv, "audio_start", m, (size_t)n);
		cv->audio_open = true;
	}
	if (!cv->closed && cv->sink.audio)
		cv->sink.audio(cv->sink_user, data, len);
	if (!t->t_audio_start)
		t->t_audio_start = now_us();
	turn_audio(t, i, len);
}

/* ---- upstream callbacks (vx_wsclient thread) ---- */

static void link_on_open(vx_wsclient_conn *c, void *user)
{
	link_ref *ref = user;
	conversation *cv = ref->cv;
	(void)c;
	pthread_mutex_lock(&cv->lock);
	if (is_current(cv, ref)) {
		cv->link[ref->stage].open = true;
		upstream_report(cv->svc->up[ref->stage], cv->link[ref->stage].inst, true);
	}
	pthread_mutex_unlock(&cv->lock);
}

static void link_on_text(vx_wsclient_conn *c, void *user, const char *text, size_t len)
{
	link_ref *ref = user;
	conversation *cv = ref->cv;
	(void)c;
	cJSON *j = cJSON_ParseWithLength(text, len);
	const char *ev = cJSON_GetStringValue(cJSON_GetObjectItem(j, "event"));
	if (!ev) {
		cJSON_Delete(j);
		return;
	}
	pthread_mutex_lock(&cv->lock);
	if (is_current(cv, ref)) {
		switch (ref->stage) {
		case ORCH_VAD: on_vad_event(cv, ev, j); break;
		case ORCH_STT: on_stt_event(cv, ev, j); break;
		case ORCH_LLM: on_llm_event(cv, ev, j); break;
		case ORCH_TTS: on_tts_event(cv, ev, j); break;
		}
	}
	pthread_mutex_unlock(&cv->lock);
	cJSON_Delete(j);
}

static void link_on_binary(vx_wsclient_conn *c, void *user, const void *data, size_t len)
{
	link_ref *ref = user;
	conversation *cv = ref->cv;
	(void)c;
	if (ref->stage != ORCH_TTS)
		return;
	pthread_mutex_lock(&cv->lock);
	if (is_current(cv, ref))
		on_tts_audio(cv, data, len);
	pthread_mutex_unlock(&cv->lock);
}

/* Does the current turn wait on this stage? */
static bool stage_in_use(conversation *cv, int st)
{
	switch (st) {
	case ORCH_VAD: return cv->ring != NULL;
	case ORCH_STT: return cv->phase == PH_LISTENING || cv->phase == PH_TRANSCRIBING;
	case ORCH_LLM: return cv->phase == PH_RESPONDING && cv->llm_busy;
	case ORCH_TTS: return cv->phase == PH_RESPONDING && cv->tts_pending > 0;
	}
	return false;
}

static void link_on_close(vx_wsclient_conn *c, void *user, int err)
{
	link_ref *ref = user;
	conversation *cv = ref->cv;
	int st = ref->stage;
	pthread_mutex_lock(&cv->lock);
	conv_link *l = &cv->link[st];
	if (is_current(cv, ref)) {
		bool was_open = l->open;
		vx_wsclient_unref(l->c);
		l->c = NULL;
		l->open = false;
		upstream_report(cv->svc->up[st], l->inst, false);
		if (!was_open && !l->retried && err != 0) {
			/* Could not connect: once more, elsewhere. */
			vx_log_warn(cv->req_id, "%s: connect failed (%s), retrying",
				    orch_stage_names[st], strerror(-err));
			link_connect(cv, st, l->inst, true);
		} else {
			l->retry_after = now_us() + CONV_RECONNECT_MS * 1000;
			if (stage_in_use(cv, st)) {
				char msg[128];
				snprintf(msg, sizeof(msg), "voxline-%s %s: %s",
					 orch_stage_names[st],
					 was_open ? "closed the connection" : "unreachable",
					 err ? strerror(-err) : "closed");
				if (st == ORCH_VAD) {
					vx_counter_add(cv->svc->stage_errors[st], 1);
					emit_error(cv, "vad", "unavailable", "%s", msg);
					if (cv->phase == PH_LISTENING) {
						cv->t.t_input_end = now_us();
						stt_end(cv);
					}
				} else {
					fail_turn(cv, st, "unavailable", msg);
				}
			}
		}
	}
	pthread_mutex_unlock(&cv->lock);
	(void)c;
	free(ref);
	conversation_unref(cv);
}

static const vx_wsclient_callbacks link_callbacks = {
	.on_open = link_on_open,
	.on_text = link_on_text,
	.on_binary = link_on_binary,
	.on_close = link_on_close,
};

/* ---- the client side ---- */

int conversation_new(orch_service *svc, const conv_sink *sink, void *sink_user,
		     const char *req_id, bool realtime, conversation **ret)
{
	conversation *cv = calloc(1, sizeof(*cv));
	if (!cv)
		return -ENOMEM;
	cv->svc = svc;
	atomic_init(&cv->refs, 1);
	pthread_mutex_init(&cv->lock, NULL);
	cv->sink = *sink;
	cv->sink_user = sink_user;
	cv->realtime = realtime;
	snprintf(cv->req_id, sizeof(cv->req_id), "%s", req_id ? req_id : "-");
	sentences_init(&cv->split);
	cv->tts_cur = -1;
	pthread_mutex_lock(&svc->lock);
	cv->next = svc->convs;
	if (svc->convs)
		svc->convs->prev = cv;
	svc->convs = cv;
	pthread_mutex_unlock(&svc->lock);
	*ret = cv;
	return 0;
}

void conversation_ref(conversation *cv)
{
	atomic_fetch_add(&cv->refs, 1);
}

void conversation_unref(conversation *cv)
{
	if (!cv || atomic_fetch_sub(&cv->refs, 1) != 1)
		return;
	orch_service *svc = cv->svc;
	pthread_mutex_lock(&svc->lock);
	if (cv->prev)
		cv->prev->next = cv->next;
	else
		svc->convs = cv->next;
	if (cv->next)
		cv->next->prev = cv->prev;
	pthread_mutex_unlock(&svc->lock);
	if (cv->phase != PH_IDLE)
		turn_release(&cv->t);
	sentences_release(&cv->split);
	vx_buf_release(&cv->llm_req);
	vx_buf_release(&cv->utter);
	for (size_t i = 0; i < cv->n_msgs; i++) {
		free(cv->msgs[i].role);
		free(cv->msgs[i].content);
	}
	free(cv->msgs);
	for (int st = 0; st < ORCH_N_STAGES; st++)
		free(cv->cfg_msg[st]);
	free(cv->ring);
	free(cv->voice);
	free(cv->system_prompt);
	pthread_mutex_destroy(&cv->lock);
	free(cv);
}

/* The config messages each upstream gets first. */
static int build_configs(conversation *cv)
{
	vx_buf b = {0};
	vx_buf_printf(&b, "{\"sample_rate\":%d,\"encoding\":\"%s\"}", cv->rate,
		      enc_name(cv->enc));
	cv->cfg_msg[ORCH_VAD] = vx_buf_detach(&b, NULL);
	vx_buf_printf(&b, "{\"sample_rate\":%d,\"encoding\":\"%s\",\"language\":\"en\"}",
		      cv->rate, enc_name(cv->enc));
	cv->cfg_msg[ORCH_STT] = vx_buf_detach(&b, NULL);
	vx_buf_printf(&b, "{\"sample_rate\":%d,\"encoding\":\"%s\"", cv->rate,
		      enc_name(cv->enc));
	if (cv->voice) {
		vx_buf_puts(&b, ",\"voice\":");
		vx_buf_json_str(&b, cv->voice, strlen(cv->voice));
	}
	vx_buf_puts(&b, "}");
	cv->cfg_msg[ORCH_TTS] = vx_buf_detach(&b, NULL);
	return cv->cfg_msg[ORCH_VAD] && cv->cfg_msg[ORCH_STT] &&
	       cv->cfg_msg[ORCH_TTS] ? 0 : -ENOMEM;
}

typedef struct start_job {
	conversation *cv;
	char *id, *voice, *prompt;
} start_job;

/* Loads or creates the conversation (database), then connects and says
 * "ready". Runs on the DB pool or, for POST /chat, the caller's thread. */
static void start_job_run(void *arg)
{
	start_job *j = arg;
	conversation *cv = j->cv;
	orch_service *svc = cv->svc;
	history_conversation hc = {0};
	char id[HISTORY_ID_MAX + 1] = "";
	int r = -ENOENT;
	if (j->id && *j->id)
		r = history_load(svc->hist, j->id, &hc);
	if (r == 0)
		snprintf(id, sizeof(id), "%s", hc.id);
	else if (r == -ENOENT)
		r = history_create(svc->hist, j->id && *j->id ? j->id : NULL,
				   j->prompt ? j->prompt : svc->system_prompt,
				   j->voice ? j->voice : svc->voice, id);

	pthread_mutex_lock(&cv->lock);
	if (r < 0) {
		emit_error(cv, "history", r == -EINVAL ? "bad_conversation_id" : "history_failed",
			   r == -EINVAL ? "conversation_id must be 1-64 of [A-Za-z0-9._-]" :
			   "cannot open the conversation: %s", strerror(-r));
		cv->started = false;   /* the client may send another start */
		goto out_unlock;
	}
	snprintf(cv->id, sizeof(cv->id), "%s", id);
	const char *voice = j->voice ? j->voice : hc.voice ? hc.voice : svc->voice;
	const char *prompt = j->prompt ? j->prompt :
			     hc.system_prompt ? hc.system_prompt : svc->system_prompt;
	cv->voice = voice ? strdup(voice) : NULL;
	cv->system_prompt = prompt ? strdup(prompt) : NULL;
	for (size_t i = 0; i < hc.n_turns; i++)
		if (hc.turns[i].content && *hc.turns[i].content)
			ctx_push(cv, hc.turns[i].role, hc.turns[i].content);
	if (build_configs(cv) < 0) {
		emit_error(cv, "orchestrator", "no_memory", "out of memory");
		goto out_unlock;
	}
	if (!cv->closed) {
		link_connect(cv, ORCH_LLM, -1, false);
		link_connect(cv, ORCH_TTS, -1, false);
	}
	cv->ready = true;
	vx_buf b = {0};
	vx_buf_puts(&b, "{\"type\":\"ready\",\"conversation_id\":");
	vx_buf_json_str(&b, cv->id, strlen(cv->id));
	vx_buf_printf(&b, ",\"sample_rate\":%d,\"encoding\":\"%s\",\"turns\":%zu}",
		      cv->rate, enc_name(cv->enc), hc.n_turns);
	if (b.data)
		emit(cv, "ready", b.data, b.len);
	vx_buf_release(&b);
	vx_log_info(cv->req_id, "conversation %s %s (%zu turns)", cv->id,
		    hc.n_turns ? "continued" : "started", hc.n_turns);
out_unlock:
	pthread_mutex_unlock(&cv->lock);
	history_conversation_release(&hc);
	free(j->id);
	free(j->voice);
	free(j->prompt);
	free(j);
	conversation_unref(cv);
}

int conversation_start(conversation *cv, const conv_config *cfg, bool sync)
{
	pthread_mutex_lock(&cv->lock);
	if (cv->started) {
		pthread_mutex_unlock(&cv->lock);
		return -EALREADY;
	}
	cv->started = true;
	cv->rate = cfg->sample_rate;
	cv->enc = cfg->encoding;
	cv->sample_bytes = cv->enc == VX_ENC_PCM16 ? 2 : 1;
	cv->bpm = (double)cv->rate * (double)cv->sample_bytes / 1000.0;
	cv->utter_max = (size_t)cv->svc->max_utterance_s * (size_t)cv->rate * cv->sample_bytes;
	pthread_mutex_unlock(&cv->lock);

	start_job *j = calloc(1, sizeof(*j));
	if (!j)
		goto out_nomem;
	j->cv = cv;
	j->id = cfg->conversation_id ? strdup(cfg->conversation_id) : NULL;
	j->voice = cfg->voice ? strdup(cfg->voice) : NULL;
	j->prompt = cfg->system_prompt ? strdup(cfg->system_prompt) : NULL;
	conversation_ref(cv);
	if (sync) {
		start_job_run(j);
		return 0;
	}
	if (vx_pool_submit(cv->svc->db_pool, start_job_run, j) == 0)
		return 0;
	conversation_unref(cv);
	free(j->id);
	free(j->voice);
	free(j->prompt);
	free(j);
out_nomem:
	pthread_mutex_lock(&cv->lock);
	cv->started = false;
	pthread_mutex_unlock(&cv->lock);
	return -ENOMEM;
}

bool conversation_ready(conversation *cv)
{
	pthread_mutex_lock(&cv->lock);
	bool r = cv->ready;
	pthread_mutex_unlock(&cv->lock);
	return r;
}

void conversation_id(conversation *cv, char ret[HISTORY_ID_MAX + 1])
{
	pthread_mutex_lock(&cv->lock);
	memcpy(ret, cv->id, HISTORY_ID_MAX + 1);
	pthread_mutex_unlock(&cv->lock);
}

/* Keeps the last ring_cap bytes of client audio. */
static void ring_put(conversation *cv, const uint8_t *p, size_t len)
{
	if (len >= cv->ring_cap) {
		p += len - cv->ring_cap;
		cv->bytes_in += len - cv->ring_cap;
		len = cv->ring_cap;
	}
	while (len) {
		size_t off = (size_t)(cv->bytes_in % cv->ring_cap);
		size_t n = cv->ring_cap - off < len ? cv->ring_cap - off : len;
		memcpy(cv->ring + off, p, n);
		cv->bytes_in += n;
		p += n;
		len -= n;
	}
}

int conversation_audio(conversation *cv, const void *data, size_t len)
{
	int r = 0;
	pthread_mutex_lock(&cv->lock);
	if (!cv->started || cv->closed) {
		r = -ENOTCONN;
		goto out_unlock;
	}
	if (!cv->ready || !len)
		goto out_unlock;   /* before "ready": nothing to send it to yet */
	if (!cv->ring) {
		cv->ring_cap = (size_t)((double)CONV_RING_MS * cv->bpm);
		cv->ring_cap -= cv->ring_cap % cv->sample_bytes;
		if (!(cv->ring = malloc(cv->ring_cap))) {
			r = -ENOMEM;
			goto out_unlock;
		}
		link_connect(cv, ORCH_VAD, -1, false);
		link_connect(cv, ORCH_STT, -1, false);
	}
	ring_put(cv, data, len);
	link_send(cv, ORCH_VAD, data, len, true);
	if (cv->phase == PH_LISTENING) {
		if (cv->utter.len + len <= cv->utter_max) {
			vx_buf_append(&cv->utter, data, len);
			if (!cv->stt_retry_at)   /* else the retry sends utter */
				link_send(cv, ORCH_STT, data, len, true);
		} else {
			/* Too long: take what was said so far. */
			emit_type(cv, "speech_stopped");
			cv->t.t_input_end = now_us();
			stt_end(cv);
		}
	}
out_unlock:
	pthread_mutex_unlock(&cv->lock);
	return r;
}

int conversation_text(conversation *cv, const char *text, size_t len)
{
	int r = 0;
	pthread_mutex_lock(&cv->lock);
	if (!cv->ready || cv->closed) {
		r = -ENOTCONN;
		goto out_unlock;
	}
	if (barge_in_possible(cv))
		interrupt_turn(cv);
	if (cv->phase != PH_IDLE) {
		r = -EBUSY;
		goto out_unlock;
	}
	begin_turn(cv, true);
	cv->t.t_input_end = now_us();
	vx_buf_append(&cv->t.user, text, len);
	user_message_done(cv);
out_unlock:
	pthread_mutex_unlock(&cv->lock);
	return r;
}

int conversation_utterance(conversation *cv, const void *data, size_t len)
{
	int r = 0;
	pthread_mutex_lock(&cv->lock);
	if (!cv->ready || cv->closed) {
		r = -ENOTCONN;
		goto out_unlock;
	}
	if (cv->phase != PH_IDLE) {
		r = -EBUSY;
		goto out_unlock;
	}
	begin_turn(cv, false);
	cv->phase = PH_LISTENING;
	if (!cv->link[ORCH_STT].c)
		link_connect(cv, ORCH_STT, -1, false);
	if (vx_buf_append(&cv->utter, data, len) < 0) {
		r = -ENOMEM;
		turn_release(&cv->t);
		cv->phase = PH_IDLE;
		goto out_unlock;
	}
	link_send(cv, ORCH_STT, data, len, true);
	cv->t.t_input_end = now_us();
	stt_end(cv);
out_unlock:
	pthread_mutex_unlock(&cv->lock);
	return r;
}

void conversation_close(conversation *cv)
{
	pthread_mutex_lock(&cv->lock);
	if (!cv->closed) {
		if (cv->phase == PH_RESPONDING || cv->phase == PH_PLAYING) {
			cv->closed = true;   /* no events: the client is gone */
			finish_turn(cv, true, NULL);
		} else if (cv->phase != PH_IDLE) {
			turn_release(&cv->t);
			cv->phase = PH_IDLE;
		}
		cv->closed = true;
		for (int st = 0; st < ORCH_N_STAGES; st++)
			link_close(cv, st);
	}
	pthread_mutex_unlock(&cv->lock);
}

/* ---- the ticker ---- */

static void conversation_tick(conversation *cv, int64_t now)
{
	if (cv->closed || !cv->ready)
		return;
	for (int st = 0; st < ORCH_N_STAGES; st++) {
		if (!cv->deadline[st] || now < cv->deadline[st])
			continue;
		cv->deadline[st] = 0;
		/* A new socket next time: the old one may hold stale work. */
		link_close(cv, st);
		fail_turn(cv, st, "timeout", st == ORCH_STT ?
			  "no transcript in time (--stage-timeout-s)" :
			  st == ORCH_LLM ? "no reply from the language model in time "
			  "(--stage-timeout-s)" : "no audio in time (--stage-timeout-s)");
	}
	if (cv->llm_retry_at && now >= cv->llm_retry_at) {
		cv->llm_retry_at = 0;
		if (cv->llm_busy && cv->llm_req.len)
			link_send(cv, ORCH_LLM, cv->llm_req.data, cv->llm_req.len, false);
	}
	if (cv->stt_retry_at && now >= cv->stt_retry_at) {
		cv->stt_retry_at = 0;
		if ((cv->phase == PH_LISTENING || cv->phase == PH_TRANSCRIBING) &&
		    !cv->link[ORCH_STT].c)
			link_connect(cv, ORCH_STT, -1, true);
	}
	if (cv->tts_retry_at && now >= cv->tts_retry_at) {
		cv->tts_retry_at = 0;
		if (cv->phase == PH_RESPONDING && cv->link[ORCH_TTS].c)
			link_replay_tts(cv, cv->link[ORCH_TTS].c);
	}
	if (cv->phase == PH_PLAYING &&
	    now >= cv->t.t_audio_start + (int64_t)(turn_sent_ms(&cv->t) * 1000))
		finish_turn(cv, false, NULL);
}

static void *ticker_main(void *arg)
{
	orch_service *svc = arg;
	while (!atomic_load(&svc->stopping)) {
		struct timespec d = { 0, ORCH_TICK_MS * 1000000L };
		nanosleep(&d, NULL);
		int64_t now = now_us();
		pthread_mutex_lock(&svc->lock);
		for (conversation *cv = svc->convs; cv; cv = cv->next) {
			pthread_mutex_lock(&cv->lock);
			conversation_tick(cv, now);
			pthread_mutex_unlock(&cv->lock);
		}
		pthread_mutex_unlock(&svc->lock);
	}
	return NULL;
}

int conversation_ticker_start(orch_service *svc)
{
	atomic_store(&svc->stopping, false);
	return -pthread_create(&svc->ticker, NULL, ticker_main, svc);
}

void conversation_ticker_stop(orch_service *svc)
{
	atomic_store(&svc->stopping, true);
	pthread_join(svc->ticker, NULL);
}
