/*
 * api_ws.c - /ws/generate: chat generations over a WebSocket.
 *
 * The client sends a request as a JSON text message, the same body as
 * POST /generate (optionally with "event":"generate" and an "id" that is
 * echoed in every event of that request). The server answers with
 *   {"event":"token","text":...}        content, as it is generated
 *   {"event":"reasoning","text":...}    reasoning (unless "reasoning":false)
 *   {"event":"done","finish_reason":...,"model":...,"usage":{...},"timings":{...}}
 *   {"event":"error","code":...,"message":...,"status":N}
 * {"event":"cancel"} stops the generation in flight at once (its upstream
 * connection is closed); a "done" with finish_reason "cancelled" follows.
 * {"event":"end"} (a request is one message, so there is no input to end)
 * is answered with {"event":"done","end":true} once nothing runs or waits
 * on the socket: at once when idle, else after the last "done", as
 * /ws/synthesize does. Messages holding a NUL (raw or \u0000) are refused
 * ("invalid_string") rather than read cut short. {"event":"config"} (or
 * "start") configures nothing and is answered {"event":"ready"}: a client
 * that connects ahead of its first request (the orchestrator) sends it so
 * the config deadline (--ws-config-timeout-s) does not close the socket.
 * The socket stays open: after "done" (or "error") the next request may
 * come. A request sent while one is running is refused ("busy") unless the
 * running one was cancelled, in which case it starts as soon as the
 * cancelled one has wound down (a barge-in does not have to wait); a
 * newer request replaces such a waiting one ("superseded" error) and a
 * "cancel" drops it silently.
 *
 * Threads: callbacks run on the lws service thread and only parse and
 * queue; generations run on the service's pool. The connection state is
 * shared by both and reference-counted; closing the socket cancels the
 * generation in flight.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm_gen.h"
#include "llm_service.h"
#include "vx_json.h"
#include "vx_ws.h"

#define WS_ID_MAX 64   /* bytes of an echoed request id */

typedef struct ws_state ws_state;

typedef struct ws_gen {
	struct ws_gen *next_live, *prev_live;   /* svc->ws_live, while running */
	ws_state *st;
	vx_wsconn *c;
	llm_params p;
	atomic_bool cancel;          /* set by "cancel" or by the socket closing */
	char id_field[WS_ID_MAX + 16];   /* ,"id":<json> or "" */
	vx_buf ev;                   /* one event being written */
} ws_gen;

struct ws_state {
	llm_service *svc;
	vx_wsconn *c;
	atomic_int refs;             /* the connection's + one per job */
	pthread_mutex_t lock;        /* guards the fields below */
	ws_gen *active;              /* running (or being started) */
	ws_gen *pending;             /* waits for a cancelled active one */
	bool end_owed;               /* an "end" came while busy */
	bool closed;
};

static const char ws_ended[] = "{\"event\":\"done\",\"end\":true}";

/* Answers an "end" that waited for the socket to go idle. */
static void ws_pay_end(ws_state *st)
{
	pthread_mutex_lock(&st->lock);
	bool owed = st->end_owed && !st->active && !st->pending;
	if (owed)
		st->end_owed = false;
	pthread_mutex_unlock(&st->lock);
	if (owed)
		vx_ws_send_text(st->c, ws_ended, sizeof(ws_ended) - 1);
}

static void ws_state_unref(ws_state *st)
{
	if (atomic_fetch_sub(&st->refs, 1) != 1)
		return;
	pthread_mutex_destroy(&st->lock);
	free(st);
}

static void ws_gen_free(ws_gen *g)
{
	if (!g)
		return;
	llm_params_release(&g->p);
	vx_buf_release(&g->ev);
	free(g);
}

static void ws_send_ev(vx_wsconn *c, const char *id_field, vx_buf *b)
{
	/* b holds {"event":...  without the closing brace */
	vx_buf_printf(b, "%s}", id_field);
	if (b->data)
		vx_ws_send_text(c, b->data, b->len);
}

static void ws_error(vx_wsconn *c, const char *id_field, int status,
		     const char *code, const char *message)
{
	char fields[WS_ID_MAX + 48];   /* ,"status":N,"id":<json> */
	snprintf(fields, sizeof(fields), ",\"status\":%d%s", status, id_field);
	vx_ws_send_error_fields(c, fields, code, "%s", message);
}

