/*
 * sentences.h - a streaming sentence splitter for LLM output.
 *
 * The orchestrator feeds the LLM's text deltas as they arrive and gets each
 * sentence back (through a callback) as soon as it is certainly complete,
 * so TTS can start on the first sentence while the model is still writing.
 *
 * A sentence ends:
 *   - after a terminator run (. ! ? ... U+2026) and any closing quotes or
 *     brackets (" ' ) ] } ” ’ » * _), when whitespace follows and then an
 *     uppercase letter, a digit, an opening quote/bracket, a non-ASCII
 *     character, markdown (* #) or '$' - or a newline, or the end of the
 *     text (at flush);
 *   - right after a CJK terminator (。！？) and its closers, no space needed;
 *   - at a line break followed by a blank line, or by an uppercase letter,
 *     digit, quote, bullet (- * • # > |) or the end; a line break followed
 *     by a lowercase letter is a hard wrap and joins the lines.
 * A '.' does not end a sentence after: a title or other abbreviation that
 * is always followed by more (Mr Mrs Ms Dr Prof St Mt Gen ... Jan ... Dec,
 * vs e.g i.e cf, No before a digit), a dotted acronym (U.S, Ph.D) other
 * than a.m / p.m, a single letter (initials: J. R. R. Tolkien), or a number
 * of at most three digits at the start of a line (list markers: "1. Mix").
 * Abbreviations that can end a sentence (etc Inc Ltd Co Corp Jr Sr a.m p.m)
 * follow the normal rule. Decimals, URLs, emails and versions (3.5,
 * example.com, v1.2.3) never split since no whitespace follows the dot.
 * A piece that would be only a list marker or bullet ("1.", "-") is not a
 * sentence: it stays with the next one. When in doubt the splitter joins:
 * a missed split costs a little latency, a wrong one costs prosody.
 *
 * Long runs: once a sentence reaches soft_max bytes with no end, it is cut
 * after the last , ; or : (else at the last space) in its last two thirds;
 * with no space at all, at the next space; a run of hard (2 * soft_max)
 * bytes with no space is cut there (on a UTF-8 character boundary). This
 * also bounds the memory held to 2 * soft_max bytes plus one feed.
 *
 * Invariants: the output depends only on the text, never on how it was
 * cut into feeds (the splitter waits for the bytes a decision needs).
 * Sentences are trimmed of surrounding whitespace and never empty; text
 * inside them is passed through unchanged (newlines included).
 *
 * Ownership and threads: the caller owns the sentences struct (init /
 * release); the text given to the callback is valid only during the call.
 * Not thread-safe: one stream, one thread at a time.
 *
 *     sentences s; sentences_init(&s);
 *     while (delta) sentences_feed(&s, delta, n, speak, me);
 *     sentences_flush(&s, speak, me); sentences_release(&s);
 */
#ifndef SENTENCES_H
#define SENTENCES_H

#include <stddef.h>

#include "vx_buf.h"

#define SENTENCES_SOFT_MAX 200 /* bytes; default soft_max, see above */
#define SENTENCES_MIN_SOFT_MAX 16 /* bytes; smaller soft_max values are raised */

/* Receives one sentence: text is NUL-terminated (len excludes it). Return 0
 * to go on, or a negative errno to stop: feed/flush then return it (the
 * sentence counts as delivered; the rest of the text stays pending). */
typedef int (*sentence_cb)(void *user, const char *text, size_t len);

typedef struct sentences {
	vx_buf pend;     /* text not yet delivered, from the current sentence on */
	size_t scan;     /* bytes of pend known not to end a sentence */
	size_t soft_max; /* bytes; the long-run cut, SENTENCES_SOFT_MAX by default */
} sentences;

void sentences_init(sentences *s);
void sentences_release(sentences *s);

/* Adds text (any bytes; UTF-8 expected, may be cut mid-character) and
 * delivers every sentence now complete. Returns 0, -ENOMEM (the text was
 * not added) or the callback's error. */
int sentences_feed(sentences *s, const char *text, size_t len, sentence_cb cb,
		   void *user);

/* End of the text: delivers every remaining sentence, the last one
 * included, and empties s, ready for a new stream. Returns 0 or the
 * callback's error. */
int sentences_flush(sentences *s, sentence_cb cb, void *user);

/* Drops pending text without delivering it: a new reply starts from
 * nothing (the last one may have been cut by a barge-in mid-sentence). */
void sentences_reset(sentences *s);

#endif
