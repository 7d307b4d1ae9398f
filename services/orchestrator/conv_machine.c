/*
 * conv_machine.c - the conversation's turn-taking state machine (see
 * conv_machine.h). conv_machine_event dispatches on the event; every
 * handler looks at the phase and says what to do by appending actions.
 * The phase is assigned only in this file.
 */
#include "conv_machine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const stage_names[CONV_N_STAGES] = { "vad", "stt", "llm", "tts" };

static void finish(conv_machine *m, bool interrupted, const char *error);
static void barge_check(conv_machine *m);

/* ---- actions ---- */

static conv_action *push(conv_machine *m, enum conv_act_kind kind)
{
	if (m->n_acts == m->cap_acts) {
		size_t cap = m->cap_acts ? m->cap_acts * 2 : 16;
		conv_action *a = realloc(m->acts, cap * sizeof(*a));
		if (!a) {
			m->oom = true;
			return NULL;
		}
		m->acts = a;
		m->cap_acts = cap;
	}
	conv_action *a = &m->acts[m->n_acts++];
	*a = (conv_action){ .kind = kind, .stage = -1 };
	return a;
}

static void act_stage(conv_machine *m, enum conv_act_kind kind, int st)
{
	conv_action *a = push(m, kind);
	if (a)
		a->stage = st;
}

static void emit(conv_machine *m, const char *type)
{
	conv_action *a = push(m, CONV_ACT_EMIT);
	if (a)
		a->type = type;
}

/* text must stay valid until the next event. */
static void emit_text(conv_machine *m, const char *type, const char *text, size_t len)
{
	conv_action *a = push(m, CONV_ACT_EMIT);
	if (!a)
		return;
	a->type = type;
	a->with_text = true;
	a->text = text ? text : "";
	a->len = text ? len : 0;
}

static void stage_error(conv_machine *m, int st, const char *code, const char *text)
{
	conv_action *a = push(m, CONV_ACT_ERROR);
	if (!a)
		return;
	a->stage = st;
	a->code = code;
	a->text = text;
	a->len = strlen(text);
}

static void tts_send(conv_machine *m, int i)
{
	conv_action *a = push(m, CONV_ACT_TTS_SEND);
	if (!a)
		return;
	a->seq = m->t.seq;
	a->index = i;
	a->text = m->t.sent[i].text;
	a->len = m->t.sent[i].len;
}

static void set_deadline(conv_machine *m, int st)
{
	m->deadline[st] = m->now + m->cfg.stage_timeout_us;
}

static bool listening(const conv_machine *m)
{
	return m->phase == PH_LISTENING || m->phase == PH_PAUSED ||
	       m->phase == PH_TRANSCRIBING;
}

static bool replying(const conv_machine *m)
{
	return m->phase == PH_RESPONDING || m->phase == PH_PLAYING;
}

/* ---- a turn's life ---- */

static void turn_begin(conv_machine *m, bool from_text)
{
	turn_init(&m->t, ++m->turn_seq, m->cfg.bytes_per_ms);
	m->t.from_text = from_text;
	sentences_reset(&m->split);
	m->tts_cur = -1;
	m->tts_pending = 0;
	m->again = m->again_ended = false;
	m->stt_retries = 0;
	m->stt_retry_at = 0;
	m->played = 0;
	vx_buf_reset(&m->partial);
}

/* Cancels the reply's LLM and TTS work in flight: one action at most. */
static void reply_cancel(conv_machine *m)
{
	bool llm = m->llm_busy, tts = m->tts_pending > 0;
	if (llm || tts) {
		conv_action *a = push(m, CONV_ACT_CANCEL_REPLY);
		if (a) {
			a->llm = llm;
			a->tts = tts;
		}
	}
	m->llm_busy = false;
	if (tts)
		m->tts_draining = true;
	m->tts_pending = 0;
	m->tts_cur = -1;
	m->deadline[CONV_LLM] = m->deadline[CONV_TTS] = 0;
	m->llm_retry_at = m->tts_retry_at = 0;
}

