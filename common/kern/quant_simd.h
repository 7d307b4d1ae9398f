/*
 * quant_simd.h - private helpers shared by the AVX2 kernel files
 * (quant_avx2.c: dot kernels and activation quantisers; quant_gemm_avx2.c:
 * the batched tile and gemm kernels). Not a public header: every function
 * is static inline with a target attribute, used only after
 * __builtin_cpu_supports said the CPU has the features.
 */
#ifndef QUANT_SIMD_H
#define QUANT_SIMD_H

#if defined(__x86_64__)
#include <immintrin.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "quant.h"

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define VNNI __attribute__((target("avx2,fma,f16c,avxvnni")))
#define AVX512VNNI __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))

/* A packed gemm's prefetch, into L2, of the group bytes it reads
 * QUANT_PREFETCH_BLOCKS blocks on, at each block of a run of 2 or more
 * tokens. Such a run is compute-bound, and the core's own prefetchers left
 * it waiting on the weights' lines (perf, 8 tokens: 45% of the Q6_K gemm's
 * samples and 27% of Q4_K's on the loads of a block's first bytes; the
 * Q8_0 gemm on the first vpdpbusd after each weight load). Measured on the
 * 0.5B-shaped files, 8 streams, medians of 5 interleaved runs: Q4_K_M 195
 * -> 216 tok/s and Q8_0 194 -> 220 at 2 KiB ahead, then 233 -> 254 and 228
 * -> 257 at 16 blocks, and 32 a little better again (64 no better; into L1
 * no better). A lone token's decode reads the weights at the memory's full
 * rate without it. */
#define QUANT_PREFETCH_BLOCKS 32
#define QUANT_PREFETCH_GROUP(pb, blk, nt)                                      \
	for (int pf_ = 0; (nt) >= 2 && pf_ < (int)(blk); pf_ += 64)            \
		_mm_prefetch((const char *)(pb) + QUANT_PREFETCH_BLOCKS * (blk) + pf_, \
			     _MM_HINT_T1)

/* Runs RUN(at, k, ot) over nt tokens (activations a, as bytes apart;
 * outputs out, os floats apart) in runs of up to 4 or 8 tokens, k a
 * constant in each call: a packed gemm's body instantiated per run length
 * keeps its accumulators in registers, and a token's instructions do not
 * depend on how many others share its run. */
#define QUANT_RUNS4(RUN, a, as, nt, out, os)                                   \
	for (int t0_ = 0; t0_ < (nt); t0_ += 4) {                              \
		const uint8_t *at_ = (const uint8_t *)(a) + (size_t)t0_ * (as); \
		float *ot_ = (out) + (size_t)t0_ * (os);                        \
		switch ((nt) - t0_ < 4 ? (nt) - t0_ : 4) {                     \
		case 1: RUN(at_, 1, ot_); break;                               \
		case 2: RUN(at_, 2, ot_); break;                               \
		case 3: RUN(at_, 3, ot_); break;                               \
		default: RUN(at_, 4, ot_); break;                              \
		}                                                              \
	}
#define QUANT_RUNS8(RUN, a, as, nt, out, os)                                   \
	for (int t0_ = 0; t0_ < (nt); t0_ += 8) {                              \
		const uint8_t *at_ = (const uint8_t *)(a) + (size_t)t0_ * (as); \
		float *ot_ = (out) + (size_t)t0_ * (os);                        \
		switch ((nt) - t0_ < 8 ? (nt) - t0_ : 8) {                     \
		case 1: RUN(at_, 1, ot_); break;                               \
		case 2: RUN(at_, 2, ot_); break;                               \
		case 3: RUN(at_, 3, ot_); break;                               \
		case 4: RUN(at_, 4, ot_); break;                               \
		case 5: RUN(at_, 5, ot_); break;                               \
		case 6: RUN(at_, 6, ot_); break;                               \
		case 7: RUN(at_, 7, ot_); break;                               \
		default: RUN(at_, 8, ot_); break;                              \
		}                                                              \
	}

/* The four functions of a packed gemm, from its body macro
 * BODY(dp, blk, G2, table) (blk: bytes per block of 8 rows; G2: how a
 * block's vectors are loaded, per instruction set; table: for the ones
 * that need it): gemm8p_<name>_body with VEX vpdpbusd (AVX-VNNI) and
 * gemm8p_<name>_body512 with EVEX (AVX-512 VNNI), each inlined into its
 * wrapper, gemm8p_<name> (tokens in runs of 4: 16 registers) and
 * gemm8p_<name>_512 (runs of 8: 32 registers). The file defines
 * GEMM8P_RUN_<name> and GEMM8P_RUN512_<name>(at, k, ot) calling the bodies. */
