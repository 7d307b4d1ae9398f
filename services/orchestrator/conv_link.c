/*
 * conv_link.c - a conversation's upstream sockets (conv_int.h): one
 * vx_wsclient connection per stage to /ws/detect, /ws/transcribe,
 * /ws/generate and /ws/synthesize. A connect that fails is retried once on
 * another instance (the machine then sends the work in flight again); a
 * socket that closes is reopened by the next send, not sooner than
 * CONV_RECONNECT_MS. The callbacks (vx_wsclient thread) take the
 * conversation's lock, drop what an old socket says (generation number)
 * and turn the rest into one conv_event for conv_run.
 */
#include "conv_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "vx_log.h"

/* The user pointer of one upstream socket. */
typedef struct link_ref {
	conversation *cv;
	int stage;
	unsigned gen;
} link_ref;

int conv_link_send(conversation *cv, int st, const void *data, size_t len,
		   bool binary)
{
	conv_link *l = &cv->link[st];
	/* After a failure, not sooner than retry_after - unless the health
	 * checker has seen an instance up since (a failure marks it down), so
	 * a stage that came back is used at once. */
	if (!l->c && !cv->closed && (conv_now_us() >= l->retry_after ||
				     upstream_healthy(cv->svc->up[st]) > 0))
		conv_link_connect(cv, st, -1, false);
	if (!l->c)
		return -ENOTCONN;
	int r = binary ? vx_wsclient_send_binary(l->c, data, len) :
			 vx_wsclient_send_text(l->c, data, len);
	if (r < 0 && r != -EPIPE)
		vx_log_warn(cv->req_id, "%s: send: %s", orch_stage_names[st],
			    strerror(-r));
	return r;
}

void conv_link_send_if_open(conversation *cv, int st, const char *s)
{
	if (cv->link[st].c)
		vx_wsclient_send_text(cv->link[st].c, s, strlen(s));
}

void conv_link_close(conversation *cv, int st)
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

void conv_link_unreachable(conversation *cv, int st, char *buf, size_t len)
{
	/* ws://host:port/ws/... -> http://host:port */
	const char *u = cv->link[st].url, *host = strstr(u, "://");
	host = host ? host + 3 : u;
	int n = (int)strcspn(host, "/");
	char env[8];
	size_t i = 0;
	for (; orch_stage_names[st][i] && i < sizeof(env) - 1; i++)
		env[i] = (char)toupper((unsigned char)orch_stage_names[st][i]);
	env[i] = 0;
	snprintf(buf, len, "cannot reach voxline-%s at http://%.*s: start it (make run "
		 "starts the whole stack) or point --%s-url / VOXLINE_ORCHESTRATOR_%s_URL "
		 "at a running server", orch_stage_names[st], n, host,
		 orch_stage_names[st], env);
}

static const vx_wsclient_callbacks link_callbacks;

void conv_link_connect(conversation *cv, int st, int avoid, bool retried)
{
	orch_service *svc = cv->svc;
	conv_link *l = &cv->link[st];
	char hdr[96 + sizeof(svc->upstream_auth)];
	l->inst = upstream_pick(svc->up[st], avoid, l->url, sizeof(l->url));
	snprintf(hdr, sizeof(hdr), "X-Request-Id: %s\r\n%s", cv->req_id,
		 svc->upstream_auth);
	link_ref *ref = malloc(sizeof(*ref));
	if (!ref)
		return;
	*ref = (link_ref){ .cv = cv, .stage = st, .gen = ++l->gen };
	atomic_fetch_add(&cv->refs, 1);
	int r = vx_wsclient_connect(svc->wsc, l->url, hdr, &link_callbacks, ref, &l->c);
	if (r < 0) {
		/* No callback will come: undo (the caller holds a reference). */
		atomic_fetch_sub(&cv->refs, 1);
		free(ref);
		l->c = NULL;
		l->retry_after = conv_now_us() + CONV_RECONNECT_MS * 1000;
		vx_log_warn(cv->req_id, "%s: connect %s: %s", orch_stage_names[st],
			    l->url, strerror(-r));
		return;
	}
	l->open = false;
	l->retried = retried;
	if (cv->cfg_msg[st])
		vx_wsclient_send_text(l->c, cv->cfg_msg[st], strlen(cv->cfg_msg[st]));
	if (st == ORCH_VAD)
		cv->vad_base = cv->bytes_in;
}

static bool is_current(conversation *cv, const link_ref *ref)
{
	return !cv->closed && cv->link[ref->stage].gen == ref->gen &&
	       cv->link[ref->stage].c;
}

/* ---- what a stage says, as events ---- */

static const char *str(const cJSON *j, const char *key)
{
	return cJSON_GetStringValue(cJSON_GetObjectItem(j, key));
}

static enum conv_ev_kind vad_kind(const char *ev)
{
	if (!strcmp(ev, "speech_start"))
		return CONV_EV_SPEECH_START;
	if (!strcmp(ev, "speech_end"))
		return CONV_EV_SPEECH_END;
	return !strcmp(ev, "error") ? CONV_EV_VAD_ERROR : CONV_EV_TICK;
}

