/*
 * Unit tests for the remote LLM engines ("openai", "ollama") against the
 * test upstream tests/llm_upstream.py, which this test starts on a free
 * loopback port (and stops at exit). Run from the repository root, or set
 * VOXLINE_LLM_UPSTREAM to the script's path.
 */
#include "../../services/llm/llm_engine.h"
#include "../../services/llm/llm_http.h"
#include "../../services/llm/think.h"
#include "vx_buf.h"
#include "vx_test.h"
#include "vx_testproc.h"

#include <cJSON.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern const llm_engine_ops llm_engine_openai;
extern const llm_engine_ops llm_engine_ollama;

#define CANCEL_CLOSE_MAX_S 0.100   /* upstream must see the close by then */

static vx_testproc upstream_proc;
static char upstream_url[64];

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void upstream_stop(void)
{
	vx_testproc_stop(&upstream_proc);
}

/* Starts tests/llm_upstream.py once; returns its base URL. */
static const char *upstream(void)
{
	if (upstream_proc.pid > 0)
		return upstream_url;
	const char *script = getenv("VOXLINE_LLM_UPSTREAM");
	const char *py = getenv("PYTHON");
	char *argv[] = { (char *)(py ? py : "/usr/bin/python3"),
			 (char *)(script ? script : "tests/llm_upstream.py"),
			 "--port", "0", NULL };
	if (vx_testproc_start(&upstream_proc, argv) < 0)
		return NULL;
	atexit(upstream_stop);
	snprintf(upstream_url, sizeof(upstream_url), "http://127.0.0.1:%d",
		 upstream_proc.port);
	return upstream_url;
}

/* ---- collecting pieces ---- */

typedef struct collect {
	vx_buf content, reasoning;
	int pieces;
	int bad_utf8;            /* pieces that were not whole UTF-8 */
	int cancel_after;        /* set *cancel after this many pieces (0 = never) */
	int stop_after;          /* return 1 after this many pieces (0 = never) */
	atomic_bool *cancel;
	double cancel_at;        /* when *cancel was set */
	think_splitter *think;   /* when set, pieces go through it first */
} collect;

static bool whole_utf8(const char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)s[i];
		size_t k = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 :
			   c >= 0xC0 ? 2 : 0;
		if (!k || i + k > n)
			return false;
		for (size_t j = 1; j < k; j++)
			if (((unsigned char)s[i + j] & 0xC0) != 0x80)
				return false;
		i += k;
	}
	return true;
}

static int collect_sink(void *user, llm_piece_kind kind, const char *text,
			size_t len)
{
	collect *c = user;
	vx_buf_append(kind == LLM_REASONING ? &c->reasoning : &c->content,
		      text, len);
	return 0;
}

static int collect_cb(void *user, llm_piece_kind kind, const char *text,
		      size_t len)
{
	collect *c = user;
	c->pieces++;
	if (!len || !whole_utf8(text, len))
		c->bad_utf8++;
	if (c->cancel_after && c->pieces == c->cancel_after) {
		c->cancel_at = now_s();
		atomic_store(c->cancel, true);
	}
	if (c->stop_after && c->pieces >= c->stop_after)
		return 1;
	if (c->think)
		return think_feed(c->think, kind, text, len);
	return collect_sink(c, kind, text, len);
}

static void collect_release(collect *c)
{
	vx_buf_release(&c->content);
	vx_buf_release(&c->reasoning);
}

static const char *str(const vx_buf *b)
{
	return b->data ? b->data : "";
}

/* ---- running an engine ---- */

typedef struct run {
	llm_config cfg;
	llm_request req;
	llm_message msg[2];
	llm_result res;
	collect col;
	atomic_bool cancel;
	int rc;
	double elapsed;          /* seconds in generate() */
	double returned_at;
} run;

