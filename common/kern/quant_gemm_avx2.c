/*
 * quant_gemm_avx2.c - batched (prefill) kernels: 2-row x 4-token tiles
 * (AVX2) and the 8-row gemm (AVX-VNNI). See quant.h; selected at run time.
 */
#include "quant.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include "quant_simd.h"

#include <cpuid.h>

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

/* One Q5_K row against 4 tokens: Q4_K plus the fifth bits from qh. */
AVX2 static void row4_q5_K(int n, const block_q5_K *x, const block_q8_K *const y[4],
			   float *out, size_t os)
{
	__m256 acc[4];
	float accm[4] = { 0 };
	for (int t = 0; t < 4; t++)
		acc[t] = _mm256_setzero_ps();
	const __m256i m4 = _mm256_set1_epi8(0xF), b16 = _mm256_set1_epi8(16);
	for (int i = 0; i < n / QK_K; i++) {
		uint8_t sc[8], mn[8];
		scales_mins(x[i].scales, sc, mn);
		float d = f16(x[i].d), dmin = f16(x[i].dmin);
		__m256i sumi[4];
		for (int t = 0; t < 4; t++) {
			accm[t] += y[t][i].d * dmin * (float)mins_dot(mn, y[t][i].bsums);
			sumi[t] = _mm256_setzero_si256();
		}
		__m256i hb = _mm256_loadu_si256((const __m256i *)x[i].qh);
		for (int j = 0; j < 4; j++) {
			__m256i bl = _mm256_set1_epi8((char)(1 << (2 * j)));
			__m256i bh = _mm256_set1_epi8((char)(1 << (2 * j + 1)));
			__m256i bits = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * j));
			__m256i lo = _mm256_or_si256(_mm256_and_si256(bits, m4),
				_mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hb, bl), bl), b16));
			__m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4),
				_mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hb, bh), bh), b16));
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

AVX2 static void tile_q5_K(int n, const void *w, size_t ws, const void *a, size_t as,
			   float *out, size_t os)
{
	const block_q8_K *y[4];
	for (int t = 0; t < 4; t++)
		y[t] = (const block_q8_K *)((const uint8_t *)a + t * as);
	for (int r = 0; r < 2; r++)
		row4_q5_K(n, (const block_q5_K *)((const uint8_t *)w + r * ws), y, out + r, os);
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

/* ---- VNNI gemm: 8 weight rows x up to 16 tokens, Q8_0, Q4_0, Q5_0 ----
 * Per block, the 8 rows' 32 bytes are transposed so that vector g holds
 * bytes 4g..4g+3 of every row; a token's 4 bytes 4g..4g+3 broadcast to all
 * lanes then give, through vpdpbusd, lane r = the row-r partial dot. So one
 * int->float conversion and one FMA serve 8 (row, token) pairs. Activations
 * are unsigned (q + 128); the 128 * sum(w) this adds is subtracted. */

/* Loads block i of 8 rows as signed bytes and their f16 scales. */
AVX2 static inline void load8_q8_0(const uint8_t *wb, size_t ws, int i, __m256i g[8],
				   uint16_t dh[8])
{
	for (int r = 0; r < 8; r++) {
		const block_q8_0 *x = (const block_q8_0 *)(wb + r * ws) + i;
		g[r] = _mm256_loadu_si256((const __m256i *)x->qs);
		dh[r] = x->d;
	}
}

AVX2 static inline void load8_q4_0(const uint8_t *wb, size_t ws, int i, __m256i g[8],
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

AVX2 static inline void load8_q5_0(const uint8_t *wb, size_t ws, int i, __m256i g[8],
				   uint16_t dh[8])
{
	for (int r = 0; r < 8; r++) {
		const block_q5_0 *x = (const block_q5_0 *)(wb + r * ws) + i;
		g[r] = unpack_q5_0(x);
		dh[r] = x->d;
	}
}

/* IQ4_NL: nibbles looked up in ggml's table (signed bytes). */
AVX2 static inline void load8_iq4_nl(const uint8_t *wb, size_t ws, int i, __m256i g[8],
				     uint16_t dh[8])
{
	const __m256i m4 = _mm256_set1_epi8(0xF);
	const __m256i tab = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)iq4nl_values));
	for (int r = 0; r < 8; r++) {
		const block_iq4_nl *x = (const block_iq4_nl *)(wb + r * ws) + i;
		__m128i tb = _mm_loadu_si128((const __m128i *)x->qs);
		__m256i q = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(tb, 4), tb), m4);
		g[r] = _mm256_shuffle_epi8(tab, q);
		dh[r] = x->d;
	}
}

