/*
 * api.c - voxline-llm's own routes and what all HTTP routes share:
 * POST /generate (JSON or Server-Sent Events), the error shape, request
 * admission, /healthz readiness (with the upstream probe) and /info.
 * The OpenAI routes are in api_openai.c, the WebSocket in api_ws.c.
 *
 * POST /generate streams, when asked, events of the same JSON shape as
 * /ws/generate: `data: {"event":"token","text":...}`, `{"event":"reasoning",
 * "text":...}`, then `{"event":"done",...}` (or `{"event":"error",...}`).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llm_gen.h"
#include "llm_service.h"
#include "vx_log.h"
#include "vx_req.h"
#include "vx_time.h"

/* ---- errors ---- */

void llm_api_error_json(vx_buf *out, int status, const char *code,
			const char *param, const char *message)
{
	vx_error_json(out, status, code, param, message);
}

void llm_api_error(vx_req *req, int status, const char *code,
		   const char *param, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	vx_req_error_param(req, status, code, param, "%s", msg);
}

/* ---- what every HTTP generation does ---- */

/* application/json, anything ending in +json, or no type at all. */
static bool api_json_media(const char *mt)
{
	size_t n = strlen(mt);
	return !mt[0] || !strcmp(mt, "application/json") ||
	       (n > 5 && !strcmp(mt + n - 5, "+json"));
}

/* The local engine serves one model: other names are 404. */
static int api_check_model(llm_service *svc, const char *model)
{
	llm_model_info info[4];
	if (!svc->local || !model || !svc->engine->models)
		return 0;
	int n = svc->engine->models(svc->eng, info, 4);
	for (int i = 0; i < n; i++)
		if (!strcmp(info[i].id, model))
			return 0;
	return n > 0 && strcmp(model, svc->model ? svc->model : "") != 0 ?
		-ENOENT : 0;
}

int llm_api_http_begin(vx_req *req, llm_service *svc, llm_http_gen **ret)
{
	const char *mt = vx_req_media_type(req);
	if (!api_json_media(mt)) {
		llm_api_error(req, 415, "unsupported_media_type", NULL,
			      "send the request as Content-Type: application/json "
			      "(got %s)", mt);
		return -EMEDIUMTYPE;
	}
	llm_http_gen *h = calloc(1, sizeof(*h));
	if (!h) {
		llm_api_error(req, 500, "out_of_memory", NULL, "out of memory");
		return -ENOMEM;
	}
	h->svc = svc;
	h->req = req;
	h->created = (long long)time(NULL);
	snprintf(h->id, sizeof(h->id), "chatcmpl-%s", vx_req_id(req));
	size_t len;
	const char *body = vx_req_body(req, &len);
	llm_params_error e;
	int r = llm_params_parse(body ? body : "", body ? len : 0, &svc->limits,
				 &h->p, &e);
	if (r < 0) {
		llm_api_error(req, e.status, e.code, e.param, "%s", e.message);
		goto out_free;
	}
	h->p.req.request_id = vx_req_id(req);
	if ((r = api_check_model(svc, h->p.req.model)) < 0) {
		llm_api_error(req, 404, "model_not_found", "model",
			      "The model `%s` does not exist (this server has `%s`)",
			      h->p.req.model, svc->model_id);
		goto out_free;
	}
	if ((r = llm_gen_admit(svc)) < 0) {
		llm_api_error(req, 503, "overloaded", NULL,
			      "all %d generation slots are busy; retry shortly",
			      svc->max_concurrent);
		goto out_free;
	}
	*ret = h;
	return 0;
out_free:
	llm_params_release(&h->p);
	free(h);
	return r;
}

void llm_api_http_free(llm_http_gen *h)
{
	if (!h)
		return;
	llm_gen_leave(h->svc);
	llm_params_release(&h->p);
	vx_buf_release(&h->content);
	vx_buf_release(&h->reasoning);
	vx_buf_release(&h->ev);
	vx_buf_release(&h->held);
	free(h);
}

void llm_api_http_run(llm_http_gen *h, void (*job)(vx_req *, void *))
{
	if (vx_req_run(h->req, h->svc->pool, job, h) < 0)
		llm_api_http_free(h);   /* answered 503 */
}

int llm_api_stream_start(llm_http_gen *h)
{
	if (h->started)
		return 0;
	h->started = true;
	vx_req_add_header(h->req, "X-Accel-Buffering", "no");
	return vx_req_stream_begin(h->req, 200, "text/event-stream") < 0 ?
		-EPIPE : 0;
}

int llm_api_stream_ev(llm_http_gen *h)
{
	return vx_req_stream_write(h->req, h->ev.data, h->ev.len) < 0;
}

/* ---- POST /generate ---- */

