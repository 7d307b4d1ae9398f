/*
 * test_whisper_decode.c - Whisper's greedy decoding (wdecode.c) against a
 * scripted fake decoder: each step's logits favour the script's next token,
 * so the tests see what the timestamp rules, the segmenter and the
 * no-speech decision make of it. The vocabulary is an English-only one
 * (51864 ids: bytes, then " w<N>" words, specials where whisper.cpp puts
 * them) built in memory.
 */
#include "../../services/stt/whisper/wdecode.h"
#include "../../services/stt/whisper/wfile.h"
#include "../../services/stt/whisper/wtok.h"
#include "vx_test.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define NV 51864
#define BEG 50363
#define TS(ms) (BEG + (ms) / 20)
#define HELLO 1000
#define WORLD 1001
#define AGAIN 1002

static wfile file;
static wtok tok;
static char words[50257][8];

typedef struct fake {
	const int32_t *script;   /* token favoured at each sampling step */
	int n_script;
	int calls, prompt_calls; /* decode calls so far / before sampling starts */
	float nosp_logit;        /* <|nospeech|> at the first call */
	float boost;             /* the favoured token's logit (others 0) */
	int fed;                 /* tokens fed */
	int32_t seen[64];        /* the first tokens fed, in order */
} fake;

static void fake_reset(void *ctx) { ((fake *)ctx)->calls = ((fake *)ctx)->fed = 0; }

static int fake_decode(void *ctx, const int32_t *toks, int n, float *l)
{
	fake *f = ctx;
	for (int i = 0; i < NV; i++)
		l[i] = 0;
	if (toks[0] == tok.sot)
		l[tok.nosp] = f->nosp_logit;
	for (int i = 0; i < n && f->fed + i < 64; i++)
		f->seen[f->fed + i] = toks[i];
	int step = f->calls + 1 - f->prompt_calls;
	if (step >= 0 && step < f->n_script)
		l[f->script[step]] = f->boost;
	f->calls++;
	f->fed += n;
	return 0;
}

static int decode(fake *f, const wdec_params *p, wdec_result *r)
{
	wdec_model m = { .ctx = f, .reset = fake_reset, .decode = fake_decode, .n_text_ctx = 448 };
	f->prompt_calls = (p->timestamps ? 1 : 2) + (p->n_prompt > 0 ? 2 : 0);
	if (f->boost == 0)
		f->boost = 30;
	return wdec_greedy(&m, &tok, p, r);
}

VX_TEST(timestamp_pairs_become_segments)
{
	int32_t s[] = { TS(0), HELLO, WORLD, TS(1000), TS(1000), AGAIN, TS(2000), 50256 };
	fake f = { .script = s, .n_script = 8 };
	wdec_params p = wdec_defaults();
	wdec_result r;
	p.audio_ms = 3000;
	VX_CHECK_INT(decode(&f, &p, &r), 0);
	VX_CHECK_INT(r.n_tokens, 7);
	VX_CHECK_INT(r.n_segments, 2);
	if (r.n_segments == 2) {
		VX_CHECK_INT(r.segments[0].start_ms, 0);
		VX_CHECK_INT(r.segments[0].end_ms, 1000);
		VX_CHECK_STR(r.segments[0].text, " w1000 w1001");
		VX_CHECK_INT(r.segments[1].start_ms, 1000);
		VX_CHECK_INT(r.segments[1].end_ms, 2000);
		VX_CHECK_STR(r.segments[1].text, " w1002");
	}
	VX_CHECK_STR(r.text, " w1000 w1001 w1002");
	VX_CHECK(!r.no_speech && r.avg_logprob > -0.01f);
	VX_CHECK_INT(f.fed, 1 + 7);   /* the prompt, then each sampled token once */
	wdec_result_release(&r);
}

VX_TEST(the_first_token_is_a_timestamp_of_at_most_one_second)
{
	int32_t s[] = { HELLO, HELLO, TS(500), 50256 };
	fake f = { .script = s, .n_script = 4 };
	wdec_params p = wdec_defaults();
	wdec_result r;
	VX_CHECK_INT(decode(&f, &p, &r), 0);
	VX_CHECK(r.n_tokens >= 1 && r.tokens[0] == TS(0));   /* text refused at step 0 */
	int32_t s2[] = { TS(3000), HELLO, TS(3500), 50256 };
	fake f2 = { .script = s2, .n_script = 4 };
	wdec_result r2;
	VX_CHECK_INT(decode(&f2, &p, &r2), 0);
	VX_CHECK(r2.n_tokens >= 1 && r2.tokens[0] <= TS(1000));
	wdec_result_release(&r);
	wdec_result_release(&r2);
}

