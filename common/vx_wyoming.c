/*
 * vx_wyoming.c - the Wyoming listener, framing and connections
 * (vx_wyoming.h). One I/O thread per server: epoll over the listener, an
 * eventfd for wake-ups and the connections (edge-triggered, reads drained
 * to EAGAIN); a 100 ms tick checks stalls, idleness, closing and drain.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vx_log.h"
#include "vx_time.h"
#include "vx_ws.h"
#include "vx_wyoming.h"

#define TICK_MS 100
#define READ_CHUNK (64 * 1024)
#define TYPE_MAX 64                 /* bytes of an event type */
#define ERROR_TEXT_MAX 512

enum parse_state {
	P_HEADER,       /* reading a header line */
	P_BODY,         /* data_length + payload_length bytes to come */
	P_SKIP,         /* refused event: skip bytes */
	P_SKIP_LINE,    /* an overlong header: skip to its newline */
};

struct vx_wy_conn {
	vx_wy_server *srv;
	struct vx_wy_conn *prev, *next;   /* the server's list (I/O thread) */
	atomic_int refs;                  /* the I/O thread's + jobs' */
	atomic_bool closed;               /* no more sends; fd gone */
	atomic_bool closing;              /* close once output is written */
	bool eof;                         /* the peer stopped sending (I/O) */
	bool broken;                      /* a write failed (lock) */

	pthread_mutex_t lock;             /* out, out_off, fd writes */
	int fd;
	vx_buf out;
	size_t out_off;                   /* bytes of out already written */
	double t_active;                  /* last byte in or out (s) */

	pthread_mutex_t tr;               /* translation lock (recursive) */

	/* parser: the I/O thread only */
	vx_buf in;
	size_t in_off;
	enum parse_state ps;
	cJSON *hdr;                       /* P_BODY: the header */
	size_t need_data, need_payload;   /* P_BODY */
	size_t skip;                      /* P_SKIP: bytes left */
	double t_started;                 /* an unfinished event began (s) */

	char rid[32];
	_Alignas(max_align_t) unsigned char state[];
};

struct vx_wy_server {
	vx_wy_server_config cfg;
	int listen_fd, ep, wake_fd;
	pthread_t thread;
	bool started;
	atomic_bool draining;             /* close idle connections */
	atomic_bool stop;                 /* close all, end the thread */
	atomic_llong t_stop_ms;           /* when the listener closed (vx_now_ms) */
	atomic_int live;                  /* connections not yet released */
	int n_conns;                      /* on the list */
	bool accept_paused;               /* out of descriptors: until a tick */
	vx_wy_conn *conns;
	unsigned long long next_id;
};

/* ---- connection basics ---- */

void *vx_wy_user(const vx_wy_conn *c) { return c->srv->cfg.user; }
void *vx_wy_state(vx_wy_conn *c) { return c->state; }
const char *vx_wy_request_id(const vx_wy_conn *c) { return c->rid; }
bool vx_wy_closed(const vx_wy_conn *c) { return atomic_load(&c->closed); }

void vx_wy_ref(vx_wy_conn *c)
{
	atomic_fetch_add(&c->refs, 1);
}

void vx_wy_unref(vx_wy_conn *c)
{
	if (atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	vx_wy_server *srv = c->srv;
	if (srv->cfg.ops->release)
		srv->cfg.ops->release(c->state);
	vx_buf_release(&c->out);
	vx_buf_release(&c->in);
	cJSON_Delete(c->hdr);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->tr);
	free(c);
	atomic_fetch_sub(&srv->live, 1);
}

size_t vx_wy_queued(vx_wy_conn *c)
{
	pthread_mutex_lock(&c->lock);
	size_t n = c->out.len - c->out_off;
	pthread_mutex_unlock(&c->lock);
	return n;
}

static void wake(vx_wy_server *srv)
{
	uint64_t one = 1;
	ssize_t n = write(srv->wake_fd, &one, sizeof(one));
	(void)n;
}

