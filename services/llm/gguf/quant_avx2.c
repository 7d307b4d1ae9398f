/*
 * quant_avx2.c - AVX2/FMA/F16C dot kernels (see quant.h). Compiled for any
 * x86-64 CPU: each function carries a target attribute and is only
 * returned by quant_dot_get() after __builtin_cpu_supports said yes.
 */
#include "quant.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define VNNI __attribute__((target("avx2,fma,f16c,avxvnni")))

AVX2 static inline float hsum8(__m256 v)
{
	__m128 r = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	r = _mm_add_ps(r, _mm_movehl_ps(r, r));
	r = _mm_add_ss(r, _mm_movehdup_ps(r));
	return _mm_cvtss_f32(r);
}

AVX2 static inline __m256i hsum_pairs_i16(__m256i v)
{
	return _mm256_madd_epi16(v, _mm256_set1_epi16(1));
}

/* Signed x signed byte dot of 32 pairs -> 8 int32 lanes. */
AVX2 static inline __m256i dot_i8(__m256i x, __m256i y)
{
	__m256i ax = _mm256_sign_epi8(x, x);
	__m256i sy = _mm256_sign_epi8(y, x);
	return hsum_pairs_i16(_mm256_maddubs_epi16(ax, sy));
}

AVX2 static inline float f16(uint16_t h)
{
	return _cvtsh_ss(h);
}

AVX2 static float dot_f32(int n, const void *w, const void *a)
{
	const float *x = w, *y = a;
	__m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
	int i = 0;
	for (; i + 16 <= n; i += 16) {
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), s0);
		s1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), s1);
	}
	float s = hsum8(_mm256_add_ps(s0, s1));
	for (; i < n; i++)
		s += x[i] * y[i];
	return s;
}

AVX2 static float dot_f16(int n, const void *w, const void *a)
{
	const uint16_t *x = w;
	const float *y = a;
	__m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
	int i = 0;
	for (; i + 16 <= n; i += 16) {
		__m256 x0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i)));
		__m256 x1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i + 8)));
		s0 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(y + i), s0);
		s1 = _mm256_fmadd_ps(x1, _mm256_loadu_ps(y + i + 8), s1);
	}
	float s = hsum8(_mm256_add_ps(s0, s1));
	for (; i < n; i++)
		s += f16(x[i]) * y[i];
	return s;
}

AVX2 static float dot_bf16(int n, const void *w, const void *a)
{
	const uint16_t *x = w;
	const float *y = a;
	__m256 s0 = _mm256_setzero_ps();
	int i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(x + i)));
		__m256 xf = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
		s0 = _mm256_fmadd_ps(xf, _mm256_loadu_ps(y + i), s0);
	}
	float s = hsum8(s0);
	for (; i < n; i++)
		s += quant_bf16_to_f32(x[i]) * y[i];
	return s;
}

AVX2 static float dot_q8_0(int n, const void *w, const void *a)
{
	const block_q8_0 *x = w, *y = a;
	__m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
	int nb = n / QK8_0, i = 0;
	for (; i + 2 <= nb; i += 2) {
		__m256i p0 = dot_i8(_mm256_loadu_si256((const __m256i *)x[i].qs),
				    _mm256_loadu_si256((const __m256i *)y[i].qs));
		__m256i p1 = dot_i8(_mm256_loadu_si256((const __m256i *)x[i + 1].qs),
				    _mm256_loadu_si256((const __m256i *)y[i + 1].qs));
		acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i].d) * f16(y[i].d)),
				       _mm256_cvtepi32_ps(p0), acc0);
		acc1 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i + 1].d) * f16(y[i + 1].d)),
				       _mm256_cvtepi32_ps(p1), acc1);
	}
	for (; i < nb; i++) {
		__m256i p = dot_i8(_mm256_loadu_si256((const __m256i *)x[i].qs),
				   _mm256_loadu_si256((const __m256i *)y[i].qs));
		acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i].d) * f16(y[i].d)),
				       _mm256_cvtepi32_ps(p), acc0);
	}
	return hsum8(_mm256_add_ps(acc0, acc1));
}

