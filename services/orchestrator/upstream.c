/*
 * upstream.c - instance lists with health-checked round-robin choice, and
 * the thread that polls every instance's /healthz (see upstream.h).
 */
#include "upstream.h"
#include "vx_time.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define UPSTREAM_MAX_NAME 16   /* bytes of a list's name */

typedef struct instance {
	char host[UPSTREAM_MAX_HOST + 1];
	int port;
	char url[UPSTREAM_MAX_URL];   /* ws://host:port/ws_path */
	atomic_bool healthy;
} instance;

struct upstream {
	char name[UPSTREAM_MAX_NAME];
	instance inst[UPSTREAM_MAX_INSTANCES];
	size_t n;
	atomic_uint next;             /* round-robin position */
};

struct upstream_checker {
	upstream *const *lists;
	size_t n;
	int interval_s;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
};

/* Parses one "[scheme://]host[:port][/...]" entry of len bytes. */
static int parse_entry(const char *s, size_t len, const char *ws_path,
		       instance *ret)
{
	while (len && (*s == ' ' || *s == '\t'))
		s++, len--;
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	const char *sep = memmem(s, len, "://", 3);
	if (sep) {
		size_t sl = (size_t)(sep - s);
		if (!((sl == 4 && !strncasecmp(s, "http", 4)) ||
		      (sl == 2 && !strncasecmp(s, "ws", 2))))
			return -EINVAL;
		len -= sl + 3;
		s = sep + 3;
	}
	size_t hl = strcspn(s, "/");
	if (hl > len)
		hl = len;
	const char *colon = NULL;
	if (hl && s[0] == '[') {
		const char *rb = memchr(s, ']', hl);
		if (!rb)
			return -EINVAL;
		colon = rb + 1 < s + hl && rb[1] == ':' ? rb + 1 : NULL;
	} else {
		colon = memchr(s, ':', hl);
	}
	size_t host_len = colon ? (size_t)(colon - s) : hl;
	if (host_len == 0 || host_len > UPSTREAM_MAX_HOST)
		return -EINVAL;
	int port = 80;
	if (colon) {
		char num[8];
		size_t nl = (size_t)(s + hl - colon - 1);
		if (nl == 0 || nl >= sizeof(num))
			return -EINVAL;
		memcpy(num, colon + 1, nl);
		num[nl] = 0;
		char *end;
		long p = strtol(num, &end, 10);
		if (*end || p < 1 || p > 65535)
			return -EINVAL;
		port = (int)p;
	}
	memcpy(ret->host, s, host_len);
	ret->host[host_len] = 0;
	/* getaddrinfo wants IPv6 literals without brackets. */
	if (ret->host[0] == '[') {
		memmove(ret->host, ret->host + 1, host_len - 2);
		ret->host[host_len - 2] = 0;
	}
	ret->port = port;
	int n = snprintf(ret->url, sizeof(ret->url), "ws://%.*s:%d%s",
			 (int)host_len, s, port, ws_path);
	if (n < 0 || (size_t)n >= sizeof(ret->url))
		return -EINVAL;
	atomic_init(&ret->healthy, true);
	return 0;
}

int upstream_new(const char *name, const char *urls, const char *ws_path,
		 upstream **ret)
{
	if (!name || !urls || !ws_path)
		return -EINVAL;
	upstream *u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	snprintf(u->name, sizeof(u->name), "%s", name);
	int r = 0;
	for (const char *p = urls; *p && r == 0;) {
		size_t len = strcspn(p, ",");
		if (u->n == UPSTREAM_MAX_INSTANCES)
			r = -E2BIG;
		else
			r = parse_entry(p, len, ws_path, &u->inst[u->n++]);
		p += len + (p[len] == ',');
	}
	if (r == 0 && u->n == 0)
		r = -EINVAL;
	if (r < 0) {
		free(u);
		return r;
	}
	*ret = u;
	return 0;
}

void upstream_free(upstream *u)
{
	free(u);
}

const char *upstream_name(const upstream *u)
{
	return u->name;
}

size_t upstream_count(const upstream *u)
{
	return u->n;
}

size_t upstream_healthy(const upstream *u)
{
	size_t n = 0;
	for (size_t i = 0; i < u->n; i++)
		n += atomic_load(&u->inst[i].healthy);
	return n;
}

int upstream_pick(upstream *u, int avoid, char *ret_url, size_t len)
{
	unsigned start = atomic_fetch_add(&u->next, 1);
	int pick = -1, fallback = -1;
	for (size_t k = 0; k < u->n; k++) {
		int i = (int)((start + k) % u->n);
		if (i == avoid)
			continue;
		if (fallback < 0)
			fallback = i;
		if (atomic_load(&u->inst[i].healthy)) {
			pick = i;
			break;
		}
	}
	if (pick < 0)
		pick = fallback >= 0 ? fallback : (int)(start % u->n);
	snprintf(ret_url, len, "%s", u->inst[pick].url);
	return pick;
}

void upstream_report(upstream *u, int i, bool ok)
{
	if (i >= 0 && (size_t)i < u->n)
		atomic_store(&u->inst[i].healthy, ok);
}