/* Fails the turn on a stage's account (error event, then finish). */
static void fail(conv_machine *m, int st, const char *code, const char *msg)
{
	stage_error(m, st, code, msg);
	if (listening(m))
		push(m, CONV_ACT_STT_CANCEL);
	if (m->phase != PH_IDLE)
		finish(m, false, stage_names[st]);
}

/* The user turn ended: STT is told "end". */
static void listen_end(conv_machine *m)
{
	m->phase = PH_TRANSCRIBING;
	m->t.t_eot = m->now;
	set_deadline(m, CONV_STT);
	if (!m->stt_retry_at)   /* else the retry sends the utterance and "end" */
		push(m, CONV_ACT_STT_END);
}

/* PAUSED: ends the turn once the policy's silence has passed. */
static void eot_check(conv_machine *m)
{
	const conv_policy_cfg *p = &m->cfg.policy;
	int need = conv_policy_eot_silence_ms(p, m->partial.data ? m->partial.data : "",
					      m->partial.len);
	int64_t wait_us = (int64_t)(need > p->eot_min_ms ? need - p->eot_min_ms : 0) * 1000;
	if (m->now >= m->speech_end_at + wait_us)
		listen_end(m);
}

/* Begins an STT round with the audio from start_ms (VAD stream time) on. */
static void stt_begin(conv_machine *m, int64_t start_ms)
{
	m->phase = PH_LISTENING;
	vx_buf_reset(&m->partial);
	conv_action *a = push(m, CONV_ACT_STT_BEGIN);
	if (a)
		a->at_ms = start_ms;
}

static void reply_start(conv_machine *m)
{
	m->phase = PH_RESPONDING;
	/* A run-on first sentence is cut early: it sets voice-to-voice. */
	m->split.soft_max = CONV_MACHINE_FIRST_SOFT_MAX;
	snprintf(m->llm_id, sizeof(m->llm_id), "t%d", m->t.seq);
	m->llm_busy = true;
	m->t.t_llm_request = m->now;
	set_deadline(m, CONV_LLM);
	conv_action *a = push(m, CONV_ACT_LLM_REQUEST);
	if (a) {
		a->id = m->llm_id;
		a->text = m->t.user.data ? m->t.user.data : "";
		a->len = m->t.user.len;
	}
}

/* A user message is complete: reply, or end quietly if it is empty. */
static void user_done(conv_machine *m)
{
	turn *t = &m->t;
	while (t->user.len && t->user.data[t->user.len - 1] == ' ')
		t->user.data[--t->user.len] = 0;
	if (!t->user.len) {
		emit_text(m, "transcript", "", 0);
		finish(m, false, NULL);
		return;
	}
	if (!t->from_text)
		emit_text(m, "transcript", t->user.data, t->user.len);
	reply_start(m);
}

/* ---- barge-in candidates ---- */

static void cand_drop(conv_machine *m)
{
	if (!m->cand.on)
		return;
	act_stage(m, CONV_ACT_LINK_RESET, CONV_STT);   /* late words of it unheard */
	m->cand.on = false;
}

/* The reply ended while speech over it was pending: it is the next turn. */
static void cand_to_turn(conv_machine *m)
{
	conv_candidate *c = &m->cand;
	c->on = false;
	turn_begin(m, false);
	m->t.t_speech_start = c->t_start;
	emit(m, "speech_started");
	m->phase = PH_LISTENING;   /* its STT round goes on */
	if (!c->ended)
		goto out_partial;
	emit(m, "speech_stopped");
	m->t.t_input_end = c->t_end;
	if (c->final) {
		m->phase = PH_TRANSCRIBING;
		m->t.t_eot = m->t.t_final = m->now;
		vx_buf_append(&m->t.user, c->text.data ? c->text.data : "", c->text.len);
		user_done(m);
		return;
	}
	if (c->end_sent) {
		m->phase = PH_TRANSCRIBING;
		m->t.t_eot = m->now;
		set_deadline(m, CONV_STT);
		return;
	}
	m->phase = PH_PAUSED;
	m->speech_end_at = c->t_end;
out_partial:
	if (c->text.len)
		vx_buf_append(&m->partial, c->text.data, c->text.len);
	if (m->phase == PH_PAUSED)
		eot_check(m);
}

