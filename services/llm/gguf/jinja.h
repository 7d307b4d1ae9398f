/*
 * jinja.h - a small Jinja2 interpreter for the chat templates GGUF files
 * carry in tokenizer.chat_template.
 *
 * The subset is what the templates of Llama 3.x, Qwen2.5/3, Gemma 2/3,
 * Phi-3/4, Mistral and SmolLM2 use, with the environment Hugging Face
 * renders them in (trim_blocks, lstrip_blocks, loop controls):
 * {{ }}, {% %}, {# #}, "-"/"+" whitespace control; if/elif/else, for (with
 * an "if" filter, two-name unpacking, loop.*, else, break/continue), set
 * (names, ns.attr, {% set %}..{% endset %}), macros; literals, lists,
 * dicts, attribute/subscript/slice, calls, filters, tests, in, not,
 * and/or, ~, comparison, arithmetic, x if c else y; string and dict
 * methods; raise_exception(), namespace(), range(), strftime_now().
 * Undefined names are Undefined (printing nothing, falsy), as in Jinja2's
 * default; attribute access on Undefined is Undefined too.
 *
 * Every string carries one markup bit per byte: 1 when it comes from the
 * template's own text, 0 when it comes from a value the caller marked as
 * data (message text). Operations keep the bits (concatenation, slicing,
 * trim, replace); the render appends them to a mask, so a tokenizer can
 * refuse control tokens inside data (see chat_template.h).
 *
 * Bounds: parse nesting depth, macro call depth, loop/step count, output
 * bytes and run memory are all limited (jinja_limits; 0 = the default);
 * past one the render fails with a message, never runs away.
 *
 * Ownership: a jinja_tmpl is immutable after jinja_parse and may be shared
 * by threads. A jinja_run is one render's state and arena: every value
 * made with it lives until jinja_run_free; one thread at a time.
 *
 *     jinja_tmpl *t; jinja_parse(src, len, &t, err, sizeof err);
 *     jinja_run *r; jinja_run_new(NULL, &r);
 *     jinja_set_global(r, "messages", msgs_list_made_with_jinja_list);
 *     jinja_render(r, t, &out, &mask, err, sizeof err);
 *     jinja_run_free(r); jinja_tmpl_free(t);
 */
#ifndef VX_GGUF_JINJA_H
#define VX_GGUF_JINJA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "vx_buf.h"

#define JINJA_MAX_SOURCE   (1 << 20)   /* template bytes */
#define JINJA_PARSE_DEPTH  128         /* nested expressions and blocks */

typedef struct jinja_tmpl jinja_tmpl;
typedef struct jinja_run jinja_run;
typedef struct jv jv;                  /* a value, owned by its run */

typedef struct jinja_limits {
	size_t max_output;      /* rendered bytes; default 4 MiB */
	size_t max_memory;      /* run arena bytes; default 64 MiB */
	long max_steps;         /* loop iterations + macro calls; default 1e6 */
	int max_depth;          /* macro call depth; default 32 */
} jinja_limits;

/*
 * Parses src (len bytes, NUL not needed). Caller owns *ret.
 * -EINVAL with "line N: ..." in err on a syntax error, -E2BIG for a source
 * over JINJA_MAX_SOURCE or nested deeper than JINJA_PARSE_DEPTH, -ENOMEM.
 */
int jinja_parse(const char *src, size_t len, jinja_tmpl **ret, char *err, size_t err_len);
void jinja_tmpl_free(jinja_tmpl *t);     /* accepts NULL */

/* A render's state; lim NULL or zero fields = defaults. Caller owns *ret. */
int jinja_run_new(const jinja_limits *lim, jinja_run **ret);
void jinja_run_free(jinja_run *r);       /* accepts NULL */

/* Values for the globals. NULL on -ENOMEM (or past max_memory). markup:
 * the string is template markup (true) or data (false: message text). */
jv *jinja_str(jinja_run *r, const char *s, size_t n, bool markup);
jv *jinja_bool(jinja_run *r, bool b);
jv *jinja_int(jinja_run *r, int64_t i);
jv *jinja_float(jinja_run *r, double f);
jv *jinja_none(jinja_run *r);
jv *jinja_list(jinja_run *r);
jv *jinja_dict(jinja_run *r);
int jinja_list_push(jinja_run *r, jv *list, jv *v);
int jinja_dict_set(jinja_run *r, jv *dict, const char *key, jv *v);
/* jinja_dict_set with a string value as the key (its markup bits kept:
 * a key the client wrote is data). */
int jinja_dict_put(jinja_run *r, jv *dict, jv *key, jv *v);
int jinja_set_global(jinja_run *r, const char *name, jv *v);
/* The clock strftime_now() reads (default: time(NULL) at the call). */
void jinja_set_time(jinja_run *r, time_t now);

/*
 * Renders t with the run's globals, appending to out and (when not NULL)
 * one byte per output byte to mask: 1 markup, 0 data. out and mask must
 * hold equally many bytes on entry. Returns 0; -EINVAL (type error,
 * unknown filter/test/method, bad call: "line N: ..." in err), -EPERM
 * (the template called raise_exception: its message in err), -E2BIG
 * (max_output), -ELOOP (max_steps or max_depth), -ENOMEM. On failure out
 * and mask may hold a partial render.
 */
int jinja_render(jinja_run *r, const jinja_tmpl *t, vx_buf *out, vx_buf *mask,
		 char *err, size_t err_len);

#endif
