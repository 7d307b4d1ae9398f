/*
 * vx_ws.c - server-side WebSockets on libwebsockets, sharing the HTTP port.
 *
 * The serving loops (vx_loop.c) hand sockets whose head is an upgrade on
 * a registered path to vx_ws_adopt (vx_ws_int.h), which queues them for the
 * lws service thread (lws is single-threaded: only that thread may adopt,
 * read or write). Sends from other threads go to a per-connection queue;
 * the connection is put on the host's wake list and lws_cancel_service
 * makes the service thread ask for a writable callback.
 *
 * Checks lws 4.1.6 leaves to us, done here on the service thread:
 *   - the config deadline: a connection whose first message has not
 *     arrived within cfg.config_timeout_ms is closed with 1008 (an lws
 *     timer per connection, cancelled by the first complete message);
 *   - the peer's close frame: a 1-byte payload or a code lws does not
 *     rewrite itself (5000 and up) fails the connection with 1002 instead
 *     of being echoed (LWS_CALLBACK_WS_PEER_INITIATED_CLOSE).
 * Not checkable: lws accepts unmasked client frames. It reads the mask bit
 * into private state (lib/roles/ws/ops-ws.c, this_frame_masked), never
 * refuses an unmasked frame on the server side, exposes the bit through no
 * API, and calls back only with the unmasked payload.
 */
#include "vx_ws.h"

#include <errno.h>
#include <libwebsockets.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vx_log.h"
#include "vx_route.h"
#include "vx_ws_int.h"

#define WS_SEND_QUEUE_MAX (8u * 1024 * 1024)  /* unsent bytes per connection */
#define WS_CONFIG_TIMEOUT_MS 10000            /* when the config says 0 */

struct vx_ws_host {
	vx_ws_config cfg;
	struct lws_context *lws;
	struct lws_vhost *lws_vhost;
	pthread_t lws_thread;
	bool lws_started;
	atomic_bool stopping;
	pthread_mutex_t ws_lock;           /* guards the two lists below */
	int *adopt_fds;                    /* sockets waiting for lws */
	size_t n_adopt, cap_adopt;
	struct vx_wsconn *wake_list;       /* conns with output to write */
};

typedef struct ws_msg {
	struct ws_msg *next;
	bool binary;
	size_t len;
	unsigned char data[];   /* LWS_PRE headroom, then the payload */
} ws_msg;

struct vx_wsconn {
	vx_ws_host *server;
	const vx_ws_route *route;
	struct lws *wsi;              /* NULL once closed; service thread only */
	void *state;                  /* the route's */
	atomic_int refs;
	atomic_bool closed;
	char id[40];
	char path[128];

	pthread_mutex_t lock;         /* guards the fields below */
	ws_msg *head, *tail;
	size_t queued;
	bool close_requested;
	int close_status;
	char close_reason[64];
	bool on_wake_list;
	struct vx_wsconn *wake_next;

	vx_buf rx;                    /* message being reassembled */
	bool rx_overflow;
	bool got_message;             /* a whole message has arrived */
};

typedef struct ws_pss {
	vx_wsconn *conn;
} ws_pss;

void vx_ws_ref(vx_wsconn *c)
{
	atomic_fetch_add(&c->refs, 1);
}

