/* Unit tests for the LLM stream filters: sse, ndjson, think, stopstr, llm_emit.
 * Every parser is fed the same text cut at every position (and byte by
 * byte) and must give the same result as when fed in one piece. */
#include "../../services/llm/llm_emit.h"
#include "../../services/llm/ndjson.h"
#include "../../services/llm/sse.h"
#include "../../services/llm/stopstr.h"
#include "../../services/llm/think.h"
#include "vx_test.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- sse ---- */

static int sse_collect(void *user, const char *event, const char *data,
		       size_t len)
{
	vx_buf *b = user;
	if (strlen(data) != len)
		return -EINVAL;
	vx_buf_printf(b, "[%s|%s]", event, data);
	return 0;
}

/* Feeds text in pieces cut at a and b (a <= b), or byte by byte when a < 0. */
static int sse_run(const char *text, size_t n, long a, long b, vx_buf *out,
		   size_t *ret_comments)
{
	sse_parser p;
	sse_init(&p, 0);
	int r = 0;
	if (a < 0) {
		for (size_t i = 0; i < n && !r; i++)
			r = sse_feed(&p, text + i, 1, sse_collect, out);
	} else {
		r = sse_feed(&p, text, (size_t)a, sse_collect, out);
		if (!r)
			r = sse_feed(&p, text + a, (size_t)(b - a), sse_collect, out);
		if (!r)
			r = sse_feed(&p, text + b, n - (size_t)b, sse_collect, out);
	}
	if (ret_comments)
		*ret_comments = p.comments;
	sse_release(&p);
	return r;
}

static const char sse_text[] =
	"\xEF\xBB\xBF"
	": ping\r\n\r\n"
	"data: {\"a\":\"h\xC3\xA9\"}\n\n"
	"data:no-space\r\n\r\n"
	"event: error\ndata: one\ndata: two\n\n"
	":keep-alive\r"
	"data: cr only\r\r"
	"id: 7\nretry: 10\n\n"          /* no data: not dispatched */
	"data\n\n"                     /* field without colon: empty data */
	"data: [DONE]\r\n\r\n"
	"data: partial at end";

static const char sse_want[] =
	"[message|{\"a\":\"h\xC3\xA9\"}][message|no-space][error|one\ntwo]"
	"[message|cr only][message|][message|[DONE]]";

VX_TEST(sse_parses_line_ends_comments_and_fields)
{
	vx_buf out = {0};
	size_t comments = 0;
	VX_CHECK_INT(sse_run(sse_text, sizeof(sse_text) - 1, 0, 0, &out,
			     &comments), 0);
	VX_CHECK_STR(out.data, sse_want);
	VX_CHECK_INT(comments, 2);
	vx_buf_release(&out);
}

VX_TEST(sse_gives_same_events_at_every_split)
{
	size_t n = sizeof(sse_text) - 1;
	int bad = 0;
	for (size_t a = 0; a <= n; a++) {
		for (size_t b = a; b <= n; b += 7) {
			vx_buf out = {0};
			size_t c = 0;
			if (sse_run(sse_text, n, (long)a, (long)b, &out, &c) ||
			    !out.data || strcmp(out.data, sse_want) || c != 2)
				bad++;
			vx_buf_release(&out);
		}
	}
	VX_CHECK_INT(bad, 0);
	vx_buf out = {0};
	VX_CHECK_INT(sse_run(sse_text, n, -1, 0, &out, NULL), 0);
	VX_CHECK_STR(out.data, sse_want);
	vx_buf_release(&out);
}

VX_TEST(sse_rejects_an_event_over_the_limit)
{
	sse_parser p;
	vx_buf out = {0};
	sse_init(&p, 16);
	VX_CHECK_INT(sse_feed(&p, "data: 0123456789\n", 17, sse_collect, &out), 0);
	VX_CHECK_INT(sse_feed(&p, "data: 0123456789\n", 17, sse_collect, &out),
		     -E2BIG);
	sse_release(&p);
	sse_init(&p, 16);
	VX_CHECK_INT(sse_feed(&p, "data: 0123456789abcdefgh", 24, sse_collect,
			      &out), -E2BIG);
	VX_CHECK(out.data == NULL);
	sse_release(&p);
}

/* Found by tests/fuzz (regress/sse/long_line_not_limited_when_whole): a
 * line over the limit passed when it arrived whole in one chunk. */
