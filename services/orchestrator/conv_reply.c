/*
 * conv_reply.c - the reply pipeline of a conversation (conv_int.h): the
 * LLM request (system prompt + context + user message), its tokens into
 * the sentence splitter, each sentence to TTS at once ("t<seq>.<i>"), TTS
 * audio to the client with per-sentence accounting for barge-in (turn.h),
 * and the end of the reply's work. "overloaded" answers are retried by the
 * ticker (llm_retry_at, tts_retry_at).
 */
#include "conv_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vx_log.h"

static void maybe_finish(conversation *cv);

/* Cancels the turn's LLM and TTS work in flight. */
void conv_reply_cancel(conversation *cv)
{
	static const char cancel[] = "{\"event\":\"cancel\"}";
	if (cv->llm_busy && cv->link[ORCH_LLM].c)
		vx_wsclient_send_text(cv->link[ORCH_LLM].c, cancel, sizeof(cancel) - 1);
	cv->llm_busy = false;
	if (cv->tts_pending > 0 && cv->link[ORCH_TTS].c) {
		vx_wsclient_send_text(cv->link[ORCH_TTS].c, cancel, sizeof(cancel) - 1);
		cv->tts_draining = true;
	}
	cv->tts_pending = 0;
	cv->tts_cur = -1;
	cv->deadline[ORCH_LLM] = cv->deadline[ORCH_TTS] = 0;
	cv->llm_retry_at = cv->tts_retry_at = 0;
}

/* Builds and sends the LLM request for the user's message. */
void conv_reply_start(conversation *cv)
{
	orch_service *svc = cv->svc;
	turn *t = &cv->t;
	cv->phase = PH_RESPONDING;
	/* A run-on first sentence is cut early: it sets voice-to-voice. */
	cv->split.soft_max = CONV_FIRST_SOFT_MAX;
	snprintf(cv->llm_id, sizeof(cv->llm_id), "t%d", t->seq);
	vx_buf *b = &cv->llm_req;
	vx_buf_reset(b);
	vx_buf_printf(b, "{\"id\":\"%s\",\"max_tokens\":%d,", cv->llm_id, svc->max_tokens);
	if (svc->llm_model) {
		vx_buf_puts(b, "\"model\":");
		vx_buf_json_str(b, svc->llm_model, strlen(svc->llm_model));
		vx_buf_puts(b, ",");
	}
	vx_buf_puts(b, "\"messages\":[");
	bool first = true;
	if (cv->system_prompt && *cv->system_prompt) {
		vx_buf_puts(b, "{\"role\":\"system\",\"content\":");
		vx_buf_json_str(b, cv->system_prompt, strlen(cv->system_prompt));
		vx_buf_puts(b, "}");
		first = false;
	}
	size_t from = cv->n_msgs > (size_t)svc->max_context_messages ?
		      cv->n_msgs - (size_t)svc->max_context_messages : 0;
	for (size_t i = from; i < cv->n_msgs; i++) {
		vx_buf_puts(b, first ? "{\"role\":" : ",{\"role\":");
		vx_buf_json_str(b, cv->msgs[i].role, strlen(cv->msgs[i].role));
		vx_buf_puts(b, ",\"content\":");
		vx_buf_json_str(b, cv->msgs[i].content, strlen(cv->msgs[i].content));
		vx_buf_puts(b, "}");
		first = false;
	}
	vx_buf_puts(b, first ? "{\"role\":\"user\",\"content\":" :
			       ",{\"role\":\"user\",\"content\":");
	vx_buf_json_str(b, t->user.data, t->user.len);
	if (vx_buf_puts(b, "}]}") < 0) {
		conv_turn_fail(cv, ORCH_LLM, "no_memory", "cannot build the request");
		return;
	}
	cv->llm_busy = true;
	t->t_llm_request = conv_now_us();
	cv->deadline[ORCH_LLM] = t->t_llm_request + (int64_t)svc->stage_timeout_s * 1000000;
	if (conv_link_send(cv, ORCH_LLM, b->data, b->len, false) < 0 && !cv->link[ORCH_LLM].c)
		conv_turn_fail(cv, ORCH_LLM, "unavailable", "cannot reach voxline-llm");
}

