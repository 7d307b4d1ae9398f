/* vx_server.c - daemon lifecycle, built-in routes, request metrics. */
#include "vx_server.h"

#include <errno.h>
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
#include "vx_req.h"
#include "vx_server_int.h"

#define DEFAULT_MAX_CONNECTIONS 1024
#define DEFAULT_MAX_BODY (16u * 1024 * 1024)
#define THREAD_STACK (512 * 1024)

static vx_server *volatile signal_target;

static void on_signal(int sig)
{
	(void)sig;
	if (signal_target)
		vx_server_stop(signal_target);
}

void vx_server_count(vx_server *s, route_stats *rs, int status,
		     double seconds)
{
	if (status < 100 || status > 599)
		status = 500;
	vx_counter *c = atomic_load(&rs->by_status[status]);
	if (!c) {
		char labels[160];
		snprintf(labels, sizeof(labels), "route=\"%s\",code=\"%d\"",
			 rs->label, status);
		c = vx_metrics_counter(s->metrics, "voxline_http_requests_total",
				       "HTTP requests by route and status",
				       labels);
		atomic_store(&rs->by_status[status], c);
	}
	vx_counter_add(c, 1);
	vx_histogram_observe(rs->latency, seconds);
}

static void stats_init(vx_server *s, route_stats *rs, const char *label)
{
	char labels[128];
	rs->label = label;
	snprintf(labels, sizeof(labels), "route=\"%s\"", label);
	rs->latency = vx_metrics_histogram(s->metrics,
		"voxline_http_request_duration_seconds",
		"HTTP request latency by route", labels,
		vx_latency_buckets, vx_latency_buckets_n);
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
					     "overloaded" };
	const char *status = names[h];
	if (atomic_load(&s->draining)) {
		status = "draining";
		snprintf(detail, sizeof(detail), "shutting down");
	}
	bool ok = !strcmp(status, "ok");
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

bool vx_server_builtin(vx_server *s, vx_req *req)
{
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
	pthread_mutex_init(&s->ws_lock, NULL);
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();

	int r = vx_metrics_new(&s->metrics);
	if (r < 0)
		goto out_free;
	stats_init(s, &s->builtin_stats, "builtin");
	for (size_t i = 0; i < cfg->n_routes; i++)
		stats_init(s, &s->stats[i], cfg->routes[i].path);
	s->rejected = vx_metrics_counter(s->metrics, "voxline_rejected_total",
		"Requests refused by admission control (503)", NULL);
	s->head_timeouts = vx_metrics_counter(s->metrics,
		"voxline_head_timeouts_total",
		"Connections closed for not sending a request head in time", NULL);
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
	s->mhd = MHD_start_daemon(
		MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
		MHD_USE_NO_LISTEN_SOCKET | MHD_USE_POLL | MHD_USE_ITC,
		0, NULL, NULL, vx_req_on_access, s,
		MHD_OPTION_URI_LOG_CALLBACK, vx_req_on_uri, s,
		MHD_OPTION_NOTIFY_COMPLETED, vx_req_on_completed, s,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->cfg.max_connections,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->cfg.idle_timeout_s,
		MHD_OPTION_THREAD_STACK_SIZE, (size_t)THREAD_STACK,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
		MHD_OPTION_END);
	if (!s->mhd) {
		r = -EIO;
		goto out_free;
	}
	if (s->cfg.n_ws_routes && (r = vx_ws_start(s)) < 0)
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
	vx_accept_stop(s);
	vx_ws_stop(s);
	if (s->mhd)
		MHD_stop_daemon(s->mhd);
	if (s->listen_fd >= 0 && !s->listen_from_systemd)
		close(s->listen_fd);
	if (s->wake_pipe[0] >= 0) {
		close(s->wake_pipe[0]);
		close(s->wake_pipe[1]);
	}
	if (signal_target == s)
		signal_target = NULL;
	free(s->adopt_fds);
	pthread_mutex_destroy(&s->ws_lock);
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
vx_metrics *vx_server_metrics(vx_server *s) { return s->metrics; }

int vx_server_in_flight(const vx_server *s)
{
	return atomic_load(&s->in_flight) + atomic_load(&s->ws_open);
}

int vx_server_run(vx_server *s)
{
	signal_target = s;
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	int r = vx_accept_start(s);
	if (r < 0)
		return r;
	vx_log_info(NULL, "listening on %s:%d", s->cfg.host ? s->cfg.host :
		    "127.0.0.1", s->port);
	sd_notifyf(0, "READY=1\nSTATUS=serving on port %d", s->port);

	uint64_t wd_usec = 0;
	bool watchdog = sd_watchdog_enabled(0, &wd_usec) > 0;
	while (!atomic_load(&s->draining)) {
		usleep(watchdog && wd_usec / 2 < 200000 ? wd_usec / 2 : 200000);
		if (watchdog)
			sd_notify(0, "WATCHDOG=1");
	}

	sd_notify(0, "STOPPING=1\nSTATUS=draining");
	vx_log_info(NULL, "draining: %d in flight", vx_server_in_flight(s));
	double until = vx_now() + s->cfg.drain_timeout_s;
	while (vx_server_in_flight(s) > 0 && vx_now() < until)
		usleep(20000);
	vx_accept_stop(s);
	vx_log_info(NULL, "stopped");
	return 0;
}
