/*
 * Tests of the conversation store (services/orchestrator/history*.c): round
 * trips, JSON output (parsed back with cJSON), errors, durability across
 * SIGKILL of a writer process, concurrent appends from threads and from
 * two stores, schema creation by stores opened together.
 *
 * Without arguments: the SQLite backend on real files in a temporary
 * directory (a unit test). With VOXLINE_TEST_PG=postgresql://user:pw@host:port
 * (a running server; tests/integration/test_history_pg.py and
 * tests/deploy/test_postgres.py start one): the same checks on the
 * PostgreSQL backend, each case in a fresh database made through that URL
 * (dropped at the end), plus its own: a connection killed under the store
 * is reset and the call retried without storing anything twice; a URL's
 * statement_timeout ends a blocked call with -ETIMEDOUT; a failed open
 * says why.
 */
#include "history.h"
#include "vx_test.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>
#include <sqlite3.h>

static char tmpdir[64];
static int db_seq;
static const char *pg_base; /* VOXLINE_TEST_PG: PostgreSQL mode when set */
static PGconn *pg_admin;    /* to pg_base/postgres: creates the databases */

/* Runs one statement on conn with text parameters; 0 or -1 (printed). */
static int pg_do(PGconn *conn, const char *sql, int n, const char *const *params)
{
	PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);
	int r = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : -1;
	if (r)
		fprintf(stderr, "%s: %s", sql, PQerrorMessage(conn));
	PQclear(res);
	return r;
}

/* A fresh database: a path under tmpdir, or a new PostgreSQL database. */
static void db_path(char *out, size_t cap)
{
	if (!pg_base) {
		snprintf(out, cap, "%s/h%d.db", tmpdir, db_seq++);
		return;
	}
	char name[64], sql[128];
	snprintf(name, sizeof(name), "vxh_%d_%d", (int)getpid(), db_seq++);
	/* CREATE DATABASE takes no parameters; the name is made of numbers.
	 * FILE_COPY (PostgreSQL 15+) is faster than logging the template. */
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s STRATEGY FILE_COPY", name);
	if (pg_do(pg_admin, sql, 0, NULL) < 0) {
		snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
		VX_CHECK_INT(pg_do(pg_admin, sql, 0, NULL), 0);
	}
	snprintf(out, cap, "%s/%s", pg_base, name);
}

/* The database name of a PostgreSQL URL made by db_path. */
static const char *db_name(const char *path)
{
	return strrchr(path, '/') + 1;
}

static history *open_fresh(char *path, size_t cap)
{
	history *h = NULL;
	db_path(path, cap);
	VX_CHECK_INT(history_open(path, &h), 0);
	return h;
}

VX_TEST(create_generates_uuid_and_load_round_trips)
{
	char path[256], id[HISTORY_ID_MAX + 1] = "";
	history *h = open_fresh(path, sizeof(path));
	if (!h)
		return;
	VX_CHECK_STR(history_backend_name(h), pg_base ? "postgresql" : "sqlite");
	VX_CHECK_INT(history_create(h, NULL, "Be brief.", "slt", id), 0);
	VX_CHECK_INT(strlen(id), 36);
	VX_CHECK(id[8] == '-' && id[13] == '-' && id[14] == '4' && id[18] == '-' && id[23] == '-');
	VX_CHECK_INT(history_exists(h, id), 1);
	VX_CHECK_INT(history_exists(h, "nope"), 0);
	VX_CHECK_INT(history_exists(h, "../etc/passwd"), 0);

	char id2[HISTORY_ID_MAX + 1];
	VX_CHECK_INT(history_create(h, NULL, NULL, NULL, id2), 0);
	VX_CHECK(strcmp(id, id2) != 0);

	history_conversation c = {0};
	VX_CHECK_INT(history_load(h, id, &c), 0);
	VX_CHECK_STR(c.id, id);
	VX_CHECK_STR(c.system_prompt, "Be brief.");
	VX_CHECK_STR(c.voice, "slt");
	VX_CHECK_STR(c.meta_json, "{}");
	VX_CHECK_INT(c.n_turns, 0);
	VX_CHECK(c.created_at > 1600000000000LL && c.created_at == c.updated_at);
	history_conversation_release(&c);
	VX_CHECK_INT(history_load(h, id2, &c), 0);
	VX_CHECK(c.system_prompt == NULL && c.voice == NULL);
	history_conversation_release(&c);
	history_close(h);
}

