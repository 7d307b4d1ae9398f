/*
 * test_vmath.c - common/kern/vmath: the vectorised GELU and softmax
 * exponentials against double-precision libm over a sweep of inputs
 * (including the clamped tails and lengths that leave a scalar tail); the
 * conversion to halves bit for bit against the portable one.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/kern/vmath.h"
#include "vx_test.h"

#define N 4003   /* not a multiple of 8 */

VX_TEST(gelu_matches_erf_gelu)
{
	float x[N];
	double worst = 0;
	for (int i = 0; i < N; i++)
		x[i] = -12.0f + 24.0f * i / (N - 1);
	float y[N];
	for (int i = 0; i < N; i++)
		y[i] = x[i];
	vmath_gelu(y, N);
	for (int i = 0; i < N; i++) {
		double want = 0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0)));
		worst = fmax(worst, fabs(y[i] - want) / fmax(1.0, fabs(want)));
	}
	printf("  gelu max error %.3g\n", worst);
	VX_CHECK(worst < 1e-6);
}

VX_TEST(softmax_exp_matches_exp_and_sums)
{
	float x[N], y[N];
	for (int i = 0; i < N; i++)
		x[i] = y[i] = -100.0f + 110.0f * (float)((i * 7919) % N) / N;
	float mx = 3.0f, scale = 0.125f;
	float sum = vmath_softmax_exp(y, N, scale, mx);
	double worst = 0, want_sum = 0;
	for (int i = 0; i < N; i++) {
		double want = exp((double)x[i] * scale - mx);
		want_sum += want;
		worst = fmax(worst, fabs(y[i] - want) / want);
	}
	printf("  exp max relative error %.3g, sum %.7g vs %.7g\n", worst, sum, want_sum);
	VX_CHECK(worst < 1e-6);
	VX_CHECK(fabs(sum - want_sum) < 1e-5 * want_sum);
	float far[9] = { -200, -150, -100, -90, -88, 0, 1, 80, 88 };
	vmath_softmax_exp(far, 9, 1.0f, 0.0f);
	VX_CHECK(far[0] >= 0 && far[0] < 1e-37f && isfinite(far[8]) && fabs(far[6] - M_E) < 1e-6);
}

VX_TEST(silu_mul_matches_libm)
{
	static float g[N], u[N];
	double worst = 0;
	for (int i = 0; i < N; i++) {
		g[i] = -100.0f + 200.0f * i / (N - 1);
		u[i] = 0.5f + (float)(i % 7);
	}
	static float x[N];
	for (int i = 0; i < N; i++)
		x[i] = g[i];
	vmath_silu_mul(x, u, N);
	for (int i = 0; i < N; i++) {
		double want = g[i] / (1.0 + exp(-(double)g[i])) * u[i];
		worst = fmax(worst, fabs(x[i] - want) / fmax(1.0, fabs(want)));
	}
	printf("  silu max error %.3g\n", worst);
	VX_CHECK(worst < 1e-6);
}

VX_TEST(gelu_tanh_mul_matches_libm)
{
	static float g[N], u[N], x[N], y[N];
	double worst = 0, worst_p = 0;
	for (int i = 0; i < N; i++) {
		g[i] = -100.0f + 200.0f * i / (N - 1);
		u[i] = 0.5f + (float)(i % 7);
		x[i] = y[i] = g[i];
	}
	vmath_gelu_tanh_mul(x, u, N);
	vmath_gelu_tanh_mul_portable(y, u, N);
	for (int i = 0; i < N; i++) {
		double v = g[i];
		double want = 0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v))) * u[i];
		worst = fmax(worst, fabs(x[i] - want) / fmax(1.0, fabs(want)));
		worst_p = fmax(worst_p, fabs(y[i] - want) / fmax(1.0, fabs(want)));
	}
	printf("  gelu_tanh max error %.3g (portable %.3g)\n", worst, worst_p);
	VX_CHECK(worst < 1e-6 && worst_p < 1e-6);
}

