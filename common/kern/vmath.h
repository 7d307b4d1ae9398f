/*
 * vmath.h - float functions over arrays, vectorised: the exact (erf) GELU,
 * SwiGLU, GeGLU (tanh GELU), softcapping, the exponentials of a softmax
 * row, and argmax. AVX2/FMA when the CPU has it (checked at run time), else
 * libm. And floats to IEEE halves.
 *
 * Accuracy (test_vmath, against double libm): softmax exponentials within
 * 1e-6 relative (measured 5.5e-7, the fused x * scale - mx included); erf by
 * Abramowitz and Stegun 7.1.26 (2e-7 absolute) with the vector exp, GELU
 * within 1e-6 of the exact one (measured 2.6e-7, relative above 1), SwiGLU,
 * GeGLU and softcapping likewise (measured 1.2e-7, 1.3e-7, 4.4e-7); argmax
 * the scalar loop's exact answer. Pure and thread-safe; nothing allocates.
 *
 *     vmath_gelu(h, n);                          // h = h * Phi(h)
 *     float sum = vmath_softmax_exp(row, n, scale, mx);
 */
#ifndef VMATH_H
#define VMATH_H

#include <stddef.h>
#include <stdint.h>

/* x[i] = 0.5 x[i] (1 + erf(x[i] / sqrt 2)). */
void vmath_gelu(float *x, size_t n);
/* g[i] = silu(g[i]) * u[i] = g[i] / (1 + exp(-g[i])) * u[i]: SwiGLU. */
void vmath_silu_mul(float *g, const float *u, size_t n);
/* g[i] = gelu(g[i]) * u[i] with the tanh GELU, 0.5 g (1 + tanh(z)),
 * z = sqrt(2 / pi) (g + 0.044715 g^3), computed as g / (1 + exp(-2 z)):
 * GeGLU (Gemma's gelu_pytorch_tanh, ggml's ggml_gelu). */
void vmath_gelu_tanh_mul(float *g, const float *u, size_t n);
/* x[i] = cap * tanh(x[i] * scale / cap): Gemma 2's softcapping (cap > 0). */
void vmath_softcap(float *x, size_t n, float scale, float cap);
/* x[i] = exp(x[i] * scale - mx); returns the sum of the new x[i]. */
float vmath_softmax_exp(float *x, int n, float scale, float mx);

/* The index of the first largest of x[0..n) (n >= 1) that is not NaN: a
 * greedy sampler's token. Where none is above -INFINITY, the portable
 * loop's answer (it passes over leading NaNs). */
int vmath_argmax(const float *x, int n);

/* y[i] = x[i] as an IEEE half, rounded to nearest even (F16C where the CPU
 * has it; the portable conversion gives the same bits). */
void vmath_to_half(const float *x, uint16_t *y, size_t n);

/* The scalar versions (tests compare them). */
void vmath_gelu_portable(float *x, size_t n);
void vmath_silu_mul_portable(float *g, const float *u, size_t n);
void vmath_gelu_tanh_mul_portable(float *g, const float *u, size_t n);
void vmath_softcap_portable(float *x, size_t n, float scale, float cap);
float vmath_softmax_exp_portable(float *x, int n, float scale, float mx);
int vmath_argmax_portable(const float *x, int n);
void vmath_to_half_portable(const float *x, uint16_t *y, size_t n);

#endif
