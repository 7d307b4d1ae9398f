/* Unit tests for common/vx_reqbody.c (UTF-8) and the error JSON of vx_req.c. */
#include "../../common/vx_reqbody.h"
#include "vx_test.h"

#include <cjson/cJSON.h>

VX_TEST(utf8_accepts_valid_text)
{
	const char *ok[] = { "", "plain", "caf\xc3\xa9", "\xe2\x82\xac 5",
			     "\xf0\x9f\x98\x80 emoji", "\xe4\xb8\xad\xe6\x96\x87" };
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		VX_CHECK(vx_utf8_valid(ok[i], strlen(ok[i])));
}

VX_TEST(utf8_refuses_broken_overlong_and_surrogates)
{
	const char *bad[] = { "\xc3", "\xe2\x82", "\xff", "\x80",
			      "\xc0\xaf",              /* overlong '/' */
			      "\xe0\x80\xaf",          /* overlong */
			      "\xed\xa0\x80",          /* surrogate D800 */
			      "\xf4\x90\x80\x80",      /* above U+10FFFF */
			      "ok\xc3(" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		VX_CHECK(!vx_utf8_valid(bad[i], strlen(bad[i])));
}

VX_TEST(error_json_has_both_shapes)
{
	vx_buf b = {0};
	vx_error_json(&b, 400, "bad_audio", NULL, "say \"hi\"");
	cJSON *j = cJSON_Parse(b.data);
	VX_CHECK(j != NULL);
	const cJSON *e = cJSON_GetObjectItem(j, "error");
	VX_CHECK_STR(cJSON_GetObjectItem(e, "code")->valuestring, "bad_audio");
	VX_CHECK_STR(cJSON_GetObjectItem(e, "message")->valuestring, "say \"hi\"");
	VX_CHECK_STR(cJSON_GetObjectItem(e, "type")->valuestring,
		     "invalid_request_error");
	VX_CHECK(cJSON_IsNull(cJSON_GetObjectItem(e, "param")));
	cJSON_Delete(j);
	vx_buf_reset(&b);
	vx_error_json(&b, 502, "upstream_error", "model", "x");
	j = cJSON_Parse(b.data);
	e = cJSON_GetObjectItem(j, "error");
	VX_CHECK_STR(cJSON_GetObjectItem(e, "type")->valuestring, "server_error");
	VX_CHECK_STR(cJSON_GetObjectItem(e, "param")->valuestring, "model");
	cJSON_Delete(j);
	vx_buf_release(&b);
}

VX_TEST_MAIN(utf8_accepts_valid_text, utf8_refuses_broken_overlong_and_surrogates,
	     error_json_has_both_shapes)
