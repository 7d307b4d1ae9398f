/*
 * quant.c - type table, f16/bf16 conversion, dequantisation, activation
 * quantisation and the portable dot kernels. See quant.h.
 */
#include "quant.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

_Static_assert(sizeof(block_q8_0) == 34, "q8_0 layout");
_Static_assert(sizeof(block_q8_0u) == 40, "q8_0u layout");
_Static_assert(sizeof(block_q8_0s) == 48, "q8_0s layout");
_Static_assert(sizeof(block_q4_0) == 18, "q4_0 layout");
_Static_assert(sizeof(block_q5_0) == 22, "q5_0 layout");
_Static_assert(sizeof(block_q4_K) == 144, "q4_K layout");
_Static_assert(sizeof(block_q5_K) == 176, "q5_K layout");
_Static_assert(sizeof(block_q6_K) == 210, "q6_K layout");
_Static_assert(sizeof(block_q8_K) == 292, "q8_K layout");
_Static_assert(sizeof(block_q4_1) == 20, "q4_1 layout");
_Static_assert(sizeof(block_q5_1) == 24, "q5_1 layout");
_Static_assert(sizeof(block_iq4_nl) == 18, "iq4_nl layout");
_Static_assert(sizeof(block_q2_K) == 84, "q2_K layout");
_Static_assert(sizeof(block_q3_K) == 110, "q3_K layout");
_Static_assert(sizeof(block_iq4_xs) == 136, "iq4_xs layout");

/* Names of all ggml types, so unsupported ones are named in errors. */
static const char *const type_names[QT_COUNT] = {
	[0] = "F32", [1] = "F16", [2] = "Q4_0", [3] = "Q4_1", [6] = "Q5_0",
	[7] = "Q5_1", [8] = "Q8_0", [9] = "Q8_1", [10] = "Q2_K", [11] = "Q3_K",
	[12] = "Q4_K", [13] = "Q5_K", [14] = "Q6_K", [15] = "Q8_K",
	[16] = "IQ2_XXS", [17] = "IQ2_XS", [18] = "IQ3_XXS", [19] = "IQ1_S",
	[20] = "IQ4_NL", [21] = "IQ3_S", [22] = "IQ2_S", [23] = "IQ4_XS",
	[24] = "I8", [25] = "I16", [26] = "I32", [27] = "I64", [28] = "F64",
	[29] = "IQ1_M", [30] = "BF16", [34] = "TQ1_0", [35] = "TQ2_0",
	[39] = "MXFP4",
};

const char *quant_type_name(int type)
{
	if (type < 0 || type >= QT_COUNT)
		return NULL;
	return type_names[type];
}

bool quant_supported(int type)
{
	return quant_block_elems(type) > 0 && type != QT_Q8_K && type != QT_Q8_0U &&
	       type != QT_Q8_0S;
}

int quant_block_elems(int type)
{
	switch (type) {
	case QT_F32: case QT_F16: case QT_BF16: return 1;
	case QT_Q8_0: case QT_Q8_0U: case QT_Q8_0S: return QK8_0;
	case QT_Q4_0: case QT_Q5_0: case QT_Q4_1: case QT_Q5_1: case QT_IQ4_NL: return QK4_0;
	case QT_Q4_K: case QT_Q5_K: case QT_Q6_K: case QT_Q8_K: return QK_K;
	case QT_Q2_K: case QT_Q3_K: case QT_IQ4_XS: return QK_K;
	default: return 0;
	}
}

size_t quant_block_bytes(int type)
{
	switch (type) {
	case QT_F32: return 4;
	case QT_F16: case QT_BF16: return 2;
	case QT_Q8_0: return sizeof(block_q8_0);
	case QT_Q4_0: return sizeof(block_q4_0);
	case QT_Q5_0: return sizeof(block_q5_0);
	case QT_Q4_1: return sizeof(block_q4_1);
	case QT_Q5_1: return sizeof(block_q5_1);
	case QT_IQ4_NL: return sizeof(block_iq4_nl);
	case QT_Q2_K: return sizeof(block_q2_K);
	case QT_Q3_K: return sizeof(block_q3_K);
	case QT_IQ4_XS: return sizeof(block_iq4_xs);
	case QT_Q4_K: return sizeof(block_q4_K);
	case QT_Q5_K: return sizeof(block_q5_K);
	case QT_Q6_K: return sizeof(block_q6_K);
	case QT_Q8_K: return sizeof(block_q8_K);
	case QT_Q8_0U: return sizeof(block_q8_0u);
	case QT_Q8_0S: return sizeof(block_q8_0s);
	default: return 0;
	}
}

