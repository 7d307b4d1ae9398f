/* vx_log.c - JSON-lines logging; see vx_log.h. */
#include "vx_log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vx_buf.h"

static const char *log_service = "voxline";
static int log_level = VX_LOG_INFO;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void vx_log_init(const char *service, int level)
{
	log_service = service;
	log_level = level;
}

int vx_log_level_parse(const char *name, int *ret_level)
{
	for (int i = 0; i < 4; i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*ret_level = i;
			return 0;
		}
	}
	return -EINVAL;
}

__attribute__((format(printf, 3, 0)))
static void log_write(int level, const char *req, const char *fmt, va_list ap)
{
	char msg[2048];
	vsnprintf(msg, sizeof(msg), fmt, ap);

	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char when[80];
	snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);

	vx_buf b = {0};
	vx_buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"svc\":", when,
		      level_names[level]);
	vx_buf_json_str(&b, log_service, strlen(log_service));
	if (req) {
		vx_buf_puts(&b, ",\"req\":");
		vx_buf_json_str(&b, req, strlen(req));
	}
	vx_buf_puts(&b, ",\"msg\":");
	vx_buf_json_str(&b, msg, strlen(msg));
	vx_buf_puts(&b, "}\n");
	if (b.data) {
		ssize_t r = write(STDERR_FILENO, b.data, b.len);
		(void)r;
	}
	vx_buf_release(&b);
}

void vx_log(int level, const char *req, const char *fmt, ...)
{
	if (level < log_level)
		return;
	va_list ap;
	va_start(ap, fmt);
	log_write(level, req, fmt, ap);
	va_end(ap);
}

void vx_fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_write(VX_LOG_ERROR, NULL, fmt, ap);
	va_end(ap);
	exit(1);
}
