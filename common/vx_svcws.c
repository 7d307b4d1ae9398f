/*
 * vx_svcws.c - the service WebSocket layer (see vx_svcws.h).
 */
#include "vx_svcws.h"

#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vx_ws.h"

#define WAIT_STEP_NS (5 * 1000000L)   /* poll step of wait_writable */

struct vx_svcws_conn {
	const vx_svcws_ops *ops;
	const vx_svcws_io *io;
	vx_wsconn *c;
	void *user;                  /* the service */
	atomic_int refs;             /* the socket's + one per drain job */
	atomic_bool cancel;

	pthread_mutex_t lock;        /* guards the fields below */
	vx_svcws_item *head, *tail;
	unsigned n_items;
	size_t bytes;                /* sum of item->bytes waiting */
	bool running;                /* a drain job is submitted or draining */
	bool busy;                   /* the job is running an item */
	bool end_owed;               /* an "end" waits for the queue to drain */
	bool closed;

	bool retry;                  /* the running job only: its item asked
				      * to run later */
	bool configured;             /* lws thread only */
	alignas(max_align_t) unsigned char state[];
};

static const char ended[] = "{\"event\":\"done\",\"end\":true}";

/* ---- the default io: vx_ws ---- */

static bool ws_is_closed(const vx_wsconn *c)
{
	return atomic_load(vx_ws_closed(c));
}

static const vx_svcws_io ws_io = {
	.send_text = vx_ws_send_text,
	.send_binary = vx_ws_send_binary,
	.close = vx_ws_close,
	.ref = vx_ws_ref,
	.unref = vx_ws_unref,
	.closed = ws_is_closed,
	.queued = vx_ws_queued,
	.request_id = vx_ws_request_id,
};

/* ---- accessors and sends ---- */

void *vx_svcws_user(const vx_svcws_conn *cn) { return cn->user; }
void *vx_svcws_state(vx_svcws_conn *cn) { return cn->state; }
bool vx_svcws_configured(const vx_svcws_conn *cn) { return cn->configured; }
void vx_svcws_set_configured(vx_svcws_conn *cn, bool on) { cn->configured = on; }

const char *vx_svcws_request_id(const vx_svcws_conn *cn)
{
	return cn->io->request_id(cn->c);
}

const atomic_bool *vx_svcws_cancel_flag(vx_svcws_conn *cn)
{
	return &cn->cancel;
}

int vx_svcws_send_text(vx_svcws_conn *cn, const char *text, size_t len)
{
	return cn->io->send_text(cn->c, text, len);
}

int vx_svcws_send_buf(vx_svcws_conn *cn, const vx_buf *b)
{
	return b->data ? cn->io->send_text(cn->c, b->data, b->len) : -ENOMEM;
}

int vx_svcws_send_binary(vx_svcws_conn *cn, const void *data, size_t len)
{
	return cn->io->send_binary(cn->c, data, len);
}

void vx_svcws_close(vx_svcws_conn *cn, int status, const char *reason)
{
	cn->io->close(cn->c, status, reason);
}

__attribute__((format(printf, 4, 0)))
static int error_va(vx_svcws_conn *cn, const char *fields, const char *code,
		    const char *fmt, va_list ap)
{
	vx_buf b = {0};
	vx_ws_error_event_va(&b, fields, code, fmt, ap);
	int r = vx_svcws_send_buf(cn, &b);
	vx_buf_release(&b);
	return r;
}

int vx_svcws_error(vx_svcws_conn *cn, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = error_va(cn, NULL, code, fmt, ap);
	va_end(ap);
	return r;
}

int vx_svcws_error_fields(vx_svcws_conn *cn, const char *fields,
			  const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = error_va(cn, fields, code, fmt, ap);
	va_end(ap);
	return r;
}

/* The layer's own errors carry the service's extra fields. */
static void layer_error(vx_svcws_conn *cn, const char *code, const char *msg)
{
	vx_svcws_error_fields(cn, cn->ops->error_fields, code, "%s", msg);
}

/* ---- items and the reference count ---- */

void *vx_svcws_item_new(size_t size, int kind)
{
	if (size < sizeof(vx_svcws_item))
		size = sizeof(vx_svcws_item);
	vx_svcws_item *it = calloc(1, size);
	if (it)
		it->kind = kind;
	return it;
}

void vx_svcws_item_free(vx_svcws_conn *cn, vx_svcws_item *it)
{
	if (!it)
		return;
	if (cn->ops->item_free)
		cn->ops->item_free(it);
	else
		free(it);
}