static void interrupt(conv_machine *m)
{
	reply_cancel(m);
	finish(m, true, NULL);
}

/* Asks the barge-in policy about the candidate. */
static void barge_check(conv_machine *m)
{
	conv_candidate *c = &m->cand;
	if (!c->on || !replying(m))
		return;
	/* Counted from the detection, as conv_policy.h says. */
	int64_t ms = ((c->ended ? c->t_end : m->now) - c->t_start) / 1000;
	switch (conv_policy_barge(&m->cfg.policy, ms, c->ended,
				  c->text.data ? c->text.data : "", c->text.len)) {
	case BARGE_INTERRUPT:
		interrupt(m);
		break;
	case BARGE_IGNORE:
		cand_drop(m);
		break;
	case BARGE_WAIT:
		if (c->final) {
			cand_drop(m);   /* nothing more will come */
		} else if (c->ended && !c->end_sent) {
			c->end_sent = true;
			push(m, CONV_ACT_STT_END);
		}
		break;
	}
}

static void cand_begin(conv_machine *m, const conv_event *e)
{
	conv_candidate *c = &m->cand;
	c->on = true;
	c->ended = c->end_sent = c->final = false;
	c->t_start = m->now;
	c->t_end = 0;
	c->start_ms = e->start_ms;
	vx_buf_reset(&c->text);
	conv_action *a = push(m, CONV_ACT_STT_BEGIN);
	if (a)
		a->at_ms = e->start_ms;
	barge_check(m);
}

/* Ends the turn: cancels what runs, FINISH (metrics, history), IDLE. */
static void finish(conv_machine *m, bool interrupted, const char *error)
{
	turn *t = &m->t;
	t->t_end = m->now;
	reply_cancel(m);
	if (m->audio_open && !interrupted)
		emit(m, "audio_end");
	m->audio_open = false;
	m->deadline[CONV_STT] = 0;

	/* A cut or failed reply is kept as far as it was played. */
	if (m->n_done == CONV_MACHINE_MAX_DONE)
		return;   /* cannot happen: at most two turns end per event */
	turn *done = &m->done[m->n_done];
	vx_buf *kept = &m->kept[m->n_done++];
	if ((interrupted || error) && m->cfg.marks) {
		/* What the client confirmed it played, as a playback time. */
		int64_t us = (int64_t)((double)m->played * 1000.0 / t->bytes_per_ms);
		turn_played_text(t, t->t_audio_start + us, kept);
	} else if (interrupted || error) {
		turn_played_text(t, m->cfg.realtime ? m->now : INT64_MAX / 2, kept);
	}
	else if (t->reply.len)
		vx_buf_append(kept, t->reply.data, t->reply.len);
	if (!kept->data)
		vx_buf_puts(kept, "");
	if (interrupted) {
		conv_action *a = push(m, CONV_ACT_EMIT_INTERRUPTED);
		if (a) {
			a->text = kept->data ? kept->data : "";
			a->len = kept->len;
		}
	}
	*done = *t;
	memset(t, 0, sizeof(*t));
	conv_action *a = push(m, CONV_ACT_FINISH);
	if (a) {
		a->turn = done;
		a->text = kept->data ? kept->data : "";
		a->len = kept->len;
		a->interrupted = interrupted;
		a->error = error;
	}
	m->phase = PH_IDLE;
	if (m->cand.on)
		cand_to_turn(m);
}

/* ---- the reply: LLM -> sentences -> TTS -> client ---- */

