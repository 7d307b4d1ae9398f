/*
 * vx_loop.c - the serving loops: one port, two libraries, no thread per
 * connection.
 *
 * Each loop is one thread with one epoll set holding the listening socket
 * (EPOLLEXCLUSIVE, so one loop wakes per connection), the connections whose
 * first request head has not fully arrived, and its own libmicrohttpd daemon
 * run in external-epoll mode. A new connection costs a descriptor and a
 * small struct until its head is in; vx_head.c then decides: refuse it with
 * a JSON error, hand a WebSocket upgrade on a registered path to
 * libwebsockets (ops->ws_adopt), or hand it to this loop's MHD daemon. Requests
 * whose answer is produced on a worker are suspended in MHD
 * (MHD_suspend_connection) and resumed from this loop when the answer or
 * more stream data is ready (vx_loop_resume, from any thread).
 *
 * Limits: at most max_connections connections are open (heads waiting, MHD
 * and WebSocket together); past it a connection is answered 503 + Retry-After
 * once its head is in, and closed. A head gets head_timeout_ms (408).
 * Suspended requests are watched every WATCH_MS for a client that hung up or
 * a deadline that passed: their cancel flag is then set.
 *
 * The loop stamps a heartbeat each turn; vx_server.c pings the systemd
 * watchdog only while every loop's heartbeat is fresh.
 *
 * The loop calls nothing above it: requests (vx_req.c) and WebSockets
 * (vx_ws.c) are reached through the vx_loop_ops the server wires in.
 */
#include "vx_loop.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vx_error.h"
#include "vx_time.h"

#define PEEK_MAX (16 * 1024)        /* head + first chunk line */
#define HEAD_MAX (8 * 1024)         /* request line + headers (431) */
#define LINE_MAX_BYTES (8 * 1024)   /* request line (414) */
#define MHD_POOL (16 * 1024)        /* per connection: a head and buffers */
#define HEADERS_MAX 100             /* header lines (431) */
#define REFUSING_MAX 256            /* over-limit connections being answered */
#define REFUSE_WAIT_S 1.0           /* over-limit: wait this long for a head */
#define LINGER_S 2.0                /* after an error answer: read and drop */
#define WATCH_MS 50                 /* suspended requests: hang-up, deadline */
#define TICK_MS 250                 /* longest sleep (heartbeat, drain) */
#define MAX_EVENTS 64

enum wait_state {
	WAIT_HEAD,                  /* counted in n_open; waiting for a head */
	WAIT_REFUSE,                /* over the limit: answer 503 once readable */
	WAIT_LINGER,                /* answered with an error: drain, then close */
};

/* A connection the loop holds itself (libraries have not seen it). */
typedef struct conn_wait {
	int fd;
	enum wait_state state;
	double deadline;            /* monotonic seconds */
	size_t idx;                 /* in loop->waits */
	struct sockaddr_storage addr;
	socklen_t addrlen;
} conn_wait;

struct vx_loops {
	vx_loop_config cfg;
	vx_loop **loops;
	int n_loops;
	atomic_int n_open;          /* connections held: heads + MHD */
	atomic_bool stopping;
};

struct vx_loop {
	vx_loops *ls;
	int id;
	pthread_t thread;
	bool started;
	int epfd;
	int wake_fd;                /* eventfd: resume queue, stop, drain */
	struct MHD_Daemon *mhd;
	int mhd_epfd;
	atomic_bool listening;      /* listen fd in epfd */
	double relisten_at;         /* after EMFILE: retry accept then */
	double next_watch;

	conn_wait **waits;          /* loop thread only */
	size_t n_waits, cap_waits;
	size_t n_refusing;

	vx_loop_watch **susp;       /* suspended requests; loop thread only */
	size_t n_susp, cap_susp;
	struct pollfd *pfd;         /* scratch for watching them */
	size_t cap_pfd;

	pthread_mutex_t lock;       /* guards the resume queue */
	vx_loop_watch **resume;
	size_t n_resume, cap_resume;

	_Atomic double heartbeat;   /* monotonic seconds of the last turn */
};

