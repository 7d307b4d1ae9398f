/* history_sqlite.c - the conversation store in one SQLite file (the
 * default backend): one connection behind a mutex, statements prepared
 * once; see history.h and history_int.h. */
#include "history_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "vx_time.h"

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS conversations("
	" id TEXT PRIMARY KEY,"
	" created_at INTEGER NOT NULL,"
	" updated_at INTEGER NOT NULL,"
	" system_prompt TEXT,"
	" voice TEXT,"
	" meta TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(meta)));"
	"CREATE TABLE IF NOT EXISTS turns("
	" id INTEGER PRIMARY KEY,"
	" conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,"
	" idx INTEGER NOT NULL,"
	" role TEXT NOT NULL,"
	" content TEXT NOT NULL,"
	" reasoning TEXT,"
	" interrupted INTEGER NOT NULL DEFAULT 0 CHECK (interrupted IN (0, 1)),"
	" created_at INTEGER NOT NULL,"
	" timings TEXT CHECK (timings IS NULL OR json_valid(timings)),"
	" UNIQUE (conversation_id, idx));"
	"CREATE INDEX IF NOT EXISTS conversations_by_update"
	" ON conversations(updated_at);";

enum stmt {
	ST_BEGIN,
	ST_BEGIN_READ,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_CREATE,
	ST_EXISTS,
	ST_TOUCH,
	ST_NEXT_IDX,
	ST_INSERT_TURN,
	ST_GET_CONV,
	ST_GET_TURNS,
	ST_LIST,
	ST_DELETE,
	ST_SET_META,
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_BEGIN_READ] = "BEGIN",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_CREATE] = "INSERT INTO conversations(id, created_at, updated_at,"
		      " system_prompt, voice) VALUES (?1, ?2, ?2, ?3, ?4)",
	[ST_EXISTS] = "SELECT 1 FROM conversations WHERE id = ?1",
	[ST_TOUCH] = "UPDATE conversations SET updated_at = ?2 WHERE id = ?1",
	[ST_NEXT_IDX] = "SELECT COALESCE(MAX(idx) + 1, 0) FROM turns"
			" WHERE conversation_id = ?1",
	[ST_INSERT_TURN] = "INSERT INTO turns(conversation_id, idx, role, content,"
			   " reasoning, interrupted, created_at, timings)"
			   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[ST_GET_CONV] = "SELECT id, created_at, updated_at, system_prompt, voice,"
			" meta FROM conversations WHERE id = ?1",
	[ST_GET_TURNS] = "SELECT idx, role, content, reasoning, interrupted,"
			 " created_at, timings FROM turns"
			 " WHERE conversation_id = ?1 ORDER BY idx",
	[ST_LIST] = "SELECT c.id, c.created_at, c.updated_at,"
		    " (SELECT COUNT(*) FROM turns t WHERE t.conversation_id = c.id)"
		    " FROM conversations c ORDER BY c.updated_at DESC, c.id"
		    " LIMIT ?1 OFFSET ?2",
	[ST_DELETE] = "DELETE FROM conversations WHERE id = ?1",
	[ST_SET_META] = "UPDATE conversations SET meta = ?2, updated_at = ?3 WHERE id = ?1",
};

struct sq_store {
	pthread_mutex_t lock;      /* guards db and every statement */
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT]; /* prepared once, reset after each use */
};

/* Maps an SQLite result code to a negative errno. */
static int sql_err(int rc)
{
	switch (rc) {
	case SQLITE_CONSTRAINT_PRIMARYKEY:
	case SQLITE_CONSTRAINT_UNIQUE:
		return -EEXIST;
	}
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_CANTOPEN:
		return -ENOENT;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -EBADMSG;
	case SQLITE_CONSTRAINT:
	case SQLITE_MISMATCH:
	case SQLITE_RANGE:
		return -EINVAL;
	case SQLITE_TOOBIG:
		return -E2BIG;
	default:
		return -EIO;
	}
}

static int bind_text(sqlite3_stmt *st, int i, const char *s)
{
	return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) :
		   sqlite3_bind_null(st, i);
}

/* Runs a statement that returns no rows and resets it. */
static int run(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : sql_err(rc);
}

static void done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

static char *col_dup(sqlite3_stmt *st, int i, bool *oom)
{
	return history_dup((const char *)sqlite3_column_text(st, i), oom);
}