/* Writes what it can; lock held. -EIO: the socket failed. */
static int flush_locked(vx_wy_conn *c)
{
	while (c->fd >= 0 && c->out_off < c->out.len) {
		ssize_t n = send(c->fd, c->out.data + c->out_off,
				 c->out.len - c->out_off, MSG_NOSIGNAL);
		if (n > 0) {
			c->out_off += (size_t)n;
			c->t_active = vx_now();
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		c->broken = true;
		return -EIO;
	}
	if (c->out_off == c->out.len) {
		vx_buf_reset(&c->out);
		c->out_off = 0;
		if (c->out.cap > 1024 * 1024)
			vx_buf_release(&c->out);
	}
	return 0;
}

void vx_wy_close(vx_wy_conn *c)
{
	atomic_store(&c->closing, true);
	wake(c->srv);
}

int vx_wy_send(vx_wy_conn *c, const char *type, const char *data_json,
	       const void *payload, size_t payload_len)
{
	char head[256];
	size_t dlen = data_json ? strlen(data_json) : 0;
	int n = snprintf(head, sizeof(head), "{\"type\":\"%s\",\"version\":\"%s\"",
			 type, VX_WY_VERSION);
	if (n < 0 || (size_t)n >= sizeof(head) - 80)
		return -EINVAL;
	if (dlen)
		n += snprintf(head + n, sizeof(head) - (size_t)n,
			      ",\"data_length\":%zu", dlen);
	if (payload_len)
		n += snprintf(head + n, sizeof(head) - (size_t)n,
			      ",\"payload_length\":%zu", payload_len);
	n += snprintf(head + n, sizeof(head) - (size_t)n, "}\n");

	int r = 0;
	pthread_mutex_lock(&c->lock);
	if (atomic_load(&c->closed) || c->fd < 0) {
		r = -EPIPE;
		goto out_unlock;
	}
	if (c->out.len - c->out_off + (size_t)n + dlen + payload_len >
	    VX_WY_OUT_MAX) {
		r = -ENOBUFS;
		shutdown(c->fd, SHUT_RDWR);   /* the I/O thread sees it */
		goto out_unlock;
	}
	if (vx_buf_append(&c->out, head, (size_t)n) < 0 ||
	    (dlen && vx_buf_append(&c->out, data_json, dlen) < 0) ||
	    (payload_len && vx_buf_append(&c->out, payload, payload_len) < 0)) {
		r = -ENOMEM;
		shutdown(c->fd, SHUT_RDWR);
		goto out_unlock;
	}
	if (flush_locked(c) < 0)
		shutdown(c->fd, SHUT_RDWR);
out_unlock:
	pthread_mutex_unlock(&c->lock);
	return r;
}

__attribute__((format(printf, 3, 0)))
static int error_va(vx_wy_conn *c, const char *code, const char *fmt,
		    va_list ap)
{
	char text[ERROR_TEXT_MAX];
	vsnprintf(text, sizeof(text), fmt, ap);
	vx_buf b = {0};
	vx_buf_puts(&b, "{\"text\":");
	vx_buf_json_str(&b, text, strlen(text));
	vx_buf_puts(&b, ",\"code\":");
	vx_buf_json_str(&b, code, strlen(code));
	vx_buf_puts(&b, "}");
	int r = b.data ? vx_wy_send(c, "error", b.data, NULL, 0) : -ENOMEM;
	vx_buf_release(&b);
	return r;
}

int vx_wy_error(vx_wy_conn *c, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = error_va(c, code, fmt, ap);
	va_end(ap);
	return r;
}

/* ---- the parser (I/O thread) ---- */

static void parser_reset(vx_wy_conn *c)
{
	cJSON_Delete(c->hdr);
	c->hdr = NULL;
	c->ps = P_HEADER;
	c->need_data = c->need_payload = c->skip = 0;
	c->t_started = 0;
}

/* A non-negative integer member, 0 when absent; -1 when bad. */
static long long length_member(const cJSON *h, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(h, key);
	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsNumber(v) || v->valuedouble < 0 ||
	    v->valuedouble > 1e15 || v->valuedouble != (double)(long long)v->valuedouble)
		return -1;
	return (long long)v->valuedouble;
}

