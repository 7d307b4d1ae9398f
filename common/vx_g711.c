/*
 * vx_g711.c - G.711 mu-law and A-law, one sample at a time; see vx_audio.h.
 *
 * These follow the ITU-T G.191 Software Tool Library reference (g711.c):
 * input is 16-bit left-justified linear PCM, negative values are taken as
 * one's complement (~x) before the magnitude is quantised, and decoding
 * returns the midpoint of each quantisation interval. The results are the
 * G.711 tables bit for bit (mu-law 0x00 -> -32124, A-law 0xd5 -> 8).
 */
#include "vx_audio.h"

/* mu-law: 14-bit magnitude plus bias 33, eight segments. */
uint8_t vx_g711_ulaw_encode(int16_t s)
{
	int absno = s < 0 ? ((~(int)s) >> 2) + 33 : ((int)s >> 2) + 33;
	if (absno > 0x1fff)
		absno = 0x1fff;
	int segno = 1;
	for (int i = absno >> 6; i != 0; i >>= 1)
		segno++;
	int high = 0x8 - segno;
	int low = 0xf - ((absno >> segno) & 0xf);
	int code = (high << 4) | low;
	if (s >= 0)
		code |= 0x80;
	return (uint8_t)code;
}

int16_t vx_g711_ulaw_decode(uint8_t u)
{
	int m = ~(int)u;
	int exponent = (m >> 4) & 0x7;
	int step = 4 << (exponent + 1);
	int mant = m & 0xf;
	int mag = (0x80 << exponent) + step * mant + step / 2 - 4 * 33;
	return (int16_t)(u < 0x80 ? -mag : mag);
}

/* A-law: 12-bit magnitude (13-bit signed), segment 0 and 1 linear. */
uint8_t vx_g711_alaw_encode(int16_t s)
{
	int ix = s < 0 ? (~(int)s) >> 4 : (int)s >> 4;
	if (ix > 15) {
		int iexp = 1;
		while (ix > 16 + 15) {
			ix >>= 1;
			iexp++;
		}
		ix -= 16;
		ix += iexp << 4;
	}
	if (s >= 0)
		ix |= 0x80;
	return (uint8_t)(ix ^ 0x55);
}

int16_t vx_g711_alaw_decode(uint8_t a)
{
	int ix = (a ^ 0x55) & 0x7f;
	int iexp = ix >> 4;
	int mant = ix & 0xf;
	if (iexp > 0)
		mant += 16;
	mant = (mant << 4) + 0x8;
	if (iexp > 1)
		mant <<= iexp - 1;
	return (int16_t)(a > 0x7f ? mant : -mant);
}