void vx_ws_unref(vx_wsconn *c)
{
	if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	ws_msg *m = c->head;
	while (m) {
		ws_msg *next = m->next;
		free(m);
		m = next;
	}
	vx_buf_release(&c->rx);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

const atomic_bool *vx_ws_closed(const vx_wsconn *c) { return &c->closed; }
const char *vx_ws_request_id(const vx_wsconn *c) { return c->id; }
size_t vx_ws_queued(vx_wsconn *c)
{
	pthread_mutex_lock(&c->lock);
	size_t n = c->queued;
	pthread_mutex_unlock(&c->lock);
	return n;
}

/* Puts c on the wake list (once) and wakes the service thread. */
static void ws_wake(vx_wsconn *c)
{
	vx_ws_host *s = c->server;
	if (atomic_load(&s->stopping))
		return;   /* the service thread is gone or going: nothing to wake */
	pthread_mutex_lock(&c->lock);
	bool add = !c->on_wake_list;
	c->on_wake_list = true;
	pthread_mutex_unlock(&c->lock);
	if (add) {
		vx_ws_ref(c);
		pthread_mutex_lock(&s->ws_lock);
		c->wake_next = s->wake_list;
		s->wake_list = c;
		pthread_mutex_unlock(&s->ws_lock);
	}
	lws_cancel_service(s->lws);
}

static int ws_send(vx_wsconn *c, const void *data, size_t len, bool binary)
{
	if (atomic_load(&c->closed))
		return -EPIPE;
	ws_msg *m = malloc(sizeof(*m) + LWS_PRE + len);
	if (!m)
		return -ENOMEM;
	m->next = NULL;
	m->binary = binary;
	m->len = len;
	memcpy(m->data + LWS_PRE, data, len);
	pthread_mutex_lock(&c->lock);
	if (c->queued + len > WS_SEND_QUEUE_MAX || c->close_requested) {
		int r = c->close_requested ? -EPIPE : -ENOBUFS;
		pthread_mutex_unlock(&c->lock);
		free(m);
		return r;
	}
	if (c->tail)
		c->tail->next = m;
	else
		c->head = m;
	c->tail = m;
	c->queued += len;
	pthread_mutex_unlock(&c->lock);
	ws_wake(c);
	return 0;
}

int vx_ws_send_text(vx_wsconn *c, const char *text, size_t len)
{
	return ws_send(c, text, len, false);
}

int vx_ws_send_binary(vx_wsconn *c, const void *data, size_t len)
{
	return ws_send(c, data, len, true);
}

void vx_ws_error_event_va(vx_buf *out, const char *fields, const char *code,
			  const char *fmt, va_list ap)
{
	char msg[VX_WS_ERROR_MAX];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	vx_buf_puts(out, "{\"event\":\"error\",\"code\":");
	vx_buf_json_str(out, code, strlen(code));
	vx_buf_puts(out, ",\"message\":");
	vx_buf_json_str(out, msg, strlen(msg));
	vx_buf_printf(out, "%s}", fields ? fields : "");
}

__attribute__((format(printf, 4, 0)))
static int ws_send_error_va(vx_wsconn *c, const char *fields, const char *code,
			    const char *fmt, va_list ap)
{
	vx_buf b = {0};
	vx_ws_error_event_va(&b, fields, code, fmt, ap);
	int r = b.data ? vx_ws_send_text(c, b.data, b.len) : -ENOMEM;
	vx_buf_release(&b);
	return r;
}

int vx_ws_send_error(vx_wsconn *c, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = ws_send_error_va(c, "", code, fmt, ap);
	va_end(ap);
	return r;
}

int vx_ws_send_error_fields(vx_wsconn *c, const char *fields, const char *code,
			    const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = ws_send_error_va(c, fields ? fields : "", code, fmt, ap);
	va_end(ap);
	return r;
}

bool vx_ws_text_has_nul(const char *text, size_t len)
{
	if (memchr(text, '\0', len))
		return true;
	for (size_t i = 0; i + 1 < len; i++) {
		if (text[i] != '\\')
			continue;
		if (text[i + 1] == 'u' && i + 5 < len &&
		    memcmp(text + i + 2, "0000", 4) == 0)
			return true;
		i++;   /* the escaped character: "\\u0000" is no NUL */
	}
	return false;
}

void vx_ws_close(vx_wsconn *c, int status, const char *reason)
{
	if (atomic_load(&c->closed))
		return;   /* already gone; the server may be too */
	pthread_mutex_lock(&c->lock);
	if (!c->close_requested) {
		c->close_requested = true;
		c->close_status = status ? status : 1000;
		snprintf(c->close_reason, sizeof(c->close_reason), "%s",
			 reason ? reason : "");
	}
	pthread_mutex_unlock(&c->lock);
	ws_wake(c);
}

/* ---- service thread ---- */

static void ws_on_established(vx_ws_host *s, struct lws *wsi, ws_pss *pss)
{
	vx_wsconn *c = calloc(1, sizeof(*c));
	if (!c)
		return;
	c->server = s;
	c->wsi = wsi;
	atomic_init(&c->refs, 1);
	pthread_mutex_init(&c->lock, NULL);
	char uri[256] = "";
	lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI);
	size_t plen = strcspn(uri, "?");
	snprintf(c->path, sizeof(c->path), "%.*s", (int)plen, uri);
	char rid[40] = "";
	int n = lws_hdr_custom_copy(wsi, rid, sizeof(rid), "x-request-id:", 13);
	if (n > 0 && n < 37)
		snprintf(c->id, sizeof(c->id), "%s", rid);
	else
		snprintf(c->id, sizeof(c->id), "ws-%08x%08x",
			 (unsigned)rand(), (unsigned)rand());
	pss->conn = c;
	atomic_fetch_add(s->cfg.open, 1);
	vx_counter_add(s->cfg.connections, 1);
	c->route = vx_route_ws_find(s->cfg.routes, s->cfg.n_routes, c->path,
				    strlen(c->path));
	if (!c->route) {
		vx_ws_close(c, 1001, "unavailable");
		c->route = NULL;
		return;
	}
	if (c->route->on_open(c, s->cfg.user, &c->state) != 0) {
		c->route = NULL;   /* refused: no further callbacks */
		vx_ws_close(c, 1013, "try again later");
		return;
	}
	int ms = s->cfg.config_timeout_ms > 0 ? s->cfg.config_timeout_ms :
		 WS_CONFIG_TIMEOUT_MS;
	lws_set_timer_usecs(wsi, (lws_usec_t)ms * 1000);
}