size_t quant_row_bytes(int type, int64_t n)
{
	int be = quant_block_elems(type);
	if (be <= 0 || n < 0 || n % be)
		return 0;
	return (size_t)(n / be) * quant_block_bytes(type);
}

int quant_vec_type(int type)
{
	switch (type) {
	case QT_Q8_0: case QT_Q4_0: case QT_Q5_0: return QT_Q8_0;
	case QT_Q4_1: case QT_Q5_1: case QT_IQ4_NL: return QT_Q8_0;
	case QT_Q4_K: case QT_Q5_K: case QT_Q6_K: return QT_Q8_K;
	case QT_Q2_K: case QT_Q3_K: case QT_IQ4_XS: return QT_Q8_K;
	default: return QT_F32;
	}
}

float quant_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
	if (exp == 0) {
		/* zero or subnormal: value = man * 2^-24 */
		float f = ldexpf((float)man, -24);
		return sign ? -f : f;
	}
	if (exp == 31)
		bits = sign | 0x7f800000u | (man << 13);
	else
		bits = sign | ((exp + 112) << 23) | (man << 13);
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

uint16_t quant_f32_to_f16(float f)
{
	/* round to nearest even, as the F16C instruction does */
	uint32_t x;
	memcpy(&x, &f, 4);
	uint32_t sign = (x >> 16) & 0x8000;
	uint32_t ax = x & 0x7fffffff;
	if (ax >= 0x7f800000u)                       /* inf / nan */
		return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0));
	if (ax >= 0x477ff000u)                       /* overflows to inf */
		return (uint16_t)(sign | 0x7c00);
	if (ax < 0x38800000u) {                      /* subnormal half */
		float a;
		memcpy(&a, &ax, 4);
		return (uint16_t)(sign | (uint32_t)nearbyintf(a * 16777216.0f));
	}
	uint32_t r = ax + 0xfff + ((ax >> 13) & 1);
	return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

float quant_bf16_to_f32(uint16_t h)
{
	uint32_t bits = (uint32_t)h << 16;
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

#define F16(x) quant_f16_to_f32(x)

/* 6-bit scale and min j (0..7) of a Q4_K/Q5_K block (ggml's get_scale_min_k4). */
static inline void scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m)
{
	if (j < 4) {
		*d = q[j] & 63;
		*m = q[j + 4] & 63;
	} else {
		*d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
		*m = (q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4);
	}
}

static void dequant_q8_0(const block_q8_0 *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++) {
		float d = F16(x[i].d);
		for (int j = 0; j < QK8_0; j++)
			*y++ = d * x[i].qs[j];
	}
}

static void dequant_q4_0(const block_q4_0 *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++) {
		float d = F16(x[i].d);
		for (int j = 0; j < QK4_0 / 2; j++) {
			y[j] = d * ((x[i].qs[j] & 0xF) - 8);
			y[j + QK4_0 / 2] = d * ((x[i].qs[j] >> 4) - 8);
		}
		y += QK4_0;
	}
}

/* Q5_0 value j of a block as a signed int (-16..15). */
static inline int q5_0_value(const block_q5_0 *b, int j)
{
	uint32_t qh;
	memcpy(&qh, b->qh, 4);
	int lo = j < 16 ? b->qs[j] & 0xF : b->qs[j - 16] >> 4;
	return (lo | (int)(((qh >> j) & 1) << 4)) - 16;
}

static void dequant_q5_0(const block_q5_0 *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++) {
		float d = F16(x[i].d);
		for (int j = 0; j < QK4_0; j++)
			*y++ = d * q5_0_value(&x[i], j);
	}
}