/* epoll data for the loop's own descriptors */
static char tag_listen, tag_wake, tag_mhd;

static int grow(void **v, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap * 2 : 64;
	while (n < need)
		n *= 2;
	void *p = realloc(*v, n * elem);
	if (!p)
		return -ENOMEM;
	*v = p;
	*cap = n;
	return 0;
}

static void loop_wake(vx_loop *l)
{
	uint64_t one = 1;
	ssize_t r = write(l->wake_fd, &one, sizeof(one));
	(void)r;
}

void vx_loops_wake(vx_loops *ls)
{
	for (int i = 0; i < ls->n_loops; i++)
		loop_wake(ls->loops[i]);
}

/* ---- connections waiting for their head ---- */

static int wait_add(vx_loop *l, conn_wait *w)
{
	if (grow((void **)&l->waits, &l->cap_waits, l->n_waits + 1,
		 sizeof(*l->waits)) < 0)
		return -ENOMEM;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | EPOLLET,
				  .data.ptr = w };
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, w->fd, &ev) < 0)
		return -errno;
	w->idx = l->n_waits;
	l->waits[l->n_waits++] = w;
	if (w->state == WAIT_REFUSE)
		l->n_refusing++;
	return 0;
}

/* Takes w out of the loop and frees it; counters and socket untouched. */
static int wait_unlink(vx_loop *l, conn_wait *w)
{
	int fd = w->fd;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	conn_wait *last = l->waits[--l->n_waits];
	l->waits[w->idx] = last;
	last->idx = w->idx;
	free(w);
	return fd;
}

/* Takes w out of the loop and stops counting it; closes it if close_fd. */
static int wait_remove(vx_loop *l, conn_wait *w, bool close_fd)
{
	if (w->state == WAIT_HEAD)
		atomic_fetch_sub(&l->ls->n_open, 1);
	else if (w->state == WAIT_REFUSE)
		l->n_refusing--;
	int fd = wait_unlink(l, w);
	if (close_fd)
		close(fd);
	return fd;
}

/* Reads and drops what the client sent so far (the answer must not be
 * lost to a reset caused by unread input). */
static void discard_input(int fd)
{
	char buf[16384];
	for (int i = 0; i < 64; i++) {
		if (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) <= 0)
			return;
	}
}

/*
 * Answers a connection the libraries never saw with a JSON error, then
 * lingers: the write side is shut and input is read and dropped until the
 * client closes or LINGER_S passes.
 */
static void wait_refuse(vx_loop *l, conn_wait *w, int status,
			const char *code, const char *message)
{
	const vx_loop_config *cfg = &l->ls->cfg;
	vx_buf body = {0}, msg = {0};
	vx_error_json(&body, status, code, NULL, message);
	vx_buf_puts(&body, "\n");
	vx_buf_printf(&msg, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
		      "%sConnection: close\r\nContent-Length: %zu\r\n\r\n",
		      status, MHD_get_reason_phrase_for((unsigned)status),
		      status == 503 ? "Retry-After: 1\r\n" :
		      status == 401 ? "WWW-Authenticate: Bearer\r\n" : "",
		      body.len);
	vx_buf_append(&msg, body.data, body.len);
	discard_input(w->fd);
	ssize_t r = send(w->fd, msg.data, msg.len, MSG_DONTWAIT | MSG_NOSIGNAL);
	(void)r;
	vx_buf_release(&body);
	vx_buf_release(&msg);
	shutdown(w->fd, SHUT_WR);
	if (status == 408)
		vx_counter_add(cfg->head_timeouts, 1);
	else if (status == 503)
		vx_counter_add(cfg->rejected, 1);
	else if (status != 401)
		vx_counter_add(cfg->bad_heads, 1);
	if (w->state == WAIT_HEAD)
		atomic_fetch_sub(&l->ls->n_open, 1);
	else if (w->state == WAIT_REFUSE)
		l->n_refusing--;
	w->state = WAIT_LINGER;
	w->deadline = vx_now() + LINGER_S;
}

/* Notified by MHD: counts connections it holds. */
static _Thread_local bool mhd_started_conn;

