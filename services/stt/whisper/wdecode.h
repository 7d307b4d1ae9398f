/*
 * wdecode.h - Whisper's decoding of one audio window into text segments
 * with timestamps: greedy or beam search, sampling with temperature
 * fallback, the no-speech decision, an initial prompt, and language
 * detection for multilingual models.
 *
 * The decoder is anything that turns tokens into next-token logits (a
 * wdec_model: wstate_decode over a real model, or a scripted fake in
 * tests). Per step the logits are filtered as Whisper does before a token
 * is picked (per beam, on that beam's tokens):
 *   - never: <|startoftranscript|>, <|startofprev|>, <|startoflm|>,
 *     <|nospeech|>, <|translate|>, <|transcribe|>, language tokens, and
 *     <|notimestamps|> when timestamps are on;
 *   - first step: no blank (" ") and no <|endoftext|>;
 *   - timestamps on: the first token is a timestamp of at most 1.00 s;
 *     after a lone timestamp (a segment's end) comes another timestamp or
 *     the end, after a pair comes text; timestamps never go back; none past
 *     the audio's end; when the timestamps together are likelier than the
 *     best text token, a timestamp is taken.
 * Decoding stops at <|endoftext|>, max_tokens or the text context. The
 * decoder first sees [<|startofprev|> prompt] <|startoftranscript|>
 * [language] [<|transcribe|> or <|translate|>] [<|notimestamps|>] (the
 * language and task only for multilingual models).
 *
 * Picking tokens (wdec_decode), as openai-whisper does:
 *   - temperature 0: greedy (beam_size 1) or beam search (beam_size > 1:
 *     each live beam offers its beam_size + 1 likeliest tokens, the
 *     beam_size likeliest extensions live on, <|endoftext|> ends a beam;
 *     done when beam_size have ended or at the length limit);
 *   - temperature > 0: best_of sequences sampled from softmax(logits / T)
 *     with a seeded RNG (the same seed gives the same tokens);
 *   - candidates are ranked by their summed log-probability divided by a
 *     length penalty: the length (length_penalty < 0, Whisper's None), or
 *     ((5 + length) / 6) ^ length_penalty;
 *   - fallback: when the result's compression ratio (text bytes over their
 *     zlib-compressed bytes, as openai-whisper computes it) is above
 *     compression_ratio_thold or its average log-probability is below
 *     logprob_thold, and the window is not judged silence, the window is
 *     decoded again at temperature + temperature_inc, up to 1.0; the last
 *     try is kept when all fail.
 * Log-probabilities are those of the filtered logits, at temperature 1.
 *
 * Segments: <|t0|> text <|t1|> pairs; text with no closing timestamp ends
 * at the audio's end; timestamps off: one segment over the whole audio.
 * No speech: the <|nospeech|> probability is read at the
 * <|startoftranscript|> position; when it is above no_speech_thold and the
 * average log-probability of the chosen tokens is below logprob_thold,
 * the window is silence: no text, no segments (Whisper's rule).
 *
 * Language detection (wdec_detect_language): the decoder is reset and fed
 * <|startoftranscript|> alone; the softmax over the language tokens' logits
 * names the likeliest language and its probability.
 *
 * Beams need a decoder state per beam: a model with save/load (and at
 * least 2 * beam_size + 1 slots) keeps one snapshot per beam; without,
 * each extension is decoded by resetting and re-feeding the beam's whole
 * prefix (correct, slower).
 *
 * Ownership: the result owns its strings (wdec_result_release).
 * Thread-safety: none of its own; one call per model at a time.
 *
 *     wdec_params p = wdec_defaults(); p.audio_ms = 3000; p.beam_size = 5;
 *     wdec_result r; wdec_decode(&model, &tok, &p, &r);  ... r.text ...
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
	/* Optional (both or neither): snapshot the decoder's state after the
	 * tokens fed so far into slot 0..n_slots-1, and make a snapshot the
	 * current state again. 0 or -errno. */
	int (*save)(void *ctx, int slot);
	int (*load)(void *ctx, int slot);
	int n_slots;
} wdec_model;

#define WDEC_BEAM_MAX 8          /* largest beam_size and best_of */
#define WDEC_SLOTS(beam) (2 * (beam) + 1)   /* slots beam search uses */

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
	/* wdec_decode only (wdec_greedy is temperature 0, greedy, no fallback) */
	int beam_size;           /* > 1: beam search at temperature 0; default 1 */
	int best_of;             /* sequences sampled at temperature > 0; default 1 */
	float temperature;       /* the first try's; default 0 */
	float temperature_inc;   /* fallback step; default 0.2; <= 0: no fallback */
	float compression_ratio_thold;   /* default 2.4 */
	float length_penalty;    /* < 0 (default): divide by the length */
	uint64_t seed;           /* sampling RNG seed; default 0 */
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
	float temperature;       /* of the try kept */
	float compression_ratio; /* of the text's bytes (0 for no text) */
} wdec_result;

wdec_params wdec_defaults(void);
/* 0 and a result the caller releases, or -errno (nothing to release).
 * wdec_greedy: temperature 0, greedy, no fallback (p's beam_size,
 * best_of, temperature and temperature_inc are not read). */
int wdec_greedy(const wdec_model *m, const wtok *t, const wdec_params *p, wdec_result *ret);
int wdec_decode(const wdec_model *m, const wtok *t, const wdec_params *p, wdec_result *ret);
/* Multilingual models: the likeliest language token and its probability
 * among the languages; ret_probs (may be NULL) gets all t->n_languages.
 * -ENOTSUP for English-only models. Leaves the decoder reset-worthy (the
 * next decode must reset). */
int wdec_detect_language(const wdec_model *m, const wtok *t, int32_t *ret_lang,
			 float *ret_prob, float *ret_probs);
/* openai-whisper's compression ratio: len / len(zlib.compress(text)). */
float wdec_compression_ratio(const char *text, size_t len);
void wdec_result_release(wdec_result *r);

#endif