AVX2 static float dot_q4_0(int n, const void *w, const void *a)
{
	const block_q4_0 *x = w;
	const block_q8_0 *y = a;
	const __m256i m4 = _mm256_set1_epi8(0xF), off = _mm256_set1_epi8(8);
	__m256 acc = _mm256_setzero_ps();
	for (int i = 0; i < n / QK4_0; i++) {
		__m128i t = _mm_loadu_si128((const __m128i *)x[i].qs);
		__m256i qx = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
		qx = _mm256_sub_epi8(_mm256_and_si256(qx, m4), off);
		__m256i p = dot_i8(qx, _mm256_loadu_si256((const __m256i *)y[i].qs));
		acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i].d) * f16(y[i].d)),
				      _mm256_cvtepi32_ps(p), acc);
	}
	return hsum8(acc);
}

/* Unpacks the 8 (scale, min) pairs of a Q4_K/Q5_K block. */
static inline void scales_mins(const uint8_t *q, uint8_t sc[8], uint8_t mn[8])
{
	for (int j = 0; j < 4; j++) {
		sc[j] = q[j] & 63;
		mn[j] = q[j + 4] & 63;
		sc[j + 4] = (q[j + 8] & 0xF) | ((q[j] >> 6) << 4);
		mn[j + 4] = (q[j + 8] >> 4) | ((q[j + 4] >> 6) << 4);
	}
}

/* sum over sub-blocks of m * (sum of the activations of that sub-block) */
static inline int mins_dot(const uint8_t mn[8], const int16_t *bsums)
{
	int s = 0;
	for (int j = 0; j < 8; j++)
		s += mn[j] * (bsums[2 * j] + bsums[2 * j + 1]);
	return s;
}

AVX2 static float dot_q4_K(int n, const void *w, const void *a)
{
	const block_q4_K *x = w;
	const block_q8_K *y = a;
	const __m256i m4 = _mm256_set1_epi8(0xF);
	__m256 acc = _mm256_setzero_ps();
	float accm = 0;
	for (int i = 0; i < n / QK_K; i++) {
		uint8_t sc[8], mn[8];
		scales_mins(x[i].scales, sc, mn);
		float d = y[i].d * f16(x[i].d);
		accm += y[i].d * f16(x[i].dmin) * (float)mins_dot(mn, y[i].bsums);
		const uint8_t *q4 = x[i].qs;
		const int8_t *q8 = y[i].qs;
		__m256i sumi = _mm256_setzero_si256();
		for (int j = 0; j < 4; j++, q4 += 32, q8 += 64) {
			__m256i bits = _mm256_loadu_si256((const __m256i *)q4);
			__m256i lo = _mm256_and_si256(bits, m4);
			__m256i hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
			__m256i pl = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)q8));
			__m256i ph = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(q8 + 32)));
			pl = _mm256_madd_epi16(pl, _mm256_set1_epi16(sc[2 * j]));
			ph = _mm256_madd_epi16(ph, _mm256_set1_epi16(sc[2 * j + 1]));
			sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(pl, ph));
		}
		acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
	}
	return hsum8(acc) - accm;
}

AVX2 static float dot_q5_K(int n, const void *w, const void *a)
{
	const block_q5_K *x = w;
	const block_q8_K *y = a;
	const __m256i m4 = _mm256_set1_epi8(0xF), b16 = _mm256_set1_epi8(16);
	__m256 acc = _mm256_setzero_ps();
	float accm = 0;
	for (int i = 0; i < n / QK_K; i++) {
		uint8_t sc[8], mn[8];
		scales_mins(x[i].scales, sc, mn);
		float d = y[i].d * f16(x[i].d);
		accm += y[i].d * f16(x[i].dmin) * (float)mins_dot(mn, y[i].bsums);
		const uint8_t *q5 = x[i].qs;
		const int8_t *q8 = y[i].qs;
		__m256i qh = _mm256_loadu_si256((const __m256i *)x[i].qh);
		__m256i sumi = _mm256_setzero_si256();
		for (int j = 0; j < 4; j++, q5 += 32, q8 += 64) {
			__m256i bl = _mm256_set1_epi8((char)(1 << (2 * j)));
			__m256i bh = _mm256_set1_epi8((char)(1 << (2 * j + 1)));
			__m256i hl = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bl), bl), b16);
			__m256i hh = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bh), bh), b16);
			__m256i bits = _mm256_loadu_si256((const __m256i *)q5);
			__m256i lo = _mm256_or_si256(_mm256_and_si256(bits, m4), hl);
			__m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4), hh);
			__m256i pl = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)q8));
			__m256i ph = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(q8 + 32)));
			pl = _mm256_madd_epi16(pl, _mm256_set1_epi16(sc[2 * j]));
			ph = _mm256_madd_epi16(ph, _mm256_set1_epi16(sc[2 * j + 1]));
			sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(pl, ph));
		}
		acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
	}
	return hsum8(acc) - accm;
}