#define PACKED_GEMM_FNS(name, BODY, blk, G2v, G2e, table)                              \
	VNNI static inline __attribute__((always_inline)) void                         \
	gemm8p_##name##_body(int n, const uint8_t *pb, const uint8_t *ab, size_t as,  \
			     const int nt, float *out, size_t os)                      \
	{                                                                              \
		BODY(_mm256_dpbusd_avx_epi32, blk, G2v, table)                         \
	}                                                                              \
	AVX512VNNI static inline __attribute__((always_inline)) void                   \
	gemm8p_##name##_body512(int n, const uint8_t *pb, const uint8_t *ab, size_t as, \
				const int nt, float *out, size_t os)                   \
	{                                                                              \
		BODY(_mm256_dpbusd_epi32, blk, G2e, table)                             \
	}                                                                              \
	VNNI static void gemm8p_##name(int n, const void *w, size_t ws, const void *a, \
				       size_t as, int nt, float *out, size_t os)        \
	{                                                                              \
		(void)ws;                                                              \
		QUANT_RUNS4(GEMM8P_RUN_##name, a, as, nt, out, os)                     \
	}                                                                              \
	AVX512VNNI static void gemm8p_##name##_512(int n, const void *w, size_t ws,     \
						   const void *a, size_t as, int nt,   \
						   float *out, size_t os)              \
	{                                                                              \
		(void)ws;                                                              \
		QUANT_RUNS8(GEMM8P_RUN512_##name, a, as, nt, out, os)                  \
	}

/* gemm16p_<name>, a two-group packed gemm (512-bit VNNI) over tokens in
 * runs of 8, and its body gemm16p_body_<name>, whose statements are BODY
 * (GEMM16P_RUN_<name> calls the body; quant.h's quant_gemm16_packed_get
 * says what they compute). */
#define PACKED_GEMM16_FNS(name, BODY)                                                  \
	AVX512VNNI static inline __attribute__((always_inline)) void                   \
	gemm16p_body_##name(int n, const uint8_t *pa, size_t gap, const uint8_t *ab,  \
			    size_t as, const int nt, float *out, size_t os)            \
	{                                                                              \
		BODY                                                                   \
	}                                                                              \
	AVX512VNNI static void gemm16p_##name(int n, const void *w, size_t gap,        \
					      const void *a, size_t as, int nt,        \
					      float *out, size_t os)                   \
	{                                                                              \
		QUANT_RUNS8(GEMM16P_RUN_##name, a, as, nt, out, os)                    \
	}

/* Offsets in a QUANT_PACK8_M4 / _M5 group (Q4_K, Q5_K; h = false) and a
 * QUANT_PACK8_M4H / _M5H group (Q4_1, Q5_1; h = true): the 8 rows' scales
 * and mins (float, or for h their file's f16, the same values), then the
 * 8 transposed vectors of values (0..31) as 4-bit codes (pack_codes), and
 * for the 5-bit types the masks of their fifth bits (uint32 per vector). */
#define MIN_PACK_D 0
#define MIN_PACK_M(h) ((h) ? 16 : 32)
#define MIN_PACK_G(h) ((h) ? 32 : 64)
#define MIN_PACK_MASKS(h) (MIN_PACK_G(h) + 4 * 32)

/* Stores 8 vectors' low 4 bits in 128 bytes: vector c (0..3) in the low
 * nibbles of bytes 32c..32c+31, vector c + 4 in their high nibbles. */
AVX2 static inline void pack_codes(uint8_t *dst, const __m256i v[8])
{
	const __m256i m4 = _mm256_set1_epi8(0xF);
	for (int c = 0; c < 4; c++)
		_mm256_storeu_si256((__m256i *)dst + c, _mm256_or_si256(
			_mm256_and_si256(v[c], m4),
			_mm256_slli_epi16(_mm256_and_si256(v[c + 4], m4), 4)));
}

/* IQ4_NL / IQ4_XS: a value's index in the table (its values are distinct). */
AVX2 static inline __m256i iq4_nl_code(__m256i v)
{
	__m256i c = _mm256_setzero_si256();
	for (int i = 1; i < 16; i++)
		c = _mm256_or_si256(c, _mm256_and_si256(
			_mm256_cmpeq_epi8(v, _mm256_set1_epi8(iq4nl_values[i])),
			_mm256_set1_epi8((char)i)));
	return c;
}

/* The codes of vectors c and c + 4 that pack_codes stored at p. */
#define CODES_LO(p, c, m4)                                                     \
	_mm256_and_si256(_mm256_loadu_si256((const __m256i *)(p) + (c)), (m4))
#define CODES_HI(p, c, m4)                                                     \
	_mm256_and_si256(_mm256_srli_epi16(                                    \
		_mm256_loadu_si256((const __m256i *)(p) + (c)), 4), (m4))

/* Byte j of the result is 0xFF where bit j of m is set. */
AVX2 static inline __m256i mask_bytes(uint32_t m)
{
	const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
						2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
	const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
	__m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)m), spread);
	return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
}

