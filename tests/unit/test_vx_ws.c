/* test_vx_ws.c - the parts of vx_ws that need no server: NUL detection in
 * JSON text messages. */
#include "vx_test.h"
#include "vx_ws.h"

#include <string.h>

static bool has_nul(const char *s)
{
	return vx_ws_text_has_nul(s, strlen(s));
}

VX_TEST(json_nul_escape_is_found_anywhere)
{
	VX_CHECK(has_nul("{\"voice\":\"slt\\u0000x\"}"));
	VX_CHECK(has_nul("\\u0000"));
	VX_CHECK(has_nul("{\"a\":\"\\\\\\u0000\"}"));   /* \\ then \u0000 */
	VX_CHECK(has_nul("{\"k\\u0000\":1}"));          /* in a key too */
	VX_CHECK(has_nul("{\"a\":\"\\u0001\\u00001\"}"));
}

VX_TEST(escaped_backslash_before_u0000_is_text)
{
	VX_CHECK(!has_nul("{\"a\":\"\\\\u0000\"}"));    /* \\u0000: backslash, u0000 */
	VX_CHECK(!has_nul("{\"a\":\"u0000\"}"));
	VX_CHECK(!has_nul("{\"a\":\"\\u0041\"}"));
	VX_CHECK(!has_nul(""));
}

VX_TEST(raw_nul_byte_and_cut_escapes)
{
	static const char raw[] = "{\"a\":\"x\0y\"}";
	VX_CHECK(vx_ws_text_has_nul(raw, sizeof(raw) - 1));
	VX_CHECK(!vx_ws_text_has_nul(raw, 7));        /* before the NUL */
	VX_CHECK(!vx_ws_text_has_nul("\\u000", 5));   /* escape cut short */
	VX_CHECK(!vx_ws_text_has_nul("\\", 1));
}

VX_TEST_MAIN(json_nul_escape_is_found_anywhere,
	     escaped_backslash_before_u0000_is_text, raw_nul_byte_and_cut_escapes)
