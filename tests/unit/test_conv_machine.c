/* test_conv_machine.c - the conversation's state machine driven by event
 * sequences, no network: phases and the actions that come out (speech
 * during the reply with either barge-in policy, speech before the first
 * audio, stage errors in each phase, cancels racing completions, a link
 * reconnect mid-turn, end of turn waiting for the policy's silence, stop,
 * typed text during the reply; with marks, what was heard is what the
 * client confirmed; a greeting said without the LLM). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conv_machine.h"
#include "vx_test.h"

#define MS 1000   /* us */
#define BPM 32.0  /* 16 kHz pcm16 */

static int64_t T = 1000000;   /* the clock the events bring */

static void setup(conv_machine *m, enum conv_eot_policy eot, enum conv_barge_policy barge,
		  bool realtime)
{
	conv_machine_cfg c = {
		.realtime = realtime, .barge_in = true, .stage_timeout_us = 15000 * MS,
		.bytes_per_ms = BPM, .utter_max = 60 * 32000,
	};
	conv_policy_defaults(&c.policy);
	c.policy.eot = eot;
	c.policy.eot_min_ms = 300;
	c.policy.eot_max_ms = 1500;
	c.policy.barge = barge;
	c.policy.barge_min_ms = 300;
	conv_machine_init(m, &c);
}

static int ev(conv_machine *m, conv_event e)
{
	e.now = T;
	if (e.text && !e.len)
		e.len = strlen(e.text);
	return conv_machine_event(m, &e);
}
#define EV(m, ...) ev(m, (conv_event){ __VA_ARGS__ })

static int count(const conv_machine *m, enum conv_act_kind k)
{
	int n = 0;
	for (size_t i = 0; i < m->n_acts; i++)
		n += m->acts[i].kind == k;
	return n;
}

static const conv_action *find(const conv_machine *m, enum conv_act_kind k)
{
	for (size_t i = 0; i < m->n_acts; i++)
		if (m->acts[i].kind == k)
			return &m->acts[i];
	return NULL;
}

/* Position of the client event of this type among the actions, or -1. */
static int emitted(const conv_machine *m, const char *type)
{
	for (size_t i = 0; i < m->n_acts; i++)
		if ((m->acts[i].kind == CONV_ACT_EMIT && !strcmp(m->acts[i].type, type)) ||
		    (m->acts[i].kind == CONV_ACT_EMIT_INTERRUPTED && !strcmp(type, "interrupted")) ||
		    (m->acts[i].kind == CONV_ACT_EMIT_AUDIO_START && !strcmp(type, "audio_start")))
			return (int)i;
	return -1;
}

static int index_of(const conv_machine *m, enum conv_act_kind k)
{
	const conv_action *a = find(m, k);
	return a ? (int)(a - m->acts) : -1;
}

/* A typed turn whose reply has one sentence speaking: RESPONDING. */
static void reply_speaking(conv_machine *m, const char *user)
{
	VX_CHECK_INT(EV(m, .kind = CONV_EV_TEXT, .text = user), 0);
	const conv_action *a = find(m, CONV_ACT_LLM_REQUEST);
	VX_CHECK(a && !strcmp(a->text, user) && !strcmp(a->id, "t1"));
	VX_CHECK_INT(m->phase, PH_RESPONDING);
	EV(m, .kind = CONV_EV_LLM_TOKEN, .id = "t1", .text = "Hello there, friend.");
	EV(m, .kind = CONV_EV_LLM_TOKEN, .id = "t1", .text = " How are you");
	a = find(m, CONV_ACT_TTS_SEND);
	VX_CHECK(a && a->index == 0 && a->seq == 1 && !strcmp(a->text, "Hello there, friend."));
	EV(m, .kind = CONV_EV_TTS_START, .id = "t1.0");
	EV(m, .kind = CONV_EV_TTS_AUDIO, .bytes = 32 * 500);   /* 0.5 s */
	VX_CHECK(emitted(m, "audio_start") >= 0);
	VX_CHECK_INT(count(m, CONV_ACT_AUDIO_TO_CLIENT), 1);
}

/* Speech begins: VAD detected it (speech_ms counts from here). */
static void speech_start(conv_machine *m)
{
	EV(m, .kind = CONV_EV_SPEECH_START, .start_ms = 5000);
}

