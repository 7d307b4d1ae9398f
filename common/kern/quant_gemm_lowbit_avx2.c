/*
 * quant_gemm_lowbit_avx2.c - the prefill gemm (8 weight rows x up to 16
 * tokens of Q8_0U activations, AVX-VNNI) for the 256-value types: Q2_K,
 * Q3_K, IQ4_XS (quant_lowbit.c's) and Q4_K, Q5_K, Q6_K (which otherwise take
 * the 2x4 tiles). Reached through quant_gemm8_lowbit_avx2() (quant_avx2.c)
 * and quant_gemm8_get(). Also the packers of Q3_K..Q6_K and IQ4_XS for the
 * batched gemm (quant_gemm8_packed_get) and the packed gemm of Q6_K /
 * Q3_K, with AVX-VNNI or AVX-512 VNNI.
 *
 * As the other gemm8 kernels: per 32-value sub-block the 8 rows' signed
 * quants are transposed so that vector k holds bytes 4k..4k+3 of every row,
 * and one vpdpbusd per 4 activation bytes of a token serves all 8 rows
 * (lane r = row r). The +128 of the unsigned activations is taken off
 * through each row's quant sum. Per-row scales then apply per lane:
 *  - IQ4_XS: one scale per 32 values, d * ls, as a float vector; Q4_K and
 *    Q5_K the same plus their mins through the token's 32-value sum;
 *  - Q3_K (-4..3), Q2_K (0..3), Q6_K (-32..31): one scale per 16 values, so the
 *    two halves of a sub-block are summed apart and multiplied by their
 *    integer scales (vpmulld) before one conversion; Q2_K's mins come off
 *    through the token's two 16-value activation sums.
 * Everything per row (scales, mins, quant sums) is unpacked once per
 * super-block / sub-block for all the tokens.
 */
#include "quant.h"

#if defined(__x86_64__)
#include "quant_simd.h"

/* The per-row constants of one super-block of 8 rows, row r in lane r. */
typedef struct sb8 {
	float d[8];           /* super-block scale */
	int32_t sc[16][8];    /* Q2_K/Q3_K/Q6_K: scale of 16-value group g */
	float mn[16][8];      /* Q2_K: dmin * min of group g */
	float ds[8][8];       /* IQ4_XS/Q4_K/Q5_K: d * scale of 32-value sub-block b */
	float dm[8][8];       /* Q4_K/Q5_K: dmin * min of sub-block b */
} sb8;

/* Types with one scale per 16 values (the rest: one per 32). */
#define PER16(type) ((type) == QT_Q2_K || (type) == QT_Q3_K || (type) == QT_Q6_K)

AVX2 static inline void transpose8(__m256i v[8])
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

/* Fills s from super-block blk[r] of each of the 8 rows. */
__attribute__((always_inline)) static inline void load_sb8(int type, const uint8_t *const blk[8],
							   sb8 *s)
{
	for (int r = 0; r < 8; r++) {
		if (type == QT_Q2_K) {
			const block_q2_K *x = (const block_q2_K *)blk[r];
			float dmin = quant_f16_to_f32(x->dmin);
			s->d[r] = quant_f16_to_f32(x->d);
			for (int g = 0; g < 16; g++) {
				s->sc[g][r] = x->scales[g] & 0xF;
				s->mn[g][r] = dmin * (float)(x->scales[g] >> 4);
			}
		} else if (type == QT_Q3_K) {
			const block_q3_K *x = (const block_q3_K *)blk[r];
			int8_t sc[16];
			quant_q3_K_scales(x->scales, sc);
			s->d[r] = quant_f16_to_f32(x->d);
			for (int g = 0; g < 16; g++)
				s->sc[g][r] = sc[g];
		} else if (type == QT_Q6_K) {
			const block_q6_K *x = (const block_q6_K *)blk[r];
			s->d[r] = quant_f16_to_f32(x->d);
			for (int g = 0; g < 16; g++)
				s->sc[g][r] = x->scales[g];
		} else if (type == QT_Q4_K || type == QT_Q5_K) {
			/* same header layout: d, dmin, scales[12] */
			const block_q4_K *x = (const block_q4_K *)blk[r];
			float d = quant_f16_to_f32(x->d), dmin = quant_f16_to_f32(x->dmin);
			uint8_t sc[8], mn[8];
			scales_mins(x->scales, sc, mn);
			for (int b = 0; b < 8; b++) {
				s->ds[b][r] = d * (float)sc[b];
				s->dm[b][r] = dmin * (float)mn[b];
			}
		} else {
			const block_iq4_xs *x = (const block_iq4_xs *)blk[r];
			float d = quant_f16_to_f32(x->d);
			for (int b = 0; b < 8; b++) {
				int lo = (x->scales_l[b / 2] >> (4 * (b % 2))) & 0xF;
				int hi = (x->scales_h >> (2 * b)) & 3;
				s->ds[b][r] = d * (float)((lo | (hi << 4)) - 32);
			}
		}
	}
}