VX_TEST(sse_rejects_a_long_line_that_arrives_whole)
{
	sse_parser p;
	vx_buf out = {0};
	const char *c = ": a keep-alive comment longer than 16\n";
	const char *e = "event: 0123456789abcdefgh\n";
	sse_init(&p, 16);
	VX_CHECK_INT(sse_feed(&p, c, strlen(c), sse_collect, &out), -E2BIG);
	sse_release(&p);
	sse_init(&p, 16);
	VX_CHECK_INT(sse_feed(&p, e, strlen(e), sse_collect, &out), -E2BIG);
	sse_release(&p);
	VX_CHECK(out.data == NULL);
}

static int sse_stop_at_second(void *user, const char *event, const char *data,
			      size_t len)
{
	(void)event; (void)data; (void)len;
	return ++*(int *)user == 2 ? 42 : 0;
}

VX_TEST(sse_stops_when_the_callback_says_so)
{
	sse_parser p;
	int seen = 0;
	sse_init(&p, 0);
	const char *s = "data: a\n\ndata: b\n\ndata: c\n\n";
	VX_CHECK_INT(sse_feed(&p, s, strlen(s), sse_stop_at_second, &seen), 42);
	VX_CHECK_INT(seen, 2);
	VX_CHECK(!sse_pending(&p));
	sse_release(&p);
}

/* ---- ndjson ---- */

static int nd_collect(void *user, const char *line, size_t len)
{
	vx_buf *b = user;
	if (strlen(line) != len)
		return -EINVAL;
	vx_buf_printf(b, "<%s>", line);
	return 0;
}

VX_TEST(ndjson_splits_lines_at_every_cut)
{
	static const char t[] = "{\"a\":1}\n{\"b\":\"\xE4\xB8\x96\"}\r\n\n{\"c\":3}";
	const char *want = "<{\"a\":1}><{\"b\":\"\xE4\xB8\x96\"}><{\"c\":3}>";
	size_t n = sizeof(t) - 1;
	int bad = 0;
	for (size_t a = 0; a <= n; a++) {
		ndjson_splitter s;
		vx_buf out = {0};
		ndjson_init(&s, 0);
		int r = ndjson_feed(&s, t, a, nd_collect, &out);
		r = r ? r : ndjson_feed(&s, t + a, n - a, nd_collect, &out);
		r = r ? r : ndjson_finish(&s, nd_collect, &out);
		if (r || !out.data || strcmp(out.data, want) || s.lines != 3)
			bad++;
		ndjson_release(&s);
		vx_buf_release(&out);
	}
	VX_CHECK_INT(bad, 0);
}

VX_TEST(ndjson_rejects_a_line_over_the_limit)
{
	ndjson_splitter s;
	vx_buf out = {0};
	ndjson_init(&s, 8);
	VX_CHECK_INT(ndjson_feed(&s, "12345678\n", 9, nd_collect, &out), 0);
	VX_CHECK_INT(ndjson_feed(&s, "123456789", 9, nd_collect, &out), -E2BIG);
	ndjson_release(&s);
	vx_buf_release(&out);
}

/* ---- think ---- */

typedef struct pieces {
	vx_buf content, reasoning;
	vx_buf log;          /* "C:text|R:text|" with adjacent same kinds merged */
	int last;            /* kind of the last piece, -1 at start */
	int calls;
} pieces;

static void pieces_init(pieces *p)
{
	memset(p, 0, sizeof(*p));
	p->last = -1;
}

static void pieces_release(pieces *p)
{
	vx_buf_release(&p->content);
	vx_buf_release(&p->reasoning);
	vx_buf_release(&p->log);
}

static int pieces_cb(void *user, llm_piece_kind kind, const char *text,
		     size_t len)
{
	pieces *p = user;
	p->calls++;
	if (len == 0)
		return -1;   /* empty pieces are a defect */
	vx_buf_append(kind == LLM_REASONING ? &p->reasoning : &p->content,
		      text, len);
	if ((int)kind != p->last)
		vx_buf_puts(&p->log, kind == LLM_REASONING ? "|R:" : "|C:");
	vx_buf_append(&p->log, text, len);
	p->last = (int)kind;
	return 0;
}

/* Splits text at cuts[0..ncuts) and returns the log. */
static char *think_run(const char *text, bool starts_in, const size_t *cuts,
		       size_t ncuts)
{
	think_splitter t;
	pieces p;
	pieces_init(&p);
	think_init(&t, starts_in, pieces_cb, &p);
	size_t n = strlen(text), at = 0;
	int r = 0;
	for (size_t i = 0; i <= ncuts && !r; i++) {
		size_t end = i < ncuts ? cuts[i] : n;
		r = think_feed(&t, LLM_CONTENT, text + at, end - at);
		at = end;
	}
	if (!r)
		r = think_finish(&t);
	char *log = r ? strdup("error") : strdup(p.log.data ? p.log.data : "");
	pieces_release(&p);
	return log;
}

