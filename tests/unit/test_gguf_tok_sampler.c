/*
 * test_gguf_tok_sampler.c - the GGUF engine's sampler: greedy, seeds,
 * top-k, top-p, min-p, repetition penalty, and that draws follow softmax.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vx_test.h"
#include "../../services/llm/gguf/sampler.h"

#define NV 1000

/* Deterministic pseudo-random logits in [-4, 4) with a clear best at 777. */
static void fill_logits(float *l, int n, unsigned seed)
{
	for (int i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		l[i] = (float)((seed >> 8) % 8000) / 1000.0f - 4.0f;
	}
	if (n > 777)
		l[777] = 6.0f;
}

static sampler *make(float temp, int top_k, float top_p, float min_p,
		     float penalty, uint64_t seed)
{
	sampler_params p;
	sampler *s = NULL;
	sampler_params_init(&p);
	p.temperature = temp;
	p.top_k = top_k;
	p.top_p = top_p;
	p.min_p = min_p;
	p.repeat_penalty = penalty;
	p.seed = seed;
	if (sampler_new(&p, &s) != 0)
		return NULL;
	return s;
}

static int32_t draw(sampler *s, unsigned logit_seed, const int32_t *recent, size_t n)
{
	float l[NV];
	fill_logits(l, NV, logit_seed);
	return sampler_sample(s, l, NV, recent, n);
}

VX_TEST(greedy_picks_argmax)
{
	sampler *s = make(0, 0, 1, 0, 1, 1);
	float l[5] = { 0.1f, 2.0f, -1.0f, 2.5f, 2.4f };
	VX_CHECK(s != NULL);
	VX_CHECK_INT(sampler_sample(s, l, 5, NULL, 0), 3);
	VX_CHECK_INT(draw(s, 7, NULL, 0), 777);
	sampler_free(s);
}

VX_TEST(same_seed_same_tokens_other_seed_differs)
{
	sampler *a = make(1.5f, 0, 1, 0, 1, 42), *b = make(1.5f, 0, 1, 0, 1, 42);
	sampler *c = make(1.5f, 0, 1, 0, 1, 43);
	int same = 1, differ = 0;
	VX_CHECK(a && b && c);
	for (unsigned i = 0; i < 200 && a && b && c; i++) {
		int32_t x = draw(a, i, NULL, 0), y = draw(b, i, NULL, 0), z = draw(c, i, NULL, 0);
		VX_CHECK(x >= 0 && x < NV);
		same &= x == y;
		differ += x != z;
	}
	VX_CHECK(same);
	VX_CHECK(differ > 50);
	sampler_free(a);
	sampler_free(b);
	sampler_free(c);
}

VX_TEST(top_k_1_and_tiny_top_p_equal_greedy)
{
	sampler *k1 = make(1.0f, 1, 1, 0, 1, 5), *p0 = make(1.0f, 0, 1e-6f, 0, 1, 5);
	sampler *g = make(0, 0, 1, 0, 1, 5);
	VX_CHECK(k1 && p0 && g);
	for (unsigned i = 0; i < 100 && k1 && p0 && g; i++) {
		float l[NV];
		fill_logits(l, NV, i);
		l[777] = -4.0f;           /* vary the winner */
		l[(i * 37) % NV] = 5.0f;
		float l2[NV], l3[NV];
		memcpy(l2, l, sizeof(l));
		memcpy(l3, l, sizeof(l));
		int32_t want = sampler_sample(g, l3, NV, NULL, 0);
		VX_CHECK_INT(sampler_sample(k1, l, NV, NULL, 0), want);
		VX_CHECK_INT(sampler_sample(p0, l2, NV, NULL, 0), want);
	}
	sampler_free(k1);
	sampler_free(p0);
	sampler_free(g);
}

/* Counts of 4-token draws: logits log(0.5), log(0.3), log(0.15), log(0.05). */
static void histogram(sampler *s, int *count, int draws)
{
	for (int i = 0; i < draws; i++) {
		float l[4] = { logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f) };
		int32_t id = sampler_sample(s, l, 4, NULL, 0);
		if (id >= 0 && id < 4)
			count[id]++;
	}
}

