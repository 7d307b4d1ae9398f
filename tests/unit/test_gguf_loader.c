/*
 * test_gguf_loader.c - the GGUF reader on a file built here byte by byte
 * (every metadata value type, string and numeric arrays, tensors of three
 * types, alignment) and on malformed variants: truncated at every byte,
 * bad magic and versions, huge counts and lengths, bad and overlapping
 * offsets, absurd dimensions, unsupported types named in the message.
 * Buffers are exact-size heap copies so ASan (make SANITIZE=1) sees any
 * read past the end.
 */
#include "../../services/llm/gguf/gguf.h"
#include "kern/quant.h"
#include "vx_test.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct img { uint8_t b[8192]; size_t n; } img;

static void put(img *m, const void *p, size_t n) { memcpy(m->b + m->n, p, n); m->n += n; }
static void u32(img *m, uint32_t v) { put(m, &v, 4); }
static void u64(img *m, uint64_t v) { put(m, &v, 8); }
static void str(img *m, const char *s) { u64(m, strlen(s)); put(m, s, strlen(s)); }
static void key(img *m, const char *k, uint32_t t) { str(m, k); u32(m, t); }

/* Offsets of interesting fields in the good image, for the mutations. */
static struct {
	size_t n_tensors, n_kv, arr_len, str_len, tinfo, dims, ne0, type, offset, data;
} at;

#define N_KV 17
#define ALIGN 64

/* The good file: N_KV metadata entries of every type, then 3 tensors:
 * a (F32 [8]), b (Q8_0 [64, 2]), c (Q4_K [256]) - c ends the file. */
static void build(img *m, uint32_t version)
{
	memset(m, 0, sizeof(*m));
	put(m, "GGUF", 4);
	u32(m, version);
	at.n_tensors = m->n;
	u64(m, 3);
	at.n_kv = m->n;
	u64(m, N_KV);
	key(m, "general.architecture", GGUF_STRING);
	at.str_len = m->n;
	str(m, "llama");
	key(m, "general.alignment", GGUF_UINT32); u32(m, ALIGN);
	key(m, "t.u8", GGUF_UINT8); put(m, "\xfe", 1);
	key(m, "t.i8", GGUF_INT8); put(m, "\xfe", 1);
	key(m, "t.u16", GGUF_UINT16); put(m, "\x34\x12", 2);
	key(m, "t.i16", GGUF_INT16); put(m, "\xfe\xff", 2);
	key(m, "t.u32", GGUF_UINT32); u32(m, 4000000000u);
	key(m, "t.i32", GGUF_INT32); u32(m, (uint32_t)-5);
	float f = 1.5f;
	key(m, "t.f32", GGUF_FLOAT32); put(m, &f, 4);
	key(m, "t.bool", GGUF_BOOL); put(m, "\x01", 1);
	key(m, "t.u64", GGUF_UINT64); u64(m, 1ull << 40);
	key(m, "t.i64", GGUF_INT64); u64(m, (uint64_t)-7ll);
	double d = -2.25;
	key(m, "t.f64", GGUF_FLOAT64); put(m, &d, 8);
	key(m, "t.strs", GGUF_ARRAY); u32(m, GGUF_STRING);
	at.arr_len = m->n;
	u64(m, 3); str(m, "a"); str(m, ""); str(m, "<|im_end|>");
	key(m, "t.i32s", GGUF_ARRAY); u32(m, GGUF_INT32); u64(m, 3);
	u32(m, 1); u32(m, (uint32_t)-2); u32(m, 3);
	key(m, "t.f32s", GGUF_ARRAY); u32(m, GGUF_FLOAT32); u64(m, 2);
	put(m, &f, 4); put(m, &f, 4);
	key(m, "t.empty", GGUF_ARRAY); u32(m, GGUF_UINT8); u64(m, 0);
	/* tensor infos */
	at.tinfo = m->n;
	str(m, "a"); at.dims = m->n; u32(m, 1); at.ne0 = m->n; u64(m, 8);
	at.type = m->n; u32(m, QT_F32); at.offset = m->n; u64(m, 0);
	str(m, "b"); u32(m, 2); u64(m, 64); u64(m, 2); u32(m, QT_Q8_0); u64(m, ALIGN);
	str(m, "c"); u32(m, 1); u64(m, 256); u32(m, QT_Q4_K); u64(m, 4 * ALIGN);
	m->n = (m->n + ALIGN - 1) / ALIGN * ALIGN;
	at.data = m->n;
	for (int i = 0; i < 8; i++) {
		float v = (float)i;
		memcpy(m->b + m->n + 4 * i, &v, 4);
	}
	for (int i = 0; i < 136; i++)
		m->b[m->n + ALIGN + i] = (uint8_t)i;
	m->n += 4 * ALIGN + 144;   /* c: 144 bytes, ends the file */
}

