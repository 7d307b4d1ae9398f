/*
 * test_team.c - common/kern/team: every task of every run runs exactly
 * once, and team_run returns only when they have all finished, over many
 * back-to-back runs whose task counts change (a worker still leaving the
 * last run must not take a task of the next one).
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "../../common/kern/team.h"
#include "vx_test.h"

#define MAX_TASKS 16
#define RUNS 200000

typedef struct run {
	atomic_int count[MAX_TASKS];
	atomic_int running;     /* tasks inside fn now */
} run;

static void count_task(void *arg, int task, int thread)
{
	(void)thread;
	run *r = arg;
	atomic_fetch_add(&r->running, 1);
	atomic_fetch_add(&r->count[task], 1);
	atomic_fetch_sub(&r->running, 1);
}

/* Runs RUNS runs of 2..MAX_TASKS tasks on a team of n threads; returns
 * how many runs went wrong (a task run twice or not at all, or a task
 * still running when team_run returned). */
static int bad_runs(int n)
{
	team *t;
	if (team_new(n, &t) < 0)
		return -1;
	int bad = 0;
	for (int i = 0; i < RUNS; i++) {
		run r;     /* on the stack, as the engines' jobs are */
		memset(&r, 0, sizeof(r));
		int n_tasks = 2 + (int)((i * 7u) % (MAX_TASKS - 1));
		team_run(t, count_task, &r, n_tasks);
		bool ok = atomic_load(&r.running) == 0;
		for (int k = 0; k < MAX_TASKS; k++)
			ok = ok && atomic_load(&r.count[k]) == (k < n_tasks);
		bad += !ok;
		memset(&r, 0xff, sizeof(r));    /* what a reused stack looks like */
	}
	team_free(t);
	return bad;
}

VX_TEST(every_task_runs_once_per_run_on_2_threads)
{
	int bad = bad_runs(2);
	printf("  %d of %d runs wrong\n", bad, RUNS);
	VX_CHECK(bad == 0);
}

VX_TEST(every_task_runs_once_per_run_on_4_threads)
{
	int bad = bad_runs(4);
	printf("  %d of %d runs wrong\n", bad, RUNS);
	VX_CHECK(bad == 0);
}

VX_TEST_MAIN(every_task_runs_once_per_run_on_2_threads, every_task_runs_once_per_run_on_4_threads)
