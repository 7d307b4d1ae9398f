/*
 * Unit tests for services/orchestrator/history.c on real SQLite files in a
 * temporary directory: round trips, JSON output (parsed back with cJSON),
 * errors, durability across SIGKILL of a writer process, and concurrent
 * appends from threads and from two connections.
 */
#include "history.h"
#include "vx_test.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

static char tmpdir[64];
static int db_seq;

/* A fresh database path under tmpdir. */
static void db_path(char *out, size_t cap)
{
	snprintf(out, cap, "%s/h%d.db", tmpdir, db_seq++);
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
	char path[128], id[HISTORY_ID_MAX + 1] = "";
	history *h = open_fresh(path, sizeof(path));
	if (!h)
		return;
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
	char path[128], id[HISTORY_ID_MAX + 1] = "";
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
	char path[128], id[HISTORY_ID_MAX + 1];
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
	char path[128];
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
	char path[128];
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

VX_TEST(delete_removes_conversation_and_turns)
{
	char path[128];
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
	/* the turns went too (checked with SQLite directly) */
	sqlite3 *db;
	VX_CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_stmt *st;
	sqlite3_prepare_v2(db, "SELECT COUNT(*), MIN(conversation_id) FROM turns", -1, &st, NULL);
	VX_CHECK_INT(sqlite3_step(st), SQLITE_ROW);
	VX_CHECK_INT(sqlite3_column_int(st, 0), 1);
	VX_CHECK_STR((const char *)sqlite3_column_text(st, 1), "keep");
	sqlite3_finalize(st);
	sqlite3_close(db);
}

VX_TEST(reopen_keeps_everything_in_wal_mode)
{
	char path[128];
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
	char wal[160];
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
	char path[128];
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
	char path[128];
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
	char path[128];
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

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_orch_history.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		exit(1);
	}
}

static void cleanup(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
}

static int run_all(void);

int main(void)
{
	setup();
	int r = run_all();
	cleanup();
	return r;
}

#define main run_all
VX_TEST_MAIN(create_generates_uuid_and_load_round_trips,
	     create_with_given_id_refuses_taken_and_invalid_ids,
	     append_turns_in_order_with_all_fields, get_json_is_valid_json_with_every_field,
	     list_is_most_recent_first_with_paging, delete_removes_conversation_and_turns,
	     reopen_keeps_everything_in_wal_mode, every_committed_turn_survives_sigkill,
	     concurrent_appends_from_four_threads,
	     two_connections_to_one_file_wait_for_each_other)
