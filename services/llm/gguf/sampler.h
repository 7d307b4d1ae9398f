/*
 * sampler.h - picks the next token from a model's logits.
 *
 * Order, as Hugging Face applies it: repetition penalty over the last
 * repeat_last_n tokens (a positive logit is divided by the penalty, a
 * negative one multiplied, once per distinct token), then greedy argmax if
 * temperature <= 0, else logits / temperature, top-k, top-p (smallest set of
 * most likely tokens whose probability reaches top_p), min-p (drop tokens
 * below min_p times the top probability), and a draw from what is left with
 * a seeded xoshiro256** generator: the same seed and inputs give the same
 * tokens. Off values: top_k <= 0, top_p >= 1, min_p <= 0,
 * repeat_penalty == 1 (or repeat_last_n <= 0).
 *
 * Cost: O(n_vocab) per token plus O(k log k) for the kept candidates; the
 * whole vocabulary is never sorted.
 *
 * Ownership: the sampler owns its scratch buffers (grown to n_vocab on the
 * first call). Not thread-safe: one sampler per generation.
 *
 *     sampler_params p; sampler_params_init(&p); p.temperature = 0.7f; p.seed = 42;
 *     sampler *s; sampler_new(&p, &s);
 *     int32_t id = sampler_sample(s, logits, n_vocab, recent, n_recent); sampler_free(s);
 */
#ifndef VX_GGUF_SAMPLER_H
#define VX_GGUF_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

typedef struct sampler sampler;

typedef struct sampler_params {
	float temperature;      /* 0 = greedy */
	float top_p;            /* (0, 1]; 1 = off */
	int top_k;              /* 0 = off */
	float min_p;            /* [0, 1); 0 = off */
	float repeat_penalty;   /* 1 = off; > 1 discourages repeats */
	int repeat_last_n;      /* tokens of history the penalty looks at */
	uint64_t seed;
} sampler_params;

/* Defaults: temperature 0.8, top_p 1, top_k 0, min_p 0, repeat_penalty 1,
 * repeat_last_n 64, seed 0. */
void sampler_params_init(sampler_params *p);

/* -EINVAL for NaN or negative values, -ENOMEM. */
int sampler_new(const sampler_params *p, sampler **ret);
void sampler_free(sampler *s);

/*
 * Returns the chosen token id in [0, n_vocab), or a negative errno
 * (-EINVAL for n_vocab <= 0, -ENOMEM). logits (n_vocab floats) are
 * modified. recent holds the ids generated or read so far, oldest first
 * (only the last repeat_last_n are used; ids out of range are ignored).
 */
int32_t sampler_sample(sampler *s, float *logits, int n_vocab,
		       const int32_t *recent, size_t n_recent);

#endif
