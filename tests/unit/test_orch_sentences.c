/*
 * Unit tests for services/orchestrator/sentences.c: where the splitter cuts
 * (and where it must not), that it cuts as early as it is sure, and that the
 * result never depends on how the text was cut into feeds: every check runs
 * the text whole, in two pieces at every position, byte by byte and in
 * pseudo-random chunks.
 */
#include "sentences.h"
#include "vx_test.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#define SEP "\x1e" /* between sentences in a collected result */

static int collect(void *user, const char *text, size_t len)
{
	vx_buf *out = user;
	if (strlen(text) != len || len == 0)
		return -EPROTO; /* NUL-terminated, never empty */
	if (out->len)
		vx_buf_puts(out, SEP);
	return vx_buf_append(out, text, len);
}

/* Splits text fed in chunks of the sizes given by next_chunk. */
typedef size_t (*chunker)(size_t pos, size_t left, unsigned *state);

static size_t chunk_whole(size_t pos, size_t left, unsigned *state)
{
	(void)pos, (void)state;
	return left;
}

static size_t chunk_byte(size_t pos, size_t left, unsigned *state)
{
	(void)pos, (void)left, (void)state;
	return 1;
}

static size_t chunk_random(size_t pos, size_t left, unsigned *state)
{
	(void)pos, (void)left;
	*state = *state * 1103515245u + 12345u;
	return 1 + (*state >> 16) % 7;
}

static int split_with(const char *text, size_t soft, chunker ch, unsigned seed,
		      size_t first, vx_buf *out)
{
	sentences s;
	sentences_init(&s);
	if (soft)
		s.soft_max = soft;
	size_t len = strlen(text), pos = 0;
	int r = 0;
	while (pos < len && r == 0) {
		size_t n = first ? first : ch(pos, len - pos, &seed);
		first = 0;
		if (n > len - pos)
			n = len - pos;
		r = sentences_feed(&s, text + pos, n, collect, out);
		pos += n;
	}
	if (r == 0)
		r = sentences_flush(&s, collect, out);
	sentences_release(&s);
	return r;
}

/* Every way of feeding text gives the same sentences; returns them joined
 * by SEP (caller frees), or NULL after reporting the first difference. */
static char *split_all_ways(const char *text, size_t soft)
{
	vx_buf want = {0};
	if (split_with(text, soft, chunk_whole, 0, 0, &want) < 0)
		return NULL;
	size_t len = strlen(text);
	for (size_t mode = 0; mode < len + 1 + 8; mode++) {
		vx_buf got = {0};
		int r;
		if (mode == 0)
			r = split_with(text, soft, chunk_byte, 0, 0, &got);
		else if (mode <= len)
			r = split_with(text, soft, chunk_whole, 0, mode, &got);
		else
			r = split_with(text, soft, chunk_random, (unsigned)mode, 0, &got);
		bool same = r == 0 && got.len == want.len &&
			    (!got.len || !memcmp(got.data, want.data, got.len));
		if (!same) {
			fprintf(stderr, "feed mode %zu differs for \"%s\":\n  whole: %s\n  got:   %s\n",
				mode, text, want.data ? want.data : "",
				got.data ? got.data : "");
			vx_buf_release(&got);
			vx_buf_release(&want);
			return NULL;
		}
		vx_buf_release(&got);
	}
	if (!want.data)
		vx_buf_puts(&want, "");
	return vx_buf_detach(&want, NULL);
}

/* Joins a NULL-terminated list of sentences with SEP. */
static char *join(const char *const *list)
{
	vx_buf b = {0};
	vx_buf_puts(&b, "");
	for (size_t i = 0; list[i]; i++) {
		if (i)
			vx_buf_puts(&b, SEP);
		vx_buf_puts(&b, list[i]);
	}
	return vx_buf_detach(&b, NULL);
}

#define CHECK_SPLIT(text, ...)                                               \
	do {                                                                 \
		const char *want_[] = { __VA_ARGS__, NULL };                 \
		char *w_ = join(want_);                                      \
		char *g_ = split_all_ways(text, 0);                          \
		VX_CHECK(g_ != NULL);                                        \
		if (g_)                                                      \
			VX_CHECK_STR(g_, w_);                                \
		free(w_);                                                    \
		free(g_);                                                    \
	} while (0)

