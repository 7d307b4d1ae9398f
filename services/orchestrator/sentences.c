/* sentences.c - streaming sentence splitter; see sentences.h for the rules. */
#include "sentences.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

/* What a position in the pending text turned out to be. */
enum decision {
	DEC_NONE, /* not a possible sentence end: look at the next byte */
	DEC_NOT,  /* a possible end that is not one: go on at *next */
	DEC_WAIT, /* the decision needs bytes not fed yet */
	DEC_END,  /* a sentence ends before *end (or goes on at *next) */
};

enum match { MATCH_NONE = -1, MATCH_PARTIAL = -2 };

static const char *const terminators[] = {
	".", "!", "?", "\xE2\x80\xA6" /* … */,
	"\xE3\x80\x82" /* 。 */, "\xEF\xBC\x81" /* ！ */, "\xEF\xBC\x9F" /* ？ */,
};
#define FIRST_CJK_TERMINATOR 4

static const char *const closers[] = {
	"\"", "'", ")", "]", "}", "*", "_",
	"\xE2\x80\x9D" /* ” */, "\xE2\x80\x99" /* ’ */, "\xC2\xBB" /* » */,
	"\xE3\x80\x8D" /* 」 */, "\xE3\x80\x8F" /* 』 */, "\xEF\xBC\x89" /* ） */,
	"\xE3\x80\x8B" /* 》 */, "\xE3\x80\x91" /* 】 */,
};

/* Abbreviations that a name, number or more text always follows. */
static const char *const never_end[] = {
	"Mr", "Mrs", "Ms", "Dr", "Prof", "St", "Mt", "Ft", "Gen", "Col", "Capt",
	"Lt", "Sgt", "Maj", "Cmdr", "Adm", "Rev", "Hon", "Gov", "Sen", "Rep",
	"Pres", "Supt", "Messrs", "Mme", "Mlle", "vs", "Vs", "cf", "Cf",
	"approx", "Approx", "ca", "Fig", "fig", "Figs", "Eq", "eq", "Vol", "vol",
	"pp", "Jan", "Feb", "Mar", "Apr", "Jun", "Jul", "Aug", "Sep", "Sept",
	"Oct", "Nov", "Dec",
};

/* Dotted abbreviations that may end a sentence ("at 5 p.m. Then"). */
static const char *const dotted_may_end[] = { "a.m", "p.m", "A.M", "P.M" };

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static bool is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
	       c == '\v';
}

static bool is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* Which entry of set starts p[0..n): its index, MATCH_NONE, or
 * MATCH_PARTIAL when p is a proper prefix of an entry and more bytes may
 * come (not at_end). *ret_len is set on a match. */
static int match_set(const char *p, size_t n, const char *const *set,
		     size_t count, bool at_end, size_t *ret_len)
{
	bool partial = false;
	for (size_t i = 0; i < count; i++) {
		size_t l = strlen(set[i]);
		if (n >= l) {
			if (!memcmp(p, set[i], l)) {
				*ret_len = l;
				return (int)i;
			}
		} else if (!memcmp(p, set[i], n)) {
			partial = true;
		}
	}
	return partial && !at_end ? MATCH_PARTIAL : MATCH_NONE;
}

/* May c begin a sentence after a terminator and a space? */
static bool starts_sentence(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || is_digit(c) || c >= 0x80 ||
	       (c && strchr("\"'([{*#$", c));
}

/* May c begin a new line that is a sentence of its own? */
static bool starts_line(unsigned char c)
{
	return starts_sentence(c) || (c && strchr("-+>|", c));
}

static bool word_is(const char *w, size_t n, const char *s)
{
	return strlen(s) == n && !memcmp(w, s, n);
}

static bool word_in(const char *w, size_t n, const char *const *set,
		    size_t count)
{
	for (size_t i = 0; i < count; i++)
		if (word_is(w, n, set[i]))
			return true;
	return false;
}

/* "U.S", "e.g", "Ph.D": two or more runs of 1-2 letters joined by dots. */
static bool is_dotted(const char *w, size_t n)
{
	size_t run = 0, runs = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || w[i] == '.') {
			if (run < 1 || run > 2)
				return false;
			runs++;
			run = 0;
		} else if (is_alpha((unsigned char)w[i])) {
			run++;
		} else {
			return false;
		}
	}
	return runs >= 2;
}

/* The '.' at b[p] is followed by a space and then next (a possible
 * sentence start): is the word before it something that rules out an end? */