/* The gemm body for a 32-value block type; load8 unpacks to signed bytes,
 * dp is vpdpbusd (VEX for AVX-VNNI, EVEX for AVX-512 VNNI: the same sums). */
#define GEMM8_BODY(load8, dp)                                                            \
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
			sumw = dp(sumw, ones, g[k]);                                   \
		sumw = _mm256_slli_epi32(sumw, 7);                                     \
		for (int t = 0; t < nt; t++) {                                         \
			const block_q8_0u *y = (const block_q8_0u *)(ab + t * as) + i; \
			__m256i s = _mm256_setzero_si256();                            \
			for (int k = 0; k < 8; k++) {                                  \
				int v;                                                 \
				memcpy(&v, y->qs + 4 * k, 4);                          \
				s = dp(s, _mm256_set1_epi32(v), g[k]);                 \
			}                                                              \
			s = _mm256_sub_epi32(s, sumw);                                 \
			acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(dx, _mm256_set1_ps(y->d)), \
						 _mm256_cvtepi32_ps(s), acc[t]);       \
		}                                                                      \
	}                                                                              \
	for (int t = 0; t < nt; t++)                                                   \
		_mm256_storeu_ps(out + t * os, acc[t]);

/* gemm8_<name> for AVX-VNNI and gemm8_<name>_512 for CPUs with AVX-512
 * VNNI only (Ice Lake and Cascade Lake servers, Zen 4), which lack the VEX
 * form: the same instructions per token, so the same bits. */
#define GEMM8_FNS(name, load8)                                                         \
	VNNI static void gemm8_##name(int n, const void *w, size_t ws, const void *a,   \
				      size_t as, int nt, float *out, size_t os)         \
	{                                                                              \
		GEMM8_BODY(load8, _mm256_dpbusd_avx_epi32)                             \
	}                                                                              \
	AVX512VNNI static void gemm8_##name##_512(int n, const void *w, size_t ws,      \
						  const void *a, size_t as, int nt,     \
						  float *out, size_t os)                \
	{                                                                              \
		GEMM8_BODY(load8, _mm256_dpbusd_epi32)                                 \
	}

GEMM8_FNS(q8_0, load8_q8_0)
GEMM8_FNS(q4_0, load8_q4_0)
GEMM8_FNS(q5_0, load8_q5_0)
GEMM8_FNS(iq4_nl, load8_iq4_nl)

/* ---- the packed Q8_0 gemm: GEMM8_BODY on rows transposed at load ----
 * Per group of 8 rows and block i (QUANT_PACK8_Q8_0 bytes): the 8 f16
 * scales, then the 8 vectors g[k] that load8 + transpose8_epi32 give, + 128
 * (Q4_0, Q5_0, IQ4_NL: as 4-bit codes). Per token it computes GEMM8_BODY's
 * exact integer sums the other way round: the weights + 128 as vpdpbusd's
 * unsigned operand and the activations' signed bytes as the other, from
 * -128 * the token's sum (which its block carries; the rows keep no sums
 * of their own, so the layout is the file's size), and then runs its float
 * instructions in the same order, so results are bit-identical to
 * gemm8_q8_0; without the transpose a lone token costs less than the
 * dot. IQ4_XS sub-blocks (packed by quant_gemm_lowbit_avx2.c) take N4's
 * form with float scales (QUANT_PACK8_X4) and gemm8_k's float
 * instructions, which are the same. */

/* Packs rows whose load8 gives signed int8 values and one f16 scale per
 * block: the scales, then the values as bytes + 128 (Q8_0:
 * QUANT_PACK8_Q8_0) or as 4-bit codes
 * (Q4_0, IQ4_NL, Q5_0: QUANT_PACK8_N4 / _N5, see quant.h): code(g) gives
 * each value's code in its low 4 bits, and for Q5_0 the sign masks of the
 * values follow, so the gemm rebuilds the same int8 vectors. */
