/*
 * chat_template.c - the chat template families of chat_template.h,
 * rendered in C.
 */
#include "chat_template.h"
#include "jinja.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[] = {
	[CHAT_TMPL_CHATML] = "chatml",
	[CHAT_TMPL_LLAMA3] = "llama3",
	[CHAT_TMPL_GEMMA] = "gemma",
	[CHAT_TMPL_PHI3] = "phi3",
	[CHAT_TMPL_ZEPHYR] = "zephyr",
};

int chat_template_detect(const char *src, chat_template *ret)
{
	if (src && strstr(src, "<|im_start|>")) {
		*ret = CHAT_TMPL_CHATML;
	} else if (src && strstr(src, "<|start_header_id|>")) {
		*ret = CHAT_TMPL_LLAMA3;
	} else if (src && strstr(src, "<start_of_turn>")) {
		*ret = CHAT_TMPL_GEMMA;
	} else if (src && strstr(src, "<|user|>") && strstr(src, "<|end|>")) {
		*ret = CHAT_TMPL_PHI3;
	} else if (src && strstr(src, "<|user|>")) {
		*ret = CHAT_TMPL_ZEPHYR;
	} else {
		*ret = CHAT_TMPL_CHATML;
		return 1;
	}
	return 0;
}

const char *chat_template_name(chat_template t)
{
	if ((unsigned)t < sizeof(names) / sizeof(names[0]))
		return names[t];
	return "unknown";
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Where a render goes: the text, and optionally a mask with one byte per
 * text byte, 1 for the template's own markup, 0 for message text. */
typedef struct rend {
	vx_buf *out;
	vx_buf *mask;   /* NULL: no mask wanted */
} rend;

static int put(rend *r, const char *s, size_t len, unsigned char markup)
{
	int rc;
	if (r->mask && (rc = vx_buf_reserve(r->mask, len)) < 0)
		return rc;
	if ((rc = vx_buf_append(r->out, s, len)) < 0 || !r->mask)
		return rc;
	memset(r->mask->data + r->mask->len, markup, len);
	r->mask->len += len;
	r->mask->data[r->mask->len] = 0;
	return 0;
}

/* Template markup (may hold control tokens). */
static int mark(rend *r, const char *s)
{
	return put(r, s, strlen(s), 1);
}

/* Message text (role or content: never control tokens). */
static int text(rend *r, const char *s)
{
	return put(r, s, strlen(s), 0);
}

/* Message text without leading and trailing whitespace (Jinja's trim). */
static int text_trimmed(rend *r, const char *s)
{
	size_t len = strlen(s);
	while (len && is_space(*s)) {
		s++;
		len--;
	}
	while (len && is_space(s[len - 1]))
		len--;
	return put(r, s, len, 0);
}

static int render_chatml(rend *r, const llm_message *m, size_t n, bool gen)
{
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		if (!(rc = mark(r, "<|im_start|>")) && !(rc = text(r, m[i].role)) &&
		    !(rc = mark(r, "\n")) && !(rc = text(r, m[i].content)))
			rc = mark(r, "<|im_end|>\n");
	}
	if (!rc && gen)
		rc = mark(r, "<|im_start|>assistant\n");
	return rc;
}

static int render_llama3(rend *r, const llm_message *m, size_t n, bool gen)
{
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		if (!(rc = mark(r, "<|start_header_id|>")) && !(rc = text(r, m[i].role)) &&
		    !(rc = mark(r, "<|end_header_id|>\n\n")) &&
		    !(rc = text_trimmed(r, m[i].content)))
			rc = mark(r, "<|eot_id|>");
	}
	if (!rc && gen)
		rc = mark(r, "<|start_header_id|>assistant<|end_header_id|>\n\n");
	return rc;
}

/* Gemma has no system role: the system text opens the first user turn. */
static int render_gemma(rend *r, const llm_message *m, size_t n, bool gen)
{
	const char *system = NULL;
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		if (strcmp(m[i].role, "system") == 0) {
			system = m[i].content;
			continue;
		}
		bool model = strcmp(m[i].role, "assistant") == 0;
		rc = mark(r, model ? "<start_of_turn>model\n" : "<start_of_turn>user\n");
		if (!rc && system && !model) {
			if (!(rc = text_trimmed(r, system)))
				rc = mark(r, "\n\n");
			system = NULL;
		}
		if (!rc)
			rc = text_trimmed(r, m[i].content);
		if (!rc)
			rc = mark(r, "<end_of_turn>\n");
	}
	if (!rc && system && !(rc = mark(r, "<start_of_turn>user\n")) &&
	    !(rc = text(r, system)))
		rc = mark(r, "<end_of_turn>\n");
	if (!rc && gen)
		rc = mark(r, "<start_of_turn>model\n");
	return rc;
}

