/*
 * vx_server.h - one daemon's HTTP + WebSocket server on one port.
 *
 * The server owns (or takes from systemd) the listening socket and serves
 * it from io_threads event loops (vx_loop.c). A loop holds each new
 * connection until its request head is in, checks the head (vx_head.h),
 * then hands WebSocket upgrades on a registered path to libwebsockets
 * (vx_ws.h) and everything else to its own libmicrohttpd daemon. Handlers
 * run on the loop and must not block: they answer, or hand engine work to
 * a vx_pool with vx_req_run (vx_req.h), which is where admission control
 * (503 + Retry-After) happens; routes that wait on disk or network are
 * marked blocking and run on a small pool of the server's own. A slow or
 * idle client costs a descriptor and a buffer, never a thread.
 *
 * Built in, for every daemon: GET|HEAD /healthz and /readyz (readiness from
 * the health callback, 503 while draining), /livez, /metrics (Prometheus,
 * with per-route request counters and latency histograms), /info, 404/405
 * as JSON, a bearer key check when api_key is set, on HTTP routes and
 * WebSocket upgrades alike (health, liveness, metrics and routes marked
 * open stay open), X-Request-Id on every answer. Malformed, smuggled and
 * oversized requests, slow heads and connections past max_connections are
 * refused in JSON before any handler sees them.
 *
 * Lifecycle: vx_server_new -> vx_server_run (blocks until SIGTERM/SIGINT or
 * vx_server_stop; sends READY=1, pings the watchdog while every loop turns)
 * -> on SIGTERM: readiness 503 "draining" for drain_delay_s while all else
 * is served, then the listener closes, in-flight work finishes until
 * drain_timeout_s (what is left is answered 503), STOPPING=1, and it
 * returns with every connection closed -> free the pools -> vx_server_free.
 * The process ends drain_timeout_s + 1 s after SIGTERM whatever happens.
 *
 *     vx_server_config cfg = { .service = "stt", .port = 3002, .routes = r, .n_routes = 3 };
 *     vx_server *s; if (vx_server_new(&cfg, &s) < 0) exit(1);
 *     vx_server_run(s); vx_pool_free(pool); vx_server_free(s);
 */
#ifndef VX_SERVER_H
#define VX_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "vx_buf.h"
#include "vx_metrics.h"

typedef struct vx_server vx_server;
typedef struct vx_req vx_req;
typedef struct vx_wsconn vx_wsconn;

typedef void (*vx_handler)(vx_req *req, void *user);

typedef struct vx_route {
	const char *method;     /* "GET", "POST", "DELETE"; GET also answers HEAD */
	const char *path;       /* exact, or a prefix ending in '*' */
	vx_handler fn;
	size_t max_body;        /* bytes; 0 = the server's default */
	/* The handler may wait on disk or network (a database, an upstream):
	 * it then runs on the server's small handler pool, never on a serving
	 * loop. Handlers that only parse and hand work to vx_req_run leave it
	 * false. */
	bool blocking;
	/* Not under --api-key: the route checks its callers itself (a phone
	 * provider's webhook signature), since they cannot send a key. */
	bool open;
} vx_route;

/* WebSocket routes. Callbacks run on the libwebsockets service thread and
 * must not block: hand work to a pool and answer with vx_ws_send_*. */
typedef struct vx_ws_route {
	const char *path;
	/* Called once the handshake is done; *ret_state is the connection's
	 * state for the other callbacks. Non-zero refuses (closes). */
	int (*on_open)(vx_wsconn *c, void *user, void **ret_state);
	void (*on_text)(vx_wsconn *c, void *state, const char *text, size_t len);
	/* NULL: binary messages are answered with an "unsupported" error. */
	void (*on_binary)(vx_wsconn *c, void *state, const void *data, size_t len);
	/* The peer left or the server closed; after this no callback comes.
	 * The state is the route's to free (it may wait for its jobs first by
	 * refcounting: vx_ws_ref / vx_ws_unref). */
	void (*on_close)(vx_wsconn *c, void *state);
	/* Not under --api-key (as vx_route's open). Other WebSocket routes
	 * need the key in the upgrade's Authorization header, else 401. */
	bool open;
} vx_ws_route;

