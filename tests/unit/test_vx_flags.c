/* Unit tests for common/vx_flags.c: defaults, environment, argv, bounds. */
#include "../../common/vx_flags.h"
#include "vx_test.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

typedef struct opts {
	int port;
	double speed;
	bool verbose;
	const char *voice;
} opts;

static int parse(opts *o, int argc, char **argv)
{
	const vx_flag flags[] = {
		{ "port", VX_FLAG_INT, &o->port, "3002", 1, 65535, "port" },
		{ "speed", VX_FLAG_DOUBLE, &o->speed, "1.0", 0.25, 4, "speed" },
		{ "verbose", VX_FLAG_BOOL, &o->verbose, NULL, 0, 0, "chatty" },
		{ "voice", VX_FLAG_STR, &o->voice, "slt", 0, 0, "voice" },
	};
	return vx_flags_parse(flags, 4, "test", argc, argv);
}

VX_TEST(defaults_then_environment_then_argv)
{
	opts o = {0};
	char *none[] = { "prog" };
	VX_CHECK_INT(parse(&o, 1, none), 0);
	VX_CHECK_INT(o.port, 3002);
	VX_CHECK_STR(o.voice, "slt");
	VX_CHECK(!o.verbose);
	setenv("VOXLINE_TEST_PORT", "4000", 1);
	setenv("VOXLINE_TEST_VOICE", "kal", 1);
	char *args[] = { "prog", "--port=5000", "--verbose", "--speed", "2.5" };
	VX_CHECK_INT(parse(&o, 5, args), 0);
	VX_CHECK_INT(o.port, 5000);          /* argv beats the environment */
	VX_CHECK_STR(o.voice, "kal");        /* environment beats the default */
	VX_CHECK(o.verbose);
	VX_CHECK(o.speed == 2.5);
	unsetenv("VOXLINE_TEST_PORT");
	unsetenv("VOXLINE_TEST_VOICE");
}

VX_TEST(bad_values_and_unknown_flags_fail)
{
	opts o = {0};
	char *range[] = { "prog", "--port", "70000" };
	VX_CHECK_INT(parse(&o, 3, range), -EINVAL);
	char *junk[] = { "prog", "--speed", "fast" };
	VX_CHECK_INT(parse(&o, 3, junk), -EINVAL);
	char *unknown[] = { "prog", "--nope" };
	VX_CHECK_INT(parse(&o, 2, unknown), -EINVAL);
	char *missing[] = { "prog", "--voice" };
	VX_CHECK_INT(parse(&o, 2, missing), -EINVAL);
}

VX_TEST_MAIN(defaults_then_environment_then_argv,
	     bad_values_and_unknown_flags_fail)
