/* test_vx_route.c - the routing decision: exact and wildcard paths, HEAD
 * on GET routes, 404 and 405 (with Allow), the bearer key, body limits and
 * smuggling refusals, WebSocket paths. Pure: no server, no socket. */
#include <string.h>

#include "vx_route.h"
#include "vx_test.h"

static void h(vx_req *req, void *user)
{
	(void)req;
	(void)user;
}

static const vx_route routes[] = {
	{ "GET", "/", h, 0, false, false },
	{ "POST", "/conversations", h, 0, false, false },
	{ "GET", "/conversations/*", h, 0, false, false },
	{ "DELETE", "/conversations/*", h, 0, false, false },
	{ "POST", "/v1/audio/transcriptions", h, 1000, false, false },
	{ "GET", "/static/*", h, 0, true, false },
	{ "POST", "/static/*", h, 0, false, false },
	{ "POST", "/twilio/voice", h, 0, false, true },
};
#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))

static const vx_route_table table = {
	.routes = routes, .n_routes = N_ROUTES, .api_key = NULL,
	.max_body = 100, .discard_max = 50,
};

static vx_route_verdict decide(const vx_route_table *t, const char *method,
			       const char *path)
{
	vx_route_verdict v;
	vx_route_decide(t, &(vx_route_request){ .method = method, .path = path }, &v);
	return v;
}

static vx_route_verdict decide_body(const char *path, const char *cl, bool te)
{
	vx_route_verdict v;
	vx_route_decide(&table, &(vx_route_request){ .method = "POST",
		.path = path, .content_length = cl, .transfer_encoding = te }, &v);
	return v;
}

static vx_route_verdict decide_auth(const char *key, const char *authorization)
{
	vx_route_table t = table;
	t.api_key = key;
	vx_route_verdict v;
	vx_route_decide(&t, &(vx_route_request){ .method = "GET", .path = "/",
		.authorization = authorization }, &v);
	return v;
}

VX_TEST(exact_path_runs_its_route)
{
	vx_route_verdict v = decide(&table, "POST", "/conversations");
	VX_CHECK_INT(v.status, 0);
	VX_CHECK_INT(v.route, 1);
	VX_CHECK(v.matched);
	VX_CHECK_STR(v.allow, "");
	VX_CHECK_INT(v.max_body, 100);
	/* exact means exact: no prefix, no trailing slash */
	VX_CHECK_INT(decide(&table, "GET", "/x").status, 404);
	VX_CHECK_INT(decide(&table, "POST", "/conversationsX").status, 404);
}

VX_TEST(wildcard_matches_the_prefix_and_everything_below)
{
	VX_CHECK(vx_route_match("/conversations/*", "/conversations/"));
	VX_CHECK(vx_route_match("/conversations/*", "/conversations/abc"));
	VX_CHECK(vx_route_match("/conversations/*", "/conversations/a/b"));
	VX_CHECK(!vx_route_match("/conversations/*", "/conversations"));
	VX_CHECK(!vx_route_match("/conversations/*", "/conv"));
	VX_CHECK(vx_route_match("/", "/"));
	VX_CHECK(!vx_route_match("/", "/a"));
	vx_route_verdict v = decide(&table, "GET", "/conversations/42");
	VX_CHECK_INT(v.status, 0);
	VX_CHECK_INT(v.route, 2);
	v = decide(&table, "DELETE", "/conversations/42");
	VX_CHECK_INT(v.status, 0);
	VX_CHECK_INT(v.route, 3);
}

VX_TEST(head_is_answered_by_the_get_route_and_get_by_no_other)
{
	vx_route_verdict v = decide(&table, "HEAD", "/static/app.js");
	VX_CHECK_INT(v.status, 0);
	VX_CHECK_INT(v.route, 5);
	VX_CHECK_INT(decide(&table, "HEAD", "/conversations").status, 405);
	VX_CHECK_INT(decide(&table, "get", "/").status, 405);   /* case matters */
}

