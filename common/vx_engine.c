/*
 * vx_engine.c - finding an engine by name or alias in a kind's table, and
 * the message for a name no engine has. See vx_engine.h.
 */
#include "vx_engine.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* 1 when the space-separated words has w (case ignored). */
static int words_have(const char *words, const char *w)
{
	size_t n = strlen(w);

	while (words && *words) {
		size_t len = strcspn(words, " ");

		if (len == n && !strncasecmp(words, w, n))
			return 1;
		words += len;
		words += strspn(words, " ");
	}
	return 0;
}

int vx_engine_is(const vx_engine *e, const char *name)
{
	if (!e || !name || !*name)
		return 0;
	return !strcasecmp(e->name, name) || words_have(e->aliases, name);
}

int vx_engine_find(vx_engine_at at, const char *name, const vx_engine **ret)
{
	const vx_engine *e;

	if (!name || !*name) {
		if (!(e = at(0)))
			return -ENOENT;
		*ret = e;
		return 0;
	}
	for (size_t i = 0; (e = at(i)); i++) {
		if (vx_engine_is(e, name)) {
			*ret = e;
			return 0;
		}
	}
	return -ENOENT;
}

/* Appends to buf[*len..size) like snprintf, never past size. */
__attribute__((format(printf, 4, 5)))
static void append(char *buf, size_t size, size_t *len, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*len >= size)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *len, size - *len, fmt, ap);
	va_end(ap);
	if (n > 0)
		*len += (size_t)n < size - *len ? (size_t)n : size - *len - 1;
}

const char *vx_engine_unknown(vx_engine_at at, const char *name, char *buf,
			      size_t size)
{
	const vx_engine *e;
	size_t len = 0;

	if (!size)
		return buf;
	buf[0] = '\0';
	append(buf, size, &len, "unknown engine '%.64s'; known:", name ? name : "");
	for (size_t i = 0; (e = at(i)); i++) {
		append(buf, size, &len, "%s %s", i ? "," : "", e->name);
		if (e->aliases && *e->aliases)
			append(buf, size, &len, " (or %s)", e->aliases);
	}
	return buf;
}
