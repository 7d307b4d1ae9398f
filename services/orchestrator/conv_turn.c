/*
 * conv_turn.c - a conversation's turn from begin to end (conv_int.h): the
 * user message, the end of a turn (metrics event, Prometheus histograms,
 * context, the history write on the DB pool), failures on a stage's
 * account, and barge-in.
 */
#include "conv_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vx_log.h"

void conv_turn_begin(conversation *cv, bool from_text)
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
		conversation_emit(cv, "metrics", j->event, strlen(j->event));
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
		conversation_ctx_push(cv, "user", cv->t.user.data);
		if (reply && *reply)
			conversation_ctx_push(cv, "assistant", reply);
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
		conversation_emit(cv, "metrics", event, strlen(event));
}

/* Ends the turn: metrics event and histograms, history, back to IDLE. */
void conv_turn_finish(conversation *cv, bool interrupted, const char *error)
{
	orch_service *svc = cv->svc;
	turn *t = &cv->t;
	int64_t now = conv_now_us();
	t->t_end = now;
	conv_reply_cancel(cv);
	if (cv->audio_open && !interrupted)
		conversation_emit_type(cv, "audio_end");
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
void conv_turn_fail(conversation *cv, int st, const char *code, const char *msg)
{
	vx_counter_add(cv->svc->stage_errors[st], 1);
	conversation_emit_error(cv, orch_stage_names[st], code, "%s", msg);
	if (cv->phase == PH_LISTENING || cv->phase == PH_TRANSCRIBING) {
		if (cv->link[ORCH_STT].c)
			vx_wsclient_send_text(cv->link[ORCH_STT].c,
					      "{\"event\":\"cancel\"}", 18);
	}
	if (cv->phase != PH_IDLE)
		conv_turn_finish(cv, false, orch_stage_names[st]);
}

/* Barge-in: the user speaks (or types) over the reply. */
void conv_turn_interrupt(conversation *cv)
{
	vx_log_info(cv->req_id, "conversation %s: barge-in on turn %d", cv->id,
		    cv->t.seq);
	conv_reply_cancel(cv);
	conversation_emit_type(cv, "interrupted");
	conv_turn_finish(cv, true, NULL);
}

/* A user message is complete: reply, or end quietly if it is empty. */
void conv_turn_user_done(conversation *cv)
{
	turn *t = &cv->t;
	while (t->user.len && t->user.data[t->user.len - 1] == ' ')
		t->user.data[--t->user.len] = 0;
	if (!t->user.len) {
		conversation_emit_text(cv, "transcript", "", 0);
		conv_turn_finish(cv, false, NULL);
		return;
	}
	if (!t->from_text)
		conversation_emit_text(cv, "transcript", t->user.data, t->user.len);
	conv_reply_start(cv);
}

bool conv_turn_can_barge_in(conversation *cv)
{
	return cv->svc->barge_in &&
	       (cv->phase == PH_RESPONDING || cv->phase == PH_PLAYING);
}
