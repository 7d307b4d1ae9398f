/* test_orch_turn.c - the turn record: played text after a barge-in and the
 * per-stage timings. */
#include <errno.h>
#include <stdlib.h>

#include "turn.h"
#include "vx_test.h"

#define BPM 32.0   /* 16 kHz pcm16 */

static char *played(const turn *t, int64_t now)
{
	vx_buf b = {0};
	turn_played_text(t, now, &b);
	return b.data ? b.data : calloc(1, 1);
}

VX_TEST(played_text_keeps_whole_sentences_heard)
{
	turn t;
	turn_init(&t, 1, BPM);
	int a = turn_add_sentence(&t, "Hello there.", 12);
	int b = turn_add_sentence(&t, "How are you today?", 18);
	turn_audio(&t, a, 32 * 1000);   /* 1 s */
	t.sent[a].done = true;
	turn_audio(&t, b, 32 * 2000);   /* 2 s */
	t.sent[b].done = true;
	t.t_audio_start = 1000000;
	char *s = played(&t, 1000000 + 1000 * 1000);   /* 1 s played */
	VX_CHECK_STR(s, "Hello there.");
	free(s);
	s = played(&t, 1000000 + 5000 * 1000);         /* all played */
	VX_CHECK_STR(s, "Hello there. How are you today?");
	free(s);
	turn_release(&t);
}

VX_TEST(played_text_cuts_the_sentence_being_played_at_a_word)
{
	turn t;
	turn_init(&t, 1, BPM);
	int a = turn_add_sentence(&t, "one two three four", 18);
	turn_audio(&t, a, 32 * 4000);
	t.sent[a].done = true;
	t.t_audio_start = 1;
	char *s = played(&t, 1 + 2000 * 1000);   /* half of it */
	VX_CHECK_STR(s, "one two");
	free(s);
	turn_release(&t);
}

VX_TEST(played_text_is_bounded_by_audio_sent)
{
	turn t;
	turn_init(&t, 1, BPM);
	int a = turn_add_sentence(&t, "First.", 6);
	turn_add_sentence(&t, "Second sentence never sent.", 27);
	turn_audio(&t, a, 32 * 500);
	t.sent[a].done = true;
	t.t_audio_start = 1;
	char *s = played(&t, 1 + 60 * 1000000LL);   /* a minute later */
	VX_CHECK_STR(s, "First.");
	free(s);
	turn_release(&t);
}

VX_TEST(nothing_played_before_audio_start)
{
	turn t;
	turn_init(&t, 1, BPM);
	turn_add_sentence(&t, "Hi.", 3);
	char *s = played(&t, 123456789);
	VX_CHECK_STR(s, "");
	free(s);
	turn_release(&t);
}

VX_TEST(timings_are_spans_and_overhead_is_the_rest)
{
	turn t;
	turn_init(&t, 2, BPM);
	t.t_input_end = 1000000;
	t.t_final = 1100000;           /* stt 100 ms */
	t.t_llm_request = 1101000;
	t.t_llm_first_token = 1150000; /* 49 ms */
	t.t_first_sentence = 1200000;  /* 99 ms */
	t.t_tts_first_audio = 1250000; /* 50 ms */
	t.t_audio_start = 1252000;     /* v2v 252 ms */
	t.t_end = 2000000;
	turn_timings m;
	turn_get_timings(&t, &m);
	VX_CHECK_INT(m.stt_ms, 100);
	VX_CHECK_INT(m.llm_first_token_ms, 49);
	VX_CHECK_INT(m.llm_first_sentence_ms, 99);
	VX_CHECK_INT(m.tts_first_audio_ms, 50);
	VX_CHECK_INT(m.forward_ms, 2);
	VX_CHECK_INT(m.voice_to_voice_ms, 252);
	VX_CHECK_INT(m.overhead_ms, 3);
	VX_CHECK_INT(m.total_ms, 1000);
	vx_buf b = {0};
	turn_timings_json(&t, &b);
	VX_CHECK(strstr(b.data, "\"stt_ms\":100.00") != NULL);
	VX_CHECK(strstr(b.data, "\"voice_to_voice_ms\":252.00") != NULL);
	vx_buf_release(&b);
	turn_release(&t);
}

VX_TEST(end_of_turn_wait_counts_in_voice_to_voice_not_in_stt_or_overhead)
{
	turn t;
	turn_init(&t, 3, BPM);
	t.t_input_end = 1000000;        /* VAD: speech ended */
	t.t_eot = 1600000;              /* the policy waited 600 ms more */
	t.t_final = 1700000;            /* stt 100 ms */
	t.t_llm_request = 1701000;
	t.t_first_sentence = 1800000;   /* 99 ms */
	t.t_tts_first_audio = 1850000;  /* 50 ms */
	t.t_audio_start = 1852000;      /* v2v 852 ms */
	turn_timings m;
	turn_get_timings(&t, &m);
	VX_CHECK_INT(m.stt_ms, 100);
	VX_CHECK_INT(m.voice_to_voice_ms, 852);
	VX_CHECK_INT(m.overhead_ms, 3);
	turn_release(&t);
}

VX_TEST(missing_milestones_give_null)
{
	turn t;
	turn_init(&t, 1, BPM);
	t.from_text = true;
	t.t_input_end = 5;
	vx_buf b = {0};
	turn_timings_json(&t, &b);
	VX_CHECK(strstr(b.data, "\"stt_ms\":null") != NULL);
	VX_CHECK(strstr(b.data, "\"voice_to_voice_ms\":null") != NULL);
	vx_buf_release(&b);
	turn_release(&t);
}

VX_TEST(sentence_limit_is_enforced)
{
	turn t;
	turn_init(&t, 1, BPM);
	int r = 0;
	for (int i = 0; i <= TURN_MAX_SENTENCES && r >= 0; i++)
		r = turn_add_sentence(&t, "x.", 2);
	VX_CHECK_INT(r, -E2BIG);
	VX_CHECK_INT(t.n_sent, TURN_MAX_SENTENCES);
	turn_release(&t);
}

VX_TEST_MAIN(played_text_keeps_whole_sentences_heard,
	     played_text_cuts_the_sentence_being_played_at_a_word,
	     played_text_is_bounded_by_audio_sent, nothing_played_before_audio_start,
	     timings_are_spans_and_overhead_is_the_rest,
	     end_of_turn_wait_counts_in_voice_to_voice_not_in_stt_or_overhead,
	     missing_milestones_give_null,
	     sentence_limit_is_enforced)
