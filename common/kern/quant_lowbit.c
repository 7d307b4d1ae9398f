/*
 * quant_lowbit.c - dequantisers and portable dot kernels of the types
 * llama.cpp's presets add beyond the basic ones: Q4_1 and Q5_1 (offset
 * 32-blocks), Q2_K and Q3_K (2- and 3-bit K-quants with 16-value groups),
 * IQ4_NL and IQ4_XS (4-bit indices into a non-linear table). Block layouts
 * are in quant.h; the AVX2 kernels are in quant_avx2.c.
 *
 * The dots work as the other types': integer sums of weight quants times
 * activation bytes per group, scaled in float once per group. Offsets
 * (Q4_1/Q5_1's m, Q2_K's mins, Q3_K's -4) are applied through the sums of
 * the activations (Q8_K's bsums, or summed here for Q8_0).
 */
#include "quant.h"

#include <string.h>

#define F16(x) quant_f16_to_f32(x)

const int8_t iq4nl_values[16] = {
	-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
};

/* Q4_1 / Q5_1 quant j (0..31) of a block as an unsigned int. */
static inline int q4_1_value(const block_q4_1 *b, int j)
{
	return j < 16 ? b->qs[j] & 0xF : b->qs[j - 16] >> 4;
}

static inline int q5_1_value(const block_q5_1 *b, int j)
{
	uint32_t qh;
	memcpy(&qh, b->qh, 4);
	int lo = j < 16 ? b->qs[j] & 0xF : b->qs[j - 16] >> 4;
	return lo | (int)(((qh >> j) & 1) << 4);
}

static inline int iq4_nl_value(const uint8_t qs[16], int j)
{
	return iq4nl_values[j < 16 ? qs[j] & 0xF : qs[j - 16] >> 4];
}

void quant_q3_K_scales(const uint8_t p[12], int8_t out[16])
{
	for (int k = 0; k < 16; k++) {
		int lo = k < 8 ? p[k] & 0xF : p[k - 8] >> 4;
		int hi = (p[8 + k % 4] >> (2 * (k / 4))) & 3;
		out[k] = (int8_t)((lo | (hi << 4)) - 32);
	}
}

/* Q2_K / Q3_K: the 2-bit field of element e (0..255) of a block's qs. */
static inline int k2_bits(const uint8_t *qs, int e)
{
	int n = e / 128, j = (e % 128) / 32, l = e % 32;
	return (qs[n * 32 + l] >> (2 * j)) & 3;
}

/* Q3_K value of element e (-4..3). */
static inline int q3_K_value(const block_q3_K *b, int e)
{
	int n = e / 128, j = (e % 128) / 32, l = e % 32;
	int h = (b->hmask[l] >> (n * 4 + j)) & 1;
	return k2_bits(b->qs, e) - (h ? 0 : 4);
}

/* IQ4_XS scale of sub-block ib (0..7), -32..31. */
static inline int iq4_xs_scale(const block_iq4_xs *b, int ib)
{
	int lo = (b->scales_l[ib / 2] >> (4 * (ib % 2))) & 0xF;
	int hi = (b->scales_h >> (2 * ib)) & 3;
	return (lo | (hi << 4)) - 32;
}

bool quant_lowbit_dequantize(int type, const void *src, float *y, int64_t n)
{
	switch (type) {
	case QT_Q4_1: {
		const block_q4_1 *x = src;
		for (int64_t i = 0; i < n / QK4_0; i++) {
			float d = F16(x[i].d), m = F16(x[i].m);
			for (int j = 0; j < QK4_0; j++)
				*y++ = d * q4_1_value(&x[i], j) + m;
		}
		return true;
	}
	case QT_Q5_1: {
		const block_q5_1 *x = src;
		for (int64_t i = 0; i < n / QK4_0; i++) {
			float d = F16(x[i].d), m = F16(x[i].m);
			for (int j = 0; j < QK4_0; j++)
				*y++ = d * q5_1_value(&x[i], j) + m;
		}
		return true;
	}
	case QT_IQ4_NL: {
		const block_iq4_nl *x = src;
		for (int64_t i = 0; i < n / QK4_0; i++) {
			float d = F16(x[i].d);
			for (int j = 0; j < QK4_0; j++)
				*y++ = d * iq4_nl_value(x[i].qs, j);
		}
		return true;
	}
	case QT_Q2_K: {
		const block_q2_K *x = src;
		for (int64_t i = 0; i < n / QK_K; i++) {
			float d = F16(x[i].d), dmin = F16(x[i].dmin);
			for (int e = 0; e < QK_K; e++) {
				uint8_t sc = x[i].scales[e / 16];
				*y++ = d * (sc & 0xF) * k2_bits(x[i].qs, e) - dmin * (sc >> 4);
			}
		}
		return true;
	}
	case QT_Q3_K: {
		const block_q3_K *x = src;
		for (int64_t i = 0; i < n / QK_K; i++) {
			int8_t sc[16];
			quant_q3_K_scales(x[i].scales, sc);
			float d = F16(x[i].d);
			for (int e = 0; e < QK_K; e++)
				*y++ = d * sc[e / 16] * q3_K_value(&x[i], e);
		}
		return true;
	}
	case QT_IQ4_XS: {
		const block_iq4_xs *x = src;
		for (int64_t i = 0; i < n / QK_K; i++) {
			float d = F16(x[i].d);
			for (int ib = 0; ib < QK_K / 32; ib++) {
				float dl = d * iq4_xs_scale(&x[i], ib);
				for (int j = 0; j < 32; j++)
					*y++ = dl * iq4_nl_value(x[i].qs + 16 * ib, j);
			}
		}
		return true;
	}
	default:
		return false;
	}
}