static void dequant_q4_K(const block_q4_K *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++) {
		const uint8_t *q = x[i].qs;
		float d = F16(x[i].d), min = F16(x[i].dmin);
		uint8_t sc, m;
		for (int j = 0, is = 0; j < QK_K; j += 64, is += 2, q += 32) {
			scale_min_k4(is, x[i].scales, &sc, &m);
			float d1 = d * sc, m1 = min * m;
			scale_min_k4(is + 1, x[i].scales, &sc, &m);
			float d2 = d * sc, m2 = min * m;
			for (int l = 0; l < 32; l++)
				*y++ = d1 * (q[l] & 0xF) - m1;
			for (int l = 0; l < 32; l++)
				*y++ = d2 * (q[l] >> 4) - m2;
		}
	}
}

static void dequant_q5_K(const block_q5_K *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++) {
		const uint8_t *ql = x[i].qs, *qh = x[i].qh;
		float d = F16(x[i].d), min = F16(x[i].dmin);
		uint8_t sc, m, u1 = 1, u2 = 2;
		for (int j = 0, is = 0; j < QK_K; j += 64, is += 2, ql += 32) {
			scale_min_k4(is, x[i].scales, &sc, &m);
			float d1 = d * sc, m1 = min * m;
			scale_min_k4(is + 1, x[i].scales, &sc, &m);
			float d2 = d * sc, m2 = min * m;
			for (int l = 0; l < 32; l++)
				*y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
			for (int l = 0; l < 32; l++)
				*y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
			u1 <<= 2;
			u2 <<= 2;
		}
	}
}

static void dequant_q6_K(const block_q6_K *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++) {
		float d = F16(x[i].d);
		const uint8_t *ql = x[i].ql, *qh = x[i].qh;
		const int8_t *sc = x[i].scales;
		for (int n = 0; n < QK_K; n += 128) {
			for (int l = 0; l < 32; l++) {
				int is = l / 16;
				int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
				int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
				int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
				int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
				y[l] = d * sc[is] * q1;
				y[l + 32] = d * sc[is + 2] * q2;
				y[l + 64] = d * sc[is + 4] * q3;
				y[l + 96] = d * sc[is + 6] * q4;
			}
			y += 128;
			ql += 64;
			qh += 32;
			sc += 8;
		}
	}
}

static void dequant_q8_0u(const block_q8_0u *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++)
		for (int j = 0; j < QK8_0; j++)
			*y++ = x[i].d * (x[i].qs[j] - 128);
}

static void dequant_q8_0s(const block_q8_0s *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++)
		for (int j = 0; j < QK8_0; j++)
			*y++ = x[i].d * x[i].qs[j];
}

static void dequant_q8_K(const block_q8_K *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++)
		for (int j = 0; j < QK_K; j++)
			*y++ = x[i].d * x[i].qs[j];
}

void quant_dequantize_row(int type, const void *src, float *dst, int64_t n)
{
	const uint16_t *h = src;
	switch (type) {
	case QT_F32: memcpy(dst, src, (size_t)n * 4); break;
	case QT_F16: for (int64_t i = 0; i < n; i++) dst[i] = F16(h[i]); break;
	case QT_BF16: for (int64_t i = 0; i < n; i++) dst[i] = quant_bf16_to_f32(h[i]); break;
	case QT_Q8_0: dequant_q8_0(src, dst, n / QK8_0); break;
	case QT_Q4_0: dequant_q4_0(src, dst, n / QK4_0); break;
	case QT_Q5_0: dequant_q5_0(src, dst, n / QK4_0); break;
	case QT_Q4_K: dequant_q4_K(src, dst, n / QK_K); break;
	case QT_Q5_K: dequant_q5_K(src, dst, n / QK_K); break;
	case QT_Q6_K: dequant_q6_K(src, dst, n / QK_K); break;
	case QT_Q8_K: dequant_q8_K(src, dst, n / QK_K); break;
	case QT_Q8_0U: dequant_q8_0u(src, dst, n / QK8_0); break;
	case QT_Q8_0S: dequant_q8_0s(src, dst, n / QK8_0); break;
	default:
		if (!quant_lowbit_dequantize(type, src, dst, n))
			memset(dst, 0, (size_t)n * sizeof(float));
		break;
	}
}

