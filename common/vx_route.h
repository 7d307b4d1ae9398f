/*
 * vx_route.h - which route answers an HTTP request, and whether it may.
 *
 * The request layer (vx_req.c) asks once the head of a request is in:
 * given the service's route table (vx_server.h's vx_route), the method,
 * the path and the headers that matter, vx_route_decide says to run a
 * route or which error to answer, in this order:
 *   - no route has the path: 404 not_found;
 *   - routes have the path, none the method: 405 method_not_allowed with
 *     the path's methods for the Allow header (GET also allows HEAD);
 *   - a key is set, the route is not open and Authorization is not
 *     "Bearer <key>": 401 unauthorized (answer WWW-Authenticate: Bearer);
 *   - both Content-Length and Transfer-Encoding: 400 bad_request, before
 *     the body (RFC 9112 6.3: smuggling);
 *   - Content-Length over the route's limit: 413 body_too_large; before
 *     the body (close) when it is over by more than discard_max, else after
 *     reading and dropping it, so clients that send before they read see
 *     the answer.
 * A path pattern is exact, or a prefix when it ends in '*' (a pattern
 * "/conversations/" + '*' matches "/conversations/" and everything below
 * it). The first route with the path and the method wins.
 *
 * Pure: no sockets, no clocks, no allocation; safe from any thread.
 *
 *     vx_route_verdict v;
 *     vx_route_decide(&table, &(vx_route_request){ "GET", "/x", ... }, &v);
 *     if (v.status) answer v.status, v.code, v.message; else run routes[v.route];
 */
#ifndef VX_ROUTE_H
#define VX_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "vx_server.h"

typedef struct vx_route_table {
	const vx_route *routes;
	size_t n_routes;
	const char *api_key;        /* NULL = no auth */
	size_t max_body;            /* bytes, for routes whose max_body is 0 */
	size_t discard_max;         /* bytes over the limit read and dropped */
} vx_route_table;

typedef struct vx_route_request {
	const char *method;         /* "GET", "HEAD", "POST", ... */
	const char *path;           /* without the query */
	const char *authorization;  /* the header, or NULL */
	const char *content_length; /* the header, or NULL */
	bool transfer_encoding;     /* a Transfer-Encoding header is present */
} vx_route_request;

typedef struct vx_route_verdict {
	int status;                 /* 0: run routes[route]; else answer this */
	const char *code;           /* "not_found", ... (static) */
	char message[200];
	int route;                  /* the route of the path (and method when
				       status is 0, 400, 401, 413), or -1 */
	bool matched;               /* path and method matched routes[route] */
	char allow[64];             /* 405: the Allow header, else "" */
	bool www_authenticate;      /* 401: answer WWW-Authenticate: Bearer */
	bool close;                 /* answer now, before reading the body */
	size_t max_body;            /* the matched route's limit, bytes */
} vx_route_verdict;

/* True when no key is set, or authorization (len bytes, NULL when absent)
 * is "Bearer <key>" (scheme case ignored). */
bool vx_route_bearer_ok(const char *api_key, const char *authorization,
			size_t len);
/* True when pattern (exact, or a prefix ending in '*') matches path. */
bool vx_route_match(const char *pattern, const char *path);
void vx_route_decide(const vx_route_table *t, const vx_route_request *q,
		     vx_route_verdict *ret);
/* The WebSocket route with exactly this path (len bytes), or NULL. */
const vx_ws_route *vx_route_ws_find(const vx_ws_route *routes, size_t n,
				    const char *path, size_t len);

#endif
