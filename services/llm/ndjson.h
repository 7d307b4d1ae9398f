/*
 * ndjson.h - incremental newline-delimited JSON splitter (Ollama streams).
 *
 * Feed it body bytes in any chunking; it calls back once per complete line
 * (LF or CRLF ended, the line end removed, blank lines skipped). It does not
 * parse JSON: the callback gets the NUL-terminated line text. A last line
 * without a newline is delivered by ndjson_finish().
 *
 * Limits: a line longer than max_line bytes (NDJSON_MAX_LINE_DEFAULT when 0)
 * makes ndjson_feed return -E2BIG.
 *
 * Ownership: pair ndjson_init with ndjson_release. The line pointer is valid
 * only during the callback. Not thread-safe (one splitter per stream).
 *
 *     ndjson_splitter s; ndjson_init(&s, 0);
 *     r = ndjson_feed(&s, buf, n, on_line, u); ... r = ndjson_finish(&s, on_line, u);
 *     ndjson_release(&s);
 */
#ifndef NDJSON_H
#define NDJSON_H

#include <stddef.h>

#include "vx_buf.h"

#define NDJSON_MAX_LINE_DEFAULT (4u << 20)   /* bytes of one line */

/* Return 0 to go on; anything else stops the feed, which returns it. */
typedef int (*ndjson_line_cb)(void *user, const char *line, size_t len);

typedef struct ndjson_splitter {
	vx_buf line;        /* unfinished line */
	size_t max_line;    /* limit on one line's bytes */
	size_t lines;       /* lines delivered */
} ndjson_splitter;

void ndjson_init(ndjson_splitter *s, size_t max_line);
void ndjson_release(ndjson_splitter *s);
/* Returns 0, -E2BIG / -ENOMEM, or the callback's non-zero return. */
int ndjson_feed(ndjson_splitter *s, const char *buf, size_t len,
		ndjson_line_cb cb, void *user);
/* Delivers a final unterminated line, if any. */
int ndjson_finish(ndjson_splitter *s, ndjson_line_cb cb, void *user);

#endif