/* ggml's quantize_row_q8_0_ref. */
static void quantize_q8_0(const float *x, block_q8_0 *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, x += QK8_0) {
		float amax = 0;
		for (int j = 0; j < QK8_0; j++)
			amax = fmaxf(amax, fabsf(x[j]));
		float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
		y[i].d = quant_f32_to_f16(d);
		for (int j = 0; j < QK8_0; j++)
			y[i].qs[j] = (int8_t)roundf(x[j] * id);
	}
}

/* Q8_0U: the Q8_0 quantiser's bytes offset to unsigned, its f16 scale as
 * float, so gemm and dot kernels see identical activations. */
static void quantize_q8_0u(const float *x, block_q8_0u *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++) {
		block_q8_0 b;
		quantize_q8_0(x + i * QK8_0, &b, 1);
		y[i].d = F16(b.d);
		y[i].sum = 0;
		for (int j = 0; j < QK8_0; j++) {
			y[i].qs[j] = (uint8_t)(b.qs[j] + 128);
			y[i].sum += b.qs[j];
		}
	}
}

/* Q8_0S: the Q8_0 quantiser's bytes, its f16 scale as float. */
static void quantize_q8_0s(const float *x, block_q8_0s *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++) {
		block_q8_0 b;
		quantize_q8_0(x + i * QK8_0, &b, 1);
		y[i].d = F16(b.d);
		memcpy(y[i].qs, b.qs, QK8_0);
		for (int h = 0; h < 2; h++) {
			int sum = 0;
			for (int j = 16 * h; j < 16 * h + 16; j++)
				sum += b.qs[j];
			y[i].sums[h] = (int16_t)sum;
		}
		q8_0s_terms(&y[i]);
	}
}

/* ggml's quantize_row_q8_K_ref (scale from the value of largest magnitude). */
static void quantize_q8_K(const float *x, block_q8_K *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, x += QK_K) {
		float max = 0, amax = 0;
		for (int j = 0; j < QK_K; j++) {
			float ax = fabsf(x[j]);
			if (ax > amax) {
				amax = ax;
				max = x[j];
			}
		}
		if (amax == 0) {
			memset(&y[i], 0, sizeof(y[i]));
			continue;
		}
		float iscale = -127.0f / max;
		for (int j = 0; j < QK_K; j++) {
			int v = (int)nearbyintf(iscale * x[j]);
			y[i].qs[j] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
		}
		for (int j = 0; j < QK_K / 16; j++) {
			int sum = 0;
			for (int l = 0; l < 16; l++)
				sum += y[i].qs[j * 16 + l];
			y[i].bsums[j] = (int16_t)sum;
		}
		y[i].d = 1.0f / iscale;
	}
}

int quant_quantize_row(int type, const float *src, void *dst, int64_t n)
{
	if (!quant_row_bytes(type, n))
		return -EINVAL;
	if (type != QT_F32 && quant_have_avx2() && quant_quantize_avx2(type, src, dst, n) == 0)
		return 0;
	return quant_quantize_row_portable(type, src, dst, n);
}

int quant_quantize_row_portable(int type, const float *src, void *dst, int64_t n)
{
	if (!quant_row_bytes(type, n))
		return -EINVAL;
	switch (type) {
	case QT_F32: memcpy(dst, src, (size_t)n * 4); return 0;
	case QT_Q8_0: quantize_q8_0(src, dst, n / QK8_0); return 0;
	case QT_Q8_K: quantize_q8_K(src, dst, n / QK_K); return 0;
	case QT_Q8_0U: quantize_q8_0u(src, dst, n / QK8_0); return 0;
	case QT_Q8_0S: quantize_q8_0s(src, dst, n / QK8_0); return 0;
	default: return -EINVAL;
	}
}

/* ---- portable dot kernels ---- */

