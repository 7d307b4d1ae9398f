/*
 * wtok.c - Whisper's tokenizer: ids <-> text over a wfile's vocabulary.
 * See wtok.h.
 */
#include "wtok.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whisper's language codes in token order (after <|startoftranscript|>). */
static const char *const languages[] = {
	"en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar",
	"sv", "it", "id", "hi", "fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu",
	"ta", "no", "th", "ur", "hr", "bg", "lt", "la", "mi", "ml", "cy", "sk", "te", "fa",
	"lv", "bn", "sr", "az", "sl", "kn", "et", "mk", "br", "eu", "is", "hy", "ne", "mn",
	"bs", "kk", "sq", "sw", "gl", "mr", "pa", "si", "km", "sn", "yo", "so", "af", "oc",
	"ka", "be", "tg", "sd", "gu", "am", "yi", "lo", "uz", "fo", "ht", "ps", "tk", "nn",
	"mt", "sa", "lb", "my", "bo", "tl", "mg", "as", "tt", "haw", "ln", "ha", "ba", "jw",
	"su", "yue",
};
#define N_LANG_CODES ((int)(sizeof languages / sizeof languages[0]))

#define MAX_PIECE 1024   /* bytes of one pre-tokenized piece (longer: split) */

static uint32_t hash(const uint8_t *p, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

/* The id of a stored text token with exactly these bytes, or -1. */
static int32_t lookup(const wtok *t, const uint8_t *p, size_t n)
{
	uint32_t m = t->n_slots - 1;
	for (uint32_t i = hash(p, n) & m;; i = (i + 1) & m) {
		int32_t id = t->slots[i];
		if (id < 0)
			return -1;
		if (t->file->tok_len[id] == n && !memcmp(t->file->tok[id], p, n))
			return id;
	}
}

int wtok_init(wtok *t, const wfile *f)
{
	memset(t, 0, sizeof *t);
	t->file = f;
	t->n_vocab = f->hp.n_vocab;
	t->multilingual = t->n_vocab >= 51865;
	t->eot = 50256;
	t->sot = 50257;
	t->translate = 50357;
	t->transcribe = 50358;
	t->solm = 50359;
	t->prev = 50360;
	t->nosp = 50361;
	t->notimestamps = 50362;
	t->beg = 50363;
	if (t->multilingual) {
		int dt = (t->n_vocab - 51765 - 1) - 98;
		t->n_languages = t->n_vocab - 51765 - 1;
		t->eot++;
		t->sot++;
		t->translate += dt;
		t->transcribe += dt;
		t->solm += dt;
		t->prev += dt;
		t->nosp += dt;
		t->notimestamps += dt;
		t->beg += dt;
	}
	if (t->n_vocab <= t->beg)
		return -EINVAL;
	t->n_text = t->eot;
	int32_t n = f->n_tokens < t->n_text ? f->n_tokens : t->n_text;
	t->n_slots = 1;
	while (t->n_slots < 2u * (uint32_t)n + 2)
		t->n_slots <<= 1;
	t->slots = malloc(t->n_slots * sizeof *t->slots);
	if (!t->slots)
		return -ENOMEM;
	memset(t->slots, 0xff, t->n_slots * sizeof *t->slots);
	for (int32_t id = 0; id < n; id++) {
		const uint8_t *p = f->tok[id];
		size_t len = f->tok_len[id];
		if (len == 0 || lookup(t, p, len) >= 0)
			continue;   /* first (lowest) id wins for duplicate bytes */
		uint32_t m = t->n_slots - 1, i = hash(p, len) & m;
		while (t->slots[i] >= 0)
			i = (i + 1) & m;
		t->slots[i] = id;
	}
	return 0;
}

void wtok_release(wtok *t)
{
	free(t->slots);
	t->slots = NULL;
}

const uint8_t *wtok_bytes(const wtok *t, int32_t id, size_t *ret_len)
{
	if (id < 0 || id >= t->n_text || id >= t->file->n_tokens)
		return NULL;
	*ret_len = t->file->tok_len[id];
	return t->file->tok[id];
}

bool wtok_is_timestamp(const wtok *t, int32_t id)
{
	return id >= t->beg && id < t->n_vocab;
}

int wtok_timestamp_ms(const wtok *t, int32_t id)
{
	return wtok_is_timestamp(t, id) ? (id - t->beg) * 20 : -1;
}

const char *wtok_name(const wtok *t, int32_t id, char *buf, size_t len)
{
	size_t n;
	const uint8_t *b = wtok_bytes(t, id, &n);

	if (b) {
		snprintf(buf, len, "%.*s", (int)n, (const char *)b);
	} else if (wtok_is_timestamp(t, id)) {
		int ms = wtok_timestamp_ms(t, id);
		snprintf(buf, len, "<|%d.%02d|>", ms / 1000, ms % 1000 / 10);
	} else if (id == t->eot) {
		snprintf(buf, len, "<|endoftext|>");
	} else if (id == t->sot) {
		snprintf(buf, len, "<|startoftranscript|>");
	} else if (t->multilingual && id > t->sot && id <= t->sot + t->n_languages) {
		int l = id - t->sot - 1;
		snprintf(buf, len, "<|%s|>", l < N_LANG_CODES ? languages[l] : "?");
	} else if (id == t->translate) {
		snprintf(buf, len, "<|translate|>");
	} else if (id == t->transcribe) {
		snprintf(buf, len, "<|transcribe|>");
	} else if (id == t->solm) {
		snprintf(buf, len, "<|startoflm|>");
	} else if (id == t->prev) {
		snprintf(buf, len, "<|startofprev|>");
	} else if (id == t->nosp) {
		snprintf(buf, len, "<|nospeech|>");
	} else if (id == t->notimestamps) {
		snprintf(buf, len, "<|notimestamps|>");
	} else {
		snprintf(buf, len, "<|extra_%d|>", id);
	}
	return buf;
}

int32_t wtok_language(const wtok *t, const char *code)
{
	if (!t->multilingual)
		return -1;
	for (int i = 0; i < N_LANG_CODES && i < t->n_languages; i++)
		if (!strcmp(languages[i], code))
			return t->sot + 1 + i;
	return -1;
}

const char *wtok_language_code(const wtok *t, int32_t id)
{
	int32_t i = id - t->sot - 1;
	return t->multilingual && i >= 0 && i < t->n_languages && i < N_LANG_CODES ?
	       languages[i] : NULL;
}

/* ------------------------------------------------------------- encoding */

static bool is_letter(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}
static bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
static bool is_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Length of the piece starting at s[i] (GPT-2's pattern, see wtok.h). */
static size_t piece_len(const uint8_t *s, size_t n, size_t i)
{
	static const char *const contr[] = { "'s", "'t", "'re", "'ve", "'m", "'ll", "'d" };
	size_t j = i;

	if (s[i] == '\'') {
		for (size_t k = 0; k < sizeof contr / sizeof contr[0]; k++) {
			size_t cl = strlen(contr[k]);
			if (n - i >= cl && !memcmp(s + i, contr[k], cl))
				return cl;
		}
	}
	if (s[j] == ' ' && j + 1 < n && !is_space(s[j + 1]))
		j++;
	if (is_letter(s[j])) {
		while (j < n && is_letter(s[j]))
			j++;
		return j - i;
	}
	if (is_digit(s[j])) {
		while (j < n && is_digit(s[j]))
			j++;
		return j - i;
	}
	if (!is_space(s[j])) {
		while (j < n && !is_space(s[j]) && !is_letter(s[j]) && !is_digit(s[j]))
			j++;
		return j - i;
	}
	/* whitespace: the run, less its last character when more text follows
	 * (which then leads the next piece, or stands alone) */
	while (j < n && is_space(s[j]))
		j++;
	if (j < n && j - i > 1)
		j--;
	return j - i;
}

/* BPE over one piece: parts[] are (start, len) over p; joins lowest-id pairs. */
static int bpe_piece(const wtok *t, const uint8_t *p, size_t n, int32_t *out, int max, int at)
{
	uint16_t start[MAX_PIECE + 1], len[MAX_PIECE];
	int np = (int)n;

	for (int i = 0; i < np; i++) {
		start[i] = (uint16_t)i;
		len[i] = 1;
	}
	for (;;) {
		int best = -1;
		int32_t best_id = INT32_MAX;
		for (int i = 0; i + 1 < np; i++) {
			int32_t id = lookup(t, p + start[i], (size_t)len[i] + len[i + 1]);
			if (id >= 0 && id < best_id) {
				best_id = id;
				best = i;
			}
		}
		if (best < 0)
			break;
		len[best] = (uint16_t)(len[best] + len[best + 1]);
		memmove(start + best + 1, start + best + 2, sizeof *start * (size_t)(np - best - 2));
		memmove(len + best + 1, len + best + 2, sizeof *len * (size_t)(np - best - 2));
		np--;
	}
	for (int i = 0; i < np; i++, at++) {
		int32_t id = lookup(t, p + start[i], len[i]);
		if (at < max)
			out[at] = id;   /* -1 only if a single byte has no token */
	}
	return at;
}

int wtok_encode(const wtok *t, const char *text, size_t len, int32_t *out, int max)
{
	const uint8_t *s = (const uint8_t *)text;
	int at = 0;

	for (size_t i = 0; i < len;) {
		size_t pl = piece_len(s, len, i);
		if (pl > MAX_PIECE)
			pl = MAX_PIECE;
		at = bpe_piece(t, s + i, pl, out, max, at);
		i += pl;
	}
	return at;
}
