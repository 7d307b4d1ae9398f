/*
 * conversation.c - one voice conversation (see conversation.h): its life
 * cycle, start (history load, configs), the client side (audio, text,
 * utterance, close), events to the client, and the ticker (deadlines and
 * "overloaded" retries). The phases of a turn and the other parts of the
 * state machine are in conv_int.h.
 */
#include "conv_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vx_log.h"

/* ---- events to the client ---- */

void conversation_emit(conversation *cv, const char *type, const char *json, size_t len)
{
	if (!cv->closed && cv->sink.event)
		cv->sink.event(cv->sink_user, type, json, len);
}

void conversation_emit_type(conversation *cv, const char *type)
{
	char m[64];
	int n = snprintf(m, sizeof(m), "{\"type\":\"%s\"}", type);
	conversation_emit(cv, type, m, (size_t)n);
}

/* {"type":type,"text":text} */
void conversation_emit_text(conversation *cv, const char *type, const char *text,
			    size_t len)
{
	vx_buf b = {0};
	vx_buf_printf(&b, "{\"type\":\"%s\",\"text\":", type);
	vx_buf_json_str(&b, text, len);
	vx_buf_puts(&b, "}");
	if (b.data)
		conversation_emit(cv, type, b.data, b.len);
	vx_buf_release(&b);
}

void conversation_emit_error(conversation *cv, const char *stage, const char *code,
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
		conversation_emit(cv, "error", b.data, b.len);
	vx_buf_release(&b);
}