static void on_connection(void *cls, struct MHD_Connection *conn,
			  void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	vx_loop *l = cls;
	(void)conn;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		*socket_context = l;
		mhd_started_conn = true;
	} else if (*socket_context) {
		*socket_context = NULL;
		atomic_fetch_sub(&l->ls->n_open, 1);
	}
}

/* The head is fine: MHD takes the connection (it stays counted in n_open
 * until MHD reports it closed). */
static void to_mhd(vx_loop *l, conn_wait *w)
{
	struct sockaddr_storage addr = w->addr;
	socklen_t addrlen = w->addrlen;
	int fd = wait_unlink(l, w);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	mhd_started_conn = false;
	/* On failure MHD has closed the socket. */
	if (MHD_add_connection(l->mhd, fd, (struct sockaddr *)&addr,
			       addrlen) != MHD_YES && !mhd_started_conn)
		atomic_fetch_sub(&l->ls->n_open, 1);
}

/* An upgrade on a WebSocket route: the WebSocket side counts it from now on. */
static void to_ws(vx_loop *l, conn_wait *w)
{
	const vx_loop_config *cfg = &l->ls->cfg;
	cfg->ops->ws_adopt(cfg->ws_arg, wait_remove(l, w, false));
}

static void wait_head_ready(vx_loop *l, conn_wait *w)
{
	const vx_loop_config *cfg = &l->ls->cfg;
	static _Thread_local char buf[PEEK_MAX];
	ssize_t n = recv(w->fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		wait_remove(l, w, true);
		return;
	}
	if (n < 0)
		return;
	vx_head h;
	switch (vx_head_check(buf, (size_t)n, &cfg->head_limits, &h)) {
	case VX_HEAD_MORE:
		return;
	case VX_HEAD_REFUSE:
		wait_refuse(l, w, h.status, h.code, h.message);
		return;
	case VX_HEAD_OK:
		break;
	}
	if (h.upgrade_websocket && h.method_len == 3 &&
	    !memcmp(h.method, "GET", 3) && cfg->ops->ws_route) {
		switch (cfg->ops->ws_route(cfg->ws_arg, &h)) {
		case VX_LOOP_WS_NONE:
			break;
		case VX_LOOP_WS_TAKE:
			to_ws(l, w);
			return;
		case VX_LOOP_WS_REFUSE:
			wait_refuse(l, w, 503, "overloaded",
				    "at capacity; retry later");
			return;
		case VX_LOOP_WS_UNAUTHORIZED:
			wait_refuse(l, w, 401, "unauthorized",
				    "missing or wrong bearer key");
			return;
		}
	}
	to_mhd(l, w);
}