/* Copies db's last error message into why. */
static void set_why(sqlite3 *db, int rc, char *why, size_t why_cap)
{
	if (why && why_cap)
		snprintf(why, why_cap, "%s", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

/* WAL, and the schema in one immediate transaction; an SQLite code. */
static int sq_setup(sqlite3 *db, char *why, size_t why_cap)
{
	if (why && why_cap)
		why[0] = '\0';   /* not a BUSY try's message */
	/* journal_mode=WAL answers the mode in force ("memory" for :memory:) */
	int rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL;"
			      "PRAGMA synchronous=NORMAL;"
			      "PRAGMA foreign_keys=ON;", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "BEGIN IMMEDIATE;", NULL, NULL, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_exec(db, schema_sql, NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			set_why(db, rc, why, why_cap);
		int rc2 = sqlite3_exec(db, rc == SQLITE_OK ? "COMMIT;" : "ROLLBACK;",
				       NULL, NULL, NULL);
		if (rc == SQLITE_OK)
			rc = rc2;
	}
	return rc;
}

static int sq_open(const char *path, char *why, size_t why_cap, void **ret)
{
	struct sq_store *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	int r, rc = sqlite3_open_v2(path, &h->db, SQLITE_OPEN_READWRITE |
				    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		r = sql_err(rc);
		goto out_close_db;
	}
	sqlite3_extended_result_codes(h->db, 1);
	sqlite3_busy_timeout(h->db, HISTORY_BUSY_TIMEOUT_MS);
	/* Stores opened together on a new file can deadlock on the journal
	 * mode or the schema (each holds a read lock and wants to write):
	 * SQLite then answers SQLITE_BUSY at once, without the busy handler,
	 * so the whole setup is tried again until the busy timeout. */
	double deadline = vx_now_ms() + HISTORY_BUSY_TIMEOUT_MS;
	while ((rc = sq_setup(h->db, why, why_cap)) != SQLITE_OK &&
	       (rc & 0xff) == SQLITE_BUSY && vx_now_ms() < deadline)
		nanosleep(&(struct timespec){ 0, 5 * 1000000L }, NULL);
	if (rc != SQLITE_OK) {
		r = sql_err(rc);
		goto out_close_db;
	}
	for (int i = 0; i < ST_COUNT; i++) {
		rc = sqlite3_prepare_v3(h->db, stmt_sql[i], -1,
					SQLITE_PREPARE_PERSISTENT, &h->st[i], NULL);
		if (rc != SQLITE_OK) {
			r = sql_err(rc);
			goto out_finalize;
		}
	}
	if ((r = -pthread_mutex_init(&h->lock, NULL)) < 0)
		goto out_finalize;
	*ret = h;
	return 0;

out_finalize:
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(h->st[i]);
out_close_db:
	if (why && why_cap && !why[0] && rc != SQLITE_OK)
		set_why(h->db, rc, why, why_cap);
	sqlite3_close(h->db); /* accepts NULL */
	free(h);
	return r;
}

static void sq_close(void *be)
{
	struct sq_store *h = be;
	if (!h)
		return;
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(h->st[i]);
	sqlite3_close(h->db);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

static int sq_create(void *be, const char *id, int64_t now,
		     const char *system_prompt, const char *voice)
{
	struct sq_store *h = be;
	pthread_mutex_lock(&h->lock);
	sqlite3_stmt *st = h->st[ST_CREATE];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now);
	bind_text(st, 3, system_prompt);
	bind_text(st, 4, voice);
	int r = run(st);
	pthread_mutex_unlock(&h->lock);
	return r;
}

static int sq_exists(void *be, const char *id)
{
	struct sq_store *h = be;
	pthread_mutex_lock(&h->lock);
	sqlite3_stmt *st = h->st[ST_EXISTS];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	done(st);
	pthread_mutex_unlock(&h->lock);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : sql_err(rc);
}

/* With the lock held and a write transaction open: inserts the turn. */
static int append_locked(struct sq_store *h, const char *conv_id, int64_t now,
			 const char *role, const char *content, const char *reasoning,
			 bool interrupted, const char *timings_json)
{
	sqlite3_stmt *st = h->st[ST_TOUCH];
	sqlite3_bind_text(st, 1, conv_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now);
	int r = run(st);
	if (r < 0)
		return r;
	if (sqlite3_changes(h->db) == 0)
		return -ENOENT;

	st = h->st[ST_NEXT_IDX];
	sqlite3_bind_text(st, 1, conv_id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	int64_t idx = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	done(st);
	if (rc != SQLITE_ROW)
		return sql_err(rc);
	if (idx >= HISTORY_MAX_TURNS)
		return -E2BIG;

	st = h->st[ST_INSERT_TURN];
	sqlite3_bind_text(st, 1, conv_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, idx);
	sqlite3_bind_text(st, 3, role, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, content, -1, SQLITE_STATIC);
	bind_text(st, 5, reasoning);
	sqlite3_bind_int(st, 6, interrupted ? 1 : 0);
	sqlite3_bind_int64(st, 7, now);
	bind_text(st, 8, timings_json);
	if ((r = run(st)) < 0)
		return r == -EEXIST ? -EIO : r;
	return (int)idx;
}

static int sq_append(void *be, const char *conv_id, int64_t now, const char *role,
		     const char *content, const char *reasoning, bool interrupted,
		     const char *timings_json)
{
	struct sq_store *h = be;
	pthread_mutex_lock(&h->lock);
	int r = run(h->st[ST_BEGIN]);
	if (r < 0)
		goto out_unlock;
	r = append_locked(h, conv_id, now, role, content, reasoning, interrupted,
			  timings_json);
	if (r >= 0) {
		int c = run(h->st[ST_COMMIT]);
		if (c < 0)
			r = c;
	}
	if (r < 0 && !sqlite3_get_autocommit(h->db))
		run(h->st[ST_ROLLBACK]);
out_unlock:
	pthread_mutex_unlock(&h->lock);
	return r;
}

/* With the lock held: reads the turns of c->id into c. */
static int load_turns_locked(struct sq_store *h, history_conversation *c)
{
	sqlite3_stmt *st = h->st[ST_GET_TURNS];
	size_t cap = 0;
	bool oom = false;
	int rc;
	sqlite3_bind_text(st, 1, c->id, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && !oom) {
		history_turn *t = history_push_turn(c, &cap);
		if (!t) {
			oom = true;
			break;
		}
		t->idx = sqlite3_column_int(st, 0);
		t->role = col_dup(st, 1, &oom);
		t->content = col_dup(st, 2, &oom);
		t->reasoning = col_dup(st, 3, &oom);
		t->interrupted = sqlite3_column_int(st, 4) != 0;
		t->created_at = sqlite3_column_int64(st, 5);
		t->timings_json = col_dup(st, 6, &oom);
	}
	done(st);
	if (oom)
		return -ENOMEM;
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : sql_err(rc);
}

static int sq_load(void *be, const char *id, history_conversation *c)
{
	struct sq_store *h = be;
	bool oom = false;
	int r;
	pthread_mutex_lock(&h->lock);
	/* one read transaction, so conversation and turns agree */
	if ((r = run(h->st[ST_BEGIN_READ])) < 0)
		goto out_unlock;
	sqlite3_stmt *st = h->st[ST_GET_CONV];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		snprintf(c->id, sizeof(c->id), "%s", (const char *)sqlite3_column_text(st, 0));
		c->created_at = sqlite3_column_int64(st, 1);
		c->updated_at = sqlite3_column_int64(st, 2);
		c->system_prompt = col_dup(st, 3, &oom);
		c->voice = col_dup(st, 4, &oom);
		c->meta_json = col_dup(st, 5, &oom);
	}
	done(st);
	r = oom ? -ENOMEM : rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : sql_err(rc);
	if (r == 0)
		r = load_turns_locked(h, c);
	run(h->st[ST_COMMIT]);
out_unlock:
	pthread_mutex_unlock(&h->lock);
	return r;
}

static int sq_list(void *be, int limit, int offset, history_row_fn row, void *arg)
{
	struct sq_store *h = be;
	int n = 0, r = 0;
	pthread_mutex_lock(&h->lock);
	sqlite3_stmt *st = h->st[ST_LIST];
	sqlite3_bind_int(st, 1, limit);
	sqlite3_bind_int(st, 2, offset);
	int rc = SQLITE_DONE;
	while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		r = row(arg, (const char *)sqlite3_column_text(st, 0),
			sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2),
			sqlite3_column_int64(st, 3));
		n++;
	}
	done(st);
	pthread_mutex_unlock(&h->lock);
	if (r == 0 && rc != SQLITE_DONE)
		r = sql_err(rc);
	return r < 0 ? r : n;
}

static int sq_remove(void *be, const char *id)
{
	struct sq_store *h = be;
	pthread_mutex_lock(&h->lock);
	sqlite3_stmt *st = h->st[ST_DELETE];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int r = run(st);
	if (r == 0 && sqlite3_changes(h->db) == 0)
		r = -ENOENT;
	pthread_mutex_unlock(&h->lock);
	return r;
}

static int sq_set_meta(void *be, const char *id, int64_t now, const char *meta)
{
	struct sq_store *h = be;
	pthread_mutex_lock(&h->lock);
	sqlite3_stmt *st = h->st[ST_SET_META];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, meta, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now);
	int r = run(st);
	if (r == 0 && sqlite3_changes(h->db) == 0)
		r = -ENOENT;
	pthread_mutex_unlock(&h->lock);
	return r;
}

const history_backend history_sqlite_backend = {
	.name = "sqlite",
	.open = sq_open,
	.close = sq_close,
	.create = sq_create,
	.exists = sq_exists,
	.append = sq_append,
	.load = sq_load,
	.list = sq_list,
	.remove = sq_remove,
	.set_meta = sq_set_meta,
};
