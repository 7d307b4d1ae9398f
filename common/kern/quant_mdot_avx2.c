/*
 * quant_mdot_avx2.c - decode kernels: one weight row against up to
 * QUANT_MDOT_T activation rows (quant_mdot_fn, see quant.h).
 *
 * Decoding B sequences is B matrix-vector products over the same weights;
 * memory-bound, so each weight block is loaded (and unpacked) once here and
 * used for every token of the call. Exactness is the point: a token's
 * result is computed by the same instructions in the same order whatever
 * n_tok is and whichever other tokens share the call (each token has its
 * own accumulators; the kernels are instantiated per n_tok from one
 * always-inline body). So a sequence decoded alone (n_tok 1) and in a batch
 * gets bit-identical logits, as long as both go through the same mdot.
 *
 * Variants: AVX2 (maddubs), AVX-VNNI (vpdpbusd, 256-bit) and AVX-512 VL/BW/
 * VNNI (vpdpbusd, the fifth bit through a mask register). One is chosen per
 * type at run time; a process uses one, so alone and batched agree.
 */
#include "quant.h"

#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>

#include "quant_simd.h"

#define AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#define INL inline __attribute__((always_inline))

_Static_assert(QUANT_MDOT_T == 4, "the instantiations below are for 1..4 tokens");

/* ---- the signed 32-value types (Q8_0, Q4_0, Q5_0, IQ4_NL) ----
 * Per token two accumulators (even and odd blocks), so a lone token's FMA
 * chain does not bound the loop. */

#define MDOT_S32(name, ATTR, blk_t, unpack, dot32)                                      \
ATTR static INL void name##_n(int n, const blk_t *x, const uint8_t *a, size_t as,       \
			      const int nt, float *out)                                 \
{                                                                                       \
	__m256 acc0[QUANT_MDOT_T], acc1[QUANT_MDOT_T];                                  \
	const block_q8_0 *y[QUANT_MDOT_T];                                              \
	for (int t = 0; t < nt; t++) {                                                  \
		acc0[t] = _mm256_setzero_ps();                                          \
		acc1[t] = _mm256_setzero_ps();                                          \
		y[t] = (const block_q8_0 *)(a + t * as);                                \
	}                                                                               \
	int nb = n / QK8_0, i = 0;                                                      \
	for (; i + 2 <= nb; i += 2) {                                                   \
		__m256i q0 = unpack(&x[i]), q1 = unpack(&x[i + 1]);                     \
		__m256i a0 = _mm256_sign_epi8(q0, q0), a1 = _mm256_sign_epi8(q1, q1);   \
		float d0 = f16(x[i].d), d1 = f16(x[i + 1].d);                           \
		for (int t = 0; t < nt; t++) {                                          \
			__m256i p0 = dot32(a0, _mm256_sign_epi8(                        \
				_mm256_loadu_si256((const __m256i *)y[t][i].qs), q0));  \
			__m256i p1 = dot32(a1, _mm256_sign_epi8(                        \
				_mm256_loadu_si256((const __m256i *)y[t][i + 1].qs), q1)); \
			acc0[t] = _mm256_fmadd_ps(_mm256_set1_ps(d0 * f16(y[t][i].d)),  \
						  _mm256_cvtepi32_ps(p0), acc0[t]);     \
			acc1[t] = _mm256_fmadd_ps(_mm256_set1_ps(d1 * f16(y[t][i + 1].d)), \
						  _mm256_cvtepi32_ps(p1), acc1[t]);     \
		}                                                                       \
	}                                                                               \
	for (; i < nb; i++) {                                                           \
		__m256i q0 = unpack(&x[i]);                                             \
		__m256i a0 = _mm256_sign_epi8(q0, q0);                                  \
		float d0 = f16(x[i].d);                                                 \
		for (int t = 0; t < nt; t++) {                                          \
			__m256i p0 = dot32(a0, _mm256_sign_epi8(                        \
				_mm256_loadu_si256((const __m256i *)y[t][i].qs), q0));  \
			acc0[t] = _mm256_fmadd_ps(_mm256_set1_ps(d0 * f16(y[t][i].d)),  \
						  _mm256_cvtepi32_ps(p0), acc0[t]);     \
		}                                                                       \
	}                                                                               \
	for (int t = 0; t < nt; t++)                                                    \
		out[t] = hsum8(_mm256_add_ps(acc0[t], acc1[t]));                        \
}

