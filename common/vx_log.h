/*
 * vx_log.h - JSON-lines logging on stderr (journald and containers read it).
 *
 * One object a line: {"ts":"2026-11-21T10:00:00.123Z","level":"info",
 * "svc":"stt","req":"<request id>","msg":"..."}. The level and service name
 * are the only process globals in voxline (set once at start). Thread-safe:
 * each line is written with one write(2).
 *
 *     vx_log_init("stt", VX_LOG_INFO);
 *     vx_log_info(req_id, "transcribed %zu samples", n);
 */
#ifndef VX_LOG_H
#define VX_LOG_H

enum vx_log_level { VX_LOG_DEBUG = 0, VX_LOG_INFO, VX_LOG_WARN, VX_LOG_ERROR };

void vx_log_init(const char *service, int level);
/* "debug" | "info" | "warn" | "error"; -EINVAL otherwise. */
int vx_log_level_parse(const char *name, int *ret_level);

/* req may be NULL. */
void vx_log(int level, const char *req, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define vx_log_debug(req, ...) vx_log(VX_LOG_DEBUG, req, __VA_ARGS__)
#define vx_log_info(req, ...) vx_log(VX_LOG_INFO, req, __VA_ARGS__)
#define vx_log_warn(req, ...) vx_log(VX_LOG_WARN, req, __VA_ARGS__)
#define vx_log_error(req, ...) vx_log(VX_LOG_ERROR, req, __VA_ARGS__)

/* Logs at error level and exits with status 1. */
void vx_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
