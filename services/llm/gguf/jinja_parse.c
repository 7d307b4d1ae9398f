/*
 * jinja_parse.c - the arena, the lexer (with Hugging Face's whitespace
 * rules: trim_blocks, lstrip_blocks, "-" and "+") and the recursive-descent
 * parser that turns a template into the AST of jinja_impl.h.
 */
#include "jinja_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena ---- */

struct jarena_chunk {
	jarena_chunk *next;
	size_t cap, used;
	max_align_t data[];
};

#define JARENA_CHUNK (64 * 1024)

void *jarena_alloc(jarena *a, size_t n)
{
	n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
	if (!n)
		n = sizeof(max_align_t);
	if (a->limit && (a->used + n > a->limit || n > a->limit))
		return NULL;
	jarena_chunk *c = a->head;
	if (!c || c->cap - c->used < n) {
		size_t cap = n > JARENA_CHUNK ? n : JARENA_CHUNK;
		c = malloc(sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->cap = cap;
		c->used = 0;
		c->next = a->head;
		a->head = c;
	}
	void *p = (char *)c->data + c->used;
	c->used += n;
	a->used += n;
	memset(p, 0, n);
	return p;
}

void jarena_release(jarena *a)
{
	for (jarena_chunk *c = a->head, *next; c; c = next) {
		next = c->next;
		free(c);
	}
	a->head = NULL;
	a->used = 0;
}

/* ---- lexer ---- */

typedef enum tk_type {
	TK_EOF, TK_TEXT, TK_VAR_BEGIN, TK_VAR_END, TK_BLOCK_BEGIN, TK_BLOCK_END,
	TK_NAME, TK_STR, TK_INT, TK_FLOAT, TK_OP,
} tk_type;

typedef struct token {
	tk_type t;
	int line;
	const char *p;      /* source text (TK_TEXT, TK_NAME, TK_OP) */
	size_t n;
	char *s;            /* TK_STR: unescaped (arena), TK_NAME: NUL-terminated copy */
	size_t sn;
	int64_t i;
	double f;
} token;

typedef struct parser {
	const char *src;
	size_t len;
	jarena *arena;
	token *tk;
	size_t n_tk, cap_tk, pos;
	int depth;
	char *err;
	size_t err_len;
	int rc;
} parser;

__attribute__((format(printf, 3, 4)))
static int perr(parser *P, int line, const char *fmt, ...)
{
	if (P->rc)
		return P->rc;
	int n = snprintf(P->err, P->err_len, "line %d: ", line);
	if (n >= 0 && (size_t)n < P->err_len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(P->err + n, P->err_len - (size_t)n, fmt, ap);
		va_end(ap);
	}
	P->rc = -EINVAL;
	return P->rc;
}

static token *emit(parser *P, tk_type t, int line, const char *p, size_t n)
{
	if (P->n_tk == P->cap_tk) {
		size_t cap = P->cap_tk ? P->cap_tk * 2 : 256;
		token *nt = realloc(P->tk, cap * sizeof(*nt));
		if (!nt) {
			P->rc = -ENOMEM;
			return NULL;
		}
		P->tk = nt;
		P->cap_tk = cap;
	}
	token *k = &P->tk[P->n_tk++];
	*k = (token){ .t = t, .line = line, .p = p, .n = n };
	return k;
}

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static int count_lines(const char *p, size_t n)
{
	int k = 0;
	for (size_t i = 0; i < n; i++)
		k += p[i] == '\n';
	return k;
}

static char *arena_strndup(jarena *a, const char *s, size_t n)
{
	char *d = jarena_alloc(a, n + 1);
	if (d)
		memcpy(d, s, n);
	return d;
}

/* A quoted string at src[*i] (the quote); unescapes Python escapes. */
static int lex_string(parser *P, size_t *i, int *line)
{
	char q = P->src[*i];
	size_t j = *i + 1;
	char *d = jarena_alloc(P->arena, P->len - *i + 1);
	if (!d)
		return P->rc = -ENOMEM;
	size_t n = 0;
	for (;;) {
		if (j >= P->len)
			return perr(P, *line, "unterminated string");
		char c = P->src[j++];
		if (c == q)
			break;
		if (c == '\n')
			(*line)++;
		if (c != '\\') {
			d[n++] = c;
			continue;
		}
		if (j >= P->len)
			return perr(P, *line, "unterminated string");
		c = P->src[j++];
		switch (c) {
		case 'n': d[n++] = '\n'; break;
		case 't': d[n++] = '\t'; break;
		case 'r': d[n++] = '\r'; break;
		case '0': d[n++] = 0; break;
		case '\\': case '\'': case '"': d[n++] = c; break;
		case '\n': (*line)++; break;
		case 'u': {
			unsigned cp = 0;
			if (j + 4 > P->len)
				return perr(P, *line, "bad \\u escape");
			for (int k = 0; k < 4; k++) {
				char h = P->src[j++];
				cp = cp * 16 + (unsigned)(h >= '0' && h <= '9' ? h - '0' :
						h >= 'a' && h <= 'f' ? h - 'a' + 10 :
						h >= 'A' && h <= 'F' ? h - 'A' + 10 : 99);
				if (cp > 0xffff)
					return perr(P, *line, "bad \\u escape");
			}
			if (cp < 0x80) {
				d[n++] = (char)cp;
			} else if (cp < 0x800) {
				d[n++] = (char)(0xc0 | cp >> 6);
				d[n++] = (char)(0x80 | (cp & 0x3f));
			} else {
				d[n++] = (char)(0xe0 | cp >> 12);
				d[n++] = (char)(0x80 | (cp >> 6 & 0x3f));
				d[n++] = (char)(0x80 | (cp & 0x3f));
			}
			break;
		}
		default: d[n++] = '\\'; d[n++] = c; break;
		}
	}
	token *k = emit(P, TK_STR, *line, P->src + *i, j - *i);
	if (!k)
		return P->rc;
	k->s = d;
	k->sn = n;
	*i = j;
	return 0;
}

/*
 * The tokens inside a tag from src[*i] up to its end delimiter ("}}" for a
 * variable, "%}" for a block; brackets must be balanced). On return *i is
 * past the delimiter and *ret_sign is '-', '+' or 0 (the sign before it).
 */
static int lex_tag(parser *P, size_t *i, int *line, bool var, char *ret_sign)
{
	const char *s = P->src;
	char close = var ? '}' : '%';
	int brackets = 0;
	for (;;) {
		while (*i < P->len && is_ws(s[*i])) {
			if (s[*i] == '\n')
				(*line)++;
			(*i)++;
		}
		if (*i >= P->len)
			return perr(P, *line, "unterminated %s", var ? "{{" : "{%");
		size_t j = *i;
		char c = s[j];
		if (!brackets) {
			char sign = (c == '-' || c == '+') ? c : 0;
			size_t k = j + (sign ? 1 : 0);
			if (k + 1 < P->len && s[k] == close && s[k + 1] == '}' &&
			    !(sign == '+' && var)) {
				*ret_sign = sign;
				*i = k + 2;
				return emit(P, var ? TK_VAR_END : TK_BLOCK_END, *line, s + j, 0) ? 0 : P->rc;
			}
		}
		if (c == '\'' || c == '"') {
			if (lex_string(P, i, line) < 0)
				return P->rc;
			continue;
		}
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') {
			while (j < P->len && ((s[j] >= 'a' && s[j] <= 'z') || (s[j] >= 'A' && s[j] <= 'Z') ||
					      (s[j] >= '0' && s[j] <= '9') || s[j] == '_'))
				j++;
			token *k = emit(P, TK_NAME, *line, s + *i, j - *i);
			if (!k || !(k->s = arena_strndup(P->arena, s + *i, j - *i)))
				return P->rc = -ENOMEM;
			k->sn = j - *i;
			*i = j;
			continue;
		}
		if (c >= '0' && c <= '9') {
			bool fl = false;
			while (j < P->len && ((s[j] >= '0' && s[j] <= '9') || s[j] == '_'))
				j++;
			if (j + 1 < P->len && s[j] == '.' && s[j + 1] >= '0' && s[j + 1] <= '9') {
				fl = true;
				for (j++; j < P->len && s[j] >= '0' && s[j] <= '9'; j++)
					;
			}
			if (j + 1 < P->len && (s[j] == 'e' || s[j] == 'E')) {   /* exponent */
				size_t e = j + 1 + (s[j + 1] == '+' || s[j + 1] == '-');
				if (e < P->len && s[e] >= '0' && s[e] <= '9') {
					fl = true;
					for (j = e; j < P->len && s[j] >= '0' && s[j] <= '9'; j++)
						;
				}
			}
			char buf[64];
			size_t n = 0;
			for (size_t q = *i; q < j && n + 1 < sizeof(buf); q++)
				if (s[q] != '_')
					buf[n++] = s[q];
			buf[n] = 0;
			token *k = emit(P, fl ? TK_FLOAT : TK_INT, *line, s + *i, j - *i);
			if (!k)
				return P->rc;
			if (fl)
				k->f = strtod(buf, NULL);
			else
				k->i = strtoll(buf, NULL, 10);
			*i = j;
			continue;
		}
		static const char *const two[] = { "==", "!=", "<=", ">=", "//", "**" };
		size_t n = 0;
		for (size_t q = 0; q < sizeof(two) / sizeof(two[0]); q++)
			if (j + 1 < P->len && s[j] == two[q][0] && s[j + 1] == two[q][1])
				n = 2;
		if (!n && strchr("+-*/%~<>=()[]{}.,:|", c) && c)
			n = 1;
		if (!n)
			return perr(P, *line, "unexpected character '%c'", c);
		if (c == '(' || c == '[' || c == '{')
			brackets++;
		else if ((c == ')' || c == ']' || c == '}') && brackets > 0)
			brackets--;
		if (!emit(P, TK_OP, *line, s + j, n))
			return P->rc;
		*i = j + n;
	}
}

