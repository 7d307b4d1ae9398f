/*
 * test_whisper_agree.c - local agreement of streamed hypotheses
 * (services/stt/whisper/wagree.c): what is shown, what becomes committed,
 * and that committed words are never withdrawn, by the partials or the
 * final, whatever the hypotheses say.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../services/stt/whisper/wagree.h"
#include "vx_test.h"

/* Whether the first n words of s are those of prefix (all of prefix's). */
static int starts_with_words(const char *s, const char *prefix)
{
	size_t n = strlen(prefix);
	return strncmp(s, prefix, n) == 0 && (s[n] == '\0' || s[n] == ' ' || n == 0);
}

static char *committed(const wagree *a)
{
	char *c = malloc(a->committed_len + 1);
	memcpy(c, a->text ? a->text : "", a->committed_len);
	c[a->committed_len] = '\0';
	return c;
}

VX_TEST(first_hypothesis_is_shown_and_nothing_committed)
{
	wagree a;
	wagree_init(&a);
	VX_CHECK_INT(wagree_push(&a, " Hello  world."), 1);
	VX_CHECK_STR(a.text, "Hello world.");
	VX_CHECK_INT(a.n_words, 2);
	VX_CHECK_INT(a.n_committed, 0);
	VX_CHECK_INT(a.committed_len, 0);
	wagree_release(&a);
}

VX_TEST(words_agreeing_from_the_start_become_committed)
{
	wagree a;
	wagree_init(&a);
	wagree_push(&a, " the cat sad");
	VX_CHECK_INT(wagree_push(&a, " the cat sat on"), 1);
	VX_CHECK_STR(a.text, "the cat sat on");
	VX_CHECK_INT(a.n_committed, 2);
	VX_CHECK_INT(a.committed_len, 7);     /* "the cat" */
	wagree_release(&a);
}

VX_TEST(a_word_agreeing_after_a_difference_is_not_committed)
{
	wagree a;
	wagree_init(&a);
	wagree_push(&a, "a cat sat");
	wagree_push(&a, "the cat sat");
	VX_CHECK_INT(a.n_committed, 0);
	wagree_release(&a);
}

VX_TEST(committed_words_stay_when_a_hypothesis_contradicts_them)
{
	wagree a;
	wagree_init(&a);
	wagree_push(&a, "the cat sat");
	wagree_push(&a, "the cat sat on");      /* "the cat sat" committed */
	VX_CHECK_INT(a.n_committed, 3);
	VX_CHECK_INT(wagree_push(&a, "a dog sat on the mat"), 1);
	VX_CHECK_STR(a.text, "the cat sat on the mat");   /* by position */
	VX_CHECK_INT(a.n_committed, 4);         /* "on" shown twice */
	wagree_push(&a, "the");                 /* shorter than the committed */
	VX_CHECK_STR(a.text, "the cat sat on");
	VX_CHECK_INT(a.n_committed, 4);
	wagree_push(&a, "");                    /* silence: committed stay */
	VX_CHECK_STR(a.text, "the cat sat on");
	wagree_release(&a);
}

VX_TEST(the_same_text_twice_commits_it_all_and_reports_no_change)
{
	wagree a;
	wagree_init(&a);
	wagree_push(&a, " one two");
	VX_CHECK_INT(wagree_push(&a, "one   two "), 0);
	VX_CHECK_INT(a.n_committed, 2);
	VX_CHECK_INT(a.committed_len, strlen("one two"));
	wagree_release(&a);
}

VX_TEST(splice_keeps_the_committed_words_and_takes_the_rest)
{
	wagree a;
	wagree_init(&a);
	wagree_push(&a, "it is late");
	wagree_push(&a, "it is later now");
	char *f = NULL;
	VX_CHECK_INT(wagree_splice(&a, " It is later now, thanks.", &f), 0);
	VX_CHECK_STR(f, "it is later now, thanks.");
	free(f);
	VX_CHECK_INT(wagree_splice(&a, "it", &f), 0);
	VX_CHECK_STR(f, "it is");
	free(f);
	VX_CHECK_STR(a.text, "it is later now");   /* splice takes nothing */
	VX_CHECK_INT(a.n_committed, 2);
	wagree_release(&a);
}

VX_TEST(rewrite_puts_committed_words_into_segments_by_position)
{
	wagree a;
	wagree_init(&a);
	wagree_push(&a, "the cat sat");
	wagree_push(&a, "the cat sat down");
	int pos = 0;
	char *s1 = NULL, *s2 = NULL, *rest = NULL;
	VX_CHECK_INT(wagree_rewrite(&a, " a dog", &pos, &s1), 0);
	VX_CHECK_STR(s1, "the cat");
	VX_CHECK_INT(pos, 2);
	VX_CHECK_INT(wagree_rewrite(&a, " stood up.", &pos, &s2), 0);
	VX_CHECK_STR(s2, "sat up.");
	VX_CHECK_INT(pos, 4);
	VX_CHECK_INT(wagree_committed_from(&a, pos, &rest), 0);
	VX_CHECK_STR(rest, "");
	free(rest);
	VX_CHECK_INT(wagree_committed_from(&a, 1, &rest), 0);
	VX_CHECK_STR(rest, "cat sat");
	free(s1);
	free(s2);
	free(rest);
	wagree_release(&a);
}

