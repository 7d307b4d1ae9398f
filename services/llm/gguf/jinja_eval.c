/*
 * jinja_eval.c - values, scopes and the tree-walking evaluator of
 * jinja.h. Every value of a render lives in the run's arena.
 */
#include "jinja_impl.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JINJA_DEF_OUTPUT (4u << 20)
#define JINJA_DEF_MEMORY (64u << 20)
#define JINJA_DEF_STEPS  1000000L
#define JINJA_DEF_DEPTH  32

enum { FLOW_BREAK = 1, FLOW_CONTINUE = 2 };

struct jscope {
	jv *vars;           /* JV_DICT */
	jscope *parent;
};

static jv g_undef = { .t = JV_UNDEF };

int jerr(jinja_run *r, int rc, const char *fmt, ...)
{
	if (r->err && r->err_len && !r->err[0]) {
		int n = rc == -EPERM ? 0 : snprintf(r->err, r->err_len, "line %d: ", r->line);
		if (n >= 0 && (size_t)n < r->err_len) {
			va_list ap;
			va_start(ap, fmt);
			vsnprintf(r->err + n, r->err_len - (size_t)n, fmt, ap);
			va_end(ap);
		}
	}
	return rc;
}

/* ---- values ---- */

jv *jv_undef(void)
{
	return &g_undef;
}

jv *jv_new(jinja_run *r, jv_type t)
{
	jv *v = jarena_alloc(&r->arena, sizeof(*v));
	if (v)
		v->t = t;
	return v;
}

jv *jv_str_masked(jinja_run *r, const char *s, const unsigned char *m, size_t n)
{
	jv *v = jv_new(r, JV_STR);
	char *d = v ? jarena_alloc(&r->arena, n + 1) : NULL;
	if (!d)
		return NULL;
	memcpy(d, s, n);
	v->u.str.s = d;
	v->u.str.n = n;
	if (m) {
		unsigned char *dm = jarena_alloc(&r->arena, n ? n : 1);
		if (!dm)
			return NULL;
		memcpy(dm, m, n);
		v->u.str.m = dm;
	}
	return v;
}

jv *jv_float(jinja_run *r, double f)
{
	jv *v = jv_new(r, JV_FLOAT);
	if (v)
		v->u.f = f;
	return v;
}

jv *jinja_str(jinja_run *r, const char *s, size_t n, bool markup)
{
	jv *v = jv_str_masked(r, s, NULL, n);
	if (v && !markup) {
		unsigned char *m = jarena_alloc(&r->arena, n ? n : 1);   /* zeroed: data */
		if (!m)
			return NULL;
		v->u.str.m = m;
	}
	return v;
}

jv *jinja_bool(jinja_run *r, bool b)
{
	jv *v = jv_new(r, JV_BOOL);
	if (v)
		v->u.b = b;
	return v;
}

jv *jinja_int(jinja_run *r, int64_t i)
{
	jv *v = jv_new(r, JV_INT);
	if (v)
		v->u.i = i;
	return v;
}

jv *jinja_float(jinja_run *r, double f)
{
	return jv_float(r, f);
}

jv *jinja_none(jinja_run *r)
{
	return jv_new(r, JV_NONE);
}

jv *jinja_list(jinja_run *r)
{
	return jv_new(r, JV_LIST);
}

jv *jinja_dict(jinja_run *r)
{
	return jv_new(r, JV_DICT);
}

