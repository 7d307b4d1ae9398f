/*
 * think.h - streaming splitter of <think>...</think> sections.
 *
 * Thinking models write their reasoning inside <think>...</think> in the
 * content stream. A think_splitter takes content pieces as they stream and
 * passes them on as LLM_CONTENT or LLM_REASONING pieces, finding the tags
 * even when split across pieces. Rules:
 *   - "<think>" in content starts reasoning; "</think>" ends it. Tags are
 *     never passed on, whole or partial; a stray "</think>" in content is
 *     dropped; "<think>" inside reasoning is plain reasoning text.
 *   - Whitespace directly after a tag is dropped (models write
 *     "<think>\n...\n</think>\n\nAnswer").
 *   - A model whose template opens the thinking section itself (it starts
 *     with reasoning and only writes "</think>") is handled when the
 *     splitter is told so: think_init(..., starts_in_think = true).
 *   - Pieces fed as LLM_REASONING (an upstream's reasoning field) pass
 *     through as reasoning.
 *   - Bytes that may begin a tag are held back until the next piece shows
 *     whether they do; think_finish() passes on a held lone "<" and drops a
 *     longer held tag start (a tag cut off by the end of generation).
 * The splitter is byte-transparent otherwise: it never splits or joins
 * UTF-8 differently from its input except at tags.
 *
 * Ownership: caller-owned struct, no heap; nothing to release. Not
 * thread-safe (one per stream).
 *
 *     think_splitter t; think_init(&t, false, on_piece, user);
 *     think_feed(&t, LLM_CONTENT, text, len); ...; think_finish(&t);
 */
#ifndef THINK_H
#define THINK_H

#include <stdbool.h>
#include <stddef.h>

#include "llm_engine.h"

#define THINK_TAG_MAX 16   /* bytes of the longest tag, with room */

typedef struct think_splitter {
	llm_piece_cb cb;        /* receives the split pieces */
	void *user;
	bool in_think;          /* inside a thinking section */
	bool skip_ws;           /* drop whitespace until the next non-space */
	char hold[THINK_TAG_MAX]; /* held bytes: a prefix of a tag */
	size_t hold_len;
} think_splitter;

void think_init(think_splitter *t, bool starts_in_think, llm_piece_cb cb,
		void *user);
/* Returns 0, or the callback's non-zero return (then stop feeding). */
int think_feed(think_splitter *t, llm_piece_kind kind, const char *text,
	       size_t len);
/* Ends the stream: passes on or drops what is held (see above). */
int think_finish(think_splitter *t);

#endif