static void run_init(run *r, const char *model, const char *user_text)
{
	memset(r, 0, sizeof(*r));
	r->cfg.url = upstream();
	r->cfg.model = model;
	r->cfg.connect_timeout_ms = 1000;
	r->cfg.first_token_timeout_ms = 5000;
	r->msg[0] = (llm_message){ "system", "Be brief." };
	r->msg[1] = (llm_message){ "user", user_text };
	r->req.messages = r->msg;
	r->req.n_messages = 2;
	r->req.temperature = 0.5;
	r->req.top_p = 1;
	r->req.repeat_penalty = 1;
	r->req.max_tokens = 256;
	r->req.timeout_ms = 20000;
	r->col.cancel = &r->cancel;
}

static int run_go(run *r, const llm_engine_ops *ops)
{
	void *eng = NULL;
	if (!r->cfg.url)
		return r->rc = -ENOEXEC;
	r->rc = ops->create(&r->cfg, &eng);
	if (r->rc)
		return r->rc;
	double t0 = now_s();
	r->rc = ops->generate(eng, &r->req, &r->cancel, collect_cb, &r->col,
			      &r->res);
	r->returned_at = now_s();
	r->elapsed = r->returned_at - t0;
	ops->destroy(eng);
	return r->rc;
}

/* ---- the upstream's debug record ---- */

static int http_collect(void *user, const char *data, size_t len)
{
	return vx_buf_append(user, data, len);
}

/* The upstream's record of the request with this id (caller deletes). */
static cJSON *upstream_record(const char *request_id)
{
	char url[128], err[256];
	snprintf(url, sizeof(url), "%s/debug/requests", upstream_url);
	vx_buf b = {0};
	llm_http_req hr = { .url = url, .deadline_ms = 2000 };
	cJSON *found = NULL;
	if (llm_http_run(&hr, http_collect, &b, err, sizeof(err)) == 0) {
		cJSON *all = cJSON_Parse(str(&b)), *it;
		cJSON_ArrayForEach(it, all) {
			const cJSON *id = cJSON_GetObjectItem(it, "request_id");
			if (cJSON_IsString(id) && strcmp(id->valuestring, request_id) == 0) {
				cJSON_Delete(found);
				found = cJSON_Duplicate(it, 1);
			}
		}
		cJSON_Delete(all);
	}
	vx_buf_release(&b);
	return found;
}

/* Waits up to 1 s for the upstream to record that the client closed the
 * request early; returns its time (CLOCK_MONOTONIC seconds) or -1. */
static double upstream_closed_at(const char *request_id)
{
	for (int i = 0; i < 100; i++) {
		cJSON *rec = upstream_record(request_id);
		const cJSON *at = cJSON_GetObjectItem(rec, "closed_at");
		double t = cJSON_IsNumber(at) ? at->valuedouble : -1;
		cJSON_Delete(rec);
		if (t > 0)
			return t;
		usleep(10000);
	}
	return -1;
}

static const cJSON *jpath(const cJSON *j, const char *a, const char *b)
{
	const cJSON *x = cJSON_GetObjectItem(j, a);
	return b ? cJSON_GetObjectItem(x, b) : x;
}

/* ---- tests ---- */

VX_TEST(upstream_starts)
{
	VX_CHECK(upstream() != NULL);
}