VX_TEST(text_turn_runs_to_its_end_and_plays_out)
{
	conv_machine m;
	setup(&m, EOT_FIXED, BARGE_IMMEDIATE, true);
	reply_speaking(&m, "hi");
	EV(&m, .kind = CONV_EV_LLM_TOKEN, .id = "t1", .text = " today?");
	EV(&m, .kind = CONV_EV_TTS_DONE, .id = "t1.0");
	EV(&m, .kind = CONV_EV_LLM_DONE, .id = "t1");
	const conv_action *a = find(&m, CONV_ACT_TTS_SEND);
	VX_CHECK(a && a->index == 1 && !strcmp(a->text, "How are you today?"));
	EV(&m, .kind = CONV_EV_TTS_START, .id = "t1.1");
	EV(&m, .kind = CONV_EV_TTS_AUDIO, .bytes = 32 * 500);
	EV(&m, .kind = CONV_EV_TTS_DONE, .id = "t1.1");
	VX_CHECK(emitted(&m, "audio_end") >= 0);
	VX_CHECK_INT(m.phase, PH_PLAYING);   /* the client still plays 1 s */
	T += 500 * MS;
	EV(&m, .kind = CONV_EV_TICK);
	VX_CHECK_INT(m.phase, PH_PLAYING);
	T += 600 * MS;
	EV(&m, .kind = CONV_EV_TICK);
	VX_CHECK_INT(m.phase, PH_IDLE);
	a = find(&m, CONV_ACT_FINISH);
	VX_CHECK(a && !a->interrupted && !a->error);
	VX_CHECK_STR(a->text, "Hello there, friend. How are you today?");
	VX_CHECK_INT(count(&m, CONV_ACT_CANCEL_REPLY), 0);
	conv_machine_release(&m);
}

VX_TEST(spoken_turn_with_fixed_end_of_turn)
{
	conv_machine m;
	setup(&m, EOT_FIXED, BARGE_BACKCHANNEL, false);
	EV(&m, .kind = CONV_EV_AUDIO, .bytes = 640);
	VX_CHECK_INT(count(&m, CONV_ACT_AUDIO_TO_VAD), 1);
	VX_CHECK_INT(count(&m, CONV_ACT_AUDIO_TO_STT), 0);
	EV(&m, .kind = CONV_EV_SPEECH_START, .start_ms = 1200);
	VX_CHECK_INT(m.phase, PH_LISTENING);
	VX_CHECK(emitted(&m, "speech_started") >= 0);
	VX_CHECK(find(&m, CONV_ACT_STT_BEGIN) && find(&m, CONV_ACT_STT_BEGIN)->at_ms == 1200);
	EV(&m, .kind = CONV_EV_AUDIO, .bytes = 640, .utter_len = 9600);
	VX_CHECK_INT(count(&m, CONV_ACT_AUDIO_TO_STT), 1);
	VX_CHECK_INT(count(&m, CONV_ACT_AUDIO_TO_UTTER), 1);
	EV(&m, .kind = CONV_EV_STT_PARTIAL, .text = "what time");
	const conv_action *a = find(&m, CONV_ACT_EMIT);
	VX_CHECK(a && a->with_text && !strcmp(a->type, "transcript_partial") &&
		 !strcmp(a->text, "what time"));
	EV(&m, .kind = CONV_EV_SPEECH_END);
	VX_CHECK(emitted(&m, "speech_stopped") >= 0);
	VX_CHECK_INT(count(&m, CONV_ACT_STT_END), 1);   /* fixed: at once */
	VX_CHECK_INT(m.phase, PH_TRANSCRIBING);
	T += 200 * MS;
	EV(&m, .kind = CONV_EV_STT_FINAL, .text = "what time is it");
	VX_CHECK(emitted(&m, "transcript") >= 0);
	a = find(&m, CONV_ACT_LLM_REQUEST);
	VX_CHECK(a && !strcmp(a->text, "what time is it"));
	VX_CHECK_INT(m.phase, PH_RESPONDING);
	conv_machine_release(&m);
}

/* Speech over the reply until the speech ends: the adaptive end of turn
 * waits the policy's silence; speech that resumes continues the turn. */
