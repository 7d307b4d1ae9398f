/* vx_wsclient.c - outgoing WebSocket connections; see vx_wsclient.h. */
#include "vx_wsclient.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#include <libwebsockets.h>

#include "vx_buf.h"

#define VX_WSCLIENT_PROTOCOL "vx-wsclient"
#define VX_WSCLIENT_RX_CHUNK_BYTES 4096 /* lws rx buffer per connection */
#define VX_WSCLIENT_RX_KEEP_BYTES 65536  /* larger rx buffers are freed after use */

/* One queued outgoing message; buf has LWS_PRE bytes of headroom. */
struct vx_wsclient_msg {
	struct vx_wsclient_msg *next;
	size_t len;            /* payload bytes */
	size_t sent;           /* payload bytes handed to lws so far */
	int binary;
	unsigned char buf[];   /* LWS_PRE + len */
};

enum conn_state {
	CONN_PENDING,    /* waiting for the service thread to start connecting */
	CONN_CONNECTING, /* lws has a wsi; TCP connect or upgrade in progress */
	CONN_OPEN,
	CONN_CLOSED,     /* on_close runs or ran; nothing more happens */
};

struct vx_wsclient_conn {
	vx_wsclient *wc;
	vx_wsclient_callbacks cb;
	void *user;
	size_t max_queue_bytes;           /* wc's, copied: wc may be gone */
	atomic_int refs;

	/* Guarded by lock; written by the service thread, read anywhere. */
	pthread_mutex_t lock;
	enum conn_state state;
	int close_requested;
	struct vx_wsclient_msg *head, *tail;
	size_t queued_bytes;

	/* Guarded by wc->lock. */
	int dirty;                        /* 1 on wc->dirty, 2 being walked */
	struct vx_wsclient_conn *dirty_next;
	struct vx_wsclient_conn *prev, *next; /* wc->conns */

	/* Service thread only. */
	struct lws *wsi;
	lws_sorted_usec_list_t timer;     /* connect deadline, then close deadline */
	int err;                          /* reason decided before lws closes */
	int finished;                     /* on_close called */
	int peer_closed;                  /* the peer sent a close frame */
	int closing;                      /* close handled on the service thread */
	int rx_active, rx_binary;         /* a message is being reassembled */
	vx_buf rx;
	char *host;                       /* address to connect to */
	char *host_header;                /* host[:port] */
	char *path;                       /* /path?query */
	int port;
	char *headers;                    /* extra header lines, or NULL */
	size_t headers_len;
};

struct vx_wsclient {
	vx_wsclient_opts opts;            /* defaults filled in */
	struct lws_context *ctx;
	pthread_t thread;

	pthread_mutex_t lock;             /* guards the fields below */
	int stopping;                     /* vx_wsclient_free has begun */
	int ctx_alive;                    /* lws_cancel_service may be called */
	struct vx_wsclient_conn *dirty;   /* conns with work for the thread */
	struct vx_wsclient_conn *conns;   /* every conn not yet finished */
	int n_conns;

	/* Service thread only. */
	int stop_seen;
	int ctx_valid;                    /* lws_context_destroy not yet returned */
};

static int wsclient_callback(struct lws *wsi, enum lws_callback_reasons reason,
			     void *user, void *in, size_t len);

static const struct lws_protocols wsclient_protocols[] = {
	{ .name = VX_WSCLIENT_PROTOCOL, .callback = wsclient_callback,
	  .rx_buffer_size = VX_WSCLIENT_RX_CHUNK_BYTES,
	  .tx_packet_size = VX_WSCLIENT_FRAGMENT_BYTES },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};

/* ---- references ------------------------------------------------------ */

