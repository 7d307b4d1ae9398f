/* banter_ws.c - a voxline-banter bot's /ws/chat session; see banter_ws.h. */
#include "banter_ws.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vx_time.h"

#define BANTER_WS_SLICE_MS 50          /* waits look at *stop this often */
#define BANTER_WS_CLOSE_WAIT_MS 5000   /* on_close comes within 2 s (vx_wsclient.h) */

struct banter_ws {
	pthread_mutex_t lock;          /* guards everything below */
	pthread_cond_t cond;
	vx_wsclient_conn *c;
	const atomic_bool *stop;
	bool ready, closed, failed, too_big;
	int close_err;
	char err[512];                 /* the error event, "stage code: message" */
	banter_ws_turn *turn;          /* being collected; NULL between turns */
};

void banter_ws_turn_release(banter_ws_turn *t)
{
	vx_buf_release(&t->text);
	vx_buf_release(&t->audio);
	memset(t, 0, sizeof(*t));
}

static void on_error_event(banter_ws *w, const cJSON *ev)
{
	const char *st = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, "stage"));
	const char *code = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, "code"));
	const char *msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, "message"));
	if (!w->failed)
		snprintf(w->err, sizeof(w->err), "%s %s: %s", st ? st : "orchestrator",
			 code ? code : "error", msg ? msg : "");
	w->failed = true;
}

static void on_text(vx_wsclient_conn *c, void *user, const char *text, size_t len)
{
	banter_ws *w = user;
	(void)c;
	cJSON *ev = cJSON_ParseWithLength(text, len);
	const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, "type"));
	const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, "text"));
	pthread_mutex_lock(&w->lock);
	banter_ws_turn *turn = w->turn;
	if (!type) {
		/* not an event of /ws/chat: ignored */
	} else if (!strcmp(type, "ready")) {
		w->ready = true;
	} else if (!strcmp(type, "error")) {
		on_error_event(w, ev);
	} else if (turn && !strcmp(type, "response_delta") && t) {
		if (turn->text.len + strlen(t) > BANTER_WS_MAX_REPLY_BYTES)
			w->too_big = true;
		else
			vx_buf_puts(&turn->text, t);
	} else if (turn && !strcmp(type, "audio_start") && !turn->audio_start_ms) {
		turn->audio_start_ms = vx_now_ms();
	} else if (turn && !strcmp(type, "metrics")) {
		turn->done = true;
	}
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	cJSON_Delete(ev);
}

static void on_binary(vx_wsclient_conn *c, void *user, const void *data, size_t len)
{
	banter_ws *w = user;
	(void)c;
	pthread_mutex_lock(&w->lock);
	banter_ws_turn *turn = w->turn;
	if (turn && turn->audio.len + len > BANTER_WS_MAX_AUDIO_BYTES)
		w->too_big = true;
	else if (turn && vx_buf_append(&turn->audio, data, len) < 0)
		w->too_big = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static void on_close(vx_wsclient_conn *c, void *user, int err)
{
	banter_ws *w = user;
	(void)c;
	pthread_mutex_lock(&w->lock);
	w->closed = true;
	w->close_err = err ? err : -ECONNRESET;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/* Waits (lock held) until pred, a failure, the close, *stop or the
 * deadline; 0 when pred came, else the reason. */
static int wait_for(banter_ws *w, const bool *pred, double deadline_ms)
{
	while (!*pred) {
		if (w->failed)
			return -EPROTO;
		if (w->too_big)
			return -EFBIG;
		if (w->closed)
			return w->close_err;
		if (w->stop && atomic_load(w->stop))
			return -ECANCELED;
		double left = deadline_ms - vx_now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		vx_cond_wait_ms(&w->cond, &w->lock, left < BANTER_WS_SLICE_MS ?
				(long long)left + 1 : BANTER_WS_SLICE_MS);
	}
	return 0;
}

int banter_ws_open(vx_wsclient *wc, const char *url, const char *headers,
		   const char *start_json,
		   int timeout_ms, const atomic_bool *stop, char *err, size_t err_cap,
		   banter_ws **ret)
{
	banter_ws *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->stop = stop;
	const vx_wsclient_callbacks cb = { .on_text = on_text, .on_binary = on_binary,
					   .on_close = on_close };
	int r = vx_wsclient_connect(wc, url, headers, &cb, w, &w->c);
	if (r < 0) {
		pthread_cond_destroy(&w->cond);
		pthread_mutex_destroy(&w->lock);
		free(w);
		return r;
	}
	r = vx_wsclient_send_text(w->c, start_json, strlen(start_json));
	pthread_mutex_lock(&w->lock);
	if (r == 0)
		r = wait_for(w, &w->ready, vx_now_ms() + timeout_ms);
	if (r == -EPROTO && err_cap)
		snprintf(err, err_cap, "%s", w->err);
	pthread_mutex_unlock(&w->lock);
	if (r < 0) {
		banter_ws_free(w);
		return r;
	}
	*ret = w;
	return 0;
}

int banter_ws_say(banter_ws *w, const char *line, int timeout_ms, char *err,
		  size_t err_cap, banter_ws_turn *t)
{
	cJSON *j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "type", "text");
	cJSON_AddStringToObject(j, "text", line);
	char *msg = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	if (!msg)
		return -ENOMEM;
	pthread_mutex_lock(&w->lock);
	w->turn = t;
	pthread_mutex_unlock(&w->lock);
	int r = vx_wsclient_send_text(w->c, msg, strlen(msg));
	free(msg);
	pthread_mutex_lock(&w->lock);
	if (r == 0)
		r = wait_for(w, &t->done, vx_now_ms() + timeout_ms);
	if (r == -EPROTO && err_cap)
		snprintf(err, err_cap, "%s", w->err);
	w->turn = NULL;
	pthread_mutex_unlock(&w->lock);
	return r;
}

void banter_ws_free(banter_ws *w)
{
	if (!w)
		return;
	vx_wsclient_close(w->c);
	pthread_mutex_lock(&w->lock);
	double deadline = vx_now_ms() + BANTER_WS_CLOSE_WAIT_MS;
	while (!w->closed && vx_now_ms() < deadline)
		vx_cond_wait_ms(&w->cond, &w->lock, BANTER_WS_SLICE_MS);
	bool closed = w->closed;
	pthread_mutex_unlock(&w->lock);
	vx_wsclient_unref(w->c);
	if (!closed)   /* on_close still to come: w must outlive it (a bounded leak) */
		return;
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w);
}
