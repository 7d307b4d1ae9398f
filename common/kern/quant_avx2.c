/*
 * quant_avx2.c - AVX2/FMA/F16C dot kernels and activation quantisers (see
 * quant.h). Compiled for any x86-64 CPU: each function carries a target
 * attribute and is only returned after __builtin_cpu_supports said yes.
 */
#include "quant.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__)

#include "quant_simd.h"

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

AVX2 static float dot_q5_0(int n, const void *w, const void *a)
{
	const block_q5_0 *x = w;
	const block_q8_0 *y = a;
	__m256 acc = _mm256_setzero_ps();
	for (int i = 0; i < n / QK4_0; i++) {
		__m256i p = dot_i8(unpack_q5_0(&x[i]), _mm256_loadu_si256((const __m256i *)y[i].qs));
		acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i].d) * f16(y[i].d)),
				      _mm256_cvtepi32_ps(p), acc);
	}
	return hsum8(acc);
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

/* ---- the types of quant_lowbit.c ---- */

/* 32 unsigned nibbles of a 32-block's 16 bytes, in element order. */
AVX2 static inline __m256i nibbles32(const uint8_t *qs)
{
	__m128i t = _mm_loadu_si128((const __m128i *)qs);
	return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0xF));
}

/* 0xFF in byte j where bit j of the 32-bit word at qh is set. */
AVX2 static inline __m256i bits32(const uint8_t *qh)
{
	uint32_t h;
	memcpy(&h, qh, 4);
	const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
					       0x0101010101010101, 0x0000000000000000);
	__m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)h), shuf);
	b = _mm256_or_si256(b, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
	return _mm256_cmpeq_epi8(b, _mm256_set1_epi64x(-1));
}

/* sum of 32 signed activation bytes, as 8 int32 lanes */
AVX2 static inline __m256i sum_i8(__m256i y)
{
	return hsum_pairs_i16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), y));
}

/* Q4_1/Q5_1 vs Q8_0: d*dy*sum(q*y) + m*dy*sum(y) per block. */
AVX2 static float dot_q4_1(int n, const void *w, const void *a)
{
	const block_q4_1 *x = w;
	const block_q8_0 *y = a;
	__m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
	for (int i = 0; i < n / QK4_0; i++) {
		__m256i yv = _mm256_loadu_si256((const __m256i *)y[i].qs);
		__m256i p = hsum_pairs_i16(_mm256_maddubs_epi16(nibbles32(x[i].qs), yv));
		float dy = f16(y[i].d);
		acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i].d) * dy), _mm256_cvtepi32_ps(p), acc);
		accm = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i].m) * dy),
				       _mm256_cvtepi32_ps(sum_i8(yv)), accm);
	}
	return hsum8(_mm256_add_ps(acc, accm));
}

AVX2 static float dot_q5_1(int n, const void *w, const void *a)
{
	const block_q5_1 *x = w;
	const block_q8_0 *y = a;
	const __m256i b16 = _mm256_set1_epi8(16);
	__m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
	for (int i = 0; i < n / QK4_0; i++) {
		__m256i q = _mm256_or_si256(nibbles32(x[i].qs), _mm256_and_si256(bits32(x[i].qh), b16));
		__m256i yv = _mm256_loadu_si256((const __m256i *)y[i].qs);
		__m256i p = hsum_pairs_i16(_mm256_maddubs_epi16(q, yv));
		float dy = f16(y[i].d);
		acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i].d) * dy), _mm256_cvtepi32_ps(p), acc);
		accm = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i].m) * dy),
				       _mm256_cvtepi32_ps(sum_i8(yv)), accm);
	}
	return hsum8(_mm256_add_ps(acc, accm));
}

AVX2 static inline __m256i iq4_table(void)
{
	__m128i t = _mm_loadu_si128((const __m128i *)iq4nl_values);
	return _mm256_set_m128i(t, t);
}

AVX2 static float dot_iq4_nl(int n, const void *w, const void *a)
{
	const block_iq4_nl *x = w;
	const block_q8_0 *y = a;
	const __m256i tab = iq4_table();
	__m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
	int nb = n / QK4_0, i = 0;
	for (; i + 2 <= nb; i += 2) {
		__m256i p0 = dot_i8(_mm256_shuffle_epi8(tab, nibbles32(x[i].qs)),
				    _mm256_loadu_si256((const __m256i *)y[i].qs));
		__m256i p1 = dot_i8(_mm256_shuffle_epi8(tab, nibbles32(x[i + 1].qs)),
				    _mm256_loadu_si256((const __m256i *)y[i + 1].qs));
		acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i].d) * f16(y[i].d)),
				       _mm256_cvtepi32_ps(p0), acc0);
		acc1 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i + 1].d) * f16(y[i + 1].d)),
				       _mm256_cvtepi32_ps(p1), acc1);
	}
	for (; i < nb; i++) {
		__m256i p = dot_i8(_mm256_shuffle_epi8(tab, nibbles32(x[i].qs)),
				   _mm256_loadu_si256((const __m256i *)y[i].qs));
		acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i].d) * f16(y[i].d)),
				       _mm256_cvtepi32_ps(p), acc0);
	}
	return hsum8(_mm256_add_ps(acc0, acc1));
}

