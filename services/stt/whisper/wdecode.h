/*
 * wdecode.h - Whisper's greedy decoding of one audio window into text
 * segments with timestamps, and its no-speech decision.
 *
 * The decoder is anything that turns tokens into next-token logits (a
 * wdec_model: wstate_decode over a real model, or a scripted fake in
 * tests). Per step the logits are filtered as Whisper does before the
 * argmax:
 *   - never: <|startoftranscript|>, <|startofprev|>, <|startoflm|>,
 *     <|nospeech|>, <|translate|>, <|transcribe|>, language tokens, and
 *     <|notimestamps|> when timestamps are on;
 *   - first step: no blank (" ") and no <|endoftext|>;
 *   - timestamps on: the first token is a timestamp of at most 1.00 s;
 *     after a lone timestamp (a segment's end) comes another timestamp or
 *     the end, after a pair comes text; timestamps never go back; none past
 *     the audio's end; when the timestamps together are likelier than the
 *     best text token, a timestamp is taken.
 * Decoding stops at <|endoftext|>, max_tokens or the text context.
 * With a prompt, the decoder first sees <|startofprev|> and its tokens.
 *
 * Segments: <|t0|> text <|t1|> pairs; text with no closing timestamp ends
 * at the audio's end; timestamps off: one segment over the whole audio.
 * No speech: the <|nospeech|> probability is read at the
 * <|startoftranscript|> position; when it is above no_speech_thold and the
 * average log-probability of the chosen tokens is below logprob_thold,
 * the window is silence: no text, no segments (Whisper's rule).
 *
 * Ownership: the result owns its strings (wdec_result_release).
 * Thread-safety: none of its own; one call per model at a time.
 *
 *     wdec_params p = wdec_defaults(); p.audio_ms = 3000;
 *     wdec_result r; wdec_greedy(&model, &tok, &p, &r);  ... r.text ...
 *     wdec_result_release(&r);
 */
#ifndef WDECODE_H
#define WDECODE_H

#include <stdbool.h>
#include <stdint.h>

#include "wtok.h"

typedef struct wdec_model {
	void *ctx;
	/* Forget fed tokens (keeping the audio). */
	void (*reset)(void *ctx);
	/* Feed n tokens; write the last one's n_vocab logits. 0 or -errno. */
	int (*decode)(void *ctx, const int32_t *tokens, int n, float *logits);
	int n_text_ctx;          /* tokens the decoder can hold */
} wdec_model;

typedef struct wdec_params {
	bool timestamps;         /* default true */
	int max_tokens;          /* sampled tokens per window; default 224 */
	int audio_ms;            /* the window's audio length (timestamps cap) */
	int32_t language;        /* language token for multilingual models, or -1 */
	bool translate;
	float no_speech_thold;   /* default 0.6 */
	float logprob_thold;     /* default -1.0 */
	/* Text tokens given as what came before (Whisper's initial prompt, or
	 * the committed text of a stream): fed as <|startofprev|> prompt before
	 * <|startoftranscript|>; only the last n_text_ctx / 2 - 1 are used. */
	const int32_t *prompt;
	int n_prompt;
} wdec_params;

typedef struct wdec_segment {
	int start_ms, end_ms;
	char *text;              /* NUL-terminated, owned */
} wdec_segment;

typedef struct wdec_result {
	char *text;              /* all segments' text, NUL-terminated, owned */
	wdec_segment *segments;
	int n_segments;
	int32_t *tokens;         /* sampled tokens (timestamps included, eot not) */
	int n_tokens;
	float no_speech_prob;
	float avg_logprob;       /* over the sampled tokens and the eot */
	bool no_speech;          /* the window was judged silence */
} wdec_result;

wdec_params wdec_defaults(void);
/* 0 and a result the caller releases, or -errno (nothing to release). */
int wdec_greedy(const wdec_model *m, const wtok *t, const wdec_params *p, wdec_result *ret);
void wdec_result_release(wdec_result *r);

#endif
