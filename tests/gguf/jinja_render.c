/*
 * jinja_render - renders a Jinja template with jinja.h, for the tests that
 * compare it with Python's jinja2 (tests/gguf/test_jinja.py).
 *
 *     jinja_render TEMPLATE [--now EPOCH] [--mask FILE] < context.json
 *     jinja_render TEMPLATE [--now EPOCH] < [context, ...]   (JSON list out)
 *
 * The context is a JSON object of globals. Strings under "messages" are
 * data (mask 0), every other string is markup. The render goes to stdout;
 * with --mask the per-byte markup bits go to FILE as '0'/'1' characters.
 * Exit 0, 2 on a parse or render error (message on stderr), 3 when the
 * template called raise_exception.
 */
#include "../../services/llm/gguf/jinja.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *slurp(FILE *f, size_t *ret_len)
{
	size_t cap = 4096, n = 0;
	char *s = malloc(cap);
	for (size_t k; s && (k = fread(s + n, 1, cap - n - 1, f)) > 0;) {
		n += k;
		if (cap - n < 2) {
			char *t = realloc(s, cap *= 2);
			if (!t) {
				free(s);
				return NULL;
			}
			s = t;
		}
	}
	if (s)
		s[n] = 0;
	*ret_len = n;
	return s;
}

static jv *from_json(jinja_run *r, const cJSON *j, bool data)
{
	if (cJSON_IsString(j))
		return jinja_str(r, j->valuestring, strlen(j->valuestring), !data);
	if (cJSON_IsBool(j))
		return jinja_bool(r, cJSON_IsTrue(j));
	if (cJSON_IsNull(j))
		return jinja_none(r);
	if (cJSON_IsNumber(j))
		return jinja_int(r, (int64_t)j->valuedouble);
	if (cJSON_IsArray(j) || cJSON_IsObject(j)) {
		jv *c = cJSON_IsArray(j) ? jinja_list(r) : jinja_dict(r);
		for (const cJSON *e = j->child; c && e; e = e->next) {
			jv *x = from_json(r, e, data);
			if (!x || (cJSON_IsArray(j) ? jinja_list_push(r, c, x) : jinja_dict_set(r, c, e->string, x)) < 0)
				return NULL;
		}
		return c;
	}
	return NULL;
}

/* One render of t with the globals of the JSON object c. */
static int render_one(const jinja_tmpl *t, const cJSON *c, time_t now, vx_buf *out, vx_buf *mask,
		      char *err, size_t err_len)
{
	jinja_run *r;
	int rc = jinja_run_new(NULL, &r);
	if (rc < 0)
		return rc;
	if (now)
		jinja_set_time(r, now);
	for (const cJSON *e = c->child; e; e = e->next) {
		jv *v = from_json(r, e, !strcmp(e->string, "messages"));
		if (!v || jinja_set_global(r, e->string, v) < 0) {
			jinja_run_free(r);
			snprintf(err, err_len, "out of memory");
			return -ENOMEM;
		}
	}
	rc = jinja_render(r, t, out, mask, err, err_len);
	jinja_run_free(r);
	return rc;
}

static int status_of(int rc)
{
	return rc == 0 ? 0 : rc == -EPERM ? 3 : 2;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: jinja_render TEMPLATE [--now EPOCH] [--mask FILE] < context.json\n");
		return 2;
	}
	const char *mask_path = NULL;
	time_t now = 0;
	for (int i = 2; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--now"))
			now = (time_t)strtoll(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--mask"))
			mask_path = argv[i + 1];
	}
	FILE *tf = fopen(argv[1], "rb");
	if (!tf) {
		perror(argv[1]);
		return 2;
	}
	size_t tlen, clen;
	char *src = slurp(tf, &tlen), *ctx = slurp(stdin, &clen), err[512];
	fclose(tf);
	cJSON *j = ctx ? cJSON_Parse(ctx) : NULL;
	jinja_tmpl *t = NULL;
	vx_buf out = { 0 }, mask = { 0 };
	int rc, status = 2;
	if (!src || !j || !(cJSON_IsObject(j) || cJSON_IsArray(j))) {
		fprintf(stderr, "bad template or context\n");
		goto out_free;
	}
	if ((rc = jinja_parse(src, tlen, &t, err, sizeof(err))) < 0) {
		fprintf(stderr, "parse: %s (%s)\n", err, strerror(-rc));
		goto out_free;
	}
	if (cJSON_IsArray(j)) {   /* many contexts: a JSON list of {status, out|error} */
		cJSON *res = cJSON_CreateArray();
		for (const cJSON *c = j->child; res && c; c = c->next) {
			vx_buf_reset(&out);
			vx_buf_reset(&mask);
			rc = cJSON_IsObject(c) ? render_one(t, c, now, &out, &mask, err, sizeof(err)) : -EINVAL;
			cJSON *o = cJSON_CreateObject();
			cJSON_AddNumberToObject(o, "status", status_of(rc));
			if (rc == 0)
				cJSON_AddStringToObject(o, "out", out.data ? out.data : "");
			else
				cJSON_AddStringToObject(o, "error", err);
			cJSON_AddItemToArray(res, o);
		}
		char *txt = res ? cJSON_PrintUnformatted(res) : NULL;
		if (txt)
			fputs(txt, stdout);
		free(txt);
		cJSON_Delete(res);
		status = txt ? 0 : 2;
		goto out_free;
	}
	if ((rc = render_one(t, j, now, &out, &mask, err, sizeof(err))) < 0) {
		fprintf(stderr, "render: %s (%s)\n", err, strerror(-rc));
		status = status_of(rc);
		goto out_free;
	}
	fwrite(out.data ? out.data : "", 1, out.len, stdout);
	if (mask_path) {
		FILE *mf = fopen(mask_path, "wb");
		for (size_t i = 0; mf && i < mask.len; i++)
			fputc(mask.data[i] ? '1' : '0', mf);
		if (mf)
			fclose(mf);
	}
	status = 0;
out_free:
	vx_buf_release(&out);
	vx_buf_release(&mask);
	jinja_tmpl_free(t);
	cJSON_Delete(j);
	free(src);
	free(ctx);
	return status;
}
