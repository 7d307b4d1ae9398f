/*
 * engine_ollama.c - "ollama": Ollama's native chat API.
 *
 * POSTs {url}/api/chat with "stream":true and reads newline-delimited JSON:
 * {"message":{"role":"assistant","content":"..","thinking":".."},"done":false}
 * per token and a final {"done":true,"done_reason":"stop",
 * "prompt_eval_count":N,"eval_count":N,...}. Sampling goes in "options"
 * (temperature, top_p, top_k, min_p, repeat_penalty, seed, num_predict,
 * stop); llm_request.think != 0 sends "think": true/false. The request's
 * tools go in "tools", with the messages' tool calls (arguments as objects,
 * as Ollama reads them); message.tool_calls in the answer become Hermes
 * <tool_call> blocks in the content (llm_remote_tool_call). An {"error":".."}
 * line mid-stream is an upstream failure. models() lists GET /api/tags.
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
#include "ndjson.h"

typedef struct ollama_stream {
	llm_remote_stream rs;   /* emitter, result, got_first */
	ndjson_splitter lines;
	bool done;            /* the "done":true line was seen */
} ollama_stream;

static int ollama_create(const llm_config *cfg, void **ret_engine)
{
	return llm_remote_new(cfg, "http://127.0.0.1:11434", ret_engine);
}

static void ollama_destroy(void *engine)
{
	llm_remote_free(engine);
}

static char *ollama_body(const llm_remote *eng, const llm_request *req)
{
	cJSON *o = llm_remote_body(eng, req, true);
	if (req->think)
		cJSON_AddBoolToObject(o, "think", req->think > 0);
	cJSON *op = cJSON_AddObjectToObject(o, "options");
	llm_remote_sampling(op, req);
	if (req->max_tokens > 0)
		cJSON_AddNumberToObject(op, "num_predict", req->max_tokens);
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

static int ollama_object(ollama_stream *s, const cJSON *j)
{
	llm_result *res = s->rs.res;
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
	if (e) {
		snprintf(res->error, sizeof(res->error),
			 "upstream error in stream: %s",
			 cJSON_IsString(e) ? e->valuestring : "(no message)");
		return -EPROTO;
	}
	llm_remote_model(&s->rs, j);
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
	const cJSON *th = cJSON_GetObjectItemCaseSensitive(m, "thinking");
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
	int r = llm_remote_piece(&s->rs, LLM_REASONING, th);
	if (!r)
		r = llm_remote_piece(&s->rs, LLM_CONTENT, c);
	const cJSON *call;
	cJSON_ArrayForEach(call, cJSON_GetObjectItemCaseSensitive(m, "tool_calls")) {
		const cJSON *fn = cJSON_GetObjectItemCaseSensitive(call, "function");
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
		char *args = cJSON_PrintUnformatted(
			cJSON_GetObjectItemCaseSensitive(fn, "arguments"));
		if (!r && cJSON_IsString(name))
			r = llm_remote_tool_call(&s->rs, name->valuestring, args,
						 args ? strlen(args) : 0);
		cJSON_free(args);
	}
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "done"))) {
		const cJSON *dr = cJSON_GetObjectItemCaseSensitive(j, "done_reason");
		s->done = s->rs.got_first = true;
		snprintf(res->finish_reason, sizeof(res->finish_reason), "%s",
			 cJSON_IsString(dr) ? dr->valuestring : "stop");
		llm_remote_usage(res, j, "prompt_eval_count", "eval_count");
	}
	return r;
}

static int ollama_line(void *user, const char *line, size_t len)
{
	ollama_stream *s = user;
	(void)len;
	if (s->done)
		return 0;
	cJSON *j = llm_remote_parse(&s->rs, line);
	if (!j)
		return -EPROTO;
	int r = ollama_object(s, j);
	cJSON_Delete(j);
	return r;
}

static int ollama_data(void *user, const char *data, size_t len)
{
	ollama_stream *s = user;
	int r = ndjson_feed(&s->lines, data, len, ollama_line, s);
	if (r == -E2BIG)
		snprintf(s->rs.res->error, sizeof(s->rs.res->error),
			 "upstream line larger than %zu bytes",
			 (size_t)NDJSON_MAX_LINE_DEFAULT);
	return r;
}

static int ollama_generate(void *engine, const llm_request *req,
			   const atomic_bool *cancel, llm_piece_cb cb,
			   void *user, llm_result *ret)
{
	llm_remote *eng = engine;
	ollama_stream s = { .done = false };
	llm_remote_stream_init(&s.rs, eng, req, cb, user, ret);
	ndjson_init(&s.lines, 0);
	char *body = ollama_body(eng, req);
	int r = llm_remote_post(eng, req, "/api/chat", body, cancel,
				"application/x-ndjson", ollama_data, &s, &s.rs);
	if (!r)
		r = ndjson_finish(&s.lines, ollama_line, &s);
	if (!r)
		r = llm_emit_flush(&s.rs.emit);
	if (!r && !s.done) {
		snprintf(ret->error, sizeof(ret->error),
			 "upstream stream ended without \"done\":true");
		r = -EPROTO;
	}
	llm_remote_stream_end(&s.rs, r);
	free(body);
	ndjson_release(&s.lines);
	return r;
}

static int ollama_models(void *engine, llm_model_info *ret, size_t max)
{
	return llm_remote_models(engine, "/api/tags", "models", "name", ret, max);
}

static int ollama_ready(void *engine, char *detail, size_t detail_len)
{
	return llm_remote_ready(engine, "/api/tags", detail, detail_len);
}

const llm_engine_ops llm_engine_ollama = {
	.name = "ollama",
	.description = "Ollama native API (/api/chat, NDJSON streaming)",
	.flags = VX_ENGINE_REMOTE,
	.create = ollama_create,
	.destroy = ollama_destroy,
	.generate = ollama_generate,
	.models = ollama_models,
	.ready = ollama_ready,
};
