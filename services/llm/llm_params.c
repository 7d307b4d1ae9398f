/* llm_params.c - chat request JSON -> llm_request; see llm_params.h. */
#include "llm_params.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vx_buf.h"
#include "vx_json.h"
#include "vx_reqbody.h"

static int llm_params_fail(llm_params_error *e, int status, const char *code,
			   const char *param, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static int llm_params_fail(llm_params_error *e, int status, const char *code,
			   const char *param, const char *fmt, ...)
{
	va_list ap;
	e->status = status;
	snprintf(e->code, sizeof(e->code), "%s", code);
	snprintf(e->param, sizeof(e->param), "%s", param ? param : "");
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	return status == 413 ? -E2BIG : -EINVAL;
}

/* A number field in [min, max]; def when absent. */
static int llm_params_number(const cJSON *o, const char *name, double def,
			     double min, double max, double *ret,
			     llm_params_error *e)
{
	if (vx_json_number(o, name, def, min, max, ret) < 0)
		return llm_params_fail(e, 400, "invalid_value", name,
				       "'%s' must be a number from %g to %g",
				       name, min, max);
	return 0;
}

static int llm_params_int(const cJSON *o, const char *name, int def, int min,
			  int max, int *ret, llm_params_error *e)
{
	double d;
	int r = llm_params_number(o, name, def, min, max, &d, e);
	if (r)
		return r;
	if (d != floor(d))
		return llm_params_fail(e, 400, "invalid_value", name,
				       "'%s' must be an integer", name);
	*ret = (int)d;
	return 0;
}

static int llm_params_bool(const cJSON *o, const char *name, bool def,
			   bool *ret, llm_params_error *e)
{
	if (vx_json_bool(o, name, def, ret) < 0)
		return llm_params_fail(e, 400, "invalid_value", name,
				       "'%s' must be true or false", name);
	return 0;
}

/* Content as one string: a string, or text parts joined (stored back into
 * the message object so the JSON tree owns it). NULL when not text. */
static const char *llm_params_content(cJSON *msg)
{
	cJSON *c = cJSON_GetObjectItemCaseSensitive(msg, "content");
	if (cJSON_IsString(c))
		return c->valuestring;
	if (!cJSON_IsArray(c))
		return NULL;
	vx_buf b = {0};
	const cJSON *part;
	cJSON_ArrayForEach(part, c) {
		const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
		const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
		if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") ||
		    !cJSON_IsString(text) ||
		    vx_buf_puts(&b, text->valuestring) < 0) {
			vx_buf_release(&b);
			return NULL;
		}
	}
	cJSON *s = cJSON_CreateString(b.data ? b.data : "");
	vx_buf_release(&b);
	if (!s || !cJSON_ReplaceItemInObjectCaseSensitive(msg, "content", s)) {
		cJSON_Delete(s);
		return NULL;
	}
	return s->valuestring;
}

static int llm_params_role(const char *role, const char **ret)
{
	static const char *const roles[] = { "system", "user", "assistant", "tool" };
	if (!strcmp(role, "developer")) {   /* OpenAI's newer name for system */
		*ret = "system";
		return 0;
	}
	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
		if (!strcmp(role, roles[i])) {
			*ret = roles[i];
			return 0;
		}
	}
	return -EINVAL;
}

/* v printed compactly, kept in p->texts (freed with p); NULL on ENOMEM. */
static const char *llm_params_keep_json(llm_params *p, const cJSON *v)
{
	char *t = cJSON_PrintUnformatted(v);
	if (!t)
		return NULL;
	p->texts[p->n_texts++] = t;
	p->prompt_bytes += strlen(t);
	return t;
}

/* A function definition or call: {"function":{"name":"..",...}} when its
 * type is "function" (or, for calls, always). */
static bool llm_params_has_function(const cJSON *o, bool need)
{
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(o, "type");
	const cJSON *fn = cJSON_GetObjectItemCaseSensitive(o, "function");
	if (type && !cJSON_IsString(type))
		return false;
	if (!need && type && strcmp(type->valuestring, "function"))
		return true;   /* another kind of tool: passed as it is */
	return cJSON_IsObject(fn) &&
	       cJSON_IsString(cJSON_GetObjectItemCaseSensitive(fn, "name"));
}