#define PACK8_BODY(load8, blk, code, masks)                                            \
	uint8_t *o = dst;                                                              \
	for (int i = 0; i < n / QK8_0; i++, o += (blk)) {                              \
		__m256i g[8];                                                          \
		uint16_t dh[8];                                                        \
		load8(w, ws, i, g, dh);                                                \
		transpose8_epi32(g);                                                   \
		memcpy(o, dh, 16);                                                     \
		if ((blk) == QUANT_PACK8_Q8_0) {                                       \
			for (int k = 0; k < 8; k++)                                    \
				_mm256_storeu_si256((__m256i *)(o + QUANT_PACK8_V) + k,        \
					_mm256_xor_si256(g[k], _mm256_set1_epi8((char)0x80))); \
			continue;                                                      \
		}                                                                      \
		for (int k = 0; (masks) && k < 8; k++) {                               \
			uint32_t m = (uint32_t)_mm256_movemask_epi8(g[k]);             \
			memcpy(o + QUANT_PACK8_N5_MASKS + 4 * k, &m, 4);               \
		}                                                                      \
		for (int k = 0; k < 8; k++)                                            \
			g[k] = code(g[k]);                                             \
		pack_codes(o + QUANT_PACK8_V, g);                                                 \
	}

#define CODE_NONE(v) (v)
#define CODE_Q4_0(v) _mm256_add_epi8((v), _mm256_set1_epi8(8))
#define CODE_Q5_0(v) _mm256_add_epi8((v), _mm256_set1_epi8(16))   /* low 4 bits */
#define CODE_IQ4_NL(v) iq4_nl_code(v)

AVX2 static void pack8_q8_0(int n, const void *w, size_t ws, void *dst)
{
	PACK8_BODY(load8_q8_0, QUANT_PACK8_Q8_0, CODE_NONE, false)
}

AVX2 static void pack8_q4_0(int n, const void *w, size_t ws, void *dst)
{
	PACK8_BODY(load8_q4_0, QUANT_PACK8_N4, CODE_Q4_0, false)
}

AVX2 static void pack8_q5_0(int n, const void *w, size_t ws, void *dst)
{
	PACK8_BODY(load8_q5_0, QUANT_PACK8_N5, CODE_Q5_0, true)
}

AVX2 static void pack8_iq4_nl(int n, const void *w, size_t ws, void *dst)
{
	PACK8_BODY(load8_iq4_nl, QUANT_PACK8_N4, CODE_IQ4_NL, false)
}

/* The per-token work; `dp` is vpdpbusd (VEX for AVX-VNNI, EVEX for
 * AVX-512 VNNI, which has 32 vector registers: 8 tokens' sums and
 * accumulators stay in registers). The loops are turned against
 * GEMM8_BODY (every token's k-th step, then the next k; the same exact
 * integer sums): the tokens' chains of eight dependent vpdpbusd
 * interleave, so the core does not wait out one chain's latency with the
 * others queued behind it (+10% with 8 tokens). */