VX_TEST(openai_streams_the_reply_with_usage_and_sends_the_request_right)
{
	run r;
	run_init(&r, "echo", "hello world");
	const char *stops[] = { "never-matches" };
	r.cfg.api_key = "sk-abc";
	r.req.request_id = "req-openai-1";
	r.req.has_seed = true;
	r.req.seed = 42;
	r.req.top_k = 40;
	r.req.stop = stops;
	r.req.n_stop = 1;
	VX_CHECK_INT(run_go(&r, &llm_engine_openai), 0);
	VX_CHECK_STR(str(&r.col.content), "You said: hello world.");
	VX_CHECK_STR(str(&r.col.reasoning), "");
	VX_CHECK_INT(r.col.pieces, 4);
	VX_CHECK_STR(r.res.finish_reason, "stop");
	VX_CHECK_STR(r.res.model, "echo");
	VX_CHECK_INT(r.res.prompt_tokens, 4);
	VX_CHECK_INT(r.res.completion_tokens, 4);

	cJSON *rec = upstream_record("req-openai-1");
	VX_CHECK(rec != NULL);
	VX_CHECK_STR(cJSON_GetStringValue(jpath(rec, "authorization", NULL)),
		     "Bearer sk-abc");
	VX_CHECK_STR(cJSON_GetStringValue(jpath(rec, "path", NULL)),
		     "/v1/chat/completions");
	const cJSON *body = jpath(rec, "body", NULL);
	VX_CHECK(cJSON_IsTrue(jpath(body, "stream", NULL)));
	VX_CHECK(cJSON_IsTrue(jpath(body, "stream_options", "include_usage")));
	VX_CHECK_INT(cJSON_GetNumberValue(jpath(body, "max_tokens", NULL)), 256);
	VX_CHECK_INT(cJSON_GetNumberValue(jpath(body, "seed", NULL)), 42);
	VX_CHECK_INT(cJSON_GetNumberValue(jpath(body, "top_k", NULL)), 40);
	VX_CHECK(jpath(body, "top_p", NULL) == NULL);          /* 1 = off: not sent */
	VX_CHECK(jpath(body, "repeat_penalty", NULL) == NULL);
	VX_CHECK(cJSON_GetNumberValue(jpath(body, "temperature", NULL)) == 0.5);
	VX_CHECK_INT(cJSON_GetArraySize(jpath(body, "messages", NULL)), 2);
	VX_CHECK_STR(cJSON_GetStringValue(cJSON_GetArrayItem(jpath(body, "stop", NULL), 0)),
		     "never-matches");
	cJSON_Delete(rec);
	collect_release(&r.col);
}

VX_TEST(ollama_streams_the_reply_with_counts_and_sends_options)
{
	run r;
	run_init(&r, "echo", "hello world");
	r.req.request_id = "req-ollama-1";
	r.req.has_seed = true;
	r.req.seed = 7;
	r.req.min_p = 0.05;
	r.req.think = -1;
	VX_CHECK_INT(run_go(&r, &llm_engine_ollama), 0);
	VX_CHECK_STR(str(&r.col.content), "You said: hello world.");
	VX_CHECK_STR(r.res.finish_reason, "stop");
	VX_CHECK_INT(r.res.prompt_tokens, 4);
	VX_CHECK_INT(r.res.completion_tokens, 4);
	cJSON *rec = upstream_record("req-ollama-1");
	const cJSON *body = jpath(rec, "body", NULL);
	VX_CHECK_STR(cJSON_GetStringValue(jpath(rec, "path", NULL)), "/api/chat");
	VX_CHECK(cJSON_IsTrue(jpath(body, "stream", NULL)));
	VX_CHECK(cJSON_IsFalse(jpath(body, "think", NULL)));
	VX_CHECK_INT(cJSON_GetNumberValue(jpath(body, "options", "num_predict")), 256);
	VX_CHECK_INT(cJSON_GetNumberValue(jpath(body, "options", "seed")), 7);
	VX_CHECK(cJSON_GetNumberValue(jpath(body, "options", "min_p")) == 0.05);
	VX_CHECK(jpath(rec, "authorization", NULL) == NULL ||
		 cJSON_IsNull(jpath(rec, "authorization", NULL)));
	cJSON_Delete(rec);
	collect_release(&r.col);
}

VX_TEST(max_tokens_and_stop_reach_the_upstream)
{
	const llm_engine_ops *ops[] = { &llm_engine_openai, &llm_engine_ollama };
	for (int i = 0; i < 2; i++) {
		run r;
		run_init(&r, "echo", "one two three four five");
		r.req.max_tokens = 3;
		VX_CHECK_INT(run_go(&r, ops[i]), 0);
		VX_CHECK_STR(str(&r.col.content), "You said: one");
		VX_CHECK_STR(r.res.finish_reason, "length");
		collect_release(&r.col);

		const char *stops[] = { " three" };
		run_init(&r, "echo", "one two three four five");
		r.req.stop = stops;
		r.req.n_stop = 1;
		VX_CHECK_INT(run_go(&r, ops[i]), 0);
		VX_CHECK_STR(str(&r.col.content), "You said: one two");
		VX_CHECK_STR(r.res.finish_reason, "stop");
		collect_release(&r.col);
	}
}