/* Checks text gives want whole, cut once or twice anywhere, byte by byte. */
static int think_check(const char *text, bool starts_in, const char *want)
{
	size_t n = strlen(text), cuts[2];
	int bad = 0;
	char *got = think_run(text, starts_in, NULL, 0);
	if (strcmp(got, want)) {
		fprintf(stderr, "think %s: got \"%s\" want \"%s\"\n", text, got, want);
		bad++;
	}
	free(got);
	for (cuts[0] = 0; cuts[0] <= n; cuts[0]++)
		for (cuts[1] = cuts[0]; cuts[1] <= n; cuts[1]++) {
			got = think_run(text, starts_in, cuts, 2);
			if (strcmp(got, want)) {
				if (!bad)
					fprintf(stderr, "think cut %zu,%zu: got \"%s\"\n",
						cuts[0], cuts[1], got);
				bad++;
			}
			free(got);
		}
	size_t *all = malloc(n * sizeof(*all));
	for (size_t i = 0; i < n; i++)
		all[i] = i;
	got = think_run(text, starts_in, all, n);
	bad += strcmp(got, want) != 0;
	free(got);
	free(all);
	return bad;
}

VX_TEST(think_splits_reasoning_from_content_at_every_cut)
{
	VX_CHECK_INT(think_check("<think>\nStep 1 < 2.\n</think>\n\nThe answer is 4.",
				 false, "|R:Step 1 < 2.\n|C:The answer is 4."), 0);
	VX_CHECK_INT(think_check("Hi <think>hm</think> there", false,
				 "|C:Hi |R:hm|C:there"), 0);
}

VX_TEST(think_passes_text_that_only_looks_like_a_tag)
{
	VX_CHECK_INT(think_check("a<b <th <thinker> </thin x<", false,
				 "|C:a<b <th <thinker> </thin x<"), 0);
	VX_CHECK_INT(think_check("<<think>>r</think>>", false,
				 "|C:<|R:>r|C:>"), 0);
}

VX_TEST(think_drops_stray_closer_and_keeps_nested_opener_as_reasoning)
{
	VX_CHECK_INT(think_check("ok</think> done", false, "|C:ok done"), 0);
	VX_CHECK_INT(think_check("<think>a<think>b</think>c", false,
				 "|R:a<think>b|C:c"), 0);
}

VX_TEST(think_starts_in_reasoning_only_when_told)
{
	VX_CHECK_INT(think_check("\nplan it</think>\n\nDone.", true,
				 "|R:plan it|C:Done."), 0);
	VX_CHECK_INT(think_check("plan it</think>Done.", false,
				 "|C:plan itDone."), 0);
}

VX_TEST(think_never_emits_a_cut_off_tag_at_the_end)
{
	VX_CHECK_INT(think_check("answer <thi", false, "|C:answer "), 0);
	VX_CHECK_INT(think_check("<think>why</thin", false, "|R:why"), 0);
	VX_CHECK_INT(think_check("x <", false, "|C:x <"), 0);
}

VX_TEST(think_passes_reasoning_pieces_through)
{
	think_splitter t;
	pieces p;
	pieces_init(&p);
	think_init(&t, false, pieces_cb, &p);
	VX_CHECK_INT(think_feed(&t, LLM_REASONING, "upstream says", 13), 0);
	VX_CHECK_INT(think_feed(&t, LLM_CONTENT, "a <", 3), 0);
	VX_CHECK_INT(think_feed(&t, LLM_REASONING, "more", 4), 0);
	VX_CHECK_INT(think_finish(&t), 0);
	VX_CHECK_STR(p.log.data, "|R:upstream says|C:a <|R:more");
	pieces_release(&p);
}

/* ---- stopstr ---- */

/* Runs text through a matcher cut at a and b; returns output, sets *stopped. */
static char *stop_run(const char *const *stops, size_t ns, const char *text,
		      size_t a, size_t b, int *stopped)
{
	stopstr s;
	vx_buf out = {0};
	size_t n = strlen(text);
	size_t cut[3] = { a, b, n }, at = 0;
	int r = stopstr_init(&s, stops, ns);
	for (int i = 0; i < 3 && r == 0; i++) {
		r = stopstr_feed(&s, text + at, cut[i] - at, &out);
		at = cut[i];
	}
	if (r == 0)
		r = stopstr_finish(&s, &out);
	*stopped = r ? r : s.stopped;
	stopstr_release(&s);
	vx_buf_puts(&out, "");
	return vx_buf_detach(&out, NULL);
}