static void wait_ready(vx_loop *l, conn_wait *w, uint32_t events)
{
	if (w->state == WAIT_HEAD) {
		wait_head_ready(l, w);
	} else if (w->state == WAIT_REFUSE) {
		wait_refuse(l, w, 503, "overloaded",
			    "too many connections; retry later");
	} else {
		char buf[4096];
		ssize_t n;
		while ((n = recv(w->fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
			;
		if (n == 0 || (n < 0 && errno != EAGAIN) ||
		    (events & (EPOLLHUP | EPOLLERR)))
			wait_remove(l, w, true);
	}
}

/* Heads that took too long get 408; refusals and lingers end. */
static void waits_sweep(vx_loop *l, double now)
{
	for (size_t i = 0; i < l->n_waits;) {
		conn_wait *w = l->waits[i];
		if (now < w->deadline) {
			i++;
			continue;
		}
		if (w->state == WAIT_HEAD) {
			wait_refuse(l, w, 408, "timeout",
				    "request head not received in time");
			i++;
		} else if (w->state == WAIT_REFUSE) {
			wait_refuse(l, w, 503, "overloaded",
				    "too many connections; retry later");
			i++;
		} else {
			wait_remove(l, w, true);   /* moves another into i */
		}
	}
}

static void accept_new(vx_loop *l, double now)
{
	vx_loops *ls = l->ls;
	const vx_loop_config *cfg = &ls->cfg;
	for (;;) {
		conn_wait *w = calloc(1, sizeof(*w));
		if (!w)
			return;
		w->addrlen = sizeof(w->addr);
		w->fd = accept4(cfg->listen_fd, (struct sockaddr *)&w->addr,
				&w->addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (w->fd < 0) {
			int e = errno;
			free(w);
			if (e == EMFILE || e == ENFILE || e == ENOBUFS ||
			    e == ENOMEM) {
				/* Out of descriptors: stop listening briefly
				 * rather than spin on a readable socket. */
				epoll_ctl(l->epfd, EPOLL_CTL_DEL, cfg->listen_fd,
					  NULL);
				l->listening = false;
				l->relisten_at = now + 0.1;
				vx_counter_add(cfg->rejected, 1);
			}
			return;
		}
		int open = atomic_fetch_add(&ls->n_open, 1) + 1 +
			   atomic_load(cfg->ws_open);
		if (open > cfg->max_connections) {
			atomic_fetch_sub(&ls->n_open, 1);
			w->state = WAIT_REFUSE;
			w->deadline = now + REFUSE_WAIT_S;
			if (l->n_refusing >= REFUSING_MAX) {
				vx_counter_add(cfg->rejected, 1);
				close(w->fd);
				free(w);
				continue;
			}
		} else {
			w->state = WAIT_HEAD;
			w->deadline = now + cfg->head_timeout_ms / 1000.0;
		}
		if (wait_add(l, w) < 0) {
			if (w->state == WAIT_HEAD)
				atomic_fetch_sub(&ls->n_open, 1);
			close(w->fd);
			free(w);
		}
	}
}

static void listen_set(vx_loop *l, bool on)
{
	if (on == l->listening)
		return;
	if (on) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLEXCLUSIVE,
					  .data.ptr = &tag_listen };
		if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->ls->cfg.listen_fd, &ev) < 0)
			return;
	} else {
		epoll_ctl(l->epfd, EPOLL_CTL_DEL, l->ls->cfg.listen_fd, NULL);
	}
	l->listening = on;
}

/* ---- suspended requests ---- */

void vx_loop_suspend(vx_loop *l, vx_loop_watch *w)
{
	if (grow((void **)&l->susp, &l->cap_susp, l->n_susp + 1,
		 sizeof(*l->susp)) == 0 &&
	    grow((void **)&l->pfd, &l->cap_pfd, l->n_susp + 1,
		 sizeof(*l->pfd)) == 0) {
		w->idx = l->n_susp;
		l->susp[l->n_susp++] = w;
	} else {
		w->idx = (size_t)-1;
	}
	MHD_suspend_connection(w->conn);
}

static void susp_remove(vx_loop *l, vx_loop_watch *w)
{
	size_t i = w->idx;
	if (i >= l->n_susp || l->susp[i] != w)
		return;
	vx_loop_watch *last = l->susp[--l->n_susp];
	l->susp[i] = last;
	last->idx = i;
	w->idx = (size_t)-1;
}

/* Any thread, with the request's lock held: resume it from its loop. */
void vx_loop_resume(vx_loop *l, vx_loop_watch *w)
{
	pthread_mutex_lock(&l->lock);
	if (grow((void **)&l->resume, &l->cap_resume, l->n_resume + 1,
		 sizeof(*l->resume)) == 0) {
		l->ls->cfg.ops->hold(w);
		l->resume[l->n_resume++] = w;
	}
	pthread_mutex_unlock(&l->lock);
	loop_wake(l);
}

static void resume_pending(vx_loop *l)
{
	const vx_loop_ops *ops = l->ls->cfg.ops;
	pthread_mutex_lock(&l->lock);
	vx_loop_watch **q = l->resume;
	size_t n = l->n_resume;
	l->resume = NULL;
	l->n_resume = l->cap_resume = 0;
	pthread_mutex_unlock(&l->lock);
	for (size_t i = 0; i < n; i++) {
		susp_remove(l, q[i]);
		MHD_resume_connection(q[i]->conn);
		ops->release(q[i]);
	}
	free(q);
}

/* Hang-ups and deadlines of suspended requests; at the drain's end every
 * unanswered one is answered 503. */
