/*
 * history.h - the conversation store: conversations and their turns, in
 * SQLite (Debian's libsqlite3, one file; the default) or in PostgreSQL
 * (libpq) when the location is a postgresql:// or postgres:// URL, so
 * several orchestrators share one store. Backends: history_int.h.
 *
 * Schema (the same in both; PostgreSQL: BIGINT times, BOOLEAN, JSON):
 *   conversations(id TEXT PRIMARY KEY, created_at, updated_at, system_prompt,
 *                 voice, meta JSON)
 *   turns(id INTEGER PRIMARY KEY, conversation_id -> conversations ON DELETE
 *         CASCADE, idx (0, 1, 2... per conversation), role, content,
 *         reasoning, interrupted BOOL, created_at, timings JSON)
 * Times are milliseconds since the Unix epoch (integers, also in the JSON).
 * Tables are created when missing at open (idempotent; in PostgreSQL under
 * an advisory lock, so orchestrators starting together do not collide).
 *
 * SQLite durability: WAL journal with synchronous=NORMAL. A turn is
 * committed before history_append_turn returns; in WAL mode the commit is
 * written to the WAL file (the OS page cache) at that point, so it survives
 * the process being killed (kill -9, a crash) - tested. NORMAL skips the
 * fsync per commit: only a power loss or an OS crash can lose the last
 * commits (the database stays consistent). busy_timeout is
 * HISTORY_BUSY_TIMEOUT_MS, so several processes may share one file.
 *
 * PostgreSQL: a pool of up to HISTORY_PG_CONNS connections (a call waits
 * for a free one), statements parameterised, connect_timeout
 * HISTORY_PG_CONNECT_TIMEOUT_S and statement_timeout
 * HISTORY_PG_STATEMENT_TIMEOUT_MS unless the URL sets its own. A call that
 * finds its connection broken (the server restarted) resets it and runs
 * once more - only when nothing can have been committed, so a turn is
 * never stored twice. A commit whose answer was lost returns -EIO.
 * PostgreSQL refuses text that is not UTF-8 (-EINVAL); SQLite stores it.
 *
 * Ids: conversation ids are 1..HISTORY_ID_MAX bytes of [A-Za-z0-9._-]
 * (they appear in URLs); history_create makes a random UUID (v4) when none
 * is given. Lookups with an id that is not valid find nothing.
 *
 * Threads: every function may be called from any thread (SQLite: one
 * connection behind a mutex; PostgreSQL: the pool).
 * Errors: 0 (or a count) on success, negative errno: -ENOENT no such
 * conversation, -EEXIST id taken, -EINVAL bad argument or invalid JSON,
 * -E2BIG over a limit, -EBUSY the file stayed locked or no pooled
 * connection came free, -ENOSPC, -EROFS, -EACCES, -EBADMSG not a database /
 * corrupt, -ENOMEM, -ENOTCONN the server cannot be reached, -ETIMEDOUT a
 * statement ran past its timeout, -EIO otherwise. Does not log. Outputs are
 * untouched (vx_buf outputs unchanged) on failure.
 *
 *     history *h; history_open("/var/lib/voxline/voxline.db", &h);
 *     char id[HISTORY_ID_MAX + 1]; history_create(h, NULL, "Be brief.", "slt", id);
 *     history_append_turn(h, id, "user", "Hi", NULL, false, NULL); history_close(h);
 */
#ifndef HISTORY_H
#define HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vx_buf.h"

#define HISTORY_ID_MAX 64                 /* bytes of a conversation id */
#define HISTORY_BUSY_TIMEOUT_MS 5000      /* waiting for another writer */
#define HISTORY_MAX_TURNS 10000           /* per conversation; more: -E2BIG */
#define HISTORY_MAX_TEXT_BYTES (1u << 20) /* content, reasoning, prompt, timings */
#define HISTORY_LIST_MAX 1000             /* history_list limit is capped at this */
#define HISTORY_PG_CONNS 4                /* PostgreSQL connections per history */
#define HISTORY_PG_WAIT_MS 30000          /* waiting for a pooled connection */
#define HISTORY_PG_CONNECT_TIMEOUT_S 5    /* libpq connect_timeout default */
#define HISTORY_PG_STATEMENT_TIMEOUT_MS 10000 /* statement_timeout default */

typedef struct history history;

