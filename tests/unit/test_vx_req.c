/*
 * test_vx_req.c - requests through the whole serving core in this process:
 * routing answers as they go out (404 and 405 JSON with Allow, 401 with
 * WWW-Authenticate, 413 before and after the body), bodies and media types,
 * HEAD, built-in routes, a job answered from a pool (the connection is
 * suspended and resumed by its loop), X-Request-Id.
 *
 * No network: the server gets a Unix-domain listening socket the way it
 * gets one from systemd (fd 3, LISTEN_FDS=1), and the test talks to it
 * over that socket. The routing decision itself is test_vx_route.c's.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "vx_log.h"
#include "vx_req.h"
#include "vx_server.h"
#include "vx_test.h"

typedef struct test_server {
	vx_server *s;
	pthread_t thread;
	char path[108];
	vx_pool *pool;
} test_server;

static void handle_echo(vx_req *req, void *user)
{
	(void)user;
	char out[256];
	const char *q = vx_req_query(req, "q");
	snprintf(out, sizeof(out), "%s %s q=%s", vx_req_method(req),
		 vx_req_path(req), q ? q : "-");
	vx_req_reply(req, 200, "text/plain", out, strlen(out));
}

static void handle_body(vx_req *req, void *user)
{
	(void)user;
	size_t len;
	const char *body = vx_req_body(req, &len);
	char out[256];
	snprintf(out, sizeof(out), "%zu [%s] %s", len, vx_req_media_type(req),
		 body);
	vx_req_reply(req, 200, "text/plain", out, strlen(out));
}

static void job(vx_req *req, void *arg)
{
	(void)arg;
	usleep(100 * 1000);   /* the handler has returned; the loop waits */
	vx_req_add_header(req, "X-Job", "done");
	vx_req_reply_json(req, 201, "{\"job\":true}");
}

static void handle_job(vx_req *req, void *user)
{
	test_server *ts = user;
	vx_req_run(req, ts->pool, job, NULL);
}

static const vx_route routes[] = {
	{ "GET", "/echo/*", handle_echo, 0, false, false },
	{ "DELETE", "/echo/*", handle_echo, 0, false, false },
	{ "POST", "/body", handle_body, 64, false, false },
	{ "POST", "/job", handle_job, 0, false, false },
};

static void *run(void *arg)
{
	vx_server_run(arg);
	return NULL;
}

/* Starts a server on a fresh Unix socket handed over as systemd's fd 3. */
static int server_start(test_server *ts, const char *api_key)
{
	memset(ts, 0, sizeof(*ts));
	snprintf(ts->path, sizeof(ts->path), "/tmp/vx-test-req-%d-%p.sock",
		 (int)getpid(), (void *)ts);
	unlink(ts->path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", ts->path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 64) < 0 || dup2(fd, 3) < 0) {
		perror("unix listener");
		return -1;
	}
	if (fd != 3)
		close(fd);
	char pid[32];
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("LISTEN_PID", pid, 1);
	setenv("LISTEN_FDS", "1", 1);
	if (vx_pool_new(1, 4, &ts->pool) < 0)
		return -1;
	vx_server_config cfg = {
		.service = "test", .routes = routes,
		.n_routes = sizeof(routes) / sizeof(routes[0]),
		.max_body = 1024, .drain_delay_s = -1, .drain_timeout_s = 2,
		.io_threads = 1, .api_key = api_key, .user = ts,
	};
	int r = vx_server_new(&cfg, &ts->s);
	if (r < 0) {
		fprintf(stderr, "vx_server_new: %s\n", strerror(-r));
		return r;
	}
	return pthread_create(&ts->thread, NULL, run, ts->s) ? -1 : 0;
}

static void server_stop(test_server *ts)
{
	if (!ts->s)
		return;
	vx_server_stop(ts->s);
	pthread_join(ts->thread, NULL);
	vx_server_free(ts->s);
	vx_pool_free(ts->pool);
	close(3);
	unlink(ts->path);
}

/* Sends raw bytes, returns the whole answer (read until the server closes
 * or 5 s pass); the caller frees it. */
