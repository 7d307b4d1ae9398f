/*
 * vx_req.h - one HTTP request: what came in, the answer, and engine jobs.
 *
 * A handler (vx_server.h) runs on a serving loop with the whole body read
 * (up to the route's limit; past it the server has already answered 413).
 * It answers once, with vx_req_reply* / vx_req_error, or hands the work to
 * a pool with vx_req_run and returns: the job then answers, either at once
 * or as a stream (vx_req_stream_begin + vx_req_stream_write), e.g.
 * Server-Sent Events, and the connection waits suspended meanwhile. The
 * loop watches it: when the client hangs up, the deadline passes or the
 * drain ends, the cancel flag (vx_req_cancelled) is set, which jobs pass to
 * engines.
 *
 * Thread-safety: the request belongs to the handler until vx_req_run, then
 * to the job until it returns. Strings returned live as long as the request.
 *
 *     static void job(vx_req *req, void *arg) { vx_req_reply_json(req, 200, "{}"); }
 *     static void handler(vx_req *req, void *user) { vx_req_run(req, pool, job, NULL); }
 */
#ifndef VX_REQ_H
#define VX_REQ_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vx_buf.h"
#include "vx_error.h"
#include "vx_pool.h"
#include "vx_server.h"

const char *vx_req_method(const vx_req *req);
const char *vx_req_path(const vx_req *req);        /* without the query */
const char *vx_req_id(const vx_req *req);          /* X-Request-Id, taken or made */
const char *vx_req_header(const vx_req *req, const char *name);   /* or NULL */
const char *vx_req_query(const vx_req *req, const char *name);    /* or NULL */
/* Content-Type's media type, lower case, without parameters ("" if none). */
const char *vx_req_media_type(const vx_req *req);
const char *vx_req_content_type(const vx_req *req);   /* full header or "" */
/* The body, NUL-terminated (len excludes the NUL). */
const char *vx_req_body(const vx_req *req, size_t *ret_len);
const atomic_bool *vx_req_cancelled(const vx_req *req);
/* Milliseconds since the request arrived. */
double vx_req_elapsed_ms(const vx_req *req);

/* ---- multipart/form-data (parsed on first call) ---- */
typedef struct vx_form_field {
	const char *name;
	const char *filename;       /* NULL for plain fields */
	const char *content_type;   /* NULL when not given */
	const char *data;           /* NUL-terminated */
	size_t len;
} vx_form_field;

/* 0 and the field, -ENOENT when absent, -EBADMSG when the body is not valid
 * multipart/form-data, -EMEDIUMTYPE when the request is not multipart. */
int vx_req_form(vx_req *req, const char *name, const vx_form_field **ret);

/* ---- answers (call exactly one; later calls are ignored) ---- */
void vx_req_add_header(vx_req *req, const char *name, const char *value);
void vx_req_reply(vx_req *req, int status, const char *content_type,
		  const void *data, size_t len);
void vx_req_reply_json(vx_req *req, int status, const char *json);
/* Takes the buffer's storage. */
void vx_req_reply_buf(vx_req *req, int status, const char *content_type,
		      vx_buf *body);
/*
 * Errors, one shape for voxline's clients and OpenAI's:
 * {"error":{"code":code,"message":...,"type":"invalid_request_error"|...,
 * "param":null|"name"}}; type follows the status. 503 adds Retry-After: 1,
 * 5xx are logged with the request id.
 */
void vx_req_error(vx_req *req, int status, const char *code,
		  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The same naming the offending request field. */
void vx_req_error_param(vx_req *req, int status, const char *code,
			const char *param, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* vx_error_json (vx_error.h) writes that error object, e.g. for an SSE
 * event. */

/* ---- jobs and streams ---- */
typedef void (*vx_req_job)(vx_req *req, void *arg);

/* Queues job(req, arg) on pool and returns at once; the answer goes out
 * when the job produces it (a job that ends without answering gets 500, or
 * 504 past the deadline). When the pool is full answers 503 + Retry-After
 * and returns -EAGAIN (arg is then still the caller's). */
int vx_req_run(vx_req *req, vx_pool *pool, vx_req_job job, void *arg);
/* From a job: start a streamed answer (status and headers go out now). */
int vx_req_stream_begin(vx_req *req, int status, const char *content_type);
/* From a job: queue bytes; blocks while more than a limit is unsent.
 * -EPIPE once the client has gone (stop producing). */
int vx_req_stream_write(vx_req *req, const void *data, size_t len);

#endif
