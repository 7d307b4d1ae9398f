/*
 * jinja_lib.c - the builtins of jinja.h: global functions, string and
 * dict methods, filters and tests. Strings keep their markup bits.
 */
#include "jinja_impl.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	M_STARTSWITH = FN_METHOD_BASE, M_ENDSWITH, M_STRIP, M_LSTRIP, M_RSTRIP, M_SPLIT,
	M_REPLACE, M_UPPER, M_LOWER, M_TITLE, M_CAPITALIZE, M_ITEMS, M_KEYS, M_VALUES, M_GET,
};

static const struct { const char *name; int id; bool dict; } methods[] = {
	{ "startswith", M_STARTSWITH, false }, { "endswith", M_ENDSWITH, false },
	{ "strip", M_STRIP, false }, { "lstrip", M_LSTRIP, false }, { "rstrip", M_RSTRIP, false },
	{ "split", M_SPLIT, false }, { "replace", M_REPLACE, false }, { "upper", M_UPPER, false },
	{ "lower", M_LOWER, false }, { "title", M_TITLE, false }, { "capitalize", M_CAPITALIZE, false },
	{ "items", M_ITEMS, true }, { "keys", M_KEYS, true }, { "values", M_VALUES, true },
	{ "get", M_GET, true },
};

int jlib_global_fn(const char *name)
{
	if (!strcmp(name, "raise_exception"))
		return FN_RAISE;
	if (!strcmp(name, "namespace"))
		return FN_NAMESPACE;
	if (!strcmp(name, "range"))
		return FN_RANGE;
	if (!strcmp(name, "strftime_now"))
		return FN_STRFTIME;
	if (!strcmp(name, "dict"))
		return FN_DICT;
	return 0;
}

