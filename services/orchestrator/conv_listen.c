/*
 * conv_listen.c - the listening side of a conversation (conv_int.h): the
 * ring of recent client audio, VAD's speech_start/speech_end, and STT
 * rounds (pre-roll from the ring, live audio, "end", the final transcript,
 * "overloaded" retries). Speech that resumes while the last words are
 * being transcribed joins the same user message.
 */
#include "conv_int.h"

#include <string.h>

#include "vx_log.h"

/* ---- STT ---- */

/* Begins an STT round with the audio from from_ms (VAD stream time) on. */
static void stt_begin(conversation *cv, int64_t from_ms)
{
	cv->phase = PH_LISTENING;
	vx_buf_reset(&cv->utter);
	if (!cv->ring)
		return;
	int64_t from = (int64_t)cv->vad_base +
		       (int64_t)((double)(from_ms - CONV_PREROLL_MS) * cv->bpm);
	uint64_t oldest = cv->bytes_in > cv->ring_cap ? cv->bytes_in - cv->ring_cap : 0;
	uint64_t start = from < (int64_t)oldest ? oldest : (uint64_t)from;
	start -= start % cv->sample_bytes;
	if (start < oldest)
		start += cv->sample_bytes;
	for (uint64_t p = start; p < cv->bytes_in;) {
		size_t off = (size_t)(p % cv->ring_cap);
		size_t n = cv->ring_cap - off;
		if (n > cv->bytes_in - p)
			n = (size_t)(cv->bytes_in - p);
		vx_buf_append(&cv->utter, cv->ring + off, n);
		p += n;
	}
	if (cv->utter.len)
		conv_link_send(cv, ORCH_STT, cv->utter.data, cv->utter.len, true);
}

void conv_listen_end(conversation *cv)
{
	cv->phase = PH_TRANSCRIBING;
	cv->deadline[ORCH_STT] = conv_now_us() + (int64_t)cv->svc->stage_timeout_s * 1000000;
	if (cv->stt_retry_at)
		return;   /* the retry sends the utterance and "end" */
	if (conv_link_send_str(cv, ORCH_STT, "{\"event\":\"end\"}") < 0 &&
	    !cv->link[ORCH_STT].c)
		conv_turn_fail(cv, ORCH_STT, "unavailable", "cannot reach voxline-stt");
}

void conv_listen_on_stt(conversation *cv, const char *ev, const cJSON *j)
{
	const char *text = cJSON_GetStringValue(cJSON_GetObjectItem(j, "text"));
	if (!strcmp(ev, "partial") && text &&
	    (cv->phase == PH_LISTENING || cv->phase == PH_TRANSCRIBING)) {
		vx_buf b = {0};
		if (cv->t.user.len)
			vx_buf_printf(&b, "%s ", cv->t.user.data);
		vx_buf_puts(&b, text);
		if (b.data)
			conversation_emit_text(cv, "transcript_partial", b.data, b.len);
		vx_buf_release(&b);
	} else if (!strcmp(ev, "final") && cv->phase == PH_TRANSCRIBING) {
		cv->deadline[ORCH_STT] = 0;
		cv->t.t_final = conv_now_us();
		if (text && *text) {
			if (cv->t.user.len)
				vx_buf_puts(&cv->t.user, " ");
			vx_buf_puts(&cv->t.user, text);
		}
		if (cv->again) {
			/* The user went on speaking: one message, another round. */
			cv->again = false;
			stt_begin(cv, cv->again_start_ms);
			if (cv->again_ended) {
				cv->again_ended = false;
				cv->t.t_input_end = conv_now_us();
				conv_listen_end(cv);
			}
			return;
		}
		conv_turn_user_done(cv);
	} else if (!strcmp(ev, "error") &&
		   (cv->phase == PH_LISTENING || cv->phase == PH_TRANSCRIBING)) {
		const char *msg = cJSON_GetStringValue(cJSON_GetObjectItem(j, "message"));
		const char *code = cJSON_GetStringValue(cJSON_GetObjectItem(j, "code"));
		if (code && !strcmp(code, "overloaded") &&
		    cv->stt_retries++ < CONV_MAX_RETRIES) {
			/* The service closes the stream: a new one shortly, with
			 * the utterance so far (replayed by conv_link.c). */
			conv_link_close(cv, ORCH_STT);
			cv->stt_retry_at = conv_now_us() + CONV_RETRY_MS * 1000;
			return;
		}
		conv_turn_fail(cv, ORCH_STT, "stt_failed", msg ? msg : "transcription failed");
	}
}

/* ---- VAD ---- */

void conv_listen_on_vad(conversation *cv, const char *ev, const cJSON *j)
{
	const cJSON *sm = cJSON_GetObjectItem(j, "start_ms");
	int64_t start_ms = cJSON_IsNumber(sm) ? (int64_t)sm->valuedouble : 0;
	if (!strcmp(ev, "speech_start")) {
		if (conv_turn_can_barge_in(cv))
			conv_turn_interrupt(cv);
		if (cv->phase == PH_IDLE) {
			conv_turn_begin(cv, false);
			cv->t.t_speech_start = conv_now_us();
			conversation_emit_type(cv, "speech_started");
			stt_begin(cv, start_ms);
		} else if (cv->phase == PH_TRANSCRIBING && !cv->again) {
			cv->again = true;
			cv->again_ended = false;
			cv->again_start_ms = start_ms;
			conversation_emit_type(cv, "speech_started");
		}
	} else if (!strcmp(ev, "speech_end")) {
		if (cv->phase == PH_LISTENING) {
			conversation_emit_type(cv, "speech_stopped");
			cv->t.t_input_end = conv_now_us();
			conv_listen_end(cv);
		} else if (cv->phase == PH_TRANSCRIBING && cv->again) {
			conversation_emit_type(cv, "speech_stopped");
			cv->again_ended = true;
		}
	} else if (!strcmp(ev, "error")) {
		const char *msg = cJSON_GetStringValue(cJSON_GetObjectItem(j, "message"));
		vx_counter_add(cv->svc->stage_errors[ORCH_VAD], 1);
		conversation_emit_error(cv, "vad", "vad_failed", "%s",
					msg ? msg : "detection failed");
	}
}

/* ---- the ring ---- */

/* Keeps the last ring_cap bytes of client audio. */
void conv_listen_ring_put(conversation *cv, const uint8_t *p, size_t len)
{
	if (len >= cv->ring_cap) {
		p += len - cv->ring_cap;
		cv->bytes_in += len - cv->ring_cap;
		len = cv->ring_cap;
	}
	while (len) {
		size_t off = (size_t)(cv->bytes_in % cv->ring_cap);
		size_t n = cv->ring_cap - off < len ? cv->ring_cap - off : len;
		memcpy(cv->ring + off, p, n);
		cv->bytes_in += n;
		p += n;
		len -= n;
	}
}