/* The whole source to tokens, applying the whitespace rules to the text. */
static int lex(parser *P)
{
	const char *s = P->src;
	size_t pos = 0;
	int line = 1;
	bool line_starting = true;
	while (pos < P->len) {
		size_t t = pos;
		while (t + 1 < P->len && !(s[t] == '{' && (s[t + 1] == '{' || s[t + 1] == '%' || s[t + 1] == '#')))
			t++;
		if (t + 1 >= P->len)
			t = P->len;
		size_t tl = t - pos;
		char kind = t < P->len ? s[t + 1] : 0;
		char sign = t + 2 < P->len && (s[t + 2] == '-' || s[t + 2] == '+') ? s[t + 2] : 0;
		if (kind && sign == '-') {
			while (tl && is_ws(s[pos + tl - 1]))
				tl--;
		} else if (kind && kind != '{' && sign != '+') {   /* lstrip_blocks */
			size_t l = tl;
			while (l && s[pos + l - 1] != '\n')
				l--;
			if (l > 0 || line_starting) {
				size_t q = l;
				while (q < tl && (s[pos + q] == ' ' || s[pos + q] == '\t'))
					q++;
				if (q == tl)
					tl = l;
			}
		}
		if (tl && !emit(P, TK_TEXT, line, s + pos, tl))
			return P->rc;
		line += count_lines(s + pos, t - pos);
		if (t >= P->len)
			break;
		size_t i = t + 2 + (sign ? 1 : 0);
		char end_sign = 0;
		if (kind == '#') {
			const char *e = NULL;
			for (size_t q = i; q + 1 < P->len; q++)
				if (s[q] == '#' && s[q + 1] == '}') {
					e = s + q;
					break;
				}
			if (!e)
				return perr(P, line, "unterminated comment");
			line += count_lines(s + i, (size_t)(e - s) - i);
			end_sign = e > s + i && (e[-1] == '-' || e[-1] == '+') ? e[-1] : 0;
			i = (size_t)(e - s) + 2;
		} else {
			if (!emit(P, kind == '{' ? TK_VAR_BEGIN : TK_BLOCK_BEGIN, line, s + t, 2))
				return P->rc;
			if (lex_tag(P, &i, &line, kind == '{', &end_sign) < 0)
				return P->rc;
		}
		if (end_sign == '-') {
			while (i < P->len && is_ws(s[i])) {
				if (s[i] == '\n')
					line++;
				i++;
			}
		} else if (kind != '{' && end_sign != '+' && i < P->len && s[i] == '\n') {
			i++;   /* trim_blocks */
			line++;
		}
		line_starting = i > 0 && s[i - 1] == '\n';
		pos = i;
	}
	return emit(P, TK_EOF, line, s + P->len, 0) ? 0 : P->rc;
}