/* A message's tool_calls, tool_call_id and name into *ret. */
static int llm_params_message_tools(llm_params *p, const cJSON *m, int i,
				    llm_message_tools *ret, llm_params_error *e)
{
	char param[48];
	const cJSON *calls = vx_json_get(m, "tool_calls"), *c;
	if (calls) {
		snprintf(param, sizeof(param), "messages[%d].tool_calls", i);
		if (!cJSON_IsArray(calls) || cJSON_GetArraySize(calls) > LLM_PARAMS_MAX_TOOLS)
			return llm_params_fail(e, 400, "invalid_tool_calls", param,
					       "messages[%d].tool_calls must be an array of at "
					       "most %d tool calls", i, LLM_PARAMS_MAX_TOOLS);
		cJSON_ArrayForEach(c, calls) {
			const cJSON *fn = cJSON_GetObjectItemCaseSensitive(c, "function");
			const cJSON *a = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
			if (!cJSON_IsObject(c) || !llm_params_has_function(c, true) ||
			    (a && !cJSON_IsString(a) && !cJSON_IsObject(a)))
				return llm_params_fail(e, 400, "invalid_tool_calls", param,
						       "each of messages[%d].tool_calls must be "
						       "{\"id\",\"type\":\"function\",\"function\":"
						       "{\"name\":string,\"arguments\":string}}", i);
		}
		if (cJSON_GetArraySize(calls) && !(ret->tool_calls = llm_params_keep_json(p, calls)))
			return llm_params_fail(e, 500, "out_of_memory", NULL, "out of memory");
	}
	static const char *const names[] = { "tool_call_id", "name" };
	for (size_t k = 0; k < 2; k++) {
		const char *v = NULL;
		snprintf(param, sizeof(param), "messages[%d].%s", i, names[k]);
		if (vx_json_string(m, names[k], NULL, LLM_PARAMS_MAX_NAME, &v) < 0)
			return llm_params_fail(e, 400, "invalid_value", param,
					       "%s must be a string of at most %d bytes",
					       param, LLM_PARAMS_MAX_NAME);
		*(k ? &ret->name : &ret->tool_call_id) = v;
	}
	return 0;
}

static int llm_params_messages(llm_params *p, const llm_params_limits *lim,
			       llm_params_error *e)
{
	cJSON *arr = cJSON_GetObjectItemCaseSensitive(p->json, "messages");
	char param[48];
	if (!arr || cJSON_IsNull(arr))
		return llm_params_fail(e, 400, "missing_messages", "messages",
				       "'messages' is required");
	int n = cJSON_GetArraySize(arr);
	if (!cJSON_IsArray(arr) || n == 0)
		return llm_params_fail(e, 400, "invalid_messages", "messages",
				       "'messages' must be a non-empty array");
	if (n > LLM_PARAMS_MAX_MESSAGES)
		return llm_params_fail(e, 413, "too_many_messages", "messages",
				       "at most %d messages per request",
				       LLM_PARAMS_MAX_MESSAGES);
	p->messages = calloc((size_t)n + 1, sizeof(*p->messages));
	p->mtools = calloc((size_t)n + 1, sizeof(*p->mtools));
	p->texts = calloc((size_t)n + 2, sizeof(*p->texts));
	if (!p->messages || !p->mtools || !p->texts)
		return llm_params_fail(e, 500, "out_of_memory", NULL, "out of memory");
	size_t k = 0;
	bool has_system = false;
	if (lim->system_prompt && lim->system_prompt[0])
		k = 1;   /* slot 0 kept for the default system prompt */
	cJSON *m;
	int i = 0;
	cJSON_ArrayForEach(m, arr) {
		const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
		llm_message *out = &p->messages[k];
		if (!cJSON_IsObject(m))
			return llm_params_fail(e, 400, "invalid_messages", "messages",
					       "messages[%d] must be an object", i);
		snprintf(param, sizeof(param), "messages[%d].role", i);
		if (!cJSON_IsString(role))
			return llm_params_fail(e, 400, "invalid_role", param,
					       "messages[%d] needs a string 'role'", i);
		if (llm_params_role(role->valuestring, &out->role) < 0)
			return llm_params_fail(e, 400, "invalid_role", param,
					       "Invalid value for 'messages[%d].role': "
					       "'%.40s' (system, user, assistant or tool)",
					       i, role->valuestring);
		int r = llm_params_message_tools(p, m, i, &p->mtools[k], e);
		if (r)
			return r;
		snprintf(param, sizeof(param), "messages[%d].content", i);
		out->content = llm_params_content(m);
		if (!out->content && p->mtools[k].tool_calls &&
		    !vx_json_get(m, "content"))
			out->content = "";   /* an assistant turn that only calls tools */
		if (!out->content)
			return llm_params_fail(e, 400, "invalid_content", param,
					       "messages[%d].content must be a string", i);
		size_t len = strlen(out->content);
		if (!vx_utf8_valid(out->content, len))
			return llm_params_fail(e, 400, "invalid_utf8", param,
					       "messages[%d].content is not valid UTF-8", i);
		p->prompt_bytes += len;
		has_system = has_system || !strcmp(out->role, "system");
		k++;
		i++;
	}
	if (p->prompt_bytes > lim->max_prompt_bytes)
		return llm_params_fail(e, 413, "prompt_too_large", "messages",
				       "the messages hold %zu bytes; the limit is %zu",
				       p->prompt_bytes, lim->max_prompt_bytes);
	p->req.messages = p->messages;
	p->req.message_tools = p->mtools;
	p->req.n_messages = k;
	if (lim->system_prompt && lim->system_prompt[0]) {
		if (has_system) {
			p->req.messages = p->messages + 1;
			p->req.message_tools = p->mtools + 1;
			p->req.n_messages = k - 1;
		} else {
			p->messages[0].role = "system";
			p->messages[0].content = lim->system_prompt;
		}
	}
	return 0;
}