static void conn_destroy(vx_wsclient_conn *c)
{
	struct vx_wsclient_msg *m = c->head;
	while (m) {
		struct vx_wsclient_msg *next = m->next;
		free(m);
		m = next;
	}
	vx_buf_release(&c->rx);
	free(c->host);
	free(c->host_header);
	free(c->path);
	free(c->headers);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

void vx_wsclient_ref(vx_wsclient_conn *c)
{
	atomic_fetch_add(&c->refs, 1);
}

void vx_wsclient_unref(vx_wsclient_conn *c)
{
	if (c && atomic_fetch_sub(&c->refs, 1) == 1)
		conn_destroy(c);
}

/* ---- waking the service thread ---------------------------------------- */

/* Puts c on the dirty list and wakes the service thread. Caller holds
 * c->lock and has checked c->state != CONN_CLOSED, so wc is alive. */
static void conn_wake(vx_wsclient_conn *c)
{
	vx_wsclient *wc = c->wc;
	pthread_mutex_lock(&wc->lock);
	if (!c->dirty) {
		int was_empty = wc->dirty == NULL;
		c->dirty = 1;
		c->dirty_next = wc->dirty;
		wc->dirty = c;
		if (was_empty && wc->ctx_alive)
			lws_cancel_service(wc->ctx);
	}
	pthread_mutex_unlock(&wc->lock);
}

/* ---- finishing a connection (service thread) ---------------------------- */

static void conn_finish(vx_wsclient_conn *c, int err)
{
	vx_wsclient *wc = c->wc;
	if (c->finished)
		return;
	c->finished = 1;
	if (wc->ctx_valid) {
		lws_sul_cancel(&c->timer);
		/* later callbacks for the wsi (lws sends several) see NULL */
		if (c->wsi)
			lws_set_opaque_user_data(c->wsi, NULL);
	}
	c->wsi = NULL;

	pthread_mutex_lock(&c->lock);
	c->state = CONN_CLOSED;
	struct vx_wsclient_msg *m = c->head;
	c->head = c->tail = NULL;
	c->queued_bytes = 0;
	pthread_mutex_unlock(&c->lock);
	while (m) {
		struct vx_wsclient_msg *next = m->next;
		free(m);
		m = next;
	}

	pthread_mutex_lock(&wc->lock);
	if (c->dirty == 1) {
		vx_wsclient_conn **pp = &wc->dirty;
		while (*pp != c)
			pp = &(*pp)->dirty_next;
		*pp = c->dirty_next;
		c->dirty = 0;
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		wc->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	wc->n_conns--;
	pthread_mutex_unlock(&wc->lock);

	vx_buf_release(&c->rx);
	if (c->cb.on_close)
		c->cb.on_close(c, c->user, err);
	vx_wsclient_unref(c);
}

/* The error for a connection that lws reports closed. */
static int conn_close_err(const vx_wsclient_conn *c)
{
	if (c->err)
		return c->err;
	if (c->peer_closed || c->closing || c->close_requested)
		return 0;
	return -ECONNRESET;
}

/* Maps lws's CLIENT_CONNECTION_ERROR text to an errno. */
static int conn_connect_err(const vx_wsclient_conn *c, const char *why)
{
	if (c->err)
		return c->err;
	if (c->closing)
		return 0;
	if (!why)
		return -ECONNREFUSED;
	if (strcasestr(why, "timeout") || strcasestr(why, "timed out"))
		return -ETIMEDOUT;
	if (strncmp(why, "HS:", 3) == 0 || strcasestr(why, "upgrade") ||
	    strcasestr(why, "response") || strcasestr(why, "handshake"))
		return -EPROTO;
	if (strcasestr(why, "oom") || strcasestr(why, "alloc"))
		return -ENOMEM;
	return -ECONNREFUSED;
}

/* ---- timers and connecting (service thread) ------------------------------ */

static void conn_on_timer(lws_sorted_usec_list_t *sul)
{
	vx_wsclient_conn *c = lws_container_of(sul, vx_wsclient_conn, timer);
	if (c->finished || !c->wsi)
		return;
	if (c->state == CONN_CONNECTING && !c->closing)
		c->err = -ETIMEDOUT;
	/* no wsi is being serviced in a timer: close now (c may be freed) */
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
}

static void conn_start(vx_wsclient *wc, vx_wsclient_conn *c)
{
	struct lws_client_connect_info info;
	memset(&info, 0, sizeof(info));
	info.context = wc->ctx;
	info.address = c->host;
	info.port = c->port;
	info.path = c->path;
	info.host = c->host_header;
	info.local_protocol_name = VX_WSCLIENT_PROTOCOL;
	info.opaque_user_data = c;

	pthread_mutex_lock(&c->lock);
	c->state = CONN_CONNECTING;
	pthread_mutex_unlock(&c->lock);
	lws_sul_schedule(wc->ctx, 0, &c->timer, conn_on_timer,
			 (lws_usec_t)wc->opts.connect_timeout_ms * LWS_US_PER_MS);
	/* On failure lws may or may not have called CONNECTION_ERROR first. */
	struct lws *wsi = lws_client_connect_via_info(&info);
	if (!c->finished) {
		if (wsi)
			c->wsi = wsi;
		else
			conn_finish(c, c->err ? c->err : -ECONNREFUSED);
	}
}

/* Starts closing c on the service thread: flush, then close frame. Not
 * from c's own lws callback while connecting (it may free c then). */
static void conn_begin_close(vx_wsclient *wc, vx_wsclient_conn *c)
{
	if (c->closing || !c->wsi)
		return;
	c->closing = 1;
	if (c->state != CONN_OPEN) {
		/* Connecting: nothing to flush, drop it now. (KILL_ASYNC can be
		 * lost: lws re-arms the timeout as the handshake moves on.) */
		lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
		return;
	}
	lws_sul_schedule(wc->ctx, 0, &c->timer, conn_on_timer,
			 (lws_usec_t)VX_WSCLIENT_CLOSE_TIMEOUT_MS * LWS_US_PER_MS);
	lws_callback_on_writable(c->wsi);
}

/* EVENT_WAIT_CANCELLED: act on what other threads asked for. Each conn
 * taken off the list is marked dirty == 2 and referenced while we walk, so
 * neither a producer re-adding it nor its finishing can break the walk. */
static void wsclient_run_dirty(vx_wsclient *wc)
{
	pthread_mutex_lock(&wc->lock);
	vx_wsclient_conn *list = wc->dirty;
	wc->dirty = NULL;
	for (vx_wsclient_conn *c = list; c; c = c->dirty_next) {
		c->dirty = 2;
		vx_wsclient_ref(c);
	}
	if (wc->stopping)
		wc->stop_seen = 1;
	pthread_mutex_unlock(&wc->lock);

	while (list) {
		vx_wsclient_conn *c = list;
		pthread_mutex_lock(&wc->lock);
		list = c->dirty_next;
		c->dirty = 0;
		pthread_mutex_unlock(&wc->lock);

		pthread_mutex_lock(&c->lock);
		int close_req = c->close_requested;
		int has_data = c->head != NULL;
		pthread_mutex_unlock(&c->lock);
		if (c->finished || wc->stop_seen) {
			/* nothing: finished, or the context is going away */
		} else if (c->state == CONN_PENDING) {
			if (close_req)
				conn_finish(c, 0);
			else
				conn_start(wc, c);
		} else if (close_req) {
			conn_begin_close(wc, c);
		} else if (c->state == CONN_OPEN && has_data) {
			lws_callback_on_writable(c->wsi);
		}
		vx_wsclient_unref(c);
	}
}

/* ---- the lws callback (service thread) ---------------------------------- */

/* CLIENT_WRITEABLE: one frame (a message or a fragment of one) per call. */
static int conn_on_writeable(vx_wsclient_conn *c, struct lws *wsi)
{
	pthread_mutex_lock(&c->lock);
	struct vx_wsclient_msg *m = c->head;
	pthread_mutex_unlock(&c->lock);
	if (!m) {
		if (!c->closing)
			return 0;
		lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
		return -1;
	}

	size_t n = m->len - m->sent;
	if (n > VX_WSCLIENT_FRAGMENT_BYTES)
		n = VX_WSCLIENT_FRAGMENT_BYTES;
	int fin = m->sent + n == m->len;
	int flags = m->sent ? LWS_WRITE_CONTINUATION :
		    m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT;
	if (!fin)
		flags |= LWS_WRITE_NO_FIN;
	/* Fragments after the first put their frame header over payload bytes
	 * already sent (lws keeps its own copy of anything the socket refused). */
	if (lws_write(wsi, m->buf + LWS_PRE + m->sent, n, (enum lws_write_protocol)flags) < (int)n) {
		c->err = -ECONNRESET;
		return -1;
	}
	m->sent += n;

	int more = 1;
	if (fin) {
		pthread_mutex_lock(&c->lock);
		c->head = m->next;
		if (!c->head)
			c->tail = NULL;
		c->queued_bytes -= m->len;
		more = c->head != NULL || c->closing;
		pthread_mutex_unlock(&c->lock);
		free(m);
	}
	if (more)
		lws_callback_on_writable(wsi);
	return 0;
}

/* CLIENT_RECEIVE: reassemble fragments, deliver whole messages. */
static int conn_on_receive(vx_wsclient_conn *c, struct lws *wsi, const void *in, size_t len)
{
	if (!c->rx_active) {
		c->rx_active = 1;
		c->rx_binary = lws_frame_is_binary(wsi);
		vx_buf_reset(&c->rx);
	}
	if (len > c->wc->opts.max_message_bytes - c->rx.len) {
		c->err = -EMSGSIZE;
		lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, NULL, 0);
		return -1;
	}
	size_t rest = lws_remaining_packet_payload(wsi);
	if (rest > c->wc->opts.max_message_bytes - c->rx.len - len)
		rest = 0; /* let the check above refuse it when it comes */
	if (vx_buf_reserve(&c->rx, len + rest) < 0 || vx_buf_append(&c->rx, in, len) < 0) {
		c->err = -ENOMEM;
		lws_close_reason(wsi, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, NULL, 0);
		return -1;
	}
	if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
		return 0;

	c->rx_active = 0;
	const char *data = c->rx.data ? c->rx.data : "";
	if (c->rx_binary) {
		if (c->cb.on_binary)
			c->cb.on_binary(c, c->user, data, c->rx.len);
	} else if (c->cb.on_text) {
		c->cb.on_text(c, c->user, data, c->rx.len);
	}
	if (c->rx.cap > VX_WSCLIENT_RX_KEEP_BYTES)
		vx_buf_release(&c->rx);
	else
		vx_buf_reset(&c->rx);
	return 0;
}

static void conn_on_established(vx_wsclient_conn *c, struct lws *wsi)
{
	lws_sul_cancel(&c->timer);
	pthread_mutex_lock(&c->lock);
	c->state = CONN_OPEN;
	int has_data = c->head != NULL;
	int close_req = c->close_requested;
	pthread_mutex_unlock(&c->lock);
	if (c->cb.on_open)
		c->cb.on_open(c, c->user);
	if (close_req)
		conn_begin_close(c->wc, c);
	else if (has_data)
		lws_callback_on_writable(wsi);
}

/* Appends the caller's extra header lines to the upgrade request. */
static int conn_append_headers(vx_wsclient_conn *c, void *in, size_t len)
{
	unsigned char **p = (unsigned char **)in;
	if (!c->headers)
		return 0;
	if (c->headers_len > len)
		return -1;
	memcpy(*p, c->headers, c->headers_len);
	*p += c->headers_len;
	return 0;
}

static int wsclient_callback(struct lws *wsi, enum lws_callback_reasons reason,
			     void *user, void *in, size_t len)
{
	(void)user;
	vx_wsclient_conn *c = lws_get_opaque_user_data(wsi);

	/* Learn the wsi from its first callback: some come from inside
	 * lws_client_connect_via_info, before it returns the wsi. */
	if (c && !c->finished)
		c->wsi = wsi;

	switch (reason) {
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED: {
		vx_wsclient *wc = lws_context_user(lws_get_context(wsi));
		if (wc && !wc->stop_seen)
			wsclient_run_dirty(wc);
		return 0;
	}
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
		return c ? conn_append_headers(c, in, len) : 0;
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		if (c)
			conn_on_established(c, wsi);
		return 0;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		return c ? conn_on_receive(c, wsi, in, len) : 0;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return c ? conn_on_writeable(c, wsi) : 0;
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (c)
			c->peer_closed = 1;
		return 0;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		if (c)
			conn_finish(c, conn_connect_err(c, in));
		return 0;
	case LWS_CALLBACK_CLIENT_CLOSED:
	case LWS_CALLBACK_WSI_DESTROY:
		if (c)
			conn_finish(c, c->state == CONN_OPEN ? conn_close_err(c) :
				       conn_connect_err(c, NULL));
		return 0;
	default:
		return 0;
	}
}

/* ---- the client and its thread ----------------------------------------- */

static void *wsclient_thread(void *arg)
{
	vx_wsclient *wc = arg;
	while (!wc->stop_seen)
		if (lws_service(wc->ctx, 0) < 0)
			break;

	/* No more lws_cancel_service from other threads, then close every
	 * wsi here, on this thread, so their callbacks run here too. */
	pthread_mutex_lock(&wc->lock);
	wc->stopping = 1; /* also when lws_service failed: no more connects */
	wc->ctx_alive = 0;
	wc->stop_seen = 1;
	for (vx_wsclient_conn *c = wc->conns; c; c = c->next)
		c->err = c->err ? c->err : -ECANCELED;
	pthread_mutex_unlock(&wc->lock);
	lws_context_destroy(wc->ctx);
	wc->ctx = NULL;
	wc->ctx_valid = 0;

	/* Whatever lws did not report (never connected, or silently dropped). */
	for (;;) {
		pthread_mutex_lock(&wc->lock);
		vx_wsclient_conn *c = wc->conns;
		pthread_mutex_unlock(&wc->lock);
		if (!c)
			break;
		conn_finish(c, -ECANCELED);
	}
	return NULL;
}

/* Lets the process hold as many sockets as it may (soft up to hard). */
static void wsclient_raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	rlim_t want = rl.rlim_max;
	if (want == RLIM_INFINITY || want > VX_WSCLIENT_NOFILE_CAP)
		want = VX_WSCLIENT_NOFILE_CAP;
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = want;
	(void)setrlimit(RLIMIT_NOFILE, &rl);
}

