/* vx_head.c - strict checks of an HTTP/1.x request head; see vx_head.h. */
#include "vx_head.h"

#include <string.h>
#include <strings.h>

#define CHUNK_LINE_MAX 4096         /* chunk size + extensions, bytes */

static bool is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	       (c >= 'A' && c <= 'Z') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static enum vx_head_verdict refuse(vx_head *h, int status, const char *code,
				   const char *message)
{
	h->status = status;
	h->code = code;
	h->message = message;
	return VX_HEAD_REFUSE;
}

/*
 * Finds the end of the line starting at buf[pos]: *ret_end is the index of
 * its LF. Control bytes other than HTAB, and a CR not followed by LF, are
 * refused at once. Returns VX_HEAD_MORE when no LF is in yet.
 */
static enum vx_head_verdict line_end(const char *buf, size_t len, size_t pos,
				     vx_head *h, size_t *ret_end)
{
	for (size_t i = pos; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];
		if (c == '\n') {
			*ret_end = i;
			return VX_HEAD_OK;
		}
		if (c == '\r') {
			if (i + 1 < len && buf[i + 1] != '\n')
				return refuse(h, 400, "bad_request",
					      "bare CR in the request head");
			continue;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return refuse(h, 400, "bad_request",
				      "control character in the request head");
	}
	return VX_HEAD_MORE;
}

/* Length of the line [pos, lf) without its CR. */
static size_t line_len(const char *buf, size_t pos, size_t lf)
{
	return (lf > pos && buf[lf - 1] == '\r') ? lf - pos - 1 : lf - pos;
}

static enum vx_head_verdict request_line(const char *l, size_t n,
					 vx_head *h, bool *ret_http11)
{
	size_t i = 0;
	while (i < n && is_tchar((unsigned char)l[i]))
		i++;
	if (i == 0 || i >= n || l[i] != ' ')
		return refuse(h, 400, "bad_request", "malformed request line");
	h->method = l;
	h->method_len = i;
	size_t t = ++i;
	while (i < n && l[i] != ' ')
		i++;
	if (i == t || i >= n)
		return refuse(h, 400, "bad_request", "malformed request line");
	h->path = l + t;
	h->path_len = 0;
	while (h->path_len < i - t && h->path[h->path_len] != '?')
		h->path_len++;
	const char *v = l + i + 1;
	size_t vn = n - i - 1;
	if (vn == 8 && !memcmp(v, "HTTP/1.1", 8)) {
		*ret_http11 = true;
		return VX_HEAD_OK;
	}
	if (vn == 8 && !memcmp(v, "HTTP/1.0", 8)) {
		*ret_http11 = false;
		return VX_HEAD_OK;
	}
	if (vn == 8 && !memcmp(v, "HTTP/", 5))
		return refuse(h, 505, "http_version_not_supported",
			      "only HTTP/1.0 and HTTP/1.1 are served");
	return refuse(h, 400, "bad_request", "malformed request line");
}

static bool has_token(const char *v, size_t n, const char *tok)
{
	size_t tn = strlen(tok);
	for (size_t i = 0; i + tn <= n; i++) {
		if (!strncasecmp(v + i, tok, tn))
			return true;
	}
	return false;
}

typedef struct head_fields {
	int n_host;
	int n_te;
	bool has_cl;
} head_fields;

/* One header line [name: value]; updates h and f. */
static enum vx_head_verdict header_line(const char *l, size_t n,
					const vx_head_limits *lim, vx_head *h,
					head_fields *f)
{
	if (l[0] == ' ' || l[0] == '\t')
		return refuse(h, 400, "bad_request",
			      "folded header lines are not accepted");
	size_t c = 0;
	while (c < n && is_tchar((unsigned char)l[c]))
		c++;
	if (c == 0 || c >= n || l[c] != ':')
		return refuse(h, 400, "bad_request", "malformed header line");
	const char *v = l + c + 1;
	size_t vn = n - c - 1;
	while (vn && (*v == ' ' || *v == '\t'))
		v++, vn--;
	while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
		vn--;
	if (c == 14 && !strncasecmp(l, "content-length", 14)) {
		uint64_t x = 0;
		if (vn == 0 || vn > 19)
			return vn > 19 ? refuse(h, 413, "body_too_large",
				"Content-Length is over the limit") :
				refuse(h, 400, "bad_request", "empty Content-Length");
		for (size_t i = 0; i < vn; i++) {
			if (v[i] < '0' || v[i] > '9')
				return refuse(h, 400, "bad_request",
					      "Content-Length is not a number");
			x = x * 10 + (uint64_t)(v[i] - '0');
		}
		if (f->has_cl && x != h->content_length)
			return refuse(h, 400, "bad_request",
				      "conflicting Content-Length headers");
		f->has_cl = true;
		h->content_length = x;
		if (x > lim->max_body)
			return refuse(h, 413, "body_too_large",
				      "Content-Length is over the limit");
	} else if (c == 17 && !strncasecmp(l, "transfer-encoding", 17)) {
		if (++f->n_te > 1)
			return refuse(h, 400, "bad_request",
				      "more than one Transfer-Encoding header");
		if (vn != 7 || strncasecmp(v, "chunked", 7))
			return refuse(h, 501, "not_implemented",
				      "only Transfer-Encoding: chunked is accepted");
		h->chunked = true;
	} else if (c == 4 && !strncasecmp(l, "host", 4)) {
		f->n_host++;
	} else if (c == 7 && !strncasecmp(l, "upgrade", 7)) {
		h->upgrade_websocket = has_token(v, vn, "websocket");
	} else if (c == 13 && !strncasecmp(l, "authorization", 13)) {
		h->authorization = v;
		h->authorization_len = vn;
	} else if (c == 6 && !strncasecmp(l, "expect", 6)) {
		h->expect_continue = vn == 12 && !strncasecmp(v, "100-continue", 12);
	}
	return VX_HEAD_OK;
}

