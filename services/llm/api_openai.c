/*
 * api_openai.c - the OpenAI-compatible routes, answering as the OpenAI API
 * does so its client libraries work unchanged:
 *
 * POST /v1/chat/completions  -> chat.completion, or with "stream": true
 *     Server-Sent Events of chat.completion.chunk objects: a first chunk
 *     with delta {"role":"assistant","content":""}, deltas of "content" (and
 *     "reasoning_content" for reasoning, as llama.cpp and DeepSeek send it),
 *     a last chunk with an empty delta and finish_reason, a usage chunk
 *     (choices []) when stream_options.include_usage, then "data: [DONE]".
 *     An error before the first token is an HTTP error; after it, a
 *     `data: {"error":{...}}` event and then [DONE] (as OpenAI and llama.cpp).
 * GET /v1/models             -> {"object":"list","data":[{"id",...}]}
 * POST /apply-template       -> {"prompt": "..."}: the text the chat
 *     template makes of a /v1/chat/completions body (messages, tools,
 *     chat_template_kwargs), as llama.cpp's server answers it; 501 for an
 *     engine that renders no template (the remote ones).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm_gen.h"
#include "llm_service.h"
#include "vx_req.h"

/* OpenAI's finish reasons are stop, length, content_filter, tool_calls. */
static const char *openai_finish(const char *f)
{
	if (!strcmp(f, "length") || !strcmp(f, "content_filter") ||
	    !strcmp(f, "tool_calls"))
		return f;
	return "stop";
}

/* {"id":..,"object":..,"created":..,"model":..,"system_fingerprint":null */
static void openai_head(llm_http_gen *h, const char *object,
			const char *answered, vx_buf *b)
{
	const char *model = llm_service_model(h->svc, h->p.req.model, answered);
	vx_buf_printf(b, "{\"id\":\"%s\",\"object\":\"%s\",\"created\":%lld,"
		      "\"model\":", h->id, object, h->created);
	vx_buf_json_str(b, model, strlen(model));
	vx_buf_puts(b, ",\"system_fingerprint\":null");
}

/* Appends one chat.completion.chunk event (delta already JSON) to h->ev. */
static void openai_chunk_add(llm_http_gen *h, const char *delta_json,
			     const char *finish)
{
	vx_buf *b = &h->ev;
	vx_buf_puts(b, "data: ");
	openai_head(h, "chat.completion.chunk", NULL, b);
	vx_buf_printf(b, ",\"choices\":[{\"index\":0,\"delta\":%s,"
		      "\"logprobs\":null,\"finish_reason\":", delta_json);
	if (finish)
		vx_buf_printf(b, "\"%s\"}]", finish);
	else
		vx_buf_puts(b, "null}]");
	if (h->p.include_usage)
		vx_buf_puts(b, ",\"usage\":null");
	vx_buf_puts(b, "}\n\n");
}

/* Begins the stream: its first chunk (the role) goes into h->ev, to be
 * written together with what follows it. */
static int openai_start(llm_http_gen *h)
{
	vx_buf_reset(&h->ev);
	if (h->started)
		return 0;
	if (llm_api_stream_start(h))
		return 1;
	openai_chunk_add(h, "{\"role\":\"assistant\",\"content\":\"\"}", NULL);
	return 0;
}

static int openai_piece(void *user, llm_piece_kind kind, const char *text,
			size_t len)
{
	llm_http_gen *h = user;
	if (!h->p.stream)
		return vx_buf_append(kind == LLM_REASONING ? &h->reasoning :
				     &h->content, text, len) < 0;
	if (openai_start(h))
		return 1;
	vx_buf d = {0};
	vx_buf_printf(&d, "{\"%s\":", kind == LLM_REASONING ?
		      "reasoning_content" : "content");
	vx_buf_json_str(&d, text, len);
	vx_buf_puts(&d, "}");
	int r = 1;
	if (d.data) {
		openai_chunk_add(h, d.data, NULL);
		r = llm_api_stream_ev(h);
	}
	vx_buf_release(&d);
	return r;
}

/* The end of a stream: finish chunk, usage chunk, [DONE]; or the error. */
static void openai_stream_end(llm_http_gen *h, const llm_gen_result *res)
{
	vx_buf *b = &h->ev;
	if (openai_start(h))
		return;
	if (res->status) {
		vx_buf_puts(b, "data: ");
		llm_api_error_json(b, res->status, res->code, NULL, res->error);
		vx_buf_puts(b, "\n\ndata: [DONE]\n\n");
		llm_api_stream_ev(h);
		return;
	}
	openai_chunk_add(h, "{}", openai_finish(res->finish_reason));
	if (h->p.include_usage) {
		vx_buf_puts(b, "data: ");
		openai_head(h, "chat.completion.chunk", res->model, b);
		vx_buf_puts(b, ",\"choices\":[],");
		llm_gen_usage_json(res, false, b);
		vx_buf_puts(b, "}\n\n");
	}
	vx_buf_puts(b, "data: [DONE]\n\n");
	llm_api_stream_ev(h);
}

