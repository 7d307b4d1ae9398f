/* think.c - streaming splitter of <think> sections; see think.h. */
#include "think.h"

#include <string.h>

static const char think_open[] = "<think>";
static const char think_close[] = "</think>";

void think_init(think_splitter *t, bool starts_in_think, llm_piece_cb cb,
		void *user)
{
	memset(t, 0, sizeof(*t));
	t->cb = cb;
	t->user = user;
	t->in_think = starts_in_think;
	t->skip_ws = starts_in_think;
}

static bool think_is_space(char c)
{
	return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/* Passes text on in the current mode, dropping leading whitespace after a tag. */
static int think_emit(think_splitter *t, const char *s, size_t n)
{
	if (t->skip_ws) {
		while (n && think_is_space(*s)) {
			s++;
			n--;
		}
		if (!n)
			return 0;
		t->skip_ws = false;
	}
	if (!n)
		return 0;
	return t->cb(t->user, t->in_think ? LLM_REASONING : LLM_CONTENT, s, n);
}

static bool think_prefix_of(const char *held, size_t n, const char *tag)
{
	return n <= strlen(tag) && memcmp(held, tag, n) == 0;
}

/* Whether held bytes can still become a tag valid in the current mode. */
static bool think_could_be_tag(const think_splitter *t, const char *s, size_t n)
{
	if (think_prefix_of(s, n, think_close))
		return true;
	return !t->in_think && think_prefix_of(s, n, think_open);
}

/* A complete tag was read: switch mode (or drop a stray closer). */
static void think_tag(think_splitter *t, bool open)
{
	if (open && !t->in_think) {
		t->in_think = true;
		t->skip_ws = true;
	} else if (!open && t->in_think) {
		t->in_think = false;
		t->skip_ws = true;
	}
	t->hold_len = 0;
}

int think_feed(think_splitter *t, llm_piece_kind kind, const char *text,
	       size_t len)
{
	int r;
	if (kind == LLM_REASONING) {
		if (t->hold_len) {
			size_t n = t->hold_len;
			t->hold_len = 0;
			if ((r = think_emit(t, t->hold, n)))
				return r;
		}
		return len ? t->cb(t->user, LLM_REASONING, text, len) : 0;
	}
	size_t run = 0;   /* start of the pending run of plain text */
	for (size_t i = 0; i < len; i++) {
		char c = text[i];
		if (!t->hold_len) {
			if (c != '<')
				continue;
			if ((r = think_emit(t, text + run, i - run)))
				return r;
			t->hold[t->hold_len++] = c;
			run = i + 1;
			continue;
		}
		t->hold[t->hold_len] = c;
		size_t n = t->hold_len + 1;
		if (n == sizeof(think_open) - 1 && !t->in_think &&
		    memcmp(t->hold, think_open, n) == 0) {
			think_tag(t, true);
			run = i + 1;
		} else if (n == sizeof(think_close) - 1 &&
			   memcmp(t->hold, think_close, n) == 0) {
			think_tag(t, false);
			run = i + 1;
		} else if (think_could_be_tag(t, t->hold, n)) {
			t->hold_len = n;
			run = i + 1;
		} else {
			/* Not a tag: the held bytes are text; c may start one. */
			size_t held = t->hold_len;
			t->hold_len = 0;
			if ((r = think_emit(t, t->hold, held)))
				return r;
			if (c == '<') {
				t->hold[t->hold_len++] = c;
				run = i + 1;
			} else {
				run = i;
			}
		}
	}
	if (!t->hold_len && run < len)
		return think_emit(t, text + run, len - run);
	return 0;
}

int think_finish(think_splitter *t)
{
	size_t n = t->hold_len;
	t->hold_len = 0;
	if (n == 1)
		return think_emit(t, t->hold, 1);
	return 0;
}
