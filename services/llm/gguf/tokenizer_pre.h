/*
 * tokenizer_pre.h - internal to the tokenizer: UTF-8 stepping, the unicode
 * classes the pre-tokenizer regexes use (\p{L}, \p{N}, \s), and the
 * pre-tokenizers themselves, hand-compiled from their regexes:
 *
 *   TOK_PRE_GPT2    's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *   TOK_PRE_LLAMA3  (?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+
 *                   |\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *   TOK_PRE_QWEN2   as LLAMA3 with \p{N} (one digit) for \p{N}{1,3}
 *
 * The words cover the text exactly, in order. Invalid UTF-8 bytes count as
 * one character each of none of the classes. Stateless and thread-safe.
 *
 *     tok_pre_split(TOK_PRE_QWEN2, text, len, on_word, user);
 */
#ifndef VX_GGUF_TOKENIZER_PRE_H
#define VX_GGUF_TOKENIZER_PRE_H

#include <stddef.h>
#include <stdint.h>

typedef enum tok_pre_kind {
	TOK_PRE_GPT2 = 0,
	TOK_PRE_LLAMA3,
	TOK_PRE_QWEN2,
} tok_pre_kind;

/* tokenizer.ggml.pre (NULL allowed) -> kind; unknown names give GPT2. */
tok_pre_kind tok_pre_kind_of(const char *pre);

/* Length (1-4) of the UTF-8 character at s[0..n), n >= 1; 1 for an
 * invalid byte. *ret_cp gets the code point (0xDC00 + byte when invalid). */
size_t tok_pre_utf8(const unsigned char *s, size_t n, uint32_t *ret_cp);

/* Called per word (byte offset and length into the text); non-zero stops. */
typedef int (*tok_pre_word_fn)(void *user, size_t off, size_t len);

/* Splits text into words. Returns 0, fn's non-zero value, or -ENOMEM. */
int tok_pre_split(tok_pre_kind kind, const char *text, size_t len,
		  tok_pre_word_fn fn, void *user);

#endif