/* Opens an exact-size heap copy of the first n bytes; returns rc. */
static int open_n(const img *m, size_t n, char *err, size_t err_len)
{
	uint8_t *copy = malloc(n ? n : 1);
	memcpy(copy, m->b, n);
	gguf *g = NULL;
	int rc = gguf_open_mem(copy, n, &g, err, err_len);
	if (rc == 0)
		gguf_close(g);
	free(copy);
	return rc;
}

static int open_img(const img *m, char *err, size_t err_len)
{
	return open_n(m, m->n, err, err_len);
}

VX_TEST(reads_every_value_type_and_tensor)
{
	img m;
	build(&m, 3);
	gguf *g = NULL;
	char err[256] = "";
	int rc = gguf_open_mem(m.b, m.n, &g, err, sizeof(err));
	VX_CHECK_INT(rc, 0);
	if (rc) {
		fprintf(stderr, "  %s\n", err);
		return;
	}
	VX_CHECK_INT(g->version, 3);
	VX_CHECK_INT(g->n_kv, N_KV);
	VX_CHECK_INT(g->alignment, ALIGN);
	gguf_str s;
	VX_CHECK_INT(gguf_get_str(g, "general.architecture", &s), 0);
	VX_CHECK(s.len == 5 && !memcmp(s.ptr, "llama", 5));
	uint32_t u;
	int64_t i;
	float f;
	bool b;
	VX_CHECK_INT(gguf_get_u32(g, "t.u8", &u), 0); VX_CHECK_INT(u, 254);
	VX_CHECK_INT(gguf_get_i64(g, "t.i8", &i), 0); VX_CHECK_INT(i, -2);
	VX_CHECK_INT(gguf_get_u32(g, "t.u16", &u), 0); VX_CHECK_INT(u, 0x1234);
	VX_CHECK_INT(gguf_get_i64(g, "t.i16", &i), 0); VX_CHECK_INT(i, -2);
	VX_CHECK_INT(gguf_get_u32(g, "t.u32", &u), 0); VX_CHECK(u == 4000000000u);
	VX_CHECK_INT(gguf_get_i64(g, "t.i32", &i), 0); VX_CHECK_INT(i, -5);
	VX_CHECK_INT(gguf_get_u32(g, "t.i32", &u), -EINVAL);          /* negative */
	VX_CHECK_INT(gguf_get_f32(g, "t.f32", &f), 0); VX_CHECK(f == 1.5f);
	VX_CHECK_INT(gguf_get_bool(g, "t.bool", &b), 0); VX_CHECK(b);
	VX_CHECK_INT(gguf_get_i64(g, "t.u64", &i), 0); VX_CHECK(i == 1ll << 40);
	VX_CHECK_INT(gguf_get_u32(g, "t.u64", &u), -EINVAL);          /* too big */
	VX_CHECK_INT(gguf_get_i64(g, "t.i64", &i), 0); VX_CHECK_INT(i, -7);
	VX_CHECK_INT(gguf_get_f32(g, "t.f64", &f), 0); VX_CHECK(f == -2.25f);
	VX_CHECK_INT(gguf_get_f32(g, "t.i32", &f), 0); VX_CHECK(f == -5.0f);
	VX_CHECK_INT(gguf_get_str(g, "t.u8", &s), -EINVAL);
	VX_CHECK_INT(gguf_get_u32(g, "missing", &u), -ENOENT);
	const gguf_kv *kv = gguf_find_kv(g, "t.strs");
	VX_CHECK(kv && kv->arr_type == GGUF_STRING && kv->arr_n == 3);
	if (kv) {
		VX_CHECK(kv->arr_str[1].len == 0);
		VX_CHECK(kv->arr_str[2].len == 10 && !memcmp(kv->arr_str[2].ptr, "<|im_end|>", 10));
	}
	double dv;
	kv = gguf_find_kv(g, "t.i32s");
	VX_CHECK(kv && gguf_arr_f64(kv, 1, &dv) == 0 && dv == -2);
	VX_CHECK(kv && gguf_arr_f64(kv, 3, &dv) == -EINVAL);
	kv = gguf_find_kv(g, "t.empty");
	VX_CHECK(kv && kv->arr_n == 0);
	VX_CHECK_INT(g->n_tensors, 3);
	const gguf_tensor *t = gguf_find_tensor(g, "b");
	VX_CHECK(t && t->type == QT_Q8_0 && t->n_dims == 2 && t->ne[0] == 64 && t->ne[1] == 2);
	VX_CHECK(t && t->n_bytes == 136 && t->data == m.b + at.data + ALIGN);
	VX_CHECK(t && ((const uint8_t *)t->data)[5] == 5);
	t = gguf_find_tensor(g, "a");
	VX_CHECK(t && ((const float *)t->data)[7] == 7.0f);
	VX_CHECK(gguf_find_tensor(g, "zz") == NULL);
	gguf_close(g);
}

