/* test_vx_error.c - the JSON error object: its shape, the type each status
 * gets, param, and escaping. */
#include <string.h>

#include "vx_error.h"
#include "vx_test.h"

static char *err(int status, const char *code, const char *param,
		 const char *message)
{
	static char out[512];
	vx_buf b = {0};
	vx_error_json(&b, status, code, param, message);
	snprintf(out, sizeof(out), "%s", b.data ? b.data : "");
	vx_buf_release(&b);
	return out;
}

VX_TEST(not_found_has_code_message_type_and_null_param)
{
	VX_CHECK_STR(err(404, "not_found", NULL, "no route for GET /x"),
		     "{\"error\":{\"code\":\"not_found\",\"message\":"
		     "\"no route for GET /x\",\"type\":\"not_found_error\","
		     "\"param\":null}}");
}

VX_TEST(type_follows_the_status)
{
	VX_CHECK(strstr(err(400, "c", NULL, "m"), "\"type\":\"invalid_request_error\""));
	VX_CHECK(strstr(err(401, "c", NULL, "m"), "\"type\":\"authentication_error\""));
	VX_CHECK(strstr(err(405, "c", NULL, "m"), "\"type\":\"invalid_request_error\""));
	VX_CHECK(strstr(err(413, "c", NULL, "m"), "\"type\":\"invalid_request_error\""));
	VX_CHECK(strstr(err(500, "c", NULL, "m"), "\"type\":\"server_error\""));
	VX_CHECK(strstr(err(503, "c", NULL, "m"), "\"type\":\"server_error\""));
}

VX_TEST(param_names_the_field_or_is_null)
{
	VX_CHECK(strstr(err(400, "bad", "model", "m"), ",\"param\":\"model\"}}"));
	VX_CHECK(strstr(err(400, "bad", "", "m"), ",\"param\":null}}"));
}

VX_TEST(message_and_code_are_escaped)
{
	VX_CHECK(strstr(err(400, "a\"b", NULL, "say \"hi\"\n\\"),
			"\"code\":\"a\\\"b\",\"message\":\"say \\\"hi\\\"\\n\\\\\""));
}

VX_TEST_MAIN(not_found_has_code_message_type_and_null_param,
	     type_follows_the_status, param_names_the_field_or_is_null,
	     message_and_code_are_escaped)
