/* test_orch_upstream.c - instance lists: parsing, round-robin over healthy
 * instances, retry elsewhere, and real /healthz probes against a tiny
 * server this test runs itself. */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "upstream.h"
#include "vx_test.h"

VX_TEST(parses_schemes_ports_and_paths)
{
	upstream *u;
	VX_CHECK_INT(upstream_new("stt", "http://127.0.0.1:3002, ws://h2:4000/x,h3",
				  "/ws/transcribe", &u), 0);
	VX_CHECK_INT(upstream_count(u), 3);
	char url[UPSTREAM_MAX_URL];
	VX_CHECK_INT(upstream_pick(u, -1, url, sizeof(url)), 0);
	VX_CHECK_STR(url, "ws://127.0.0.1:3002/ws/transcribe");
	VX_CHECK_INT(upstream_pick(u, -1, url, sizeof(url)), 1);
	VX_CHECK_STR(url, "ws://h2:4000/ws/transcribe");
	VX_CHECK_INT(upstream_pick(u, -1, url, sizeof(url)), 2);
	VX_CHECK_STR(url, "ws://h3:80/ws/transcribe");
	upstream_free(u);
}

VX_TEST(rejects_bad_lists)
{
	upstream *u;
	VX_CHECK_INT(upstream_new("x", "", "/p", &u), -EINVAL);
	VX_CHECK_INT(upstream_new("x", "ftp://a:1", "/p", &u), -EINVAL);
	VX_CHECK_INT(upstream_new("x", "a:99999", "/p", &u), -EINVAL);
	VX_CHECK_INT(upstream_new("x", "a:", "/p", &u), -EINVAL);
	VX_CHECK_INT(upstream_new("x", "a,,b", "/p", &u), -EINVAL);
}

VX_TEST(skips_unhealthy_and_avoids_the_failed_one)
{
	upstream *u;
	VX_CHECK_INT(upstream_new("tts", "a:1,b:2,c:3", "/ws", &u), 0);
	char url[UPSTREAM_MAX_URL];
	upstream_report(u, 1, false);
	VX_CHECK_INT(upstream_healthy(u), 2);
	for (int k = 0; k < 6; k++)
		VX_CHECK(upstream_pick(u, -1, url, sizeof(url)) != 1);
	/* The retry after instance 0 failed goes elsewhere. */
	for (int k = 0; k < 6; k++)
		VX_CHECK_INT(upstream_pick(u, 0, url, sizeof(url)), 2);
	/* None healthy: still an answer (a stale check must not lock out). */
	upstream_report(u, 0, false);
	upstream_report(u, 2, false);
	VX_CHECK(upstream_pick(u, -1, url, sizeof(url)) >= 0);
	upstream_report(u, 1, true);
	VX_CHECK_INT(upstream_pick(u, -1, url, sizeof(url)), 1);
	upstream_free(u);
}

/* A one-shot HTTP server answering every connection with `status`. */
struct fake { int fd, port; const char *status; int n; };

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	for (int i = 0; i < f->n; i++) {
		int c = accept(f->fd, NULL, NULL);
		if (c < 0)
			break;
		char buf[512];
		if (read(c, buf, sizeof(buf)) > 0) {
			char out[128];
			int n = snprintf(out, sizeof(out), "HTTP/1.1 %s\r\nContent-Length: 0\r\n\r\n",
					 f->status);
			if (write(c, out, (size_t)n) < 0)
				break;
		}
		close(c);
	}
	return NULL;
}