VX_TEST(end_of_turn_waits_for_the_policy_and_resumed_speech_continues)
{
	conv_machine m;
	setup(&m, EOT_ADAPTIVE, BARGE_BACKCHANNEL, false);
	const char *open = "my number is five five five";
	int need = conv_policy_eot_silence_ms(&m.cfg.policy, open, strlen(open));
	VX_CHECK(need > 1000);   /* the policy reads it unfinished */
	speech_start(&m);
	EV(&m, .kind = CONV_EV_STT_PARTIAL, .text = open);
	EV(&m, .kind = CONV_EV_SPEECH_END);
	int64_t end = T;
	VX_CHECK_INT(m.phase, PH_PAUSED);
	VX_CHECK_INT(count(&m, CONV_ACT_STT_END), 0);
	EV(&m, .kind = CONV_EV_AUDIO, .bytes = 640, .utter_len = 32000);
	VX_CHECK_INT(count(&m, CONV_ACT_AUDIO_TO_STT), 1);   /* the stream goes on */
	T = end + (int64_t)(need - 300 - 100) * MS;
	EV(&m, .kind = CONV_EV_TICK);
	VX_CHECK_INT(m.phase, PH_PAUSED);
	/* A 1.2 s pause mid-thought (VAD waited 300 ms of it): speech again. */
	T = end + 900 * MS;
	speech_start(&m);
	VX_CHECK_INT(m.phase, PH_LISTENING);
	VX_CHECK_INT(count(&m, CONV_ACT_STT_BEGIN), 0);      /* same STT stream */
	VX_CHECK(emitted(&m, "speech_started") >= 0);
	VX_CHECK_INT(m.turn_seq, 1);
	EV(&m, .kind = CONV_EV_STT_PARTIAL, .text = "my number is five five five one two three four. thanks.");
	EV(&m, .kind = CONV_EV_SPEECH_END);
	end = T;
	const char *done = "my number is five five five one two three four. thanks.";
	int need2 = conv_policy_eot_silence_ms(&m.cfg.policy, done, strlen(done));
	VX_CHECK(need2 < need);
	if (need2 > 300) {
		VX_CHECK_INT(m.phase, PH_PAUSED);
		T = end + (int64_t)(need2 - 300) * MS;
		EV(&m, .kind = CONV_EV_TICK);
	}
	VX_CHECK_INT(m.phase, PH_TRANSCRIBING);
	VX_CHECK_INT(count(&m, CONV_ACT_STT_END), 1);
	VX_CHECK_INT(m.t.t_eot, end + (int64_t)(need2 - 300) * MS);
	VX_CHECK_INT(m.t.t_input_end, end);
	conv_machine_release(&m);
}

VX_TEST(a_finished_question_ends_the_turn_sooner)
{
	conv_machine m;
	setup(&m, EOT_ADAPTIVE, BARGE_BACKCHANNEL, false);
	const char *q = "what time is it?";
	int need = conv_policy_eot_silence_ms(&m.cfg.policy, q, strlen(q));
	VX_CHECK(need < 600);
	speech_start(&m);
	EV(&m, .kind = CONV_EV_STT_PARTIAL, .text = q);
	EV(&m, .kind = CONV_EV_SPEECH_END);
	int64_t end = T;
	if (need > 300) {
		VX_CHECK_INT(m.phase, PH_PAUSED);
		T = end + (int64_t)(need - 300) * MS;
		EV(&m, .kind = CONV_EV_TICK);
	}
	VX_CHECK_INT(m.phase, PH_TRANSCRIBING);
	VX_CHECK_INT(count(&m, CONV_ACT_STT_END), 1);
	conv_machine_release(&m);
}

VX_TEST(immediate_barge_in_cancels_once_and_the_speech_is_the_next_turn)
{
	conv_machine m;
	setup(&m, EOT_FIXED, BARGE_IMMEDIATE, true);
	reply_speaking(&m, "tell me a story");
	T += 450 * MS;   /* 0.45 s of 0.5 s played */
	speech_start(&m);
	VX_CHECK_INT(count(&m, CONV_ACT_CANCEL_REPLY), 1);
	const conv_action *c = find(&m, CONV_ACT_CANCEL_REPLY);
	VX_CHECK(c->llm && c->tts);
	const conv_action *i = find(&m, CONV_ACT_EMIT_INTERRUPTED);
	const conv_action *f = find(&m, CONV_ACT_FINISH);
	VX_CHECK(i && f && f->interrupted);
	VX_CHECK_STR(i->text, f->text);   /* what was heard is what is stored */
	VX_CHECK(strlen(f->text) > 0 && !strncmp(f->text, "Hello", 5));
	VX_CHECK(!strcmp(f->turn->user.data, "tell me a story"));
	VX_CHECK(emitted(&m, "interrupted") < emitted(&m, "speech_started"));
	VX_CHECK(index_of(&m, CONV_ACT_CANCEL_REPLY) < index_of(&m, CONV_ACT_EMIT_INTERRUPTED));
	VX_CHECK(find(&m, CONV_ACT_STT_BEGIN) != NULL);
	VX_CHECK_INT(m.phase, PH_LISTENING);
	VX_CHECK_INT(m.t.seq, 2);
	/* Cancel racing completion: the old request's done, its audio. */
	EV(&m, .kind = CONV_EV_LLM_DONE, .id = "t1");
	VX_CHECK_INT((int)m.n_acts, 0);
	EV(&m, .kind = CONV_EV_TTS_AUDIO, .bytes = 640);
	VX_CHECK_INT((int)m.n_acts, 0);
	EV(&m, .kind = CONV_EV_TTS_DONE, .id = "t1.0");
	VX_CHECK_INT((int)m.n_acts, 0);
	EV(&m, .kind = CONV_EV_TTS_CANCELLED);
	EV(&m, .kind = CONV_EV_TTS_AUDIO, .bytes = 640);
	VX_CHECK_INT((int)m.n_acts, 0);   /* still no reply running */
	EV(&m, .kind = CONV_EV_SPEECH_END);
	VX_CHECK_INT(count(&m, CONV_ACT_STT_END), 1);
	EV(&m, .kind = CONV_EV_STT_FINAL, .text = "stop that");
	const conv_action *a = find(&m, CONV_ACT_LLM_REQUEST);
	VX_CHECK(a && !strcmp(a->id, "t2") && !strcmp(a->text, "stop that"));
	conv_machine_release(&m);
}