/* Scale vector for a 32-value group whose halves use scales s0 and s1. */
AVX2 static inline __m256i scale2(int8_t s0, int8_t s1)
{
	return _mm256_set_m128i(_mm_set1_epi16(s1), _mm_set1_epi16(s0));
}

AVX2 static float dot_q6_K(int n, const void *w, const void *a)
{
	const block_q6_K *x = w;
	const block_q8_K *y = a;
	const __m256i m4 = _mm256_set1_epi8(0xF), m30 = _mm256_set1_epi8(0x30);
	__m256 acc = _mm256_setzero_ps();
	for (int i = 0; i < n / QK_K; i++) {
		const uint8_t *ql = x[i].ql, *qh = x[i].qh;
		const int8_t *sc = x[i].scales, *q8 = y[i].qs;
		/* the -32 offset: 32 * sum_g sc[g] * bsum[g] */
		int off = 0;
		for (int g = 0; g < QK_K / 16; g++)
			off += sc[g] * y[i].bsums[g];
		__m256i sumi = _mm256_setzero_si256();
		for (int c = 0; c < 2; c++, ql += 64, qh += 32, sc += 8, q8 += 128) {
			__m256i la = _mm256_loadu_si256((const __m256i *)ql);
			__m256i lb = _mm256_loadu_si256((const __m256i *)(ql + 32));
			__m256i h = _mm256_loadu_si256((const __m256i *)qh);
			__m256i q0 = _mm256_or_si256(_mm256_and_si256(la, m4),
						     _mm256_and_si256(_mm256_slli_epi16(h, 4), m30));
			__m256i q1 = _mm256_or_si256(_mm256_and_si256(lb, m4),
						     _mm256_and_si256(_mm256_slli_epi16(h, 2), m30));
			__m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(la, 4), m4),
						     _mm256_and_si256(h, m30));
			__m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lb, 4), m4),
						     _mm256_and_si256(_mm256_srli_epi16(h, 2), m30));
			__m256i p0 = _mm256_maddubs_epi16(q0, _mm256_loadu_si256((const __m256i *)q8));
			__m256i p1 = _mm256_maddubs_epi16(q1, _mm256_loadu_si256((const __m256i *)(q8 + 32)));
			__m256i p2 = _mm256_maddubs_epi16(q2, _mm256_loadu_si256((const __m256i *)(q8 + 64)));
			__m256i p3 = _mm256_maddubs_epi16(q3, _mm256_loadu_si256((const __m256i *)(q8 + 96)));
			p0 = _mm256_madd_epi16(p0, scale2(sc[0], sc[1]));
			p1 = _mm256_madd_epi16(p1, scale2(sc[2], sc[3]));
			p2 = _mm256_madd_epi16(p2, scale2(sc[4], sc[5]));
			p3 = _mm256_madd_epi16(p3, scale2(sc[6], sc[7]));
			sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(_mm256_add_epi32(p0, p1),
								      _mm256_add_epi32(p2, p3)));
		}
		sumi = _mm256_sub_epi32(sumi, _mm256_setr_epi32(32 * off, 0, 0, 0, 0, 0, 0, 0));
		acc = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * f16(x[i].d)),
				      _mm256_cvtepi32_ps(sumi), acc);
	}
	return hsum8(acc);
}

/* ---- 2 rows x 4 tokens tiles ---- */

