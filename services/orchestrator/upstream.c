/*
 * upstream.c - instance lists with health-checked round-robin choice, and
 * the thread that polls every instance's /healthz (see upstream.h).
 */
#include "upstream.h"
#include "vx_time.h"

#include <ctype.h>
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
	char http[UPSTREAM_MAX_HOST + 16]; /* http://host:port, for people */
	atomic_bool healthy;
	int probe_rc;                 /* last check: 0, -EHOSTDOWN, connect error; lock */
	char detail[UPSTREAM_MAX_DETAIL]; /* what the last check saw; lock */
} instance;

struct upstream {
	char name[UPSTREAM_MAX_NAME];
	instance inst[UPSTREAM_MAX_INSTANCES];
	size_t n;
	atomic_uint next;             /* round-robin position */
	pthread_mutex_t lock;         /* the instances' probe_rc and detail */
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
	snprintf(ret->http, sizeof(ret->http), "http://%.*s:%d", (int)host_len, s, port);
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
	pthread_mutex_init(&u->lock, NULL);
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
		pthread_mutex_destroy(&u->lock);
		free(u);
		return r;
	}
	*ret = u;
	return 0;
}

void upstream_free(upstream *u)
{
	if (!u)
		return;
	pthread_mutex_destroy(&u->lock);
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

/* Connects to host:port before deadline: the socket, or negative errno. */
static int dial(const char *host, int port, int64_t deadline)
{
	char portstr[8];
	snprintf(portstr, sizeof(portstr), "%d", port);
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
	if (getaddrinfo(host, portstr, &hints, &ai) != 0 || !ai)
		return -EHOSTUNREACH;
	int fd = connect_deadline(ai, deadline);
	freeaddrinfo(ai);
	return fd;
}

/* Sends req and reads the answer until EOF, cap bytes or the deadline
 * into out. 0 when the peer closed, -E2BIG past cap, else negative errno. */
static int exchange(int fd, const char *req, size_t req_len, size_t cap,
		    int64_t deadline, vx_buf *out)
{
	if (send(fd, req, req_len, MSG_NOSIGNAL) != (ssize_t)req_len)
		return -EIO;
	char chunk[4096];
	for (;;) {
		int r = wait_fd(fd, POLLIN, deadline);
		if (r < 0)
			return r;
		ssize_t k = recv(fd, chunk, sizeof(chunk), 0);
		if (k == 0)
			return 0;
		if (k < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return -errno;
		}
		if (out->len + (size_t)k > cap)
			return -E2BIG;
		if ((r = vx_buf_append(out, chunk, (size_t)k)) < 0)
			return r;
	}
}

/* The status code of an HTTP answer in buf, and where its body starts
 * (*body_off); -EPROTO when it is not one. */
static int parse_status(const vx_buf *b, size_t *body_off)
{
	if (!b->data || b->len < 12 || strncmp(b->data, "HTTP/1.", 7))
		return -EPROTO;
	int code = atoi(b->data + 9);
	const char *end = memmem(b->data, b->len, "\r\n\r\n", 4);
	*body_off = end ? (size_t)(end - b->data) + 4 : b->len;
	return code >= 100 && code <= 599 ? code : -EPROTO;
}

/* Copies the JSON string value of "key" in body (n bytes) to out, escapes
 * simplified (control characters and \u become '?'); "" when absent. */
static void json_field(const char *body, size_t n, const char *key, char *out,
		       size_t len)
{
	char pat[32];
	snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	out[0] = 0;
	const char *p = memmem(body, n, pat, strlen(pat));
	if (!p || len == 0)
		return;
	p += strlen(pat);
	const char *end = body + n;
	size_t o = 0;
	while (p < end && *p != '"' && o + 1 < len) {
		char ch = *p++;
		if (ch == '\\' && p < end) {
			ch = *p++;
			if (ch == 'u') {
				p += 4 <= end - p ? 4 : end - p;
				ch = '?';
			} else if (ch != '"' && ch != '\\' && ch != '/') {
				ch = ' ';
			}
		}
		out[o++] = (unsigned char)ch < 0x20 ? ' ' : ch;
	}
	out[o] = 0;
}

int upstream_probe_detail(const char *host, int port, int timeout_ms,
			  char *detail, size_t len)
{
	int64_t deadline = (int64_t)vx_now_ms() + timeout_ms;
	detail[0] = 0;
	int fd = dial(host, port, deadline);
	if (fd < 0) {
		snprintf(detail, len, "%s", strerror(-fd));
		return fd;
	}
	char req[UPSTREAM_MAX_HOST + 96];
	int n = snprintf(req, sizeof(req),
			 "GET /healthz HTTP/1.0\r\nHost: %s:%d\r\n"
			 "Connection: close\r\n\r\n", host, port);
	vx_buf b = {0};
	int r = exchange(fd, req, (size_t)n, 4096, deadline, &b);
	close(fd);
	size_t body = 0;
	int code = r == -E2BIG || r == 0 ? parse_status(&b, &body) : r;
	if (code < 0) {
		snprintf(detail, len, "/healthz: %s", strerror(-code));
		r = code;
	} else if (code == 200) {
		r = 0;
	} else {
		char status[32], why[UPSTREAM_MAX_DETAIL];
		json_field(b.data + body, b.len - body, "status", status, sizeof(status));
		json_field(b.data + body, b.len - body, "detail", why, sizeof(why));
		snprintf(detail, len, "/healthz %d%s%s%s%s", code, status[0] ? " " : "",
			 status, why[0] ? ": " : "", why);
		r = -EHOSTDOWN;
	}
	vx_buf_release(&b);
	return r;
}

int upstream_probe(const char *host, int port, int timeout_ms)
{
	char detail[UPSTREAM_MAX_DETAIL];
	return upstream_probe_detail(host, port, timeout_ms, detail, sizeof(detail));
}

bool upstream_up(const upstream *u)
{
	pthread_mutex_t *lock = (pthread_mutex_t *)&u->lock;
	bool up = false;
	pthread_mutex_lock(lock);
	for (size_t i = 0; i < u->n && !up; i++)
		up = atomic_load(&u->inst[i].healthy) && u->inst[i].probe_rc == 0;
	pthread_mutex_unlock(lock);
	return up;
}

/* "http://a:1,http://b:2" into buf. */
static void http_urls(const upstream *u, char *buf, size_t len)
{
	size_t o = 0;
	buf[0] = 0;
	for (size_t i = 0; i < u->n && o < len; i++) {
		int k = snprintf(buf + o, len - o, "%s%s", i ? "," : "", u->inst[i].http);
		if (k < 0)
			break;
		o += (size_t)k;
	}
}

/* The instance that best says why the stage is down (one that answers
 * but is not ready first), its rc and detail; lock taken here. */
static int down_reason(const upstream *u, char *detail, size_t len, size_t *ret_i)
{
	pthread_mutex_t *lock = (pthread_mutex_t *)&u->lock;
	int rc = 0;
	size_t pick = 0;
	pthread_mutex_lock(lock);
	for (size_t i = 0; i < u->n; i++) {
		if (atomic_load(&u->inst[i].healthy) && u->inst[i].probe_rc == 0)
			continue;
		if (rc == 0 || (u->inst[i].probe_rc == -EHOSTDOWN && rc != -EHOSTDOWN)) {
			rc = u->inst[i].probe_rc ? u->inst[i].probe_rc : -ECONNREFUSED;
			pick = i;
		}
	}
	const instance *in = &u->inst[pick];
	if (in->probe_rc == 0 && !atomic_load(&in->healthy))
		snprintf(detail, len, "a connection to it failed");
	else
		snprintf(detail, len, "%s", in->detail);
	pthread_mutex_unlock(lock);
	*ret_i = pick;
	return rc;
}

void upstream_stage_json(const upstream *u, vx_buf *out)
{
	char urls[UPSTREAM_MAX_INSTANCES * 48];
	http_urls(u, urls, sizeof(urls));
	bool up = upstream_up(u);
	vx_buf_printf(out, "{\"status\":\"%s\",\"url\":", up ? "ok" : "unavailable");
	vx_buf_json_str(out, urls, strlen(urls));
	vx_buf_printf(out, ",\"healthy\":%zu,\"instances\":%zu", upstream_healthy(u), u->n);
	if (!up) {
		char detail[UPSTREAM_MAX_DETAIL], hint[UPSTREAM_MAX_HINT];
		size_t i;
		down_reason(u, detail, sizeof(detail), &i);
		upstream_hint(u, hint, sizeof(hint));
		vx_buf_puts(out, ",\"detail\":");
		vx_buf_json_str(out, detail, strlen(detail));
		vx_buf_puts(out, ",\"hint\":");
		vx_buf_json_str(out, hint, strlen(hint));
	}
	vx_buf_puts(out, "}");
}

void upstream_hint(const upstream *u, char *buf, size_t len)
{
	char detail[UPSTREAM_MAX_DETAIL], env[UPSTREAM_MAX_NAME];
	size_t i = 0;
	int rc = upstream_up(u) ? 0 : down_reason(u, detail, sizeof(detail), &i);
	if (rc == 0)
		detail[0] = 0;
	for (size_t k = 0; k < sizeof(env); k++)
		env[k] = (char)toupper((unsigned char)u->name[k]);
	const char *url = u->inst[i].http;
	bool llm = !strcmp(u->name, "llm");
	if (rc == -EHOSTDOWN && strstr(detail, "loading")) {
		snprintf(buf, len, "voxline-%s at %s is still starting (%.100s): "
			 "wait a few seconds", u->name, url, detail);
	} else if (rc == -EHOSTDOWN && strstr(detail, "draining")) {
		snprintf(buf, len, "voxline-%s at %s is shutting down (%.100s): start "
			 "it again (`make run` starts the whole stack)", u->name, url,
			 detail);
	} else if (rc == -EHOSTDOWN && strstr(detail, "overloaded")) {
		snprintf(buf, len, "voxline-%s at %s is at capacity (%.100s): retry, or "
			 "run more instances (--%s-url takes a comma-separated list)",
			 u->name, url, detail, u->name);
	} else if (rc == -EHOSTDOWN && llm) {
		/* The first run: voxline-llm has neither a model file nor a
		 * server behind it. Its words are in the stage's detail. */
		snprintf(buf, len, "voxline-llm at %s has no model it can serve: "
			 "download one with `make models` and run `make run` again, or "
			 "start an OpenAI-compatible server (llama.cpp's llama-server, "
			 "Ollama, vLLM) and run `VOXLINE_LLM_URL=http://127.0.0.1:8080 "
			 "make run` (installed: set voxline-llm's --model or --url)", url);
	} else if (rc == -EHOSTDOWN) {
		snprintf(buf, len, "voxline-%s at %s runs but is not ready (%.100s): "
			 "see its log", u->name, url, detail);
	} else {
		snprintf(buf, len, "voxline-%s is not reachable at %s%s%.60s%s: start "
			 "it (`make run` starts the whole stack), or point "
			 "VOXLINE_ORCHESTRATOR_%s_URL / --%s-url at a running "
			 "voxline-%s%s", u->name, url, detail[0] ? " (" : "", detail,
			 detail[0] ? ")" : "", env, u->name, u->name,
			 llm ? " (it serves a GGUF file itself or fronts llama.cpp's "
			       "server, Ollama or vLLM)" : "");
	}
}

int upstream_get(upstream *u, const char *path, const char *headers,
		 int timeout_ms, int *ret_status,
		 vx_buf *ret_body, char *ctype, size_t ctype_len)
{
	char url[UPSTREAM_MAX_URL];
	int avoid = -1, r = -EHOSTUNREACH;
	for (int attempt = 0; attempt < 2 && (attempt == 0 || u->n > 1); attempt++) {
		size_t i = (size_t)upstream_pick(u, avoid, url, sizeof(url));
		const instance *in = &u->inst[i];
		int64_t deadline = (int64_t)vx_now_ms() + timeout_ms;
		int fd = dial(in->host, in->port, deadline);
		if (fd < 0) {
			upstream_report(u, (int)i, false);
			avoid = (int)i;
			r = fd;
			continue;
		}
		char req[UPSTREAM_MAX_HOST + 1024];
		int n = snprintf(req, sizeof(req), "GET %.300s HTTP/1.0\r\nHost: %s:%d\r\n"
				 "Accept: application/json\r\n%.400sConnection: close\r\n\r\n",
				 path, in->host, in->port, headers ? headers : "");
		vx_buf b = {0};
		r = exchange(fd, req, (size_t)n, UPSTREAM_MAX_GET_BYTES + 16384,
			     deadline, &b);
		close(fd);
		size_t body = 0;
		int code = r == 0 ? parse_status(&b, &body) : r;
		if (code < 0) {
			vx_buf_release(&b);
			return code;
		}
		ctype[0] = 0;
		const char *h = b.data ? strcasestr(b.data, "\r\ncontent-type:") : NULL;
		if (h && (size_t)(h - b.data) < body) {
			h += strlen("\r\ncontent-type:");
			h += strspn(h, " \t");
			snprintf(ctype, ctype_len, "%.*s", (int)strcspn(h, "\r\n"), h);
		}
		vx_buf_reset(ret_body);
		vx_buf_append(ret_body, b.data + body, b.len - body);
		vx_buf_release(&b);
		*ret_status = code;
		return 0;
	}
	return r;
}

static void check_all(upstream_checker *hc)
{
	for (size_t l = 0; l < hc->n; l++) {
		upstream *u = hc->lists[l];
		for (size_t i = 0; i < u->n; i++) {
			char detail[UPSTREAM_MAX_DETAIL];
			int r = upstream_probe_detail(u->inst[i].host, u->inst[i].port,
						      UPSTREAM_HEALTH_TIMEOUT_MS,
						      detail, sizeof(detail));
			pthread_mutex_lock(&u->lock);
			u->inst[i].probe_rc = r;
			memcpy(u->inst[i].detail, detail, sizeof(detail));
			atomic_store(&u->inst[i].healthy, r == 0);
			pthread_mutex_unlock(&u->lock);
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