/* sentences callback: one complete sentence goes to TTS. */
static int speak_sentence(void *user, const char *text, size_t len)
{
	conversation *cv = user;
	turn *t = &cv->t;
	int i = turn_add_sentence(t, text, len);
	if (i < 0)
		return 0;   /* past the limit: not spoken */
	cv->split.soft_max = SENTENCES_SOFT_MAX;
	int64_t now = conv_now_us();
	if (!t->t_first_sentence)
		t->t_first_sentence = now;
	if (cv->tts_pending++ == 0)
		cv->deadline[ORCH_TTS] = now + (int64_t)cv->svc->stage_timeout_s * 1000000;
	if (cv->tts_retry_at)
		return 0;   /* sent in order with the ones being retried */
	vx_buf m = {0};
	vx_buf_puts(&m, "{\"text\":");
	vx_buf_json_str(&m, text, len);
	vx_buf_printf(&m, ",\"id\":\"t%d.%d\"}", t->seq, i);
	int r = m.data ? conv_link_send(cv, ORCH_TTS, m.data, m.len, false) : -ENOMEM;
	vx_buf_release(&m);
	if (r < 0 && !cv->link[ORCH_TTS].c) {
		conv_turn_fail(cv, ORCH_TTS, "unavailable", "cannot reach voxline-tts");
		return -ECONNABORTED;
	}
	return 0;
}

/* ---- LLM ---- */

void conv_reply_on_llm(conversation *cv, const char *ev, const cJSON *j)
{
	const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(j, "id"));
	if (!cv->llm_busy || cv->phase != PH_RESPONDING ||
	    (id && strcmp(id, cv->llm_id)))
		return;   /* a cancelled or finished request's late events */
	turn *t = &cv->t;
	const char *text = cJSON_GetStringValue(cJSON_GetObjectItem(j, "text"));
	int64_t now = conv_now_us();
	if (!strcmp(ev, "token") || !strcmp(ev, "reasoning"))
		cv->deadline[ORCH_LLM] = now + (int64_t)cv->svc->stage_timeout_s * 1000000;
	if (!strcmp(ev, "token") && text) {
		if (!t->t_llm_first_token)
			t->t_llm_first_token = now;
		size_t len = strlen(text);
		vx_buf_append(&t->reply, text, len);
		conversation_emit_text(cv, "response_delta", text, len);
		sentences_feed(&cv->split, text, len, speak_sentence, cv);
	} else if (!strcmp(ev, "reasoning") && text) {
		if (!t->t_llm_first_token)
			t->t_llm_first_token = now;
		vx_buf_puts(&t->reasoning, text);
		conversation_emit_text(cv, "reasoning", text, strlen(text));
	} else if (!strcmp(ev, "done")) {
		cv->llm_busy = false;
		cv->deadline[ORCH_LLM] = 0;
		t->t_llm_done = now;
		if (sentences_flush(&cv->split, speak_sentence, cv) < 0 ||
		    cv->phase != PH_RESPONDING)
			return;
		maybe_finish(cv);
	} else if (!strcmp(ev, "error")) {
		const char *msg = cJSON_GetStringValue(cJSON_GetObjectItem(j, "message"));
		const char *code = cJSON_GetStringValue(cJSON_GetObjectItem(j, "code"));
		if (code && !strcmp(code, "overloaded") && !t->t_llm_first_token) {
			/* Admission control upstream: again shortly, until the
			 * stage deadline (not refreshed by this) passes. */
			cv->llm_retry_at = now + CONV_RETRY_MS * 1000;
			return;
		}
		cv->llm_busy = false;
		conv_turn_fail(cv, ORCH_LLM, "llm_failed", msg ? msg : "generation failed");
	}
}

/* ---- TTS ---- */

/* Sentence index from a "t<seq>.<i>" id of this turn, or -1. */
static int tts_index(conversation *cv, const char *id)
{
	int seq, i;
	char tail;
	if (!id || sscanf(id, "t%d.%d%c", &seq, &i, &tail) != 2 ||
	    cv->phase == PH_IDLE || seq != cv->t.seq || i < 0 ||
	    (size_t)i >= cv->t.n_sent)
		return -1;
	return i;
}

/* Ends the turn's work when the LLM is done and every sentence spoken. */
static void maybe_finish(conversation *cv)
{
	if (cv->phase != PH_RESPONDING || cv->llm_busy || cv->tts_pending > 0)
		return;
	cv->deadline[ORCH_TTS] = 0;
	if (cv->audio_open) {
		conversation_emit_type(cv, "audio_end");
		cv->audio_open = false;
	}
	/* A real-time client still plays the audio; the ticker ends the
	 * turn when it has (barge-in stays possible until then). */
	if (cv->realtime && cv->t.t_audio_start &&
	    conv_now_us() < cv->t.t_audio_start + (int64_t)(turn_sent_ms(&cv->t) * 1000))
		cv->phase = PH_PLAYING;
	else
		conv_turn_finish(cv, false, NULL);
}