VX_TEST(create_with_given_id_refuses_taken_and_invalid_ids)
{
	char path[256], id[HISTORY_ID_MAX + 1] = "";
	history *h = open_fresh(path, sizeof(path));
	if (!h)
		return;
	VX_CHECK_INT(history_create(h, "conv-1_a.b", NULL, NULL, id), 0);
	VX_CHECK_STR(id, "conv-1_a.b");
	VX_CHECK_INT(history_create(h, "conv-1_a.b", NULL, NULL, NULL), -EEXIST);
	VX_CHECK_INT(history_create(h, "has space", NULL, NULL, NULL), -EINVAL);
	VX_CHECK_INT(history_create(h, "a/b", NULL, NULL, NULL), -EINVAL);
	char longid[HISTORY_ID_MAX + 2];
	memset(longid, 'x', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	VX_CHECK_INT(history_create(h, longid, NULL, NULL, NULL), -EINVAL);
	longid[HISTORY_ID_MAX] = '\0';
	VX_CHECK_INT(history_create(h, longid, NULL, NULL, NULL), 0);
	history_close(h);
}

VX_TEST(append_turns_in_order_with_all_fields)
{
	char path[256], id[HISTORY_ID_MAX + 1];
	history *h = open_fresh(path, sizeof(path));
	if (!h)
		return;
	history_create(h, "c1", "sys", NULL, id);
	VX_CHECK_INT(history_append_turn(h, "c1", "user", "Hello \"there\"\n", NULL, false, NULL), 0);
	VX_CHECK_INT(history_append_turn(h, "c1", "assistant", "Hi! How can", "thinking...",
					 true, "{\"llm_first_token_ms\":120,\"e2e_ms\":900}"), 1);
	VX_CHECK_INT(history_append_turn(h, "c1", "user", "", NULL, false, "{}"), 2);
	/* errors append nothing */
	VX_CHECK_INT(history_append_turn(h, "c1", "user", "x", NULL, false, "{not json"), -EINVAL);
	VX_CHECK_INT(history_append_turn(h, "missing", "user", "x", NULL, false, NULL), -ENOENT);
	VX_CHECK_INT(history_append_turn(h, "c1", "", "x", NULL, false, NULL), -EINVAL);
	VX_CHECK_INT(history_append_turn(h, "c1", NULL, "x", NULL, false, NULL), -EINVAL);

	history_conversation c = {0};
	VX_CHECK_INT(history_load(h, "c1", &c), 0);
	VX_CHECK_INT(c.n_turns, 3);
	if (c.n_turns == 3) {
		VX_CHECK_INT(c.turns[0].idx, 0);
		VX_CHECK_STR(c.turns[0].role, "user");
		VX_CHECK_STR(c.turns[0].content, "Hello \"there\"\n");
		VX_CHECK(c.turns[0].reasoning == NULL && c.turns[0].timings_json == NULL);
		VX_CHECK(!c.turns[0].interrupted);
		VX_CHECK_STR(c.turns[1].role, "assistant");
		VX_CHECK_STR(c.turns[1].reasoning, "thinking...");
		VX_CHECK(c.turns[1].interrupted);
		VX_CHECK_STR(c.turns[1].timings_json, "{\"llm_first_token_ms\":120,\"e2e_ms\":900}");
		VX_CHECK_INT(c.turns[2].idx, 2);
		VX_CHECK_STR(c.turns[2].content, "");
		VX_CHECK(c.updated_at >= c.turns[2].created_at);
		VX_CHECK(c.turns[2].created_at >= c.turns[0].created_at);
	}
	history_conversation_release(&c);
	VX_CHECK_INT(history_load(h, "missing", &c), -ENOENT);
	history_close(h);
}

VX_TEST(get_json_is_valid_json_with_every_field)
{
	char path[256];
	history *h = open_fresh(path, sizeof(path));
	if (!h)
		return;
	history_create(h, "j1", "Say \"hi\"\\ \x01", "kal", NULL);
	history_append_turn(h, "j1", "user", "What's 2+2?", NULL, false, NULL);
	history_append_turn(h, "j1", "assistant", "4\tfour", "<add>", true, "{\"e2e_ms\":5}");
	vx_buf b = {0};
	vx_buf_puts(&b, "prefix:");
	VX_CHECK_INT(history_get_json(h, "j1", &b), 0);
	VX_CHECK(!strncmp(b.data, "prefix:", 7));
	cJSON *j = cJSON_Parse(b.data + 7);
	VX_CHECK(j != NULL);
	if (j) {
		VX_CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j, "id")), "j1");
		VX_CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j, "system_prompt")),
			     "Say \"hi\"\\ \x01");
		VX_CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j, "voice")), "kal");
		VX_CHECK(cJSON_IsNumber(cJSON_GetObjectItem(j, "created_at")));
		VX_CHECK(cJSON_IsObject(cJSON_GetObjectItem(j, "meta")));
		cJSON *turns = cJSON_GetObjectItem(j, "turns");
		VX_CHECK_INT(cJSON_GetArraySize(turns), 2);
		cJSON *t0 = cJSON_GetArrayItem(turns, 0), *t1 = cJSON_GetArrayItem(turns, 1);
		VX_CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(t0, "content")), "What's 2+2?");
		VX_CHECK(cJSON_IsNull(cJSON_GetObjectItem(t0, "reasoning")));
		VX_CHECK(cJSON_IsNull(cJSON_GetObjectItem(t0, "timings")));
		VX_CHECK(cJSON_IsFalse(cJSON_GetObjectItem(t0, "interrupted")));
		VX_CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(t1, "role")), "assistant");
		VX_CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(t1, "content")), "4\tfour");
		VX_CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(t1, "reasoning")), "<add>");
		VX_CHECK(cJSON_IsTrue(cJSON_GetObjectItem(t1, "interrupted")));
		VX_CHECK_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(
				     cJSON_GetObjectItem(t1, "timings"), "e2e_ms")), 5);
		VX_CHECK_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(t1, "idx")), 1);
	}
	cJSON_Delete(j);
	/* absent: -ENOENT and the buffer unchanged */
	size_t len = b.len;
	VX_CHECK_INT(history_get_json(h, "nope", &b), -ENOENT);
	VX_CHECK_INT(b.len, len);
	vx_buf_release(&b);
	history_close(h);
}