/* sentences callback: one complete sentence goes to TTS. */
static int speak_sentence(void *user, const char *text, size_t len)
{
	conv_machine *m = user;
	turn *t = &m->t;
	int i = turn_add_sentence(t, text, len);
	if (i < 0)
		return 0;   /* past the limit: not spoken */
	m->split.soft_max = SENTENCES_SOFT_MAX;
	if (!t->t_first_sentence)
		t->t_first_sentence = m->now;
	if (m->tts_pending++ == 0)
		set_deadline(m, CONV_TTS);
	if (!m->tts_retry_at)   /* else sent in order with the ones being retried */
		tts_send(m, i);
	return 0;
}

static void resend_tts(conv_machine *m)
{
	for (size_t i = 0; i < m->t.n_sent; i++)
		if (!m->t.sent[i].done)
			tts_send(m, (int)i);
}

/* Ends the reply's work when the LLM is done and every sentence spoken. */
static void maybe_finish(conv_machine *m)
{
	if (m->phase != PH_RESPONDING || m->llm_busy || m->tts_pending > 0)
		return;
	m->deadline[CONV_TTS] = 0;
	if (m->audio_open) {
		emit(m, "audio_end");
		m->audio_open = false;
	}
	/* A real-time client still plays the audio; a tick ends the turn
	 * when it has (barge-in stays possible until then). */
	if (m->cfg.realtime && m->t.t_audio_start &&
	    m->now < m->t.t_audio_start + (int64_t)(turn_sent_ms(&m->t) * 1000))
		m->phase = PH_PLAYING;
	else
		finish(m, false, NULL);
}

static void on_llm(conv_machine *m, const conv_event *e)
{
	if (!m->llm_busy || m->phase != PH_RESPONDING || (e->id && strcmp(e->id, m->llm_id)))
		return;   /* a cancelled or finished request's late events */
	turn *t = &m->t;
	switch (e->kind) {
	case CONV_EV_LLM_TOKEN:
	case CONV_EV_LLM_REASONING:
		set_deadline(m, CONV_LLM);
		if (!e->text)
			break;
		if (!t->t_llm_first_token)
			t->t_llm_first_token = m->now;
		if (e->kind == CONV_EV_LLM_REASONING) {
			vx_buf_append(&t->reasoning, e->text, e->len);
			emit_text(m, "reasoning", e->text, e->len);
			break;
		}
		vx_buf_append(&t->reply, e->text, e->len);
		emit_text(m, "response_delta", e->text, e->len);
		sentences_feed(&m->split, e->text, e->len, speak_sentence, m);
		break;
	case CONV_EV_LLM_DONE:
		m->llm_busy = false;
		m->deadline[CONV_LLM] = 0;
		t->t_llm_done = m->now;
		sentences_flush(&m->split, speak_sentence, m);
		maybe_finish(m);
		break;
	default:   /* CONV_EV_LLM_ERROR */
		if (e->code && !strcmp(e->code, "overloaded") && !t->t_llm_first_token) {
			/* Admission control upstream: again shortly, until the
			 * stage deadline (not refreshed by this) passes. */
			m->llm_retry_at = m->now + CONV_MACHINE_RETRY_US;
			break;
		}
		m->llm_busy = false;
		fail(m, CONV_LLM, "llm_failed", e->text ? e->text : "generation failed");
		break;
	}
}

/* Sentence index from a "t<seq>.<i>" id of this turn, or -1. */
static int tts_index(const conv_machine *m, const char *id)
{
	int seq, i;
	char tail;
	if (!id || sscanf(id, "t%d.%d%c", &seq, &i, &tail) != 2 || m->phase == PH_IDLE ||
	    seq != m->t.seq || i < 0 || (size_t)i >= m->t.n_sent)
		return -1;
	return i;
}