int vx_wsclient_new_opts(const vx_wsclient_opts *opts, vx_wsclient **ret)
{
	int r = -ENOMEM;
	vx_wsclient *wc = calloc(1, sizeof(*wc));
	if (!wc)
		return -ENOMEM;
	if (opts)
		wc->opts = *opts;
	if (wc->opts.connect_timeout_ms <= 0)
		wc->opts.connect_timeout_ms = VX_WSCLIENT_DEFAULT_CONNECT_TIMEOUT_MS;
	if (!wc->opts.max_message_bytes)
		wc->opts.max_message_bytes = VX_WSCLIENT_DEFAULT_MAX_MESSAGE_BYTES;
	if (!wc->opts.max_queue_bytes)
		wc->opts.max_queue_bytes = VX_WSCLIENT_DEFAULT_MAX_QUEUE_BYTES;
	if (wc->opts.max_connections <= 0)
		wc->opts.max_connections = VX_WSCLIENT_DEFAULT_MAX_CONNECTIONS;
	if (pthread_mutex_init(&wc->lock, NULL) != 0)
		goto out_free_wc;

	wsclient_raise_nofile();
	lws_set_log_level(LLL_ERR | LLL_WARN, NULL);

	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = wsclient_protocols;
	info.gid = -1;
	info.uid = -1;
	info.user = wc;
	/* lws' own connect timeout only backs ours up */
	info.connect_timeout_secs = (unsigned)wc->opts.connect_timeout_ms / 1000 + 5;
	wc->ctx = lws_create_context(&info);
	if (!wc->ctx) {
		r = -EIO;
		goto out_destroy_lock;
	}
	wc->ctx_alive = 1;
	wc->ctx_valid = 1;
	r = -pthread_create(&wc->thread, NULL, wsclient_thread, wc);
	if (r < 0)
		goto out_destroy_ctx;
	*ret = wc;
	return 0;

out_destroy_ctx:
	lws_context_destroy(wc->ctx);
out_destroy_lock:
	pthread_mutex_destroy(&wc->lock);
out_free_wc:
	free(wc);
	return r;
}

