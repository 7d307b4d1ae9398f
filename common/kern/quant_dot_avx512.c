/*
 * quant_dot_avx512.c - single-token dot kernels for CPUs with AVX-512 BW/VL
 * and VNNI (the integer work in 256-bit vectors; two blocks' int sums are
 * converted and scaled as one 512-bit vector). The 32-value types with a fifth bit (Q5_0, Q5_1) spend most of
 * their AVX2 time turning the 32 qh bits into bytes (broadcast, shuffle,
 * or, compare); here qh is loaded into a mask register and added under it
 * (2 instructions instead of 7), and vpdpbusd replaces maddubs + madd.
 * quant_dot_get(QUANT_IMPL_BEST) prefers these; quant_dot_avx512() is NULL
 * for a type without one or on a CPU without the features.
 */
#include "quant.h"

#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>

#include "quant_simd.h"

#define AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))

/* 32 unsigned nibbles of a 32-block's 16 bytes, in element order. */
AVX512 static inline __m256i nib32(const uint8_t *qs)
{
	__m128i t = _mm_loadu_si128((const __m128i *)qs);
	return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0xF));
}

/* q + 16 in the bytes whose bit is set in the 32-bit word at qh */
AVX512 static inline __m256i add_bit4(__m256i q, const uint8_t *qh)
{
	uint32_t h;
	memcpy(&h, qh, 4);
	return _mm256_mask_add_epi8(q, _cvtu32_mask32(h), q, _mm256_set1_epi8(16));
}

/* Two f16 at p (d, then m) times dy: lane 0 d * dy, lane 1 m * dy. */
AVX512 static inline __m128 dm_times(const uint16_t *p, float dy)
{
	int v;
	memcpy(&v, p, 4);
	return _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(v)), _mm_set1_ps(dy));
}

/* Signed x signed byte dot of 32 pairs -> 8 int32 lanes, by vpdpbusd. */
AVX512 static inline __m256i dot_s8(__m256i x, __m256i y)
{
	return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(x, x),
				   _mm256_sign_epi8(y, x));
}

/* acc + blocks i and i+1 as one 16-lane product: their int sums p0, p1
 * times dx * dy per block (the four f16 scales converted at once). */
AVX512 static inline __m512 pair_fma(__m512 acc, __m256i p0, __m256i p1, uint16_t dx0,
				     uint16_t dx1, uint16_t dy0, uint16_t dy1)
{
	const __m512i sel = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
	__m128i h = _mm_setr_epi32((int)(dx0 | (uint32_t)dx1 << 16), (int)(dy0 | (uint32_t)dy1 << 16), 0, 0);
	__m128 f = _mm_cvtph_ps(h);                  /* dx0 dx1 dy0 dy1 */
	__m128 s = _mm_mul_ps(f, _mm_movehl_ps(f, f));
	__m512 sc = _mm512_permutexvar_ps(sel, _mm512_castps128_ps512(s));
	__m512 p = _mm512_cvtepi32_ps(_mm512_inserti64x4(_mm512_castsi256_si512(p0), p1, 1));
	return _mm512_fmadd_ps(sc, p, acc);
}

AVX512 static inline float hsum16(__m512 v)
{
	return hsum8(_mm256_add_ps(_mm512_castps512_ps256(v),
				   _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
}

/* The signed 32-value types: block -> 32 signed bytes, dotted with Q8_0. */
#define DOT_S32(name, blk_t, unpack)                                                    \
AVX512 static float name(int n, const void *w, const void *a)                          \
{                                                                                       \
	const blk_t *x = w;                                                             \
	const block_q8_0 *y = a;                                                        \
	__m512 acc = _mm512_setzero_ps(), acc2 = _mm512_setzero_ps();                   \
	int nb = n / QK8_0, i = 0;                                                      \
	for (; i + 4 <= nb; i += 4) {                                                   \
		__m256i p0 = dot_s8(unpack(&x[i]), _mm256_loadu_si256((const __m256i *)y[i].qs)); \
		__m256i p1 = dot_s8(unpack(&x[i + 1]),                                  \
				    _mm256_loadu_si256((const __m256i *)y[i + 1].qs));  \
		__m256i p2 = dot_s8(unpack(&x[i + 2]),                                  \
				    _mm256_loadu_si256((const __m256i *)y[i + 2].qs));  \
		__m256i p3 = dot_s8(unpack(&x[i + 3]),                                  \
				    _mm256_loadu_si256((const __m256i *)y[i + 3].qs));  \
		acc = pair_fma(acc, p0, p1, x[i].d, x[i + 1].d, y[i].d, y[i + 1].d);    \
		acc2 = pair_fma(acc2, p2, p3, x[i + 2].d, x[i + 3].d, y[i + 2].d, y[i + 3].d); \
	}                                                                               \
	acc = _mm512_add_ps(acc, acc2);                                                 \
	for (; i + 2 <= nb; i += 2) {                                                   \
		__m256i p0 = dot_s8(unpack(&x[i]), _mm256_loadu_si256((const __m256i *)y[i].qs)); \
		__m256i p1 = dot_s8(unpack(&x[i + 1]),                                  \
				    _mm256_loadu_si256((const __m256i *)y[i + 1].qs));  \
		acc = pair_fma(acc, p0, p1, x[i].d, x[i + 1].d, y[i].d, y[i + 1].d);    \
	}                                                                               \
	float s = hsum16(acc);                                                          \
	for (; i < nb; i++) {                                                           \
		__m256i p = dot_s8(unpack(&x[i]), _mm256_loadu_si256((const __m256i *)y[i].qs)); \
		s += f16(x[i].d) * f16(y[i].d) * hsum8(_mm256_cvtepi32_ps(p));          \
	}                                                                               \
	return s;                                                                       \
}

AVX512 static inline __m256i u_q8_0(const block_q8_0 *b)
{
	return _mm256_loadu_si256((const __m256i *)b->qs);
}

AVX512 static inline __m256i u_q4_0(const block_q4_0 *b)
{
	return _mm256_sub_epi8(nib32(b->qs), _mm256_set1_epi8(8));
}

AVX512 static inline __m256i u_q5_0(const block_q5_0 *b)
{
	return _mm256_sub_epi8(add_bit4(nib32(b->qs), b->qh), _mm256_set1_epi8(16));
}

AVX512 static inline __m256i u_iq4_nl(const block_iq4_nl *b)
{
	__m128i t = _mm_loadu_si128((const __m128i *)iq4nl_values);
	return _mm256_shuffle_epi8(_mm256_set_m128i(t, t), nib32(b->qs));
}

DOT_S32(dot_q8_0, block_q8_0, u_q8_0)
DOT_S32(dot_q4_0, block_q4_0, u_q4_0)
DOT_S32(dot_q5_0, block_q5_0, u_q5_0)
DOT_S32(dot_iq4_nl, block_iq4_nl, u_iq4_nl)

/* Q4_1 / Q5_1 block i: d*dy*sum(q*y) + m*dy*sum(y), the two sums by vpdpbusd
 * (q unsigned, y signed) and added in float as one 16-lane product. */
AVX512 static inline __m512 min32_block(__m256i q, const uint16_t *dm, const block_q8_0 *y)
{
	const __m512i sel = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
	__m256i yv = _mm256_loadu_si256((const __m256i *)y->qs);
	__m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), q, yv);
	__m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1), yv);
	__m512 ps = _mm512_cvtepi32_ps(_mm512_inserti64x4(_mm512_castsi256_si512(p), s, 1));
	__m512 sc = _mm512_permutexvar_ps(sel, _mm512_castps128_ps512(dm_times(dm, f16(y->d))));
	return _mm512_mul_ps(sc, ps);
}


