/*
 * gguf.c - GGUF v2/v3 reader: bounds-checked parse over an mmap. See gguf.h.
 */
#include "gguf.h"

#include "kern/quant.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAGIC "GGUF"

typedef struct reader {
	const uint8_t *p;
	size_t size, pos;
	char *err;
	size_t err_len;
} reader;

__attribute__((format(printf, 2, 3)))
static int fail(reader *r, const char *fmt, ...)
{
	if (r->err && r->err_len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(r->err, r->err_len, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static int need(reader *r, size_t n, const char *what)
{
	if (n > r->size - r->pos)
		return fail(r, "truncated file: %s at offset %zu needs %zu bytes, %zu left",
			    what, r->pos, n, r->size - r->pos);
	return 0;
}

static int rd(reader *r, void *dst, size_t n, const char *what)
{
	int rc = need(r, n, what);
	if (rc < 0)
		return rc;
	memcpy(dst, r->p + r->pos, n);
	r->pos += n;
	return 0;
}

static int rd_u32(reader *r, uint32_t *v, const char *what) { return rd(r, v, 4, what); }
static int rd_u64(reader *r, uint64_t *v, const char *what) { return rd(r, v, 8, what); }

static int rd_str(reader *r, gguf_str *s, size_t max, const char *what)
{
	uint64_t len;
	int rc = rd_u64(r, &len, what);
	if (rc < 0)
		return rc;
	if (len > max)
		return fail(r, "%s at offset %zu: length %" PRIu64 " exceeds limit %zu",
			    what, r->pos - 8, len, max);
	if ((rc = need(r, (size_t)len, what)) < 0)
		return rc;
	s->ptr = (const char *)r->p + r->pos;
	s->len = (size_t)len;
	r->pos += (size_t)len;
	return 0;
}

static char *dup_str(gguf_str s)
{
	char *c = malloc(s.len + 1);
	if (c) {
		memcpy(c, s.ptr, s.len);
		c[s.len] = 0;
	}
	return c;
}

static size_t scalar_size(uint32_t t)
{
	switch (t) {
	case GGUF_UINT8: case GGUF_INT8: case GGUF_BOOL: return 1;
	case GGUF_UINT16: case GGUF_INT16: return 2;
	case GGUF_UINT32: case GGUF_INT32: case GGUF_FLOAT32: return 4;
	case GGUF_UINT64: case GGUF_INT64: case GGUF_FLOAT64: return 8;
	default: return 0;
	}
}

/* Reads a fixed-size scalar into kv->v (widened). */
static int rd_scalar(reader *r, uint32_t t, gguf_kv *kv)
{
	uint8_t b[8];
	int rc = rd(r, b, scalar_size(t), "metadata value");
	if (rc < 0)
		return rc;
	switch (t) {
	case GGUF_UINT8: kv->v.u = b[0]; break;
	case GGUF_INT8: kv->v.i = (int8_t)b[0]; break;
	case GGUF_BOOL:
		if (b[0] > 1)
			return fail(r, "metadata '%s': bool value %u", kv->key, b[0]);
		kv->v.b = b[0];
		break;
	case GGUF_UINT16: { uint16_t x; memcpy(&x, b, 2); kv->v.u = x; break; }
	case GGUF_INT16: { int16_t x; memcpy(&x, b, 2); kv->v.i = x; break; }
	case GGUF_UINT32: { uint32_t x; memcpy(&x, b, 4); kv->v.u = x; break; }
	case GGUF_INT32: { int32_t x; memcpy(&x, b, 4); kv->v.i = x; break; }
	case GGUF_FLOAT32: { float x; memcpy(&x, b, 4); kv->v.f = x; break; }
	case GGUF_UINT64: memcpy(&kv->v.u, b, 8); break;
	case GGUF_INT64: memcpy(&kv->v.i, b, 8); break;
	case GGUF_FLOAT64: memcpy(&kv->v.f, b, 8); break;
	}
	return 0;
}

static int rd_array(reader *r, gguf_kv *kv)
{
	uint32_t t;
	uint64_t n;
	int rc;
	if ((rc = rd_u32(r, &t, "array type")) < 0 || (rc = rd_u64(r, &n, "array length")) < 0)
		return rc;
	if (t == GGUF_ARRAY)
		return fail(r, "metadata '%s': nested arrays are not supported", kv->key);
	if (t != GGUF_STRING && !scalar_size(t))
		return fail(r, "metadata '%s': unknown array element type %u", kv->key, t);
	if (n > GGUF_MAX_ARRAY)
		return fail(r, "metadata '%s': array of %" PRIu64 " elements exceeds limit %u",
			    kv->key, n, GGUF_MAX_ARRAY);
	kv->arr_type = t;
	kv->arr_n = n;
	kv->arr = r->p + r->pos;
	if (t != GGUF_STRING) {
		if (n * scalar_size(t) > r->size - r->pos)
			return fail(r, "truncated file: metadata '%s' array of %" PRIu64
				    " elements at offset %zu", kv->key, n, r->pos);
		r->pos += (size_t)n * scalar_size(t);
		return 0;
	}
	/* every string takes at least its 8-byte length */
	if (n > (r->size - r->pos) / 8)
		return fail(r, "truncated file: metadata '%s' string array of %" PRIu64
			    " elements at offset %zu", kv->key, n, r->pos);
	kv->arr_str = calloc(n ? (size_t)n : 1, sizeof(gguf_str));
	if (!kv->arr_str)
		return -ENOMEM;
	for (uint64_t i = 0; i < n; i++)
		if ((rc = rd_str(r, &kv->arr_str[i], r->size, "array string")) < 0)
			return rc;
	return 0;
}

static int rd_kv(reader *r, gguf_kv *kv)
{
	gguf_str key;
	int rc = rd_str(r, &key, GGUF_MAX_KEY, "metadata key");
	if (rc < 0)
		return rc;
	if (!(kv->key = dup_str(key)))
		return -ENOMEM;
	if (strlen(kv->key) != key.len)
		return fail(r, "metadata key with a NUL byte at offset %zu", r->pos - key.len);
	if ((rc = rd_u32(r, &kv->type, "metadata type")) < 0)
		return rc;
	if (kv->type == GGUF_STRING)
		return rd_str(r, &kv->v.s, r->size, "metadata string");
	if (kv->type == GGUF_ARRAY)
		return rd_array(r, kv);
	if (!scalar_size(kv->type))
		return fail(r, "metadata '%s': unknown value type %u", kv->key, kv->type);
	return rd_scalar(r, kv->type, kv);
}

static int rd_tensor_info(reader *r, gguf_tensor *t, size_t idx)
{
	gguf_str name;
	int rc = rd_str(r, &name, GGUF_MAX_NAME, "tensor name");
	if (rc < 0)
		return rc;
	if (!(t->name = dup_str(name)))
		return -ENOMEM;
	if ((rc = rd_u32(r, &t->n_dims, "tensor dims")) < 0)
		return rc;
	if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
		return fail(r, "tensor %zu '%s': %u dimensions (1..%d allowed)", idx,
			    t->name, t->n_dims, GGUF_MAX_DIMS);
	t->n_elems = 1;
	for (int d = 0; d < GGUF_MAX_DIMS; d++) {
		uint64_t ne = 1;
		if ((uint32_t)d < t->n_dims && (rc = rd_u64(r, &ne, "tensor shape")) < 0)
			return rc;
		if (ne < 1 || ne > (uint64_t)GGUF_MAX_DIM)
			return fail(r, "tensor '%s': absurd dimension %d of %" PRIu64,
				    t->name, d, ne);
		if ((uint64_t)t->n_elems > (uint64_t)GGUF_MAX_DIM / ne)
			return fail(r, "tensor '%s': element count overflows", t->name);
		t->ne[d] = (int64_t)ne;
		t->n_elems *= (int64_t)ne;
	}
	if ((rc = rd_u32(r, &t->type, "tensor type")) < 0 ||
	    (rc = rd_u64(r, &t->offset, "tensor offset")) < 0)
		return rc;
	if (!quant_supported((int)t->type)) {
		const char *tn = quant_type_name((int)t->type);
		return fail(r, "tensor '%s': unsupported type %s (%u)", t->name,
			    tn ? tn : "unknown", t->type);
	}
	int be = quant_block_elems((int)t->type);
	if (t->ne[0] % be)
		return fail(r, "tensor '%s': row of %" PRId64 " is not a whole number of %s blocks",
			    t->name, t->ne[0], quant_type_name((int)t->type));
	t->n_bytes = quant_row_bytes((int)t->type, t->n_elems);
	return 0;
}

static int cmp_offset(const void *a, const void *b)
{
	const gguf_tensor *x = *(gguf_tensor *const *)a, *y = *(gguf_tensor *const *)b;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Alignment, data section, every tensor inside the file, no overlaps. */
static int place_tensors(reader *r, gguf *g)
{
	const gguf_kv *al = gguf_find_kv(g, "general.alignment");
	g->alignment = 32;
	if (al) {
		if (al->type != GGUF_UINT32 || al->v.u == 0 || (al->v.u & (al->v.u - 1)) ||
		    al->v.u > GGUF_MAX_ALIGNMENT)
			return fail(r, "general.alignment must be a power-of-two uint32 <= %d",
				    GGUF_MAX_ALIGNMENT);
		g->alignment = (size_t)al->v.u;
	}
	size_t off = (r->pos + g->alignment - 1) / g->alignment * g->alignment;
	if (g->n_tensors && off > r->size)
		return fail(r, "truncated file: data section at %zu past end %zu", off, r->size);
	g->data_offset = off;
	size_t data_size = off <= r->size ? r->size - off : 0;
	gguf_tensor **by_off = calloc(g->n_tensors ? g->n_tensors : 1, sizeof(*by_off));
	if (!by_off)
		return -ENOMEM;
	int rc = 0;
	for (size_t i = 0; i < g->n_tensors; i++) {
		gguf_tensor *t = &g->tensors[i];
		if (t->offset % g->alignment) {
			rc = fail(r, "tensor '%s': offset %" PRIu64 " not aligned to %zu",
				  t->name, t->offset, g->alignment);
			goto out_free_index;
		}
		if (t->offset > data_size || t->n_bytes > data_size - t->offset) {
			rc = fail(r, "tensor '%s': bytes [%" PRIu64 ", +%zu) out of range of "
				  "the %zu-byte data section (file truncated or bad offset)",
				  t->name, t->offset, t->n_bytes, data_size);
			goto out_free_index;
		}
		t->data = r->p + off + t->offset;
		by_off[i] = t;
	}
	qsort(by_off, g->n_tensors, sizeof(*by_off), cmp_offset);
	for (size_t i = 1; i < g->n_tensors; i++)
		if (by_off[i - 1]->offset + by_off[i - 1]->n_bytes > by_off[i]->offset) {
			rc = fail(r, "tensors '%s' and '%s' overlap", by_off[i - 1]->name,
				  by_off[i]->name);
			goto out_free_index;
		}
out_free_index:
	free(by_off);
	return rc;
}

static int check_unique(reader *r, const gguf *g)
{
	/* n^2 over at most a few thousand names is fine for real files; the
	 * cap keeps a hostile file from making it quadratic in 64k. */
	for (size_t i = 0; i < g->n_tensors && i < 4096; i++)
		for (size_t j = 0; j < i; j++)
			if (!strcmp(g->tensors[i].name, g->tensors[j].name))
				return fail(r, "duplicate tensor name '%s'", g->tensors[i].name);
	return 0;
}

static int parse(reader *r, gguf *g)
{
	char magic[4];
	uint64_t n_tensors, n_kv;
	int rc;
	if ((rc = rd(r, magic, 4, "magic")) < 0)
		return rc;
	if (memcmp(magic, GGUF_MAGIC, 4))
		return fail(r, "bad magic: not a GGUF file");
	if ((rc = rd_u32(r, &g->version, "version")) < 0)
		return rc;
	if (g->version == 1)
		return fail(r, "GGUF version 1 is not supported (v2 and v3 are)");
	if (g->version != 2 && g->version != 3)
		return fail(r, "unsupported GGUF version %u (big-endian file?)", g->version);
	if ((rc = rd_u64(r, &n_tensors, "tensor count")) < 0 ||
	    (rc = rd_u64(r, &n_kv, "metadata count")) < 0)
		return rc;
	if (n_tensors > GGUF_MAX_TENSORS)
		return fail(r, "tensor count %" PRIu64 " exceeds limit %d", n_tensors,
			    GGUF_MAX_TENSORS);
	if (n_kv > GGUF_MAX_KV)
		return fail(r, "metadata count %" PRIu64 " exceeds limit %d", n_kv, GGUF_MAX_KV);
	/* each kv takes >= 12 bytes and each tensor info >= 24 */
	if (n_kv * 12 + n_tensors * 24 > r->size - r->pos)
		return fail(r, "truncated file: %" PRIu64 " metadata entries and %" PRIu64
			    " tensors cannot fit in %zu bytes", n_kv, n_tensors, r->size);
	g->kv = calloc(n_kv ? (size_t)n_kv : 1, sizeof(gguf_kv));
	g->tensors = calloc(n_tensors ? (size_t)n_tensors : 1, sizeof(gguf_tensor));
	if (!g->kv || !g->tensors)
		return -ENOMEM;
	for (; g->n_kv < n_kv; g->n_kv++)
		if ((rc = rd_kv(r, &g->kv[g->n_kv])) < 0) {
			g->n_kv++;   /* so gguf_close frees the partial entry */
			return rc;
		}
	for (; g->n_tensors < n_tensors; g->n_tensors++)
		if ((rc = rd_tensor_info(r, &g->tensors[g->n_tensors], g->n_tensors)) < 0) {
			g->n_tensors++;
			return rc;
		}
	if ((rc = check_unique(r, g)) < 0)
		return rc;
	return place_tensors(r, g);
}

static int open_common(const void *data, size_t size, bool mapped, gguf **ret,
		       char *err, size_t err_len)
{
	gguf *g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->base = data;
	g->size = size;
	g->mapped = mapped;
	reader r = { .p = data, .size = size, .err = err, .err_len = err_len };
	int rc = parse(&r, g);
	if (rc < 0) {
		if (rc == -ENOMEM && err && err_len)
			snprintf(err, err_len, "out of memory reading GGUF");
		g->mapped = false;   /* the caller unmaps on failure */
		gguf_close(g);
		return rc;
	}
	*ret = g;
	return 0;
}

int gguf_open_mem(const void *data, size_t size, gguf **ret, char *err, size_t err_len)
{
	return open_common(data, size, false, ret, err, err_len);
}

int gguf_open(const char *path, gguf **ret, char *err, size_t err_len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(err, err_len, "%s: %s", path, strerror(e));
		return -e;
	}
	struct stat st;
	int rc = 0;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		snprintf(err, err_len, "%s: %s", path, strerror(-rc));
		goto out_close;
	}
	if (!S_ISREG(st.st_mode) || st.st_size < 24) {
		snprintf(err, err_len, "%s: %s", path,
			 S_ISREG(st.st_mode) ? "truncated file: too small for a GGUF header"
					     : "not a regular file");
		rc = -EINVAL;
		goto out_close;
	}
	void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED) {
		rc = -errno;
		snprintf(err, err_len, "%s: mmap: %s", path, strerror(-rc));
		goto out_close;
	}
	rc = open_common(map, (size_t)st.st_size, true, ret, err, err_len);
	if (rc < 0)
		munmap(map, (size_t)st.st_size);
out_close:
	close(fd);
	return rc;
}

void gguf_close(gguf *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->n_kv; i++) {
		free(g->kv[i].key);
		free(g->kv[i].arr_str);
	}
	for (size_t i = 0; i < g->n_tensors; i++)
		free(g->tensors[i].name);
	free(g->kv);
	free(g->tensors);
	if (g->mapped)
		munmap((void *)g->base, g->size);
	free(g);
}