int jinja_list_push(jinja_run *r, jv *list, jv *v)
{
	if (!list || !v || list->t != JV_LIST)
		return -EINVAL;
	if (list->u.list.n == list->u.list.cap) {
		size_t cap = list->u.list.cap ? list->u.list.cap * 2 : 4;
		jv **nv = jarena_alloc(&r->arena, cap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		if (list->u.list.n)
			memcpy(nv, list->u.list.v, list->u.list.n * sizeof(*nv));
		list->u.list.v = nv;
		list->u.list.cap = cap;
	}
	list->u.list.v[list->u.list.n++] = v;
	return 0;
}

jv *jv_dict_get(const jv *d, const char *k, size_t kn)
{
	if (!d || d->t != JV_DICT)
		return NULL;
	for (size_t i = 0; i < d->u.dict.n; i++) {
		const jv *key = d->u.dict.k[i];
		if (key->u.str.n == kn && !memcmp(key->u.str.s, k, kn))
			return d->u.dict.v[i];
	}
	return NULL;
}

static int dict_set_key(jinja_run *r, jv *d, jv *key, jv *v)
{
	for (size_t i = 0; i < d->u.dict.n; i++) {
		const jv *k = d->u.dict.k[i];
		if (k->u.str.n == key->u.str.n && !memcmp(k->u.str.s, key->u.str.s, k->u.str.n)) {
			d->u.dict.v[i] = v;
			return 0;
		}
	}
	if (d->u.dict.n == d->u.dict.cap) {
		size_t cap = d->u.dict.cap ? d->u.dict.cap * 2 : 4;
		jv **nk = jarena_alloc(&r->arena, cap * sizeof(*nk));
		jv **nv = jarena_alloc(&r->arena, cap * sizeof(*nv));
		if (!nk || !nv)
			return -ENOMEM;
		if (d->u.dict.n) {
			memcpy(nk, d->u.dict.k, d->u.dict.n * sizeof(*nk));
			memcpy(nv, d->u.dict.v, d->u.dict.n * sizeof(*nv));
		}
		d->u.dict.k = nk;
		d->u.dict.v = nv;
		d->u.dict.cap = cap;
	}
	d->u.dict.k[d->u.dict.n] = key;
	d->u.dict.v[d->u.dict.n++] = v;
	return 0;
}

int jinja_dict_set(jinja_run *r, jv *dict, const char *key, jv *v)
{
	if (!dict || !v || dict->t != JV_DICT || !key)
		return -EINVAL;
	jv *k = jv_str_masked(r, key, NULL, strlen(key));
	return k ? dict_set_key(r, dict, k, v) : -ENOMEM;
}

int jinja_dict_put(jinja_run *r, jv *dict, jv *key, jv *v)
{
	if (!dict || !v || !key || dict->t != JV_DICT || key->t != JV_STR)
		return -EINVAL;
	return dict_set_key(r, dict, key, v);
}

int jinja_set_global(jinja_run *r, const char *name, jv *v)
{
	return jinja_dict_set(r, r->globals, name, v);
}

void jinja_set_time(jinja_run *r, time_t now)
{
	r->now = now;
}

bool jv_truthy(const jv *v)
{
	switch (v->t) {
	case JV_UNDEF: case JV_NONE: return false;
	case JV_BOOL: return v->u.b;
	case JV_INT: return v->u.i != 0;
	case JV_FLOAT: return v->u.f != 0;
	case JV_STR: return v->u.str.n != 0;
	case JV_LIST: return v->u.list.n != 0;
	case JV_DICT: return v->u.dict.n != 0 || v->ns;
	default: return true;
	}
}

static bool is_num(const jv *v)
{
	return v->t == JV_INT || v->t == JV_FLOAT || v->t == JV_BOOL;
}

static double num(const jv *v)
{
	return v->t == JV_INT ? (double)v->u.i : v->t == JV_FLOAT ? v->u.f : v->u.b;
}

bool jv_equal(const jv *a, const jv *b)
{
	if (is_num(a) && is_num(b)) {
		if (a->t != JV_FLOAT && b->t != JV_FLOAT)
			return (a->t == JV_INT ? a->u.i : a->u.b) == (b->t == JV_INT ? b->u.i : b->u.b);
		return num(a) == num(b);
	}
	if (a->t != b->t)
		return false;
	switch (a->t) {
	case JV_UNDEF: case JV_NONE: return true;
	case JV_STR:
		return a->u.str.n == b->u.str.n && !memcmp(a->u.str.s, b->u.str.s, a->u.str.n);
	case JV_LIST:
		if (a->u.list.n != b->u.list.n)
			return false;
		for (size_t i = 0; i < a->u.list.n; i++)
			if (!jv_equal(a->u.list.v[i], b->u.list.v[i]))
				return false;
		return true;
	case JV_DICT:
		if (a == b)
			return true;
		if (a->u.dict.n != b->u.dict.n)
			return false;
		for (size_t i = 0; i < a->u.dict.n; i++) {
			const jv *k = a->u.dict.k[i];
			const jv *w = jv_dict_get(b, k->u.str.s, k->u.str.n);
			if (!w || !jv_equal(a->u.dict.v[i], w))
				return false;
		}
		return true;
	case JV_FUNC: return a->u.fn.id == b->u.fn.id && a->u.fn.self == b->u.fn.self;
	case JV_MACRO: return a->u.macro == b->u.macro;
	default: return false;
	}
}

const char *jv_type_name(const jv *v)
{
	static const char *const names[] = { "undefined", "none", "bool", "int", "float", "string",
					     "list", "dict", "function", "macro" };
	return names[v->t];
}

/* ---- string building ---- */

int jsb_put(jinja_run *r, jsb *b, const char *s, const unsigned char *m, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (cap < b->n + n + 1)
			cap *= 2;
		char *ns = jarena_alloc(&r->arena, cap);
		unsigned char *nm = jarena_alloc(&r->arena, cap);
		if (!ns || !nm)
			return jerr(r, -ENOMEM, "out of memory (run limit %zu bytes)", r->lim.max_memory);
		if (b->n) {
			memcpy(ns, b->s, b->n);
			memcpy(nm, b->m, b->n);
		}
		b->s = ns;
		b->m = nm;
		b->cap = cap;
	}
	if (n)
		memcpy(b->s + b->n, s, n);
	if (m) {
		if (n)
			memcpy(b->m + b->n, m, n);
		for (size_t i = 0; i < n && b->all_markup; i++)
			if (!m[i])
				b->all_markup = false;
	} else {
		memset(b->m + b->n, 1, n);
	}
	b->n += n;
	return 0;
}

int jsb_puts(jinja_run *r, jsb *b, const char *s)
{
	return jsb_put(r, b, s, NULL, strlen(s));
}

jv *jsb_done(jinja_run *r, jsb *b)
{
	jv *v = jv_new(r, JV_STR);
	if (!v)
		return NULL;
	v->u.str.s = b->n ? b->s : "";
	v->u.str.n = b->n;
	v->u.str.m = b->all_markup || !b->n ? NULL : b->m;
	return v;
}

static int put_float(jinja_run *r, jsb *b, double f)
{
	char buf[40];
	if (isnan(f))
		return jsb_puts(r, b, "nan");
	if (isinf(f))
		return jsb_puts(r, b, f < 0 ? "-inf" : "inf");
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, f);
		if (strtod(buf, NULL) == f)
			break;
	}
	if (!strpbrk(buf, ".en"))
		strcat(buf, ".0");
	return jsb_puts(r, b, buf);
}

/* Python's repr of a string, as str() of a list shows it. */
static int put_repr_str(jinja_run *r, jsb *b, const jv *v)
{
	const char *s = v->u.str.s;
	size_t n = v->u.str.n;
	char q = memchr(s, '\'', n) && !memchr(s, '"', n) ? '"' : '\'';
	int rc = jsb_put(r, b, &q, NULL, 1);
	for (size_t i = 0; i < n && rc == 0; i++) {
		char c = s[i];
		const char *esc = c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r" :
				  c == '\\' ? "\\\\" : c == q ? (q == '\'' ? "\\'" : "\\\"") : NULL;
		rc = esc ? jsb_puts(r, b, esc) : jsb_put(r, b, s + i, v->u.str.m ? v->u.str.m + i : NULL, 1);
	}
	return rc ? rc : jsb_put(r, b, &q, NULL, 1);
}

