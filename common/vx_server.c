/*
 * vx_server.c - daemon lifecycle (start, drain, stop) and built-in routes.
 *
 * The top of the serving core: it owns the listening socket and the three
 * layers below it, and wires them together; none of them calls up.
 *   vx_loop.c   event loops, heads, MHD daemons (vx_loop.h)
 *   vx_req.c    requests: routing (vx_route.c), answers, jobs (vx_req_int.h)
 *   vx_ws.c     WebSockets on libwebsockets (vx_ws_int.h)
 * The loops reach requests and WebSockets only through the vx_loop_ops
 * set up here; requests reach the built-in routes through a callback.
 */
#include "vx_server.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "vx_log.h"
#include "vx_loop.h"
#include "vx_req.h"
#include "vx_req_int.h"
#include "vx_route.h"
#include "vx_time.h"
#include "vx_ws_int.h"

#define DEFAULT_MAX_CONNECTIONS 1024
#define DEFAULT_MAX_BODY (16u * 1024 * 1024)
#define HANDLER_WORKERS 4           /* threads for routes marked blocking */
#define HANDLER_QUEUE 64
#define RUN_TICK_US 100000          /* main thread: watchdog, drain steps */
#define CUT_BEFORE_S 0.5            /* unanswered requests get 503 this long
				       before drain_timeout_s runs out */

#define HEAD_MAX (8 * 1024)         /* request line + headers (431) */
#define LINE_MAX_BYTES (8 * 1024)   /* request line (414) */
#define HEADERS_MAX 100             /* header lines (431) */

struct vx_server {
	vx_server_config cfg;
	int listen_fd;
	bool listen_from_systemd;
	int port;
	int wake_pipe[2];                  /* signal -> vx_server_run */

	vx_loops *loops;                   /* serving loops (vx_loop.h) */
	vx_req_host http;                  /* what requests share (vx_req_int.h) */
	vx_ws_host *ws;                    /* NULL without WebSocket routes */
	atomic_int ws_open;                /* WebSockets open */

	/* Drain, in order: draining (readiness 503) -> accept_stopped ->
	 * drain_cut (unanswered requests get 503) -> vx_server_shutdown. */
	atomic_bool draining;
	atomic_bool accept_stopped;
	atomic_bool drain_cut;
	atomic_int signals;                /* SIGTERM/SIGINT seen */
	atomic_bool no_delay;              /* SIGINT: skip the drain delay */
	atomic_bool frozen;                /* --debug-freeze and SIGUSR2 */
	double start_time;                 /* monotonic seconds */

	vx_metrics *metrics;
	vx_counter *head_timeouts;         /* 408 before a request head */
	vx_counter *bad_heads;             /* heads refused (400, 413, 414, 431) */
	vx_counter *ws_connections;        /* WebSockets accepted */
};

static vx_server *volatile signal_target;

/* SIGTERM drains (readiness first, see vx_server.h); SIGINT drains without
 * the delay (Ctrl-C); a second signal skips what is left of the waits.
 * Whatever state the process is in, it ends drain_timeout_s + 1 s after
 * the first signal. */
static void on_signal(int sig)
{
	vx_server *s = signal_target;
	if (!s)
		return;
	if (atomic_fetch_add(&s->signals, 1) == 0)
		alarm((unsigned)s->cfg.drain_timeout_s + 1);
	if (sig == SIGINT)
		atomic_store(&s->no_delay, true);
	vx_server_stop(s);
}

static void on_alarm(int sig)
{
	(void)sig;
	static const char msg[] = "{\"level\":\"error\",\"msg\":"
		"\"drain did not finish in time; exiting\"}\n";
	ssize_t r = write(2, msg, sizeof(msg) - 1);
	(void)r;
	_exit(1);
}

static void on_freeze(int sig)
{
	(void)sig;
	if (signal_target)
		atomic_store(&signal_target->frozen, true);
}

static double gauge_in_flight(void *arg)
{
	return (double)vx_server_in_flight(arg);
}

static double gauge_ws_open(void *arg)
{
	vx_server *s = arg;
	return (double)atomic_load(&s->ws_open);
}

/* ---- built-in routes ---- */