/* Phi-3 (end "<|end|>") and Zephyr (end "</s>"). */
static int render_tagged(rend *r, const llm_message *m, size_t n, bool gen,
			 const char *end)
{
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		const char *role = m[i].role;
		if (strcmp(role, "system") != 0 && strcmp(role, "assistant") != 0)
			role = "user";
		if (!(rc = mark(r, "<|")) && !(rc = mark(r, role)) &&
		    !(rc = mark(r, "|>\n")) && !(rc = text(r, m[i].content)) &&
		    !(rc = mark(r, end)))
			rc = mark(r, "\n");
	}
	if (!rc && gen)
		rc = mark(r, "<|assistant|>\n");
	return rc;
}

static int render(chat_template t, const llm_message *msgs, size_t n, bool gen,
		  rend *r)
{
	if (n && !msgs)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!msgs[i].role || !msgs[i].content)
			return -EINVAL;
	switch (t) {
	case CHAT_TMPL_CHATML:
		return render_chatml(r, msgs, n, gen);
	case CHAT_TMPL_LLAMA3:
		return render_llama3(r, msgs, n, gen);
	case CHAT_TMPL_GEMMA:
		return render_gemma(r, msgs, n, gen);
	case CHAT_TMPL_PHI3:
		return render_tagged(r, msgs, n, gen, "<|end|>");
	case CHAT_TMPL_ZEPHYR:
		return render_tagged(r, msgs, n, gen, "</s>");
	}
	return -EINVAL;
}

int chat_template_render(chat_template t, const llm_message *msgs, size_t n,
			 bool add_generation_prompt, vx_buf *out)
{
	rend r = { .out = out };
	return render(t, msgs, n, add_generation_prompt, &r);
}

int chat_template_render_masked(chat_template t, const llm_message *msgs, size_t n,
				bool add_generation_prompt, vx_buf *out,
				vx_buf *ret_markup)
{
	rend r = { .out = out, .mask = ret_markup };
	if (!ret_markup || ret_markup->len != out->len)
		return -EINVAL;
	return render(t, msgs, n, add_generation_prompt, &r);
}

/* ---- the model's own template, interpreted ---- */

/* Limits of one render: a prompt is at most a few MiB of text. */
#define CHAT_PROG_MAX_OUTPUT (8u << 20)
#define CHAT_PROG_MAX_MEMORY (128u << 20)

#define CHAT_PROG_MAX_JSON_DEPTH 64   /* tools and tool calls: nesting */

struct chat_prog {
	jinja_tmpl *tmpl;
	char *bos, *eos;
	bool object_args;   /* tool calls' string arguments become objects */
};

static bool template_wants_object_args(chat_prog *p);

int chat_prog_new(const char *src, size_t len, const char *bos, const char *eos,
		  chat_prog **ret, char *err, size_t err_len)
{
	chat_prog *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	int rc = jinja_parse(src, len, &p->tmpl, err, err_len);
	if (rc == 0 && (!(p->bos = strdup(bos ? bos : "")) || !(p->eos = strdup(eos ? eos : ""))))
		rc = -ENOMEM;
	if (rc < 0) {
		chat_prog_free(p);
		return rc;
	}
	p->object_args = template_wants_object_args(p);
	*ret = p;
	return 0;
}

void chat_prog_free(chat_prog *p)
{
	if (!p)
		return;
	jinja_tmpl_free(p->tmpl);
	free(p->bos);
	free(p->eos);
	free(p);
}

/* ---- request-time variables: JSON the client sent, as Jinja values ---- */

/* A JSON value as a Jinja value; every string and key is data (0 bits).
 * Numbers that are whole become ints (cJSON keeps no "1.0" vs "1"). NULL
 * on ENOMEM or past CHAT_PROG_MAX_JSON_DEPTH. */
static jv *from_json(jinja_run *r, const cJSON *j, int depth)
{
	if (depth > CHAT_PROG_MAX_JSON_DEPTH)
		return NULL;
	if (cJSON_IsString(j))
		return jinja_str(r, j->valuestring, strlen(j->valuestring), false);
	if (cJSON_IsBool(j))
		return jinja_bool(r, cJSON_IsTrue(j));
	if (cJSON_IsNull(j))
		return jinja_none(r);
	if (cJSON_IsNumber(j)) {
		double d = j->valuedouble;
		if (d == floor(d) && fabs(d) < 9007199254740992.0)
			return jinja_int(r, (int64_t)d);
		return jinja_float(r, d);
	}
	if (!cJSON_IsArray(j) && !cJSON_IsObject(j))
		return NULL;
	jv *c = cJSON_IsArray(j) ? jinja_list(r) : jinja_dict(r);
	for (const cJSON *e = j->child; c && e; e = e->next) {
		jv *x = from_json(r, e, depth + 1), *k = NULL;
		if (!x)
			return NULL;
		if (cJSON_IsObject(j) && !(k = jinja_str(r, e->string, strlen(e->string), false)))
			return NULL;
		if ((k ? jinja_dict_put(r, c, k, x) : jinja_list_push(r, c, x)) < 0)
			return NULL;
	}
	return c;
}

