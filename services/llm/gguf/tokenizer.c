/*
 * tokenizer.c - byte-level BPE and SentencePiece-style BPE tokenizers built
 * from GGUF metadata (see tokenizer.h).
 *
 * Data: all token texts in one arena; a hash table text -> id (preferring
 * normal and user-defined tokens when texts repeat); for BPE a hash table
 * (left id, right id) -> (rank, merged id); per-byte token ids; the special
 * tokens bucketed by first byte, longest first.
 *
 * Merging is the usual priority-queue BPE: symbols in a linked list, a
 * binary heap of candidate pairs (BPE: lowest rank first; SPM: highest
 * score first; ties to the leftmost), stale entries skipped when popped.
 * O(n log n) per word.
 */
#include "tokenizer.h"
#include "tokenizer_pre.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum { MODEL_BPE, MODEL_SPM };

enum { FLAG_EOG = 0x80, TYPE_MASK = 0x07 };

typedef struct merge_slot {
	uint64_t key;       /* left << 32 | right; 0 with rank -1 = empty */
	int32_t rank;
	int32_t result;
} merge_slot;

struct tok {
	int model;
	tok_pre_kind pre;
	size_t n;
	char *arena;            /* all token texts */
	size_t *off;            /* n + 1 offsets into arena */
	float *scores;          /* n (SPM), or NULL */
	uint8_t *flags;         /* n: TOK_TYPE_* | FLAG_EOG */
	int32_t *table;         /* text -> id, -1 empty */
	size_t table_mask;
	merge_slot *merges;     /* BPE pairs */
	size_t merge_mask;
	int32_t byte_id[256];   /* BPE: token of the byte's mapped char; SPM: <0xNN> */
	uint16_t byte_cp[256];  /* GPT-2 byte -> code point */
	int16_t cp_byte[324];   /* code point -> byte, -1 none */
	int32_t *special;       /* special ids sorted by first byte, longest first */
	size_t n_special;
	size_t special_at[257]; /* bucket of first byte b: [at[b], at[b+1]) */
	int32_t bos, eos, eot, unk, pad;
	bool add_bos;
};

/* ---- token texts and lookup ------------------------------------------ */

static uint64_t hash_bytes(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return h;
}

static const char *text_of(const tok *t, int32_t id, size_t *ret_len)
{
	*ret_len = t->off[id + 1] - t->off[id];
	return t->arena + t->off[id];
}

static int type_of(const tok *t, int32_t id)
{
	return t->flags[id] & TYPE_MASK;
}

/* A token merges or ends a word: normal and user-defined ones. */
static bool is_word_token(const tok *t, int32_t id)
{
	int ty = type_of(t, id);
	return ty == TOK_TYPE_NORMAL || ty == TOK_TYPE_USER_DEFINED;
}

static size_t find_slot(const tok *t, const char *s, size_t len)
{
	size_t i = (size_t)hash_bytes(s, len) & t->table_mask;
	for (;; i = (i + 1) & t->table_mask) {
		int32_t id = t->table[i];
		size_t l;
		if (id < 0)
			return i;
		const char *x = text_of(t, id, &l);
		if (l == len && memcmp(x, s, len) == 0)
			return i;
	}
}

int32_t tok_find(const tok *t, const char *text, size_t len)
{
	return t->table[find_slot(t, text, len)];
}

/* A normal or user-defined token with this text, or -1. */
static int32_t find_word(const tok *t, const char *s, size_t len)
{
	int32_t id = tok_find(t, s, len);
	return id >= 0 && is_word_token(t, id) ? id : -1;
}

static int build_table(tok *t)
{
	size_t cap = 16;
	while (cap < t->n * 2)
		cap <<= 1;
	t->table = malloc(cap * sizeof(*t->table));
	if (!t->table)
		return -ENOMEM;
	memset(t->table, 0xff, cap * sizeof(*t->table));
	t->table_mask = cap - 1;
	for (size_t id = 0; id < t->n; id++) {
		size_t len;
		const char *s = text_of(t, (int32_t)id, &len);
		size_t slot = find_slot(t, s, len);
		int32_t old = t->table[slot];
		if (old < 0 || (!is_word_token(t, old) && is_word_token(t, (int32_t)id)))
			t->table[slot] = (int32_t)id;
	}
	return 0;
}

