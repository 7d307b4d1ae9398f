/*
 * vx_loop.h - the serving loops: one listening socket, io_threads event
 * loops, each with its own libmicrohttpd daemon in external-epoll mode.
 *
 * A loop accepts, holds each new connection until its request head is in,
 * checks the head (vx_head.h; refusals are answered here in JSON), then
 * hands a WebSocket upgrade that ops->ws_route accepts to ops->ws_adopt and
 * everything else to its MHD daemon, whose request callbacks are
 * ops->on_access, on_uri and on_completed (their cls is the loop:
 * vx_loop_arg gives cfg->arg). The loop knows nothing of requests: a
 * request layer that cannot answer at once suspends its connection with
 * vx_loop_suspend, passing a vx_loop_watch it owns; the loop then calls
 * ops->watch on it every 50 ms (client gone, deadline, drain cut) until
 * someone calls vx_loop_resume (any thread).
 *
 * Who owns what: the caller owns cfg and the counters and flags it points
 * to, and keeps them alive until vx_loops_free. Callbacks run on loop
 * threads and must not block.
 *
 *     vx_loops *ls; vx_loops_new(&cfg, &ls); vx_loops_start(ls);
 *     ... vx_loops_stop(ls); vx_loops_free(ls);
 */
#ifndef VX_LOOP_H
#define VX_LOOP_H

#include <microhttpd.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "vx_head.h"
#include "vx_metrics.h"

typedef struct vx_loop vx_loop;
typedef struct vx_loops vx_loops;

/* A suspended connection, in storage owned by the request layer. */
typedef struct vx_loop_watch {
	struct MHD_Connection *conn;
	size_t idx;                 /* the loop's; (size_t)-1 when not listed */
} vx_loop_watch;

enum vx_loop_ws {
	VX_LOOP_WS_NONE = 0,        /* not a WebSocket route: MHD answers */
	VX_LOOP_WS_TAKE,            /* hand the socket to ws_adopt */
	VX_LOOP_WS_REFUSE,          /* answer 503 overloaded and close */
	VX_LOOP_WS_UNAUTHORIZED,    /* answer 401 (no or a wrong bearer key) */
};

typedef struct vx_loop_ops {
	/* libmicrohttpd's request callbacks; cls is the vx_loop. */
	MHD_AccessHandlerCallback on_access;
	void *(*on_uri)(void *cls, const char *uri, struct MHD_Connection *conn);
	MHD_RequestCompletedCallback on_completed;
	/* A suspended request's periodic check: the client hung up (gone),
	 * now (monotonic s), the drain ended (cut). May call vx_loop_resume. */
	void (*watch)(vx_loop_watch *w, bool gone, double now, bool cut);
	/* The loop stops: the request is resumed for MHD to close it. */
	void (*abandon)(vx_loop_watch *w);
	/* References held while a watch sits in the resume queue. */
	void (*hold)(vx_loop_watch *w);
	void (*release)(vx_loop_watch *w);
	/* A GET head with Upgrade: websocket (its path and Authorization
	 * point into the peeked bytes, not NUL-terminated). NULL: no
	 * WebSockets. */
	enum vx_loop_ws (*ws_route)(void *ws_arg, const vx_head *h);
	/* Takes the socket (the loop stops counting it). */
	void (*ws_adopt)(void *ws_arg, int fd);
} vx_loop_ops;

typedef struct vx_loop_config {
	int listen_fd;              /* non-blocking, listening */
	int n_loops;                /* threads, >= 1 */
	int max_connections;        /* heads + MHD + *ws_open */
	int head_timeout_ms;        /* 408 past it */
	int idle_timeout_s;         /* MHD keep-alive idle limit */
	vx_head_limits head_limits;
	const atomic_int *ws_open;  /* WebSockets open, counted in the limit */
	const atomic_bool *accept_stopped;  /* stop listening (drain) */
	const atomic_bool *drain_cut;       /* watch with cut = true */
	const atomic_bool *frozen;          /* --debug-freeze: loops sleep */
	vx_counter *rejected;       /* 503 for the connection limit */
	vx_counter *head_timeouts;  /* 408 */
	vx_counter *bad_heads;      /* 400, 413, 414, 431 */
	const vx_loop_ops *ops;
	void *arg;                  /* the request layer's: vx_loop_arg */
	void *ws_arg;               /* for ws_route and ws_adopt */
} vx_loop_config;

int vx_loops_new(const vx_loop_config *cfg, vx_loops **ret);
/* Stops (if running) and frees; NULL is fine. */
void vx_loops_free(vx_loops *ls);
int vx_loops_start(vx_loops *ls);
/* Ends the threads; suspended requests are abandoned. Idempotent. */
void vx_loops_stop(vx_loops *ls);
/* Makes every loop turn now (after a drain flag changed). */
void vx_loops_wake(vx_loops *ls);
/* True while some loop still polls the listening socket. */
bool vx_loops_listening(vx_loops *ls);
/* True when every loop has turned within max_age seconds. */
bool vx_loops_alive(vx_loops *ls, double max_age);

/* The cfg->arg of the loop's set (from an MHD callback's cls). */
void *vx_loop_arg(vx_loop *l);
/* Loop thread, from an MHD callback: suspend w->conn and watch it. */
void vx_loop_suspend(vx_loop *l, vx_loop_watch *w);
/* Any thread: have the loop resume w->conn (ops->hold keeps w alive). */
void vx_loop_resume(vx_loop *l, vx_loop_watch *w);

#endif