static int stop_check(const char *const *stops, size_t ns, const char *text,
		      const char *want, int want_stop)
{
	size_t n = strlen(text);
	int bad = 0;
	for (size_t a = 0; a <= n; a++)
		for (size_t b = a; b <= n; b++) {
			int st;
			char *got = stop_run(stops, ns, text, a, b, &st);
			if (strcmp(got, want) || st != want_stop) {
				if (!bad)
					fprintf(stderr, "stop cut %zu,%zu: \"%s\" %d\n",
						a, b, got, st);
				bad++;
			}
			free(got);
		}
	return bad;
}

VX_TEST(stopstr_cuts_before_the_first_stop_at_every_split)
{
	const char *stops[] = { "\nUser:", "END", "aab" };
	VX_CHECK_INT(stop_check(stops, 3, "Hello there.\nUser: more", "Hello there.", 1), 0);
	VX_CHECK_INT(stop_check(stops, 3, "x ENx EN END y END", "x ENx EN ", 1), 0);
	VX_CHECK_INT(stop_check(stops, 3, "aaab", "a", 1), 0);
	VX_CHECK_INT(stop_check(stops, 3, "no stop here, EN\nUser", "no stop here, EN\nUser", 0), 0);
	VX_CHECK_INT(stop_check(stops, 3, "END", "", 1), 0);
}

/* Found by tests/fuzz (regress/filters/stopstr_longer_stop_starts_earlier):
 * a stop matched in a piece beat a longer one that began earlier. */
VX_TEST(stopstr_waits_for_a_longer_stop_that_starts_earlier)
{
	const char *stops[] = { "an", "Human:" };
	VX_CHECK_INT(stop_check(stops, 2, "Human: hi", "", 1), 0);
	const char *stops2[] = { "an", "Humane" };
	VX_CHECK_INT(stop_check(stops2, 2, "Human", "Hum", 1), 0);
	VX_CHECK_INT(stop_check(stops2, 2, "Humanoid", "Hum", 1), 0);
}

VX_TEST(stopstr_holds_back_only_what_could_start_a_stop)
{
	const char *stops[] = { "END" };
	stopstr s;
	vx_buf out = {0};
	VX_CHECK_INT(stopstr_init(&s, stops, 1), 0);
	VX_CHECK_INT(stopstr_feed(&s, "Hello EN", 8, &out), 0);
	VX_CHECK_STR(out.data, "Hello ");
	VX_CHECK_INT(stopstr_feed(&s, "Dx", 2, &out), 1);
	VX_CHECK_STR(out.data, "Hello ");
	VX_CHECK_INT(stopstr_feed(&s, "more", 4, &out), 1);
	stopstr_release(&s);
	vx_buf_release(&out);
}

VX_TEST(stopstr_enforces_its_limits)
{
	static char longstop[STOPSTR_MAX_LEN + 2];
	memset(longstop, 'x', STOPSTR_MAX_LEN + 1);
	const char *one[] = { longstop };
	const char *many[STOPSTR_MAX_STOPS + 1];
	for (size_t i = 0; i <= STOPSTR_MAX_STOPS; i++)
		many[i] = "s";
	stopstr s;
	VX_CHECK_INT(stopstr_init(&s, one, 1), -E2BIG);
	VX_CHECK_INT(stopstr_init(&s, many, STOPSTR_MAX_STOPS + 1), -E2BIG);
	VX_CHECK_INT(stopstr_init(&s, many, STOPSTR_MAX_STOPS), 0);
	stopstr_release(&s);
}

/* ---- llm_emit ---- */

static bool utf8_valid(const char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		size_t k = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 :
			   c >= 0xC0 ? 2 : 0;
		if (!k || i + k > n)
			return false;
		for (size_t j = 1; j < k; j++)
			if (((unsigned char)s[i + j] & 0xC0) != 0x80)
				return false;
		i += k;
	}
	return true;
}

static int whole_cb(void *user, llm_piece_kind kind, const char *text,
		    size_t len)
{
	pieces *p = user;
	if (!utf8_valid(text, len))
		p->calls = -1000;
	return pieces_cb(user, kind, text, len);
}