/* Sub-block b (values 32b..32b+31) of a super-block as 32 signed bytes in
 * element order: Q2_K 0..3, Q3_K -4..3, IQ4_XS the table values. */
__attribute__((always_inline)) AVX2 static inline __m256i unpack_sub(int type, const uint8_t *blk,
								    int b)
{
	if (type == QT_IQ4_XS) {
		const block_iq4_xs *x = (const block_iq4_xs *)blk;
		__m128i t = _mm_loadu_si128((const __m128i *)(x->qs + 16 * b));
		__m256i q = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t),
					     _mm256_set1_epi8(0xF));
		__m128i tab = _mm_loadu_si128((const __m128i *)iq4nl_values);
		return _mm256_shuffle_epi8(_mm256_set_m128i(tab, tab), q);
	}
	if (type == QT_Q4_K || type == QT_Q5_K) {
		/* element 32b + l: nibble b % 2 of qs[32 (b / 2) + l]; Q5_K's
		 * fifth bit is bit b of qh[l] */
		const uint8_t *qs = type == QT_Q4_K ? ((const block_q4_K *)blk)->qs
						    : ((const block_q5_K *)blk)->qs;
		__m256i bits = _mm256_loadu_si256((const __m256i *)(qs + 32 * (b >> 1)));
		__m256i q = _mm256_and_si256(_mm256_srl_epi16(bits, _mm_cvtsi32_si128(4 * (b & 1))),
					     _mm256_set1_epi8(0xF));
		if (type == QT_Q4_K)
			return q;
		__m256i hm = _mm256_loadu_si256((const __m256i *)((const block_q5_K *)blk)->qh);
		__m256i hb = _mm256_set1_epi8((char)(1 << b));
		return _mm256_or_si256(q, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hm, hb), hb),
							   _mm256_set1_epi8(16)));
	}
	/* element 32b + l: bits 2j..2j+1 of qs[32n + l], n = b / 4, j = b % 4 */
	int n = b >> 2, j = b & 3;
	if (type == QT_Q6_K) {
		/* low 4 bits: nibble j / 2 of ql[64n + 32 (j % 2) + l]; high 2:
		 * bits 2j..2j+1 of qh[32n + l]; value - 32 */
		const block_q6_K *x = (const block_q6_K *)blk;
		__m256i lb = _mm256_loadu_si256((const __m256i *)(x->ql + 64 * n + 32 * (j & 1)));
		__m256i hb = _mm256_loadu_si256((const __m256i *)(x->qh + 32 * n));
		__m256i lo = _mm256_and_si256(_mm256_srl_epi16(lb, _mm_cvtsi32_si128(4 * (j >> 1))),
					      _mm256_set1_epi8(0xF));
		__m256i hi = _mm256_and_si256(_mm256_srl_epi16(hb, _mm_cvtsi32_si128(2 * j)),
					      _mm256_set1_epi8(3));
		return _mm256_sub_epi8(_mm256_or_si256(lo, _mm256_slli_epi16(hi, 4)),
				       _mm256_set1_epi8(32));
	}
	const uint8_t *qs = type == QT_Q2_K ? ((const block_q2_K *)blk)->qs
					    : ((const block_q3_K *)blk)->qs;
	__m256i bits = _mm256_loadu_si256((const __m256i *)(qs + 32 * n));
	__m256i q = _mm256_and_si256(_mm256_srl_epi16(bits, _mm_cvtsi32_si128(2 * j)),
				     _mm256_set1_epi8(3));
	if (type == QT_Q2_K)
		return q;
	/* Q3_K: hmask bit 4n + j of byte l set: +0, clear: -4 */
	const block_q3_K *x = (const block_q3_K *)blk;
	__m256i hm = _mm256_loadu_si256((const __m256i *)x->hmask);
	__m256i hb = _mm256_set1_epi8((char)(1 << (4 * n + j)));
	__m256i h = _mm256_cmpeq_epi8(_mm256_and_si256(hm, hb), hb);
	__m256i four = _mm256_set1_epi8(4);
	return _mm256_sub_epi8(_mm256_or_si256(q, _mm256_and_si256(h, four)), four);
}

