/* Unit tests of vx_engine: lookup by name and alias, the default, and the
 * message for an unknown name. A made-up table: no engine is linked. */
#include <errno.h>
#include <string.h>

#include "vx_engine.h"
#include "vx_test.h"

typedef struct fake_ops {
	VX_ENGINE_HEAD;
	int id;
} fake_ops;

static const fake_ops fake_a = { .name = "alpha", .id = 1 };
static const fake_ops fake_b = { .name = "beta-ng", .aliases = "beta b2",
				 .flags = VX_ENGINE_REMOTE, .id = 2 };
static const fake_ops fake_c = { .name = "gamma", .languages = "en",
				 .flags = VX_ENGINE_STREAMING, .id = 3 };
static const fake_ops *const fake_table[] = { &fake_a, &fake_b, &fake_c, NULL };

static const vx_engine *fake_at(size_t i)
{
	return fake_table[i] ? &fake_table[i]->engine : NULL;
}

static const vx_engine *empty_at(size_t i)
{
	(void)i;
	return NULL;
}

/* The id of the engine found for name, 0 when none. */
static int find_id(const char *name)
{
	const vx_engine *e = NULL;

	if (vx_engine_find(fake_at, name, &e) < 0)
		return 0;
	return ((const fake_ops *)e)->id;
}

VX_TEST(head_fields_and_engine_view_are_the_same)
{
	VX_CHECK_STR(fake_b.engine.name, "beta-ng");
	VX_CHECK_STR(fake_b.aliases, "beta b2");
	VX_CHECK(fake_b.engine.flags == VX_ENGINE_REMOTE);
	VX_CHECK((const void *)&fake_b.engine == (const void *)&fake_b);
}

VX_TEST(find_by_name)
{
	VX_CHECK_INT(find_id("alpha"), 1);
	VX_CHECK_INT(find_id("beta-ng"), 2);
	VX_CHECK_INT(find_id("gamma"), 3);
}

VX_TEST(find_by_alias)
{
	VX_CHECK_INT(find_id("beta"), 2);
	VX_CHECK_INT(find_id("b2"), 2);
}

VX_TEST(find_ignores_case)
{
	VX_CHECK_INT(find_id("ALPHA"), 1);
	VX_CHECK_INT(find_id("Beta"), 2);
}

VX_TEST(null_or_empty_is_the_first)
{
	VX_CHECK_INT(find_id(NULL), 1);
	VX_CHECK_INT(find_id(""), 1);
}

VX_TEST(unknown_and_partial_names_are_enoent)
{
	const vx_engine *e = &fake_a.engine;

	VX_CHECK_INT(vx_engine_find(fake_at, "delta", &e), -ENOENT);
	VX_CHECK(e == &fake_a.engine);   /* untouched */
	VX_CHECK_INT(find_id("bet"), 0);     /* a prefix of an alias */
	VX_CHECK_INT(find_id("beta b2"), 0); /* the alias list itself */
	VX_CHECK_INT(find_id("alph"), 0);
	VX_CHECK_INT(vx_engine_find(empty_at, NULL, &e), -ENOENT);
}

VX_TEST(unknown_message_lists_every_engine_and_alias)
{
	char buf[256];

	VX_CHECK_STR(vx_engine_unknown(fake_at, "delta", buf, sizeof(buf)),
		     "unknown engine 'delta'; known: alpha, beta-ng (or beta b2), gamma");
}

VX_TEST(unknown_message_is_cut_to_the_buffer)
{
	char buf[20];

	vx_engine_unknown(fake_at, "delta", buf, sizeof(buf));
	VX_CHECK_INT((int)strlen(buf), 19);
	VX_CHECK(!strncmp(buf, "unknown engine 'del", 19));
}

VX_TEST(is_matches_name_and_aliases_only)
{
	VX_CHECK(vx_engine_is(&fake_b.engine, "b2"));
	VX_CHECK(!vx_engine_is(&fake_b.engine, "alpha"));
	VX_CHECK(!vx_engine_is(&fake_b.engine, NULL));
	VX_CHECK(!vx_engine_is(NULL, "alpha"));
}

VX_TEST_MAIN(head_fields_and_engine_view_are_the_same,
	     find_by_name,
	     find_by_alias,
	     find_ignores_case,
	     null_or_empty_is_the_first,
	     unknown_and_partial_names_are_enoent,
	     unknown_message_lists_every_engine_and_alias,
	     unknown_message_is_cut_to_the_buffer,
	     is_matches_name_and_aliases_only)