/* ---- BPE merges -------------------------------------------------------- */

static size_t merge_hash(uint64_t key, size_t mask)
{
	return (size_t)((key * 0x9e3779b97f4a7c15ull) >> 20) & mask;
}

static const merge_slot *merge_find(const tok *t, int32_t a, int32_t b)
{
	uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
	for (size_t i = merge_hash(key, t->merge_mask);; i = (i + 1) & t->merge_mask) {
		const merge_slot *m = &t->merges[i];
		if (m->rank < 0)
			return NULL;
		if (m->key == key)
			return m;
	}
}

static int build_merges(tok *t, const tok_spec *spec)
{
	size_t cap = 16;
	char *buf = malloc(2 * TOK_MAX_TOKEN_LEN);
	if (!buf)
		return -ENOMEM;
	while (cap < spec->n_merges * 2)
		cap <<= 1;
	t->merges = malloc(cap * sizeof(*t->merges));
	if (!t->merges) {
		free(buf);
		return -ENOMEM;
	}
	for (size_t i = 0; i < cap; i++)
		t->merges[i] = (merge_slot){ .key = 0, .rank = -1, .result = -1 };
	t->merge_mask = cap - 1;
	for (size_t r = 0; r < spec->n_merges; r++) {
		const char *m = spec->merges[r];
		size_t len = spec->merge_lens[r], sp;
		if (len > 2 * TOK_MAX_TOKEN_LEN)
			continue;
		for (sp = 1; sp < len && m[sp] != ' '; sp++)
			;
		if (sp >= len)
			continue;
		int32_t a = find_word(t, m, sp);
		int32_t b = find_word(t, m + sp + 1, len - sp - 1);
		memcpy(buf, m, sp);
		memcpy(buf + sp, m + sp + 1, len - sp - 1);
		int32_t c = find_word(t, buf, len - 1);
		if (a < 0 || b < 0 || c < 0)
			continue;
		uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
		size_t i = merge_hash(key, t->merge_mask);
		while (t->merges[i].rank >= 0 && t->merges[i].key != key)
			i = (i + 1) & t->merge_mask;
		if (t->merges[i].rank < 0)
			t->merges[i] = (merge_slot){ key, (int32_t)r, c };
	}
	free(buf);
	return 0;
}

/* GPT-2's byte <-> printable code point map. */
static void build_byte_map(tok *t)
{
	int n = 0;
	for (int i = 0; i < 324; i++)
		t->cp_byte[i] = -1;
	for (int b = 0; b < 256; b++) {
		bool printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) ||
				 (b >= 0xae && b <= 0xff);
		t->byte_cp[b] = (uint16_t)(printable ? b : 256 + n++);
		t->cp_byte[t->byte_cp[b]] = (int16_t)b;
	}
}

static size_t utf8_put(char *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	out[0] = (char)(0xc0 | (cp >> 6));
	out[1] = (char)(0x80 | (cp & 0x3f));
	return 2;   /* the map stays below U+0800 */
}

static void build_byte_ids(tok *t)
{
	static const char hex[] = "0123456789ABCDEF";
	for (int b = 0; b < 256; b++) {
		char s[8];
		if (t->model == MODEL_BPE) {
			t->byte_id[b] = find_word(t, s, utf8_put(s, t->byte_cp[b]));
		} else {
			memcpy(s, "<0x", 3);
			s[3] = hex[b >> 4];
			s[4] = hex[b & 15];
			s[5] = '>';
			t->byte_id[b] = tok_find(t, s, 6);
		}
	}
}

/* ---- special tokens ------------------------------------------------------ */

