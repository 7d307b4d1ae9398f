/* ndjson.c - incremental newline-delimited JSON splitter; see ndjson.h. */
#include "ndjson.h"

#include <errno.h>
#include <string.h>

void ndjson_init(ndjson_splitter *s, size_t max_line)
{
	memset(s, 0, sizeof(*s));
	s->max_line = max_line ? max_line : NDJSON_MAX_LINE_DEFAULT;
}

void ndjson_release(ndjson_splitter *s)
{
	vx_buf_release(&s->line);
	memset(s, 0, sizeof(*s));
}

static int ndjson_deliver(ndjson_splitter *s, ndjson_line_cb cb, void *user)
{
	size_t n = s->line.len;
	while (n && (s->line.data[n - 1] == '\r' || s->line.data[n - 1] == ' '))
		n--;
	int r = 0;
	if (n) {
		s->line.data[n] = '\0';
		s->lines++;
		r = cb(user, s->line.data, n);
	}
	vx_buf_reset(&s->line);
	return r;
}

int ndjson_feed(ndjson_splitter *s, const char *buf, size_t len,
		ndjson_line_cb cb, void *user)
{
	while (len) {
		const char *nl = memchr(buf, '\n', len);
		size_t take = nl ? (size_t)(nl - buf) : len;
		if (s->line.len + take > s->max_line)
			return -E2BIG;
		int r = vx_buf_append(&s->line, buf, take);
		if (r)
			return r;
		if (!nl)
			return 0;
		if ((r = ndjson_deliver(s, cb, user)))
			return r;
		buf = nl + 1;
		len -= take + 1;
	}
	return 0;
}

int ndjson_finish(ndjson_splitter *s, ndjson_line_cb cb, void *user)
{
	return ndjson_deliver(s, cb, user);
}