static int llm_params_stop(llm_params *p, llm_params_error *e)
{
	const cJSON *v = vx_json_get(p->json, "stop");
	if (!v)
		return 0;
	if (cJSON_IsString(v)) {
		if (strlen(v->valuestring) > STOPSTR_MAX_LEN)
			goto out_bad;
		if (v->valuestring[0])
			p->stop[p->req.n_stop++] = v->valuestring;
		return 0;
	}
	if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > STOPSTR_MAX_STOPS)
		goto out_bad;
	const cJSON *s;
	cJSON_ArrayForEach(s, v) {
		if (!cJSON_IsString(s) || strlen(s->valuestring) > STOPSTR_MAX_LEN)
			goto out_bad;
		if (s->valuestring[0])
			p->stop[p->req.n_stop++] = s->valuestring;
	}
	return 0;
out_bad:
	return llm_params_fail(e, 400, "invalid_value", "stop",
			       "'stop' must be a string or an array of at most "
			       "%d strings of at most %d bytes",
			       STOPSTR_MAX_STOPS, STOPSTR_MAX_LEN);
}

/* Sampling, length and seed. */
static int llm_params_sampling(llm_params *p, const llm_params_limits *lim,
			       llm_params_error *e)
{
	llm_request *q = &p->req;
	const cJSON *j = p->json;
	double top_k = 0;
	int max = lim->max_tokens_default, r;
	if ((r = llm_params_number(j, "temperature", lim->temperature_default,
				   0, 2, &q->temperature, e)) ||
	    (r = llm_params_number(j, "top_p", 1, 0, 1, &q->top_p, e)) ||
	    (r = llm_params_number(j, "top_k", 0, 0, LLM_PARAMS_MAX_TOP_K,
				   &top_k, e)) ||
	    (r = llm_params_number(j, "min_p", 0, 0, 1, &q->min_p, e)))
		return r;
	q->top_k = (int)top_k;
	/* llama.cpp says repeat_penalty, vLLM / HF say repetition_penalty */
	const char *rp = vx_json_get(j, "repetition_penalty") ?
		"repetition_penalty" : "repeat_penalty";
	if ((r = llm_params_number(j, rp, 1, 0, LLM_PARAMS_MAX_REPEAT_PENALTY,
				   &q->repeat_penalty, e)))
		return r;
	const char *mt = vx_json_get(j, "max_completion_tokens") ?
		"max_completion_tokens" : "max_tokens";
	if ((r = llm_params_int(j, mt, max, 1, lim->max_tokens_limit, &max, e)))
		return r;
	q->max_tokens = max;
	const cJSON *seed = vx_json_get(j, "seed");
	if (seed) {
		if (!cJSON_IsNumber(seed) || seed->valuedouble != floor(seed->valuedouble) ||
		    fabs(seed->valuedouble) > 9007199254740992.0)
			return llm_params_fail(e, 400, "invalid_value", "seed",
					       "'seed' must be an integer");
		q->has_seed = true;
		q->seed = (uint64_t)(int64_t)seed->valuedouble;
	}
	const cJSON *n = vx_json_get(j, "n");
	if (n && (!cJSON_IsNumber(n) || n->valuedouble != 1))
		return llm_params_fail(e, 400, "unsupported_value", "n",
				       "only n = 1 is supported");
	return 0;
}

