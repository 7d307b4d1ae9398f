/*
 * conv_link.c - a conversation's upstream sockets (conv_int.h): one
 * vx_wsclient connection per stage to /ws/detect, /ws/transcribe,
 * /ws/generate and /ws/synthesize. A connect that fails is retried once on
 * another instance, with the work in flight sent again; a socket that
 * closes is reopened by the next send, not sooner than CONV_RECONNECT_MS.
 * The callbacks (vx_wsclient thread) take the conversation's lock, drop
 * what an old socket says (generation number) and hand the rest to the
 * stage's handler in conv_listen.c or conv_reply.c.
 */
#include "conv_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vx_log.h"

/* The user pointer of one upstream socket. */
typedef struct link_ref {
	conversation *cv;
	int stage;
	unsigned gen;
} link_ref;

/* Sends one message on the stage's socket, opening one when there is none
 * (not sooner than retry_after). -ENOTCONN when there is none to use. */
int conv_link_send(conversation *cv, int st, const void *data, size_t len,
		   bool binary)
{
	conv_link *l = &cv->link[st];
	if (!l->c && !cv->closed && conv_now_us() >= l->retry_after)
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

int conv_link_send_str(conversation *cv, int st, const char *s)
{
	return conv_link_send(cv, st, s, strlen(s), false);
}

/* Closes the stage's socket; its late callbacks are ignored. */
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

/* Sends every unfinished sentence of the turn to TTS again, in order. */
void conv_link_replay_tts(conversation *cv, vx_wsclient_conn *c)
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
		conv_link_replay_tts(cv, l->c);
	}
}

static const vx_wsclient_callbacks link_callbacks;

void conv_link_connect(conversation *cv, int st, int avoid, bool retried)
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
		l->retry_after = conv_now_us() + CONV_RECONNECT_MS * 1000;
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
		case ORCH_VAD: conv_listen_on_vad(cv, ev, j); break;
		case ORCH_STT: conv_listen_on_stt(cv, ev, j); break;
		case ORCH_LLM: conv_reply_on_llm(cv, ev, j); break;
		case ORCH_TTS: conv_reply_on_tts(cv, ev, j); break;
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
		conv_reply_on_audio(cv, data, len);
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
			conv_link_connect(cv, st, l->inst, true);
		} else {
			l->retry_after = conv_now_us() + CONV_RECONNECT_MS * 1000;
			if (stage_in_use(cv, st)) {
				char msg[128];
				snprintf(msg, sizeof(msg), "voxline-%s %s: %s",
					 orch_stage_names[st],
					 was_open ? "closed the connection" : "unreachable",
					 err ? strerror(-err) : "closed");
				if (st == ORCH_VAD) {
					vx_counter_add(cv->svc->stage_errors[st], 1);
					conversation_emit_error(cv, "vad", "unavailable", "%s", msg);
					if (cv->phase == PH_LISTENING) {
						cv->t.t_input_end = conv_now_us();
						conv_listen_end(cv);
					}
				} else {
					conv_turn_fail(cv, st, "unavailable", msg);
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