/* The first chunk-size line of a chunked body, when it is in. */
static enum vx_head_verdict first_chunk(const char *buf, size_t len,
					size_t pos, const vx_head_limits *lim,
					vx_head *h)
{
	size_t i = pos, digits = 0;
	uint64_t x = 0;
	while (i < len && buf[i] == '0')
		i++;
	size_t zeros = i - pos;
	for (; i < len && hexval((unsigned char)buf[i]) >= 0; i++) {
		if (++digits > 16)
			return refuse(h, 413, "body_too_large",
				      "chunk size is over the limit");
		x = (x << 4) | (uint64_t)hexval((unsigned char)buf[i]);
	}
	if (i == len)
		return i - pos > CHUNK_LINE_MAX ? refuse(h, 400, "bad_request",
			"chunk-size line too long") : VX_HEAD_MORE;
	if (!digits && !zeros)
		return refuse(h, 400, "bad_request", "malformed chunk size");
	if (x > lim->max_body)
		return refuse(h, 413, "body_too_large",
			      "chunk size is over the limit");
	if (buf[i] != ';' && buf[i] != '\r' && buf[i] != '\n' &&
	    buf[i] != ' ' && buf[i] != '\t')
		return refuse(h, 400, "bad_request", "malformed chunk size");
	const char *lf = memchr(buf + i, '\n', len - i);
	size_t upto = lf ? (size_t)(lf - buf) : len;
	for (size_t k = i; k < upto; k++) {
		unsigned char c = (unsigned char)buf[k];
		if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f)
			return refuse(h, 400, "bad_request",
				      "control character in a chunk extension");
	}
	if (upto - pos > CHUNK_LINE_MAX)
		return refuse(h, 400, "bad_request",
			      "chunk extension too long");
	return lf ? VX_HEAD_OK : VX_HEAD_MORE;
}

enum vx_head_verdict vx_head_check(const char *buf, size_t len,
				   const vx_head_limits *lim, vx_head *ret)
{
	vx_head h = { 0 };
	size_t start = 0, lf;
	enum vx_head_verdict r;
	while (start < len && start < 16 &&
	       (buf[start] == '\r' || buf[start] == '\n'))
		start++;   /* empty lines before a request are ignored */

	if ((r = line_end(buf, len, start, &h, &lf)) != VX_HEAD_OK) {
		if (r == VX_HEAD_MORE && len - start > lim->max_line)
			r = refuse(&h, 414, "uri_too_long",
				   "request line is over the limit");
		goto out;
	}
	if (lf - start > lim->max_line) {
		r = refuse(&h, 414, "uri_too_long",
			   "request line is over the limit");
		goto out;
	}
	bool http11 = false;
	r = request_line(buf + start, line_len(buf, start, lf), &h, &http11);
	if (r != VX_HEAD_OK)
		goto out;

	head_fields f = { 0 };
	size_t pos = lf + 1, n_headers = 0;
	for (;;) {
		r = line_end(buf, len, pos, &h, &lf);
		if (r == VX_HEAD_MORE && len - start > lim->max_head)
			r = refuse(&h, 431, "headers_too_large",
				   "request head is over the limit");
		if (r != VX_HEAD_OK)
			goto out;
		if (lf + 1 - start > lim->max_head) {
			r = refuse(&h, 431, "headers_too_large",
				   "request head is over the limit");
			goto out;
		}
		size_t n = line_len(buf, pos, lf);
		if (n == 0)
			break;
		if (++n_headers > lim->max_headers) {
			r = refuse(&h, 431, "headers_too_large",
				   "too many header lines");
			goto out;
		}
		if ((r = header_line(buf + pos, n, lim, &h, &f)) != VX_HEAD_OK)
			goto out;
		pos = lf + 1;
	}
	h.head_len = lf + 1;

	if (h.chunked && f.has_cl)
		r = refuse(&h, 400, "bad_request",
			   "both Content-Length and Transfer-Encoding");
	else if (h.chunked && !http11)
		r = refuse(&h, 400, "bad_request",
			   "Transfer-Encoding in an HTTP/1.0 request");
	else if (http11 && f.n_host != 1)
		r = refuse(&h, 400, "bad_request", f.n_host ?
			   "more than one Host header" : "no Host header");
	else if (h.chunked && !h.expect_continue)
		r = first_chunk(buf, len, h.head_len, lim, &h);
	else
		r = VX_HEAD_OK;
out:
	*ret = h;
	return r;
}