/* ---- parser ---- */

static token *peek(parser *P)
{
	return &P->tk[P->pos];
}

static token *next(parser *P)
{
	token *k = &P->tk[P->pos];
	if (k->t != TK_EOF)
		P->pos++;
	return k;
}

static bool is_op(const token *k, const char *op)
{
	return k->t == TK_OP && k->n == strlen(op) && !memcmp(k->p, op, k->n);
}

static bool is_name(const token *k, const char *name)
{
	return k->t == TK_NAME && !strcmp(k->s, name);
}

static bool accept_op(parser *P, const char *op)
{
	if (!is_op(peek(P), op))
		return false;
	next(P);
	return true;
}

static bool accept_name(parser *P, const char *name)
{
	if (!is_name(peek(P), name))
		return false;
	next(P);
	return true;
}

static int expect_op(parser *P, const char *op)
{
	if (accept_op(P, op))
		return 0;
	return perr(P, peek(P)->line, "expected '%s'", op);
}

static int expect_end(parser *P)
{
	if (peek(P)->t == TK_BLOCK_END) {
		next(P);
		return 0;
	}
	return perr(P, peek(P)->line, "expected '%%}'");
}

static jnode *mk(parser *P, jnode_kind kind, int line)
{
	jnode *n = jarena_alloc(P->arena, sizeof(*n));
	if (!n) {
		P->rc = -ENOMEM;
		return NULL;
	}
	n->kind = kind;
	n->line = line;
	return n;
}

/* Growable arrays of children while parsing (moved into the arena at the end). */
typedef struct nodevec {
	jnode **v;
	const char **names;
	size_t n, cap;
} nodevec;