static void check_tokens(const wdec_result *r, const int32_t *want, int n)
{
	VX_CHECK_INT(r->n_tokens, n);
	for (int i = 0; i < n && i < r->n_tokens; i++)
		if (r->tokens[i] != want[i]) {
			fprintf(stderr, "  token %d: %d, want %d\n", i, r->tokens[i], want[i]);
			vx_test_case_failed = 1;
		}
}

VX_TEST(timestamps_never_go_back_nor_past_the_audio)
{
	/* a segment ends at 1.20; the script then asks for 0.40 and, after the
	 * next text, 0.60: both refused. With flat logits the timestamps taken
	 * together beat <|endoftext|>, so the earliest allowed timestamp is
	 * taken instead: 1.20 (starting the next segment) and 1.22. */
	int32_t s[] = { TS(1000), HELLO, TS(1200), TS(400), WORLD, TS(600), 50256 };
	int32_t want[] = { TS(1000), HELLO, TS(1200), TS(1200), WORLD, TS(1220) };
	fake f = { .script = s, .n_script = 7 };
	wdec_params p = wdec_defaults();
	wdec_result r;
	VX_CHECK_INT(decode(&f, &p, &r), 0);
	check_tokens(&r, want, 6);
	VX_CHECK_INT(r.n_segments, 2);
	if (r.n_segments == 2) {
		VX_CHECK_INT(r.segments[0].start_ms, 1000);
		VX_CHECK_INT(r.segments[0].end_ms, 1200);
		VX_CHECK_INT(r.segments[1].start_ms, 1200);
		VX_CHECK_INT(r.segments[1].end_ms, 1220);
	}
	wdec_result_release(&r);

	int32_t s2[] = { TS(0), HELLO, TS(2400), TS(2400), WORLD, 50256 };
	fake f2 = { .script = s2, .n_script = 6 };
	p.audio_ms = 1000;
	VX_CHECK_INT(decode(&f2, &p, &r), 0);
	for (int i = 0; i < r.n_tokens; i++)
		VX_CHECK(r.tokens[i] <= TS(1000));
	wdec_result_release(&r);
}

VX_TEST(after_a_pair_comes_text_after_a_lone_timestamp_no_text)
{
	/* <|0.00|><|0.00|> refused (text follows an opening timestamp: the
	 * lowest text id, 0, with flat logits); after <|0.50|> closes a
	 * segment, HELLO is refused and a timestamp (0.50) opens the next;
	 * then the script's end is allowed */
	int32_t s[] = { TS(0), TS(0), HELLO, TS(500), HELLO, 50256 };
	int32_t want[] = { TS(0), 0, HELLO, TS(500), TS(500) };
	fake f = { .script = s, .n_script = 6 };
	wdec_params p = wdec_defaults();
	wdec_result r;
	VX_CHECK_INT(decode(&f, &p, &r), 0);
	check_tokens(&r, want, 5);
	wdec_result_release(&r);
}

VX_TEST(silence_is_no_speech_and_gives_no_text)
{
	/* <|nospeech|> near certain and the tokens unsure: silence */
	int32_t s[] = { TS(0), HELLO, TS(500), 50256 };
	fake f = { .script = s, .n_script = 4, .nosp_logit = 40, .boost = 2 };
	wdec_params p = wdec_defaults();
	wdec_result r;
	VX_CHECK_INT(decode(&f, &p, &r), 0);
	VX_CHECK(r.no_speech_prob > 0.99f);
	VX_CHECK(r.avg_logprob < -1.0f);
	VX_CHECK(r.no_speech);
	VX_CHECK_STR(r.text, "");
	VX_CHECK_INT(r.n_segments, 0);
	wdec_result_release(&r);
	/* the same no-speech probability with confident tokens: speech */
	fake g = { .script = s, .n_script = 4, .nosp_logit = 40, .boost = 40 };
	VX_CHECK_INT(decode(&g, &p, &r), 0);
	VX_CHECK(!r.no_speech);
	VX_CHECK_STR(r.text, " w1000");
	wdec_result_release(&r);
}