VX_TEST(splits_plain_sentences)
{
	CHECK_SPLIT("Hello there. How are you? I am fine!",
		    "Hello there.", "How are you?", "I am fine!");
	CHECK_SPLIT("What?! No way!!! OK.", "What?!", "No way!!!", "OK.");
	CHECK_SPLIT("  Leading and trailing space.  ", "Leading and trailing space.");
	CHECK_SPLIT("No terminator at all", "No terminator at all");
	CHECK_SPLIT("The answer is 42. It is. I counted to 100. Then I stopped.",
		    "The answer is 42.", "It is.", "I counted to 100.", "Then I stopped.");
}

VX_TEST(empty_and_blank_text_give_nothing)
{
	CHECK_SPLIT("", "");
	char *g = split_all_ways(" \n\t \n", 0);
	VX_CHECK_STR(g, "");
	free(g);
}

VX_TEST(lowercase_after_terminator_does_not_split)
{
	CHECK_SPLIT("Is it 5? or 6? Maybe.", "Is it 5? or 6?", "Maybe.");
	CHECK_SPLIT("Apples, pears, etc. and more.", "Apples, pears, etc. and more.");
}

VX_TEST(abbreviations_do_not_split)
{
	CHECK_SPLIT("Mr. Smith met Dr. Jones at St. Mary's. They talked.",
		    "Mr. Smith met Dr. Jones at St. Mary's.", "They talked.");
	CHECK_SPLIT("Mrs. Brown and Ms. Green went to the U.S. Embassy on Jan. 5th. It was closed.",
		    "Mrs. Brown and Ms. Green went to the U.S. Embassy on Jan. 5th.",
		    "It was closed.");
	CHECK_SPLIT("Use a language, e.g. Python, or i.e. Perl. Then stop.",
		    "Use a language, e.g. Python, or i.e. Perl.", "Then stop.");
	CHECK_SPLIT("He won No. 5 in the race. Prof. Ray vs. Team B. Drew.",
		    "He won No. 5 in the race.", "Prof. Ray vs. Team B. Drew.");
	CHECK_SPLIT("She has a Ph.D. From Oxford.", "She has a Ph.D. From Oxford.");
}

VX_TEST(abbreviations_that_can_end_a_sentence_split)
{
	CHECK_SPLIT("Apples, pears, etc. Then we ate.", "Apples, pears, etc.", "Then we ate.");
	CHECK_SPLIT("See you at 5 p.m. Tomorrow is fine.", "See you at 5 p.m.",
		    "Tomorrow is fine.");
	CHECK_SPLIT("He said no. Then left.", "He said no.", "Then left.");
}

VX_TEST(numbers_do_not_split)
{
	CHECK_SPLIT("Pi is about 3.14 and e is 2.718. The price is $1,234.56 today. OK.",
		    "Pi is about 3.14 and e is 2.718.", "The price is $1,234.56 today.", "OK.");
	CHECK_SPLIT("It costs $5. $6 is too much.", "It costs $5.", "$6 is too much.");
	CHECK_SPLIT("Version 2.0.1 is out.", "Version 2.0.1 is out.");
}

VX_TEST(list_items_are_sentences_markers_are_not)
{
	CHECK_SPLIT("Here are the steps:\n1. Mix the flour.\n2. Add water.\n3. Bake it.",
		    "Here are the steps:", "1. Mix the flour.", "2. Add water.", "3. Bake it.");
	CHECK_SPLIT("Steps:\n1. Mix the flour\n2. Add water\n10. Bake",
		    "Steps:", "1. Mix the flour", "2. Add water", "10. Bake");
	CHECK_SPLIT("Do this. 1. Open the box. 2. Take it out.",
		    "Do this.", "1. Open the box.", "2. Take it out.");
	CHECK_SPLIT("You need:\n- eggs\n- milk\n* flour", "You need:", "- eggs", "- milk", "* flour");
	CHECK_SPLIT("1.\nMix it well.", "1.\nMix it well.");
	CHECK_SPLIT("a. First\nb. Second", "a. First", "b. Second");
	CHECK_SPLIT("-\nItem", "-\nItem");
}