int vx_wsclient_new(vx_wsclient **ret)
{
	return vx_wsclient_new_opts(NULL, ret);
}

void vx_wsclient_free(vx_wsclient *wc)
{
	if (!wc)
		return;
	pthread_mutex_lock(&wc->lock);
	wc->stopping = 1;
	if (wc->ctx_alive)
		lws_cancel_service(wc->ctx);
	pthread_mutex_unlock(&wc->lock);
	pthread_join(wc->thread, NULL);
	pthread_mutex_destroy(&wc->lock);
	free(wc);
}

/* ---- connections --------------------------------------------------------- */

/* Splits "ws://host[:port][/path][?query]" into c's host, port, path. */
static int conn_parse_url(vx_wsclient_conn *c, const char *url)
{
	size_t n = strnlen(url, VX_WSCLIENT_MAX_URL + 1);
	if (n > VX_WSCLIENT_MAX_URL)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)url[i] <= ' ' || url[i] == 0x7f)
			return -EINVAL;
	if (strncasecmp(url, "wss://", 6) == 0)
		return -EPROTONOSUPPORT;
	if (strncasecmp(url, "ws://", 5) != 0)
		return strstr(url, "://") ? -EPROTONOSUPPORT : -EINVAL;

	const char *auth = url + 5;
	size_t auth_len = strcspn(auth, "/?#");
	const char *rest = auth + auth_len;
	const char *host = auth, *colon;
	size_t host_len;
	if (*auth == '[') {
		const char *close = memchr(auth, ']', auth_len);
		if (!close)
			return -EINVAL;
		host = auth + 1;
		host_len = (size_t)(close - host);
		colon = close + 1 < rest ? close + 1 : NULL;
		if (colon && *colon != ':')
			return -EINVAL;
	} else {
		colon = memchr(auth, ':', auth_len);
		host_len = colon ? (size_t)(colon - auth) : auth_len;
	}
	if (host_len == 0)
		return -EINVAL;

	int port = 80;
	if (colon) {
		const char *p = colon + 1;
		if (p == rest)
			return -EINVAL;
		port = 0;
		for (; p < rest; p++) {
			if (*p < '0' || *p > '9' || port > 65535)
				return -EINVAL;
			port = port * 10 + (*p - '0');
		}
		if (port < 1 || port > 65535)
			return -EINVAL;
	}
	size_t path_len = strcspn(rest, "#");
	c->host = strndup(host, host_len);
	c->host_header = strndup(auth, auth_len);
	c->path = malloc(path_len + 2);
	if (!c->host || !c->host_header || !c->path)
		return -ENOMEM;
	size_t off = 0;
	if (*rest != '/')
		c->path[off++] = '/';
	memcpy(c->path + off, rest, path_len);
	c->path[off + path_len] = '\0';
	c->port = port;
	return 0;
}

