/* vx_pcmstream.c - streamed headerless audio to PCM16; see vx_pcmstream.h. */
#include "vx_pcmstream.h"

#include <errno.h>
#include <string.h>

#define SCRATCH_KEEP (64 * 1024)   /* scratch kept between feeds, bytes */

int vx_pcmstream_init(vx_pcmstream *s, vx_encoding encoding, int in_rate,
		      int out_rate)
{
	if (encoding != VX_ENC_PCM16 && encoding != VX_ENC_MULAW &&
	    encoding != VX_ENC_ALAW)
		return -EINVAL;
	memset(s, 0, sizeof(*s));
	s->encoding = encoding;
	return vx_resampler_new(in_rate, out_rate, &s->resampler);
}

void vx_pcmstream_release(vx_pcmstream *s)
{
	vx_resampler_free(s->resampler);
	vx_buf_release(&s->scratch);
	memset(s, 0, sizeof(*s));
}

int vx_pcmstream_feed(vx_pcmstream *s, const void *data, size_t len,
		      vx_buf *out)
{
	vx_buf *b = &s->scratch;
	const uint8_t *in = data;
	int r;
	vx_buf_reset(b);
	if (s->encoding == VX_ENC_PCM16) {
		if (s->has_odd) {
			if ((r = vx_buf_append(b, &s->odd_byte, 1)) < 0)
				return r;
			s->has_odd = false;
		}
		if ((r = vx_buf_append(b, in, len)) < 0)
			return r;
		if (b->len % 2) {
			s->odd_byte = (uint8_t)b->data[--b->len];
			s->has_odd = true;
		}
	} else {
		if ((r = vx_buf_reserve(b, len * 2)) < 0)
			return r;
		int16_t *pcm = (int16_t *)(void *)b->data;
		for (size_t i = 0; i < len; i++)
			pcm[i] = s->encoding == VX_ENC_MULAW ?
				 vx_g711_ulaw_decode(in[i]) :
				 vx_g711_alaw_decode(in[i]);
		b->len = len * 2;
	}
	r = b->len < 2 ? 0 :
	    vx_resampler_process(s->resampler, (const int16_t *)(void *)b->data,
				 b->len / 2, out);
	if (b->cap > SCRATCH_KEEP)
		vx_buf_release(b);
	return r;
}

int vx_pcmstream_flush(vx_pcmstream *s, vx_buf *out)
{
	s->has_odd = false;
	return vx_resampler_flush(s->resampler, out);
}