VX_TEST(ellipses_split_only_before_a_new_sentence)
{
	CHECK_SPLIT("Well... I think so. Wait... what?", "Well...", "I think so.",
		    "Wait... what?");
	CHECK_SPLIT("Hmm\xE2\x80\xA6 Let me think\xE2\x80\xA6 ok.",
		    "Hmm\xE2\x80\xA6", "Let me think\xE2\x80\xA6 ok.");
	CHECK_SPLIT("Dots . . . here.", "Dots . . . here.");
}

VX_TEST(urls_emails_versions_do_not_split)
{
	CHECK_SPLIT("Visit https://example.com/a.b?c=1 or mail me@example.org. Version v1.2.3 is out. Done.",
		    "Visit https://example.com/a.b?c=1 or mail me@example.org.",
		    "Version v1.2.3 is out.", "Done.");
	CHECK_SPLIT("Go to example.com. It works.", "Go to example.com.", "It works.");
}

VX_TEST(initials_do_not_split)
{
	CHECK_SPLIT("J. R. R. Tolkien wrote books. He was English.",
		    "J. R. R. Tolkien wrote books.", "He was English.");
	CHECK_SPLIT("George W. Bush spoke.", "George W. Bush spoke.");
}

VX_TEST(closing_quotes_and_brackets_stay_with_their_sentence)
{
	CHECK_SPLIT("He said \"Hi.\" Then he left. \"Really?\" she asked. (It was late.) The end.",
		    "He said \"Hi.\"", "Then he left.", "\"Really?\" she asked.",
		    "(It was late.)", "The end.");
	CHECK_SPLIT("She said \xE2\x80\x9CYes!\xE2\x80\x9D And went. I love the U.S.\" He nodded.",
		    "She said \xE2\x80\x9CYes!\xE2\x80\x9D", "And went.",
		    "I love the U.S.\"", "He nodded.");
	CHECK_SPLIT("**Note:** this is bold. **Next** item.", "**Note:** this is bold.",
		    "**Next** item.");
}

VX_TEST(cjk_terminators_split_without_spaces)
{
	CHECK_SPLIT("\xE4\xBD\xA0\xE5\xA5\xBD\xE3\x80\x82\xE4\xBB\x8A\xE5\xA4\xA9\xEF\xBC\x81\xE4\xBD\xA0\xE5\x91\xA2\xEF\xBC\x9F",
		    "\xE4\xBD\xA0\xE5\xA5\xBD\xE3\x80\x82", "\xE4\xBB\x8A\xE5\xA4\xA9\xEF\xBC\x81",
		    "\xE4\xBD\xA0\xE5\x91\xA2\xEF\xBC\x9F");
	/* 「好。」然后。 : the closing bracket stays with its sentence */
	CHECK_SPLIT("\xE3\x80\x8C\xE5\xA5\xBD\xE3\x80\x82\xE3\x80\x8D\xE7\x84\xB6\xE5\x90\x8E\xE3\x80\x82",
		    "\xE3\x80\x8C\xE5\xA5\xBD\xE3\x80\x82\xE3\x80\x8D",
		    "\xE7\x84\xB6\xE5\x90\x8E\xE3\x80\x82");
}

VX_TEST(newlines_paragraphs_and_hard_wraps)
{
	CHECK_SPLIT("Title\n\nFirst line here\nand wrapped. Next.",
		    "Title", "First line here\nand wrapped.", "Next.");
	CHECK_SPLIT("Done.\nnext line starts lower.", "Done.", "next line starts lower.");
	CHECK_SPLIT("Line one\nLine two\r\n\r\nPara", "Line one", "Line two", "Para");
}

VX_TEST(sentence_is_delivered_as_soon_as_it_is_certain)
{
	sentences s;
	vx_buf out = {0};
	sentences_init(&s);
	VX_CHECK_INT(sentences_feed(&s, "Hello there.", 12, collect, &out), 0);
	VX_CHECK_INT(out.len, 0); /* "there.com" could follow */
	VX_CHECK_INT(sentences_feed(&s, " ", 1, collect, &out), 0);
	VX_CHECK_INT(out.len, 0); /* "there. and" could follow */
	VX_CHECK_INT(sentences_feed(&s, "H", 1, collect, &out), 0);
	VX_CHECK_STR(out.data, "Hello there.");
	VX_CHECK_INT(sentences_feed(&s, "ow are you?\n", 12, collect, &out), 0);
	VX_CHECK_STR(out.data, "Hello there." SEP "How are you?");
	VX_CHECK_INT(sentences_feed(&s, "Dr.", 3, collect, &out), 0);
	VX_CHECK_INT(sentences_flush(&s, collect, &out), 0);
	VX_CHECK_STR(out.data, "Hello there." SEP "How are you?" SEP "Dr.");
	/* flush leaves s ready for another stream */
	vx_buf_reset(&out);
	VX_CHECK_INT(sentences_feed(&s, "Again. Yes", 10, collect, &out), 0);
	VX_CHECK_STR(out.data, "Again.");
	sentences_release(&s);
	vx_buf_release(&out);
}

