/* Unit tests for common/vx_buf.c. */
#include "../../common/vx_buf.h"
#include "vx_test.h"

#include <stdlib.h>

VX_TEST(buf_appends_and_stays_terminated)
{
	vx_buf b = {0};
	VX_CHECK_INT(vx_buf_puts(&b, "ab"), 0);
	VX_CHECK_INT(vx_buf_printf(&b, "%d-%s", 12, "x"), 0);
	VX_CHECK_STR(b.data, "ab12-x");
	VX_CHECK_INT(b.len, 6);
	vx_buf_release(&b);
	VX_CHECK(b.data == NULL);
}

VX_TEST(buf_json_str_escapes_controls_and_quotes)
{
	vx_buf b = {0};
	vx_buf_json_str(&b, "a\"b\\\n\x01", 6);
	VX_CHECK_STR(b.data, "\"a\\\"b\\\\\\n\\u0001\"");
	vx_buf_release(&b);
}

VX_TEST(buf_grows_past_many_doublings)
{
	vx_buf b = {0};
	for (int i = 0; i < 10000; i++)
		vx_buf_append(&b, "0123456789", 10);
	VX_CHECK_INT(b.len, 100000);
	size_t n;
	char *p = vx_buf_detach(&b, &n);
	VX_CHECK_INT(n, 100000);
	VX_CHECK(b.data == NULL && b.len == 0);
	free(p);
}

VX_TEST_MAIN(buf_appends_and_stays_terminated,
	     buf_json_str_escapes_controls_and_quotes,
	     buf_grows_past_many_doublings)