/* The per-n_tok instantiations and the entry point. */
#define MDOT_ENTRY(name, ATTR, blk_t)                                                   \
ATTR static void name(int n, const void *w, const void *a, size_t as, int nt,           \
		      float *out)                                                       \
{                                                                                       \
	const blk_t *x = w;                                                             \
	switch (nt) {                                                                   \
	case 1: name##_n(n, x, a, as, 1, out); break;                                   \
	case 2: name##_n(n, x, a, as, 2, out); break;                                   \
	case 3: name##_n(n, x, a, as, 3, out); break;                                   \
	default: name##_n(n, x, a, as, 4, out); break;                                  \
	}                                                                               \
}

/* AVX2 helpers: unsigned x signed bytes -> 8 int32 lanes */
AVX2 static INL __m256i d32_avx2(__m256i ax, __m256i sy)
{
	return _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1));
}

VNNI static INL __m256i d32_vnni(__m256i ax, __m256i sy)
{
	return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), ax, sy);
}

AVX512 static INL __m256i d32_512(__m256i ax, __m256i sy)
{
	return _mm256_dpbusd_epi32(_mm256_setzero_si256(), ax, sy);
}

AVX2 static INL __m256i nib32(const uint8_t *qs)
{
	__m128i t = _mm_loadu_si128((const __m128i *)qs);
	return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0xF));
}

AVX2 static INL __m256i u2_q8_0(const block_q8_0 *b)
{
	return _mm256_loadu_si256((const __m256i *)b->qs);
}

AVX2 static INL __m256i u2_q4_0(const block_q4_0 *b)
{
	return _mm256_sub_epi8(nib32(b->qs), _mm256_set1_epi8(8));
}

AVX2 static INL __m256i u2_q5_0(const block_q5_0 *b)
{
	return unpack_q5_0(b);
}

AVX2 static INL __m256i u2_iq4_nl(const block_iq4_nl *b)
{
	__m128i t = _mm_loadu_si128((const __m128i *)iq4nl_values);
	return _mm256_shuffle_epi8(_mm256_set_m128i(t, t), nib32(b->qs));
}

/* q + 16 where the block's qh bit is set, through a mask register */
AVX512 static INL __m256i u5_q5_0(const block_q5_0 *b)
{
	uint32_t h;
	memcpy(&h, b->qh, 4);
	__m256i q = nib32(b->qs);
	q = _mm256_mask_add_epi8(q, _cvtu32_mask32(h), q, _mm256_set1_epi8(16));
	return _mm256_sub_epi8(q, _mm256_set1_epi8(16));
}

MDOT_S32(md2_q8_0, AVX2, block_q8_0, u2_q8_0, d32_avx2)
MDOT_S32(md2_q4_0, AVX2, block_q4_0, u2_q4_0, d32_avx2)
MDOT_S32(md2_q5_0, AVX2, block_q5_0, u2_q5_0, d32_avx2)
MDOT_S32(md2_iq4_nl, AVX2, block_iq4_nl, u2_iq4_nl, d32_avx2)
MDOT_ENTRY(md2_q8_0, AVX2, block_q8_0)
MDOT_ENTRY(md2_q4_0, AVX2, block_q4_0)
MDOT_ENTRY(md2_q5_0, AVX2, block_q5_0)
MDOT_ENTRY(md2_iq4_nl, AVX2, block_iq4_nl)

MDOT_S32(mdv_q8_0, VNNI, block_q8_0, u2_q8_0, d32_vnni)
MDOT_S32(mdv_q4_0, VNNI, block_q4_0, u2_q4_0, d32_vnni)
MDOT_S32(mdv_q5_0, VNNI, block_q5_0, u2_q5_0, d32_vnni)
MDOT_S32(mdv_iq4_nl, VNNI, block_iq4_nl, u2_iq4_nl, d32_vnni)
MDOT_ENTRY(mdv_q8_0, VNNI, block_q8_0)
MDOT_ENTRY(mdv_q4_0, VNNI, block_q4_0)
MDOT_ENTRY(mdv_q5_0, VNNI, block_q5_0)
MDOT_ENTRY(mdv_iq4_nl, VNNI, block_iq4_nl)