/* Sub-block b of the 8 rows' super-blocks blk: g transposed, and -128 *
 * the rows' quant sums of its two halves (what the +128 of unsigned
 * activations adds to a token's sums). */
__attribute__((always_inline)) AVX2 static inline void
pack_sub(int type, const uint8_t *const blk[8], int b, __m256i g[8], __m256i *nlo, __m256i *nhi)
{
	const __m256i ones = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
	for (int r = 0; r < 8; r++)
		g[r] = unpack_sub(type, blk[r], b);
	transpose8(g);
	__m256i clo = _mm256_setzero_si256(), chi = _mm256_setzero_si256();
	for (int k = 0; k < 4; k++) {   /* vpdpbusd(c, 1, g[k]) in AVX2 */
		clo = _mm256_add_epi32(clo, _mm256_madd_epi16(_mm256_maddubs_epi16(ones, g[k]), ones16));
		chi = _mm256_add_epi32(chi, _mm256_madd_epi16(_mm256_maddubs_epi16(ones, g[k + 4]),
							      ones16));
	}
	*nlo = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(clo, 7));
	*nhi = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(chi, 7));
}

__attribute__((always_inline)) VNNI static inline void
gemm8_k(int type, size_t bb, int n, const void *w, size_t ws, const void *a, size_t as, int nt,
	float *out, size_t os)
{
	__m256 acc[QUANT_GEMM8_TOKENS];
	for (int t = 0; t < nt; t++)
		acc[t] = _mm256_setzero_ps();
	const uint8_t *ab = a;
	const uint8_t *blk[8];
	sb8 s;
	for (int i = 0; i < n / QK_K; i++) {
		for (int r = 0; r < 8; r++)
			blk[r] = (const uint8_t *)w + r * ws + (size_t)i * bb;
		load_sb8(type, blk, &s);
		const __m256 dv = _mm256_loadu_ps(s.d);
		for (int b = 0; b < 8; b++) {
			__m256i g[8], nlo, nhi;
			pack_sub(type, blk, b, g, &nlo, &nhi);
			const size_t yb = (size_t)(8 * i + b) * sizeof(block_q8_0u);
			if (!PER16(type)) {
				const __m256 ds = _mm256_loadu_ps(s.ds[b]);
				const __m256 dm = _mm256_loadu_ps(s.dm[b]);
				const __m256i c = _mm256_add_epi32(nlo, nhi);
				for (int t = 0; t < nt; t++) {
					const block_q8_0u *y = (const block_q8_0u *)(ab + t * as + yb);
					__m256i x = _mm256_setzero_si256();
					for (int k = 0; k < 8; k++) {
						int v;
						memcpy(&v, y->qs + 4 * k, 4);
						x = _mm256_dpbusd_avx_epi32(x, _mm256_set1_epi32(v), g[k]);
					}
					x = _mm256_add_epi32(x, c);
					__m256 dy = _mm256_set1_ps(y->d);
					acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(ds, dy), _mm256_cvtepi32_ps(x), acc[t]);
					if (type != QT_IQ4_XS) {
						/* mins: through the token's 32-value sum */
						__m256 uf = _mm256_set1_ps((float)y->sum);
						acc[t] = _mm256_fnmadd_ps(dm, _mm256_mul_ps(uf, dy), acc[t]);
					}
				}
				continue;
			}
			const __m256i sl = _mm256_loadu_si256((const __m256i *)s.sc[2 * b]);
			const __m256i sh = _mm256_loadu_si256((const __m256i *)s.sc[2 * b + 1]);
			for (int t = 0; t < nt; t++) {
				const block_q8_0u *y = (const block_q8_0u *)(ab + t * as + yb);
				__m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
				for (int k = 0; k < 4; k++) {
					int v0, v1;
					memcpy(&v0, y->qs + 4 * k, 4);
					memcpy(&v1, y->qs + 16 + 4 * k, 4);
					lo = _mm256_dpbusd_avx_epi32(lo, _mm256_set1_epi32(v0), g[k]);
					hi = _mm256_dpbusd_avx_epi32(hi, _mm256_set1_epi32(v1), g[k + 4]);
				}
				__m256i x = _mm256_add_epi32(_mm256_mullo_epi32(_mm256_add_epi32(lo, nlo), sl),
							     _mm256_mullo_epi32(_mm256_add_epi32(hi, nhi), sh));
				__m256 dy = _mm256_set1_ps(y->d);
				acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(dv, dy), _mm256_cvtepi32_ps(x), acc[t]);
				if (type == QT_Q2_K) {
					/* the token's 16-value sums, less 16 * 128:
					 * int32 lane 0 the first half, lane 4 the second */
					__m256i u = _mm256_sad_epu8(_mm256_loadu_si256((const __m256i *)y->qs),
								    _mm256_setzero_si256());
					u = _mm256_add_epi64(u, _mm256_shuffle_epi32(u, 0x4E));
					__m256 uf = _mm256_cvtepi32_ps(_mm256_sub_epi32(u, _mm256_set1_epi32(2048)));
					__m256 ulo = _mm256_permutevar8x32_ps(uf, _mm256_setzero_si256());
					__m256 uhi = _mm256_permutevar8x32_ps(uf, _mm256_set1_epi32(4));
					__m256 m = _mm256_fmadd_ps(_mm256_loadu_ps(s.mn[2 * b]), ulo,
						_mm256_mul_ps(_mm256_loadu_ps(s.mn[2 * b + 1]), uhi));
					acc[t] = _mm256_fnmadd_ps(dy, m, acc[t]);
				}
			}
		}
	}
	for (int t = 0; t < nt; t++)
		_mm256_storeu_ps(out + t * os, acc[t]);
}