/* The config deadline passed: close unless a message came meanwhile. */
static void ws_on_timer(vx_ws_host *s, vx_wsconn *c)
{
	if (c->got_message)
		return;
	int ms = s->cfg.config_timeout_ms > 0 ? s->cfg.config_timeout_ms :
		 WS_CONFIG_TIMEOUT_MS;
	char reason[64];
	snprintf(reason, sizeof(reason), "no config message within %d ms", ms);
	vx_log_debug(c->id, "ws: %s", reason);
	vx_ws_close(c, 1008, reason);
}

/* RFC 6455 7.4: the codes a peer may send. lws itself rewrites codes
 * below 3000 that are not in its list to 1002 before this is asked. */
static bool ws_close_code_ok(unsigned code)
{
	return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
	       (code >= 3000 && code <= 4999);
}

/* The peer sent a close frame: 0 lets lws echo it, -1 fails the
 * connection with 1002 (a 1-byte payload, or a code out of range). */
static int ws_on_peer_close(struct lws *wsi, const unsigned char *in,
			    size_t len)
{
	if (len == 0 || (len >= 2 && ws_close_code_ok((unsigned)in[0] << 8 | in[1])))
		return 0;
	static const char reason[] = "bad close frame";
	lws_close_reason(wsi, LWS_CLOSE_STATUS_PROTOCOL_ERR,
			 (unsigned char *)reason, sizeof(reason) - 1);
	return -1;
}

static void ws_on_receive(vx_ws_host *s, struct lws *wsi, vx_wsconn *c,
			  const void *in, size_t len)
{
	if (lws_is_first_fragment(wsi)) {
		vx_buf_reset(&c->rx);
		c->rx_overflow = false;
	}
	if (c->rx_overflow)
		return;
	if (c->rx.len + len > s->cfg.max_message) {
		c->rx_overflow = true;
		vx_ws_close(c, 1009, "message too big");
		return;
	}
	vx_buf_append(&c->rx, in, len);
	if (!lws_is_final_fragment(wsi) || !c->route)
		return;
	if (!c->got_message) {
		c->got_message = true;
		lws_set_timer_usecs(wsi, LWS_SET_TIMER_USEC_CANCEL);
	}
	if (lws_frame_is_binary(wsi)) {
		if (c->route->on_binary)
			c->route->on_binary(c, c->state, c->rx.data ? c->rx.data : "",
					    c->rx.len);
		else
			vx_ws_send_error(c, "unsupported",
					 "this WebSocket takes JSON text messages");
	} else if (c->route->on_text) {
		c->route->on_text(c, c->state, c->rx.data ? c->rx.data : "",
				  c->rx.len);
	}
	if (c->rx.cap > 64 * 1024)
		vx_buf_release(&c->rx);
	else
		vx_buf_reset(&c->rx);
}

