/*
 * fuzz_gguf.c - the GGUF reader (gguf_open_mem: header, metadata of every
 * type, tensor table, alignment, data bounds) on any bytes, then every
 * accessor over what it accepted.
 *
 * gguf.h promises that a file that passes is safe to use: so every key,
 * string, array element and tensor byte is read here (ASan checks the
 * reads stay inside the input), and the typed getters and finders are
 * called on each key and name. The input is copied into a buffer of its
 * exact size, 32-byte aligned (as a mapping would be at least), so a read
 * past the end is caught.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink;

static void touch(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t s = 0;
	for (size_t i = 0; i < n; i++)
		s += b[i];
	sink += s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	void *buf = aligned_alloc(32, size ? (size + 31) / 32 * 32 : 32);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	gguf *g = NULL;
	char err[256];
	memset(err, 'x', sizeof(err));
	int r = gguf_open_mem(buf, size, &g, err, sizeof(err));
	if (r < 0) {
		if (g || !memchr(err, 0, sizeof(err)))
			abort();
		free(buf);
		return 0;
	}
	if (!g || g->n_kv > GGUF_MAX_KV || g->n_tensors > GGUF_MAX_TENSORS)
		abort();
	for (size_t i = 0; i < g->n_kv; i++) {
		const gguf_kv *kv = &g->kv[i];
		uint32_t u;
		int64_t i64;
		float f;
		bool b;
		gguf_str s;
		if (gguf_find_kv(g, kv->key) == NULL)
			abort();
		(void)gguf_get_u32(g, kv->key, &u);
		(void)gguf_get_i64(g, kv->key, &i64);
		(void)gguf_get_f32(g, kv->key, &f);
		(void)gguf_get_bool(g, kv->key, &b);
		if (gguf_get_str(g, kv->key, &s) == 0)
			touch(s.ptr, s.len);
		if (kv->type != GGUF_ARRAY)
			continue;
		if (kv->arr_n > GGUF_MAX_ARRAY)
			abort();
		for (uint64_t k = 0; k < kv->arr_n; k++) {
			double d;
			(void)gguf_arr_f64(kv, k, &d);
			if (kv->arr_type == GGUF_STRING)
				touch(kv->arr_str[k].ptr, kv->arr_str[k].len);
		}
	}
	for (size_t i = 0; i < g->n_tensors; i++) {
		const gguf_tensor *t = &g->tensors[i];
		if (gguf_find_tensor(g, t->name) == NULL || t->n_dims > GGUF_MAX_DIMS)
			abort();
		if ((const uint8_t *)t->data < (const uint8_t *)buf ||
		    (const uint8_t *)t->data + t->n_bytes > (const uint8_t *)buf + size)
			abort();
		touch(t->data, t->n_bytes);
	}
	(void)gguf_find_kv(g, "general.architecture");
	(void)gguf_find_tensor(g, "token_embd.weight");
	gguf_close(g);
	free(buf);
	return 0;
}