AVX2 static void tile_q8_0(int n, const void *w, size_t ws, const void *a, size_t as,
			   float *out, size_t os)
{
	const block_q8_0 *x[2], *y[4];
	for (int r = 0; r < 2; r++)
		x[r] = (const block_q8_0 *)((const uint8_t *)w + r * ws);
	for (int t = 0; t < 4; t++)
		y[t] = (const block_q8_0 *)((const uint8_t *)a + t * as);
	__m256 acc[2][4];
	for (int r = 0; r < 2; r++)
		for (int t = 0; t < 4; t++)
			acc[r][t] = _mm256_setzero_ps();
	const __m256i ones = _mm256_set1_epi16(1);
	for (int i = 0; i < n / QK8_0; i++) {
		__m256i qx[2], ax[2];
		__m256 dx[2];
		for (int r = 0; r < 2; r++) {
			qx[r] = _mm256_loadu_si256((const __m256i *)x[r][i].qs);
			ax[r] = _mm256_sign_epi8(qx[r], qx[r]);
			dx[r] = _mm256_set1_ps(f16(x[r][i].d));
		}
		for (int t = 0; t < 4; t++) {
			__m256i qy = _mm256_loadu_si256((const __m256i *)y[t][i].qs);
			__m256 dy = _mm256_set1_ps(f16(y[t][i].d));
			for (int r = 0; r < 2; r++) {
				__m256i p = _mm256_madd_epi16(
					_mm256_maddubs_epi16(ax[r], _mm256_sign_epi8(qy, qx[r])), ones);
				acc[r][t] = _mm256_fmadd_ps(_mm256_mul_ps(dx[r], dy),
							    _mm256_cvtepi32_ps(p), acc[r][t]);
			}
		}
	}
	for (int t = 0; t < 4; t++)
		for (int r = 0; r < 2; r++)
			out[t * os + r] = hsum8(acc[r][t]);
}

VNNI static void tile_q8_0_vnni(int n, const void *w, size_t ws, const void *a, size_t as,
			   float *out, size_t os)
{
	const block_q8_0 *x[2], *y[4];
	for (int r = 0; r < 2; r++)
		x[r] = (const block_q8_0 *)((const uint8_t *)w + r * ws);
	for (int t = 0; t < 4; t++)
		y[t] = (const block_q8_0 *)((const uint8_t *)a + t * as);
	__m256 acc[2][4];
	for (int r = 0; r < 2; r++)
		for (int t = 0; t < 4; t++)
			acc[r][t] = _mm256_setzero_ps();
	for (int i = 0; i < n / QK8_0; i++) {
		__m256i qx[2], ax[2];
		__m256 dx[2];
		for (int r = 0; r < 2; r++) {
			qx[r] = _mm256_loadu_si256((const __m256i *)x[r][i].qs);
			ax[r] = _mm256_sign_epi8(qx[r], qx[r]);
			dx[r] = _mm256_set1_ps(f16(x[r][i].d));
		}
		for (int t = 0; t < 4; t++) {
			__m256i qy = _mm256_loadu_si256((const __m256i *)y[t][i].qs);
			__m256 dy = _mm256_set1_ps(f16(y[t][i].d));
			for (int r = 0; r < 2; r++) {
				__m256i p = _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), ax[r],
								     _mm256_sign_epi8(qy, qx[r]));
				acc[r][t] = _mm256_fmadd_ps(_mm256_mul_ps(dx[r], dy),
							    _mm256_cvtepi32_ps(p), acc[r][t]);
			}
		}
	}
	for (int t = 0; t < 4; t++)
		for (int r = 0; r < 2; r++)
			out[t * os + r] = hsum8(acc[r][t]);
}

AVX2 static void tile_q4_0(int n, const void *w, size_t ws, const void *a, size_t as,
			   float *out, size_t os)
{
	const block_q4_0 *x[2];
	const block_q8_0 *y[4];
	for (int r = 0; r < 2; r++)
		x[r] = (const block_q4_0 *)((const uint8_t *)w + r * ws);
	for (int t = 0; t < 4; t++)
		y[t] = (const block_q8_0 *)((const uint8_t *)a + t * as);
	__m256 acc[2][4];
	for (int r = 0; r < 2; r++)
		for (int t = 0; t < 4; t++)
			acc[r][t] = _mm256_setzero_ps();
	const __m256i ones = _mm256_set1_epi16(1), m4 = _mm256_set1_epi8(0xF);
	const __m256i off = _mm256_set1_epi8(8);
	for (int i = 0; i < n / QK4_0; i++) {
		__m256i qx[2], ax[2];
		__m256 dx[2];
		for (int r = 0; r < 2; r++) {
			__m128i tb = _mm_loadu_si128((const __m128i *)x[r][i].qs);
			__m256i q = _mm256_set_m128i(_mm_srli_epi16(tb, 4), tb);
			qx[r] = _mm256_sub_epi8(_mm256_and_si256(q, m4), off);
			ax[r] = _mm256_sign_epi8(qx[r], qx[r]);
			dx[r] = _mm256_set1_ps(f16(x[r][i].d));
		}
		for (int t = 0; t < 4; t++) {
			__m256i qy = _mm256_loadu_si256((const __m256i *)y[t][i].qs);
			__m256 dy = _mm256_set1_ps(f16(y[t][i].d));
			for (int r = 0; r < 2; r++) {
				__m256i p = _mm256_madd_epi16(
					_mm256_maddubs_epi16(ax[r], _mm256_sign_epi8(qy, qx[r])), ones);
				acc[r][t] = _mm256_fmadd_ps(_mm256_mul_ps(dx[r], dy),
							    _mm256_cvtepi32_ps(p), acc[r][t]);
			}
		}
	}
	for (int t = 0; t < 4; t++)
		for (int r = 0; r < 2; r++)
			out[t * os + r] = hsum8(acc[r][t]);
}