AVX2 static float dot_iq4_xs(int n, const void *w, const void *a)
{
	const block_iq4_xs *x = w;
	const block_q8_K *y = a;
	const __m256i tab = iq4_table(), m4 = _mm256_set1_epi8(0xF);
	__m256 acc = _mm256_setzero_ps();
	for (int i = 0; i < n / QK_K; i++) {
		const uint8_t *qs = x[i].qs;
		const int8_t *q8 = y[i].qs;
		__m256i sumi = _mm256_setzero_si256();
		for (int ib = 0; ib < 8; ib += 2, qs += 32, q8 += 64) {
			/* sub-blocks ib and ib+1: 16 bytes each, low nibbles first */
			__m256i bits = _mm256_loadu_si256((const __m256i *)qs);
			__m256i lo = _mm256_and_si256(bits, m4);
			__m256i hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
			__m256i v0 = _mm256_shuffle_epi8(tab, _mm256_permute2x128_si256(lo, hi, 0x20));
			__m256i v1 = _mm256_shuffle_epi8(tab, _mm256_permute2x128_si256(lo, hi, 0x31));
			__m256i y0 = _mm256_loadu_si256((const __m256i *)q8);
			__m256i y1 = _mm256_loadu_si256((const __m256i *)(q8 + 32));
			__m256i p0 = _mm256_maddubs_epi16(_mm256_sign_epi8(v0, v0), _mm256_sign_epi8(y0, v0));
			__m256i p1 = _mm256_maddubs_epi16(_mm256_sign_epi8(v1, v1), _mm256_sign_epi8(y1, v1));
			int ls0 = (((x[i].scales_l[ib / 2] & 0xF) | (((x[i].scales_h >> (2 * ib)) & 3) << 4))) - 32;
			int ls1 = (((x[i].scales_l[ib / 2] >> 4) | (((x[i].scales_h >> (2 * ib + 2)) & 3) << 4))) - 32;
			p0 = _mm256_madd_epi16(p0, _mm256_set1_epi16((int16_t)ls0));
			p1 = _mm256_madd_epi16(p1, _mm256_set1_epi16((int16_t)ls1));
			sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
		}
		acc = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * f16(x[i].d)), _mm256_cvtepi32_ps(sumi), acc);
	}
	return hsum8(acc);
}

/* Q2_K vs Q8_K: d*dy*sum_g sc_g*dot_g(q, y) - dmin*dy*sum_g min_g*bsum_g. */
AVX2 static float dot_q2_K(int n, const void *w, const void *a)
{
	const block_q2_K *x = w;
	const block_q8_K *y = a;
	const __m256i m3 = _mm256_set1_epi8(3);
	__m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
	for (int i = 0; i < n / QK_K; i++) {
		const uint8_t *sc = x[i].scales;
		const int8_t *q8 = y[i].qs;
		__m128i sc8 = _mm_loadu_si128((const __m128i *)sc);
		__m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc8, 4), _mm_set1_epi8(0xF)));
		__m256i pm = _mm256_madd_epi16(mins, _mm256_loadu_si256((const __m256i *)y[i].bsums));
		__m256i sumi = _mm256_setzero_si256();
		for (int c = 0; c < 2; c++) {
			__m256i bits = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * c));
			for (int j = 0; j < 4; j++, q8 += 32, sc += 2) {
				__m256i q = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * j), m3);
				__m256i p = _mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)q8));
				p = _mm256_madd_epi16(p, scale2((int8_t)(sc[0] & 0xF), (int8_t)(sc[1] & 0xF)));
				sumi = _mm256_add_epi32(sumi, p);
			}
		}
		acc = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * f16(x[i].d)), _mm256_cvtepi32_ps(sumi), acc);
		accm = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * f16(x[i].dmin)), _mm256_cvtepi32_ps(pm), accm);
	}
	return hsum8(_mm256_sub_ps(acc, accm));
}

/* Q3_K vs Q8_K: quants held as 0..7 (value + 4); the 4 is taken off
 * through the activation sums: - 4 * sum_g sc_g * bsum_g. */
AVX2 static float dot_q3_K(int n, const void *w, const void *a)
{
	const block_q3_K *x = w;
	const block_q8_K *y = a;
	const __m256i m3 = _mm256_set1_epi8(3), b4 = _mm256_set1_epi8(4);
	__m256 acc = _mm256_setzero_ps();
	for (int i = 0; i < n / QK_K; i++) {
		int8_t sc[16];
		quant_q3_K_scales(x[i].scales, sc);
		__m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc));
		__m256i off = _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)y[i].bsums));
		const int8_t *q8 = y[i].qs;
		__m256i hm = _mm256_loadu_si256((const __m256i *)x[i].hmask);
		__m256i sumi = _mm256_setzero_si256();
		for (int c = 0; c < 2; c++) {
			__m256i bits = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * c));
			for (int j = 0; j < 4; j++, q8 += 32) {
				__m256i hb = _mm256_set1_epi8((char)(1 << (4 * c + j)));
				__m256i h = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hm, hb), hb), b4);
				__m256i q = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 2 * j), m3), h);
				__m256i p = _mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)q8));
				int g = 8 * c + 2 * j;
				sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scale2(sc[g], sc[g + 1])));
			}
		}
		sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(off, 2));
		acc = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * f16(x[i].d)), _mm256_cvtepi32_ps(sumi), acc);
	}
	return hsum8(acc);
}