VX_TEST(reasoning_fields_come_out_as_reasoning)
{
	const char *models[] = { "reasoner", "reasoner+reasoning_field" };
	for (int i = 0; i < 2; i++) {
		run r;
		run_init(&r, models[i], "why");
		VX_CHECK_INT(run_go(&r, &llm_engine_openai), 0);
		VX_CHECK_STR(str(&r.col.reasoning), "Let me think about it.");
		VX_CHECK_STR(str(&r.col.content), "You said: why.");
		collect_release(&r.col);
	}
	run r;
	run_init(&r, "reasoner", "why");
	r.req.think = 1;
	VX_CHECK_INT(run_go(&r, &llm_engine_ollama), 0);
	VX_CHECK_STR(str(&r.col.reasoning), "Let me think about it.");
	VX_CHECK_STR(str(&r.col.content), "You said: why.");
	VX_CHECK_INT(r.res.completion_tokens, 8);
	collect_release(&r.col);
}

VX_TEST(think_tags_split_across_tokens_separate_via_think_splitter)
{
	const llm_engine_ops *ops[] = { &llm_engine_openai, &llm_engine_ollama };
	for (int i = 0; i < 2; i++) {
		run r;
		think_splitter t;
		run_init(&r, "thinktags", "2+2?");
		think_init(&t, false, collect_sink, &r.col);
		r.col.think = &t;
		VX_CHECK_INT(run_go(&r, ops[i]), 0);
		VX_CHECK_INT(think_finish(&t), 0);
		VX_CHECK_STR(str(&r.col.reasoning), "Hmm, thinking.\n");
		VX_CHECK_STR(str(&r.col.content), "You said: 2+2?.");
		collect_release(&r.col);
	}
}

VX_TEST(multibyte_characters_cut_by_the_transport_arrive_whole)
{
	const llm_engine_ops *ops[] = { &llm_engine_openai, &llm_engine_ollama };
	for (int i = 0; i < 2; i++) {
		run r;
		run_init(&r, "splitutf8", "caf\xC3\xA9");
		VX_CHECK_INT(run_go(&r, ops[i]), 0);
		VX_CHECK_STR(str(&r.col.content),
			     "Gr\xC3\xBC\xC3\x9F" "e, \xE4\xB8\x96\xE7\x95\x8C! "
			     "\xF0\x9F\x8E\x89 You said: caf\xC3\xA9.");
		VX_CHECK_INT(r.col.bad_utf8, 0);
		collect_release(&r.col);
	}
}

VX_TEST(openai_half_characters_in_deltas_are_held_back)
{
	run r;
	run_init(&r, "rawsplit", "x");
	VX_CHECK_INT(run_go(&r, &llm_engine_openai), 0);
	VX_CHECK_STR(str(&r.col.content),
		     "Gr\xC3\xBC\xC3\x9F" "e, \xE4\xB8\x96\xE7\x95\x8C! "
		     "\xF0\x9F\x8E\x89 You said: x.");
	VX_CHECK_INT(r.col.bad_utf8, 0);
	collect_release(&r.col);
}

VX_TEST(openai_keepalive_comments_and_crlf_are_understood)
{
	run r;
	run_init(&r, "keepalive+crlf", "ping me");
	VX_CHECK_INT(run_go(&r, &llm_engine_openai), 0);
	VX_CHECK_STR(str(&r.col.content), "You said: ping me.");
	VX_CHECK_STR(r.res.finish_reason, "stop");
	VX_CHECK_INT(r.res.completion_tokens, 4);
	collect_release(&r.col);
}

VX_TEST(openai_stream_without_done_ends_with_last_finish_reason)
{
	run r;
	run_init(&r, "nodone", "bye");
	VX_CHECK_INT(run_go(&r, &llm_engine_openai), 0);
	VX_CHECK_STR(str(&r.col.content), "You said: bye.");
	VX_CHECK_STR(r.res.finish_reason, "length");
	VX_CHECK_INT(r.res.completion_tokens, -1);
	collect_release(&r.col);
}

