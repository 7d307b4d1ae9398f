/*
 * test_gguf_quant.c - block formats and dot kernels: every kernel (portable
 * and AVX2) against dequantise-then-multiply in double precision, the
 * activation quantisers, half-float conversion.
 */
#include "kern/quant.h"
#include "vx_test.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

static uint64_t rng = 88172645463325252ull;

static uint32_t next_u32(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

static float frand(void)   /* roughly N(0,1) */
{
	float s = 0;
	for (int i = 0; i < 4; i++)
		s += (next_u32() & 0xffff) / 65536.0f - 0.5f;
	return s * 1.7f;
}

static void put_f16(void *p, float f)
{
	uint16_t h = quant_f32_to_f16(f);
	memcpy(p, &h, 2);
}

/* Random but valid blocks: random quant bits, sane scales. */
static void random_row(int type, void *dst, int n)
{
	size_t bytes = quant_row_bytes(type, n);
	uint8_t *b = dst;
	if (type == QT_F32) {
		for (int i = 0; i < n; i++)
			((float *)dst)[i] = frand();
		return;
	}
	if (type == QT_F16 || type == QT_BF16) {
		for (int i = 0; i < n; i++) {
			float f = frand();
			uint32_t u;
			memcpy(&u, &f, 4);
			uint16_t h = type == QT_F16 ? quant_f32_to_f16(f) : (uint16_t)(u >> 16);
			memcpy(b + 2 * i, &h, 2);
		}
		return;
	}
	for (size_t i = 0; i < bytes; i++)
		b[i] = (uint8_t)next_u32();
	size_t bb = quant_block_bytes(type);
	for (size_t off = 0; off < bytes; off += bb) {
		float d = 0.01f + (next_u32() % 1000) / 1e4f;
		switch (type) {
		case QT_Q8_0: case QT_Q4_0: case QT_Q5_0:
			put_f16(b + off, d);
			if (type == QT_Q8_0)   /* ggml never writes -128 */
				for (int j = 0; j < 32; j++)
					if (b[off + 2 + j] == 0x80)
						b[off + 2 + j] = 0x81;
			break;
		case QT_Q4_K: case QT_Q5_K:
			put_f16(b + off, d);
			put_f16(b + off + 2, d * 0.5f);
			break;
		case QT_Q6_K:
			put_f16(b + off + 208, d);
			break;
		case QT_Q4_1: case QT_Q5_1:
			put_f16(b + off, d);
			put_f16(b + off + 2, -d * 4);
			break;
		case QT_IQ4_NL:
			put_f16(b + off, d / 16);
			break;
		case QT_Q2_K:
			put_f16(b + off + 80, d);
			put_f16(b + off + 82, d * 0.5f);
			break;
		case QT_Q3_K:
			put_f16(b + off + 108, d);
			break;
		case QT_IQ4_XS:
			put_f16(b + off, d / 16);
			break;
		}
	}
}

static const int weight_types[] = { QT_F32, QT_F16, QT_BF16, QT_Q8_0, QT_Q4_0,
				    QT_Q5_0, QT_Q4_K, QT_Q5_K, QT_Q6_K, QT_Q4_1,
				    QT_Q5_1, QT_IQ4_NL, QT_Q2_K, QT_Q3_K, QT_IQ4_XS };
#define N_TYPES (int)(sizeof(weight_types) / sizeof(weight_types[0]))

/* |kernel - exact| relative to sum |w_i a_i| */
static double kernel_error(int type, quant_impl impl, int n)
{
	uint8_t *w = malloc(quant_row_bytes(type, n));
	int vt = quant_vec_type(type);
	uint8_t *a = malloc(quant_row_bytes(vt, n));
	float *x = malloc(n * sizeof(float)), *wf = malloc(n * sizeof(float));
	float *af = malloc(n * sizeof(float));
	random_row(type, w, n);
	for (int i = 0; i < n; i++)
		x[i] = frand();
	quant_quantize_row(vt, x, a, n);
	quant_dequantize_row(type, w, wf, n);
	quant_dequantize_row(vt, a, af, n);
	double exact = 0, mag = 0;
	for (int i = 0; i < n; i++) {
		exact += (double)wf[i] * af[i];
		mag += fabs((double)wf[i] * af[i]);
	}
	quant_dot_fn f = quant_dot_get(type, impl);
	double err = f ? fabs(f(n, w, a) - exact) / (mag + 1e-30) : -1;
	free(w); free(a); free(x); free(wf); free(af);
	return err;
}

VX_TEST(type_table_sizes_match_ggml)
{
	VX_CHECK_INT(quant_row_bytes(QT_Q8_0, 64), 68);
	VX_CHECK_INT(quant_row_bytes(QT_Q4_0, 64), 36);
	VX_CHECK_INT(quant_row_bytes(QT_Q5_0, 64), 44);
	VX_CHECK_INT(quant_row_bytes(QT_Q4_K, 512), 288);
	VX_CHECK_INT(quant_row_bytes(QT_Q5_K, 256), 176);
	VX_CHECK_INT(quant_row_bytes(QT_Q6_K, 256), 210);
	VX_CHECK_INT(quant_row_bytes(QT_BF16, 3), 6);
	VX_CHECK_INT(quant_row_bytes(QT_Q4_K, 100), 0);      /* not whole blocks */
	VX_CHECK_INT(quant_row_bytes(QT_Q4_1, 64), 40);
	VX_CHECK_INT(quant_row_bytes(QT_Q5_1, 64), 48);
	VX_CHECK_INT(quant_row_bytes(QT_IQ4_NL, 64), 36);
	VX_CHECK_INT(quant_row_bytes(QT_Q2_K, 512), 168);
	VX_CHECK_INT(quant_row_bytes(QT_Q3_K, 256), 110);
	VX_CHECK_INT(quant_row_bytes(QT_IQ4_XS, 256), 136);
	VX_CHECK_INT(quant_row_bytes(QT_Q3_K, 96), 0);       /* not whole blocks */
	VX_CHECK_INT(quant_row_bytes(16, 256), 0);           /* IQ2_XXS: unsupported */
	VX_CHECK_STR(quant_type_name(16), "IQ2_XXS");
	VX_CHECK_STR(quant_type_name(QT_IQ4_XS), "IQ4_XS");
	VX_CHECK_INT(quant_vec_type(QT_Q4_1), QT_Q8_0);
	VX_CHECK_INT(quant_vec_type(QT_IQ4_NL), QT_Q8_0);
	VX_CHECK_INT(quant_vec_type(QT_Q3_K), QT_Q8_K);
	VX_CHECK_INT(quant_vec_type(QT_IQ4_XS), QT_Q8_K);
	VX_CHECK(quant_type_name(1000) == NULL);
	VX_CHECK_INT(quant_vec_type(QT_Q6_K), QT_Q8_K);
	VX_CHECK_INT(quant_vec_type(QT_Q4_0), QT_Q8_0);
	VX_CHECK_INT(quant_vec_type(QT_BF16), QT_F32);
	VX_CHECK(!quant_supported(QT_Q8_K) && !quant_supported(QT_Q8_0U));
	VX_CHECK(quant_supported(QT_Q6_K) && quant_supported(QT_BF16));
}

VX_TEST(f16_round_trips_every_finite_half)
{
	int bad = 0;
	for (uint32_t h = 0; h < 65536; h++) {
		if ((h & 0x7c00) == 0x7c00)
			continue;   /* inf / nan */
		if (quant_f32_to_f16(quant_f16_to_f32((uint16_t)h)) != h)
			bad++;
	}
	VX_CHECK_INT(bad, 0);
	VX_CHECK(quant_f16_to_f32(quant_f32_to_f16(1e6f)) == INFINITY);
	VX_CHECK(quant_f16_to_f32(0x3c00) == 1.0f);
	VX_CHECK(quant_bf16_to_f32(0x3f80) == 1.0f);
	/* ties to even: 1 + 2^-11 is halfway between 1 and 1 + 2^-10 */
	VX_CHECK_INT(quant_f32_to_f16(1.0f + 1.0f / 2048), 0x3c00);
}

VX_TEST(q8_0_activation_quantiser_within_half_a_step)
{
	float x[64], y[64];
	uint8_t q[68];
	for (int i = 0; i < 64; i++)
		x[i] = frand() * 3;
	x[5] = 0;
	VX_CHECK_INT(quant_quantize_row(QT_Q8_0, x, q, 64), 0);
	quant_dequantize_row(QT_Q8_0, q, y, 64);
	for (int b = 0; b < 2; b++) {
		float amax = 0;
		for (int i = 0; i < 32; i++)
			amax = fmaxf(amax, fabsf(x[b * 32 + i]));
		for (int i = 0; i < 32; i++)
			VX_CHECK(fabsf(x[b * 32 + i] - y[b * 32 + i]) <= amax / 127 * 0.51f + 1e-3f * amax);
	}
	VX_CHECK(y[5] == 0);
	VX_CHECK_INT(quant_quantize_row(QT_Q8_0, x, q, 33), -EINVAL);
}

VX_TEST(q8_K_quantiser_bsums_and_error)
{
	float x[512], y[512];
	block_q8_K q[2];
	for (int i = 0; i < 512; i++)
		x[i] = frand();
	VX_CHECK_INT(quant_quantize_row(QT_Q8_K, x, q, 512), 0);
	quant_dequantize_row(QT_Q8_K, q, y, 512);
	for (int b = 0; b < 2; b++) {
		for (int g = 0; g < 16; g++) {
			int s = 0;
			for (int l = 0; l < 16; l++)
				s += q[b].qs[g * 16 + l];
			VX_CHECK_INT(q[b].bsums[g], s);
		}
		for (int i = 0; i < 256; i++)
			VX_CHECK(fabsf(x[b * 256 + i] - y[b * 256 + i]) <= fabsf(q[b].d) * 0.51f);
	}
	float zero[256] = { 0 };
	VX_CHECK_INT(quant_quantize_row(QT_Q8_K, zero, q, 256), 0);
	VX_CHECK(q[0].d == 0 && q[0].bsums[3] == 0);
}

VX_TEST(portable_kernels_match_dequantise_then_multiply)
{
	const int sizes[] = { 256, 512, 4864 };
	for (int t = 0; t < N_TYPES; t++)
		for (int s = 0; s < 3; s++) {
			double e = kernel_error(weight_types[t], QUANT_IMPL_PORTABLE, sizes[s]);
			if (!(e >= 0 && e < 1e-5))
				fprintf(stderr, "  %s n=%d: rel error %g\n",
					quant_type_name(weight_types[t]), sizes[s], e);
			VX_CHECK(e >= 0 && e < 1e-5);
		}
}

VX_TEST(avx2_kernels_match_dequantise_then_multiply)
{
	if (!quant_have_avx2()) {
		printf("  (no AVX2 on this CPU: skipped)\n");
		return;
	}
	const int sizes[] = { 256, 512, 4864, 96 + 256 * 0 };
	for (int t = 0; t < N_TYPES; t++)
		for (int s = 0; s < 4; s++) {
			int n = sizes[s];
			if (quant_row_bytes(weight_types[t], n) == 0)
				continue;
			double e = kernel_error(weight_types[t], QUANT_IMPL_AVX2, n);
			if (!(e >= 0 && e < 1e-5))
				fprintf(stderr, "  %s n=%d: rel error %g\n",
					quant_type_name(weight_types[t]), n, e);
			VX_CHECK(e >= 0 && e < 1e-5);
		}
}

/* QUANT_IMPL_BEST takes the AVX-512 kernels where there are some; odd
 * block counts (96: 3 blocks) reach their one-block tails. */
VX_TEST(avx512_kernels_match_dequantise_then_multiply)
{
	int seen = 0;
	const int sizes[] = { 96, 256, 4864, 4896 };
	for (int t = 0; t < N_TYPES; t++) {
		if (!quant_dot_avx512(weight_types[t]))
			continue;
		seen++;
		VX_CHECK(quant_dot_get(weight_types[t], QUANT_IMPL_BEST) ==
			 quant_dot_avx512(weight_types[t]));
		for (int s = 0; s < 4; s++) {
			int n = sizes[s];
			if (quant_row_bytes(weight_types[t], n) == 0)
				continue;
			double e = kernel_error(weight_types[t], QUANT_IMPL_BEST, n);
			if (!(e >= 0 && e < 1e-5))
				fprintf(stderr, "  %s n=%d: rel error %g\n",
					quant_type_name(weight_types[t]), n, e);
			VX_CHECK(e >= 0 && e < 1e-5);
		}
	}
	if (!seen)
		printf("  (no AVX-512 BW/VL/VNNI on this CPU: skipped)\n");
}

VX_TEST(avx2_and_portable_agree_on_many_rows)
{
	if (!quant_have_avx2())
		return;
	for (int t = 0; t < N_TYPES; t++) {
		int type = weight_types[t], n = 1024, vt = quant_vec_type(type);
		uint8_t *w = malloc(quant_row_bytes(type, n)), *a = malloc(quant_row_bytes(vt, n));
		float x[1024];
		double worst = 0;
		for (int r = 0; r < 50; r++) {
			random_row(type, w, n);
			for (int i = 0; i < n; i++)
				x[i] = frand();
			quant_quantize_row(vt, x, a, n);
			float p = quant_dot_get(type, QUANT_IMPL_PORTABLE)(n, w, a);
			float v = quant_dot_get(type, QUANT_IMPL_AVX2)(n, w, a);
			double e = fabs(p - v) / (fabs(p) + 1.0);
			worst = e > worst ? e : worst;
		}
		if (worst >= 1e-4)
			fprintf(stderr, "  %s: worst %g\n", quant_type_name(type), worst);
		VX_CHECK(worst < 1e-4);
		free(w);
		free(a);
	}
}

VX_TEST(tile_kernels_match_the_dot_kernel)
{
	int tiles = 0;
	for (int t = 0; t < N_TYPES; t++) {
		int type = weight_types[t], n = 512, vt = quant_vec_type(type);
		quant_tile_fn tile = quant_tile_get(type, QUANT_IMPL_BEST);
		if (!tile)
			continue;
		tiles++;
		size_t wb = quant_row_bytes(type, n), ab = quant_row_bytes(vt, n);
		uint8_t *w = malloc(wb * QUANT_TILE_R), *a = malloc(ab * QUANT_TILE_T);
		float x[512], out[QUANT_TILE_T * 3];
		for (int r = 0; r < QUANT_TILE_R; r++)
			random_row(type, w + r * wb, n);
		for (int k = 0; k < QUANT_TILE_T; k++) {
			for (int i = 0; i < n; i++)
				x[i] = frand();
			quant_quantize_row(vt, x, a + k * ab, n);
		}
		memset(out, 0, sizeof(out));
		tile(n, w, wb, a, ab, out, 3);   /* out stride 3: column 2 untouched */
		quant_dot_fn dot = quant_dot_get(type, QUANT_IMPL_PORTABLE);
		for (int k = 0; k < QUANT_TILE_T; k++) {
			for (int r = 0; r < QUANT_TILE_R; r++) {
				float want = dot(n, w + r * wb, a + k * ab);
				if (fabsf(out[k * 3 + r] - want) > 1e-4f * (fabsf(want) + 1))
					fprintf(stderr, "  %s r%d t%d: %g want %g\n",
						quant_type_name(type), r, k, out[k * 3 + r], want);
				VX_CHECK(fabsf(out[k * 3 + r] - want) <= 1e-4f * (fabsf(want) + 1));
			}
			VX_CHECK(out[k * 3 + 2] == 0);
		}
		free(w);
		free(a);
	}
	if (quant_have_avx2())
		VX_CHECK(tiles >= 5);
}

VX_TEST(avx2_activation_quantisers_match_portable)
{
	if (!quant_have_avx2())
		return;
	const int types[] = { QT_Q8_0, QT_Q8_K, QT_Q8_0U, QT_Q8_0S };
	for (int k = 0; k < 4; k++) {
		int n = 1024, type = types[k];
		float x[1024], ya[1024], yp[1024];
		uint8_t qa[1600], qp[1600];   /* Q8_0S: 32 blocks of 48 bytes */
		for (int i = 0; i < n; i++)
			x[i] = frand() * (k + 1);
		x[0] = -9.0f;   /* the block's largest magnitude is negative */
		VX_CHECK_INT(quant_quantize_avx2(type, x, qa, n), 0);
		VX_CHECK_INT(quant_quantize_row_portable(type, x, qp, n), 0);
		quant_dequantize_row(type, qa, ya, n);
		quant_dequantize_row(type, qp, yp, n);
		int differ = 0;
		for (int i = 0; i < n; i++)
			if (fabsf(ya[i] - yp[i]) > 1e-6f + 1e-6f * fabsf(yp[i]))
				differ++;
		VX_CHECK(differ <= 2);   /* only exact .5 ties may round apart */
		for (int i = 0; type == QT_Q8_0U && i < n / QK8_0; i++) {
			const block_q8_0u *b = (const block_q8_0u *)qa + i, *bp = (const block_q8_0u *)qp + i;
			int s = 0;
			for (int l = 0; l < QK8_0; l++)
				s += b->qs[l] - 128;
			VX_CHECK_INT(b->sum, s);
			s = 0;
			for (int l = 0; l < QK8_0; l++)
				s += bp->qs[l] - 128;
			VX_CHECK_INT(bp->sum, s);
		}
		for (int i = 0; type == QT_Q8_0S && i < n / QK8_0; i++) {
			/* the values and scale of Q8_0U, and the sums of their halves */
			const block_q8_0s *b = (const block_q8_0s *)qa + i, *bp = (const block_q8_0s *)qp + i;
			block_q8_0u u;
			VX_CHECK_INT(quant_quantize_avx2(QT_Q8_0U, x + i * QK8_0, &u, QK8_0), 0);
			VX_CHECK(b->d == u.d);
			for (int l = 0; l < QK8_0; l++)
				VX_CHECK(b->qs[l] == u.qs[l] - 128);
			VX_CHECK_INT(b->sums[0] + b->sums[1], u.sum);
			for (int h = 0; h < 2; h++) {
				int s = 0, sp = 0;
				for (int l = 16 * h; l < 16 * h + 16; l++) {
					s += b->qs[l];
					sp += bp->qs[l];
				}
				VX_CHECK_INT(b->sums[h], s);
				VX_CHECK_INT(bp->sums[h], sp);
			}
			/* the terms the packed gemms load */
			VX_CHECK_INT(b->sum128, -128 * u.sum);
			VX_CHECK_INT(bp->sum128, -128 * (bp->sums[0] + bp->sums[1]));
			VX_CHECK(b->dsum == b->d * (float)u.sum);
			VX_CHECK(bp->dsum == bp->d * (float)(bp->sums[0] + bp->sums[1]));
		}
		if (type == QT_Q8_K) {
			const block_q8_K *b = (const block_q8_K *)qa;
			for (int g = 0; g < 16; g++) {
				int s = 0;
				for (int l = 0; l < 16; l++)
					s += b[1].qs[g * 16 + l];
				VX_CHECK_INT(b[1].bsums[g], s);
			}
		}
	}
}

static void gemm8_case(int type)
{
	quant_gemm8_fn g = quant_gemm8_get(type);
	if (!g) {
		printf("  (no AVX-VNNI: gemm8 %s skipped)\n", quant_type_name(type));
		return;
	}
	enum { n = 512, T = QUANT_GEMM8_TOKENS };
	size_t wb = quant_row_bytes(type, n), ab = quant_row_bytes(QT_Q8_0U, n);
	uint8_t *w = malloc(8 * wb), *a = malloc(T * ab);
	static float wf[8][n], af[T][n];
	float x[n], out[T * 9];
	for (int r = 0; r < 8; r++) {
		random_row(type, w + r * wb, n);
		quant_dequantize_row(type, w + r * wb, wf[r], n);
	}
	for (int t = 0; t < T; t++) {
		for (int i = 0; i < n; i++)
			x[i] = frand();
		x[t] = t % 2 ? 40.0f : -40.0f;   /* bytes at both ends of the range */
		VX_CHECK_INT(quant_quantize_row(QT_Q8_0U, x, a + t * ab, n), 0);
		quant_dequantize_row(QT_Q8_0U, a + t * ab, af[t], n);
	}
	for (int nt = 1; nt <= T; nt += 5) {
		for (int i = 0; i < T * 9; i++)
			out[i] = -1;
		g(n, w, wb, a, ab, nt, out, 9);   /* stride 9: column 8 untouched */
		for (int t = 0; t < T; t++) {
			for (int r = 0; r < 8 && t < nt; r++) {
				double want = 0, mag = 0;
				for (int i = 0; i < n; i++) {
					want += (double)wf[r][i] * af[t][i];
					mag += fabs((double)wf[r][i] * af[t][i]);
				}
				VX_CHECK(fabs(out[t * 9 + r] - want) <= 1e-5 * mag);
			}
			VX_CHECK(out[t * 9 + 8] == -1);
			if (t >= nt)
				VX_CHECK(out[t * 9] == -1);
		}
	}
	free(w);
	free(a);
}

VX_TEST(gemm8_matches_dequantise_then_multiply)
{
	const int types[] = { QT_Q8_0, QT_Q4_0, QT_Q5_0, QT_IQ4_NL, QT_Q4_1, QT_Q5_1,
			      QT_Q2_K, QT_Q3_K, QT_IQ4_XS, QT_Q4_K, QT_Q5_K, QT_Q6_K };
	for (int k = 0; k < 12; k++)
		gemm8_case(types[k]);
}

VX_TEST(q5_0_dequantises_fifth_bits_in_ggml_order)
{
	block_q5_0 b;
	put_f16(&b.d, 1.0f);
	for (int j = 0; j < 16; j++)
		b.qs[j] = (uint8_t)(j | (j << 4));
	uint32_t qh = 0x80000001u;      /* element 0 and element 31 */
	memcpy(b.qh, &qh, 4);
	float y[32];
	quant_dequantize_row(QT_Q5_0, &b, y, 32);
	VX_CHECK(y[0] == 0.0f);         /* (0 | 16) - 16 */
	VX_CHECK(y[1] == -15.0f);       /* 1 - 16 */
	VX_CHECK(y[16] == -16.0f);      /* high nibble 0, bit clear */
	VX_CHECK(y[31] == 15.0f);       /* (15 | 16) - 16 */
}

VX_TEST(q4_0_dequantises_nibbles_in_ggml_order)
{
	block_q4_0 b;
	put_f16(&b.d, 0.5f);
	for (int j = 0; j < 16; j++)
		b.qs[j] = (uint8_t)(j | ((15 - j) << 4));
	float y[32];
	quant_dequantize_row(QT_Q4_0, &b, y, 32);
	VX_CHECK(y[0] == -4.0f && y[15] == 3.5f);     /* low nibbles: first half */
	VX_CHECK(y[16] == 3.5f && y[31] == -4.0f);    /* high nibbles: second half */
}

VX_TEST_MAIN(type_table_sizes_match_ggml, f16_round_trips_every_finite_half,
	     q8_0_activation_quantiser_within_half_a_step, q8_K_quantiser_bsums_and_error,
	     portable_kernels_match_dequantise_then_multiply,
	     avx2_kernels_match_dequantise_then_multiply,
	     avx512_kernels_match_dequantise_then_multiply, avx2_and_portable_agree_on_many_rows,
	     tile_kernels_match_the_dot_kernel, avx2_activation_quantisers_match_portable,
	     gemm8_matches_dequantise_then_multiply,
	     q5_0_dequantises_fifth_bits_in_ggml_order, q4_0_dequantises_nibbles_in_ggml_order)