/* ---- tiles (QUANT_TILE_R rows x QUANT_TILE_T tokens) for the 32-value
 * types of quant_lowbit.c: each weight block is unpacked once for the
 * tile's tokens, each activation block loaded once for both rows ---- */

typedef struct { __m256i q; float d, m; } unpacked32;

__attribute__((always_inline)) AVX2 static inline unpacked32 unpack32(int type, const uint8_t *blk)
{
	unpacked32 u;
	if (type == QT_Q4_1) {
		const block_q4_1 *b = (const block_q4_1 *)blk;
		u.q = nibbles32(b->qs);
		u.d = f16(b->d);
		u.m = f16(b->m);
	} else if (type == QT_Q5_1) {
		const block_q5_1 *b = (const block_q5_1 *)blk;
		u.q = _mm256_or_si256(nibbles32(b->qs),
				      _mm256_and_si256(bits32(b->qh), _mm256_set1_epi8(16)));
		u.d = f16(b->d);
		u.m = f16(b->m);
	} else {   /* IQ4_NL: signed table values */
		const block_iq4_nl *b = (const block_iq4_nl *)blk;
		u.q = _mm256_shuffle_epi8(iq4_table(), nibbles32(b->qs));
		u.d = f16(b->d);
		u.m = 0;
	}
	return u;
}

__attribute__((always_inline)) AVX2 static inline void
tile32(int type, size_t bb, int n, const void *w, size_t w_stride, const void *act,
       size_t act_stride, float *out, size_t out_stride)
{
	const uint8_t *wb = w, *ab = act;
	const bool has_min = type != QT_IQ4_NL;
	__m256 acc[QUANT_TILE_R][QUANT_TILE_T];
	for (int r = 0; r < QUANT_TILE_R; r++)
		for (int t = 0; t < QUANT_TILE_T; t++)
			acc[r][t] = _mm256_setzero_ps();
	for (int i = 0; i < n / QK4_0; i++) {
		unpacked32 u[QUANT_TILE_R];
		__m256i ax[QUANT_TILE_R];
		for (int r = 0; r < QUANT_TILE_R; r++) {
			u[r] = unpack32(type, wb + r * w_stride + (size_t)i * bb);
			ax[r] = has_min ? u[r].q : _mm256_sign_epi8(u[r].q, u[r].q);
		}
		for (int t = 0; t < QUANT_TILE_T; t++) {
			const block_q8_0 *y = (const block_q8_0 *)(ab + t * act_stride) + i;
			__m256i yv = _mm256_loadu_si256((const __m256i *)y->qs);
			float dy = f16(y->d);
			__m256 sy = has_min ? _mm256_cvtepi32_ps(sum_i8(yv)) : _mm256_setzero_ps();
			for (int r = 0; r < QUANT_TILE_R; r++) {
				__m256i ys = has_min ? yv : _mm256_sign_epi8(yv, u[r].q);
				__m256i p = hsum_pairs_i16(_mm256_maddubs_epi16(ax[r], ys));
				acc[r][t] = _mm256_fmadd_ps(_mm256_set1_ps(u[r].d * dy),
							    _mm256_cvtepi32_ps(p), acc[r][t]);
				if (has_min)
					acc[r][t] = _mm256_fmadd_ps(_mm256_set1_ps(u[r].m * dy), sy, acc[r][t]);
			}
		}
	}
	for (int t = 0; t < QUANT_TILE_T; t++)
		for (int r = 0; r < QUANT_TILE_R; r++)
			out[t * out_stride + r] = hsum8(acc[r][t]);
}

AVX2 static void tile_q4_1(int n, const void *w, size_t ws, const void *a, size_t as,
			   float *out, size_t os)
{
	tile32(QT_Q4_1, sizeof(block_q4_1), n, w, ws, a, as, out, os);
}

AVX2 static void tile_q5_1(int n, const void *w, size_t ws, const void *a, size_t as,
			   float *out, size_t os)
{
	tile32(QT_Q5_1, sizeof(block_q5_1), n, w, ws, a, as, out, os);
}

AVX2 static void tile_iq4_nl(int n, const void *w, size_t ws, const void *a, size_t as,
			     float *out, size_t os)
{
	tile32(QT_IQ4_NL, sizeof(block_iq4_nl), n, w, ws, a, as, out, os);
}