static const char *const eog_texts[] = {
	"<|im_end|>", "<|eot_id|>", "<|endoftext|>", "<|end_of_text|>",
	"<|eom_id|>", "</s>", "<end_of_turn>", "<|end|>",
};

static int special_cmp(const void *pa, const void *pb, void *arg)
{
	const tok *t = arg;
	int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
	size_t la, lb;
	const unsigned char *sa = (const unsigned char *)text_of(t, a, &la);
	const unsigned char *sb = (const unsigned char *)text_of(t, b, &lb);
	if (sa[0] != sb[0])
		return sa[0] < sb[0] ? -1 : 1;
	if (la != lb)
		return la > lb ? -1 : 1;
	return a < b ? -1 : a > b;
}

static int build_specials(tok *t)
{
	size_t n = 0;
	t->special = malloc(t->n * sizeof(*t->special));
	if (!t->special)
		return -ENOMEM;
	for (size_t id = 0; id < t->n; id++) {
		int ty = type_of(t, (int32_t)id);
		size_t len;
		const char *s = text_of(t, (int32_t)id, &len);
		if (len && (ty == TOK_TYPE_CONTROL || ty == TOK_TYPE_UNKNOWN ||
			    ty == TOK_TYPE_USER_DEFINED))
			t->special[n++] = (int32_t)id;
		if (ty != TOK_TYPE_NORMAL || (int32_t)id == t->eos ||
		    (int32_t)id == t->eot)
			for (size_t k = 0; k < sizeof(eog_texts) / sizeof(eog_texts[0]); k++)
				if (strlen(eog_texts[k]) == len && memcmp(eog_texts[k], s, len) == 0)
					t->flags[id] |= FLAG_EOG;
	}
	if (t->eos >= 0)
		t->flags[t->eos] |= FLAG_EOG;
	if (t->eot >= 0)
		t->flags[t->eot] |= FLAG_EOG;
	qsort_r(t->special, n, sizeof(*t->special), special_cmp, t);
	t->n_special = n;
	size_t k = 0;
	for (int b = 0; b <= 256; b++) {
		while (k < n) {
			size_t len;
			unsigned char c = (unsigned char)text_of(t, t->special[k], &len)[0];
			if (c >= b)
				break;
			k++;
		}
		t->special_at[b] = k;
	}
	return 0;
}

/* ---- new / free --------------------------------------------------------- */

static bool id_ok(int32_t id, size_t n)
{
	return id == -1 || (id >= 0 && (size_t)id < n);
}

static int copy_tokens(tok *t, const tok_spec *spec)
{
	size_t total = 0;
	for (size_t i = 0; i < spec->n_tokens; i++) {
		if (spec->token_lens[i] > TOK_MAX_TOKEN_LEN ||
		    (spec->token_lens[i] && !spec->tokens[i]))
			return -EINVAL;
		total += spec->token_lens[i];
	}
	t->arena = malloc(total + 1);
	t->off = malloc((spec->n_tokens + 1) * sizeof(*t->off));
	t->flags = malloc(spec->n_tokens);
	if (spec->scores)
		t->scores = malloc(spec->n_tokens * sizeof(*t->scores));
	if (!t->arena || !t->off || !t->flags || (spec->scores && !t->scores))
		return -ENOMEM;
	total = 0;
	for (size_t i = 0; i < spec->n_tokens; i++) {
		int ty = spec->types ? spec->types[i] : TOK_TYPE_NORMAL;
		if (ty < TOK_TYPE_NORMAL || ty > TOK_TYPE_BYTE)
			ty = TOK_TYPE_NORMAL;
		t->off[i] = total;
		if (spec->token_lens[i])
			memcpy(t->arena + total, spec->tokens[i], spec->token_lens[i]);
		total += spec->token_lens[i];
		t->flags[i] = (uint8_t)ty;
	}
	t->off[spec->n_tokens] = total;
	if (!spec->types) {
		int32_t ctl[] = { spec->bos, spec->eos, spec->eot, spec->pad };
		for (size_t k = 0; k < sizeof(ctl) / sizeof(ctl[0]); k++)
			if (ctl[k] >= 0)
				t->flags[ctl[k]] = TOK_TYPE_CONTROL;
		if (spec->unk >= 0)
			t->flags[spec->unk] = TOK_TYPE_UNKNOWN;
	}
	if (spec->scores)
		memcpy(t->scores, spec->scores, spec->n_tokens * sizeof(*t->scores));
	return 0;
}

