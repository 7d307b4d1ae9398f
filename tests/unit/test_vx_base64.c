/* test_vx_base64.c - RFC 4648 vectors, round trips, invalid input. */
#include "vx_audio.h"
#include "vx_test.h"

#include <errno.h>
#include <stdlib.h>

static const char *const vectors[][2] = {
	{ "", "" },         { "f", "Zg==" },        { "fo", "Zm8=" },
	{ "foo", "Zm9v" },  { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" },
	{ "foobar", "Zm9vYmFy" },
};

VX_TEST(encode_rfc4648_vectors)
{
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		vx_buf b = {0};
		VX_CHECK_INT(vx_base64_encode(vectors[i][0], strlen(vectors[i][0]), &b), 0);
		VX_CHECK_STR(b.data ? b.data : "", vectors[i][1]);
		VX_CHECK_INT(b.len, strlen(vectors[i][1]));
		vx_buf_release(&b);
	}
}

VX_TEST(decode_rfc4648_vectors)
{
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		vx_buf b = {0};
		VX_CHECK_INT(vx_base64_decode(vectors[i][1], strlen(vectors[i][1]), &b), 0);
		VX_CHECK_STR(b.data ? b.data : "", vectors[i][0]);
		VX_CHECK_INT(b.len, strlen(vectors[i][0]));
		vx_buf_release(&b);
	}
}

VX_TEST(decode_ignores_whitespace_and_missing_padding)
{
	const char *in[] = { "Zm9v\nYmFy\r\n", " Z m 9 v\tY g = = ", "Zm9vYg",
			     "Zm9vYmE" };
	const char *want[] = { "foobar", "foob", "foob", "fooba" };
	for (int i = 0; i < 4; i++) {
		vx_buf b = {0};
		VX_CHECK_INT(vx_base64_decode(in[i], strlen(in[i]), &b), 0);
		VX_CHECK_STR(b.data ? b.data : "", want[i]);
		vx_buf_release(&b);
	}
}

VX_TEST(decode_rejects_invalid_input_and_keeps_buffer)
{
	const char *bad[] = {
		"Zm9v!",      /* not in the alphabet */
		"Zm-v",       /* base64url, not base64 */
		"Zm_v",
		"Z",          /* dangling 6 bits */
		"Zm9vY",
		"Zg=",        /* wrong padding */
		"Zg===",
		"Zm8==",
		"=Zg=",       /* padding first */
		"Zg==Zg==",   /* data after padding */
		"Zm9v\x80",   /* high byte */
		"====",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		vx_buf b = {0};
		vx_buf_puts(&b, "keep");
		int r = vx_base64_decode(bad[i], strlen(bad[i]), &b);
		if (r != -EBADMSG)
			fprintf(stderr, "input %zu \"%s\" -> %d\n", i, bad[i], r);
		VX_CHECK_INT(r, -EBADMSG);
		VX_CHECK_STR(b.data, "keep");
		VX_CHECK_INT(b.len, 4);
		vx_buf_release(&b);
	}
	/* an embedded NUL is an invalid byte too */
	vx_buf b = {0};
	VX_CHECK_INT(vx_base64_decode("Zm\0v", 4, &b), -EBADMSG);
	vx_buf_release(&b);
}

VX_TEST(binary_round_trip_all_lengths)
{
	unsigned char data[300];
	unsigned x = 12345;
	for (size_t i = 0; i < sizeof(data); i++) {
		x = x * 1103515245u + 12345u;
		data[i] = (unsigned char)(x >> 16);
	}
	for (size_t len = 0; len <= sizeof(data); len++) {
		vx_buf enc = {0}, dec = {0};
		VX_CHECK_INT(vx_base64_encode(data, len, &enc), 0);
		VX_CHECK_INT(enc.len, (len + 2) / 3 * 4);
		VX_CHECK_INT(vx_base64_decode(enc.data, enc.len, &dec), 0);
		VX_CHECK_INT(dec.len, len);
		VX_CHECK(len == 0 || memcmp(dec.data, data, len) == 0);
		vx_buf_release(&enc);
		vx_buf_release(&dec);
	}
}

VX_TEST(encode_appends)
{
	vx_buf b = {0};
	vx_buf_puts(&b, "x=");
	VX_CHECK_INT(vx_base64_encode("\xff\xfe", 2, &b), 0);
	VX_CHECK_STR(b.data, "x=//4=");
	VX_CHECK_INT(vx_base64_encode(NULL, 1, &b), -EINVAL);
	vx_buf_release(&b);
}

VX_TEST_MAIN(encode_rfc4648_vectors, decode_rfc4648_vectors,
	     decode_ignores_whitespace_and_missing_padding,
	     decode_rejects_invalid_input_and_keeps_buffer,
	     binary_round_trip_all_lengths, encode_appends)