void conv_reply_on_tts(conversation *cv, const char *ev, const cJSON *j)
{
	const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(j, "id"));
	int i = tts_index(cv, id);
	if (!strcmp(ev, "cancelled")) {
		cv->tts_draining = false;
		return;
	}
	if (!strcmp(ev, "ready")) {
		const cJSON *sr = cJSON_GetObjectItem(j, "sample_rate");
		const char *enc = cJSON_GetStringValue(cJSON_GetObjectItem(j, "encoding"));
		if ((cJSON_IsNumber(sr) && (int)sr->valuedouble != cv->rate) ||
		    (enc && strcmp(enc, conv_enc_name(cv->enc))))
			conversation_emit_error(cv, "tts", "bad_format",
						"voxline-tts answers %d Hz %s, not %d Hz %s",
						cJSON_IsNumber(sr) ? (int)sr->valuedouble : 0,
						enc ? enc : "?", cv->rate,
						conv_enc_name(cv->enc));
		return;
	}
	if (i >= 0 && !strcmp(ev, "start"))
		cv->tts_draining = false;
	if (cv->tts_draining || cv->phase != PH_RESPONDING || i < 0) {
		if (!strcmp(ev, "error") && !cv->tts_draining &&
		    cv->phase == PH_RESPONDING && cv->tts_pending > 0) {
			const char *msg = cJSON_GetStringValue(cJSON_GetObjectItem(j, "message"));
			conv_turn_fail(cv, ORCH_TTS, "tts_failed", msg ? msg : "synthesis failed");
		}
		return;
	}
	if (strcmp(ev, "error"))
		cv->deadline[ORCH_TTS] = conv_now_us() + (int64_t)cv->svc->stage_timeout_s * 1000000;
	if (!strcmp(ev, "start")) {
		cv->tts_cur = i;
	} else if (!strcmp(ev, "done")) {
		if (!cv->t.sent[i].done) {
			cv->t.sent[i].done = true;
			cv->tts_pending--;
		}
		cv->tts_cur = -1;
		maybe_finish(cv);
	} else if (!strcmp(ev, "error")) {
		const char *msg = cJSON_GetStringValue(cJSON_GetObjectItem(j, "message"));
		const char *code = cJSON_GetStringValue(cJSON_GetObjectItem(j, "code"));
		if (code && !strcmp(code, "overloaded")) {
			/* The whole queue of the socket was refused: send every
			 * unfinished sentence again shortly, in order. */
			if (!cv->tts_retry_at)
				cv->tts_retry_at = conv_now_us() + CONV_RETRY_MS * 1000;
			return;
		}
		conv_turn_fail(cv, ORCH_TTS, "tts_failed", msg ? msg : "synthesis failed");
	}
}

void conv_reply_on_audio(conversation *cv, const void *data, size_t len)
{
	if (cv->tts_draining || cv->phase != PH_RESPONDING || !len)
		return;
	turn *t = &cv->t;
	int i = cv->tts_cur;
	if (i < 0) {   /* no "start" seen: the oldest unfinished sentence */
		for (size_t k = 0; k < t->n_sent && i < 0; k++)
			if (!t->sent[k].done)
				i = (int)k;
	}
	int64_t now = conv_now_us();
	cv->deadline[ORCH_TTS] = now + (int64_t)cv->svc->stage_timeout_s * 1000000;
	if (!t->t_tts_first_audio)
		t->t_tts_first_audio = now;
	if (!cv->audio_open) {
		char m[128];
		int n = snprintf(m, sizeof(m), "{\"type\":\"audio_start\",\"sample_rate\":%d,"
				 "\"encoding\":\"%s\"}", cv->rate, conv_enc_name(cv->enc));
		conversation_emit(cv, "audio_start", m, (size_t)n);
		cv->audio_open = true;
	}
	if (!cv->closed && cv->sink.audio)
		cv->sink.audio(cv->sink_user, data, len);
	if (!t->t_audio_start)
		t->t_audio_start = conv_now_us();
	turn_audio(t, i, len);
}
