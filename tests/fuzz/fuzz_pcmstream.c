/*
 * fuzz_pcmstream.c - streamed headerless audio (WebSocket frames of PCM16,
 * mu-law or A-law) through vx_pcmstream to PCM16 at another rate.
 *
 * Input: byte 0 picks the encoding, bytes 1 and 2 the input and output
 * rates (from a list with odd ones and the limits), byte 3 seeds how the
 * rest is cut into frames of 0-640 bytes (which split PCM16 samples);
 * every 64th frame and the last are followed by a flush, as at the end of
 * a round. Checked: whole samples
 * always; at equal rates the output is exactly the input decoded (PCM16
 * bytes minus a dangling odd byte per round, G.711 per the tables);
 * across rates the count stays near frames * out / in.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vx_pcmstream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const int rates[] = { 8000, 16000, 24000, 44100, 48000, 11025, 22050,
			     1000, 384000, 12345 };
#define N_RATES (sizeof(rates) / sizeof(rates[0]))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 4)
		return 0;
	static const vx_encoding encs[3] = { VX_ENC_PCM16, VX_ENC_MULAW, VX_ENC_ALAW };
	vx_encoding enc = encs[data[0] % 3];
	int in_rate = rates[data[1] % N_RATES], out_rate = rates[data[2] % N_RATES];
	if (in_rate == 384000 && out_rate == 1000)
		out_rate = 8000;   /* keep the run fast: soxr at 384:1 is slow */
	uint32_t seed = data[3] | 0x100u;
	const uint8_t *in = data + 4;
	size_t len = size - 4, frames_in = 0;
	vx_pcmstream ps;
	vx_buf out = {0}, want = {0};

	if (vx_pcmstream_init(&ps, enc, in_rate, out_rate) != 0)
		abort();
	size_t round_start = 0;
	int frame_no = 0;
	for (size_t off = 0; off < len;) {
		seed = seed * 1103515245u + 12345u;
		size_t n = (seed >> 16) % 641;
		if (n > len - off)
			n = len - off;
		if (vx_pcmstream_feed(&ps, in + off, n, &out) != 0)
			abort();
		off += n;
		if (++frame_no % 64 == 0 || off == len) {
			if (vx_pcmstream_flush(&ps, &out) != 0)
				abort();
			/* what this round should give at equal rates */
			size_t rl = off - round_start;
			if (enc == VX_ENC_PCM16) {
				vx_buf_append(&want, in + round_start, rl & ~(size_t)1);
				frames_in += rl / 2;
			} else {
				for (size_t i = 0; i < rl; i++) {
					uint8_t b = in[round_start + i];
					int16_t s = enc == VX_ENC_MULAW ? vx_g711_ulaw_decode(b) :
						    vx_g711_alaw_decode(b);
					vx_buf_append(&want, &s, 2);
				}
				frames_in += rl;
			}
			round_start = off;
		}
	}
	if (out.len % 2)
		abort();
	if (in_rate == out_rate) {
		if (out.len != want.len || (out.len && memcmp(out.data, want.data, out.len)))
			abort();
	} else {
		double expect = (double)frames_in * out_rate / in_rate;
		double got = (double)(out.len / 2);
		if (got > expect + 64 * (double)frame_no + 4096)
			abort();
	}
	vx_pcmstream_release(&ps);
	vx_buf_release(&out);
	vx_buf_release(&want);
	return 0;
}