quant_tile_fn quant_tile_lowbit_avx2(int type)
{
	switch (type) {
	case QT_Q4_1: return tile_q4_1;
	case QT_Q5_1: return tile_q5_1;
	case QT_IQ4_NL: return tile_iq4_nl;
	default: return NULL;
	}
}

/* ---- VNNI prefill gemm for Q4_1/Q5_1: 8 rows x up to 16 tokens of Q8_0U
 * activations. As quant_gemm_avx2.c's for Q8_0: per block the 8 rows'
 * quants are transposed so vector k holds bytes 4k..4k+3 of every row and
 * one dpbusd per 4 bytes of a token serves all 8 rows; the +128 of the
 * unsigned activations is taken off through the rows' quant sums, and the
 * offset m through the token's activation sum. ---- */

AVX2 static inline void transpose8x8_i32(__m256i v[8])
{
	__m256i a[8], b[8];
	for (int k = 0; k < 8; k += 2) {
		a[k] = _mm256_unpacklo_epi32(v[k], v[k + 1]);
		a[k + 1] = _mm256_unpackhi_epi32(v[k], v[k + 1]);
	}
	for (int k = 0; k < 8; k += 4) {
		b[k] = _mm256_unpacklo_epi64(a[k], a[k + 2]);
		b[k + 1] = _mm256_unpackhi_epi64(a[k], a[k + 2]);
		b[k + 2] = _mm256_unpacklo_epi64(a[k + 1], a[k + 3]);
		b[k + 3] = _mm256_unpackhi_epi64(a[k + 1], a[k + 3]);
	}
	for (int k = 0; k < 4; k++) {
		v[k] = _mm256_permute2x128_si256(b[k], b[k + 4], 0x20);
		v[k + 4] = _mm256_permute2x128_si256(b[k], b[k + 4], 0x31);
	}
}

__attribute__((always_inline)) VNNI static inline void
gemm8_min32(int type, size_t bb, int n, const void *w, size_t ws, const void *a, size_t as,
	    int nt, float *out, size_t os)
{
	__m256 acc[QUANT_GEMM8_TOKENS];
	for (int t = 0; t < nt; t++)
		acc[t] = _mm256_setzero_ps();
	const __m256i ones = _mm256_set1_epi8(1);
	const uint8_t *wb = w, *ab = a;
	for (int i = 0; i < n / QK4_0; i++) {
		__m256i g[8];
		float dv[8], mv[8];
		for (int r = 0; r < 8; r++) {
			unpacked32 u = unpack32(type, wb + r * ws + (size_t)i * bb);
			g[r] = u.q;
			dv[r] = u.d;
			mv[r] = u.m;
		}
		__m256 dx = _mm256_loadu_ps(dv), mx = _mm256_loadu_ps(mv);
		transpose8x8_i32(g);
		__m256i sumw = _mm256_setzero_si256();
		for (int k = 0; k < 8; k++)
			sumw = _mm256_dpbusd_avx_epi32(sumw, ones, g[k]);
		sumw = _mm256_slli_epi32(sumw, 7);
		for (int t = 0; t < nt; t++) {
			const block_q8_0u *y = (const block_q8_0u *)(ab + t * as) + i;
			__m256i s = _mm256_setzero_si256();
			for (int k = 0; k < 8; k++) {
				int v;
				memcpy(&v, y->qs + 4 * k, 4);
				s = _mm256_dpbusd_avx_epi32(s, _mm256_set1_epi32(v), g[k]);
			}
			s = _mm256_sub_epi32(s, sumw);
			acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(dx, _mm256_set1_ps(y->d)),
						 _mm256_cvtepi32_ps(s), acc[t]);
			acc[t] = _mm256_fmadd_ps(mx, _mm256_set1_ps(y->d * (float)y->sum), acc[t]);
		}
	}
	for (int t = 0; t < nt; t++)
		_mm256_storeu_ps(out + t * os, acc[t]);
}

VNNI static void gemm8_q4_1(int n, const void *w, size_t ws, const void *a, size_t as,
			    int nt, float *out, size_t os)
{
	gemm8_min32(QT_Q4_1, sizeof(block_q4_1), n, w, ws, a, as, nt, out, os);
}

VNNI static void gemm8_q5_1(int n, const void *w, size_t ws, const void *a, size_t as,
			    int nt, float *out, size_t os)
{
	gemm8_min32(QT_Q5_1, sizeof(block_q5_1), n, w, ws, a, as, nt, out, os);
}

/* ---- Q4_1 / Q5_1 packed for the batched gemm ----
 * Per group of 8 rows and block (QUANT_PACK8_M4H / _M5H bytes): the 8
 * rows' f16 scales and mins, then the 8 vectors g[k] gemm8_min32 builds
 * (values 0..31) as 4-bit codes, and for Q5_1 the masks of their fifth
 * bits (min_pack). Per token the packed gemm rebuilds those vectors in
 * registers and computes gemm8_min32's exact integer sums (the values,
 * >= 0, as vpdpbusd's unsigned operand, the activations' signed bytes
 * (QT_Q8_0S) as the other: no -128 * sum(q) to take off; in GEMM8P_BODY's
 * turned order), then runs its float instructions in the same order, so each
 * token gets its bits, alone or in any company. Q4_K and Q5_K sub-blocks
 * take this layout too (quant_gemm_lowbit_avx2.c packs them). */

