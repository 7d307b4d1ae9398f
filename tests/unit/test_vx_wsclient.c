/*
 * Unit tests for common/vx_wsclient.c against a real libwebsockets echo
 * server started in this process (its own context and thread, port 0).
 *
 * Server protocol: every message is echoed back whole, except these text
 * commands: "close" (server sends a close frame), "drop" (server shuts the
 * socket without a close frame), "big:N" (server sends N bytes of text),
 * "header" (the X-Request-Id of the upgrade), "path" (the request path).
 */
#include "../../common/vx_buf.h"
#include "../../common/vx_wsclient.h"
#include "vx_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>

#define WAIT_MS 5000 /* every wait in these tests; a hang fails, not blocks */

/* ---- the echo server --------------------------------------------------- */

struct srv_msg {
	struct srv_msg *next;
	size_t len;
	int binary;
	unsigned char buf[]; /* LWS_PRE + len */
};

struct srv_session {
	struct srv_msg *head, *tail;
	vx_buf rx;
	char request_id[64];
	char path[256];
	int close_after; /* send a close frame at the next writeable */
};

struct srv {
	struct lws_context *ctx;
	pthread_t thread;
	atomic_int stop;
	int port;
	atomic_int established, closed;
};

static void srv_queue(struct lws *wsi, struct srv_session *s, const void *data,
		      size_t len, int binary)
{
	struct srv_msg *m = malloc(sizeof(*m) + LWS_PRE + len);
	if (!m)
		abort();
	m->next = NULL;
	m->len = len;
	m->binary = binary;
	memcpy(m->buf + LWS_PRE, data, len);
	if (s->tail)
		s->tail->next = m;
	else
		s->head = m;
	s->tail = m;
	lws_callback_on_writable(wsi);
}

/* A whole message arrived: answer it. Returns -1 to drop the connection. */
static int srv_on_message(struct lws *wsi, struct srv_session *s, int binary)
{
	const char *t = s->rx.data ? s->rx.data : "";
	if (!binary && strcmp(t, "close") == 0) {
		s->close_after = 1;
		lws_callback_on_writable(wsi);
	} else if (!binary && strcmp(t, "drop") == 0) {
		shutdown(lws_get_socket_fd(wsi), SHUT_RDWR);
		return -1;
	} else if (!binary && strncmp(t, "big:", 4) == 0) {
		size_t n = strtoul(t + 4, NULL, 10);
		char *big = malloc(n + 1);
		memset(big, 'b', n);
		srv_queue(wsi, s, big, n, 0);
		free(big);
	} else if (!binary && strcmp(t, "header") == 0) {
		srv_queue(wsi, s, s->request_id, strlen(s->request_id), 0);
	} else if (!binary && strcmp(t, "path") == 0) {
		srv_queue(wsi, s, s->path, strlen(s->path), 0);
	} else {
		srv_queue(wsi, s, t, s->rx.len, binary);
	}
	return 0;
}

static int srv_callback(struct lws *wsi, enum lws_callback_reasons reason,
			void *user, void *in, size_t len)
{
	struct srv_session *s = user;
	struct srv *sv = lws_context_user(lws_get_context(wsi));

	switch (reason) {
	case LWS_CALLBACK_ESTABLISHED:
		memset(s, 0, sizeof(*s));
		lws_hdr_custom_copy(wsi, s->request_id, sizeof(s->request_id),
				    "x-request-id:", 13);
		lws_hdr_copy(wsi, s->path, sizeof(s->path), WSI_TOKEN_GET_URI);
		atomic_fetch_add(&sv->established, 1);
		return 0;
	case LWS_CALLBACK_RECEIVE:
		if (vx_buf_append(&s->rx, in, len) < 0)
			return -1;
		if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
			return 0;
		int r = srv_on_message(wsi, s, lws_frame_is_binary(wsi));
		vx_buf_reset(&s->rx);
		return r;
	case LWS_CALLBACK_SERVER_WRITEABLE: {
		struct srv_msg *m = s->head;
		if (!m) {
			if (!s->close_after)
				return 0;
			lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
			return -1;
		}
		if (lws_write(wsi, m->buf + LWS_PRE, m->len,
			      m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT) < (int)m->len)
			return -1;
		s->head = m->next;
		if (!s->head)
			s->tail = NULL;
		free(m);
		if (s->head || s->close_after)
			lws_callback_on_writable(wsi);
		return 0;
	}
	case LWS_CALLBACK_CLOSED:
		while (s->head) {
			struct srv_msg *m = s->head;
			s->head = m->next;
			free(m);
		}
		vx_buf_release(&s->rx);
		atomic_fetch_add(&sv->closed, 1);
		return 0;
	default:
		return 0;
	}
}

