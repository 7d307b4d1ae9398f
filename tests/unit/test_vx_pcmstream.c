/* Unit tests for common/vx_pcmstream.c. */
#include "../../common/vx_pcmstream.h"
#include "vx_test.h"

#include <errno.h>
#include <math.h>

VX_TEST(pcm16_split_mid_sample_is_rejoined)
{
	vx_pcmstream ps;
	VX_CHECK_INT(vx_pcmstream_init(&ps, VX_ENC_PCM16, 16000, 16000), 0);
	int16_t in[3] = { 1000, -2000, 3000 };
	const uint8_t *b = (const uint8_t *)in;
	vx_buf out = {0};
	vx_pcmstream_feed(&ps, b, 3, &out);      /* 1.5 samples */
	vx_pcmstream_feed(&ps, b + 3, 3, &out);  /* the rest */
	vx_pcmstream_flush(&ps, &out);
	VX_CHECK_INT(out.len, 6);
	const int16_t *o = (const int16_t *)(void *)out.data;
	VX_CHECK_INT(o[0], 1000);
	VX_CHECK_INT(o[1], -2000);
	VX_CHECK_INT(o[2], 3000);
	vx_buf_release(&out);
	vx_pcmstream_release(&ps);
}

VX_TEST(mulaw_8k_becomes_twice_the_samples_at_16k)
{
	vx_pcmstream ps;
	VX_CHECK_INT(vx_pcmstream_init(&ps, VX_ENC_MULAW, 8000, 16000), 0);
	uint8_t frame[160];
	vx_buf out = {0};
	for (int f = 0; f < 50; f++) {   /* 1 s of a 440 Hz tone */
		for (int i = 0; i < 160; i++)
			frame[i] = vx_g711_ulaw_encode((int16_t)(8000 *
				sin(2 * M_PI * 440 * (f * 160 + i) / 8000.0)));
		VX_CHECK_INT(vx_pcmstream_feed(&ps, frame, sizeof(frame), &out), 0);
	}
	vx_pcmstream_flush(&ps, &out);
	size_t n = out.len / 2;
	VX_CHECK(n > 15800 && n < 16200);
	vx_buf_release(&out);
	vx_pcmstream_release(&ps);
}

VX_TEST(auto_encoding_is_refused)
{
	vx_pcmstream ps;
	VX_CHECK_INT(vx_pcmstream_init(&ps, VX_ENC_AUTO, 16000, 16000), -EINVAL);
}

VX_TEST_MAIN(pcm16_split_mid_sample_is_rejoined,
	     mulaw_8k_becomes_twice_the_samples_at_16k,
	     auto_encoding_is_refused)
