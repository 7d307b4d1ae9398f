/*
 * vx_ws_int.h - the server side of vx_ws.c: the libwebsockets context and
 * its service thread, which adopt the sockets the serving loops hand over.
 * Not for services (they use vx_ws.h); vx_server.c owns one vx_ws_host.
 *
 * Who owns what: the caller owns cfg's routes, counter and ws_open, and
 * keeps them alive until vx_ws_free. vx_ws_adopt is thread-safe.
 *
 *     vx_ws_host *h; vx_ws_start(&cfg, &h); ... vx_ws_adopt(h, fd); ...
 *     vx_ws_stop(h); (jobs end) vx_ws_free(h);
 */
#ifndef VX_WS_INT_H
#define VX_WS_INT_H

#include <stdatomic.h>
#include <stddef.h>

#include "vx_metrics.h"
#include "vx_server.h"

typedef struct vx_ws_host vx_ws_host;

typedef struct vx_ws_config {
	const vx_ws_route *routes;
	size_t n_routes;
	void *user;                 /* passed to on_open */
	int config_timeout_ms;      /* first message within; <= 0: 10000 */
	size_t max_message;         /* bytes */
	int max_connections;        /* sizes lws's descriptor table */
	vx_counter *connections;    /* WebSockets accepted */
	atomic_int *open;           /* WebSockets open now */
} vx_ws_config;

/* Creates the lws context and starts its service thread. */
int vx_ws_start(const vx_ws_config *cfg, vx_ws_host **ret);
/* Ends the thread and closes every connection (on_close is called);
 * sends from jobs still running then return -EPIPE. Idempotent. */
void vx_ws_stop(vx_ws_host *h);
/* Stops if needed and frees; NULL is fine. */
void vx_ws_free(vx_ws_host *h);
/* Any thread: hands a socket whose head is an upgrade on a route to lws. */
void vx_ws_adopt(vx_ws_host *h, int fd);

#endif
