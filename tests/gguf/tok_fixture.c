/* tok_fixture.c - see tok_fixture.h. */
#include "tok_fixture.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#define TOK_FIXTURE_MAX_BYTES (64u << 20)

static char *read_file(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0, got;

	if (!f)
		return NULL;
	do {
		if (len + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 65536;
			char *p = cap <= TOK_FIXTURE_MAX_BYTES ? realloc(buf, cap) : NULL;
			if (!p) {
				free(buf);
				fclose(f);
				errno = ENOMEM;
				return NULL;
			}
			buf = p;
		}
		got = fread(buf + len, 1, cap - len - 1, f);
		len += got;
	} while (got > 0);
	fclose(f);
	buf[len] = 0;
	*ret_len = len;
	return buf;
}

static int32_t id_field(const cJSON *root, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
	return cJSON_IsNumber(v) ? (int32_t)v->valuedouble : -1;
}

int tok_fixture_load(const char *path, tok **ret)
{
	size_t len = 0, n, nm = 0;
	char *src = read_file(path, &len);
	cJSON *root;
	const cJSON *toks, *scores, *types, *merges, *model, *pre;
	const char **tv = NULL, **mv = NULL;
	size_t *tl = NULL, *ml = NULL;
	float *sv = NULL;
	int32_t *yv = NULL;
	int rc = -EINVAL;

	if (!src)
		return -errno;
	root = cJSON_ParseWithLength(src, len);
	free(src);
	if (!root)
		return -EINVAL;
	toks = cJSON_GetObjectItemCaseSensitive(root, "tokens");
	scores = cJSON_GetObjectItemCaseSensitive(root, "scores");
	types = cJSON_GetObjectItemCaseSensitive(root, "types");
	merges = cJSON_GetObjectItemCaseSensitive(root, "merges");
	model = cJSON_GetObjectItemCaseSensitive(root, "model");
	pre = cJSON_GetObjectItemCaseSensitive(root, "pre");
	if (!cJSON_IsArray(toks) || !cJSON_IsString(model))
		goto out_free_json;
	n = (size_t)cJSON_GetArraySize(toks);
	if (cJSON_IsArray(merges))
		nm = (size_t)cJSON_GetArraySize(merges);
	tv = calloc(n + 1, sizeof(*tv));
	tl = calloc(n + 1, sizeof(*tl));
	sv = calloc(n + 1, sizeof(*sv));
	yv = calloc(n + 1, sizeof(*yv));
	mv = calloc(nm + 1, sizeof(*mv));
	ml = calloc(nm + 1, sizeof(*ml));
	if (!tv || !tl || !sv || !yv || !mv || !ml) {
		rc = -ENOMEM;
		goto out_free_arrays;
	}
	/* walk the arrays: cJSON_GetArrayItem is O(index) */
	const cJSON *x, *s = cJSON_IsArray(scores) ? scores->child : NULL;
	const cJSON *y = cJSON_IsArray(types) ? types->child : NULL;
	size_t i = 0;
	cJSON_ArrayForEach(x, toks) {
		if (!cJSON_IsString(x))
			goto out_free_arrays;
		tv[i] = x->valuestring;
		tl[i] = strlen(x->valuestring);
		sv[i] = cJSON_IsNumber(s) ? (float)s->valuedouble : 0.0f;
		yv[i] = cJSON_IsNumber(y) ? (int32_t)y->valuedouble : 1;
		s = s ? s->next : NULL;
		y = y ? y->next : NULL;
		i++;
	}
	i = 0;
	if (nm) {
		cJSON_ArrayForEach(x, merges) {
			if (!cJSON_IsString(x))
				goto out_free_arrays;
			mv[i] = x->valuestring;
			ml[i++] = strlen(x->valuestring);
		}
	}
	tok_spec spec = {
		.model = model->valuestring,
		.pre = cJSON_IsString(pre) ? pre->valuestring : NULL,
		.tokens = tv, .token_lens = tl, .n_tokens = n,
		.scores = cJSON_IsArray(scores) ? sv : NULL,
		.types = cJSON_IsArray(types) ? yv : NULL,
		.merges = mv, .merge_lens = ml, .n_merges = nm,
		.bos = id_field(root, "bos"), .eos = id_field(root, "eos"),
		.eot = id_field(root, "eot"), .unk = id_field(root, "unk"),
		.pad = id_field(root, "pad"),
		.add_bos = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "add_bos")),
	};
	rc = tok_new(&spec, ret);
out_free_arrays:
	free(tv);
	free(tl);
	free(sv);
	free(yv);
	free(mv);
	free(ml);
out_free_json:
	cJSON_Delete(root);
	return rc;
}