VX_TEST(softcap_matches_tanh)
{
	/* -400 .. 400, and small values (where 1 - exp(-2y) cancels) */
	static float x[2 * N], y[2 * N], v[2 * N];
	double worst = 0, worst_p = 0;
	for (int i = 0; i < N; i++) {
		v[i] = -400.0f + 800.0f * i / (N - 1);
		v[N + i] = (float)(i - N / 2) * 1e-3f;
	}
	memcpy(x, v, sizeof(v));
	memcpy(y, v, sizeof(v));
	vmath_softcap(x, 2 * N, 0.5f, 30.0f);
	vmath_softcap_portable(y, 2 * N, 0.5f, 30.0f);
	for (int i = 0; i < 2 * N; i++) {
		double want = 30.0 * tanh((double)v[i] * 0.5 / 30.0);
		double scale = fmax(fabs(want), 1e-3);   /* relative, but not to 0 */
		worst = fmax(worst, fabs(x[i] - want) / scale);
		worst_p = fmax(worst_p, fabs(y[i] - want) / scale);
	}
	printf("  softcap max relative error %.3g (portable %.3g)\n", worst, worst_p);
	VX_CHECK(worst < 1e-6 && worst_p < 1e-6);
}

/* The vector argmax gives the scalar loop's index: the first of equal
 * maxima (ties across and inside blocks of 64), NaNs passed over, a
 * maximum in the scalar tail, and rows with nothing above -INFINITY. */
VX_TEST(argmax_matches_the_scalar_loop)
{
	static float x[N];
	unsigned r = 12345;
	int checked = 0, bad = 0;
	for (int round = 0; round < 400; round++) {
		int n = 1 + (int)(r % N);
		for (int i = 0; i < n; i++) {
			r = r * 1103515245u + 12345u;
			unsigned k = r >> 16;
			/* few distinct values, so maxima repeat */
			x[i] = k % 97 == 0 ? NAN : k % 89 == 0 ? -INFINITY :
			       (float)(k % (round % 5 == 0 ? 3 : 1000)) - 500.0f;
		}
		if (round % 7 == 1)   /* the maximum only in the tail */
			x[n - 1] = 1e9f;
		if (round % 11 == 2)  /* leading NaNs, the rest -INFINITY */
			for (int i = 0; i < n; i++)
				x[i] = i < n / 3 ? NAN : -INFINITY;
		if (round % 13 == 3)  /* all NaN */
			for (int i = 0; i < n; i++)
				x[i] = NAN;
		int want = vmath_argmax_portable(x, n), got = vmath_argmax(x, n);
		bad += got != want;
		checked++;
		if (got != want)
			printf("  n %d: argmax %d, scalar loop %d\n", n, got, want);
	}
	printf("  argmax: %d rows, %d differ\n", checked, bad);
	VX_CHECK(bad == 0);
}

/* Every float bit pattern class a KV cache meets: normal, halfway cases,
 * half subnormals, overflow, zeros, infinities; and random bit patterns. */
VX_TEST(to_half_matches_the_portable_conversion)
{
	static float x[N];
	static uint16_t got[N], want[N];
	static const float edge[] = { 0.0f, -0.0f, 1.0f, -2.5f, 65504.0f, 65519.0f, 65520.0f,
				      -1e6f, 6.1e-5f, 3e-6f, -5.96e-8f, 2.98e-8f, 1e-10f,
				      1.00048828125f, 1.00146484375f, INFINITY, -INFINITY };
	unsigned r = 99;
	int bad = 0;
	for (int i = 0; i < N; i++) {
		r = r * 1103515245u + 12345u;
		uint32_t bits = (r & 0x80000000u) | ((0x30000000u + (r >> 4) % 0x18000000u) & 0x7fffffffu);
		memcpy(&x[i], &bits, 4);   /* exponents from ~1e-10 to ~1e7 */
	}
	memcpy(x, edge, sizeof edge);
	for (size_t n = N - 9; n <= N; n++) {   /* tails of every length */
		vmath_to_half(x, got, n);
		vmath_to_half_portable(x, want, n);
		bad += memcmp(got, want, n * sizeof *got) != 0;
	}
	VX_CHECK_INT(bad, 0);
	VX_CHECK(want[2] == 0x3c00 && want[5] == 0x7bff && want[6] == 0x7c00);
	VX_CHECK(want[13] == 0x3c00 && want[14] == 0x3c02);   /* halfway: to even */
}

VX_TEST_MAIN(gelu_matches_erf_gelu, softmax_exp_matches_exp_and_sums, silu_mul_matches_libm,
	     gelu_tanh_mul_matches_libm, softcap_matches_tanh,
	     argmax_matches_the_scalar_loop, to_half_matches_the_portable_conversion)
