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
 *     When the request has tools, tool calls the model writes as Hermes and
 *     Qwen do (<tool_call>{"name","arguments"}</tool_call>) become
 *     message.tool_calls (content: the text around them, or null) with
 *     finish_reason "tool_calls"; streamed, content from "<tool_call>" on is
 *     held back and sent at the end as tool_calls deltas (one chunk per
 *     call, with its index). A block that is not such JSON stays content.
 * GET /v1/models             -> {"object":"list","data":[{"id",...}]}
 * POST /apply-template       -> {"prompt": "..."}: the text the chat
 *     template makes of a /v1/chat/completions body (messages, tools,
 *     chat_template_kwargs), as llama.cpp's server answers it; 501 for an
 *     engine that renders no template (the remote ones).
 */
#include <cjson/cJSON.h>
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

/* Sends one content or reasoning delta now. Non-zero: the client is gone. */
static int openai_delta(llm_http_gen *h, llm_piece_kind kind, const char *text,
			size_t len)
{
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

/* Streamed content of a request with tools: a tail that may open
 * "<tool_call>" is held back, and from one on everything is held until
 * the end (openai_stream_end turns it into tool_calls). */
static int openai_held(llm_http_gen *h, const char *text, size_t len)
{
	size_t open_len = strlen(TOOL_CALL_OPEN);
	if (vx_buf_append(&h->held, text, len) < 0)
		return 1;
	if (h->in_call || !h->held.len)
		return 0;
	char *d = h->held.data;
	size_t n = h->held.len, send = n;
	const char *open = memmem(d, n, TOOL_CALL_OPEN, open_len);
	if (open) {
		send = (size_t)(open - d);
	} else {
		for (size_t k = n < open_len - 1 ? n : open_len - 1; k > 0; k--) {
			if (!memcmp(d + n - k, TOOL_CALL_OPEN, k)) {
				send = n - k;
				break;
			}
		}
	}
	int r = send ? openai_delta(h, LLM_CONTENT, d, send) : 0;
	memmove(d, d + send, n - send);
	h->held.len = n - send;
	d[h->held.len] = 0;
	h->in_call = open != NULL;
	return r;
}

static int openai_piece(void *user, llm_piece_kind kind, const char *text,
			size_t len)
{
	llm_http_gen *h = user;
	if (!h->p.stream)
		return vx_buf_append(kind == LLM_REASONING ? &h->reasoning :
				     &h->content, text, len) < 0;
	if (kind == LLM_CONTENT && h->p.req.tools)
		return openai_held(h, text, len);
	return openai_delta(h, kind, text, len);
}

/*
 * Tool calls the model wrote as Hermes and Qwen do,
 * <tool_call>{"name": ..., "arguments": {...}}</tool_call> (the last may
 * lack its closing tag), as OpenAI's tool_calls: a cJSON array (caller
 * deletes) of {"id","type":"function","function":{"name","arguments":
 * JSON text}}, with the text around the blocks, trimmed, in ret_rest.
 * NULL when there is no block or a block is not such an object: the text
 * then stays content as the model wrote it.
 */
static cJSON *tool_calls_parse(const char *text, size_t len, const char *id,
			       vx_buf *ret_rest)
{
	size_t open_len = strlen(TOOL_CALL_OPEN), close_len = strlen(TOOL_CALL_CLOSE);
	const char *p = text, *end = text + len;
	cJSON *calls = cJSON_CreateArray();
	vx_buf rest = {0};
	int n = 0;
	while (calls && p < end) {
		const char *open = memmem(p, (size_t)(end - p), TOOL_CALL_OPEN, open_len);
		vx_buf_append(&rest, p, open ? (size_t)(open - p) : (size_t)(end - p));
		if (!open)
			break;
		const char *body = open + open_len;
		const char *close = memmem(body, (size_t)(end - body), TOOL_CALL_CLOSE, close_len);
		cJSON *j = cJSON_ParseWithLength(body, (size_t)((close ? close : end) - body));
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name");
		const cJSON *args = cJSON_GetObjectItemCaseSensitive(j, "arguments");
		char *a = cJSON_IsObject(args) ? cJSON_PrintUnformatted(args) : NULL, cid[96];
		snprintf(cid, sizeof(cid), "call_%s_%d", id, n);
		cJSON *c = cJSON_CreateObject(), *fn = cJSON_CreateObject();
		bool ok = cJSON_IsString(name) && c && fn &&
			  (!args || cJSON_IsObject(args) || cJSON_IsString(args)) &&
			  cJSON_AddStringToObject(c, "id", cid) &&
			  cJSON_AddStringToObject(c, "type", "function") &&
			  cJSON_AddStringToObject(fn, "name", name->valuestring) &&
			  cJSON_AddStringToObject(fn, "arguments", cJSON_IsString(args) ?
						  args->valuestring : a ? a : "{}");
		cJSON_free(a);
		cJSON_Delete(j);
		if (!ok || !cJSON_AddItemToObject(c, "function", fn)) {
			cJSON_Delete(fn);
			cJSON_Delete(c);
			goto out_none;
		}
		cJSON_AddItemToArray(calls, c);
		n++;
		p = close ? close + close_len : end;
	}
	if (n == 0)
		goto out_none;
	const char *r = rest.data ? rest.data : "";
	size_t rl = rest.len;
	while (rl && strchr(" \t\r\n", *r)) {
		r++;
		rl--;
	}
	while (rl && strchr(" \t\r\n", r[rl - 1]))
		rl--;
	vx_buf_append(ret_rest, r, rl);
	vx_buf_release(&rest);
	return calls;
out_none:
	cJSON_Delete(calls);
	vx_buf_release(&rest);
	return NULL;
}

/* Appends {"content": text} as a chunk to h->ev. */
static void openai_content_chunk(llm_http_gen *h, const char *text, size_t len)
{
	vx_buf d = {0};
	vx_buf_puts(&d, "{\"content\":");
	vx_buf_json_str(&d, text, len);
	vx_buf_puts(&d, "}");
	if (d.data)
		openai_chunk_add(h, d.data, NULL);
	vx_buf_release(&d);
}

/* What content was held back goes out at the end of a stream: tool_calls
 * deltas (one chunk per call, with its index) when it holds calls, else
 * the text. Returns the finish reason. */
static const char *openai_held_end(llm_http_gen *h, const char *finish)
{
	vx_buf rest = {0};
	cJSON *calls = h->in_call ? tool_calls_parse(h->held.data, h->held.len,
						     vx_req_id(h->req), &rest) : NULL;
	if (!calls) {
		openai_content_chunk(h, h->held.data, h->held.len);
		return finish;
	}
	if (rest.len)
		openai_content_chunk(h, rest.data, rest.len);
	int i = 0;
	cJSON *c;
	cJSON_ArrayForEach(c, calls) {
		char *js;
		if (!cJSON_AddNumberToObject(c, "index", i++) ||
		    !(js = cJSON_PrintUnformatted(c)))
			continue;
		vx_buf d = {0};
		vx_buf_printf(&d, "{\"tool_calls\":[%s]}", js);
		if (d.data)
			openai_chunk_add(h, d.data, NULL);
		vx_buf_release(&d);
		cJSON_free(js);
	}
	cJSON_Delete(calls);
	vx_buf_release(&rest);
	return "tool_calls";
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
	const char *finish = openai_finish(res->finish_reason);
	if (h->held.len)
		finish = openai_held_end(h, finish);
	openai_chunk_add(h, "{}", finish);
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
	vx_buf rest = {0};
	cJSON *calls = h->p.req.tools && h->content.len ?
		tool_calls_parse(h->content.data, h->content.len, vx_req_id(h->req), &rest) : NULL;
	char *calls_json = calls ? cJSON_PrintUnformatted(calls) : NULL;
	openai_head(h, "chat.completion", res->model, b);
	vx_buf_puts(b, ",\"choices\":[{\"index\":0,\"message\":{"
		    "\"role\":\"assistant\",\"content\":");
	if (!calls_json)
		vx_buf_json_str(b, h->content.data ? h->content.data : "", h->content.len);
	else if (rest.len)
		vx_buf_json_str(b, rest.data, rest.len);
	else
		vx_buf_puts(b, "null");
	if (calls_json)
		vx_buf_printf(b, ",\"tool_calls\":%s", calls_json);
	if (h->reasoning.len) {
		vx_buf_puts(b, ",\"reasoning_content\":");
		vx_buf_json_str(b, h->reasoning.data, h->reasoning.len);
	}
	vx_buf_printf(b, ",\"refusal\":null},\"logprobs\":null,"
		      "\"finish_reason\":\"%s\"}],",
		      calls_json ? "tool_calls" : openai_finish(res->finish_reason));
	cJSON_free(calls_json);
	cJSON_Delete(calls);
	vx_buf_release(&rest);
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