VX_TEST(list_is_most_recent_first_with_paging)
{
	char path[256];
	history *h = open_fresh(path, sizeof(path));
	if (!h)
		return;
	vx_buf b = {0};
	VX_CHECK_INT(history_list(h, 10, 0, &b), 0);
	VX_CHECK_STR(b.data, "[]");
	history_create(h, "a", NULL, NULL, NULL);
	usleep(3000);
	history_create(h, "b", NULL, NULL, NULL);
	usleep(3000);
	history_create(h, "c", NULL, NULL, NULL);
	usleep(3000);
	history_append_turn(h, "a", "user", "x", NULL, false, NULL); /* a is now newest */
	history_append_turn(h, "a", "assistant", "y", NULL, false, NULL);
	vx_buf_reset(&b);
	VX_CHECK_INT(history_list(h, 0, 0, &b), 3);
	cJSON *j = cJSON_Parse(b.data);
	VX_CHECK(cJSON_GetArraySize(j) == 3);
	if (cJSON_GetArraySize(j) == 3) {
		const char *order[] = { "a", "c", "b" };
		for (int i = 0; i < 3; i++) {
			cJSON *e = cJSON_GetArrayItem(j, i);
			VX_CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(e, "id")), order[i]);
			VX_CHECK_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(e, "turns")), i ? 0 : 2);
			VX_CHECK(cJSON_IsNumber(cJSON_GetObjectItem(e, "updated_at")));
			VX_CHECK(cJSON_IsNumber(cJSON_GetObjectItem(e, "created_at")));
		}
	}
	cJSON_Delete(j);
	vx_buf_reset(&b);
	VX_CHECK_INT(history_list(h, 1, 1, &b), 1);
	VX_CHECK(b.data && strstr(b.data, "\"id\":\"c\"") != NULL);
	vx_buf_reset(&b);
	VX_CHECK_INT(history_list(h, 5, 3, &b), 0);
	VX_CHECK_STR(b.data, "[]");
	VX_CHECK_INT(history_list(h, 5, -1, &b), -EINVAL);
	vx_buf_release(&b);
	history_close(h);
}

/* Reads COUNT(*) and MIN(conversation_id) of the turns table directly. */
static void count_turns(const char *path, char n[16], char conv[16])
{
	const char *sql = "SELECT COUNT(*), MIN(conversation_id) FROM turns";
	if (pg_base) {
		PGconn *c = PQconnectdb(path);
		PGresult *res = PQexec(c, sql);
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
			snprintf(n, 16, "%s", PQgetvalue(res, 0, 0));
			snprintf(conv, 16, "%s", PQgetvalue(res, 0, 1));
		}
		PQclear(res);
		PQfinish(c);
		return;
	}
	sqlite3 *db;
	VX_CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_stmt *st;
	sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(n, 16, "%s", (const char *)sqlite3_column_text(st, 0));
		snprintf(conv, 16, "%s", (const char *)sqlite3_column_text(st, 1));
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
}