static float dot_f32(int n, const void *w, const void *a)
{
	const float *x = w, *y = a;
	float s[4] = {0};
	int i = 0;
	for (; i + 4 <= n; i += 4)
		for (int k = 0; k < 4; k++)
			s[k] += x[i + k] * y[i + k];
	for (; i < n; i++)
		s[0] += x[i] * y[i];
	return (s[0] + s[1]) + (s[2] + s[3]);
}

static float dot_f16(int n, const void *w, const void *a)
{
	const uint16_t *x = w;
	const float *y = a;
	float s = 0;
	for (int i = 0; i < n; i++)
		s += F16(x[i]) * y[i];
	return s;
}

static float dot_bf16(int n, const void *w, const void *a)
{
	const uint16_t *x = w;
	const float *y = a;
	float s = 0;
	for (int i = 0; i < n; i++)
		s += quant_bf16_to_f32(x[i]) * y[i];
	return s;
}

static float dot_q8_0(int n, const void *w, const void *a)
{
	const block_q8_0 *x = w, *y = a;
	float s = 0;
	for (int i = 0; i < n / QK8_0; i++) {
		int sum = 0;
		for (int j = 0; j < QK8_0; j++)
			sum += x[i].qs[j] * y[i].qs[j];
		s += F16(x[i].d) * F16(y[i].d) * (float)sum;
	}
	return s;
}

static float dot_q4_0(int n, const void *w, const void *a)
{
	const block_q4_0 *x = w;
	const block_q8_0 *y = a;
	float s = 0;
	for (int i = 0; i < n / QK4_0; i++) {
		int sum = 0;
		for (int j = 0; j < QK4_0 / 2; j++) {
			sum += ((x[i].qs[j] & 0xF) - 8) * y[i].qs[j];
			sum += ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + QK4_0 / 2];
		}
		s += F16(x[i].d) * F16(y[i].d) * (float)sum;
	}
	return s;
}

static float dot_q5_0(int n, const void *w, const void *a)
{
	const block_q5_0 *x = w;
	const block_q8_0 *y = a;
	float s = 0;
	for (int i = 0; i < n / QK4_0; i++) {
		int sum = 0;
		for (int j = 0; j < QK4_0; j++)
			sum += q5_0_value(&x[i], j) * y[i].qs[j];
		s += F16(x[i].d) * F16(y[i].d) * (float)sum;
	}
	return s;
}

/* Shared by Q4_K and Q5_K: sum over the 8 sub-blocks of 32 of
 * sc*dot(q, a) - m*sum(a), with q taken from the caller's unpacked bytes. */
static float kquant_block(float d, float dmin, const uint8_t *scales,
			  const uint8_t q[QK_K], const block_q8_K *y)
{
	int sumi = 0, summ = 0;
	for (int j = 0; j < 8; j++) {
		uint8_t sc, m;
		scale_min_k4(j, scales, &sc, &m);
		int dot = 0;
		for (int l = 0; l < 32; l++)
			dot += q[j * 32 + l] * y->qs[j * 32 + l];
		sumi += sc * dot;
		summ += m * (y->bsums[2 * j] + y->bsums[2 * j + 1]);
	}
	return y->d * (d * (float)sumi - dmin * (float)summ);
}

static float dot_q4_K(int n, const void *w, const void *a)
{
	const block_q4_K *x = w;
	const block_q8_K *y = a;
	float s = 0;
	uint8_t q[QK_K];
	for (int i = 0; i < n / QK_K; i++) {
		for (int j = 0; j < 4; j++)
			for (int l = 0; l < 32; l++) {
				q[j * 64 + l] = x[i].qs[j * 32 + l] & 0xF;
				q[j * 64 + 32 + l] = x[i].qs[j * 32 + l] >> 4;
			}
		s += kquant_block(F16(x[i].d), F16(x[i].dmin), x[i].scales, q, &y[i]);
	}
	return s;
}