static void susp_watch(vx_loop *l, double now, bool cut)
{
	const vx_loop_ops *ops = l->ls->cfg.ops;
	for (size_t i = 0; i < l->n_susp; i++) {
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
			l->susp[i]->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		l->pfd[i] = (struct pollfd){ .fd = ci ? ci->connect_fd : -1,
					     .events = POLLRDHUP };
	}
	if (l->n_susp && poll(l->pfd, l->n_susp, 0) < 0)
		return;
	/* ops->watch may resume (and so remove) entries: walk a copy. */
	size_t n = l->n_susp;
	struct watched { vx_loop_watch *w; short revents; } *v = malloc(n * sizeof(*v) + 1);
	if (!v)
		return;
	for (size_t i = 0; i < n; i++) {
		v[i].w = l->susp[i];
		v[i].revents = l->pfd[i].revents;
		ops->hold(v[i].w);
	}
	for (size_t i = 0; i < n; i++) {
		bool gone = v[i].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL);
		ops->watch(v[i].w, gone, now, cut);
		ops->release(v[i].w);
	}
	free(v);
}

/* ---- the loop ---- */

static int loop_timeout(vx_loop *l, double now)
{
	double t = TICK_MS;
	MHD_UNSIGNED_LONG_LONG mt;
	if (MHD_get_timeout(l->mhd, &mt) == MHD_YES && mt < t)
		t = (double)mt;
	if (l->n_waits || l->n_susp) {
		double until = (l->next_watch - now) * 1000.0;
		if (until < t)
			t = until > 0 ? until : 0;
	}
	return (int)t;
}

static void loop_turn(vx_loop *l)
{
	const vx_loop_config *cfg = &l->ls->cfg;
	struct epoll_event ev[MAX_EVENTS];
	double now = vx_now();
	int n = epoll_wait(l->epfd, ev, MAX_EVENTS, loop_timeout(l, now));
	now = vx_now();
	atomic_store(&l->heartbeat, now);
	for (int i = 0; i < n; i++) {
		void *p = ev[i].data.ptr;
		if (p == &tag_listen) {
			accept_new(l, now);
		} else if (p == &tag_wake) {
			uint64_t x;
			ssize_t r = read(l->wake_fd, &x, sizeof(x));
			(void)r;
		} else if (p != &tag_mhd) {
			wait_ready(l, p, ev[i].events);
		}
	}
	resume_pending(l);
	bool cut = atomic_load(cfg->drain_cut);
	if (now >= l->next_watch || cut) {
		waits_sweep(l, now);
		susp_watch(l, now, cut);
		l->next_watch = now + WATCH_MS / 1000.0;
	}
	resume_pending(l);
	MHD_run(l->mhd);
	bool accepting = !atomic_load(cfg->accept_stopped);
	if (!accepting && l->listening) {
		accept_new(l, now);   /* what is already queued is served */
		listen_set(l, false);
	} else if (accepting && !l->listening && now >= l->relisten_at) {
		listen_set(l, true);
	}
}

static void *loop_main(void *arg)
{
	vx_loop *l = arg;
	vx_loops *ls = l->ls;
	while (!atomic_load(&ls->stopping)) {
		while (atomic_load(ls->cfg.frozen))
			sleep(1);   /* --debug-freeze: the watchdog must notice */
		loop_turn(l);
	}
	/* Leave nothing suspended: MHD_stop_daemon refuses to stop then. */
	resume_pending(l);
	for (size_t i = 0; i < l->n_susp; i++) {
		ls->cfg.ops->abandon(l->susp[i]);
		MHD_resume_connection(l->susp[i]->conn);
	}
	l->n_susp = 0;
	MHD_run(l->mhd);
	return NULL;
}

/* ---- setup ---- */

static void loop_free(vx_loop *l);