static int nv_push(parser *P, nodevec *nv, jnode *x, const char *name)
{
	if (nv->n == nv->cap) {
		size_t cap = nv->cap ? nv->cap * 2 : 8;
		jnode **v = jarena_alloc(P->arena, cap * sizeof(*v));
		const char **nm = jarena_alloc(P->arena, cap * sizeof(*nm));
		if (!v || !nm)
			return P->rc = -ENOMEM;
		if (nv->n) {
			memcpy(v, nv->v, nv->n * sizeof(*v));
			memcpy(nm, nv->names, nv->n * sizeof(*nm));
		}
		nv->v = v;
		nv->names = nm;
		nv->cap = cap;
	}
	nv->v[nv->n] = x;
	nv->names[nv->n++] = name;
	return 0;
}

static jnode *parse_expr(parser *P, bool with_cond);
static jnode *parse_unary(parser *P, bool with_filter);

static jv *lit_new(parser *P, jv_type t)
{
	jv *v = jarena_alloc(P->arena, sizeof(*v));
	if (!v)
		P->rc = -ENOMEM;
	else
		v->t = t;
	return v;
}

static jnode *lit_node(parser *P, int line, jv *v)
{
	jnode *n = v ? mk(P, E_LIT, line) : NULL;
	if (n)
		n->lit = v;
	return n;
}

/* "(" args ")" after a callee: positional and name=value arguments. */
static int parse_args(parser *P, jnode *call)
{
	nodevec pos = { 0 }, kw = { 0 };
	while (!accept_op(P, ")")) {
		if (pos.n + kw.n && expect_op(P, ",") < 0)
			return P->rc;
		if (accept_op(P, ")"))
			break;
		token *k = peek(P);
		if (k->t == TK_NAME && is_op(&P->tk[P->pos + 1], "=")) {
			P->pos += 2;
			jnode *v = parse_expr(P, true);
			if (!v || nv_push(P, &kw, v, k->s) < 0)
				return P->rc ? P->rc : -ENOMEM;
		} else {
			if (kw.n)
				return perr(P, k->line, "positional argument after keyword argument");
			jnode *v = parse_expr(P, true);
			if (!v || nv_push(P, &pos, v, NULL) < 0)
				return P->rc ? P->rc : -ENOMEM;
		}
		if (peek(P)->t == TK_EOF)
			return perr(P, k->line, "unterminated argument list");
	}
	call->kids = pos.v;
	call->n_kids = pos.n;
	call->kw_vals = kw.v;
	call->kw_names = kw.names;
	call->n_kw = kw.n;
	return 0;
}

static jnode *parse_primary(parser *P)
{
	token *k = next(P);
	jnode *n;
	switch (k->t) {
	case TK_NAME:
		if (!strcmp(k->s, "true") || !strcmp(k->s, "True") ||
		    !strcmp(k->s, "false") || !strcmp(k->s, "False")) {
			jv *v = lit_new(P, JV_BOOL);
			if (v)
				v->u.b = k->s[0] == 't' || k->s[0] == 'T';
			return lit_node(P, k->line, v);
		}
		if (!strcmp(k->s, "none") || !strcmp(k->s, "None"))
			return lit_node(P, k->line, lit_new(P, JV_NONE));
		if ((n = mk(P, E_NAME, k->line)))
			n->name = k->s;
		return n;
	case TK_STR: {
		/* adjacent literals concatenate */
		size_t total = k->sn, first = P->pos - 1;
		while (peek(P)->t == TK_STR)
			total += next(P)->sn;
		char *s = jarena_alloc(P->arena, total + 1);
		jv *v = lit_new(P, JV_STR);
		if (!s || !v)
			return NULL;
		size_t off = 0;
		for (size_t q = first; q < P->pos; q++) {
			memcpy(s + off, P->tk[q].s, P->tk[q].sn);
			off += P->tk[q].sn;
		}
		v->u.str.s = s;
		v->u.str.n = total;
		return lit_node(P, k->line, v);
	}
	case TK_INT: {
		jv *v = lit_new(P, JV_INT);
		if (v)
			v->u.i = k->i;
		return lit_node(P, k->line, v);
	}
	case TK_FLOAT: {
		jv *v = lit_new(P, JV_FLOAT);
		if (v)
			v->u.f = k->f;
		return lit_node(P, k->line, v);
	}
	case TK_OP:
		if (is_op(k, "(")) {
			if (accept_op(P, ")"))
				return mk(P, E_LIST, k->line);   /* () */
			jnode *e = parse_expr(P, true);
			if (!e)
				return NULL;
			if (is_op(peek(P), ",")) {   /* a tuple: a list here */
				nodevec items = { 0 };
				if (nv_push(P, &items, e, NULL) < 0)
					return NULL;
				while (accept_op(P, ",") && !is_op(peek(P), ")")) {
					jnode *x = parse_expr(P, true);
					if (!x || nv_push(P, &items, x, NULL) < 0)
						return NULL;
				}
				if (!(e = mk(P, E_LIST, k->line)))
					return NULL;
				e->kids = items.v;
				e->n_kids = items.n;
			}
			return expect_op(P, ")") < 0 ? NULL : e;
		}
		if (is_op(k, "[") || is_op(k, "{")) {
			bool dict = is_op(k, "{");
			const char *close = dict ? "}" : "]";
			nodevec items = { 0 };
			while (!accept_op(P, close)) {
				if (items.n && expect_op(P, ",") < 0)
					return NULL;
				if (accept_op(P, close))
					break;
				jnode *x = parse_expr(P, true);
				if (!x || nv_push(P, &items, x, NULL) < 0)
					return NULL;
				if (dict) {
					if (expect_op(P, ":") < 0 || !(x = parse_expr(P, true)) ||
					    nv_push(P, &items, x, NULL) < 0)
						return NULL;
				}
				if (peek(P)->t == TK_EOF || peek(P)->t == TK_VAR_END || peek(P)->t == TK_BLOCK_END) {
					perr(P, k->line, "unterminated %s", dict ? "dict" : "list");
					return NULL;
				}
			}
			if (!(n = mk(P, dict ? E_DICT : E_LIST, k->line)))
				return NULL;
			n->kids = items.v;
			n->n_kids = items.n;
			return n;
		}
		break;
	default:
		break;
	}
	perr(P, k->line, "unexpected %s", k->t == TK_EOF ? "end of template" :
	     k->t == TK_VAR_END ? "'}}'" : k->t == TK_BLOCK_END ? "'%}'" : "token");
	return NULL;
}