VX_TEST(backchannel_is_ignored_and_the_reply_goes_on)
{
	conv_machine m;
	setup(&m, EOT_FIXED, BARGE_BACKCHANNEL, true);
	reply_speaking(&m, "tell me a story");
	speech_start(&m);
	VX_CHECK_INT(count(&m, CONV_ACT_CANCEL_REPLY), 0);
	VX_CHECK(find(&m, CONV_ACT_STT_BEGIN) != NULL);   /* its words are heard */
	VX_CHECK(emitted(&m, "speech_started") < 0);
	EV(&m, .kind = CONV_EV_AUDIO, .bytes = 640, .utter_len = 9600);
	VX_CHECK_INT(count(&m, CONV_ACT_AUDIO_TO_STT), 1);
	EV(&m, .kind = CONV_EV_STT_PARTIAL, .text = "yeah");
	VX_CHECK_INT((int)m.n_acts, 0);   /* no partial for the client */
	T += 20 * MS;
	EV(&m, .kind = CONV_EV_TICK);
	VX_CHECK_INT(count(&m, CONV_ACT_CANCEL_REPLY), 0);
	T += 100 * MS;
	EV(&m, .kind = CONV_EV_SPEECH_END);
	VX_CHECK_INT(count(&m, CONV_ACT_CANCEL_REPLY), 0);
	const conv_action *r = find(&m, CONV_ACT_LINK_RESET);
	VX_CHECK(r && r->stage == CONV_STT);   /* its STT round dropped */
	VX_CHECK(!m.cand.on);
	VX_CHECK_INT(m.phase, PH_RESPONDING);
	/* The reply continues untouched. */
	EV(&m, .kind = CONV_EV_TTS_AUDIO, .bytes = 640);
	VX_CHECK_INT(count(&m, CONV_ACT_AUDIO_TO_CLIENT), 1);
	EV(&m, .kind = CONV_EV_STT_FINAL, .text = "yeah");
	VX_CHECK_INT((int)m.n_acts, 0);
	conv_machine_release(&m);
}

VX_TEST(backchannel_policy_interrupts_real_speech_by_barge_min_ms)
{
	conv_machine m;
	setup(&m, EOT_FIXED, BARGE_BACKCHANNEL, true);
	reply_speaking(&m, "tell me a story");
	speech_start(&m);
	VX_CHECK_INT(count(&m, CONV_ACT_CANCEL_REPLY), 0);
	T += 250 * MS;
	EV(&m, .kind = CONV_EV_TICK);   /* 250 ms since the detection: the STT's time */
	VX_CHECK_INT(count(&m, CONV_ACT_CANCEL_REPLY), 0);
	T += 50 * MS;
	EV(&m, .kind = CONV_EV_TICK);   /* 300 ms, no words yet */
	VX_CHECK_INT(count(&m, CONV_ACT_CANCEL_REPLY), 1);
	VX_CHECK(emitted(&m, "interrupted") >= 0);
	VX_CHECK(emitted(&m, "interrupted") < emitted(&m, "speech_started"));
	VX_CHECK_INT(m.phase, PH_LISTENING);
	VX_CHECK_INT(count(&m, CONV_ACT_STT_BEGIN), 0);   /* the candidate's round goes on */
	T += 50 * MS;
	EV(&m, .kind = CONV_EV_TICK);
	VX_CHECK_INT(count(&m, CONV_ACT_CANCEL_REPLY), 0);   /* once per barge-in */
	EV(&m, .kind = CONV_EV_STT_PARTIAL, .text = "wait a second");
	VX_CHECK(emitted(&m, "transcript_partial") >= 0);
	conv_machine_release(&m);
}

VX_TEST(candidate_ended_before_the_decision_becomes_the_turn)
{
	conv_machine m;
	setup(&m, EOT_FIXED, BARGE_BACKCHANNEL, true);
	reply_speaking(&m, "tell me a story");
	speech_start(&m);
	EV(&m, .kind = CONV_EV_STT_PARTIAL, .text = "stop");
	VX_CHECK_INT(count(&m, CONV_ACT_CANCEL_REPLY), 0);   /* one word, brief: wait */
	T += 10 * MS;
	EV(&m, .kind = CONV_EV_SPEECH_END);   /* ended: content interrupts */
	VX_CHECK_INT(count(&m, CONV_ACT_CANCEL_REPLY), 1);
	VX_CHECK(emitted(&m, "speech_stopped") > emitted(&m, "speech_started"));
	VX_CHECK_INT(m.phase, PH_TRANSCRIBING);   /* fixed: ended at once */
	VX_CHECK_INT(count(&m, CONV_ACT_STT_END), 1);
	EV(&m, .kind = CONV_EV_STT_FINAL, .text = "stop");
	VX_CHECK(find(&m, CONV_ACT_LLM_REQUEST) != NULL);
	conv_machine_release(&m);
}