static void answer_health(vx_server *s, vx_req *req)
{
	vx_buf extra = {0};
	char detail[256] = "";
	vx_health h = s->cfg.health ?
		s->cfg.health(s->cfg.user, &extra, detail, sizeof(detail)) :
		VX_HEALTH_OK;
	static const char *const names[] = { "ok", "loading", "unavailable",
					     "overloaded", "degraded" };
	const char *status = names[h];
	if (atomic_load(&s->draining)) {
		status = "draining";
		snprintf(detail, sizeof(detail), "shutting down");
	}
	bool ok = !strcmp(status, "ok") || !strcmp(status, "degraded");
	vx_buf b = {0};
	vx_buf_printf(&b, "{\"status\":\"%s\"", status);
	if (detail[0]) {
		vx_buf_puts(&b, ",\"detail\":");
		vx_buf_json_str(&b, detail, strlen(detail));
	}
	vx_buf_printf(&b, ",\"service\":\"%s\",\"uptime_s\":%.0f,"
		      "\"in_flight\":%d",
		      s->cfg.service, vx_now() - s->start_time,
		      vx_server_in_flight(s) - 1);
	if (extra.data)
		vx_buf_append(&b, extra.data, extra.len);
	vx_buf_puts(&b, "}\n");
	vx_buf_release(&extra);
	if (!ok)
		vx_req_add_header(req, "Retry-After", "1");
	vx_req_reply_buf(req, ok ? 200 : 503, "application/json", &b);
}

static void answer_info(vx_server *s, vx_req *req)
{
	vx_buf b = {0};
	vx_buf_printf(&b, "{\"service\":\"voxline-%s\",\"version\":\"%s\"",
		      s->cfg.service, s->cfg.version ? s->cfg.version : "dev");
	vx_buf_puts(&b, ",\"websocket\":[");
	for (size_t i = 0; i < s->cfg.n_ws_routes; i++)
		vx_buf_printf(&b, "%s\"%s\"", i ? "," : "",
			      s->cfg.ws_routes[i].path);
	vx_buf_puts(&b, "],\"routes\":[");
	for (size_t i = 0; i < s->cfg.n_routes; i++)
		vx_buf_printf(&b, "%s\"%s %s\"", i ? "," : "",
			      s->cfg.routes[i].method, s->cfg.routes[i].path);
	vx_buf_puts(&b, "]");
	if (s->cfg.info)
		s->cfg.info(s->cfg.user, &b);
	vx_buf_puts(&b, "}\n");
	vx_req_reply_buf(req, 200, "application/json", &b);
}

/* Built-in routes, asked by the request layer first: true when answered. */
static bool builtin(void *arg, vx_req *req)
{
	vx_server *s = arg;
	const char *path = vx_req_path(req), *method = vx_req_method(req);
	bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
	enum { NONE, HEALTH, LIVE, METRICS, INFO } which = NONE;
	if (!strcmp(path, "/healthz") || !strcmp(path, "/readyz") ||
	    !strcmp(path, "/health"))
		which = HEALTH;
	else if (!strcmp(path, "/livez"))
		which = LIVE;
	else if (!strcmp(path, "/metrics"))
		which = METRICS;
	else if (!strcmp(path, "/info"))
		which = INFO;
	if (which == NONE)
		return false;
	if (!get) {
		vx_req_add_header(req, "Allow", "GET, HEAD");
		vx_req_error(req, 405, "method_not_allowed",
			     "%s is not allowed on %s", method, path);
		return true;
	}
	switch (which) {
	case HEALTH:
		answer_health(s, req);
		break;
	case LIVE:
		vx_req_reply_json(req, 200, "{\"status\":\"alive\"}\n");
		break;
	case METRICS: {
		vx_buf b = {0};
		vx_metrics_render(s->metrics, &b);
		vx_req_reply_buf(req, 200, "text/plain; version=0.0.4", &b);
		break;
	}
	case INFO:
		answer_info(s, req);
		break;
	case NONE:
		break;
	}
	return true;
}

/* ---- wiring the layers ---- */

static void http_init(vx_server *s)
{
	vx_req_host *h = &s->http;
	h->routes = s->cfg.routes;
	h->n_routes = s->cfg.n_routes;
	h->ws_routes = s->cfg.ws_routes;
	h->n_ws_routes = s->cfg.n_ws_routes;
	h->api_key = s->cfg.api_key;
	h->max_body = s->cfg.max_body;
	h->request_timeout_s = s->cfg.request_timeout_s;
	h->user = s->cfg.user;
	h->accept_stopped = &s->accept_stopped;
	h->builtin = builtin;
	h->builtin_arg = s;
	h->metrics = s->metrics;
	vx_req_host_init(h);
}