int jlib_method(const jv *self, const char *name)
{
	if (self->t != JV_STR && (self->t != JV_DICT || self->ns))
		return 0;
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (methods[i].dict == (self->t == JV_DICT) && !strcmp(methods[i].name, name))
			return methods[i].id;
	return 0;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static jv *substr(jinja_run *r, const jv *s, size_t off, size_t n)
{
	return jv_str_masked(r, s->u.str.s + off, s->u.str.m ? s->u.str.m + off : NULL, n);
}

static int want_str(jinja_run *r, const char *what, const jv *v)
{
	if (v->t == JV_STR)
		return 0;
	return jerr(r, -EINVAL, "%s needs a string, got %s", what, jv_type_name(v));
}

/* Python's str.strip/lstrip/rstrip (chars NULL: whitespace). */
static jv *strip(jinja_run *r, const jv *s, const jv *chars, bool left, bool right)
{
	size_t a = 0, b = s->u.str.n;
	const char *p = s->u.str.s;
#define STRIPPED(c) (chars ? memchr(chars->u.str.s, (c), chars->u.str.n) != NULL : is_space(c))
	while (left && a < b && STRIPPED(p[a]))
		a++;
	while (right && b > a && STRIPPED(p[b - 1]))
		b--;
#undef STRIPPED
	return substr(r, s, a, b - a);
}

static jv *mapcase(jinja_run *r, const jv *s, int mode)   /* 0 lower 1 upper 2 title 3 capitalize */
{
	jv *v = substr(r, s, 0, s->u.str.n);
	if (!v)
		return NULL;
	char *d = (char *)v->u.str.s;
	bool prev_alpha = false;
	for (size_t i = 0; i < v->u.str.n; i++) {
		char c = d[i];
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
		bool up = mode == 1 || (mode == 2 && !prev_alpha) || (mode == 3 && i == 0);
		if (up && c >= 'a' && c <= 'z')
			d[i] = (char)(c - 32);
		else if (!up && c >= 'A' && c <= 'Z')
			d[i] = (char)(c + 32);
		prev_alpha = mode == 2 ? alpha || (unsigned char)c >= 0x80 : alpha;
	}
	return v;
}

static int split(jinja_run *r, const jv *s, const jv *sep, int64_t maxsplit, jv **ret)
{
	jv *l = jinja_list(r), *piece;
	if (!l)
		return -ENOMEM;
	const char *p = s->u.str.s;
	size_t n = s->u.str.n, i = 0;
	int64_t done = 0;
	if (!sep) {
		for (;;) {
			while (i < n && is_space(p[i]))
				i++;
			if (i >= n)
				break;
			size_t j = i;
			if (maxsplit >= 0 && done >= maxsplit) {
				j = n;
				while (j > i && is_space(p[j - 1]))
					j--;
			} else {
				while (j < n && !is_space(p[j]))
					j++;
			}
			if (!(piece = substr(r, s, i, j - i)) || jinja_list_push(r, l, piece) < 0)
				return -ENOMEM;
			done++;
			i = j;
		}
	} else {
		if (!sep->u.str.n)
			return jerr(r, -EINVAL, "split: empty separator");
		for (;;) {
			const char *hit = maxsplit >= 0 && done >= maxsplit ? NULL :
					  memmem(p + i, n - i, sep->u.str.s, sep->u.str.n);
			size_t j = hit ? (size_t)(hit - p) : n;
			if (!(piece = substr(r, s, i, j - i)) || jinja_list_push(r, l, piece) < 0)
				return -ENOMEM;
			done++;
			if (!hit)
				break;
			i = j + sep->u.str.n;
		}
	}
	*ret = l;
	return 0;
}

static int replace(jinja_run *r, const jv *s, const jv *old, const jv *rep, int64_t count, jv **ret)
{
	jsb b = { .all_markup = true };
	const char *p = s->u.str.s;
	size_t n = s->u.str.n, i = 0;
	int64_t done = 0;
	int rc = 0;
	if (!old->u.str.n) {   /* Python inserts rep between every character */
		for (i = 0; i <= n && rc == 0; i++) {
			if (count < 0 || done++ < count)
				rc = jsb_value(r, &b, rep);
			if (rc == 0 && i < n)
				rc = jsb_put(r, &b, p + i, s->u.str.m ? s->u.str.m + i : NULL, 1);
		}
	} else {
		while (rc == 0) {
			const char *hit = count >= 0 && done >= count ? NULL :
					  memmem(p + i, n - i, old->u.str.s, old->u.str.n);
			size_t j = hit ? (size_t)(hit - p) : n;
			rc = jsb_put(r, &b, p + i, s->u.str.m ? s->u.str.m + i : NULL, j - i);
			if (!hit)
				break;
			rc = rc ?: jsb_value(r, &b, rep);
			done++;
			i = j + old->u.str.n;
		}
	}
	if (rc < 0)
		return rc;
	*ret = jsb_done(r, &b);
	return *ret ? 0 : -ENOMEM;
}

static int dict_pairs(jinja_run *r, const jv *d, int what, jv **ret)   /* 0 items 1 keys 2 values */
{
	jv *l = jinja_list(r);
	if (!l)
		return -ENOMEM;
	for (size_t i = 0; i < d->u.dict.n; i++) {
		jv *x = what == 1 ? d->u.dict.k[i] : d->u.dict.v[i];
		if (what == 0) {
			if (!(x = jinja_list(r)) || jinja_list_push(r, x, d->u.dict.k[i]) < 0 ||
			    jinja_list_push(r, x, d->u.dict.v[i]) < 0)
				return -ENOMEM;
		}
		if (jinja_list_push(r, l, x) < 0)
			return -ENOMEM;
	}
	*ret = l;
	return 0;
}

static jv *kwarg(const char **names, jv **vals, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(names[i], name))
			return vals[i];
	return NULL;
}

static jv *arg_or_kw(jv **args, size_t n_args, size_t pos, const char **kw_names, jv **kw_vals,
		     size_t n_kw, const char *name)
{
	jv *v = kwarg(kw_names, kw_vals, n_kw, name);
	return v ? v : pos < n_args ? args[pos] : NULL;
}

