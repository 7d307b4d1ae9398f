/*
 * wfile.h - a reader for whisper.cpp's ggml model files (ggml-tiny.en.bin
 * ... ggml-large-v3-turbo.bin and their quantised variants).
 *
 * The format (little-endian, no alignment padding anywhere):
 *   u32 magic 0x67676d6c; 11 x i32 hparams (n_vocab, n_audio_ctx,
 *   n_audio_state, n_audio_head, n_audio_layer, n_text_ctx, n_text_state,
 *   n_text_head, n_text_layer, n_mels, ftype); mel filters (i32 n_mel,
 *   i32 n_fb, n_mel * n_fb f32); vocabulary (i32 n, then n x (u32 len,
 *   bytes)); then tensors to the end of the file (i32 n_dims, i32 name_len,
 *   i32 ggml type, n_dims x i32 ne (fastest first), name, data).
 *
 * wfile_open() maps the file read-only and checks all of it up front: every
 * section present and whole, hparams within the limits below, the mel
 * filter shape, every tensor a known Whisper tensor with the shape the
 * hparams give and the type the file's ftype gives, no tensor twice, none
 * missing, every tensor's bytes inside the file. A file that passes is safe
 * to use. Anything else is refused with -EINVAL and a message naming the
 * section and the reason (-errno for open/mmap failures).
 *
 * Ownership: tensor data and token bytes point into the mapping and live
 * until wfile_close(); tensor bytes are never copied. The mel filters
 * (a few hundred KB at most) are copied to an aligned float array.
 * Alignment: the format has no padding, so a tensor's data may sit at any
 * address (tensor->data % 4 is whatever the file makes it); users that
 * need aligned rows must check `aligned`.
 * Thread-safety: immutable after open; any number of readers.
 *
 *     wfile *f; char err[256];
 *     if (wfile_open("ggml-base.en.bin", &f, err, sizeof err) < 0) fail(err);
 *     const wfile_tensor *t = wfile_tensor_get(f, "decoder.ln.weight");
 *     wfile_close(f);
 */
#ifndef WFILE_H
#define WFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WFILE_MAGIC        0x67676d6cu
/* Limits on what a file may ask for (each checked before use). */
#define WFILE_MAX_VOCAB    (1 << 20)   /* n_vocab and the stored token count */
#define WFILE_MAX_TOKEN    1024        /* bytes of one token */
#define WFILE_MAX_CTX      65536       /* n_audio_ctx, n_text_ctx */
#define WFILE_MAX_STATE    16384       /* n_audio_state, n_text_state */
#define WFILE_MAX_HEAD     256
#define WFILE_MAX_LAYER    64
#define WFILE_MAX_MELS     512
#define WFILE_N_FB         201         /* n_fft 400 / 2 + 1 */
#define WFILE_MAX_NAME     64          /* bytes of a tensor name */
#define WFILE_QNT_FACTOR   1000        /* ftype = version * 1000 + type */

/* ggml type numbers as stored in tensor headers */
enum wfile_type {
	WT_F32 = 0, WT_F16 = 1, WT_Q4_0 = 2, WT_Q4_1 = 3,
	WT_Q5_0 = 6, WT_Q5_1 = 7, WT_Q8_0 = 8,
};

typedef struct wfile_hparams {
	int32_t n_vocab;
	int32_t n_audio_ctx;     /* encoder positions (1500: 30 s) */
	int32_t n_audio_state;   /* encoder width */
	int32_t n_audio_head;
	int32_t n_audio_layer;
	int32_t n_text_ctx;      /* decoder positions (448) */
	int32_t n_text_state;    /* decoder width (== n_audio_state) */
	int32_t n_text_head;
	int32_t n_text_layer;
	int32_t n_mels;          /* 80, or 128 for large-v3 */
	int32_t ftype;           /* as stored, version * 1000 included */
} wfile_hparams;

typedef struct wfile_tensor {
	char name[WFILE_MAX_NAME + 1];
	uint32_t type;           /* enum wfile_type */
	uint32_t n_dims;         /* 1..3 */
	int64_t ne[3];           /* elements per dim, ne[0] fastest; 1 past n_dims */
	int64_t n_elems;
	size_t n_bytes;
	uint64_t offset;         /* of the data, from the start of the file */
	const void *data;        /* in the mapping */
	bool aligned;            /* data % (type's natural alignment) == 0 */
} wfile_tensor;

typedef struct wfile {
	wfile_hparams hp;
	uint32_t wtype;          /* enum wfile_type of the 2-D weight matrices */
	int n_mel, n_fb;
	float *filters;          /* (n_mel, n_fb), an aligned copy */
	int32_t n_tokens;        /* tokens stored (<= n_vocab; the rest are specials) */
	const uint8_t **tok;     /* tok[i]: n_tokens pointers into the mapping */
	uint32_t *tok_len;       /* their lengths */
	int n_tensors;
	wfile_tensor *tensors;   /* in file order */
	const uint8_t *base;     /* the whole file */
	size_t size;
	bool mapped;             /* base is an mmap (else caller's memory) */
} wfile;

/* Maps and checks path. Caller owns *ret (wfile_close). */
int wfile_open(const char *path, wfile **ret, char *err, size_t err_len);
/* The same checks over caller memory (which must outlive the result). */
int wfile_open_mem(const void *data, size_t size, wfile **ret, char *err, size_t err_len);
void wfile_close(wfile *f);          /* accepts NULL */

const wfile_tensor *wfile_tensor_get(const wfile *f, const char *name);
/* Bytes per block and values per block of a type (0 when unknown). */
size_t wfile_type_block_bytes(uint32_t type);
int wfile_type_block_elems(uint32_t type);
const char *wfile_type_name(uint32_t type);   /* "Q5_1", ...; NULL if unknown */

#endif