/* The loops' question about an upgrade head: a route of ours, admitted? */
static enum vx_loop_ws loop_ws_route(void *arg, const vx_head *h)
{
	vx_server *s = arg;
	const vx_ws_route *r = s->ws ? vx_route_ws_find(s->cfg.ws_routes,
				s->cfg.n_ws_routes, h->path, h->path_len) : NULL;
	if (!r)
		return VX_LOOP_WS_NONE;
	if (!r->open && !vx_route_bearer_ok(s->cfg.api_key, h->authorization,
					    h->authorization_len))
		return VX_LOOP_WS_UNAUTHORIZED;
	char route[128];
	snprintf(route, sizeof(route), "%.*s", (int)h->path_len, h->path);
	if (s->cfg.ws_admit && !s->cfg.ws_admit(s->cfg.user, route))
		return VX_LOOP_WS_REFUSE;
	return VX_LOOP_WS_TAKE;
}

static void loop_ws_adopt(void *arg, int fd)
{
	vx_server *s = arg;
	vx_ws_adopt(s->ws, fd);
}

static const vx_loop_ops loop_ops = {
	.on_access = vx_req_on_access,
	.on_uri = vx_req_on_uri,
	.on_completed = vx_req_on_completed,
	.watch = vx_req_watch,
	.abandon = vx_req_abandon,
	.hold = vx_req_hold,
	.release = vx_req_release,
	.ws_route = loop_ws_route,
	.ws_adopt = loop_ws_adopt,
};

static int loops_new(vx_server *s)
{
	vx_loop_config lc = {
		.listen_fd = s->listen_fd,
		.n_loops = s->cfg.io_threads,
		.max_connections = s->cfg.max_connections,
		.head_timeout_ms = s->cfg.head_timeout_ms,
		.idle_timeout_s = s->cfg.idle_timeout_s,
		.head_limits = { .max_head = HEAD_MAX, .max_line = LINE_MAX_BYTES,
				 .max_headers = HEADERS_MAX },
		.ws_open = &s->ws_open,
		.accept_stopped = &s->accept_stopped,
		.drain_cut = &s->drain_cut,
		.frozen = &s->frozen,
		.rejected = s->http.rejected,
		.head_timeouts = s->head_timeouts,
		.bad_heads = s->bad_heads,
		.ops = &loop_ops,
		.arg = &s->http,   /* vx_req's callbacks get it with vx_loop_arg */
		.ws_arg = s,
	};
	/* A body over the largest limit is refused with the head. */
	uint64_t mb = s->cfg.max_body;
	for (size_t i = 0; i < s->cfg.n_routes; i++) {
		if (s->cfg.routes[i].max_body > mb)
			mb = s->cfg.routes[i].max_body;
	}
	lc.head_limits.max_body = mb + VX_REQ_DISCARD_MAX;
	return vx_loops_new(&lc, &s->loops);
}

static int ws_start(vx_server *s)
{
	vx_ws_config wc = {
		.routes = s->cfg.ws_routes,
		.n_routes = s->cfg.n_ws_routes,
		.user = s->cfg.user,
		.config_timeout_ms = s->cfg.ws_config_timeout_ms,
		.max_message = s->cfg.ws_max_message,
		.max_connections = s->cfg.max_connections,
		.connections = s->ws_connections,
		.open = &s->ws_open,
	};
	return vx_ws_start(&wc, &s->ws);
}

/* ---- lifecycle ---- */

static int open_listener(vx_server *s)
{
	int n = sd_listen_fds(1);
	if (n >= 1) {
		s->listen_fd = SD_LISTEN_FDS_START;
		s->listen_from_systemd = true;
		fcntl(s->listen_fd, F_SETFL,
		      fcntl(s->listen_fd, F_GETFL) | O_NONBLOCK);
	} else {
		const char *host = s->cfg.host ? s->cfg.host : "127.0.0.1";
		char port[16];
		snprintf(port, sizeof(port), "%d", s->cfg.port);
		struct addrinfo hints = { .ai_family = AF_UNSPEC,
					  .ai_socktype = SOCK_STREAM,
					  .ai_flags = AI_PASSIVE };
		struct addrinfo *ai = NULL;
		int r = getaddrinfo(host, port, &hints, &ai);
		if (r != 0)
			return -EADDRNOTAVAIL;
		int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			r = -errno;
			freeaddrinfo(ai);
			return r;
		}
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
		    listen(fd, 1024) < 0) {
			r = -errno;
			close(fd);
			freeaddrinfo(ai);
			return r;
		}
		freeaddrinfo(ai);
		s->listen_fd = fd;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(s->listen_fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET)
			s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			s->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	return 0;
}