/* One Q4_K row against 4 tokens (kept to one row: two overflow the 16
 * ymm registers). */
AVX2 static void row4_q4_K(int n, const block_q4_K *x, const block_q8_K *const y[4],
			   float *out, size_t os)
{
	__m256 acc[4];
	float accm[4] = { 0 };
	for (int t = 0; t < 4; t++)
		acc[t] = _mm256_setzero_ps();
	const __m256i m4 = _mm256_set1_epi8(0xF);
	for (int i = 0; i < n / QK_K; i++) {
		uint8_t sc[8], mn[8];
		scales_mins(x[i].scales, sc, mn);
		float d = f16(x[i].d), dmin = f16(x[i].dmin);
		__m256i sumi[4];
		for (int t = 0; t < 4; t++) {
			accm[t] += y[t][i].d * dmin * (float)mins_dot(mn, y[t][i].bsums);
			sumi[t] = _mm256_setzero_si256();
		}
		for (int j = 0; j < 4; j++) {
			__m256i bits = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * j));
			__m256i lo = _mm256_and_si256(bits, m4);
			__m256i hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
			__m256i sl = _mm256_set1_epi16(sc[2 * j]), sh = _mm256_set1_epi16(sc[2 * j + 1]);
			for (int t = 0; t < 4; t++) {
				__m256i ql = _mm256_loadu_si256((const __m256i *)(y[t][i].qs + 64 * j));
				__m256i qh = _mm256_loadu_si256((const __m256i *)(y[t][i].qs + 64 * j + 32));
				__m256i pl = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, ql), sl);
				__m256i ph = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, qh), sh);
				sumi[t] = _mm256_add_epi32(sumi[t], _mm256_add_epi32(pl, ph));
			}
		}
		for (int t = 0; t < 4; t++)
			acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * y[t][i].d),
						 _mm256_cvtepi32_ps(sumi[t]), acc[t]);
	}
	for (int t = 0; t < 4; t++)
		out[t * os] = hsum8(acc[t]) - accm[t];
}

AVX2 static void tile_q4_K(int n, const void *w, size_t ws, const void *a, size_t as,
			   float *out, size_t os)
{
	const block_q8_K *y[4];
	for (int t = 0; t < 4; t++)
		y[t] = (const block_q8_K *)((const uint8_t *)a + t * as);
	for (int r = 0; r < 2; r++)
		row4_q4_K(n, (const block_q4_K *)((const uint8_t *)w + r * ws), y, out + r, os);
}