static void openai_reply(llm_http_gen *h, const llm_gen_result *res)
{
	vx_buf *b = &h->ev;
	vx_buf_reset(b);
	openai_head(h, "chat.completion", res->model, b);
	vx_buf_puts(b, ",\"choices\":[{\"index\":0,\"message\":{"
		    "\"role\":\"assistant\",\"content\":");
	vx_buf_json_str(b, h->content.data ? h->content.data : "", h->content.len);
	if (h->reasoning.len) {
		vx_buf_puts(b, ",\"reasoning_content\":");
		vx_buf_json_str(b, h->reasoning.data, h->reasoning.len);
	}
	vx_buf_printf(b, ",\"refusal\":null},\"logprobs\":null,"
		      "\"finish_reason\":\"%s\"}],",
		      openai_finish(res->finish_reason));
	llm_gen_usage_json(res, true, b);
	vx_buf_puts(b, "}\n");
	vx_req_reply_buf(h->req, 200, "application/json", b);
}

static void chat_job(vx_req *req, void *arg)
{
	llm_http_gen *h = arg;
	llm_gen_result res;
	llm_gen_run(h->svc, &h->p, vx_req_cancelled(req), openai_piece, h, &res);
	if (res.status == 499 && !h->started)
		llm_api_error(req, 499, res.code, NULL, "%s", res.error);
	else if (res.status == 499)
		;   /* the client left mid-stream: nobody to answer */
	else if (h->p.stream && (h->started || !res.status))
		openai_stream_end(h, &res);
	else if (res.status)
		llm_api_error(req, res.status, res.code, NULL, "%s", res.error);
	else
		openai_reply(h, &res);
	llm_api_http_free(h);
}

void llm_api_chat_completions(vx_req *req, void *user)
{
	llm_http_gen *h;
	if (llm_api_http_begin(req, user, &h) == 0)
		llm_api_http_run(h, chat_job);
}

static void apply_template_job(vx_req *req, void *arg)
{
	llm_http_gen *h = arg;
	llm_result res = { .prompt_tokens = -1, .completion_tokens = -1 };
	char *prompt = NULL;
	int rc = h->svc->engine->render(h->svc->eng, &h->p.req, &prompt, &res);
	if (rc < 0) {
		llm_api_error(req, rc == -ENOMEM ? 500 : 400,
			      rc == -ENOMEM ? "out_of_memory" : "template_error", NULL,
			      "%s", res.error[0] ? res.error : strerror(-rc));
	} else {
		vx_buf *b = &h->ev;
		vx_buf_reset(b);
		vx_buf_puts(b, "{\"prompt\":");
		vx_buf_json_str(b, prompt, strlen(prompt));
		vx_buf_puts(b, "}\n");
		vx_req_reply_buf(req, 200, "application/json", b);
	}
	free(prompt);
	llm_api_http_free(h);
}

void llm_api_apply_template(vx_req *req, void *user)
{
	llm_service *svc = user;
	llm_http_gen *h;
	if (!svc->engine->render) {
		llm_api_error(req, 501, "not_implemented", NULL,
			      "the %s engine renders no chat template (its upstream does)",
			      svc->engine->name);
		return;
	}
	if (llm_api_http_begin(req, user, &h) == 0)
		llm_api_http_run(h, apply_template_job);
}

void llm_api_models(vx_req *req, void *user)
{
	llm_service *svc = user;
	llm_model_info *list = calloc(LLM_MAX_MODELS, sizeof(*list));
	int n = 0;
	if (!list) {
		llm_api_error(req, 500, "out_of_memory", NULL, "out of memory");
		return;
	}
	if (svc->engine->models)
		n = svc->engine->models(svc->eng, list, LLM_MAX_MODELS);
	if (n < 0) {
		llm_api_error(req, n == -ETIMEDOUT ? 504 : 502, "upstream_error",
			      NULL, "cannot list the upstream's models: %s",
			      strerror(-n));
		free(list);
		return;
	}
	if (n == 0) {
		const char *m = llm_service_model(svc, NULL, NULL);
		snprintf(list[0].id, sizeof(list[0].id), "%s", m);
		snprintf(list[0].owned_by, sizeof(list[0].owned_by), "voxline");
		n = 1;
	}
	vx_buf b = {0};
	vx_buf_puts(&b, "{\"object\":\"list\",\"data\":[");
	for (int i = 0; i < n; i++) {
		vx_buf_puts(&b, i ? ",{\"id\":" : "{\"id\":");
		vx_buf_json_str(&b, list[i].id, strlen(list[i].id));
		vx_buf_printf(&b, ",\"object\":\"model\",\"created\":%lld,"
			      "\"owned_by\":", (long long)svc->started);
		vx_buf_json_str(&b, list[i].owned_by, strlen(list[i].owned_by));
		vx_buf_puts(&b, "}");
	}
	vx_buf_puts(&b, "]}\n");
	vx_req_reply_buf(req, 200, "application/json", &b);
	free(list);
}