int tok_new(const tok_spec *spec, tok **ret)
{
	tok *t;
	int rc, model;

	if (!spec || !spec->model || !spec->tokens || !spec->token_lens ||
	    spec->n_tokens == 0 || spec->n_tokens > TOK_MAX_VOCAB)
		return -EINVAL;
	if (strcmp(spec->model, "gpt2") == 0)
		model = MODEL_BPE;
	else if (strcmp(spec->model, "llama") == 0)
		model = MODEL_SPM;
	else
		return -EINVAL;
	if (!id_ok(spec->bos, spec->n_tokens) || !id_ok(spec->eos, spec->n_tokens) ||
	    !id_ok(spec->eot, spec->n_tokens) || !id_ok(spec->unk, spec->n_tokens) ||
	    !id_ok(spec->pad, spec->n_tokens) ||
	    (spec->n_merges && (!spec->merges || !spec->merge_lens)))
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->model = model;
	t->pre = tok_pre_kind_of(spec->pre);
	t->n = spec->n_tokens;
	t->bos = spec->bos;
	t->eos = spec->eos;
	t->eot = spec->eot;
	t->unk = spec->unk;
	t->pad = spec->pad;
	t->add_bos = spec->add_bos;
	rc = copy_tokens(t, spec);
	if (rc)
		goto out_free_tok;
	rc = build_table(t);
	if (rc)
		goto out_free_tok;
	build_byte_map(t);
	build_byte_ids(t);
	if (model == MODEL_BPE) {
		rc = build_merges(t, spec);
		if (rc)
			goto out_free_tok;
	}
	rc = build_specials(t);
	if (rc)
		goto out_free_tok;
	*ret = t;
	return 0;
out_free_tok:
	tok_free(t);
	return rc;
}

void tok_free(tok *t)
{
	if (!t)
		return;
	free(t->arena);
	free(t->off);
	free(t->scores);
	free(t->flags);
	free(t->table);
	free(t->merges);
	free(t->special);
	free(t);
}

/* ---- encoding -------------------------------------------------------------- */

typedef struct sym {
	int32_t id;        /* BPE: token id, -1 when the byte has none */
	int32_t prev, next;
	uint32_t start, len; /* SPM: bytes in the escaped text */
} sym;

typedef struct pair {
	float prio;        /* smaller pops first: BPE rank, SPM -score */
	int32_t left, right;
	uint32_t size;     /* SPM: bytes of the pair, to spot stale entries */
	int32_t a, b;      /* BPE: the ids when pushed */
} pair;

typedef struct enc {
	const tok *t;
	int32_t *out;
	size_t max, n;
	sym *syms;
	size_t syms_cap;
	pair *heap;
	size_t heap_n, heap_cap;
	char *esc;          /* SPM: the escaped fragment */
	size_t esc_cap;
	const char *text;   /* the fragment pre_split works on */
} enc;

static int emit(enc *e, int32_t id)
{
	if (e->n >= e->max)
		return -E2BIG;
	e->out[e->n++] = id;
	return 0;
}

static bool pair_less(const pair *x, const pair *y)
{
	return x->prio < y->prio || (x->prio == y->prio && x->left < y->left);
}

