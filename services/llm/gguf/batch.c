/*
 * batch.c - the continuous-batching scheduler (see batch.h): a queue of
 * jobs, K slots with their cached tokens, and one thread that repeats
 * reap -> admit -> build a batch -> model_step -> sample -> publish.
 */
#include "batch.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct slot {
	int32_t *hist;              /* (n_ctx) ids whose K/V are in the slot */
	int n_hist;
	batch_job *job;             /* running there, or NULL */
	uint64_t used;              /* admission stamp, for least-recently-used */
} slot;

struct batch_job {
	/* the request, read-only after submit */
	const int32_t *prompt;
	int n_prompt, max_tokens;
	sampler *smp;
	const atomic_bool *cancel;
	double deadline;            /* monotonic ms, 0 = none */
	/* scheduler thread only */
	int n_fed;                  /* prompt ids in the slot */
	int32_t last;               /* sampled, not yet run */
	batch_job *next;            /* queue link */
	/* under batch.mu */
	int slot;                   /* -1 while queued */
	int32_t *gen;               /* (max_tokens) sampled ids */
	int n_gen, n_taken;
	bool stop;                  /* the requester asked to end */
	bool done;
	batch_result res;
	pthread_cond_t cv;          /* done or a new id */
};

struct batch {
	model *m;
	const tok *tk;
	int n_slots, n_vocab, n_ctx;
	slot *slots;
	float *logits;              /* (n_slots, n_vocab) */
	void (*warm)(void *);
	void *warm_arg;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;          /* a job arrived or wants to stop */
	batch_job *head, *tail;     /* queued jobs (under mu) */
	bool quit;                  /* under mu */
	uint64_t stamp;
	int rr;                     /* round-robin start for prefill chunks */
};

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Ends j with rc (under mu): the slot is free for the next job at once. */
static void job_finish(batch *s, batch_job *j, int rc, bool eog)
{
	if (j->done)
		return;
	if (j->slot >= 0)
		s->slots[j->slot].job = NULL;
	j->res.rc = rc;
	j->res.eog = eog;
	j->res.n_gen = j->n_gen;
	j->done = true;
	pthread_cond_broadcast(&j->cv);
}

/* Why j must end now (under mu), 0 when it may go on. */
static int job_check(const batch_job *j, double now)
{
	if (j->stop || (j->cancel && atomic_load(j->cancel)))
		return -ECANCELED;
	if (j->deadline > 0 && now > j->deadline)
		return -ETIMEDOUT;
	return 0;
}

/* Ends running and queued jobs that were cancelled or timed out. */
static void reap(batch *s)
{
	double now = now_ms();
	int rc;
	for (int i = 0; i < s->n_slots; i++) {
		batch_job *j = s->slots[i].job;
		if (j && (rc = job_check(j, now)) < 0)
			job_finish(s, j, rc, false);
	}
	batch_job **pp = &s->head;
	s->tail = NULL;
	while (*pp) {
		batch_job *j = *pp;
		if ((rc = job_check(j, now)) < 0) {
			*pp = j->next;
			job_finish(s, j, rc, false);
			continue;
		}
		s->tail = j;
		pp = &j->next;
	}
}

/* Tokens at the start of slot sl's cache that j's prompt repeats (at most
 * n_prompt - 1: the last prompt token always runs, for its logits) and
 * that the cache still holds all it needs to continue after. */
static int common_prefix(const batch *s, const slot *sl, const batch_job *j)
{
	int same = 0;
	while (same < sl->n_hist && same < j->n_prompt - 1 && sl->hist[same] == j->prompt[same])
		same++;
	return model_reusable(s->m, sl->n_hist, same);
}

/* The free slot for j: the one whose cached tokens j's prompt continues
 * (shares at least half of them) with the longest common prefix, else
 * the least recently used (empty ones first), so a new conversation that
 * merely shares a system prompt does not evict another's turns. -1 when
 * all are busy. */
static int pick_slot(const batch *s, const batch_job *j, int *ret_same)
{
	int best = -1, best_same = 0, lru = -1;
	for (int i = 0; i < s->n_slots; i++) {
		const slot *sl = &s->slots[i];
		if (sl->job)
			continue;
		if (lru < 0 || sl->used < s->slots[lru].used)
			lru = i;
		int same = common_prefix(s, sl, j);
		if (same > best_same && 2 * same >= sl->n_hist) {
			best = i;
			best_same = same;
		}
	}
	if (best < 0 && lru >= 0) {
		best = lru;
		best_same = common_prefix(s, &s->slots[lru], j);
	}
	*ret_same = best_same;
	return best;
}