static bool period_ends(const char *b, size_t p, unsigned char next)
{
	size_t w0 = p;
	while (w0 > 0 && !is_space((unsigned char)b[w0 - 1]))
		w0--;
	size_t w = w0;
	while (w < p && b[w] && strchr("\"'([{*_", b[w]))
		w++;
	const char *word = b + w;
	size_t n = p - w;
	if (n == 0)
		return true;
	if (n == 1 && is_alpha((unsigned char)word[0]))
		return false; /* an initial */
	bool digits = n <= 3;
	for (size_t i = 0; i < n && digits; i++)
		digits = is_digit((unsigned char)word[i]);
	if (digits && (w0 == 0 || b[w0 - 1] == '\n'))
		return false; /* a list marker at the start of a line */
	if ((word_is(word, n, "No") || word_is(word, n, "no") ||
	     word_is(word, n, "Nos") || word_is(word, n, "Nr")) && is_digit(next))
		return false;
	if (word_in(word, n, never_end, N_OF(never_end)))
		return false;
	if (is_dotted(word, n))
		return word_in(word, n, dotted_may_end, N_OF(dotted_may_end));
	return true;
}

/* A terminator run starts at b[p]: decide whether a sentence ends after it
 * (and its closing quotes/brackets). */
static enum decision decide_terminator(const char *b, size_t p, size_t view,
				       bool at_end, size_t *ret_end,
				       size_t *ret_next)
{
	size_t q = p, l = 0, nterm = 0, nclose = 0;
	bool cjk = false, only_dots = true;
	for (;;) {
		int m = match_set(b + q, view - q, terminators, N_OF(terminators),
				  at_end, &l);
		if (m == MATCH_PARTIAL)
			return DEC_WAIT;
		if (m == MATCH_NONE)
			break;
		cjk |= m >= FIRST_CJK_TERMINATOR;
		only_dots &= b[q] == '.';
		nterm++;
		q += l;
	}
	if (nterm == 0)
		return DEC_NONE;
	for (;;) {
		int m = match_set(b + q, view - q, closers, N_OF(closers), at_end, &l);
		if (m == MATCH_PARTIAL)
			return DEC_WAIT;
		if (m == MATCH_NONE)
			break;
		nclose++;
		q += l;
	}
	*ret_end = q;
	*ret_next = q;
	if (q == view)
		return at_end ? DEC_END : DEC_WAIT;
	if (cjk)
		return DEC_END;
	if (!is_space((unsigned char)b[q]))
		return DEC_NOT;
	size_t r = q, newlines = 0;
	while (r < view && is_space((unsigned char)b[r]))
		newlines += b[r++] == '\n';
	if (newlines)
		return DEC_END;
	if (r == view)
		return at_end ? DEC_END : DEC_WAIT;
	unsigned char next = (unsigned char)b[r];
	if (!starts_sentence(next))
		return DEC_NOT;
	if (only_dots && nterm == 1 && nclose == 0 && !period_ends(b, p, next))
		return DEC_NOT;
	return DEC_END;
}

/* A line break at b[p]: a paragraph, a new line that starts something, or
 * a hard wrap inside a sentence. */
static enum decision decide_newline(const char *b, size_t p, size_t view,
				    bool at_end, size_t *ret_end,
				    size_t *ret_next)
{
	size_t r = p, newlines = 0;
	while (r < view && is_space((unsigned char)b[r]))
		newlines += b[r++] == '\n';
	*ret_end = p;
	*ret_next = r;
	if (newlines >= 2)
		return DEC_END;
	if (r == view)
		return at_end ? DEC_END : DEC_WAIT;
	unsigned char c = (unsigned char)b[r];
	if (starts_line(c))
		return DEC_END;
	if (!is_alpha(c))
		return DEC_NOT;
	/* a lowercase letter: a list marker ("b. Eggs", "b) Eggs") or a wrap */
	if (r + 2 >= view && !at_end)
		return DEC_WAIT;
	bool marker = r + 1 < view && (b[r + 1] == '.' || b[r + 1] == ')') &&
		      (r + 2 >= view || is_space((unsigned char)b[r + 2]));
	return marker ? DEC_END : DEC_NOT;
}

/* Is b[0..e) (trimmed) only a list marker or bullet, not a sentence? */
static bool is_marker_only(const char *b, size_t e)
{
	size_t i = 0, n = e, words = 0;
	while (i < n && is_space((unsigned char)b[i]))
		i++;
	while (n > i && is_space((unsigned char)b[n - 1]))
		n--;
	for (size_t k = i; k < n; k++)
		words += is_alpha((unsigned char)b[k]) || is_digit((unsigned char)b[k]) ||
			 (unsigned char)b[k] >= 0x80;
	if (words == 0)
		return true;
	if (n - i < 2 || !b[n - 1] || !strchr(".)", b[n - 1]))
		return false;
	if (n - i == 2 && is_alpha((unsigned char)b[i]))
		return true;
	for (size_t k = i; k < n - 1; k++)
		if (!is_digit((unsigned char)b[k]))
			return false;
	return n - 1 - i <= 3;
}