static int generate_piece(void *user, llm_piece_kind kind, const char *text,
			  size_t len)
{
	llm_http_gen *h = user;
	if (!h->p.stream)
		return vx_buf_append(kind == LLM_REASONING ? &h->reasoning :
				     &h->content, text, len) < 0;
	if (llm_api_stream_start(h))
		return 1;
	vx_buf_reset(&h->ev);
	vx_buf_printf(&h->ev, "data: {\"event\":\"%s\",\"text\":",
		      kind == LLM_REASONING ? "reasoning" : "token");
	vx_buf_json_str(&h->ev, text, len);
	vx_buf_puts(&h->ev, "}\n\n");
	return llm_api_stream_ev(h);
}

/* The fields after the answer: finish_reason, model, usage, timings. */
static void generate_tail(llm_service *svc, const llm_params *p,
			  const llm_gen_result *res, vx_buf *b)
{
	vx_buf_puts(b, "\"finish_reason\":");
	vx_buf_json_str(b, res->finish_reason, strlen(res->finish_reason));
	const char *model = llm_service_model(svc, p->req.model, res->model);
	vx_buf_puts(b, ",\"model\":");
	vx_buf_json_str(b, model, strlen(model));
	vx_buf_puts(b, ",");
	llm_gen_usage_json(res, true, b);
}

void llm_generate_json(llm_service *svc, const llm_params *p,
		       const vx_buf *content, const vx_buf *reasoning,
		       const llm_gen_result *res, vx_buf *b)
{
	vx_buf_puts(b, "{\"message\":{\"role\":\"assistant\",\"content\":");
	vx_buf_json_str(b, content->data ? content->data : "", content->len);
	vx_buf_puts(b, "},");
	if (p->include_reasoning) {
		vx_buf_puts(b, "\"reasoning\":");
		vx_buf_json_str(b, reasoning->data ? reasoning->data : "",
				reasoning->len);
		vx_buf_puts(b, ",");
	}
	generate_tail(svc, p, res, b);
	vx_buf_puts(b, "}\n");
}

static void generate_job(vx_req *req, void *arg)
{
	llm_http_gen *h = arg;
	llm_gen_result res;
	llm_gen_run(h->svc, &h->p, vx_req_cancelled(req), generate_piece, h,
		    &res);
	vx_buf *b = &h->ev;
	vx_buf_reset(b);
	if (res.status == 499) {
		/* The client left (or the deadline passed): for the logs and
		 * metrics, as nginx counts it; nobody reads it. */
		if (!h->started)
			llm_api_error(req, 499, res.code, NULL, "%s", res.error);
		goto out_free;
	}
	if (h->p.stream && (h->started || !res.status)) {
		if (llm_api_stream_start(h))
			goto out_free;
		if (res.status) {
			vx_buf_puts(b, "data: {\"event\":\"error\",\"code\":");
			vx_buf_json_str(b, res.code, strlen(res.code));
			vx_buf_puts(b, ",\"message\":");
			vx_buf_json_str(b, res.error, strlen(res.error));
			vx_buf_printf(b, ",\"status\":%d}\n\n", res.status);
		} else {
			vx_buf_puts(b, "data: {\"event\":\"done\",");
			generate_tail(h->svc, &h->p, &res, b);
			vx_buf_puts(b, "}\n\n");
		}
		llm_api_stream_ev(h);
		goto out_free;
	}
	if (res.status) {
		llm_api_error(req, res.status, res.code, NULL, "%s", res.error);
		goto out_free;
	}
	llm_generate_json(h->svc, &h->p, &h->content, &h->reasoning, &res, b);
	vx_req_reply_buf(req, 200, "application/json", b);
out_free:
	llm_api_http_free(h);
}

static void handle_generate(vx_req *req, void *user)
{
	llm_http_gen *h;
	if (llm_api_http_begin(req, user, &h) == 0)
		llm_api_http_run(h, generate_job);
}

bool llm_service_quiesce(llm_service *svc, int timeout_ms)
{
	struct timespec pause = { 0, 10 * 1000000 };
	atomic_store(&svc->stopping, true);
	llm_ws_cancel_all(svc);
	for (int waited = 0; atomic_load(&svc->generations) > 0; waited += 10) {
		if (waited >= timeout_ms)
			return false;
		nanosleep(&pause, NULL);
	}
	return true;
}

/* ---- readiness and info ---- */

const char *llm_service_model(const llm_service *svc, const char *asked,
			      const char *answered)
{
	if (asked && asked[0])
		return asked;
	if (answered && answered[0])
		return answered;
	return svc->model_id[0] ? svc->model_id : svc->engine->name;
}

static void *probe_main(void *arg)
{
	llm_service *svc = arg;
	pthread_mutex_lock(&svc->probe_lock);
	while (!svc->probe_stop) {
		char detail[sizeof(svc->probe_detail)] = "";
		pthread_mutex_unlock(&svc->probe_lock);
		int r = svc->engine->ready(svc->eng, detail, sizeof(detail));
		pthread_mutex_lock(&svc->probe_lock);
		if (r < 0 && atomic_load(&svc->probe_rc) == 0)
			vx_log_warn(NULL, "upstream not ready: %s", detail);
		else if (r == 0 && atomic_load(&svc->probe_rc) < 0)
			vx_log_info(NULL, "upstream ready");
		atomic_store(&svc->probe_rc, r);
		memcpy(svc->probe_detail, detail, sizeof(detail));
		if (!svc->probe_stop)
			vx_cond_wait_ms(&svc->probe_cond, &svc->probe_lock,
					svc->probe_interval_ms);
	}
	pthread_mutex_unlock(&svc->probe_lock);
	return NULL;
}

