/*
 * fgemm.c - float matrix products for batched activations (see fgemm.h).
 * The AVX2 kernel keeps a 6 x 16 block of C in twelve registers and streams
 * k: per step two loads of B, six broadcasts of A, twelve FMAs.
 */
#include "fgemm.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"

#define MR 6

/* ------------------------------------------------------------- packing */

static void pack_portable(int type, const void *w, size_t w_stride, int n_rows, int k, float *dst)
{
	for (int r = 0; r < n_rows; r++) {
		const unsigned char *row = (const unsigned char *)w + (size_t)r * w_stride;
		for (int p = 0; p < k; p++) {
			float v;
			if (type == QT_F32) {
				memcpy(&v, row + (size_t)p * 4, 4);
			} else {
				uint16_t h;
				memcpy(&h, row + (size_t)p * 2, 2);
				v = quant_f16_to_f32(h);
			}
			dst[(size_t)p * FGEMM_NB + r] = v;
		}
	}
}

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma,f16c")))

/* AVX2, FMA and F16C (quant_have_avx2 caches its answer atomically) */
static bool have_avx2(void) { return quant_have_avx2(); }

/* F16 rows widened eight values at a time (F16C), stored transposed: eight
 * rows x eight values at once through an 8x8 register transpose; leftover
 * rows and values one by one. */
AVX2 static void pack_f16_avx2(const void *w, size_t w_stride, int n_rows, int k, float *dst)
{
	const unsigned char *base = w;
	int r = 0;
	for (; r + 8 <= n_rows; r += 8) {
		int p = 0;
		for (; p + 8 <= k; p += 8) {
			__m256 v[8], t[8], u[8];
			for (int i = 0; i < 8; i++)
				v[i] = _mm256_cvtph_ps(_mm_loadu_si128(
					(const __m128i *)(base + (size_t)(r + i) * w_stride + 2 * (size_t)p)));
			for (int i = 0; i < 8; i += 2) {
				t[i] = _mm256_unpacklo_ps(v[i], v[i + 1]);
				t[i + 1] = _mm256_unpackhi_ps(v[i], v[i + 1]);
			}
			for (int i = 0; i < 8; i += 4) {
				u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
				u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
				u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
				u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
			}
			/* u[0..3]: values p+{0,1,2,3} (low lane) / p+{4..7} (high) of rows 0-3 */
			for (int e = 0; e < 4; e++) {
				__m256 lo = _mm256_permute2f128_ps(u[e], u[e + 4], 0x20);
				__m256 hi = _mm256_permute2f128_ps(u[e], u[e + 4], 0x31);
				_mm256_storeu_ps(dst + (size_t)(p + e) * FGEMM_NB + r, lo);
				_mm256_storeu_ps(dst + (size_t)(p + e + 4) * FGEMM_NB + r, hi);
			}
		}
		for (; p < k; p++)
			for (int i = 0; i < 8; i++) {
				uint16_t h;
				memcpy(&h, base + (size_t)(r + i) * w_stride + 2 * (size_t)p, 2);
				dst[(size_t)p * FGEMM_NB + r + i] = quant_f16_to_f32(h);
			}
	}
	for (; r < n_rows; r++) {
		const unsigned char *row = base + (size_t)r * w_stride;
		for (int p = 0; p < k; p++) {
			uint16_t h;
			memcpy(&h, row + (size_t)p * 2, 2);
			dst[(size_t)p * FGEMM_NB + r] = quant_f16_to_f32(h);
		}
	}
}

/* B's element j of row p: floats, or halves (h: F16, widened exactly) */
#define B_AT(b, h, ldb, p, j) ((const char *)(b) + ((size_t)(p) * (ldb) + (size_t)(j)) * ((h) ? 2 : 4))

/* C[0..mr)[0..16) (+)= A[0..mr)[0..k) . B[0..k)[0..16); mr and h are
 * constants at every call site, so the accumulators stay in registers. */
AVX2 static inline __attribute__((always_inline)) void
ukr(const int mr, const bool h, int k, const float *a, size_t lda, const void *b, size_t ldb,
    float *c, size_t ldc, bool acc)
{
	__m256 c0[MR], c1[MR];
	for (int i = 0; i < mr; i++)
		c0[i] = c1[i] = _mm256_setzero_ps();
	for (int p = 0; p < k; p++) {
		__m256 b0, b1;
		if (h) {
			b0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)B_AT(b, h, ldb, p, 0)));
			b1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)B_AT(b, h, ldb, p, 8)));
		} else {
			b0 = _mm256_loadu_ps((const float *)B_AT(b, h, ldb, p, 0));
			b1 = _mm256_loadu_ps((const float *)B_AT(b, h, ldb, p, 8));
		}
		for (int i = 0; i < mr; i++) {
			__m256 ai = _mm256_broadcast_ss(a + (size_t)i * lda + p);
			c0[i] = _mm256_fmadd_ps(ai, b0, c0[i]);
			c1[i] = _mm256_fmadd_ps(ai, b1, c1[i]);
		}
	}
	for (int i = 0; i < mr; i++) {
		float *ci = c + (size_t)i * ldc;
		if (acc) {
			c0[i] = _mm256_add_ps(c0[i], _mm256_loadu_ps(ci));
			c1[i] = _mm256_add_ps(c1[i], _mm256_loadu_ps(ci + 8));
		}
		_mm256_storeu_ps(ci, c0[i]);
		_mm256_storeu_ps(ci + 8, c1[i]);
	}
}