MDOT_S32(md5_q8_0, AVX512, block_q8_0, u2_q8_0, d32_512)
MDOT_S32(md5_q4_0, AVX512, block_q4_0, u2_q4_0, d32_512)
MDOT_S32(md5_q5_0, AVX512, block_q5_0, u5_q5_0, d32_512)
MDOT_S32(md5_iq4_nl, AVX512, block_iq4_nl, u2_iq4_nl, d32_512)
MDOT_ENTRY(md5_q8_0, AVX512, block_q8_0)
MDOT_ENTRY(md5_q4_0, AVX512, block_q4_0)
MDOT_ENTRY(md5_q5_0, AVX512, block_q5_0)
MDOT_ENTRY(md5_iq4_nl, AVX512, block_iq4_nl)

/* ---- Q4_1 / Q5_1: d * dy * sum(q y) + m * dy * sum(y), q unsigned ---- */

#define MDOT_MIN32(name, ATTR, blk_t, unpack)                                            \
ATTR static INL void name##_n(int n, const blk_t *x, const uint8_t *a, size_t as,       \
			      const int nt, float *out)                                 \
{                                                                                       \
	__m256 acc[QUANT_MDOT_T], accm[QUANT_MDOT_T];                                   \
	const block_q8_0 *y[QUANT_MDOT_T];                                              \
	const __m256i ones = _mm256_set1_epi8(1);                                       \
	for (int t = 0; t < nt; t++) {                                                  \
		acc[t] = _mm256_setzero_ps();                                           \
		accm[t] = _mm256_setzero_ps();                                          \
		y[t] = (const block_q8_0 *)(a + t * as);                                \
	}                                                                               \
	for (int i = 0; i < n / QK8_0; i++) {                                           \
		__m256i q = unpack(&x[i]);                                              \
		float d = f16(x[i].d), m = f16(x[i].m);                                 \
		for (int t = 0; t < nt; t++) {                                          \
			__m256i yv = _mm256_loadu_si256((const __m256i *)y[t][i].qs);   \
			float dy = f16(y[t][i].d);                                      \
			__m256i p = d32_avx2(q, yv), s = d32_avx2(ones, yv);            \
			acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * dy),                \
						 _mm256_cvtepi32_ps(p), acc[t]);        \
			accm[t] = _mm256_fmadd_ps(_mm256_set1_ps(m * dy),               \
						  _mm256_cvtepi32_ps(s), accm[t]);      \
		}                                                                       \
	}                                                                               \
	for (int t = 0; t < nt; t++)                                                    \
		out[t] = hsum8(_mm256_add_ps(acc[t], accm[t]));                         \
}

AVX2 static INL __m256i u2_q4_1(const block_q4_1 *b)
{
	return nib32(b->qs);
}

/* the fifth bit as 16 (unpack_q5_0 gives q - 16 as signed bytes) */
AVX2 static INL __m256i u2_q5_1(const block_q5_1 *b)
{
	return _mm256_add_epi8(unpack_q5_0((const block_q5_0 *)(const void *)&b->m),
			       _mm256_set1_epi8(16));
}

MDOT_MIN32(md2_q4_1, AVX2, block_q4_1, u2_q4_1)
MDOT_MIN32(md2_q5_1, AVX2, block_q5_1, u2_q5_1)
MDOT_ENTRY(md2_q4_1, AVX2, block_q4_1)
MDOT_ENTRY(md2_q5_1, AVX2, block_q5_1)

/* ---- Q4_K / Q5_K: 8 sub-blocks of 32 with 6-bit scales and mins ---- */