static void free_list(vx_svcws_conn *cn, vx_svcws_item *it)
{
	while (it) {
		vx_svcws_item *next = it->next;
		vx_svcws_item_free(cn, it);
		it = next;
	}
}

/* Takes every waiting item out; lock held. */
static vx_svcws_item *take_all_locked(vx_svcws_conn *cn)
{
	vx_svcws_item *q = cn->head;
	cn->head = cn->tail = NULL;
	cn->n_items = 0;
	cn->bytes = 0;
	return q;
}

static void conn_unref(vx_svcws_conn *cn)
{
	if (atomic_fetch_sub(&cn->refs, 1) != 1)
		return;
	free_list(cn, take_all_locked(cn));
	if (cn->ops->release)
		cn->ops->release(cn->state);
	pthread_mutex_destroy(&cn->lock);
	free(cn);
}

/* ---- the drain job ---- */

static void answer_end_if_idle(vx_svcws_conn *cn)
{
	pthread_mutex_lock(&cn->lock);
	bool owed = cn->end_owed && !cn->running && !cn->head;
	if (owed)
		cn->end_owed = false;
	pthread_mutex_unlock(&cn->lock);
	if (owed)
		vx_svcws_send_text(cn, ended, sizeof(ended) - 1);
}

/* After ops->run: when it asked to run later, it goes back to the head of
 * the queue (still running: the job comes again), unless a cancel or the
 * close came while it ran, which drop it as they drop what waits. */
static bool put_back_for_retry(vx_svcws_conn *cn, vx_svcws_item *it)
{
	if (cn->retry && atomic_load(&cn->cancel))
		cn->retry = false;
	if (!cn->retry)
		return false;
	pthread_mutex_lock(&cn->lock);
	cn->busy = false;
	it->next = cn->head;
	cn->head = it;
	if (!cn->tail)
		cn->tail = it;
	cn->n_items++;
	cn->bytes += it->bytes;
	pthread_mutex_unlock(&cn->lock);
	return true;
}

static int start_job(vx_svcws_conn *cn);

/* Runs the items in order until none waits or the socket closed. */
static void drain_job(void *arg)
{
	vx_svcws_conn *cn = arg;
	const vx_svcws_ops *ops = cn->ops;
	void *user = cn->user;
	vx_wsconn *c = cn->c;
	const vx_svcws_io *io = cn->io;
	for (;;) {
		pthread_mutex_lock(&cn->lock);
		cn->busy = false;
		vx_svcws_item *it = cn->closed ? NULL : cn->head;
		vx_svcws_item *dropped = cn->closed ? take_all_locked(cn) : NULL;
		if (it) {
			cn->head = it->next;
			if (!cn->head)
				cn->tail = NULL;
			cn->n_items--;
			cn->bytes -= it->bytes;
			cn->busy = true;
			atomic_store(&cn->cancel, false);
		} else {
			cn->running = false;
		}
		pthread_mutex_unlock(&cn->lock);
		free_list(cn, dropped);
		if (!it)
			break;
		it->next = NULL;
		ops->run(cn, cn->state, it);
		if (put_back_for_retry(cn, it))
			break;
		vx_svcws_item_free(cn, it);
	}
	if (cn->retry) {
		/* A new job, queued behind what the pool holds, takes over
		 * (running stays set); this one's references go below. */
		cn->retry = false;
		nanosleep(&(struct timespec){ 0, VX_SVCWS_RETRY_MS * 1000000L }, NULL);
		start_job(cn);
	}
	answer_end_if_idle(cn);
	conn_unref(cn);
	io->unref(c);
	if (ops->job_end)
		ops->job_end(user);
}

/* Starts a drain job; the lock is not held; running was set by the
 * caller. On failure running is cleared and what waits is refused. */
static int start_job(vx_svcws_conn *cn)
{
	const vx_svcws_ops *ops = cn->ops;
	int r = ops->job_start ? ops->job_start(cn, cn->state) : 0;
	if (r == 0) {
		atomic_fetch_add(&cn->refs, 1);
		cn->io->ref(cn->c);
		r = vx_pool_submit(ops->pool(cn->user), drain_job, cn);
		if (r == 0)
			return 0;
		cn->io->unref(cn->c);
		atomic_fetch_sub(&cn->refs, 1);   /* the socket still holds one */
		if (ops->job_end)
			ops->job_end(cn->user);
	}
	pthread_mutex_lock(&cn->lock);
	cn->running = false;
	vx_svcws_item *q = take_all_locked(cn);
	pthread_mutex_unlock(&cn->lock);
	if (ops->refused)
		ops->refused(cn, cn->state, q, r);
	free_list(cn, q);
	answer_end_if_idle(cn);
	return -EAGAIN;
}