static int method_call(jinja_run *r, int id, jv *self, jv **args, size_t n_args, jv **ret)
{
	if (self->t == JV_DICT) {
		if (id == M_GET) {
			if (n_args < 1 || args[0]->t != JV_STR)
				return jerr(r, -EINVAL, "get() needs a string key");
			jv *v = jv_dict_get(self, args[0]->u.str.s, args[0]->u.str.n);
			*ret = v ? v : n_args > 1 ? args[1] : jinja_none(r);
			return *ret ? 0 : -ENOMEM;
		}
		return dict_pairs(r, self, id == M_ITEMS ? 0 : id == M_KEYS ? 1 : 2, ret);
	}
	for (size_t i = 0; i < n_args; i++)
		if (args[i]->t != JV_STR && args[i]->t != JV_NONE && args[i]->t != JV_INT)
			return jerr(r, -EINVAL, "string method: bad argument %zu (%s)", i + 1,
				    jv_type_name(args[i]));
	jv *a0 = n_args > 0 && args[0]->t == JV_STR ? args[0] : NULL;
	switch (id) {
	case M_STARTSWITH: case M_ENDSWITH: {
		if (!a0)
			return jerr(r, -EINVAL, "startswith/endswith need a string");
		size_t n = self->u.str.n, k = a0->u.str.n;
		bool t = k <= n && !memcmp(self->u.str.s + (id == M_STARTSWITH ? 0 : n - k), a0->u.str.s, k);
		*ret = jinja_bool(r, t);
		break;
	}
	case M_STRIP: *ret = strip(r, self, a0, true, true); break;
	case M_LSTRIP: *ret = strip(r, self, a0, true, false); break;
	case M_RSTRIP: *ret = strip(r, self, a0, false, true); break;
	case M_SPLIT: {
		jv *mx = n_args > 1 ? args[1] : NULL;
		return split(r, self, a0, mx && mx->t == JV_INT ? mx->u.i : -1, ret);
	}
	case M_REPLACE:
		if (n_args < 2 || args[0]->t != JV_STR || args[1]->t != JV_STR)
			return jerr(r, -EINVAL, "replace() needs two strings");
		return replace(r, self, args[0], args[1],
			       n_args > 2 && args[2]->t == JV_INT ? args[2]->u.i : -1, ret);
	case M_LOWER: *ret = mapcase(r, self, 0); break;
	case M_UPPER: *ret = mapcase(r, self, 1); break;
	case M_TITLE: *ret = mapcase(r, self, 2); break;
	case M_CAPITALIZE: *ret = mapcase(r, self, 3); break;
	default: return jerr(r, -EINVAL, "unknown method");
	}
	return *ret ? 0 : -ENOMEM;
}

int jlib_call(jinja_run *r, int id, jv *self, jv **args, size_t n_args,
	      const char **kw_names, jv **kw_vals, size_t n_kw, jv **ret)
{
	if (self)
		return method_call(r, id, self, args, n_args, ret);
	switch (id) {
	case FN_RAISE: {
		jv *m = n_args ? jv_to_str(r, args[0]) : NULL;
		return jerr(r, -EPERM, "%.*s", m ? (int)m->u.str.n : 26,
			    m ? m->u.str.s : "template raised an exception");
	}
	case FN_NAMESPACE: case FN_DICT: {
		jv *d = jinja_dict(r);
		if (!d)
			return -ENOMEM;
		d->ns = id == FN_NAMESPACE;
		for (size_t i = 0; i < n_kw; i++)
			if (jinja_dict_set(r, d, kw_names[i], kw_vals[i]) < 0)
				return -ENOMEM;
		*ret = d;
		return 0;
	}
	case FN_RANGE: {
		int64_t a = 0, b, step = 1;
		for (size_t i = 0; i < n_args; i++)
			if (args[i]->t != JV_INT)
				return jerr(r, -EINVAL, "range() needs integers");
		if (n_args == 1) {
			b = args[0]->u.i;
		} else if (n_args == 2 || n_args == 3) {
			a = args[0]->u.i;
			b = args[1]->u.i;
			step = n_args == 3 ? args[2]->u.i : 1;
		} else {
			return jerr(r, -EINVAL, "range() takes 1 to 3 arguments");
		}
		if (!step)
			return jerr(r, -EINVAL, "range() step is zero");
		jv *l = jinja_list(r);
		if (!l)
			return -ENOMEM;
		for (int64_t i = a; step > 0 ? i < b : i > b; i += step) {
			if (++r->steps > r->lim.max_steps)
				return jerr(r, -ELOOP, "range() over %ld items", r->lim.max_steps);
			jv *x = jinja_int(r, i);
			if (!x || jinja_list_push(r, l, x) < 0)
				return -ENOMEM;
		}
		*ret = l;
		return 0;
	}
	case FN_STRFTIME: {
		if (n_args < 1 || args[0]->t != JV_STR || args[0]->u.str.n > 200)
			return jerr(r, -EINVAL, "strftime_now() needs a format string");
		char fmt[256], buf[512];
		memcpy(fmt, args[0]->u.str.s, args[0]->u.str.n);
		fmt[args[0]->u.str.n] = 0;
		time_t now = r->now ? r->now : time(NULL);
		struct tm tm;
		localtime_r(&now, &tm);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
		size_t n = strftime(buf, sizeof(buf), fmt, &tm);   /* the template's own format */
#pragma GCC diagnostic pop
		*ret = jv_str_masked(r, buf, NULL, n);
		return *ret ? 0 : -ENOMEM;
	}
	default:
		return jerr(r, -EINVAL, "unknown function");
	}
}

