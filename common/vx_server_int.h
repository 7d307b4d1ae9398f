/*
 * vx_server_int.h - what vx_server.c, vx_req.c, vx_loop.c and vx_ws.c
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

#include "vx_head.h"
#include "vx_metrics.h"
#include "vx_server.h"
#include "vx_time.h"

struct lws_context;
struct lws_vhost;
typedef struct vx_loop vx_loop;

#define VX_MAX_ROUTES 32
#define DISCARD_MAX (64u * 1024 * 1024) /* body read and dropped after a 413 */

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
	int wake_pipe[2];                  /* signal -> vx_server_run */

	/* Serving loops (vx_loop.c), each with its own MHD daemon */
	vx_loop **loops;
	int n_loops;
	vx_head_limits head_limits;
	atomic_int n_open;                 /* connections held: heads + MHD */
	struct vx_pool *handler_pool;      /* routes marked blocking */

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

	/* Drain, in order: draining (readiness 503) -> accept_stopped ->
	 * drain_cut (unanswered requests get 503) -> stopping. */
	atomic_bool draining;
	atomic_bool accept_stopped;
	atomic_bool drain_cut;
	atomic_bool stopping;
	atomic_int signals;                /* SIGTERM/SIGINT seen */
	atomic_bool no_delay;              /* SIGINT: skip the drain delay */
	atomic_bool frozen;                /* --debug-freeze and SIGUSR2 */
	atomic_int in_flight;              /* HTTP requests being handled */
	atomic_int jobs;                   /* vx_req_run jobs not yet returned */
	double start_time;                 /* monotonic seconds */

	vx_metrics *metrics;
	route_stats builtin_stats;         /* health/metrics/info/404s */
	route_stats stats[VX_MAX_ROUTES];
	vx_counter *rejected;              /* 503 from admission control */
	vx_counter *head_timeouts;         /* 408 before a request head */
	vx_counter *bad_heads;             /* heads refused (400, 413, 414, 431) */
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

/* vx_req.c: what the loop needs of a request */
struct MHD_Connection *vx_req_conn(vx_req *req);
void vx_req_ref(vx_req *req);
void vx_req_unref(vx_req *req);
size_t vx_req_watch_idx(const vx_req *req);
void vx_req_set_watch_idx(vx_req *req, size_t idx);
/* A suspended request's periodic check (loop thread): the client hung up,
 * the deadline passed, or the drain ended (cut: answer 503 if unanswered). */
void vx_req_watch(vx_req *req, bool gone, double now, bool cut);
/* The loop is stopping: the request is resumed for MHD to close it. */
void vx_req_abandon(vx_req *req);

/* vx_loop.c */
int vx_loops_new(vx_server *s);
int vx_loops_start(vx_server *s);
void vx_loops_stop(vx_server *s);
void vx_loops_wake(vx_server *s);
void vx_loop_free(vx_loop *l);
/* True while some loop still polls the listening socket. */
bool vx_loops_listening(vx_server *s);
/* True when every loop has turned within max_age seconds. */
bool vx_loops_alive(vx_server *s, double max_age);
/* Loop thread, from an MHD callback: suspend the request's connection. */
void vx_loop_suspend(vx_loop *l, vx_req *req, struct MHD_Connection *conn);
/* Any thread: have the loop resume the request's connection. */
void vx_loop_resume(vx_loop *l, vx_req *req);
void vx_loop_on_connection(void *cls, struct MHD_Connection *conn,
			   void **socket_context,
			   enum MHD_ConnectionNotificationCode toe);
vx_server *vx_loop_server(vx_loop *l);
const vx_ws_route *vx_ws_route_find(const vx_server *s, const char *path,
				    size_t len);

/* vx_ws.c */
int vx_ws_start(vx_server *s);
void vx_ws_stop(vx_server *s);
/* Called by the acceptor: hands a peeked socket to libwebsockets. */
void vx_ws_adopt(vx_server *s, int fd);

#endif
