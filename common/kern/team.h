/*
 * team.h - a persistent team of worker threads for data-parallel loops.
 *
 * team_run(t, fn, arg, n) runs fn(arg, task, thread) for task 0..n-1 spread
 * over the team (the calling thread works too) and returns when all are
 * done. Tasks are handed out one at a time from an atomic counter, so make
 * them coarse (a block of rows), not per element. Workers spin briefly
 * after a run (decode issues hundreds of short runs per token) and then
 * sleep on a condition variable, so an idle team costs no CPU.
 *
 * Thread-safety: one team_run at a time per team (the model serialises);
 * fn must be safe to run concurrently for different tasks.
 *
 *     team *t; team_new(4, &t);
 *     team_run(t, rows_fn, &job, n_row_blocks);
 *     team_free(t);
 */
#ifndef TEAM_H
#define TEAM_H

#define TEAM_MAX_THREADS 256

typedef struct team team;
typedef void (*team_fn)(void *arg, int task, int thread);

/* n_threads counts the caller: n_threads - 1 workers are started. */
int team_new(int n_threads, team **ret);
void team_free(team *t);    /* accepts NULL; joins the workers */
void team_run(team *t, team_fn fn, void *arg, int n_tasks);
int team_size(const team *t);

#endif