static void on_tts(conv_machine *m, const conv_event *e)
{
	if (e->kind == CONV_EV_TTS_CANCELLED) {
		m->tts_draining = false;
		return;
	}
	int i = tts_index(m, e->id);
	if (i >= 0 && e->kind == CONV_EV_TTS_START)
		m->tts_draining = false;
	if (m->tts_draining || m->phase != PH_RESPONDING || i < 0) {
		if (e->kind == CONV_EV_TTS_ERROR && !m->tts_draining &&
		    m->phase == PH_RESPONDING && m->tts_pending > 0)
			fail(m, CONV_TTS, "tts_failed", e->text ? e->text : "synthesis failed");
		return;
	}
	if (e->kind != CONV_EV_TTS_ERROR)
		set_deadline(m, CONV_TTS);
	if (e->kind == CONV_EV_TTS_START) {
		m->tts_cur = i;
	} else if (e->kind == CONV_EV_TTS_DONE) {
		if (!m->t.sent[i].done) {
			m->t.sent[i].done = true;
			m->tts_pending--;
		}
		m->tts_cur = -1;
		maybe_finish(m);
	} else if (e->code && !strcmp(e->code, "overloaded")) {
		/* The socket's whole queue was refused: every unfinished
		 * sentence again shortly, in order. */
		if (!m->tts_retry_at)
			m->tts_retry_at = m->now + CONV_MACHINE_RETRY_US;
	} else {
		fail(m, CONV_TTS, "tts_failed", e->text ? e->text : "synthesis failed");
	}
}

static void on_tts_audio(conv_machine *m, const conv_event *e)
{
	if (m->tts_draining || m->phase != PH_RESPONDING || !e->bytes)
		return;
	turn *t = &m->t;
	int i = m->tts_cur;
	for (size_t k = 0; k < t->n_sent && i < 0; k++)   /* no "start": the oldest */
		if (!t->sent[k].done)
			i = (int)k;
	set_deadline(m, CONV_TTS);
	if (!t->t_tts_first_audio)
		t->t_tts_first_audio = m->now;
	if (!m->audio_open) {
		push(m, CONV_ACT_EMIT_AUDIO_START);
		m->audio_open = true;
	}
	push(m, CONV_ACT_AUDIO_TO_CLIENT);
	if (!t->t_audio_start)
		t->t_audio_start = m->now;
	turn_audio(t, i, e->bytes);
}

/* ---- the listening side: client audio, VAD, STT ---- */

static void on_audio(conv_machine *m, const conv_event *e)
{
	m->audio_seen = true;
	push(m, CONV_ACT_AUDIO_TO_VAD);
	bool own = m->phase == PH_LISTENING || m->phase == PH_PAUSED;
	if (!own && !(m->cand.on && !m->cand.end_sent))
		return;
	if (e->utter_len + e->bytes <= m->cfg.utter_max) {
		push(m, CONV_ACT_AUDIO_TO_UTTER);
		if (!m->stt_retry_at)   /* else the retry sends the utterance */
			push(m, CONV_ACT_AUDIO_TO_STT);
	} else if (own) {
		/* Too long: take what was said so far. */
		if (m->phase == PH_LISTENING) {
			emit(m, "speech_stopped");
			m->t.t_input_end = m->now;
		}
		listen_end(m);
	}
}

static void on_speech_start(conv_machine *m, const conv_event *e)
{
	switch (m->phase) {
	case PH_IDLE:
		turn_begin(m, false);
		m->t.t_speech_start = m->now;
		emit(m, "speech_started");
		stt_begin(m, e->start_ms);
		break;
	case PH_PAUSED:   /* the same turn goes on */
		m->phase = PH_LISTENING;
		emit(m, "speech_started");
		break;
	case PH_TRANSCRIBING:
		if (m->again)
			break;
		m->again = true;
		m->again_ended = false;
		m->again_start_ms = e->start_ms;
		emit(m, "speech_started");
		break;
	case PH_RESPONDING:
	case PH_PLAYING:
		if (m->cfg.barge_in && !m->cand.on)
			cand_begin(m, e);
		break;
	default:
		break;
	}
}

static void on_speech_end(conv_machine *m)
{
	if (m->phase == PH_LISTENING) {
		emit(m, "speech_stopped");
		m->t.t_input_end = m->speech_end_at = m->now;
		m->phase = PH_PAUSED;
		eot_check(m);
	} else if (m->phase == PH_TRANSCRIBING && m->again) {
		emit(m, "speech_stopped");
		m->again_ended = true;
	} else if (m->cand.on && !m->cand.ended) {
		m->cand.ended = true;
		m->cand.t_end = m->now;
		barge_check(m);
	}
}