VX_TEST(speech_before_the_first_audio_interrupts_with_nothing_heard)
{
	conv_machine m;
	setup(&m, EOT_FIXED, BARGE_IMMEDIATE, true);
	EV(&m, .kind = CONV_EV_TEXT, .text = "hello");
	EV(&m, .kind = CONV_EV_LLM_TOKEN, .id = "t1", .text = "Hi.");
	speech_start(&m);
	const conv_action *c = find(&m, CONV_ACT_CANCEL_REPLY);
	VX_CHECK(c && c->llm && !c->tts);
	VX_CHECK_INT(count(&m, CONV_ACT_CANCEL_REPLY), 1);
	const conv_action *i = find(&m, CONV_ACT_EMIT_INTERRUPTED);
	VX_CHECK(i && i->len == 0 && !strcmp(i->text, ""));
	VX_CHECK(emitted(&m, "audio_end") < 0);
	VX_CHECK_INT(m.phase, PH_LISTENING);
	conv_machine_release(&m);
}

VX_TEST(stop_message_interrupts_without_speech_and_is_ignored_when_idle)
{
	conv_machine m;
	setup(&m, EOT_FIXED, BARGE_BACKCHANNEL, true);
	EV(&m, .kind = CONV_EV_STOP);
	VX_CHECK_INT((int)m.n_acts, 0);
	reply_speaking(&m, "tell me a story");
	T += 250 * MS;
	EV(&m, .kind = CONV_EV_STOP);
	VX_CHECK_INT(count(&m, CONV_ACT_CANCEL_REPLY), 1);
	const conv_action *f = find(&m, CONV_ACT_FINISH);
	VX_CHECK(f && f->interrupted);
	VX_CHECK(emitted(&m, "interrupted") >= 0);
	VX_CHECK(emitted(&m, "speech_started") < 0);
	VX_CHECK_INT(m.phase, PH_IDLE);
	EV(&m, .kind = CONV_EV_STOP);
	VX_CHECK_INT((int)m.n_acts, 0);
	conv_machine_release(&m);
}

VX_TEST(typed_text_during_the_reply_interrupts_it_and_drops_a_candidate)
{
	conv_machine m;
	setup(&m, EOT_FIXED, BARGE_BACKCHANNEL, true);
	reply_speaking(&m, "tell me a story");
	speech_start(&m);   /* a candidate */
	VX_CHECK_INT(EV(&m, .kind = CONV_EV_TEXT, .text = "never mind"), 0);
	VX_CHECK_INT(count(&m, CONV_ACT_CANCEL_REPLY), 1);
	VX_CHECK(find(&m, CONV_ACT_LINK_RESET) != NULL);
	const conv_action *a = find(&m, CONV_ACT_LLM_REQUEST);
	VX_CHECK(a && !strcmp(a->text, "never mind") && !strcmp(a->id, "t2"));
	VX_CHECK(emitted(&m, "transcript") < 0);   /* typed: no transcript */
	/* While the user speaks, text is refused. */
	conv_machine m2;
	setup(&m2, EOT_FIXED, BARGE_BACKCHANNEL, true);
	speech_start(&m2);
	VX_CHECK_INT(EV(&m2, .kind = CONV_EV_TEXT, .text = "x"), -EBUSY);
	conv_machine_release(&m2);
	conv_machine_release(&m);
}