VX_TEST(temperature_1_draws_follow_softmax)
{
	const double want[4] = { 0.5, 0.3, 0.15, 0.05 };
	int count[4] = { 0 }, n = 100000;
	sampler *s = make(1.0f, 0, 1, 0, 1, 99);
	VX_CHECK(s != NULL);
	if (s)
		histogram(s, count, n);
	for (int i = 0; i < 4; i++) {
		double f = (double)count[i] / n;
		/* 5 standard deviations of a binomial proportion */
		double tol = 5 * sqrt(want[i] * (1 - want[i]) / n);
		if (fabs(f - want[i]) > tol)
			fprintf(stderr, "token %d: %.4f, want %.4f +- %.4f\n", i, f, want[i], tol);
		VX_CHECK(fabs(f - want[i]) <= tol);
	}
	sampler_free(s);
}

VX_TEST(low_temperature_sharpens_and_top_p_cuts_the_tail)
{
	int hot[4] = { 0 }, cold[4] = { 0 }, nucleus[4] = { 0 };
	sampler *h = make(2.0f, 0, 1, 0, 1, 3), *c = make(0.25f, 0, 1, 0, 1, 3);
	sampler *p = make(1.0f, 0, 0.75f, 0, 1, 3);
	VX_CHECK(h && c && p);
	if (h && c && p) {
		histogram(h, hot, 20000);
		histogram(c, cold, 20000);
		histogram(p, nucleus, 20000);
	}
	VX_CHECK(cold[0] > 17000);        /* 0.5^4 / sum = 0.879: ~17580 */
	VX_CHECK(hot[3] > 1500);          /* sqrt flattens: ~0.12 */
	/* top_p 0.75 keeps {0.5, 0.3}: renormalised 0.625 / 0.375 */
	VX_CHECK(nucleus[2] == 0 && nucleus[3] == 0);
	VX_CHECK(fabs(nucleus[0] / 20000.0 - 0.625) < 0.02);
	sampler_free(h);
	sampler_free(c);
	sampler_free(p);
}

VX_TEST(min_p_drops_unlikely_tokens)
{
	int count[4] = { 0 };
	sampler *s = make(1.0f, 0, 1, 0.4f, 1, 11);   /* keeps p >= 0.2 */
	VX_CHECK(s != NULL);
	if (s)
		histogram(s, count, 20000);
	VX_CHECK(count[0] > 0 && count[1] > 0);
	VX_CHECK(count[2] == 0 && count[3] == 0);
	sampler_free(s);
}

VX_TEST(top_k_keeps_only_k_best)
{
	sampler *s = make(5.0f, 3, 1, 0, 1, 17);
	int hits[NV] = { 0 };
	float base[NV];
	VX_CHECK(s != NULL);
	fill_logits(base, NV, 1);
	base[10] = 5.9f;
	base[20] = 5.8f;
	for (int i = 0; i < 3000 && s; i++) {
		float l[NV];
		memcpy(l, base, sizeof(l));
		int32_t id = sampler_sample(s, l, NV, NULL, 0);
		if (id >= 0 && id < NV)
			hits[id]++;
	}
	VX_CHECK(hits[777] > 0 && hits[10] > 0 && hits[20] > 0);
	VX_CHECK_INT(hits[777] + hits[10] + hits[20], 3000);
	sampler_free(s);
}