VX_TEST(reset_drops_pending_text)
{
	sentences s;
	vx_buf out = {0};
	sentences_init(&s);
	sentences_feed(&s, "Interrupted half sent", 21, collect, &out);
	sentences_reset(&s);
	sentences_feed(&s, "New one.", 8, collect, &out);
	VX_CHECK_INT(sentences_flush(&s, collect, &out), 0);
	VX_CHECK_STR(out.data, "New one.");
	sentences_release(&s);
	vx_buf_release(&out);
}

static int stop_first(void *user, const char *text, size_t len)
{
	int *calls = user;
	(void)text, (void)len;
	return ++*calls == 1 ? -EINTR : 0;
}

VX_TEST(callback_error_stops_and_keeps_the_rest)
{
	sentences s;
	int calls = 0;
	sentences_init(&s);
	VX_CHECK_INT(sentences_feed(&s, "One. Two. Three", 15, stop_first, &calls), -EINTR);
	VX_CHECK_INT(calls, 1);
	VX_CHECK_INT(sentences_flush(&s, stop_first, &calls), 0);
	VX_CHECK_INT(calls, 3); /* "Two." and "Three" */
	sentences_release(&s);
}

static bool valid_utf8(const char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)s[i];
		size_t l = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 :
			   (c >> 3) == 30 ? 4 : 0;
		if (!l || i + l > n)
			return false;
		for (size_t k = 1; k < l; k++)
			if (((unsigned char)s[i + k] & 0xC0) != 0x80)
				return false;
		i += l;
	}
	return true;
}

/* Splits got (SEP-joined) and checks every piece: at most max bytes, valid
 * UTF-8; returns the number of pieces. */
static int check_pieces(const char *got, size_t max)
{
	int n = 0;
	const char *p = got;
	for (;;) {
		const char *e = strstr(p, SEP);
		size_t l = e ? (size_t)(e - p) : strlen(p);
		VX_CHECK(l <= max);
		VX_CHECK(valid_utf8(p, l));
		n++;
		if (!e)
			return n;
		p = e + 1;
	}
}

VX_TEST(long_run_is_cut_at_a_comma_then_a_space)
{
	const char *text = "one two three four five six, seven eight nine ten eleven "
			   "twelve thirteen fourteen fifteen sixteen seventeen";
	char *g = split_all_ways(text, 40);
	VX_CHECK(g != NULL);
	if (!g)
		return;
	VX_CHECK(!strncmp(g, "one two three four five six," SEP, 29));
	VX_CHECK(check_pieces(g, 40) >= 3);
	/* nothing lost: the pieces are the words of the text */
	vx_buf back = {0};
	for (const char *p = g; *p; p++)
		vx_buf_append(&back, *p == SEP[0] ? " " : p, 1);
	VX_CHECK_STR(back.data, text);
	vx_buf_release(&back);
	free(g);
}

VX_TEST(run_without_spaces_is_cut_on_a_character_boundary)
{
	char text[400];
	size_t n = 0;
	while (n + 2 < 301) { /* 150 x U+00E9, 300 bytes */
		text[n++] = '\xC3';
		text[n++] = '\xA9';
	}
	text[n] = '\0';
	char *g = split_all_ways(text, 25); /* hard cut at 50 bytes */
	VX_CHECK(g != NULL);
	if (g) {
		VX_CHECK_INT(check_pieces(g, 50), 6);
		VX_CHECK_INT(strlen(g), 300 + 5);
	}
	free(g);
	/* a long word, then spaces: cut at the first space after soft_max */
	g = split_all_ways("abcdefghijklmnopqrstuvwxyz0123 tail end", 16);
	VX_CHECK_STR(g, "abcdefghijklmnopqrstuvwxyz0123" SEP "tail end");
	free(g);
}