AVX512 static float dot_q4_1(int n, const void *w, const void *a)
{
	const block_q4_1 *x = w;
	const block_q8_0 *y = a;
	__m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
	int nb = n / QK4_0, i = 0;
	for (; i + 2 <= nb; i += 2) {
		acc0 = _mm512_add_ps(acc0, min32_block(nib32(x[i].qs), &x[i].d, &y[i]));
		acc1 = _mm512_add_ps(acc1, min32_block(nib32(x[i + 1].qs), &x[i + 1].d, &y[i + 1]));
	}
	for (; i < nb; i++)
		acc0 = _mm512_add_ps(acc0, min32_block(nib32(x[i].qs), &x[i].d, &y[i]));
	return hsum16(_mm512_add_ps(acc0, acc1));
}

AVX512 static float dot_q5_1(int n, const void *w, const void *a)
{
	const block_q5_1 *x = w;
	const block_q8_0 *y = a;
	__m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
	int nb = n / QK4_0, i = 0;
	for (; i + 2 <= nb; i += 2) {
		acc0 = _mm512_add_ps(acc0, min32_block(add_bit4(nib32(x[i].qs), x[i].qh),
						       &x[i].d, &y[i]));
		acc1 = _mm512_add_ps(acc1, min32_block(add_bit4(nib32(x[i + 1].qs), x[i + 1].qh),
						       &x[i + 1].d, &y[i + 1]));
	}
	for (; i < nb; i++)
		acc0 = _mm512_add_ps(acc0, min32_block(add_bit4(nib32(x[i].qs), x[i].qh),
						       &x[i].d, &y[i]));
	return hsum16(_mm512_add_ps(acc0, acc1));
}

/* AVX-512 F/BW/VL/VNNI with the OS saving opmask and zmm state. */
static bool have_avx512vnni(void)
{
	unsigned int eax, ebx, ecx, edx;
	if (!quant_have_avx2() || !__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx))
		return false;
	if (!(ebx & (1u << 16)) || !(ebx & (1u << 30)) || !(ebx & (1u << 31)) || !(ecx & (1u << 11)))
		return false;
	unsigned int lo, hi;
	__asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return (lo & 0xE6) == 0xE6;
}

quant_dot_fn quant_dot_avx512(int type)
{
	static atomic_int known;   /* 0 not yet, 1 no, 2 yes: CPUID is slow in a VM */
	int v = atomic_load_explicit(&known, memory_order_relaxed);
	if (!v) {
		v = have_avx512vnni() ? 2 : 1;
		atomic_store_explicit(&known, v, memory_order_relaxed);
	}
	if (v != 2)
		return NULL;
	switch (type) {
	case QT_Q8_0: return dot_q8_0;
	case QT_Q4_0: return dot_q4_0;
	case QT_Q5_0: return dot_q5_0;
	case QT_IQ4_NL: return dot_iq4_nl;
	case QT_Q4_1: return dot_q4_1;
	case QT_Q5_1: return dot_q5_1;
	default: return NULL;
	}
}

#else

quant_dot_fn quant_dot_avx512(int type)
{
	(void)type;
	return NULL;
}

#endif