VX_TEST(stage_error_in_each_phase_fails_the_turn_once)
{
	conv_machine m;
	/* LISTENING: STT fails. */
	setup(&m, EOT_FIXED, BARGE_IMMEDIATE, true);
	speech_start(&m);
	EV(&m, .kind = CONV_EV_STT_ERROR, .code = "engine", .text = "broken");
	const conv_action *e = find(&m, CONV_ACT_ERROR);
	VX_CHECK(e && e->stage == CONV_STT && !strcmp(e->code, "stt_failed"));
	VX_CHECK_INT(count(&m, CONV_ACT_STT_CANCEL), 1);
	const conv_action *f = find(&m, CONV_ACT_FINISH);
	VX_CHECK(f && f->error && !strcmp(f->error, "stt"));
	VX_CHECK_INT(m.phase, PH_IDLE);
	/* PAUSED (adaptive end of turn waiting): VAD goes away, the turn ends
	 * at once with what was said. */
	m.cfg.policy.eot = EOT_ADAPTIVE;
	speech_start(&m);
	EV(&m, .kind = CONV_EV_STT_PARTIAL, .text = "my number is");
	EV(&m, .kind = CONV_EV_SPEECH_END);
	VX_CHECK_INT(m.phase, PH_PAUSED);
	EV(&m, .kind = CONV_EV_AUDIO, .bytes = 640);   /* VAD now in use */
	EV(&m, .kind = CONV_EV_LINK_DOWN, .stage = CONV_VAD, .text = "closed");
	e = find(&m, CONV_ACT_ERROR);
	VX_CHECK(e && e->stage == CONV_VAD && !strcmp(e->code, "unavailable"));
	VX_CHECK_INT(count(&m, CONV_ACT_STT_END), 1);
	VX_CHECK_INT(m.phase, PH_TRANSCRIBING);
	EV(&m, .kind = CONV_EV_STT_ERROR, .code = "engine", .text = "broken");
	VX_CHECK_INT(m.phase, PH_IDLE);
	m.cfg.policy.eot = EOT_FIXED;
	/* TRANSCRIBING: STT unreachable. */
	speech_start(&m);
	EV(&m, .kind = CONV_EV_SPEECH_END);
	EV(&m, .kind = CONV_EV_LINK_DOWN, .stage = CONV_STT, .text = "cannot reach voxline-stt");
	e = find(&m, CONV_ACT_ERROR);
	VX_CHECK(e && !strcmp(e->code, "unavailable") && !strcmp(e->text, "cannot reach voxline-stt"));
	VX_CHECK_INT(m.phase, PH_IDLE);
	/* RESPONDING: LLM error; then TTS error. */
	EV(&m, .kind = CONV_EV_TEXT, .text = "hi");
	EV(&m, .kind = CONV_EV_LLM_ERROR, .id = "t4", .code = "engine", .text = "oops");
	e = find(&m, CONV_ACT_ERROR);
	VX_CHECK(e && e->stage == CONV_LLM && !strcmp(e->code, "llm_failed"));
	VX_CHECK_INT(count(&m, CONV_ACT_CANCEL_REPLY), 0);   /* nothing left running */
	VX_CHECK_INT(m.phase, PH_IDLE);
	EV(&m, .kind = CONV_EV_TEXT, .text = "hi");
	EV(&m, .kind = CONV_EV_LLM_TOKEN, .id = "t5", .text = "One. Two.");
	EV(&m, .kind = CONV_EV_TTS_ERROR, .id = "t5.0", .code = "engine", .text = "no voice");
	e = find(&m, CONV_ACT_ERROR);
	VX_CHECK(e && e->stage == CONV_TTS && !strcmp(e->code, "tts_failed"));
	VX_CHECK_INT(count(&m, CONV_ACT_CANCEL_REPLY), 1);   /* the LLM still ran */
	VX_CHECK_INT(m.phase, PH_IDLE);
	conv_machine_release(&m);
	/* PLAYING: nothing waits on a stage, a TTS link loss is no error. */
	setup(&m, EOT_FIXED, BARGE_IMMEDIATE, true);
	reply_speaking(&m, "hi");
	EV(&m, .kind = CONV_EV_LLM_DONE, .id = "t1");
	EV(&m, .kind = CONV_EV_TTS_DONE, .id = "t1.0");
	EV(&m, .kind = CONV_EV_TTS_DONE, .id = "t1.1");
	VX_CHECK_INT(m.phase, PH_PLAYING);
	EV(&m, .kind = CONV_EV_LINK_DOWN, .stage = CONV_TTS, .text = "closed");
	VX_CHECK_INT((int)m.n_acts, 0);
	VX_CHECK_INT(m.phase, PH_PLAYING);
	conv_machine_release(&m);
	/* Timeout: the stage is reset and named. */
	setup(&m, EOT_FIXED, BARGE_IMMEDIATE, true);
	EV(&m, .kind = CONV_EV_TEXT, .text = "hi");
	T += 16000 * MS;
	EV(&m, .kind = CONV_EV_TICK);
	const conv_action *r = find(&m, CONV_ACT_LINK_RESET);
	VX_CHECK(r && r->stage == CONV_LLM);
	e = find(&m, CONV_ACT_ERROR);
	VX_CHECK(e && !strcmp(e->code, "timeout") && e->stage == CONV_LLM);
	VX_CHECK_INT(m.phase, PH_IDLE);
	/* IDLE: a VAD error is reported, nothing else happens. */
	EV(&m, .kind = CONV_EV_VAD_ERROR, .text = "bad audio");
	VX_CHECK_INT(count(&m, CONV_ACT_ERROR), 1);
	VX_CHECK_INT(count(&m, CONV_ACT_FINISH), 0);
	conv_machine_release(&m);
}