static vx_loop *loop_new(vx_loops *ls, int id)
{
	const vx_loop_config *cfg = &ls->cfg;
	vx_loop *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->ls = ls;
	l->id = id;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	l->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	pthread_mutex_init(&l->lock, NULL);
	atomic_init(&l->heartbeat, vx_now());
	if (l->epfd < 0 || l->wake_fd < 0)
		goto out_free;
	l->mhd = MHD_start_daemon(
		MHD_USE_EPOLL | MHD_USE_NO_LISTEN_SOCKET |
		MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC,
		0, NULL, NULL, cfg->ops->on_access, l,
		MHD_OPTION_URI_LOG_CALLBACK, cfg->ops->on_uri, l,
		MHD_OPTION_NOTIFY_COMPLETED, cfg->ops->on_completed, l,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, l,
		MHD_OPTION_CONNECTION_LIMIT,
		(unsigned)cfg->max_connections + 16,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->idle_timeout_s,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)MHD_POOL,
		MHD_OPTION_END);
	if (!l->mhd)
		goto out_free;
	const union MHD_DaemonInfo *di =
		MHD_get_daemon_info(l->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	if (!di)
		goto out_free;
	l->mhd_epfd = di->epoll_fd;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &tag_mhd };
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->mhd_epfd, &ev) < 0)
		goto out_free;
	ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &tag_wake };
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wake_fd, &ev) < 0)
		goto out_free;
	return l;
out_free:
	loop_free(l);
	return NULL;
}

static void loop_free(vx_loop *l)
{
	if (!l)
		return;
	while (l->n_waits)
		wait_remove(l, l->waits[0], true);
	if (l->mhd)
		MHD_stop_daemon(l->mhd);
	for (size_t i = 0; i < l->n_resume; i++)
		l->ls->cfg.ops->release(l->resume[i]);
	if (l->epfd >= 0)
		close(l->epfd);
	if (l->wake_fd >= 0)
		close(l->wake_fd);
	pthread_mutex_destroy(&l->lock);
	free(l->waits);
	free(l->susp);
	free(l->pfd);
	free(l->resume);
	free(l);
}

int vx_loops_new(const vx_loop_config *cfg, vx_loops **ret)
{
	vx_loops *ls = calloc(1, sizeof(*ls));
	if (!ls)
		return -ENOMEM;
	ls->cfg = *cfg;
	int r = -ENOMEM;
	ls->loops = calloc((size_t)cfg->n_loops, sizeof(*ls->loops));
	if (!ls->loops)
		goto out_free;
	r = -EIO;
	for (int i = 0; i < cfg->n_loops; i++) {
		if (!(ls->loops[i] = loop_new(ls, i)))
			goto out_free;
		ls->n_loops = i + 1;
	}
	*ret = ls;
	return 0;
out_free:
	vx_loops_free(ls);
	return r;
}

void vx_loops_free(vx_loops *ls)
{
	if (!ls)
		return;
	vx_loops_stop(ls);
	for (int i = 0; i < ls->n_loops; i++)
		loop_free(ls->loops[i]);
	free(ls->loops);
	free(ls);
}

int vx_loops_start(vx_loops *ls)
{
	for (int i = 0; i < ls->n_loops; i++) {
		vx_loop *l = ls->loops[i];
		listen_set(l, true);
		int r = pthread_create(&l->thread, NULL, loop_main, l);
		if (r != 0)
			return -r;
		l->started = true;
	}
	return 0;
}

void vx_loops_stop(vx_loops *ls)
{
	atomic_store(&ls->stopping, true);
	vx_loops_wake(ls);
	for (int i = 0; i < ls->n_loops; i++) {
		vx_loop *l = ls->loops[i];
		if (l->started)
			pthread_join(l->thread, NULL);
		l->started = false;
	}
}

bool vx_loops_listening(vx_loops *ls)
{
	for (int i = 0; i < ls->n_loops; i++) {
		if (atomic_load(&ls->loops[i]->listening))
			return true;
	}
	return false;
}

bool vx_loops_alive(vx_loops *ls, double max_age)
{
	double now = vx_now();
	for (int i = 0; i < ls->n_loops; i++) {
		if (now - atomic_load(&ls->loops[i]->heartbeat) > max_age)
			return false;
	}
	return true;
}

void *vx_loop_arg(vx_loop *l)
{
	return l->ls->cfg.arg;
}