/* Found by tests/fuzz (regress/sentences/hard_cut_reads_byte_past_feed):
 * a feed ending exactly at the hard cut made the cut split a character. */
VX_TEST(hard_cut_waits_for_the_byte_after_it)
{
	char text[400];
	size_t n = 0;
	while (n + 3 < 301) { /* 100 x U+20AC, 3 bytes each: 50 is mid-character */
		text[n++] = '\xE2';
		text[n++] = '\x82';
		text[n++] = '\xAC';
	}
	text[n] = '\0';
	char *g = split_all_ways(text, 25); /* hard cut at 50 bytes */
	VX_CHECK(g != NULL);
	if (g)
		VX_CHECK_INT(check_pieces(g, 50), 7);
	free(g);
}

/* Found by tests/fuzz (regress/sentences/soft_cut_skipped_at_end_of_text):
 * a scan that jumped past soft_max to the end of the text (markers only
 * stay with the next piece) skipped the long-run cut when fed whole. */
VX_TEST(soft_cut_applies_when_the_scan_reaches_the_end)
{
	char *g = split_all_ways("======;\n=\n\n~\n\n\n\n\r\n\n", 16);
	VX_CHECK_STR(g, "======;" SEP "=\n\n~");
	free(g);
}

VX_TEST(every_feed_split_gives_the_same_sentences)
{
	const char *text =
		"Sure! Here's a recipe from Dr. Brown (the U.S. chef). It takes 3.5 hours, "
		"i.e. most of the afternoon.\n\nIngredients:\n1. Flour, 2.5 cups\n2. Eggs\n"
		"- Salt\nSteps... Mix it. Then bake at 180 C. See https://example.com/r.1 or "
		"v1.2.3 notes. \"Done?\" she asked. \"Yes.\" J. R. R. Tolkien would approve"
		"\xE2\x80\xA6 \xE5\xA5\xBD\xE3\x80\x82\xE5\x90\x97\xEF\xBC\x9F That's all, folks!";
	char *g = split_all_ways(text, 0);
	VX_CHECK(g != NULL);
	const char *want[] = {
		"Sure!", "Here's a recipe from Dr. Brown (the U.S. chef).",
		"It takes 3.5 hours, i.e. most of the afternoon.", "Ingredients:",
		"1. Flour, 2.5 cups", "2. Eggs", "- Salt", "Steps...", "Mix it.",
		"Then bake at 180 C. See https://example.com/r.1 or v1.2.3 notes.",
		"\"Done?\" she asked.", "\"Yes.\"",
		"J. R. R. Tolkien would approve\xE2\x80\xA6",
		"\xE5\xA5\xBD\xE3\x80\x82", "\xE5\x90\x97\xEF\xBC\x9F", "That's all, folks!", NULL,
	};
	char *w = join(want);
	if (g)
		VX_CHECK_STR(g, w);
	free(w);
	free(g);
	/* and with a small soft_max the long-run cuts are split-invariant too */
	g = split_all_ways(text, 24);
	VX_CHECK(g != NULL);
	if (g)
		check_pieces(g, 48);
	free(g);
}

VX_TEST_MAIN(splits_plain_sentences, empty_and_blank_text_give_nothing,
	     lowercase_after_terminator_does_not_split, abbreviations_do_not_split,
	     abbreviations_that_can_end_a_sentence_split, numbers_do_not_split,
	     list_items_are_sentences_markers_are_not,
	     ellipses_split_only_before_a_new_sentence,
	     urls_emails_versions_do_not_split, initials_do_not_split,
	     closing_quotes_and_brackets_stay_with_their_sentence,
	     cjk_terminators_split_without_spaces, newlines_paragraphs_and_hard_wraps,
	     sentence_is_delivered_as_soon_as_it_is_certain, reset_drops_pending_text,
	     callback_error_stops_and_keeps_the_rest,
	     long_run_is_cut_at_a_comma_then_a_space,
	     run_without_spaces_is_cut_on_a_character_boundary,
	     hard_cut_waits_for_the_byte_after_it,
	     soft_cut_applies_when_the_scan_reaches_the_end,
	     every_feed_split_gives_the_same_sentences)