VNNI static void gemm8_q2_K(int n, const void *w, size_t ws, const void *a, size_t as, int nt,
			    float *out, size_t os)
{
	gemm8_k(QT_Q2_K, sizeof(block_q2_K), n, w, ws, a, as, nt, out, os);
}

VNNI static void gemm8_q3_K(int n, const void *w, size_t ws, const void *a, size_t as, int nt,
			    float *out, size_t os)
{
	gemm8_k(QT_Q3_K, sizeof(block_q3_K), n, w, ws, a, as, nt, out, os);
}

VNNI static void gemm8_q4_K(int n, const void *w, size_t ws, const void *a, size_t as, int nt,
			    float *out, size_t os)
{
	gemm8_k(QT_Q4_K, sizeof(block_q4_K), n, w, ws, a, as, nt, out, os);
}

VNNI static void gemm8_q5_K(int n, const void *w, size_t ws, const void *a, size_t as, int nt,
			    float *out, size_t os)
{
	gemm8_k(QT_Q5_K, sizeof(block_q5_K), n, w, ws, a, as, nt, out, os);
}

VNNI static void gemm8_q6_K(int n, const void *w, size_t ws, const void *a, size_t as, int nt,
			    float *out, size_t os)
{
	gemm8_k(QT_Q6_K, sizeof(block_q6_K), n, w, ws, a, as, nt, out, os);
}

