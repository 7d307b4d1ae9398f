/* vx_base64.c - RFC 4648 base64 with padding; see vx_audio.h. */
#include "vx_audio.h"

#include <errno.h>

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int vx_base64_encode(const void *data, size_t len, vx_buf *out)
{
	if ((!data && len) || !out)
		return -EINVAL;
	if (len / 3 >= ((size_t)-1 / 2) / 4)
		return -ENOMEM;
	size_t olen = (len + 2) / 3 * 4;
	int r = vx_buf_reserve(out, olen);
	if (r < 0)
		return r;
	const unsigned char *in = data;
	char *o = out->data + out->len;
	size_t i = 0;
	for (; i + 3 <= len; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
		*o++ = b64_alphabet[v >> 18];
		*o++ = b64_alphabet[(v >> 12) & 63];
		*o++ = b64_alphabet[(v >> 6) & 63];
		*o++ = b64_alphabet[v & 63];
	}
	if (i < len) {
		unsigned v = (unsigned)in[i] << 16;
		if (i + 1 < len)
			v |= (unsigned)in[i + 1] << 8;
		*o++ = b64_alphabet[v >> 18];
		*o++ = b64_alphabet[(v >> 12) & 63];
		*o++ = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
		*o++ = '=';
	}
	out->len += olen;
	out->data[out->len] = '\0';
	return 0;
}

/* The 6-bit value of an alphabet byte, or -1. */
static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

static int b64_is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' ||
	       c == '\v';
}

int vx_base64_decode(const char *text, size_t len, vx_buf *out)
{
	if ((!text && len) || !out)
		return -EINVAL;
	int r = vx_buf_reserve(out, len / 4 * 3 + 3);
	if (r < 0)
		return r;
	unsigned char *o = (unsigned char *)out->data + out->len;
	unsigned quad = 0; /* the pending 6-bit groups, oldest highest */
	int q = 0;         /* groups in quad */
	int pad = 0;       /* '=' seen */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];
		if (b64_is_space(c))
			continue;
		if (c == '=') {
			pad++;
			continue;
		}
		int v = b64_value(c);
		if (v < 0 || pad)
			goto out_restore;
		quad = quad << 6 | (unsigned)v;
		if (++q == 4) {
			*o++ = (unsigned char)(quad >> 16);
			*o++ = (unsigned char)(quad >> 8);
			*o++ = (unsigned char)quad;
			quad = 0;
			q = 0;
		}
	}
	if (q == 0 && pad == 0) {
		/* complete */
	} else if (q == 2 && (pad == 0 || pad == 2)) {
		*o++ = (unsigned char)(quad >> 4);
	} else if (q == 3 && (pad == 0 || pad == 1)) {
		*o++ = (unsigned char)(quad >> 10);
		*o++ = (unsigned char)(quad >> 2);
	} else {
		goto out_restore;
	}
	out->len = (size_t)((char *)o - out->data);
	out->data[out->len] = '\0';
	return 0;

out_restore:
	out->data[out->len] = '\0';
	return -EBADMSG;
}
