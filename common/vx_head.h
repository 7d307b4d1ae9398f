/*
 * vx_head.h - checking an HTTP/1.x request head before anyone parses it.
 *
 * The serving loop peeks at the bytes of a connection's first request
 * without consuming them and asks vx_head_check what they are: not yet a
 * whole head, a head to hand on (to libmicrohttpd, or to libwebsockets when
 * it is an upgrade), or a request to refuse with a JSON error. The check is
 * strict where lenient parsers disagree with each other (request smuggling,
 * RFC 9112): both Content-Length and Transfer-Encoding, differing
 * Content-Lengths, folded header lines, spaces before a colon, control bytes
 * (NUL) anywhere in the head are refused, as are heads, request lines and
 * first chunk-size lines that are too long. A refusal is decided as soon as
 * the bytes that prove it are in, without waiting for the rest of the head.
 *
 * Pure: no sockets, no clocks, no allocation; safe from any thread.
 *
 *     vx_head h;
 *     int r = vx_head_check(buf, n, &lim, &h);
 *     if (r == VX_HEAD_MORE) wait; else if (r == VX_HEAD_REFUSE) answer h.status;
 */
#ifndef VX_HEAD_H
#define VX_HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct vx_head_limits {
	size_t max_head;            /* request line + headers, bytes (431) */
	size_t max_line;            /* request line, bytes (414) */
	size_t max_headers;         /* header lines (431) */
	uint64_t max_body;          /* largest Content-Length or chunk (413) */
} vx_head_limits;

enum vx_head_verdict {
	VX_HEAD_MORE = 0,           /* incomplete; peek again when more arrives */
	VX_HEAD_OK,                 /* a whole, acceptable head */
	VX_HEAD_REFUSE,             /* answer status/code/message and close */
};

typedef struct vx_head {
	/* VX_HEAD_OK */
	const char *method;         /* points into the buffer */
	size_t method_len;
	const char *path;           /* target up to '?' */
	size_t path_len;
	size_t head_len;            /* bytes up to and including the blank line */
	bool upgrade_websocket;     /* Upgrade: websocket (any Connection) */
	bool chunked;
	bool expect_continue;
	uint64_t content_length;    /* 0 when absent */
	const char *authorization;  /* its value, trimmed; NULL when absent */
	size_t authorization_len;
	/* VX_HEAD_REFUSE */
	int status;
	const char *code;           /* "bad_request", ... */
	const char *message;        /* static text */
} vx_head;

/* Looks at buf[0..len) (need not be NUL-terminated). */
enum vx_head_verdict vx_head_check(const char *buf, size_t len,
				   const vx_head_limits *lim, vx_head *ret);

#endif