AVX2 static void pack8_min32(int type, size_t bb, int n, const void *w, size_t ws, void *dst)
{
	const uint8_t *wb = w;
	uint8_t *o = dst;
	size_t blk = type == QT_Q4_1 ? QUANT_PACK8_M4H : QUANT_PACK8_M5H;
	for (int i = 0; i < n / QK4_0; i++, o += blk) {
		__m256i g[8];
		float dv[8], mv[8];
		for (int r = 0; r < 8; r++) {
			unpacked32 u = unpack32(type, wb + r * ws + (size_t)i * bb);
			g[r] = u.q;
			dv[r] = u.d;
			mv[r] = u.m;
		}
		transpose8x8_i32(g);
		min_pack(o, dv, mv, g, type == QT_Q5_1, true);
	}
}

AVX2 static void pack8_q4_1(int n, const void *w, size_t ws, void *dst)
{
	pack8_min32(QT_Q4_1, sizeof(block_q4_1), n, w, ws, dst);
}

AVX2 static void pack8_q5_1(int n, const void *w, size_t ws, void *dst)
{
	pack8_min32(QT_Q5_1, sizeof(block_q5_1), n, w, ws, dst);
}

/* The vectors k = c and c + 4 of a block: the codes, plus 16 where the
 * mask says the fifth bit is set (5-bit types; EVEX in one masked add). */
#define G2_M4(pb, c, g)                                                                \
	(g[0] = CODES_LO((pb) + MIN_PACK_G(h_), c, m4), g[1] = CODES_HI((pb) + MIN_PACK_G(h_), c, m4))
#define G2_M5_VEX(pb, c, g)                                                            \
	(g[0] = _mm256_add_epi8(CODES_LO((pb) + MIN_PACK_G(h_), c, m4), _mm256_and_si256(  \
		mask_bytes(mask_at((pb) + MIN_PACK_MASKS(h_), c)), s16)),                  \
	 g[1] = _mm256_add_epi8(CODES_HI((pb) + MIN_PACK_G(h_), c, m4), _mm256_and_si256(  \
		mask_bytes(mask_at((pb) + MIN_PACK_MASKS(h_), (c) + 4)), s16)))
#define G2_M5_EVEX(pb, c, g)                                                           \
	(g[0] = CODES_LO((pb) + MIN_PACK_G(h_), c, m4),                                    \
	 g[0] = _mm256_mask_add_epi8(g[0], mask_at((pb) + MIN_PACK_MASKS(h_), c), g[0], s16), \
	 g[1] = CODES_HI((pb) + MIN_PACK_G(h_), c, m4),                                    \
	 g[1] = _mm256_mask_add_epi8(g[1], mask_at((pb) + MIN_PACK_MASKS(h_), (c) + 4), g[1], s16))

#define GEMM8P_MIN_BODY(dp, blk, G2, half)                                            \
	const __m256i m4 = _mm256_set1_epi8(0xF), s16 = _mm256_set1_epi8(16);          \
	const bool h_ = (half);   /* f16 scales and mins */                            \
	(void)s16;                                                                     \
	__m256 acc[8];                                                                 \
	for (int t = 0; t < nt; t++)                                                   \
		acc[t] = _mm256_setzero_ps();                                          \
	for (int i = 0; i < n / QK4_0; i++, pb += (blk)) {                             \
		QUANT_PREFETCH_GROUP(pb, blk, nt);                                     \
		__m256 dx = h_ ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(pb + MIN_PACK_D))) \
			       : _mm256_loadu_ps((const float *)(pb + MIN_PACK_D));    \
		__m256 mx = h_ ? _mm256_cvtph_ps(_mm_loadu_si128(                      \
					 (const __m128i *)(pb + MIN_PACK_M(h_))))      \
			       : _mm256_loadu_ps((const float *)(pb + MIN_PACK_M(h_))); \
		__m256i s[8];                                                          \
		for (int t = 0; t < nt; t++)                                           \
			s[t] = _mm256_setzero_si256();                                 \
		_Pragma("GCC unroll 4")   /* as GEMM8P_BODY */                   \
		for (int c = 0; c < 4; c++) {   /* turned, as GEMM8P_BODY */           \
			__m256i g[2];   /* vectors c and c + 4 */                      \
			G2(pb, c, g);                                                  \
			for (int h = 0; h < 2; h++)                                    \
				for (int t = 0; t < nt; t++)                           \
					s[t] = dp(s[t], g[h], _mm256_set1_epi32(       \
						q8_0s_word(ab, as, t, i, c + 4 * h)));  \
		}                                                                      \
		for (int t = 0; t < nt; t++) {                                         \
			const block_q8_0s *y = (const block_q8_0s *)(ab + t * as) + i; \
			acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(dx, _mm256_set1_ps(y->d)), \
						 _mm256_cvtepi32_ps(s[t]), acc[t]);    \
			acc[t] = _mm256_fmadd_ps(mx, _mm256_set1_ps(y->dsum), acc[t]); \
		}                                                                      \
	}                                                                              \
	for (int t = 0; t < nt; t++)                                                   \
		_mm256_storeu_ps(out + t * os, acc[t]);