static const struct lws_protocols srv_protocols[] = {
	{ "echo", srv_callback, sizeof(struct srv_session), 65536, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};

static void *srv_thread(void *arg)
{
	struct srv *sv = arg;
	while (!atomic_load(&sv->stop))
		lws_service(sv->ctx, 0);
	return NULL;
}

static int srv_start(struct srv *sv)
{
	memset(sv, 0, sizeof(*sv));
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	info.port = 0;
	info.iface = "127.0.0.1";
	info.protocols = srv_protocols;
	info.gid = -1;
	info.uid = -1;
	info.user = sv;
	lws_set_log_level(LLL_ERR, NULL);
	sv->ctx = lws_create_context(&info);
	if (!sv->ctx)
		return -1;
	sv->port = lws_get_vhost_listen_port(lws_get_vhost_by_name(sv->ctx, "default"));
	return pthread_create(&sv->thread, NULL, srv_thread, sv) ? -1 : 0;
}

static void srv_stop(struct srv *sv)
{
	atomic_store(&sv->stop, 1);
	lws_cancel_service(sv->ctx);
	pthread_join(sv->thread, NULL);
	lws_context_destroy(sv->ctx);
}

static void srv_url(const struct srv *sv, const char *path, char *buf, size_t n)
{
	snprintf(buf, n, "ws://127.0.0.1:%d%s", sv->port, path);
}

/* ---- a recording client user ---------------------------------------------- */

struct rec {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int opens, closes, close_err, texts, binaries;
	vx_buf last;       /* the last message */
	int in_order;      /* every text so far was "m<k>" with k = texts - 1 */
	atomic_int reply;  /* on_text sends each text back (ping-pong) */
};

static void rec_init(struct rec *r)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	r->in_order = 1;
}

static void rec_release(struct rec *r)
{
	vx_buf_release(&r->last);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
}

