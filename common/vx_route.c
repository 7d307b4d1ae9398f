/* vx_route.c - the routing decision (vx_route.h). */
#include "vx_route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool vx_route_match(const char *pattern, const char *path)
{
	size_t n = strlen(pattern);
	if (n && pattern[n - 1] == '*')
		return !strncmp(path, pattern, n - 1);
	return !strcmp(path, pattern);
}

bool vx_route_bearer_ok(const char *api_key, const char *authorization,
			size_t len)
{
	if (!api_key || !*api_key)
		return true;
	size_t n = strlen(api_key);
	if (!authorization || len != 7 + n ||
	    strncasecmp(authorization, "Bearer ", 7))
		return false;
	unsigned char diff = 0;     /* the same time for every wrong key */
	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(authorization[7 + i] ^ api_key[i]);
	return diff == 0;
}

static bool method_ok(const char *method, const char *route_method)
{
	return !strcmp(method, route_method) ||
	       (!strcmp(method, "HEAD") && !strcmp(route_method, "GET"));
}

/* Appends m (and HEAD after GET) to the Allow list unless it is there. */
static void allow_add(char *allow, size_t cap, const char *m)
{
	const char *add[2] = { m, !strcmp(m, "GET") ? "HEAD" : NULL };
	for (int k = 0; k < 2 && add[k]; k++) {
		size_t n = strlen(add[k]), len = strlen(allow);
		bool seen = false;
		for (const char *p = allow; (p = strstr(p, add[k])); p += n) {
			if ((p == allow || p[-1] == ' ') &&
			    (p[n] == ',' || p[n] == '\0'))
				seen = true;
		}
		if (!seen && len + n + 3 < cap)
			snprintf(allow + len, cap - len, "%s%s", len ? ", " : "",
				 add[k]);
	}
}

static void refuse(vx_route_verdict *v, int status, const char *code)
{
	v->status = status;
	v->code = code;
}

void vx_route_decide(const vx_route_table *t, const vx_route_request *q,
		     vx_route_verdict *ret)
{
	vx_route_verdict *v = ret;
	memset(v, 0, sizeof(*v));
	v->route = -1;
	for (size_t i = 0; i < t->n_routes; i++) {
		const vx_route *r = &t->routes[i];
		if (!vx_route_match(r->path, q->path))
			continue;
		v->route = (int)i;
		if (method_ok(q->method, r->method)) {
			v->matched = true;
			break;
		}
		allow_add(v->allow, sizeof(v->allow), r->method);
	}
	if (v->route < 0) {
		refuse(v, 404, "not_found");
		snprintf(v->message, sizeof(v->message), "no route for %s %s",
			 q->method, q->path);
		return;
	}
	if (!v->matched) {
		refuse(v, 405, "method_not_allowed");
		snprintf(v->message, sizeof(v->message),
			 "%s is not allowed on %s", q->method, q->path);
		return;
	}
	v->allow[0] = '\0';
	const vx_route *r = &t->routes[v->route];
	const char *h = q->authorization;
	if (!r->open && !vx_route_bearer_ok(t->api_key, h, h ? strlen(h) : 0)) {
		refuse(v, 401, "unauthorized");
		v->www_authenticate = true;
		snprintf(v->message, sizeof(v->message),
			 "missing or wrong bearer key");
		return;
	}
	v->max_body = r->max_body ? r->max_body : t->max_body;
	const char *cl = q->content_length;
	if (cl && q->transfer_encoding) {
		refuse(v, 400, "bad_request");
		v->close = true;
		snprintf(v->message, sizeof(v->message),
			 "both Content-Length and Transfer-Encoding");
		return;
	}
	unsigned long long claimed = cl ? strtoull(cl, NULL, 10) : 0;
	if (claimed > v->max_body) {
		refuse(v, 413, "body_too_large");
		v->close = claimed > v->max_body + t->discard_max;
		snprintf(v->message, sizeof(v->message),
			 "request body of %s bytes is over the limit of %zu",
			 cl, v->max_body);
	}
}

const vx_ws_route *vx_route_ws_find(const vx_ws_route *routes, size_t n,
				    const char *path, size_t len)
{
	for (size_t i = 0; i < n; i++) {
		const char *p = routes[i].path;
		if (strlen(p) == len && !memcmp(p, path, len))
			return &routes[i];
	}
	return NULL;
}