VX_TEST(delete_removes_conversation_and_turns)
{
	char path[256];
	history *h = open_fresh(path, sizeof(path));
	if (!h)
		return;
	history_create(h, "d", NULL, NULL, NULL);
	history_create(h, "keep", NULL, NULL, NULL);
	history_append_turn(h, "d", "user", "x", NULL, false, NULL);
	history_append_turn(h, "keep", "user", "y", NULL, false, NULL);
	VX_CHECK_INT(history_delete(h, "d"), 0);
	VX_CHECK_INT(history_exists(h, "d"), 0);
	VX_CHECK_INT(history_delete(h, "d"), -ENOENT);
	VX_CHECK_INT(history_delete(h, "bad id"), -ENOENT);
	VX_CHECK_INT(history_append_turn(h, "d", "user", "x", NULL, false, NULL), -ENOENT);
	history_close(h);
	/* the turns went too (checked in the database directly) */
	char n[16] = "", conv[16] = "";
	count_turns(path, n, conv);
	VX_CHECK_STR(n, "1");
	VX_CHECK_STR(conv, "keep");
}

VX_TEST(set_meta_replaces_the_meta_object)
{
	char path[256];
	history *h = open_fresh(path, sizeof(path));
	if (!h)
		return;
	history_create(h, "m", NULL, NULL, NULL);
	VX_CHECK_INT(history_set_meta(h, "m", "{\"telephony\":{\"call_sid\":\"CA1\"}}"), 0);
	VX_CHECK_INT(history_set_meta(h, "m", "[1]"), -EINVAL);
	VX_CHECK_INT(history_set_meta(h, "m", "{"), -EINVAL);
	VX_CHECK(history_set_meta(h, "m", "{not json}") < 0);
	VX_CHECK_INT(history_set_meta(h, "absent", "{}"), -ENOENT);
	VX_CHECK_INT(history_set_meta(h, "bad id", "{}"), -ENOENT);
	history_conversation c = {0};
	VX_CHECK_INT(history_load(h, "m", &c), 0);
	cJSON *j = cJSON_Parse(c.meta_json);
	const cJSON *tel = cJSON_GetObjectItemCaseSensitive(j, "telephony");
	const char *sid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(tel, "call_sid"));
	VX_CHECK(sid && !strcmp(sid, "CA1"));
	cJSON_Delete(j);
	history_conversation_release(&c);
	history_close(h);
}

