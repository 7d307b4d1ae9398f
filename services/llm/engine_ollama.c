/*
 * engine_ollama.c - "ollama": Ollama's native chat API.
 *
 * POSTs {url}/api/chat with "stream":true and reads newline-delimited JSON:
 * {"message":{"role":"assistant","content":"..","thinking":".."},"done":false}
 * per token and a final {"done":true,"done_reason":"stop",
 * "prompt_eval_count":N,"eval_count":N,...}. Sampling goes in "options"
 * (temperature, top_p, top_k, min_p, repeat_penalty, seed, num_predict,
 * stop); llm_request.think != 0 sends "think": true/false. An {"error":".."}
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
	llm_emit emit;
	ndjson_splitter lines;
	llm_result *res;
	bool got_first;       /* first token (or the end) arrived */
	bool done;            /* the "done":true line was seen */
	char *err;
	size_t err_len;
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
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "model", req->model ? req->model : eng->model);
	cJSON_AddItemToObject(o, "messages", llm_remote_messages(req));
	cJSON_AddBoolToObject(o, "stream", 1);
	if (req->think)
		cJSON_AddBoolToObject(o, "think", req->think > 0);
	cJSON *op = cJSON_AddObjectToObject(o, "options");
	cJSON_AddNumberToObject(op, "temperature", req->temperature);
	if (req->top_p > 0 && req->top_p < 1)
		cJSON_AddNumberToObject(op, "top_p", req->top_p);
	if (req->top_k > 0)
		cJSON_AddNumberToObject(op, "top_k", req->top_k);
	if (req->min_p > 0)
		cJSON_AddNumberToObject(op, "min_p", req->min_p);
	if (req->repeat_penalty > 0 && req->repeat_penalty != 1)
		cJSON_AddNumberToObject(op, "repeat_penalty", req->repeat_penalty);
	if (req->has_seed)
		cJSON_AddNumberToObject(op, "seed", (double)req->seed);
	if (req->max_tokens > 0)
		cJSON_AddNumberToObject(op, "num_predict", req->max_tokens);
	if (req->n_stop)
		cJSON_AddItemToObject(op, "stop", llm_remote_strings(req->stop,
								    req->n_stop));
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

static int ollama_piece(ollama_stream *s, llm_piece_kind kind, const cJSON *v)
{
	if (!cJSON_IsString(v) || !v->valuestring[0])
		return 0;
	s->got_first = true;
	return llm_emit_piece(&s->emit, kind, v->valuestring,
			      strlen(v->valuestring));
}

static int ollama_object(ollama_stream *s, const cJSON *j)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
	if (e) {
		snprintf(s->err, s->err_len, "upstream error in stream: %s",
			 cJSON_IsString(e) ? e->valuestring : "(no message)");
		return -EPROTO;
	}
	const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
	if (cJSON_IsString(model))
		snprintf(s->res->model, sizeof(s->res->model), "%s",
			 model->valuestring);
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
	int r = ollama_piece(s, LLM_REASONING,
			     cJSON_GetObjectItemCaseSensitive(m, "thinking"));
	if (!r)
		r = ollama_piece(s, LLM_CONTENT,
				 cJSON_GetObjectItemCaseSensitive(m, "content"));
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "done"))) {
		const cJSON *dr = cJSON_GetObjectItemCaseSensitive(j, "done_reason");
		s->done = s->got_first = true;
		snprintf(s->res->finish_reason, sizeof(s->res->finish_reason),
			 "%s", cJSON_IsString(dr) ? dr->valuestring : "stop");
		llm_remote_usage(s->res, j, "prompt_eval_count", "eval_count");
	}
	return r;
}

static int ollama_line(void *user, const char *line, size_t len)
{
	ollama_stream *s = user;
	(void)len;
	if (s->done)
		return 0;
	cJSON *j = cJSON_Parse(line);
	if (!j) {
		snprintf(s->err, s->err_len, "upstream sent bad JSON: %.80s", line);
		return -EPROTO;
	}
	int r = ollama_object(s, j);
	cJSON_Delete(j);
	return r;
}

static int ollama_data(void *user, const char *data, size_t len)
{
	ollama_stream *s = user;
	int r = ndjson_feed(&s->lines, data, len, ollama_line, s);
	if (r == -E2BIG)
		snprintf(s->err, s->err_len, "upstream line larger than %zu bytes",
			 (size_t)NDJSON_MAX_LINE_DEFAULT);
	return r;
}

static int ollama_generate(void *engine, const llm_request *req,
			   const atomic_bool *cancel, llm_piece_cb cb,
			   void *user, llm_result *ret)
{
	llm_remote *eng = engine;
	ollama_stream s = { .res = ret, .err = ret->error,
			    .err_len = sizeof(ret->error) };
	llm_remote_result_init(ret, req, eng);
	llm_emit_init(&s.emit, cb, user);
	ndjson_init(&s.lines, 0);
	char *url = llm_http_join(eng->url, "/api/chat");
	char *body = ollama_body(eng, req);
	int r = -ENOMEM;
	if (!url || !body) {
		snprintf(ret->error, sizeof(ret->error), "out of memory");
		goto out_free;
	}
	llm_http_req hr = llm_remote_http_req(eng, req, url, body, cancel,
					      "application/x-ndjson", &s.got_first);
	r = llm_http_run(&hr, ollama_data, &s, ret->error, sizeof(ret->error));
	if (!r)
		r = ndjson_finish(&s.lines, ollama_line, &s);
	if (!r)
		r = llm_emit_flush(&s.emit);
	if (!r && !s.done) {
		snprintf(ret->error, sizeof(ret->error),
			 "upstream stream ended without \"done\":true");
		r = -EPROTO;
	}
out_free:
	llm_remote_result_end(ret, r, s.emit.stopped);
	free(url);
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
	.create = ollama_create,
	.destroy = ollama_destroy,
	.generate = ollama_generate,
	.models = ollama_models,
	.ready = ollama_ready,
};
