/* vx_pool.c - worker pool with a bounded queue; see vx_pool.h. */
#include "vx_pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

typedef struct pool_job {
	vx_pool_fn fn;
	void *arg;
} pool_job;

struct vx_pool {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pool_job *ring;          /* queue_max slots */
	int head, count;         /* ring position and fill */
	int queue_max;
	int n_threads, busy;
	bool stopping;
	unsigned long long rejected, completed;
	pthread_t *threads;
};

/* The pool whose job this thread runs, until vx_pool_job_done frees its place. */
static __thread vx_pool *tl_pool;

void vx_pool_job_done(void)
{
	vx_pool *p = tl_pool;
	if (!p)
		return;
	tl_pool = NULL;
	pthread_mutex_lock(&p->lock);
	p->busy--;
	p->completed++;
	pthread_mutex_unlock(&p->lock);
}

static void *pool_worker(void *arg)
{
	vx_pool *p = arg;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->count && !p->stopping)
			pthread_cond_wait(&p->wake, &p->lock);
		if (!p->count)
			break;
		pool_job job = p->ring[p->head];
		p->head = (p->head + 1) % p->queue_max;
		p->count--;
		p->busy++;
		pthread_mutex_unlock(&p->lock);
		tl_pool = p;
		job.fn(job.arg);
		vx_pool_job_done();   /* unless the job said so when it answered */
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int vx_pool_new(int workers, int queue_max, vx_pool **ret)
{
	if (workers < 1 || queue_max < 0)
		return -EINVAL;
	vx_pool *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	/* The ring also holds jobs that a free worker has not yet picked up,
	 * so it has one slot per worker on top of the waiting room. */
	p->queue_max = queue_max + workers;
	p->ring = calloc((size_t)p->queue_max, sizeof(*p->ring));
	p->threads = calloc((size_t)workers, sizeof(*p->threads));
	if (!p->ring || !p->threads)
		goto out_free;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->wake, NULL);
	for (int i = 0; i < workers; i++) {
		if (pthread_create(&p->threads[i], NULL, pool_worker, p) != 0)
			break;
		p->n_threads++;
	}
	if (p->n_threads != workers) {
		vx_pool_free(p);
		return -EAGAIN;
	}
	*ret = p;
	return 0;

out_free:
	free(p->ring);
	free(p->threads);
	free(p);
	return -ENOMEM;
}

void vx_pool_free(vx_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->lock);
	for (int i = 0; i < p->n_threads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->wake);
	free(p->ring);
	free(p->threads);
	free(p);
}

int vx_pool_submit(vx_pool *p, vx_pool_fn fn, void *arg)
{
	int r = 0;
	pthread_mutex_lock(&p->lock);
	if (p->stopping) {
		r = -ESHUTDOWN;
	} else if (p->busy + p->count >= p->queue_max) {
		p->rejected++;
		r = -EAGAIN;
	} else {
		int tail = (p->head + p->count) % p->queue_max;
		p->ring[tail] = (pool_job){ fn, arg };
		p->count++;
		pthread_cond_signal(&p->wake);
	}
	pthread_mutex_unlock(&p->lock);
	return r;
}

void vx_pool_get_stats(vx_pool *p, vx_pool_stats *ret)
{
	pthread_mutex_lock(&p->lock);
	ret->workers = p->n_threads;
	ret->busy = p->busy;
	ret->queued = p->count;
	ret->queue_max = p->queue_max - p->n_threads;
	ret->rejected = p->rejected;
	ret->completed = p->completed;
	pthread_mutex_unlock(&p->lock);
}