AVX2 static INL void mdk45_n(int n, const uint8_t *w, bool five, const uint8_t *a, size_t as,
			     const int nt, float *out)
{
	__m256 acc[QUANT_MDOT_T];
	float accm[QUANT_MDOT_T];
	const block_q8_K *y[QUANT_MDOT_T];
	for (int t = 0; t < nt; t++) {
		acc[t] = _mm256_setzero_ps();
		accm[t] = 0;
		y[t] = (const block_q8_K *)(a + t * as);
	}
	const __m256i m4 = _mm256_set1_epi8(0xF), b16 = _mm256_set1_epi8(16);
	size_t bb = five ? sizeof(block_q5_K) : sizeof(block_q4_K);
	for (int i = 0; i < n / QK_K; i++) {
		const uint8_t *blk = w + (size_t)i * bb;
		/* Q4_K and Q5_K share d, dmin, scales; then (qh,) qs */
		const block_q5_K *x5 = (const block_q5_K *)blk;
		const block_q4_K *x4 = (const block_q4_K *)blk;
		const uint8_t *qs = five ? x5->qs : x4->qs;
		uint8_t sc[8], mn[8];
		scales_mins(x4->scales, sc, mn);
		float d = f16(x4->d), dmin = f16(x4->dmin);
		__m256i sumi[QUANT_MDOT_T];
		for (int t = 0; t < nt; t++) {
			accm[t] += y[t][i].d * dmin * (float)mins_dot(mn, y[t][i].bsums);
			sumi[t] = _mm256_setzero_si256();
		}
		__m256i hb = five ? _mm256_loadu_si256((const __m256i *)x5->qh) : _mm256_setzero_si256();
		for (int j = 0; j < 4; j++) {
			__m256i bits = _mm256_loadu_si256((const __m256i *)(qs + 32 * j));
			__m256i lo = _mm256_and_si256(bits, m4);
			__m256i hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
			if (five) {
				__m256i bl = _mm256_set1_epi8((char)(1 << (2 * j)));
				__m256i bh = _mm256_set1_epi8((char)(1 << (2 * j + 1)));
				lo = _mm256_or_si256(lo, _mm256_and_si256(
					_mm256_cmpeq_epi8(_mm256_and_si256(hb, bl), bl), b16));
				hi = _mm256_or_si256(hi, _mm256_and_si256(
					_mm256_cmpeq_epi8(_mm256_and_si256(hb, bh), bh), b16));
			}
			__m256i sl = _mm256_set1_epi16(sc[2 * j]), sh = _mm256_set1_epi16(sc[2 * j + 1]);
			for (int t = 0; t < nt; t++) {
				__m256i ql = _mm256_loadu_si256((const __m256i *)(y[t][i].qs + 64 * j));
				__m256i qh = _mm256_loadu_si256((const __m256i *)(y[t][i].qs + 64 * j + 32));
				__m256i pl = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, ql), sl);
				__m256i ph = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, qh), sh);
				sumi[t] = _mm256_add_epi32(sumi[t], _mm256_add_epi32(pl, ph));
			}
		}
		for (int t = 0; t < nt; t++)
			acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * y[t][i].d),
						 _mm256_cvtepi32_ps(sumi[t]), acc[t]);
	}
	for (int t = 0; t < nt; t++)
		out[t] = hsum8(acc[t]) - accm[t];
}

#define MDOT_K45(name, five)                                                            \
AVX2 static void name(int n, const void *w, const void *a, size_t as, int nt, float *out) \
{                                                                                       \
	switch (nt) {                                                                   \
	case 1: mdk45_n(n, w, five, a, as, 1, out); break;                              \
	case 2: mdk45_n(n, w, five, a, as, 2, out); break;                              \
	case 3: mdk45_n(n, w, five, a, as, 3, out); break;                              \
	default: mdk45_n(n, w, five, a, as, 4, out); break;                             \
	}                                                                               \
}
MDOT_K45(md2_q4_K, false)
MDOT_K45(md2_q5_K, true)

/* ---- Q6_K: 16 sub-blocks of 16 with 8-bit scales, values - 32 ---- */

AVX2 static INL void md2_q6_K_n(int n, const block_q6_K *x, const uint8_t *a, size_t as,
				const int nt, float *out)
{
	__m256 acc[QUANT_MDOT_T];
	const block_q8_K *y[QUANT_MDOT_T];
	for (int t = 0; t < nt; t++) {
		acc[t] = _mm256_setzero_ps();
		y[t] = (const block_q8_K *)(a + t * as);
	}
	const __m256i m4 = _mm256_set1_epi8(0xF), m30 = _mm256_set1_epi8(0x30);
	for (int i = 0; i < n / QK_K; i++) {
		__m256i sumi[QUANT_MDOT_T];
		for (int t = 0; t < nt; t++) {
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
				for (int t = 0; t < nt; t++) {
					__m256i qy = _mm256_loadu_si256(
						(const __m256i *)(y[t][i].qs + 128 * c + 32 * k));
					sumi[t] = _mm256_add_epi32(sumi[t],
						_mm256_madd_epi16(_mm256_maddubs_epi16(q[k], qy), sv));
				}
			}
		}
		float d = f16(x[i].d);
		for (int t = 0; t < nt; t++)
			acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * y[t][i].d),
						 _mm256_cvtepi32_ps(sumi[t]), acc[t]);
	}
	for (int t = 0; t < nt; t++)
		out[t] = hsum8(acc[t]);
}
MDOT_ENTRY(md2_q6_K, AVX2, block_q6_K)