#define GEMM8P_RUN_m4h(at, k, ot) gemm8p_m4h_body(n, w, at, as, k, ot, os)
#define GEMM8P_RUN512_m4h(at, k, ot) gemm8p_m4h_body512(n, w, at, as, k, ot, os)
#define GEMM8P_RUN_m5h(at, k, ot) gemm8p_m5h_body(n, w, at, as, k, ot, os)
#define GEMM8P_RUN512_m5h(at, k, ot) gemm8p_m5h_body512(n, w, at, as, k, ot, os)
#define GEMM8P_RUN_m4(at, k, ot) gemm8p_m4_body(n, w, at, as, k, ot, os)
#define GEMM8P_RUN512_m4(at, k, ot) gemm8p_m4_body512(n, w, at, as, k, ot, os)
#define GEMM8P_RUN_m5(at, k, ot) gemm8p_m5_body(n, w, at, as, k, ot, os)
#define GEMM8P_RUN512_m5(at, k, ot) gemm8p_m5_body512(n, w, at, as, k, ot, os)

PACKED_GEMM_FNS(m4, GEMM8P_MIN_BODY, QUANT_PACK8_M4, G2_M4, G2_M4, false)
PACKED_GEMM_FNS(m5, GEMM8P_MIN_BODY, QUANT_PACK8_M5, G2_M5_VEX, G2_M5_EVEX, false)
PACKED_GEMM_FNS(m4h, GEMM8P_MIN_BODY, QUANT_PACK8_M4H, G2_M4, G2_M4, true)
PACKED_GEMM_FNS(m5h, GEMM8P_MIN_BODY, QUANT_PACK8_M5H, G2_M5_VEX, G2_M5_EVEX, true)

/* Two packed groups of these types (the second `gap` bytes after the
 * first) in 512-bit vectors, as quant_gemm_avx2.c's GEMM16P_BODY: group
 * A's rows in each register's low half, B's in its high half; per lane
 * GEMM8P_MIN_BODY's instructions, so the same bits. */
#define LOAD16_F32(p, q) _mm512_castsi512_ps(QUANT_CAT512(_mm256_loadu_si256((const __m256i *)(p)), \
						    _mm256_loadu_si256((const __m256i *)(q))))
#define LOAD16_F16(p, q) _mm512_cvtph_ps(_mm256_inserti128_si256(                      \
	_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(p))),                  \
	_mm_loadu_si128((const __m128i *)(q)), 1))
#define GEMM16P_MIN_BODY(blk, half, five)                                              \
	const __m512i m4 = _mm512_set1_epi8(0xF), s16 = _mm512_set1_epi8(16);          \
	const bool h_ = (half);                                                        \
	(void)s16;                                                                     \
	__m512 acc[8];                                                                 \
	for (int t = 0; t < nt; t++)                                                   \
		acc[t] = _mm512_setzero_ps();                                          \
	const uint8_t *pb = pa + gap;                                                  \
	for (int i = 0; i < n / QK4_0; i++, pa += (blk), pb += (blk)) {                \
		QUANT_PREFETCH_GROUP(pa + gap, blk, nt);   /* as GEMM16P_BODY */   \
		QUANT_PREFETCH_GROUP(pb + gap, blk, nt);                               \
		__m512 dx = h_ ? LOAD16_F16(pa + MIN_PACK_D, pb + MIN_PACK_D)          \
			       : LOAD16_F32(pa + MIN_PACK_D, pb + MIN_PACK_D);         \
		__m512 mx = h_ ? LOAD16_F16(pa + MIN_PACK_M(h_), pb + MIN_PACK_M(h_))  \
			       : LOAD16_F32(pa + MIN_PACK_M(h_), pb + MIN_PACK_M(h_)); \
		__m512i s[8];                                                          \
		for (int t = 0; t < nt; t++)                                           \
			s[t] = _mm512_setzero_si512();                                 \
		_Pragma("GCC unroll 4")                                                \
		for (int c = 0; c < 4; c++) {                                          \
			__m512i v_ = QUANT_CAT512(                                           \
				_mm256_loadu_si256((const __m256i *)(pa + MIN_PACK_G(h_)) + c), \
				_mm256_loadu_si256((const __m256i *)(pb + MIN_PACK_G(h_)) + c)); \
			__m512i g[2] = { _mm512_and_si512(v_, m4),                     \
					 _mm512_and_si512(_mm512_srli_epi16(v_, 4), m4) }; \
			if (five) {                                                    \
				g[0] = _mm512_mask_add_epi8(g[0], QUANT_MASK64(pa, pb, MIN_PACK_MASKS(h_), c), g[0], s16); \
				g[1] = _mm512_mask_add_epi8(g[1], QUANT_MASK64(pa, pb, MIN_PACK_MASKS(h_), c + 4), g[1], s16); \
			}                                                              \
			for (int h = 0; h < 2; h++)                                    \
				for (int t = 0; t < nt; t++)                           \
					s[t] = _mm512_dpbusd_epi32(s[t], g[h], _mm512_set1_epi32( \
						q8_0s_word(ab, as, t, i, c + 4 * h)));  \
		}                                                                      \
		for (int t = 0; t < nt; t++) {                                         \
			const block_q8_0s *y = (const block_q8_0s *)(ab + t * as) + i; \
			acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dx, _mm512_set1_ps(y->d)), \
						 _mm512_cvtepi32_ps(s[t]), acc[t]);    \
			acc[t] = _mm512_fmadd_ps(mx, _mm512_set1_ps(y->dsum), acc[t]); \
		}                                                                      \
	}                                                                              \
	for (int t = 0; t < nt; t++)                                                   \
		_mm512_storeu_ps(out + t * os, acc[t]);

