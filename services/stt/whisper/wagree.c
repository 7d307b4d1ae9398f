/*
 * wagree.c - local agreement of a streamed transcript's hypotheses. See
 * wagree.h.
 */
#include "wagree.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static bool space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* The next word at or after *s (its length in *len), *s moved past it;
 * NULL when none is left. */
static const char *next_word(const char **s, size_t *len)
{
	const char *p = *s;
	while (*p && space(*p))
		p++;
	if (!*p)
		return NULL;
	const char *w = p;
	while (*p && !space(*p))
		p++;
	*len = (size_t)(p - w);
	*s = p;
	return w;
}

static const char *text_of(const wagree *a)
{
	return a->text ? a->text : "";
}

/* A growing string. */
typedef struct sbuf {
	char *s;
	size_t len, cap;
	bool failed;
} sbuf;

static void sb_word(sbuf *b, const char *w, size_t n)
{
	size_t need = b->len + n + 2;
	if (b->failed)
		return;
	if (need > b->cap) {
		size_t cap = need * 2;
		char *p = realloc(b->s, cap);
		if (!p) {
			b->failed = true;
			return;
		}
		b->s = p;
		b->cap = cap;
	}
	if (b->len)
		b->s[b->len++] = ' ';
	memcpy(b->s + b->len, w, n);
	b->len += n;
	b->s[b->len] = '\0';
}

/* Hands over b's string ("" when empty); -ENOMEM when it failed. */
static int sb_take(sbuf *b, char **ret)
{
	if (!b->failed && !b->s && !(b->s = calloc(1, 1)))
		b->failed = true;
	if (b->failed) {
		free(b->s);
		return -ENOMEM;
	}
	*ret = b->s;
	return 0;
}

void wagree_init(wagree *a)
{
	memset(a, 0, sizeof *a);
}

void wagree_release(wagree *a)
{
	free(a->text);
	memset(a, 0, sizeof *a);
}

void wagree_reset(wagree *a)
{
	wagree_release(a);
}

int wagree_count(const char *s)
{
	size_t len;
	int n = 0;
	while (next_word(&s, &len))
		n++;
	return n;
}

int wagree_splice(const wagree *a, const char *hyp, char **ret)
{
	sbuf b = { 0 };
	const char *c = text_of(a), *h = hyp ? hyp : "", *w;
	size_t len;
	for (int i = 0; i < a->n_committed && (w = next_word(&c, &len)); i++)
		sb_word(&b, w, len);
	for (int i = 0; (w = next_word(&h, &len)); i++)
		if (i >= a->n_committed)
			sb_word(&b, w, len);
	return sb_take(&b, ret);
}

int wagree_push(wagree *a, const char *hyp)
{
	char *shown;
	int rc = wagree_splice(a, hyp, &shown);
	if (rc < 0)
		return rc;
	/* the words shown twice at the same places, from the start */
	const char *o = text_of(a), *s = shown, *wo, *ws;
	size_t lo, ls, end = 0;
	int same = 0;
	while ((wo = next_word(&o, &lo)) && (ws = next_word(&s, &ls)) && lo == ls &&
	       !memcmp(wo, ws, lo)) {
		same++;
		end = (size_t)(ws + ls - shown);
	}
	bool changed = strcmp(text_of(a), shown) != 0;
	free(a->text);
	a->text = shown;
	a->n_words = wagree_count(shown);
	if (same > a->n_committed) {   /* never fewer: both begin with them */
		a->n_committed = same;
		a->committed_len = end;
	}
	return changed ? 1 : 0;
}

int wagree_rewrite(const wagree *a, const char *piece, int *pos, char **ret)
{
	sbuf b = { 0 };
	const char *c = text_of(a), *p = piece ? piece : "", *w, *cw = NULL;
	size_t len, clen = 0;
	for (int i = 0; i < *pos && i < a->n_committed; i++)
		next_word(&c, &clen);
	for (int k = *pos; (w = next_word(&p, &len)); k++) {
		if (k < a->n_committed && (cw = next_word(&c, &clen)))
			sb_word(&b, cw, clen);
		else
			sb_word(&b, w, len);
		(*pos)++;
	}
	return sb_take(&b, ret);
}

int wagree_committed_from(const wagree *a, int pos, char **ret)
{
	sbuf b = { 0 };
	const char *c = text_of(a), *w;
	size_t len;
	for (int i = 0; i < a->n_committed && (w = next_word(&c, &len)); i++)
		if (i >= pos)
			sb_word(&b, w, len);
	return sb_take(&b, ret);
}

int wagree_agrees(const wagree *a, const char *hyp, int n)
{
	const char *c = text_of(a), *h = hyp ? hyp : "", *wc, *wh;
	size_t lc, lh;
	if (n > a->n_committed)
		return 0;
	for (int i = 0; i < n; i++) {
		wc = next_word(&c, &lc);
		wh = next_word(&h, &lh);
		if (!wc || !wh || lc != lh || memcmp(wc, wh, lc))
			return 0;
	}
	return 1;
}

void wagree_commit_all(wagree *a)
{
	a->n_committed = a->n_words;
	a->committed_len = strlen(text_of(a));
}

void wagree_drop(wagree *a, int n)
{
	if (n <= 0 || !a->text)
		return;
	n = n < a->n_committed ? n : a->n_committed;
	const char *s = a->text;
	size_t len;
	for (int i = 0; i < n; i++)
		next_word(&s, &len);
	while (*s && space(*s))
		s++;
	size_t off = (size_t)(s - a->text);
	memmove(a->text, s, strlen(s) + 1);
	a->n_words -= n;
	a->n_committed -= n;
	a->committed_len = a->n_committed > 0 ? a->committed_len - off : 0;
}
