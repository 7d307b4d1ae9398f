/*
 * fuzz_chat.c - prompt injection through the chat templates: a rendered
 * conversation (chat_template_render_masked) tokenised with
 * tok_encode_masked, as the GGUF engine does, on any roles and contents.
 *
 * Input: byte 0 picks the template (bits 0-2, mod 5) and
 * add_generation_prompt (bit 3); the rest is up to 16 messages separated by
 * 0x01, each "role 0x02 content" (no 0x02: role "user"). The vocabulary is
 * tests/fuzz/data/vocab_bpe_qwen2.json (ChatML and Llama 3 control tokens).
 * Checked: the markup mask covers the prompt byte for byte; the masked
 * render equals the plain one; and the prompt holds exactly as many control
 * tokens as the same conversation with every '<' in roles and contents
 * made '[' (text that cannot spell a control token): message text never
 * becomes a control token, and never hides one of the template's.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../gguf/tok_fixture.h"
#include "chat_template.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MSGS 16

static tok *vocab;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	char path[4096];
	snprintf(path, sizeof(path), "%s/vocab_bpe_qwen2.json", FUZZ_DATA_DIR);
	if (tok_fixture_load(path, &vocab) != 0) {
		fprintf(stderr, "fuzz_chat: cannot load %s\n", path);
		abort();
	}
	return 0;
}

/* Control tokens in the masked tokenisation of the rendered messages; -1
 * when rendering refused (then both renders must refuse). */
static long control_tokens(chat_template t, const llm_message *m, size_t n, bool gen)
{
	vx_buf prompt = {0}, mask = {0}, plain = {0};
	long count = -1;
	int r = chat_template_render_masked(t, m, n, gen, &prompt, &mask);
	int r2 = chat_template_render(t, m, n, gen, &plain);
	if (r != r2)
		abort();
	if (r == 0) {
		if (mask.len != prompt.len || plain.len != prompt.len ||
		    (prompt.len && memcmp(plain.data, prompt.data, prompt.len)))
			abort();
		for (size_t i = 0; i < mask.len; i++)
			if (mask.data[i] != 0 && mask.data[i] != 1)
				abort();
		size_t max = prompt.len + 8, got = 0;
		int32_t *ids = malloc(max * sizeof(*ids));
		if (!ids)
			abort();
		if (tok_encode_masked(vocab, prompt.data ? prompt.data : "", prompt.len,
				      (const unsigned char *)(mask.data ? mask.data : ""),
				      ids, max, &got) != 0)
			abort();
		count = 0;
		for (size_t i = 0; i < got; i++)
			count += tok_is_control(vocab, ids[i]);
		free(ids);
	}
	vx_buf_release(&prompt);
	vx_buf_release(&mask);
	vx_buf_release(&plain);
	return count;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	chat_template t = (chat_template)((data[0] & 7) % 5);
	bool gen = data[0] & 8;
	char *copy = malloc(size), *safe = malloc(size);
	if (!copy || !safe)
		abort();
	memcpy(copy, data + 1, size - 1);
	copy[size - 1] = '\0';
	for (size_t i = 0; i < size; i++)
		safe[i] = copy[i] == '<' ? '[' : copy[i];

	llm_message m[MAX_MSGS], ms[MAX_MSGS];
	size_t n = 0;
	char *p = copy;
	while (n < MAX_MSGS) {
		char *end = strchr(p, '\x01');
		if (end)
			*end = '\0';
		char *sep = strchr(p, '\x02');
		if (sep) {
			*sep = '\0';
			m[n].role = p;
			ms[n].role = safe + (p - copy);
			m[n].content = sep + 1;
		} else {
			m[n].role = ms[n].role = "user";
			m[n].content = p;
		}
		ms[n].content = safe + (m[n].content - copy);
		n++;
		if (!end)
			break;
		p = end + 1;
	}
	/* safe: the same messages with '<' made '[', split at the same places */
	for (size_t i = 0; i < size; i++)
		if (copy[i] == '\0')
			safe[i] = '\0';

	long a = control_tokens(t, m, n, gen);
	long b = control_tokens(t, ms, n, gen);
	if (a != b)
		abort();
	free(copy);
	free(safe);
	return 0;
}
