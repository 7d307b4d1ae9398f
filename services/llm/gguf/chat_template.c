/*
 * chat_template.c - the chat template families of chat_template.h,
 * rendered in C.
 */
#include "chat_template.h"

#include <errno.h>
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

/* Appends s without leading and trailing whitespace (Jinja's trim). */
static int append_trimmed(vx_buf *out, const char *s)
{
	size_t len = strlen(s);
	while (len && is_space(*s)) {
		s++;
		len--;
	}
	while (len && is_space(s[len - 1]))
		len--;
	return vx_buf_append(out, s, len);
}

static int render_chatml(const llm_message *m, size_t n, bool gen, vx_buf *out)
{
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++)
		rc = vx_buf_printf(out, "<|im_start|>%s\n%s<|im_end|>\n",
				   m[i].role, m[i].content);
	if (!rc && gen)
		rc = vx_buf_puts(out, "<|im_start|>assistant\n");
	return rc;
}

static int render_llama3(const llm_message *m, size_t n, bool gen, vx_buf *out)
{
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		rc = vx_buf_printf(out, "<|start_header_id|>%s<|end_header_id|>\n\n",
				   m[i].role);
		if (!rc)
			rc = append_trimmed(out, m[i].content);
		if (!rc)
			rc = vx_buf_puts(out, "<|eot_id|>");
	}
	if (!rc && gen)
		rc = vx_buf_puts(out, "<|start_header_id|>assistant<|end_header_id|>\n\n");
	return rc;
}

/* Gemma has no system role: the system text opens the first user turn. */
static int render_gemma(const llm_message *m, size_t n, bool gen, vx_buf *out)
{
	const char *system = NULL;
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		if (strcmp(m[i].role, "system") == 0) {
			system = m[i].content;
			continue;
		}
		bool model = strcmp(m[i].role, "assistant") == 0;
		rc = vx_buf_printf(out, "<start_of_turn>%s\n", model ? "model" : "user");
		if (!rc && system && !model) {
			rc = append_trimmed(out, system);
			if (!rc)
				rc = vx_buf_puts(out, "\n\n");
			system = NULL;
		}
		if (!rc)
			rc = append_trimmed(out, m[i].content);
		if (!rc)
			rc = vx_buf_puts(out, "<end_of_turn>\n");
	}
	if (!rc && system)
		rc = vx_buf_printf(out, "<start_of_turn>user\n%s<end_of_turn>\n", system);
	if (!rc && gen)
		rc = vx_buf_puts(out, "<start_of_turn>model\n");
	return rc;
}

/* Phi-3 (end "<|end|>") and Zephyr (end "</s>"). */
static int render_tagged(const llm_message *m, size_t n, bool gen,
			 const char *end, vx_buf *out)
{
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		const char *r = m[i].role;
		if (strcmp(r, "system") != 0 && strcmp(r, "assistant") != 0)
			r = "user";
		rc = vx_buf_printf(out, "<|%s|>\n%s%s\n", r, m[i].content, end);
	}
	if (!rc && gen)
		rc = vx_buf_puts(out, "<|assistant|>\n");
	return rc;
}

int chat_template_render(chat_template t, const llm_message *msgs, size_t n,
			 bool add_generation_prompt, vx_buf *out)
{
	if (n && !msgs)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!msgs[i].role || !msgs[i].content)
			return -EINVAL;
	switch (t) {
	case CHAT_TMPL_CHATML:
		return render_chatml(msgs, n, add_generation_prompt, out);
	case CHAT_TMPL_LLAMA3:
		return render_llama3(msgs, n, add_generation_prompt, out);
	case CHAT_TMPL_GEMMA:
		return render_gemma(msgs, n, add_generation_prompt, out);
	case CHAT_TMPL_PHI3:
		return render_tagged(msgs, n, add_generation_prompt, "<|end|>", out);
	case CHAT_TMPL_ZEPHYR:
		return render_tagged(msgs, n, add_generation_prompt, "</s>", out);
	}
	return -EINVAL;
}