static void dispatch(vx_wy_conn *c, cJSON *hdr, const unsigned char *data,
		     size_t dlen, const unsigned char *payload, size_t plen)
{
	cJSON *d = cJSON_GetObjectItemCaseSensitive(hdr, "data");
	if (d && !cJSON_IsObject(d) && !cJSON_IsNull(d)) {
		vx_wy_error(c, "bad_event", "\"data\" must be an object");
		return;
	}
	if (!cJSON_IsObject(d)) {
		cJSON_DeleteItemFromObjectCaseSensitive(hdr, "data");
		d = cJSON_AddObjectToObject(hdr, "data");
		if (!d)
			return;
	}
	if (dlen) {
		cJSON *extra = cJSON_ParseWithLength((const char *)data, dlen);
		if (!cJSON_IsObject(extra)) {
			cJSON_Delete(extra);
			vx_wy_error(c, "bad_data",
				    "the event's data is not a JSON object");
			return;
		}
		cJSON *it = extra->child;
		while (it) {
			cJSON *nx = it->next;
			cJSON_DetachItemViaPointer(extra, it);
			if (it->string && cJSON_GetObjectItemCaseSensitive(d, it->string))
				cJSON_ReplaceItemInObjectCaseSensitive(d, it->string, it);
			else if (it->string)
				cJSON_AddItemToObject(d, it->string, it);
			else
				cJSON_Delete(it);
			it = nx;
		}
		cJSON_Delete(extra);
	}
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(hdr, "type");
	vx_wy_event ev = { .type = t->valuestring, .data = d,
			   .payload = plen ? payload : NULL,
			   .payload_len = plen };
	const vx_wy_ops *ops = c->srv->cfg.ops;
	pthread_mutex_lock(&c->tr);
	ops->event(c, c->state, &ev);
	pthread_mutex_unlock(&c->tr);
}

/* A complete header line (without its newline). */
static void header_line(vx_wy_conn *c, const char *line, size_t len)
{
	while (len && (line[len - 1] == '\r' || line[len - 1] == ' '))
		len--;
	if (!len)
		return;
	cJSON *h = cJSON_ParseWithLength(line, len);
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(h, "type");
	if (!cJSON_IsObject(h) || !cJSON_IsString(t) || !t->valuestring[0] ||
	    strlen(t->valuestring) >= TYPE_MAX ||
	    memchr(line, 0, len)) {
		vx_wy_error(c, "bad_event", "a header line must be a JSON object "
			    "with a \"type\" string (under %d bytes)", TYPE_MAX);
		cJSON_Delete(h);
		return;
	}
	long long dl = length_member(h, "data_length");
	long long pl = length_member(h, "payload_length");
	if (dl < 0 || pl < 0) {
		vx_wy_error(c, "bad_event", "data_length and payload_length "
			    "must be non-negative integers");
		cJSON_Delete(h);
		return;
	}
	if ((size_t)dl > VX_WY_DATA_MAX || (size_t)pl > VX_WY_PAYLOAD_MAX) {
		vx_wy_error(c, "too_large", "event '%s': data over %u or payload "
			    "over %u bytes; skipped", t->valuestring,
			    VX_WY_DATA_MAX, VX_WY_PAYLOAD_MAX);
		cJSON_Delete(h);
		c->ps = P_SKIP;
		c->skip = (size_t)dl + (size_t)pl;
		c->t_started = vx_now();
		return;
	}
	if (dl == 0 && pl == 0) {
		dispatch(c, h, NULL, 0, NULL, 0);
		cJSON_Delete(h);
		return;
	}
	c->hdr = h;
	c->need_data = (size_t)dl;
	c->need_payload = (size_t)pl;
	c->ps = P_BODY;
	c->t_started = vx_now();
}