#define GEMM16P_RUN_m4(at, k, ot) gemm16p_body_m4(n, w, gap, at, as, k, ot, os)
#define GEMM16P_RUN_m5(at, k, ot) gemm16p_body_m5(n, w, gap, at, as, k, ot, os)
#define GEMM16P_RUN_m4h(at, k, ot) gemm16p_body_m4h(n, w, gap, at, as, k, ot, os)
#define GEMM16P_RUN_m5h(at, k, ot) gemm16p_body_m5h(n, w, gap, at, as, k, ot, os)

PACKED_GEMM16_FNS(m4, GEMM16P_MIN_BODY(QUANT_PACK8_M4, false, false))
PACKED_GEMM16_FNS(m5, GEMM16P_MIN_BODY(QUANT_PACK8_M5, false, true))
PACKED_GEMM16_FNS(m4h, GEMM16P_MIN_BODY(QUANT_PACK8_M4H, true, false))
PACKED_GEMM16_FNS(m5h, GEMM16P_MIN_BODY(QUANT_PACK8_M5H, true, true))

quant_gemm8_fn quant_gemm16_packed_min_avx2(int type)
{
	switch (type) {   /* the caller has checked for 512-bit VNNI */
	case QT_Q4_1: return gemm16p_m4h;
	case QT_Q5_1: return gemm16p_m5h;
	case QT_Q4_K: return gemm16p_m4;
	case QT_Q5_K: return gemm16p_m5;
	default: return NULL;
	}
}

quant_gemm8_fn quant_gemm8_packed_min_avx2(int type, quant_pack8_fn *ret_pack)
{
	if (!quant_have_avxvnni() && !quant_have_avx512vnni())
		return NULL;
	switch (type) {
	case QT_Q4_1: *ret_pack = pack8_q4_1; break;
	case QT_Q5_1: *ret_pack = pack8_q5_1; break;
	case QT_Q4_K:
	case QT_Q5_K: *ret_pack = quant_pack8_k_avx2(type); break;
	default: return quant_gemm8_packed_s16_avx2(type, ret_pack);
	}
	bool evex = quant_have_avx512vnni();
	switch (type) {
	case QT_Q4_1: return evex ? gemm8p_m4h_512 : gemm8p_m4h;
	case QT_Q5_1: return evex ? gemm8p_m5h_512 : gemm8p_m5h;
	case QT_Q4_K: return evex ? gemm8p_m4_512 : gemm8p_m4;
	default: return evex ? gemm8p_m5_512 : gemm8p_m5;
	}
}

quant_gemm8_fn quant_gemm8_lowbit_avx2(int type)
{
	if (!quant_have_avxvnni())
		return NULL;
	switch (type) {
	case QT_Q4_1: return gemm8_q4_1;
	case QT_Q5_1: return gemm8_q5_1;
	default: return quant_gemm8_kquant_avx2(type);
	}
}

/* ---- activation quantisers (same results as quant.c's up to ties) ---- */

AVX2 static inline __m256i pack_i32x4_to_i8(__m256i a, __m256i b, __m256i c, __m256i d)
{
	__m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
	__m256i x = _mm256_packs_epi16(ab, cd);
	return _mm256_permutevar8x32_epi32(x, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* One Q8_0 block of x: its values as int8 in register order, *d its f16
 * scale. Returned in a register, not through a block_q8_0 in memory: the
 * Q8_0U / Q8_0S quantisers read such a block straight back, and the
 * loads of a just-stored, 2-byte-offset vector stalled (83% of
 * quantize_q8_0s's samples, 5% of a server's at 8 streams). */
AVX2 static inline __m256i q8_0_block(const float *x, uint16_t *d)
{
	const __m256 sign = _mm256_set1_ps(-0.0f);
	__m256 v[4], m = _mm256_setzero_ps();
	for (int k = 0; k < 4; k++) {
		v[k] = _mm256_loadu_ps(x + 8 * k);
		m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[k]));
	}
	__m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
	h = _mm_max_ps(h, _mm_movehl_ps(h, h));
	h = _mm_max_ss(h, _mm_movehdup_ps(h));
	float dv = _mm_cvtss_f32(h) / 127.0f, id = dv != 0 ? 1.0f / dv : 0.0f;
	*d = (uint16_t)_cvtss_sh(dv, 0);
	__m256 vid = _mm256_set1_ps(id);
	__m256i q[4];
	for (int k = 0; k < 4; k++)
		q[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[k], vid),
				_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
	return pack_i32x4_to_i8(q[0], q[1], q[2], q[3]);
}