const gguf_kv *gguf_find_kv(const gguf *g, const char *key)
{
	for (size_t i = 0; i < g->n_kv; i++)
		if (g->kv[i].key && !strcmp(g->kv[i].key, key))
			return &g->kv[i];
	return NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf *g, const char *name)
{
	for (size_t i = 0; i < g->n_tensors; i++)
		if (!strcmp(g->tensors[i].name, name))
			return &g->tensors[i];
	return NULL;
}

static bool is_uint(uint32_t t)
{
	return t == GGUF_UINT8 || t == GGUF_UINT16 || t == GGUF_UINT32 || t == GGUF_UINT64;
}

static bool is_int(uint32_t t)
{
	return t == GGUF_INT8 || t == GGUF_INT16 || t == GGUF_INT32 || t == GGUF_INT64;
}

int gguf_get_i64(const gguf *g, const char *key, int64_t *ret)
{
	const gguf_kv *kv = gguf_find_kv(g, key);
	if (!kv)
		return -ENOENT;
	if (is_uint(kv->type)) {
		if (kv->v.u > INT64_MAX)
			return -EINVAL;
		*ret = (int64_t)kv->v.u;
		return 0;
	}
	if (is_int(kv->type)) {
		*ret = kv->v.i;
		return 0;
	}
	return -EINVAL;
}