/* ---- tests ---- */

static int64_t utf8_len(const jv *s)
{
	int64_t n = 0;
	for (size_t i = 0; i < s->u.str.n; i++)
		n += ((unsigned char)s->u.str.s[i] & 0xc0) != 0x80;
	return n;
}

int jlib_test(jinja_run *r, const char *name, jv *v, jv **args, size_t n_args, bool *ret)
{
	jv_type t = v->t;
	if (!strcmp(name, "defined"))
		*ret = t != JV_UNDEF;
	else if (!strcmp(name, "undefined"))
		*ret = t == JV_UNDEF;
	else if (!strcmp(name, "none"))
		*ret = t == JV_NONE;
	else if (!strcmp(name, "string"))
		*ret = t == JV_STR;
	else if (!strcmp(name, "mapping"))
		*ret = t == JV_DICT;
	else if (!strcmp(name, "iterable"))
		*ret = t == JV_STR || t == JV_LIST || t == JV_DICT;
	else if (!strcmp(name, "sequence"))
		*ret = t == JV_STR || t == JV_LIST || t == JV_DICT;
	else if (!strcmp(name, "number"))
		*ret = t == JV_INT || t == JV_FLOAT;
	else if (!strcmp(name, "integer"))
		*ret = t == JV_INT;
	else if (!strcmp(name, "float"))
		*ret = t == JV_FLOAT;
	else if (!strcmp(name, "boolean"))
		*ret = t == JV_BOOL;
	else if (!strcmp(name, "true"))
		*ret = t == JV_BOOL && v->u.b;
	else if (!strcmp(name, "false"))
		*ret = t == JV_BOOL && !v->u.b;
	else if (!strcmp(name, "callable"))
		*ret = t == JV_FUNC || t == JV_MACRO;
	else if (!strcmp(name, "lower") || !strcmp(name, "upper")) {
		if (t != JV_STR)
			return want_str(r, name, v);
		bool up = name[0] == 'u', ok = true;
		for (size_t i = 0; i < v->u.str.n; i++) {
			char c = v->u.str.s[i];
			if (up ? (c >= 'a' && c <= 'z') : (c >= 'A' && c <= 'Z'))
				ok = false;
		}
		*ret = ok;
	} else if (!strcmp(name, "odd") || !strcmp(name, "even")) {
		if (t != JV_INT)
			return jerr(r, -EINVAL, "%s needs an integer", name);
		*ret = (v->u.i % 2 != 0) == (name[0] == 'o');
	} else if (!strcmp(name, "divisibleby")) {
		if (t != JV_INT || n_args != 1 || args[0]->t != JV_INT || !args[0]->u.i)
			return jerr(r, -EINVAL, "divisibleby needs integers");
		*ret = v->u.i % args[0]->u.i == 0;
	} else if (!strcmp(name, "equalto") || !strcmp(name, "eq") || !strcmp(name, "==") ||
		   !strcmp(name, "sameas") || !strcmp(name, "ne")) {
		if (n_args != 1)
			return jerr(r, -EINVAL, "%s needs one argument", name);
		*ret = jv_equal(v, args[0]) != !strcmp(name, "ne");
		if (!strcmp(name, "sameas"))
			*ret = *ret && v->t == args[0]->t;
	} else if (!strcmp(name, "in")) {
		if (n_args != 1)
			return jerr(r, -EINVAL, "in needs one argument");
		jv *c = args[0];
		bool in = false;
		if (c->t == JV_LIST)
			for (size_t i = 0; i < c->u.list.n && !in; i++)
				in = jv_equal(v, c->u.list.v[i]);
		else if (c->t == JV_DICT && t == JV_STR)
			in = jv_dict_get(c, v->u.str.s, v->u.str.n) != NULL;
		else if (c->t == JV_STR && t == JV_STR)
			in = memmem(c->u.str.s, c->u.str.n, v->u.str.s, v->u.str.n) != NULL || !v->u.str.n;
		*ret = in;
	} else {
		return jerr(r, -EINVAL, "unknown test '%s'", name);
	}
	return 0;
}

