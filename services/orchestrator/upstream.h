/*
 * upstream.h - one stage's list of service instances (e.g. every
 * voxline-stt behind --stt-url), with health-checked round-robin choice.
 *
 * A list is parsed from "http://h1:3002,ws://h2:3002,h3:3002" (scheme
 * optional, http:// and ws:// both mean the same host:port; no TLS). Each
 * instance is healthy until a check or a caller says otherwise:
 *   - the checker (one thread for every list) GETs each instance's /healthz
 *     every interval; 200 marks it healthy, anything else (refused, timeout,
 *     503) unhealthy;
 *   - upstream_report(u, i, false) after a failed connect marks it unhealthy
 *     at once, until the next good check.
 * upstream_pick goes round-robin over the healthy instances, skipping the
 * one to avoid (the retry after a failure goes elsewhere); when none is
 * healthy it still returns one (a stale check must not lock callers out),
 * so a caller always gets a URL to try.
 *
 * Threads: every function may be called from any thread (atomics and one
 * mutex per list). upstream_checker_stop joins the checker thread.
 * Ownership: caller owns lists and the checker; free the checker first.
 * Does not log.
 *
 *     upstream *u; upstream_new("stt", "127.0.0.1:3002,127.0.0.1:3012", "/ws/transcribe", &u);
 *     char url[UPSTREAM_MAX_URL]; int i = upstream_pick(u, -1, url, sizeof(url));
 *     ... connect fails: upstream_report(u, i, false); i = upstream_pick(u, i, url, sizeof(url));
 */
#ifndef UPSTREAM_H
#define UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "vx_buf.h"

#define UPSTREAM_MAX_INSTANCES 32        /* per list */
#define UPSTREAM_MAX_URL 300             /* bytes of an instance's ws URL */
#define UPSTREAM_MAX_HOST 255            /* bytes of a host name */
#define UPSTREAM_HEALTH_TIMEOUT_MS 1000  /* connect + answer of one /healthz */

typedef struct upstream upstream;
typedef struct upstream_checker upstream_checker;

/* Parses urls (comma-separated) into a list whose WebSocket URLs end in
 * ws_path. -EINVAL for an empty list or a bad entry, -E2BIG past
 * UPSTREAM_MAX_INSTANCES. Caller frees with upstream_free. */
int upstream_new(const char *name, const char *urls, const char *ws_path,
		 upstream **ret);
void upstream_free(upstream *u);

const char *upstream_name(const upstream *u);
size_t upstream_count(const upstream *u);
/* Healthy instances now. */
size_t upstream_healthy(const upstream *u);

/* Chooses an instance (see above) other than avoid (-1: none) when
 * possible and writes its ws:// URL to ret_url. Returns its index. */
int upstream_pick(upstream *u, int avoid, char *ret_url, size_t len);

/* A caller's verdict on instance i: false marks it unhealthy until the
 * next good health check; true marks it healthy. */
void upstream_report(upstream *u, int i, bool ok);

/* Appends {"name":..,"instances":[{"url":..,"healthy":true},..]}. */
void upstream_status_json(const upstream *u, vx_buf *out);

/* One GET /healthz of host:port within timeout_ms: 0 on HTTP 200,
 * -EHOSTDOWN for another status, -ETIMEDOUT, or the connect error. */
int upstream_probe(const char *host, int port, int timeout_ms);

/* Starts a thread that checks every instance of lists[0..n) at once and
 * then every interval_s seconds. The lists must outlive the checker. */
int upstream_checker_start(upstream *const *lists, size_t n, int interval_s,
			   upstream_checker **ret);
/* Stops and joins the thread; NULL is a no-op. */
void upstream_checker_stop(upstream_checker *hc);

#endif
