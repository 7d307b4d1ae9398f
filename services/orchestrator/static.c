/*
 * static.c - serves the web page's files (see static.h): built-in copies,
 * or the --web-root folder's when it holds the file.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "static.h"
#include "vx_buf.h"

#define STATIC_MAX_BYTES (2u << 20)   /* one file read from --web-root */

static const struct {
	const char *ext;
	const char *type;
} content_types[] = {
	{ ".html", "text/html; charset=utf-8" },
	{ ".js", "text/javascript; charset=utf-8" },
	{ ".css", "text/css; charset=utf-8" },
	{ ".svg", "image/svg+xml" },
	{ ".json", "application/json" },
	{ ".png", "image/png" },
};

static const char *static_content_type(const char *name)
{
	const char *dot = strrchr(name, '.');
	for (size_t i = 0; dot && i < sizeof(content_types) / sizeof(content_types[0]); i++)
		if (!strcmp(dot, content_types[i].ext))
			return content_types[i].type;
	return "application/octet-stream";
}

/* The table's entry for a request path, or NULL. */
static const static_file *static_lookup(const char *path)
{
	const char *name;
	if (!strcmp(path, "/") || !strcmp(path, "/index.html"))
		name = "index.html";
	else if (!strcmp(path, "/favicon.ico"))
		name = "favicon.svg";
	else if (!strncmp(path, "/static/", 8))
		name = path + 8;
	else
		return NULL;
	for (size_t i = 0; i < static_n_files; i++)
		if (!strcmp(static_files[i].name, name))
			return &static_files[i];
	return NULL;
}

/* FNV-1a 64 of a file read from disk, as a quoted ETag. */
static void static_etag(const void *data, size_t len, char *out, size_t out_len)
{
	const unsigned char *p = data;
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	snprintf(out, out_len, "\"d%016llx\"", (unsigned long long)h);
}

/* Reads web_root/name whole into b; 0, or -1 when absent or too big. */
static int static_read_disk(const char *web_root, const char *name, vx_buf *b)
{
	char path[1024];
	if (!web_root || !*web_root ||
	    snprintf(path, sizeof(path), "%s/%s", web_root, name) >= (int)sizeof(path))
		return -1;
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	char chunk[16384];
	size_t n;
	int r = 0;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (b->len + n > STATIC_MAX_BYTES) {
			r = -1;
			break;
		}
		vx_buf_append(b, chunk, n);
	}
	if (ferror(f))
		r = -1;
	fclose(f);
	return r;
}

/* True when If-None-Match lists etag (or is "*"). */
static bool static_not_modified(vx_req *req, const char *etag)
{
	const char *inm = vx_req_header(req, "If-None-Match");
	return inm && (strstr(inm, etag) || !strcmp(inm, "*"));
}

void static_serve(vx_req *req, const char *web_root)
{
	const static_file *f = static_lookup(vx_req_path(req));
	if (!f) {
		vx_req_error(req, 404, "not_found", "no such file");
		return;
	}
	const char *type = static_content_type(f->name);
	vx_buf disk = {0};
	char etag[32];
	bool from_disk = static_read_disk(web_root, f->name, &disk) == 0;
	if (from_disk)
		static_etag(disk.data, disk.len, etag, sizeof(etag));
	else
		snprintf(etag, sizeof(etag), "%s", f->etag);
	vx_req_add_header(req, "ETag", etag);
	vx_req_add_header(req, "Cache-Control", "no-cache");
	vx_req_add_header(req, "X-Content-Type-Options", "nosniff");
	if (static_not_modified(req, etag)) {
		vx_buf_release(&disk);
		vx_req_reply(req, 304, type, "", 0);
		return;
	}
	if (from_disk)
		vx_req_reply_buf(req, 200, type, &disk);
	else
		vx_req_reply(req, 200, type, f->data, f->len);
}