VX_TEST(emit_hands_out_whole_utf8_at_every_cut)
{
	const char *t = "Gr\xC3\xBC\xC3\x9F" "e \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x8E\x89!";
	size_t n = strlen(t);
	int bad = 0;
	for (size_t a = 0; a <= n; a++)
		for (size_t b = a; b <= n; b++) {
			llm_emit e;
			pieces p;
			pieces_init(&p);
			llm_emit_init(&e, whole_cb, &p);
			int r = llm_emit_piece(&e, LLM_CONTENT, t, a);
			r |= llm_emit_piece(&e, LLM_REASONING, "r", 1);
			r |= llm_emit_piece(&e, LLM_CONTENT, t + a, b - a);
			r |= llm_emit_piece(&e, LLM_CONTENT, t + b, n - b);
			r |= llm_emit_flush(&e);
			if (r || p.calls < 0 || !p.content.data ||
			    strcmp(p.content.data, t))
				bad++;
			pieces_release(&p);
		}
	VX_CHECK_INT(bad, 0);
}

VX_TEST(emit_replaces_a_broken_sequence)
{
	llm_emit e;
	pieces p;
	pieces_init(&p);
	llm_emit_init(&e, whole_cb, &p);
	VX_CHECK_INT(llm_emit_piece(&e, LLM_CONTENT, "a\xE4\xB8", 3), 0);
	VX_CHECK_INT(llm_emit_piece(&e, LLM_CONTENT, "b\xC3", 2), 0);
	VX_CHECK_INT(llm_emit_flush(&e), 0);
	VX_CHECK_STR(p.content.data, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD");
	VX_CHECK(p.calls > 0);
	pieces_release(&p);
}

/* Found by tests/fuzz (regress/filters/emit_broken_utf8_mid_piece): a
 * broken sequence inside one piece passed through raw. */
VX_TEST(emit_replaces_a_broken_sequence_inside_a_piece)
{
	llm_emit e;
	pieces p;
	pieces_init(&p);
	llm_emit_init(&e, whole_cb, &p);
	VX_CHECK_INT(llm_emit_piece(&e, LLM_CONTENT, "a\xC3" "b\xA9" "c\xE4\xB8" "d\xFF", 9), 0);
	VX_CHECK_INT(llm_emit_flush(&e), 0);
	VX_CHECK_STR(p.content.data, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD" "c\xEF\xBF\xBD"
		     "d\xEF\xBF\xBD");
	pieces_release(&p);
}

static int stop_cb(void *user, llm_piece_kind kind, const char *text, size_t len)
{
	(void)kind; (void)text; (void)len;
	return ++*(int *)user >= 2;
}

VX_TEST(emit_reports_cancel_when_the_callback_stops)
{
	llm_emit e;
	int n = 0;
	llm_emit_init(&e, stop_cb, &n);
	VX_CHECK_INT(llm_emit_piece(&e, LLM_CONTENT, "a", 1), 0);
	VX_CHECK_INT(llm_emit_piece(&e, LLM_CONTENT, "b", 1), -ECANCELED);
	VX_CHECK_INT(llm_emit_piece(&e, LLM_CONTENT, "c", 1), -ECANCELED);
	VX_CHECK_INT(n, 2);
	VX_CHECK(e.stopped);
}

VX_TEST_MAIN(sse_parses_line_ends_comments_and_fields,
	     sse_gives_same_events_at_every_split,
	     sse_rejects_an_event_over_the_limit,
	     sse_rejects_a_long_line_that_arrives_whole,
	     sse_stops_when_the_callback_says_so,
	     ndjson_splits_lines_at_every_cut,
	     ndjson_rejects_a_line_over_the_limit,
	     think_splits_reasoning_from_content_at_every_cut,
	     think_passes_text_that_only_looks_like_a_tag,
	     think_drops_stray_closer_and_keeps_nested_opener_as_reasoning,
	     think_starts_in_reasoning_only_when_told,
	     think_never_emits_a_cut_off_tag_at_the_end,
	     think_passes_reasoning_pieces_through,
	     stopstr_cuts_before_the_first_stop_at_every_split,
	     stopstr_waits_for_a_longer_stop_that_starts_earlier,
	     stopstr_holds_back_only_what_could_start_a_stop,
	     stopstr_enforces_its_limits,
	     emit_hands_out_whole_utf8_at_every_cut,
	     emit_replaces_a_broken_sequence,
	     emit_replaces_a_broken_sequence_inside_a_piece,
	     emit_reports_cancel_when_the_callback_stops)
