/* test_vx_json.c - defaults for absent/null fields, type and range checks,
 * ret_* left untouched on failure. */
#include "vx_json.h"
#include "vx_test.h"

#include <errno.h>

static cJSON *parse(const char *s)
{
	cJSON *j = cJSON_Parse(s);
	VX_CHECK(j != NULL);
	return j;
}

VX_TEST(absent_null_and_missing_object_give_default)
{
	cJSON *j = parse("{\"n\":null,\"other\":1}");
	int i = 0;
	double d = 0;
	bool b = false;
	const char *s = "x";
	VX_CHECK_INT(vx_json_int(j, "n", 7, 0, 10, &i), 0);
	VX_CHECK_INT(i, 7);
	VX_CHECK_INT(vx_json_int(j, "absent", 8, 0, 10, &i), 0);
	VX_CHECK_INT(i, 8);
	VX_CHECK_INT(vx_json_int(NULL, "n", 9, 0, 10, &i), 0);
	VX_CHECK_INT(i, 9);
	VX_CHECK_INT(vx_json_number(j, "n", 1.5, 0, 2, &d), 0);
	VX_CHECK(d == 1.5);
	VX_CHECK_INT(vx_json_bool(j, "n", true, &b), 0);
	VX_CHECK(b);
	VX_CHECK_INT(vx_json_string(j, "n", NULL, 10, &s), 0);
	VX_CHECK(s == NULL);
	VX_CHECK(vx_json_get(j, "n") == NULL);
	VX_CHECK(vx_json_get(j, "other") != NULL);
	cJSON_Delete(j);
}

VX_TEST(field_names_are_case_sensitive)
{
	cJSON *j = parse("{\"Rate\":5}");
	int i = 0;
	VX_CHECK_INT(vx_json_int(j, "rate", 1, 0, 10, &i), 0);
	VX_CHECK_INT(i, 1);
	cJSON_Delete(j);
}

VX_TEST(int_accepts_whole_numbers_within_limits)
{
	cJSON *j = parse("{\"lo\":8000,\"hi\":48000,\"f\":16000.0,\"neg\":-3}");
	int i = 0;
	VX_CHECK_INT(vx_json_int(j, "lo", 0, 8000, 48000, &i), 0);
	VX_CHECK_INT(i, 8000);
	VX_CHECK_INT(vx_json_int(j, "hi", 0, 8000, 48000, &i), 0);
	VX_CHECK_INT(i, 48000);
	VX_CHECK_INT(vx_json_int(j, "f", 0, 8000, 48000, &i), 0);
	VX_CHECK_INT(i, 16000);
	VX_CHECK_INT(vx_json_int(j, "neg", 0, -5, 5, &i), 0);
	VX_CHECK_INT(i, -3);
	cJSON_Delete(j);
}

VX_TEST(int_rejects_fraction_range_and_type_keeping_ret)
{
	cJSON *j = parse("{\"frac\":8000.5,\"big\":48001,\"small\":7999,"
			 "\"str\":\"16000\",\"t\":true,\"arr\":[1]}");
	static const char *const bad[] = { "frac", "big", "small", "str", "t", "arr" };
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		int i = 42;
		int r = vx_json_int(j, bad[k], 0, 8000, 48000, &i);
		VX_CHECK_INT(r, -EINVAL);
		VX_CHECK_INT(i, 42);
	}
	cJSON_Delete(j);
}

VX_TEST(number_checks_range_and_type)
{
	cJSON *j = parse("{\"t\":0.7,\"hot\":2.01,\"s\":\"1\"}");
	double d = -1;
	VX_CHECK_INT(vx_json_number(j, "t", 1, 0, 2, &d), 0);
	VX_CHECK(d == 0.7);
	d = -1;
	VX_CHECK_INT(vx_json_number(j, "hot", 1, 0, 2, &d), -EINVAL);
	VX_CHECK_INT(vx_json_number(j, "s", 1, 0, 2, &d), -EINVAL);
	VX_CHECK(d == -1);
	cJSON_Delete(j);
}