/* Writes one queued message; returns -1 to make lws close. */
static int ws_on_writable(struct lws *wsi, vx_wsconn *c)
{
	pthread_mutex_lock(&c->lock);
	ws_msg *m = c->head;
	if (m) {
		c->head = m->next;
		if (!c->head)
			c->tail = NULL;
		c->queued -= m->len;
	}
	bool more = c->head != NULL;
	bool closing = c->close_requested && !m;
	int status = c->close_status;
	char reason[64];
	snprintf(reason, sizeof(reason), "%s", c->close_reason);
	pthread_mutex_unlock(&c->lock);

	if (closing) {
		lws_close_reason(wsi, (enum lws_close_status)status,
				 (unsigned char *)reason, strlen(reason));
		return -1;
	}
	if (!m)
		return 0;
	int r = lws_write(wsi, m->data + LWS_PRE, m->len,
			  m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
	free(m);
	if (r < 0)
		return -1;
	pthread_mutex_lock(&c->lock);
	more = more || c->close_requested;
	pthread_mutex_unlock(&c->lock);
	if (more)
		lws_callback_on_writable(wsi);
	return 0;
}

static void ws_drain_wake_list(vx_ws_host *s)
{
	pthread_mutex_lock(&s->ws_lock);
	vx_wsconn *list = s->wake_list;
	s->wake_list = NULL;
	int *fds = s->adopt_fds;
	size_t n_fds = s->n_adopt;
	s->adopt_fds = NULL;
	s->n_adopt = s->cap_adopt = 0;
	pthread_mutex_unlock(&s->ws_lock);

	for (size_t i = 0; i < n_fds; i++) {
		if (!lws_adopt_socket_vhost(s->lws_vhost, fds[i]))
			close(fds[i]);
	}
	free(fds);
	while (list) {
		vx_wsconn *c = list;
		list = c->wake_next;
		pthread_mutex_lock(&c->lock);
		c->on_wake_list = false;
		pthread_mutex_unlock(&c->lock);
		if (c->wsi)
			lws_callback_on_writable(c->wsi);
		vx_ws_unref(c);
	}
}

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason,
		       void *user, void *in, size_t len)
{
	struct lws_context *ctx = lws_get_context(wsi);
	vx_ws_host *s = ctx ? lws_context_user(ctx) : NULL;
	ws_pss *pss = user;
	switch (reason) {
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		if (s)
			ws_drain_wake_list(s);
		break;
	case LWS_CALLBACK_ESTABLISHED:
		ws_on_established(s, wsi, pss);
		if (!pss->conn)
			return -1;
		break;
	case LWS_CALLBACK_RECEIVE:
		if (pss && pss->conn)
			ws_on_receive(s, wsi, pss->conn, in, len);
		break;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (pss && pss->conn)
			return ws_on_writable(wsi, pss->conn);
		break;
	case LWS_CALLBACK_TIMER:
		if (pss && pss->conn)
			ws_on_timer(s, pss->conn);
		break;
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		return ws_on_peer_close(wsi, in, len);
	case LWS_CALLBACK_CLOSED:
		if (pss && pss->conn) {
			vx_wsconn *c = pss->conn;
			pss->conn = NULL;
			c->wsi = NULL;
			atomic_store(&c->closed, true);
			if (c->route && c->route->on_close)
				c->route->on_close(c, c->state);
			atomic_fetch_sub(s->cfg.open, 1);
			vx_ws_unref(c);
		}
		break;
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols ws_protocols[] = {
	{ "voxline", ws_callback, sizeof(ws_pss), 0, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 },
};

static void *ws_main(void *arg)
{
	vx_ws_host *s = arg;
	while (!atomic_load(&s->stopping))
		lws_service(s->lws, 0);
	return NULL;
}

void vx_ws_adopt(vx_ws_host *s, int fd)
{
	pthread_mutex_lock(&s->ws_lock);
	if (s->n_adopt == s->cap_adopt) {
		size_t cap = s->cap_adopt ? s->cap_adopt * 2 : 16;
		int *p = realloc(s->adopt_fds, cap * sizeof(*p));
		if (!p) {
			pthread_mutex_unlock(&s->ws_lock);
			close(fd);
			return;
		}
		s->adopt_fds = p;
		s->cap_adopt = cap;
	}
	s->adopt_fds[s->n_adopt++] = fd;
	pthread_mutex_unlock(&s->ws_lock);
	lws_cancel_service(s->lws);
}

static void ws_log(int level, const char *line)
{
	(void)level;
	vx_log_debug(NULL, "lws: %s", line);
}

int vx_ws_start(const vx_ws_config *cfg, vx_ws_host **ret)
{
	vx_ws_host *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->cfg = *cfg;
	pthread_mutex_init(&s->ws_lock, NULL);
	int r = -EIO;
	lws_set_log_level(LLL_ERR | LLL_WARN, ws_log);
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
	info.protocols = ws_protocols;
	info.user = s;
	info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 |
		       LWS_SERVER_OPTION_DISABLE_IPV6;
	info.fd_limit_per_thread = (unsigned)s->cfg.max_connections + 64;
	info.timeout_secs = 20;
	info.ka_time = 0;
	s->lws = lws_create_context(&info);
	if (!s->lws)
		goto out_stop;
	s->lws_vhost = lws_get_vhost_by_name(s->lws, "default");
	if (!s->lws_vhost)
		goto out_stop;
	r = pthread_create(&s->lws_thread, NULL, ws_main, s);
	if (r != 0) {
		r = -r;
		goto out_stop;
	}
	s->lws_started = true;
	*ret = s;
	return 0;
out_stop:
	vx_ws_free(s);
	return r;
}

void vx_ws_stop(vx_ws_host *s)
{
	if (!s)
		return;
	atomic_store(&s->stopping, true);
	if (s->lws_started) {
		lws_cancel_service(s->lws);
		pthread_join(s->lws_thread, NULL);
		s->lws_started = false;
	}
	if (s->lws) {
		lws_context_destroy(s->lws);
		s->lws = NULL;
	}
	/* Drop wake-list references left by sends after the thread ended. */
	while (s->wake_list) {
		vx_wsconn *c = s->wake_list;
		s->wake_list = c->wake_next;
		vx_ws_unref(c);
	}
	for (size_t i = 0; i < s->n_adopt; i++)
		close(s->adopt_fds[i]);
	s->n_adopt = 0;
}

void vx_ws_free(vx_ws_host *s)
{
	if (!s)
		return;
	vx_ws_stop(s);
	free(s->adopt_fds);
	pthread_mutex_destroy(&s->ws_lock);
	free(s);
}