AVX2 static void row4_q6_K(int n, const block_q6_K *x, const block_q8_K *const y[4],
			   float *out, size_t os)
{
	__m256 acc[4];
	for (int t = 0; t < 4; t++)
		acc[t] = _mm256_setzero_ps();
	const __m256i m4 = _mm256_set1_epi8(0xF), m30 = _mm256_set1_epi8(0x30);
	for (int i = 0; i < n / QK_K; i++) {
		__m256i sumi[4];
		for (int t = 0; t < 4; t++) {
			int off = 0;
			for (int g = 0; g < QK_K / 16; g++)
				off += x[i].scales[g] * y[t][i].bsums[g];
			sumi[t] = _mm256_setr_epi32(-32 * off, 0, 0, 0, 0, 0, 0, 0);
		}
		for (int c = 0; c < 2; c++) {
			const uint8_t *ql = x[i].ql + 64 * c, *qh = x[i].qh + 32 * c;
			const int8_t *sc = x[i].scales + 8 * c;
			__m256i la = _mm256_loadu_si256((const __m256i *)ql);
			__m256i lb = _mm256_loadu_si256((const __m256i *)(ql + 32));
			__m256i h = _mm256_loadu_si256((const __m256i *)qh);
			__m256i q[4];
			q[0] = _mm256_or_si256(_mm256_and_si256(la, m4),
					       _mm256_and_si256(_mm256_slli_epi16(h, 4), m30));
			q[1] = _mm256_or_si256(_mm256_and_si256(lb, m4),
					       _mm256_and_si256(_mm256_slli_epi16(h, 2), m30));
			q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(la, 4), m4),
					       _mm256_and_si256(h, m30));
			q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lb, 4), m4),
					       _mm256_and_si256(_mm256_srli_epi16(h, 2), m30));
			for (int k = 0; k < 4; k++) {
				__m256i sv = scale2(sc[2 * k], sc[2 * k + 1]);
				for (int t = 0; t < 4; t++) {
					__m256i qy = _mm256_loadu_si256(
						(const __m256i *)(y[t][i].qs + 128 * c + 32 * k));
					sumi[t] = _mm256_add_epi32(sumi[t],
						_mm256_madd_epi16(_mm256_maddubs_epi16(q[k], qy), sv));
				}
			}
		}
		float d = f16(x[i].d);
		for (int t = 0; t < 4; t++)
			acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * y[t][i].d),
						 _mm256_cvtepi32_ps(sumi[t]), acc[t]);
	}
	for (int t = 0; t < 4; t++)
		out[t * os] = hsum8(acc[t]);
}

AVX2 static void tile_q6_K(int n, const void *w, size_t ws, const void *a, size_t as,
			   float *out, size_t os)
{
	const block_q8_K *y[4];
	for (int t = 0; t < 4; t++)
		y[t] = (const block_q8_K *)((const uint8_t *)a + t * as);
	for (int r = 0; r < 2; r++)
		row4_q6_K(n, (const block_q6_K *)((const uint8_t *)w + r * ws), y, out + r, os);
}

/* ---- activation quantisers (same results as quant.c's up to ties) ---- */

AVX2 static inline __m256i pack_i32x4_to_i8(__m256i a, __m256i b, __m256i c, __m256i d)
{
	__m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
	__m256i x = _mm256_packs_epi16(ab, cd);
	return _mm256_permutevar8x32_epi32(x, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

AVX2 static void quantize_q8_0(const float *x, block_q8_0 *y, int64_t nb)
{
	const __m256 sign = _mm256_set1_ps(-0.0f);
	for (int64_t i = 0; i < nb; i++, x += QK8_0) {
		__m256 v[4], m = _mm256_setzero_ps();
		for (int k = 0; k < 4; k++) {
			v[k] = _mm256_loadu_ps(x + 8 * k);
			m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[k]));
		}
		__m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
		h = _mm_max_ps(h, _mm_movehl_ps(h, h));
		h = _mm_max_ss(h, _mm_movehdup_ps(h));
		float d = _mm_cvtss_f32(h) / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
		y[i].d = (uint16_t)_cvtss_sh(d, 0);
		__m256 vid = _mm256_set1_ps(id);
		__m256i q[4];
		for (int k = 0; k < 4; k++)
			q[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[k], vid),
					_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
		_mm256_storeu_si256((__m256i *)y[i].qs, pack_i32x4_to_i8(q[0], q[1], q[2], q[3]));
	}
}