VX_TEST(a_link_reconnect_mid_turn_sends_the_work_again)
{
	conv_machine m;
	setup(&m, EOT_FIXED, BARGE_IMMEDIATE, false);
	speech_start(&m);
	EV(&m, .kind = CONV_EV_SPEECH_END);
	EV(&m, .kind = CONV_EV_LINK_UP, .stage = CONV_STT);
	VX_CHECK(index_of(&m, CONV_ACT_STT_UTTER) >= 0 &&
		 index_of(&m, CONV_ACT_STT_UTTER) < index_of(&m, CONV_ACT_STT_END));
	EV(&m, .kind = CONV_EV_STT_FINAL, .text = "hello");
	EV(&m, .kind = CONV_EV_LINK_UP, .stage = CONV_LLM);
	VX_CHECK_INT(count(&m, CONV_ACT_LLM_RESEND), 1);
	EV(&m, .kind = CONV_EV_LLM_TOKEN, .id = "t1", .text = "One. Two. Three");
	EV(&m, .kind = CONV_EV_TTS_DONE, .id = "t1.0");
	EV(&m, .kind = CONV_EV_LINK_UP, .stage = CONV_TTS);
	VX_CHECK_INT(count(&m, CONV_ACT_TTS_SEND), 1);   /* only "Two." is unfinished */
	VX_CHECK_INT(find(&m, CONV_ACT_TTS_SEND)->index, 1);
	/* "overloaded" STT: a new stream later with the utterance so far. */
	conv_machine m2;
	setup(&m2, EOT_FIXED, BARGE_IMMEDIATE, false);
	speech_start(&m2);
	EV(&m2, .kind = CONV_EV_STT_ERROR, .code = "overloaded", .text = "busy");
	VX_CHECK(find(&m2, CONV_ACT_LINK_RESET) != NULL);
	EV(&m2, .kind = CONV_EV_AUDIO, .bytes = 640);
	VX_CHECK_INT(count(&m2, CONV_ACT_AUDIO_TO_UTTER), 1);
	VX_CHECK_INT(count(&m2, CONV_ACT_AUDIO_TO_STT), 0);
	T += 150 * MS;
	EV(&m2, .kind = CONV_EV_TICK);
	VX_CHECK_INT(count(&m2, CONV_ACT_STT_UTTER), 1);
	VX_CHECK_INT(m2.phase, PH_LISTENING);
	conv_machine_release(&m2);
	conv_machine_release(&m);
}

VX_TEST(close_mid_reply_stores_it_as_interrupted)
{
	conv_machine m;
	setup(&m, EOT_FIXED, BARGE_IMMEDIATE, true);
	reply_speaking(&m, "hi");
	T += 200 * MS;
	EV(&m, .kind = CONV_EV_CLOSE);
	VX_CHECK_INT(count(&m, CONV_ACT_CANCEL_REPLY), 1);
	const conv_action *f = find(&m, CONV_ACT_FINISH);
	VX_CHECK(f && f->interrupted);
	VX_CHECK_INT(m.phase, PH_IDLE);
	conv_machine_release(&m);
}

/* cfg.marks: the reply as far as the client confirmed playing it. */
static void reply_two_sentences_marked(conv_machine *m)
{
	setup(m, EOT_FIXED, BARGE_IMMEDIATE, true);
	m->cfg.marks = true;
	reply_speaking(m, "hi");
	EV(m, .kind = CONV_EV_LLM_TOKEN, .id = "t1", .text = " today?");
	EV(m, .kind = CONV_EV_TTS_DONE, .id = "t1.0");
	EV(m, .kind = CONV_EV_LLM_DONE, .id = "t1");
	EV(m, .kind = CONV_EV_TTS_START, .id = "t1.1");
	EV(m, .kind = CONV_EV_TTS_AUDIO, .bytes = 32 * 500);
}

VX_TEST(marks_heard_is_what_the_client_confirmed_not_the_clock)
{
	conv_machine m;
	reply_two_sentences_marked(&m);
	T += 900 * MS;   /* the clock would say most of sentence 2 played */
	EV(&m, .kind = CONV_EV_PLAYED, .bytes = 32 * 500);   /* sentence 1's mark */
	VX_CHECK_INT((int)m.n_acts, 0);
	EV(&m, .kind = CONV_EV_PLAYED, .bytes = 32 * 100);   /* backwards: ignored */
	EV(&m, .kind = CONV_EV_STOP);
	const conv_action *f = find(&m, CONV_ACT_FINISH);
	VX_CHECK(f && f->interrupted);
	VX_CHECK_STR(f->text, "Hello there, friend.");
	const conv_action *i = find(&m, CONV_ACT_EMIT_INTERRUPTED);
	VX_CHECK(i && !strcmp(i->text, "Hello there, friend."));
	conv_machine_release(&m);
}