static jnode *parse_postfix(parser *P, jnode *n)
{
	while (n) {
		token *k = peek(P);
		if (is_op(k, ".")) {
			next(P);
			token *a = next(P);
			if (a->t == TK_INT) {   /* x.0 is x[0] */
				jv *v = lit_new(P, JV_INT);
				jnode *idx = v ? lit_node(P, a->line, v) : NULL;
				jnode *s = idx ? mk(P, E_INDEX, k->line) : NULL;
				if (!s)
					return NULL;
				v->u.i = a->i;
				s->a = n;
				s->b = idx;
				n = s;
				continue;
			}
			if (a->t != TK_NAME) {
				perr(P, a->line, "expected an attribute name after '.'");
				return NULL;
			}
			jnode *s = mk(P, E_ATTR, k->line);
			if (!s)
				return NULL;
			s->a = n;
			s->name = a->s;
			n = s;
		} else if (is_op(k, "[")) {
			next(P);
			jnode *parts[3] = { NULL, NULL, NULL };
			int np = 0;
			bool slice = false;
			for (;;) {
				if (!is_op(peek(P), ":") && !is_op(peek(P), "]") &&
				    !(parts[np] = parse_expr(P, true)))
					return NULL;
				if (accept_op(P, ":")) {
					slice = true;
					if (++np > 2) {
						perr(P, k->line, "bad slice");
						return NULL;
					}
					continue;
				}
				break;
			}
			if (expect_op(P, "]") < 0)
				return NULL;
			if (!slice && !parts[0]) {
				perr(P, k->line, "empty subscript");
				return NULL;
			}
			jnode *s = mk(P, slice ? E_SLICE : E_INDEX, k->line);
			if (!s)
				return NULL;
			s->a = n;
			s->b = parts[0];
			s->c = parts[1];
			s->d = parts[2];
			n = s;
		} else if (is_op(k, "(")) {
			next(P);
			jnode *c = mk(P, E_CALL, k->line);
			if (!c || parse_args(P, c) < 0)
				return NULL;
			c->a = n;
			n = c;
		} else {
			break;
		}
	}
	return n;
}

static bool starts_test_arg(const token *k)
{
	if (k->t == TK_STR || k->t == TK_INT || k->t == TK_FLOAT)
		return true;
	if (k->t == TK_OP)
		return is_op(k, "[") || is_op(k, "-");
	if (k->t != TK_NAME)
		return false;
	static const char *const stop[] = { "and", "or", "else", "if", "not", "in", "is" };
	for (size_t i = 0; i < sizeof(stop) / sizeof(stop[0]); i++)
		if (!strcmp(k->s, stop[i]))
			return false;
	return true;
}

static jnode *parse_filters(parser *P, jnode *n)
{
	while (n) {
		token *k = peek(P);
		if (is_op(k, "|")) {
			next(P);
			token *f = next(P);
			if (f->t != TK_NAME) {
				perr(P, f->line, "expected a filter name");
				return NULL;
			}
			jnode *x = mk(P, E_FILTER, f->line);
			if (!x)
				return NULL;
			x->a = n;
			x->name = f->s;
			if (accept_op(P, "(") && parse_args(P, x) < 0)
				return NULL;
			n = x;
		} else if (is_name(k, "is")) {
			next(P);
			bool neg = accept_name(P, "not");
			token *f = next(P);
			if (f->t != TK_NAME) {
				perr(P, f->line, "expected a test name");
				return NULL;
			}
			jnode *x = mk(P, E_TEST, f->line);
			if (!x)
				return NULL;
			x->a = n;
			x->name = f->s;
			x->op = neg;
			if (accept_op(P, "(")) {
				if (parse_args(P, x) < 0)
					return NULL;
			} else if (starts_test_arg(peek(P))) {
				jnode *arg = parse_unary(P, false);
				jnode **kids = arg ? jarena_alloc(P->arena, sizeof(*kids)) : NULL;
				if (!kids)
					return NULL;
				kids[0] = arg;
				x->kids = kids;
				x->n_kids = 1;
			}
			n = x;
		} else {
			break;
		}
	}
	return n;
}