static int put_repr(jinja_run *r, jsb *b, const jv *v, int depth)
{
	if (depth > 64)
		return jerr(r, -ELOOP, "value nested too deeply");
	int rc = 0;
	if (v->t == JV_STR)
		return put_repr_str(r, b, v);
	if (v->t == JV_LIST) {
		rc = jsb_puts(r, b, "[");
		for (size_t i = 0; i < v->u.list.n && rc == 0; i++)
			rc = (i ? jsb_puts(r, b, ", ") : 0) ?: put_repr(r, b, v->u.list.v[i], depth + 1);
		return rc ? rc : jsb_puts(r, b, "]");
	}
	if (v->t == JV_DICT) {
		rc = jsb_puts(r, b, "{");
		for (size_t i = 0; i < v->u.dict.n && rc == 0; i++) {
			rc = (i ? jsb_puts(r, b, ", ") : 0) ?: put_repr(r, b, v->u.dict.k[i], depth + 1);
			rc = rc ?: jsb_puts(r, b, ": ");
			rc = rc ?: put_repr(r, b, v->u.dict.v[i], depth + 1);
		}
		return rc ? rc : jsb_puts(r, b, "}");
	}
	return jsb_value(r, b, v);
}

int jsb_value(jinja_run *r, jsb *b, const jv *v)
{
	char buf[32];
	switch (v->t) {
	case JV_UNDEF: return 0;
	case JV_NONE: return jsb_puts(r, b, "None");
	case JV_BOOL: return jsb_puts(r, b, v->u.b ? "True" : "False");
	case JV_INT:
		snprintf(buf, sizeof(buf), "%lld", (long long)v->u.i);
		return jsb_puts(r, b, buf);
	case JV_FLOAT: return put_float(r, b, v->u.f);
	case JV_STR: return jsb_put(r, b, v->u.str.s, v->u.str.m, v->u.str.n);
	case JV_LIST: case JV_DICT: return put_repr(r, b, v, 0);
	default: return jsb_puts(r, b, "<function>");
	}
}

jv *jv_to_str(jinja_run *r, const jv *v)
{
	if (v->t == JV_STR)
		return (jv *)v;
	jsb b = { .all_markup = true };
	return jsb_value(r, &b, v) < 0 ? NULL : jsb_done(r, &b);
}

static int put_json_str(jinja_run *r, jsb *b, const jv *v)
{
	int rc = jsb_puts(r, b, "\"");
	for (size_t i = 0; i < v->u.str.n && rc == 0; i++) {
		unsigned char c = (unsigned char)v->u.str.s[i];
		char esc[8];
		if (c == '"' || c == '\\') {
			esc[0] = '\\'; esc[1] = (char)c; esc[2] = 0;
		} else if (c == '\n') {
			strcpy(esc, "\\n");
		} else if (c == '\r') {
			strcpy(esc, "\\r");
		} else if (c == '\t') {
			strcpy(esc, "\\t");
		} else if (c == '\b') {
			strcpy(esc, "\\b");
		} else if (c == '\f') {
			strcpy(esc, "\\f");
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
		} else {
			rc = jsb_put(r, b, v->u.str.s + i, v->u.str.m ? v->u.str.m + i : NULL, 1);
			continue;
		}
		rc = jsb_puts(r, b, esc);
	}
	return rc ? rc : jsb_puts(r, b, "\"");
}

static int put_indent(jinja_run *r, jsb *b, int indent, int level)
{
	int rc = jsb_puts(r, b, "\n");
	for (int i = 0; i < indent * level && rc == 0; i++)
		rc = jsb_puts(r, b, " ");
	return rc;
}

/* json.dumps(v, ensure_ascii=False, indent=indent or None), as transformers' tojson. */
int jv_to_json(jinja_run *r, jsb *b, const jv *v, int indent, int level)
{
	if (level > 64)
		return jerr(r, -ELOOP, "value nested too deeply for tojson");
	int rc = 0;
	switch (v->t) {
	case JV_UNDEF: case JV_NONE: return jsb_puts(r, b, "null");
	case JV_BOOL: return jsb_puts(r, b, v->u.b ? "true" : "false");
	case JV_INT: case JV_FLOAT: {
		if (v->t == JV_FLOAT && !isfinite(v->u.f))
			return jsb_puts(r, b, isnan(v->u.f) ? "NaN" : v->u.f < 0 ? "-Infinity" : "Infinity");
		return jsb_value(r, b, v);
	}
	case JV_STR: return put_json_str(r, b, v);
	case JV_LIST: case JV_DICT: {
		bool dict = v->t == JV_DICT;
		size_t n = dict ? v->u.dict.n : v->u.list.n;
		rc = jsb_puts(r, b, dict ? "{" : "[");
		for (size_t i = 0; i < n && rc == 0; i++) {
			if (i)
				rc = jsb_puts(r, b, indent > 0 ? "," : ", ");
			if (rc == 0 && indent > 0)
				rc = put_indent(r, b, indent, level + 1);
			if (rc == 0 && dict) {
				rc = put_json_str(r, b, v->u.dict.k[i]);
				rc = rc ?: jsb_puts(r, b, ": ");
			}
			if (rc == 0)
				rc = jv_to_json(r, b, dict ? v->u.dict.v[i] : v->u.list.v[i], indent, level + 1);
		}
		if (rc == 0 && n && indent > 0)
			rc = put_indent(r, b, indent, level);
		return rc ? rc : jsb_puts(r, b, dict ? "}" : "]");
	}
	default:
		return jerr(r, -EINVAL, "tojson: cannot serialise a %s", jv_type_name(v));
	}
}

/* ---- output ---- */

typedef struct evalctx {
	jinja_run *r;
	jscope *root;
	jsb *cap;           /* capturing (macro body, set block) or NULL */
} evalctx;

