/*
 * vx_accept.c - the acceptor: one port, two libraries.
 *
 * Accepts connections, peeks at the request head without consuming it and
 * routes the socket: a WebSocket upgrade on a registered path goes to
 * libwebsockets (vx_ws.c), anything else to libmicrohttpd. A head that does
 * not start with "GET " cannot be an upgrade and goes to MHD at once. While
 * a head is incomplete, SO_RCVLOWAT is raised so poll() does not spin on the
 * bytes already peeked. Heads that take longer than head_timeout_ms get a
 * 408; at most ACCEPT_MAX_PENDING sockets wait at a time.
 */
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vx_server_int.h"

#define ACCEPT_MAX_PENDING 256
#define HEAD_PEEK_MAX 8192

typedef struct pending_conn {
	int fd;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	double deadline;
	int lowat;
} pending_conn;

const vx_ws_route *vx_ws_route_find(const vx_server *s, const char *path,
				    size_t len)
{
	for (size_t i = 0; i < s->cfg.n_ws_routes; i++) {
		const char *p = s->cfg.ws_routes[i].path;
		if (strlen(p) == len && !memcmp(p, path, len))
			return &s->cfg.ws_routes[i];
	}
	return NULL;
}

/* Finds a header's value in a raw head; case-insensitive name. */
static bool head_has_token(const char *head, const char *name,
			   const char *token)
{
	size_t nlen = strlen(name), tlen = strlen(token);
	for (const char *line = strstr(head, "\r\n"); line;
	     line = strstr(line + 2, "\r\n")) {
		const char *h = line + 2;
		if (strncasecmp(h, name, nlen) != 0 || h[nlen] != ':')
			continue;
		const char *end = strstr(h, "\r\n");
		for (const char *v = h + nlen + 1; v && end && v + tlen <= end; v++) {
			if (!strncasecmp(v, token, tlen))
				return true;
		}
	}
	return false;
}

enum route_to { TO_WAIT, TO_MHD, TO_WS, TO_REFUSE, TO_CLOSE };

static enum route_to classify(vx_server *s, pending_conn *p)
{
	char buf[HEAD_PEEK_MAX + 1];
	ssize_t n = recv(p->fd, buf, HEAD_PEEK_MAX, MSG_PEEK | MSG_DONTWAIT);
	if (n == 0)
		return TO_CLOSE;
	if (n < 0)
		return (errno == EAGAIN || errno == EINTR) ? TO_WAIT : TO_CLOSE;
	buf[n] = '\0';
	size_t cmp = (size_t)n < 4 ? (size_t)n : 4;
	if (memcmp(buf, "GET ", cmp) != 0 || !s->cfg.n_ws_routes)
		return TO_MHD;
	if (!strstr(buf, "\r\n\r\n")) {
		if (n >= HEAD_PEEK_MAX)
			return TO_MHD;
		int lowat = (int)n + 1;
		if (lowat != p->lowat) {
			setsockopt(p->fd, SOL_SOCKET, SO_RCVLOWAT, &lowat,
				   sizeof(lowat));
			p->lowat = lowat;
		}
		return TO_WAIT;
	}
	const char *path = buf + 4;
	size_t plen = strcspn(path, " ?\r\n");
	if (!vx_ws_route_find(s, path, plen) ||
	    !head_has_token(buf, "upgrade", "websocket"))
		return TO_MHD;
	if (s->cfg.ws_admit) {
		char route[128];
		snprintf(route, sizeof(route), "%.*s", (int)plen, path);
		if (!s->cfg.ws_admit(s->cfg.user, route))
			return TO_REFUSE;
	}
	return TO_WS;
}

