/*
 * test_fgemm.c - common/kern/fgemm: the dispatched kernel (AVX2 on this
 * CPU) and the portable one against a double-precision product, over
 * shapes with row and column tails (m not a multiple of 6, n not of 16),
 * with and without accumulation (the AVX2 kernel also on AVX-512 CPUs, in a
 * child with VOXLINE_FGEMM_AVX2=1); with B in halves (fgemm_h), the same
 * bits as with B widened first; the packer widens F16 exactly and zero-
 * pads short blocks.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../common/kern/fgemm.h"
#include "../../common/kern/quant.h"
#include "vx_test.h"

static float frand(unsigned *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return (float)((*seed >> 8) & 0xffff) / 32768.0f - 1.0f;
}

/* max |C - A.B (+ C0)| over the n columns; -1 when a column past n was touched */
static double gemm_error(bool portable, int m, int n, int k, bool acc)
{
	unsigned seed = (unsigned)(m * 131 + n * 17 + k);
	int ldb = (n + FGEMM_NR - 1) / FGEMM_NR * FGEMM_NR, ldc = n + 3, lda = k + 1;
	float *a = malloc(sizeof *a * (size_t)m * lda), *b = malloc(sizeof *b * (size_t)k * ldb);
	float *c = malloc(sizeof *c * (size_t)m * ldc), *c0 = malloc(sizeof *c0 * (size_t)m * ldc);
	for (int i = 0; i < m * lda; i++)
		a[i] = frand(&seed);
	for (int i = 0; i < k * ldb; i++)
		b[i] = frand(&seed);
	for (int i = 0; i < m * ldc; i++)
		c[i] = c0[i] = frand(&seed);
	if (portable)
		fgemm_portable(m, n, k, a, (size_t)lda, b, (size_t)ldb, c, (size_t)ldc, acc);
	else
		fgemm(m, n, k, a, (size_t)lda, b, (size_t)ldb, c, (size_t)ldc, acc);
	double worst = 0;
	for (int i = 0; i < m; i++) {
		for (int j = 0; j < n; j++) {
			double want = acc ? c0[i * ldc + j] : 0;
			for (int p = 0; p < k; p++)
				want += (double)a[i * lda + p] * b[p * ldb + j];
			worst = fmax(worst, fabs(want - c[i * ldc + j]));
		}
		for (int j = n; j < ldc; j++)
			if (c[i * ldc + j] != c0[i * ldc + j])
				worst = -1;
	}
	free(a); free(b); free(c); free(c0);
	return worst;
}

/* fgemm_h (or its portable form) on halves vs fgemm on them widened: 0
 * when every bit of C agrees */
static int half_differs(bool portable, int m, int n, int k, bool acc)
{
	unsigned seed = (unsigned)(m * 7 + n * 3 + k);
	int ldb = (n + FGEMM_NR - 1) / FGEMM_NR * FGEMM_NR + 5, ldc = n + 1;
	float *a = malloc(sizeof *a * (size_t)m * k), *b = malloc(sizeof *b * (size_t)k * ldb);
	uint16_t *bh = malloc(sizeof *bh * (size_t)k * ldb);
	float *c = malloc(sizeof *c * (size_t)m * ldc), *ch = malloc(sizeof *ch * (size_t)m * ldc);
	for (int i = 0; i < m * k; i++)
		a[i] = frand(&seed);
	for (int i = 0; i < k * ldb; i++)
		b[i] = quant_f16_to_f32(bh[i] = quant_f32_to_f16(frand(&seed) * 3));
	for (int i = 0; i < m * ldc; i++)
		c[i] = ch[i] = frand(&seed);
	if (portable) {
		fgemm_portable(m, n, k, a, (size_t)k, b, (size_t)ldb, c, (size_t)ldc, acc);
		fgemm_h_portable(m, n, k, a, (size_t)k, bh, (size_t)ldb, ch, (size_t)ldc, acc);
	} else {
		fgemm(m, n, k, a, (size_t)k, b, (size_t)ldb, c, (size_t)ldc, acc);
		fgemm_h(m, n, k, a, (size_t)k, bh, (size_t)ldb, ch, (size_t)ldc, acc);
	}
	int differ = memcmp(c, ch, sizeof *c * (size_t)m * ldc) != 0;
	free(a); free(b); free(bh); free(c); free(ch);
	return differ;
}