/* Appends it, lock held; false when over a limit. */
static bool append_locked(vx_svcws_conn *cn, vx_svcws_item *it)
{
	const vx_svcws_ops *ops = cn->ops;
	if ((ops->max_items && cn->n_items >= ops->max_items) ||
	    (ops->max_queued_bytes &&
	     cn->bytes + it->bytes > ops->max_queued_bytes))
		return false;
	it->next = NULL;
	if (cn->tail)
		cn->tail->next = it;
	else
		cn->head = it;
	cn->tail = it;
	cn->n_items++;
	cn->bytes += it->bytes;
	return true;
}

int vx_svcws_push(vx_svcws_conn *cn, vx_svcws_item *it)
{
	pthread_mutex_lock(&cn->lock);
	if (!append_locked(cn, it)) {
		pthread_mutex_unlock(&cn->lock);
		vx_svcws_item_free(cn, it);
		return -ENOBUFS;
	}
	bool start = !cn->running;
	cn->running = true;
	pthread_mutex_unlock(&cn->lock);
	return start ? start_job(cn) : 0;
}

int vx_svcws_push_exclusive(vx_svcws_conn *cn, vx_svcws_item *it,
			    vx_svcws_item **ret_replaced)
{
	*ret_replaced = NULL;
	pthread_mutex_lock(&cn->lock);
	if (cn->busy && !atomic_load(&cn->cancel)) {
		pthread_mutex_unlock(&cn->lock);
		return -EBUSY;
	}
	vx_svcws_item *old = take_all_locked(cn);
	append_locked(cn, it);   /* the queue is empty: always fits */
	bool start = !cn->running;
	cn->running = true;
	pthread_mutex_unlock(&cn->lock);
	*ret_replaced = old;
	return start ? start_job(cn) : 0;
}

void vx_svcws_retry_later(vx_svcws_conn *cn)
{
	cn->retry = true;
}

bool vx_svcws_cancel(vx_svcws_conn *cn, bool (*keep)(const vx_svcws_item *))
{
	vx_svcws_item *dropped = NULL, **dt = &dropped;
	pthread_mutex_lock(&cn->lock);
	vx_svcws_item **pp = &cn->head;
	cn->tail = NULL;
	while (*pp) {
		vx_svcws_item *it = *pp;
		if (keep && keep(it)) {
			cn->tail = it;
			pp = &it->next;
			continue;
		}
		*pp = it->next;
		cn->n_items--;
		cn->bytes -= it->bytes;
		it->next = NULL;
		*dt = it;
		dt = &it->next;
	}
	atomic_store(&cn->cancel, true);
	bool running = cn->running;
	pthread_mutex_unlock(&cn->lock);
	free_list(cn, dropped);
	return running;
}

void vx_svcws_interrupt(vx_svcws_conn *cn)
{
	atomic_store(&cn->cancel, true);
}

bool vx_svcws_idle(vx_svcws_conn *cn)
{
	pthread_mutex_lock(&cn->lock);
	bool idle = !cn->running;
	pthread_mutex_unlock(&cn->lock);
	return idle;
}

void vx_svcws_end_when_idle(vx_svcws_conn *cn)
{
	pthread_mutex_lock(&cn->lock);
	bool idle = !cn->running;
	if (!idle)
		cn->end_owed = true;
	pthread_mutex_unlock(&cn->lock);
	if (idle)
		vx_svcws_send_text(cn, ended, sizeof(ended) - 1);
}

bool vx_svcws_wait_writable(vx_svcws_conn *cn, size_t high_water)
{
	while (cn->io->queued(cn->c) > high_water) {
		if (atomic_load(&cn->cancel) || cn->io->closed(cn->c))
			return false;
		nanosleep(&(struct timespec){ 0, WAIT_STEP_NS }, NULL);
	}
	return true;
}

/* ---- the route callbacks ---- */

int vx_svcws_open(vx_wsconn *c, const vx_svcws_ops *ops, void *user,
		  void **ret_state)
{
	vx_svcws_conn *cn = calloc(1, sizeof(*cn) + ops->state_size);
	if (!cn)
		return -ENOMEM;
	cn->ops = ops;
	cn->io = ops->io ? ops->io : &ws_io;
	cn->c = c;
	cn->user = user;
	atomic_init(&cn->refs, 1);
	atomic_init(&cn->cancel, false);
	pthread_mutex_init(&cn->lock, NULL);
	if (ops->init)
		ops->init(cn, cn->state);
	*ret_state = cn;
	return 0;
}

