/*
 * conv_act.c - conv_run (conv_int.h): one event through the conversation's
 * state machine (conv_machine.c decides), then its actions done here: audio
 * into the ring, the utterance buffer and the links; requests built and
 * sent; client events; the end of a turn (Prometheus histograms, the LLM
 * context, the history write on the DB pool, then the metrics event).
 */
#include "conv_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vx_log.h"

/* ---- audio ---- */

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

/* A new STT round: the utterance is the ring's audio from CONV_PREROLL_MS
 * before from_ms (VAD stream time) on, sent at once. */
static void stt_begin(conversation *cv, int64_t from_ms)
{
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
		conv_link_send(cv, ORCH_STT, cv->utter.data, cv->utter.len, true);
}

/* ---- requests ---- */

/* {"id":..,"max_tokens":..,"model":..,"messages":[system, context, user]} */
static int llm_request(conversation *cv, const conv_action *a)
{
	orch_service *svc = cv->svc;
	vx_buf *b = &cv->llm_req;
	const char *model = cv->model ? cv->model : svc->llm_model;
	vx_buf_reset(b);
	vx_buf_printf(b, "{\"id\":\"%s\",\"max_tokens\":%d,", a->id, svc->max_tokens);
	if (model) {
		vx_buf_puts(b, "\"model\":");
		vx_buf_json_str(b, model, strlen(model));
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
	vx_buf_json_str(b, a->text, a->len);
	if (vx_buf_puts(b, "}]}") < 0)
		return -ENOMEM;
	return conv_link_send(cv, ORCH_LLM, b->data, b->len, false);
}

static int tts_send(conversation *cv, const conv_action *a)
{
	vx_buf m = {0};
	vx_buf_puts(&m, "{\"text\":");
	vx_buf_json_str(&m, a->text, a->len);
	vx_buf_printf(&m, ",\"id\":\"t%d.%d\"}", a->seq, a->index);
	int r = m.data ? conv_link_send(cv, ORCH_TTS, m.data, m.len, false) : -ENOMEM;
	vx_buf_release(&m);
	return r;
}

/* A send that found no socket: CONV_EV_LINK_DOWN after the actions. */
static void check_sent(conversation *cv, int st, int r)
{
	if (r < 0 && !cv->link[st].c)
		cv->down |= 1u << st;
}

/* ---- client events ---- */

static void emit_type(conversation *cv, const char *type)
{
	char m[64];
	int n = snprintf(m, sizeof(m), "{\"type\":\"%s\"}", type);
	conversation_emit(cv, type, m, (size_t)n);
}

/* {"type":type,key:text} */
static void emit_str(conversation *cv, const char *type, const char *key,
		     const char *text, size_t len)
{
	vx_buf b = {0};
	vx_buf_printf(&b, "{\"type\":\"%s\",\"%s\":", type, key);
	vx_buf_json_str(&b, text, len);
	vx_buf_puts(&b, "}");
	if (b.data)
		conversation_emit(cv, type, b.data, b.len);
	vx_buf_release(&b);
}

static void emit_audio_start(conversation *cv)
{
	char m[128];
	int n = snprintf(m, sizeof(m), "{\"type\":\"audio_start\",\"sample_rate\":%d,"
			 "\"encoding\":\"%s\"}", cv->rate, conv_enc_name(cv->enc));
	conversation_emit(cv, "audio_start", m, (size_t)n);
}

/* ---- the end of a turn ---- */

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
	int r = 0;   /* a greeting (CONV_EV_SAY) has no user message */
	if (j->user)
		r = history_append_turn(h, j->id, "user", j->user, NULL, false, NULL);
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
static void store_turn(conversation *cv, const turn *t, const char *reply, bool interrupted,
		       const char *timings, const char *event)
{
	hist_job *j = NULL;
	if (t->user.len || (reply && *reply)) {
		if (t->user.len)
			conversation_ctx_push(cv, "user", t->user.data);
		if (reply && *reply)
			conversation_ctx_push(cv, "assistant", reply);
		j = calloc(1, sizeof(*j));
	}
	if (j) {
		j->cv = cv;
		snprintf(j->id, sizeof(j->id), "%s", cv->id);
		j->user = t->user.len ? strdup(t->user.data) : NULL;
		j->reply = reply && *reply ? strdup(reply) : NULL;
		j->reasoning = t->reasoning.len ? strdup(t->reasoning.data) : NULL;
		j->timings = timings ? strdup(timings) : NULL;
		j->event = event ? strdup(event) : NULL;
		j->interrupted = interrupted;
		atomic_fetch_add(&cv->refs, 1);
		if (vx_pool_submit(cv->svc->db_pool, hist_job_run, j) == 0)
			return;
		vx_log_error(cv->req_id, "history queue full: turn %d of %s lost", t->seq, cv->id);
		atomic_fetch_sub(&cv->refs, 1);
		hist_job_free(j);
	}
	if (event)
		conversation_emit(cv, "metrics", event, strlen(event));
}

/* The turn ended: metrics event and histograms, context, history. */
static void finish(conversation *cv, const conv_action *a)
{
	orch_service *svc = cv->svc;
	const turn *t = a->turn;
	vx_buf timings = {0};
	vx_buf_puts(&timings, "{");
	turn_timings_json(t, &timings);
	vx_buf_puts(&timings, "}");
	vx_buf ev = {0};
	vx_buf_printf(&ev, "{\"type\":\"metrics\",\"turn\":%d,\"interrupted\":%s,"
		      "\"error\":", t->seq, a->interrupted ? "true" : "false");
	if (a->error)
		vx_buf_json_str(&ev, a->error, strlen(a->error));
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
	if (a->interrupted)
		vx_counter_add(svc->barge_ins, 1);
	store_turn(cv, t, a->text, a->interrupted, timings.data, ev.data);
	vx_buf_release(&ev);
	vx_buf_release(&timings);
}

/* ---- running ---- */

static void act(conversation *cv, const conv_action *a, const void *data, size_t len)
{
	static const char cancel[] = "{\"event\":\"cancel\"}";
	switch (a->kind) {
	case CONV_ACT_AUDIO_TO_VAD:
		ring_put(cv, data, len);
		conv_link_send(cv, ORCH_VAD, data, len, true);
		break;
	case CONV_ACT_AUDIO_TO_UTTER: vx_buf_append(&cv->utter, data, len); break;
	case CONV_ACT_AUDIO_TO_STT: conv_link_send(cv, ORCH_STT, data, len, true); break;
	case CONV_ACT_UTTER_RESET: vx_buf_reset(&cv->utter); break;
	case CONV_ACT_STT_BEGIN: stt_begin(cv, a->at_ms); break;
	case CONV_ACT_STT_UTTER:
		if (cv->utter.len)
			conv_link_send(cv, ORCH_STT, cv->utter.data, cv->utter.len, true);
		break;
	case CONV_ACT_STT_END:
		check_sent(cv, ORCH_STT, conv_link_send(cv, ORCH_STT, "{\"event\":\"end\"}", 15,
							false));
		break;
	case CONV_ACT_STT_CANCEL: conv_link_send_if_open(cv, ORCH_STT, cancel); break;
	case CONV_ACT_LLM_REQUEST: check_sent(cv, ORCH_LLM, llm_request(cv, a)); break;
	case CONV_ACT_LLM_RESEND:
		if (cv->llm_req.len)
			conv_link_send(cv, ORCH_LLM, cv->llm_req.data, cv->llm_req.len, false);
		break;
	case CONV_ACT_TTS_SEND: check_sent(cv, ORCH_TTS, tts_send(cv, a)); break;
	case CONV_ACT_CANCEL_REPLY:
		if (a->llm)
			conv_link_send_if_open(cv, ORCH_LLM, cancel);
		if (a->tts)
			conv_link_send_if_open(cv, ORCH_TTS, cancel);
		break;
	case CONV_ACT_AUDIO_TO_CLIENT:
		if (!cv->closed && cv->sink.audio)
			cv->sink.audio(cv->sink_user, data, len);
		break;
	case CONV_ACT_EMIT:
		if (a->with_text)
			emit_str(cv, a->type, "text", a->text, a->len);
		else
			emit_type(cv, a->type);
		break;
	case CONV_ACT_EMIT_AUDIO_START: emit_audio_start(cv); break;
	case CONV_ACT_EMIT_INTERRUPTED:
		vx_log_info(cv->req_id, "conversation %s: barge-in on turn %d", cv->id,
			    cv->m.turn_seq);
		emit_str(cv, "interrupted", "heard", a->text, a->len);
		break;
	case CONV_ACT_ERROR:
		vx_counter_add(cv->svc->stage_errors[a->stage], 1);
		conversation_emit_error(cv, orch_stage_names[a->stage], a->code, "%s", a->text);
		break;
	case CONV_ACT_LINK_RESET: conv_link_close(cv, a->stage); break;
	case CONV_ACT_FINISH: finish(cv, a); break;
	}
}

int conv_run(conversation *cv, const conv_event *e, const void *data, size_t len)
{
	int r = conv_machine_event(&cv->m, e);
	if (cv->m.oom)
		vx_log_error(cv->req_id, "conversation %s: out of memory, actions lost", cv->id);
	cv->m.oom = false;
	for (size_t i = 0; i < cv->m.n_acts; i++)
		act(cv, &cv->m.acts[i], data, len);
	while (cv->down) {
		int st = __builtin_ctz(cv->down);
		char msg[512];
		cv->down &= ~(1u << st);
		conv_link_unreachable(cv, st, msg, sizeof(msg));
		conv_event d = { .kind = CONV_EV_LINK_DOWN, .now = e->now, .stage = st,
				 .text = msg, .len = strlen(msg) };
		conv_machine_event(&cv->m, &d);
		for (size_t i = 0; i < cv->m.n_acts; i++)
			act(cv, &cv->m.acts[i], NULL, 0);
	}
	return r;
}

void conv_run_simple(conversation *cv, enum conv_ev_kind kind, int st)
{
	conv_event e = { .kind = kind, .now = conv_now_us(), .stage = st };
	conv_run(cv, &e, NULL, 0);
}
