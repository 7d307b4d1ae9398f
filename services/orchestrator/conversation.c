/*
 * conversation.c - one voice conversation (see conversation.h): its life
 * cycle, start (history load, configs), the client side (audio, text,
 * utterance, stop, close) and the ticker, each turned into an event for
 * the state machine (conv_run, conv_act.c); events to the client. How the
 * files of a conversation fit together: conv_int.h.
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

void conversation_emit_error(conversation *cv, const char *stage, const char *code,
			     const char *fmt, ...)
{
	char msg[640];
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
	conv_machine_cfg mc = {
		.realtime = realtime, .barge_in = svc->barge_in, .policy = svc->policy,
		.stage_timeout_us = (int64_t)svc->stage_timeout_s * 1000000,
		.bytes_per_ms = 32.0,
	};
	conv_machine_init(&cv->m, &mc);
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
	conv_machine_release(&cv->m);
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
	free(cv->model);
	free(cv->language);
	pthread_mutex_destroy(&cv->lock);
	free(cv);
}

/* The config messages each upstream gets first. */
static int build_configs(conversation *cv)
{
	vx_buf b = {0};
	/* VAD ends speech after the shortest silence that may end a turn;
	 * the machine waits the rest the end-of-turn policy wants. */
	vx_buf_printf(&b, "{\"sample_rate\":%d,\"encoding\":\"%s\",\"min_silence_ms\":%d}",
		      cv->rate, conv_enc_name(cv->enc), cv->svc->policy.eot_min_ms);
	cv->cfg_msg[ORCH_VAD] = vx_buf_detach(&b, NULL);
	const char *lang = cv->language ? cv->language : "en";
	vx_buf_printf(&b, "{\"sample_rate\":%d,\"encoding\":\"%s\",\"language\":",
		      cv->rate, conv_enc_name(cv->enc));
	vx_buf_json_str(&b, lang, strlen(lang));
	vx_buf_puts(&b, "}");
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
	char *meta, *greeting;   /* conv_config's, or NULL */
} start_job;

static void start_job_free(start_job *j)
{
	free(j->id);
	free(j->voice);
	free(j->prompt);
	free(j->meta);
	free(j->greeting);
	free(j);
}

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
	if (r >= 0 && j->meta) {
		int mr = history_set_meta(svc->hist, id, j->meta);
		if (mr < 0)
			vx_log_warn(cv->req_id, "conversation %s: meta not stored: %s", id,
				    strerror(-mr));
	}

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
	if (j->greeting && !cv->closed) {
		conv_event e = { .kind = CONV_EV_SAY, .now = conv_now_us(), .text = j->greeting,
				 .len = strlen(j->greeting) };
		conv_run(cv, &e, NULL, 0);
	}
out_unlock:
	pthread_mutex_unlock(&cv->lock);
	history_conversation_release(&hc);
	start_job_free(j);
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
	cv->m.cfg.bytes_per_ms = cv->bpm;
	cv->m.cfg.marks = cfg->marks;
	cv->m.cfg.utter_max = (size_t)cv->svc->max_utterance_s * (size_t)cv->rate *
			      cv->sample_bytes;
	free(cv->model);
	free(cv->language);
	cv->model = cfg->model && *cfg->model ? strdup(cfg->model) : NULL;
	cv->language = cfg->language && *cfg->language ? strdup(cfg->language) : NULL;
	pthread_mutex_unlock(&cv->lock);

	start_job *j = calloc(1, sizeof(*j));
	if (!j)
		goto out_nomem;
	j->cv = cv;
	j->id = cfg->conversation_id ? strdup(cfg->conversation_id) : NULL;
	j->voice = cfg->voice ? strdup(cfg->voice) : NULL;
	j->prompt = cfg->system_prompt ? strdup(cfg->system_prompt) : NULL;
	j->meta = cfg->meta_json ? strdup(cfg->meta_json) : NULL;
	j->greeting = cfg->greeting && *cfg->greeting ? strdup(cfg->greeting) : NULL;
	conversation_ref(cv);
	if (sync) {
		start_job_run(j);
		return 0;
	}
	if (vx_pool_submit(cv->svc->db_pool, start_job_run, j) == 0)
		return 0;
	conversation_unref(cv);
	start_job_free(j);
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
	conv_event e = { .kind = CONV_EV_AUDIO, .now = conv_now_us(), .bytes = len,
			 .utter_len = cv->utter.len };
	conv_run(cv, &e, data, len);
out_unlock:
	pthread_mutex_unlock(&cv->lock);
	return r;
}

int conversation_say(conversation *cv, const char *text, size_t len)
{
	int r = -ENOTCONN;
	pthread_mutex_lock(&cv->lock);
	if (cv->ready && !cv->closed) {
		conv_event e = { .kind = CONV_EV_SAY, .now = conv_now_us(), .text = text,
				 .len = len };
		r = conv_run(cv, &e, NULL, 0);
	}
	pthread_mutex_unlock(&cv->lock);
	return r;
}

void conversation_played(conversation *cv, uint64_t bytes)
{
	pthread_mutex_lock(&cv->lock);
	if (cv->ready && !cv->closed) {
		conv_event e = { .kind = CONV_EV_PLAYED, .now = conv_now_us(), .bytes = bytes };
		conv_run(cv, &e, NULL, 0);
	}
	pthread_mutex_unlock(&cv->lock);
}

int conversation_text(conversation *cv, const char *text, size_t len)
{
	int r = 0;
	pthread_mutex_lock(&cv->lock);
	if (!cv->ready || cv->closed) {
		r = -ENOTCONN;
		goto out_unlock;
	}
	conv_event e = { .kind = CONV_EV_TEXT, .now = conv_now_us(), .text = text,
			 .len = len };
	r = conv_run(cv, &e, NULL, 0);
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
	if (!cv->link[ORCH_STT].c)
		conv_link_connect(cv, ORCH_STT, -1, false);
	conv_event e = { .kind = CONV_EV_UTTERANCE, .now = conv_now_us(), .bytes = len };
	r = conv_run(cv, &e, data, len);
out_unlock:
	pthread_mutex_unlock(&cv->lock);
	return r;
}

int conversation_stop(conversation *cv)
{
	int r = 0;
	pthread_mutex_lock(&cv->lock);
	if (!cv->ready || cv->closed)
		r = -ENOTCONN;
	else
		conv_run_simple(cv, CONV_EV_STOP, -1);
	pthread_mutex_unlock(&cv->lock);
	return r;
}

void conversation_close(conversation *cv)
{
	pthread_mutex_lock(&cv->lock);
	if (!cv->closed) {
		cv->closed = true;   /* no events: the client is gone */
		conv_run_simple(cv, CONV_EV_CLOSE, -1);
		for (int st = 0; st < ORCH_N_STAGES; st++)
			conv_link_close(cv, st);
	}
	pthread_mutex_unlock(&cv->lock);
}

/* ---- the ticker ---- */

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
			if (!cv->closed && cv->ready) {
				conv_event e = { .kind = CONV_EV_TICK, .now = now };
				conv_run(cv, &e, NULL, 0);
			}
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