static char *exchange(test_server *ts, const char *raw)
{
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", ts->path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("connect");
		if (fd >= 0)
			close(fd);
		return strdup("");
	}
	size_t len = strlen(raw);
	for (size_t off = 0; off < len;) {
		ssize_t n = send(fd, raw + off, len - off, MSG_NOSIGNAL);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	size_t cap = 65536, got = 0;
	char *buf = calloc(1, cap + 1);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	while (got < cap && poll(&p, 1, 5000) == 1) {
		ssize_t n = recv(fd, buf + got, cap - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	return buf;
}

static bool has(const char *answer, const char *part)
{
	bool ok = strstr(answer, part) != NULL;
	if (!ok)
		fprintf(stderr, "  no \"%s\" in:\n%s\n", part, answer);
	return ok;
}

static test_server open_srv, key_srv;

VX_TEST(route_runs_with_path_query_and_method)
{
	char *a = exchange(&open_srv, "GET /echo/a/b?q=7 HTTP/1.1\r\nHost: x\r\n"
			   "Connection: close\r\n\r\n");
	VX_CHECK(has(a, "HTTP/1.1 200"));
	VX_CHECK(has(a, "GET /echo/a/b q=7"));
	VX_CHECK(has(a, "X-Request-Id: "));
	free(a);
	a = exchange(&open_srv, "DELETE /echo/z HTTP/1.1\r\nHost: x\r\n"
		     "Connection: close\r\n\r\n");
	VX_CHECK(has(a, "HTTP/1.1 200"));
	VX_CHECK(has(a, "DELETE /echo/z q=-"));
	free(a);
}

VX_TEST(head_gets_the_get_routes_headers_without_body)
{
	char *a = exchange(&open_srv, "HEAD /echo/a HTTP/1.1\r\nHost: x\r\n"
			   "Connection: close\r\n\r\n");
	VX_CHECK(has(a, "HTTP/1.1 200"));
	VX_CHECK(!strstr(a, "HEAD /echo/a"));
	free(a);
}

VX_TEST(unknown_path_is_404_json)
{
	char *a = exchange(&open_srv, "GET /nope HTTP/1.1\r\nHost: x\r\n"
			   "Connection: close\r\n\r\n");
	VX_CHECK(has(a, "HTTP/1.1 404"));
	VX_CHECK(has(a, "Content-Type: application/json"));
	VX_CHECK(has(a, "{\"error\":{\"code\":\"not_found\",\"message\":"
		     "\"no route for GET /nope\",\"type\":\"not_found_error\","
		     "\"param\":null}}"));
	free(a);
}

VX_TEST(wrong_method_is_405_json_with_allow)
{
	char *a = exchange(&open_srv, "PUT /echo/a HTTP/1.1\r\nHost: x\r\n"
			   "Content-Length: 0\r\nConnection: close\r\n\r\n");
	VX_CHECK(has(a, "HTTP/1.1 405"));
	VX_CHECK(has(a, "Allow: GET, HEAD, DELETE"));
	VX_CHECK(has(a, "\"code\":\"method_not_allowed\""));
	free(a);
	a = exchange(&open_srv, "POST /healthz HTTP/1.1\r\nHost: x\r\n"
		     "Content-Length: 0\r\nConnection: close\r\n\r\n");
	VX_CHECK(has(a, "HTTP/1.1 405"));
	VX_CHECK(has(a, "Allow: GET, HEAD"));
	free(a);
}

VX_TEST(body_and_media_type_reach_the_handler)
{
	char *a = exchange(&open_srv, "POST /body HTTP/1.1\r\nHost: x\r\n"
			   "Content-Type: Application/JSON; charset=utf-8\r\n"
			   "Content-Length: 7\r\nConnection: close\r\n\r\n{\"a\":1}");
	VX_CHECK(has(a, "HTTP/1.1 200"));
	VX_CHECK(has(a, "7 [application/json] {\"a\":1}"));
	free(a);
	a = exchange(&open_srv, "POST /body HTTP/1.1\r\nHost: x\r\n"
		     "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
		     "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
	VX_CHECK(has(a, "HTTP/1.1 200"));
	VX_CHECK(has(a, "5 [] abcde"));
	free(a);
}

VX_TEST(body_over_the_routes_limit_is_413_json)
{
	char body[100];
	memset(body, 'x', sizeof(body) - 1);
	body[sizeof(body) - 1] = '\0';
	char raw[512];
	snprintf(raw, sizeof(raw), "POST /body HTTP/1.1\r\nHost: x\r\n"
		 "Content-Length: 99\r\nConnection: close\r\n\r\n%s", body);
	char *a = exchange(&open_srv, raw);
	VX_CHECK(has(a, "HTTP/1.1 413"));
	VX_CHECK(has(a, "\"code\":\"body_too_large\""));
	VX_CHECK(has(a, "over the limit of 64"));
	free(a);
	/* chunked: no length up front; the limit is found while reading */
	snprintf(raw, sizeof(raw), "POST /body HTTP/1.1\r\nHost: x\r\n"
		 "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
		 "63\r\n%s\r\n0\r\n\r\n", body);
	a = exchange(&open_srv, raw);
	VX_CHECK(has(a, "HTTP/1.1 413"));
	VX_CHECK(has(a, "over the limit of 64 bytes"));
	free(a);
}

VX_TEST(job_on_a_pool_answers_after_the_handler_returned)
{
	char *a = exchange(&open_srv, "POST /job HTTP/1.1\r\nHost: x\r\n"
			   "Content-Length: 0\r\nX-Request-Id: abc-123\r\n"
			   "Connection: close\r\n\r\n");
	VX_CHECK(has(a, "HTTP/1.1 201"));
	VX_CHECK(has(a, "X-Job: done"));
	VX_CHECK(has(a, "X-Request-Id: abc-123"));
	VX_CHECK(has(a, "{\"job\":true}"));
	free(a);
}

VX_TEST(builtin_routes_answer_without_a_key)
{
	char *a = exchange(&key_srv, "GET /livez HTTP/1.1\r\nHost: x\r\n"
			   "Connection: close\r\n\r\n");
	VX_CHECK(has(a, "HTTP/1.1 200"));
	VX_CHECK(has(a, "{\"status\":\"alive\"}"));
	free(a);
	a = exchange(&key_srv, "GET /healthz HTTP/1.1\r\nHost: x\r\n"
		     "Connection: close\r\n\r\n");
	VX_CHECK(has(a, "HTTP/1.1 200"));
	VX_CHECK(has(a, "\"status\":\"ok\""));
	free(a);
}

VX_TEST(api_key_is_required_on_routes)
{
	char *a = exchange(&key_srv, "GET /echo/a HTTP/1.1\r\nHost: x\r\n"
			   "Connection: close\r\n\r\n");
	VX_CHECK(has(a, "HTTP/1.1 401"));
	VX_CHECK(has(a, "WWW-Authenticate: Bearer"));
	VX_CHECK(has(a, "\"type\":\"authentication_error\""));
	free(a);
	a = exchange(&key_srv, "GET /echo/a HTTP/1.1\r\nHost: x\r\n"
		     "Authorization: Bearer nope\r\nConnection: close\r\n\r\n");
	VX_CHECK(has(a, "HTTP/1.1 401"));
	free(a);
	a = exchange(&key_srv, "GET /echo/a HTTP/1.1\r\nHost: x\r\n"
		     "Authorization: Bearer k3y\r\nConnection: close\r\n\r\n");
	VX_CHECK(has(a, "HTTP/1.1 200"));
	free(a);
	/* an unknown path is 404 with or without the key */
	a = exchange(&key_srv, "GET /nope HTTP/1.1\r\nHost: x\r\n"
		     "Connection: close\r\n\r\n");
	VX_CHECK(has(a, "HTTP/1.1 404"));
	free(a);
}

VX_TEST(smuggling_head_is_refused_before_any_route)
{
	char *a = exchange(&open_srv, "POST /body HTTP/1.1\r\nHost: x\r\n"
			   "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"
			   "\r\n0\r\n\r\n");
	VX_CHECK(has(a, "HTTP/1.1 400"));
	VX_CHECK(has(a, "\"code\":\"bad_request\""));
	VX_CHECK(has(a, "Connection: close"));
	free(a);
}

/* The servers share fd 3 (systemd's first socket): one at a time. */
VX_TEST(server_starts_on_a_socket_from_systemd)
{
	vx_log_init("test", VX_LOG_WARN);
	VX_CHECK_INT(server_start(&open_srv, NULL), 0);
}

VX_TEST(server_stops)
{
	server_stop(&open_srv);
}

VX_TEST(server_with_a_key_starts)
{
	VX_CHECK_INT(server_start(&key_srv, "k3y"), 0);
}

VX_TEST(server_with_a_key_stops)
{
	server_stop(&key_srv);
}

VX_TEST_MAIN(server_starts_on_a_socket_from_systemd,
	     route_runs_with_path_query_and_method,
	     head_gets_the_get_routes_headers_without_body,
	     unknown_path_is_404_json, wrong_method_is_405_json_with_allow,
	     body_and_media_type_reach_the_handler,
	     body_over_the_routes_limit_is_413_json,
	     job_on_a_pool_answers_after_the_handler_returned,
	     smuggling_head_is_refused_before_any_route, server_stops,
	     server_with_a_key_starts, builtin_routes_answer_without_a_key,
	     api_key_is_required_on_routes, server_with_a_key_stops)
