/* llm_remote.c - shared pieces of the remote engines; see llm_remote.h. */
#include "llm_remote.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vx_buf.h"

int llm_remote_new(const llm_config *cfg, const char *default_url,
		   void **ret_engine)
{
	int r = llm_http_global_init();
	if (r)
		return r;
	llm_remote *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	const char *url = cfg->url && cfg->url[0] ? cfg->url : default_url;
	e->url = strdup(url);
	e->model = strdup(cfg->model ? cfg->model : "");
	e->api_key = cfg->api_key && cfg->api_key[0] ? strdup(cfg->api_key) : NULL;
	if (!e->url || !e->model || (cfg->api_key && cfg->api_key[0] && !e->api_key)) {
		llm_remote_free(e);
		return -ENOMEM;
	}
	size_t n = strlen(e->url);
	while (n && e->url[n - 1] == '/')
		e->url[--n] = '\0';
	if (strncmp(e->url, "http://", 7) != 0 && strncmp(e->url, "https://", 8) != 0) {
		llm_remote_free(e);
		return -EINVAL;
	}
	e->connect_timeout_ms = cfg->connect_timeout_ms > 0
		? cfg->connect_timeout_ms : LLM_HTTP_CONNECT_TIMEOUT_MS;
	e->first_token_timeout_ms = cfg->first_token_timeout_ms > 0
		? cfg->first_token_timeout_ms : LLM_REMOTE_FIRST_TOKEN_TIMEOUT_MS;
	*ret_engine = e;
	return 0;
}

void llm_remote_free(void *engine)
{
	llm_remote *e = engine;
	if (!e)
		return;
	free(e->url);
	free(e->api_key);
	free(e->model);
	free(e);
}

/* A message's tool calls (OpenAI's shape, as the client sent them) with
 * each function.arguments as the upstream reads it: a JSON object (Ollama)
 * or the JSON text of one (OpenAI). */
static cJSON *remote_tool_calls(const char *json, bool args_object)
{
	cJSON *calls = cJSON_Parse(json), *c;
	cJSON_ArrayForEach(c, calls) {
		cJSON *fn = cJSON_GetObjectItemCaseSensitive(c, "function");
		cJSON *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
		cJSON *as = NULL;
		if (args_object && cJSON_IsString(args)) {
			as = cJSON_Parse(args->valuestring);
		} else if (!args_object && args && !cJSON_IsString(args)) {
			char *t = cJSON_PrintUnformatted(args);
			as = t ? cJSON_CreateString(t) : NULL;
			cJSON_free(t);
		}
		if (as && !cJSON_ReplaceItemInObjectCaseSensitive(fn, "arguments", as))
			cJSON_Delete(as);
	}
	return calls;
}

cJSON *llm_remote_messages(const llm_request *req, bool args_object)
{
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; a && i < req->n_messages; i++) {
		cJSON *m = cJSON_CreateObject();
		cJSON_AddStringToObject(m, "role", req->messages[i].role ?
					req->messages[i].role : "user");
		cJSON_AddStringToObject(m, "content", req->messages[i].content ?
					req->messages[i].content : "");
		const llm_message_tools *t = req->message_tools ?
					     &req->message_tools[i] : NULL;
		if (t && t->tool_calls)
			cJSON_AddItemToObject(m, "tool_calls",
					      remote_tool_calls(t->tool_calls, args_object));
		if (t && t->tool_call_id)
			cJSON_AddStringToObject(m, "tool_call_id", t->tool_call_id);
		if (t && t->name)
			cJSON_AddStringToObject(m, "name", t->name);
		cJSON_AddItemToArray(a, m);
	}
	return a;
}

cJSON *llm_remote_strings(const char *const *s, size_t n)
{
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; a && i < n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(s[i]));
	return a;
}

cJSON *llm_remote_body(const llm_remote *eng, const llm_request *req,
			bool args_object)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "model", req->model ? req->model : eng->model);
	cJSON_AddItemToObject(o, "messages", llm_remote_messages(req, args_object));
	if (req->tools)
		cJSON_AddItemToObject(o, "tools", cJSON_Parse(req->tools));
	cJSON_AddBoolToObject(o, "stream", 1);
	return o;
}

