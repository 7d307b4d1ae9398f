/*
 * vx_server_int.h - what vx_server.c, vx_req.c, vx_accept.c and vx_ws.c
 * share. Not part of the public API: services include vx_server.h,
 * vx_req.h and vx_ws.h only.
 */
#ifndef VX_SERVER_INT_H
#define VX_SERVER_INT_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "vx_metrics.h"
#include "vx_server.h"
#include "vx_time.h"

struct lws_context;
struct lws_vhost;

#define VX_MAX_ROUTES 32

/* Per-route request metrics, filled lazily. */
typedef struct route_stats {
	const char *label;                 /* route path as a metric label */
	vx_histogram *latency;
	_Atomic(vx_counter *) by_status[600];
} route_stats;

struct vx_server {
	vx_server_config cfg;
	int listen_fd;
	bool listen_from_systemd;
	int port;
	int wake_pipe[2];                  /* stop request -> acceptor */
	pthread_t accept_thread;
	bool accept_started;

	struct MHD_Daemon *mhd;

	/* WebSocket side (vx_ws.c) */
	struct lws_context *lws;
	struct lws_vhost *lws_vhost;
	pthread_t lws_thread;
	bool lws_started;
	pthread_mutex_t ws_lock;           /* guards the two lists below */
	int *adopt_fds;                    /* sockets waiting for lws */
	size_t n_adopt, cap_adopt;
	struct vx_wsconn *wake_list;       /* conns with output to write */
	atomic_int ws_open;

	atomic_bool stopping;
	atomic_bool draining;
	atomic_int in_flight;              /* HTTP requests being handled */
	double start_time;                 /* monotonic seconds */

	vx_metrics *metrics;
	route_stats builtin_stats;         /* health/metrics/info/404s */
	route_stats stats[VX_MAX_ROUTES];
	vx_counter *rejected;              /* 503 from admission control */
	vx_counter *head_timeouts;         /* 408 before a request head */
	vx_counter *ws_connections;        /* WebSockets accepted */
};

/* vx_req.c: the MHD callbacks */
enum MHD_Result vx_req_on_access(void *cls, struct MHD_Connection *conn,
				 const char *url, const char *method,
				 const char *version, const char *upload_data,
				 size_t *upload_data_size, void **con_cls);
void vx_req_on_completed(void *cls, struct MHD_Connection *conn,
			 void **con_cls, enum MHD_RequestTerminationCode toe);
void *vx_req_on_uri(void *cls, const char *uri, struct MHD_Connection *conn);
void vx_server_count(vx_server *s, route_stats *rs, int status,
		     double seconds);

/* vx_server.c: built-in routes; returns true when it answered. */
bool vx_server_builtin(vx_server *s, vx_req *req);

/* vx_accept.c */
int vx_accept_start(vx_server *s);
void vx_accept_stop(vx_server *s);
const vx_ws_route *vx_ws_route_find(const vx_server *s, const char *path,
				    size_t len);

/* vx_ws.c */
int vx_ws_start(vx_server *s);
void vx_ws_stop(vx_server *s);
/* Called by the acceptor: hands a peeked socket to libwebsockets. */
void vx_ws_adopt(vx_server *s, int fd);

#endif