VX_TEST(wrong_method_is_405_with_the_paths_methods_in_allow)
{
	vx_route_verdict v = decide(&table, "PUT", "/conversations/42");
	VX_CHECK_INT(v.status, 405);
	VX_CHECK_STR(v.code, "method_not_allowed");
	VX_CHECK_STR(v.allow, "GET, HEAD, DELETE");
	VX_CHECK_STR(v.message, "PUT is not allowed on /conversations/42");
	VX_CHECK(!v.matched);
	VX_CHECK_INT(v.route, 3);      /* counted under the path's last route */
	VX_CHECK(!v.close);
	v = decide(&table, "GET", "/conversations");
	VX_CHECK_INT(v.status, 405);
	VX_CHECK_STR(v.allow, "POST");
	v = decide(&table, "DELETE", "/static/x");
	VX_CHECK_STR(v.allow, "GET, HEAD, POST");
}

VX_TEST(unknown_path_is_404_with_method_and_path_in_the_message)
{
	vx_route_verdict v = decide(&table, "GET", "/nope?x=1");
	VX_CHECK_INT(v.status, 404);
	VX_CHECK_STR(v.code, "not_found");
	VX_CHECK_STR(v.message, "no route for GET /nope?x=1");
	VX_CHECK_INT(v.route, -1);
	VX_CHECK_STR(v.allow, "");
	vx_route_table empty = { .max_body = 1 };
	VX_CHECK_INT(decide(&empty, "GET", "/").status, 404);
}

VX_TEST(bearer_key_is_checked_only_when_set_and_after_routing)
{
	VX_CHECK_INT(decide_auth(NULL, NULL).status, 0);
	VX_CHECK_INT(decide_auth(NULL, "Bearer anything").status, 0);
	vx_route_verdict v = decide_auth("s3cret", NULL);
	VX_CHECK_INT(v.status, 401);
	VX_CHECK_STR(v.code, "unauthorized");
	VX_CHECK(v.www_authenticate);
	VX_CHECK(v.matched);           /* counted under its route */
	VX_CHECK_INT(decide_auth("s3cret", "Bearer wrong").status, 401);
	VX_CHECK_INT(decide_auth("s3cret", "Bearer s3cret ").status, 401);
	VX_CHECK_INT(decide_auth("s3cret", "Basic s3cret").status, 401);
	VX_CHECK_INT(decide_auth("s3cret", "s3cret").status, 401);
	VX_CHECK_INT(decide_auth("s3cret", "Bearer s3cret").status, 0);
	VX_CHECK_INT(decide_auth("s3cret", "bearer s3cret").status, 0);
	/* no route: 404 before the key is asked for */
	vx_route_table t = table;
	t.api_key = "s3cret";
	VX_CHECK_INT(decide(&t, "GET", "/nope").status, 404);
	VX_CHECK_INT(decide(&t, "PUT", "/").status, 405);
}

VX_TEST(open_routes_need_no_key)
{
	vx_route_table t = table;
	t.api_key = "s3cret";
	VX_CHECK_INT(decide(&t, "POST", "/twilio/voice").status, 0);
	VX_CHECK_INT(decide(&t, "POST", "/conversations").status, 401);
}

VX_TEST(bearer_check_takes_counted_values)
{
	const char *a = "Bearer s3cretXYZ";
	VX_CHECK(vx_route_bearer_ok(NULL, NULL, 0));
	VX_CHECK(vx_route_bearer_ok("", NULL, 0));
	VX_CHECK(!vx_route_bearer_ok("s3cret", NULL, 0));
	VX_CHECK(vx_route_bearer_ok("s3cret", a, 13));     /* "Bearer s3cret" */
	VX_CHECK(!vx_route_bearer_ok("s3cret", a, 14));
	VX_CHECK(!vx_route_bearer_ok("s3cret", a, 12));
	VX_CHECK(!vx_route_bearer_ok("s3creX", a, 13));
	VX_CHECK(vx_route_bearer_ok("s3cret", "BEARER s3cret", 13));
	VX_CHECK(!vx_route_bearer_ok("s3cret", "Token  s3cret", 13));
}

