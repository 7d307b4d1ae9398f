/* Unit tests for common/vx_pool.c: the bounded queue and admission control. */
#include "../../common/vx_pool.h"
#include "vx_test.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <unistd.h>

typedef struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool open;
	atomic_int ran;
} gate;

static void wait_gate(void *arg)
{
	gate *g = arg;
	pthread_mutex_lock(&g->lock);
	while (!g->open)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
	atomic_fetch_add(&g->ran, 1);
}

static void open_gate(gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->open = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

static void settle(vx_pool *p, int busy)
{
	vx_pool_stats st;
	for (int i = 0; i < 500; i++) {
		vx_pool_get_stats(p, &st);
		if (st.busy == busy)
			return;
		usleep(1000);
	}
}

VX_TEST(full_pool_refuses_at_once_and_recovers)
{
	gate g = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0 };
	vx_pool *p;
	VX_CHECK_INT(vx_pool_new(2, 1, &p), 0);
	VX_CHECK_INT(vx_pool_submit(p, wait_gate, &g), 0);
	VX_CHECK_INT(vx_pool_submit(p, wait_gate, &g), 0);
	settle(p, 2);
	VX_CHECK_INT(vx_pool_submit(p, wait_gate, &g), 0);        /* waits */
	VX_CHECK_INT(vx_pool_submit(p, wait_gate, &g), -EAGAIN);  /* refused */
	vx_pool_stats st;
	vx_pool_get_stats(p, &st);
	VX_CHECK_INT(st.busy, 2);
	VX_CHECK_INT(st.queued, 1);
	VX_CHECK_INT(st.rejected, 1);
	open_gate(&g);
	settle(p, 0);
	VX_CHECK_INT(vx_pool_submit(p, wait_gate, &g), 0);         /* room again */
	vx_pool_free(p);                                           /* runs what is queued */
	VX_CHECK_INT(atomic_load(&g.ran), 4);
}

VX_TEST(zero_queue_admits_only_the_workers)
{
	gate g = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0 };
	vx_pool *p;
	VX_CHECK_INT(vx_pool_new(1, 0, &p), 0);
	VX_CHECK_INT(vx_pool_submit(p, wait_gate, &g), 0);
	VX_CHECK_INT(vx_pool_submit(p, wait_gate, &g), -EAGAIN);
	open_gate(&g);
	vx_pool_free(p);
	VX_CHECK_INT(atomic_load(&g.ran), 1);
}

VX_TEST(bad_sizes_are_einval)
{
	vx_pool *p = NULL;
	VX_CHECK_INT(vx_pool_new(0, 1, &p), -EINVAL);
	VX_CHECK_INT(vx_pool_new(1, -1, &p), -EINVAL);
	VX_CHECK(p == NULL);
	vx_pool_free(NULL);
}

/* A job that has answered (vx_pool_job_done) and then waits: its place is
 * free, so with one worker and no queue a new job is admitted (it waits in
 * the ring for the worker) instead of refused. */
static void answer_then_wait(void *arg)
{
	vx_pool_job_done();
	vx_pool_job_done();   /* a second time does nothing */
	wait_gate(arg);
}

VX_TEST(an_answered_job_frees_its_place)
{
	gate g = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0 };
	vx_pool *p;
	vx_pool_job_done();   /* off a worker thread: nothing */
	VX_CHECK_INT(vx_pool_new(1, 0, &p), 0);
	VX_CHECK_INT(vx_pool_submit(p, answer_then_wait, &g), 0);
	vx_pool_stats st;
	for (int i = 0; i < 500; i++) {   /* until it has answered */
		vx_pool_get_stats(p, &st);
		if (st.completed)
			break;
		usleep(1000);
	}
	VX_CHECK_INT(st.busy, 0);
	VX_CHECK_INT(st.queued, 0);
	VX_CHECK_INT(st.completed, 1);
	VX_CHECK_INT(vx_pool_submit(p, wait_gate, &g), 0);         /* admitted, waits */
	VX_CHECK_INT(vx_pool_submit(p, wait_gate, &g), -EAGAIN);   /* the ring is full */
	open_gate(&g);
	vx_pool_free(p);
	VX_CHECK_INT(atomic_load(&g.ran), 2);
}

VX_TEST_MAIN(full_pool_refuses_at_once_and_recovers,
	     zero_queue_admits_only_the_workers, an_answered_job_frees_its_place,
	     bad_sizes_are_einval)
