/*
 * Unit tests for services/orchestrator/conv_policy.c: tables of phrases and
 * the silence each needs to end a turn (finished short, unfinished long),
 * tables of speech over the reply and what the barge-in policy makes of it
 * (backchannels and coughs ignored, interruptions interrupt), the fixed and
 * immediate policies unchanged, and edge cases: empty, very long, cut
 * lengths, punctuation, non-ASCII and broken UTF-8.
 */
#include "conv_policy.h"
#include "vx_test.h"

#include <stdlib.h>

#define FINISHED_MAX_MS 500     /* a turn that reads finished ends by this */
#define UNFINISHED_MIN_MS 1250  /* one that does not survives a 1.2 s pause */

static conv_policy_cfg adaptive(void)
{
	conv_policy_cfg p;
	conv_policy_defaults(&p);
	p.eot = EOT_ADAPTIVE;
	p.barge = BARGE_BACKCHANNEL;
	return p;
}

/* The policies as they were: fixed end of turn, immediate barge-in. */
static conv_policy_cfg before(void)
{
	conv_policy_cfg p;
	conv_policy_defaults(&p);
	p.eot = EOT_FIXED;
	p.barge = BARGE_IMMEDIATE;
	return p;
}

static int need(const conv_policy_cfg *p, const char *text)
{
	return conv_policy_eot_silence_ms(p, text, strlen(text));
}

static enum conv_barge barge(const conv_policy_cfg *p, int64_t ms, bool ended,
			     const char *text)
{
	return conv_policy_barge(p, ms, ended, text, strlen(text));
}

/* Prints the phrase of a failed table row. */
#define CHECK_ROW(cond, text, got)                                            \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr, "%s:%d: \"%s\" -> %d\n", __FILE__,    \
				__LINE__, (text), (int)(got));                \
			vx_test_case_failed = 1;                              \
		}                                                             \
	} while (0)

VX_TEST(defaults_are_the_flag_defaults)
{
	conv_policy_cfg p;
	conv_policy_defaults(&p);
	VX_CHECK_INT(p.eot, EOT_ADAPTIVE);
	VX_CHECK_INT(p.eot_min_ms, 300);
	VX_CHECK_INT(p.eot_max_ms, 1500);
	VX_CHECK_INT(p.barge, BARGE_BACKCHANNEL);
	VX_CHECK_INT(p.barge_min_ms, 300);
}

static const char *const finished[] = {
	"What time is it?",
	"what time is it",
	"WHAT TIME IS IT",
	"what's the weather like",
	"whats the weather like in paris today",
	"can you tell me the weather for tomorrow",
	"please turn off the lights in the kitchen",
	"thank you very much for your help today",
	"do you know a good place to eat around here",
	"um so what do you need",
	"I want to book a table for four people",
	"my number is five five five one two three four five six seven",
	"yes",
	"no thanks",
	"that's all",
	"call me tomorrow",
	"it is raining.",
	"Is it five?",
	"where are you from?",
	"what type",
	"fight fight fight",
};

VX_TEST(finished_turns_need_little_silence)
{
	conv_policy_cfg p = adaptive();
	for (size_t i = 0; i < sizeof(finished) / sizeof(finished[0]); i++) {
		int n = need(&p, finished[i]);
		CHECK_ROW(n >= p.eot_min_ms && n <= FINISHED_MAX_MS, finished[i], n);
	}
	VX_CHECK_INT(need(&p, "What time is it?"), p.eot_min_ms);
	VX_CHECK_INT(need(&p, "what time is it"), p.eot_min_ms);
}

static const char *const unfinished[] = {
	"my number is five five five",
	"My number is",
	"my number is five",
	"call me at five five five",
	"the code is one two",
	"I want to book a table for",
	"I was thinking about the",
	"I need a taxi and",
	"so um",
	"um",
	"uh",
	"i'd like to",
	"I would like",
	"I want",
	"My name is J O",
	"my name is j o h",
	"the thing is",
	"it's",
	"and then I'm",
	"tell me about the weather in",       /* "in" only maybe ... */
	"hello,",
	"well\xe2\x80\xa6",                   /* ellipsis U+2026 */
	"so...",
	"what is your",
	"where is my",
	"what time is it and",
	"is it um",
};