#define GEMM8P_BODY(dp, blk, G2, table)                                                     \
	const __m256i m4 = _mm256_set1_epi8(0xF), s16 = _mm256_set1_epi8(16);          \
	const __m256i h80 = _mm256_set1_epi8((char)0x80);                              \
	const __m256i tab = _mm256_xor_si256(h80, _mm256_broadcastsi128_si256(         \
		_mm_loadu_si128((const __m128i *)(table))));   /* values + 128 */      \
	const bool x4_ = (blk) == QUANT_PACK8_X4;   /* float scales */                 \
	(void)m4, (void)s16, (void)tab, (void)h80;                                     \
	__m256 acc[QUANT_GEMM8_TOKENS];                                                \
	for (int t = 0; t < nt; t++)                                                   \
		acc[t] = _mm256_setzero_ps();                                          \
	for (int i = 0; i < n / 32; i++, pb += (blk)) {                                \
		QUANT_PREFETCH_GROUP(pb, blk, nt);                                     \
		__m256 dx = x4_ ? _mm256_loadu_ps((const float *)pb)                   \
				: _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)pb)); \
		__m256i s[QUANT_GEMM8_TOKENS];                                         \
		for (int t = 0; t < nt; t++)   /* -128 * the token's sum */           \
			s[t] = _mm256_set1_epi32(((const block_q8_0s *)(ab + t * as) + i)->sum128); \
		_Pragma("GCC unroll 4")   /* gcc left Q5_0's rolled at 8 tokens */ \
		for (int c = 0; c < 4; c++) {                                          \
			__m256i g[2];   /* vectors G2##_K(c, 0) and G2##_K(c, 1) */    \
			G2(pb, c, g);                                                  \
			for (int h = 0; h < 2; h++)                                    \
				for (int t = 0; t < nt; t++)                           \
					s[t] = dp(s[t], g[h], _mm256_set1_epi32(       \
						q8_0s_word(ab, as, t, i, G2##_K(c, h)))); \
		}                                                                      \
		for (int t = 0; t < nt; t++) {                                         \
			const block_q8_0s *y = (const block_q8_0s *)(ab + t * as) + i; \
			acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(dx, _mm256_set1_ps(y->d)), \
						 _mm256_cvtepi32_ps(s[t]), acc[t]);    \
		}                                                                      \
	}                                                                              \
	for (int t = 0; t < nt; t++)                                                   \
		_mm256_storeu_ps(out + t * os, acc[t]);

/* The vectors k = c and c + 4 of a block, each value + 128: as stored
 * (Q8_0), or rebuilt from their 4-bit codes through a table (Q4_0,
 * IQ4_NL, IQ4_XS), or from codes and sign masks (Q5_0: a value is its
 * code, minus 16 where its sign bit is set; EVEX does it with one masked
 * subtraction, VEX spreads the mask to bytes first). */
#define G2_Q8(pb, c, g)                                                                \
	(g[0] = _mm256_loadu_si256((const __m256i *)((pb) + QUANT_PACK8_V) + 2 * (c)),           \
	 g[1] = _mm256_loadu_si256((const __m256i *)((pb) + QUANT_PACK8_V) + 2 * (c) + 1))
#define G2_Q8_K(c, h) (2 * (c) + (h))     /* in the order they are stored */
#define G2_N4_K(c, h) ((c) + 4 * (h))     /* low nibbles, then high */
#define G2_N5_VEX_K G2_N4_K
#define G2_N5_EVEX_K G2_N4_K
#define G2_N4(pb, c, g)                                                                \
	(g[0] = _mm256_shuffle_epi8(tab, CODES_LO((pb) + QUANT_PACK8_V, c, m4)),                  \
	 g[1] = _mm256_shuffle_epi8(tab, CODES_HI((pb) + QUANT_PACK8_V, c, m4)))
#define G2_X4_K G2_N4_K
#define G2_X4(pb, c, g)                                                                \
	(g[0] = _mm256_shuffle_epi8(tab, CODES_LO((pb) + QUANT_PACK8_X4_V, c, m4)),               \
	 g[1] = _mm256_shuffle_epi8(tab, CODES_HI((pb) + QUANT_PACK8_X4_V, c, m4)))
#define G2_N5_EVEX(pb, c, g)                                                           \
	(g[0] = _mm256_or_si256(CODES_LO((pb) + QUANT_PACK8_V, c, m4), h80),                      \
	 g[0] = _mm256_mask_sub_epi8(g[0], mask_at((pb) + QUANT_PACK8_N5_MASKS, c),     \
				     g[0], s16),                                      \
	 g[1] = _mm256_or_si256(CODES_HI((pb) + QUANT_PACK8_V, c, m4), h80),                      \
	 g[1] = _mm256_mask_sub_epi8(g[1], mask_at((pb) + QUANT_PACK8_N5_MASKS, (c) + 4), \
				     g[1], s16))
#define G2_N5_VEX(pb, c, g)                                                            \
	(g[0] = _mm256_sub_epi8(_mm256_or_si256(CODES_LO((pb) + QUANT_PACK8_V, c, m4), h80),      \
		_mm256_and_si256(mask_bytes(mask_at((pb) + QUANT_PACK8_N5_MASKS, c)), s16)), \
	 g[1] = _mm256_sub_epi8(_mm256_or_si256(CODES_HI((pb) + QUANT_PACK8_V, c, m4), h80),      \
		_mm256_and_si256(mask_bytes(mask_at((pb) + QUANT_PACK8_N5_MASKS, (c) + 4)), s16)))

static const int8_t q4_0_values[16] = { -8, -7, -6, -5, -4, -3, -2, -1,
					 0, 1, 2, 3, 4, 5, 6, 7 };

#define GEMM8P_RUN_q8(at, k, ot) gemm8p_q8_body(n, w, at, as, k, ot, os)
#define GEMM8P_RUN512_q8(at, k, ot) gemm8p_q8_body512(n, w, at, as, k, ot, os)
#define GEMM8P_RUN_q4_0(at, k, ot) gemm8p_q4_0_body(n, w, at, as, k, ot, os)
#define GEMM8P_RUN512_q4_0(at, k, ot) gemm8p_q4_0_body512(n, w, at, as, k, ot, os)
#define GEMM8P_RUN_iq4_nl(at, k, ot) gemm8p_iq4_nl_body(n, w, at, as, k, ot, os)
#define GEMM8P_RUN512_iq4_nl(at, k, ot) gemm8p_iq4_nl_body512(n, w, at, as, k, ot, os)
#define GEMM8P_RUN_iq4_xs(at, k, ot) gemm8p_iq4_xs_body(n, w, at, as, k, ot, os)
#define GEMM8P_RUN512_iq4_xs(at, k, ot) gemm8p_iq4_xs_body512(n, w, at, as, k, ot, os)
#define GEMM8P_RUN_q5_0(at, k, ot) gemm8p_q5_0_body(n, w, at, as, k, ot, os)
#define GEMM8P_RUN512_q5_0(at, k, ot) gemm8p_q5_0_body512(n, w, at, as, k, ot, os)

PACKED_GEMM_FNS(q8, GEMM8P_BODY, QUANT_PACK8_Q8_0, G2_Q8, G2_Q8, q4_0_values)
PACKED_GEMM_FNS(q4_0, GEMM8P_BODY, QUANT_PACK8_N4, G2_N4, G2_N4, q4_0_values)
PACKED_GEMM_FNS(iq4_nl, GEMM8P_BODY, QUANT_PACK8_N4, G2_N4, G2_N4, iq4nl_values)
PACKED_GEMM_FNS(q5_0, GEMM8P_BODY, QUANT_PACK8_N5, G2_N5_VEX, G2_N5_EVEX, q4_0_values)
PACKED_GEMM_FNS(iq4_xs, GEMM8P_BODY, QUANT_PACK8_X4, G2_X4, G2_X4, iq4nl_values)

/* Two packed groups (the second `gap` bytes after the first) in 512-bit
 * vectors: group A's values in the low half of each register, group B's in
 * the high half, so one vpdpbusd serves 16 rows. Per lane the same
 * instructions as gemm8p_<name>_body512 (the same bits). */
#define GEMM16P_BODY(blk, G2)                                                          \
	__m512 acc[8];                                                                 \
	for (int t = 0; t < nt; t++)                                                   \
		acc[t] = _mm512_setzero_ps();                                          \
	const uint8_t *pb = pa + gap;                                                  \
	for (int i = 0; i < n / 32; i++, pa += (blk), pb += (blk)) {                   \
		/* the second group's bytes and the next pair's first group's,  \
		 * 32 blocks on (measured best of three: 512-token prompt     \
		 * +4% Q8_0, +6% Q4_K_M; each group's own 32 blocks on      \
		 * reached into the other group's, already on its way) */    \
		QUANT_PREFETCH_GROUP(pa + gap, blk, nt);                               \
		QUANT_PREFETCH_GROUP(pb + gap, blk, nt);                               \
		__m256i dh = _mm256_inserti128_si256(                                  \
			_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)pa)),  \
			_mm_loadu_si128((const __m128i *)pb), 1);                      \
		__m512 dx = _mm512_cvtph_ps(dh);                                       \
		__m512i s[8];                                                          \
		for (int t = 0; t < nt; t++)                                           \
			s[t] = _mm512_set1_epi32(((const block_q8_0s *)(ab + t * as) + i)->sum128); \
		_Pragma("GCC unroll 4")                                                \
		for (int c = 0; c < 4; c++) {   /* as GEMM8P_BODY */                   \
			__m512i g[2];                                                  \
			G2(pa, pb, c, g);                                              \
			for (int h = 0; h < 2; h++)                                    \
				for (int t = 0; t < nt; t++)                           \
					s[t] = _mm512_dpbusd_epi32(s[t], g[h], _mm512_set1_epi32( \
						q8_0s_word(ab, as, t, i, G2##_K(c, h)))); \
		}                                                                      \
		for (int t = 0; t < nt; t++) {                                         \
			const block_q8_0s *y = (const block_q8_0s *)(ab + t * as) + i; \
			acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dx, _mm512_set1_ps(y->d)), \
						 _mm512_cvtepi32_ps(s[t]), acc[t]);    \
		}                                                                      \
	}                                                                              \
	for (int t = 0; t < nt; t++)                                                   \
		_mm512_storeu_ps(out + t * os, acc[t]);