void conversation_ctx_push(conversation *cv, const char *role, const char *content)
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
		      conv_enc_name(cv->enc));
	cv->cfg_msg[ORCH_VAD] = vx_buf_detach(&b, NULL);
	vx_buf_printf(&b, "{\"sample_rate\":%d,\"encoding\":\"%s\",\"language\":\"en\"}",
		      cv->rate, conv_enc_name(cv->enc));
	cv->cfg_msg[ORCH_STT] = vx_buf_detach(&b, NULL);
	vx_buf_printf(&b, "{\"sample_rate\":%d,\"encoding\":\"%s\"", cv->rate,
		      conv_enc_name(cv->enc));
	if (cv->voice) {
		vx_buf_puts(&b, ",\"voice\":");
		vx_buf_json_str(&b, cv->voice, strlen(cv->voice));
	}
	vx_buf_puts(&b, "}");
	cv->cfg_msg[ORCH_TTS] = vx_buf_detach(&b, NULL);
	/* The LLM socket opens before the first request: a first message
	 * keeps the daemon's config deadline from closing it. */
	cv->cfg_msg[ORCH_LLM] = strdup("{\"event\":\"config\"}");
	return cv->cfg_msg[ORCH_VAD] && cv->cfg_msg[ORCH_STT] &&
	       cv->cfg_msg[ORCH_TTS] && cv->cfg_msg[ORCH_LLM] ? 0 : -ENOMEM;
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
		conversation_emit_error(cv, "history",
					r == -EINVAL ? "bad_conversation_id" : "history_failed",
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
			conversation_ctx_push(cv, hc.turns[i].role, hc.turns[i].content);
	if (build_configs(cv) < 0) {
		conversation_emit_error(cv, "orchestrator", "no_memory", "out of memory");
		goto out_unlock;
	}
	if (!cv->closed) {
		conv_link_connect(cv, ORCH_LLM, -1, false);
		conv_link_connect(cv, ORCH_TTS, -1, false);
	}
	cv->ready = true;
	vx_buf b = {0};
	vx_buf_puts(&b, "{\"type\":\"ready\",\"conversation_id\":");
	vx_buf_json_str(&b, cv->id, strlen(cv->id));
	vx_buf_printf(&b, ",\"sample_rate\":%d,\"encoding\":\"%s\",\"turns\":%zu}",
		      cv->rate, conv_enc_name(cv->enc), hc.n_turns);
	if (b.data)
		conversation_emit(cv, "ready", b.data, b.len);
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
		conv_link_connect(cv, ORCH_VAD, -1, false);
		conv_link_connect(cv, ORCH_STT, -1, false);
	}
	conv_listen_ring_put(cv, data, len);
	conv_link_send(cv, ORCH_VAD, data, len, true);
	if (cv->phase == PH_LISTENING) {
		if (cv->utter.len + len <= cv->utter_max) {
			vx_buf_append(&cv->utter, data, len);
			if (!cv->stt_retry_at)   /* else the retry sends utter */
				conv_link_send(cv, ORCH_STT, data, len, true);
		} else {
			/* Too long: take what was said so far. */
			conversation_emit_type(cv, "speech_stopped");
			cv->t.t_input_end = conv_now_us();
			conv_listen_end(cv);
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
	if (conv_turn_can_barge_in(cv))
		conv_turn_interrupt(cv);
	if (cv->phase != PH_IDLE) {
		r = -EBUSY;
		goto out_unlock;
	}
	conv_turn_begin(cv, true);
	cv->t.t_input_end = conv_now_us();
	vx_buf_append(&cv->t.user, text, len);
	conv_turn_user_done(cv);
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
	conv_turn_begin(cv, false);
	cv->phase = PH_LISTENING;
	if (!cv->link[ORCH_STT].c)
		conv_link_connect(cv, ORCH_STT, -1, false);
	if (vx_buf_append(&cv->utter, data, len) < 0) {
		r = -ENOMEM;
		turn_release(&cv->t);
		cv->phase = PH_IDLE;
		goto out_unlock;
	}
	conv_link_send(cv, ORCH_STT, data, len, true);
	cv->t.t_input_end = conv_now_us();
	conv_listen_end(cv);
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
			conv_turn_finish(cv, true, NULL);
		} else if (cv->phase != PH_IDLE) {
			turn_release(&cv->t);
			cv->phase = PH_IDLE;
		}
		cv->closed = true;
		for (int st = 0; st < ORCH_N_STAGES; st++)
			conv_link_close(cv, st);
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
		conv_link_close(cv, st);
		conv_turn_fail(cv, st, "timeout", st == ORCH_STT ?
			       "no transcript in time (--stage-timeout-s)" :
			       st == ORCH_LLM ? "no reply from the language model in time "
			       "(--stage-timeout-s)" : "no audio in time (--stage-timeout-s)");
	}
	if (cv->llm_retry_at && now >= cv->llm_retry_at) {
		cv->llm_retry_at = 0;
		if (cv->llm_busy && cv->llm_req.len)
			conv_link_send(cv, ORCH_LLM, cv->llm_req.data, cv->llm_req.len, false);
	}
	if (cv->stt_retry_at && now >= cv->stt_retry_at) {
		cv->stt_retry_at = 0;
		if ((cv->phase == PH_LISTENING || cv->phase == PH_TRANSCRIBING) &&
		    !cv->link[ORCH_STT].c)
			conv_link_connect(cv, ORCH_STT, -1, true);
	}
	if (cv->tts_retry_at && now >= cv->tts_retry_at) {
		cv->tts_retry_at = 0;
		if (cv->phase == PH_RESPONDING && cv->link[ORCH_TTS].c)
			conv_link_replay_tts(cv, cv->link[ORCH_TTS].c);
	}
	if (cv->phase == PH_PLAYING &&
	    now >= cv->t.t_audio_start + (int64_t)(turn_sent_ms(&cv->t) * 1000))
		conv_turn_finish(cv, false, NULL);
}

static void *ticker_main(void *arg)
{
	orch_service *svc = arg;
	while (!atomic_load(&svc->stopping)) {
		struct timespec d = { 0, ORCH_TICK_MS * 1000000L };
		nanosleep(&d, NULL);
		int64_t now = conv_now_us();
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