/* Writes a whole HTTP answer with a JSON error on a socket MHD never saw. */
static void answer_raw(int fd, const char *status, const char *headers,
		       const char *code, const char *message)
{
	char body[256], msg[512];
	int blen = snprintf(body, sizeof(body),
			    "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n",
			    code, message);
	int n = snprintf(msg, sizeof(msg),
			 "HTTP/1.1 %s\r\nContent-Type: application/json\r\n%s"
			 "Connection: close\r\nContent-Length: %d\r\n\r\n%s",
			 status, headers, blen, body);
	ssize_t r = send(fd, msg, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
	(void)r;
}

static void answer_408(vx_server *s, pending_conn *p)
{
	answer_raw(p->fd, "408 Request Timeout", "", "timeout",
		   "request head not received in time");
	vx_counter_add(s->head_timeouts, 1);
	close(p->fd);
}

static void pending_release(pending_conn *p)
{
	if (p->lowat > 1) {
		int one = 1;
		setsockopt(p->fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one));
	}
}

static void dispatch(vx_server *s, pending_conn *p, enum route_to to)
{
	pending_release(p);
	if (to == TO_REFUSE) {
		answer_raw(p->fd, "503 Service Unavailable", "Retry-After: 1\r\n",
			   "overloaded", "at capacity; retry later");
		vx_counter_add(s->rejected, 1);
		close(p->fd);
	} else if (to == TO_WS) {
		vx_ws_adopt(s, p->fd);
	} else if (to == TO_MHD) {
		/* On failure (connection limit) MHD has closed the socket. */
		MHD_add_connection(s->mhd, p->fd, (struct sockaddr *)&p->addr,
				   p->addrlen);
	} else {
		close(p->fd);
	}
}

static void accept_new(vx_server *s, pending_conn *pend, size_t *n_pend)
{
	for (;;) {
		pending_conn p = { .addrlen = sizeof(p.addr), .lowat = 1 };
		p.fd = accept4(s->listen_fd, (struct sockaddr *)&p.addr,
			       &p.addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (p.fd < 0)
			return;
		if (*n_pend >= ACCEPT_MAX_PENDING) {
			close(p.fd);
			continue;
		}
		p.deadline = vx_now() + s->cfg.head_timeout_ms / 1000.0;
		enum route_to to = classify(s, &p);
		if (to == TO_WAIT)
			pend[(*n_pend)++] = p;
		else
			dispatch(s, &p, to);
	}
}

static void *accept_main(void *arg)
{
	vx_server *s = arg;
	pending_conn *pend = calloc(ACCEPT_MAX_PENDING, sizeof(*pend));
	struct pollfd *pfd = calloc(ACCEPT_MAX_PENDING + 2, sizeof(*pfd));
	size_t n_pend = 0;
	if (!pend || !pfd)
		goto out_free;
	while (!atomic_load(&s->stopping)) {
		pfd[0] = (struct pollfd){ .fd = s->listen_fd, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = s->wake_pipe[0], .events = POLLIN };
		for (size_t i = 0; i < n_pend; i++)
			pfd[i + 2] = (struct pollfd){ .fd = pend[i].fd,
						      .events = POLLIN };
		int timeout = n_pend ? 100 : -1;
		if (poll(pfd, n_pend + 2, timeout) < 0 && errno != EINTR)
			break;
		double now = vx_now();
		size_t keep = 0;
		for (size_t i = 0; i < n_pend; i++) {
			enum route_to to = TO_WAIT;
			if (pfd[i + 2].revents)
				to = classify(s, &pend[i]);
			if (to == TO_WAIT && now > pend[i].deadline)
				answer_408(s, &pend[i]);
			else if (to == TO_WAIT)
				pend[keep++] = pend[i];
			else
				dispatch(s, &pend[i], to);
		}
		n_pend = keep;
		if (pfd[0].revents & POLLIN)
			accept_new(s, pend, &n_pend);
	}
	for (size_t i = 0; i < n_pend; i++)
		close(pend[i].fd);
out_free:
	free(pend);
	free(pfd);
	return NULL;
}

int vx_accept_start(vx_server *s)
{
	int r = pthread_create(&s->accept_thread, NULL, accept_main, s);
	if (r != 0)
		return -r;
	s->accept_started = true;
	return 0;
}

void vx_accept_stop(vx_server *s)
{
	if (!s->accept_started)
		return;
	atomic_store(&s->stopping, true);
	ssize_t r = write(s->wake_pipe[1], "x", 1);
	(void)r;
	pthread_join(s->accept_thread, NULL);
	s->accept_started = false;
}