VX_TEST(without_timestamps_one_segment_and_max_tokens_holds)
{
	int32_t s[] = { 50256, HELLO, WORLD, AGAIN, HELLO, WORLD, AGAIN, 50256 };
	fake f = { .script = s, .n_script = 8 };
	wdec_params p = wdec_defaults();
	wdec_result r;
	p.timestamps = false;
	p.max_tokens = 4;
	p.audio_ms = 2500;
	VX_CHECK_INT(decode(&f, &p, &r), 0);
	VX_CHECK_INT(r.n_tokens, 4);
	VX_CHECK(r.tokens[0] != 50256 && r.tokens[0] != ' ');   /* no eot, no blank first */
	for (int i = 0; i < r.n_tokens; i++)
		VX_CHECK(r.tokens[i] < 50256);
	VX_CHECK_INT(r.n_segments, 1);
	if (r.n_segments == 1) {
		VX_CHECK_INT(r.segments[0].start_ms, 0);
		VX_CHECK_INT(r.segments[0].end_ms, 2500);
	}
	VX_CHECK_INT(f.fed, 2 + 3);   /* the prompt (sot, notimestamps), then 3 fed */
	wdec_result_release(&r);
}

VX_TEST(a_prompt_comes_first_after_startofprev_and_keeps_only_its_tail)
{
	int32_t s[] = { TS(0), AGAIN, TS(1000), 50256 };
	int32_t prompt[300];
	for (int i = 0; i < 300; i++)
		prompt[i] = i % 2 ? WORLD : HELLO;
	fake f = { .script = s, .n_script = 4, .nosp_logit = 40 };
	wdec_params p = wdec_defaults();
	wdec_result r;
	p.audio_ms = 3000;
	p.prompt = prompt;
	p.n_prompt = 2;
	VX_CHECK_INT(decode(&f, &p, &r), 0);
	VX_CHECK_INT(f.seen[0], tok.prev);
	VX_CHECK_INT(f.seen[1], HELLO);
	VX_CHECK_INT(f.seen[2], WORLD);
	VX_CHECK_INT(f.seen[3], tok.sot);
	VX_CHECK_STR(r.text, " w1002");
	VX_CHECK(r.no_speech_prob > 0.5f);   /* read at <|startoftranscript|> */
	wdec_result_release(&r);

	fake g = { .script = s, .n_script = 4 };
	p.n_prompt = 300;                       /* more than half the context */
	VX_CHECK_INT(decode(&g, &p, &r), 0);
	VX_CHECK_INT(g.seen[0], tok.prev);
	VX_CHECK_INT(g.seen[1], prompt[300 - 223]);
	VX_CHECK_INT(g.fed, 1 + 223 + 1 + 3);   /* prev, tail, sot, 3 sampled fed */
	VX_CHECK_STR(r.text, " w1002");
	wdec_result_release(&r);
}

int main(void)
{
	static const uint8_t *tp[50257];
	static uint32_t tl[50257];
	for (int i = 0; i < 50257; i++) {
		if (i < 256) {
			words[i][0] = (char)i;
			tl[i] = 1;
		} else {
			tl[i] = (uint32_t)snprintf(words[i], sizeof words[i], " w%d", i);
		}
		tp[i] = (const uint8_t *)words[i];
	}
	file.hp.n_vocab = NV;
	file.n_tokens = 50257;
	file.tok = tp;
	file.tok_len = tl;
	if (wtok_init(&tok, &file) < 0)
		return 1;
	vx_test_fn fns[] = { timestamp_pairs_become_segments,
			     the_first_token_is_a_timestamp_of_at_most_one_second,
			     timestamps_never_go_back_nor_past_the_audio,
			     after_a_pair_comes_text_after_a_lone_timestamp_no_text,
			     silence_is_no_speech_and_gives_no_text,
			     without_timestamps_one_segment_and_max_tokens_holds,
			     a_prompt_comes_first_after_startofprev_and_keeps_only_its_tail };
	int rc = vx_test_run("timestamp_pairs_become_segments, "
			     "the_first_token_is_a_timestamp_of_at_most_one_second, "
			     "timestamps_never_go_back_nor_past_the_audio, "
			     "after_a_pair_comes_text_after_a_lone_timestamp_no_text, "
			     "silence_is_no_speech_and_gives_no_text, "
			     "without_timestamps_one_segment_and_max_tokens_holds, "
			     "a_prompt_comes_first_after_startofprev_and_keeps_only_its_tail", fns, 7);
	wtok_release(&tok);
	return rc;
}

