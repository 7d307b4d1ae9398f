/*
 * batch.h - continuous batching for the built-in GGUF engine: K sequences
 * share one model, each in its own KV slot, and one scheduler thread runs
 * every step as a single forward pass over all of them.
 *
 * A job is one generation: a tokenised prompt, a sampler and limits. It
 * waits in a FIFO queue until a slot is free, then is bound to the free
 * slot whose cached tokens share the longest prefix with its prompt (the
 * least recently used slot when none does), so the next turn of a
 * conversation only runs its new tokens. Each step takes the decode token
 * of every running job plus prefill chunks of new ones, MODEL_BATCH tokens
 * in all (model_step), then samples each sequence that finished a token
 * with its own sampler. A job ends on end-of-generation, max_tokens, the
 * context, its cancel flag, batch_job_stop or its deadline; its slot is
 * free for the next job at once and keeps its tokens for reuse.
 *
 * Threads: batch_submit / batch_next / batch_job_stop / batch_job_end are
 * called by the requesting thread (any number at once); the model, the
 * slots and every job's sampler are only touched by the scheduler thread.
 * Sampled ids go to the requester through the job (a slow client never
 * holds up the batch).
 *
 *     batch *s; batch_new(m, tk, warm_fn, arg, &s);
 *     batch_job *j; batch_submit(s, &(batch_req){ ids, n, smp, 100 }, &j);
 *     while ((n = batch_next(s, j, out, 16)) > 0) use(out, n);
 *     batch_result r; batch_job_end(s, j, &r); batch_free(s);
 */
#ifndef VX_GGUF_BATCH_H
#define VX_GGUF_BATCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "model.h"
#include "sampler.h"
#include "tokenizer.h"

typedef struct batch batch;
typedef struct batch_job batch_job;

typedef struct batch_req {
	const int32_t *prompt;      /* (n_prompt) ids; the caller keeps them until batch_job_end */
	int n_prompt;               /* 1..n_ctx-1 */
	sampler *smp;               /* the caller's; used only by the scheduler until the end */
	int max_tokens;             /* > 0 */
	const atomic_bool *cancel;  /* may be NULL */
	int timeout_ms;             /* whole job; 0 = none */
} batch_req;

typedef struct batch_result {
	int rc;                     /* 0, -ECANCELED, -ETIMEDOUT or the model's error */
	bool eog;                   /* ended on an end-of-generation token ("stop") */
	int n_gen;                  /* tokens sampled (the eog not counted) */
	int n_cached;               /* prompt tokens whose K/V the slot already had */
	int slot;                   /* slot it ran in, -1 when it never got one */
} batch_result;

/* Starts the scheduler thread over m's slots; warm(arg) (may be NULL)
 * runs on it first, before any job. tk names the end-of-generation ids.
 * Caller owns *ret; m and tk must outlive it. */
int batch_new(model *m, const tok *tk, void (*warm)(void *), void *arg, batch **ret);
/* Stops the thread, ending queued and running jobs (-ECANCELED); their
 * batch_job_end must come before (the engine quiesces first). Accepts NULL. */
void batch_free(batch *s);

/* Queues a job; -EINVAL for a bad request, -ESHUTDOWN when stopping. */
int batch_submit(batch *s, const batch_req *r, batch_job **ret);
/* Waits for sampled ids: copies up to max into out and returns how many,
 * 0 once the job has ended and all were taken. */
int batch_next(batch *s, batch_job *j, int32_t *out, int max);
/* Asks the job to end (its slot is freed by the next step). */
void batch_job_stop(batch *s, batch_job *j);
/* Stops the job if still running, waits until the scheduler let go of it,
 * fills ret and frees j. */
void batch_job_end(batch *s, batch_job *j, batch_result *ret);

/* Slots, and how many hold a running job now. */
int batch_slots(const batch *s);
int batch_busy(batch *s);

#endif
