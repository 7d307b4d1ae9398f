/*
 * fuzz_sentences.c - the streaming sentence splitter on any bytes.
 *
 * Input: byte 0 picks soft_max (0 -> the default, else 8 + the byte),
 * byte 1 seeds how the text is cut into feeds; the rest is the text.
 * Checked, as sentences.h promises: the sentences do not depend on how the
 * text was cut (whole vs. pieces); each is non-empty and trimmed; no
 * sentence exceeds the hard cut (2 * soft_max bytes); and the non-space
 * bytes of all sentences are the non-space bytes of the text, in order
 * (0xFF, the separator here, aside).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sentences.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct collected {
	vx_buf all;      /* sentences, each followed by one 0xFF byte */
	size_t soft;
} collected;

static bool space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
	       c == '\v';
}

static int on_sentence(void *user, const char *text, size_t len)
{
	collected *c = user;
	if (len == 0 || space((unsigned char)text[0]) ||
	    space((unsigned char)text[len - 1]) || text[len] != '\0')
		abort();
	if (len > 2 * c->soft)
		abort();
	if (vx_buf_append(&c->all, text, len) < 0 ||
	    vx_buf_append(&c->all, "\xff", 1) < 0)
		abort();
	return 0;
}

static void run(const char *text, size_t len, size_t soft_max, uint32_t seed,
		collected *c)
{
	sentences s;
	sentences_init(&s);
	if (soft_max)
		s.soft_max = soft_max;
	c->soft = s.soft_max < SENTENCES_MIN_SOFT_MAX ? SENTENCES_MIN_SOFT_MAX : s.soft_max;
	size_t off = 0;
	while (off < len) {
		size_t n = len - off;
		if (seed) {
			seed = seed * 1103515245u + 12345u;
			size_t k = (seed >> 16) % 9;
			n = k < n ? k : n;
		}
		if (sentences_feed(&s, text + off, n, on_sentence, c) != 0)
			abort();
		off += n;
	}
	if (sentences_flush(&s, on_sentence, c) != 0 || s.pend.len != 0)
		abort();
	sentences_release(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t soft_max = data[0] ? 8 + (size_t)data[0] : 0;
	uint32_t seed = data[1] | 0x100u;
	const char *text = (const char *)data + 2;
	size_t len = size - 2;
	collected whole = {0}, cut = {0};

	run(text, len, soft_max, 0, &whole);
	run(text, len, soft_max, seed, &cut);
	if (whole.all.len != cut.all.len ||
	    (whole.all.len && memcmp(whole.all.data, cut.all.data, whole.all.len) != 0))
		abort();

	size_t j = 0;
	for (size_t i = 0; i < len; i++) {
		if (space((unsigned char)text[i]) || (unsigned char)text[i] == 0xff)
			continue;
		while (j < whole.all.len && (space((unsigned char)whole.all.data[j]) ||
					     (unsigned char)whole.all.data[j] == 0xff))
			j++;
		if (j >= whole.all.len || whole.all.data[j] != text[i])
			abort();
		j++;
	}
	vx_buf_release(&whole.all);
	vx_buf_release(&cut.all);
	return 0;
}