#define LOAD512(pa, pb, c)                                                             \
	QUANT_CAT512(_mm256_loadu_si256((const __m256i *)((pa) + QUANT_PACK8_V) + (c)),                \
	       _mm256_loadu_si256((const __m256i *)((pb) + QUANT_PACK8_V) + (c)))
#define G2_512_Q8(pa, pb, c, g)                                                        \
	(g[0] = LOAD512(pa, pb, 2 * (c)), g[1] = LOAD512(pa, pb, 2 * (c) + 1))
#define G2_512_Q8_K G2_Q8_K
#define G2_512_N4_K G2_N4_K
#define G2_512_N5_K G2_N4_K
#define G2_512_N4(pa, pb, c, g)                                                        \
	do {                                                                           \
		__m512i v_ = LOAD512(pa, pb, c);                                       \
		g[0] = _mm512_shuffle_epi8(tab, _mm512_and_si512(v_, m4));             \
		g[1] = _mm512_shuffle_epi8(tab, _mm512_and_si512(_mm512_srli_epi16(v_, 4), m4)); \
	} while (0)
#define G2_512_N5(pa, pb, c, g)                                                        \
	do {                                                                           \
		__m512i v_ = LOAD512(pa, pb, c);                                       \
		__m512i l_ = _mm512_or_si512(_mm512_and_si512(v_, m4), h80);           \
		__m512i h_ = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(v_, 4), m4), h80); \
		g[0] = _mm512_mask_sub_epi8(l_, QUANT_MASK64(pa, pb, QUANT_PACK8_N5_MASKS, c), l_, s16);           \
		g[1] = _mm512_mask_sub_epi8(h_, QUANT_MASK64(pa, pb, QUANT_PACK8_N5_MASKS, (c) + 4), h_, s16);     \
	} while (0)

