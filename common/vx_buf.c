/* vx_buf.c - growable byte buffer; see vx_buf.h. */
#include "vx_buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void vx_buf_init(vx_buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void vx_buf_release(vx_buf *b)
{
	free(b->data);
	vx_buf_init(b);
}

int vx_buf_reserve(vx_buf *b, size_t extra)
{
	if (extra > (size_t)-1 / 2 - b->len)
		return -ENOMEM;
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	char *p = realloc(b->data, cap);
	if (!p)
		return -ENOMEM;
	if (!b->data)
		p[0] = '\0';
	b->data = p;
	b->cap = cap;
	return 0;
}

int vx_buf_append(vx_buf *b, const void *data, size_t len)
{
	int r = vx_buf_reserve(b, len);
	if (r < 0)
		return r;
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

int vx_buf_puts(vx_buf *b, const char *s)
{
	return vx_buf_append(b, s, strlen(s));
}

int vx_buf_printf(vx_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	int r = vx_buf_reserve(b, (size_t)n);
	if (r < 0)
		return r;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

int vx_buf_json_str(vx_buf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	int r = vx_buf_reserve(b, len + 2);
	if (r < 0)
		return r;
	b->data[b->len++] = '"';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[7];
		size_t n = 0;
		switch (c) {
		case '"': esc[n++] = '\\'; esc[n++] = '"'; break;
		case '\\': esc[n++] = '\\'; esc[n++] = '\\'; break;
		case '\n': esc[n++] = '\\'; esc[n++] = 'n'; break;
		case '\r': esc[n++] = '\\'; esc[n++] = 'r'; break;
		case '\t': esc[n++] = '\\'; esc[n++] = 't'; break;
		default:
			if (c < 0x20) {
				memcpy(esc, "\\u00", 4);
				esc[4] = hex[c >> 4];
				esc[5] = hex[c & 15];
				n = 6;
			} else {
				esc[n++] = (char)c;
			}
		}
		if ((r = vx_buf_reserve(b, n + 1)) < 0)
			return r;
		memcpy(b->data + b->len, esc, n);
		b->len += n;
	}
	b->data[b->len++] = '"';
	b->data[b->len] = '\0';
	return 0;
}

void vx_buf_reset(vx_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

char *vx_buf_detach(vx_buf *b, size_t *ret_len)
{
	char *p = b->data;
	if (ret_len)
		*ret_len = b->len;
	vx_buf_init(b);
	return p;
}