/* A switch over mr = 6..1 calling kernel `fn` with B's kind h. */
#define UKR_ANY(fn, h)                                                                 \
	switch (mr) {                                                                  \
	case 6: fn(6, h, k, a, lda, b, ldb, c, ldc, acc); break;                       \
	case 5: fn(5, h, k, a, lda, b, ldb, c, ldc, acc); break;                       \
	case 4: fn(4, h, k, a, lda, b, ldb, c, ldc, acc); break;                       \
	case 3: fn(3, h, k, a, lda, b, ldb, c, ldc, acc); break;                       \
	case 2: fn(2, h, k, a, lda, b, ldb, c, ldc, acc); break;                       \
	default: fn(1, h, k, a, lda, b, ldb, c, ldc, acc); break;                      \
	}

AVX2 static void ukr_any(int mr, bool h, int k, const float *a, size_t lda, const void *b,
			 size_t ldb, float *c, size_t ldc, bool acc)
{
	if (h)
		UKR_ANY(ukr, true)
	else
		UKR_ANY(ukr, false)
}

/* Columns j..n of one block of mr rows: 16 at a time, then a partial
 * block through a scratch tile. */
AVX2 static void cols_avx2(int mr, int j, int n, int k, const float *ai, size_t lda,
			   const void *b, bool h, size_t ldb, float *ci, size_t ldc, bool acc)
{
	for (; j + FGEMM_NR <= n; j += FGEMM_NR)
		ukr_any(mr, h, k, ai, lda, B_AT(b, h, ldb, 0, j), ldb, ci + j, ldc, acc);
	if (j < n) {
		float t[MR * FGEMM_NR];
		int nr = n - j;
		for (int r = 0; r < mr && acc; r++)
			memcpy(t + r * FGEMM_NR, ci + (size_t)r * ldc + j, sizeof(float) * (size_t)nr);
		ukr_any(mr, h, k, ai, lda, B_AT(b, h, ldb, 0, j), ldb, t, FGEMM_NR, acc);
		for (int r = 0; r < mr; r++)
			memcpy(ci + (size_t)r * ldc + j, t + r * FGEMM_NR, sizeof(float) * (size_t)nr);
	}
}

AVX2 static void fgemm_avx2(int m, int n, int k, const float *a, size_t lda, const void *b,
			    bool h, size_t ldb, float *c, size_t ldc, bool acc)
{
	for (int i = 0; i < m; i += MR) {
		int mr = m - i < MR ? m - i : MR;
		cols_avx2(mr, 0, n, k, a + (size_t)i * lda, lda, b, h, ldb, c + (size_t)i * ldc,
			  ldc, acc);
	}
}

/* AVX-512: C[0..mr)[0..32) in twelve zmm registers, as ukr. */
#define AVX512 __attribute__((target("avx512f,avx2,fma,f16c")))

AVX512 static inline __attribute__((always_inline)) void
ukr512(const int mr, const bool h, int k, const float *a, size_t lda, const void *b, size_t ldb,
       float *c, size_t ldc, bool acc)
{
	__m512 c0[MR], c1[MR];
	for (int i = 0; i < mr; i++)
		c0[i] = c1[i] = _mm512_setzero_ps();
	for (int p = 0; p < k; p++) {
		__m512 b0, b1;
		if (h) {
			b0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)B_AT(b, h, ldb, p, 0)));
			b1 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)B_AT(b, h, ldb, p, 16)));
		} else {
			b0 = _mm512_loadu_ps((const float *)B_AT(b, h, ldb, p, 0));
			b1 = _mm512_loadu_ps((const float *)B_AT(b, h, ldb, p, 16));
		}
		for (int i = 0; i < mr; i++) {
			__m512 ai = _mm512_set1_ps(a[(size_t)i * lda + p]);
			c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
			c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
		}
	}
	for (int i = 0; i < mr; i++) {
		float *ci = c + (size_t)i * ldc;
		if (acc) {
			c0[i] = _mm512_add_ps(c0[i], _mm512_loadu_ps(ci));
			c1[i] = _mm512_add_ps(c1[i], _mm512_loadu_ps(ci + 16));
		}
		_mm512_storeu_ps(ci, c0[i]);
		_mm512_storeu_ps(ci + 16, c1[i]);
	}
}

