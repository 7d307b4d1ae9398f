/*
 * engine_openai.c - "openai": any OpenAI-compatible chat upstream
 * (llama.cpp server, vLLM, Ollama's /v1, LM Studio, OpenAI).
 *
 * POSTs {url}/v1/chat/completions with "stream":true and
 * "stream_options":{"include_usage":true} and reads the Server-Sent Events:
 * choices[0].delta.content is content, delta.reasoning_content (or
 * delta.reasoning) is reasoning, finish_reason and usage come from the last
 * chunks, "data: [DONE]" ends the stream; a stream that ends cleanly without
 * [DONE] but after a finish_reason is complete too. Non-standard sampling
 * fields (top_k, min_p, repeat_penalty) are sent only when set, since
 * OpenAI itself rejects unknown fields. models() lists GET {url}/v1/models.
 */
#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm_emit.h"
#include "llm_engine.h"
#include "llm_http.h"
#include "llm_remote.h"
#include "sse.h"

typedef struct openai_stream {
	llm_emit emit;
	sse_parser sse;
	llm_result *res;
	bool got_first;       /* first token (or the end) arrived */
	bool done;            /* [DONE] seen */
	bool finished;        /* a finish_reason was seen */
	char *err;            /* message buffer of the call */
	size_t err_len;
} openai_stream;

static int openai_create(const llm_config *cfg, void **ret_engine)
{
	return llm_remote_new(cfg, "http://127.0.0.1:8080", ret_engine);
}

static void openai_destroy(void *engine)
{
	llm_remote_free(engine);
}

/* The request body; caller frees. */
static char *openai_body(const llm_remote *eng, const llm_request *req)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "model", req->model ? req->model : eng->model);
	cJSON_AddItemToObject(o, "messages", llm_remote_messages(req));
	cJSON_AddBoolToObject(o, "stream", 1);
	cJSON *so = cJSON_AddObjectToObject(o, "stream_options");
	cJSON_AddBoolToObject(so, "include_usage", 1);
	if (req->max_tokens > 0)
		cJSON_AddNumberToObject(o, "max_tokens", req->max_tokens);
	cJSON_AddNumberToObject(o, "temperature", req->temperature);
	if (req->top_p > 0 && req->top_p < 1)
		cJSON_AddNumberToObject(o, "top_p", req->top_p);
	if (req->top_k > 0)
		cJSON_AddNumberToObject(o, "top_k", req->top_k);
	if (req->min_p > 0)
		cJSON_AddNumberToObject(o, "min_p", req->min_p);
	if (req->repeat_penalty > 0 && req->repeat_penalty != 1)
		cJSON_AddNumberToObject(o, "repeat_penalty", req->repeat_penalty);
	if (req->has_seed)
		cJSON_AddNumberToObject(o, "seed", (double)req->seed);
	if (req->n_stop)
		cJSON_AddItemToObject(o, "stop", llm_remote_strings(req->stop,
								   req->n_stop));
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

static int openai_piece(openai_stream *s, llm_piece_kind kind,
			const cJSON *v)
{
	if (!cJSON_IsString(v) || !v->valuestring[0])
		return 0;
	s->got_first = true;
	return llm_emit_piece(&s->emit, kind, v->valuestring,
			      strlen(v->valuestring));
}

/* One chat.completion.chunk. */
static int openai_chunk(openai_stream *s, const cJSON *j)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
	if (e) {
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
		snprintf(s->err, s->err_len, "upstream error in stream: %s",
			 cJSON_IsString(m) ? m->valuestring :
			 cJSON_IsString(e) ? e->valuestring : "(no message)");
		return -EPROTO;
	}
	const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
	if (cJSON_IsString(model))
		snprintf(s->res->model, sizeof(s->res->model), "%s",
			 model->valuestring);
	llm_remote_usage(s->res, cJSON_GetObjectItemCaseSensitive(j, "usage"),
			 "prompt_tokens", "completion_tokens");
	const cJSON *ch = cJSON_GetArrayItem(
		cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
	if (!ch)
		return 0;
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(ch, "delta");
	int r = openai_piece(s, LLM_REASONING,
			     cJSON_GetObjectItemCaseSensitive(d, "reasoning_content"));
	if (!r)
		r = openai_piece(s, LLM_REASONING,
				 cJSON_GetObjectItemCaseSensitive(d, "reasoning"));
	if (!r)
		r = openai_piece(s, LLM_CONTENT,
				 cJSON_GetObjectItemCaseSensitive(d, "content"));
	const cJSON *fr = cJSON_GetObjectItemCaseSensitive(ch, "finish_reason");
	if (cJSON_IsString(fr)) {
		s->finished = s->got_first = true;
		snprintf(s->res->finish_reason, sizeof(s->res->finish_reason),
			 "%s", fr->valuestring);
	}
	return r;
}