/* Consumes what it can of c->in. */
static void parse(vx_wy_conn *c)
{
	while (!atomic_load(&c->closed) && !atomic_load(&c->closing)) {
		const char *p = c->in.data + c->in_off;
		size_t avail = c->in.len - c->in_off;
		if (!avail)
			break;
		if (c->ps == P_HEADER || c->ps == P_SKIP_LINE) {
			const char *nl = memchr(p, '\n', avail);
			if (!nl) {
				if (avail > VX_WY_HEADER_MAX) {
					if (c->ps == P_HEADER)
						vx_wy_error(c, "too_large",
							    "header line over %u bytes; "
							    "skipped", VX_WY_HEADER_MAX);
					c->ps = P_SKIP_LINE;
					c->in_off += avail;
				} else if (!c->t_started) {
					c->t_started = vx_now();
				}
				break;
			}
			size_t len = (size_t)(nl - p);
			c->in_off += len + 1;
			c->t_started = 0;
			if (c->ps == P_SKIP_LINE)
				c->ps = P_HEADER;
			else if (len > VX_WY_HEADER_MAX)
				vx_wy_error(c, "too_large", "header line over %u "
					    "bytes; skipped", VX_WY_HEADER_MAX);
			else
				header_line(c, p, len);
		} else if (c->ps == P_SKIP) {
			size_t n = avail < c->skip ? avail : c->skip;
			c->in_off += n;
			c->skip -= n;
			if (!c->skip)
				parser_reset(c);
		} else {
			size_t dl = c->need_data, pl = c->need_payload;
			if (avail < dl + pl)
				break;
			cJSON *h = c->hdr;
			c->hdr = NULL;
			c->in_off += dl + pl;
			parser_reset(c);
			dispatch(c, h, (const unsigned char *)p, dl,
				 (const unsigned char *)p + dl, pl);
			cJSON_Delete(h);
		}
	}
	if (c->in_off == c->in.len) {
		vx_buf_reset(&c->in);
		c->in_off = 0;
		if (c->in.cap > 2 * READ_CHUNK + VX_WY_PAYLOAD_MAX)
			vx_buf_release(&c->in);
	} else if (c->in_off > 0) {
		memmove(c->in.data, c->in.data + c->in_off, c->in.len - c->in_off);
		c->in.len -= c->in_off;
		c->in_off = 0;
	}
}

/* ---- the I/O thread ---- */

/* Closes the socket and tells the service; drops the I/O thread's
 * reference. */
