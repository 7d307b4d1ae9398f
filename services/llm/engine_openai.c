/*
 * engine_openai.c - "openai": any OpenAI-compatible chat upstream
 * (llama.cpp server, vLLM, Ollama's /v1, LM Studio, OpenAI).
 *
 * POSTs {url}/v1/chat/completions with "stream":true and
 * "stream_options":{"include_usage":true} and reads the Server-Sent Events:
 * choices[0].delta.content is content, delta.reasoning_content (or
 * delta.reasoning) is reasoning, finish_reason and usage come from the last
 * chunks, "data: [DONE]" ends the stream; a stream that ends cleanly without
 * [DONE] but after a finish_reason is complete too. The request's tools go
 * in "tools", with the messages' tool calls (arguments as JSON text);
 * delta.tool_calls fragments are gathered per index and, at the finish,
 * become Hermes <tool_call> blocks in the content (llm_remote_tool_call),
 * which the service turns back into tool_calls. Non-standard sampling
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

#define OPENAI_MAX_CALLS 16   /* tool calls in one answer */

typedef struct openai_stream {
	llm_remote_stream rs;   /* emitter, result, got_first */
	sse_parser sse;
	bool done;            /* [DONE] seen */
	bool finished;        /* a finish_reason was seen */
	/* tool calls being streamed: delta.tool_calls[].index's name and
	 * argument fragments, emitted whole at the finish */
	vx_buf call_name[OPENAI_MAX_CALLS], call_args[OPENAI_MAX_CALLS];
	int n_calls;
} openai_stream;

/* Adds one delta.tool_calls entry's fragments. */
static int openai_call_delta(openai_stream *s, const cJSON *tc)
{
	const cJSON *ix = cJSON_GetObjectItemCaseSensitive(tc, "index");
	int i = cJSON_IsNumber(ix) ? ix->valueint : s->n_calls ? s->n_calls - 1 : 0;
	if (i < 0 || i >= OPENAI_MAX_CALLS) {
		snprintf(s->rs.res->error, sizeof(s->rs.res->error),
			 "upstream tool call index %d is not 0..%d", i,
			 OPENAI_MAX_CALLS - 1);
		return -EPROTO;
	}
	if (i >= s->n_calls)
		s->n_calls = i + 1;
	const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
	const cJSON *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
	if (cJSON_IsString(name))
		vx_buf_puts(&s->call_name[i], name->valuestring);
	if (cJSON_IsString(args))
		vx_buf_puts(&s->call_args[i], args->valuestring);
	return 0;
}

/* Emits the tool calls gathered so far, in index order, and forgets them. */
static int openai_calls_flush(openai_stream *s)
{
	int r = 0;
	for (int i = 0; i < s->n_calls; i++) {
		if (!r && s->call_name[i].len)
			r = llm_remote_tool_call(&s->rs, s->call_name[i].data,
						 s->call_args[i].data,
						 s->call_args[i].len);
		vx_buf_release(&s->call_name[i]);
		vx_buf_release(&s->call_args[i]);
	}
	s->n_calls = 0;
	return r;
}

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
	cJSON *o = llm_remote_body(eng, req, false);
	cJSON *so = cJSON_AddObjectToObject(o, "stream_options");
	cJSON_AddBoolToObject(so, "include_usage", 1);
	if (req->max_tokens > 0)
		cJSON_AddNumberToObject(o, "max_tokens", req->max_tokens);
	llm_remote_sampling(o, req);
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

/* One chat.completion.chunk. */
static int openai_chunk(openai_stream *s, const cJSON *j)
{
	llm_result *res = s->rs.res;
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
	if (e) {
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
		snprintf(res->error, sizeof(res->error),
			 "upstream error in stream: %s",
			 cJSON_IsString(m) ? m->valuestring :
			 cJSON_IsString(e) ? e->valuestring : "(no message)");
		return -EPROTO;
	}
	llm_remote_model(&s->rs, j);
	llm_remote_usage(res, cJSON_GetObjectItemCaseSensitive(j, "usage"),
			 "prompt_tokens", "completion_tokens");
	const cJSON *ch = cJSON_GetArrayItem(
		cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
	if (!ch)
		return 0;
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(ch, "delta");
	const cJSON *rc = cJSON_GetObjectItemCaseSensitive(d, "reasoning_content");
	const cJSON *rn = cJSON_GetObjectItemCaseSensitive(d, "reasoning");
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(d, "content");
	int r = llm_remote_piece(&s->rs, LLM_REASONING, rc);
	if (!r)
		r = llm_remote_piece(&s->rs, LLM_REASONING, rn);
	if (!r)
		r = llm_remote_piece(&s->rs, LLM_CONTENT, c);
	const cJSON *tc;
	cJSON_ArrayForEach(tc, cJSON_GetObjectItemCaseSensitive(d, "tool_calls"))
		if (!r)
			r = openai_call_delta(s, tc);
	const cJSON *fr = cJSON_GetObjectItemCaseSensitive(ch, "finish_reason");
	if (!r && cJSON_IsString(fr))
		r = openai_calls_flush(s);
	if (cJSON_IsString(fr)) {
		s->finished = s->rs.got_first = true;
		snprintf(res->finish_reason, sizeof(res->finish_reason), "%s",
			 fr->valuestring);
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
		s->done = s->rs.got_first = true;
		return 0;
	}
	if (strcmp(event, "message") != 0 && strcmp(event, "error") != 0)
		return 0;
	cJSON *j = llm_remote_parse(&s->rs, data);
	if (!j)
		return -EPROTO;
	char *err = s->rs.res->error;
	size_t err_len = sizeof(s->rs.res->error);
	int r = strcmp(event, "error") == 0 && !cJSON_GetObjectItem(j, "error")
		? (snprintf(err, err_len, "upstream error: %.160s", data),
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
		snprintf(s->rs.res->error, sizeof(s->rs.res->error),
			 "upstream event larger than %zu bytes",
			 (size_t)SSE_MAX_EVENT_DEFAULT);
	return r;
}

static int openai_generate(void *engine, const llm_request *req,
			   const atomic_bool *cancel, llm_piece_cb cb,
			   void *user, llm_result *ret)
{
	llm_remote *eng = engine;
	openai_stream s = { .done = false };
	llm_remote_stream_init(&s.rs, eng, req, cb, user, ret);
	sse_init(&s.sse, 0);
	char *body = openai_body(eng, req);
	int r = llm_remote_post(eng, req, "/v1/chat/completions", body, cancel,
				"text/event-stream", openai_data, &s, &s.rs);
	int rf = openai_calls_flush(&s);   /* releases them in any case */
	if (!r)
		r = rf;
	if (!r)
		r = llm_emit_flush(&s.rs.emit);
	if (!r && !s.done && !s.finished) {
		snprintf(ret->error, sizeof(ret->error),
			 "upstream stream ended without finish_reason or [DONE]");
		r = -EPROTO;
	}
	if (!r && !ret->finish_reason[0])
		snprintf(ret->finish_reason, sizeof(ret->finish_reason), "stop");
	llm_remote_stream_end(&s.rs, r);
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
	.flags = VX_ENGINE_REMOTE,
	.create = openai_create,
	.destroy = openai_destroy,
	.generate = openai_generate,
	.models = openai_models,
	.ready = openai_ready,
};
