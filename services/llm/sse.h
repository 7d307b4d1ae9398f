/*
 * sse.h - incremental Server-Sent Events parser (the client side).
 *
 * Feed it the response body in whatever chunks the network delivers; it
 * calls back once per complete event, as the WHATWG EventSource rules say:
 * lines end in CRLF, LF or CR (a CR at the end of one chunk and an LF at the
 * start of the next are one line end); "data:" lines join with "\n"; one
 * space after the colon is dropped; lines starting with ':' are comments
 * (keep-alives) and only counted; a blank line dispatches the event; an
 * event with no data line is not dispatched; "id" and "retry" are ignored.
 * A UTF-8 BOM at the very start is skipped. A partial event at end of
 * stream is dropped (sse_pending() tells whether one is pending).
 *
 * Limits: an event's data (and any single line) may not exceed max_event
 * bytes (SSE_MAX_EVENT_DEFAULT when 0); past it sse_feed returns -E2BIG.
 *
 * Ownership: the parser owns its buffers; pair sse_init with sse_release.
 * The data pointer handed to the callback is valid only during the call and
 * is NUL-terminated. Not thread-safe (one parser per stream).
 *
 *     sse_parser p; sse_init(&p, 0);
 *     while ((n = recv(...)) > 0) if ((r = sse_feed(&p, buf, n, on_event, u))) break;
 *     sse_release(&p);
 */
#ifndef SSE_H
#define SSE_H

#include <stdbool.h>
#include <stddef.h>

#include "vx_buf.h"

#define SSE_MAX_EVENT_DEFAULT (4u << 20)   /* bytes of one event's data */

/* event is the "event:" field or "message"; data is NUL-terminated.
 * Return 0 to go on, anything else stops sse_feed, which returns it. */
typedef int (*sse_event_cb)(void *user, const char *event, const char *data,
			    size_t len);

typedef struct sse_parser {
	vx_buf line;        /* the current, unfinished line */
	vx_buf data;        /* data of the current event, lines joined by \n */
	char event[64];     /* "event:" field of the current event, "" = message */
	bool has_data;      /* a data line was seen in the current event */
	bool after_cr;      /* last byte seen was CR: a following LF is eaten */
	unsigned bom_seen;  /* bytes of a leading BOM seen; 3 = past it */
	size_t max_event;   /* limit on data and line bytes */
	size_t comments;    /* comment lines seen (keep-alives) */
	size_t events;      /* events dispatched */
} sse_parser;

void sse_init(sse_parser *p, size_t max_event);
void sse_release(sse_parser *p);
/* Returns 0, -E2BIG / -ENOMEM, or the callback's non-zero return. */
int sse_feed(sse_parser *p, const char *buf, size_t len, sse_event_cb cb,
	     void *user);
/* True when bytes of an undispatched event are buffered. */
bool sse_pending(const sse_parser *p);

#endif
