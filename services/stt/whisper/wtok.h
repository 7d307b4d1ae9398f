/*
 * wtok.h - Whisper's tokenizer over a model file's vocabulary: token ids to
 * text, the special and timestamp tokens, and text to ids (byte-level BPE).
 *
 * The file stores each text token's raw bytes (not GPT-2's unicode-mapped
 * form); its id is also its BPE merge rank, so encoding is tiktoken's
 * algorithm: split the text into pieces (GPT-2's pattern, see wtok_encode),
 * then in each piece repeatedly join the adjacent pair whose joined bytes
 * are the token of lowest id, until no pair joins.
 *
 * Special tokens sit past the stored ones, at ids fixed by n_vocab (as
 * whisper.cpp places them): for English-only models (n_vocab 51864)
 * eot 50256, sot 50257, translate 50357, transcribe 50358, startoflm 50359,
 * startofprev 50360, nospeech 50361, notimestamps 50362, and the timestamp
 * tokens from 50363 (<|0.00|>, one per 20 ms). Multilingual models move eot
 * and sot up one and the rest by the number of languages past 98; the
 * language tokens follow sot.
 *
 * Ownership: points into the wfile, which must outlive it.
 * Thread-safety: immutable after wtok_init; any number of readers.
 *
 *     wtok t; wtok_init(&t, file);
 *     size_t n; const uint8_t *b = wtok_bytes(&t, id, &n);   // NULL: special
 *     wtok_release(&t);
 */
#ifndef WTOK_H
#define WTOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wfile.h"

typedef struct wtok {
	const wfile *file;
	int32_t n_vocab;         /* all ids are < n_vocab */
	int32_t n_text;          /* ids below this are text (== eot) */
	bool multilingual;
	int n_languages;         /* language tokens after sot (multilingual only) */
	int32_t eot, sot, translate, transcribe, solm, prev, nosp, notimestamps, beg;
	/* bytes -> id hash of the stored text tokens (open addressing) */
	int32_t *slots;
	uint32_t n_slots;        /* power of two */
} wtok;

int wtok_init(wtok *t, const wfile *f);   /* 0 or -ENOMEM; -EINVAL if n_vocab is too small */
void wtok_release(wtok *t);

/* The bytes of a text token (id < n_text), or NULL for special ids. */
const uint8_t *wtok_bytes(const wtok *t, int32_t id, size_t *ret_len);
bool wtok_is_timestamp(const wtok *t, int32_t id);
/* Milliseconds of a timestamp token (20 ms steps), -1 otherwise. */
int wtok_timestamp_ms(const wtok *t, int32_t id);
/* A printable name for any id: the text for text tokens, "<|endoftext|>",
 * "<|en|>", "<|1.20|>", ... for the others. Writes at most len bytes
 * (NUL-terminated); returns buf. */
const char *wtok_name(const wtok *t, int32_t id, char *buf, size_t len);
/* The language token of a code ("en"), or -1 (also for English-only models). */
int32_t wtok_language(const wtok *t, const char *code);
/* The code of a language token ("de"), or NULL for any other id. */
const char *wtok_language_code(const wtok *t, int32_t id);

/* Text -> ids: GPT-2's pre-tokenizer (contractions 's 't 're 've 'm 'll 'd;
 * ` ?letters`; ` ?digits`; ` ?other`; whitespace runs, leaving one space
 * to lead the next word), where a letter is an ASCII letter or any byte of
 * a multi-byte UTF-8 character (so non-ASCII punctuation counts as a
 * letter; it is still encoded losslessly), then byte-level BPE by id rank.
 * Writes at most max ids; returns how many the text needs (so a return >
 * max means out was too small) or -ENOMEM. */
int wtok_encode(const wtok *t, const char *text, size_t len, int32_t *out, int max);

#endif