static int fake_start(struct fake *f, pthread_t *t)
{
	f->fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	if (bind(f->fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(f->fd, 4) < 0 ||
	    getsockname(f->fd, (struct sockaddr *)&a, &al) < 0)
		return -1;
	f->port = ntohs(a.sin_port);
	return pthread_create(t, NULL, fake_main, f);
}

VX_TEST(probe_tells_200_from_503_and_refused)
{
	struct fake ok = { .status = "200 OK", .n = 1 }, busy = { .status = "503 Busy", .n = 1 };
	pthread_t t1, t2;
	VX_CHECK_INT(fake_start(&ok, &t1), 0);
	VX_CHECK_INT(fake_start(&busy, &t2), 0);
	VX_CHECK_INT(upstream_probe("127.0.0.1", ok.port, 1000), 0);
	VX_CHECK_INT(upstream_probe("127.0.0.1", busy.port, 1000), -EHOSTDOWN);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	close(ok.fd);
	int port = busy.port;
	close(busy.fd);
	VX_CHECK_INT(upstream_probe("127.0.0.1", port, 1000), -ECONNREFUSED);
}

VX_TEST(probe_times_out_on_a_silent_server)
{
	struct fake f = { .n = 0 };
	pthread_t t;
	VX_CHECK_INT(fake_start(&f, &t), 0);   /* listens, never answers */
	pthread_join(t, NULL);
	VX_CHECK_INT(upstream_probe("127.0.0.1", f.port, 200), -ETIMEDOUT);
	close(f.fd);
}

VX_TEST(checker_marks_instances)
{
	struct fake ok = { .status = "200 OK", .n = 1 };
	pthread_t t;
	VX_CHECK_INT(fake_start(&ok, &t), 0);
	char list[64];
	int dead = 1;   /* port 1: nothing listens */
	snprintf(list, sizeof(list), "127.0.0.1:%d,127.0.0.1:%d", ok.port, dead);
	upstream *u;
	VX_CHECK_INT(upstream_new("vad", list, "/ws/detect", &u), 0);
	upstream_checker *hc;
	VX_CHECK_INT(upstream_checker_start(&u, 1, 60, &hc), 0);
	for (int i = 0; i < 100 && upstream_healthy(u) != 1; i++)
		usleep(10000);
	VX_CHECK_INT(upstream_healthy(u), 1);
	char url[UPSTREAM_MAX_URL];
	VX_CHECK_INT(upstream_pick(u, -1, url, sizeof(url)), 0);
	VX_CHECK_INT(upstream_pick(u, -1, url, sizeof(url)), 0);
	upstream_checker_stop(hc);
	pthread_join(t, NULL);
	close(ok.fd);
	upstream_free(u);
}

VX_TEST(stage_down_gets_a_hint_naming_it_and_how_to_start_it)
{
	upstream *u;
	VX_CHECK_INT(upstream_new("tts", "http://127.0.0.1:3003", "/ws/synthesize", &u), 0);
	VX_CHECK(upstream_up(u));
	char hint[UPSTREAM_MAX_HINT];
	vx_buf b = {0};
	upstream_stage_json(u, &b);
	VX_CHECK(strstr(b.data, "\"status\":\"ok\",\"url\":\"http://127.0.0.1:3003\""));
	VX_CHECK(!strstr(b.data, "hint"));
	upstream_report(u, 0, false);   /* a connect failed */
	VX_CHECK(!upstream_up(u));
	upstream_hint(u, hint, sizeof(hint));
	VX_CHECK(strstr(hint, "voxline-tts is not reachable at http://127.0.0.1:3003"));
	VX_CHECK(strstr(hint, "make run"));
	VX_CHECK(strstr(hint, "VOXLINE_ORCHESTRATOR_TTS_URL / --tts-url"));
	vx_buf_reset(&b);
	upstream_stage_json(u, &b);
	VX_CHECK(strstr(b.data, "\"status\":\"unavailable\""));
	VX_CHECK(strstr(b.data, "\"hint\":\"voxline-tts is not reachable"));
	vx_buf_release(&b);
	upstream_free(u);
}

VX_TEST_MAIN(parses_schemes_ports_and_paths,
	     stage_down_gets_a_hint_naming_it_and_how_to_start_it, rejects_bad_lists,
	     skips_unhealthy_and_avoids_the_failed_one,
	     probe_tells_200_from_503_and_refused, probe_times_out_on_a_silent_server,
	     checker_marks_instances)