/* stream, stream_options, reasoning switches, model. */
static int llm_params_switches(llm_params *p, llm_params_error *e)
{
	const cJSON *j = p->json;
	bool reasoning, think_set = false, think = false;
	int r;
	if ((r = llm_params_bool(j, "stream", false, &p->stream, e)))
		return r;
	const cJSON *so = vx_json_get(j, "stream_options");
	if (so && !cJSON_IsObject(so))
		return llm_params_fail(e, 400, "invalid_value", "stream_options",
				       "'stream_options' must be an object");
	if ((r = llm_params_bool(so, "include_usage", false, &p->include_usage, e)))
		return r;
	if ((r = llm_params_bool(j, "reasoning", true, &reasoning, e)) ||
	    (r = llm_params_bool(j, "include_reasoning", reasoning,
				 &p->include_reasoning, e)))
		return r;
	p->include_reasoning = p->include_reasoning && reasoning;
	if (vx_json_get(j, "think")) {
		if ((r = llm_params_bool(j, "think", false, &think, e)))
			return r;
		think_set = true;
	}
	p->req.think = think_set ? (think ? 1 : -1) : 0;
	const char *model;
	if (vx_json_string(j, "model", NULL, LLM_PARAMS_MAX_MODEL - 1,
			   &model) < 0)
		return llm_params_fail(e, 400, "invalid_value", "model",
				       "'model' must be a string of at most %d bytes",
				       LLM_PARAMS_MAX_MODEL - 1);
	p->req.model = model && model[0] ? model : NULL;
	return 0;
}

/* A new empty "chat_template_kwargs" object in body (in place of a null
 * one), or NULL when out of memory. */
static cJSON *kwargs_object(cJSON *body)
{
	cJSON *kw = cJSON_CreateObject();
	bool ok = kw && (cJSON_GetObjectItemCaseSensitive(body, "chat_template_kwargs")
			 ? cJSON_ReplaceItemInObjectCaseSensitive(body, "chat_template_kwargs", kw)
			 : cJSON_AddItemToObject(body, "chat_template_kwargs", kw));
	if (!ok) {
		cJSON_Delete(kw);
		return NULL;
	}
	return kw;
}

/* "tools" (function definitions) and "chat_template_kwargs" (extra
 * template variables); "think" and kwargs' enable_thinking say the same. */