AVX2 static void quantize_q8_K(const float *x, block_q8_K *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, x += QK_K) {
		__m256 mx = _mm256_set1_ps(-INFINITY), mn = _mm256_set1_ps(INFINITY);
		for (int k = 0; k < QK_K; k += 8) {
			__m256 v = _mm256_loadu_ps(x + k);
			mx = _mm256_max_ps(mx, v);
			mn = _mm256_min_ps(mn, v);
		}
		float hi, lo;
		float a[8], b[8];
		_mm256_storeu_ps(a, mx);
		_mm256_storeu_ps(b, mn);
		hi = a[0];
		lo = b[0];
		for (int k = 1; k < 8; k++) {
			hi = a[k] > hi ? a[k] : hi;
			lo = b[k] < lo ? b[k] : lo;
		}
		float max = -lo > hi ? lo : hi;
		if (max == 0) {
			memset(&y[i], 0, sizeof(y[i]));
			continue;
		}
		float iscale = -127.0f / max;
		__m256 vs = _mm256_set1_ps(iscale);
		for (int k = 0; k < QK_K; k += 32) {
			__m256i q[4];
			for (int j = 0; j < 4; j++)
				q[j] = _mm256_cvtps_epi32(_mm256_round_ps(
					_mm256_mul_ps(_mm256_loadu_ps(x + k + 8 * j), vs),
					_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
			_mm256_storeu_si256((__m256i *)(y[i].qs + k), pack_i32x4_to_i8(q[0], q[1], q[2], q[3]));
		}
		for (int g = 0; g < QK_K / 16; g++) {
			int sum = 0;
			for (int l = 0; l < 16; l++)
				sum += y[i].qs[g * 16 + l];
			y[i].bsums[g] = (int16_t)sum;
		}
		y[i].d = 1.0f / iscale;
	}
}

int quant_quantize_avx2(int type, const float *src, void *dst, int64_t n)
{
	switch (type) {
	case QT_Q8_0: quantize_q8_0(src, dst, n / QK8_0); return 0;
	case QT_Q8_K: quantize_q8_K(src, dst, n / QK_K); return 0;
	default: return -1;
	}
}

/* ---- VNNI gemm: 8 weight rows x up to 16 tokens, Q8_0 and Q4_0 ----
 * Per block, the 8 rows' 32 bytes are transposed so that vector g holds
 * bytes 4g..4g+3 of every row; a token's 4 bytes 4g..4g+3 broadcast to all
 * lanes then give, through vpdpbusd, lane r = the row-r partial dot. So one
 * int->float conversion and one FMA serve 8 (row, token) pairs. Activations
 * are unsigned (q + 128); the 128 * sum(w) this adds is subtracted. */

AVX2 static inline void transpose8_epi32(__m256i r[8])
{
	__m256i t0 = _mm256_unpacklo_epi32(r[0], r[1]), t1 = _mm256_unpackhi_epi32(r[0], r[1]);
	__m256i t2 = _mm256_unpacklo_epi32(r[2], r[3]), t3 = _mm256_unpackhi_epi32(r[2], r[3]);
	__m256i t4 = _mm256_unpacklo_epi32(r[4], r[5]), t5 = _mm256_unpackhi_epi32(r[4], r[5]);
	__m256i t6 = _mm256_unpacklo_epi32(r[6], r[7]), t7 = _mm256_unpackhi_epi32(r[6], r[7]);
	__m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
	__m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
	__m256i u4 = _mm256_unpacklo_epi64(t4, t6), u5 = _mm256_unpackhi_epi64(t4, t6);
	__m256i u6 = _mm256_unpacklo_epi64(t5, t7), u7 = _mm256_unpackhi_epi64(t5, t7);
	r[0] = _mm256_permute2x128_si256(u0, u4, 0x20);
	r[1] = _mm256_permute2x128_si256(u1, u5, 0x20);
	r[2] = _mm256_permute2x128_si256(u2, u6, 0x20);
	r[3] = _mm256_permute2x128_si256(u3, u7, 0x20);
	r[4] = _mm256_permute2x128_si256(u0, u4, 0x31);
	r[5] = _mm256_permute2x128_si256(u1, u5, 0x31);
	r[6] = _mm256_permute2x128_si256(u2, u6, 0x31);
	r[7] = _mm256_permute2x128_si256(u3, u7, 0x31);
}

/* Loads block i of 8 rows as signed bytes and their f16 scales. */
VNNI static inline void load8_q8_0(const uint8_t *wb, size_t ws, int i, __m256i g[8],
				   uint16_t dh[8])
{
	for (int r = 0; r < 8; r++) {
		const block_q8_0 *x = (const block_q8_0 *)(wb + r * ws) + i;
		g[r] = _mm256_loadu_si256((const __m256i *)x->qs);
		dh[r] = x->d;
	}
}

VNNI static inline void load8_q4_0(const uint8_t *wb, size_t ws, int i, __m256i g[8],
				   uint16_t dh[8])
{
	const __m256i m4 = _mm256_set1_epi8(0xF), off = _mm256_set1_epi8(8);
	for (int r = 0; r < 8; r++) {
		const block_q4_0 *x = (const block_q4_0 *)(wb + r * ws) + i;
		__m128i tb = _mm_loadu_si128((const __m128i *)x->qs);
		__m256i q = _mm256_set_m128i(_mm_srli_epi16(tb, 4), tb);
		g[r] = _mm256_sub_epi8(_mm256_and_si256(q, m4), off);
		dh[r] = x->d;
	}
}

/* The gemm body for a 32-value block type; load8 unpacks to signed bytes. */
#define GEMM8_BODY(load8)                                                              \
	__m256 acc[QUANT_GEMM8_TOKENS];                                                \
	for (int t = 0; t < nt; t++)                                                   \
		acc[t] = _mm256_setzero_ps();                                          \
	const __m256i ones = _mm256_set1_epi8(1);                                      \
	const uint8_t *wb = w, *ab = a;                                                \
	for (int i = 0; i < n / 32; i++) {                                             \
		__m256i g[8];                                                          \
		uint16_t dh[8];                                                        \
		load8(wb, ws, i, g, dh);                                               \
		__m256 dx = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)dh));     \
		transpose8_epi32(g);                                                   \
		__m256i sumw = _mm256_setzero_si256();                                 \
		for (int k = 0; k < 8; k++)                                            \
			sumw = _mm256_dpbusd_avx_epi32(sumw, ones, g[k]);              \
		sumw = _mm256_slli_epi32(sumw, 7);                                     \
		for (int t = 0; t < nt; t++) {                                         \
			const block_q8_0u *y = (const block_q8_0u *)(ab + t * as) + i; \
			__m256i s = _mm256_setzero_si256();                            \
			for (int k = 0; k < 8; k++) {                                  \
				int v;                                                 \
				memcpy(&v, y->qs + 4 * k, 4);                          \
				s = _mm256_dpbusd_avx_epi32(s, _mm256_set1_epi32(v), g[k]); \
			}                                                              \
			s = _mm256_sub_epi32(s, sumw);                                 \
			acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(dx, _mm256_set1_ps(y->d)), \
						 _mm256_cvtepi32_ps(s), acc[t]);       \
		}                                                                      \
	}                                                                              \
	for (int t = 0; t < nt; t++)                                                   \
		_mm256_storeu_ps(out + t * os, acc[t]);