static int out_put(evalctx *X, const char *s, const unsigned char *m, size_t n)
{
	jinja_run *r = X->r;
	if (X->cap)
		return jsb_put(r, X->cap, s, m, n);
	if (r->out->len - r->out_start + n > r->lim.max_output)
		return jerr(r, -E2BIG, "output over %zu bytes", r->lim.max_output);
	if (r->mask && vx_buf_reserve(r->mask, n) < 0)
		return -ENOMEM;
	if (vx_buf_append(r->out, s, n) < 0)
		return -ENOMEM;
	if (r->mask) {
		if (m)
			memcpy(r->mask->data + r->mask->len, m, n);
		else
			memset(r->mask->data + r->mask->len, 1, n);
		r->mask->len += n;
		r->mask->data[r->mask->len] = 0;
	}
	return 0;
}

/* ---- scopes ---- */

static jv *lookup(evalctx *X, jscope *sc, const char *name)
{
	size_t n = strlen(name);
	for (; sc; sc = sc->parent) {
		jv *v = jv_dict_get(sc->vars, name, n);
		if (v)
			return v;
	}
	jv *v = jv_dict_get(X->r->globals, name, n);
	if (v)
		return v;
	int id = jlib_global_fn(name);
	if (id) {
		v = jv_new(X->r, JV_FUNC);
		if (v)
			v->u.fn.id = id;
		return v;
	}
	return &g_undef;
}

static jscope *scope_new(jinja_run *r, jscope *parent)
{
	jscope *s = jarena_alloc(&r->arena, sizeof(*s));
	if (!s || !(s->vars = jinja_dict(r)))
		return NULL;
	s->parent = parent;
	return s;
}

/* ---- expressions ---- */

static int eval(evalctx *X, jscope *sc, const jnode *n, jv **ret);
static int exec_node(evalctx *X, jscope *sc, const jnode *n);

static int eval_args(evalctx *X, jscope *sc, const jnode *n, jv ***ret_args, jv ***ret_kw)
{
	jinja_run *r = X->r;
	jv **args = jarena_alloc(&r->arena, (n->n_kids + 1) * sizeof(*args));
	jv **kw = jarena_alloc(&r->arena, (n->n_kw + 1) * sizeof(*kw));
	if (!args || !kw)
		return -ENOMEM;
	int rc;
	for (size_t i = 0; i < n->n_kids; i++)
		if ((rc = eval(X, sc, n->kids[i], &args[i])) < 0)
			return rc;
	for (size_t i = 0; i < n->n_kw; i++)
		if ((rc = eval(X, sc, n->kw_vals[i], &kw[i])) < 0)
			return rc;
	*ret_args = args;
	*ret_kw = kw;
	return 0;
}

static int call_macro(evalctx *X, const jnode *m, jv **args, size_t n_args,
		      const char **kw_names, jv **kw_vals, size_t n_kw, jv **ret)
{
	jinja_run *r = X->r;
	if (n_args > m->n_kw)
		return jerr(r, -EINVAL, "macro %s takes %zu arguments, %zu given", m->name, m->n_kw, n_args);
	if (r->depth >= r->lim.max_depth)
		return jerr(r, -ELOOP, "macro calls nested deeper than %d", r->lim.max_depth);
	if (++r->steps > r->lim.max_steps)
		return jerr(r, -ELOOP, "over %ld loop iterations and calls", r->lim.max_steps);
	jscope *sc = scope_new(r, X->root);
	if (!sc)
		return -ENOMEM;
	int rc;
	for (size_t i = 0; i < m->n_kw; i++) {
		jv *v = i < n_args ? args[i] : NULL;
		for (size_t k = 0; k < n_kw; k++)
			if (!strcmp(kw_names[k], m->kw_names[i]))
				v = kw_vals[k];
		if (!v && m->kw_vals[i] && (rc = eval(X, sc, m->kw_vals[i], &v)) < 0)
			return rc;
		if ((rc = jinja_dict_set(r, sc->vars, m->kw_names[i], v ? v : &g_undef)) < 0)
			return rc;
	}
	for (size_t k = 0; k < n_kw; k++) {
		bool known = false;
		for (size_t i = 0; i < m->n_kw; i++)
			known |= !strcmp(kw_names[k], m->kw_names[i]);
		if (!known)
			return jerr(r, -EINVAL, "macro %s has no parameter %s", m->name, kw_names[k]);
	}
	jsb out = { .all_markup = true }, *saved = X->cap;
	X->cap = &out;
	r->depth++;
	rc = exec_node(X, sc, m->a);
	r->depth--;
	X->cap = saved;
	if (rc < 0)
		return rc;
	*ret = jsb_done(r, &out);
	return *ret ? 0 : -ENOMEM;
}

static int64_t py_mod(int64_t a, int64_t b)
{
	int64_t m = a % b;
	return m && ((m < 0) != (b < 0)) ? m + b : m;
}

static int concat_str(jinja_run *r, const jv *a, const jv *b, jv **ret)
{
	jsb s = { .all_markup = true };
	int rc = jsb_value(r, &s, a);
	if (rc == 0)
		rc = jsb_value(r, &s, b);
	if (rc < 0)
		return rc;
	*ret = jsb_done(r, &s);
	return *ret ? 0 : -ENOMEM;
}

