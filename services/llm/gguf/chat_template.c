/*
 * chat_template.c - the chat template families of chat_template.h,
 * rendered in C.
 */
#include "chat_template.h"
#include "jinja.h"

#include <errno.h>
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

struct chat_prog {
	jinja_tmpl *tmpl;
	char *bos, *eos;
};

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

static int set_globals(jinja_run *r, const chat_prog *p, const llm_message *msgs, size_t n,
		       bool gen)
{
	jv *list = jinja_list(r);
	if (!list)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (!msgs[i].role || !msgs[i].content)
			return -EINVAL;
		jv *m = jinja_dict(r);
		jv *role = jinja_str(r, msgs[i].role, strlen(msgs[i].role), false);
		jv *content = jinja_str(r, msgs[i].content, strlen(msgs[i].content), false);
		if (!m || !role || !content || jinja_dict_set(r, m, "role", role) < 0 ||
		    jinja_dict_set(r, m, "content", content) < 0 || jinja_list_push(r, list, m) < 0)
			return -ENOMEM;
	}
	jv *bos = jinja_str(r, p->bos, strlen(p->bos), true);
	jv *eos = jinja_str(r, p->eos, strlen(p->eos), true);
	jv *g = jinja_bool(r, gen);
	if (!bos || !eos || !g || jinja_set_global(r, "messages", list) < 0 ||
	    jinja_set_global(r, "bos_token", bos) < 0 || jinja_set_global(r, "eos_token", eos) < 0 ||
	    jinja_set_global(r, "add_generation_prompt", g) < 0)
		return -ENOMEM;
	return 0;
}

int chat_prog_render_masked(const chat_prog *p, const llm_message *msgs, size_t n,
			    bool add_generation_prompt, vx_buf *out, vx_buf *ret_markup,
			    char *err, size_t err_len)
{
	if (!p || !out || !ret_markup || out->len != ret_markup->len || (n && !msgs))
		return -EINVAL;
	size_t len0 = out->len;
	jinja_run *r;
	jinja_limits lim = { .max_output = CHAT_PROG_MAX_OUTPUT, .max_memory = CHAT_PROG_MAX_MEMORY };
	int rc = jinja_run_new(&lim, &r);
	if (rc < 0)
		return rc;
	rc = set_globals(r, p, msgs, n, add_generation_prompt);
	if (rc < 0 && err && err_len)
		snprintf(err, err_len, "%s", rc == -EINVAL ? "a message without role or content" :
			 "out of memory");
	if (rc == 0)
		rc = jinja_render(r, p->tmpl, out, ret_markup, err, err_len);
	jinja_run_free(r);
	if (rc < 0) {
		out->len = ret_markup->len = len0;
		if (out->data)
			out->data[len0] = 0;
		if (ret_markup->data)
			ret_markup->data[len0] = 0;
	}
	return rc;
}