static void conn_close(vx_wy_conn *c)
{
	vx_wy_server *srv = c->srv;
	pthread_mutex_lock(&c->lock);
	atomic_store(&c->closed, true);
	if (c->fd >= 0) {
		epoll_ctl(srv->ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		c->fd = -1;
	}
	pthread_mutex_unlock(&c->lock);
	if (srv->cfg.ops->closed) {
		pthread_mutex_lock(&c->tr);
		srv->cfg.ops->closed(c, c->state);
		pthread_mutex_unlock(&c->tr);
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	srv->n_conns--;
	vx_wy_unref(c);
}

/* A connection nothing is happening on: no job, no output, no event
 * half read. */
static bool conn_idle(vx_wy_conn *c)
{
	return atomic_load(&c->refs) == 1 && vx_wy_queued(c) == 0 &&
	       c->ps == P_HEADER && c->in.len == c->in_off;
}

static void conn_read(vx_wy_conn *c)
{
	for (;;) {
		if (vx_buf_reserve(&c->in, READ_CHUNK) < 0) {
			conn_close(c);
			return;
		}
		ssize_t n = recv(c->fd, c->in.data + c->in.len, READ_CHUNK, 0);
		if (n > 0) {
			c->in.len += (size_t)n;
			c->t_active = vx_now();
			parse(c);
			if (atomic_load(&c->closed))
				return;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		/* 0: the peer is done sending. What it asked for is still
		 * answered (a client may half-close after audio-stop) unless
		 * nothing runs or the socket is broken; an error closes. */
		pthread_mutex_lock(&c->lock);
		bool broken = c->broken;
		pthread_mutex_unlock(&c->lock);
		if (n < 0 || broken || conn_idle(c)) {
			conn_close(c);
		} else {
			c->eof = true;
			epoll_ctl(c->srv->ep, EPOLL_CTL_MOD, c->fd, &(struct epoll_event){
				  .events = EPOLLOUT | EPOLLET, .data.ptr = c });
		}
		return;
	}
}

static void conn_accept(vx_wy_server *srv)
{
	for (;;) {
		int fd = accept4(srv->listen_fd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE) {
				/* level-triggered: it would spin; retried
				 * on the next tick */
				epoll_ctl(srv->ep, EPOLL_CTL_DEL, srv->listen_fd, NULL);
				srv->accept_paused = true;
			}
			return;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (srv->n_conns >= srv->cfg.max_connections ||
		    atomic_load(&srv->draining)) {
			static const char busy[] =
				"{\"type\":\"error\",\"version\":\"" VX_WY_VERSION
				"\",\"data\":{\"text\":\"too many connections\","
				"\"code\":\"overloaded\"}}\n";
			ssize_t w = send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL);
			(void)w;
			close(fd);
			continue;
		}
		const vx_wy_ops *ops = srv->cfg.ops;
		vx_wy_conn *c = calloc(1, sizeof(*c) + ops->state_size);
		if (!c) {
			close(fd);
			continue;
		}
		c->srv = srv;
		c->fd = fd;
		atomic_init(&c->refs, 1);
		pthread_mutex_init(&c->lock, NULL);
		pthread_mutexattr_t ma;
		pthread_mutexattr_init(&ma);
		pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
		pthread_mutex_init(&c->tr, &ma);
		pthread_mutexattr_destroy(&ma);
		c->t_active = vx_now();
		snprintf(c->rid, sizeof(c->rid), "wy-%s-%llu", srv->cfg.service,
			 ++srv->next_id);
		atomic_fetch_add(&srv->live, 1);
		c->next = srv->conns;
		if (c->next)
			c->next->prev = c;
		srv->conns = c;
		srv->n_conns++;
		struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP |
						    EPOLLET, .data.ptr = c };
		int r = epoll_ctl(srv->ep, EPOLL_CTL_ADD, fd, &ev);
		if (r == 0 && ops->init) {
			pthread_mutex_lock(&c->tr);
			r = ops->init(c, c->state);
			pthread_mutex_unlock(&c->tr);
		}
		if (r != 0) {
			/* closed() must not see a state init refused */
			pthread_mutex_lock(&c->lock);
			atomic_store(&c->closed, true);
			epoll_ctl(srv->ep, EPOLL_CTL_DEL, fd, NULL);
			close(fd);
			c->fd = -1;
			pthread_mutex_unlock(&c->lock);
			srv->conns = c->next;
			if (c->next)
				c->next->prev = NULL;
			srv->n_conns--;
			vx_wy_unref(c);
		}
	}
}

static void tick(vx_wy_server *srv, double now)
{
	if (srv->listen_fd >= 0 &&
	    (atomic_load(&srv->draining) ||
	     (srv->cfg.server && !vx_server_accepting(srv->cfg.server)))) {
		epoll_ctl(srv->ep, EPOLL_CTL_DEL, srv->listen_fd, NULL);
		close(srv->listen_fd);
		srv->listen_fd = -1;
		atomic_store(&srv->t_stop_ms, (long long)vx_now_ms());
		atomic_store(&srv->draining, true);
	}
	if (srv->listen_fd >= 0 && srv->accept_paused) {
		struct epoll_event le = { .events = EPOLLIN,
					  .data.ptr = &srv->listen_fd };
		if (epoll_ctl(srv->ep, EPOLL_CTL_ADD, srv->listen_fd, &le) == 0)
			srv->accept_paused = false;
	}
	bool draining = atomic_load(&srv->draining);
	bool stop = atomic_load(&srv->stop);
	vx_wy_conn *nx;
	for (vx_wy_conn *c = srv->conns; c; c = nx) {
		nx = c->next;
		if (stop || (draining && conn_idle(c))) {
			conn_close(c);
			continue;
		}
		if (atomic_load(&c->closing) && vx_wy_queued(c) == 0) {
			conn_close(c);
			continue;
		}
		if (c->eof) {
			pthread_mutex_lock(&c->lock);
			bool broken = c->broken;
			pthread_mutex_unlock(&c->lock);
			if (broken || (atomic_load(&c->refs) == 1 &&
				       vx_wy_queued(c) == 0)) {
				conn_close(c);
				continue;
			}
		}
		if (c->t_started && now - c->t_started > VX_WY_STALL_MS / 1000.0) {
			vx_wy_error(c, "incomplete_event",
				    "an event stopped arriving half way for "
				    "%d ms; dropped", VX_WY_STALL_MS);
			c->in_off = c->in.len;
			parser_reset(c);
			parse(c);
			continue;
		}
		double idle_s = srv->cfg.idle_timeout_s > 0 ? srv->cfg.idle_timeout_s : 60;
		pthread_mutex_lock(&c->lock);
		double last = c->t_active;
		pthread_mutex_unlock(&c->lock);
		if (now - last > idle_s && atomic_load(&c->refs) == 1)
			conn_close(c);
	}
}

static void *io_thread(void *arg)
{
	vx_wy_server *srv = arg;
	struct epoll_event evs[64];
	double last_tick = 0;
	while (!atomic_load(&srv->stop) || srv->conns) {
		int n = epoll_wait(srv->ep, evs, 64, TICK_MS);
		for (int i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;
			if (p == &srv->listen_fd) {
				conn_accept(srv);
				continue;
			}
			if (p == &srv->wake_fd) {
				uint64_t v;
				ssize_t r = read(srv->wake_fd, &v, sizeof(v));
				(void)r;
				continue;
			}
			vx_wy_conn *c = p;
			if (atomic_load(&c->closed))
				continue;
			if (evs[i].events & EPOLLOUT) {
				pthread_mutex_lock(&c->lock);
				int r = flush_locked(c);
				pthread_mutex_unlock(&c->lock);
				if (r < 0) {
					conn_close(c);
					continue;
				}
			}
			if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
				conn_read(c);
		}
		double now = vx_now();
		if (n == 0 || now - last_tick >= TICK_MS / 1000.0 ||
		    atomic_load(&srv->stop)) {
			tick(srv, now);
			last_tick = now;
		}
	}
	return NULL;
}

/* ---- the server ---- */

static int listen_on(const char *host, int port, int *ret_fd)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *ai;
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", port);
	int r = getaddrinfo(host, ps, &hints, &ai);
	if (r != 0)
		return -EADDRNOTAVAIL;
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		goto out_free;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 128) < 0) {
		r = -errno;
		close(fd);
		goto out_free;
	}
	*ret_fd = fd;
	r = 0;