static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int vx_server_new(const vx_server_config *cfg, vx_server **ret)
{
	if (cfg->n_routes > VX_MAX_ROUTES)
		return -E2BIG;
	vx_server *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->cfg = *cfg;
	if (!s->cfg.max_connections)
		s->cfg.max_connections = DEFAULT_MAX_CONNECTIONS;
	if (!s->cfg.max_body)
		s->cfg.max_body = DEFAULT_MAX_BODY;
	if (!s->cfg.idle_timeout_s)
		s->cfg.idle_timeout_s = 60;
	if (!s->cfg.head_timeout_ms)
		s->cfg.head_timeout_ms = 10000;
	if (!s->cfg.drain_timeout_s)
		s->cfg.drain_timeout_s = 15;
	if (!s->cfg.drain_delay_s)
		s->cfg.drain_delay_s = 5;
	if (!s->cfg.ws_config_timeout_ms)
		s->cfg.ws_config_timeout_ms = 10000;
	if (!s->cfg.io_threads)
		s->cfg.io_threads = 2;
	if (!s->cfg.request_timeout_s)
		s->cfg.request_timeout_s = 300;
	if (!s->cfg.ws_max_message)
		s->cfg.ws_max_message = 4u * 1024 * 1024;
	s->listen_fd = -1;
	s->wake_pipe[0] = s->wake_pipe[1] = -1;
	s->start_time = vx_now();
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();

	int r = vx_metrics_new(&s->metrics);
	if (r < 0)
		goto out_free;
	s->http.rejected = vx_metrics_counter(s->metrics, "voxline_rejected_total",
		"Requests refused by admission control (503)", NULL);
	s->head_timeouts = vx_metrics_counter(s->metrics,
		"voxline_head_timeouts_total",
		"Connections closed for not sending a request head in time", NULL);
	s->bad_heads = vx_metrics_counter(s->metrics,
		"voxline_bad_heads_total",
		"Requests refused before routing: malformed, smuggling, oversize",
		NULL);
	s->ws_connections = vx_metrics_counter(s->metrics,
		"voxline_websocket_connections_total", "WebSockets accepted", NULL);
	vx_metrics_gauge_fn(s->metrics, "voxline_in_flight",
		"HTTP requests and WebSockets in progress", NULL,
		gauge_in_flight, s);
	vx_metrics_gauge_fn(s->metrics, "voxline_websockets_open",
		"WebSockets open", NULL, gauge_ws_open, s);

	if ((r = open_listener(s)) < 0)
		goto out_free;
	if (pipe2(s->wake_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		r = -errno;
		goto out_free;
	}
	if ((r = vx_pool_new(HANDLER_WORKERS, HANDLER_QUEUE,
			     &s->http.handler_pool)) < 0)
		goto out_free;
	http_init(s);
	if ((r = loops_new(s)) < 0)
		goto out_free;
	if (s->cfg.n_ws_routes && (r = ws_start(s)) < 0)
		goto out_free;
	*ret = s;
	return 0;

out_free:
	vx_server_free(s);
	return r;
}

void vx_server_free(vx_server *s)
{
	if (!s)
		return;
	vx_server_shutdown(s);
	vx_loops_free(s->loops);
	vx_ws_free(s->ws);
	vx_pool_free(s->http.handler_pool);
	if (s->listen_fd >= 0 && !s->listen_from_systemd)
		close(s->listen_fd);
	if (s->wake_pipe[0] >= 0) {
		close(s->wake_pipe[0]);
		close(s->wake_pipe[1]);
	}
	if (signal_target == s)
		signal_target = NULL;
	vx_metrics_free(s->metrics);
	free(s);
}

void vx_server_stop(vx_server *s)
{
	atomic_store(&s->draining, true);
	if (s->wake_pipe[1] >= 0) {
		ssize_t r = write(s->wake_pipe[1], "x", 1);
		(void)r;
	}
}

int vx_server_port(const vx_server *s) { return s->port; }
bool vx_server_accepting(vx_server *s) { return !atomic_load(&s->accept_stopped); }
vx_metrics *vx_server_metrics(vx_server *s) { return s->metrics; }

bool vx_server_draining(const vx_server *s)
{
	return atomic_load(&s->draining);
}

int vx_server_in_flight(const vx_server *s)
{
	return atomic_load(&s->http.in_flight) + atomic_load(&s->ws_open);
}

/* Sleeps one tick, pinging the watchdog while every serving loop turns. */
static void run_tick(vx_server *s, uint64_t wd_usec)
{
	uint64_t tick = RUN_TICK_US;
	if (wd_usec && wd_usec / 4 < tick)
		tick = wd_usec / 4;
	usleep((useconds_t)tick);
	double max_age = wd_usec ? wd_usec / 2e6 : 0;
	if (max_age < 1.0)
		max_age = 1.0;
	if (wd_usec && vx_loops_alive(s->loops, max_age))
		sd_notify(0, "WATCHDOG=1");
}

/* Waits until cond() is false, the time is past until, or a second signal
 * asks to hurry. */
static void run_wait(vx_server *s, uint64_t wd_usec, double until,
		     bool (*cond)(vx_server *))
{
	while (cond(s) && vx_now() < until && atomic_load(&s->signals) < 2)
		run_tick(s, wd_usec);
}

static bool delaying(vx_server *s) { return !atomic_load(&s->no_delay); }
static bool busy(vx_server *s) { return vx_server_in_flight(s) > 0; }
static bool jobs_running(vx_server *s) { return atomic_load(&s->http.jobs) > 0; }
static bool serving(vx_server *s) { return !atomic_load(&s->draining); }
static bool listening(vx_server *s) { return vx_loops_listening(s->loops); }

int vx_server_run(vx_server *s)
{
	signal_target = s;
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	if (s->cfg.debug_freeze) {
		sa.sa_handler = on_freeze;
		sigaction(SIGUSR2, &sa, NULL);
	}

	int r = vx_loops_start(s->loops);
	if (r < 0)
		return r;
	vx_log_info(NULL, "listening on %s:%d", s->cfg.host ? s->cfg.host :
		    "127.0.0.1", s->port);
	sd_notifyf(0, "READY=1\nSTATUS=serving on port %d", s->port);

	uint64_t wd_usec = 0;
	if (sd_watchdog_enabled(0, &wd_usec) <= 0)
		wd_usec = 0;
	run_wait(s, wd_usec, HUGE_VAL, serving);

	/* 1. Readiness says draining; everything else is still served. */
	double t0 = vx_now(), end = t0 + s->cfg.drain_timeout_s;
	int delay = s->cfg.drain_delay_s > 0 ? s->cfg.drain_delay_s : 0;
	sd_notifyf(0, "STATUS=draining: readiness off for %d s, then finishing "
		   "%d requests in flight", delay, vx_server_in_flight(s));
	vx_log_info(NULL, "draining: readiness off for %d s, %d in flight",
		    delay, vx_server_in_flight(s));
	run_wait(s, wd_usec, t0 + delay < end ? t0 + delay : end, delaying);

	/* 2. Stop accepting: new connections are refused (or, on a socket
	 * systemd passed in, wait in its queue for the next instance). */
	atomic_store(&s->accept_stopped, true);
	vx_loops_wake(s->loops);
	run_wait(s, wd_usec, end, listening);
	if (!s->listen_from_systemd && s->listen_fd >= 0) {
		close(s->listen_fd);
		s->listen_fd = -1;
	}
	/* 3. Finish what is in flight. */
	run_wait(s, wd_usec, end - CUT_BEFORE_S, busy);
	/* 4. Whatever is left is cancelled, and answered 503 if unanswered. */
	if (vx_server_in_flight(s) > 0)
		vx_log_warn(NULL, "drain time is up: %d requests cut",
			    vx_server_in_flight(s));
	atomic_store(&s->drain_cut, true);
	vx_loops_wake(s->loops);
	run_wait(s, wd_usec, vx_now() + CUT_BEFORE_S / 2, busy);
	run_wait(s, wd_usec, end, jobs_running);
	sd_notify(0, "STOPPING=1\nSTATUS=stopping");
	vx_server_shutdown(s);
	vx_log_info(NULL, "stopped");
	return 0;
}

void vx_server_shutdown(vx_server *s)
{
	if (s->loops)
		vx_loops_stop(s->loops);
	vx_ws_stop(s->ws);
}