static int heap_push(enc *e, pair p)
{
	if (e->heap_n == e->heap_cap) {
		size_t cap = e->heap_cap ? e->heap_cap * 2 : 64;
		pair *h = realloc(e->heap, cap * sizeof(*h));
		if (!h)
			return -ENOMEM;
		e->heap = h;
		e->heap_cap = cap;
	}
	size_t i = e->heap_n++;
	while (i > 0 && pair_less(&p, &e->heap[(i - 1) / 2])) {
		e->heap[i] = e->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	e->heap[i] = p;
	return 0;
}

static pair heap_pop(enc *e)
{
	pair top = e->heap[0], last = e->heap[--e->heap_n];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= e->heap_n)
			break;
		if (c + 1 < e->heap_n && pair_less(&e->heap[c + 1], &e->heap[c]))
			c++;
		if (!pair_less(&e->heap[c], &last))
			break;
		e->heap[i] = e->heap[c];
		i = c;
	}
	if (e->heap_n)
		e->heap[i] = last;
	return top;
}

static int syms_reserve(enc *e, size_t n)
{
	if (n <= e->syms_cap)
		return 0;
	size_t cap = e->syms_cap ? e->syms_cap : 64;
	while (cap < n)
		cap *= 2;
	sym *s = realloc(e->syms, cap * sizeof(*s));
	if (!s)
		return -ENOMEM;
	e->syms = s;
	e->syms_cap = cap;
	return 0;
}

static int bpe_try_pair(enc *e, int32_t left)
{
	if (left < 0 || e->syms[left].next < 0)
		return 0;
	int32_t right = e->syms[left].next;
	int32_t a = e->syms[left].id, b = e->syms[right].id;
	if (a < 0 || b < 0)
		return 0;
	const merge_slot *m = merge_find(e->t, a, b);
	if (!m)
		return 0;
	return heap_push(e, (pair){ (float)m->rank, left, right, 0, a, b });
}

/* One pre-tokenized word of byte-level BPE. */
static int bpe_word(void *user, size_t off, size_t len)
{
	enc *e = user;
	const unsigned char *w = (const unsigned char *)e->text + off;
	int rc = syms_reserve(e, len);
	if (rc)
		return rc;
	for (size_t i = 0; i < len; i++)
		e->syms[i] = (sym){ e->t->byte_id[w[i]], (int32_t)i - 1,
				    i + 1 < len ? (int32_t)i + 1 : -1, 0, 0 };
	e->heap_n = 0;
	for (size_t i = 0; i + 1 < len; i++)
		if ((rc = bpe_try_pair(e, (int32_t)i)))
			return rc;
	while (e->heap_n) {
		pair p = heap_pop(e);
		sym *l = &e->syms[p.left], *r = &e->syms[p.right];
		if (l->next != p.right || l->id != p.a || r->id != p.b)
			continue;
		l->id = merge_find(e->t, p.a, p.b)->result;
		l->next = r->next;
		if (r->next >= 0)
			e->syms[r->next].prev = p.left;
		r->id = -2;
		if ((rc = bpe_try_pair(e, l->prev)) || (rc = bpe_try_pair(e, p.left)))
			return rc;
	}
	for (int32_t i = 0; i >= 0; i = e->syms[i].next) {
		int32_t id = e->syms[i].id >= 0 ? e->syms[i].id : e->t->unk;
		if (id >= 0 && (rc = emit(e, id)))
			return rc;
	}
	return 0;
}

static int spm_try_pair(enc *e, int32_t left)
{
	if (left < 0 || e->syms[left].next < 0)
		return 0;
	const sym *l = &e->syms[left], *r = &e->syms[l->next];
	int32_t id = find_word(e->t, e->esc + l->start, l->len + r->len);
	if (id < 0)
		return 0;
	float score = e->t->scores ? e->t->scores[id] : 0.0f;
	return heap_push(e, (pair){ -score, left, l->next, l->len + r->len, 0, 0 });
}

