/*
 * vx_testproc.h - a helper server for a unit test: a child process (e.g. a
 * Python fake upstream started with "--port 0") whose first stdout line
 * names the port it chose ("PORT 40123" or "40123"). The child dies with the
 * test (PR_SET_PDEATHSIG) even if the test crashes. Its stdin is a pipe
 * held by the test and closed on stop, for servers that also stop when
 * their stdin ends.
 *
 *     static vx_testproc up;
 *     char *argv[] = { "/usr/bin/python3", "tests/x.py", "--port", "0", NULL };
 *     if (vx_testproc_start(&up, argv) == 0) use(up.port);
 *     vx_testproc_stop(&up);
 */
#ifndef VX_TESTPROC_H
#define VX_TESTPROC_H

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define VX_TESTPROC_START_MS 10000   /* time allowed to print the port */

typedef struct vx_testproc {
	pid_t pid;      /* 0 when not running */
	int port;
	int stdin_fd;   /* our end of the child's stdin, -1 when closed */
} vx_testproc;

static inline void vx_testproc_stop(vx_testproc *p)
{
	if (p->pid > 0) {
		close(p->stdin_fd);
		kill(p->pid, SIGTERM);
		waitpid(p->pid, NULL, 0);
	}
	p->pid = 0;
	p->stdin_fd = -1;
}

/* 0 once the child has printed its port; -EIO (child stopped) otherwise. */
static inline int vx_testproc_start(vx_testproc *p, char *const argv[])
{
	int in[2], out[2];
	char line[64] = "";
	size_t len = 0;

	if (pipe(in) < 0)
		return -errno;
	if (pipe(out) < 0) {
		close(in[0]);
		close(in[1]);
		return -errno;
	}
	p->port = 0;
	p->pid = fork();
	if (p->pid < 0) {
		close(in[0]); close(in[1]); close(out[0]); close(out[1]);
		return -errno;
	}
	if (p->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[0]); close(in[1]); close(out[0]); close(out[1]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	p->stdin_fd = in[1];
	while (len + 1 < sizeof(line) && !strchr(line, '\n')) {
		struct pollfd pfd = { .fd = out[0], .events = POLLIN };
		if (poll(&pfd, 1, VX_TESTPROC_START_MS) <= 0)
			break;
		ssize_t k = read(out[0], line + len, sizeof(line) - 1 - len);
		if (k <= 0)
			break;
		len += (size_t)k;
		line[len] = '\0';
	}
	close(out[0]);
	const char *digits = line + strcspn(line, "0123456789");
	p->port = atoi(digits);
	if (p->port <= 0) {
		fprintf(stderr, "%s %s did not start (got \"%s\")\n", argv[0],
			argv[1] ? argv[1] : "", line);
		vx_testproc_stop(p);
		return -EIO;
	}
	return 0;
}

#endif