VX_TEST(reopen_keeps_everything_and_sqlite_files_are_wal)
{
	char path[256];
	history *h = open_fresh(path, sizeof(path));
	if (!h)
		return;
	history_create(h, "p", "prompt", "v", NULL);
	for (int i = 0; i < 5; i++)
		history_append_turn(h, "p", i % 2 ? "assistant" : "user", "t", NULL, false, NULL);
	history_close(h);
	h = NULL;
	VX_CHECK_INT(history_open(path, &h), 0);
	history_conversation c = {0};
	VX_CHECK_INT(history_load(h, "p", &c), 0);
	VX_CHECK_INT(c.n_turns, 5);
	VX_CHECK_STR(c.system_prompt, "prompt");
	history_conversation_release(&c);
	VX_CHECK_INT(history_append_turn(h, "p", "user", "again", NULL, false, NULL), 5);
	history_close(h);
	if (pg_base)
		return; /* the rest is about SQLite files */

	sqlite3 *db;
	sqlite3_open(path, &db);
	sqlite3_stmt *st;
	sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL);
	VX_CHECK_INT(sqlite3_step(st), SQLITE_ROW);
	VX_CHECK_STR((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	sqlite3_close(db);

	VX_CHECK_INT(history_open("/nonexistent-dir/x/h.db", &h), -ENOENT);
	int fd = open(path, O_WRONLY | O_TRUNC);
	VX_CHECK(write(fd, "this is not a database, not at all, no....", 42) == 42);
	close(fd);
	char wal[270];
	snprintf(wal, sizeof(wal), "%s-wal", path);
	unlink(wal);
	VX_CHECK_INT(history_open(path, &h), -EBADMSG);
}

#define KILL_AFTER 40 /* committed turns the parent waits for before SIGKILL */

/* Child: appends turns forever, writing each idx to fd once it returned. */
static void kill9_child(const char *path, int fd)
{
	history *h;
	if (history_open(path, &h) < 0)
		_exit(2);
	if (history_create(h, "k9", NULL, NULL, NULL) < 0)
		_exit(3);
	for (int i = 0;; i++) {
		char text[64];
		snprintf(text, sizeof(text), "turn %d", i);
		int idx = history_append_turn(h, "k9", i % 2 ? "assistant" : "user",
					      text, NULL, false, "{\"n\":1}");
		if (idx != i)
			_exit(4);
		if (write(fd, &idx, sizeof(idx)) != (ssize_t)sizeof(idx))
			_exit(5);
	}
}

VX_TEST(every_committed_turn_survives_sigkill)
{
	char path[256];
	db_path(path, sizeof(path));
	for (int round = 0; round < 3; round++) {
		int fds[2];
		VX_CHECK_INT(pipe(fds), 0);
		pid_t pid = fork();
		if (pid == 0) {
			close(fds[0]);
			kill9_child(path, fds[1]);
		}
		close(fds[1]);
		int last = -1, idx, got = 0;
		while (got < KILL_AFTER + round * 17 &&
		       read(fds[0], &idx, sizeof(idx)) == (ssize_t)sizeof(idx)) {
			last = idx;
			got++;
		}
		kill(pid, SIGKILL); /* mid-append, most likely */
		while (read(fds[0], &idx, sizeof(idx)) == (ssize_t)sizeof(idx))
			last = idx; /* acknowledged before it died */
		close(fds[0]);
		int status;
		waitpid(pid, &status, 0);
		VX_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
		VX_CHECK(last >= KILL_AFTER - 1);

		history *h;
		VX_CHECK_INT(history_open(path, &h), 0);
		history_conversation c = {0};
		VX_CHECK_INT(history_load(h, "k9", &c), 0);
		VX_CHECK((long)c.n_turns >= last + 1);
		for (size_t i = 0; i < c.n_turns; i++) {
			char want[64];
			snprintf(want, sizeof(want), "turn %zu", i);
			VX_CHECK_INT(c.turns[i].idx, (long)i);
			VX_CHECK_STR(c.turns[i].content, want);
		}
		history_conversation_release(&c);
		VX_CHECK_INT(history_delete(h, "k9"), 0); /* next round starts again */
		history_close(h);
	}
}

#define THREADS 4
#define PER_THREAD 50

struct appender {
	history *h;
	const char *conv;
	int n;
	int errors;
};

static void *append_many(void *arg)
{
	struct appender *a = arg;
	for (int i = 0; i < PER_THREAD; i++) {
		char text[64];
		snprintf(text, sizeof(text), "thread %d turn %d", a->n, i);
		if (history_append_turn(a->h, a->conv, "user", text, NULL, false, NULL) < 0)
			a->errors++;
	}
	return NULL;
}

/* Every turn of conv is there once, idx dense, each thread's in its order. */
static void check_interleaved(history *h, const char *conv, int threads)
{
	history_conversation c = {0};
	VX_CHECK_INT(history_load(h, conv, &c), 0);
	VX_CHECK_INT(c.n_turns, threads * PER_THREAD);
	int next[THREADS * 2] = {0};
	for (size_t i = 0; i < c.n_turns; i++) {
		int t = -1, k = -1;
		VX_CHECK_INT(c.turns[i].idx, (long)i);
		VX_CHECK(sscanf(c.turns[i].content, "thread %d turn %d", &t, &k) == 2);
		if (t >= 0 && t < threads) {
			VX_CHECK_INT(k, next[t]);
			next[t] = k + 1;
		}
	}
	history_conversation_release(&c);
}

VX_TEST(concurrent_appends_from_four_threads)
{
	char path[256];
	history *h = open_fresh(path, sizeof(path));
	if (!h)
		return;
	history_create(h, "shared", NULL, NULL, NULL);
	pthread_t th[THREADS];
	struct appender a[THREADS];
	for (int i = 0; i < THREADS; i++) {
		a[i] = (struct appender){ .h = h, .conv = "shared", .n = i };
		pthread_create(&th[i], NULL, append_many, &a[i]);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		VX_CHECK_INT(a[i].errors, 0);
	}
	check_interleaved(h, "shared", THREADS);
	history_close(h);
}

VX_TEST(two_connections_to_one_file_wait_for_each_other)
{
	char path[256];
	history *h1 = open_fresh(path, sizeof(path)), *h2 = NULL;
	if (!h1)
		return;
	VX_CHECK_INT(history_open(path, &h2), 0);
	if (!h2) {
		history_close(h1);
		return;
	}
	history_create(h1, "two", NULL, NULL, NULL);
	VX_CHECK_INT(history_exists(h2, "two"), 1);
	pthread_t th[THREADS];
	struct appender a[THREADS];
	for (int i = 0; i < THREADS; i++) {
		a[i] = (struct appender){ .h = i % 2 ? h2 : h1, .conv = "two", .n = i };
		pthread_create(&th[i], NULL, append_many, &a[i]);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		VX_CHECK_INT(a[i].errors, 0);
	}
	check_interleaved(h2, "two", THREADS);
	history_close(h1);
	history_close(h2);
}

#define OPENERS 4

struct opener {
	const char *path;
	pthread_barrier_t *go;
	int r;
	history *h;
};

static void *open_at_once(void *arg)
{
	struct opener *o = arg;
	pthread_barrier_wait(o->go);
	o->r = history_open(o->path, &o->h);
	return NULL;
}

/* Orchestrators starting together on one new database all get the schema
 * (PostgreSQL: CREATE TABLE IF NOT EXISTS alone races; the advisory lock). */
VX_TEST(stores_opened_together_on_a_new_database_all_work)
{
	char path[256];
	db_path(path, sizeof(path));
	pthread_barrier_t go;
	pthread_barrier_init(&go, NULL, OPENERS);
	pthread_t th[OPENERS];
	struct opener o[OPENERS];
	for (int i = 0; i < OPENERS; i++) {
		o[i] = (struct opener){ .path = path, .go = &go };
		pthread_create(&th[i], NULL, open_at_once, &o[i]);
	}
	for (int i = 0; i < OPENERS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&go);
	for (int i = 0; i < OPENERS; i++) {
		char id[16];
		snprintf(id, sizeof(id), "o%d", i);
		VX_CHECK_INT(o[i].r, 0);
		if (o[i].r < 0)
			continue;
		VX_CHECK_INT(history_create(o[i].h, id, NULL, NULL, NULL), 0);
		VX_CHECK_INT(history_append_turn(o[i].h, id, "user", "x", NULL, false, NULL), 0);
	}
	for (int i = 0; i < OPENERS; i++)
		if (o[i].r == 0) {
			VX_CHECK_INT(history_exists(o[i].h, "o0"), o[0].r == 0);
			history_close(o[i].h);
		}
}

#define CROWD (HISTORY_PG_CONNS * 2 + 1)

struct crowd_member {
	history *h;
	int n, errors;
};

static void *crowd_member_run(void *arg)
{
	struct crowd_member *m = arg;
	char id[16];
	snprintf(id, sizeof(id), "m%d", m->n);
	if (history_create(m->h, id, NULL, NULL, NULL) < 0)
		m->errors++;
	for (int i = 0; i < 10; i++) {
		vx_buf b = {0};
		if (history_append_turn(m->h, id, "user", "hello", NULL, false, NULL) != i ||
		    history_list(m->h, 5, 0, &b) < 1)
			m->errors++;
		vx_buf_release(&b);
	}
	return NULL;
}

/* More callers than pooled connections: each waits its turn, none fails. */
VX_TEST(more_threads_than_connections_all_get_served)
{
	char path[256];
	history *h = open_fresh(path, sizeof(path));
	if (!h)
		return;
	pthread_t th[CROWD];
	struct crowd_member m[CROWD];
	for (int i = 0; i < CROWD; i++) {
		m[i] = (struct crowd_member){ .h = h, .n = i };
		pthread_create(&th[i], NULL, crowd_member_run, &m[i]);
	}
	for (int i = 0; i < CROWD; i++) {
		pthread_join(th[i], NULL);
		VX_CHECK_INT(m[i].errors, 0);
	}
	vx_buf b = {0};
	VX_CHECK_INT(history_list(h, 0, 0, &b), CROWD);
	vx_buf_release(&b);
	history_close(h);
}

VX_TEST(redact_hides_passwords_in_urls_only)
{
	char out[128];
	history_redact("postgresql://vx:s3cr%40t@db.lan:5432/voxline", out, sizeof(out));
	VX_CHECK_STR(out, "postgresql://vx:***@db.lan:5432/voxline");
	history_redact("postgres://vx:p@ss@db/x?sslmode=require&password=abc&a=b", out, sizeof(out));
	VX_CHECK_STR(out, "postgres://vx:***@db/x?sslmode=require&password=***&a=b");
	history_redact("postgresql://vx@db/x?password=", out, sizeof(out));
	VX_CHECK_STR(out, "postgresql://vx@db/x?password=***");
	history_redact("postgresql://db/x", out, sizeof(out));
	VX_CHECK_STR(out, "postgresql://db/x");
	history_redact("/var/lib/voxline/a:b@c.db", out, sizeof(out));
	VX_CHECK_STR(out, "/var/lib/voxline/a:b@c.db");
	char small[20];
	history_redact("postgresql://u:a@h/db", small, sizeof(small));
	VX_CHECK_STR(small, "postgresql://u:***@");
	history_redact("postgresql://u:averylongpassword@h/db", small, sizeof(small));
	VX_CHECK_STR(small, "postgresql://u:***@");
}

/* ---- PostgreSQL only ---- */

/* Ends every other session on path's database (as a server restart does
 * to the store's connections). */
static void kill_sessions(const char *path)
{
	const char *p[] = { db_name(path) };
	VX_CHECK_INT(pg_do(pg_admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
			   " WHERE datname = $1 AND pid <> pg_backend_pid()", 1, p), 0);
	usleep(100 * 1000); /* the backends exit */
}

VX_TEST(pg_a_killed_connection_is_reset_and_nothing_is_stored_twice)
{
	char path[256];
	history *h = open_fresh(path, sizeof(path));
	if (!h)
		return;
	VX_CHECK_INT(history_create(h, "r", NULL, NULL, NULL), 0);
	kill_sessions(path);
	VX_CHECK_INT(history_exists(h, "r"), 1);
	kill_sessions(path);
	VX_CHECK_INT(history_append_turn(h, "r", "user", "once", NULL, false, NULL), 0);
	kill_sessions(path);
	VX_CHECK_INT(history_append_turn(h, "r", "assistant", "twice?", NULL, false, NULL), 1);
	kill_sessions(path);
	vx_buf b = {0};
	VX_CHECK_INT(history_list(h, 0, 0, &b), 1);
	vx_buf_release(&b);
	kill_sessions(path);
	history_conversation c = {0};
	VX_CHECK_INT(history_load(h, "r", &c), 0);
	VX_CHECK_INT(c.n_turns, 2);
	history_conversation_release(&c);
	kill_sessions(path);
	VX_CHECK_INT(history_create(h, "r", NULL, NULL, NULL), -EEXIST);
	kill_sessions(path);
	VX_CHECK_INT(history_delete(h, "r"), 0);
	VX_CHECK_INT(history_exists(h, "r"), 0);
	history_close(h);
}

VX_TEST(pg_statement_timeout_from_the_url_ends_a_blocked_append)
{
	char path[256], url[320];
	history *h = open_fresh(path, sizeof(path));
	if (!h)
		return;
	VX_CHECK_INT(history_create(h, "locked", NULL, NULL, NULL), 0);
	history_close(h);
	h = NULL;
	/* the URL's options replace the store's default statement_timeout */
	snprintf(url, sizeof(url), "%s?options=-c%%20statement_timeout%%3D300", path);
	VX_CHECK_INT(history_open(url, &h), 0);
	PGconn *holder = PQconnectdb(path);
	const char *p[] = { "locked" };
	VX_CHECK_INT(pg_do(holder, "BEGIN", 0, NULL), 0);
	VX_CHECK_INT(pg_do(holder, "UPDATE conversations SET updated_at = 0 WHERE id = $1",
			   1, p), 0);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	VX_CHECK_INT(history_append_turn(h, "locked", "user", "x", NULL, false, NULL),
		     -ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	VX_CHECK(s >= 0.25 && s < 5.0);
	pg_do(holder, "ROLLBACK", 0, NULL);
	PQfinish(holder);
	/* and the store goes on */
	VX_CHECK_INT(history_append_turn(h, "locked", "user", "x", NULL, false, NULL), 0);
	history_close(h);
}

VX_TEST(pg_both_url_schemes_choose_postgresql)
{
	char path[256], url[300];
	history *h = open_fresh(path, sizeof(path));
	if (!h)
		return;
	VX_CHECK_STR(history_backend_name(h), "postgresql");
	VX_CHECK_INT(history_create(h, "scheme", NULL, NULL, NULL), 0);
	history_close(h);
	h = NULL;
	/* postgres:// is libpq's other spelling: the same database */
	snprintf(url, sizeof(url), "postgres://%s", path + strlen("postgresql://"));
	VX_CHECK_INT(history_open(url, &h), 0);
	if (!h)
		return;
	VX_CHECK_STR(history_backend_name(h), "postgresql");
	VX_CHECK_INT(history_exists(h, "scheme"), 1);
	history_close(h);
}

VX_TEST(pg_a_failed_open_says_why)
{
	char url[320], why[256];
	history *h = NULL;
	const char *at = strrchr(pg_base, '@'), *colon = strchr(pg_base + 13, ':');
	/* the right server, a wrong password */
	snprintf(url, sizeof(url), "%.*s:wrong%s/postgres", (int)(colon - pg_base), pg_base, at);
	VX_CHECK_INT(history_open_why(url, why, sizeof(why), &h), -ENOTCONN);
	VX_CHECK(strstr(why, "password authentication failed") != NULL);
	/* a database that does not exist */
	snprintf(url, sizeof(url), "%s/no_such_db", pg_base);
	VX_CHECK_INT(history_open_why(url, why, sizeof(why), &h), -ENOTCONN);
	VX_CHECK(strstr(why, "no_such_db") != NULL);
	/* nothing listening (port 1), within connect_timeout */
	VX_CHECK_INT(history_open_why("postgresql://u@127.0.0.1:1/x", why, sizeof(why), &h),
		     -ENOTCONN);
	VX_CHECK(strstr(why, "127.0.0.1") != NULL);
	VX_CHECK(h == NULL);
}

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_orch_history.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		exit(1);
	}
	pg_base = getenv("VOXLINE_TEST_PG");
	if (pg_base && !*pg_base)
		pg_base = NULL;
	if (!pg_base)
		return;
	char url[256];
	snprintf(url, sizeof(url), "%s/postgres", pg_base);
	pg_admin = PQconnectdb(url);
	if (PQstatus(pg_admin) != CONNECTION_OK) {
		fprintf(stderr, "VOXLINE_TEST_PG: cannot connect: %s", PQerrorMessage(pg_admin));
		exit(1);
	}
	printf("backend: postgresql\n");
}

