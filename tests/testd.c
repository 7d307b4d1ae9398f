/*
 * testd.c - a small daemon on libvoxline's server for the server's own
 * integration tests (tests/integration/test_server.py): an echo route, a
 * slow pool job (admission control), a stream, multipart, a WebSocket echo.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vx_daemon.h"
#include "vx_flags.h"
#include "vx_log.h"
#include "vx_pool.h"
#include "vx_req.h"
#include "vx_server.h"
#include "vx_ws.h"

typedef struct testd {
	vx_daemon_opts d;
	vx_pool *pool;
	int max_ws;
	atomic_int n_ws;
} testd;

static void echo(vx_req *req, void *user)
{
	(void)user;
	size_t len;
	const char *body = vx_req_body(req, &len);
	vx_req_reply(req, 200, vx_req_media_type(req)[0] ?
		     vx_req_content_type(req) : "application/octet-stream",
		     body, len);
}

static void slow_job(vx_req *req, void *arg)
{
	(void)arg;
	const char *ms = vx_req_query(req, "ms");
	int wait = ms ? atoi(ms) : 300;
	for (int t = 0; t < wait; t += 10) {
		if (atomic_load(vx_req_cancelled(req))) {
			fprintf(stderr, "testd: slow job cancelled\n");
			return;
		}
		usleep(10000);
	}
	vx_req_reply_json(req, 200, "{\"slept\":true}");
}

static void slow(vx_req *req, void *user)
{
	testd *t = user;
	vx_req_run(req, t->pool, slow_job, NULL);
}

static void stream_job(vx_req *req, void *arg)
{
	(void)arg;
	const char *n_s = vx_req_query(req, "n");
	int n = n_s ? atoi(n_s) : 5;
	vx_req_stream_begin(req, 200, "text/event-stream");
	for (int i = 0; i < n; i++) {
		char line[64];
		int len = snprintf(line, sizeof(line), "data: %d\n\n", i);
		if (vx_req_stream_write(req, line, (size_t)len) < 0) {
			fprintf(stderr, "testd: stream client gone at %d\n", i);
			return;
		}
		usleep(20000);
	}
	vx_req_stream_write(req, "data: [DONE]\n\n", 14);
}

static void stream(vx_req *req, void *user)
{
	testd *t = user;
	vx_req_run(req, t->pool, stream_job, NULL);
}

static void form(vx_req *req, void *user)
{
	(void)user;
	const vx_form_field *f;
	int r = vx_req_form(req, "file", &f);
	if (r == -EMEDIUMTYPE) {
		vx_req_error(req, 415, "unsupported_media_type", "want multipart");
		return;
	}
	if (r < 0) {
		vx_req_error(req, 400, "bad_form", "no file field (%d)", r);
		return;
	}
	char out[256];
	snprintf(out, sizeof(out), "{\"len\":%zu,\"filename\":\"%s\"}", f->len,
		 f->filename ? f->filename : "");
	vx_req_reply_json(req, 200, out);
}

static int ws_open(vx_wsconn *c, void *user, void **ret_state)
{
	testd *t = user;
	(void)c;
	atomic_fetch_add(&t->n_ws, 1);
	*ret_state = user;
	return 0;
}

static bool ws_admit(void *user, const char *path)
{
	testd *t = user;
	(void)path;
	return !t->max_ws || atomic_load(&t->n_ws) < t->max_ws;
}

static void ws_text(vx_wsconn *c, void *state, const char *text, size_t len)
{
	(void)state;
	vx_ws_send_text(c, text, len);
}

static void ws_binary(vx_wsconn *c, void *state, const void *data, size_t len)
{
	(void)state;
	vx_ws_send_binary(c, data, len);
}

static void ws_close(vx_wsconn *c, void *state)
{
	testd *t = state;
	(void)c;
	atomic_fetch_sub(&t->n_ws, 1);
}

int main(int argc, char **argv)
{
	testd t = {0};
	const vx_flag flags[] = {
		VX_DAEMON_FLAGS(&t.d, "0", "1"),
		{ "max-ws", VX_FLAG_INT, &t.max_ws, "0", 0, 1000, "WebSockets admitted (0 = any)" },
	};
	int r = vx_flags_parse(flags, sizeof(flags) / sizeof(flags[0]),
			       "testd", argc, argv);
	if (r)
		return r > 0 ? 0 : 2;
	if (vx_daemon_init(&t.d, "testd") < 0)
		return 2;
	if (vx_pool_new(t.d.workers, t.d.queue, &t.pool) < 0)
		vx_fatal("pool");
	static const vx_route routes[] = {
		{ "POST", "/echo", echo, 1024 * 1024, false, false },
		{ "GET", "/slow", slow, 0, false, false },
		{ "GET", "/stream", stream, 0, false, false },
		{ "POST", "/form", form, 0, false, false },
	};
	static const vx_ws_route ws_routes[] = {
		{ "/ws/echo", ws_open, ws_text, ws_binary, ws_close, false },
	};
	vx_server_config cfg = {
		.service = "testd", .routes = routes, .n_routes = 4,
		.ws_routes = ws_routes, .n_ws_routes = 1,
		.user = &t, .ws_admit = ws_admit,
	};
	vx_daemon_server_config(&t.d, &cfg);
	vx_server *s;
	if ((r = vx_server_new(&cfg, &s)) < 0)
		vx_fatal("server: %s", strerror(-r));
	printf("%d\n", vx_server_port(s));
	fflush(stdout);
	r = vx_server_run(s);
	vx_server_free(s);
	vx_pool_free(t.pool);
	return r < 0 ? 1 : 0;
}