VX_TEST(opens_files_by_mmap_and_reports_missing_ones)
{
	img m;
	build(&m, 3);
	char path[] = "/tmp/test_gguf_loader.XXXXXX";
	int fd = mkstemp(path);
	VX_CHECK(fd >= 0);
	VX_CHECK(write(fd, m.b, m.n) == (ssize_t)m.n);
	close(fd);
	gguf *g = NULL;
	char err[256];
	VX_CHECK_INT(gguf_open(path, &g, err, sizeof(err)), 0);
	VX_CHECK(g && g->mapped && g->n_tensors == 3);
	gguf_close(g);
	/* truncated on disk */
	VX_CHECK_INT(truncate(path, (off_t)m.n - 1), 0);
	VX_CHECK_INT(gguf_open(path, &g, err, sizeof(err)), -EINVAL);
	VX_CHECK(strstr(err, "out of range") != NULL);
	unlink(path);
	VX_CHECK_INT(gguf_open(path, &g, err, sizeof(err)), -ENOENT);
	VX_CHECK(strstr(err, path) != NULL);
}

VX_TEST(version_2_is_read_version_1_and_others_refused)
{
	img m;
	char err[256];
	build(&m, 2);
	VX_CHECK_INT(open_img(&m, err, sizeof(err)), 0);
	build(&m, 1);
	VX_CHECK_INT(open_img(&m, err, sizeof(err)), -EINVAL);
	VX_CHECK(strstr(err, "version 1") != NULL);
	build(&m, 0x03000000);   /* a big-endian file */
	VX_CHECK_INT(open_img(&m, err, sizeof(err)), -EINVAL);
	VX_CHECK(strstr(err, "version") != NULL);
}

VX_TEST(bad_magic_is_refused)
{
	img m;
	char err[256];
	build(&m, 3);
	m.b[0] = 'X';
	VX_CHECK_INT(open_img(&m, err, sizeof(err)), -EINVAL);
	VX_CHECK(strstr(err, "magic") != NULL);
}

VX_TEST(truncation_at_every_byte_is_refused)
{
	img m;
	char err[256];
	build(&m, 3);
	int accepted = 0;
	for (size_t n = 0; n < m.n; n++)
		if (open_n(&m, n, err, sizeof(err)) != -EINVAL)
			accepted++;
	VX_CHECK_INT(accepted, 0);
	VX_CHECK(strstr(err, "out of range") || strstr(err, "truncated"));
	VX_CHECK_INT(open_n(&m, m.n, err, sizeof(err)), 0);
}

static int mutate_u64(size_t off, uint64_t v, char *err, size_t len)
{
	img m;
	build(&m, 3);
	memcpy(m.b + off, &v, 8);
	return open_img(&m, err, len);
}

static int mutate_u32(size_t off, uint32_t v, char *err, size_t len)
{
	img m;
	build(&m, 3);
	memcpy(m.b + off, &v, 4);
	return open_img(&m, err, len);
}

VX_TEST(huge_counts_and_lengths_are_refused)
{
	char err[256];
	VX_CHECK_INT(mutate_u64(at.n_tensors, 1ull << 40, err, sizeof(err)), -EINVAL);
	VX_CHECK(strstr(err, "tensor count") != NULL);
	VX_CHECK_INT(mutate_u64(at.n_tensors, 60000, err, sizeof(err)), -EINVAL);
	VX_CHECK_INT(mutate_u64(at.n_kv, UINT64_MAX, err, sizeof(err)), -EINVAL);
	VX_CHECK(strstr(err, "metadata count") != NULL);
	VX_CHECK_INT(mutate_u64(at.n_kv, N_KV + 1, err, sizeof(err)), -EINVAL);
	VX_CHECK_INT(mutate_u64(at.arr_len, 1ull << 62, err, sizeof(err)), -EINVAL);
	VX_CHECK_INT(mutate_u64(at.arr_len, 1000000, err, sizeof(err)), -EINVAL);
	VX_CHECK_INT(mutate_u64(at.str_len, UINT64_MAX, err, sizeof(err)), -EINVAL);
	VX_CHECK_INT(mutate_u64(at.str_len, 1u << 20, err, sizeof(err)), -EINVAL);
}

VX_TEST(bad_tensor_offsets_are_refused)
{
	char err[256];
	VX_CHECK_INT(mutate_u64(at.offset, 1ull << 60, err, sizeof(err)), -EINVAL);
	VX_CHECK(strstr(err, "out of range") != NULL);
	VX_CHECK_INT(mutate_u64(at.offset, UINT64_MAX - 3, err, sizeof(err)), -EINVAL);
	VX_CHECK_INT(mutate_u64(at.offset, 8, err, sizeof(err)), -EINVAL);     /* misaligned */
	VX_CHECK(strstr(err, "aligned") != NULL);
	VX_CHECK_INT(mutate_u64(at.offset, ALIGN, err, sizeof(err)), -EINVAL); /* overlaps b */
	VX_CHECK(strstr(err, "overlap") != NULL);
}