/* A remote engine's readiness is the upstream's: probed every
 * probe_interval_ms (first at once, so start-up knows it) and cached, so
 * /healthz never waits on the network. */
void llm_service_probe_start(llm_service *svc)
{
	pthread_mutex_init(&svc->probe_lock, NULL);
	pthread_cond_init(&svc->probe_cond, NULL);
	if (svc->local || !svc->engine->ready || svc->probe_interval_ms <= 0)
		return;
	char detail[sizeof(svc->probe_detail)] = "";
	int r = svc->engine->ready(svc->eng, detail, sizeof(detail));
	atomic_store(&svc->probe_rc, r);
	memcpy(svc->probe_detail, detail, sizeof(detail));
	if (r < 0)
		vx_log_warn(NULL, "upstream not ready: %s", detail);
	svc->probe_started = pthread_create(&svc->probe_thread, NULL,
					    probe_main, svc) == 0;
}

void llm_service_probe_stop(llm_service *svc)
{
	if (svc->probe_started) {
		pthread_mutex_lock(&svc->probe_lock);
		svc->probe_stop = true;
		pthread_cond_broadcast(&svc->probe_cond);
		pthread_mutex_unlock(&svc->probe_lock);
		pthread_join(svc->probe_thread, NULL);
		svc->probe_started = false;
	}
	pthread_mutex_destroy(&svc->probe_lock);
	pthread_cond_destroy(&svc->probe_cond);
}

vx_health llm_service_health(void *user, vx_buf *extra, char *detail,
			     size_t detail_len)
{
	llm_service *svc = user;
	int r = 0, busy = atomic_load(&svc->generations);
	if (svc->local && svc->engine->ready) {
		r = svc->engine->ready(svc->eng, detail, detail_len);
		if (r == 0)
			detail[0] = '\0';
	} else if (svc->probe_started) {
		r = atomic_load(&svc->probe_rc);
		pthread_mutex_lock(&svc->probe_lock);
		if (r < 0)
			snprintf(detail, detail_len, "upstream: %s", svc->probe_detail);
		pthread_mutex_unlock(&svc->probe_lock);
	}
	vx_buf_printf(extra, ",\"engine\":\"%s\",\"model\":", svc->engine->name);
	vx_buf_json_str(extra, svc->model_id, strlen(svc->model_id));
	vx_buf_printf(extra, ",\"generations\":%d,\"capacity\":%d", busy,
		      svc->max_concurrent);
	if (r == -EAGAIN)
		return VX_HEALTH_LOADING;
	if (r < 0)
		return VX_HEALTH_UNAVAILABLE;
	if (busy >= svc->max_concurrent) {
		snprintf(detail, detail_len, "all %d generation slots are busy",
			 svc->max_concurrent);
		return VX_HEALTH_OVERLOADED;
	}
	return VX_HEALTH_OK;
}

void llm_service_info(void *user, vx_buf *out)
{
	llm_service *svc = user;
	vx_buf_printf(out, ",\"engine\":\"%s\",\"engines\":[", svc->engine->name);
	for (size_t i = 0; llm_engines[i]; i++)
		vx_buf_printf(out, "%s\"%s\"", i ? "," : "", llm_engines[i]->name);
	vx_buf_puts(out, "],\"model\":");
	vx_buf_json_str(out, svc->model_id, strlen(svc->model_id));
	if (!svc->local && svc->url) {
		vx_buf_puts(out, ",\"upstream\":");
		vx_buf_json_str(out, svc->url, strlen(svc->url));
	}
	vx_buf_printf(out, ",\"max_concurrent\":%d,\"max_tokens\":%d,"
		      "\"max_tokens_limit\":%d,\"max_prompt_bytes\":%zu,"
		      "\"timeout_s\":%d,\"system_prompt\":%s",
		      svc->max_concurrent, svc->max_tokens, svc->max_tokens_limit,
		      svc->limits.max_prompt_bytes, svc->timeout_s,
		      svc->system_prompt ? "true" : "false");
}

/* ---- tables ---- */

const vx_route llm_routes[] = {
	{ "POST", "/generate", handle_generate, 0, false, false },
	{ "POST", "/v1/chat/completions", llm_api_chat_completions, 0, false, false },
	{ "POST", "/apply-template", llm_api_apply_template, 0, false, false },
	{ "GET", "/v1/models", llm_api_models, 0, true, false },
};
const size_t llm_n_routes = sizeof(llm_routes) / sizeof(llm_routes[0]);
