/*
 * fgemm.h - float matrix products for batched activations: C = A . B with
 * A (m, k) float rows, B (k, n) float rows, and a packer that turns a block
 * of weight rows (F32 or F16, ggml's row layout: one output per row) into
 * such a B. Used where many activation rows meet the same weights (the
 * Whisper encoder's 150-1500 positions, its attention per head), where the
 * row-at-a-time dot kernels of quant.h reload every weight for every row.
 *
 * Numerics: products and sums in float (F16 weights are widened exactly),
 * the same as quant.h's F32/F16 dot kernels up to summation order.
 *
 * Kernels: register-blocked, 6 rows x 32 columns with AVX-512F, 6 x 16 with
 * AVX2/FMA/F16C (and for column tails), whichever the CPU has (checked once,
 * at run time; VOXLINE_FGEMM_AVX2=1 in the environment keeps to AVX2, for
 * comparisons), else portable C. All
 * functions are pure and thread-safe; nothing allocates.
 *
 *     float bp[k * FGEMM_NB];                       // caller's scratch
 *     fgemm_pack(QT_F16, w + r0 * row_bytes, row_bytes, nb, k, bp);
 *     fgemm(m, nb, k, x, k, bp, FGEMM_NB, y + r0, n_out, false);
 */
#ifndef FGEMM_H
#define FGEMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Columns (weight rows) fgemm_pack packs at most; B's column count is
 * rounded up to FGEMM_NR inside, so B rows must be readable that far. */
#define FGEMM_NB 64
#define FGEMM_NR 16

/* Packs rows r < n_rows (<= FGEMM_NB) of a weight matrix of type QT_F32 or
 * QT_F16 (quant.h numbers), k values each, rows w_stride bytes apart, as
 * B (k, FGEMM_NB): dst[p * FGEMM_NB + r] = w[r][p], columns n_rows.. zero.
 * 0, or -EINVAL for another type. */
int fgemm_pack(int type, const void *w, size_t w_stride, int n_rows, int k, float *dst);

/* C (m, n) = A (m, k) . B (k, n), or C += that when accumulate.
 * Rows of A are lda floats apart, of B ldb, of C ldc. B's rows must be
 * readable up to n rounded up to FGEMM_NR columns; C is written only in its
 * n columns. */
void fgemm(int m, int n, int k, const float *a, size_t lda, const float *b, size_t ldb, float *c,
	   size_t ldc, bool accumulate);

/* fgemm with B in IEEE half floats (ldb halves apart), each widened
 * exactly: the same bits as fgemm on B widened first. */
void fgemm_h(int m, int n, int k, const float *a, size_t lda, const uint16_t *b, size_t ldb,
	     float *c, size_t ldc, bool accumulate);

/* The portable kernels (tests compare them with the two above). */
void fgemm_portable(int m, int n, int k, const float *a, size_t lda, const float *b, size_t ldb,
		    float *c, size_t ldc, bool accumulate);
void fgemm_h_portable(int m, int n, int k, const float *a, size_t lda, const uint16_t *b,
		      size_t ldb, float *c, size_t ldc, bool accumulate);

#endif