static jnode *parse_unary(parser *P, bool with_filter)
{
	token *k = peek(P);
	jnode *n;
	if (++P->depth > JINJA_PARSE_DEPTH) {
		perr(P, k->line, "expression nested too deeply");
		P->rc = -E2BIG;
		return NULL;
	}
	if (is_op(k, "-") || is_op(k, "+")) {
		next(P);
		jnode *x = parse_unary(P, false);
		if (is_op(k, "+") || !x) {
			n = x;
		} else if ((n = mk(P, E_NEG, k->line))) {
			n->a = x;
		}
	} else {
		n = parse_postfix(P, parse_primary(P));
	}
	if (with_filter)
		n = parse_filters(P, n);
	P->depth--;
	return n;
}

static jnode *bin(parser *P, int line, int op, jnode *a, jnode *b)
{
	jnode *n = a && b ? mk(P, E_BIN, line) : NULL;
	if (n) {
		n->op = op;
		n->a = a;
		n->b = b;
	}
	return n;
}

static jnode *parse_pow(parser *P)
{
	jnode *n = parse_unary(P, true);
	while (n && is_op(peek(P), "**")) {
		int line = next(P)->line;
		n = bin(P, line, OP_POW, n, parse_unary(P, true));
	}
	return n;
}

static jnode *parse_math2(parser *P)
{
	jnode *n = parse_pow(P);
	for (;;) {
		token *k = peek(P);
		int op = is_op(k, "*") ? OP_MUL : is_op(k, "/") ? OP_DIV : is_op(k, "//") ? OP_FLOORDIV :
			 is_op(k, "%") ? OP_MOD : -1;
		if (!n || op < 0)
			return n;
		next(P);
		n = bin(P, k->line, op, n, parse_pow(P));
	}
}

static jnode *parse_concat(parser *P)
{
	jnode *n = parse_math2(P);
	while (n && is_op(peek(P), "~")) {
		int line = next(P)->line;
		n = bin(P, line, OP_CONCAT, n, parse_math2(P));
	}
	return n;
}

static jnode *parse_math1(parser *P)
{
	jnode *n = parse_concat(P);
	for (;;) {
		token *k = peek(P);
		int op = is_op(k, "+") ? OP_ADD : is_op(k, "-") ? OP_SUB : -1;
		if (!n || op < 0)
			return n;
		next(P);
		n = bin(P, k->line, op, n, parse_concat(P));
	}
}

static jnode *parse_compare(parser *P)
{
	jnode *n = parse_math1(P);
	for (;;) {
		token *k = peek(P);
		int op = is_op(k, "==") ? OP_EQ : is_op(k, "!=") ? OP_NE : is_op(k, "<") ? OP_LT :
			 is_op(k, "<=") ? OP_LE : is_op(k, ">") ? OP_GT : is_op(k, ">=") ? OP_GE :
			 is_name(k, "in") ? OP_IN : -1;
		if (op < 0 && is_name(k, "not") && is_name(&P->tk[P->pos + 1], "in")) {
			next(P);
			op = OP_NOTIN;
		}
		if (!n || op < 0)
			return n;
		next(P);
		n = bin(P, k->line, op, n, parse_math1(P));
	}
}

static jnode *parse_not(parser *P)
{
	token *k = peek(P);
	if (!is_name(k, "not"))
		return parse_compare(P);
	next(P);
	if (++P->depth > JINJA_PARSE_DEPTH) {
		perr(P, k->line, "expression nested too deeply");
		P->rc = -E2BIG;
		return NULL;
	}
	jnode *x = parse_not(P), *n = x ? mk(P, E_NOT, k->line) : NULL;
	P->depth--;
	if (n)
		n->a = x;
	return n;
}

static jnode *parse_and(parser *P)
{
	jnode *n = parse_not(P);
	while (n && is_name(peek(P), "and")) {
		int line = next(P)->line;
		jnode *b = parse_not(P), *x = b ? mk(P, E_AND, line) : NULL;
		if (!x)
			return NULL;
		x->a = n;
		x->b = b;
		n = x;
	}
	return n;
}

static jnode *parse_or(parser *P)
{
	jnode *n = parse_and(P);
	while (n && is_name(peek(P), "or")) {
		int line = next(P)->line;
		jnode *b = parse_and(P), *x = b ? mk(P, E_OR, line) : NULL;
		if (!x)
			return NULL;
		x->a = n;
		x->b = b;
		n = x;
	}
	return n;
}