/* Binds queued jobs, first come first served, to free slots. */
static void admit(batch *s)
{
	while (s->head) {
		batch_job *j = s->head;
		int same, best = pick_slot(s, j, &same);
		if (best < 0)
			return;
		s->head = j->next;
		if (!s->head)
			s->tail = NULL;
		slot *sl = &s->slots[best];
		sl->job = j;
		sl->n_hist = same;
		sl->used = ++s->stamp;
		j->slot = best;
		j->n_fed = same;
		j->res.n_cached = same;
		j->res.slot = best;
	}
}

/* The step's batch: every decoding job's token first, then prefill chunks
 * in round-robin order while MODEL_BATCH has room. */
static int build(batch *s, model_seq *seqs, batch_job **jobs)
{
	int n = 0, budget = MODEL_BATCH;
	for (int i = 0; i < s->n_slots && budget > 0; i++) {
		batch_job *j = s->slots[i].job;
		if (!j || j->n_fed < j->n_prompt)
			continue;
		seqs[n] = (model_seq){ .slot = i, .tokens = &j->last, .n = 1,
				       .pos = s->slots[i].n_hist, .want_logits = true,
				       .decode = true };
		jobs[n++] = j;
		budget--;
	}
	for (int k = 0; k < s->n_slots && budget > 0; k++) {
		int i = (s->rr + k) % s->n_slots;
		batch_job *j = s->slots[i].job;
		if (!j || j->n_fed >= j->n_prompt)
			continue;
		int c = j->n_prompt - j->n_fed;
		if (c > budget)
			c = budget;
		seqs[n] = (model_seq){ .slot = i, .tokens = j->prompt + j->n_fed, .n = c,
				       .pos = j->n_fed, .want_logits = j->n_fed + c == j->n_prompt };
		jobs[n++] = j;
		budget -= c;
	}
	s->rr = (s->rr + 1) % s->n_slots;
	return n;
}

/* After a step: the slots' tokens grow; sequences with logits sample
 * (outside the lock: samplers are the scheduler's while jobs run). */
static void advance(batch *s, const model_seq *seqs, batch_job **jobs, int n, int32_t *ids)
{
	int o = 0;
	for (int k = 0; k < n; k++) {
		const model_seq *q = &seqs[k];
		batch_job *j = jobs[k];
		slot *sl = &s->slots[q->slot];
		memcpy(sl->hist + q->pos, q->tokens, (size_t)q->n * sizeof(int32_t));
		sl->n_hist = q->pos + q->n;
		if (j->n_fed < j->n_prompt)
			j->n_fed += q->n;
		ids[k] = -1;
		if (q->want_logits)
			ids[k] = sampler_sample(j->smp, s->logits + (size_t)o++ * s->n_vocab,
						s->n_vocab, sl->hist, (size_t)sl->n_hist);
	}
}

/* Publishes the sampled ids and ends the jobs that are complete (under mu). */
static void publish(batch *s, const model_seq *seqs, batch_job **jobs, int n, const int32_t *ids)
{
	for (int k = 0; k < n; k++) {
		batch_job *j = jobs[k];
		if (!seqs[k].want_logits || j->done)
			continue;
		int32_t id = ids[k];
		if (id < 0) {
			job_finish(s, j, id, false);
		} else if (tok_is_eog(s->tk, id)) {
			job_finish(s, j, 0, true);
		} else {
			j->gen[j->n_gen++] = id;
			j->last = id;
			pthread_cond_broadcast(&j->cv);
			if (j->n_gen >= j->max_tokens || s->slots[j->slot].n_hist >= s->n_ctx)
				job_finish(s, j, 0, false);
		}
	}
}

