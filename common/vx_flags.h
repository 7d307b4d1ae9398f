/*
 * vx_flags.h - command-line flags and environment variables from one table.
 *
 * A daemon describes its options as a vx_flag array (name, type, where to
 * store, default, bounds, help). vx_flags_parse applies, in order: the
 * defaults, the environment (VOXLINE_<SERVICE>_<NAME>, e.g. --max-tokens ->
 * VOXLINE_LLM_MAX_TOKENS), then argv (--name value or --name=value; a bool
 * flag alone means true). --help prints the table. Strings point into argv,
 * environ or the table's defaults: they live as long as the process.
 *
 *     static vx_flag flags[] = {
 *         { "port", VX_FLAG_INT, &cfg.port, "3002", 1, 65535, "TCP port" },
 *     };
 *     int r = vx_flags_parse(flags, N, "stt", argc, argv);   // 1: --help shown
 */
#ifndef VX_FLAGS_H
#define VX_FLAGS_H

#include <stddef.h>

typedef enum vx_flag_type {
	VX_FLAG_INT,     /* int *; min/max enforced */
	VX_FLAG_DOUBLE,  /* double *; min/max enforced */
	VX_FLAG_BOOL,    /* bool *; true/false/1/0/yes/no */
	VX_FLAG_STR,     /* const char **; empty default = NULL */
} vx_flag_type;

typedef struct vx_flag {
	const char *name;     /* without the leading "--" */
	vx_flag_type type;
	void *target;
	const char *def;      /* default as text; NULL or "" = none */
	double min, max;      /* bounds for numbers (ignored when min == max) */
	const char *help;
} vx_flag;

/* Returns 0 when parsed, 1 when --help or --version was printed (caller exits
 * 0), -EINVAL after printing the reason on stderr. */
int vx_flags_parse(const vx_flag *flags, size_t n, const char *service,
		   int argc, char **argv);

#endif