VX_TEST(marks_unconfirmed_audio_was_not_heard)
{
	conv_machine m;
	reply_two_sentences_marked(&m);
	T += 900 * MS;
	speech_start(&m);   /* immediate barge-in, no mark came back */
	const conv_action *f = find(&m, CONV_ACT_FINISH);
	VX_CHECK(f && f->interrupted);
	VX_CHECK_STR(f->text, "");
	conv_machine_release(&m);
	/* A mark past what was sent counts as all of it (capped). */
	reply_two_sentences_marked(&m);
	EV(&m, .kind = CONV_EV_TTS_DONE, .id = "t1.1");   /* its length is known */
	VX_CHECK_INT(m.phase, PH_PLAYING);
	EV(&m, .kind = CONV_EV_PLAYED, .bytes = 32 * 5000);
	VX_CHECK_INT((int)m.played, 32 * 1000);
	EV(&m, .kind = CONV_EV_STOP);
	f = find(&m, CONV_ACT_FINISH);
	VX_CHECK(f && !strcmp(f->text, "Hello there, friend. How are you today?"));
	conv_machine_release(&m);
}

VX_TEST(marks_of_a_finished_turn_do_not_reach_the_next)
{
	conv_machine m;
	reply_two_sentences_marked(&m);
	EV(&m, .kind = CONV_EV_TTS_DONE, .id = "t1.1");
	T += 1100 * MS;
	EV(&m, .kind = CONV_EV_TICK);
	VX_CHECK_INT(m.phase, PH_IDLE);   /* played out: the whole reply kept */
	VX_CHECK_STR(find(&m, CONV_ACT_FINISH)->text, "Hello there, friend. How are you today?");
	EV(&m, .kind = CONV_EV_TEXT, .text = "again");
	EV(&m, .kind = CONV_EV_PLAYED, .bytes = 32 * 500);   /* turn 1's late mark */
	VX_CHECK_INT((int)m.played, 0);
	conv_machine_release(&m);
}

VX_TEST(say_speaks_a_greeting_without_the_llm)
{
	conv_machine m;
	setup(&m, EOT_FIXED, BARGE_IMMEDIATE, true);
	VX_CHECK_INT(EV(&m, .kind = CONV_EV_SAY, .text = "Hello! How can I help?"), 0);
	VX_CHECK(find(&m, CONV_ACT_LLM_REQUEST) == NULL);
	VX_CHECK_INT(count(&m, CONV_ACT_TTS_SEND), 2);
	VX_CHECK_INT(m.phase, PH_RESPONDING);
	VX_CHECK_INT(EV(&m, .kind = CONV_EV_SAY, .text = "again"), -EBUSY);
	VX_CHECK_INT(EV(&m, .kind = CONV_EV_TEXT, .text = "x"), 0);   /* barge-in: text interrupts */
	const conv_action *f = find(&m, CONV_ACT_FINISH);
	VX_CHECK(f && f->interrupted && f->turn->user.len == 0);
	VX_CHECK(find(&m, CONV_ACT_LLM_REQUEST) != NULL);
	conv_machine_release(&m);
	/* Spoken to the end: one FINISH with the text as the reply. */
	setup(&m, EOT_FIXED, BARGE_IMMEDIATE, false);
	EV(&m, .kind = CONV_EV_SAY, .text = "Hello.");
	EV(&m, .kind = CONV_EV_TTS_START, .id = "t1.0");
	EV(&m, .kind = CONV_EV_TTS_AUDIO, .bytes = 320);
	EV(&m, .kind = CONV_EV_TTS_DONE, .id = "t1.0");
	f = find(&m, CONV_ACT_FINISH);
	VX_CHECK(f && !f->interrupted && !strcmp(f->text, "Hello."));
	VX_CHECK_INT(m.phase, PH_IDLE);
	conv_machine_release(&m);
}

VX_TEST_MAIN(text_turn_runs_to_its_end_and_plays_out, spoken_turn_with_fixed_end_of_turn,
	     end_of_turn_waits_for_the_policy_and_resumed_speech_continues,
	     a_finished_question_ends_the_turn_sooner,
	     immediate_barge_in_cancels_once_and_the_speech_is_the_next_turn,
	     backchannel_is_ignored_and_the_reply_goes_on,
	     backchannel_policy_interrupts_real_speech_by_barge_min_ms,
	     candidate_ended_before_the_decision_becomes_the_turn,
	     speech_before_the_first_audio_interrupts_with_nothing_heard,
	     stop_message_interrupts_without_speech_and_is_ignored_when_idle,
	     typed_text_during_the_reply_interrupts_it_and_drops_a_candidate,
	     stage_error_in_each_phase_fails_the_turn_once,
	     a_link_reconnect_mid_turn_sends_the_work_again,
	     close_mid_reply_stores_it_as_interrupted,
	     marks_heard_is_what_the_client_confirmed_not_the_clock,
	     marks_unconfirmed_audio_was_not_heard,
	     marks_of_a_finished_turn_do_not_reach_the_next,
	     say_speaks_a_greeting_without_the_llm)