/* One text fragment of SentencePiece-style BPE. */
static int spm_fragment(enc *e, const char *text, size_t len, bool prefix)
{
	static const char space[] = "\xe2\x96\x81";   /* U+2581 */
	size_t need = (len + 1) * 3, n = 0, i;
	int rc;

	if (need > e->esc_cap) {
		char *p = realloc(e->esc, need);
		if (!p)
			return -ENOMEM;
		e->esc = p;
		e->esc_cap = need;
	}
	if (prefix) {
		memcpy(e->esc, space, 3);
		n = 3;
	}
	for (i = 0; i < len; i++) {
		if (text[i] == ' ') {
			memcpy(e->esc + n, space, 3);
			n += 3;
		} else {
			e->esc[n++] = text[i];
		}
	}
	if ((rc = syms_reserve(e, n)))
		return rc;
	size_t ns = 0;
	for (i = 0; i < n; ns++) {
		uint32_t cp;
		size_t l = tok_pre_utf8((const unsigned char *)e->esc + i, n - i, &cp);
		e->syms[ns] = (sym){ 0, (int32_t)ns - 1, -1, (uint32_t)i, (uint32_t)l };
		if (ns)
			e->syms[ns - 1].next = (int32_t)ns;
		i += l;
	}
	e->heap_n = 0;
	for (i = 0; i + 1 < ns; i++)
		if ((rc = spm_try_pair(e, (int32_t)i)))
			return rc;
	while (e->heap_n) {
		pair p = heap_pop(e);
		sym *l = &e->syms[p.left], *r = &e->syms[p.right];
		if (l->next != p.right || l->len == 0 || r->len == 0 ||
		    l->len + r->len != p.size)
			continue;
		l->len += r->len;
		r->len = 0;
		l->next = r->next;
		if (r->next >= 0)
			e->syms[r->next].prev = p.left;
		if ((rc = spm_try_pair(e, l->prev)) || (rc = spm_try_pair(e, p.left)))
			return rc;
	}
	for (int32_t s = ns ? 0 : -1; s >= 0; s = e->syms[s].next) {
		const sym *y = &e->syms[s];
		int32_t id = find_word(e->t, e->esc + y->start, y->len);
		if (id >= 0) {
			if ((rc = emit(e, id)))
				return rc;
			continue;
		}
		for (uint32_t k = 0; k < y->len; k++) {
			id = e->t->byte_id[(unsigned char)e->esc[y->start + k]];
			if (id < 0)
				id = e->t->unk;
			if (id >= 0 && (rc = emit(e, id)))
				return rc;
		}
	}
	return 0;
}

/* True when every one of the n mask bytes is set (no mask: all are). */
static bool all_set(const unsigned char *mask, size_t n)
{
	if (!mask)
		return true;
	for (size_t i = 0; i < n; i++)
		if (!mask[i])
			return false;
	return true;
}

/* The longest special token allowed at text[0..len), or -1. A control or
 * unknown token needs parse_special and, with a mask, every one of its
 * bytes marked in mask[0..len). */
static int32_t special_at(const tok *t, const char *text, size_t len,
			  bool parse_special, const unsigned char *mask,
			  size_t *ret_len)
{
	unsigned char c = (unsigned char)text[0];
	for (size_t k = t->special_at[c]; k < t->special_at[c + 1]; k++) {
		int32_t id = t->special[k];
		size_t l;
		const char *s = text_of(t, id, &l);
		bool user = type_of(t, id) == TOK_TYPE_USER_DEFINED;
		if (!user && !parse_special)
			continue;
		if (l <= len && memcmp(s, text, l) == 0 && (user || all_set(mask, l))) {
			*ret_len = l;
			return id;
		}
	}
	return -1;
}

static int encode_fragment(enc *e, const char *text, size_t len, bool prev_special)
{
	if (e->t->model == MODEL_SPM)
		return spm_fragment(e, text, len, prev_special);
	e->text = text;
	return tok_pre_split(e->t->pre, text, len, bpe_word, e);
}

/* tok_encode and tok_encode_masked: special tokens split the text into
 * fragments, each tokenised on its own. */