static int ws_piece(void *user, llm_piece_kind kind, const char *text,
		    size_t len)
{
	ws_gen *g = user;
	vx_buf *b = &g->ev;
	vx_buf_reset(b);
	vx_buf_printf(b, "{\"event\":\"%s\",\"text\":",
		      kind == LLM_REASONING ? "reasoning" : "token");
	vx_buf_json_str(b, text, len);
	vx_buf_printf(b, "%s}", g->id_field);
	return !b->data || vx_ws_send_text(g->c, b->data, b->len) < 0;
}

static void ws_live_add(llm_service *svc, ws_gen *g)
{
	pthread_mutex_lock(&svc->ws_lock);
	g->prev_live = NULL;
	g->next_live = svc->ws_live;
	if (svc->ws_live)
		svc->ws_live->prev_live = g;
	svc->ws_live = g;
	pthread_mutex_unlock(&svc->ws_lock);
}

static void ws_live_remove(llm_service *svc, ws_gen *g)
{
	pthread_mutex_lock(&svc->ws_lock);
	if (g->prev_live)
		g->prev_live->next_live = g->next_live;
	else
		svc->ws_live = g->next_live;
	if (g->next_live)
		g->next_live->prev_live = g->prev_live;
	pthread_mutex_unlock(&svc->ws_lock);
}

void llm_ws_cancel_all(llm_service *svc)
{
	pthread_mutex_lock(&svc->ws_lock);
	for (ws_gen *g = svc->ws_live; g; g = g->next_live)
		atomic_store(&g->cancel, true);
	pthread_mutex_unlock(&svc->ws_lock);
}

static void ws_launch(ws_gen *g, bool has_slot);

static void ws_job(void *arg)
{
	ws_gen *g = arg;
	ws_state *st = g->st;
	llm_service *svc = st->svc;
	llm_gen_result res;
	llm_gen_run(svc, &g->p, &g->cancel, ws_piece, g, &res);
	ws_live_remove(svc, g);
	vx_buf *b = &g->ev;
	vx_buf_reset(b);
	if (res.status && res.status != 499) {
		ws_error(g->c, g->id_field, res.status, res.code, res.error);
	} else {
		const char *model = llm_service_model(svc, g->p.req.model,
						      res.model);
		vx_buf_puts(b, "{\"event\":\"done\",\"finish_reason\":");
		vx_buf_json_str(b, res.finish_reason, strlen(res.finish_reason));
		vx_buf_puts(b, ",\"model\":");
		vx_buf_json_str(b, model, strlen(model));
		vx_buf_puts(b, ",");
		llm_gen_usage_json(&res, true, b);
		ws_send_ev(g->c, g->id_field, b);
	}
	pthread_mutex_lock(&st->lock);
	ws_gen *next = st->pending;
	bool launch = next && !st->closed;
	st->pending = NULL;
	st->active = launch ? next : NULL;
	pthread_mutex_unlock(&st->lock);
	vx_wsconn *c = g->c;
	ws_gen_free(g);
	ws_gen_free(launch ? NULL : next);
	if (launch) {
		ws_launch(next, true);   /* takes over this job's slot */
	} else {
		ws_pay_end(st);
		llm_gen_leave(svc);      /* last use of the server's state */
	}
	vx_ws_unref(c);
	ws_state_unref(st);
}

/* Starts g, already st->active: admission (unless it takes over a
 * finished job's slot), then the pool. */
static void ws_launch(ws_gen *g, bool has_slot)
{
	ws_state *st = g->st;
	llm_service *svc = st->svc;
	const char *code = "overloaded";
	char msg[128];
	snprintf(msg, sizeof(msg), "all %d generation slots are busy; retry shortly",
		 svc->max_concurrent);
	if (atomic_load(&svc->stopping)) {
		code = "unavailable";
		snprintf(msg, sizeof(msg), "the server is shutting down");
	} else if (has_slot || llm_gen_admit(svc) == 0) {
		has_slot = true;
		atomic_fetch_add(&st->refs, 1);
		vx_ws_ref(g->c);
		ws_live_add(svc, g);
		if (vx_pool_submit(svc->pool, ws_job, g) == 0)
			return;
		ws_live_remove(svc, g);
		vx_ws_unref(g->c);
		atomic_fetch_sub(&st->refs, 1);   /* the connection still holds one */
		code = "unavailable";
		snprintf(msg, sizeof(msg), "the server is shutting down");
	}
	pthread_mutex_lock(&st->lock);
	if (st->active == g)
		st->active = NULL;
	pthread_mutex_unlock(&st->lock);
	ws_error(g->c, g->id_field, 503, code, msg);
	ws_gen_free(g);
	ws_pay_end(st);
	if (has_slot)
		llm_gen_leave(svc);
}

