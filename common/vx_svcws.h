/*
 * vx_svcws.h - the service WebSocket layer: what /ws/detect, /ws/transcribe,
 * /ws/synthesize and /ws/generate have in common (docs/websocket.md).
 *
 * A service describes its socket once, in a static const vx_svcws_ops, and
 * points its vx_ws_route at vx_svcws_on_text / _on_binary / _on_close. The
 * layer then owns, for every connection:
 *
 *  - reading text messages: JSON object or "invalid_json", no NUL in any
 *    string ("invalid_string"), "event" a string ("invalid_type"); routing
 *    "config"/"start" (and bare messages, see bare_key) to ops->config,
 *    "end" and "cancel" to theirs, everything else to ops->message, and
 *    "unknown_event" when nobody takes it; "not_configured" before the
 *    first good config where the protocol requires one;
 *  - errors in the one shape {"event":"error","code":..,"message":..<fields>};
 *  - a per-connection FIFO of work items drained by one job at a time on
 *    the service's vx_pool (so results keep their order and an engine
 *    instance is used by one thread), with limits on items and bytes
 *    waiting, a cancel flag for the engine, an "end" answered when idle;
 *  - the lifetime: the state is reference-counted (the socket's reference
 *    plus one while a job drains), closing drops what waits and raises the
 *    cancel flag, ops->release runs once after both are gone.
 *
 * The config deadline (--ws-config-timeout-s) and close-frame rules are
 * vx_ws's (vx_ws.h): a socket whose first message never comes is closed
 * before any of this runs.
 *
 * Threads: on_* callbacks, ops->config/end/cancel/message/binary and the
 * queueing calls run on the lws service thread; ops->run on a pool thread.
 * The queue, flags and sends are thread-safe; the service's state is split
 * by the service (receiver fields vs job fields), as each file says.
 * A service without ops->run does all its work on the lws thread (VAD:
 * microseconds a frame) and never touches the pool.
 *
 *     static const vx_svcws_ops ops = { .state_size = sizeof(my_state),
 *         .config = my_config, .run = my_run, ... };
 *     static int ws_open(vx_wsconn *c, void *svc, void **st)
 *     { return vx_svcws_open(c, &ops, svc, st); }
 *     { "/ws/x", ws_open, vx_svcws_on_text, vx_svcws_on_binary, vx_svcws_on_close }
 */
#ifndef VX_SVCWS_H
#define VX_SVCWS_H

#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "vx_buf.h"
#include "vx_pool.h"
#include "vx_server.h"

typedef struct vx_svcws_conn vx_svcws_conn;

/* One unit of work in a connection's queue. A service embeds it as the
 * first member of its own item struct and allocates with
 * vx_svcws_item_new; ops->item_free (or free()) frees it. */
typedef struct vx_svcws_item {
	struct vx_svcws_item *next;
	int kind;                    /* the service's: audio, end, text... */
	size_t bytes;                /* counted against max_queued_bytes */
} vx_svcws_item;

/* The socket under a connection: vx_ws (NULL in ops) or a test's fake. */
typedef struct vx_svcws_io {
	int (*send_text)(vx_wsconn *c, const char *text, size_t len);
	int (*send_binary)(vx_wsconn *c, const void *data, size_t len);
	void (*close)(vx_wsconn *c, int status, const char *reason);
	void (*ref)(vx_wsconn *c);
	void (*unref)(vx_wsconn *c);
	bool (*closed)(const vx_wsconn *c);
	size_t (*queued)(vx_wsconn *c);   /* bytes not yet written */
	const char *(*request_id)(const vx_wsconn *c);
} vx_svcws_io;

typedef struct vx_svcws_ops {
	size_t state_size;           /* bytes of the service's per-socket state,
				      * zeroed; passed as `state` below */
	const vx_svcws_io *io;       /* NULL: vx_ws */
	vx_pool *(*pool)(void *user);   /* the service's pool; NULL with no run */

	/* Protocol switches. */
	bool needs_config;           /* end, cancel, others and audio answer
				      * "not_configured" until a config took */
	const char *bare_key;        /* a message without "event": NULL = a
				      * config; "" = a message (ops->message);
				      * "text" = a message when it has that
				      * member, else a config */
	bool raw_messages;           /* text that is no JSON object goes to
				      * ops->message (msg NULL or not an
				      * object), which answers it */
	const char *events;          /* for unknown_event: "config, end, cancel" */
	const char *error_fields;    /* appended to the layer's own errors,
				      * e.g. ",\"status\":400"; NULL = none */
	unsigned max_items;          /* queued items; 0 = no limit */
	size_t max_queued_bytes;     /* sum of item->bytes; 0 = no limit */

	/* lws thread. All optional except where said. */
	void (*init)(vx_svcws_conn *cn, void *state);
	/* A config message. 0: the socket is configured (the callback sent
	 * "ready"); -EINVAL: refused, the socket stays as it was; another
	 * negative: refused and the socket is now unconfigured. The callback
	 * reports its errors. NULL: answered {"event":"ready"}. */
	int (*config)(vx_svcws_conn *cn, void *state, const cJSON *msg);
	void (*end)(vx_svcws_conn *cn, void *state);
	void (*cancel)(vx_svcws_conn *cn, void *state);
	/* Any other message; name is its "event" or NULL for a bare one.
	 * -ENOENT: not an event of this socket (answered unknown_event). */
	int (*message)(vx_svcws_conn *cn, void *state, const cJSON *msg,
		       const char *name, const char *text, size_t len);
	void (*binary)(vx_svcws_conn *cn, void *state, const void *data,
		       size_t len);

	/* Jobs. run is a pool thread's; the rest as said. */
	void (*run)(vx_svcws_conn *cn, void *state, vx_svcws_item *it);
	void (*item_free)(vx_svcws_item *it);
	/* Before a drain job is submitted (lws thread): non-zero refuses it
	 * (e.g. -EBUSY: no slot, -ESHUTDOWN: stopping). */
	int (*job_start)(vx_svcws_conn *cn, void *state);
	/* After a started job ended or its submit failed, as the very last
	 * use of the connection by that job (the state may be gone): user is
	 * the service. */
	void (*job_end)(void *user);
	/* No job would run the queue (job_start's or vx_pool_submit's error
	 * in err): items is what waited, the layer frees it afterwards. */
	void (*refused)(vx_svcws_conn *cn, void *state, vx_svcws_item *items,
			int err);
	/* At close with no job running: true when releasing the state is
	 * heavy and should happen on a pool job (a decoder to give back). */
	bool (*release_on_pool)(void *state);
	/* The last reference is gone: free what state holds (not state). */
	void (*release)(void *state);
} vx_svcws_ops;

