/*
 * wdecode.c - Whisper's decoding: timestamp rules, greedy, beam search and
 * sampling with temperature fallback, segments, the no-speech decision and
 * language detection. See wdecode.h.
 */
#include "wdecode.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define MAX_INITIAL_TS 50    /* 1.00 s in 20 ms steps */

wdec_params wdec_defaults(void)
{
	return (wdec_params){ .timestamps = true, .max_tokens = 224, .audio_ms = 30000,
			      .language = -1, .no_speech_thold = 0.6f, .logprob_thold = -1.0f,
			      .beam_size = 1, .best_of = 1, .temperature_inc = 0.2f,
			      .compression_ratio_thold = 2.4f, .length_penalty = -1.0f };
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

/* Length of the valid UTF-8 sequence at p (n bytes left), 0 if invalid. */
static size_t utf8_len(const uint8_t *p, size_t n)
{
	size_t k = p[0] == 0 ? 0 : p[0] < 0x80 ? 1 : p[0] >= 0xc2 && p[0] < 0xe0 ? 2 :
		   p[0] >= 0xe0 && p[0] < 0xf0 ? 3 : p[0] >= 0xf0 && p[0] < 0xf5 ? 4 : 0;
	if (!k || k > n)
		return 0;
	for (size_t i = 1; i < k; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	if ((k == 3 && p[0] == 0xe0 && p[1] < 0xa0) || (k == 3 && p[0] == 0xed && p[1] >= 0xa0) ||
	    (k == 4 && p[0] == 0xf0 && p[1] < 0x90) || (k == 4 && p[0] == 0xf4 && p[1] >= 0x90))
		return 0;   /* overlong, surrogate, past U+10FFFF */
	return k;
}

/* A NUL-terminated copy of text with each invalid byte replaced by U+FFFD
 * (as openai-whisper decodes with errors="replace"): byte tokens can split
 * a character, and sampling can pick any byte. Caller frees. */
static char *utf8_copy(const char *text, size_t len)
{
	char *out = malloc(len * 3 + 1), *o = out;
	const uint8_t *p = (const uint8_t *)text;
	if (!out)
		return NULL;
	for (size_t i = 0; i < len;) {
		size_t k = utf8_len(p + i, len - i);
		if (k) {
			memcpy(o, p + i, k);
			o += k;
			i += k;
		} else {
			memcpy(o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		}
	}
	*o = 0;
	return out;
}

static int add_segment(wdec_result *r, int start, int end, const char *text, size_t len)
{
	wdec_segment *s = realloc(r->segments, sizeof *s * (size_t)(r->n_segments + 1));
	if (!s)
		return -ENOMEM;
	r->segments = s;
	char *copy = utf8_copy(text, len);
	if (!copy)
		return -ENOMEM;
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
	if (rc == 0 && !(r->text = utf8_copy(all, al)))
		rc = -ENOMEM;
out:
	free(seg);
	free(all);
	return rc;
}

/* ------------------------------------------------------------ one window */

/* A candidate token sequence: the sampled tokens (eot not stored). */
typedef struct seq {
	int32_t *tok;
	int n;
	double sum_lp;           /* of the tokens and, when ended, the eot */
	bool ended;              /* <|endoftext|> was picked */
	int slot;                /* beam search: the snapshot after its tokens */
	float *logits;           /* beam search: the next token's logits */
} seq;

/* What every try of one window shares. */
typedef struct run {
	const wdec_model *m;
	const wtok *t;
	const wdec_params *p;
	int32_t blank;           /* " ", never first */
	int32_t pre[8 + 448];    /* prev, prompt tail, sot, language, task, notimestamps */
	int n_pre, n_prev;       /* all of it / before sot */
	int cap;                 /* sampled tokens at most */
	float *first;            /* logits after the prefix */
	float *l, *lp;           /* scratch, n_vocab each */
	float no_speech_prob;
	bool at_prefix;          /* the model's state is the prefix's */
	bool slots;              /* the model can save/load enough slots */
	uint64_t rng;
} run;

static int feed(const run *r, const int32_t *tok, int n, float *l)
{
	return n > 0 ? r->m->decode(r->m->ctx, tok, n, l) : 0;
}

/* Feeds the prefix as wdec_greedy always has: <|startofprev|>, the prompt,
 * <|startoftranscript|> (its logits give the no-speech probability), the
 * rest; the last logits into first. */
static int feed_prefix(run *r, float *first)
{
	int rc, n_sot = r->n_prev + 1;
	r->m->reset(r->m->ctx);
	if (r->n_prev > 0 && ((rc = feed(r, r->pre, 1, r->l)) < 0 ||
			      (rc = feed(r, r->pre + 1, r->n_prev - 1, r->l)) < 0))
		return rc;
	if ((rc = feed(r, r->pre + r->n_prev, 1, r->l)) < 0)
		return rc;
	log_softmax(r->l, r->t->n_vocab, r->lp);
	r->no_speech_prob = expf(r->lp[r->t->nosp]);
	if (r->n_pre > n_sot)
		rc = feed(r, r->pre + n_sot, r->n_pre - n_sot, first);
	else
		memcpy(first, r->l, sizeof *first * (size_t)r->t->n_vocab);
	r->at_prefix = rc == 0;
	return rc;
}

static int setup(run *r, const wdec_model *m, const wtok *t, const wdec_params *p)
{
	int np = 0, rc;
	*r = (run){ .m = m, .t = t, .p = p, .blank = -1, .rng = p->seed };
	int n_prev = p->prompt ? p->n_prompt : 0, prev_max = m->n_text_ctx / 2 - 1;
	prev_max = prev_max < 448 ? prev_max : 448;
	n_prev = n_prev > prev_max ? (prev_max > 0 ? prev_max : 0) : n_prev;
	if (n_prev > 0) {
		r->pre[np++] = t->prev;
		memcpy(r->pre + np, p->prompt + p->n_prompt - n_prev, sizeof *r->pre * (size_t)n_prev);
		np += n_prev;
	}
	r->n_prev = np;
	r->pre[np++] = t->sot;
	if (t->multilingual) {
		if (p->language >= 0)
			r->pre[np++] = p->language;
		r->pre[np++] = p->translate ? t->translate : t->transcribe;
	}
	if (!p->timestamps)
		r->pre[np++] = t->notimestamps;
	r->n_pre = np;
	r->cap = p->max_tokens > 0 ? p->max_tokens : 1;
	size_t nv = (size_t)t->n_vocab;
	r->first = malloc(sizeof *r->first * nv);
	r->l = malloc(sizeof *r->l * nv);
	r->lp = malloc(sizeof *r->lp * nv);
	if (!r->first || !r->l || !r->lp)
		return -ENOMEM;
	wtok_encode(t, " ", 1, &r->blank, 1);
	r->slots = m->save && m->load && m->n_slots >= 1;
	if ((rc = feed_prefix(r, r->first)) < 0)
		return rc;
	if (r->slots && (rc = m->save(m->ctx, 0)) < 0)
		return rc;
	return 0;
}

static void run_release(run *r)
{
	free(r->first);
	free(r->l);
	free(r->lp);
}

/* The model back at the prefix's state. */
static int to_prefix(run *r)
{
	if (r->at_prefix)
		return 0;
	float nsp = r->no_speech_prob;
	int rc = r->slots ? r->m->load(r->m->ctx, 0) : feed_prefix(r, r->l);
	r->no_speech_prob = nsp;
	r->at_prefix = rc == 0;
	return rc;
}

static bool full(const run *r, int n)
{
	return n >= r->cap || r->n_pre + n >= r->m->n_text_ctx;
}

static double uniform(uint64_t *s)   /* splitmix64 -> [0, 1) */
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return (double)(z >> 11) / 9007199254740992.0;
}

/* A token from softmax(l / temp) over the allowed ones. */
static int32_t sample(const float *l, int32_t nv, float temp, uint64_t *rng)
{
	float mx = -INFINITY;
	int32_t last = -1;
	for (int32_t i = 0; i < nv; i++)
		if (l[i] > mx)
			mx = l[i];
	double sum = 0;
	for (int32_t i = 0; i < nv; i++)
		if (l[i] != -INFINITY)
			sum += exp(((double)l[i] - mx) / temp);
	double u = uniform(rng) * sum, acc = 0;
	for (int32_t i = 0; i < nv; i++) {
		if (l[i] == -INFINITY)
			continue;
		last = i;
		acc += exp(((double)l[i] - mx) / temp);
		if (acc > u)
			return i;
	}
	return last;
}

/* One sequence token by token: greedy at temp 0, else sampled. */
static int one_seq(run *r, float temp, seq *s)
{
	int32_t nv = r->t->n_vocab;
	float *l = r->l, *lp = r->lp;
	int rc;

	if ((rc = to_prefix(r)) < 0)
		return rc;
	memcpy(l, r->first, sizeof *l * (size_t)nv);
	for (;;) {
		filter(r->t, r->p, r->blank, s->tok, s->n, l, lp);
		int32_t best = 0;
		if (temp > 0) {
			best = sample(l, nv, temp, &r->rng);
		} else {
			for (int32_t i = 1; i < nv; i++)
				best = l[i] > l[best] ? i : best;
		}
		if (best < 0 || l[best] == -INFINITY)
			break;
		log_softmax(l, nv, lp);
		s->sum_lp += lp[best];
		if (best == r->t->eot) {
			s->ended = true;
			break;
		}
		s->tok[s->n++] = best;
		if (full(r, s->n))
			break;
		r->at_prefix = false;
		if ((rc = r->m->decode(r->m->ctx, &best, 1, l)) < 0)
			return rc;
	}
	return 0;
}

static double score(const wdec_params *p, const seq *s)
{
	double len = s->n > 0 ? s->n : 1;
	double pen = p->length_penalty < 0 ? len : pow((5.0 + len) / 6.0, p->length_penalty);
	return s->sum_lp / pen;
}

typedef struct cand {
	double sum_lp;
	int parent;
	int32_t tok;
} cand;

static int cand_cmp(const void *a, const void *b)
{
	const cand *x = a, *y = b;
	if (x->sum_lp != y->sum_lp)
		return x->sum_lp > y->sum_lp ? -1 : 1;
	if (x->parent != y->parent)
		return x->parent < y->parent ? -1 : 1;
	return x->tok < y->tok ? -1 : x->tok > y->tok;
}

/* The k likeliest allowed tokens of lp (k <= WDEC_BEAM_MAX + 1). */
static int top_k(const float *lp, int32_t nv, int k, int32_t *out)
{
	int n = 0;
	for (int32_t i = 0; i < nv; i++) {
		if (lp[i] == -INFINITY || (n == k && lp[i] <= lp[out[n - 1]]))
			continue;
		int j = n < k ? n++ : k - 1;
		while (j > 0 && lp[out[j - 1]] < lp[i]) {
			out[j] = out[j - 1];
			j--;
		}
		out[j] = i;
	}
	return n;
}

/* The state after parent's tokens plus tok, its logits into l; saved in slot. */
static int extend(run *r, const seq *parent, int32_t tok, int slot, float *l)
{
	int rc;
	r->at_prefix = false;
	if (r->slots) {
		if ((rc = r->m->load(r->m->ctx, parent->slot)) < 0 ||
		    (rc = r->m->decode(r->m->ctx, &tok, 1, l)) < 0)
			return rc;
		return r->m->save(r->m->ctx, slot);
	}
	/* re-feed: the prefix, the parent's tokens and tok in one call */
	int n = r->n_pre + parent->n + 1;
	int32_t *all = malloc(sizeof *all * (size_t)n);
	if (!all)
		return -ENOMEM;
	memcpy(all, r->pre, sizeof *all * (size_t)r->n_pre);
	memcpy(all + r->n_pre, parent->tok, sizeof *all * (size_t)parent->n);
	all[n - 1] = tok;
	r->m->reset(r->m->ctx);
	rc = r->m->decode(r->m->ctx, all, n, l);
	free(all);
	return rc;
}

static void seq_free(seq *s, int n)
{
	for (int i = 0; i < n; i++) {
		free(s[i].tok);
		free(s[i].logits);
	}
}

/* Beam search (openai-whisper's BeamSearchDecoder, patience 1); the best
 * sequence by score into *best (best->tok is the caller's, cap long). */
static int beam(run *r, int B, seq *best)
{
	int32_t nv = r->t->n_vocab;
	seq cur[WDEC_BEAM_MAX] = { 0 }, next[WDEC_BEAM_MAX] = { 0 }, done[WDEC_BEAM_MAX] = { 0 };
	cand cands[WDEC_BEAM_MAX * (WDEC_BEAM_MAX + 1)];
	int n_cur = 1, n_done = 0, rc = 0;
	bool use_slots = r->slots && r->m->n_slots >= WDEC_SLOTS(B);
	bool slots_were = r->slots;

	r->slots = use_slots;
	for (int i = 0; i < B; i++) {
		cur[i].tok = malloc(sizeof(int32_t) * (size_t)r->cap);
		next[i].tok = malloc(sizeof(int32_t) * (size_t)r->cap);
		done[i].tok = malloc(sizeof(int32_t) * (size_t)r->cap);
		cur[i].logits = malloc(sizeof(float) * (size_t)nv);
		next[i].logits = malloc(sizeof(float) * (size_t)nv);
		if (!cur[i].tok || !next[i].tok || !done[i].tok || !cur[i].logits || !next[i].logits) {
			rc = -ENOMEM;
			goto out_free;
		}
	}
	memcpy(cur[0].logits, r->first, sizeof(float) * (size_t)nv);
	cur[0].slot = 0;             /* the prefix */
	for (;;) {
		int n_c = 0;
		for (int b = 0; b < n_cur; b++) {
			int32_t top[WDEC_BEAM_MAX + 1];
			memcpy(r->l, cur[b].logits, sizeof(float) * (size_t)nv);
			filter(r->t, r->p, r->blank, cur[b].tok, cur[b].n, r->l, r->lp);
			log_softmax(r->l, nv, r->lp);
			int k = top_k(r->lp, nv, B + 1, top);
			for (int i = 0; i < k; i++)
				cands[n_c++] = (cand){ cur[b].sum_lp + r->lp[top[i]], b, top[i] };
		}
		qsort(cands, (size_t)n_c, sizeof *cands, cand_cmp);
		int n_next = 0;
		for (int i = 0; i < n_c && n_next < B; i++) {
			const seq *par = &cur[cands[i].parent];
			if (cands[i].tok == r->t->eot) {
				if (n_done < B) {
					seq *d = &done[n_done++];
					memcpy(d->tok, par->tok, sizeof(int32_t) * (size_t)par->n);
					d->n = par->n;
					d->sum_lp = cands[i].sum_lp;
					d->ended = true;
				}
				continue;
			}
			seq *nx = &next[n_next];
			memcpy(nx->tok, par->tok, sizeof(int32_t) * (size_t)par->n);
			nx->n = par->n;
			nx->tok[nx->n++] = cands[i].tok;
			nx->sum_lp = cands[i].sum_lp;
			/* slots: 1..B and B+1..2B alternate between generations */
			nx->slot = 1 + n_next + (cur[0].slot == 0 || cur[0].slot > B ? 0 : B);
			if (!full(r, nx->n) &&
			    (rc = extend(r, par, cands[i].tok, nx->slot, nx->logits)) < 0)
				goto out_free;
			n_next++;
		}
		for (int i = 0; i < n_next; i++) {   /* next becomes cur */
			seq t = cur[i];
			cur[i] = next[i];
			next[i] = t;
		}
		n_cur = n_next;
		if (n_done >= B || n_cur == 0 || full(r, cur[0].n))
			break;
	}
	/* too few ended: the live beams count as they are */
	for (int i = 0; i < n_cur && n_done < B; i++) {
		seq *d = &done[n_done++];
		memcpy(d->tok, cur[i].tok, sizeof(int32_t) * (size_t)cur[i].n);
		d->n = cur[i].n;
		d->sum_lp = cur[i].sum_lp;
		d->ended = false;
	}
	int bi = -1;
	for (int i = 0; i < n_done; i++)
		if (bi < 0 || score(r->p, &done[i]) > score(r->p, &done[bi]))
			bi = i;
	if (bi >= 0) {
		memcpy(best->tok, done[bi].tok, sizeof(int32_t) * (size_t)done[bi].n);
		best->n = done[bi].n;
		best->sum_lp = done[bi].sum_lp;
		best->ended = done[bi].ended;
	}
out_free:
	r->slots = slots_were;
	seq_free(cur, B);
	seq_free(next, B);
	seq_free(done, B);
	return rc;
}

/* The text tokens' bytes, for the compression ratio. */
static float text_ratio(const wtok *t, const int32_t *tok, int n)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	for (int i = 0; i < n; i++) {
		size_t bl;
		const uint8_t *b = wtok_bytes(t, tok[i], &bl);
		if (b && append(&buf, &len, &cap, b, bl) < 0) {
			free(buf);
			return 0;
		}
	}
	float cr = wdec_compression_ratio(buf ? buf : "", len);
	free(buf);
	return cr;
}

/* One try at temperature temp into *ret (a result to release). */
static int try_at(run *r, float temp, wdec_result *ret)
{
	const wdec_params *p = r->p;
	wdec_result res = { .temperature = temp, .no_speech_prob = r->no_speech_prob };
	seq best = { 0 }, s = { 0 };
	int rc = 0, n_try = temp > 0 && p->best_of > 1 ? p->best_of : 1;
	bool have = false;

	n_try = n_try > WDEC_BEAM_MAX ? WDEC_BEAM_MAX : n_try;
	best.tok = malloc(sizeof *best.tok * (size_t)r->cap);
	s.tok = malloc(sizeof *s.tok * (size_t)r->cap);
	if (!best.tok || !s.tok) {
		rc = -ENOMEM;
		goto out_free;
	}
	if (temp <= 0 && p->beam_size > 1) {
		int B = p->beam_size > WDEC_BEAM_MAX ? WDEC_BEAM_MAX : p->beam_size;
		if ((rc = beam(r, B, &best)) < 0)
			goto out_free;
		r->at_prefix = false;
	} else {
		for (int i = 0; i < n_try; i++) {
			s.n = 0;
			s.sum_lp = 0;
			s.ended = false;
			if ((rc = one_seq(r, temp, &s)) < 0)
				goto out_free;
			if (!have || score(p, &s) > score(p, &best)) {
				int32_t *t = best.tok;
				best = s;
				s.tok = t;
				have = true;
			}
		}
	}
	int n_lp = best.n + (best.ended ? 1 : 0);
	res.avg_logprob = n_lp ? (float)(best.sum_lp / n_lp) : 0.0f;
	res.tokens = best.tok;
	res.n_tokens = best.n;
	best.tok = NULL;
	res.compression_ratio = text_ratio(r->t, res.tokens, res.n_tokens);
	res.no_speech = res.no_speech_prob > p->no_speech_thold && res.avg_logprob < p->logprob_thold;
	if (res.no_speech) {
		res.text = calloc(1, 1);
		rc = res.text ? 0 : -ENOMEM;
	} else {
		rc = segment(r->t, p, &res);
	}
	if (rc == 0) {
		*ret = res;
		res = (wdec_result){ 0 };
	}
out_free:
	wdec_result_release(&res);
	free(best.tok);
	free(s.tok);
	return rc;
}

int wdec_decode(const wdec_model *m, const wtok *t, const wdec_params *p, wdec_result *ret)
{
	run r;
	int rc = setup(&r, m, t, p);
	float temp = p->temperature > 0 ? p->temperature : 0;

	for (int i = 0; rc == 0; i++) {
		wdec_result res;
		if ((rc = try_at(&r, temp, &res)) < 0)
			break;
		bool fails = (res.compression_ratio > p->compression_ratio_thold ||
			      res.avg_logprob < p->logprob_thold) && !res.no_speech;
		float next = p->temperature + (float)(i + 1) * p->temperature_inc;
		if (!fails || p->temperature_inc <= 0 || next > 1.0f + 1e-4f) {
			*ret = res;
			break;
		}
		wdec_result_release(&res);
		temp = next;
	}
	run_release(&r);
	return rc;
}

int wdec_greedy(const wdec_model *m, const wtok *t, const wdec_params *p, wdec_result *ret)
{
	wdec_params g = *p;
	g.beam_size = 1;
	g.best_of = 1;
	g.temperature = 0;
	g.temperature_inc = 0;
	return wdec_decode(m, t, &g, ret);
}

int wdec_detect_language(const wdec_model *m, const wtok *t, int32_t *ret_lang,
			 float *ret_prob, float *ret_probs)
{
	if (!t->multilingual || t->n_languages < 1)
		return -ENOTSUP;
	float *l = malloc(sizeof *l * (size_t)t->n_vocab);
	if (!l)
		return -ENOMEM;
	m->reset(m->ctx);
	int rc = m->decode(m->ctx, &t->sot, 1, l);
	if (rc == 0) {
		const float *lang = l + t->sot + 1;
		int best = 0;
		for (int i = 1; i < t->n_languages; i++)
			best = lang[i] > lang[best] ? i : best;
		double sum = 0;
		for (int i = 0; i < t->n_languages; i++)
			sum += exp((double)lang[i] - lang[best]);
		if (ret_probs)
			for (int i = 0; i < t->n_languages; i++)
				ret_probs[i] = (float)(exp((double)lang[i] - lang[best]) / sum);
		*ret_lang = t->sot + 1 + best;
		*ret_prob = (float)(1.0 / sum);
	}
	m->reset(m->ctx);
	free(l);
	return rc;
}

float wdec_compression_ratio(const char *text, size_t len)
{
	uLongf out_len = compressBound((uLong)len);
	Bytef *out = malloc(out_len);
	if (!out || compress(out, &out_len, (const Bytef *)text, (uLong)len) != Z_OK) {
		free(out);
		return 0;
	}
	free(out);
	return out_len ? (float)len / (float)out_len : 0.0f;
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