/* ---- filters ---- */

static jv *attr_of(const jv *v, const jv *attr)
{
	if (!attr || attr->t != JV_STR)
		return NULL;
	/* "a.b" walks nested dicts, as Jinja2's attribute argument does */
	const char *p = attr->u.str.s, *end = p + attr->u.str.n;
	const jv *cur = v;
	while (cur && p <= end) {
		const char *dot = memchr(p, '.', (size_t)(end - p));
		size_t n = dot ? (size_t)(dot - p) : (size_t)(end - p);
		cur = jv_dict_get(cur, p, n);
		if (!dot)
			break;
		p = dot + 1;
	}
	return (jv *)cur;
}

/* select/reject/selectattr/rejectattr over a list. */
static int select_items(jinja_run *r, jv *v, bool attr, bool keep, jv **args, size_t n_args, jv **ret)
{
	if (v->t == JV_UNDEF) {
		*ret = jinja_list(r);
		return *ret ? 0 : -ENOMEM;
	}
	if (v->t != JV_LIST)
		return jerr(r, -EINVAL, "select filters need a list, got %s", jv_type_name(v));
	size_t skip = attr ? 1 : 0;
	if (attr && (n_args < 1 || args[0]->t != JV_STR))
		return jerr(r, -EINVAL, "selectattr/rejectattr need an attribute name");
	const char *test = n_args > skip && args[skip]->t == JV_STR ? args[skip]->u.str.s : NULL;
	char tname[32];
	if (test) {
		snprintf(tname, sizeof(tname), "%.*s", (int)args[skip]->u.str.n, test);
		test = tname;
	}
	jv *l = jinja_list(r);
	if (!l)
		return -ENOMEM;
	for (size_t i = 0; i < v->u.list.n; i++) {
		jv *x = v->u.list.v[i];
		if (attr) {
			x = attr_of(x, args[0]);
			if (!x)
				x = jv_undef();
		}
		bool t;
		if (test) {
			int rc = jlib_test(r, test, x, args + skip + 1, n_args - skip - 1, &t);
			if (rc < 0)
				return rc;
		} else {
			t = jv_truthy(x);
		}
		if (t == keep && jinja_list_push(r, l, v->u.list.v[i]) < 0)
			return -ENOMEM;
	}
	*ret = l;
	return 0;
}

static int to_list(jinja_run *r, jv *v, jv **ret)
{
	if (v->t == JV_LIST) {
		*ret = v;
		return 0;
	}
	jv *l = jinja_list(r);
	if (!l)
		return -ENOMEM;
	if (v->t == JV_DICT) {
		for (size_t i = 0; i < v->u.dict.n; i++)
			if (jinja_list_push(r, l, v->u.dict.k[i]) < 0)
				return -ENOMEM;
	} else if (v->t == JV_STR) {
		for (size_t i = 0; i < v->u.str.n; i++) {
			jv *c = substr(r, v, i, 1);
			if (!c || jinja_list_push(r, l, c) < 0)
				return -ENOMEM;
		}
	} else if (v->t != JV_UNDEF) {
		return jerr(r, -EINVAL, "cannot make a list of a %s", jv_type_name(v));
	}
	*ret = l;
	return 0;
}