static void set_text(vx_buf *b, const conv_event *e)
{
	vx_buf_reset(b);
	if (e->text)
		vx_buf_append(b, e->text, e->len);
}

static void on_stt_partial(conv_machine *m, const conv_event *e)
{
	if (!e->text)
		return;
	if (m->cand.on) {
		if (!m->cand.final) {
			set_text(&m->cand.text, e);
			barge_check(m);
		}
		return;
	}
	if (!listening(m))
		return;
	set_text(&m->partial, e);
	vx_buf_reset(&m->shown);
	if (m->t.user.len)
		vx_buf_printf(&m->shown, "%s ", m->t.user.data);
	vx_buf_append(&m->shown, e->text, e->len);
	if (m->shown.data)
		emit_text(m, "transcript_partial", m->shown.data, m->shown.len);
	if (m->phase == PH_PAUSED)
		eot_check(m);
}

static void on_stt_final(conv_machine *m, const conv_event *e)
{
	if (m->cand.on) {
		if (m->cand.end_sent && !m->cand.final) {
			m->cand.final = true;
			set_text(&m->cand.text, e);
			barge_check(m);
		}
		return;
	}
	if (m->phase != PH_TRANSCRIBING)
		return;
	turn *t = &m->t;
	m->deadline[CONV_STT] = 0;
	t->t_final = m->now;
	if (e->text && e->len) {
		if (t->user.len)
			vx_buf_puts(&t->user, " ");
		vx_buf_append(&t->user, e->text, e->len);
	}
	if (m->again) {
		/* The user went on speaking: one message, another round. */
		m->again = false;
		stt_begin(m, m->again_start_ms);
		if (m->again_ended) {
			m->again_ended = false;
			t->t_input_end = m->now;
			listen_end(m);
		}
		return;
	}
	user_done(m);
}

static void on_stt_error(conv_machine *m, const conv_event *e)
{
	if (m->cand.on) {
		cand_drop(m);
		return;
	}
	if (!listening(m))
		return;
	if (e->code && !strcmp(e->code, "overloaded") &&
	    m->stt_retries++ < CONV_MACHINE_MAX_RETRIES) {
		/* The service closes the stream: a new one shortly, with the
		 * utterance so far. */
		act_stage(m, CONV_ACT_LINK_RESET, CONV_STT);
		m->stt_retry_at = m->now + CONV_MACHINE_RETRY_US;
		return;
	}
	fail(m, CONV_STT, "stt_failed", e->text ? e->text : "transcription failed");
}

/* ---- client turns ---- */

static int on_text(conv_machine *m, const conv_event *e)
{
	if (m->cfg.barge_in && replying(m)) {
		cand_drop(m);
		interrupt(m);
	}
	if (m->phase != PH_IDLE)
		return -EBUSY;
	turn_begin(m, true);
	m->t.t_input_end = m->now;
	vx_buf_append(&m->t.user, e->text ? e->text : "", e->text ? e->len : 0);
	user_done(m);
	return 0;
}

/* The assistant speaks first (a greeting): a reply with no user message
 * and no LLM, its text straight to TTS. */
static int on_say(conv_machine *m, const conv_event *e)
{
	if (m->phase != PH_IDLE)
		return -EBUSY;
	turn_begin(m, true);
	m->t.t_input_end = m->now;
	m->phase = PH_RESPONDING;
	m->split.soft_max = CONV_MACHINE_FIRST_SOFT_MAX;
	if (e->text && e->len) {
		vx_buf_append(&m->t.reply, e->text, e->len);
		emit_text(m, "response_delta", e->text, e->len);
		sentences_feed(&m->split, e->text, e->len, speak_sentence, m);
	}
	sentences_flush(&m->split, speak_sentence, m);
	maybe_finish(m);
	return 0;
}