VX_TEST(absurd_dimensions_are_refused)
{
	char err[256];
	VX_CHECK_INT(mutate_u32(at.dims, 5, err, sizeof(err)), -EINVAL);
	VX_CHECK(strstr(err, "dimensions") != NULL);
	VX_CHECK_INT(mutate_u32(at.dims, 0, err, sizeof(err)), -EINVAL);
	VX_CHECK_INT(mutate_u64(at.ne0, 0, err, sizeof(err)), -EINVAL);
	VX_CHECK_INT(mutate_u64(at.ne0, 1ull << 62, err, sizeof(err)), -EINVAL);
	VX_CHECK(strstr(err, "absurd") != NULL);
	VX_CHECK_INT(mutate_u64(at.ne0, 1ull << 39, err, sizeof(err)), -EINVAL);  /* past the file */
}

VX_TEST(unsupported_types_are_named)
{
	char err[256];
	VX_CHECK_INT(mutate_u32(at.type, 3, err, sizeof(err)), -EINVAL);
	VX_CHECK(strstr(err, "Q4_1") && strstr(err, "'a'"));
	VX_CHECK_INT(mutate_u32(at.type, 200, err, sizeof(err)), -EINVAL);
	VX_CHECK(strstr(err, "unsupported type") != NULL);
	VX_CHECK_INT(mutate_u32(at.type, QT_Q8_0, err, sizeof(err)), -EINVAL);   /* 8 % 32 */
	VX_CHECK(strstr(err, "blocks") != NULL);
}

VX_TEST(bad_metadata_is_refused)
{
	img m;
	char err[256];
	/* unknown value type for general.architecture */
	build(&m, 3);
	size_t type_off = at.str_len - 4;
	uint32_t bad = 99;
	memcpy(m.b + type_off, &bad, 4);
	VX_CHECK_INT(open_img(&m, err, sizeof(err)), -EINVAL);
	VX_CHECK(strstr(err, "type") != NULL);
	/* nested array */
	build(&m, 3);
	uint32_t arr = GGUF_ARRAY;
	memcpy(m.b + at.arr_len - 4, &arr, 4);
	VX_CHECK_INT(open_img(&m, err, sizeof(err)), -EINVAL);
	VX_CHECK(strstr(err, "nested") != NULL);
	/* alignment not a power of two */
	build(&m, 3);
	char *p = memmem(m.b, m.n, "general.alignment", 17);
	VX_CHECK(p != NULL);
	if (p) {
		uint32_t a = 48;
		memcpy(p + 17 + 4, &a, 4);
		VX_CHECK_INT(open_img(&m, err, sizeof(err)), -EINVAL);
		VX_CHECK(strstr(err, "alignment") != NULL);
	}
	/* duplicate tensor names: rename c to b */
	build(&m, 3);
	p = memmem(m.b + at.tinfo, m.n - at.tinfo, "\x01\0\0\0\0\0\0\0c", 9);
	VX_CHECK(p != NULL);
	if (p) {
		p[8] = 'b';
		VX_CHECK_INT(open_img(&m, err, sizeof(err)), -EINVAL);
		VX_CHECK(strstr(err, "duplicate") != NULL);
	}
}

VX_TEST(random_corruption_never_crashes)
{
	/* flips bytes of the header region at random: any result is fine as
	 * long as nothing reads out of bounds (ASan) and failures say why */
	uint64_t s = 12345;
	for (int it = 0; it < 3000; it++) {
		img m;
		build(&m, 3);
		for (int k = 0; k < 3; k++) {
			s = s * 6364136223846793005ull + 1442695040888963407ull;
			size_t off = (size_t)(s >> 33) % at.data;
			m.b[off] = (uint8_t)(s >> 20);
		}
		char err[256] = "";
		int rc = open_img(&m, err, sizeof(err));
		VX_CHECK(rc == 0 || (rc == -EINVAL && err[0]));
	}
}

VX_TEST_MAIN(reads_every_value_type_and_tensor, opens_files_by_mmap_and_reports_missing_ones,
	     version_2_is_read_version_1_and_others_refused, bad_magic_is_refused,
	     truncation_at_every_byte_is_refused, huge_counts_and_lengths_are_refused,
	     bad_tensor_offsets_are_refused, absurd_dimensions_are_refused,
	     unsupported_types_are_named, bad_metadata_is_refused,
	     random_corruption_never_crashes)
