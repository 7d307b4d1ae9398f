/*
 * fuzz_base64.c - vx_base64_decode on any bytes; whatever decodes must
 * encode back to text that decodes to the same bytes, and any bytes must
 * survive encode -> decode unchanged.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vx_audio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	vx_buf dec = {0}, enc = {0}, again = {0};

	if (vx_base64_decode((const char *)data, size, &dec) == 0) {
		if (vx_base64_encode(dec.data, dec.len, &enc) != 0 ||
		    vx_base64_decode(enc.data, enc.len, &again) != 0 ||
		    again.len != dec.len ||
		    (dec.len && memcmp(again.data, dec.data, dec.len) != 0))
			abort();
	}
	vx_buf_release(&enc);
	vx_buf_release(&again);

	if (vx_base64_encode(data, size, &enc) != 0 ||
	    enc.len != (size + 2) / 3 * 4 ||
	    vx_base64_decode(enc.data, enc.len, &again) != 0 ||
	    again.len != size || (size && memcmp(again.data, data, size) != 0))
		abort();
	vx_buf_release(&dec);
	vx_buf_release(&enc);
	vx_buf_release(&again);
	return 0;
}
