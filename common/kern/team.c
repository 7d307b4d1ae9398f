/*
 * team.c - persistent worker team (see team.h): an atomic generation
 * counter starts a run, an atomic task counter hands out tasks, an atomic
 * done counter ends it.
 */
#include "team.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#define TEAM_SPIN 2000      /* polls of the generation before sleeping */
#define TEAM_WAIT_SPIN 1000 /* polls of the done count before yielding */

struct team {
	int n;                          /* threads incl. the caller */
	pthread_t *threads;
	int n_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	atomic_uint gen;                /* bumped per run */
	atomic_bool stop;
	/* the current run */
	team_fn fn;
	void *arg;
	atomic_int n_tasks;
	atomic_uint_fast64_t next;      /* generation << 32 | next task */
	atomic_int done;                /* tasks finished */
};

typedef struct worker_arg { team *t; int id; } worker_arg;

/* Takes tasks of run gen until none are left. A worker that wakes late
 * sees a newer generation in `next` and takes nothing. */
static void work(team *t, unsigned gen, int thread)
{
	for (;;) {
		uint64_t v = atomic_load_explicit(&t->next, memory_order_acquire);
		if ((unsigned)(v >> 32) != gen ||
		    (int)(uint32_t)v >= atomic_load_explicit(&t->n_tasks, memory_order_acquire))
			return;
		if (!atomic_compare_exchange_weak_explicit(&t->next, &v, v + 1,
							   memory_order_acq_rel,
							   memory_order_acquire))
			continue;
		t->fn(t->arg, (int)(uint32_t)v, thread);
		atomic_fetch_add_explicit(&t->done, 1, memory_order_release);
	}
}

static void *worker_main(void *p)
{
	worker_arg *wa = p;
	team *t = wa->t;
	int id = wa->id;
	free(wa);
	unsigned seen = atomic_load(&t->gen);
	for (;;) {
		unsigned g;
		int spins = 0;
		while ((g = atomic_load_explicit(&t->gen, memory_order_acquire)) == seen &&
		       !atomic_load_explicit(&t->stop, memory_order_relaxed)) {
			if (++spins < TEAM_SPIN) {
#if defined(__x86_64__)
				__builtin_ia32_pause();
#endif
				continue;
			}
			pthread_mutex_lock(&t->mu);
			while (atomic_load(&t->gen) == seen && !atomic_load(&t->stop))
				pthread_cond_wait(&t->cv, &t->mu);
			pthread_mutex_unlock(&t->mu);
		}
		if (atomic_load(&t->stop))
			return NULL;
		seen = g;
		work(t, g, id);
	}
}

int team_new(int n_threads, team **ret)
{
	if (n_threads < 1 || n_threads > TEAM_MAX_THREADS)
		return -EINVAL;
	team *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->n = n_threads;
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cv, NULL);
	t->threads = calloc((size_t)n_threads, sizeof(pthread_t));
	if (!t->threads)
		goto out_free_team;
	for (int i = 1; i < n_threads; i++) {
		worker_arg *wa = malloc(sizeof(*wa));
		if (!wa)
			goto out_free_team;
		wa->t = t;
		wa->id = i;
		if (pthread_create(&t->threads[t->n_started], NULL, worker_main, wa)) {
			free(wa);
			goto out_free_team;
		}
		t->n_started++;
	}
	*ret = t;
	return 0;
out_free_team:
	team_free(t);
	return -ENOMEM;
}

void team_free(team *t)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->mu);
	atomic_store(&t->stop, true);
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
	for (int i = 0; i < t->n_started; i++)
		pthread_join(t->threads[i], NULL);
	free(t->threads);
	pthread_cond_destroy(&t->cv);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

int team_size(const team *t)
{
	return t->n;
}

void team_run(team *t, team_fn fn, void *arg, int n_tasks)
{
	if (n_tasks <= 0)
		return;
	if (t->n_started == 0 || n_tasks == 1) {
		for (int i = 0; i < n_tasks; i++)
			fn(arg, i, 0);
		return;
	}
	unsigned gen = atomic_load(&t->gen) + 1;
	/* `next` first: a worker still in work() for the last run may have
	 * read its `next` (index = its task count) and be about to compare it
	 * with n_tasks. Were the new, larger count stored first, its CAS on the
	 * old `next` would win a task of this run with the last run's index
	 * and count it done, and this run could return while a task of it
	 * still runs (seen under ASan as a call through a stale fn). With
	 * `next` changed first, that CAS fails; n_tasks is stored with release
	 * so a worker that sees the new count also sees the new `next`. */
	atomic_store_explicit(&t->next, (uint64_t)gen << 32, memory_order_seq_cst);
	t->fn = fn;
	t->arg = arg;
	atomic_store(&t->done, 0);
	atomic_store_explicit(&t->n_tasks, n_tasks, memory_order_release);
	pthread_mutex_lock(&t->mu);
	atomic_store_explicit(&t->gen, gen, memory_order_release);
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
	work(t, gen, 0);
	/* a worker still has a task; when the CPU is oversubscribed it may be
	 * descheduled, so after a short spin give it the core */
	for (int spins = 0; atomic_load_explicit(&t->done, memory_order_acquire) < n_tasks;) {
		if (++spins > TEAM_WAIT_SPIN) {
			sched_yield();
			continue;
		}
#if defined(__x86_64__)
		__builtin_ia32_pause();
#endif
	}
}
