/*
 * vx_test.h - the unit-test harness: a few macros, no library.
 *
 * A test file defines cases with VX_TEST(name) { ... } and ends with
 * VX_TEST_MAIN(case1, case2, ...). Each case runs in order; a failed
 * VX_CHECK prints file:line and the expression and fails the case but the
 * run goes on. The program prints "N passed, N failed" and exits non-zero
 * when anything failed.
 *
 *     VX_TEST(base64_round_trips) { VX_CHECK_INT(dec(enc(x)), x); }
 *     VX_TEST_MAIN(base64_round_trips)
 */
#ifndef VX_TEST_H
#define VX_TEST_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int vx_test_case_failed;

#define VX_TEST(name) static void name(void)

#define VX_CHECK(expr)                                                       \
	do {                                                                 \
		if (!(expr)) {                                               \
			fprintf(stderr, "%s:%d: check failed: %s\n",         \
				__FILE__, __LINE__, #expr);                  \
			vx_test_case_failed = 1;                             \
		}                                                            \
	} while (0)

#define VX_CHECK_INT(got, want)                                              \
	do {                                                                 \
		long long vx_g_ = (long long)(got), vx_w_ = (long long)(want);\
		if (vx_g_ != vx_w_) {                                        \
			fprintf(stderr, "%s:%d: %s = %lld, want %lld\n",     \
				__FILE__, __LINE__, #got, vx_g_, vx_w_);     \
			vx_test_case_failed = 1;                             \
		}                                                            \
	} while (0)

#define VX_CHECK_STR(got, want)                                              \
	do {                                                                 \
		const char *vx_g_ = (got), *vx_w_ = (want);                  \
		if (!vx_g_ || strcmp(vx_g_, vx_w_) != 0) {                   \
			fprintf(stderr, "%s:%d: %s = \"%s\", want \"%s\"\n", \
				__FILE__, __LINE__, #got,                    \
				vx_g_ ? vx_g_ : "(null)", vx_w_);            \
			vx_test_case_failed = 1;                             \
		}                                                            \
	} while (0)

typedef void (*vx_test_fn)(void);

static inline int vx_test_run(const char *names, vx_test_fn *fns, int n)
{
	int passed = 0, failed = 0;
	char buf[4096];
	snprintf(buf, sizeof(buf), "%s", names);
	char *save = NULL, *name = strtok_r(buf, ", \t\n", &save);
	for (int i = 0; i < n; i++) {
		vx_test_case_failed = 0;
		fns[i]();
		printf("%s %s\n", vx_test_case_failed ? "FAIL" : "ok  ",
		       name ? name : "?");
		if (vx_test_case_failed)
			failed++;
		else
			passed++;
		name = strtok_r(NULL, ", \t\n", &save);
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

/* Runs this test program again in a child with env=1 set and arg as its
 * only argument (for code that reads a setting once per process, such as
 * which CPU kernels to use); true when the child exits 0. */
static inline bool vx_test_rerun(const char *env, const char *arg)
{
	pid_t pid = fork();
	if (pid == 0) {
		setenv(env, "1", 1);
		execl("/proc/self/exe", "vx_test_rerun", arg, (char *)NULL);
		_exit(127);
	}
	int status = 0;
	return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	       WEXITSTATUS(status) == 0;
}

#define VX_TEST_MAIN(...)                                                    \
	int main(void)                                                       \
	{                                                                    \
		vx_test_fn fns[] = { __VA_ARGS__ };                          \
		return vx_test_run(#__VA_ARGS__, fns,                        \
				   (int)(sizeof(fns) / sizeof(fns[0])));     \
	}

#endif
