/*
 * fuzz_json.c - the typed readers of vx_json.h over any JSON text: every
 * reader on the fields a config message or request body may carry, with
 * tight and loose limits, and the id echo, whose output must be the
 * promised prefix and fit its buffer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vx_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const names[] = {
	"sample_rate", "voice", "id", "language", "speed", "stream", "event",
	"", "a", "temperature", NULL,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cJSON *j = cJSON_ParseWithLength((const char *)data, size);
	if (!j)
		return 0;
	for (const char *const *n = names; *n; n++) {
		double d = 0;
		int i = 0;
		bool b = false;
		const char *s = NULL;
		(void)vx_json_get(j, *n);
		if (vx_json_number(j, *n, 1.5, -1e9, 1e9, &d) == 0 &&
		    !(d >= -1e9 && d <= 1e9))
			abort();
		if (vx_json_int(j, *n, 7, 8000, 48000, &i) == 0 && i != 7 &&
		    (i < 8000 || i > 48000))
			abort();
		(void)vx_json_int(j, *n, 0, INT32_MIN, INT32_MAX, &i);
		(void)vx_json_bool(j, *n, false, &b);
		if (vx_json_string(j, *n, NULL, 16, &s) == 0 && s && strlen(s) > 16)
			abort();
		(void)vx_json_string(j, *n, "def", 0, &s);
	}
	char out[64];
	for (size_t cap = 1; cap <= sizeof(out); cap += 21) {
		memset(out, 'x', sizeof(out));
		int r = vx_json_id_member(j, 32, out, cap);
		if (memchr(out, 0, cap) == NULL)
			abort();
		if (r == 0 && out[0] && strncmp(out, ",\"id\":", 6) != 0)
			abort();
	}
	cJSON_Delete(j);
	return 0;
}