out_free:
	freeaddrinfo(ai);
	return r;
}

int vx_wy_server_new(const vx_wy_server_config *cfg, vx_wy_server **ret)
{
	vx_wy_server *srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	srv->cfg = *cfg;
	if (!srv->cfg.host)
		srv->cfg.host = "127.0.0.1";
	if (srv->cfg.max_connections <= 0)
		srv->cfg.max_connections = 1024;
	srv->listen_fd = srv->ep = srv->wake_fd = -1;
	int r = listen_on(srv->cfg.host, cfg->port, &srv->listen_fd);
	if (r < 0)
		goto out_free;
	srv->ep = epoll_create1(EPOLL_CLOEXEC);
	srv->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (srv->ep < 0 || srv->wake_fd < 0) {
		r = -errno;
		goto out_free;
	}
	struct epoll_event le = { .events = EPOLLIN, .data.ptr = &srv->listen_fd };
	struct epoll_event we = { .events = EPOLLIN, .data.ptr = &srv->wake_fd };
	if (epoll_ctl(srv->ep, EPOLL_CTL_ADD, srv->listen_fd, &le) < 0 ||
	    epoll_ctl(srv->ep, EPOLL_CTL_ADD, srv->wake_fd, &we) < 0) {
		r = -errno;
		goto out_free;
	}
	if ((r = -pthread_create(&srv->thread, NULL, io_thread, srv)) < 0)
		goto out_free;
	srv->started = true;
	*ret = srv;
	return 0;
out_free:
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	if (srv->ep >= 0)
		close(srv->ep);
	if (srv->wake_fd >= 0)
		close(srv->wake_fd);
	free(srv);
	return r;
}