static void do_config(vx_svcws_conn *cn, const cJSON *j)
{
	static const char ready[] = "{\"event\":\"ready\"}";
	if (!cn->ops->config) {
		cn->configured = true;
		vx_svcws_send_text(cn, ready, sizeof(ready) - 1);
		return;
	}
	int r = cn->ops->config(cn, cn->state, j);
	if (r == 0)
		cn->configured = true;
	else if (r != -EINVAL)
		cn->configured = false;
}

/* Which way a message without "event" goes: true = ops->message. */
static bool bare_is_message(const vx_svcws_ops *ops, const cJSON *j)
{
	if (!ops->bare_key)
		return false;
	return !ops->bare_key[0] ||
	       cJSON_GetObjectItemCaseSensitive(j, ops->bare_key) != NULL;
}

static void dispatch(vx_svcws_conn *cn, const cJSON *j, const char *name,
		     const char *text, size_t len)
{
	const vx_svcws_ops *ops = cn->ops;
	if (!name && bare_is_message(ops, j))
		goto message;
	if (!name || !strcmp(name, "config") || !strcmp(name, "start")) {
		do_config(cn, j);
		return;
	}
	if (ops->needs_config && !cn->configured) {
		layer_error(cn, "not_configured", "send a JSON config message first");
		return;
	}
	if (!strcmp(name, "end") && ops->end) {
		ops->end(cn, cn->state);
		return;
	}
	if (!strcmp(name, "cancel") && ops->cancel) {
		ops->cancel(cn, cn->state);
		return;
	}
message:
	if (ops->message &&
	    ops->message(cn, cn->state, j, name, text, len) != -ENOENT)
		return;
	vx_svcws_error_fields(cn, ops->error_fields, "unknown_event",
			      "unknown event '%.32s' (%s)", name ? name : "",
			      ops->events ? ops->events : "");
}

void vx_svcws_on_text(vx_wsconn *c, void *conn, const char *text, size_t len)
{
	vx_svcws_conn *cn = conn;
	(void)c;
	cJSON *j = cJSON_ParseWithLength(text, len);
	const cJSON *ev = cJSON_GetObjectItemCaseSensitive(j, "event");
	const char *name = cJSON_IsString(ev) ? ev->valuestring : NULL;
	if (!cJSON_IsObject(j) && !cn->ops->raw_messages)
		layer_error(cn, "invalid_json", "messages must be JSON objects");
	else if (j && vx_ws_text_has_nul(text, len))
		layer_error(cn, "invalid_string",
			    "JSON strings must not contain NUL (\\u0000)");
	else if (ev && !name)
		layer_error(cn, "invalid_type", "\"event\" must be a string");
	else
		dispatch(cn, j, name, text, len);
	cJSON_Delete(j);
}

void vx_svcws_on_binary(vx_wsconn *c, void *conn, const void *data, size_t len)
{
	vx_svcws_conn *cn = conn;
	(void)c;
	if (!cn->ops->binary)
		layer_error(cn, "unsupported",
			    "this WebSocket takes JSON text messages");
	else if (cn->ops->needs_config && !cn->configured)
		layer_error(cn, "not_configured",
			    "send a JSON config message before audio");
	else
		cn->ops->binary(cn, cn->state, data, len);
}

void vx_svcws_on_close(vx_wsconn *c, void *conn)
{
	vx_svcws_conn *cn = conn;
	const vx_svcws_ops *ops = cn->ops;
	(void)c;
	pthread_mutex_lock(&cn->lock);
	cn->closed = true;
	atomic_store(&cn->cancel, true);
	vx_svcws_item *q = take_all_locked(cn);
	bool reap = !cn->running && ops->run && ops->release_on_pool &&
		    ops->release_on_pool(cn->state);
	if (reap)
		cn->running = true;
	pthread_mutex_unlock(&cn->lock);
	free_list(cn, q);
	if (reap) {
		/* The job finds the socket closed and drops the last
		 * reference on a pool thread; refused: released here. */
		int r = ops->job_start ? ops->job_start(cn, cn->state) : 0;
		if (r == 0) {
			atomic_fetch_add(&cn->refs, 1);
			cn->io->ref(cn->c);
			r = vx_pool_submit(ops->pool(cn->user), drain_job, cn);
			if (r < 0) {
				cn->io->unref(cn->c);
				atomic_fetch_sub(&cn->refs, 1);
				if (ops->job_end)
					ops->job_end(cn->user);
			}
		}
	}
	conn_unref(cn);
}
