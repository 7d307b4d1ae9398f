/*
 * fuzz_filters.c - the streaming filters every generated text passes
 * through (services/llm): the stop-string matcher (stopstr.c), the
 * <think> splitter (think.c) and the UTF-8 emitter (llm_emit.c).
 *
 * Input: byte 0 seeds how the text is cut into pieces, byte 1 says how
 * many stop strings follow (bits 0-2, up to 7) and whether the splitter
 * starts in reasoning (bit 3); then the stop strings, each ended by 0x01;
 * the rest is the text. Checked:
 *   - stopstr passes exactly the text before the earliest stop string
 *     (memmem oracle), whatever the cutting, and reports the stop (from
 *     feed, or from finish when a longer stop could still have begun);
 *   - think gives the same content and reasoning whatever the cutting,
 *     and no content piece holds a tag;
 *   - llm_emit gives the same bytes whatever the cutting (a broken
 *     sequence is U+FFFD inside a piece as across two), and valid UTF-8
 *     back unchanged.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "llm_emit.h"
#include "stopstr.h"
#include "think.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t next_cut(uint32_t *seed, size_t left)
{
	if (!*seed)
		return left;
	*seed = *seed * 1103515245u + 12345u;
	size_t k = (*seed >> 16) % 9;
	return k < left ? k : left;
}

/* ---- stopstr ---- */

static void check_stopstr(const char *const *stops, size_t n_stops,
			  const char *text, size_t len, uint32_t seed)
{
	size_t cut = len;
	bool any = false;
	for (size_t i = 0; i < n_stops; i++) {
		size_t sl = strlen(stops[i]);
		if (!sl)
			continue;
		const char *m = memmem(text, len, stops[i], sl);
		if (m && (size_t)(m - text) < cut) {
			cut = (size_t)(m - text);
			any = true;
		} else if (m) {
			any = true;
		}
	}
	stopstr s;
	vx_buf out = {0};
	if (stopstr_init(&s, stops, n_stops) != 0)
		abort();
	int r = 0;
	for (size_t off = 0; off < len && r == 0;) {
		size_t n = next_cut(&seed, len - off);
		r = stopstr_feed(&s, text + off, n, &out);
		off += n;
	}
	if (r < 0)
		abort();
	if (r == 0 && stopstr_finish(&s, &out) != 0)
		abort();
	if ((r == 1 || s.stopped) != any || out.len != cut || (cut && memcmp(out.data, text, cut)))
		abort();
	stopstr_release(&s);
	vx_buf_release(&out);
}

/* ---- think ---- */

typedef struct split_out {
	vx_buf kind[2];
} split_out;

static int on_split(void *user, llm_piece_kind kind, const char *text, size_t len)
{
	split_out *o = user;
	if (kind != LLM_CONTENT && kind != LLM_REASONING)
		abort();
	if (kind == LLM_CONTENT && (memmem(text, len, "<think>", 7) ||
				    memmem(text, len, "</think>", 8)))
		abort();
	if (vx_buf_append(&o->kind[kind], text, len) < 0)
		abort();
	return 0;
}

static void think_run(const char *text, size_t len, bool in_think, uint32_t seed,
		      split_out *o)
{
	think_splitter t;
	think_init(&t, in_think, on_split, o);
	for (size_t off = 0; off < len;) {
		size_t n = next_cut(&seed, len - off);
		if (think_feed(&t, LLM_CONTENT, text + off, n) != 0)
			abort();
		off += n;
	}
	if (think_finish(&t) != 0)
		abort();
}

/* ---- llm_emit ---- */

static int on_emit(void *user, llm_piece_kind kind, const char *text, size_t len)
{
	vx_buf *b = user;
	if (len == 0 || kind != LLM_CONTENT)
		abort();
	if (vx_buf_append(b, text, len) < 0)
		abort();
	return 0;
}

static void emit_run(const char *text, size_t len, uint32_t seed, vx_buf *out)
{
	llm_emit e;
	llm_emit_init(&e, on_emit, out);
	for (size_t off = 0; off < len;) {
		size_t n = next_cut(&seed, len - off);
		if (llm_emit_piece(&e, LLM_CONTENT, text + off, n) != 0)
			abort();
		off += n;
	}
	if (llm_emit_flush(&e) != 0)
		abort();
}

/* Strict UTF-8: no overlong forms, surrogates or code points past U+10FFFF. */
static bool utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i], need, min;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF)
			need = 1, min = 0x80;
		else if (c >= 0xE0 && c <= 0xEF)
			need = 2, min = 0x800;
		else if (c >= 0xF0 && c <= 0xF4)
			need = 3, min = 0x10000;
		else
			return false;
		if (n - i <= need)
			return false;
		unsigned cp = c & (0x3F >> need);
		for (unsigned k = 1; k <= need; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += need + 1;
	}
	return true;
}

static bool same(const vx_buf *a, const vx_buf *b)
{
	return a->len == b->len && (!a->len || !memcmp(a->data, b->data, a->len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint32_t seed = data[0] | 0x100u;
	size_t want = data[1] & 7, n_stops = 0, pos = 2;
	bool in_think = data[1] & 8;
	char *stops_mem[7];
	const char *stops[7];
	while (n_stops < want && pos < size) {
		const uint8_t *e = memchr(data + pos, 1, size - pos);
		size_t l = e ? (size_t)(e - (data + pos)) : size - pos;
		if (l > STOPSTR_MAX_LEN)
			l = STOPSTR_MAX_LEN;
		stops_mem[n_stops] = malloc(l + 1);
		if (!stops_mem[n_stops])
			abort();
		memcpy(stops_mem[n_stops], data + pos, l);
		stops_mem[n_stops][l] = '\0';
		stops[n_stops] = stops_mem[n_stops];
		n_stops++;
		pos += l + (e ? 1 : 0);
	}
	const char *text = (const char *)data + pos;
	size_t len = size - pos;

	check_stopstr(stops, n_stops, text, len, 0);
	check_stopstr(stops, n_stops, text, len, seed);

	split_out w = {0}, c = {0};
	think_run(text, len, in_think, 0, &w);
	think_run(text, len, in_think, seed, &c);
	if (!same(&w.kind[0], &c.kind[0]) || !same(&w.kind[1], &c.kind[1]))
		abort();
	for (int k = 0; k < 2; k++) {
		vx_buf_release(&w.kind[k]);
		vx_buf_release(&c.kind[k]);
	}

	vx_buf ew = {0}, ec = {0};
	emit_run(text, len, 0, &ew);
	emit_run(text, len, seed, &ec);
	if (!same(&ew, &ec))
		abort();
	if (utf8_valid((const unsigned char *)text, len) &&
	    (ew.len != len || (len && memcmp(ew.data, text, len))))
		abort();
	vx_buf_release(&ew);
	vx_buf_release(&ec);

	for (size_t i = 0; i < n_stops; i++)
		free(stops_mem[i]);
	return 0;
}