/* A MIN group: the rows' scales d and mins m, and values g (0..31,
 * transposed) as codes, with for the 5-bit types (five) the masks of
 * their fifth bits; h: the f16 layout. */
AVX2 static inline void min_pack(uint8_t *o, const float d[8], const float m[8],
				 const __m256i g[8], bool five, bool h)
{
	if (h) {
		_mm_storeu_si128((__m128i *)(o + MIN_PACK_D),
				 _mm256_cvtps_ph(_mm256_loadu_ps(d), _MM_FROUND_TO_NEAREST_INT));
		_mm_storeu_si128((__m128i *)(o + MIN_PACK_M(h)),
				 _mm256_cvtps_ph(_mm256_loadu_ps(m), _MM_FROUND_TO_NEAREST_INT));
	} else {
		memcpy(o + MIN_PACK_D, d, 32);
		memcpy(o + MIN_PACK_M(h), m, 32);
	}
	for (int k = 0; five && k < 8; k++) {
		uint32_t mk = (uint32_t)_mm256_movemask_epi8(_mm256_slli_epi16(g[k], 3));
		memcpy(o + MIN_PACK_MASKS(h) + 4 * k, &mk, 4);
	}
	pack_codes(o + MIN_PACK_G(h), g);
}

/* The two 16-value sums of a Q8_0S block's values, as (lo, hi) int16
 * pairs in every lane; _mm256_madd_epi16 of it and a pair (a, b) gives
 * a * lo + b * hi (QUANT_SUMS_PAIR). */
#define Q8_0S_SUMS(y) _mm256_set1_epi32(q8_0s_sums32(y))
#define QUANT_SUMS_PAIR32(a, b) ((int)((uint32_t)(uint16_t)(a) | (uint32_t)(uint16_t)(b) << 16))
#define QUANT_SUMS_PAIR(a, b) _mm256_set1_epi32(QUANT_SUMS_PAIR32(a, b))
static inline int32_t q8_0s_sums32(const block_q8_0s *y)
{
	int32_t v;
	memcpy(&v, y->sums, 4);
	return v;
}

/* The uint32 mask k at p (unaligned). */
static inline uint32_t mask_at(const uint8_t *p, int k)
{
	uint32_t m;
	memcpy(&m, p + 4 * k, 4);
	return m;
}

/* Mask k of two packed groups as one 64-bit mask (the masks at offset off
 * in each; group a's in the low half): the two-group gemms' form. */
#define QUANT_MASK64(pa, pb, off, k)                                           \
	(mask_at((pa) + (off), k) | (uint64_t)mask_at((pb) + (off), k) << 32)
/* A 512-bit vector of two 256-bit halves (lo in the low half). */
#define QUANT_CAT512(lo, hi) _mm512_inserti64x4(_mm512_castsi256_si512(lo), (hi), 1)

/* Bytes 4k .. 4k + 3 of the values of block i of token t's Q8_0S row
 * (rows `as` bytes apart from ab), as the int a gemm broadcasts. */
static inline int q8_0s_word(const uint8_t *ab, size_t as, int t, int i, int k)
{
	int v;
	memcpy(&v, ab + (size_t)t * as + (size_t)i * sizeof(block_q8_0s) +
		   offsetof(block_q8_0s, qs) + 4 * (size_t)k, 4);
	return v;
}

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

/* Scale vector for a 32-value group whose halves use scales s0 and s1. */
AVX2 static inline __m256i scale2(int8_t s0, int8_t s1)
{
	return _mm256_set_m128i(_mm_set1_epi16(s1), _mm_set1_epi16(s0));
}

/* Q5_0 block -> 32 signed bytes (-16..15) in element order (ggml's
 * bytes_from_nibbles_32 + bytes_from_bits_32 trick). */
AVX2 static inline __m256i unpack_q5_0(const block_q5_0 *b)
{
	__m128i t = _mm_loadu_si128((const __m128i *)b->qs);
	__m256i q = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t),
				     _mm256_set1_epi8(0xF));
	uint32_t qh;
	memcpy(&qh, b->qh, 4);
	const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
					       0x0101010101010101, 0x0000000000000000);
	__m256i bits = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), shuf);
	bits = _mm256_or_si256(bits, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
	bits = _mm256_cmpeq_epi8(bits, _mm256_set1_epi64x(-1));   /* 0xFF where set */
	/* bit clear: nibble | 0xF0 = nibble - 16; bit set: nibble (= 16 + nibble - 16) */
	return _mm256_or_si256(q, _mm256_andnot_si256(bits, _mm256_set1_epi8((char)0xF0)));
}

#endif
#endif