VX_TEST(http_500_is_eproto_with_the_upstream_message)
{
	run r;
	run_init(&r, "error500", "x");
	VX_CHECK_INT(run_go(&r, &llm_engine_openai), -EPROTO);
	VX_CHECK(strstr(r.res.error, "HTTP 500") != NULL);
	VX_CHECK(strstr(r.res.error, "Sorry about that!") != NULL);
	VX_CHECK_INT(r.col.pieces, 0);
	collect_release(&r.col);
	run_init(&r, "error500", "x");
	VX_CHECK_INT(run_go(&r, &llm_engine_ollama), -EPROTO);
	VX_CHECK(strstr(r.res.error, "llama runner process has terminated") != NULL);
	collect_release(&r.col);
}

VX_TEST(error_in_the_middle_of_a_stream_is_eproto)
{
	const llm_engine_ops *ops[] = { &llm_engine_openai, &llm_engine_ollama };
	for (int i = 0; i < 2; i++) {
		run r;
		run_init(&r, "midstreamerror", "a b c");
		VX_CHECK_INT(run_go(&r, ops[i]), -EPROTO);
		VX_CHECK_STR(str(&r.col.content), "You said:");
		VX_CHECK(strstr(r.res.error, "upstream error in stream") != NULL);
		collect_release(&r.col);
	}
}

VX_TEST(unknown_model_is_enoent_and_bad_request_einval)
{
	const llm_engine_ops *ops[] = { &llm_engine_openai, &llm_engine_ollama };
	for (int i = 0; i < 2; i++) {
		run r;
		run_init(&r, "missing", "x");
		VX_CHECK_INT(run_go(&r, ops[i]), -ENOENT);
		VX_CHECK(strstr(r.res.error, "missing") != NULL);
		collect_release(&r.col);
	}
	run r;
	run_init(&r, "echo", "x");
	r.req.n_messages = 0;
	VX_CHECK_INT(run_go(&r, &llm_engine_openai), -EINVAL);
	VX_CHECK(strstr(r.res.error, "too short") != NULL);
	collect_release(&r.col);
}

VX_TEST(bearer_key_is_sent_and_a_wrong_one_refused)
{
	run r;
	run_init(&r, "needkey", "k");
	VX_CHECK_INT(run_go(&r, &llm_engine_openai), -EPROTO);
	VX_CHECK(strstr(r.res.error, "HTTP 401") != NULL);
	collect_release(&r.col);
	run_init(&r, "needkey", "k");
	r.cfg.api_key = "sk-test";
	VX_CHECK_INT(run_go(&r, &llm_engine_openai), 0);
	VX_CHECK_STR(str(&r.col.content), "You said: k.");
	collect_release(&r.col);
}

VX_TEST(stall_times_out_at_the_first_token_timeout)
{
	const llm_engine_ops *ops[] = { &llm_engine_openai, &llm_engine_ollama };
	for (int i = 0; i < 2; i++) {
		run r;
		char id[32];
		snprintf(id, sizeof(id), "req-stall-%d", i);
		run_init(&r, "stall", "x");
		r.cfg.first_token_timeout_ms = 300;
		r.req.request_id = id;
		VX_CHECK_INT(run_go(&r, ops[i]), -ETIMEDOUT);
		VX_CHECK(r.elapsed >= 0.29 && r.elapsed < 0.6);
		VX_CHECK(strstr(r.res.error, "300 ms") != NULL);
		double closed = upstream_closed_at(id);
		VX_CHECK(closed > 0 && closed - r.returned_at < CANCEL_CLOSE_MAX_S);
		collect_release(&r.col);
	}
}

VX_TEST(whole_deadline_times_out_a_slow_stream)
{
	run r;
	run_init(&r, "slow", "x");
	r.req.timeout_ms = 300;
	VX_CHECK_INT(run_go(&r, &llm_engine_openai), -ETIMEDOUT);
	VX_CHECK(r.elapsed >= 0.29 && r.elapsed < 0.6);
	VX_CHECK(r.col.pieces >= 2 && r.col.pieces <= 7);
	collect_release(&r.col);
}

/* A loopback port nobody listens on. */
static int dead_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	bind(s, (struct sockaddr *)&a, sizeof(a));
	getsockname(s, (struct sockaddr *)&a, &len);
	close(s);
	return ntohs(a.sin_port);
}

