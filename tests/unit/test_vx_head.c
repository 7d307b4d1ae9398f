/* test_vx_head.c - request heads: accepted, incomplete, refused (and why). */
#include "vx_head.h"
#include "vx_test.h"

#include <string.h>

static const vx_head_limits lim = {
	.max_head = 1024, .max_line = 256, .max_headers = 8, .max_body = 1000,
};

static enum vx_head_verdict check(const char *s, vx_head *h)
{
	return vx_head_check(s, strlen(s), &lim, h);
}

static void check_refused(const char *s, int status)
{
	vx_head h;
	VX_CHECK_INT(vx_head_check(s, strlen(s), &lim, &h), VX_HEAD_REFUSE);
	VX_CHECK_INT(h.status, status);
	VX_CHECK(h.code && h.message);
}

VX_TEST(plain_get_is_accepted_with_its_path)
{
	vx_head h;
	const char *s = "GET /healthz?x=1 HTTP/1.1\r\nHost: a\r\n\r\nrest";
	VX_CHECK_INT(check(s, &h), VX_HEAD_OK);
	VX_CHECK_INT(h.method_len, 3);
	VX_CHECK_INT(h.path_len, 8);
	VX_CHECK(!memcmp(h.path, "/healthz", 8));
	VX_CHECK_INT(h.head_len, strlen(s) - 4);
	VX_CHECK(!h.upgrade_websocket && !h.chunked);
}

VX_TEST(every_prefix_of_a_good_head_asks_for_more)
{
	const char *s = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n";
	vx_head h;
	for (size_t n = 0; n < strlen(s); n++)
		VX_CHECK_INT(vx_head_check(s, n, &lim, &h), VX_HEAD_MORE);
	VX_CHECK_INT(check(s, &h), VX_HEAD_OK);
	VX_CHECK_INT(h.content_length, 3);
}

VX_TEST(websocket_upgrade_is_recognised)
{
	vx_head h;
	VX_CHECK_INT(check("GET /ws/chat HTTP/1.1\r\nHost: a\r\nUpgrade: WebSocket\r\n"
			   "Connection: Upgrade\r\n\r\n", &h), VX_HEAD_OK);
	VX_CHECK(h.upgrade_websocket);
	VX_CHECK(h.authorization == NULL);
}

VX_TEST(authorization_value_is_kept_trimmed)
{
	vx_head h;
	VX_CHECK_INT(check("GET /ws/chat HTTP/1.1\r\nHost: a\r\n"
			   "authorization:  Bearer k1 \r\nUpgrade: websocket\r\n\r\n",
			   &h), VX_HEAD_OK);
	VX_CHECK_INT(h.authorization_len, 9);
	VX_CHECK(!strncmp(h.authorization, "Bearer k1", 9));
}

VX_TEST(leading_empty_lines_and_bare_lf_are_tolerated)
{
	vx_head h;
	VX_CHECK_INT(check("\r\nGET / HTTP/1.0\n\n", &h), VX_HEAD_OK);
	VX_CHECK_INT(h.path_len, 1);
}

VX_TEST(smuggling_shapes_are_refused)
{
	check_refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
		      "Transfer-Encoding: chunked\r\n\r\n", 400);
	check_refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
		      "Content-Length: 5\r\n\r\n", 400);
	check_refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
		      "Transfer-Encoding: chunked\r\n\r\n", 400);
	check_refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501);
	check_refused("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400);
	check_refused("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400);
	check_refused("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400);
	check_refused("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
	check_refused("GET / HTTP/1.1\r\n\r\n", 400);
}

VX_TEST(control_bytes_are_refused_before_the_head_ends)
{
	vx_head h;
	const char nul[] = "GET /a\0b HTTP/1.1\r\n";
	VX_CHECK_INT(vx_head_check(nul, sizeof(nul) - 1, &lim, &h), VX_HEAD_REFUSE);
	VX_CHECK_INT(h.status, 400);
	check_refused("GET / HTTP/1.1\r\nX: a\rb\r\n", 400);
	check_refused("GET / HTTP/1.1\r\nX: \x01\r\n", 400);
}

VX_TEST(sizes_over_the_limits_are_refused_with_their_status)
{
	char line[400] = "GET /";
	memset(line + 5, 'a', 300);
	line[305] = '\0';
	check_refused(line, 414);               /* no end of line yet */
	char head[1200] = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
	memset(head + strlen(head), 'v', 1100);
	check_refused(head, 431);
	check_refused("GET / HTTP/1.1\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\n"
		      "F: 1\r\nG: 1\r\nH: 1\r\nHost: a\r\n\r\n", 431);
	check_refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n", 413);
	check_refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 413);
	check_refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n", 400);
}

VX_TEST(first_chunk_size_is_checked)
{
	vx_head h;
	const char *hd = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
	VX_CHECK_INT(check(hd, &h), VX_HEAD_MORE);   /* chunk line not in yet */
	char buf[256];
	snprintf(buf, sizeof(buf), "%s10;ext=1\r\n", hd);
	VX_CHECK_INT(check(buf, &h), VX_HEAD_OK);
	VX_CHECK(h.chunked);
	snprintf(buf, sizeof(buf), "%sFFFFFFFFFFFFFFFF\r\n", hd);
	check_refused(buf, 413);
	snprintf(buf, sizeof(buf), "%s00000000000000000000001\r\n", hd);
	VX_CHECK_INT(check(buf, &h), VX_HEAD_OK);
	snprintf(buf, sizeof(buf), "%szz\r\n", hd);
	check_refused(buf, 400);
	/* Expect: 100-continue clients wait for us before sending a chunk. */
	VX_CHECK_INT(check("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
			   "Transfer-Encoding: chunked\r\n\r\n", &h), VX_HEAD_OK);
}

VX_TEST(version_and_request_line_shape)
{
	check_refused("PRI * HTTP/2.0\r\n\r\n", 505);
	check_refused("GET / HTTP/1.1 extra\r\nHost: a\r\n\r\n", 400);
	check_refused("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
	check_refused("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
	check_refused("\x16\x03\x01\x02\x00\n", 400);
}

VX_TEST_MAIN(plain_get_is_accepted_with_its_path,
	     every_prefix_of_a_good_head_asks_for_more,
	     websocket_upgrade_is_recognised, authorization_value_is_kept_trimmed,
	     leading_empty_lines_and_bare_lf_are_tolerated,
	     smuggling_shapes_are_refused,
	     control_bytes_are_refused_before_the_head_ends,
	     sizes_over_the_limits_are_refused_with_their_status,
	     first_chunk_size_is_checked,
	     version_and_request_line_shape)
