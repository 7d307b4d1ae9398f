/*
 * llm_emit.h - hands decoded upstream text to the engine callback as whole
 * UTF-8 sequences.
 *
 * Remote upstreams may cut a multi-byte character between two deltas (a
 * token that is half a character). llm_emit keeps, per piece kind, the
 * trailing bytes of an unfinished sequence and sends them with the bytes
 * that complete them; at the end, or when the next bytes do not continue
 * the sequence, an unfinished sequence becomes U+FFFD. It also remembers
 * whether the callback asked to stop and how many pieces went out.
 *
 * Ownership: caller-owned struct, no heap. Not thread-safe (one per stream).
 *
 *     llm_emit e; llm_emit_init(&e, cb, user);
 *     r = llm_emit_piece(&e, LLM_CONTENT, s, n);  // -ECANCELED: cb said stop
 *     r = llm_emit_flush(&e);
 */
#ifndef LLM_EMIT_H
#define LLM_EMIT_H

#include <stdbool.h>
#include <stddef.h>

#include "llm_engine.h"

typedef struct llm_emit {
	llm_piece_cb cb;
	void *user;
	char hold[2][4];        /* per kind: bytes of an unfinished sequence */
	size_t hold_len[2];
	size_t pieces;          /* pieces passed to cb */
	bool stopped;           /* cb returned non-zero */
} llm_emit;

void llm_emit_init(llm_emit *e, llm_piece_cb cb, void *user);
/* Returns 0, or -ECANCELED once the callback asked to stop. */
int llm_emit_piece(llm_emit *e, llm_piece_kind kind, const char *text,
		   size_t len);
/* Ends the stream: unfinished sequences go out as U+FFFD. */
int llm_emit_flush(llm_emit *e);

#endif