VX_TEST(unfinished_turns_outlast_a_long_pause)
{
	conv_policy_cfg p = adaptive();
	for (size_t i = 0; i < sizeof(unfinished) / sizeof(unfinished[0]); i++) {
		int n = need(&p, unfinished[i]);
		if (!strcmp(unfinished[i], "tell me about the weather in")) {
			CHECK_ROW(n > FINISHED_MAX_MS && n < p.eot_max_ms, unfinished[i], n);
			continue;
		}
		CHECK_ROW(n >= UNFINISHED_MIN_MS && n <= p.eot_max_ms, unfinished[i], n);
	}
	VX_CHECK_INT(need(&p, "my number is five five five"), p.eot_max_ms);
	VX_CHECK_INT(need(&p, "and"), p.eot_max_ms);
}

VX_TEST(graded_between_the_bounds)
{
	conv_policy_cfg p = adaptive();
	int done = need(&p, "what time is it");
	int clause = need(&p, "please turn off the lights");
	int short_ = need(&p, "lights");
	int maybe = need(&p, "turn the lights on");
	int open = need(&p, "turn the lights and");
	VX_CHECK(done < clause && clause < short_ && short_ < maybe && maybe < open);
	/* a question whose partial ends in "a", "the", "is" most likely lags
	 * a word behind a finished question: short, not finished, not open */
	int lag = need(&p, "what time is a");
	VX_CHECK(lag > p.eot_min_ms && lag <= FINISHED_MAX_MS + 200);
	VX_CHECK_INT(need(&p, "what is the"), lag);
	VX_CHECK_INT(need(&p, "the weather is"), p.eot_max_ms);
	/* a question ending in a preposition may be finished: in between */
	int q = need(&p, "can I book a table for");
	VX_CHECK(q > FINISHED_MAX_MS && q < p.eot_max_ms);
	/* seven digits may be a whole number, ten are */
	int seven = need(&p, "my number is five five five one two three four");
	VX_CHECK(seven > FINISHED_MAX_MS && seven < p.eot_max_ms);
	VX_CHECK(need(&p, "it is 5551234567") <= FINISHED_MAX_MS);
	VX_CHECK_INT(need(&p, "it is 555"), p.eot_max_ms);
}

VX_TEST(bounds_come_from_the_config)
{
	conv_policy_cfg p = adaptive();
	p.eot_min_ms = 200;
	p.eot_max_ms = 2000;
	VX_CHECK_INT(need(&p, "what time is it"), 200);
	VX_CHECK_INT(need(&p, "my number is"), 2000);
	p.eot_max_ms = 100;   /* max below min: min */
	VX_CHECK_INT(need(&p, "my number is"), 200);
	p.eot_min_ms = -5;    /* nonsense: never negative */
	p.eot_max_ms = -1;
	VX_CHECK_INT(need(&p, "my number is"), 0);
}

VX_TEST(fixed_policy_always_answers_the_minimum)
{
	conv_policy_cfg p = before();
	VX_CHECK_INT(need(&p, "my number is five five five"), p.eot_min_ms);
	VX_CHECK_INT(need(&p, "what time is it"), p.eot_min_ms);
	VX_CHECK_INT(need(&p, ""), p.eot_min_ms);
	VX_CHECK_INT(conv_policy_eot_silence_ms(&p, NULL, 0), p.eot_min_ms);
}

VX_TEST(punctuation_and_case_do_not_change_the_words)
{
	conv_policy_cfg p = adaptive();
	VX_CHECK_INT(need(&p, "My number is, um"), need(&p, "my number is um"));
	VX_CHECK_INT(need(&p, "\"I want to book a table for\""),
		     need(&p, "i want to book a table for"));
	VX_CHECK_INT(need(&p, "  I\xe2\x80\x99" "d like to  "), need(&p, "id like to"));
	VX_CHECK_INT(need(&p, "uh-huh and"), p.eot_max_ms);
	/* a final "?" or "!" wins over the words */
	VX_CHECK_INT(need(&p, "is it for?"), p.eot_min_ms);
	VX_CHECK_INT(need(&p, "what time is it\xef\xbc\x9f"), p.eot_min_ms);  /* fullwidth ? */
	/* "," and a dash lean open, a trailing "." does not close "and" */
	VX_CHECK(need(&p, "I want pizza,") >= UNFINISHED_MIN_MS);
	VX_CHECK(need(&p, "I want pizza \xe2\x80\x94") >= UNFINISHED_MIN_MS);
	VX_CHECK_INT(need(&p, "I want pizza and."), p.eot_max_ms);
	/* sound tags are not words */
	VX_CHECK_INT(need(&p, "what time is it [BLANK_AUDIO]"), p.eot_min_ms);
	VX_CHECK_INT(need(&p, "my number is (coughs)"), p.eot_max_ms);
	VX_CHECK_INT(need(&p, "[music]"), need(&p, ""));
}

