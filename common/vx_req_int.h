/*
 * vx_req_int.h - the request layer's side facing the server: what
 * vx_server.c sets up for vx_req.c (the route table, limits, counters) and
 * the callbacks it wires into the serving loops (vx_loop.h). Not for
 * services: they use vx_req.h.
 *
 * One vx_req_host per server, filled by the server, then vx_req_host_init;
 * the loops' MHD callbacks get it back with vx_loop_arg. Requests count
 * themselves in in_flight and their jobs in jobs (the drain waits on both).
 *
 *     host->routes = ...; vx_req_host_init(host, metrics);
 *     loop ops: .on_access = vx_req_on_access, ..., arg = host
 */
#ifndef VX_REQ_INT_H
#define VX_REQ_INT_H

#include <microhttpd.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "vx_loop.h"
#include "vx_metrics.h"
#include "vx_pool.h"
#include "vx_server.h"

#define VX_MAX_ROUTES 32
/* Bytes of body read and dropped after a 413 before the line is cut. */
#define VX_REQ_DISCARD_MAX (64u * 1024 * 1024)

/* Per-route request metrics, filled lazily. */
typedef struct vx_route_stats {
	const char *label;                 /* route path as a metric label */
	vx_histogram *latency;
	_Atomic(vx_counter *) by_status[600];
} vx_route_stats;

typedef struct vx_req_host {
	const vx_route *routes;
	size_t n_routes;                   /* <= VX_MAX_ROUTES */
	const vx_ws_route *ws_routes;      /* an upgrade on a kept-alive
					      connection is answered 503 */
	size_t n_ws_routes;
	const char *api_key;               /* NULL = no auth */
	size_t max_body;                   /* default body limit, bytes */
	int request_timeout_s;
	void *user;                        /* passed to handlers */
	vx_pool *handler_pool;             /* routes marked blocking */
	const atomic_bool *accept_stopped; /* answers say Connection: close */
	/* Built-in routes, asked first: true when it answered req. */
	bool (*builtin)(void *arg, vx_req *req);
	void *builtin_arg;
	vx_metrics *metrics;
	vx_counter *rejected;              /* 503s counted here too */

	/* set by vx_req_host_init and the requests */
	atomic_int in_flight;              /* HTTP requests being handled */
	atomic_int jobs;                   /* vx_req_run jobs not yet returned */
	vx_route_stats builtin_stats;      /* health/metrics/info/404s */
	vx_route_stats stats[VX_MAX_ROUTES];
} vx_req_host;

/* The per-route metrics; call once the fields above are set. */
void vx_req_host_init(vx_req_host *h);

/* The loops' callbacks (vx_loop_ops); cls is the loop, arg the host. */
enum MHD_Result vx_req_on_access(void *cls, struct MHD_Connection *conn,
				 const char *url, const char *method,
				 const char *version, const char *upload_data,
				 size_t *upload_data_size, void **con_cls);
void vx_req_on_completed(void *cls, struct MHD_Connection *conn,
			 void **con_cls, enum MHD_RequestTerminationCode toe);
void *vx_req_on_uri(void *cls, const char *uri, struct MHD_Connection *conn);
void vx_req_watch(vx_loop_watch *w, bool gone, double now, bool cut);
void vx_req_abandon(vx_loop_watch *w);
void vx_req_hold(vx_loop_watch *w);
void vx_req_release(vx_loop_watch *w);

#endif
