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
 * Each check also keeps what the instance said (its /healthz status and
 * detail, or the connect error), so the orchestrator's /healthz can report
 * every stage from this cached state without waiting on the network
 * (upstream_stage_json), and every error naming a missing stage can say how
 * to start it (upstream_hint).
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
#define UPSTREAM_MAX_DETAIL 200          /* bytes of an instance's last check */
#define UPSTREAM_MAX_HINT 512            /* bytes of upstream_hint's text */
#define UPSTREAM_MAX_GET_BYTES (1u << 20) /* body of one upstream_get */

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
/* The same, and writes what went wrong to detail (len bytes): the
 * /healthz status and detail ("503 unavailable: upstream: ...") or the
 * connect error; "" on 200. */
int upstream_probe_detail(const char *host, int port, int timeout_ms,
			  char *detail, size_t len);

/* The stage is up: at least one instance healthy whose last check was
 * good (a caller's good verdict does not hide a failing /healthz). */
bool upstream_up(const upstream *u);

/* Appends the stage as the orchestrator's /healthz reports it:
 * {"status":"ok"|"unavailable","url":"http://h:p[,...]","healthy":N,
 *  "instances":N,"detail":"...","hint":"..."} - detail and hint only when
 * the stage is down (hint: upstream_hint). Reads cached state only. */
void upstream_stage_json(const upstream *u, vx_buf *out);

/* Writes one sentence that says which stage is missing and how to start
 * it, e.g. "voxline-llm is not reachable at http://127.0.0.1:3004 (...):
 * start it (`make run` starts the whole stack), or point
 * VOXLINE_ORCHESTRATOR_LLM_URL / --llm-url at a running voxline-llm".
 * A running instance that is not ready (its /healthz 503) gets its own
 * words; for the LLM that is the first-run case (no model, no server) and
 * the hint names `make models` and VOXLINE_LLM_URL. At most about 320
 * bytes, so that it fits an error message with the error before it.
 * Reads cached state. */
void upstream_hint(const upstream *u, char *buf, size_t len);

/* GET path from one instance (a healthy one first; a refused connect is
 * reported and tried once elsewhere), HTTP/1.0 so the body ends at EOF.
 * headers: more header lines, each ending in "\r\n", or NULL.
 * Blocking, at most timeout_ms per try: call it off the serving loops.
 * 0 with the status, body (at most UPSTREAM_MAX_GET_BYTES) and its
 * Content-Type (ctype, ctype_len bytes); negative errno when no instance
 * answered (the stage is down). */
int upstream_get(upstream *u, const char *path, const char *headers,
		 int timeout_ms, int *ret_status,
		 vx_buf *ret_body, char *ctype, size_t ctype_len);

/* Starts a thread that checks every instance of lists[0..n) at once and
 * then every interval_s seconds. The lists must outlive the checker. */
int upstream_checker_start(upstream *const *lists, size_t n, int interval_s,
			   upstream_checker **ret);
/* Stops and joins the thread; NULL is a no-op. */
void upstream_checker_stop(upstream_checker *hc);

#endif