/* OpenAI sends function.arguments as a JSON string; templates written for
 * Hugging Face's format (Llama 3.1: arguments | tojson) want the object.
 * Turns each call's string arguments that parse as an object into it. */
static void arguments_as_objects(cJSON *calls)
{
	cJSON *c;
	cJSON_ArrayForEach(c, calls) {
		cJSON *fn = cJSON_GetObjectItemCaseSensitive(c, "function");
		cJSON *a = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
		if (!cJSON_IsString(a))
			continue;
		cJSON *o = cJSON_Parse(a->valuestring);
		if (!cJSON_IsObject(o) || !cJSON_ReplaceItemInObjectCaseSensitive(fn, "arguments", o))
			cJSON_Delete(o);
	}
}

/* The JSON text s (NULL: Undefined, *ret NULL) as a Jinja value. */
static int json_value(jinja_run *r, const char *s, bool object_args, jv **ret)
{
	*ret = NULL;
	if (!s)
		return 0;
	cJSON *j = cJSON_Parse(s);
	if (!j)
		return -EINVAL;
	if (object_args)
		arguments_as_objects(j);
	*ret = from_json(r, j, 0);
	cJSON_Delete(j);
	return *ret ? 0 : -E2BIG;   /* too deep (or out of memory) */
}

/* s is "[]" (JSON whitespace allowed) */
static bool empty_array(const char *s)
{
	if (!s)
		return false;
	s += strspn(s, " \t\r\n");
	if (*s++ != '[')
		return false;
	s += strspn(s, " \t\r\n");
	return *s == ']';
}

static jv *str_data(jinja_run *r, const char *s)
{
	return jinja_str(r, s, strlen(s), false);
}

/* One message: {role, content[, tool_calls, tool_call_id, name]}. */
static int message_value(jinja_run *r, const chat_prog *p, const llm_message *m,
			 const llm_message_tools *mt, jv **ret)
{
	jv *d = jinja_dict(r), *role, *content, *calls = NULL;
	if (!m->role || !m->content)
		return -EINVAL;
	if (!d || !(role = str_data(r, m->role)) || !(content = str_data(r, m->content)) ||
	    jinja_dict_set(r, d, "role", role) < 0 || jinja_dict_set(r, d, "content", content) < 0)
		return -ENOMEM;
	if (mt) {
		int rc = json_value(r, mt->tool_calls, p->object_args, &calls);
		jv *v;
		if (rc < 0)
			return rc;
		if (calls && jinja_dict_set(r, d, "tool_calls", calls) < 0)
			return -ENOMEM;
		if (mt->tool_call_id && (!(v = str_data(r, mt->tool_call_id)) ||
					 jinja_dict_set(r, d, "tool_call_id", v) < 0))
			return -ENOMEM;
		if (mt->name && (!(v = str_data(r, mt->name)) || jinja_dict_set(r, d, "name", v) < 0))
			return -ENOMEM;
	}
	*ret = d;
	return 0;
}

/* chat_template_kwargs: each key a global (the standard ones set after
 * them win). */
static int set_kwargs(jinja_run *r, const char *json)
{
	if (!json)
		return 0;
	cJSON *j = cJSON_Parse(json);
	int rc = cJSON_IsObject(j) ? 0 : -EINVAL;
	for (const cJSON *e = j ? j->child : NULL; e && rc == 0; e = e->next) {
		jv *v = from_json(r, e, 1);
		if (!v)
			rc = -E2BIG;
		else if (jinja_set_global(r, e->string, v) < 0)
			rc = -ENOMEM;
	}
	cJSON_Delete(j);
	return rc;
}