VX_TEST(upstream_down_is_econnrefused)
{
	const llm_engine_ops *ops[] = { &llm_engine_openai, &llm_engine_ollama };
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", dead_port());
	for (int i = 0; i < 2; i++) {
		run r;
		run_init(&r, "echo", "x");
		r.cfg.url = url;
		VX_CHECK_INT(run_go(&r, ops[i]), -ECONNREFUSED);
		VX_CHECK(r.res.error[0] != '\0');
		VX_CHECK(r.elapsed < 1.0);
		collect_release(&r.col);
	}
}

VX_TEST(cancel_mid_stream_closes_the_upstream_within_100ms)
{
	const llm_engine_ops *ops[] = { &llm_engine_openai, &llm_engine_ollama };
	for (int i = 0; i < 2; i++) {
		run r;
		char id[32];
		snprintf(id, sizeof(id), "req-cancel-%d", i);
		run_init(&r, "slow", "x");
		r.req.request_id = id;
		r.col.cancel_after = 3;
		VX_CHECK_INT(run_go(&r, ops[i]), -ECANCELED);
		VX_CHECK_STR(r.res.finish_reason, "cancelled");
		VX_CHECK_INT(r.col.pieces, 3);
		VX_CHECK(r.returned_at - r.col.cancel_at < 0.05);
		double closed = upstream_closed_at(id);
		VX_CHECK(closed > 0);
		VX_CHECK(closed - r.col.cancel_at < CANCEL_CLOSE_MAX_S);
		fprintf(stderr, "  %s: cancel -> return %.2f ms, cancel -> upstream sees close %.2f ms\n",
			ops[i]->name, (r.returned_at - r.col.cancel_at) * 1e3,
			(closed - r.col.cancel_at) * 1e3);
		collect_release(&r.col);
	}
}

static void *cancel_later(void *arg)
{
	run *r = arg;
	usleep(200000);
	r->col.cancel_at = now_s();
	atomic_store(&r->cancel, true);
	return NULL;
}

VX_TEST(cancel_while_stalled_before_any_token)
{
	run r;
	pthread_t th;
	run_init(&r, "stall", "x");
	r.req.request_id = "req-cancel-stall";
	pthread_create(&th, NULL, cancel_later, &r);
	VX_CHECK_INT(run_go(&r, &llm_engine_openai), -ECANCELED);
	pthread_join(th, NULL);
	VX_CHECK(r.returned_at - r.col.cancel_at < 0.05);
	double closed = upstream_closed_at("req-cancel-stall");
	VX_CHECK(closed > 0 && closed - r.col.cancel_at < CANCEL_CLOSE_MAX_S);
	collect_release(&r.col);
}

VX_TEST(callback_stop_is_ecanceled)
{
	const llm_engine_ops *ops[] = { &llm_engine_openai, &llm_engine_ollama };
	for (int i = 0; i < 2; i++) {
		run r;
		run_init(&r, "slow", "x");
		r.col.stop_after = 2;
		VX_CHECK_INT(run_go(&r, ops[i]), -ECANCELED);
		VX_CHECK_STR(r.res.finish_reason, "cancelled");
		VX_CHECK(r.elapsed < 0.5);
		collect_release(&r.col);
	}
}