static int encode(const tok *t, const char *text, size_t len, bool parse_special,
		  const unsigned char *mask, int32_t *out, size_t max, size_t *ret_n)
{
	enc e = { .t = t, .out = out, .max = max };
	size_t start = 0;
	bool prev_special = true;
	int rc = 0;

	if (len > TOK_MAX_TEXT)
		return -EMSGSIZE;
	if (len && !text)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		size_t sl;
		int32_t id;
		if (t->special_at[(unsigned char)text[i]] ==
		    t->special_at[(unsigned char)text[i] + 1])
			continue;
		id = special_at(t, text + i, len - i, parse_special,
				mask ? mask + i : NULL, &sl);
		if (id < 0)
			continue;
		if (i > start && (rc = encode_fragment(&e, text + start, i - start,
						       prev_special)))
			goto out_free;
		if ((rc = emit(&e, id)))
			goto out_free;
		prev_special = true;
		i += sl - 1;
		start = i + 1;
	}
	if (len > start && (rc = encode_fragment(&e, text + start, len - start,
						 prev_special)))
		goto out_free;
	*ret_n = e.n;
out_free:
	free(e.syms);
	free(e.heap);
	free(e.esc);
	return rc;
}

int tok_encode(const tok *t, const char *text, size_t len, bool parse_special,
	       int32_t *out, size_t max, size_t *ret_n)
{
	return encode(t, text, len, parse_special, NULL, out, max, ret_n);
}

int tok_encode_masked(const tok *t, const char *text, size_t len,
		      const unsigned char *special_ok, int32_t *out, size_t max,
		      size_t *ret_n)
{
	if (len && !special_ok)
		return -EINVAL;
	return encode(t, text, len, true, special_ok, out, max, ret_n);
}

/* ---- decoding and queries ---------------------------------------------------- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static void put(char *buf, size_t cap, size_t *n, const char *s, size_t len)
{
	if (*n < cap)
		memcpy(buf + *n, s, len < cap - *n ? len : cap - *n);
	*n += len;
}

int tok_piece(const tok *t, int32_t id, char *buf, size_t cap)
{
	size_t len, n = 0;
	const char *s;
	int ty;

	if (id < 0 || (size_t)id >= t->n)
		return -EINVAL;
	s = text_of(t, id, &len);
	ty = type_of(t, id);
	if (ty == TOK_TYPE_BYTE && len == 6 && memcmp(s, "<0x", 3) == 0 &&
	    s[5] == '>' && hexval(s[3]) >= 0 && hexval(s[4]) >= 0) {
		char b = (char)(hexval(s[3]) * 16 + hexval(s[4]));
		put(buf, cap, &n, &b, 1);
		return 1;
	}
	if (ty != TOK_TYPE_NORMAL && ty != TOK_TYPE_BYTE) {
		put(buf, cap, &n, s, len);
		return (int)n;
	}
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t l = tok_pre_utf8((const unsigned char *)s + i, len - i, &cp);
		if (t->model == MODEL_BPE && l == (cp < 0x80 ? 1u : 2u) &&
		    cp < 324 && t->cp_byte[cp] >= 0) {
			char b = (char)t->cp_byte[cp];
			put(buf, cap, &n, &b, 1);
		} else if (t->model == MODEL_SPM && cp == 0x2581) {
			put(buf, cap, &n, " ", 1);
		} else {
			put(buf, cap, &n, s + i, l);
		}
		i += l;
	}
	return (int)n;
}

bool tok_is_eog(const tok *t, int32_t id)
{
	return id >= 0 && (size_t)id < t->n && (t->flags[id] & FLAG_EOG);
}

bool tok_is_control(const tok *t, int32_t id)
{
	if (id < 0 || (size_t)id >= t->n)
		return false;
	int ty = type_of(t, id);
	return ty == TOK_TYPE_CONTROL || ty == TOK_TYPE_UNKNOWN || ty == TOK_TYPE_UNUSED;
}

size_t tok_n_vocab(const tok *t)
{
	return t->n;
}

int32_t tok_bos(const tok *t)
{
	return t->bos;
}

int32_t tok_eos(const tok *t)
{
	return t->eos;
}

bool tok_add_bos(const tok *t)
{
	return t->add_bos;
}
