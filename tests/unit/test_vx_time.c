/* test_vx_time.c - the clocks move forward together, deadlines are
 * normalised, timed waits time out and wake. */
#include "vx_time.h"
#include "vx_test.h"

#include <errno.h>
#include <pthread.h>

VX_TEST(clocks_are_monotonic_and_agree)
{
	double s0 = vx_now(), m0 = vx_now_ms();
	struct timespec d = { 0, 20 * 1000000L };
	nanosleep(&d, NULL);
	double s1 = vx_now(), m1 = vx_now_ms();
	VX_CHECK(s1 > s0);
	VX_CHECK(m1 - m0 >= 19.0 && m1 - m0 < 2000.0);
	VX_CHECK(m0 / 1000.0 - s0 < 0.01 && m0 / 1000.0 - s0 > -0.01);
}

VX_TEST(deadline_is_normalised_and_ahead)
{
	static const long long cases[] = { 0, 1, 999, 1000, 1001, 2500, 86400000, -5 };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct timespec now, d;
		clock_gettime(CLOCK_REALTIME, &now);
		vx_deadline_ms(cases[i], &d);
		VX_CHECK(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L);
		long long want = cases[i] < 0 ? 0 : cases[i];
		long long got = ((long long)d.tv_sec - now.tv_sec) * 1000 +
				(d.tv_nsec - now.tv_nsec) / 1000000;
		VX_CHECK(got >= want && got <= want + 50);
	}
}

VX_TEST(cond_wait_times_out_after_about_ms)
{
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t c = PTHREAD_COND_INITIALIZER;
	pthread_mutex_lock(&m);
	double t0 = vx_now_ms();
	int r = vx_cond_wait_ms(&c, &m, 50);
	double el = vx_now_ms() - t0;
	pthread_mutex_unlock(&m);
	VX_CHECK_INT(r, -ETIMEDOUT);
	VX_CHECK(el >= 45.0 && el < 2000.0);
}

struct waker {
	pthread_mutex_t m;
	pthread_cond_t c;
	int done;
};

static void *wake_later(void *arg)
{
	struct waker *w = arg;
	struct timespec d = { 0, 20 * 1000000L };
	nanosleep(&d, NULL);
	pthread_mutex_lock(&w->m);
	w->done = 1;
	pthread_cond_signal(&w->c);
	pthread_mutex_unlock(&w->m);
	return NULL;
}

VX_TEST(cond_wait_returns_0_when_signalled)
{
	struct waker w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };
	pthread_t th;
	pthread_mutex_lock(&w.m);
	VX_CHECK_INT(pthread_create(&th, NULL, wake_later, &w), 0);
	double t0 = vx_now_ms();
	int r = 0;
	while (!w.done && r == 0)
		r = vx_cond_wait_ms(&w.c, &w.m, 5000);
	double el = vx_now_ms() - t0;
	pthread_mutex_unlock(&w.m);
	pthread_join(th, NULL);
	VX_CHECK_INT(r, 0);
	VX_CHECK_INT(w.done, 1);
	VX_CHECK(el < 4000.0);
}

VX_TEST_MAIN(clocks_are_monotonic_and_agree, deadline_is_normalised_and_ahead,
	     cond_wait_times_out_after_about_ms,
	     cond_wait_returns_0_when_signalled)