/* ---- portable dot kernels ---- */

static float dot_q4_1(int n, const void *w, const void *a)
{
	const block_q4_1 *x = w;
	const block_q8_0 *y = a;
	float s = 0;
	for (int i = 0; i < n / QK4_0; i++) {
		int sum = 0, sy = 0;
		for (int j = 0; j < QK4_0; j++) {
			sum += q4_1_value(&x[i], j) * y[i].qs[j];
			sy += y[i].qs[j];
		}
		float dy = F16(y[i].d);
		s += F16(x[i].d) * dy * (float)sum + F16(x[i].m) * dy * (float)sy;
	}
	return s;
}

static float dot_q5_1(int n, const void *w, const void *a)
{
	const block_q5_1 *x = w;
	const block_q8_0 *y = a;
	float s = 0;
	for (int i = 0; i < n / QK4_0; i++) {
		int sum = 0, sy = 0;
		for (int j = 0; j < QK4_0; j++) {
			sum += q5_1_value(&x[i], j) * y[i].qs[j];
			sy += y[i].qs[j];
		}
		float dy = F16(y[i].d);
		s += F16(x[i].d) * dy * (float)sum + F16(x[i].m) * dy * (float)sy;
	}
	return s;
}

static float dot_iq4_nl(int n, const void *w, const void *a)
{
	const block_iq4_nl *x = w;
	const block_q8_0 *y = a;
	float s = 0;
	for (int i = 0; i < n / QK4_0; i++) {
		int sum = 0;
		for (int j = 0; j < QK4_0; j++)
			sum += iq4_nl_value(x[i].qs, j) * y[i].qs[j];
		s += F16(x[i].d) * F16(y[i].d) * (float)sum;
	}
	return s;
}

static float dot_q2_K(int n, const void *w, const void *a)
{
	const block_q2_K *x = w;
	const block_q8_K *y = a;
	float s = 0;
	for (int i = 0; i < n / QK_K; i++) {
		int sumi = 0, summ = 0;
		for (int g = 0; g < QK_K / 16; g++) {
			int dot = 0;
			for (int l = 0; l < 16; l++)
				dot += k2_bits(x[i].qs, g * 16 + l) * y[i].qs[g * 16 + l];
			sumi += (x[i].scales[g] & 0xF) * dot;
			summ += (x[i].scales[g] >> 4) * y[i].bsums[g];
		}
		s += y[i].d * (F16(x[i].d) * (float)sumi - F16(x[i].dmin) * (float)summ);
	}
	return s;
}

static float dot_q3_K(int n, const void *w, const void *a)
{
	const block_q3_K *x = w;
	const block_q8_K *y = a;
	float s = 0;
	for (int i = 0; i < n / QK_K; i++) {
		int8_t sc[16];
		quant_q3_K_scales(x[i].scales, sc);
		int sumi = 0;
		for (int g = 0; g < QK_K / 16; g++) {
			int dot = 0;
			for (int l = 0; l < 16; l++)
				dot += q3_K_value(&x[i], g * 16 + l) * y[i].qs[g * 16 + l];
			sumi += sc[g] * dot;
		}
		s += y[i].d * F16(x[i].d) * (float)sumi;
	}
	return s;
}

static float dot_iq4_xs(int n, const void *w, const void *a)
{
	const block_iq4_xs *x = w;
	const block_q8_K *y = a;
	float s = 0;
	for (int i = 0; i < n / QK_K; i++) {
		int sumi = 0;
		for (int ib = 0; ib < QK_K / 32; ib++) {
			int dot = 0;
			for (int j = 0; j < 32; j++)
				dot += iq4_nl_value(x[i].qs + 16 * ib, j) * y[i].qs[32 * ib + j];
			sumi += iq4_xs_scale(&x[i], ib) * dot;
		}
		s += y[i].d * F16(x[i].d) * (float)sumi;
	}
	return s;
}

quant_dot_fn quant_lowbit_dot(int type)
{
	switch (type) {
	case QT_Q4_1: return dot_q4_1;
	case QT_Q5_1: return dot_q5_1;
	case QT_IQ4_NL: return dot_iq4_nl;
	case QT_Q2_K: return dot_q2_K;
	case QT_Q3_K: return dot_q3_K;
	case QT_IQ4_XS: return dot_iq4_xs;
	default: return NULL;
	}
}
