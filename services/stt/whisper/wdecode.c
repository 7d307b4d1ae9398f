/*
 * wdecode.c - Whisper's greedy decoding with timestamp rules, segments and
 * the no-speech decision. See wdecode.h.
 */
#include "wdecode.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INITIAL_TS 50    /* 1.00 s in 20 ms steps */

wdec_params wdec_defaults(void)
{
	return (wdec_params){ .timestamps = true, .max_tokens = 224, .audio_ms = 30000,
			      .language = -1, .no_speech_thold = 0.6f, .logprob_thold = -1.0f };
}

static void suppress(float *l, int32_t from, int32_t to)   /* [from, to) */
{
	for (int32_t i = from < 0 ? 0 : from; i < to; i++)
		l[i] = -INFINITY;
}

static void log_softmax(const float *l, int n, float *out)
{
	float mx = -INFINITY;
	for (int i = 0; i < n; i++)
		mx = l[i] > mx ? l[i] : mx;
	double sum = 0;
	for (int i = 0; i < n; i++)
		sum += l[i] == -INFINITY ? 0 : exp((double)l[i] - mx);
	float lse = mx + (float)log(sum);
	for (int i = 0; i < n; i++)
		out[i] = l[i] - lse;
}

/* Whisper's logit filters for the next token after hist[0..n). */
static void filter(const wtok *t, const wdec_params *p, int32_t blank, const int32_t *hist, int n,
		   float *l, float *lp)
{
	int32_t nv = t->n_vocab, beg = t->beg;

	suppress(l, t->eot + 1, beg);   /* sot .. notimestamps, languages */
	if (!p->timestamps) {
		suppress(l, beg, nv);
	}
	if (n == 0) {
		if (blank >= 0)
			l[blank] = -INFINITY;
		l[t->eot] = -INFINITY;
	}
	if (!p->timestamps)
		return;
	bool last_ts = n >= 1 && hist[n - 1] >= beg;
	bool pen_ts = n < 2 || hist[n - 2] >= beg;
	if (last_ts) {
		if (pen_ts)
			suppress(l, beg, nv);       /* a pair: text next */
		else
			suppress(l, 0, t->eot);     /* a segment's end: timestamp or eot */
	}
	for (int i = n - 1; i >= 0; i--) {
		if (hist[i] < beg)
			continue;
		int32_t from = (last_ts && !pen_ts) ? hist[i] : hist[i] + 1;
		suppress(l, beg, from);             /* never back in time */
		break;
	}
	if (n == 0) {
		suppress(l, 0, beg);
		suppress(l, beg + MAX_INITIAL_TS + 1, nv);
	}
	int64_t last_ok = (int64_t)beg + p->audio_ms / 20;
	if (last_ok + 1 < nv)
		suppress(l, (int32_t)(last_ok + 1), nv);
	/* timestamps likelier together than the best text token: take one */
	log_softmax(l, nv, lp);
	double ts_sum = 0;
	float text_max = -INFINITY;
	for (int32_t i = beg; i < nv; i++)
		ts_sum += exp(lp[i]);
	for (int32_t i = 0; i < beg; i++)
		text_max = lp[i] > text_max ? lp[i] : text_max;
	if (ts_sum > 0 && log(ts_sum) > text_max)
		suppress(l, 0, beg);
}

static int append(char **buf, size_t *len, size_t *cap, const void *p, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t nc = (*len + n + 1) * 2;
		char *b = realloc(*buf, nc);
		if (!b)
			return -ENOMEM;
		*buf = b;
		*cap = nc;
	}
	memcpy(*buf + *len, p, n);
	*len += n;
	(*buf)[*len] = 0;
	return 0;
}

static int add_segment(wdec_result *r, int start, int end, const char *text, size_t len)
{
	wdec_segment *s = realloc(r->segments, sizeof *s * (size_t)(r->n_segments + 1));
	if (!s)
		return -ENOMEM;
	r->segments = s;
	char *copy = malloc(len + 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, text, len);
	copy[len] = 0;
	s[r->n_segments++] = (wdec_segment){ .start_ms = start, .end_ms = end, .text = copy };
	return 0;
}