VNNI static void gemm8_iq4_xs(int n, const void *w, size_t ws, const void *a, size_t as, int nt,
			      float *out, size_t os)
{
	gemm8_k(QT_IQ4_XS, sizeof(block_iq4_xs), n, w, ws, a, as, nt, out, os);
}

/* ---- packed for the batched gemm (quant.h's QUANT_PACK8_*) ----
 * Each sub-block of 8 rows is unpacked and transposed once at load, as
 * gemm8_k does per call. Q4_K / Q5_K sub-blocks go into QUANT_PACK8_M4 /
 * _M5 (scale d * sc, min -dmin * m as floats: the same lane values and
 * float instructions as gemm8_k, so the same bits), served by
 * quant_avx2.c's gemm8p_m4 / gemm8p_m5. Q6_K / Q3_K sub-blocks go into
 * S16 below; IQ4_XS sub-blocks into QUANT_PACK8_X4 (their scale d * ls as
 * gemm8_k has it), served by quant_gemm_avx2.c's gemm8p_iq4_xs. */

#define S16_D 0        /* the rows' super-block scale d, float */
#define S16_SL 32      /* their scales of values 0..15 and 16..31, int8 */
#define S16_SH 40
#define S16_G 48       /* the 8 transposed vectors of values + 32 (Q6_K)
			* or + 4 (Q3_K): their low 4 bits (pack_codes) */
#define S16_HB (S16_G + 128) /* Q6_K: their bits 4-5, vector k (0..3) at
			      * bits 2k of bytes 0..31, vector k + 4 of
			      * bytes 32..63 */

/* Eight int32 lanes as int8 at dst (the 16-value scales fit: Q6_K's are
 * int8, Q3_K's 6-bit). */
AVX2 static inline void store_i8(uint8_t *dst, const int32_t v[8])
{
	for (int r = 0; r < 8; r++)
		dst[r] = (uint8_t)(int8_t)v[r];
}

__attribute__((always_inline)) AVX2 static inline void
pack8_k(int type, size_t bb, int n, const void *w, size_t ws, void *dst)
{
	uint8_t *o = dst;
	const uint8_t *blk[8];
	sb8 s;
	for (int i = 0; i < n / QK_K; i++) {
		for (int r = 0; r < 8; r++)
			blk[r] = (const uint8_t *)w + r * ws + (size_t)i * bb;
		load_sb8(type, blk, &s);
		for (int b = 0; b < 8; b++) {
			__m256i g[8], nlo, nhi;
			pack_sub(type, blk, b, g, &nlo, &nhi);
			if (PER16(type)) {
				memcpy(o + S16_D, s.d, 32);
				store_i8(o + S16_SL, s.sc[2 * b]);
				store_i8(o + S16_SH, s.sc[2 * b + 1]);
				const __m256i off = _mm256_set1_epi8(type == QT_Q6_K ? 32 : 4);
				for (int k = 0; k < 8; k++)
					g[k] = _mm256_add_epi8(g[k], off);
				pack_codes(o + S16_G, g);
				if (type == QT_Q3_K) {
					o += QUANT_PACK8_S3;
					continue;
				}
				for (int h = 0; h < 2; h++) {
					__m256i hb = _mm256_setzero_si256();
					for (int k = 0; k < 4; k++)
						hb = _mm256_or_si256(hb, _mm256_slli_epi16(_mm256_and_si256(
							_mm256_srli_epi16(g[4 * h + k], 4),
							_mm256_set1_epi8(3)), 2 * k));
					_mm256_storeu_si256((__m256i *)(o + S16_HB) + h, hb);
				}
				o += QUANT_PACK8_S16;
				continue;
			}
			if (type == QT_IQ4_XS) {
				memcpy(o, s.ds[b], 32);
				for (int k = 0; k < 8; k++)
					g[k] = iq4_nl_code(g[k]);
				pack_codes(o + QUANT_PACK8_X4_V, g);
				o += QUANT_PACK8_X4;
				continue;
			}
			float mv[8];
			for (int r = 0; r < 8; r++)
				mv[r] = -s.dm[b][r];
			min_pack(o, s.ds[b], mv, g, type == QT_Q5_K, false);
			o += type == QT_Q5_K ? QUANT_PACK8_M5 : QUANT_PACK8_M4;
		}
	}
}

