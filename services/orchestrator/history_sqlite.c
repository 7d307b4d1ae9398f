/* history.c - the conversation store in SQLite; see history.h. */
#include "history.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <sqlite3.h>

#define HISTORY_ROLE_MAX 32 /* bytes of a role name */

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
};

struct history {
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

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool id_valid(const char *id)
{
	size_t n = id ? strlen(id) : 0;
	if (n == 0 || n > HISTORY_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static bool text_ok(const char *s)
{
	return !s || strlen(s) <= HISTORY_MAX_TEXT_BYTES;
}

/* A random RFC 4122 version 4 UUID, lowercase. */
static int make_uuid(char out[37])
{
	unsigned char r[16];
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return -EIO;
	r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
	r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
		 r[10], r[11], r[12], r[13], r[14], r[15]);
	return 0;
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
	const unsigned char *t = sqlite3_column_text(st, i);
	if (!t)
		return NULL;
	char *d = strdup((const char *)t);
	if (!d)
		*oom = true;
	return d;
}

int history_open(const char *path, history **ret)
{
	if (!path || !*path || !ret)
		return -EINVAL;
	history *h = calloc(1, sizeof(*h));
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
	/* journal_mode=WAL answers the mode in force ("memory" for :memory:) */
	rc = sqlite3_exec(h->db, "PRAGMA journal_mode=WAL;"
			  "PRAGMA synchronous=NORMAL;"
			  "PRAGMA foreign_keys=ON;", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(h->db, "BEGIN IMMEDIATE;", NULL, NULL, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_exec(h->db, schema_sql, NULL, NULL, NULL);
		int rc2 = sqlite3_exec(h->db, rc == SQLITE_OK ? "COMMIT;" : "ROLLBACK;",
				       NULL, NULL, NULL);
		if (rc == SQLITE_OK)
			rc = rc2;
	}
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
	sqlite3_close(h->db); /* accepts NULL */
	free(h);
	return r;
}

void history_close(history *h)
{
	if (!h)
		return;
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(h->st[i]);
	sqlite3_close(h->db);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

int history_create(history *h, const char *id, const char *system_prompt,
		   const char *voice, char ret_id[HISTORY_ID_MAX + 1])
{
	char made[HISTORY_ID_MAX + 1];
	int r;
	if (!h || !text_ok(system_prompt) || !text_ok(voice))
		return -EINVAL;
	if (id && *id) {
		if (!id_valid(id))
			return -EINVAL;
		snprintf(made, sizeof(made), "%s", id);
	} else if ((r = make_uuid(made)) < 0) {
		return r;
	}
	pthread_mutex_lock(&h->lock);
	sqlite3_stmt *st = h->st[ST_CREATE];
	sqlite3_bind_text(st, 1, made, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_ms());
	bind_text(st, 3, system_prompt);
	bind_text(st, 4, voice);
	r = run(st);
	pthread_mutex_unlock(&h->lock);
	if (r == 0 && ret_id)
		memcpy(ret_id, made, strlen(made) + 1);
	return r;
}

/* With the lock held: 1 when id exists, 0 when not, or an error. */
static int exists_locked(history *h, const char *id)
{
	sqlite3_stmt *st = h->st[ST_EXISTS];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	done(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : sql_err(rc);
}

int history_exists(history *h, const char *id)
{
	if (!h)
		return -EINVAL;
	if (!id_valid(id))
		return 0;
	pthread_mutex_lock(&h->lock);
	int r = exists_locked(h, id);
	pthread_mutex_unlock(&h->lock);
	return r;
}

/* With the lock held and a write transaction open: inserts the turn. */
static int append_locked(history *h, const char *conv_id, const char *role,
			 const char *content, const char *reasoning,
			 bool interrupted, const char *timings_json)
{
	int64_t now = now_ms();
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
	sqlite3_bind_text(st, 4, content ? content : "", -1, SQLITE_STATIC);
	bind_text(st, 5, reasoning);
	sqlite3_bind_int(st, 6, interrupted ? 1 : 0);
	sqlite3_bind_int64(st, 7, now);
	bind_text(st, 8, timings_json);
	if ((r = run(st)) < 0)
		return r == -EEXIST ? -EIO : r;
	return (int)idx;
}

int history_append_turn(history *h, const char *conv_id, const char *role,
			const char *content, const char *reasoning,
			bool interrupted, const char *timings_json)
{
	if (!h || !role || !*role || strlen(role) > HISTORY_ROLE_MAX)
		return -EINVAL;
	if (!text_ok(content) || !text_ok(reasoning) || !text_ok(timings_json))
		return -E2BIG;
	if (!id_valid(conv_id))
		return -ENOENT;
	pthread_mutex_lock(&h->lock);
	int r = run(h->st[ST_BEGIN]);
	if (r < 0)
		goto out_unlock;
	r = append_locked(h, conv_id, role, content, reasoning, interrupted,
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

void history_conversation_release(history_conversation *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_turns; i++) {
		free(c->turns[i].role);
		free(c->turns[i].content);
		free(c->turns[i].reasoning);
		free(c->turns[i].timings_json);
	}
	free(c->turns);
	free(c->system_prompt);
	free(c->voice);
	free(c->meta_json);
	memset(c, 0, sizeof(*c));
}

/* With the lock held: reads the turns of c->id into c. */
static int load_turns_locked(history *h, history_conversation *c)
{
	sqlite3_stmt *st = h->st[ST_GET_TURNS];
	size_t cap = 0;
	bool oom = false;
	int rc;
	sqlite3_bind_text(st, 1, c->id, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && !oom) {
		if (c->n_turns == cap) {
			size_t ncap = cap ? 2 * cap : 16;
			history_turn *t = realloc(c->turns, ncap * sizeof(*t));
			if (!t) {
				oom = true;
				break;
			}
			c->turns = t;
			cap = ncap;
		}
		history_turn *t = &c->turns[c->n_turns++];
		memset(t, 0, sizeof(*t));
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

int history_load(history *h, const char *id, history_conversation *ret)
{
	history_conversation c = {0};
	bool oom = false;
	int r;
	if (!h || !ret)
		return -EINVAL;
	if (!id_valid(id))
		return -ENOENT;
	pthread_mutex_lock(&h->lock);
	/* one read transaction, so conversation and turns agree */
	if ((r = run(h->st[ST_BEGIN_READ])) < 0)
		goto out_unlock;
	sqlite3_stmt *st = h->st[ST_GET_CONV];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		snprintf(c.id, sizeof(c.id), "%s", (const char *)sqlite3_column_text(st, 0));
		c.created_at = sqlite3_column_int64(st, 1);
		c.updated_at = sqlite3_column_int64(st, 2);
		c.system_prompt = col_dup(st, 3, &oom);
		c.voice = col_dup(st, 4, &oom);
		c.meta_json = col_dup(st, 5, &oom);
	}
	done(st);
	r = oom ? -ENOMEM : rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : sql_err(rc);
	if (r == 0)
		r = load_turns_locked(h, &c);
	run(h->st[ST_COMMIT]);
out_unlock:
	pthread_mutex_unlock(&h->lock);
	if (r < 0) {
		history_conversation_release(&c);
		return r;
	}
	*ret = c;
	return 0;
}

static int json_str_or_null(vx_buf *b, const char *s)
{
	return s ? vx_buf_json_str(b, s, strlen(s)) : vx_buf_puts(b, "null");
}

int history_list(history *h, int limit, int offset, vx_buf *json)
{
	if (!h || !json || offset < 0)
		return -EINVAL;
	if (limit <= 0 || limit > HISTORY_LIST_MAX)
		limit = HISTORY_LIST_MAX;
	size_t start = json->len;
	int n = 0, r = vx_buf_puts(json, "[");
	pthread_mutex_lock(&h->lock);
	sqlite3_stmt *st = h->st[ST_LIST];
	sqlite3_bind_int(st, 1, limit);
	sqlite3_bind_int(st, 2, offset);
	int rc = SQLITE_DONE;
	while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(st, 0);
		r = vx_buf_puts(json, n ? ",{\"id\":" : "{\"id\":");
		if (r == 0)
			r = json_str_or_null(json, id);
		if (r == 0)
			r = vx_buf_printf(json, ",\"created_at\":%lld,\"updated_at\":%lld,\"turns\":%lld}",
					  (long long)sqlite3_column_int64(st, 1),
					  (long long)sqlite3_column_int64(st, 2),
					  (long long)sqlite3_column_int64(st, 3));
		n++;
	}
	done(st);
	pthread_mutex_unlock(&h->lock);
	if (r == 0 && rc != SQLITE_DONE)
		r = sql_err(rc);
	if (r == 0)
		r = vx_buf_puts(json, "]");
	if (r < 0) {
		json->len = start;
		if (json->data)
			json->data[start] = '\0';
		return r;
	}
	return n;
}

/* Appends c as the JSON object history_get_json documents. */
static int conversation_json(const history_conversation *c, vx_buf *b)
{
	int r = vx_buf_puts(b, "{\"id\":");
	if (!r) r = vx_buf_json_str(b, c->id, strlen(c->id));
	if (!r) r = vx_buf_printf(b, ",\"created_at\":%lld,\"updated_at\":%lld,\"system_prompt\":",
				  (long long)c->created_at, (long long)c->updated_at);
	if (!r) r = json_str_or_null(b, c->system_prompt);
	if (!r) r = vx_buf_puts(b, ",\"voice\":");
	if (!r) r = json_str_or_null(b, c->voice);
	if (!r) r = vx_buf_printf(b, ",\"meta\":%s,\"turns\":[", c->meta_json ? c->meta_json : "{}");
	for (size_t i = 0; i < c->n_turns && !r; i++) {
		const history_turn *t = &c->turns[i];
		r = vx_buf_printf(b, "%s{\"idx\":%d,\"role\":", i ? "," : "", t->idx);
		if (!r) r = json_str_or_null(b, t->role);
		if (!r) r = vx_buf_puts(b, ",\"content\":");
		if (!r) r = json_str_or_null(b, t->content);
		if (!r) r = vx_buf_puts(b, ",\"reasoning\":");
		if (!r) r = json_str_or_null(b, t->reasoning);
		if (!r) r = vx_buf_printf(b, ",\"interrupted\":%s,\"created_at\":%lld,\"timings\":%s}",
					  t->interrupted ? "true" : "false",
					  (long long)t->created_at,
					  t->timings_json ? t->timings_json : "null");
	}
	if (!r) r = vx_buf_puts(b, "]}");
	return r;
}

int history_get_json(history *h, const char *id, vx_buf *json)
{
	history_conversation c = {0};
	if (!json)
		return -EINVAL;
	int r = history_load(h, id, &c);
	if (r < 0)
		return r;
	size_t start = json->len;
	r = conversation_json(&c, json);
	if (r < 0) {
		json->len = start;
		if (json->data)
			json->data[start] = '\0';
	}
	history_conversation_release(&c);
	return r;
}

int history_delete(history *h, const char *id)
{
	if (!h)
		return -EINVAL;
	if (!id_valid(id))
		return -ENOENT;
	pthread_mutex_lock(&h->lock);
	sqlite3_stmt *st = h->st[ST_DELETE];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int r = run(st);
	if (r == 0 && sqlite3_changes(h->db) == 0)
		r = -ENOENT;
	pthread_mutex_unlock(&h->lock);
	return r;
}