VX_TEST(edge_texts_end_of_turn)
{
	conv_policy_cfg p = adaptive();
	int empty = need(&p, "");
	VX_CHECK(empty > p.eot_min_ms && empty < p.eot_max_ms);
	VX_CHECK_INT(conv_policy_eot_silence_ms(&p, NULL, 0), empty);
	VX_CHECK_INT(need(&p, " ,.?! \t\n"), empty);
	VX_CHECK_INT(need(&p, "''' '"), empty);
	/* only len bytes are read: "what time is it" of a longer buffer */
	const char *t = "what time is it and";
	VX_CHECK_INT(conv_policy_eot_silence_ms(&p, t, 15), p.eot_min_ms);
	VX_CHECK_INT(conv_policy_eot_silence_ms(&p, t, 19), p.eot_max_ms);
	/* non-ASCII words are content; a broken sequence is a byte of a word */
	VX_CHECK(need(&p, "wie sp\xc3\xa4t ist es jetzt bitte") <= FINISHED_MAX_MS);
	VX_CHECK(need(&p, "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e") <= p.eot_max_ms);
	VX_CHECK(need(&p, "caf\xc3") <= p.eot_max_ms);
	VX_CHECK(need(&p, "\xff\xfe\xc3\x41 \xe2\x82 and") == p.eot_max_ms);
	/* a word longer than any in the lists matches none */
	VX_CHECK(need(&p, "my number is fivefivefivefivefivefivefivefive") < p.eot_max_ms);
	VX_CHECK_INT(need(&p, "andandandandandandandandandandand"), need(&p, "xyzzy"));
}

VX_TEST(very_long_texts_are_read_to_the_end)
{
	conv_policy_cfg p = adaptive();
	size_t n = 200000;
	char *t = malloc(n + 16);
	VX_CHECK(t != NULL);
	if (!t)
		return;
	for (size_t i = 0; i < n; i++)
		t[i] = "the weather "[i % 12];
	memcpy(t + n, " and", 5);
	VX_CHECK_INT(conv_policy_eot_silence_ms(&p, t, n + 4), p.eot_max_ms);
	memcpy(t + n, " now", 5);
	VX_CHECK_INT(conv_policy_eot_silence_ms(&p, t, n + 4), p.eot_min_ms);
	/* one word of 200000 letters */
	memset(t, 'a', n);
	VX_CHECK(conv_policy_eot_silence_ms(&p, t, n) < p.eot_max_ms);
	VX_CHECK_INT(conv_policy_barge(&p, 400, false, t, n), BARGE_INTERRUPT);
	/* 40000 backchannels */
	for (size_t i = 0; i < n; i++)
		t[i] = "yeah "[i % 5];
	VX_CHECK_INT(conv_policy_barge(&p, 1000, true, t, n), BARGE_IGNORE);
	memcpy(t + n - 5, "stop!", 5);
	VX_CHECK_INT(conv_policy_barge(&p, 1000, false, t, n), BARGE_INTERRUPT);
	free(t);
}

/* ---- barge-in ---- */

static const char *const backchannels[] = {
	"uh-huh", "uh huh", "Uh huh.", "uhhuh", "mm-hm", "mm-hmm", "mhm",
	"Mmmhmm", "hmm", "yeah", "Yeah, yeah.", "yes", "yep", "okay", "OK!",
	"ok ok", "right", "sure", "I see", "i see.", "got it", "I got it",
	"all right", "alright", "oh okay", "oh yeah", "mm", "aha",
	"that's right", "makes sense", "yeah okay got it", "Oh, I see!",
	"huh", "n m h m", "an h m", "[laughs] yeah",
};

VX_TEST(backchannels_while_speaking_wait_and_then_are_ignored)
{
	conv_policy_cfg p = adaptive();
	for (size_t i = 0; i < sizeof(backchannels) / sizeof(backchannels[0]); i++) {
		const char *t = backchannels[i];
		enum conv_barge b;
		CHECK_ROW((b = barge(&p, 200, false, t)) == BARGE_WAIT, t, b);
		CHECK_ROW((b = barge(&p, 600, false, t)) == BARGE_WAIT, t, b);
		CHECK_ROW((b = barge(&p, 450, true, t)) == BARGE_IGNORE, t, b);
		CHECK_ROW((b = barge(&p, 1400, true, t)) == BARGE_IGNORE, t, b);
	}
}

