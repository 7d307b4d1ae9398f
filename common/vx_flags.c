/* vx_flags.c - flags + environment from a table; see vx_flags.h. */
#include "vx_flags.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void env_name(const char *service, const char *flag, char *out,
		     size_t cap)
{
	size_t n = (size_t)snprintf(out, cap, "VOXLINE_%s_%s", service, flag);
	for (size_t i = 0; i < n && i < cap; i++)
		out[i] = out[i] == '-' ? '_' : (char)toupper((unsigned char)out[i]);
}

static int flag_set(const vx_flag *f, const char *val, const char *origin)
{
	char *end = NULL;
	switch (f->type) {
	case VX_FLAG_STR:
		*(const char **)f->target = (val && *val) ? val : NULL;
		return 0;
	case VX_FLAG_BOOL:
		if (!val || !strcmp(val, "1") || !strcasecmp(val, "true") ||
		    !strcasecmp(val, "yes") || !strcasecmp(val, "on")) {
			*(bool *)f->target = true;
			return 0;
		}
		if (!strcmp(val, "0") || !strcasecmp(val, "false") ||
		    !strcasecmp(val, "no") || !strcasecmp(val, "off")) {
			*(bool *)f->target = false;
			return 0;
		}
		break;
	case VX_FLAG_INT: {
		errno = 0;
		long v = strtol(val, &end, 10);
		if (errno || end == val || *end)
			break;
		if (f->min != f->max && (v < f->min || v > f->max)) {
			fprintf(stderr, "%s: --%s must be between %g and %g\n",
				origin, f->name, f->min, f->max);
			return -EINVAL;
		}
		*(int *)f->target = (int)v;
		return 0;
	}
	case VX_FLAG_DOUBLE: {
		errno = 0;
		double v = strtod(val, &end);
		if (errno || end == val || *end)
			break;
		if (f->min != f->max && (v < f->min || v > f->max)) {
			fprintf(stderr, "%s: --%s must be between %g and %g\n",
				origin, f->name, f->min, f->max);
			return -EINVAL;
		}
		*(double *)f->target = v;
		return 0;
	}
	}
	fprintf(stderr, "%s: invalid value for --%s: '%s'\n", origin, f->name,
		val ? val : "");
	return -EINVAL;
}

static void print_help(const vx_flag *flags, size_t n, const char *service,
		       const char *prog)
{
	printf("usage: %s [options]\n\noptions (each also read from the "
	       "environment variable shown):\n", prog);
	for (size_t i = 0; i < n; i++) {
		char env[96];
		env_name(service, flags[i].name, env, sizeof(env));
		const char *kind = flags[i].type == VX_FLAG_BOOL ? "" :
				   flags[i].type == VX_FLAG_STR ? " STR" : " N";
		printf("  --%s%s\n      %s", flags[i].name, kind, flags[i].help);
		if (flags[i].def && *flags[i].def)
			printf(" (default %s)", flags[i].def);
		printf("\n      env %s\n", env);
	}
	printf("  --help\n      show this help\n");
}

int vx_flags_parse(const vx_flag *flags, size_t n, const char *service,
		   int argc, char **argv)
{
	char svc[32];
	snprintf(svc, sizeof(svc), "%s", service);

	for (size_t i = 0; i < n; i++) {
		const char *d = flags[i].def;
		if (flags[i].type == VX_FLAG_BOOL && !d)
			d = "false";
		if ((d || flags[i].type == VX_FLAG_STR) &&
		    flag_set(&flags[i], d, "default") < 0)
			return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		char env[96];
		env_name(svc, flags[i].name, env, sizeof(env));
		const char *v = getenv(env);
		if (v && flag_set(&flags[i], v, env) < 0)
			return -EINVAL;
	}
	for (int a = 1; a < argc; a++) {
		const char *arg = argv[a];
		if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
			print_help(flags, n, svc, argv[0]);
			return 1;
		}
		if (strncmp(arg, "--", 2) != 0) {
			fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n",
				argv[0], arg);
			return -EINVAL;
		}
		const char *name = arg + 2, *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		const vx_flag *f = NULL;
		for (size_t i = 0; i < n; i++) {
			if (strlen(flags[i].name) == len &&
			    !strncmp(flags[i].name, name, len))
				f = &flags[i];
		}
		if (!f) {
			fprintf(stderr, "%s: unknown option '%s' (see --help)\n",
				argv[0], arg);
			return -EINVAL;
		}
		const char *val = eq ? eq + 1 : NULL;
		if (!val && f->type != VX_FLAG_BOOL) {
			if (a + 1 >= argc) {
				fprintf(stderr, "%s: --%s needs a value\n",
					argv[0], f->name);
				return -EINVAL;
			}
			val = argv[++a];
		}
		if (flag_set(f, val, argv[0]) < 0)
			return -EINVAL;
	}
	return 0;
}