VX_TEST(agrees_compares_a_hypothesis_with_the_committed_prefix)
{
	wagree a;
	wagree_init(&a);
	wagree_push(&a, "one two three");
	wagree_push(&a, "one two three four");
	VX_CHECK_INT(wagree_agrees(&a, " one two three four", 3), 1);
	VX_CHECK_INT(wagree_agrees(&a, "one two", 3), 0);
	VX_CHECK_INT(wagree_agrees(&a, "one too three", 3), 0);
	VX_CHECK_INT(wagree_agrees(&a, "one two three", 4), 0);   /* past the committed */
	VX_CHECK_INT(wagree_agrees(&a, "", 0), 1);
	wagree_release(&a);
}

VX_TEST(drop_moves_committed_words_out_and_keeps_the_rest)
{
	wagree a;
	wagree_init(&a);
	wagree_push(&a, "alpha beta gamma delta");
	wagree_push(&a, "alpha beta gamma epsilon");
	VX_CHECK_INT(a.n_committed, 3);
	wagree_drop(&a, 2);
	VX_CHECK_STR(a.text, "gamma epsilon");
	VX_CHECK_INT(a.n_words, 2);
	VX_CHECK_INT(a.n_committed, 1);
	VX_CHECK_INT(a.committed_len, 5);
	/* the next window's hypotheses count positions after the drop */
	wagree_push(&a, "gamma epsilon zeta");
	VX_CHECK_STR(a.text, "gamma epsilon zeta");
	VX_CHECK_INT(a.n_committed, 2);
	wagree_commit_all(&a);
	VX_CHECK_INT(a.n_committed, 3);
	wagree_drop(&a, 3);
	VX_CHECK_STR(a.text, "");
	VX_CHECK_INT(a.n_committed, 0);
	VX_CHECK_INT(a.committed_len, 0);
	wagree_release(&a);
}

/* A fixed pseudo-random walk of hypotheses: every shown text and the
 * final begin with every earlier commitment. */
VX_TEST(committed_words_are_never_withdrawn_over_many_hypotheses)
{
	static const char *const vocab[] = { "a", "b", "c", "d" };
	unsigned x = 12345;
	for (int run = 0; run < 50; run++) {
		wagree a;
		wagree_init(&a);
		char *commits[40];
		int n_commits = 0;
		for (int k = 0; k < 40; k++) {
			char hyp[256] = "";
			int n = 1 + (int)((x = x * 1103515245u + 12345u) >> 16) % 12;
			for (int i = 0; i < n; i++) {
				x = x * 1103515245u + 12345u;
				/* mostly a stable "script", sometimes a different word */
				int v = ((x >> 16) % 5 == 0) ? (int)((x >> 8) % 4) : i % 4;
				strcat(hyp, " ");
				strcat(hyp, vocab[v]);
			}
			VX_CHECK(wagree_push(&a, hyp) >= 0);
			for (int j = 0; j < n_commits; j++)
				VX_CHECK(starts_with_words(a.text, commits[j]));
			commits[n_commits++] = committed(&a);
		}
		char *fin = NULL;
		VX_CHECK_INT(wagree_splice(&a, " d d", &fin), 0);
		for (int j = 0; j < n_commits; j++) {
			VX_CHECK(starts_with_words(fin, commits[j]));
			free(commits[j]);
		}
		free(fin);
		wagree_release(&a);
	}
}

VX_TEST(count_splits_at_any_whitespace)
{
	VX_CHECK_INT(wagree_count(""), 0);
	VX_CHECK_INT(wagree_count("  \t\n"), 0);
	VX_CHECK_INT(wagree_count(" Hi,\tthere\nyou "), 3);
}

VX_TEST_MAIN(first_hypothesis_is_shown_and_nothing_committed,
	     words_agreeing_from_the_start_become_committed,
	     a_word_agreeing_after_a_difference_is_not_committed,
	     committed_words_stay_when_a_hypothesis_contradicts_them,
	     the_same_text_twice_commits_it_all_and_reports_no_change,
	     splice_keeps_the_committed_words_and_takes_the_rest,
	     rewrite_puts_committed_words_into_segments_by_position,
	     agrees_compares_a_hypothesis_with_the_committed_prefix,
	     drop_moves_committed_words_out_and_keeps_the_rest,
	     committed_words_are_never_withdrawn_over_many_hypotheses,
	     count_splits_at_any_whitespace)