/* Extra headers: whole "Name: value\r\n" lines, nothing that ends the head. */
static int conn_set_headers(vx_wsclient_conn *c, const char *headers)
{
	if (!headers || !*headers)
		return 0;
	size_t n = strnlen(headers, VX_WSCLIENT_MAX_EXTRA_HEADERS + 1);
	if (n > VX_WSCLIENT_MAX_EXTRA_HEADERS || n < 2 ||
	    strcmp(headers + n - 2, "\r\n") != 0 || strncmp(headers, "\r\n", 2) == 0 ||
	    strstr(headers, "\r\n\r\n"))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (headers[i] == '\n' && (i == 0 || headers[i - 1] != '\r'))
			return -EINVAL;
		if (headers[i] == '\r' && headers[i + 1] != '\n')
			return -EINVAL;
	}
	c->headers = strdup(headers);
	if (!c->headers)
		return -ENOMEM;
	c->headers_len = n;
	return 0;
}

int vx_wsclient_connect(vx_wsclient *wc, const char *url, const char *extra_headers,
			const vx_wsclient_callbacks *cb, void *user,
			vx_wsclient_conn **ret)
{
	if (!wc || !url || !cb)
		return -EINVAL;
	vx_wsclient_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->wc = wc;
	c->cb = *cb;
	c->user = user;
	c->max_queue_bytes = wc->opts.max_queue_bytes;
	atomic_init(&c->refs, ret ? 2 : 1);
	c->state = CONN_PENDING;
	int r = pthread_mutex_init(&c->lock, NULL);
	if (r != 0) {
		free(c);
		return -r;
	}
	r = conn_parse_url(c, url);
	if (r < 0)
		goto out_destroy_conn;
	r = conn_set_headers(c, extra_headers);
	if (r < 0)
		goto out_destroy_conn;

	pthread_mutex_lock(&wc->lock);
	if (wc->stopping) {
		r = -ECANCELED;
	} else if (wc->n_conns >= wc->opts.max_connections) {
		r = -EMFILE;
	} else {
		c->next = wc->conns;
		if (wc->conns)
			wc->conns->prev = c;
		wc->conns = c;
		wc->n_conns++;
		if (ret)
			*ret = c;
		c->dirty = 1;
		c->dirty_next = wc->dirty;
		if (!wc->dirty && wc->ctx_alive)
			lws_cancel_service(wc->ctx);
		wc->dirty = c;
	}
	pthread_mutex_unlock(&wc->lock);
	if (r < 0)
		goto out_destroy_conn;
	return 0;

out_destroy_conn:
	conn_destroy(c);
	return r;
}

