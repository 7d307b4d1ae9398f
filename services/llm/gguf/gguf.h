/*
 * gguf.h - a GGUF (v2 and v3) file reader.
 *
 * gguf_open() maps the file read-only and checks all of it up front:
 * header, every metadata value (all value types, arrays included), the
 * tensor table, alignment, and that every tensor's bytes lie inside the
 * file. A file that passes is safe to use: nothing afterwards reads out of
 * bounds. Anything malformed (truncated, bad magic, unsupported version,
 * counts or dimensions past the limits below, offsets out of range,
 * misaligned or overlapping data, a tensor type this engine has no kernel
 * for, named in the message) is refused with -EINVAL (-ENOENT/-EACCES etc.
 * for open errors) and a message in err.
 *
 * Ownership: tensor data and strings point into the mapping; they live until
 * gguf_close(). Tensor bytes are never copied. Strings are NOT
 * NUL-terminated (gguf_str has the length); keys and tensor names are
 * additionally copied NUL-terminated for convenience.
 * Thread-safety: immutable after gguf_open, so any number of readers.
 *
 *     gguf *g; char err[256];
 *     if (gguf_open("m.gguf", &g, err, sizeof err) < 0) fail(err);
 *     const gguf_tensor *t = gguf_find_tensor(g, "token_embd.weight");
 *     gguf_close(g);
 */
#ifndef GGUF_H
#define GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits on what a file may ask for (each checked before use). */
#define GGUF_MAX_TENSORS   65536
#define GGUF_MAX_KV        65536
#define GGUF_MAX_ARRAY     (1u << 26)   /* elements of one metadata array */
#define GGUF_MAX_KEY       1024         /* bytes of a metadata key */
#define GGUF_MAX_NAME      256          /* bytes of a tensor name */
#define GGUF_MAX_DIMS      4
#define GGUF_MAX_DIM       (1ll << 40)  /* elements along one dimension */
#define GGUF_MAX_ALIGNMENT 65536

enum gguf_vtype {
	GGUF_UINT8 = 0, GGUF_INT8 = 1, GGUF_UINT16 = 2, GGUF_INT16 = 3,
	GGUF_UINT32 = 4, GGUF_INT32 = 5, GGUF_FLOAT32 = 6, GGUF_BOOL = 7,
	GGUF_STRING = 8, GGUF_ARRAY = 9, GGUF_UINT64 = 10, GGUF_INT64 = 11,
	GGUF_FLOAT64 = 12,
};

typedef struct gguf_str {
	const char *ptr;    /* into the mapping, not NUL-terminated */
	size_t len;
} gguf_str;

typedef struct gguf_kv {
	char *key;          /* NUL-terminated copy */
	uint32_t type;      /* enum gguf_vtype */
	union {             /* scalar value, widened */
		uint64_t u;     /* unsigned ints */
		int64_t i;      /* signed ints */
		double f;       /* floats */
		bool b;
		gguf_str s;
	} v;
	/* type == GGUF_ARRAY: */
	uint32_t arr_type;  /* element type (never ARRAY) */
	uint64_t arr_n;     /* elements */
	const void *arr;    /* raw little-endian elements in the mapping */
	gguf_str *arr_str;  /* arr_type == STRING: the strings (owned) */
} gguf_kv;

typedef struct gguf_tensor {
	char *name;         /* NUL-terminated copy */
	uint32_t type;      /* ggml type, see quant.h */
	uint32_t n_dims;
	int64_t ne[GGUF_MAX_DIMS];  /* elements per dim, ne[0] fastest; 1 past n_dims */
	int64_t n_elems;
	uint64_t offset;    /* from the start of the data section */
	size_t n_bytes;
	const void *data;   /* in the mapping */
} gguf_tensor;

typedef struct gguf {
	uint32_t version;   /* 2 or 3 */
	size_t n_kv;
	gguf_kv *kv;
	size_t n_tensors;
	gguf_tensor *tensors;
	size_t alignment;
	size_t data_offset; /* file offset of the data section */
	const uint8_t *base;
	size_t size;
	bool mapped;        /* base is an mmap (else caller's memory) */
} gguf;

/* Maps and checks path. Caller owns *ret (gguf_close). */
int gguf_open(const char *path, gguf **ret, char *err, size_t err_len);
/* Same checks over caller memory (which must outlive the result). */
int gguf_open_mem(const void *data, size_t size, gguf **ret, char *err,
		  size_t err_len);
void gguf_close(gguf *g);   /* accepts NULL */

const gguf_kv *gguf_find_kv(const gguf *g, const char *key);
const gguf_tensor *gguf_find_tensor(const gguf *g, const char *name);

/* Typed getters: 0, -ENOENT when absent, -EINVAL when of a type that does
 * not convert (any integer type reads as an integer in range; floats read
 * from any numeric type). *ret is untouched on failure. */
int gguf_get_u32(const gguf *g, const char *key, uint32_t *ret);
int gguf_get_i64(const gguf *g, const char *key, int64_t *ret);
int gguf_get_f32(const gguf *g, const char *key, float *ret);
int gguf_get_bool(const gguf *g, const char *key, bool *ret);
int gguf_get_str(const gguf *g, const char *key, gguf_str *ret);
/* Array element i as a number (int or float arrays); 0 or -EINVAL. */
int gguf_arr_f64(const gguf_kv *kv, uint64_t i, double *ret);

#endif