AVX2 static void pack8_q4_K(int n, const void *w, size_t ws, void *dst)
{
	pack8_k(QT_Q4_K, sizeof(block_q4_K), n, w, ws, dst);
}

AVX2 static void pack8_q5_K(int n, const void *w, size_t ws, void *dst)
{
	pack8_k(QT_Q5_K, sizeof(block_q5_K), n, w, ws, dst);
}

AVX2 static void pack8_iq4_xs(int n, const void *w, size_t ws, void *dst)
{
	pack8_k(QT_IQ4_XS, sizeof(block_iq4_xs), n, w, ws, dst);
}

AVX2 static void pack8_q6_K(int n, const void *w, size_t ws, void *dst)
{
	pack8_k(QT_Q6_K, sizeof(block_q6_K), n, w, ws, dst);
}

AVX2 static void pack8_q3_K(int n, const void *w, size_t ws, void *dst)
{
	pack8_k(QT_Q3_K, sizeof(block_q3_K), n, w, ws, dst);
}

/* gemm8_k's per-16 path on S16 groups: the halves' sums of (value + o)
 * times the token's signed bytes start from -o times the token's two
 * 16-value sums, in GEMM8P_BODY's turned order, so they are gemm8_k's
 * exact sums; then its integer scaling and float instructions (the same
 * bits). G2 gives the vectors k and k + 4 from their codes (and Q6_K's
 * high bits). */
#define GEMM8P_S16_BODY(dp, blk, G2, table)                                                 \
	const __m256i m4 = _mm256_set1_epi8(0xF), m3 = _mm256_set1_epi8(3);            \
	const int o_ = (blk) == QUANT_PACK8_S16 ? 32 : 4;                              \
	const __m256i plo = QUANT_SUMS_PAIR(-o_, 0), phi = QUANT_SUMS_PAIR(0, -o_);    \
	(void)m3;                                                                      \
	__m256 acc[QUANT_GEMM8_TOKENS];                                                \
	for (int t = 0; t < nt; t++)                                                   \
		acc[t] = _mm256_setzero_ps();                                          \
	for (int i = 0; i < n / 32; i++, pb += (blk)) {                                \
		QUANT_PREFETCH_GROUP(pb, blk, nt);                                     \
		__m256i lo[QUANT_GEMM8_TOKENS], hi[QUANT_GEMM8_TOKENS];                \
		for (int t = 0; t < nt; t++) {                                         \
			const __m256i s_ = Q8_0S_SUMS((const block_q8_0s *)(ab + t * as) + i); \
			lo[t] = _mm256_madd_epi16(s_, plo);                            \
			hi[t] = _mm256_madd_epi16(s_, phi);                            \
		}                                                                      \
		_Pragma("GCC unroll 4")   /* rolled, gcc spilled at 8 tokens */ \
		for (int k = 0; k < 4; k++) {                                          \
			__m256i gl, gh;                                                \
			G2(pb + S16_G, k, gl, gh);                                     \
			for (int t = 0; t < nt; t++) {                                 \
				lo[t] = dp(lo[t], gl, _mm256_set1_epi32(q8_0s_word(ab, as, t, i, k))); \
				hi[t] = dp(hi[t], gh, _mm256_set1_epi32(q8_0s_word(ab, as, t, i, k + 4))); \
			}                                                              \
		}                                                                      \
		const __m256 dv = _mm256_loadu_ps((const float *)(pb + S16_D));       \
		const __m256i sl = _mm256_cvtepi8_epi32(                               \
			_mm_loadl_epi64((const __m128i *)(pb + S16_SL)));              \
		const __m256i sh = _mm256_cvtepi8_epi32(                               \
			_mm_loadl_epi64((const __m128i *)(pb + S16_SH)));              \
		for (int t = 0; t < nt; t++) {                                         \
			const block_q8_0s *y = (const block_q8_0s *)(ab + t * as) + i; \
			__m256i x = _mm256_add_epi32(_mm256_mullo_epi32(lo[t], sl),    \
						     _mm256_mullo_epi32(hi[t], sh));   \
			acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(dv, _mm256_set1_ps(y->d)), \
						 _mm256_cvtepi32_ps(x), acc[t]);       \
		}                                                                      \
	}                                                                              \
	for (int t = 0; t < nt; t++)                                                   \
		_mm256_storeu_ps(out + t * os, acc[t]);