typedef struct history_turn {
	int idx;              /* 0-based position in the conversation */
	char *role;           /* "user" | "assistant" | "system" | ... */
	char *content;        /* what was said (or played, when interrupted) */
	char *reasoning;      /* NULL when none */
	bool interrupted;     /* the reply was cut by a barge-in */
	int64_t created_at;   /* ms since the epoch */
	char *timings_json;   /* a JSON object as given, or NULL */
} history_turn;

typedef struct history_conversation {
	char id[HISTORY_ID_MAX + 1];
	int64_t created_at, updated_at; /* ms since the epoch */
	char *system_prompt;  /* NULL when none */
	char *voice;          /* NULL when none */
	char *meta_json;      /* a JSON object, "{}" by default */
	history_turn *turns;  /* n_turns, in idx order */
	size_t n_turns;
} history_conversation;

/* Opens the store at where: a postgresql:// or postgres:// URL (libpq's
 * URI form, e.g. postgresql://voxline:secret@db.lan:5432/voxline), else
 * an SQLite file path (created when missing; its folder must exist).
 * Creates the schema when missing. Caller owns *ret and closes it with
 * history_close. PostgreSQL: -ENOTCONN when the server cannot be reached
 * or refuses the login or the database (history_open_why says which). */
int history_open(const char *where, history **ret);
/* history_open that also writes, on failure, the backend's own words
 * (libpq's or SQLite's message, e.g. "password authentication failed")
 * into why (why_cap bytes, NUL-terminated; why may be NULL). */
int history_open_why(const char *where, char *why, size_t why_cap, history **ret);
/* "sqlite" or "postgresql". */
const char *history_backend_name(const history *h);
/* Copies where into out (out_cap bytes) with any password replaced by
 * "***" (user:password@ and password= in URLs), for logs. */
void history_redact(const char *where, char *out, size_t out_cap);
/* Closes the store (every connection); NULL is a no-op. */
void history_close(history *h);

/* Creates a conversation. id NULL or "" makes a UUID; system_prompt and
 * voice may be NULL. ret_id (may be NULL) receives the id. -EEXIST when
 * id is taken, -EINVAL when it is not a valid id. */
int history_create(history *h, const char *id, const char *system_prompt,
		   const char *voice, char ret_id[HISTORY_ID_MAX + 1]);

/* 1 when the conversation exists, 0 when not, negative errno on failure. */
int history_exists(history *h, const char *id);

/* Appends a turn (one transaction) and bumps the conversation's
 * updated_at. reasoning and timings_json may be NULL; timings_json must be
 * valid JSON (-EINVAL). Returns the turn's idx (>= 0) once it is committed,
 * -ENOENT when the conversation does not exist, -E2BIG past
 * HISTORY_MAX_TURNS or HISTORY_MAX_TEXT_BYTES. */
int history_append_turn(history *h, const char *conv_id, const char *role,
			const char *content, const char *reasoning,
			bool interrupted, const char *timings_json);

/* Loads a conversation and all its turns into *ret (caller releases with
 * history_conversation_release). -ENOENT when absent. */
int history_load(history *h, const char *id, history_conversation *ret);
/* Frees what history_load allocated and zeroes c; accepts a zeroed c. */
void history_conversation_release(history_conversation *c);

/* Appends a JSON array of conversations, most recently updated first:
 * [{"id":..,"created_at":ms,"updated_at":ms,"turns":N}]. limit is capped at
 * HISTORY_LIST_MAX (<= 0 means the cap). Returns the number listed. */
int history_list(history *h, int limit, int offset, vx_buf *json);

/* Appends the whole conversation as a JSON object: {"id","created_at",
 * "updated_at","system_prompt","voice","meta","turns":[{"idx","role",
 * "content","reasoning","interrupted","created_at","timings"}]} (absent
 * strings and timings are null). -ENOENT when absent. */
int history_get_json(history *h, const char *id, vx_buf *json);

/* Replaces the conversation's meta (a JSON object, e.g. a phone call's
 * {"telephony":{"provider":"twilio","call_sid":..}}). -EINVAL when it is
 * not a JSON object, -ENOENT when the conversation is absent. */
int history_set_meta(history *h, const char *id, const char *meta_json);

/* Deletes a conversation and its turns. -ENOENT when absent. */
int history_delete(history *h, const char *id);

#endif