static int openai_event(void *user, const char *event, const char *data,
			size_t len)
{
	openai_stream *s = user;
	(void)len;
	if (s->done)
		return 0;   /* nothing counts after [DONE] */
	if (strcmp(data, "[DONE]") == 0) {
		s->done = s->got_first = true;
		return 0;
	}
	if (strcmp(event, "message") != 0 && strcmp(event, "error") != 0)
		return 0;
	cJSON *j = cJSON_Parse(data);
	if (!j) {
		snprintf(s->err, s->err_len, "upstream sent bad JSON: %.80s", data);
		return -EPROTO;
	}
	int r = strcmp(event, "error") == 0 && !cJSON_GetObjectItem(j, "error")
		? (snprintf(s->err, s->err_len, "upstream error: %.160s", data),
		   -EPROTO)
		: openai_chunk(s, j);
	cJSON_Delete(j);
	return r;
}

static int openai_data(void *user, const char *data, size_t len)
{
	openai_stream *s = user;
	int r = sse_feed(&s->sse, data, len, openai_event, s);
	if (r == -E2BIG)
		snprintf(s->err, s->err_len, "upstream event larger than %zu bytes",
			 (size_t)SSE_MAX_EVENT_DEFAULT);
	return r;
}

static int openai_generate(void *engine, const llm_request *req,
			   const atomic_bool *cancel, llm_piece_cb cb,
			   void *user, llm_result *ret)
{
	llm_remote *eng = engine;
	openai_stream s = { .res = ret, .err = ret->error,
			    .err_len = sizeof(ret->error) };
	llm_remote_result_init(ret, req, eng);
	llm_emit_init(&s.emit, cb, user);
	sse_init(&s.sse, 0);
	char *url = llm_http_join(eng->url, "/v1/chat/completions");
	char *body = openai_body(eng, req);
	int r = -ENOMEM;
	if (!url || !body) {
		snprintf(ret->error, sizeof(ret->error), "out of memory");
		goto out_free;
	}
	llm_http_req hr = llm_remote_http_req(eng, req, url, body, cancel,
					      "text/event-stream", &s.got_first);
	r = llm_http_run(&hr, openai_data, &s, ret->error, sizeof(ret->error));
	if (!r)
		r = llm_emit_flush(&s.emit);
	if (!r && !s.done && !s.finished) {
		snprintf(ret->error, sizeof(ret->error),
			 "upstream stream ended without finish_reason or [DONE]");
		r = -EPROTO;
	}
	if (!r && !ret->finish_reason[0])
		snprintf(ret->finish_reason, sizeof(ret->finish_reason), "stop");
out_free:
	llm_remote_result_end(ret, r, s.emit.stopped);
	free(url);
	free(body);
	sse_release(&s.sse);
	return r;
}

static int openai_models(void *engine, llm_model_info *ret, size_t max)
{
	return llm_remote_models(engine, "/v1/models", "data", "id", ret, max);
}

static int openai_ready(void *engine, char *detail, size_t detail_len)
{
	return llm_remote_ready(engine, "/v1/models", detail, detail_len);
}

const llm_engine_ops llm_engine_openai = {
	.name = "openai",
	.description = "OpenAI-compatible upstream (llama.cpp server, vLLM, "
		       "Ollama /v1, LM Studio, OpenAI), streaming SSE",
	.create = openai_create,
	.destroy = openai_destroy,
	.generate = openai_generate,
	.models = openai_models,
	.ready = openai_ready,
};
