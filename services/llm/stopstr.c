/* stopstr.c - streaming stop-string matcher; see stopstr.h. */
#include "stopstr.h"

#include <errno.h>
#include <string.h>

int stopstr_init(stopstr *s, const char *const *stops, size_t n_stops)
{
	if (n_stops > STOPSTR_MAX_STOPS)
		return -E2BIG;
	for (size_t i = 0; i < n_stops; i++)
		if (!stops[i] || strlen(stops[i]) > STOPSTR_MAX_LEN)
			return stops[i] ? -E2BIG : -EINVAL;
	memset(s, 0, sizeof(*s));
	s->stops = stops;
	s->n_stops = n_stops;
	return 0;
}

void stopstr_release(stopstr *s)
{
	vx_buf_release(&s->hold);
	memset(s, 0, sizeof(*s));
}

/* Length of the longest suffix of buf that is a proper prefix of a stop. */
static size_t stopstr_tail(const stopstr *s, const char *buf, size_t len)
{
	size_t best = 0;
	for (size_t i = 0; i < s->n_stops; i++) {
		size_t sl = strlen(s->stops[i]);
		size_t k = sl ? sl - 1 : 0;
		if (k > len)
			k = len;
		for (; k > best; k--)
			if (memcmp(buf + len - k, s->stops[i], k) == 0) {
				best = k;
				break;
			}
	}
	return best;
}

/* The earliest position before end where buf[p..len) is the start of a
 * stop string it does not yet hold whole (end when none): a match found
 * after p may still be beaten by that stop starting earlier. */
static size_t stopstr_open_before(const stopstr *s, const char *buf, size_t len,
				  size_t end)
{
	size_t p = len > STOPSTR_MAX_LEN ? len - STOPSTR_MAX_LEN : 0;
	for (; p < end; p++)
		for (size_t i = 0; i < s->n_stops; i++) {
			size_t sl = strlen(s->stops[i]);
			if (sl > len - p && memcmp(buf + p, s->stops[i], len - p) == 0)
				return p;
		}
	return end;
}

/* The earliest complete stop string in buf, or NULL. */
static const char *stopstr_first(const stopstr *s, const char *buf, size_t n)
{
	const char *first = NULL;
	for (size_t i = 0; i < s->n_stops; i++) {
		size_t sl = strlen(s->stops[i]);
		if (!sl)
			continue;
		size_t hay = n;
		if (first && (size_t)(first - buf) + sl - 1 < n)
			hay = (size_t)(first - buf) + sl - 1;
		const char *at = memmem(buf, hay, s->stops[i], sl);
		if (at && (!first || at < first))
			first = at;
	}
	return first;
}

int stopstr_feed(stopstr *s, const char *text, size_t len, vx_buf *out)
{
	if (s->stopped)
		return 1;
	int r = vx_buf_append(&s->hold, text, len);
	if (r)
		return r;
	const char *buf = s->hold.data;
	size_t n = s->hold.len;
	const char *first = stopstr_first(s, buf, n);
	size_t keep;
	if (first) {
		/* a longer stop may be starting before the match: wait */
		size_t open = stopstr_open_before(s, buf, n, (size_t)(first - buf));
		if (open < (size_t)(first - buf)) {
			keep = n - open;
			goto out_hold;
		}
		r = vx_buf_append(out, buf, (size_t)(first - buf));
		if (r)
			return r;
		s->stopped = true;
		vx_buf_reset(&s->hold);
		return 1;
	}
	keep = stopstr_tail(s, buf, n);
out_hold:
	if ((r = vx_buf_append(out, buf, n - keep)))
		return r;
	memmove(s->hold.data, buf + n - keep, keep);
	s->hold.len = keep;
	s->hold.data[keep] = '\0';
	return 0;
}

int stopstr_finish(stopstr *s, vx_buf *out)
{
	if (s->stopped)
		return 0;
	/* a stop held back while a longer one could still have begun */
	const char *first = s->hold.len ?
		stopstr_first(s, s->hold.data, s->hold.len) : NULL;
	size_t n = first ? (size_t)(first - s->hold.data) : s->hold.len;
	s->stopped = first != NULL;
	int r = vx_buf_append(out, s->hold.data, n);
	if (!r)
		vx_buf_reset(&s->hold);
	return r;
}
