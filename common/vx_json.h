/*
 * vx_json.h - typed, range-checked readers for the fields of a cJSON object
 * (a request body, a WebSocket config message).
 *
 * Every reader takes the object, the field name, a default, the limits and
 * a ret_* pointer, and returns 0 or -EINVAL:
 *   - field absent, JSON null, or obj NULL (or not an object): *ret = def, 0;
 *   - field present with the right type and within the limits: *ret set, 0;
 *   - anything else (wrong type, out of range, a fraction where an integer
 *     is wanted, a string too long): -EINVAL and *ret is untouched.
 * The caller writes the client-facing message; these never log.
 *
 * Ownership: vx_json_string hands back a pointer into obj (or def), valid
 * while obj lives. Thread-safety: reading only; safe on a tree no one edits.
 *
 *     int rate; const char *voice;
 *     if (vx_json_int(j, "sample_rate", 16000, 8000, 48000, &rate) < 0) bad();
 *     if (vx_json_string(j, "voice", NULL, 128, &voice) < 0) bad();
 */
#ifndef VX_JSON_H
#define VX_JSON_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

/* The field, or NULL when obj is NULL or the field is absent or null. */
const cJSON *vx_json_get(const cJSON *obj, const char *name);

/* A finite number in [min, max]. */
int vx_json_number(const cJSON *obj, const char *name, double def, double min,
		   double max, double *ret);
/* A whole number in [min, max] (2.0 is fine, 2.5 is not). */
int vx_json_int(const cJSON *obj, const char *name, int def, int min, int max,
		int *ret);
/* true or false. */
int vx_json_bool(const cJSON *obj, const char *name, bool def, bool *ret);
/* A string of at most max_bytes bytes (excluding the NUL); def may be NULL. */
int vx_json_string(const cJSON *obj, const char *name, const char *def,
		   size_t max_bytes, const char **ret);

/*
 * A client's "id" echoed in events: out = ",\"id\":<the id as JSON>" when
 * obj's "id" is a string or number whose JSON text is at most max_bytes and
 * fits in cap; otherwise out = "" and -EINVAL when an id was present, 0 when
 * not. out must hold cap >= 1 bytes.
 */
int vx_json_id_member(const cJSON *obj, size_t max_bytes, char *out, size_t cap);

#endif