int jlib_filter(jinja_run *r, const char *name, jv *v, jv **args, size_t n_args,
		const char **kw_names, jv **kw_vals, size_t n_kw, jv **ret)
{
	int rc;
	jv *a0 = n_args > 0 ? args[0] : NULL;
	if (!strcmp(name, "default") || !strcmp(name, "d")) {
		jv *boolean = arg_or_kw(args, n_args, 1, kw_names, kw_vals, n_kw, "boolean");
		bool use = v->t == JV_UNDEF || (boolean && jv_truthy(boolean) && !jv_truthy(v));
		jv *dflt = arg_or_kw(args, n_args, 0, kw_names, kw_vals, n_kw, "default_value");
		*ret = !use ? v : dflt ? dflt : jv_str_masked(r, "", NULL, 0);
		return *ret ? 0 : -ENOMEM;
	}
	if (!strcmp(name, "safe")) {
		*ret = v;
		return 0;
	}
	if (!strcmp(name, "string")) {
		*ret = jv_to_str(r, v);
		return *ret ? 0 : -ENOMEM;
	}
	if (!strcmp(name, "tojson")) {
		jv *ind = arg_or_kw(args, n_args, 0, kw_names, kw_vals, n_kw, "indent");
		int indent = ind && ind->t == JV_INT ? (int)(ind->u.i > 16 ? 16 : ind->u.i) : 0;
		jsb b = { .all_markup = true };
		if ((rc = jv_to_json(r, &b, v, indent, 0)) < 0)
			return rc;
		*ret = jsb_done(r, &b);
		return *ret ? 0 : -ENOMEM;
	}
	if (!strcmp(name, "length") || !strcmp(name, "count")) {
		int64_t n = v->t == JV_STR ? utf8_len(v) : v->t == JV_LIST ? (int64_t)v->u.list.n :
			    v->t == JV_DICT ? (int64_t)v->u.dict.n : v->t == JV_UNDEF ? 0 : -1;
		if (n < 0)
			return jerr(r, -EINVAL, "length of a %s", jv_type_name(v));
		*ret = jinja_int(r, n);
		return *ret ? 0 : -ENOMEM;
	}
	if (!strcmp(name, "trim") || !strcmp(name, "upper") || !strcmp(name, "lower") ||
	    !strcmp(name, "capitalize") || !strcmp(name, "title")) {
		jv *s = jv_to_str(r, v);
		if (!s)
			return -ENOMEM;
		if (name[0] == 't' && name[1] == 'r')
			*ret = strip(r, s, a0 && a0->t == JV_STR ? a0 : NULL, true, true);
		else
			*ret = mapcase(r, s, name[0] == 'l' ? 0 : name[0] == 'u' ? 1 : name[1] == 'i' ? 2 : 3);
		return *ret ? 0 : -ENOMEM;
	}
	if (!strcmp(name, "replace")) {
		jv *s = jv_to_str(r, v);
		if (!s)
			return -ENOMEM;
		if (n_args < 2 || args[0]->t != JV_STR || args[1]->t != JV_STR)
			return jerr(r, -EINVAL, "replace needs two strings");
		return replace(r, s, args[0], args[1], n_args > 2 && args[2]->t == JV_INT ? args[2]->u.i : -1,
			       ret);
	}
	if (!strcmp(name, "join")) {
		jv *list, *attr = kwarg(kw_names, kw_vals, n_kw, "attribute");
		if ((rc = to_list(r, v, &list)) < 0)
			return rc;
		jsb b = { .all_markup = true };
		for (size_t i = 0; i < list->u.list.n; i++) {
			jv *x = list->u.list.v[i];
			if (attr && !(x = attr_of(x, attr)))
				x = jv_undef();
			if ((i && a0 && (rc = jsb_value(r, &b, a0)) < 0) || (rc = jsb_value(r, &b, x)) < 0)
				return rc;
		}
		*ret = jsb_done(r, &b);
		return *ret ? 0 : -ENOMEM;
	}
	if (!strcmp(name, "first") || !strcmp(name, "last")) {
		bool first = name[0] == 'f';
		if (v->t == JV_STR) {
			*ret = v->u.str.n ? substr(r, v, first ? 0 : v->u.str.n - 1, 1) : jv_undef();
			return *ret ? 0 : -ENOMEM;
		}
		if (v->t != JV_LIST)
			return jerr(r, -EINVAL, "%s of a %s", name, jv_type_name(v));
		*ret = !v->u.list.n ? jv_undef() : v->u.list.v[first ? 0 : v->u.list.n - 1];
		return 0;
	}
	if (!strcmp(name, "items") || !strcmp(name, "dictitems")) {
		if (v->t == JV_UNDEF) {
			*ret = jinja_list(r);
			return *ret ? 0 : -ENOMEM;
		}
		if (v->t != JV_DICT)
			return jerr(r, -EINVAL, "items of a %s", jv_type_name(v));
		return dict_pairs(r, v, 0, ret);
	}
	if (!strcmp(name, "list"))
		return to_list(r, v, ret);
	if (!strcmp(name, "reverse")) {
		jv *list;
		if (v->t == JV_STR) {
			jsb b = { .all_markup = true };
			for (size_t i = v->u.str.n; i > 0; i--)
				if (jsb_put(r, &b, v->u.str.s + i - 1, v->u.str.m ? v->u.str.m + i - 1 : NULL, 1) < 0)
					return -ENOMEM;
			*ret = jsb_done(r, &b);
			return *ret ? 0 : -ENOMEM;
		}
		if ((rc = to_list(r, v, &list)) < 0)
			return rc;
		jv *l = jinja_list(r);
		if (!l)
			return -ENOMEM;
		for (size_t i = list->u.list.n; i > 0; i--)
			if (jinja_list_push(r, l, list->u.list.v[i - 1]) < 0)
				return -ENOMEM;
		*ret = l;
		return 0;
	}
	if (!strcmp(name, "select") || !strcmp(name, "reject"))
		return select_items(r, v, false, name[0] == 's', args, n_args, ret);
	if (!strcmp(name, "selectattr") || !strcmp(name, "rejectattr"))
		return select_items(r, v, true, name[0] == 's', args, n_args, ret);
	if (!strcmp(name, "map")) {
		jv *list, *attr = kwarg(kw_names, kw_vals, n_kw, "attribute");
		if ((rc = to_list(r, v, &list)) < 0)
			return rc;
		if (!attr && (!a0 || a0->t != JV_STR))
			return jerr(r, -EINVAL, "map needs attribute= or a filter name");
		char fname[32];
		if (!attr)
			snprintf(fname, sizeof(fname), "%.*s", (int)a0->u.str.n, a0->u.str.s);
		jv *l = jinja_list(r);
		if (!l)
			return -ENOMEM;
		for (size_t i = 0; i < list->u.list.n; i++) {
			jv *x = list->u.list.v[i];
			if (attr) {
				if (!(x = attr_of(x, attr)))
					x = jv_undef();
			} else if ((rc = jlib_filter(r, fname, x, args + 1, n_args - 1, NULL, NULL, 0, &x)) < 0) {
				return rc;
			}
			if (jinja_list_push(r, l, x) < 0)
				return -ENOMEM;
		}
		*ret = l;
		return 0;
	}
	if (!strcmp(name, "int") || !strcmp(name, "float") || !strcmp(name, "abs") || !strcmp(name, "round")) {
		double f;
		bool is_int = false;
		int64_t i = 0;
		if (v->t == JV_INT) {
			i = v->u.i;
			f = (double)i;
			is_int = true;
		} else if (v->t == JV_FLOAT || v->t == JV_BOOL) {
			f = v->t == JV_FLOAT ? v->u.f : v->u.b;
		} else if (v->t == JV_STR) {
			char buf[64];
			snprintf(buf, sizeof(buf), "%.*s", (int)(v->u.str.n < 63 ? v->u.str.n : 63), v->u.str.s);
			char *end;
			f = strtod(buf, &end);
			if (end == buf || *end)
				f = 0;
		} else {
			f = 0;
		}
		if (!strcmp(name, "int")) {
			*ret = jinja_int(r, is_int ? i : isfinite(f) && fabs(f) < 9.2e18 ? (int64_t)f : 0);
		} else if (!strcmp(name, "float")) {
			*ret = jv_float(r, f);
		} else if (!strcmp(name, "abs")) {
			*ret = is_int && i != INT64_MIN ? jinja_int(r, i < 0 ? -i : i) : jv_float(r, fabs(f));
		} else {
			jv *pr = arg_or_kw(args, n_args, 0, kw_names, kw_vals, n_kw, "precision");
			jv *me = arg_or_kw(args, n_args, 1, kw_names, kw_vals, n_kw, "method");
			int64_t p = pr && pr->t == JV_INT ? pr->u.i : 0;
			double scale = pow(10.0, (double)(p < -15 ? -15 : p > 15 ? 15 : p)), x = f * scale;
			if (me && me->t == JV_STR && me->u.str.n == 5 && !memcmp(me->u.str.s, "floor", 5))
				x = floor(x);
			else if (me && me->t == JV_STR && me->u.str.n == 4 && !memcmp(me->u.str.s, "ceil", 4))
				x = ceil(x);
			else
				x = round(x);
			*ret = jv_float(r, x / scale);
		}
		return *ret ? 0 : -ENOMEM;
	}
	return jerr(r, -EINVAL, "unknown filter '%s'", name);
}
