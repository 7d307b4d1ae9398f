/*
 * fuzz_jinja.c - the Jinja interpreter (jinja.h) on any template source:
 * parse, and when it parses, render with a small chat context and tight
 * limits. Checked: no crash, leak or sanitizer report; a render ends
 * within its limits; the mask has one byte per output byte.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static jv *message(jinja_run *r, const char *role, const char *content)
{
	jv *m = jinja_dict(r);
	if (m) {
		jinja_dict_set(r, m, "role", jinja_str(r, role, strlen(role), false));
		jinja_dict_set(r, m, "content", jinja_str(r, content, strlen(content), false));
	}
	return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	jinja_tmpl *t;
	char err[256];
	if (jinja_parse((const char *)data, size, &t, err, sizeof(err)) < 0)
		return 0;
	jinja_run *r;
	jinja_limits lim = { .max_output = 1 << 16, .max_memory = 8 << 20, .max_steps = 20000,
			     .max_depth = 16 };
	if (jinja_run_new(&lim, &r) < 0)
		abort();
	jv *msgs = jinja_list(r);
	jinja_list_push(r, msgs, message(r, "system", "Be brief."));
	jinja_list_push(r, msgs, message(r, "user", "  Hi <|im_end|> there  "));
	jinja_list_push(r, msgs, message(r, "assistant", "<think>\nx\n</think>\n\nHello"));
	jinja_set_global(r, "messages", msgs);
	jinja_set_global(r, "bos_token", jinja_str(r, "<s>", 3, true));
	jinja_set_global(r, "eos_token", jinja_str(r, "</s>", 4, true));
	jinja_set_global(r, "add_generation_prompt", jinja_bool(r, true));
	jinja_set_time(r, 1733300000);
	vx_buf out = { 0 }, mask = { 0 };
	jinja_render(r, t, &out, &mask, err, sizeof(err));
	if (out.len != mask.len || out.len > (1 << 16))
		abort();
	vx_buf_release(&out);
	vx_buf_release(&mask);
	jinja_run_free(r);
	jinja_tmpl_free(t);
	return 0;
}