static int eval_bin(evalctx *X, int op, jv *a, jv *b, jv **ret)
{
	jinja_run *r = X->r;
	jv *v;
	switch (op) {
	case OP_CONCAT:
		return concat_str(r, a, b, ret);
	case OP_EQ: case OP_NE:
		*ret = jinja_bool(r, jv_equal(a, b) == (op == OP_EQ));
		return *ret ? 0 : -ENOMEM;
	case OP_IN: case OP_NOTIN: {
		bool in = false;
		if (b->t == JV_STR && a->t == JV_STR) {
			in = !a->u.str.n || memmem(b->u.str.s, b->u.str.n, a->u.str.s, a->u.str.n);
		} else if (b->t == JV_LIST) {
			for (size_t i = 0; i < b->u.list.n && !in; i++)
				in = jv_equal(a, b->u.list.v[i]);
		} else if (b->t == JV_DICT) {
			in = a->t == JV_STR && jv_dict_get(b, a->u.str.s, a->u.str.n);
		} else if (b->t != JV_UNDEF) {
			return jerr(r, -EINVAL, "'in' needs a string, list or dict on the right, not %s",
				    jv_type_name(b));
		}
		*ret = jinja_bool(r, in == (op == OP_IN));
		return *ret ? 0 : -ENOMEM;
	}
	case OP_LT: case OP_LE: case OP_GT: case OP_GE: {
		int c;
		if (is_num(a) && is_num(b)) {
			double x = num(a), y = num(b);
			c = x < y ? -1 : x > y;
		} else if (a->t == JV_STR && b->t == JV_STR) {
			size_t n = a->u.str.n < b->u.str.n ? a->u.str.n : b->u.str.n;
			c = memcmp(a->u.str.s, b->u.str.s, n);
			if (!c)
				c = a->u.str.n < b->u.str.n ? -1 : a->u.str.n > b->u.str.n;
		} else {
			return jerr(r, -EINVAL, "cannot compare %s with %s", jv_type_name(a), jv_type_name(b));
		}
		bool t = op == OP_LT ? c < 0 : op == OP_LE ? c <= 0 : op == OP_GT ? c > 0 : c >= 0;
		*ret = jinja_bool(r, t);
		return *ret ? 0 : -ENOMEM;
	}
	default:
		break;
	}
	if (op == OP_ADD && a->t == JV_STR && b->t == JV_STR)
		return concat_str(r, a, b, ret);
	if (op == OP_ADD && a->t == JV_LIST && b->t == JV_LIST) {
		if (!(v = jinja_list(r)))
			return -ENOMEM;
		for (size_t i = 0; i < a->u.list.n; i++)
			if (jinja_list_push(r, v, a->u.list.v[i]) < 0)
				return -ENOMEM;
		for (size_t i = 0; i < b->u.list.n; i++)
			if (jinja_list_push(r, v, b->u.list.v[i]) < 0)
				return -ENOMEM;
		*ret = v;
		return 0;
	}
	if (op == OP_MUL && a->t == JV_STR && b->t == JV_INT) {
		jsb s = { .all_markup = true };
		if (b->u.i > 0 && a->u.str.n * (uint64_t)b->u.i > r->lim.max_output)
			return jerr(r, -E2BIG, "string repetition over %zu bytes", r->lim.max_output);
		for (int64_t i = 0; i < b->u.i; i++)
			if (jsb_value(r, &s, a) < 0)
				return -ENOMEM;
		*ret = jsb_done(r, &s);
		return *ret ? 0 : -ENOMEM;
	}
	if (!is_num(a) || !is_num(b))
		return jerr(r, -EINVAL, "unsupported operand types %s and %s", jv_type_name(a),
			    jv_type_name(b));
	bool ints = a->t != JV_FLOAT && b->t != JV_FLOAT;
	int64_t x = a->t == JV_INT ? a->u.i : a->u.b, y = b->t == JV_INT ? b->u.i : b->u.b, z = 0;
	double fx = num(a), fy = num(b);
	if ((op == OP_DIV || op == OP_FLOORDIV || op == OP_MOD) && (ints ? y == 0 : fy == 0))
		return jerr(r, -EINVAL, "division by zero");
	if (ints && op != OP_DIV && op != OP_POW) {
		bool ovf = false;
		switch (op) {
		case OP_ADD: ovf = __builtin_add_overflow(x, y, &z); break;
		case OP_SUB: ovf = __builtin_sub_overflow(x, y, &z); break;
		case OP_MUL: ovf = __builtin_mul_overflow(x, y, &z); break;
		case OP_FLOORDIV:
			if (x == INT64_MIN && y == -1)
				ovf = true;
			else
				z = x / y - ((x % y != 0) && ((x < 0) != (y < 0)));
			break;
		case OP_MOD:
			z = (x == INT64_MIN && y == -1) ? 0 : py_mod(x, y);
			break;
		}
		if (ovf)
			return jerr(r, -EINVAL, "integer overflow");
		*ret = jinja_int(r, z);
		return *ret ? 0 : -ENOMEM;
	}
	double f;
	switch (op) {
	case OP_ADD: f = fx + fy; break;
	case OP_SUB: f = fx - fy; break;
	case OP_MUL: f = fx * fy; break;
	case OP_DIV: f = fx / fy; break;
	case OP_FLOORDIV: f = floor(fx / fy); break;
	case OP_MOD: f = fmod(fx, fy); if (f && ((f < 0) != (fy < 0))) f += fy; break;
	default: f = pow(fx, fy); break;
	}
	if (op == OP_POW && ints && y >= 0 && fabs(f) < 9.2e18) {
		*ret = jinja_int(r, (int64_t)f);
		return *ret ? 0 : -ENOMEM;
	}
	*ret = jv_float(r, f);
	return *ret ? 0 : -ENOMEM;
}

/* Python's slice indices for a sequence of n. */
static int slice_of(jinja_run *r, jv *sv, jv *ev, jv *stv, size_t n, int64_t *ret_start,
		    int64_t *ret_step, size_t *ret_count)
{
	int64_t step = 1, N = (int64_t)n;
	if (stv && stv->t != JV_NONE && stv->t != JV_UNDEF) {
		if (stv->t != JV_INT || stv->u.i == 0)
			return jerr(r, -EINVAL, "slice step must be a non-zero integer");
		step = stv->u.i;
	}
	int64_t lo = step > 0 ? 0 : N - 1, hi = step > 0 ? N : -1;
	jv *ends[2] = { sv, ev };
	int64_t *dst[2] = { &lo, &hi };
	for (int k = 0; k < 2; k++) {
		jv *e = ends[k];
		if (!e || e->t == JV_NONE || e->t == JV_UNDEF)
			continue;
		if (e->t != JV_INT)
			return jerr(r, -EINVAL, "slice indices must be integers");
		int64_t i = e->u.i;
		if (i < 0)
			i += N;
		if (step > 0)
			i = i < 0 ? 0 : i > N ? N : i;
		else
			i = i < -1 ? -1 : i > N - 1 ? N - 1 : i;
		*dst[k] = i;
	}
	int64_t count = step > 0 ? (hi > lo ? (hi - lo + step - 1) / step : 0)
				 : (lo > hi ? (lo - hi + (-step) - 1) / (-step) : 0);
	*ret_start = lo;
	*ret_step = step;
	*ret_count = (size_t)count;
	return 0;
}

