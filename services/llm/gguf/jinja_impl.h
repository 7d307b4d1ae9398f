/*
 * jinja_impl.h - what jinja_parse.c, jinja_eval.c and jinja_lib.c share:
 * the arena, the AST and the value representation. Not a public header.
 */
#ifndef VX_GGUF_JINJA_IMPL_H
#define VX_GGUF_JINJA_IMPL_H

#include "jinja.h"

#include <stdarg.h>

/* ---- arena: bump allocation in chunks, freed at once ---- */
typedef struct jarena_chunk jarena_chunk;
typedef struct jarena {
	jarena_chunk *head;
	size_t used;        /* bytes handed out in all chunks */
	size_t limit;       /* 0 = none */
} jarena;

void *jarena_alloc(jarena *a, size_t n);   /* zeroed; NULL past limit/ENOMEM */
void jarena_release(jarena *a);

/* ---- AST ---- */
typedef enum jnode_kind {
	/* statements */
	N_BLOCK, N_TEXT, N_OUT, N_IF, N_FOR, N_SET, N_SETBLOCK, N_MACRO, N_BREAK,
	N_CONTINUE,
	/* expressions */
	E_LIT, E_NAME, E_ATTR, E_INDEX, E_SLICE, E_CALL, E_FILTER, E_TEST,
	E_NOT, E_NEG, E_BIN, E_AND, E_OR, E_COND, E_LIST, E_DICT,
} jnode_kind;

typedef enum jbinop {
	OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW, OP_CONCAT,
	OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN, OP_NOTIN,
} jbinop;

typedef struct jnode jnode;
struct jnode {
	jnode_kind kind;
	int op;             /* jbinop for E_BIN; negated test for E_TEST */
	int line;
	jnode *a, *b, *c, *d;   /* children by kind (see jinja_parse.c) */
	jnode **kids;       /* block statements, call args, list items, dict k/v pairs */
	size_t n_kids;
	const char **kw_names;  /* keyword args (calls, filters, tests) / macro params */
	jnode **kw_vals;
	size_t n_kw;
	const char *name;   /* E_NAME, E_ATTR, filter/test, set target, macro, loop vars */
	const char *name2;  /* second loop var, set attribute */
	const char *text;   /* N_TEXT */
	size_t text_len;
	jv *lit;            /* E_LIT */
};

struct jinja_tmpl {
	jarena arena;
	jnode *root;
};

/* ---- values ---- */
typedef enum jv_type {
	JV_UNDEF, JV_NONE, JV_BOOL, JV_INT, JV_FLOAT, JV_STR, JV_LIST, JV_DICT,
	JV_FUNC, JV_MACRO,
} jv_type;

struct jv {
	jv_type t;
	bool ns;                /* JV_DICT: a namespace() (attributes assignable) */
	union {
		bool b;
		int64_t i;
		double f;
		struct {
			const char *s;
			const unsigned char *m;   /* per-byte markup bits; NULL = all markup */
			size_t n;
		} str;
		struct {
			jv **v;
			size_t n, cap;
		} list;
		struct {
			jv **k, **v;      /* keys are JV_STR */
			size_t n, cap;
		} dict;
		struct {
			int id;           /* builtin function or method */
			jv *self;         /* bound object for methods, else NULL */
		} fn;
		const jnode *macro;
	} u;
};

/* ---- the run ---- */
typedef struct jscope jscope;
struct jinja_run {
	jarena arena;
	jinja_limits lim;
	jv *globals;            /* JV_DICT */
	time_t now;             /* 0 = time(NULL) */
	long steps;
	int depth;
	vx_buf *out, *mask;
	size_t out_start;
	char *err;
	size_t err_len;
	int line;               /* of the node being evaluated, for messages */
};

/* A string being built: text plus markup bits. */
typedef struct jsb {
	char *s;
	unsigned char *m;
	size_t n, cap;
	bool all_markup;
} jsb;

int jerr(jinja_run *r, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

jv *jv_new(jinja_run *r, jv_type t);
jv *jv_undef(void);
jv *jv_str_masked(jinja_run *r, const char *s, const unsigned char *m, size_t n);
jv *jv_float(jinja_run *r, double f);
bool jv_truthy(const jv *v);
bool jv_equal(const jv *a, const jv *b);
const char *jv_type_name(const jv *v);
jv *jv_dict_get(const jv *d, const char *k, size_t kn);

int jsb_put(jinja_run *r, jsb *b, const char *s, const unsigned char *m, size_t n);
int jsb_puts(jinja_run *r, jsb *b, const char *s);      /* markup */
int jsb_value(jinja_run *r, jsb *b, const jv *v);       /* str(v) */
jv *jsb_done(jinja_run *r, jsb *b);
int jv_to_json(jinja_run *r, jsb *b, const jv *v, int indent, int level);
jv *jv_to_str(jinja_run *r, const jv *v);                /* str(v); NULL on ENOMEM */

/* jinja_lib.c: builtins by name */
enum { FN_RAISE = 1, FN_NAMESPACE, FN_RANGE, FN_STRFTIME, FN_DICT, FN_METHOD_BASE = 100 };
int jlib_global_fn(const char *name);                   /* FN_* or 0 */
int jlib_method(const jv *self, const char *name);      /* method id or 0 */
int jlib_call(jinja_run *r, int id, jv *self, jv **args, size_t n_args,
	      const char **kw_names, jv **kw_vals, size_t n_kw, jv **ret);
int jlib_filter(jinja_run *r, const char *name, jv *v, jv **args, size_t n_args,
		const char **kw_names, jv **kw_vals, size_t n_kw, jv **ret);
int jlib_test(jinja_run *r, const char *name, jv *v, jv **args, size_t n_args, bool *ret);

#endif
