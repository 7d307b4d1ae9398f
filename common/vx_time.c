/* vx_time.c - monotonic clocks and timed condition waits; see vx_time.h. */
#include "vx_time.h"

#include <errno.h>

#define NS_PER_S 1000000000LL

double vx_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double vx_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void vx_deadline_ms(long long ms, struct timespec *ret)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (ms < 0)
		ms = 0;
	long long ns = (long long)ts.tv_nsec + ms % 1000 * 1000000LL;
	ts.tv_sec += (time_t)(ms / 1000 + ns / NS_PER_S);
	ts.tv_nsec = (long)(ns % NS_PER_S);
	*ret = ts;
}

int vx_cond_wait_ms(pthread_cond_t *cond, pthread_mutex_t *lock, long long ms)
{
	struct timespec ts;
	vx_deadline_ms(ms, &ts);
	int r = pthread_cond_timedwait(cond, lock, &ts);
	return r == ETIMEDOUT ? -ETIMEDOUT : 0;
}