void llm_remote_sampling(cJSON *obj, const llm_request *req)
{
	cJSON_AddNumberToObject(obj, "temperature", req->temperature);
	if (req->top_p > 0 && req->top_p < 1)
		cJSON_AddNumberToObject(obj, "top_p", req->top_p);
	if (req->top_k > 0)
		cJSON_AddNumberToObject(obj, "top_k", req->top_k);
	if (req->min_p > 0)
		cJSON_AddNumberToObject(obj, "min_p", req->min_p);
	if (req->repeat_penalty > 0 && req->repeat_penalty != 1)
		cJSON_AddNumberToObject(obj, "repeat_penalty", req->repeat_penalty);
	if (req->has_seed)
		cJSON_AddNumberToObject(obj, "seed", (double)req->seed);
	if (req->n_stop)
		cJSON_AddItemToObject(obj, "stop",
				      llm_remote_strings(req->stop, req->n_stop));
}

void llm_remote_stream_init(llm_remote_stream *s, const llm_remote *eng,
			    const llm_request *req, llm_piece_cb cb, void *user,
			    llm_result *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->prompt_tokens = -1;
	ret->completion_tokens = -1;
	snprintf(ret->model, sizeof(ret->model), "%s",
		 req->model ? req->model : eng->model);
	s->res = ret;
	s->got_first = false;
	llm_emit_init(&s->emit, cb, user);
}

int llm_remote_piece(llm_remote_stream *s, llm_piece_kind kind,
		     const cJSON *v)
{
	if (!cJSON_IsString(v) || !v->valuestring[0])
		return 0;
	s->got_first = true;
	return llm_emit_piece(&s->emit, kind, v->valuestring,
			      strlen(v->valuestring));
}

int llm_remote_tool_call(llm_remote_stream *s, const char *name,
			 const char *args, size_t args_len)
{
	vx_buf b = {0};
	cJSON *a = args_len ? cJSON_ParseWithLength(args, args_len) : NULL;
	vx_buf_puts(&b, TOOL_CALL_OPEN "{\"name\":");
	vx_buf_json_str(&b, name, strlen(name));
	vx_buf_puts(&b, ",\"arguments\":");
	if (cJSON_IsObject(a))
		vx_buf_append(&b, args, args_len);   /* as the upstream wrote it */
	else if (args_len)
		vx_buf_json_str(&b, args, args_len); /* not an object: its text */
	else
		vx_buf_puts(&b, "{}");
	vx_buf_puts(&b, "}" TOOL_CALL_CLOSE);
	cJSON_Delete(a);
	int r = b.data ? llm_emit_piece(&s->emit, LLM_CONTENT, b.data, b.len) : -ENOMEM;
	s->got_first = true;
	vx_buf_release(&b);
	return r;
}

void llm_remote_model(llm_remote_stream *s, const cJSON *chunk)
{
	const cJSON *model = cJSON_GetObjectItemCaseSensitive(chunk, "model");
	if (cJSON_IsString(model))
		snprintf(s->res->model, sizeof(s->res->model), "%s",
			 model->valuestring);
}

cJSON *llm_remote_parse(llm_remote_stream *s, const char *text)
{
	cJSON *j = cJSON_Parse(text);
	if (!j)
		snprintf(s->res->error, sizeof(s->res->error),
			 "upstream sent bad JSON: %.80s", text);
	return j;
}