VX_TEST(backchannels_that_go_on_too_long_interrupt)
{
	conv_policy_cfg p = adaptive();
	VX_CHECK_INT(barge(&p, 1400, false, "yeah"), BARGE_WAIT);
	VX_CHECK_INT(barge(&p, 1500, false, "yeah"), BARGE_INTERRUPT);
	VX_CHECK_INT(barge(&p, 5000, false, "uh huh uh huh"), BARGE_INTERRUPT);
}

static const char *const interruptions[] = {
	"wait, stop, I meant Tuesday", "wait stop i meant tuesday",
	"wait stop", "no no no", "yeah but I meant Tuesday", "okay stop",
	"hold on", "excuse me", "actually make it Tuesday", "stop talking",
	"uh huh and then what", "I see a problem", "I said Tuesday",
	"got it but no", "wie bitte", "\xe6\xad\xa2\xe3\x82\x81\xe3\x81\xa6 \xe3\x81\xa0",
};

VX_TEST(interruptions_interrupt_at_once)
{
	conv_policy_cfg p = adaptive();
	for (size_t i = 0; i < sizeof(interruptions) / sizeof(interruptions[0]); i++) {
		const char *t = interruptions[i];
		enum conv_barge b;
		CHECK_ROW((b = barge(&p, 100, false, t)) == BARGE_INTERRUPT, t, b);
		CHECK_ROW((b = barge(&p, 400, false, t)) == BARGE_INTERRUPT, t, b);
		CHECK_ROW((b = barge(&p, 900, true, t)) == BARGE_INTERRUPT, t, b);
	}
}

VX_TEST(one_content_word_interrupts_by_barge_min)
{
	conv_policy_cfg p = adaptive();
	VX_CHECK_INT(barge(&p, 200, false, "stop"), BARGE_WAIT);
	VX_CHECK_INT(barge(&p, 299, false, "Stop!"), BARGE_WAIT);
	VX_CHECK_INT(barge(&p, 300, false, "stop"), BARGE_INTERRUPT);
	VX_CHECK_INT(barge(&p, 250, true, "stop"), BARGE_INTERRUPT);
	VX_CHECK_INT(barge(&p, 350, false, "no"), BARGE_INTERRUPT);
	VX_CHECK_INT(barge(&p, 350, false, "wait"), BARGE_INTERRUPT);
	VX_CHECK_INT(barge(&p, 350, false, "\xc3\xa9" "coute"), BARGE_INTERRUPT);
}

VX_TEST(short_sounds_are_ignored_long_ones_interrupt)
{
	conv_policy_cfg p = adaptive();
	/* a cough: no text, or one weak word, ending under barge_min_ms */
	VX_CHECK_INT(barge(&p, 150, false, ""), BARGE_WAIT);
	VX_CHECK_INT(barge(&p, 200, true, ""), BARGE_IGNORE);
	VX_CHECK_INT(conv_policy_barge(&p, 200, true, NULL, 0), BARGE_IGNORE);
	VX_CHECK_INT(barge(&p, 250, true, "the"), BARGE_IGNORE);
	VX_CHECK_INT(barge(&p, 250, true, "[coughs]"), BARGE_IGNORE);
	VX_CHECK_INT(barge(&p, 250, true, "(cough) a"), BARGE_IGNORE);
	VX_CHECK_INT(barge(&p, 250, true, "."), BARGE_IGNORE);
	/* speech with no words yet past barge_min_ms: a real interruption
	 * the recogniser has not caught up with */
	VX_CHECK_INT(barge(&p, 300, false, ""), BARGE_INTERRUPT);
	VX_CHECK_INT(barge(&p, 400, true, ""), BARGE_INTERRUPT);
	VX_CHECK_INT(barge(&p, 400, false, "the"), BARGE_INTERRUPT);
	VX_CHECK_INT(barge(&p, 400, false, "[coughs]"), BARGE_INTERRUPT);
}