/* quant_gemm16_packed_get's kernels: tokens in runs of 8. */
#define GEMM16P_CONSTS(table)                                                          \
	const __m512i m4 = _mm512_set1_epi8(0xF), s16 = _mm512_set1_epi8(16);          \
	const __m512i h80 = _mm512_set1_epi8((char)0x80);                              \
	const __m512i tab = _mm512_xor_si512(h80, _mm512_broadcast_i32x4(              \
		_mm_loadu_si128((const __m128i *)(table))));                           \
	(void)m4, (void)s16, (void)tab, (void)h80;
#define GEMM16P_FNS(name, blk, G2, table)                                              \
	PACKED_GEMM16_FNS(name, GEMM16P_CONSTS(table) GEMM16P_BODY(blk, G2))

#define GEMM16P_RUN_q8(at, k, ot) gemm16p_body_q8(n, w, gap, at, as, k, ot, os)
#define GEMM16P_RUN_q4_0(at, k, ot) gemm16p_body_q4_0(n, w, gap, at, as, k, ot, os)
#define GEMM16P_RUN_iq4_nl(at, k, ot) gemm16p_body_iq4_nl(n, w, gap, at, as, k, ot, os)
#define GEMM16P_RUN_q5_0(at, k, ot) gemm16p_body_q5_0(n, w, gap, at, as, k, ot, os)

GEMM16P_FNS(q8, QUANT_PACK8_Q8_0, G2_512_Q8, q4_0_values)
GEMM16P_FNS(q4_0, QUANT_PACK8_N4, G2_512_N4, q4_0_values)
GEMM16P_FNS(iq4_nl, QUANT_PACK8_N4, G2_512_N4, iq4nl_values)
GEMM16P_FNS(q5_0, QUANT_PACK8_N5, G2_512_N5, q4_0_values)

/* AVX-512 F/BW/VL/VNNI with the OS saving opmask and zmm state (cached:
 * CPUID traps to the hypervisor). */
bool quant_have_avx512vnni(void)
{
	static atomic_int known;   /* 0 not yet, 1 no, 2 yes */
	int v = atomic_load_explicit(&known, memory_order_relaxed);
	if (!v) {
		unsigned int eax, ebx, ecx, edx, lo = 0, hi;
		v = 1;
		if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) && (ebx & (1u << 16)) &&
		    (ebx & (1u << 30)) && (ebx & (1u << 31)) && (ecx & (1u << 11))) {
			__asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
			if ((lo & 0xE6) == 0xE6)
				v = 2;
		}
		atomic_store_explicit(&known, v, memory_order_relaxed);
	}
	return v == 2;
}