static float dot_q5_K(int n, const void *w, const void *a)
{
	const block_q5_K *x = w;
	const block_q8_K *y = a;
	float s = 0;
	uint8_t q[QK_K];
	for (int i = 0; i < n / QK_K; i++) {
		for (int j = 0; j < 4; j++)
			for (int l = 0; l < 32; l++) {
				uint8_t b = x[i].qs[j * 32 + l], h = x[i].qh[l];
				q[j * 64 + l] = (b & 0xF) | (((h >> (2 * j)) & 1) << 4);
				q[j * 64 + 32 + l] = (b >> 4) | (((h >> (2 * j + 1)) & 1) << 4);
			}
		s += kquant_block(F16(x[i].d), F16(x[i].dmin), x[i].scales, q, &y[i]);
	}
	return s;
}

static float dot_q6_K(int n, const void *w, const void *a)
{
	const block_q6_K *x = w;
	const block_q8_K *y = a;
	float s = 0;
	for (int i = 0; i < n / QK_K; i++) {
		const uint8_t *ql = x[i].ql, *qh = x[i].qh;
		const int8_t *sc = x[i].scales, *q8 = y[i].qs;
		int8_t q[QK_K], *p = q;
		for (int c = 0; c < QK_K; c += 128, ql += 64, qh += 32, p += 128)
			for (int l = 0; l < 32; l++) {
				p[l] = (int8_t)(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
				p[l + 32] = (int8_t)(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
				p[l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
				p[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
			}
		int sumi = 0;
		for (int g = 0; g < QK_K / 16; g++) {
			int dot = 0;
			for (int l = 0; l < 16; l++)
				dot += q[g * 16 + l] * q8[g * 16 + l];
			sumi += sc[g] * dot;
		}
		s += F16(x[i].d) * y[i].d * (float)sumi;
	}
	return s;
}

quant_dot_fn quant_dot_portable(int type)
{
	switch (type) {
	case QT_F32: return dot_f32;
	case QT_F16: return dot_f16;
	case QT_BF16: return dot_bf16;
	case QT_Q8_0: return dot_q8_0;
	case QT_Q4_0: return dot_q4_0;
	case QT_Q5_0: return dot_q5_0;
	case QT_Q4_K: return dot_q4_K;
	case QT_Q5_K: return dot_q5_K;
	case QT_Q6_K: return dot_q6_K;
	default: return quant_lowbit_dot(type);
	}
}

/*
 * AVX2 + FMA + F16C, with the OS saving YMM state. "avx2" and "fma" are
 * names both gcc and clang know for __builtin_cpu_supports (which checks
 * XSAVE/YMM too); clang-14 has no "f16c", so that bit is read from CPUID
 * leaf 1 (ECX bit 29) directly.
 */
static bool detect_avx2(void)
{
#if defined(__x86_64__) || defined(__i386__)
	unsigned int eax, ebx, ecx, edx;
	__builtin_cpu_init();
	if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
		return false;
	if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx))
		return false;
	return (ecx & bit_F16C) != 0;
#else
	return false;
#endif
}

/* Cached: CPUID traps to the hypervisor in a VM (microseconds), and
 * quant_dot_get is called per attention task. */
bool quant_have_avx2(void)
{
	static atomic_int known;   /* 0 not yet, 1 no, 2 yes */
	int v = atomic_load_explicit(&known, memory_order_relaxed);
	if (!v) {
		v = detect_avx2() ? 2 : 1;
		atomic_store_explicit(&known, v, memory_order_relaxed);
	}
	return v == 2;
}

quant_dot_fn quant_dot_get(int type, quant_impl impl)
{
	switch (impl) {
	case QUANT_IMPL_PORTABLE:
		return quant_dot_portable(type);
	case QUANT_IMPL_AVX2:
		return quant_have_avx2() ? quant_dot_avx2(type) : NULL;
	case QUANT_IMPL_BEST:
	default: {
		quant_dot_fn f = quant_dot_avx512(type);
		if (!f && quant_have_avx2())
			f = quant_dot_avx2(type);
		return f ? f : quant_dot_portable(type);
	}
	}
}

quant_tile_fn quant_tile_get(int type, quant_impl impl)
{
	if (impl == QUANT_IMPL_PORTABLE || !quant_have_avx2())
		return NULL;
	quant_tile_fn f = quant_tile_avx2(type);
	return f ? f : quant_tile_lowbit_avx2(type);
}

quant_mdot_fn quant_mdot_get(int type)
{
	return quant_have_avx2() ? quant_mdot_avx2(type) : NULL;
}

quant_gemm8_fn quant_gemm8_packed_get(int type, quant_pack8_fn *ret_pack)
{
	if (!quant_have_avx2())
		return NULL;
	quant_gemm8_fn f = quant_gemm8_packed_avx2(type, ret_pack);
	return f ? f : quant_gemm8_packed_min_avx2(type, ret_pack);
}

bool quant_pack8_as_q8_0(int type)
{
	return type == QT_Q8_0 || type == QT_Q4_0 || type == QT_Q5_0 || type == QT_IQ4_NL;
}

quant_gemm8_fn quant_gemm16_packed_get(int type)
{
	return quant_have_avx2() ? quant_gemm16_packed_avx2(type) : NULL;
}

/* Bytes per 32 values of a group of 8 rows of the types packed as Q8_0's values. */
static size_t pack8_block_bytes(int type)
{
	return type == QT_Q8_0 ? QUANT_PACK8_Q8_0 : type == QT_Q5_0 ? QUANT_PACK8_N5 :
	       QUANT_PACK8_N4;
}

size_t quant_pack8_bytes(int type, int64_t n)
{
	if (n <= 0 || n % QK8_0)
		return 0;
	if (quant_pack8_as_q8_0(type))
		return (size_t)(n / QK8_0) * pack8_block_bytes(type);
	if (type == QT_Q4_1 || type == QT_Q5_1)
		return (size_t)(n / QK8_0) * (type == QT_Q4_1 ? QUANT_PACK8_M4H : QUANT_PACK8_M5H);
	if (n % QK_K)
		return 0;
	if (type == QT_Q4_K || type == QT_Q5_K)
		return (size_t)(n / QK8_0) * (type == QT_Q4_K ? QUANT_PACK8_M4 : QUANT_PACK8_M5);
	if (type == QT_Q6_K || type == QT_Q3_K)
		return (size_t)(n / QK8_0) * (type == QT_Q6_K ? QUANT_PACK8_S16 : QUANT_PACK8_S3);
	if (type == QT_IQ4_XS)
		return (size_t)(n / QK8_0) * QUANT_PACK8_X4;
	return 0;
}

int quant_unpack8_row(int type, int64_t n, const void *group, int lane, void *dst)
{
	if (lane < 0 || lane >= 8 || !quant_pack8_as_q8_0(type) || !quant_pack8_bytes(type, n))
		return -EINVAL;
	const uint8_t *o = group;
	block_q8_0 *b = dst;
	for (int64_t i = 0; i < n / QK8_0; i++, o += pack8_block_bytes(type)) {
		memcpy(&b[i].d, o + 2 * lane, 2);
		for (int k = 0; k < 8; k++) {
			if (type == QT_Q8_0) {
				for (int j = 0; j < 4; j++)   /* stored + 128 */
					b[i].qs[4 * k + j] = (int8_t)(o[QUANT_PACK8_V + 32 * k + 4 * lane + j] ^ 0x80);
				continue;
			}
			uint32_t m = 0;   /* Q5_0: the values' sign bits */
			if (type == QT_Q5_0)
				memcpy(&m, o + QUANT_PACK8_N5_MASKS + 4 * k, 4);
			for (int j = 4 * lane; j < 4 * lane + 4; j++) {
				uint8_t byte = o[QUANT_PACK8_V + 32 * (k & 3) + j];
				int code = k < 4 ? byte & 15 : byte >> 4;
				b[i].qs[4 * k + j - 4 * lane] = (int8_t)(
					type == QT_IQ4_NL ? iq4nl_values[code] :
					type == QT_Q4_0 ? code - 8 : code - ((m >> j & 1) ? 16 : 0));
			}
		}
	}
	return 0;
}

quant_gemm8_fn quant_gemm8_get(int type)
{
	if (!quant_have_avx2())
		return NULL;
	quant_gemm8_fn f = quant_gemm8_avx2(type);
	return f ? f : quant_gemm8_lowbit_avx2(type);
}