/* Readiness as the health callback reports it. */
typedef enum vx_health {
	VX_HEALTH_OK = 0,
	VX_HEALTH_LOADING,
	VX_HEALTH_UNAVAILABLE,
	VX_HEALTH_OVERLOADED,
	/* Serving, but something it depends on is down (the orchestrator
	 * with a stage missing): 200, since a request is still accepted. */
	VX_HEALTH_DEGRADED,
} vx_health;

typedef struct vx_server_config {
	const char *service;        /* short name: "stt", used in logs and metrics */
	const char *version;
	const char *host;           /* bind address; NULL = 127.0.0.1 */
	int port;
	int max_connections;        /* HTTP + WebSocket; 0 = 1024 */
	size_t max_body;            /* default body limit, bytes; 0 = 16 MiB */
	int idle_timeout_s;         /* HTTP keep-alive idle limit; 0 = 60 */
	int head_timeout_ms;        /* time to send a request head; 0 = 10000 */
	int drain_timeout_s;        /* SIGTERM -> exit at most this long; 0 = 15 */
	int drain_delay_s;          /* SIGTERM: readiness says draining, all else
				       still served, this long; -1 = none, 0 = 5 */
	int ws_config_timeout_ms;   /* a WebSocket's first message within; 0 = 10000 */
	int io_threads;             /* serving loops; 0 = 2 */
	bool debug_freeze;          /* SIGUSR2 freezes the serving loop (tests) */
	int request_timeout_s;      /* deadline of every request: past it the
				       cancel flag is set and, if nothing was
				       answered, 504; 0 = 300 */
	size_t ws_max_message;      /* bytes; 0 = 4 MiB */
	const char *api_key;        /* NULL = no auth */
	const vx_route *routes;
	size_t n_routes;
	const vx_ws_route *ws_routes;
	size_t n_ws_routes;
	void *user;                 /* passed to handlers and callbacks */
	/* Readiness; may append `"key":value` JSON fields (with a leading
	 * comma) to extra and a reason to detail. NULL = always OK. */
	vx_health (*health)(void *user, vx_buf *extra, char *detail,
			    size_t detail_len);
	/* Appends `"key":value` fields (leading comma) to the /info object. */
	void (*info)(void *user, vx_buf *out);
	/* Optional admission for WebSocket upgrades, called on the acceptor
	 * thread before the handshake: false answers the upgrade with HTTP 503
	 * + Retry-After (e.g. a call limit reached). Must be quick. */
	bool (*ws_admit)(void *user, const char *path);
} vx_server_config;

int vx_server_new(const vx_server_config *cfg, vx_server **ret);
void vx_server_free(vx_server *s);
/* Serves until stopped; returns 0 on a clean stop. */
int vx_server_run(vx_server *s);
/* Thread-safe, async-signal-safe: makes vx_server_run drain and return. */
void vx_server_stop(vx_server *s);
/* Stops the serving loops and closes every connection; jobs still running
 * see their cancel flag. vx_server_run does it before it returns; call it
 * (or vx_server_free) before freeing the pools jobs run on. Idempotent. */
void vx_server_shutdown(vx_server *s);
/* False once a drain has stopped accepting (other listeners beside the
 * server's, e.g. Wyoming, close with it). Any thread. */
bool vx_server_accepting(vx_server *s);
/* The bound port (useful with port 0). */
int vx_server_port(const vx_server *s);
vx_metrics *vx_server_metrics(vx_server *s);
/* True from SIGTERM (or vx_server_stop) on: other front doors (the NATS
 * worker) stop taking work. Thread-safe. */
bool vx_server_draining(const vx_server *s);
/* Requests (HTTP handlers + pool jobs) and WebSockets now open. */
int vx_server_in_flight(const vx_server *s);

#endif