/*
 * AVX-VNNI (CPUID leaf 7 subleaf 1, EAX bit 4). Read from CPUID directly:
 * clang-14's __builtin_cpu_supports does not know "avxvnni". Callers have
 * already checked quant_have_avx2(), so the OS saves YMM state.
 */
bool quant_have_avxvnni(void)
{
	static atomic_int known;   /* 0 not yet, 1 no, 2 yes */
	int v = atomic_load_explicit(&known, memory_order_relaxed);
	if (!v) {
		/* VOXLINE_KERN_NO_AVXVNNI=1: act as an AVX-512-VNNI-only CPU
		 * (test_gguf_batch checks those kernels in a child so) */
		const char *off = getenv("VOXLINE_KERN_NO_AVXVNNI");
		unsigned int eax, ebx, ecx, edx;
		v = __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) && (eax & (1u << 4)) &&
		    !(off && *off) ? 2 : 1;
		atomic_store_explicit(&known, v, memory_order_relaxed);
	}
	return v == 2;
}

quant_gemm8_fn quant_gemm8_avx2(int type)
{
	bool vex = quant_have_avxvnni();
	if (!vex && !quant_have_avx512vnni())
		return NULL;
	switch (type) {
	case QT_Q8_0: return vex ? gemm8_q8_0 : gemm8_q8_0_512;
	case QT_Q4_0: return vex ? gemm8_q4_0 : gemm8_q4_0_512;
	case QT_Q5_0: return vex ? gemm8_q5_0 : gemm8_q5_0_512;
	case QT_IQ4_NL: return vex ? gemm8_iq4_nl : gemm8_iq4_nl_512;
	default: return NULL;
	}
}

quant_gemm8_fn quant_gemm8_packed_avx2(int type, quant_pack8_fn *ret_pack)
{
	if (!quant_have_avxvnni() && !quant_have_avx512vnni())
		return NULL;
	bool evex = quant_have_avx512vnni();
	switch (type) {
	case QT_Q8_0:
		*ret_pack = pack8_q8_0;
		return evex ? gemm8p_q8_512 : gemm8p_q8;
	case QT_Q4_0:
		*ret_pack = pack8_q4_0;
		return evex ? gemm8p_q4_0_512 : gemm8p_q4_0;
	case QT_Q5_0:
		*ret_pack = pack8_q5_0;
		return evex ? gemm8p_q5_0_512 : gemm8p_q5_0;
	case QT_IQ4_NL:
		*ret_pack = pack8_iq4_nl;
		return evex ? gemm8p_iq4_nl_512 : gemm8p_iq4_nl;
	case QT_IQ4_XS:
		*ret_pack = quant_pack8_k_avx2(type);
		return evex ? gemm8p_iq4_xs_512 : gemm8p_iq4_xs;
	default:
		return NULL;
	}
}

quant_gemm8_fn quant_gemm16_packed_avx2(int type)
{
	if (!quant_have_avx512vnni())
		return NULL;
	switch (type) {
	case QT_Q8_0: return gemm16p_q8;
	case QT_Q4_0: return gemm16p_q4_0;
	case QT_Q5_0: return gemm16p_q5_0;
	case QT_IQ4_NL: return gemm16p_iq4_nl;
	default: return quant_gemm16_packed_min_avx2(type);
	}
}

quant_tile_fn quant_tile_avx2(int type)
{
	switch (type) {
	case QT_Q8_0:
		return quant_have_avxvnni() ? tile_q8_0_vnni : tile_q8_0;
	case QT_Q4_0: return tile_q4_0;
	case QT_Q4_K: return tile_q4_K;
	case QT_Q5_K: return tile_q5_K;
	case QT_Q6_K: return tile_q6_K;
	default: return NULL;
	}
}

#else

quant_tile_fn quant_tile_avx2(int type)
{
	(void)type;
	return NULL;
}

quant_gemm8_fn quant_gemm8_avx2(int type)
{
	(void)type;
	return NULL;
}

quant_gemm8_fn quant_gemm8_packed_avx2(int type, quant_pack8_fn *ret_pack)
{
	(void)type;
	(void)ret_pack;
	return NULL;
}

bool quant_have_avx512vnni(void)
{
	return false;
}

quant_gemm8_fn quant_gemm16_packed_avx2(int type)
{
	(void)type;
	return NULL;
}

#endif