/* ---- F16 weights x F32 activations (any n) ---- */

AVX2 static INL void md2_f16_n(int n, const uint16_t *x, const uint8_t *a, size_t as,
			       const int nt, float *out)
{
	__m256 s0[QUANT_MDOT_T], s1[QUANT_MDOT_T];
	const float *y[QUANT_MDOT_T];
	for (int t = 0; t < nt; t++) {
		s0[t] = _mm256_setzero_ps();
		s1[t] = _mm256_setzero_ps();
		y[t] = (const float *)(const void *)(a + t * as);
	}
	int i = 0;
	for (; i + 16 <= n; i += 16) {
		__m256 x0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i)));
		__m256 x1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i + 8)));
		for (int t = 0; t < nt; t++) {
			s0[t] = _mm256_fmadd_ps(x0, _mm256_loadu_ps(y[t] + i), s0[t]);
			s1[t] = _mm256_fmadd_ps(x1, _mm256_loadu_ps(y[t] + i + 8), s1[t]);
		}
	}
	for (int t = 0; t < nt; t++) {
		float s = hsum8(_mm256_add_ps(s0[t], s1[t]));
		for (int k = i; k < n; k++)
			s += f16(x[k]) * y[t][k];
		out[t] = s;
	}
}
MDOT_ENTRY(md2_f16, AVX2, uint16_t)

/* ---- selection ---- */

/* AVX-VNNI (leaf 7 subleaf 1, EAX bit 4); AVX-512 F/BW/VL/VNNI with the OS
 * saving opmask and zmm state. Cached: CPUID traps to the hypervisor. */
static int cpu_level(void)
{
	static atomic_int known;   /* 0 not yet, else 1 + (1 VNNI, 2 AVX-512) */
	int v = atomic_load_explicit(&known, memory_order_relaxed);
	if (v)
		return v - 1;
	unsigned int eax, ebx, ecx, edx, lvl = 0;
	if (__get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) && (eax & (1u << 4)))
		lvl = 1;
	if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) && (ebx & (1u << 16)) &&
	    (ebx & (1u << 30)) && (ebx & (1u << 31)) && (ecx & (1u << 11))) {
		unsigned int lo, hi;
		__asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
		if ((lo & 0xE6) == 0xE6)
			lvl = 2;
	}
	atomic_store_explicit(&known, (int)lvl + 1, memory_order_relaxed);
	return (int)lvl;
}

quant_mdot_fn quant_mdot_avx2(int type)
{
	int lvl = cpu_level();
	switch (type) {
	case QT_Q8_0: return lvl == 2 ? md5_q8_0 : lvl == 1 ? mdv_q8_0 : md2_q8_0;
	case QT_Q4_0: return lvl == 2 ? md5_q4_0 : lvl == 1 ? mdv_q4_0 : md2_q4_0;
	case QT_Q5_0: return lvl == 2 ? md5_q5_0 : lvl == 1 ? mdv_q5_0 : md2_q5_0;
	case QT_IQ4_NL: return lvl == 2 ? md5_iq4_nl : lvl == 1 ? mdv_iq4_nl : md2_iq4_nl;
	case QT_Q4_1: return md2_q4_1;
	case QT_Q5_1: return md2_q5_1;
	case QT_Q4_K: return md2_q4_K;
	case QT_Q5_K: return md2_q5_K;
	case QT_Q6_K: return md2_q6_K;
	case QT_F16: return md2_f16;
	default: return NULL;
	}
}

#else

quant_mdot_fn quant_mdot_avx2(int type)
{
	(void)type;
	return NULL;
}

#endif
