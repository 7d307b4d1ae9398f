/* sse.c - incremental Server-Sent Events parser; see sse.h. */
#include "sse.h"

#include <errno.h>
#include <string.h>

void sse_init(sse_parser *p, size_t max_event)
{
	memset(p, 0, sizeof(*p));
	p->max_event = max_event ? max_event : SSE_MAX_EVENT_DEFAULT;
}

void sse_release(sse_parser *p)
{
	vx_buf_release(&p->line);
	vx_buf_release(&p->data);
	memset(p, 0, sizeof(*p));
}

bool sse_pending(const sse_parser *p)
{
	return p->line.len > 0 || p->has_data;
}

static int sse_dispatch(sse_parser *p, sse_event_cb cb, void *user)
{
	int r = 0;
	if (p->has_data) {
		p->events++;
		r = cb(user, p->event[0] ? p->event : "message",
		       p->data.data ? p->data.data : "", p->data.len);
	}
	vx_buf_reset(&p->data);
	p->has_data = false;
	p->event[0] = '\0';
	return r;
}

/* Handles one complete line (without its line end). */
static int sse_line(sse_parser *p, const char *s, size_t n, sse_event_cb cb,
		    void *user)
{
	if (n == 0)
		return sse_dispatch(p, cb, user);
	if (s[0] == ':') {
		p->comments++;
		return 0;
	}
	const char *colon = memchr(s, ':', n);
	size_t name_len = colon ? (size_t)(colon - s) : n;
	const char *val = colon ? colon + 1 : s + n;
	size_t val_len = (size_t)(s + n - val);
	if (val_len && val[0] == ' ') {
		val++;
		val_len--;
	}
	if (name_len == 4 && memcmp(s, "data", 4) == 0) {
		if (p->data.len + val_len + 1 > p->max_event)
			return -E2BIG;
		int r = 0;
		if (p->has_data)
			r = vx_buf_append(&p->data, "\n", 1);
		if (!r)
			r = vx_buf_append(&p->data, val, val_len);
		if (r)
			return r;
		p->has_data = true;
	} else if (name_len == 5 && memcmp(s, "event", 5) == 0) {
		if (val_len >= sizeof(p->event))
			val_len = sizeof(p->event) - 1;
		memcpy(p->event, val, val_len);
		p->event[val_len] = '\0';
	}
	return 0;
}

int sse_feed(sse_parser *p, const char *buf, size_t len, sse_event_cb cb,
	     void *user)
{
	static const char bom[] = "\xEF\xBB\xBF";
	size_t i = 0;
	/* Skip a BOM at the very start, even one cut across chunks. */
	while (p->bom_seen < 3 && i < len) {
		if (buf[i] == bom[p->bom_seen]) {
			p->bom_seen++;
			i++;
			continue;
		}
		int r = vx_buf_append(&p->line, bom, p->bom_seen);
		if (r)
			return r;
		p->bom_seen = 3;
	}
	while (i < len) {
		if (p->after_cr) {
			p->after_cr = false;
			if (buf[i] == '\n') {
				i++;
				continue;
			}
		}
		/* Find the next line end in this chunk. */
		size_t j = i;
		while (j < len && buf[j] != '\n' && buf[j] != '\r')
			j++;
		if (j == len) {
			if (p->line.len + (len - i) > p->max_event)
				return -E2BIG;
			return vx_buf_append(&p->line, buf + i, len - i);
		}
		int r;
		if (p->line.len) {
			if (p->line.len + (j - i) > p->max_event)
				return -E2BIG;
			if ((r = vx_buf_append(&p->line, buf + i, j - i)))
				return r;
			r = sse_line(p, p->line.data, p->line.len, cb, user);
			vx_buf_reset(&p->line);
		} else {
			if (j - i > p->max_event)
				return -E2BIG;
			r = sse_line(p, buf + i, j - i, cb, user);
		}
		p->after_cr = buf[j] == '\r';
		i = j + 1;
		if (r)
			return r;
	}
	return 0;
}