VX_TEST(repetition_penalty_changes_the_pick)
{
	sampler *plain = make(0, 0, 1, 0, 1, 1), *pen = make(0, 0, 1, 0, 1.5f, 1);
	int32_t recent[] = { 3, 3, 3, 0 };
	float a[4] = { 1.0f, -2.0f, 0.5f, 1.2f }, b[4];
	VX_CHECK(plain && pen);
	memcpy(b, a, sizeof(a));
	VX_CHECK_INT(sampler_sample(plain, a, 4, recent, 4), 3);
	/* 1.2 / 1.5 = 0.8 and 1.0 / 1.5 = 0.67, once each however often repeated */
	VX_CHECK_INT(sampler_sample(pen, b, 4, recent, 4), 3);
	VX_CHECK(fabsf(b[3] - 0.8f) < 1e-6f && fabsf(b[0] - 1.0f / 1.5f) < 1e-6f);
	float c[4] = { 1.0f, -2.0f, 0.9f, 1.2f }, c2[4];
	memcpy(c2, c, sizeof(c));
	VX_CHECK_INT(sampler_sample(plain, c2, 4, recent, 4), 3);
	VX_CHECK_INT(sampler_sample(pen, c, 4, recent, 4), 2);
	/* negative logits are pushed further down; ids out of range ignored */
	int32_t r2[] = { 1, 99, -5 };
	float d[4] = { -0.7f, -0.5f, -3.0f, -2.0f };
	VX_CHECK_INT(sampler_sample(pen, d, 4, r2, 3), 0);
	VX_CHECK(fabsf(d[1] + 0.75f) < 1e-6f);
	sampler_free(plain);
	sampler_free(pen);
}

VX_TEST(repeat_last_n_limits_the_window)
{
	sampler_params p;
	sampler *s = NULL;
	sampler_params_init(&p);
	p.temperature = 0;
	p.repeat_penalty = 2.0f;
	p.repeat_last_n = 2;
	VX_CHECK_INT(sampler_new(&p, &s), 0);
	int32_t recent[] = { 0, 5, 6 };   /* 0 is outside the last 2 */
	float l[8] = { 3.0f, 0, 0, 0, 0, 2.9f, 1.0f, 0 };
	VX_CHECK_INT(sampler_sample(s, l, 8, recent, 3), 0);
	VX_CHECK(fabsf(l[5] - 1.45f) < 1e-6f && l[0] == 3.0f);
	sampler_free(s);
}

VX_TEST(bad_parameters_rejected)
{
	sampler_params p;
	sampler *s = NULL;
	sampler_params_init(&p);
	p.temperature = NAN;
	VX_CHECK_INT(sampler_new(&p, &s), -EINVAL);
	sampler_params_init(&p);
	p.temperature = -1;
	VX_CHECK_INT(sampler_new(&p, &s), -EINVAL);
	sampler_params_init(&p);
	p.min_p = 2;
	VX_CHECK_INT(sampler_new(&p, &s), -EINVAL);
	sampler_params_init(&p);
	VX_CHECK_INT(sampler_new(&p, &s), 0);
	float l[1] = { 0 };
	VX_CHECK_INT(sampler_sample(s, l, 0, NULL, 0), -EINVAL);
	VX_CHECK_INT(sampler_sample(s, l, 1, NULL, 0), 0);
	sampler_free(s);
}

VX_TEST(large_vocab_top_p_without_top_k)
{
	enum { BIG = 151936 };
	float *l = malloc(BIG * sizeof(*l));
	sampler *s = make(0.7f, 0, 0.9f, 0, 1, 8);
	int ok = 1;
	VX_CHECK(l && s);
	for (int r = 0; r < 20 && l && s; r++) {
		fill_logits(l, BIG, (unsigned)r);
		for (int i = 0; i < BIG; i++)
			l[i] *= 0.5f;   /* flat: the nucleus is wide */
		l[1234] = 12.0f;
		int32_t id = sampler_sample(s, l, BIG, NULL, 0);
		ok &= id >= 0 && id < BIG;
	}
	VX_CHECK(ok);
	sampler_free(s);
	free(l);
}

VX_TEST_MAIN(greedy_picks_argmax, same_seed_same_tokens_other_seed_differs,
	     top_k_1_and_tiny_top_p_equal_greedy, temperature_1_draws_follow_softmax,
	     low_temperature_sharpens_and_top_p_cuts_the_tail,
	     min_p_drops_unlikely_tokens, top_k_keeps_only_k_best,
	     repetition_penalty_changes_the_pick, repeat_last_n_limits_the_window,
	     bad_parameters_rejected, large_vocab_top_p_without_top_k)