VNNI static void gemm8_q8_0(int n, const void *w, size_t ws, const void *a, size_t as,
			    int nt, float *out, size_t os)
{
	GEMM8_BODY(load8_q8_0)
}

VNNI static void gemm8_q4_0(int n, const void *w, size_t ws, const void *a, size_t as,
			    int nt, float *out, size_t os)
{
	GEMM8_BODY(load8_q4_0)
}

quant_gemm8_fn quant_gemm8_avx2(int type)
{
	if (!__builtin_cpu_supports("avxvnni"))
		return NULL;
	switch (type) {
	case QT_Q8_0: return gemm8_q8_0;
	case QT_Q4_0: return gemm8_q4_0;
	default: return NULL;
	}
}

quant_tile_fn quant_tile_avx2(int type)
{
	switch (type) {
	case QT_Q8_0:
		return __builtin_cpu_supports("avxvnni") ? tile_q8_0_vnni : tile_q8_0;
	case QT_Q4_0: return tile_q4_0;
	case QT_Q4_K: return tile_q4_K;
	case QT_Q6_K: return tile_q6_K;
	default: return NULL;
	}
}

quant_dot_fn quant_dot_avx2(int type)
{
	switch (type) {
	case QT_F32: return dot_f32;
	case QT_F16: return dot_f16;
	case QT_BF16: return dot_bf16;
	case QT_Q8_0: return dot_q8_0;
	case QT_Q4_0: return dot_q4_0;
	case QT_Q4_K: return dot_q4_K;
	case QT_Q5_K: return dot_q5_K;
	case QT_Q6_K: return dot_q6_K;
	default: return NULL;
	}
}

#else

quant_dot_fn quant_dot_avx2(int type)
{
	(void)type;
	return NULL;
}

quant_tile_fn quant_tile_avx2(int type)
{
	(void)type;
	return NULL;
}

int quant_quantize_avx2(int type, const float *src, void *dst, int64_t n)
{
	(void)type; (void)src; (void)dst; (void)n;
	return -1;
}

quant_gemm8_fn quant_gemm8_avx2(int type)
{
	(void)type;
	return NULL;
}

#endif