AVX512 static void ukr512_any(int mr, bool h, int k, const float *a, size_t lda, const void *b,
			      size_t ldb, float *c, size_t ldc, bool acc)
{
	if (h)
		UKR_ANY(ukr512, true)
	else
		UKR_ANY(ukr512, false)
}

AVX512 static void fgemm_avx512(int m, int n, int k, const float *a, size_t lda, const void *b,
				bool h, size_t ldb, float *c, size_t ldc, bool acc)
{
	for (int i = 0; i < m; i += MR) {
		int mr = m - i < MR ? m - i : MR, j = 0;
		const float *ai = a + (size_t)i * lda;
		float *ci = c + (size_t)i * ldc;
		for (; j + 2 * FGEMM_NR <= n; j += 2 * FGEMM_NR)
			ukr512_any(mr, h, k, ai, lda, B_AT(b, h, ldb, 0, j), ldb, ci + j, ldc, acc);
		cols_avx2(mr, j, n, k, ai, lda, b, h, ldb, ci, ldc, acc);
	}
}

static bool have_avx512(void)
{
	static atomic_int known;   /* 0 not yet, 1 no, 2 yes */
	int v = atomic_load_explicit(&known, memory_order_relaxed);
	if (!v) {
		const char *only2 = getenv("VOXLINE_FGEMM_AVX2");
		__builtin_cpu_init();
		v = quant_have_avx2() && __builtin_cpu_supports("avx512f") &&
		    !(only2 && *only2) ? 2 : 1;
		atomic_store_explicit(&known, v, memory_order_relaxed);
	}
	return v == 2;
}
#else
static bool have_avx2(void) { return false; }
static bool have_avx512(void) { return false; }
#endif

int fgemm_pack(int type, const void *w, size_t w_stride, int n_rows, int k, float *dst)
{
	if ((type != QT_F32 && type != QT_F16) || n_rows < 0 || n_rows > FGEMM_NB)
		return -EINVAL;
#if defined(__x86_64__)
	if (type == QT_F16 && have_avx2())
		pack_f16_avx2(w, w_stride, n_rows, k, dst);
	else
#endif
		pack_portable(type, w, w_stride, n_rows, k, dst);
	if (n_rows < FGEMM_NB)
		for (int p = 0; p < k; p++)
			memset(dst + (size_t)p * FGEMM_NB + n_rows, 0,
			       sizeof(float) * (size_t)(FGEMM_NB - n_rows));
	return 0;
}

static void gemm_portable(int m, int n, int k, const float *a, size_t lda, const void *b,
			  bool h, size_t ldb, float *c, size_t ldc, bool accumulate)
{
	for (int i = 0; i < m; i++) {
		float *ci = c + (size_t)i * ldc;
		if (!accumulate)
			memset(ci, 0, sizeof(float) * (size_t)n);
		for (int p = 0; p < k; p++) {
			float av = a[(size_t)i * lda + p];
			if (h) {
				const uint16_t *bp = (const uint16_t *)b + (size_t)p * ldb;
				for (int j = 0; j < n; j++)
					ci[j] += av * quant_f16_to_f32(bp[j]);
			} else {
				const float *bp = (const float *)b + (size_t)p * ldb;
				for (int j = 0; j < n; j++)
					ci[j] += av * bp[j];
			}
		}
	}
}

static void gemm_any(int m, int n, int k, const float *a, size_t lda, const void *b, bool h,
		     size_t ldb, float *c, size_t ldc, bool accumulate)
{
#if defined(__x86_64__)
	if (have_avx512()) {
		fgemm_avx512(m, n, k, a, lda, b, h, ldb, c, ldc, accumulate);
		return;
	}
	if (have_avx2()) {
		fgemm_avx2(m, n, k, a, lda, b, h, ldb, c, ldc, accumulate);
		return;
	}
#endif
	gemm_portable(m, n, k, a, lda, b, h, ldb, c, ldc, accumulate);
}

void fgemm_portable(int m, int n, int k, const float *a, size_t lda, const float *b, size_t ldb,
		    float *c, size_t ldc, bool accumulate)
{
	gemm_portable(m, n, k, a, lda, b, false, ldb, c, ldc, accumulate);
}

void fgemm(int m, int n, int k, const float *a, size_t lda, const float *b, size_t ldb, float *c,
	   size_t ldc, bool accumulate)
{
	gemm_any(m, n, k, a, lda, b, false, ldb, c, ldc, accumulate);
}

void fgemm_h(int m, int n, int k, const float *a, size_t lda, const uint16_t *b, size_t ldb,
	     float *c, size_t ldc, bool accumulate)
{
	gemm_any(m, n, k, a, lda, b, true, ldb, c, ldc, accumulate);
}

void fgemm_h_portable(int m, int n, int k, const float *a, size_t lda, const uint16_t *b,
		      size_t ldb, float *c, size_t ldc, bool accumulate)
{
	gemm_portable(m, n, k, a, lda, b, true, ldb, c, ldc, accumulate);
}