VX_TEST(body_limit_is_the_routes_or_the_default)
{
	vx_route_verdict v = decide_body("/conversations", "100", false);
	VX_CHECK_INT(v.status, 0);
	VX_CHECK_INT(v.max_body, 100);
	v = decide_body("/v1/audio/transcriptions", "1000", false);
	VX_CHECK_INT(v.status, 0);
	VX_CHECK_INT(v.max_body, 1000);
	VX_CHECK_INT(decide_body("/conversations", NULL, false).status, 0);
	VX_CHECK_INT(decide_body("/conversations", "0", false).status, 0);
}

VX_TEST(body_over_the_limit_is_413_read_and_dropped_or_refused_at_once)
{
	vx_route_verdict v = decide_body("/conversations", "101", false);
	VX_CHECK_INT(v.status, 413);
	VX_CHECK_STR(v.code, "body_too_large");
	VX_CHECK_STR(v.message,
		     "request body of 101 bytes is over the limit of 100");
	VX_CHECK(!v.close);            /* read and dropped: keep-alive */
	VX_CHECK(v.matched);
	v = decide_body("/conversations", "150", false);
	VX_CHECK(!v.close);            /* limit + discard_max still read */
	v = decide_body("/conversations", "151", false);
	VX_CHECK_INT(v.status, 413);
	VX_CHECK(v.close);             /* too much to read: answer and close */
	v = decide_body("/v1/audio/transcriptions", "1001", false);
	VX_CHECK_INT(v.status, 413);
	VX_CHECK_STR(v.message,
		     "request body of 1001 bytes is over the limit of 1000");
	v = decide_body("/conversations", "99999999999999999999999", false);
	VX_CHECK_INT(v.status, 413);
	VX_CHECK(v.close);
}

VX_TEST(content_length_with_transfer_encoding_is_400_and_close)
{
	vx_route_verdict v = decide_body("/conversations", "5", true);
	VX_CHECK_INT(v.status, 400);
	VX_CHECK_STR(v.code, "bad_request");
	VX_CHECK(v.close);
	/* chunked alone is fine; its size is checked while reading */
	VX_CHECK_INT(decide_body("/conversations", NULL, true).status, 0);
}

VX_TEST(websocket_paths_match_exactly)
{
	static const vx_ws_route ws[] = { { .path = "/ws" },
					  { .path = "/ws/chat" } };
	VX_CHECK(vx_route_ws_find(ws, 2, "/ws", 3) == &ws[0]);
	VX_CHECK(vx_route_ws_find(ws, 2, "/ws/chat?x", 8) == &ws[1]);
	VX_CHECK(vx_route_ws_find(ws, 2, "/ws/", 4) == NULL);
	VX_CHECK(vx_route_ws_find(ws, 2, "/w", 2) == NULL);
	VX_CHECK(vx_route_ws_find(ws, 0, "/ws", 3) == NULL);
}

VX_TEST_MAIN(exact_path_runs_its_route,
	     wildcard_matches_the_prefix_and_everything_below,
	     head_is_answered_by_the_get_route_and_get_by_no_other,
	     wrong_method_is_405_with_the_paths_methods_in_allow,
	     unknown_path_is_404_with_method_and_path_in_the_message,
	     bearer_key_is_checked_only_when_set_and_after_routing,
	     open_routes_need_no_key, bearer_check_takes_counted_values,
	     body_limit_is_the_routes_or_the_default,
	     body_over_the_limit_is_413_read_and_dropped_or_refused_at_once,
	     content_length_with_transfer_encoding_is_400_and_close,
	     websocket_paths_match_exactly)
