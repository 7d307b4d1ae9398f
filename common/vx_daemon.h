/*
 * vx_daemon.h - the options every voxline daemon has, as flag-table rows.
 *
 * A service embeds vx_daemon_opts in its config and puts
 * VX_DAEMON_FLAGS(&cfg.d, "3002", "4") at the top of its flag table, so
 * --host, --port, --workers, --queue, --log-level, --api-key, --max-body-mb
 * and --drain-s read the same everywhere. vx_daemon_server_config fills the
 * matching vx_server_config fields.
 *
 *     vx_flag flags[] = { VX_DAEMON_FLAGS(&cfg.d, "3001", "2"), { ...own... } };
 *     vx_flags_parse(...); vx_daemon_init(&cfg.d, "vad");
 */
#ifndef VX_DAEMON_H
#define VX_DAEMON_H

#include "vx_flags.h"
#include "vx_server.h"

typedef struct vx_daemon_opts {
	const char *host;
	int port;
	int workers;          /* engine worker threads */
	int queue;            /* requests allowed to wait for a worker */
	const char *log_level;
	const char *api_key;
	int max_body_mb;
	int drain_s;
	int drain_delay_s;
	int max_connections;
	int request_timeout_s;
	int head_timeout_s;
	int idle_timeout_s;
	int ws_config_timeout_s;
	int io_threads;
	bool debug_freeze;
} vx_daemon_opts;

#define VX_DAEMON_FLAGS(o, port_def, workers_def)                                      \
	{ "host", VX_FLAG_STR, &(o)->host, "127.0.0.1", 0, 0,                          \
	  "address to listen on (0.0.0.0 for all)" },                                  \
	{ "port", VX_FLAG_INT, &(o)->port, port_def, 0, 65535,                         \
	  "TCP port for HTTP and WebSocket (0 = any free port)" },                     \
	{ "workers", VX_FLAG_INT, &(o)->workers, workers_def, 1, 256,                  \
	  "engine worker threads" },                                                   \
	{ "queue", VX_FLAG_INT, &(o)->queue, "8", 0, 4096,                             \
	  "requests that may wait for a worker; past it 503 + Retry-After" },          \
	{ "max-connections", VX_FLAG_INT, &(o)->max_connections, "1024", 1, 100000,    \
	  "open HTTP and WebSocket connections allowed" },                             \
	{ "log-level", VX_FLAG_STR, &(o)->log_level, "info", 0, 0,                     \
	  "debug, info, warn or error" },                                              \
	{ "api-key", VX_FLAG_STR, &(o)->api_key, "", 0, 0,                             \
	  "require Authorization: Bearer KEY (health and metrics stay open)" },        \
	{ "max-body-mb", VX_FLAG_INT, &(o)->max_body_mb, "64", 1, 4096,                \
	  "largest request body, MiB (413 past it)" },                                 \
	{ "drain-s", VX_FLAG_INT, &(o)->drain_s, "15", 1, 3600,                        \
	  "on SIGTERM, seconds until exit: the delay below, then in-flight work" },   \
	{ "drain-delay-s", VX_FLAG_INT, &(o)->drain_delay_s, "5", 0, 3600,             \
	  "on SIGTERM, seconds /healthz says draining while still serving" },         \
	{ "request-timeout-s", VX_FLAG_INT, &(o)->request_timeout_s, "300", 1, 86400,  \
	  "deadline of every HTTP request, seconds (504 past it)" },                   \
	{ "head-timeout-s", VX_FLAG_INT, &(o)->head_timeout_s, "10", 1, 3600,          \
	  "time a client has to send a request head (408 past it)" },                  \
	{ "idle-timeout-s", VX_FLAG_INT, &(o)->idle_timeout_s, "60", 1, 86400,         \
	  "keep-alive connections idle this long are closed" },                        \
	{ "ws-config-timeout-s", VX_FLAG_INT, &(o)->ws_config_timeout_s, "10", 1, 3600,\
	  "time a WebSocket client has to send its config (close 1008 past it)" },    \
	{ "io-threads", VX_FLAG_INT, &(o)->io_threads, "2", 1, 64,                     \
	  "threads serving connections (each holds any number of them)" },            \
	{ "debug-freeze", VX_FLAG_BOOL, &(o)->debug_freeze, "false", 0, 0,            \
	  "testing only: SIGUSR2 freezes the serving loop (the watchdog then restarts)" }

/* Sets up logging from the options; returns -EINVAL for a bad level. */
int vx_daemon_init(const vx_daemon_opts *o, const char *service);
/* Copies host, port, limits and key into a server config. */
void vx_daemon_server_config(const vx_daemon_opts *o, vx_server_config *cfg);

#endif