/* ---- the vx_ws_route callbacks ---- */

/* From the route's on_open: makes the connection; *ret_state is it. */
int vx_svcws_open(vx_wsconn *c, const vx_svcws_ops *ops, void *user,
		  void **ret_state);
void vx_svcws_on_text(vx_wsconn *c, void *conn, const char *text, size_t len);
void vx_svcws_on_binary(vx_wsconn *c, void *conn, const void *data, size_t len);
void vx_svcws_on_close(vx_wsconn *c, void *conn);

/* ---- for the service's callbacks ---- */

void *vx_svcws_user(const vx_svcws_conn *cn);         /* the service */
void *vx_svcws_state(vx_svcws_conn *cn);
const char *vx_svcws_request_id(const vx_svcws_conn *cn);
bool vx_svcws_configured(const vx_svcws_conn *cn);
void vx_svcws_set_configured(vx_svcws_conn *cn, bool on);

int vx_svcws_send_text(vx_svcws_conn *cn, const char *text, size_t len);
/* Sends b's bytes (nothing when b holds none: out of memory). */
int vx_svcws_send_buf(vx_svcws_conn *cn, const vx_buf *b);
int vx_svcws_send_binary(vx_svcws_conn *cn, const void *data, size_t len);
/* {"event":"error","code":code,"message":...}; the message is cut to
 * VX_WS_ERROR_MAX - 1 bytes. _fields appends fields verbatim (NULL, ""
 * or members with a leading comma: ",\"id\":\"s1\""). */
int vx_svcws_error(vx_svcws_conn *cn, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int vx_svcws_error_fields(vx_svcws_conn *cn, const char *fields,
			  const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void vx_svcws_close(vx_svcws_conn *cn, int status, const char *reason);

/* ---- the queue ---- */

/* A zeroed item of size bytes (>= sizeof(vx_svcws_item)); NULL: ENOMEM. */
void *vx_svcws_item_new(size_t size, int kind);
void vx_svcws_item_free(vx_svcws_conn *cn, vx_svcws_item *it);
/*
 * Appends it (taken in every case) and starts a drain job when none runs.
 * 0: queued. -ENOBUFS: over max_items or max_queued_bytes; it was freed,
 * the caller says so. -EAGAIN: no job would run (ops->refused has been
 * told why and answered for what waited, this item included; freed).
 */
int vx_svcws_push(vx_svcws_conn *cn, vx_svcws_item *it);
/*
 * One at a time, a newer one replacing a waiting one: -EBUSY (it is not
 * taken) while an item runs whose work was not cancelled; otherwise as
 * vx_svcws_push, and what waited before is handed back in *ret_replaced
 * (caller answers and frees it, a list through ->next).
 */
int vx_svcws_push_exclusive(vx_svcws_conn *cn, vx_svcws_item *it,
			    vx_svcws_item **ret_replaced);
/*
 * Raises the cancel flag (the item running sees it; the flag is lowered
 * when the next item is taken) and drops the waiting items for which keep
 * is false (keep NULL: all). Returns true when a job is draining.
 */
bool vx_svcws_cancel(vx_svcws_conn *cn, bool (*keep)(const vx_svcws_item *));
/* Raises the cancel flag only; any thread. */
void vx_svcws_interrupt(vx_svcws_conn *cn);
/* For engines: set by cancel, interrupt and the socket closing. */
const atomic_bool *vx_svcws_cancel_flag(vx_svcws_conn *cn);
/* True when no job is draining (lws thread: only it starts jobs, so an
 * idle socket stays idle until it pushes). */
bool vx_svcws_idle(vx_svcws_conn *cn);
/* "end" with nothing to end: {"event":"done","end":true} now when idle,
 * else once the queue has drained (after the last item's events). */
void vx_svcws_end_when_idle(vx_svcws_conn *cn);
/*
 * Output backpressure (run side): waits while more than high_water bytes
 * are unsent; false when the work should stop instead (cancel, closed).
 */
bool vx_svcws_wait_writable(vx_svcws_conn *cn, size_t high_water);
/*
 * From ops->run: the item cannot run yet (a resource other sockets hold,
 * such as a decoder). It goes back to the head of the queue, and the drain
 * job gives its pool thread back and comes again VX_SVCWS_RETRY_MS later,
 * behind the jobs queued meanwhile, so the holders' jobs can run and free
 * what it waits for. Cancel and close drop it as any waiting item (also
 * when they come while it runs).
 */
#define VX_SVCWS_RETRY_MS 20
void vx_svcws_retry_later(vx_svcws_conn *cn);

#endif