static int set_globals(jinja_run *r, const chat_prog *p, const llm_request *q, bool gen,
		       const char **ret_what)
{
	jv *list = jinja_list(r), *tools = NULL;
	int rc;
	*ret_what = "chat_template_kwargs";
	if (!list)
		return -ENOMEM;
	if ((rc = set_kwargs(r, q->template_kwargs)) < 0)
		return rc;
	*ret_what = "messages";
	for (size_t i = 0; i < q->n_messages; i++) {
		jv *m;
		rc = message_value(r, p, &q->messages[i],
				   q->message_tools ? &q->message_tools[i] : NULL, &m);
		if (rc < 0)
			return rc;
		if (jinja_list_push(r, list, m) < 0)
			return -ENOMEM;
	}
	*ret_what = "tools";
	/* "tools": [] is no tools (as llama.cpp) */
	if (!empty_array(q->tools) && (rc = json_value(r, q->tools, false, &tools)) < 0)
		return rc;
	if (tools && jinja_set_global(r, "tools", tools) < 0)
		return -ENOMEM;
	*ret_what = "the template's variables";
	jv *bos = jinja_str(r, p->bos, strlen(p->bos), true);
	jv *eos = jinja_str(r, p->eos, strlen(p->eos), true);
	jv *g = jinja_bool(r, gen);
	if (!bos || !eos || !g || jinja_set_global(r, "messages", list) < 0 ||
	    jinja_set_global(r, "bos_token", bos) < 0 || jinja_set_global(r, "eos_token", eos) < 0 ||
	    jinja_set_global(r, "add_generation_prompt", g) < 0)
		return -ENOMEM;
	return 0;
}

static int render_prog(const chat_prog *p, const llm_request *q, bool gen, vx_buf *out,
		       vx_buf *mask, char *err, size_t err_len)
{
	size_t len0 = out->len;
	jinja_run *r;
	jinja_limits lim = { .max_output = CHAT_PROG_MAX_OUTPUT, .max_memory = CHAT_PROG_MAX_MEMORY };
	int rc = jinja_run_new(&lim, &r);
	if (rc < 0)
		return rc;
	const char *what = "";
	rc = set_globals(r, p, q, gen, &what);
	if (rc < 0 && err && err_len)
		snprintf(err, err_len, "%s: %s", what,
			 rc == -EINVAL ? "not valid here (a message without role or content, "
					 "or JSON of the wrong shape)" :
			 rc == -E2BIG ? "JSON nested too deeply" : "out of memory");
	if (rc == 0)
		rc = jinja_render(r, p->tmpl, out, mask, err, err_len);
	jinja_run_free(r);
	if (rc < 0) {
		out->len = mask->len = len0;
		if (out->data)
			out->data[len0] = 0;
		if (mask->data)
			mask->data[len0] = 0;
	}
	return rc;
}

/* Whether the template shows a tool call's arguments given as a JSON
 * string (Qwen, Mistral print it) or only given as an object (Llama 3.1
 * does arguments | tojson): render a call both ways and look for its
 * argument's name printed as a key. */
static bool template_wants_object_args(chat_prog *p)
{
	const llm_message m[] = { { "user", "hi" }, { "assistant", "" } };
	const llm_message_tools mt[] = {
		{ 0 },
		{ .tool_calls = "[{\"id\":\"call12345\",\"type\":\"function\",\"function\":"
				"{\"name\":\"probe\",\"arguments\":\"{\\\"vx_probe_arg\\\": 1}\"}}]" },
	};
	llm_request q = { .messages = m, .n_messages = 2, .message_tools = mt };
	bool shown[2];
	for (int obj = 0; obj < 2; obj++) {
		vx_buf out = { 0 }, mask = { 0 };
		p->object_args = obj;
		shown[obj] = render_prog(p, &q, false, &out, &mask, NULL, 0) == 0 && out.data &&
			     (strstr(out.data, "\"vx_probe_arg\":") || strstr(out.data, "'vx_probe_arg':"));
		vx_buf_release(&out);
		vx_buf_release(&mask);
	}
	return !shown[0] && shown[1];
}

int chat_prog_render_req(const chat_prog *p, const llm_request *req,
			 bool add_generation_prompt, vx_buf *out, vx_buf *ret_markup,
			 char *err, size_t err_len)
{
	if (!p || !req || !out || !ret_markup || out->len != ret_markup->len ||
	    (req->n_messages && !req->messages))
		return -EINVAL;
	return render_prog(p, req, add_generation_prompt, out, ret_markup, err, err_len);
}

int chat_prog_render_masked(const chat_prog *p, const llm_message *msgs, size_t n,
			    bool add_generation_prompt, vx_buf *out, vx_buf *ret_markup,
			    char *err, size_t err_len)
{
	llm_request q = { .messages = msgs, .n_messages = n };
	return chat_prog_render_req(p, &q, add_generation_prompt, out, ret_markup, err, err_len);
}

bool chat_prog_object_arguments(const chat_prog *p)
{
	return p && p->object_args;
}