int vx_wy_server_port(const vx_wy_server *w)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (w->listen_fd < 0 ||
	    getsockname(w->listen_fd, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

void vx_wy_server_drain(vx_wy_server *w, int timeout_s)
{
	if (!w || !w->started)
		return;
	atomic_store(&w->draining, true);
	wake(w);
	long long t0 = atomic_load(&w->t_stop_ms);
	double end = (t0 ? (double)t0 / 1000.0 : vx_now()) +
		     (timeout_s > 0 ? timeout_s : 0);
	/* Busy connections close themselves as they go idle (tick). */
	while (vx_now() < end && atomic_load(&w->live) > 0)
		usleep(20000);
	atomic_store(&w->stop, true);
	wake(w);
	pthread_join(w->thread, NULL);
	w->started = false;
}

void vx_wy_server_free(vx_wy_server *w)
{
	if (!w)
		return;
	vx_wy_server_drain(w, 0);
	for (int i = 0; i < 500 && atomic_load(&w->live) > 0; i++)
		usleep(20000);
	if (atomic_load(&w->live) > 0)
		vx_log_warn(NULL, "wyoming: %d connections still referenced at "
			    "exit", atomic_load(&w->live));
	else {
		if (w->listen_fd >= 0)
			close(w->listen_fd);
		close(w->ep);
		close(w->wake_fd);
		free(w);   /* else leaked on purpose: a job may still unref */
	}
}

/* ---- vx_svcws over a Wyoming connection ---- */

static int wy_ws_text(vx_wsconn *wc, const char *text, size_t len)
{
	vx_wy_conn *c = (vx_wy_conn *)(void *)wc;
	if (atomic_load(&c->closed))
		return -EPIPE;
	pthread_mutex_lock(&c->tr);
	c->srv->cfg.ops->ws_text(c, c->state, text, len);
	pthread_mutex_unlock(&c->tr);
	return 0;
}

static int wy_ws_binary(vx_wsconn *wc, const void *data, size_t len)
{
	vx_wy_conn *c = (vx_wy_conn *)(void *)wc;
	if (atomic_load(&c->closed))
		return -EPIPE;
	pthread_mutex_lock(&c->tr);
	c->srv->cfg.ops->ws_binary(c, c->state, data, len);
	pthread_mutex_unlock(&c->tr);
	return 0;
}

static void wy_ws_close(vx_wsconn *wc, int status, const char *reason)
{
	vx_wy_conn *c = (vx_wy_conn *)(void *)wc;
	(void)status;
	vx_wy_error(c, "closed", "%s", reason ? reason : "closed");
	vx_wy_close(c);
}

static void wy_ws_ref(vx_wsconn *wc) { vx_wy_ref((vx_wy_conn *)(void *)wc); }
static void wy_ws_unref(vx_wsconn *wc) { vx_wy_unref((vx_wy_conn *)(void *)wc); }
static bool wy_ws_closed(const vx_wsconn *wc)
{
	return vx_wy_closed((const vx_wy_conn *)(const void *)wc);
}
static size_t wy_ws_queued(vx_wsconn *wc)
{
	return vx_wy_queued((vx_wy_conn *)(void *)wc);
}
static const char *wy_ws_request_id(const vx_wsconn *wc)
{
	return vx_wy_request_id((const vx_wy_conn *)(const void *)wc);
}

const vx_svcws_io vx_wy_svcws_io = {
	.send_text = wy_ws_text,
	.send_binary = wy_ws_binary,
	.close = wy_ws_close,
	.ref = wy_ws_ref,
	.unref = wy_ws_unref,
	.closed = wy_ws_closed,
	.queued = wy_ws_queued,
	.request_id = wy_ws_request_id,
};

void vx_wy_svcws_ops(const vx_svcws_ops *ws, vx_svcws_ops *ret)
{
	*ret = *ws;
	ret->io = &vx_wy_svcws_io;
}

/* ---- helpers ---- */

static int int_member(const cJSON *d, const char *key, int lo, int hi,
		      int *ret)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(d, key);
	if (!cJSON_IsNumber(v) || v->valuedouble < lo || v->valuedouble > hi ||
	    v->valuedouble != (double)(int)v->valuedouble)
		return -EINVAL;
	*ret = (int)v->valuedouble;
	return 0;
}

int vx_wy_audio_format(const cJSON *data, vx_wy_audio *ret)
{
	vx_wy_audio f;
	if (int_member(data, "rate", 1000, 384000, &f.rate) < 0 ||
	    int_member(data, "width", 1, 4, &f.width) < 0 ||
	    int_member(data, "channels", 1, 8, &f.channels) < 0)
		return -EINVAL;
	*ret = f;
	return 0;
}

int vx_wy_mono16(const vx_wy_audio *f, const void *pcm, size_t len,
		 vx_buf *out)
{
	size_t frame = (size_t)f->channels * 2;
	if (f->width != 2 || len % frame)
		return -EINVAL;
	vx_buf_reset(out);
	size_t n = len / frame;
	if (vx_buf_reserve(out, n * 2 + 2) < 0)
		return -ENOMEM;
	const unsigned char *p = pcm;
	int16_t *o = (int16_t *)(void *)out->data;
	for (size_t i = 0; i < n; i++) {
		int sum = 0;
		for (int ch = 0; ch < f->channels; ch++) {
			int16_t s;
			memcpy(&s, p + i * frame + (size_t)ch * 2, 2);
			sum += s;
		}
		o[i] = (int16_t)(sum / f->channels);
	}
	out->len = n * 2;
	return 0;
}

void vx_wy_artifact(vx_buf *b, const char *name, const char *description,
		    const char *version)
{
	vx_buf_puts(b, "\"name\":");
	vx_buf_json_str(b, name, strlen(name));
	vx_buf_puts(b, ",\"attribution\":{\"name\":\"voxline\","
		    "\"url\":\"\"},"
		    "\"installed\":true,\"description\":");
	description = description ? description : name;
	vx_buf_json_str(b, description, strlen(description));
	vx_buf_puts(b, ",\"version\":");
	vx_buf_json_str(b, version ? version : "", version ? strlen(version) : 0);
	vx_buf_puts(b, ",");
}

int vx_wy_start(const char *service, const vx_daemon_opts *d, int port,
		vx_server *server, const vx_wy_ops *ops, void *user,
		vx_wy_server **ret)
{
	vx_wy_server_config cfg = {
		.service = service, .host = d->host, .port = port,
		.max_connections = d->max_connections,
		.idle_timeout_s = d->idle_timeout_s,
		.server = server, .ops = ops, .user = user,
	};
	int r = vx_wy_server_new(&cfg, ret);
	if (r < 0)
		return r;
	vx_log_info(NULL, "wyoming on %s:%d", d->host, vx_wy_server_port(*ret));
	if (d->api_key && *d->api_key)
		vx_log_warn(NULL, "--api-key does not cover the Wyoming port "
			    "(the protocol has no authentication): keep it on "
			    "a trusted network");
	return 0;
}

void vx_wy_forward_error(vx_wy_conn *c, const cJSON *event)
{
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(event, "code");
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(event, "message");
	vx_wy_error(c, cJSON_IsString(code) ? code->valuestring : "error",
		    "%s", cJSON_IsString(msg) ? msg->valuestring : "");
}