static int ws_open(vx_wsconn *c, void *user, void **ret_state)
{
	ws_state *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->svc = user;
	st->c = c;
	atomic_init(&st->refs, 1);
	pthread_mutex_init(&st->lock, NULL);
	*ret_state = st;
	return 0;
}

static void ws_request(ws_state *st, const char *text, size_t len)
{
	llm_service *svc = st->svc;
	ws_gen *g = calloc(1, sizeof(*g));
	llm_params_error e;
	if (!g) {
		ws_error(st->c, "", 500, "out_of_memory", "out of memory");
		return;
	}
	g->st = st;
	g->c = st->c;
	if (llm_params_parse(text, len, &svc->limits, &g->p, &e) < 0) {
		(void)vx_json_id_member(g->p.json, WS_ID_MAX, g->id_field,
					sizeof(g->id_field));
		ws_error(st->c, g->id_field, e.status, e.code, e.message);
		ws_gen_free(g);
		return;
	}
	(void)vx_json_id_member(g->p.json, WS_ID_MAX, g->id_field,
				sizeof(g->id_field));
	g->p.req.request_id = vx_ws_request_id(st->c);
	pthread_mutex_lock(&st->lock);
	ws_gen *active = st->active, *old_pending = NULL;
	bool busy = active && !atomic_load(&active->cancel);
	if (!busy && active) {
		old_pending = st->pending;   /* the newest request wins */
		st->pending = g;
	} else if (!busy) {
		st->active = g;
	}
	pthread_mutex_unlock(&st->lock);
	if (old_pending)
		ws_error(st->c, old_pending->id_field, 409, "superseded",
			 "a newer request replaced this one before it started");
	ws_gen_free(old_pending);
	if (busy) {
		ws_error(st->c, g->id_field, 409, "busy",
			 "a generation is running on this socket; wait for its "
			 "done event or send {\"event\":\"cancel\"}");
		ws_gen_free(g);
	} else if (!active) {
		ws_launch(g, false);
	}
}

/* "end": answered now when idle, else when the socket goes idle. */
static void ws_end(ws_state *st)
{
	pthread_mutex_lock(&st->lock);
	bool idle = !st->active && !st->pending;
	if (!idle)
		st->end_owed = true;
	pthread_mutex_unlock(&st->lock);
	if (idle)
		vx_ws_send_text(st->c, ws_ended, sizeof(ws_ended) - 1);
}

static void ws_text(vx_wsconn *c, void *state, const char *text, size_t len)
{
	ws_state *st = state;
	(void)c;
	cJSON *j = cJSON_ParseWithLength(text, len);
	const cJSON *ev = cJSON_GetObjectItemCaseSensitive(j, "event");
	const char *name = cJSON_IsString(ev) ? ev->valuestring : NULL;
	if (j && vx_ws_text_has_nul(text, len)) {
		ws_error(st->c, "", 400, "invalid_string",
			 "JSON strings must not contain NUL (\\u0000)");
	} else if (ev && !name) {
		ws_error(st->c, "", 400, "invalid_type", "\"event\" must be a string");
	} else if (name && !strcmp(name, "cancel")) {
		pthread_mutex_lock(&st->lock);
		if (st->active)
			atomic_store(&st->active->cancel, true);
		ws_gen *pending = st->pending;
		st->pending = NULL;
		pthread_mutex_unlock(&st->lock);
		ws_gen_free(pending);
	} else if (name && !strcmp(name, "end")) {
		ws_end(st);
	} else if (name && (!strcmp(name, "config") || !strcmp(name, "start"))) {
		static const char ready[] = "{\"event\":\"ready\"}";
		vx_ws_send_text(st->c, ready, sizeof(ready) - 1);
	} else if (j && name && strcmp(name, "generate") != 0) {
		ws_error(st->c, "", 400, "unknown_event",
			 "events are generate (or a bare request), cancel, end, "
			 "config");
	} else {
		ws_request(st, text, len);   /* also reports bad JSON */
	}
	cJSON_Delete(j);
}

static void ws_close(vx_wsconn *c, void *state)
{
	ws_state *st = state;
	(void)c;
	pthread_mutex_lock(&st->lock);
	st->closed = true;
	if (st->active)
		atomic_store(&st->active->cancel, true);
	ws_gen *pending = st->pending;
	st->pending = NULL;
	pthread_mutex_unlock(&st->lock);
	ws_gen_free(pending);
	ws_state_unref(st);
}

const vx_ws_route llm_ws_routes[] = {
	{ "/ws/generate", ws_open, ws_text, NULL, ws_close },
};
const size_t llm_n_ws_routes = sizeof(llm_ws_routes) / sizeof(llm_ws_routes[0]);
