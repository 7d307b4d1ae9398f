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

/* Q8_0U as the Q8_0 quantiser makes it (same bytes, the f16 scale as
 * float), so the gemm and the dot kernels see identical activations. */
AVX2 static void quantize_q8_0u(const float *x, block_q8_0u *y, int64_t nb)
{
	const __m256i off = _mm256_set1_epi8((char)0x80);
	for (int64_t i = 0; i < nb; i++) {
		block_q8_0 b;
		quantize_q8_0(x + i * QK8_0, &b, 1);
		y[i].d = f16(b.d);
		__m256i q = _mm256_loadu_si256((const __m256i *)b.qs);
		_mm256_storeu_si256((__m256i *)y[i].qs, _mm256_xor_si256(q, off));
	}
}

int quant_quantize_avx2(int type, const float *src, void *dst, int64_t n)
{
	switch (type) {
	case QT_Q8_0: quantize_q8_0(src, dst, n / QK8_0); return 0;
	case QT_Q8_K: quantize_q8_K(src, dst, n / QK_K); return 0;
	case QT_Q8_0U: quantize_q8_0u(src, dst, n / QK8_0); return 0;
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
	default: return NULL;
	}
}

#else

quant_dot_fn quant_dot_avx2(int type)
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