int llm_remote_post(const llm_remote *eng, const llm_request *req,
		    const char *path, const char *body,
		    const atomic_bool *cancel, const char *accept,
		    llm_http_data_fn on_data, void *user, llm_remote_stream *s)
{
	llm_result *ret = s->res;
	char *url = llm_http_join(eng->url, path);
	if (!url || !body) {
		free(url);
		snprintf(ret->error, sizeof(ret->error), "out of memory");
		return -ENOMEM;
	}
	llm_http_req hr = {
		.url = url,
		.body = body,
		.api_key = eng->api_key,
		.request_id = req->request_id,
		.accept = accept,
		.connect_timeout_ms = eng->connect_timeout_ms,
		.first_token_timeout_ms = eng->first_token_timeout_ms,
		.deadline_ms = req->timeout_ms,
		.cancel = cancel,
		.got_first = &s->got_first,
	};
	int r = llm_http_run(&hr, on_data, user, ret->error, sizeof(ret->error));
	free(url);
	return r;
}

void llm_remote_stream_end(llm_remote_stream *s, int r)
{
	llm_result *ret = s->res;
	bool stopped_by_cb = s->emit.stopped;
	if (r == -ECANCELED || stopped_by_cb) {
		snprintf(ret->finish_reason, sizeof(ret->finish_reason), "cancelled");
		if (!ret->error[0] || stopped_by_cb)
			snprintf(ret->error, sizeof(ret->error), "cancelled");
	}
}

void llm_remote_usage(llm_result *ret, const cJSON *usage,
		      const char *prompt_key, const char *completion_key)
{
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(usage, prompt_key);
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(usage, completion_key);
	if (cJSON_IsNumber(p))
		ret->prompt_tokens = p->valueint;
	if (cJSON_IsNumber(c))
		ret->completion_tokens = c->valueint;
}

static int llm_remote_collect(void *user, const char *data, size_t len)
{
	vx_buf *b = user;
	if (b->len + len > LLM_REMOTE_MAX_LIST_BYTES)
		return -E2BIG;
	return vx_buf_append(b, data, len);
}

/* GETs url+path into body within deadline_ms. */
static int llm_remote_get(const llm_remote *eng, const char *path,
			  int deadline_ms, vx_buf *body, char *err,
			  size_t err_len)
{
	char *url = llm_http_join(eng->url, path);
	if (!url)
		return -ENOMEM;
	llm_http_req hr = {
		.url = url,
		.api_key = eng->api_key,
		.accept = "application/json",
		.connect_timeout_ms = eng->connect_timeout_ms,
		.deadline_ms = deadline_ms,
	};
	int r = llm_http_run(&hr, llm_remote_collect, body, err, err_len);
	if (r == -E2BIG)
		snprintf(err, err_len, "upstream list larger than %u bytes",
			 LLM_REMOTE_MAX_LIST_BYTES);
	free(url);
	return r;
}

int llm_remote_models(void *engine, const char *path, const char *array_key,
		      const char *id_key, llm_model_info *ret, size_t max)
{
	vx_buf body = {0};
	char err[256];
	int r = llm_remote_get(engine, path, LLM_REMOTE_LIST_TIMEOUT_MS, &body,
			       err, sizeof(err));
	if (r)
		goto out_release;
	cJSON *j = cJSON_Parse(body.data ? body.data : "");
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, array_key);
	if (!cJSON_IsArray(arr)) {
		r = -EPROTO;
		goto out_delete;
	}
	size_t n = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, arr) {
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, id_key);
		const cJSON *own = cJSON_GetObjectItemCaseSensitive(it, "owned_by");
		if (n >= max || !cJSON_IsString(id))
			continue;
		snprintf(ret[n].id, sizeof(ret[n].id), "%s", id->valuestring);
		snprintf(ret[n].owned_by, sizeof(ret[n].owned_by), "%s",
			 cJSON_IsString(own) ? own->valuestring : "upstream");
		n++;
	}
	r = (int)n;
out_delete:
	cJSON_Delete(j);
out_release:
	vx_buf_release(&body);
	return r;
}

int llm_remote_ready(void *engine, const char *path, char *detail,
		     size_t detail_len)
{
	vx_buf body = {0};
	char err[256] = "";
	int r = llm_remote_get(engine, path, LLM_REMOTE_READY_TIMEOUT_MS, &body,
			       err, sizeof(err));
	if (r && detail && detail_len)
		snprintf(detail, detail_len, "%s", err);
	vx_buf_release(&body);
	return r;
}
