/* vx_daemon.c - shared daemon options; see vx_daemon.h. */
#include "vx_daemon.h"

#include <errno.h>
#include <stdio.h>

#include "vx_log.h"

int vx_daemon_init(const vx_daemon_opts *o, const char *service)
{
	int level;
	if (vx_log_level_parse(o->log_level, &level) < 0) {
		fprintf(stderr, "--log-level must be debug, info, warn or error\n");
		return -EINVAL;
	}
	vx_log_init(service, level);
	return 0;
}

void vx_daemon_server_config(const vx_daemon_opts *o, vx_server_config *cfg)
{
	cfg->host = o->host;
	cfg->port = o->port;
	cfg->api_key = o->api_key;
	cfg->max_body = (size_t)o->max_body_mb * 1024 * 1024;
	cfg->drain_timeout_s = o->drain_s;
	cfg->max_connections = o->max_connections;
	cfg->request_timeout_s = o->request_timeout_s;
	cfg->drain_delay_s = o->drain_delay_s ? o->drain_delay_s : -1;
	cfg->head_timeout_ms = o->head_timeout_s * 1000;
	cfg->idle_timeout_s = o->idle_timeout_s;
	cfg->ws_config_timeout_ms = o->ws_config_timeout_s * 1000;
	cfg->io_threads = o->io_threads;
	cfg->debug_freeze = o->debug_freeze;
}