static int llm_params_tools(llm_params *p, const llm_params_limits *lim,
			    llm_params_error *e)
{
	const cJSON *tools = vx_json_get(p->json, "tools"), *t;
	int i = 0;
	if (tools) {
		if (!cJSON_IsArray(tools) || cJSON_GetArraySize(tools) > LLM_PARAMS_MAX_TOOLS)
			return llm_params_fail(e, 400, "invalid_tools", "tools",
					       "'tools' must be an array of at most %d tools",
					       LLM_PARAMS_MAX_TOOLS);
		cJSON_ArrayForEach(t, tools) {
			char param[48];
			snprintf(param, sizeof(param), "tools[%d]", i);
			if (!cJSON_IsObject(t) || !llm_params_has_function(t, false))
				return llm_params_fail(e, 400, "invalid_tools", param,
						       "tools[%d] must be an object {\"type\":\"function\","
						       "\"function\":{\"name\":string,...}}", i);
			i++;
		}
		if (i && !(p->req.tools = llm_params_keep_json(p, tools)))
			return llm_params_fail(e, 500, "out_of_memory", NULL, "out of memory");
	}
	cJSON *kw = cJSON_GetObjectItemCaseSensitive(p->json, "chat_template_kwargs");
	if (kw && !cJSON_IsNull(kw) && !cJSON_IsObject(kw))
		return llm_params_fail(e, 400, "invalid_value", "chat_template_kwargs",
				       "'chat_template_kwargs' must be an object");
	if (!cJSON_IsObject(kw))
		kw = NULL;
	/* the daemon's defaults, under the request's own keys ("think" is
	 * the request's enable_thinking) */
	const cJSON *dk;
	cJSON_ArrayForEach(dk, lim->template_kwargs) {
		if ((kw && cJSON_GetObjectItemCaseSensitive(kw, dk->string)) ||
		    (p->req.think && !strcmp(dk->string, "enable_thinking")))
			continue;
		cJSON *copy = cJSON_Duplicate(dk, true);
		if (!copy || (!kw && !(kw = kwargs_object(p->json))) ||
		    !cJSON_AddItemToObject(kw, dk->string, copy)) {
			cJSON_Delete(copy);
			return llm_params_fail(e, 500, "out_of_memory", NULL, "out of memory");
		}
	}
	const cJSON *et = kw ? cJSON_GetObjectItemCaseSensitive(kw, "enable_thinking") : NULL;
	if (cJSON_IsBool(et) && p->req.think == 0)
		p->req.think = cJSON_IsTrue(et) ? 1 : -1;
	if (!et && p->req.think) {   /* "think" reaches the template too */
		if (!kw && !(kw = kwargs_object(p->json)))
			return llm_params_fail(e, 500, "out_of_memory", NULL, "out of memory");
		if (!cJSON_AddBoolToObject(kw, "enable_thinking", p->req.think > 0))
			return llm_params_fail(e, 500, "out_of_memory", NULL, "out of memory");
	}
	if (kw && kw->child && !(p->req.template_kwargs = llm_params_keep_json(p, kw)))
		return llm_params_fail(e, 500, "out_of_memory", NULL, "out of memory");
	if (p->prompt_bytes > lim->max_prompt_bytes)
		return llm_params_fail(e, 413, "prompt_too_large", "tools",
				       "the messages and tools hold %zu bytes; the limit is %zu",
				       p->prompt_bytes, lim->max_prompt_bytes);
	return 0;
}

int llm_params_parse(const char *body, size_t len,
		     const llm_params_limits *limits, llm_params *ret,
		     llm_params_error *ret_err)
{
	int r;
	memset(ret, 0, sizeof(*ret));
	ret->include_reasoning = true;
	if (!vx_utf8_valid(body, len))
		return llm_params_fail(ret_err, 400, "invalid_utf8", NULL,
				       "the request body is not valid UTF-8");
	ret->json = cJSON_ParseWithLength(body, len);
	if (!ret->json)
		return llm_params_fail(ret_err, 400, "invalid_json", NULL,
				       "the request body is not valid JSON");
	if (!cJSON_IsObject(ret->json))
		return llm_params_fail(ret_err, 400, "invalid_json", NULL,
				       "the request body must be a JSON object");
	ret->req.stop = ret->stop;
	ret->req.timeout_ms = limits->timeout_ms;
	if ((r = llm_params_messages(ret, limits, ret_err)) ||
	    (r = llm_params_stop(ret, ret_err)) ||
	    (r = llm_params_sampling(ret, limits, ret_err)) ||
	    (r = llm_params_switches(ret, ret_err)) ||
	    (r = llm_params_tools(ret, limits, ret_err)))
		return r;
	return 0;
}

void llm_params_release(llm_params *p)
{
	for (size_t i = 0; i < p->n_texts; i++)
		cJSON_free(p->texts[i]);
	free(p->texts);
	free(p->mtools);
	free(p->messages);
	cJSON_Delete(p->json);
	memset(p, 0, sizeof(*p));
}