VX_TEST(bool_takes_only_true_or_false)
{
	cJSON *j = parse("{\"y\":true,\"n\":false,\"one\":1,\"s\":\"true\"}");
	bool b = false;
	VX_CHECK_INT(vx_json_bool(j, "y", false, &b), 0);
	VX_CHECK(b);
	VX_CHECK_INT(vx_json_bool(j, "n", true, &b), 0);
	VX_CHECK(!b);
	b = true;
	VX_CHECK_INT(vx_json_bool(j, "one", false, &b), -EINVAL);
	VX_CHECK_INT(vx_json_bool(j, "s", false, &b), -EINVAL);
	VX_CHECK(b);
	cJSON_Delete(j);
}

VX_TEST(string_checks_type_and_length)
{
	cJSON *j = parse("{\"v\":\"abcd\",\"e\":\"\",\"n\":5}");
	const char *s = NULL;
	VX_CHECK_INT(vx_json_string(j, "v", "def", 4, &s), 0);
	VX_CHECK_STR(s, "abcd");
	VX_CHECK_INT(vx_json_string(j, "e", "def", 4, &s), 0);
	VX_CHECK_STR(s, "");
	VX_CHECK_INT(vx_json_string(j, "absent", "def", 4, &s), 0);
	VX_CHECK_STR(s, "def");
	s = "keep";
	VX_CHECK_INT(vx_json_string(j, "v", "def", 3, &s), -EINVAL);
	VX_CHECK_INT(vx_json_string(j, "n", "def", 4, &s), -EINVAL);
	VX_CHECK_STR(s, "keep");
	cJSON_Delete(j);
}

VX_TEST(id_member_echoes_short_strings_and_numbers)
{
	cJSON *j = parse("{\"id\":\"a\\\"b\"}");
	char out[32] = "junk";
	VX_CHECK_INT(vx_json_id_member(j, 16, out, sizeof(out)), 0);
	VX_CHECK_STR(out, ",\"id\":\"a\\\"b\"");
	cJSON_Delete(j);
	j = parse("{\"id\":42}");
	VX_CHECK_INT(vx_json_id_member(j, 16, out, sizeof(out)), 0);
	VX_CHECK_STR(out, ",\"id\":42");
	cJSON_Delete(j);
	j = parse("{\"other\":1}");
	VX_CHECK_INT(vx_json_id_member(j, 16, out, sizeof(out)), 0);
	VX_CHECK_STR(out, "");
	cJSON_Delete(j);
}

VX_TEST(id_member_drops_long_or_odd_ids)
{
	char out[16] = "junk", big[64] = "junk";
	cJSON *j = parse("{\"id\":\"0123456789abcdef\"}");
	VX_CHECK_INT(vx_json_id_member(j, 64, out, sizeof(out)), -EINVAL);
	VX_CHECK_STR(out, "");
	VX_CHECK_INT(vx_json_id_member(j, 8, big, sizeof(big)), -EINVAL);
	VX_CHECK_STR(big, "");
	VX_CHECK_INT(vx_json_id_member(j, 18, big, sizeof(big)), 0);
	VX_CHECK_STR(big, ",\"id\":\"0123456789abcdef\"");
	cJSON_Delete(j);
	j = parse("{\"id\":[1]}");
	VX_CHECK_INT(vx_json_id_member(j, 64, out, sizeof(out)), -EINVAL);
	VX_CHECK_STR(out, "");
	cJSON_Delete(j);
}

VX_TEST_MAIN(absent_null_and_missing_object_give_default,
	     field_names_are_case_sensitive,
	     int_accepts_whole_numbers_within_limits,
	     int_rejects_fraction_range_and_type_keeping_ret,
	     number_checks_range_and_type, bool_takes_only_true_or_false,
	     string_checks_type_and_length,
	     id_member_echoes_short_strings_and_numbers,
	     id_member_drops_long_or_odd_ids)