/* Where to cut a sentence that reached soft bytes with no end: after the
 * last , ; : followed by a space, else at the last space, searched in
 * [soft / 3, soft). 0 when there is neither. */
static size_t soft_cut(const char *b, size_t soft)
{
	for (size_t i = soft - 1; i >= soft / 3; i--)
		if (b[i] && strchr(",;:", b[i]) && is_space((unsigned char)b[i + 1]))
			return i + 1;
	for (size_t i = soft - 1; i >= soft / 3; i--)
		if (is_space((unsigned char)b[i]))
			return i;
	return 0;
}

/* Delivers b[0..e) trimmed (when not empty) and drops it from pend. */
static int emit(sentences *s, size_t e, sentence_cb cb, void *user)
{
	char *b = s->pend.data;
	size_t i = 0, n = e;
	int r = 0;
	while (i < n && is_space((unsigned char)b[i]))
		i++;
	while (n > i && is_space((unsigned char)b[n - 1]))
		n--;
	if (n > i) {
		char saved = b[n];
		b[n] = '\0';
		r = cb(user, b + i, n - i);
		b[n] = saved;
	}
	memmove(b, b + e, s->pend.len - e + 1);
	s->pend.len -= e;
	s->scan = 0;
	return r < 0 ? r : 0;
}

static void drop_leading_space(sentences *s)
{
	size_t i = 0;
	while (i < s->pend.len && is_space((unsigned char)s->pend.data[i]))
		i++;
	if (i) {
		memmove(s->pend.data, s->pend.data + i, s->pend.len - i + 1);
		s->pend.len -= i;
	}
}

/* Delivers every sentence decidable now; final: the text ends here. */
static int pump(sentences *s, bool final, sentence_cb cb, void *user)
{
	size_t soft = s->soft_max < SENTENCES_MIN_SOFT_MAX ?
		      SENTENCES_MIN_SOFT_MAX : s->soft_max;
	size_t hard = 2 * soft;
	for (;;) {
		if (s->scan == 0)
			drop_leading_space(s);
		size_t len = s->pend.len;
		if (len == 0)
			return 0;
		const char *b = s->pend.data;
		size_t view = len < hard ? len : hard;
		bool at_end = final || len >= hard;
		size_t p = s->scan, end = 0, next = 0;
		int r;

		/* before the p >= view return, so that a scan that jumped past
		 * soft to the end of the text cuts as one that stopped at soft;
		 * soft_cut reads b[soft], so it must be there (or final) */
		if (p >= soft && (len > soft || final)) {
			size_t c = soft_cut(b, soft);
			if (!c && p < view && is_space((unsigned char)b[p]))
				c = p;
			if (c) {
				if ((r = emit(s, c, cb, user)) < 0)
					return r;
				continue;
			}
		}
		if (p >= view) {
			/* the cut looks at b[hard]: wait for it unless final */
			if (len < hard || (len == hard && !final))
				return 0;
			/* back to a character start, at most 3 bytes (UTF-8) */
			size_t e = hard;
			while (e > hard - 3 && ((unsigned char)b[e] & 0xC0) == 0x80)
				e--;
			if ((r = emit(s, e, cb, user)) < 0)
				return r;
			continue;
		}
		enum decision d = b[p] == '\n' ?
			decide_newline(b, p, view, at_end, &end, &next) :
			decide_terminator(b, p, view, at_end, &end, &next);
		switch (d) {
		case DEC_NONE:
			s->scan = p + 1;
			break;
		case DEC_NOT:
			s->scan = next;
			break;
		case DEC_WAIT:
			return 0;
		case DEC_END:
			if (is_marker_only(b, end)) {
				s->scan = next > p ? next : p + 1;
				break;
			}
			if ((r = emit(s, end, cb, user)) < 0)
				return r;
			break;
		}
	}
}

void sentences_init(sentences *s)
{
	vx_buf_init(&s->pend);
	s->scan = 0;
	s->soft_max = SENTENCES_SOFT_MAX;
}

void sentences_release(sentences *s)
{
	vx_buf_release(&s->pend);
	s->scan = 0;
}

void sentences_reset(sentences *s)
{
	vx_buf_reset(&s->pend);
	s->scan = 0;
}

int sentences_feed(sentences *s, const char *text, size_t len, sentence_cb cb,
		   void *user)
{
	if (len && vx_buf_append(&s->pend, text, len) < 0)
		return -ENOMEM;
	return pump(s, false, cb, user);
}

int sentences_flush(sentences *s, sentence_cb cb, void *user)
{
	int r = pump(s, true, cb, user);
	if (r < 0)
		return r;
	if (s->pend.len)
		r = emit(s, s->pend.len, cb, user);
	sentences_reset(s);
	return r;
}
