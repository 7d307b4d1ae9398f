/*
 * vx_error.h - voxline's JSON error object, one shape for voxline's clients
 * and OpenAI's:
 *
 *     {"error":{"code":"not_found","message":"no route for GET /x",
 *               "type":"not_found_error","param":null}}
 *
 * type follows the status: 401 authentication_error, 404 not_found_error,
 * other 4xx invalid_request_error, 5xx server_error. param names the
 * offending request field, or is null. Pure; safe from any thread.
 *
 *     vx_buf b = {0}; vx_error_json(&b, 404, "not_found", NULL, "no such thing");
 */
#ifndef VX_ERROR_H
#define VX_ERROR_H

#include "vx_buf.h"

/* Appends the error object (no newline) to out. param may be NULL or "". */
void vx_error_json(vx_buf *out, int status, const char *code,
		   const char *param, const char *message);

#endif