AVX2 static void quantize_q8_0(const float *x, block_q8_0 *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, x += QK8_0) {
		uint16_t d;
		__m256i q = q8_0_block(x, &d);
		y[i].d = d;
		_mm256_storeu_si256((__m256i *)y[i].qs, q);
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

/* Q8_0U as the Q8_0 quantiser makes it (same bytes, the f16 scale as
 * float), so the gemm and the dot kernels see identical activations. */
AVX2 static void quantize_q8_0u(const float *x, block_q8_0u *y, int64_t nb)
{
	const __m256i off = _mm256_set1_epi8((char)0x80);
	for (int64_t i = 0; i < nb; i++) {
		uint16_t d;
		__m256i q = _mm256_xor_si256(q8_0_block(x + i * QK8_0, &d), off);
		y[i].d = f16(d);
		_mm256_storeu_si256((__m256i *)y[i].qs, q);
		__m256i sad = _mm256_sad_epu8(q, _mm256_setzero_si256());
		__m128i s2 = _mm_add_epi64(_mm256_castsi256_si128(sad), _mm256_extracti128_si256(sad, 1));
		y[i].sum = (int32_t)(_mm_cvtsi128_si64(s2) + _mm_extract_epi64(s2, 1)) - 32 * 128;
	}
}

/* Q8_0S as the Q8_0 quantiser makes it (the same values as Q8_0U's). */
AVX2 static void quantize_q8_0s(const float *x, block_q8_0s *y, int64_t nb)
{
	const __m256i ones = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
	for (int64_t i = 0; i < nb; i++) {
		uint16_t d;
		__m256i q = q8_0_block(x + i * QK8_0, &d);
		y[i].d = f16(d);
		_mm256_storeu_si256((__m256i *)y[i].qs, q);
		/* the signed bytes summed in pairs (1 * q), then pairs of
		 * those: lanes 0..3 hold values 0..15, lanes 4..7 the rest */
		__m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(ones, q), ones16);
		s = _mm256_add_epi32(s, _mm256_shuffle_epi32(s, 0x4E));
		s = _mm256_add_epi32(s, _mm256_shuffle_epi32(s, 0xB1));
		y[i].sums[0] = (int16_t)_mm256_extract_epi32(s, 0);
		y[i].sums[1] = (int16_t)_mm256_extract_epi32(s, 4);
		q8_0s_terms(&y[i]);
	}
}

int quant_quantize_avx2(int type, const float *src, void *dst, int64_t n)
{
	switch (type) {
	case QT_Q8_0: quantize_q8_0(src, dst, n / QK8_0); return 0;
	case QT_Q8_K: quantize_q8_K(src, dst, n / QK_K); return 0;
	case QT_Q8_0U: quantize_q8_0u(src, dst, n / QK8_0); return 0;
	case QT_Q8_0S: quantize_q8_0s(src, dst, n / QK8_0); return 0;
	default: return -1;
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
	case QT_Q5_0: return dot_q5_0;
	case QT_Q4_K: return dot_q4_K;
	case QT_Q5_K: return dot_q5_K;
	case QT_Q6_K: return dot_q6_K;
	case QT_Q4_1: return dot_q4_1;
	case QT_Q5_1: return dot_q5_1;
	case QT_IQ4_NL: return dot_iq4_nl;
	case QT_IQ4_XS: return dot_iq4_xs;
	case QT_Q2_K: return dot_q2_K;
	case QT_Q3_K: return dot_q3_K;
	default: return NULL;
	}
}

#else

quant_dot_fn quant_dot_avx2(int type)
{
	(void)type;
	return NULL;
}

quant_tile_fn quant_tile_lowbit_avx2(int type)
{
	(void)type;
	return NULL;
}

quant_gemm8_fn quant_gemm16_packed_min_avx2(int type)
{
	(void)type;
	return NULL;
}

quant_gemm8_fn quant_gemm8_packed_min_avx2(int type, quant_pack8_fn *ret_pack)
{
	(void)type;
	(void)ret_pack;
	return NULL;
}

quant_gemm8_fn quant_gemm8_lowbit_avx2(int type)
{
	(void)type;
	return NULL;
}

int quant_quantize_avx2(int type, const float *src, void *dst, int64_t n)
{
	(void)type; (void)src; (void)dst; (void)n;
	return -1;
}

#endif
