/*
 * mhd_bare.c - the anchor of the serving-core benchmark: libmicrohttpd on
 * its own answering every request 200 with a small JSON body, in its
 * fastest general mode (epoll, a pool of 2 internal threads). Prints its
 * port, serves until SIGTERM/SIGINT.
 */
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char body[] = "{\"status\":\"ok\"}\n";

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn,
			      const char *url, const char *method,
			      const char *version, const char *upload,
			      size_t *upload_size, void **con_cls)
{
	(void)cls; (void)url; (void)method; (void)version; (void)upload;
	(void)upload_size; (void)con_cls;
	struct MHD_Response *r = MHD_create_response_from_buffer(
		sizeof(body) - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(r, "Content-Type", "application/json");
	enum MHD_Result ret = MHD_queue_response(conn, 200, r);
	MHD_destroy_response(r);
	return ret;
}

/* TCP_NODELAY, as voxline sets it: without it small keep-alive answers
 * wait on delayed ACKs and the anchor measures Nagle, not MHD. */
static void on_connection(void *cls, struct MHD_Connection *conn,
			  void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	(void)cls; (void)socket_context;
	if (toe != MHD_CONNECTION_NOTIFY_STARTED)
		return;
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	int one = 1;
	if (ci)
		setsockopt(ci->connect_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

/* argv[1]: "pool" (epoll, 2 threads; default), "epoll" (one thread) or
 * "thread" (a thread per connection). */
int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "pool";
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD, pool = 0;
	if (!strcmp(mode, "thread"))
		flags |= MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL;
	else
		flags |= MHD_USE_EPOLL | MHD_USE_TURBO;
	if (!strcmp(mode, "pool"))
		pool = 2;
	struct MHD_Daemon *d = MHD_start_daemon(
		flags, 0, NULL, NULL, answer, NULL,
		MHD_OPTION_THREAD_POOL_SIZE, pool,
		MHD_OPTION_CONNECTION_LIMIT, 20000u,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL, MHD_OPTION_END);
	if (!d)
		return 1;
	const union MHD_DaemonInfo *i = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	printf("%u\n", i ? i->port : 0);
	fflush(stdout);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	while (!stop)
		pause();
	MHD_stop_daemon(d);
	return 0;
}
