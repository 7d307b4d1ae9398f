/*
 * fuzz_llm_params.c - the LLM request parser (POST /generate,
 * /v1/chat/completions, /ws/generate) on any body, with two sets of
 * limits (byte 0 bit 0 picks: tight or the daemon's defaults).
 *
 * Checked: success gives a non-empty message list of known roles with
 * content, within the prompt limit, sampling values within the documented
 * ranges, tools / tool calls / template kwargs as JSON text of the right
 * kind; failure gives status 400 or 413, a code and NUL-terminated texts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "llm_params.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const llm_params_limits limits[2] = {
	{ .max_tokens_default = 16, .max_tokens_limit = 64, .max_prompt_bytes = 64,
	  .temperature_default = 0.7, .system_prompt = NULL, .timeout_ms = 1000 },
	{ .max_tokens_default = 512, .max_tokens_limit = 8192,
	  .max_prompt_bytes = 1 << 20, .temperature_default = 0.7,
	  .system_prompt = "You are a helpful assistant.", .timeout_ms = 0 },
};

static bool role_ok(const char *r)
{
	return r && (!strcmp(r, "system") || !strcmp(r, "user") ||
		     !strcmp(r, "assistant") || !strcmp(r, "developer") ||
		     !strcmp(r, "tool"));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const llm_params_limits *lim = &limits[data[0] & 1];
	llm_params p;
	llm_params_error e;
	memset(&e, 0xAA, sizeof(e));
	int r = llm_params_parse((const char *)data + 1, size - 1, lim, &p, &e);
	if (r == 0) {
		const llm_request *q = &p.req;
		if (q->n_messages == 0 || q->n_messages > LLM_PARAMS_MAX_MESSAGES + 1 ||
		    !q->messages || p.prompt_bytes > lim->max_prompt_bytes)
			abort();
		for (size_t i = 0; i < q->n_messages; i++)
			if (!role_ok(q->messages[i].role) || !q->messages[i].content)
				abort();
		if (q->max_tokens <= 0 || q->max_tokens > lim->max_tokens_limit ||
		    q->top_k < 0 || q->top_k > LLM_PARAMS_MAX_TOP_K ||
		    !(q->temperature >= 0) || !(q->top_p >= 0 && q->top_p <= 1) ||
		    !(q->repeat_penalty >= 0 &&
		      q->repeat_penalty <= LLM_PARAMS_MAX_REPEAT_PENALTY) ||
		    q->n_stop > STOPSTR_MAX_STOPS)
			abort();
		for (size_t i = 0; i < q->n_stop; i++)
			if (!q->stop[i])
				abort();
		if (q->model && strlen(q->model) >= LLM_PARAMS_MAX_MODEL)
			abort();
		if ((q->tools && q->tools[0] != '[') ||
		    (q->template_kwargs && q->template_kwargs[0] != '{') || !q->message_tools)
			abort();
		for (size_t i = 0; i < q->n_messages; i++)
			if (q->message_tools[i].tool_calls && q->message_tools[i].tool_calls[0] != '[')
				abort();
	} else {
		if ((e.status != 400 && e.status != 413 && e.status != 500) ||
		    !e.code[0] ||
		    !memchr(e.code, 0, sizeof(e.code)) ||
		    !memchr(e.param, 0, sizeof(e.param)) ||
		    !memchr(e.message, 0, sizeof(e.message)))
			abort();
	}
	llm_params_release(&p);
	return 0;
}
