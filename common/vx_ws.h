/*
 * vx_ws.h - server-side WebSocket connections (libwebsockets).
 *
 * A vx_wsconn is one accepted WebSocket on a vx_ws_route (vx_server.h).
 * libwebsockets is single-threaded, so only its service thread touches the
 * socket: vx_ws_send_* and vx_ws_close may be called from any thread; they
 * queue and wake the service thread. Each connection has a send queue bounded
 * by a byte limit (vx_ws_send_* returns -ENOBUFS past it) and a cancel flag
 * that is set when the peer leaves, for jobs to pass to engines.
 *
 * Deadline: a connection whose first message has not arrived within the
 * server's ws_config_timeout_ms is closed with 1008 (no callback but
 * on_close is called for it).
 *
 * Lifetime: the server holds one reference until on_close has returned;
 * a job that uses the connection after its callback returns takes its own
 * with vx_ws_ref and drops it with vx_ws_unref. Sends after close return
 * -EPIPE and do nothing.
 *
 *     vx_ws_ref(c); submit(job, c);  ...  vx_ws_send_text(c, "{...}", n); vx_ws_unref(c);
 */
#ifndef VX_WS_H
#define VX_WS_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "vx_buf.h"
#include "vx_server.h"

int vx_ws_send_text(vx_wsconn *c, const char *text, size_t len);
int vx_ws_send_binary(vx_wsconn *c, const void *data, size_t len);
#define VX_WS_ERROR_MAX 512   /* bytes of an error message, NUL included */

/* Sends {"event":"error","code":code,"message":...}; the message is cut to
 * VX_WS_ERROR_MAX - 1 bytes. */
int vx_ws_send_error(vx_wsconn *c, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The same with more members after the message: fields is NULL, "" or
 * JSON members with a leading comma, e.g. ",\"id\":7" (vx_json_id_member)
 * or ",\"status\":400"; sent verbatim. */
int vx_ws_send_error_fields(vx_wsconn *c, const char *fields, const char *code,
			    const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Appends the error event those two send, the message formatted from fmt
 * and cut to VX_WS_ERROR_MAX - 1 bytes; fields as above. For layers that
 * send through their own path (vx_svcws.h). */
void vx_ws_error_event_va(vx_buf *out, const char *fields, const char *code,
			  const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));
/* True when a JSON text message holds a NUL: a raw 0 byte or a \u0000
 * escape. cJSON cuts strings there, so handlers refuse such messages
 * rather than act on a silently shortened value. */
bool vx_ws_text_has_nul(const char *text, size_t len);
/* Closes after what is queued has been sent (status 1000, or 1008/1011...). */
void vx_ws_close(vx_wsconn *c, int status, const char *reason);
void vx_ws_ref(vx_wsconn *c);
void vx_ws_unref(vx_wsconn *c);
const atomic_bool *vx_ws_closed(const vx_wsconn *c);
const char *vx_ws_request_id(const vx_wsconn *c);
/* Bytes queued and not yet written. */
size_t vx_ws_queued(vx_wsconn *c);

#endif
