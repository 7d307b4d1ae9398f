/*
 * vx_wyoming.h - a Wyoming protocol server (Home Assistant's voice
 * services protocol) beside a daemon's HTTP port.
 *
 * Wire format, both ways: one event is a JSON header line
 *   {"type":"audio-chunk","data":{...},"data_length":N,"payload_length":M,"version":"1.5.2"}\n
 * then N bytes of JSON object merged into "data" (data_length 0 or
 * absent: none), then M bytes of binary payload (audio). This module owns
 * the TCP listener, one epoll I/O thread, the framing (an incremental
 * parser with named limits: header line, data and payload bytes), the
 * errors of framing ({"type":"error","data":{"text":..,"code":..}}; the
 * connection stays usable: a bad header line is skipped up to its
 * newline, an oversized payload is read and thrown away, an event that
 * stops arriving half way is dropped after the stall limit) and the
 * lifetime of connections (reference-counted; output buffered and
 * written without blocking anyone).
 *
 * A service supplies vx_wy_ops: init/event/closed run on the I/O thread
 * and must not block (engine work goes to the service's pool, e.g. through
 * vx_svcws over vx_wy_svcws_io, below). Sends are thread-safe.
 *
 * Drain: the listener closes when the vx_server stops accepting
 * (vx_server_accepting); vx_wy_server_drain then closes idle connections
 * at once and busy ones (a job holds a reference, output unsent) once
 * they are done or the deadline passes.
 *
 * Threads: ops->event and ops->closed run with the connection's
 * translation lock held (recursive), and so do ops->ws_text/ws_binary, so
 * a service's translation state needs no lock of its own.
 *
 *     vx_wy_server *w; vx_wy_server_new(&cfg, &w);   // thread starts
 *     vx_server_run(server); vx_wy_server_drain(w, 10);
 *     vx_pool_free(pool); vx_wy_server_free(w);
 */
#ifndef VX_WYOMING_H
#define VX_WYOMING_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "vx_buf.h"
#include "vx_daemon.h"
#include "vx_server.h"
#include "vx_svcws.h"

#define VX_WY_VERSION "1.5.2"               /* the protocol version we speak */
#define VX_WY_HEADER_MAX (64u * 1024)       /* bytes of a header line */
#define VX_WY_DATA_MAX (256u * 1024)        /* bytes of additional data */
#define VX_WY_PAYLOAD_MAX (4u << 20)        /* bytes of one payload */
#define VX_WY_OUT_MAX (64u << 20)           /* unsent bytes before a
					     * client that does not read
					     * is dropped */
#define VX_WY_STALL_MS 2000                 /* an event started but not
					     * finished within: dropped */

/* The flag row a service adds to its table (port 0 = off). */
#define VX_WYOMING_FLAG(port_ptr)                                              \
	{ "wyoming-port", VX_FLAG_INT, (port_ptr), "0", 0, 65535,              \
	  "also serve the Wyoming protocol (Home Assistant) on this TCP "      \
	  "port; 0 = off" }

typedef struct vx_wy_server vx_wy_server;
typedef struct vx_wy_conn vx_wy_conn;

/* One received event; valid during the callback only. */
typedef struct vx_wy_event {
	const char *type;
	const cJSON *data;            /* an object, never NULL (maybe empty) */
	const unsigned char *payload; /* NULL when payload_len is 0 */
	size_t payload_len;
} vx_wy_event;

typedef struct vx_wy_ops {
	size_t state_size;            /* the service's per-connection state,
				       * zeroed */
	/* I/O thread: a new connection; non-zero refuses it. */
	int (*init)(vx_wy_conn *c, void *state);
	/* I/O thread: one well-framed event. */
	void (*event)(vx_wy_conn *c, void *state, const vx_wy_event *ev);
	/* I/O thread: the connection closed (peer, limit, drain); no event
	 * comes after it. References may still be held. */
	void (*closed)(vx_wy_conn *c, void *state);
	/* Last reference gone (any thread): free what state holds. */
	void (*release)(void *state);
	/* What vx_svcws sent through vx_wy_svcws_io, to translate into
	 * Wyoming events (any thread; serialised per connection). */
	void (*ws_text)(vx_wy_conn *c, void *state, const char *text,
			size_t len);
	void (*ws_binary)(vx_wy_conn *c, void *state, const void *data,
			  size_t len);
} vx_wy_ops;