int gguf_get_u32(const gguf *g, const char *key, uint32_t *ret)
{
	int64_t v;
	int rc = gguf_get_i64(g, key, &v);
	if (rc < 0)
		return rc;
	if (v < 0 || v > UINT32_MAX)
		return -EINVAL;
	*ret = (uint32_t)v;
	return 0;
}

int gguf_get_f32(const gguf *g, const char *key, float *ret)
{
	const gguf_kv *kv = gguf_find_kv(g, key);
	if (!kv)
		return -ENOENT;
	if (kv->type == GGUF_FLOAT32 || kv->type == GGUF_FLOAT64)
		*ret = (float)kv->v.f;
	else if (is_uint(kv->type))
		*ret = (float)kv->v.u;
	else if (is_int(kv->type))
		*ret = (float)kv->v.i;
	else
		return -EINVAL;
	return 0;
}

int gguf_get_bool(const gguf *g, const char *key, bool *ret)
{
	const gguf_kv *kv = gguf_find_kv(g, key);
	if (!kv)
		return -ENOENT;
	if (kv->type != GGUF_BOOL)
		return -EINVAL;
	*ret = kv->v.b;
	return 0;
}

int gguf_get_str(const gguf *g, const char *key, gguf_str *ret)
{
	const gguf_kv *kv = gguf_find_kv(g, key);
	if (!kv)
		return -ENOENT;
	if (kv->type != GGUF_STRING)
		return -EINVAL;
	*ret = kv->v.s;
	return 0;
}

int gguf_arr_f64(const gguf_kv *kv, uint64_t i, double *ret)
{
	if (kv->type != GGUF_ARRAY || i >= kv->arr_n)
		return -EINVAL;
	size_t sz = scalar_size(kv->arr_type);
	if (!sz || kv->arr_type == GGUF_BOOL)
		return -EINVAL;
	const uint8_t *p = (const uint8_t *)kv->arr + i * sz;
	union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32;
		int32_t i32; float f; uint64_t u64; int64_t i64; double d; } x;
	memcpy(&x, p, sz);
	switch (kv->arr_type) {
	case GGUF_UINT8: *ret = x.u8; break;
	case GGUF_INT8: *ret = x.i8; break;
	case GGUF_UINT16: *ret = x.u16; break;
	case GGUF_INT16: *ret = x.i16; break;
	case GGUF_UINT32: *ret = x.u32; break;
	case GGUF_INT32: *ret = x.i32; break;
	case GGUF_FLOAT32: *ret = x.f; break;
	case GGUF_UINT64: *ret = (double)x.u64; break;
	case GGUF_INT64: *ret = (double)x.i64; break;
	case GGUF_FLOAT64: *ret = x.d; break;
	}
	return 0;
}