/* x if c else y (with_cond), else an or-expression. */
static jnode *parse_expr(parser *P, bool with_cond)
{
	if (++P->depth > JINJA_PARSE_DEPTH) {
		perr(P, peek(P)->line, "expression nested too deeply");
		P->rc = -E2BIG;
		return NULL;
	}
	jnode *n = parse_or(P);
	while (with_cond && n && is_name(peek(P), "if")) {
		int line = next(P)->line;
		jnode *c = parse_or(P), *e = NULL;
		if (!c)
			return NULL;
		if (accept_name(P, "else") && !(e = parse_expr(P, true)))
			return NULL;
		jnode *x = mk(P, E_COND, line);
		if (!x)
			return NULL;
		x->a = c;
		x->b = n;
		x->c = e;   /* NULL: undefined */
		n = x;
	}
	P->depth--;
	return n;
}

/* ---- statements ---- */

static jnode *parse_body(parser *P, const char *const *ends, const char **ret_end);

static const char *const END_IF[] = { "elif", "else", "endif", NULL };
static const char *const END_FOR[] = { "else", "endfor", NULL };
static const char *const END_FOR2[] = { "endfor", NULL };
static const char *const END_SET[] = { "endset", NULL };
static const char *const END_MACRO[] = { "endmacro", NULL };
static const char *const END_GEN[] = { "endgeneration", NULL };

static jnode *parse_if(parser *P, int line)
{
	jnode *n = mk(P, N_IF, line);
	const char *end;
	if (!n || !(n->a = parse_expr(P, true)) || expect_end(P) < 0 ||
	    !(n->b = parse_body(P, END_IF, &end)))
		return NULL;
	if (!strcmp(end, "elif")) {
		n->c = parse_if(P, peek(P)->line);
	} else if (!strcmp(end, "else")) {
		static const char *const only_endif[] = { "endif", NULL };
		if (expect_end(P) < 0 || !(n->c = parse_body(P, only_endif, &end)) || expect_end(P) < 0)
			return NULL;
	} else if (expect_end(P) < 0) {
		return NULL;
	}
	return n->c || !strcmp(end, "endif") ? n : NULL;
}

static jnode *parse_for(parser *P, int line)
{
	jnode *n = mk(P, N_FOR, line);
	if (!n)
		return NULL;
	token *k = next(P);
	if (k->t != TK_NAME)
		return perr(P, k->line, "expected a loop variable"), NULL;
	n->name = k->s;
	if (accept_op(P, ",")) {
		k = next(P);
		if (k->t != TK_NAME)
			return perr(P, k->line, "expected a second loop variable"), NULL;
		n->name2 = k->s;
	}
	if (!accept_name(P, "in"))
		return perr(P, peek(P)->line, "expected 'in'"), NULL;
	if (!(n->a = parse_expr(P, false)))
		return NULL;
	if (accept_name(P, "if") && !(n->d = parse_expr(P, false)))
		return NULL;
	if (accept_name(P, "recursive"))
		return perr(P, line, "recursive loops are not supported"), NULL;
	const char *end;
	if (expect_end(P) < 0 || !(n->b = parse_body(P, END_FOR, &end)) || expect_end(P) < 0)
		return NULL;
	if (!strcmp(end, "else") && (!(n->c = parse_body(P, END_FOR2, &end)) || expect_end(P) < 0))
		return NULL;
	return n;
}

static jnode *parse_set(parser *P, int line)
{
	token *k = next(P);
	if (k->t != TK_NAME)
		return perr(P, k->line, "expected a name after 'set'"), NULL;
	jnode *n = mk(P, N_SET, line);
	if (!n)
		return NULL;
	n->name = k->s;
	if (accept_op(P, ".")) {
		token *a = next(P);
		if (a->t != TK_NAME)
			return perr(P, a->line, "expected an attribute name"), NULL;
		n->name2 = a->s;
	}
	if (peek(P)->t == TK_BLOCK_END && !n->name2) {   /* {% set x %}...{% endset %} */
		const char *end;
		next(P);
		n->kind = N_SETBLOCK;
		if (!(n->a = parse_body(P, END_SET, &end)) || expect_end(P) < 0)
			return NULL;
		return n;
	}
	if (expect_op(P, "=") < 0 || !(n->a = parse_expr(P, true)) || expect_end(P) < 0)
		return NULL;
	return n;
}

static jnode *parse_macro(parser *P, int line)
{
	token *k = next(P);
	if (k->t != TK_NAME)
		return perr(P, k->line, "expected a macro name"), NULL;
	jnode *n = mk(P, N_MACRO, line);
	if (!n || expect_op(P, "(") < 0)
		return NULL;
	n->name = k->s;
	nodevec params = { 0 };
	while (!accept_op(P, ")")) {
		if (params.n && expect_op(P, ",") < 0)
			return NULL;
		token *p = next(P);
		if (p->t != TK_NAME)
			return perr(P, p->line, "expected a parameter name"), NULL;
		jnode *def = NULL;
		if (accept_op(P, "=") && !(def = parse_expr(P, true)))
			return NULL;
		if (nv_push(P, &params, def, p->s) < 0)
			return NULL;
	}
	n->kw_names = params.names;
	n->kw_vals = params.v;
	n->n_kw = params.n;
	const char *end;
	if (expect_end(P) < 0 || !(n->a = parse_body(P, END_MACRO, &end)) || expect_end(P) < 0)
		return NULL;
	return n;
}