typedef struct vx_wy_server_config {
	const char *service;          /* "stt": logs */
	const char *host;             /* bind address; NULL = 127.0.0.1 */
	int port;                     /* 0 = any free port */
	int max_connections;          /* past it: error event, closed */
	int idle_timeout_s;           /* nothing in or out this long: closed */
	vx_server *server;            /* whose drain closes our listener */
	const vx_wy_ops *ops;
	void *user;                   /* the service */
} vx_wy_server_config;

/* Binds and starts the I/O thread. */
int vx_wy_server_new(const vx_wy_server_config *cfg, vx_wy_server **ret);
/* The bound port. */
int vx_wy_server_port(const vx_wy_server *w);
/* Stops listening, waits for busy connections until timeout_s after the
 * listener closed (now, if it had not), closes every connection and ends
 * the thread. Idempotent. */
void vx_wy_server_drain(vx_wy_server *w, int timeout_s);
/* Drains with no wait if needed, then waits (up to 10 s) for connections
 * still referenced by jobs and frees. NULL is fine. */
void vx_wy_server_free(vx_wy_server *w);

/* A service's listener from its daemon options (host, --max-connections,
 * --idle-timeout-s): binds, logs the address and warns when --api-key is
 * set, since the protocol has no authentication. */
int vx_wy_start(const char *service, const vx_daemon_opts *d, int port,
		vx_server *server, const vx_wy_ops *ops, void *user,
		vx_wy_server **ret);

/* ---- on a connection ---- */

void *vx_wy_user(const vx_wy_conn *c);
void *vx_wy_state(vx_wy_conn *c);
const char *vx_wy_request_id(const vx_wy_conn *c);
void vx_wy_ref(vx_wy_conn *c);
void vx_wy_unref(vx_wy_conn *c);
bool vx_wy_closed(const vx_wy_conn *c);
size_t vx_wy_queued(vx_wy_conn *c);
/* Any thread. data_json: a JSON object's text or NULL; payload may be
 * NULL. -EPIPE when closed, -ENOBUFS past VX_WY_OUT_MAX (closes). */
int vx_wy_send(vx_wy_conn *c, const char *type, const char *data_json,
	       const void *payload, size_t payload_len);
/* {"type":"error","data":{"text":...,"code":code}} */
int vx_wy_error(vx_wy_conn *c, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* A service WebSocket error event ({"code","message"}) sent on as a
 * Wyoming error. */
void vx_wy_forward_error(vx_wy_conn *c, const cJSON *event);
/* Any thread: closes after what is queued has been written. */
void vx_wy_close(vx_wy_conn *c);

/*
 * The socket vx_svcws runs on when a service serves its WebSocket
 * protocol over Wyoming: a vx_wy_conn passed as the vx_wsconn; what
 * vx_svcws sends goes to ops->ws_text / ws_binary for translation.
 */
extern const vx_svcws_io vx_wy_svcws_io;
/* A copy of a service's WebSocket ops running on vx_wy_svcws_io
 * (static storage the caller provides; done once before serving). */
void vx_wy_svcws_ops(const vx_svcws_ops *ws, vx_svcws_ops *ret);
static inline vx_wsconn *vx_wy_as_ws(vx_wy_conn *c)
{
	return (vx_wsconn *)(void *)c;
}

/* ---- helpers for services ---- */

typedef struct vx_wy_audio {
	int rate;                     /* Hz, 1000 .. 384000 */
	int width;                    /* bytes a sample: 1 .. 4 */
	int channels;                 /* 1 .. 8 */
} vx_wy_audio;

/* The rate/width/channels of an audio-start or audio-chunk; -EINVAL when
 * one is missing or out of range (*ret untouched). */
int vx_wy_audio_format(const cJSON *data, vx_wy_audio *ret);
/* Interleaved PCM16 of f->channels -> mono PCM16 in out (reset first).
 * -EINVAL: width is not 2 or len is not whole frames. */
int vx_wy_mono16(const vx_wy_audio *f, const void *pcm, size_t len,
		 vx_buf *out);
/* An info artifact's common members ("name", "attribution", "installed",
 * "description", "version"), no braces, a trailing comma. */
void vx_wy_artifact(vx_buf *b, const char *name, const char *description,
		    const char *version);

#endif