/* The client played the reply up to e->bytes (never backwards, never
 * past what was sent). */
static void on_played(conv_machine *m, const conv_event *e)
{
	if (!replying(m) || !m->t.t_audio_start)
		return;
	uint64_t b = e->bytes < m->t.audio_bytes ? e->bytes : m->t.audio_bytes;
	if (b > m->played)
		m->played = b;
}

static int on_utterance(conv_machine *m)
{
	if (m->phase != PH_IDLE)
		return -EBUSY;
	turn_begin(m, false);
	m->phase = PH_LISTENING;
	push(m, CONV_ACT_UTTER_RESET);
	push(m, CONV_ACT_AUDIO_TO_UTTER);
	push(m, CONV_ACT_AUDIO_TO_STT);
	m->t.t_input_end = m->now;
	listen_end(m);
	return 0;
}

static void on_close(conv_machine *m)
{
	cand_drop(m);
	if (replying(m)) {
		finish(m, true, NULL);
	} else if (m->phase != PH_IDLE) {
		turn_release(&m->t);
		m->phase = PH_IDLE;
	}
}

/* ---- links and time ---- */

/* A new socket replaced one that could not connect: the work again. */
static void on_link_up(conv_machine *m, int st)
{
	if (st == CONV_STT && (listening(m) || m->cand.on)) {
		push(m, CONV_ACT_STT_UTTER);
		if (m->phase == PH_TRANSCRIBING || (m->cand.on && m->cand.end_sent))
			push(m, CONV_ACT_STT_END);
	} else if (st == CONV_LLM && m->llm_busy) {
		push(m, CONV_ACT_LLM_RESEND);
	} else if (st == CONV_TTS && m->phase == PH_RESPONDING) {
		resend_tts(m);
	}
}

/* Does the current turn wait on this stage? */
static bool stage_in_use(const conv_machine *m, int st)
{
	switch (st) {
	case CONV_VAD: return m->audio_seen;
	case CONV_STT: return listening(m);
	case CONV_LLM: return m->phase == PH_RESPONDING && m->llm_busy;
	case CONV_TTS: return m->phase == PH_RESPONDING && m->tts_pending > 0;
	}
	return false;
}

static void on_link_down(conv_machine *m, const conv_event *e)
{
	int st = e->stage;
	const char *why = e->text ? e->text : "closed";
	if (st == CONV_TTS)
		m->tts_draining = false;   /* no "cancelled" will come */
	if (st == CONV_STT && m->cand.on)
		cand_drop(m);
	if (st < 0 || st >= CONV_N_STAGES || !stage_in_use(m, st))
		return;
	if (st != CONV_VAD) {
		fail(m, st, "unavailable", why);
		return;
	}
	stage_error(m, CONV_VAD, "unavailable", why);
	if (m->phase == PH_LISTENING)
		m->t.t_input_end = m->now;
	if (m->phase == PH_LISTENING || m->phase == PH_PAUSED)
		listen_end(m);
}

static const char *const timeout_msgs[CONV_N_STAGES] = {
	"no speech detection in time (--stage-timeout-s)",
	"no transcript in time (--stage-timeout-s)",
	"no reply from the language model in time (--stage-timeout-s)",
	"no audio in time (--stage-timeout-s)",
};

static void on_tick(conv_machine *m)
{
	int64_t now = m->now;
	for (int st = 0; st < CONV_N_STAGES; st++) {
		if (!m->deadline[st] || now < m->deadline[st])
			continue;
		m->deadline[st] = 0;
		/* A new socket next time: the old one may hold stale work. */
		act_stage(m, CONV_ACT_LINK_RESET, st);
		fail(m, st, "timeout", timeout_msgs[st]);
	}
	if (m->llm_retry_at && now >= m->llm_retry_at) {
		m->llm_retry_at = 0;
		if (m->llm_busy)
			push(m, CONV_ACT_LLM_RESEND);
	}
	if (m->stt_retry_at && now >= m->stt_retry_at) {
		m->stt_retry_at = 0;
		if (listening(m)) {
			push(m, CONV_ACT_STT_UTTER);
			if (m->phase == PH_TRANSCRIBING)
				push(m, CONV_ACT_STT_END);
		}
	}
	if (m->tts_retry_at && now >= m->tts_retry_at) {
		m->tts_retry_at = 0;
		if (m->phase == PH_RESPONDING)
			resend_tts(m);
	}
	if (m->phase == PH_PLAYING &&
	    now >= m->t.t_audio_start + (int64_t)(turn_sent_ms(&m->t) * 1000))
		finish(m, false, NULL);
	if (m->phase == PH_PAUSED)
		eot_check(m);
	barge_check(m);
}