/* Cuts r->tokens into segments and the full text. */
static int segment(const wtok *t, const wdec_params *p, wdec_result *r)
{
	char *seg = NULL, *all = NULL;
	size_t sl = 0, sc = 0, al = 0, ac = 0;
	int start = -1, last_end = 0, rc = 0;

	if ((rc = append(&all, &al, &ac, "", 0)) < 0 || (rc = append(&seg, &sl, &sc, "", 0)) < 0)
		goto out;
	for (int i = 0; i < r->n_tokens && rc == 0; i++) {
		int32_t id = r->tokens[i];
		size_t bl;
		const uint8_t *b = wtok_bytes(t, id, &bl);
		if (b) {
			if (start < 0)
				start = last_end;
			if ((rc = append(&seg, &sl, &sc, b, bl)) == 0)
				rc = append(&all, &al, &ac, b, bl);
			continue;
		}
		int ms = wtok_timestamp_ms(t, id);
		if (ms < 0)
			continue;
		if (start < 0) {
			start = ms;
		} else {
			if (sl)
				rc = add_segment(r, start, ms, seg, sl);
			sl = 0;
			start = -1;
			last_end = ms;
		}
	}
	if (rc == 0 && sl)
		rc = add_segment(r, start < 0 ? 0 : start, p->audio_ms > start ? p->audio_ms : start,
				 seg, sl);
	if (rc == 0) {
		r->text = all;
		all = NULL;
	}
out:
	free(seg);
	free(all);
	return rc;
}

int wdec_greedy(const wdec_model *m, const wtok *t, const wdec_params *p, wdec_result *ret)
{
	int32_t nv = t->n_vocab, prompt[4], blank = -1;
	int np = 0, rc;
	wdec_result r = { 0 };
	float *l = malloc(sizeof *l * (size_t)nv), *lp = malloc(sizeof *lp * (size_t)nv);
	int cap = p->max_tokens > 0 ? p->max_tokens : 1;
	r.tokens = malloc(sizeof *r.tokens * (size_t)cap);

	if (!l || !lp || !r.tokens) {
		rc = -ENOMEM;
		goto out_free;
	}
	wtok_encode(t, " ", 1, &blank, 1);
	m->reset(m->ctx);
	int n_prev = p->prompt ? p->n_prompt : 0, prev_max = m->n_text_ctx / 2 - 1;
	n_prev = n_prev > prev_max ? (prev_max > 0 ? prev_max : 0) : n_prev;
	if (n_prev > 0) {
		if ((rc = m->decode(m->ctx, &t->prev, 1, l)) < 0 ||
		    (rc = m->decode(m->ctx, p->prompt + p->n_prompt - n_prev, n_prev, l)) < 0)
			goto out_free;
	}
	int n_used = n_prev > 0 ? n_prev + 1 : 0;   /* context taken by the prompt */
	prompt[np++] = t->sot;
	if (t->multilingual) {
		if (p->language >= 0)
			prompt[np++] = p->language;
		prompt[np++] = p->translate ? t->translate : t->transcribe;
	}
	if (!p->timestamps)
		prompt[np++] = t->notimestamps;
	/* the <|nospeech|> probability at the <|startoftranscript|> position */
	if ((rc = m->decode(m->ctx, prompt, 1, l)) < 0)
		goto out_free;
	log_softmax(l, nv, lp);
	r.no_speech_prob = expf(lp[t->nosp]);
	if (np > 1 && (rc = m->decode(m->ctx, prompt + 1, np - 1, l)) < 0)
		goto out_free;

	double sum_lp = 0;
	int n_lp = 0;
	for (;;) {
		filter(t, p, blank, r.tokens, r.n_tokens, l, lp);
		int32_t best = 0;
		for (int32_t i = 1; i < nv; i++)
			best = l[i] > l[best] ? i : best;
		log_softmax(l, nv, lp);
		sum_lp += lp[best];
		n_lp++;
		if (best == t->eot || l[best] == -INFINITY)
			break;
		r.tokens[r.n_tokens++] = best;
		if (r.n_tokens >= cap || n_used + np + r.n_tokens >= m->n_text_ctx)
			break;
		if ((rc = m->decode(m->ctx, &best, 1, l)) < 0)
			goto out_free;
	}
	r.avg_logprob = (float)(sum_lp / n_lp);
	r.no_speech = r.no_speech_prob > p->no_speech_thold && r.avg_logprob < p->logprob_thold;
	if (r.no_speech) {
		r.text = calloc(1, 1);
		rc = r.text ? 0 : -ENOMEM;
	} else {
		rc = segment(t, p, &r);
	}
	if (rc == 0) {
		*ret = r;
		r = (wdec_result){ 0 };
	}
out_free:
	wdec_result_release(&r);
	free(l);
	free(lp);
	return rc;
}

void wdec_result_release(wdec_result *r)
{
	for (int i = 0; i < r->n_segments; i++)
		free(r->segments[i].text);
	free(r->segments);
	free(r->text);
	free(r->tokens);
	memset(r, 0, sizeof *r);
}