static void rec_on_open(vx_wsclient_conn *c, void *u)
{
	(void)c;
	struct rec *r = u;
	pthread_mutex_lock(&r->mu);
	r->opens++;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

static void rec_on_text(vx_wsclient_conn *c, void *u, const char *t, size_t n)
{
	struct rec *r = u;
	if (atomic_load(&r->reply))
		vx_wsclient_send_text(c, t, n);
	pthread_mutex_lock(&r->mu);
	char want[32];
	snprintf(want, sizeof(want), "m%d", r->texts);
	if (strcmp(t, want) != 0 || strlen(t) != n)
		r->in_order = 0;
	r->texts++;
	vx_buf_reset(&r->last);
	vx_buf_append(&r->last, t, n);
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

static void rec_on_binary(vx_wsclient_conn *c, void *u, const void *d, size_t n)
{
	(void)c;
	struct rec *r = u;
	pthread_mutex_lock(&r->mu);
	r->binaries++;
	vx_buf_reset(&r->last);
	vx_buf_append(&r->last, d, n);
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

static void rec_on_close(vx_wsclient_conn *c, void *u, int err)
{
	(void)c;
	struct rec *r = u;
	pthread_mutex_lock(&r->mu);
	r->closes++;
	r->close_err = err;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

static const vx_wsclient_callbacks rec_cb = {
	.on_open = rec_on_open, .on_text = rec_on_text,
	.on_binary = rec_on_binary, .on_close = rec_on_close,
};

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until *field >= want; returns the value it ended with. */
static int rec_wait(struct rec *r, const int *field, int want)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += WAIT_MS / 1000;
	pthread_mutex_lock(&r->mu);
	while (*field < want && pthread_cond_timedwait(&r->cv, &r->mu, &dl) == 0)
		;
	int v = *field;
	pthread_mutex_unlock(&r->mu);
	return v;
}

/* A loopback port with nothing listening (bound, read, closed). */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	bind(fd, (struct sockaddr *)&a, sizeof(a));
	getsockname(fd, (struct sockaddr *)&a, &len);
	close(fd);
	return ntohs(a.sin_port);
}

/* A listening socket that never accepts: connects succeed, nobody answers. */
static int silent_listener(int *ret_port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	bind(fd, (struct sockaddr *)&a, sizeof(a));
	listen(fd, 16);
	getsockname(fd, (struct sockaddr *)&a, &len);
	*ret_port = ntohs(a.sin_port);
	return fd;
}

static struct srv g_srv;

/* ---- cases ---------------------------------------------------------------- */

VX_TEST(wsclient_echoes_text_and_sends_headers_and_path)
{
	vx_wsclient *wc = NULL;
	VX_CHECK_INT(vx_wsclient_new(&wc), 0);
	struct rec r;
	rec_init(&r);
	char url[128];
	srv_url(&g_srv, "/ws/echo?x=1", url, sizeof(url));
	vx_wsclient_conn *c = NULL;
	VX_CHECK_INT(vx_wsclient_connect(wc, url, "X-Request-Id: abc-123\r\n", &rec_cb, &r, &c), 0);
	/* queued before the handshake finishes, sent after */
	VX_CHECK_INT(vx_wsclient_send_text(c, "m0", 2), 0);
	VX_CHECK_INT(rec_wait(&r, &r.texts, 1), 1);
	VX_CHECK_INT(r.opens, 1);
	VX_CHECK_STR(r.last.data, "m0");
	VX_CHECK_INT(vx_wsclient_send_text(c, "header", 6), 0);
	VX_CHECK_INT(rec_wait(&r, &r.texts, 2), 2);
	VX_CHECK_STR(r.last.data, "abc-123");
	VX_CHECK_INT(vx_wsclient_send_text(c, "path", 4), 0);
	VX_CHECK_INT(rec_wait(&r, &r.texts, 3), 3);
	VX_CHECK(r.last.data && strncmp(r.last.data, "/ws/echo", 8) == 0);
	vx_wsclient_close(c);
	vx_wsclient_close(c); /* idempotent */
	VX_CHECK_INT(rec_wait(&r, &r.closes, 1), 1);
	VX_CHECK_INT(r.close_err, 0);
	VX_CHECK_INT(vx_wsclient_send_text(c, "late", 4), -EPIPE);
	vx_wsclient_close(c);
	vx_wsclient_unref(c);
	vx_wsclient_free(wc);
	VX_CHECK_INT(r.closes, 1);
	rec_release(&r);
}

VX_TEST(wsclient_echoes_binary_up_to_1mib_in_fragments)
{
	static const size_t sizes[] = { 0, 1, 65535, 65536, 65537, 200000, 1 << 20 };
	vx_wsclient *wc = NULL;
	VX_CHECK_INT(vx_wsclient_new(&wc), 0);
	struct rec r;
	rec_init(&r);
	char url[128];
	srv_url(&g_srv, "/", url, sizeof(url));
	vx_wsclient_conn *c = NULL;
	VX_CHECK_INT(vx_wsclient_connect(wc, url, NULL, &rec_cb, &r, &c), 0);
	unsigned char *data = malloc(1 << 20);
	for (size_t i = 0; i < 1 << 20; i++)
		data[i] = (unsigned char)(i * 7 + (i >> 11));
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		VX_CHECK_INT(vx_wsclient_send_binary(c, data, sizes[k]), 0);
		VX_CHECK_INT(rec_wait(&r, &r.binaries, (int)k + 1), (int)k + 1);
		pthread_mutex_lock(&r.mu);
		VX_CHECK_INT(r.last.len, sizes[k]);
		VX_CHECK(r.last.len == sizes[k] &&
			 (sizes[k] == 0 || memcmp(r.last.data, data, sizes[k]) == 0));
		pthread_mutex_unlock(&r.mu);
	}
	/* a 1 MiB text message, too */
	memset(data, 'x', 1 << 20);
	VX_CHECK_INT(vx_wsclient_send_text(c, (char *)data, 1 << 20), 0);
	rec_wait(&r, &r.texts, 1);
	VX_CHECK_INT(r.last.len, 1 << 20);
	VX_CHECK_INT(vx_wsclient_queued(c), 0);
	vx_wsclient_close(c);
	VX_CHECK_INT(rec_wait(&r, &r.closes, 1), 1);
	VX_CHECK_INT(r.close_err, 0);
	vx_wsclient_unref(c);
	vx_wsclient_free(wc);
	free(data);
	rec_release(&r);
}

#define MANY_CONNS 50
#define MANY_MSGS 20

VX_TEST(wsclient_runs_50_connections_at_once_in_order)
{
	vx_wsclient *wc = NULL;
	VX_CHECK_INT(vx_wsclient_new(&wc), 0);
	static struct rec r[MANY_CONNS];
	vx_wsclient_conn *c[MANY_CONNS];
	char url[128];
	srv_url(&g_srv, "/many", url, sizeof(url));
	/* earlier cases' connections may still be closing on the server */
	long long settle = now_ms() + WAIT_MS;
	while (atomic_load(&g_srv.closed) != atomic_load(&g_srv.established) &&
	       now_ms() < settle)
		usleep(1000);
	int base = atomic_load(&g_srv.closed);
	for (int i = 0; i < MANY_CONNS; i++) {
		rec_init(&r[i]);
		VX_CHECK_INT(vx_wsclient_connect(wc, url, NULL, &rec_cb, &r[i], &c[i]), 0);
	}
	for (int m = 0; m < MANY_MSGS; m++)
		for (int i = 0; i < MANY_CONNS; i++) {
			char msg[16];
			int n = snprintf(msg, sizeof(msg), "m%d", m);
			VX_CHECK_INT(vx_wsclient_send_text(c[i], msg, (size_t)n), 0);
		}
	for (int i = 0; i < MANY_CONNS; i++) {
		VX_CHECK_INT(rec_wait(&r[i], &r[i].texts, MANY_MSGS), MANY_MSGS);
		VX_CHECK(r[i].in_order);
		VX_CHECK_INT(r[i].opens, 1);
		vx_wsclient_close(c[i]);
	}
	for (int i = 0; i < MANY_CONNS; i++) {
		VX_CHECK_INT(rec_wait(&r[i], &r[i].closes, 1), 1);
		VX_CHECK_INT(r[i].close_err, 0);
		vx_wsclient_unref(c[i]);
	}
	vx_wsclient_free(wc);
	/* the server saw every one of them go */
	long long dl = now_ms() + WAIT_MS;
	while (atomic_load(&g_srv.closed) - base < MANY_CONNS && now_ms() < dl)
		usleep(1000);
	VX_CHECK_INT(atomic_load(&g_srv.closed) - base, MANY_CONNS);
	for (int i = 0; i < MANY_CONNS; i++) {
		VX_CHECK_INT(r[i].closes, 1);
		rec_release(&r[i]);
	}
}

#define THREAD_MSGS 500

static void *send_many(void *arg)
{
	vx_wsclient_conn *c = arg;
	for (int m = 0; m < THREAD_MSGS; m++) {
		char msg[16];
		int n = snprintf(msg, sizeof(msg), "m%d", m);
		if (vx_wsclient_send_text(c, msg, (size_t)n) != 0)
			return (void *)1;
	}
	vx_wsclient_unref(c);
	return NULL;
}

VX_TEST(wsclient_sends_from_other_threads_while_receiving)
{
	vx_wsclient *wc = NULL;
	VX_CHECK_INT(vx_wsclient_new(&wc), 0);
	struct rec r;
	rec_init(&r);
	char url[128];
	srv_url(&g_srv, "/", url, sizeof(url));
	vx_wsclient_conn *c = NULL;
	VX_CHECK_INT(vx_wsclient_connect(wc, url, NULL, &rec_cb, &r, &c), 0);
	pthread_t t;
	vx_wsclient_ref(c); /* the sender's own reference */
	pthread_create(&t, NULL, send_many, c);
	VX_CHECK_INT(rec_wait(&r, &r.texts, THREAD_MSGS), THREAD_MSGS);
	void *res = NULL;
	pthread_join(t, &res);
	VX_CHECK(res == NULL);
	VX_CHECK(r.in_order);
	vx_wsclient_close(c);
	VX_CHECK_INT(rec_wait(&r, &r.closes, 1), 1);
	VX_CHECK_INT(r.close_err, 0);
	vx_wsclient_unref(c);
	vx_wsclient_free(wc);
	rec_release(&r);
}

VX_TEST(wsclient_reports_server_close_and_drop)
{
	vx_wsclient *wc = NULL;
	VX_CHECK_INT(vx_wsclient_new(&wc), 0);
	struct rec a, b;
	rec_init(&a);
	rec_init(&b);
	char url[128];
	srv_url(&g_srv, "/", url, sizeof(url));
	vx_wsclient_conn *ca = NULL, *cb = NULL;
	VX_CHECK_INT(vx_wsclient_connect(wc, url, NULL, &rec_cb, &a, &ca), 0);
	VX_CHECK_INT(vx_wsclient_connect(wc, url, NULL, &rec_cb, &b, &cb), 0);
	VX_CHECK_INT(vx_wsclient_send_text(ca, "close", 5), 0);
	VX_CHECK_INT(vx_wsclient_send_text(cb, "drop", 4), 0);
	VX_CHECK_INT(rec_wait(&a, &a.closes, 1), 1);
	VX_CHECK_INT(a.close_err, 0);
	VX_CHECK_INT(rec_wait(&b, &b.closes, 1), 1);
	VX_CHECK_INT(b.close_err, -ECONNRESET);
	VX_CHECK_INT(vx_wsclient_send_text(ca, "m0", 2), -EPIPE);
	vx_wsclient_unref(ca);
	vx_wsclient_unref(cb);
	vx_wsclient_free(wc);
	VX_CHECK_INT(a.closes + b.closes, 2);
	rec_release(&a);
	rec_release(&b);
}

VX_TEST(wsclient_refused_port_closes_promptly_with_econnrefused)
{
	vx_wsclient *wc = NULL;
	VX_CHECK_INT(vx_wsclient_new(&wc), 0);
	struct rec r;
	rec_init(&r);
	char url[128];
	snprintf(url, sizeof(url), "ws://127.0.0.1:%d/", free_port());
	long long t0 = now_ms();
	VX_CHECK_INT(vx_wsclient_connect(wc, url, NULL, &rec_cb, &r, NULL), 0);
	VX_CHECK_INT(rec_wait(&r, &r.closes, 1), 1);
	VX_CHECK(now_ms() - t0 < 1000);
	VX_CHECK_INT(r.close_err, -ECONNREFUSED);
	VX_CHECK_INT(r.opens, 0);
	vx_wsclient_free(wc);
	VX_CHECK_INT(r.closes, 1);
	rec_release(&r);
}

VX_TEST(wsclient_silent_server_times_out_with_etimedout)
{
	vx_wsclient_opts o = { .connect_timeout_ms = 300 };
	vx_wsclient *wc = NULL;
	VX_CHECK_INT(vx_wsclient_new_opts(&o, &wc), 0);
	int port;
	int lfd = silent_listener(&port);
	struct rec r;
	rec_init(&r);
	char url[128];
	snprintf(url, sizeof(url), "ws://127.0.0.1:%d/", port);
	long long t0 = now_ms();
	VX_CHECK_INT(vx_wsclient_connect(wc, url, NULL, &rec_cb, &r, NULL), 0);
	VX_CHECK_INT(rec_wait(&r, &r.closes, 1), 1);
	long long dt = now_ms() - t0;
	VX_CHECK(dt >= 250 && dt < 2000);
	VX_CHECK_INT(r.close_err, -ETIMEDOUT);
	VX_CHECK_INT(r.opens, 0);
	vx_wsclient_free(wc);
	close(lfd);
	rec_release(&r);
}

VX_TEST(wsclient_closes_on_oversized_message_with_emsgsize)
{
	vx_wsclient_opts o = { .max_message_bytes = 1000 };
	vx_wsclient *wc = NULL;
	VX_CHECK_INT(vx_wsclient_new_opts(&o, &wc), 0);
	struct rec r;
	rec_init(&r);
	char url[128];
	srv_url(&g_srv, "/", url, sizeof(url));
	vx_wsclient_conn *c = NULL;
	VX_CHECK_INT(vx_wsclient_connect(wc, url, NULL, &rec_cb, &r, &c), 0);
	VX_CHECK_INT(vx_wsclient_send_text(c, "big:1000", 8), 0);
	VX_CHECK_INT(rec_wait(&r, &r.texts, 1), 1);
	VX_CHECK_INT(r.last.len, 1000);
	VX_CHECK_INT(vx_wsclient_send_text(c, "big:1001", 8), 0);
	VX_CHECK_INT(rec_wait(&r, &r.closes, 1), 1);
	VX_CHECK_INT(r.close_err, -EMSGSIZE);
	VX_CHECK_INT(r.texts, 1);
	vx_wsclient_unref(c);
	vx_wsclient_free(wc);
	rec_release(&r);
}

VX_TEST(wsclient_bounds_the_send_queue)
{
	vx_wsclient_opts o = { .max_queue_bytes = 4096 };
	vx_wsclient *wc = NULL;
	VX_CHECK_INT(vx_wsclient_new_opts(&o, &wc), 0);
	int port;
	int lfd = silent_listener(&port); /* the handshake never ends: nothing drains */
	struct rec r;
	rec_init(&r);
	char url[128], buf[5000] = {0};
	snprintf(url, sizeof(url), "ws://127.0.0.1:%d/", port);
	vx_wsclient_conn *c = NULL;
	VX_CHECK_INT(vx_wsclient_connect(wc, url, NULL, &rec_cb, &r, &c), 0);
	VX_CHECK_INT(vx_wsclient_send_binary(c, buf, 4000), 0);
	VX_CHECK_INT(vx_wsclient_send_binary(c, buf, 96), 0);
	VX_CHECK_INT(vx_wsclient_send_binary(c, buf, 1), -ENOBUFS);
	VX_CHECK_INT(vx_wsclient_send_binary(c, buf, 5000), -EMSGSIZE);
	VX_CHECK_INT(vx_wsclient_queued(c), 4096);
	long long t0 = now_ms();
	vx_wsclient_close(c); /* while connecting: closes at once, clean */
	VX_CHECK_INT(rec_wait(&r, &r.closes, 1), 1);
	VX_CHECK(now_ms() - t0 < 1000);
	VX_CHECK_INT(r.close_err, 0);
	VX_CHECK_INT(vx_wsclient_queued(c), 0);
	vx_wsclient_unref(c);
	vx_wsclient_free(wc);
	close(lfd);
	rec_release(&r);
}

VX_TEST(wsclient_free_closes_open_connections)
{
	vx_wsclient *wc = NULL;
	VX_CHECK_INT(vx_wsclient_new(&wc), 0);
	struct rec r[6];
	vx_wsclient_conn *c[6];
	char url[128];
	srv_url(&g_srv, "/", url, sizeof(url));
	for (int i = 0; i < 5; i++) {
		rec_init(&r[i]);
		VX_CHECK_INT(vx_wsclient_connect(wc, url, NULL, &rec_cb, &r[i], &c[i]), 0);
		VX_CHECK_INT(vx_wsclient_send_text(c[i], "m0", 2), 0);
	}
	for (int i = 0; i < 5; i++)
		VX_CHECK_INT(rec_wait(&r[i], &r[i].texts, 1), 1);
	/* one still connecting to a silent server, one never started */
	int port;
	int lfd = silent_listener(&port);
	char url2[128];
	snprintf(url2, sizeof(url2), "ws://127.0.0.1:%d/", port);
	rec_init(&r[5]);
	VX_CHECK_INT(vx_wsclient_connect(wc, url2, NULL, &rec_cb, &r[5], &c[5]), 0);
	vx_wsclient_free(wc);
	for (int i = 0; i < 6; i++) {
		VX_CHECK_INT(r[i].closes, 1);
		VX_CHECK_INT(r[i].close_err, -ECANCELED);
		/* held references outlive the client */
		VX_CHECK_INT(vx_wsclient_send_text(c[i], "m1", 2), -EPIPE);
		vx_wsclient_close(c[i]);
		vx_wsclient_unref(c[i]);
		rec_release(&r[i]);
	}
	close(lfd);
}

VX_TEST(wsclient_rejects_bad_urls_and_headers)
{
	vx_wsclient_opts o = { .max_connections = 1 };
	vx_wsclient *wc = NULL;
	VX_CHECK_INT(vx_wsclient_new_opts(&o, &wc), 0);
	struct rec r;
	rec_init(&r);
	static const struct { const char *url, *hdr; int want; } cases[] = {
		{ "http://127.0.0.1/", NULL, -EPROTONOSUPPORT },
		{ "wss://127.0.0.1/", NULL, -EPROTONOSUPPORT },
		{ "127.0.0.1:80/", NULL, -EINVAL },
		{ "ws://", NULL, -EINVAL },
		{ "ws://:80/", NULL, -EINVAL },
		{ "ws://h:/", NULL, -EINVAL },
		{ "ws://h:0/", NULL, -EINVAL },
		{ "ws://h:65536/", NULL, -EINVAL },
		{ "ws://h:8x/", NULL, -EINVAL },
		{ "ws://[::1/", NULL, -EINVAL },
		{ "ws://[::1]x/", NULL, -EINVAL },
		{ "ws://h/a b", NULL, -EINVAL },
		{ "ws://h/", "X-A: b", -EINVAL },
		{ "ws://h/", "X-A: b\r\n\r\n", -EINVAL },
		{ "ws://h/", "X-A: b\nX-B: c\r\n", -EINVAL },
		{ "ws://h/", "\r\n", -EINVAL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = vx_wsclient_connect(wc, cases[i].url, cases[i].hdr, &rec_cb, &r, NULL);
		if (got != cases[i].want)
			fprintf(stderr, "url %s\n", cases[i].url);
		VX_CHECK_INT(got, cases[i].want);
	}
	char url[128];
	snprintf(url, sizeof(url), "ws://[::1]:%d?q=1", free_port());
	VX_CHECK_INT(vx_wsclient_connect(wc, url, "X-A: b\r\nX-B: c\r\n", &rec_cb, &r, NULL), 0);
	VX_CHECK_INT(rec_wait(&r, &r.closes, 1), 1);
	VX_CHECK(r.close_err < 0);
	/* max_connections = 1: a connection held open (silent server) fills it */
	int port;
	int lfd = silent_listener(&port);
	snprintf(url, sizeof(url), "ws://127.0.0.1:%d/", port);
	vx_wsclient_conn *c = NULL;
	VX_CHECK_INT(vx_wsclient_connect(wc, url, NULL, &rec_cb, &r, &c), 0);
	VX_CHECK_INT(vx_wsclient_connect(wc, url, NULL, &rec_cb, &r, NULL), -EMFILE);
	vx_wsclient_close(c);
	VX_CHECK_INT(rec_wait(&r, &r.closes, 2), 2);
	VX_CHECK_INT(r.close_err, 0);
	vx_wsclient_unref(c);
	/* the slot is free again once on_close ran */
	VX_CHECK_INT(vx_wsclient_connect(wc, url, NULL, &rec_cb, &r, NULL), 0);
	vx_wsclient_free(wc);
	VX_CHECK_INT(r.closes, 3);
	VX_CHECK_INT(r.close_err, -ECANCELED);
	close(lfd);
	rec_release(&r);
}

/* on_close may drop the last reference and connect again (a reconnect);
 * closing the client while that happens must neither leak nor crash. */
static void reconnect_on_close(vx_wsclient_conn *c, void *u, int err)
{
	rec_on_close(c, u, err);
	vx_wsclient_unref(c);
}

VX_TEST(wsclient_unref_in_on_close_and_racing_close)
{
	vx_wsclient *wc = NULL;
	VX_CHECK_INT(vx_wsclient_new(&wc), 0);
	vx_wsclient_callbacks cb = rec_cb;
	cb.on_close = reconnect_on_close;
	char url[128];
	srv_url(&g_srv, "/", url, sizeof(url));
	struct rec r;
	rec_init(&r);
	for (int i = 0; i < 20; i++) {
		vx_wsclient_conn *c = NULL;
		VX_CHECK_INT(vx_wsclient_connect(wc, url, NULL, &cb, &r, &c), 0);
		vx_wsclient_send_binary(c, url, 10);
		if (i % 3 == 0)
			usleep(500);
		vx_wsclient_close(c); /* at any stage: pending, connecting, open */
	}
	VX_CHECK_INT(rec_wait(&r, &r.closes, 20), 20);
	VX_CHECK_INT(r.close_err, 0);
	vx_wsclient_free(wc);
	VX_CHECK_INT(r.closes, 20);
	rec_release(&r);
}

/* ---- figures: round trips on one connection, memory per connection ------- */

/* The bench server runs in a child process (forked before any thread), so
 * this process's heap holds only the client side. */
static pid_t g_bench_pid = -1;
static int g_bench_port, g_bench_ctl = -1;

static void bench_server_start(void)
{
	int ctl[2], port[2];
	if (pipe(ctl) || pipe(port))
		return;
	pid_t pid = fork();
	if (pid == 0) {
		close(ctl[1]);
		close(port[0]);
		struct srv sv;
		if (srv_start(&sv) != 0)
			_exit(1);
		(void)!write(port[1], &sv.port, sizeof(sv.port));
		char b;
		while (read(ctl[0], &b, 1) > 0)
			;
		srv_stop(&sv);
		_exit(0);
	}
	close(ctl[0]);
	close(port[1]);
	if (pid < 0 || read(port[0], &g_bench_port, sizeof(g_bench_port)) != sizeof(g_bench_port)) {
		close(ctl[1]);
		close(port[0]);
		return;
	}
	close(port[0]);
	g_bench_pid = pid;
	g_bench_ctl = ctl[1];
}

static void bench_server_stop(void)
{
	if (g_bench_pid < 0)
		return;
	close(g_bench_ctl);
	waitpid(g_bench_pid, NULL, 0);
}

#define BENCH_CONNS 200

VX_TEST(wsclient_figures_round_trips_and_memory)
{
	VX_CHECK(g_bench_pid > 0);
	if (g_bench_pid < 0)
		return;
	char url[128];
	snprintf(url, sizeof(url), "ws://127.0.0.1:%d/", g_bench_port);
	vx_wsclient *wc = NULL;
	VX_CHECK_INT(vx_wsclient_new(&wc), 0);

	/* ping-pong: each echo is sent back from on_text */
	struct rec r;
	rec_init(&r);
	atomic_store(&r.reply, 1);
	vx_wsclient_conn *c = NULL;
	VX_CHECK_INT(vx_wsclient_connect(wc, url, NULL, &rec_cb, &r, &c), 0);
	rec_wait(&r, &r.opens, 1);
	long long t0 = now_ms();
	vx_wsclient_send_text(c, "ping ping ping ping ping ping ping ping", 39);
	usleep(1000 * 1000);
	pthread_mutex_lock(&r.mu);
	int n = r.texts;
	pthread_mutex_unlock(&r.mu);
	long long dt = now_ms() - t0;
	atomic_store(&r.reply, 0);
	printf("  round trips on one connection: %.0f messages/s\n", n * 1000.0 / (double)dt);
	VX_CHECK(n > 100);
	vx_wsclient_close(c);
	rec_wait(&r, &r.closes, 1);
	VX_CHECK_INT(r.close_err, 0);
	vx_wsclient_unref(c);
	rec_release(&r);

	/* memory: heap in use with BENCH_CONNS open connections */
	static struct rec rs[BENCH_CONNS];
	static vx_wsclient_conn *cs[BENCH_CONNS];
	malloc_trim(0);
	size_t before = mallinfo2().uordblks;
	for (int i = 0; i < BENCH_CONNS; i++) {
		rec_init(&rs[i]);
		VX_CHECK_INT(vx_wsclient_connect(wc, url, NULL, &rec_cb, &rs[i], &cs[i]), 0);
		vx_wsclient_send_text(cs[i], "m0", 2);
	}
	for (int i = 0; i < BENCH_CONNS; i++)
		VX_CHECK_INT(rec_wait(&rs[i], &rs[i].texts, 1), 1);
	size_t after = mallinfo2().uordblks;
	if (after > before)
		printf("  heap per open connection: %zu bytes (%d connections)\n",
		       (after - before) / BENCH_CONNS, BENCH_CONNS);
	else
		printf("  heap per open connection: n/a (allocator without mallinfo2)\n");
	for (int i = 0; i < BENCH_CONNS; i++)
		vx_wsclient_close(cs[i]);
	for (int i = 0; i < BENCH_CONNS; i++) {
		VX_CHECK_INT(rec_wait(&rs[i], &rs[i].closes, 1), 1);
		vx_wsclient_unref(cs[i]);
		rec_release(&rs[i]);
	}
	vx_wsclient_free(wc);
}

#define CASES                                                   \
	wsclient_echoes_text_and_sends_headers_and_path,        \
	wsclient_echoes_binary_up_to_1mib_in_fragments,         \
	wsclient_runs_50_connections_at_once_in_order,          \
	wsclient_sends_from_other_threads_while_receiving,      \
	wsclient_reports_server_close_and_drop,                 \
	wsclient_refused_port_closes_promptly_with_econnrefused, \
	wsclient_silent_server_times_out_with_etimedout,        \
	wsclient_closes_on_oversized_message_with_emsgsize,     \
	wsclient_bounds_the_send_queue,                         \
	wsclient_free_closes_open_connections,                  \
	wsclient_rejects_bad_urls_and_headers,                  \
	wsclient_unref_in_on_close_and_racing_close,            \
	wsclient_figures_round_trips_and_memory
#define STR_(...) #__VA_ARGS__
#define STR(...) STR_(__VA_ARGS__)

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	bench_server_start(); /* fork before any thread exists */
	if (srv_start(&g_srv) != 0) {
		fprintf(stderr, "cannot start the echo server\n");
		bench_server_stop();
		return 1;
	}
	vx_test_fn fns[] = { CASES };
	int r = vx_test_run(STR(CASES), fns, (int)(sizeof(fns) / sizeof(fns[0])));
	srv_stop(&g_srv);
	bench_server_stop();
	return r;
}