/* Vector k's bits 4-5 (k = 0..3 of a half) from the high-bit bytes hb. */
#define HI2(hb, k) _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * (k)), m3), 4)
#define G2_S16(p, k, gl, gh)                                                           \
	(gl = _mm256_or_si256(CODES_LO(p, k, m4),                                      \
			      HI2(_mm256_loadu_si256((const __m256i *)((p) + 128)), k)), \
	 gh = _mm256_or_si256(CODES_HI(p, k, m4),                                      \
			      HI2(_mm256_loadu_si256((const __m256i *)((p) + 160)), k)))
#define G2_S3(p, k, gl, gh) (gl = CODES_LO(p, k, m4), gh = CODES_HI(p, k, m4))

#define GEMM8P_RUN_s16(at, k, ot) gemm8p_s16_body(n, w, at, as, k, ot, os)
#define GEMM8P_RUN512_s16(at, k, ot) gemm8p_s16_body512(n, w, at, as, k, ot, os)
#define GEMM8P_RUN_s3(at, k, ot) gemm8p_s3_body(n, w, at, as, k, ot, os)
#define GEMM8P_RUN512_s3(at, k, ot) gemm8p_s3_body512(n, w, at, as, k, ot, os)

PACKED_GEMM_FNS(s16, GEMM8P_S16_BODY, QUANT_PACK8_S16, G2_S16, G2_S16, NULL)
PACKED_GEMM_FNS(s3, GEMM8P_S16_BODY, QUANT_PACK8_S3, G2_S3, G2_S3, NULL)

quant_pack8_fn quant_pack8_k_avx2(int type)
{
	return type == QT_Q4_K ? pack8_q4_K : type == QT_Q5_K ? pack8_q5_K :
	       type == QT_IQ4_XS ? pack8_iq4_xs : NULL;
}

quant_gemm8_fn quant_gemm8_packed_s16_avx2(int type, quant_pack8_fn *ret_pack)
{
	if (!quant_have_avxvnni() && !quant_have_avx512vnni())
		return NULL;
	bool evex = quant_have_avx512vnni();
	switch (type) {
	case QT_Q6_K:
		*ret_pack = pack8_q6_K;
		return evex ? gemm8p_s16_512 : gemm8p_s16;
	case QT_Q3_K:
		*ret_pack = pack8_q3_K;
		return evex ? gemm8p_s3_512 : gemm8p_s3;
	default:
		return NULL;
	}
}

quant_gemm8_fn quant_gemm8_kquant_avx2(int type)
{
	switch (type) {
	case QT_Q2_K: return gemm8_q2_K;
	case QT_Q3_K: return gemm8_q3_K;
	case QT_IQ4_XS: return gemm8_iq4_xs;
	case QT_Q4_K: return gemm8_q4_K;
	case QT_Q5_K: return gemm8_q5_K;
	case QT_Q6_K: return gemm8_q6_K;
	default: return NULL;
	}
}

#else

quant_gemm8_fn quant_gemm8_kquant_avx2(int type)
{
	(void)type;
	return NULL;
}

quant_pack8_fn quant_pack8_k_avx2(int type)
{
	(void)type;
	return NULL;
}

quant_gemm8_fn quant_gemm8_packed_s16_avx2(int type, quant_pack8_fn *ret_pack)
{
	(void)type;
	(void)ret_pack;
	return NULL;
}

#endif
