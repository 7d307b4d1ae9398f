/*
 * vx_pool.h - a fixed pool of worker threads with a bounded queue.
 *
 * Admission control for engine work: vx_pool_submit either queues the job
 * (at most `queue_max` waiting beyond the `workers` running) or refuses it at
 * once with -EAGAIN, which the HTTP layer answers with 503 + Retry-After.
 * Nothing ever queues without bound. Thread-safe. Jobs must not block
 * forever (they get cancel flags and deadlines from their owners).
 *
 *     vx_pool *p; vx_pool_new(4, 8, &p);
 *     if (vx_pool_submit(p, run, arg) == -EAGAIN) answer_503();
 *     vx_pool_free(p);   // runs what is queued, then joins
 */
#ifndef VX_POOL_H
#define VX_POOL_H

#include <stddef.h>

typedef struct vx_pool vx_pool;
typedef void (*vx_pool_fn)(void *arg);

int vx_pool_new(int workers, int queue_max, vx_pool **ret);
/* Finishes queued jobs, joins the workers. Accepts NULL. */
void vx_pool_free(vx_pool *p);
/* 0 when queued, -EAGAIN when the pool is full, -ESHUTDOWN when stopping. */
int vx_pool_submit(vx_pool *p, vx_pool_fn fn, void *arg);

/* Called by a job (on its worker thread) once its answer is made: its place
 * counts as free from then on, so a client that has its answer and sends
 * the next request is not refused while the worker finishes up. Does
 * nothing off a worker thread or a second time; the worker calls it after
 * every job. */
void vx_pool_job_done(void);

typedef struct vx_pool_stats {
	int workers;      /* threads */
	int busy;         /* jobs running */
	int queued;       /* jobs waiting */
	int queue_max;    /* waiting jobs allowed */
	unsigned long long rejected;   /* submits refused with -EAGAIN */
	unsigned long long completed;  /* jobs finished */
} vx_pool_stats;

void vx_pool_get_stats(vx_pool *p, vx_pool_stats *ret);

#endif