static int eval_slice(evalctx *X, jscope *sc, const jnode *n, jv **ret)
{
	jinja_run *r = X->r;
	jv *obj, *parts[3] = { NULL, NULL, NULL };
	int rc = eval(X, sc, n->a, &obj);
	const jnode *pn[3] = { n->b, n->c, n->d };
	for (int k = 0; k < 3 && rc == 0; k++)
		if (pn[k])
			rc = eval(X, sc, pn[k], &parts[k]);
	if (rc < 0)
		return rc;
	if (obj->t != JV_LIST && obj->t != JV_STR)
		return jerr(r, -EINVAL, "cannot slice a %s", jv_type_name(obj));
	size_t len = obj->t == JV_LIST ? obj->u.list.n : obj->u.str.n, count = 0;
	int64_t start = 0, step = 1;
	if ((rc = slice_of(r, parts[0], parts[1], parts[2], len, &start, &step, &count)) < 0)
		return rc;
	if (obj->t == JV_LIST) {
		jv *l = jinja_list(r);
		if (!l)
			return -ENOMEM;
		for (size_t i = 0; i < count; i++)
			if (jinja_list_push(r, l, obj->u.list.v[start + (int64_t)i * step]) < 0)
				return -ENOMEM;
		*ret = l;
		return 0;
	}
	jsb s = { .all_markup = true };
	for (size_t i = 0; i < count; i++) {
		size_t at = (size_t)(start + (int64_t)i * step);
		if (jsb_put(r, &s, obj->u.str.s + at, obj->u.str.m ? obj->u.str.m + at : NULL, 1) < 0)
			return -ENOMEM;
	}
	*ret = jsb_done(r, &s);
	return *ret ? 0 : -ENOMEM;
}

/* obj.name / obj[key]: item or method; Undefined when neither. */
static int get_member(evalctx *X, jv *obj, jv *key, bool attr_first, jv **ret)
{
	jinja_run *r = X->r;
	*ret = &g_undef;
	if (key->t == JV_STR) {
		int id = attr_first ? jlib_method(obj, key->u.str.s) : 0;
		jv *v = obj->t == JV_DICT ? jv_dict_get(obj, key->u.str.s, key->u.str.n) : NULL;
		if (!id && !v && !memchr(key->u.str.s, 0, key->u.str.n))
			id = jlib_method(obj, key->u.str.s);
		if (id && !(obj->t == JV_DICT && v && !attr_first)) {
			jv *f = jv_new(r, JV_FUNC);
			if (!f)
				return -ENOMEM;
			f->u.fn.id = id;
			f->u.fn.self = obj;
			*ret = f;
		} else if (v) {
			*ret = v;
		}
		return 0;
	}
	if (key->t == JV_INT && (obj->t == JV_LIST || obj->t == JV_STR)) {
		int64_t n = obj->t == JV_LIST ? (int64_t)obj->u.list.n : (int64_t)obj->u.str.n, i = key->u.i;
		if (i < 0)
			i += n;
		if (i < 0 || i >= n)
			return 0;
		if (obj->t == JV_LIST) {
			*ret = obj->u.list.v[i];
			return 0;
		}
		*ret = jv_str_masked(r, obj->u.str.s + i, obj->u.str.m ? obj->u.str.m + i : NULL, 1);
		return *ret ? 0 : -ENOMEM;
	}
	return 0;
}

