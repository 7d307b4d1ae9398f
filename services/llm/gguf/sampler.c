/*
 * sampler.c - repetition penalty, greedy, temperature, top-k, top-p, min-p
 * and a seeded draw (see sampler.h).
 *
 * Candidates are (logit, id) pairs. top-k keeps a min-heap of k over one
 * pass of the vocabulary; top-p without top-k sorts only the candidates
 * above a probability threshold, lowering it until they hold top_p of the
 * mass, so a peaked distribution never sorts the whole vocabulary.
 */
#include "sampler.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "kern/vmath.h"

typedef struct cand {
	float logit;   /* after penalty and temperature */
	float p;       /* exp(logit - max) */
	int32_t id;
} cand;

struct sampler {
	sampler_params p;
	uint64_t rng[4];       /* xoshiro256** state */
	cand *c;               /* n_vocab scratch */
	size_t c_cap;
	int32_t *seen;         /* repeat_last_n scratch */
	size_t seen_cap;
};

void sampler_params_init(sampler_params *p)
{
	*p = (sampler_params){ .temperature = 0.8f, .top_p = 1.0f, .top_k = 0,
			       .min_p = 0.0f, .repeat_penalty = 1.0f,
			       .repeat_last_n = 64, .seed = 0 };
}

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t next_u64(sampler *s)
{
	uint64_t *r = s->rng, out = rotl(r[1] * 5, 7) * 9, t = r[1] << 17;
	r[2] ^= r[0];
	r[3] ^= r[1];
	r[1] ^= r[2];
	r[0] ^= r[3];
	r[2] ^= t;
	r[3] = rotl(r[3], 45);
	return out;
}

/* Uniform in [0, 1). */
static double next_unit(sampler *s)
{
	return (double)(next_u64(s) >> 11) * 0x1.0p-53;
}

int sampler_new(const sampler_params *p, sampler **ret)
{
	sampler *s;
	uint64_t x;

	if (!p || isnan(p->temperature) || p->temperature < 0 || isnan(p->top_p) ||
	    p->top_p < 0 || isnan(p->min_p) || p->min_p < 0 || p->min_p > 1 ||
	    isnan(p->repeat_penalty) || p->repeat_penalty <= 0)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->p = *p;
	x = p->seed;
	for (int i = 0; i < 4; i++)
		s->rng[i] = splitmix64(&x);
	*ret = s;
	return 0;
}

void sampler_free(sampler *s)
{
	if (!s)
		return;
	free(s->c);
	free(s->seen);
	free(s);
}

static int cmp_id(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	return (x > y) - (x < y);
}

/* Most likely first; ties by id for a stable order. */
static int cmp_cand_desc(const void *a, const void *b)
{
	const cand *x = a, *y = b;
	if (x->logit != y->logit)
		return x->logit < y->logit ? 1 : -1;
	return (x->id > y->id) - (x->id < y->id);
}

static int penalize(sampler *s, float *logits, int n_vocab,
		    const int32_t *recent, size_t n_recent)
{
	size_t m = n_recent, u = 0;
	if (s->p.repeat_penalty == 1.0f || s->p.repeat_last_n <= 0 || !recent || !m)
		return 0;
	if (m > (size_t)s->p.repeat_last_n)
		m = (size_t)s->p.repeat_last_n;
	if (m > s->seen_cap) {
		int32_t *p = realloc(s->seen, m * sizeof(*p));
		if (!p)
			return -ENOMEM;
		s->seen = p;
		s->seen_cap = m;
	}
	memcpy(s->seen, recent + n_recent - m, m * sizeof(*s->seen));
	qsort(s->seen, m, sizeof(*s->seen), cmp_id);
	for (size_t i = 0; i < m; i++) {
		int32_t id = s->seen[i];
		if (id < 0 || id >= n_vocab || (u && s->seen[u - 1] == id))
			continue;
		s->seen[u++] = id;
		if (logits[id] > 0)
			logits[id] /= s->p.repeat_penalty;
		else
			logits[id] *= s->p.repeat_penalty;
	}
	return 0;
}

