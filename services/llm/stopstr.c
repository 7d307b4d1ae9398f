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

int stopstr_feed(stopstr *s, const char *text, size_t len, vx_buf *out)
{
	if (s->stopped)
		return 1;
	int r = vx_buf_append(&s->hold, text, len);
	if (r)
		return r;
	const char *buf = s->hold.data;
	size_t n = s->hold.len;
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
	if (first) {
		r = vx_buf_append(out, buf, (size_t)(first - buf));
		if (r)
			return r;
		s->stopped = true;
		vx_buf_reset(&s->hold);
		return 1;
	}
	size_t keep = stopstr_tail(s, buf, n);
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
	int r = vx_buf_append(out, s->hold.data, s->hold.len);
	if (!r)
		vx_buf_reset(&s->hold);
	return r;
}
