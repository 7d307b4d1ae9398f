/*
 * vx_time.h - clocks and timed waits, the one place that does timespec
 * arithmetic.
 *
 * vx_now / vx_now_ms read CLOCK_MONOTONIC: use them for durations and
 * deadlines (they never jump). vx_deadline_ms and vx_cond_wait_ms work on
 * CLOCK_REALTIME, the clock of a condition variable made with default
 * attributes (pthread_cond_init(&c, NULL)); a condition variable set to
 * CLOCK_MONOTONIC with pthread_condattr_setclock needs its own deadline.
 * All functions are thread-safe and allocate nothing.
 *
 *     double t0 = vx_now_ms();
 *     pthread_mutex_lock(&m); while (!done && vx_cond_wait_ms(&c, &m, 100) == 0) ; ...
 *     report(vx_now_ms() - t0);
 */
#ifndef VX_TIME_H
#define VX_TIME_H

#include <pthread.h>
#include <time.h>

/* Monotonic seconds since an arbitrary start. */
double vx_now(void);
/* Monotonic milliseconds (with fractions) since the same start. */
double vx_now_ms(void);
/* The CLOCK_REALTIME instant ms milliseconds from now (ms < 0 counts as
 * 0), normalised (0 <= tv_nsec < 1e9), for pthread_cond_timedwait. */
void vx_deadline_ms(long long ms, struct timespec *ret);
/* pthread_cond_timedwait for at most ms milliseconds on a default (REALTIME)
 * condition variable; lock held on entry and on return. 0 when woken
 * (perhaps spuriously: re-check the predicate), -ETIMEDOUT when the time
 * passed. */
int vx_cond_wait_ms(pthread_cond_t *cond, pthread_mutex_t *lock, long long ms);

#endif