void upstream_status_json(const upstream *u, vx_buf *out)
{
	vx_buf_puts(out, "{\"name\":");
	vx_buf_json_str(out, u->name, strlen(u->name));
	vx_buf_puts(out, ",\"instances\":[");
	for (size_t i = 0; i < u->n; i++) {
		vx_buf_puts(out, i ? ",{\"url\":" : "{\"url\":");
		vx_buf_json_str(out, u->inst[i].url, strlen(u->inst[i].url));
		vx_buf_printf(out, ",\"healthy\":%s}",
			      atomic_load(&u->inst[i].healthy) ? "true" : "false");
	}
	vx_buf_puts(out, "]}");
}


/* Waits for events on fd until deadline; -ETIMEDOUT when it passes. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int left = (int)(deadline - (int64_t)vx_now_ms());
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd p = { .fd = fd, .events = events };
		int r = poll(&p, 1, left);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

static int connect_deadline(const struct addrinfo *ai, int64_t deadline)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			ai->ai_protocol);
	if (fd < 0)
		return -errno;
	int r = 0;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS) {
			r = -errno;
		} else if ((r = wait_fd(fd, POLLOUT, deadline)) == 0) {
			int err = 0;
			socklen_t el = sizeof(err);
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
			r = -err;
		}
	}
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

int upstream_probe(const char *host, int port, int timeout_ms)
{
	int64_t deadline = (int64_t)vx_now_ms() + timeout_ms;
	char portstr[8];
	snprintf(portstr, sizeof(portstr), "%d", port);
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
	if (getaddrinfo(host, portstr, &hints, &ai) != 0 || !ai)
		return -EHOSTUNREACH;
	int fd = connect_deadline(ai, deadline);
	freeaddrinfo(ai);
	if (fd < 0)
		return fd;
	char req[UPSTREAM_MAX_HOST + 96];
	int n = snprintf(req, sizeof(req),
			 "GET /healthz HTTP/1.1\r\nHost: %s:%d\r\n"
			 "Connection: close\r\n\r\n", host, port);
	int r = send(fd, req, (size_t)n, MSG_NOSIGNAL) == n ? 0 : -EIO;
	char head[64];
	size_t got = 0;
	while (r == 0 && got < 12) {
		if ((r = wait_fd(fd, POLLIN, deadline)) < 0)
			break;
		ssize_t k = recv(fd, head + got, sizeof(head) - 1 - got, 0);
		if (k <= 0)
			r = k < 0 && errno == EAGAIN ? 0 : -ECONNRESET;
		else
			got += (size_t)k;
	}
	close(fd);
	if (r < 0)
		return r;
	head[got] = 0;
	/* "HTTP/1.1 200 ..." */
	const char *sp = strchr(head, ' ');
	return sp && !strncmp(sp + 1, "200", 3) ? 0 : -EHOSTDOWN;
}

static void check_all(upstream_checker *hc)
{
	for (size_t l = 0; l < hc->n; l++) {
		upstream *u = hc->lists[l];
		for (size_t i = 0; i < u->n; i++) {
			int r = upstream_probe(u->inst[i].host, u->inst[i].port,
					       UPSTREAM_HEALTH_TIMEOUT_MS);
			atomic_store(&u->inst[i].healthy, r == 0);
		}
	}
}

static void *checker_main(void *arg)
{
	upstream_checker *hc = arg;
	pthread_mutex_lock(&hc->lock);
	while (!hc->stop) {
		pthread_mutex_unlock(&hc->lock);
		check_all(hc);
		pthread_mutex_lock(&hc->lock);
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += hc->interval_s;
		while (!hc->stop &&
		       pthread_cond_timedwait(&hc->cond, &hc->lock, &ts) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&hc->lock);
	return NULL;
}

int upstream_checker_start(upstream *const *lists, size_t n, int interval_s,
			   upstream_checker **ret)
{
	if (interval_s < 1)
		return -EINVAL;
	upstream_checker *hc = calloc(1, sizeof(*hc));
	if (!hc)
		return -ENOMEM;
	hc->lists = lists;
	hc->n = n;
	hc->interval_s = interval_s;
	pthread_mutex_init(&hc->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&hc->cond, &ca);
	pthread_condattr_destroy(&ca);
	int r = -pthread_create(&hc->thread, NULL, checker_main, hc);
	if (r < 0) {
		pthread_cond_destroy(&hc->cond);
		pthread_mutex_destroy(&hc->lock);
		free(hc);
		return r;
	}
	*ret = hc;
	return 0;
}

void upstream_checker_stop(upstream_checker *hc)
{
	if (!hc)
		return;
	pthread_mutex_lock(&hc->lock);
	hc->stop = true;
	pthread_cond_signal(&hc->cond);
	pthread_mutex_unlock(&hc->lock);
	pthread_join(hc->thread, NULL);
	pthread_cond_destroy(&hc->cond);
	pthread_mutex_destroy(&hc->lock);
	free(hc);
}
