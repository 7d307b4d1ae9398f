/*
 * history_int.h - the conversation store's backend interface, between
 * history.c (the front: argument checks, ids, limits, JSON) and the
 * backends history_sqlite.c (a file, the default) and history_pg.c
 * (PostgreSQL through libpq, for --db postgresql://...). Not for users of
 * history.h.
 *
 * A backend is a table of function pointers over its own state (void *be).
 * The front calls it only with checked arguments: ids valid, texts within
 * HISTORY_MAX_TEXT_BYTES, role set, limit/offset in range. Every backend
 * keeps the schema and the semantics history.h documents: turns numbered
 * 0, 1, 2... per conversation in commit order (two writers to one
 * conversation never get the same idx), -ENOENT/-EEXIST/-EINVAL/-E2BIG as
 * there, every function callable from any thread, nothing logged.
 *
 *     const history_backend *b = &history_pg_backend;
 *     void *be; b->open("postgresql://voxline@db/voxline", why, sizeof(why), &be);
 *     b->create(be, "c1", now, NULL, NULL); b->close(be);
 */
#ifndef HISTORY_INT_H
#define HISTORY_INT_H

#include "history.h"

#define HISTORY_ROLE_MAX 32 /* bytes of a role name */

/* One row of history_list; a non-zero return stops the listing with it. */
typedef int (*history_row_fn)(void *arg, const char *id, int64_t created_at,
			      int64_t updated_at, int64_t n_turns);

typedef struct history_backend {
	const char *name; /* "sqlite", "postgresql" */
	/* Opens the store at where, creating its schema when missing. On
	 * failure why (may be NULL) receives the backend's own words. */
	int (*open)(const char *where, char *why, size_t why_cap, void **ret_be);
	void (*close)(void *be);
	/* 0, or -EEXIST when id is taken. */
	int (*create)(void *be, const char *id, int64_t now_ms,
		      const char *system_prompt, const char *voice);
	/* 1 or 0. */
	int (*exists)(void *be, const char *id);
	/* The new turn's idx, -ENOENT, -E2BIG past HISTORY_MAX_TURNS,
	 * -EINVAL when timings_json is not JSON. One transaction. */
	int (*append)(void *be, const char *conv_id, int64_t now_ms,
		      const char *role, const char *content, const char *reasoning,
		      bool interrupted, const char *timings_json);
	/* Fills a zeroed *ret (the front releases it on failure); -ENOENT. */
	int (*load)(void *be, const char *id, history_conversation *ret);
	/* Calls row for each conversation, most recently updated first (ties
	 * by id, bytewise); returns the count or the first error. */
	int (*list)(void *be, int limit, int offset, history_row_fn row, void *arg);
	/* 0, or -ENOENT when absent. Turns go with their conversation. */
	int (*remove)(void *be, const char *id);
	/* Replaces the conversation's meta JSON object (checked by the
	 * front) and bumps updated_at; 0, or -ENOENT when absent. */
	int (*set_meta)(void *be, const char *id, int64_t now_ms, const char *meta_json);
} history_backend;

extern const history_backend history_sqlite_backend;
extern const history_backend history_pg_backend;

/* Helpers for the backends' load (history.c). */

/* A copy of s (NULL stays NULL); sets *oom when the copy fails. */
char *history_dup(const char *s, bool *oom);
/* A zeroed new last turn of c (its array grown as needed), or NULL when
 * out of memory. */
history_turn *history_push_turn(history_conversation *c, size_t *cap);

#endif