VX_TEST(models_are_listed_and_ready_follows_the_upstream)
{
	llm_config cfg = { .url = upstream(), .model = "echo" };
	llm_model_info m[8];
	void *eng;
	char detail[256];
	VX_CHECK_INT(llm_engine_openai.create(&cfg, &eng), 0);
	VX_CHECK_INT(llm_engine_openai.models(eng, m, 8), 5);
	VX_CHECK_STR(m[0].id, "echo");
	VX_CHECK_STR(m[0].owned_by, "voxline-test");
	VX_CHECK_INT(llm_engine_openai.models(eng, m, 2), 2);
	VX_CHECK_INT(llm_engine_openai.ready(eng, detail, sizeof(detail)), 0);
	llm_engine_openai.destroy(eng);

	VX_CHECK_INT(llm_engine_ollama.create(&cfg, &eng), 0);
	VX_CHECK_INT(llm_engine_ollama.models(eng, m, 8), 5);
	VX_CHECK_STR(m[1].id, "reasoner:latest");
	VX_CHECK_INT(llm_engine_ollama.ready(eng, detail, sizeof(detail)), 0);
	llm_engine_ollama.destroy(eng);

	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", dead_port());
	cfg.url = url;
	VX_CHECK_INT(llm_engine_openai.create(&cfg, &eng), 0);
	VX_CHECK_INT(llm_engine_openai.ready(eng, detail, sizeof(detail)),
		     -ECONNREFUSED);
	VX_CHECK(detail[0] != '\0');
	VX_CHECK_INT(llm_engine_openai.models(eng, m, 8), -ECONNREFUSED);
	llm_engine_openai.destroy(eng);
}

VX_TEST(base_url_ending_in_v1_is_not_doubled)
{
	char url[96];
	run r;
	snprintf(url, sizeof(url), "%s/v1/", upstream());
	run_init(&r, "echo", "v1");
	r.cfg.url = url;
	VX_CHECK_INT(run_go(&r, &llm_engine_openai), 0);
	VX_CHECK_STR(str(&r.col.content), "You said: v1.");
	collect_release(&r.col);
	llm_config bad = { .url = "ftp://x" };
	void *eng = NULL;
	VX_CHECK_INT(llm_engine_openai.create(&bad, &eng), -EINVAL);
}

static void *run_thread(void *arg)
{
	run *r = arg;
	run_go(r, r->req.seed % 2 ? &llm_engine_ollama : &llm_engine_openai);
	return NULL;
}

VX_TEST(generate_runs_on_many_threads_at_once)
{
	enum { N = 4 };
	pthread_t th[N];
	run *rs = calloc(N, sizeof(*rs));
	char text[N][24];
	for (int i = 0; i < N; i++) {
		snprintf(text[i], sizeof(text[i]), "thread %d", i);
		run_init(&rs[i], "splitutf8", text[i]);
		rs[i].req.seed = (uint64_t)i;
	}
	for (int i = 0; i < N; i++)
		pthread_create(&th[i], NULL, run_thread, &rs[i]);
	for (int i = 0; i < N; i++) {
		char want[96];
		pthread_join(th[i], NULL);
		snprintf(want, sizeof(want), "Gr\xC3\xBC\xC3\x9F" "e, \xE4\xB8\x96"
			 "\xE7\x95\x8C! \xF0\x9F\x8E\x89 You said: thread %d.", i);
		VX_CHECK_INT(rs[i].rc, 0);
		VX_CHECK_STR(str(&rs[i].col.content), want);
		collect_release(&rs[i].col);
	}
	free(rs);
}

VX_TEST_MAIN(upstream_starts,
	     openai_streams_the_reply_with_usage_and_sends_the_request_right,
	     ollama_streams_the_reply_with_counts_and_sends_options,
	     max_tokens_and_stop_reach_the_upstream,
	     reasoning_fields_come_out_as_reasoning,
	     think_tags_split_across_tokens_separate_via_think_splitter,
	     multibyte_characters_cut_by_the_transport_arrive_whole,
	     openai_half_characters_in_deltas_are_held_back,
	     openai_keepalive_comments_and_crlf_are_understood,
	     openai_stream_without_done_ends_with_last_finish_reason,
	     http_500_is_eproto_with_the_upstream_message,
	     error_in_the_middle_of_a_stream_is_eproto,
	     unknown_model_is_enoent_and_bad_request_einval,
	     bearer_key_is_sent_and_a_wrong_one_refused,
	     stall_times_out_at_the_first_token_timeout,
	     whole_deadline_times_out_a_slow_stream,
	     upstream_down_is_econnrefused,
	     cancel_mid_stream_closes_the_upstream_within_100ms,
	     cancel_while_stalled_before_any_token,
	     callback_stop_is_ecanceled,
	     models_are_listed_and_ready_follows_the_upstream,
	     base_url_ending_in_v1_is_not_doubled,
	     generate_runs_on_many_threads_at_once)