static enum conv_ev_kind stt_kind(const char *ev)
{
	if (!strcmp(ev, "partial"))
		return CONV_EV_STT_PARTIAL;
	if (!strcmp(ev, "final"))
		return CONV_EV_STT_FINAL;
	return !strcmp(ev, "error") ? CONV_EV_STT_ERROR : CONV_EV_TICK;
}

static enum conv_ev_kind llm_kind(const char *ev)
{
	if (!strcmp(ev, "token"))
		return CONV_EV_LLM_TOKEN;
	if (!strcmp(ev, "reasoning"))
		return CONV_EV_LLM_REASONING;
	if (!strcmp(ev, "done"))
		return CONV_EV_LLM_DONE;
	return !strcmp(ev, "error") ? CONV_EV_LLM_ERROR : CONV_EV_TICK;
}

static enum conv_ev_kind tts_kind(const char *ev)
{
	if (!strcmp(ev, "start"))
		return CONV_EV_TTS_START;
	if (!strcmp(ev, "done"))
		return CONV_EV_TTS_DONE;
	if (!strcmp(ev, "cancelled"))
		return CONV_EV_TTS_CANCELLED;
	return !strcmp(ev, "error") ? CONV_EV_TTS_ERROR : CONV_EV_TICK;
}

/* TTS's "ready": it must speak the client's format. */
static void tts_ready(conversation *cv, const cJSON *j)
{
	const cJSON *sr = cJSON_GetObjectItem(j, "sample_rate");
	const char *enc = str(j, "encoding");
	if ((cJSON_IsNumber(sr) && (int)sr->valuedouble != cv->rate) ||
	    (enc && strcmp(enc, conv_enc_name(cv->enc))))
		conversation_emit_error(cv, "tts", "bad_format",
					"voxline-tts answers %d Hz %s, not %d Hz %s",
					cJSON_IsNumber(sr) ? (int)sr->valuedouble : 0,
					enc ? enc : "?", cv->rate, conv_enc_name(cv->enc));
}

/* One message of the stage as an event; kind TICK: none of interest. */
static void link_event(conversation *cv, int st, const char *ev, const cJSON *j)
{
	conv_event e = { .now = conv_now_us(), .stage = st, .id = str(j, "id"),
			 .code = str(j, "code") };
	switch (st) {
	case ORCH_VAD: e.kind = vad_kind(ev); break;
	case ORCH_STT: e.kind = stt_kind(ev); break;
	case ORCH_LLM: e.kind = llm_kind(ev); break;
	default: e.kind = tts_kind(ev); break;
	}
	if (st == ORCH_TTS && !strcmp(ev, "ready"))
		tts_ready(cv, j);
	if (e.kind == CONV_EV_TICK)
		return;
	bool err = e.kind == CONV_EV_VAD_ERROR || e.kind == CONV_EV_STT_ERROR ||
		   e.kind == CONV_EV_LLM_ERROR || e.kind == CONV_EV_TTS_ERROR;
	e.text = str(j, err ? "message" : "text");
	e.len = e.text ? strlen(e.text) : 0;
	if (e.kind == CONV_EV_SPEECH_START) {
		const cJSON *sm = cJSON_GetObjectItem(j, "start_ms");
		e.start_ms = cJSON_IsNumber(sm) ? (int64_t)sm->valuedouble : 0;
	}
	conv_run(cv, &e, NULL, 0);
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
	const char *ev = str(j, "event");
	if (!ev) {
		cJSON_Delete(j);
		return;
	}
	pthread_mutex_lock(&cv->lock);
	if (is_current(cv, ref))
		link_event(cv, ref->stage, ev, j);
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
	if (is_current(cv, ref)) {
		conv_event e = { .kind = CONV_EV_TTS_AUDIO, .now = conv_now_us(),
				 .stage = ORCH_TTS, .bytes = len };
		conv_run(cv, &e, data, len);
	}
	pthread_mutex_unlock(&cv->lock);
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
			/* Could not connect: once more, elsewhere, with the work. */
			vx_log_warn(cv->req_id, "%s: connect failed (%s), retrying",
				    orch_stage_names[st], strerror(-err));
			conv_link_connect(cv, st, l->inst, true);
		}
		if (l->c) {
			conv_run_simple(cv, CONV_EV_LINK_UP, st);
		} else {
			l->retry_after = conv_now_us() + CONV_RECONNECT_MS * 1000;
			char msg[512];
			if (was_open)
				snprintf(msg, sizeof(msg), "voxline-%s closed the connection: %s",
					 orch_stage_names[st], err ? strerror(-err) : "closed");
			else
				conv_link_unreachable(cv, st, msg, sizeof(msg));
			conv_event e = { .kind = CONV_EV_LINK_DOWN, .now = conv_now_us(),
					 .stage = st, .text = msg, .len = strlen(msg) };
			conv_run(cv, &e, NULL, 0);
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