/* One {% ... %} statement; the keyword is the next token. */
static jnode *parse_stmt(parser *P, token *kw)
{
	int line = kw->line;
	if (!strcmp(kw->s, "if"))
		return parse_if(P, line);
	if (!strcmp(kw->s, "for"))
		return parse_for(P, line);
	if (!strcmp(kw->s, "set"))
		return parse_set(P, line);
	if (!strcmp(kw->s, "macro"))
		return parse_macro(P, line);
	if (!strcmp(kw->s, "break") || !strcmp(kw->s, "continue")) {
		jnode *n = mk(P, kw->s[0] == 'b' ? N_BREAK : N_CONTINUE, line);
		return n && expect_end(P) == 0 ? n : NULL;
	}
	if (!strcmp(kw->s, "generation")) {   /* transformers' AssistantTracker: a plain block */
		const char *end;
		if (expect_end(P) < 0)
			return NULL;
		jnode *b = parse_body(P, END_GEN, &end);
		return b && expect_end(P) == 0 ? b : NULL;
	}
	perr(P, line, "unknown statement '%s'", kw->s);
	return NULL;
}

/*
 * Statements until one of ends (NULL-terminated; NULL ends: until EOF).
 * *ret_end is the end keyword found; the parser stands after it.
 */
static jnode *parse_body(parser *P, const char *const *ends, const char **ret_end)
{
	nodevec kids = { 0 };
	int line = peek(P)->line;
	if (++P->depth > JINJA_PARSE_DEPTH) {
		perr(P, line, "blocks nested too deeply");
		P->rc = -E2BIG;
		return NULL;
	}
	for (;;) {
		token *k = next(P);
		jnode *n = NULL;
		if (k->t == TK_EOF) {
			if (ends) {
				size_t last = 0;
				while (ends[last + 1])
					last++;
				perr(P, k->line, "missing '{%% %s %%}'", ends[last]);
				return NULL;
			}
			break;
		} else if (k->t == TK_TEXT) {
			if ((n = mk(P, N_TEXT, k->line))) {
				n->text = k->p;
				n->text_len = k->n;
			}
		} else if (k->t == TK_VAR_BEGIN) {
			jnode *e = parse_expr(P, true);
			if (!e)
				return NULL;
			if (peek(P)->t != TK_VAR_END)
				return perr(P, peek(P)->line, "expected '}}'"), NULL;
			next(P);
			if ((n = mk(P, N_OUT, k->line)))
				n->a = e;
		} else if (k->t == TK_BLOCK_BEGIN) {
			token *kw = next(P);
			if (kw->t != TK_NAME)
				return perr(P, kw->line, "expected a statement name"), NULL;
			for (size_t i = 0; ends && ends[i]; i++)
				if (!strcmp(kw->s, ends[i])) {
					*ret_end = ends[i];
					goto out_done;
				}
			n = parse_stmt(P, kw);
		} else {
			return perr(P, k->line, "unexpected token"), NULL;
		}
		if (!n || nv_push(P, &kids, n, NULL) < 0)
			return NULL;
	}
out_done:
	P->depth--;
	jnode *b = mk(P, N_BLOCK, line);
	if (b) {
		b->kids = kids.v;
		b->n_kids = kids.n;
	}
	return b;
}

int jinja_parse(const char *src, size_t len, jinja_tmpl **ret, char *err, size_t err_len)
{
	char dummy[1];
	if (!err || !err_len) {
		err = dummy;
		err_len = sizeof(dummy);
	}
	err[0] = 0;
	if (len > JINJA_MAX_SOURCE) {
		snprintf(err, err_len, "template of %zu bytes (limit %d)", len, JINJA_MAX_SOURCE);
		return -E2BIG;
	}
	jinja_tmpl *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	parser P = { .src = src, .len = len, .arena = &t->arena, .err = err, .err_len = err_len };
	int rc = lex(&P);
	if (rc == 0) {
		const char *end;
		t->root = parse_body(&P, NULL, &end);
		rc = t->root ? 0 : P.rc ? P.rc : -ENOMEM;
	}
	free(P.tk);
	if (rc < 0) {
		if (rc == -ENOMEM)
			snprintf(err, err_len, "out of memory");
		jinja_tmpl_free(t);
		return rc;
	}
	*ret = t;
	return 0;
}

void jinja_tmpl_free(jinja_tmpl *t)
{
	if (!t)
		return;
	jarena_release(&t->arena);
	free(t);
}
