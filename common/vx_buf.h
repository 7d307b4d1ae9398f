/*
 * vx_buf.h - a growable byte buffer (the voxline strbuf).
 *
 * Invariant: data is NUL-terminated whenever data != NULL, len excludes the
 * NUL, cap >= len + 1. A zeroed vx_buf is a valid empty buffer. The caller
 * owns the storage: pair vx_buf_init (or = {0}) with vx_buf_release.
 * Not thread-safe. Appends return 0 or -ENOMEM (the buffer is unchanged).
 *
 *     vx_buf b = {0};
 *     vx_buf_printf(&b, "%d", 42);
 *     use(b.data, b.len); vx_buf_release(&b);
 */
#ifndef VX_BUF_H
#define VX_BUF_H

#include <stddef.h>

typedef struct vx_buf {
	char *data;   /* NUL-terminated bytes, or NULL when never grown */
	size_t len;   /* bytes used, excluding the NUL */
	size_t cap;   /* bytes allocated */
} vx_buf;

void vx_buf_init(vx_buf *b);
void vx_buf_release(vx_buf *b);
/* Makes room for at least extra more bytes (plus the NUL). */
int vx_buf_reserve(vx_buf *b, size_t extra);
int vx_buf_append(vx_buf *b, const void *data, size_t len);
int vx_buf_puts(vx_buf *b, const char *s);
int vx_buf_printf(vx_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal, quotes included. */
int vx_buf_json_str(vx_buf *b, const char *s, size_t len);
void vx_buf_reset(vx_buf *b);
/* Hands the storage to the caller (who frees it) and empties b. */
char *vx_buf_detach(vx_buf *b, size_t *ret_len);

#endif
