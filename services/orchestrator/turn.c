/*
 * turn.c - one turn's record: sentences, audio sent, milestones and the
 * metrics derived from them (see turn.h).
 */
#include "turn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void turn_init(turn *t, int seq, double bytes_per_ms)
{
	memset(t, 0, sizeof(*t));
	t->seq = seq;
	t->bytes_per_ms = bytes_per_ms > 0 ? bytes_per_ms : 32.0;
}

void turn_release(turn *t)
{
	vx_buf_release(&t->user);
	vx_buf_release(&t->reply);
	vx_buf_release(&t->reasoning);
	for (size_t i = 0; i < t->n_sent; i++)
		free(t->sent[i].text);
	free(t->sent);
	memset(t, 0, sizeof(*t));
}

int turn_add_sentence(turn *t, const char *text, size_t len)
{
	if (t->n_sent == TURN_MAX_SENTENCES)
		return -E2BIG;
	if (t->n_sent == t->cap_sent) {
		size_t cap = t->cap_sent ? t->cap_sent * 2 : 8;
		turn_sentence *s = realloc(t->sent, cap * sizeof(*s));
		if (!s)
			return -ENOMEM;
		t->sent = s;
		t->cap_sent = cap;
	}
	char *copy = malloc(len + 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, text, len);
	copy[len] = 0;
	t->sent[t->n_sent] = (turn_sentence){ .text = copy, .len = len };
	return (int)t->n_sent++;
}

void turn_audio(turn *t, int i, size_t len)
{
	if (i >= 0 && (size_t)i < t->n_sent)
		t->sent[i].audio_bytes += len;
	t->audio_bytes += len;
}

double turn_sent_ms(const turn *t)
{
	return (double)t->audio_bytes / t->bytes_per_ms;
}

/* Appends the first `frac` of text, cut back to a word boundary. */
static void append_prefix(vx_buf *out, const char *text, size_t len, double frac)
{
	if (frac <= 0)
		return;
	size_t n = frac >= 1 ? len : (size_t)(frac * (double)len);
	if (n < len) {
		while (n > 0 && text[n] != ' ')
			n--;
	}
	while (n > 0 && text[n - 1] == ' ')
		n--;
	if (n == 0)
		return;
	if (out->len)
		vx_buf_puts(out, " ");
	vx_buf_append(out, text, n);
}

void turn_played_text(const turn *t, int64_t now_us, vx_buf *out)
{
	if (!t->t_audio_start)
		return;
	double played = (double)(now_us - t->t_audio_start) / 1000.0;
	double sent = turn_sent_ms(t);
	if (played > sent)
		played = sent;
	double at = 0;
	for (size_t i = 0; i < t->n_sent && played > at; i++) {
		const turn_sentence *s = &t->sent[i];
		double ms = (double)s->audio_bytes / t->bytes_per_ms;
		if (!s->done) {
			double est = (double)s->len * TURN_MS_PER_CHAR;
			if (est > ms)
				ms = est;
		}
		if (ms <= 0)
			break;
		append_prefix(out, s->text, s->len, (played - at) / ms);
		at += ms;
	}
}

double turn_span_ms(int64_t a, int64_t b)
{
	return a && b && b >= a ? (double)(b - a) / 1000.0 : -1;
}

void turn_get_timings(const turn *t, turn_timings *r)
{
	r->stt_ms = t->from_text ? -1 : turn_span_ms(t->t_eot ? t->t_eot : t->t_input_end,
						     t->t_final);
	r->llm_first_token_ms = turn_span_ms(t->t_llm_request, t->t_llm_first_token);
	r->llm_first_sentence_ms = turn_span_ms(t->t_llm_request, t->t_first_sentence);
	r->tts_first_audio_ms = turn_span_ms(t->t_first_sentence, t->t_tts_first_audio);
	r->forward_ms = turn_span_ms(t->t_tts_first_audio, t->t_audio_start);
	r->voice_to_voice_ms = turn_span_ms(t->t_input_end, t->t_audio_start);
	r->total_ms = turn_span_ms(t->t_input_end, t->t_end);
	r->overhead_ms = -1;
	if (r->voice_to_voice_ms >= 0 && r->llm_first_sentence_ms >= 0 &&
	    r->tts_first_audio_ms >= 0) {
		double o = r->voice_to_voice_ms - r->llm_first_sentence_ms -
			   r->tts_first_audio_ms - (r->stt_ms > 0 ? r->stt_ms : 0) -
			   (t->t_eot > t->t_input_end ? (double)(t->t_eot - t->t_input_end) / 1000.0 : 0);
		r->overhead_ms = o > 0 ? o : 0;
	}
}

void turn_timings_json(const turn *t, vx_buf *out)
{
	turn_timings m;
	turn_get_timings(t, &m);
	const double v[] = { m.stt_ms, m.llm_first_token_ms, m.llm_first_sentence_ms,
			     m.tts_first_audio_ms, m.forward_ms, m.voice_to_voice_ms,
			     m.overhead_ms, m.total_ms, turn_sent_ms(t) };
	static const char *const names[] = {
		"stt_ms", "llm_first_token_ms", "llm_first_sentence_ms",
		"tts_first_audio_ms", "forward_ms", "voice_to_voice_ms", "orchestrator_ms",
		"total_ms", "reply_audio_ms",
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		if (v[i] < 0)
			vx_buf_printf(out, "%s\"%s\":null", i ? "," : "", names[i]);
		else
			vx_buf_printf(out, "%s\"%s\":%.2f", i ? "," : "", names[i], v[i]);
	}
}