static int eval(evalctx *X, jscope *sc, const jnode *n, jv **ret)
{
	jinja_run *r = X->r;
	jv *a = NULL, *b = NULL, **args, **kw;
	int rc;
	r->line = n->line;
	switch (n->kind) {
	case E_LIT:
		*ret = n->lit;
		return 0;
	case E_NAME:
		*ret = lookup(X, sc, n->name);
		return *ret ? 0 : -ENOMEM;
	case E_ATTR: {
		if ((rc = eval(X, sc, n->a, &a)) < 0)
			return rc;
		jv key = { .t = JV_STR, .u.str = { .s = n->name, .n = strlen(n->name) } };
		return get_member(X, a, &key, true, ret);
	}
	case E_INDEX:
		if ((rc = eval(X, sc, n->a, &a)) < 0 || (rc = eval(X, sc, n->b, &b)) < 0)
			return rc;
		return get_member(X, a, b, false, ret);
	case E_SLICE:
		return eval_slice(X, sc, n, ret);
	case E_CALL:
		if ((rc = eval(X, sc, n->a, &a)) < 0 || (rc = eval_args(X, sc, n, &args, &kw)) < 0)
			return rc;
		r->line = n->line;
		if (a->t == JV_MACRO)
			return call_macro(X, a->u.macro, args, n->n_kids, n->kw_names, kw, n->n_kw, ret);
		if (a->t != JV_FUNC)
			return jerr(r, -EINVAL, "%s is not callable", a->t == JV_UNDEF && n->a->kind == E_NAME ?
				    n->a->name : jv_type_name(a));
		rc = jlib_call(r, a->u.fn.id, a->u.fn.self, args, n->n_kids, n->kw_names, kw, n->n_kw, ret);
		return rc;
	case E_FILTER:
		if ((rc = eval(X, sc, n->a, &a)) < 0 || (rc = eval_args(X, sc, n, &args, &kw)) < 0)
			return rc;
		r->line = n->line;
		return jlib_filter(r, n->name, a, args, n->n_kids, n->kw_names, kw, n->n_kw, ret);
	case E_TEST: {
		bool t;
		if ((rc = eval(X, sc, n->a, &a)) < 0 || (rc = eval_args(X, sc, n, &args, &kw)) < 0)
			return rc;
		r->line = n->line;
		if ((rc = jlib_test(r, n->name, a, args, n->n_kids, &t)) < 0)
			return rc;
		*ret = jinja_bool(r, t != (n->op != 0));
		return *ret ? 0 : -ENOMEM;
	}
	case E_NOT:
		if ((rc = eval(X, sc, n->a, &a)) < 0)
			return rc;
		*ret = jinja_bool(r, !jv_truthy(a));
		return *ret ? 0 : -ENOMEM;
	case E_NEG:
		if ((rc = eval(X, sc, n->a, &a)) < 0)
			return rc;
		if (a->t == JV_INT && a->u.i != INT64_MIN)
			*ret = jinja_int(r, -a->u.i);
		else if (a->t == JV_FLOAT)
			*ret = jv_float(r, -a->u.f);
		else
			return jerr(r, -EINVAL, "cannot negate a %s", jv_type_name(a));
		return *ret ? 0 : -ENOMEM;
	case E_BIN:
		if ((rc = eval(X, sc, n->a, &a)) < 0 || (rc = eval(X, sc, n->b, &b)) < 0)
			return rc;
		r->line = n->line;
		return eval_bin(X, n->op, a, b, ret);
	case E_AND: case E_OR:
		if ((rc = eval(X, sc, n->a, &a)) < 0)
			return rc;
		if (jv_truthy(a) == (n->kind == E_OR)) {
			*ret = a;
			return 0;
		}
		return eval(X, sc, n->b, ret);
	case E_COND:
		if ((rc = eval(X, sc, n->a, &a)) < 0)
			return rc;
		if (jv_truthy(a))
			return eval(X, sc, n->b, ret);
		if (!n->c) {
			*ret = &g_undef;
			return 0;
		}
		return eval(X, sc, n->c, ret);
	case E_LIST:
		if (!(a = jinja_list(r)))
			return -ENOMEM;
		for (size_t i = 0; i < n->n_kids; i++) {
			if ((rc = eval(X, sc, n->kids[i], &b)) < 0)
				return rc;
			if (jinja_list_push(r, a, b) < 0)
				return -ENOMEM;
		}
		*ret = a;
		return 0;
	case E_DICT:
		if (!(a = jinja_dict(r)))
			return -ENOMEM;
		for (size_t i = 0; i + 1 < n->n_kids; i += 2) {
			jv *k, *v;
			if ((rc = eval(X, sc, n->kids[i], &k)) < 0 || (rc = eval(X, sc, n->kids[i + 1], &v)) < 0)
				return rc;
			if (k->t != JV_STR)
				return jerr(r, -EINVAL, "dict keys must be strings here");
			if (dict_set_key(r, a, k, v) < 0)
				return -ENOMEM;
		}
		*ret = a;
		return 0;
	default:
		return jerr(r, -EINVAL, "not an expression");
	}
}

/* ---- statements ---- */

static int exec_for(evalctx *X, jscope *sc, const jnode *n)
{
	jinja_run *r = X->r;
	jv *seq, *items;
	int rc = eval(X, sc, n->a, &seq);
	if (rc < 0)
		return rc;
	if (seq->t == JV_DICT) {   /* iterating a dict gives its keys */
		if (!(items = jinja_list(r)))
			return -ENOMEM;
		for (size_t i = 0; i < seq->u.dict.n; i++)
			if (jinja_list_push(r, items, seq->u.dict.k[i]) < 0)
				return -ENOMEM;
	} else if (seq->t == JV_STR) {
		if (!(items = jinja_list(r)))
			return -ENOMEM;
		for (size_t i = 0; i < seq->u.str.n; i++) {
			jv *c = jv_str_masked(r, seq->u.str.s + i, seq->u.str.m ? seq->u.str.m + i : NULL, 1);
			if (!c || jinja_list_push(r, items, c) < 0)
				return -ENOMEM;
		}
	} else if (seq->t == JV_LIST) {
		items = seq;
	} else if (seq->t == JV_UNDEF) {
		items = NULL;
	} else {
		return jerr(r, -EINVAL, "cannot loop over a %s", jv_type_name(seq));
	}
	jscope *ls = scope_new(r, sc);
	if (!ls)
		return -ENOMEM;
	size_t total = items ? items->u.list.n : 0;
	/* the "if" filter runs first: loop.length counts what passes */
	jv **pass = jarena_alloc(&r->arena, (total + 1) * sizeof(*pass));
	size_t n_pass = 0;
	if (!pass)
		return -ENOMEM;
	for (size_t i = 0; i < total; i++) {
		jv *it = items->u.list.v[i];
		if (++r->steps > r->lim.max_steps)
			return jerr(r, -ELOOP, "over %ld loop iterations and calls", r->lim.max_steps);
		if (n->name2) {
			if (it->t != JV_LIST || it->u.list.n != 2)
				return jerr(r, -EINVAL, "cannot unpack a %s into %s, %s", jv_type_name(it),
					    n->name, n->name2);
			if ((rc = jinja_dict_set(r, ls->vars, n->name, it->u.list.v[0])) < 0 ||
			    (rc = jinja_dict_set(r, ls->vars, n->name2, it->u.list.v[1])) < 0)
				return rc;
		} else if ((rc = jinja_dict_set(r, ls->vars, n->name, it)) < 0) {
			return rc;
		}
		jv *ok = NULL;
		if (n->d && (rc = eval(X, ls, n->d, &ok)) < 0)
			return rc;
		if (!ok || jv_truthy(ok))
			pass[n_pass++] = it;
	}
	for (size_t i = 0; i < n_pass; i++) {
		jv *it = pass[i], *loop = jinja_dict(r);
		if (!loop || ++r->steps > r->lim.max_steps)
			return loop ? jerr(r, -ELOOP, "over %ld loop iterations and calls", r->lim.max_steps)
				    : -ENOMEM;
		struct { const char *k; jv *v; } f[] = {
			{ "index", jinja_int(r, (int64_t)i + 1) },
			{ "index0", jinja_int(r, (int64_t)i) },
			{ "revindex", jinja_int(r, (int64_t)(n_pass - i)) },
			{ "revindex0", jinja_int(r, (int64_t)(n_pass - i - 1)) },
			{ "first", jinja_bool(r, i == 0) },
			{ "last", jinja_bool(r, i + 1 == n_pass) },
			{ "length", jinja_int(r, (int64_t)n_pass) },
			{ "previtem", i ? pass[i - 1] : &g_undef },
			{ "nextitem", i + 1 < n_pass ? pass[i + 1] : &g_undef },
		};
		for (size_t k = 0; k < sizeof(f) / sizeof(f[0]); k++)
			if (!f[k].v || jinja_dict_set(r, loop, f[k].k, f[k].v) < 0)
				return -ENOMEM;
		if ((rc = jinja_dict_set(r, ls->vars, "loop", loop)) < 0)
			return rc;
		if (n->name2) {
			if ((rc = jinja_dict_set(r, ls->vars, n->name, it->u.list.v[0])) < 0 ||
			    (rc = jinja_dict_set(r, ls->vars, n->name2, it->u.list.v[1])) < 0)
				return rc;
		} else if ((rc = jinja_dict_set(r, ls->vars, n->name, it)) < 0) {
			return rc;
		}
		rc = exec_node(X, ls, n->b);
		if (rc < 0)
			return rc;
		if (rc == FLOW_BREAK)
			break;
	}
	if (!n_pass && n->c)
		return exec_node(X, sc, n->c);
	return 0;
}

