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
 * Threads: the shared layer (vx_svcws.h) reads messages on the lws thread;
 * generations run one at a time per socket on the service's pool, by a job
 * that holds one generation slot (llm_gen_admit) until the socket's queue
 * is empty. Closing the socket cancels the generation in flight.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm_gen.h"
#include "llm_service.h"
#include "vx_json.h"
#include "vx_svcws.h"

#define WS_ID_MAX 64   /* bytes of an echoed request id */

/* One request: an item of the socket's queue. */
typedef struct ws_gen {
	vx_svcws_item base;
	struct ws_gen *next_live, *prev_live;   /* svc->ws_live, while running */
	vx_svcws_conn *cn;
	llm_params p;
	char id_field[WS_ID_MAX + 16];   /* ,"id":<json> or "" */
	vx_buf ev;                   /* one event being written */
} ws_gen;

static void ws_gen_free(vx_svcws_item *base)
{
	ws_gen *g = (ws_gen *)base;
	llm_params_release(&g->p);
	vx_buf_release(&g->ev);
	free(g);
}

/* Errors here carry the HTTP status the same failure has on POST. */
static void ws_error(vx_svcws_conn *cn, const char *id_field, int status,
		     const char *code, const char *message)
{
	char fields[WS_ID_MAX + 48];   /* ,"status":N,"id":<json> */
	snprintf(fields, sizeof(fields), ",\"status\":%d%s", status, id_field);
	vx_svcws_error_fields(cn, fields, code, "%s", message);
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
	return vx_svcws_send_buf(g->cn, b) < 0;
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
		vx_svcws_interrupt(g->cn);
	pthread_mutex_unlock(&svc->ws_lock);
}

/* Pool thread: one generation, then its "done" (or "error"). */
static void ws_run(vx_svcws_conn *cn, void *state, vx_svcws_item *base)
{
	ws_gen *g = (ws_gen *)base;
	llm_service *svc = vx_svcws_user(cn);
	(void)state;
	if (atomic_load(&svc->stopping)) {
		ws_error(cn, g->id_field, 503, "unavailable",
			 "the server is shutting down");
		return;
	}
	llm_gen_result res;
	ws_live_add(svc, g);
	llm_gen_run(svc, &g->p, vx_svcws_cancel_flag(cn), ws_piece, g, &res);
	ws_live_remove(svc, g);
	if (res.status && res.status != 499) {
		ws_error(cn, g->id_field, res.status, res.code, res.error);
		return;
	}
	const char *model = llm_service_model(svc, g->p.req.model, res.model);
	vx_buf *b = &g->ev;
	vx_buf_reset(b);
	vx_buf_puts(b, "{\"event\":\"done\",\"finish_reason\":");
	vx_buf_json_str(b, res.finish_reason, strlen(res.finish_reason));
	vx_buf_puts(b, ",\"model\":");
	vx_buf_json_str(b, model, strlen(model));
	vx_buf_puts(b, ",");
	llm_gen_usage_json(&res, true, b);
	vx_buf_printf(b, "%s}", g->id_field);
	vx_svcws_send_buf(cn, b);
}

/* Admission for a socket's job: one generation slot while it drains. */
static int ws_job_start(vx_svcws_conn *cn, void *state)
{
	llm_service *svc = vx_svcws_user(cn);
	(void)state;
	if (atomic_load(&svc->stopping))
		return -ESHUTDOWN;
	return llm_gen_admit(svc) == 0 ? 0 : -EBUSY;
}

static void ws_job_end(void *user)
{
	llm_gen_leave(user);   /* last use of the server's state */
}

static void ws_refused(vx_svcws_conn *cn, void *state, vx_svcws_item *items,
		       int err)
{
	llm_service *svc = vx_svcws_user(cn);
	char msg[128];
	(void)state;
	if (err == -EBUSY)
		snprintf(msg, sizeof(msg), "all %d generation slots are busy; "
			 "retry shortly", svc->max_concurrent);
	for (vx_svcws_item *x = items; x; x = x->next)
		ws_error(cn, ((ws_gen *)x)->id_field, 503,
			 err == -EBUSY ? "overloaded" : "unavailable",
			 err == -EBUSY ? msg : "the server is shutting down");
}

/* A request (bare, or "event":"generate"). One runs at a time: a request
 * while one runs is refused ("busy") unless that one was cancelled; then
 * it waits for it and replaces a request already waiting ("superseded"). */
static int ws_message(vx_svcws_conn *cn, void *state, const cJSON *j,
		      const char *name, const char *text, size_t len)
{
	llm_service *svc = vx_svcws_user(cn);
	(void)state;
	(void)j;
	if (name && strcmp(name, "generate") != 0)
		return -ENOENT;
	ws_gen *g = vx_svcws_item_new(sizeof(*g), 0);
	llm_params_error e;
	if (!g) {
		ws_error(cn, "", 500, "out_of_memory", "out of memory");
		return 0;
	}
	g->cn = cn;
	int r = llm_params_parse(text, len, &svc->limits, &g->p, &e);
	(void)vx_json_id_member(g->p.json, WS_ID_MAX, g->id_field,
				sizeof(g->id_field));
	if (r < 0) {
		ws_error(cn, g->id_field, e.status, e.code, e.message);
		ws_gen_free(&g->base);
		return 0;
	}
	g->p.req.request_id = vx_svcws_request_id(cn);
	vx_svcws_item *replaced;
	r = vx_svcws_push_exclusive(cn, &g->base, &replaced);
	if (r == -EBUSY) {
		ws_error(cn, g->id_field, 409, "busy",
			 "a generation is running on this socket; wait for its "
			 "done event or send {\"event\":\"cancel\"}");
		ws_gen_free(&g->base);
	}
	while (replaced) {
		vx_svcws_item *next = replaced->next;
		ws_error(cn, ((ws_gen *)replaced)->id_field, 409, "superseded",
			 "a newer request replaced this one before it started");
		ws_gen_free(replaced);
		replaced = next;
	}
	return 0;
}

/* Stops the generation running; a waiting one is dropped silently. */
static void ws_cancel(vx_svcws_conn *cn, void *state)
{
	(void)state;
	vx_svcws_cancel(cn, NULL);
}

static void ws_end(vx_svcws_conn *cn, void *state)
{
	(void)state;
	vx_svcws_end_when_idle(cn);
}

static vx_pool *ws_pool(void *user)
{
	return ((llm_service *)user)->pool;
}

static const vx_svcws_ops ws_ops = {
	.pool = ws_pool,
	.bare_key = "",
	.raw_messages = true,
	.events = "generate (or a bare request), cancel, end, config",
	.error_fields = ",\"status\":400",
	.end = ws_end,
	.cancel = ws_cancel,
	.message = ws_message,
	.run = ws_run,
	.item_free = ws_gen_free,
	.job_start = ws_job_start,
	.job_end = ws_job_end,
	.refused = ws_refused,
};

static int ws_open(vx_wsconn *c, void *user, void **ret_state)
{
	return vx_svcws_open(c, &ws_ops, user, ret_state);
}

const vx_ws_route llm_ws_routes[] = {
	{ "/ws/generate", ws_open, vx_svcws_on_text, NULL, vx_svcws_on_close, false },
};
const size_t llm_n_ws_routes = sizeof(llm_ws_routes) / sizeof(llm_ws_routes[0]);