static int conn_send(vx_wsclient_conn *c, const void *data, size_t len, int binary)
{
	if (!c || (!data && len))
		return -EINVAL;
	if (len > c->max_queue_bytes)
		return -EMSGSIZE;
	struct vx_wsclient_msg *m = malloc(sizeof(*m) + LWS_PRE + len);
	if (!m)
		return -ENOMEM;
	m->next = NULL;
	m->len = len;
	m->sent = 0;
	m->binary = binary;
	if (len)
		memcpy(m->buf + LWS_PRE, data, len);

	int r = 0;
	pthread_mutex_lock(&c->lock);
	if (c->state == CONN_CLOSED || c->close_requested) {
		r = -EPIPE;
	} else if (len > c->max_queue_bytes - c->queued_bytes) {
		r = -ENOBUFS;
	} else {
		if (c->tail)
			c->tail->next = m;
		else
			c->head = m;
		c->tail = m;
		c->queued_bytes += len;
		if (c->state == CONN_OPEN)
			conn_wake(c);
	}
	pthread_mutex_unlock(&c->lock);
	if (r < 0)
		free(m);
	return r;
}

int vx_wsclient_send_text(vx_wsclient_conn *c, const char *text, size_t len)
{
	return conn_send(c, text, len, 0);
}

int vx_wsclient_send_binary(vx_wsclient_conn *c, const void *data, size_t len)
{
	return conn_send(c, data, len, 1);
}

void vx_wsclient_close(vx_wsclient_conn *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	if (c->state != CONN_CLOSED && !c->close_requested) {
		c->close_requested = 1;
		conn_wake(c);
	}
	pthread_mutex_unlock(&c->lock);
}

size_t vx_wsclient_queued(vx_wsclient_conn *c)
{
	if (!c)
		return 0;
	pthread_mutex_lock(&c->lock);
	size_t n = c->queued_bytes;
	pthread_mutex_unlock(&c->lock);
	return n;
}