static int exec_node(evalctx *X, jscope *sc, const jnode *n)
{
	jinja_run *r = X->r;
	jv *v, *target;
	int rc;
	r->line = n->line;
	switch (n->kind) {
	case N_BLOCK:
		for (size_t i = 0; i < n->n_kids; i++)
			if ((rc = exec_node(X, sc, n->kids[i])) != 0)
				return rc;
		return 0;
	case N_TEXT:
		return out_put(X, n->text, NULL, n->text_len);
	case N_OUT:
		if ((rc = eval(X, sc, n->a, &v)) < 0)
			return rc;
		if (v->t == JV_STR)
			return out_put(X, v->u.str.s, v->u.str.m, v->u.str.n);
		if (!(v = jv_to_str(r, v)))
			return -ENOMEM;
		return out_put(X, v->u.str.s, v->u.str.m, v->u.str.n);
	case N_IF:
		if ((rc = eval(X, sc, n->a, &v)) < 0)
			return rc;
		if (jv_truthy(v))
			return exec_node(X, sc, n->b);
		return n->c ? exec_node(X, sc, n->c) : 0;
	case N_FOR:
		return exec_for(X, sc, n);
	case N_SET:
		if ((rc = eval(X, sc, n->a, &v)) < 0)
			return rc;
		if (!n->name2)
			return jinja_dict_set(r, sc->vars, n->name, v);
		target = lookup(X, sc, n->name);
		if (!target)
			return -ENOMEM;
		if (target->t != JV_DICT || !target->ns)
			return jerr(r, -EINVAL, "cannot assign %s.%s: %s is not a namespace()", n->name,
				    n->name2, n->name);
		return jinja_dict_set(r, target, n->name2, v);
	case N_SETBLOCK: {
		jsb out = { .all_markup = true }, *saved = X->cap;
		X->cap = &out;
		rc = exec_node(X, sc, n->a);
		X->cap = saved;
		if (rc < 0)
			return rc;
		return (v = jsb_done(r, &out)) ? jinja_dict_set(r, sc->vars, n->name, v) : -ENOMEM;
	}
	case N_MACRO:
		if (!(v = jv_new(r, JV_MACRO)))
			return -ENOMEM;
		v->u.macro = n;
		return jinja_dict_set(r, sc->vars, n->name, v);
	case N_BREAK:
		return FLOW_BREAK;
	case N_CONTINUE:
		return FLOW_CONTINUE;
	default:
		return jerr(r, -EINVAL, "not a statement");
	}
}

/* ---- the run ---- */

int jinja_run_new(const jinja_limits *lim, jinja_run **ret)
{
	jinja_run *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	if (lim)
		r->lim = *lim;
	if (!r->lim.max_output)
		r->lim.max_output = JINJA_DEF_OUTPUT;
	if (!r->lim.max_memory)
		r->lim.max_memory = JINJA_DEF_MEMORY;
	if (r->lim.max_steps <= 0)
		r->lim.max_steps = JINJA_DEF_STEPS;
	if (r->lim.max_depth <= 0)
		r->lim.max_depth = JINJA_DEF_DEPTH;
	r->arena.limit = r->lim.max_memory;
	if (!(r->globals = jinja_dict(r))) {
		free(r);
		return -ENOMEM;
	}
	*ret = r;
	return 0;
}

void jinja_run_free(jinja_run *r)
{
	if (!r)
		return;
	jarena_release(&r->arena);
	free(r);
}

int jinja_render(jinja_run *r, const jinja_tmpl *t, vx_buf *out, vx_buf *mask,
		 char *err, size_t err_len)
{
	char dummy[1];
	if (!err || !err_len) {
		err = dummy;
		err_len = sizeof(dummy);
	}
	err[0] = 0;
	if (mask && mask->len != out->len) {
		snprintf(err, err_len, "output and mask lengths differ");
		return -EINVAL;
	}
	r->err = err;
	r->err_len = err_len;
	r->out = out;
	r->mask = mask;
	r->out_start = out->len;
	r->steps = 0;
	r->depth = 0;
	jscope *root = scope_new(r, NULL);
	if (!root)
		return -ENOMEM;
	evalctx X = { .r = r, .root = root };
	int rc = exec_node(&X, root, t->root);
	if (rc > 0)   /* break/continue outside a loop: ignored, as Jinja2 refuses to compile it */
		rc = 0;
	if (rc == -ENOMEM && !err[0])
		snprintf(err, err_len, "out of memory (run limit %zu bytes)", r->lim.max_memory);
	r->err = NULL;
	r->out = r->mask = NULL;
	return rc;
}