static void *batch_main(void *arg)
{
	batch *s = arg;
	model_seq seqs[MODEL_BATCH];
	batch_job *jobs[MODEL_BATCH];
	int32_t ids[MODEL_BATCH];
	if (s->warm)
		s->warm(s->warm_arg);
	pthread_mutex_lock(&s->mu);
	while (!s->quit) {
		reap(s);
		admit(s);
		int n = build(s, seqs, jobs);
		if (n == 0) {
			pthread_cond_wait(&s->cv, &s->mu);
			continue;
		}
		pthread_mutex_unlock(&s->mu);
		int rc = model_step(s->m, seqs, n, s->logits);
		if (rc == 0)
			advance(s, seqs, jobs, n, ids);
		pthread_mutex_lock(&s->mu);
		if (rc < 0)
			for (int k = 0; k < n; k++)
				job_finish(s, jobs[k], rc, false);
		else
			publish(s, seqs, jobs, n, ids);
	}
	for (int i = 0; i < s->n_slots; i++)
		if (s->slots[i].job)
			job_finish(s, s->slots[i].job, -ECANCELED, false);
	while (s->head) {
		batch_job *j = s->head;
		s->head = j->next;
		job_finish(s, j, -ECANCELED, false);
	}
	s->tail = NULL;
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

int batch_new(model *m, const tok *tk, void (*warm)(void *), void *arg, batch **ret)
{
	const model_hparams *hp = model_get_hparams(m);
	batch *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->m = m;
	s->tk = tk;
	s->n_slots = model_n_slots(m);
	if (s->n_slots > MODEL_BATCH)   /* every decoding job fits one step */
		s->n_slots = MODEL_BATCH;
	s->n_vocab = hp->n_vocab;
	s->n_ctx = hp->n_ctx;
	s->warm = warm;
	s->warm_arg = arg;
	s->slots = calloc((size_t)s->n_slots, sizeof(slot));
	s->logits = malloc((size_t)s->n_slots * s->n_vocab * sizeof(float));
	int rc = -ENOMEM;
	if (!s->slots || !s->logits)
		goto out_free;
	for (int i = 0; i < s->n_slots; i++)
		if (!(s->slots[i].hist = malloc((size_t)s->n_ctx * sizeof(int32_t))))
			goto out_free;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	if (pthread_create(&s->thread, NULL, batch_main, s)) {
		rc = -EAGAIN;
		pthread_mutex_destroy(&s->mu);
		pthread_cond_destroy(&s->cv);
		goto out_free;
	}
	*ret = s;
	return 0;
out_free:
	if (s->slots)
		for (int i = 0; i < s->n_slots; i++)
			free(s->slots[i].hist);
	free(s->slots);
	free(s->logits);
	free(s);
	return rc;
}

void batch_free(batch *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->quit = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	for (int i = 0; i < s->n_slots; i++)
		free(s->slots[i].hist);
	free(s->slots);
	free(s->logits);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s);
}

int batch_submit(batch *s, const batch_req *r, batch_job **ret)
{
	if (!r->prompt || r->n_prompt <= 0 || r->n_prompt >= s->n_ctx || !r->smp ||
	    r->max_tokens <= 0)
		return -EINVAL;
	batch_job *j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	int cap = r->max_tokens < s->n_ctx ? r->max_tokens : s->n_ctx;
	if (!(j->gen = malloc((size_t)cap * sizeof(int32_t)))) {
		free(j);
		return -ENOMEM;
	}
	j->prompt = r->prompt;
	j->n_prompt = r->n_prompt;
	j->max_tokens = cap;
	j->smp = r->smp;
	j->cancel = r->cancel;
	j->deadline = r->timeout_ms > 0 ? now_ms() + r->timeout_ms : 0;
	j->slot = -1;
	j->res.slot = -1;
	pthread_cond_init(&j->cv, NULL);
	pthread_mutex_lock(&s->mu);
	if (s->quit) {
		pthread_mutex_unlock(&s->mu);
		pthread_cond_destroy(&j->cv);
		free(j->gen);
		free(j);
		return -ESHUTDOWN;
	}
	if (s->tail)
		s->tail->next = j;
	else
		s->head = j;
	s->tail = j;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	*ret = j;
	return 0;
}

int batch_next(batch *s, batch_job *j, int32_t *out, int max)
{
	pthread_mutex_lock(&s->mu);
	while (!j->done && j->n_taken == j->n_gen)
		pthread_cond_wait(&j->cv, &s->mu);
	int n = j->n_gen - j->n_taken;
	if (n > max)
		n = max;
	memcpy(out, j->gen + j->n_taken, (size_t)n * sizeof(int32_t));
	j->n_taken += n;
	pthread_mutex_unlock(&s->mu);
	return n;
}

void batch_job_stop(batch *s, batch_job *j)
{
	pthread_mutex_lock(&s->mu);
	j->stop = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

void batch_job_end(batch *s, batch_job *j, batch_result *ret)
{
	pthread_mutex_lock(&s->mu);
	j->stop = true;
	pthread_cond_signal(&s->cv);
	while (!j->done)
		pthread_cond_wait(&j->cv, &s->mu);
	*ret = j->res;
	pthread_mutex_unlock(&s->mu);
	pthread_cond_destroy(&j->cv);
	free(j->gen);
	free(j);
}

int batch_slots(const batch *s)
{
	return s->n_slots;
}

int batch_busy(batch *s)
{
	int n = 0;
	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < s->n_slots; i++)
		n += s->slots[i].job != NULL;
	pthread_mutex_unlock(&s->mu);
	return n;
}