/* ---- the machine ---- */

/* The turns finished by the last event are gone. */
static void release_done(conv_machine *m)
{
	for (int i = 0; i < m->n_done; i++) {
		turn_release(&m->done[i]);
		vx_buf_reset(&m->kept[i]);
	}
	m->n_done = 0;
}

void conv_machine_init(conv_machine *m, const conv_machine_cfg *cfg)
{
	memset(m, 0, sizeof(*m));
	m->cfg = *cfg;
	m->phase = PH_IDLE;
	m->tts_cur = -1;
	sentences_init(&m->split);
}

void conv_machine_release(conv_machine *m)
{
	if (m->phase != PH_IDLE)
		turn_release(&m->t);
	release_done(m);
	for (int i = 0; i < CONV_MACHINE_MAX_DONE; i++)
		vx_buf_release(&m->kept[i]);
	sentences_release(&m->split);
	vx_buf_release(&m->partial);
	vx_buf_release(&m->shown);
	vx_buf_release(&m->cand.text);
	free(m->acts);
	memset(m, 0, sizeof(*m));
}

int conv_machine_event(conv_machine *m, const conv_event *e)
{
	int r = 0;
	m->n_acts = 0;
	m->now = e->now;
	release_done(m);
	switch (e->kind) {
	case CONV_EV_AUDIO: on_audio(m, e); break;
	case CONV_EV_TEXT: r = on_text(m, e); break;
	case CONV_EV_UTTERANCE: r = on_utterance(m); break;
	case CONV_EV_STOP:
		if (replying(m))
			interrupt(m);
		break;
	case CONV_EV_CLOSE: on_close(m); break;
	case CONV_EV_SAY: r = on_say(m, e); break;
	case CONV_EV_PLAYED: on_played(m, e); break;
	case CONV_EV_SPEECH_START: on_speech_start(m, e); break;
	case CONV_EV_SPEECH_END: on_speech_end(m); break;
	case CONV_EV_VAD_ERROR:
		stage_error(m, CONV_VAD, "vad_failed", e->text ? e->text : "detection failed");
		break;
	case CONV_EV_STT_PARTIAL: on_stt_partial(m, e); break;
	case CONV_EV_STT_FINAL: on_stt_final(m, e); break;
	case CONV_EV_STT_ERROR: on_stt_error(m, e); break;
	case CONV_EV_LLM_TOKEN:
	case CONV_EV_LLM_REASONING:
	case CONV_EV_LLM_DONE:
	case CONV_EV_LLM_ERROR: on_llm(m, e); break;
	case CONV_EV_TTS_START:
	case CONV_EV_TTS_DONE:
	case CONV_EV_TTS_ERROR:
	case CONV_EV_TTS_CANCELLED: on_tts(m, e); break;
	case CONV_EV_TTS_AUDIO: on_tts_audio(m, e); break;
	case CONV_EV_LINK_UP: on_link_up(m, e->stage); break;
	case CONV_EV_LINK_DOWN: on_link_down(m, e); break;
	case CONV_EV_TICK: on_tick(m); break;
	}
	return r;
}

const char *conv_phase_name(enum conv_phase p)
{
	static const char *const names[] = { "idle", "listening", "paused",
					     "transcribing", "responding", "playing" };
	return (unsigned)p < sizeof(names) / sizeof(names[0]) ? names[p] : "?";
}