VX_TEST(barge_min_comes_from_the_config)
{
	conv_policy_cfg p = adaptive();
	p.barge_min_ms = 500;
	VX_CHECK_INT(barge(&p, 400, false, ""), BARGE_WAIT);
	VX_CHECK_INT(barge(&p, 450, true, ""), BARGE_IGNORE);
	VX_CHECK_INT(barge(&p, 500, false, ""), BARGE_INTERRUPT);
	VX_CHECK_INT(barge(&p, 400, false, "stop"), BARGE_WAIT);
	p.barge_min_ms = 0;
	VX_CHECK_INT(barge(&p, 0, false, ""), BARGE_INTERRUPT);
	VX_CHECK_INT(barge(&p, 0, false, "stop"), BARGE_INTERRUPT);
	VX_CHECK_INT(barge(&p, 0, true, "yeah"), BARGE_IGNORE);
}

VX_TEST(immediate_policy_always_interrupts)
{
	conv_policy_cfg p = before();
	VX_CHECK_INT(barge(&p, 0, false, ""), BARGE_INTERRUPT);
	VX_CHECK_INT(barge(&p, 100, true, ""), BARGE_INTERRUPT);
	VX_CHECK_INT(barge(&p, 400, true, "uh-huh"), BARGE_INTERRUPT);
	VX_CHECK_INT(barge(&p, 400, false, "yeah"), BARGE_INTERRUPT);
	VX_CHECK_INT(barge(&p, 400, false, "wait stop"), BARGE_INTERRUPT);
}

VX_TEST(edge_texts_barge_in)
{
	conv_policy_cfg p = adaptive();
	/* only len bytes: "yeah" of "yeah stop" */
	VX_CHECK_INT(conv_policy_barge(&p, 600, true, "yeah stop", 4), BARGE_IGNORE);
	VX_CHECK_INT(conv_policy_barge(&p, 600, true, "yeah stop", 9), BARGE_INTERRUPT);
	/* "i" alone may be "i see" not yet heard; "i want" is not */
	VX_CHECK_INT(barge(&p, 500, false, "i"), BARGE_INTERRUPT);
	VX_CHECK_INT(barge(&p, 250, false, "i"), BARGE_WAIT);
	VX_CHECK_INT(barge(&p, 500, false, "yeah i"), BARGE_WAIT);
	VX_CHECK_INT(barge(&p, 500, false, "i want"), BARGE_INTERRUPT);
	/* elongated and mixed case */
	VX_CHECK_INT(barge(&p, 600, true, "YEAHHHH"), BARGE_IGNORE);
	VX_CHECK_INT(barge(&p, 600, true, "Okaaay, mmmhmmm"), BARGE_IGNORE);
	VX_CHECK_INT(barge(&p, 600, true, "Okra"), BARGE_INTERRUPT);
	/* non-ASCII letters are content, broken UTF-8 too, and never read past len */
	VX_CHECK_INT(barge(&p, 600, false, "ja genau"), BARGE_INTERRUPT);
	VX_CHECK_INT(barge(&p, 600, true, "\xc3\xa4h"), BARGE_INTERRUPT);
	VX_CHECK_INT(barge(&p, 600, false, "yeah \xf0\x9f"), BARGE_INTERRUPT);
	VX_CHECK_INT(conv_policy_barge(&p, 600, true, "yeah \xe2\x80\x99", 8), BARGE_IGNORE);
	VX_CHECK_INT(conv_policy_barge(&p, 600, true, "yeah \xe2\x80\x99", 6), BARGE_INTERRUPT);
	VX_CHECK_INT(barge(&p, 600, true, "yeah\xe2\x80\xa6 okay\xef\xbc\x81"), BARGE_IGNORE);
}

VX_TEST_MAIN(defaults_are_the_flag_defaults, finished_turns_need_little_silence,
	     unfinished_turns_outlast_a_long_pause, graded_between_the_bounds,
	     bounds_come_from_the_config, fixed_policy_always_answers_the_minimum,
	     punctuation_and_case_do_not_change_the_words, edge_texts_end_of_turn,
	     very_long_texts_are_read_to_the_end,
	     backchannels_while_speaking_wait_and_then_are_ignored,
	     backchannels_that_go_on_too_long_interrupt, interruptions_interrupt_at_once,
	     one_content_word_interrupts_by_barge_min, short_sounds_are_ignored_long_ones_interrupt,
	     barge_min_comes_from_the_config, immediate_policy_always_interrupts,
	     edge_texts_barge_in)
