/*
 * tokenizer.h - text <-> token ids for the built-in GGUF engine, built from
 * the tokenizer.ggml.* metadata of a GGUF file.
 *
 * Two models, as llama.cpp names them:
 *   "gpt2"  byte-level BPE (Llama 3, Qwen 2/2.5/3, SmolLM): the text is split
 *           by the regex pre-tokenizer named by tokenizer.ggml.pre
 *           ("llama-bpe"/"llama3"/"smaug-bpe" -> Llama 3 regex, digits in
 *           groups of 1-3; "qwen2"/"deepseek-r1-qwen" -> same but one digit
 *           per token; anything else or NULL -> the original GPT-2 regex),
 *           each byte is mapped to GPT-2's printable byte-to-unicode alphabet
 *           and the merges are applied lowest rank first.
 *   "llama" SentencePiece-style BPE (Llama 2, TinyLlama, Mistral): spaces
 *           become U+2581, a space is prefixed to each text fragment that
 *           starts the text or follows a special token, adjacent symbols are
 *           merged highest score first, and a symbol not in the vocabulary is
 *           emitted as its bytes <0xNN> (or unk when there are none).
 *
 * Special tokens: tokens of type control (3) and unknown (2) are recognised
 * in the text only with parse_special; user-defined tokens (4) always are
 * (llama.cpp does the same). Matching is leftmost, then longest. When the
 * spec has no types, bos/eos/eot/pad count as control tokens.
 * BOS is never added by tok_encode: the caller puts tok_bos() first when
 * tok_add_bos() says so (tokenizer.ggml.add_bos_token).
 *
 * Ownership: tok_new copies everything it needs; the spec's arrays (which
 * usually point into an mmap'd GGUF file) may be freed right after.
 * Thread-safety: a tok is immutable after tok_new; every function may be
 * called from any number of threads at once.
 *
 *     tok *t; tok_new(&spec, &t);
 *     size_t n; tok_encode(t, text, strlen(text), true, ids, max, &n);
 *     char p[TOK_PIECE_MAX]; int len = tok_piece(t, ids[0], p, sizeof(p)); tok_free(t);
 */
#ifndef VX_GGUF_TOKENIZER_H
#define VX_GGUF_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits: a vocabulary and a single token's text. */
#define TOK_MAX_VOCAB     (1u << 22)
#define TOK_MAX_TOKEN_LEN 1024   /* bytes of one token's text */
#define TOK_PIECE_MAX     TOK_MAX_TOKEN_LEN  /* enough for any tok_piece */
#define TOK_MAX_TEXT      (1u << 28)  /* bytes one tok_encode call accepts */

/* GGUF token types (tokenizer.ggml.token_type). */
enum {
	TOK_TYPE_NORMAL = 1,
	TOK_TYPE_UNKNOWN = 2,
	TOK_TYPE_CONTROL = 3,
	TOK_TYPE_USER_DEFINED = 4,
	TOK_TYPE_UNUSED = 5,
	TOK_TYPE_BYTE = 6,
};

typedef struct tok tok;

typedef struct tok_spec {
	const char *model;               /* "gpt2" | "llama" */
	const char *pre;                 /* tokenizer.ggml.pre, or NULL */
	const char *const *tokens;       /* n_tokens strings (not NUL-terminated) */
	const size_t *token_lens;        /* n_tokens byte lengths */
	size_t n_tokens;
	const float *scores;             /* n_tokens, or NULL (SPM needs them) */
	const int32_t *types;            /* n_tokens TOK_TYPE_*, or NULL */
	const char *const *merges;       /* n_merges "left right" (gpt2 only) */
	const size_t *merge_lens;
	size_t n_merges;
	int32_t bos, eos, eot, unk, pad; /* ids, -1 when absent */
	bool add_bos;                    /* tokenizer.ggml.add_bos_token */
} tok_spec;

/*
 * Builds a tokenizer. -EINVAL for an unknown model, no tokens, an id out of
 * range, a token longer than TOK_MAX_TOKEN_LEN or more than TOK_MAX_VOCAB
 * tokens; -ENOMEM. Merges naming a token not in the vocabulary are skipped.
 */
int tok_new(const tok_spec *spec, tok **ret);
void tok_free(tok *t);

/*
 * Tokenises len bytes of text (any bytes; invalid UTF-8 is kept as bytes)
 * into out[0..max). Returns 0 and the count in *ret_n, or -E2BIG when more
 * than max ids would be needed (out then holds the first max), -EMSGSIZE
 * for more than TOK_MAX_TEXT bytes, -ENOMEM. Cost: O(len log len); about
 * 5-15 ms for 100 KB of mixed text.
 * BOS is not added (see tok_add_bos).
 */
int tok_encode(const tok *t, const char *text, size_t len, bool parse_special,
	       int32_t *out, size_t max, size_t *ret_n);

/*
 * tok_encode for text that mixes trusted markup with untrusted text (a
 * rendered chat: template markers around user messages). A control or
 * unknown token is recognised only where every byte of it has
 * special_ok[i] != 0 (special_ok holds len bytes); elsewhere its text is
 * tokenised as plain text, so a user who types "<|im_end|>" gets the
 * ordinary tokens of those characters. User-defined tokens are recognised
 * everywhere, as in tok_encode. Text between recognised special tokens is
 * one fragment whatever the mask says, so when the unmarked parts hold no
 * control-token text the ids equal tok_encode(..., true, ...). Returns as
 * tok_encode; -EINVAL for a NULL mask with len > 0.
 */
int tok_encode_masked(const tok *t, const char *text, size_t len,
		      const unsigned char *special_ok, int32_t *out, size_t max,
		      size_t *ret_n);

/*
 * The bytes token id stands for: byte-level tokens unmapped to raw bytes,
 * SPM U+2581 turned into spaces and <0xNN> into the byte; control tokens
 * give their text (e.g. "<|im_end|>"). A piece may be part of a UTF-8
 * sequence. Writes up to cap bytes (no NUL) and returns the full length
 * (which may exceed cap, as snprintf), or -EINVAL for a bad id.
 */
int tok_piece(const tok *t, int32_t id, char *buf, size_t cap);

/* End of generation: eos, eot, and control tokens such as <|im_end|>,
 * <|eot_id|>, <|endoftext|>, <|end_of_text|>, <|eom_id|>, </s>. */
bool tok_is_eog(const tok *t, int32_t id);
/* True for control/unknown/unused tokens (tokens not to be shown). */
bool tok_is_control(const tok *t, int32_t id);

size_t tok_n_vocab(const tok *t);
int32_t tok_bos(const tok *t);   /* -1 when absent */
int32_t tok_eos(const tok *t);   /* -1 when absent */
bool tok_add_bos(const tok *t);  /* prepend tok_bos() to a prompt */
/* Looks a token's exact text up; -1 when absent. */
int32_t tok_find(const tok *t, const char *text, size_t len);

#endif
