/*
 * stopstr.h - streaming stop-string matcher with hold-back.
 *
 * Text streams in as pieces; the matcher passes on all text up to (not
 * including) the first occurrence of any stop string, even one split across
 * pieces, and then reports the stop. To do that it holds back the longest
 * suffix of what it has seen that could still be the start of a stop
 * string; stopstr_finish() passes the held text on when the stream ends
 * without a stop. When the input is whole UTF-8 sequences, so is the output
 * (a stop string starts on a character boundary).
 *
 * Limits: at most STOPSTR_MAX_STOPS stop strings of at most STOPSTR_MAX_LEN
 * bytes each (stopstr_init returns -E2BIG past them); empty strings are
 * ignored.
 *
 * Ownership: the matcher borrows the stop strings (they must outlive it) and
 * owns its hold buffer: pair stopstr_init with stopstr_release. Output is
 * appended to a caller-owned vx_buf. Not thread-safe (one per stream).
 *
 *     stopstr s; stopstr_init(&s, stops, n_stops);
 *     r = stopstr_feed(&s, piece, len, &out);   // out gets safe text; r == 1: stop
 *     if (r == 0) stopstr_finish(&s, &out);  stopstr_release(&s);
 */
#ifndef STOPSTR_H
#define STOPSTR_H

#include <stdbool.h>
#include <stddef.h>

#include "vx_buf.h"

#define STOPSTR_MAX_STOPS 16   /* stop strings per request */
#define STOPSTR_MAX_LEN 256    /* bytes of one stop string */

typedef struct stopstr {
	const char *const *stops;  /* borrowed */
	size_t n_stops;
	vx_buf hold;               /* text that may begin a stop string */
	bool stopped;              /* a stop string was found; feeds are ignored */
} stopstr;

int stopstr_init(stopstr *s, const char *const *stops, size_t n_stops);
void stopstr_release(stopstr *s);
/* Appends passable text to out. Returns 1 when a stop string was found
 * (now or before), 0 when not, -ENOMEM. */
int stopstr_feed(stopstr *s, const char *text, size_t len, vx_buf *out);
/* Appends the held text (no stop came), or the part before a stop string
 * held back while a longer one could still begin (then stopped is set).
 * Returns 0 or -ENOMEM. */
int stopstr_finish(stopstr *s, vx_buf *out);

#endif
