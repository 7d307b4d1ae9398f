/* llm_emit.c - whole-UTF-8 piece emitter; see llm_emit.h. */
#include "llm_emit.h"

#include <errno.h>
#include <string.h>

static const char llm_emit_replacement[] = "\xEF\xBF\xBD";   /* U+FFFD */

void llm_emit_init(llm_emit *e, llm_piece_cb cb, void *user)
{
	memset(e, 0, sizeof(*e));
	e->cb = cb;
	e->user = user;
}

/* Bytes a sequence starting with lead c has; 0 for a continuation byte. */
static size_t llm_emit_seq_len(unsigned char c)
{
	if (c < 0x80)
		return 1;
	if (c < 0xC0)
		return 0;
	if (c < 0xE0)
		return 2;
	if (c < 0xF0)
		return 3;
	return c < 0xF8 ? 4 : 1;
}

static int llm_emit_send(llm_emit *e, llm_piece_kind kind, const char *s,
			 size_t n)
{
	if (!n)
		return 0;
	if (e->stopped)
		return -ECANCELED;
	e->pieces++;
	if (e->cb(e->user, kind, s, n)) {
		e->stopped = true;
		return -ECANCELED;
	}
	return 0;
}

int llm_emit_piece(llm_emit *e, llm_piece_kind kind, const char *text,
		   size_t len)
{
	int k = kind == LLM_REASONING ? 1 : 0, r;
	if (e->stopped)
		return -ECANCELED;
	if (e->hold_len[k]) {
		/* Complete the held sequence with continuation bytes. */
		char *h = e->hold[k];
		size_t need = llm_emit_seq_len((unsigned char)h[0]);
		while (e->hold_len[k] < need && len &&
		       ((unsigned char)*text & 0xC0) == 0x80) {
			h[e->hold_len[k]++] = *text++;
			len--;
		}
		if (e->hold_len[k] == need) {
			e->hold_len[k] = 0;
			if ((r = llm_emit_send(e, kind, h, need)))
				return r;
		} else if (len) {
			/* Followed by something else: the sequence is broken. */
			e->hold_len[k] = 0;
			if ((r = llm_emit_send(e, kind, llm_emit_replacement, 3)))
				return r;
		} else {
			return 0;   /* still unfinished, all input taken */
		}
	}
	/* Whole sequences pass in runs; a broken one (a stray continuation
	 * byte, a lead not followed by enough continuation bytes, a byte
	 * that is never UTF-8) becomes one U+FFFD, as it would if the piece
	 * were cut inside it; an unfinished one at the end is held. */
	size_t start = 0, i = 0;
	while (i < len) {
		unsigned char c = (unsigned char)text[i];
		size_t need = c >= 0xF8 ? 0 : llm_emit_seq_len(c), got = 1;
		while (need && got < need && i + got < len &&
		       ((unsigned char)text[i + got] & 0xC0) == 0x80)
			got++;
		if (need && got == need) {
			i += need;
			continue;
		}
		if (need && i + got == len) {
			memcpy(e->hold[k], text + i, got);
			e->hold_len[k] = got;
			break;
		}
		if ((r = llm_emit_send(e, kind, text + start, i - start)) ||
		    (r = llm_emit_send(e, kind, llm_emit_replacement, 3)))
			return r;
		i += got;
		start = i;
	}
	return llm_emit_send(e, kind, text + start, i - start);
}

int llm_emit_flush(llm_emit *e)
{
	int r = 0;
	for (int k = 0; k < 2 && !r; k++) {
		if (e->hold_len[k]) {
			e->hold_len[k] = 0;
			r = llm_emit_send(e, k ? LLM_REASONING : LLM_CONTENT,
					  llm_emit_replacement, 3);
		}
	}
	return r;
}
