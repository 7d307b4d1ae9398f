/* vx_json.c - typed readers for cJSON object fields; see vx_json.h. */
#include "vx_json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const cJSON *vx_json_get(const cJSON *obj, const char *name)
{
	if (!cJSON_IsObject(obj))
		return NULL;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
	return v && !cJSON_IsNull(v) ? v : NULL;
}

int vx_json_number(const cJSON *obj, const char *name, double def, double min,
		   double max, double *ret)
{
	const cJSON *v = vx_json_get(obj, name);
	if (!v) {
		*ret = def;
		return 0;
	}
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) ||
	    v->valuedouble < min || v->valuedouble > max)
		return -EINVAL;
	*ret = v->valuedouble;
	return 0;
}

int vx_json_int(const cJSON *obj, const char *name, int def, int min, int max,
		int *ret)
{
	double d;
	int r = vx_json_number(obj, name, def, min, max, &d);
	if (r < 0)
		return r;
	if (d != floor(d))
		return -EINVAL;
	*ret = (int)d;
	return 0;
}

int vx_json_bool(const cJSON *obj, const char *name, bool def, bool *ret)
{
	const cJSON *v = vx_json_get(obj, name);
	if (!v) {
		*ret = def;
		return 0;
	}
	if (!cJSON_IsBool(v))
		return -EINVAL;
	*ret = cJSON_IsTrue(v);
	return 0;
}

int vx_json_string(const cJSON *obj, const char *name, const char *def,
		   size_t max_bytes, const char **ret)
{
	const cJSON *v = vx_json_get(obj, name);
	if (!v) {
		*ret = def;
		return 0;
	}
	if (!cJSON_IsString(v) || strlen(v->valuestring) > max_bytes)
		return -EINVAL;
	*ret = v->valuestring;
	return 0;
}

int vx_json_id_member(const cJSON *obj, size_t max_bytes, char *out, size_t cap)
{
	const cJSON *id = vx_json_get(obj, "id");
	out[0] = '\0';
	if (!id)
		return 0;
	if (!cJSON_IsString(id) && !cJSON_IsNumber(id))
		return -EINVAL;
	char *s = cJSON_PrintUnformatted(id);
	int r = -EINVAL;
	if (s && strlen(s) <= max_bytes &&
	    (size_t)snprintf(out, cap, ",\"id\":%s", s) < cap)
		r = 0;
	else
		out[0] = '\0';
	free(s);
	return r;
}