static void cleanup(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	for (int i = 0; pg_admin && i < db_seq; i++) {
		snprintf(cmd, sizeof(cmd), "DROP DATABASE IF EXISTS vxh_%d_%d WITH (FORCE)",
			 (int)getpid(), i);
		pg_do(pg_admin, cmd, 0, NULL);
	}
	PQfinish(pg_admin);
}

#define BOTH_CASES                                                           \
	create_generates_uuid_and_load_round_trips,                          \
	create_with_given_id_refuses_taken_and_invalid_ids,                  \
	append_turns_in_order_with_all_fields,                               \
	get_json_is_valid_json_with_every_field,                             \
	list_is_most_recent_first_with_paging,                               \
	delete_removes_conversation_and_turns,                               \
	set_meta_replaces_the_meta_object,                                   \
	reopen_keeps_everything_and_sqlite_files_are_wal,                    \
	every_committed_turn_survives_sigkill,                               \
	concurrent_appends_from_four_threads,                                \
	two_connections_to_one_file_wait_for_each_other,                     \
	stores_opened_together_on_a_new_database_all_work,                   \
	more_threads_than_connections_all_get_served,                        \
	redact_hides_passwords_in_urls_only
#define PG_CASES                                                             \
	pg_a_killed_connection_is_reset_and_nothing_is_stored_twice,         \
	pg_statement_timeout_from_the_url_ends_a_blocked_append,             \
	pg_both_url_schemes_choose_postgresql,                               \
	pg_a_failed_open_says_why
#define STR_(...) #__VA_ARGS__
#define STR(...) STR_(__VA_ARGS__)

int main(void)
{
	vx_test_fn both[] = { BOTH_CASES }, pg[] = { PG_CASES };
	vx_test_fn fns[sizeof(both) / sizeof(both[0]) + sizeof(pg) / sizeof(pg[0])];
	int n = 0;
	setup();
	for (size_t i = 0; i < sizeof(both) / sizeof(both[0]); i++)
		fns[n++] = both[i];
	for (size_t i = 0; pg_base && i < sizeof(pg) / sizeof(pg[0]); i++)
		fns[n++] = pg[i];
	int r = vx_test_run(pg_base ? STR(BOTH_CASES, PG_CASES) : STR(BOTH_CASES), fns, n);
	cleanup();
	return r;
}