static int all_shapes_close(bool portable)
{
	static const int ms[] = { 1, 5, 6, 7, 13, 48 }, ns[] = { 1, 15, 16, 33, 64, 150 },
			 ks[] = { 1, 8, 64, 241 };
	int bad = 0;
	for (size_t x = 0; x < sizeof ms / sizeof *ms; x++)
		for (size_t y = 0; y < sizeof ns / sizeof *ns; y++)
			for (size_t z = 0; z < sizeof ks / sizeof *ks; z++)
				for (int acc = 0; acc < 2; acc++) {
					double e = gemm_error(portable, ms[x], ns[y], ks[z], acc);
					if (e < 0 || e > 1e-6 * ks[z]) {
						printf("  m %d n %d k %d acc %d: error %g\n", ms[x],
						       ns[y], ks[z], acc, e);
						bad++;
					}
					if (half_differs(portable, ms[x], ns[y], ks[z], acc)) {
						printf("  m %d n %d k %d acc %d: halves differ\n",
						       ms[x], ns[y], ks[z], acc);
						bad++;
					}
				}
	return bad;
}

VX_TEST(dispatched_kernel_matches_double_product) { VX_CHECK_INT(all_shapes_close(false), 0); }
VX_TEST(portable_kernel_matches_double_product) { VX_CHECK_INT(all_shapes_close(true), 0); }

/* On an AVX-512 CPU the dispatched kernel is the AVX-512 one; the AVX2 one
 * (what CPUs without AVX-512 run) is checked in a child process started
 * with VOXLINE_FGEMM_AVX2=1 (the choice is made once per process). */
VX_TEST(avx2_kernel_matches_double_product)
{
	VX_CHECK(vx_test_rerun("VOXLINE_FGEMM_AVX2", "--dispatched-only"));
}

VX_TEST(pack_widens_f16_and_zero_pads)
{
	enum { K = 37, ROWS = 19 };
	uint16_t w[ROWS][K + 2];   /* rows with a stride longer than K */
	float want[ROWS][K];
	unsigned seed = 7;
	for (int r = 0; r < ROWS; r++)
		for (int p = 0; p < K + 2; p++) {
			w[r][p] = quant_f32_to_f16(frand(&seed) * 4);
			if (p < K)
				want[r][p] = quant_f16_to_f32(w[r][p]);
		}
	float *dst = malloc(sizeof *dst * K * FGEMM_NB);
	VX_CHECK_INT(fgemm_pack(QT_F16, w, sizeof w[0], ROWS, K, dst), 0);
	int bad = 0;
	for (int p = 0; p < K; p++)
		for (int r = 0; r < FGEMM_NB; r++)
			bad += dst[p * FGEMM_NB + r] != (r < ROWS ? want[r][p] : 0.0f);
	VX_CHECK_INT(bad, 0);
	float f[3][K];
	for (int r = 0; r < 3; r++)
		for (int p = 0; p < K; p++)
			f[r][p] = frand(&seed);
	VX_CHECK_INT(fgemm_pack(QT_F32, f, sizeof f[0], 3, K, dst), 0);
	VX_CHECK(dst[5 * FGEMM_NB + 2] == f[2][5] && dst[5 * FGEMM_NB + 3] == 0.0f);
	VX_CHECK(fgemm_pack(QT_Q8_0, f, sizeof f[0], 3, K, dst) < 0);
	VX_CHECK(fgemm_pack(QT_F32, f, sizeof f[0], FGEMM_NB + 1, K, dst) < 0);
	free(dst);
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--dispatched-only"))
		return all_shapes_close(false) ? 1 : 0;
	vx_test_fn fns[] = { dispatched_kernel_matches_double_product,
			     portable_kernel_matches_double_product, avx2_kernel_matches_double_product,
			     pack_widens_f16_and_zero_pads };
	return vx_test_run("dispatched_kernel_matches_double_product, "
			   "portable_kernel_matches_double_product, avx2_kernel_matches_double_product, "
			   "pack_widens_f16_and_zero_pads", fns, (int)(sizeof fns / sizeof *fns));
}