static bool cand_less(const cand *a, const cand *b)
{
	return a->logit < b->logit || (a->logit == b->logit && a->id > b->id);
}

static void sift_down(cand *h, size_t n, size_t i)
{
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			return;
		if (c + 1 < n && cand_less(&h[c + 1], &h[c]))
			c++;
		if (!cand_less(&h[c], &h[i]))
			return;
		cand t = h[i];
		h[i] = h[c];
		h[c] = t;
		i = c;
	}
}

/* Keeps the k best of c[0..n) in c[0..k), sorted best first. */
static size_t top_k(cand *c, size_t n, size_t k)
{
	for (size_t i = k / 2; i-- > 0;)
		sift_down(c, k, i);
	for (size_t i = k; i < n; i++) {
		if (cand_less(&c[0], &c[i])) {
			c[0] = c[i];
			sift_down(c, k, 0);
		}
	}
	qsort(c, k, sizeof(*c), cmp_cand_desc);
	return k;
}

/* Moves candidates with p >= tau to the front; returns how many. */
static size_t partition_above(cand *c, size_t n, float tau)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (c[i].p >= tau) {
			cand t = c[k];
			c[k++] = c[i];
			c[i] = t;
		}
	}
	return k;
}

/* Smallest best-first prefix holding top_p of the mass (total sum). */
static size_t top_p(cand *c, size_t n, bool sorted, double sum, float p)
{
	static const float taus[] = { 1e-2f, 1e-4f, 1e-7f, 0.0f };
	for (size_t t = 0; t < sizeof(taus) / sizeof(taus[0]); t++) {
		size_t k = sorted ? n : partition_above(c, n, taus[t]);
		double acc = 0;
		if (!sorted)
			qsort(c, k, sizeof(*c), cmp_cand_desc);
		for (size_t i = 0; i < k; i++) {
			acc += c[i].p;
			if (acc >= p * sum)
				return i + 1;
		}
		if (sorted || k == n)
			return k;
	}
	return n;
}

int32_t sampler_sample(sampler *s, float *logits, int n_vocab,
		       const int32_t *recent, size_t n_recent)
{
	size_t n = (size_t)n_vocab, k;
	float inv_t, max = -INFINITY;
	double sum = 0, u;
	bool sorted = false;
	int rc;

	if (!s || !logits || n_vocab <= 0)
		return -EINVAL;
	if ((rc = penalize(s, logits, n_vocab, recent, n_recent)))
		return rc;
	if (s->p.temperature <= 0)
		return vmath_argmax(logits, n_vocab);
	if (n > s->c_cap) {
		cand *c = realloc(s->c, n * sizeof(*c));
		if (!c)
			return -ENOMEM;
		s->c = c;
		s->c_cap = n;
	}
	inv_t = 1.0f / s->p.temperature;
	for (size_t i = 0; i < n; i++) {
		float l = isnan(logits[i]) ? -INFINITY : logits[i] * inv_t;
		s->c[i] = (cand){ l, 0, (int32_t)i };
		if (l > max)
			max = l;
	}
	if (isinf(max))
		return vmath_argmax(logits, n_vocab);
	k = n;
	if (s->p.top_k > 0 && (size_t)s->p.top_k < n) {
		k = top_k(s->c, n, (size_t)s->p.top_k);
		sorted = true;
	}
	for (size_t i = 0; i < k; i++) {
		s->c[i].p = expf(s->c[i].logit - max);
		sum += s->c[i].p;
	}
	if (s->p.top_p < 1.0f) {
		k = top_p(s->c, k, sorted, sum, s->p.top_p);
		sum = 0;
		for (size_t i = 0; i < k; i++)
			sum += s->c[i].p;
	}
	if (s->p.min_p > 0.0f) {
		/* the best candidate has p == 1 */
		k = partition_above(s->c, k, s->p.min_p);
		sum = 0;
		for (size_t i = 0; i < k; i++)
			sum += s->c[i].p;
	}
	u = next_unit(s) * sum;
	for (size_t i = 0; i < k; i++) {
		u -= s->c[i].p;
		if (u < 0)
			return s->c[i].id;
	}
	return s->c[k - 1].id;
}
