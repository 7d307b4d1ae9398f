/*
 * quant.h - ggml tensor types: block formats, dequantisation, dot kernels.
 *
 * The weight types a GGUF file may hold here are F32, F16, BF16, Q8_0,
 * Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL and IQ4_XS
 * (the ones llama.cpp's quantize writes for the common presets, including
 * its fallbacks for rows that are not whole 256-blocks, e.g. Qwen2.5-0.5B's
 * 896: Q4_K->Q5_0, Q5_K->Q5_1, Q6_K->Q8_0, Q2_K/Q3_K/IQ4_XS->IQ4_NL), with
 * ggml's exact block layouts (so the bytes of a mmap'd tensor are used as
 * they are). A matrix-vector product works as ggml does: the activation row
 * is first quantised to the weight type's "vec type" (Q8_0 for the 32-value
 * types, Q8_K for the 256-value ones, F32 for the float types) and then each
 * weight row is dotted with it by an integer kernel. (ggml dots Q4_1/Q5_1
 * with Q8_1, which carries the activation sums; here they use Q8_0 and the
 * kernel sums the activation bytes itself.)
 *
 * Kernels exist in a portable C version and an AVX2/FMA version; the best
 * one is chosen at run time (__builtin_cpu_supports). Both are reachable
 * through quant_dot_get() so tests can compare them.
 *
 * Invariants: rows hold a whole number of blocks (n % quant_block_elems()
 * == 0). All functions are pure and thread-safe; nothing allocates.
 *
 *     uint8_t act[quant_row_bytes(quant_vec_type(t), n)];
 *     quant_quantize_row(quant_vec_type(t), x, act, n);
 *     float y = quant_dot_get(t, QUANT_IMPL_BEST)(n, weight_row, act);
 */
#ifndef QUANT_H
#define QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ggml_type numbers as stored in GGUF tensor infos. */
enum quant_type {
	QT_F32 = 0,
	QT_F16 = 1,
	QT_Q4_0 = 2,
	QT_Q4_1 = 3,
	QT_Q5_0 = 6,
	QT_Q5_1 = 7,
	QT_Q8_0 = 8,
	QT_Q2_K = 10,
	QT_Q3_K = 11,
	QT_Q4_K = 12,
	QT_Q5_K = 13,
	QT_Q6_K = 14,
	QT_Q8_K = 15,
	QT_IQ4_NL = 20,
	QT_IQ4_XS = 23,
	QT_BF16 = 30,
	QT_COUNT = 40,    /* bound for ggml type numbers known by name */
	QT_Q8_0U = 100,   /* ours, activations only: Q8_0 with a float scale,
			     unsigned bytes q + 128 and their sum (for the VNNI gemm) */
	QT_Q8_0S = 101,   /* ours, activations only: Q8_0 with a float scale,
			     its bytes, their two 16-value sums and the terms
			     the packed gemms take from them per token */
};

#define QK8_0 32
#define QK4_0 32
#define QK_K 256

/* Block layouts (ggml's, byte for byte). f16 fields are IEEE half bits. */
typedef struct { uint16_t d; int8_t qs[QK8_0]; } block_q8_0;              /* 34 B */
typedef struct { uint16_t d; uint8_t qs[QK4_0 / 2]; } block_q4_0;          /* 18 B */
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[QK4_0 / 2]; } block_q5_0; /* 22 B */
/* Q4_1/Q5_1: value = d * q + m, q unsigned (0..15 / 0..31) */
typedef struct { uint16_t d, m; uint8_t qs[QK4_0 / 2]; } block_q4_1;       /* 20 B */
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[QK4_0 / 2]; } block_q5_1; /* 24 B */
/* IQ4_NL: value = d * iq4nl_values[nibble] (element j in byte j % 16,
 * low nibble for j < 16) */
typedef struct { uint16_t d; uint8_t qs[QK4_0 / 2]; } block_iq4_nl;        /* 18 B */
typedef struct {
	uint8_t scales[QK_K / 16]; /* per 16 values: low nibble scale, high min */
	uint8_t qs[QK_K / 4];      /* 2-bit quants */
	uint16_t d, dmin;          /* super-block scale for scales / mins */
} block_q2_K;                                                              /* 84 B */
typedef struct {
	uint8_t hmask[QK_K / 8];   /* 3rd bit of each quant (set: +0, clear: -4) */
	uint8_t qs[QK_K / 4];      /* low 2 bits */
	uint8_t scales[12];        /* 16 x 6-bit scales, stored + 32 */
	uint16_t d;
} block_q3_K;                                                              /* 110 B */
typedef struct {
	uint16_t d;
	uint16_t scales_h;         /* high 2 bits of the 8 6-bit scales */
	uint8_t scales_l[QK_K / 64];/* low 4 bits, two per byte; scale - 32 */
	uint8_t qs[QK_K / 2];      /* nibbles indexing iq4nl_values, per 32 as IQ4_NL */
} block_iq4_xs;                                                            /* 136 B */
typedef struct {
	uint16_t d, dmin;          /* super-block scale for scales / mins */
	uint8_t scales[12];        /* 8 x (6-bit scale, 6-bit min) */
	uint8_t qs[QK_K / 2];      /* 4-bit quants */
} block_q4_K;                                                              /* 144 B */
typedef struct {
	uint16_t d, dmin;
	uint8_t scales[12];
	uint8_t qh[QK_K / 8];      /* 5th bit of each quant */
	uint8_t qs[QK_K / 2];      /* low 4 bits */
} block_q5_K;                                                              /* 176 B */
typedef struct {
	uint8_t ql[QK_K / 2];      /* low 4 bits */
	uint8_t qh[QK_K / 4];      /* high 2 bits */
	int8_t scales[QK_K / 16];  /* 8-bit scale per 16 values */
	uint16_t d;
} block_q6_K;                                                              /* 210 B */
typedef struct {
	float d;
	int8_t qs[QK_K];
	int16_t bsums[QK_K / 16];  /* sum of qs per 16 values */
} block_q8_K;                                                              /* 292 B */

typedef struct {
	float d;
	uint8_t qs[QK8_0];         /* q + 128 */
	int32_t sum;               /* sum of the 32 q (for the mins of Q4_1 .. Q5_K) */
} block_q8_0u;                                                             /* 40 B */
typedef struct {
	float d;
	int16_t sums[2];           /* the sums of q 0..15 and 16..31 */
	int32_t sum128;            /* -128 * (sums[0] + sums[1]) */
	float dsum;                /* d * (float)(sums[0] + sums[1]) */
	int8_t qs[QK8_0];          /* q, the same values as Q8_0U's */
} block_q8_0s;                                                             /* 48 B */

/* Fills a Q8_0S block's per-token terms from its d and sums: the packed
 * gemms load them instead of computing them at every group of 8 rows
 * (the same values, so the same bits). */
static inline void q8_0s_terms(block_q8_0s *y)
{
	int sum = y->sums[0] + y->sums[1];
	y->sum128 = -128 * sum;
	y->dsum = y->d * (float)sum;
}

typedef enum quant_impl {
	QUANT_IMPL_BEST = 0,       /* AVX2 when the CPU has it, else portable */
	QUANT_IMPL_PORTABLE = 1,
	QUANT_IMPL_AVX2 = 2,       /* NULL from quant_dot_get when unavailable */
} quant_impl;

/* dot(weight row of type t, activation row of quant_vec_type(t)), n values. */
typedef float (*quant_dot_fn)(int n, const void *w, const void *act);

/* A tile of a matrix product: out[t * out_stride + r] = dot(weight row r,
 * activation row t) for r < QUANT_TILE_R, t < QUANT_TILE_T (all rows and
 * tokens present). Weights rows are w_stride bytes apart, activation rows
 * act_stride. Loads every weight block once for all the tile's tokens. */
#define QUANT_TILE_R 2
#define QUANT_TILE_T 4
typedef void (*quant_tile_fn)(int n, const void *w, size_t w_stride, const void *act,
			      size_t act_stride, float *out, size_t out_stride);

/* Prefill product of 8 weight rows with n_tok <= QUANT_GEMM8_TOKENS
 * activation rows in QT_Q8_0U (the packed gemms: QT_Q8_0S):
 * out[t * out_stride + r] for r < 8. */
#define QUANT_GEMM8_TOKENS 16
typedef void (*quant_gemm8_fn)(int n, const void *w, size_t w_stride, const void *act,
			       size_t act_stride, int n_tok, float *out, size_t out_stride);

/* Decode product of one weight row with n_tok <= QUANT_MDOT_T activation
 * rows (vec type, act_stride bytes apart): out[t] for t < n_tok. Each weight
 * block is loaded once for all the tokens. Invariant: a token's result is
 * bit-identical whatever n_tok is and whatever the other tokens are, so a
 * sequence decoded alone and in a batch gets the same numbers. */
#define QUANT_MDOT_T 4
typedef void (*quant_mdot_fn)(int n, const void *w, const void *act, size_t act_stride,
			      int n_tok, float *out);

/* Packed weights for the 8-row gemm: pack8 writes 8 rows (w_stride bytes
 * apart, n values each) as quant_pack8_bytes(type, n) bytes in the layout
 * the packed gemm reads (a group's rows transposed once, at load, instead of
 * at every product). The packed gemm takes a group as w (w_stride unused)
 * and gives per token exactly the bits of quant_gemm8_get(type)'s, and a
 * token's result does not depend on n_tok or the other tokens. Q8_0 (34
 * bytes per 32 values, as the file: the 8 rows' f16 scales, then the
 * values + 128 transposed), and Q4_0 / Q5_0 / IQ4_NL in the same vectors,
 * stored as 4-bit codes (18 bytes per 32 values; Q5_0 22 with a sign bit
 * per value: the file's sizes) the gemm turns back into them in registers,
 * on CPUs with AVX-VNNI or AVX-512 VNNI;
 * Q4_1 / Q5_1, and Q4_K / Q5_K sub-blocks, as 4-bit codes with their
 * scales and mins (Q4_1 20 bytes per 32 values as the file, Q4_K 24
 * instead of 18; the 5-bit types 4 more, for a mask of the values' fifth
 * bits);
 * Q6_K / Q3_K sub-blocks as 4-bit codes (Q6_K: and the 2 high bits of its
 * 6) with their two 16-value integer scales and the super-block's float
 * scale (30 bytes per 32 values instead of 26; Q3_K 22 instead of 14);
 * IQ4_XS sub-blocks as IQ4_NL's codes with float scales (20 bytes per 32
 * values instead of 17); these with AVX-VNNI or AVX-512 VNNI.
 * The weights are held unsigned (Q8_0's, Q4_0's, Q5_0's and the IQ types'
 * values + 128, Q6_K's + 32, Q3_K's + 4; the others' values are >= 0) and
 * multiplied by the activations' signed bytes (QT_Q8_0S): the sum of
 * (w + o) * a is corrected by o * sum(a), from the sums the activation
 * block carries, so the weights need no sums of their own. */
#define QUANT_PACK8_V 16                         /* the values' offset */
#define QUANT_PACK8_Q8_0 (QUANT_PACK8_V + 8 * QK8_0) /* bytes per block of 8 rows */
#define QUANT_PACK8_N4 (QUANT_PACK8_V + 4 * QK8_0)   /* Q4_0 / IQ4_NL: 4-bit codes */
#define QUANT_PACK8_N5 (QUANT_PACK8_N4 + 32)         /* Q5_0: codes and sign masks */
/* In N4 / N5 blocks, the codes are at QUANT_PACK8_V: per 32 bytes, vector
 * c's in the low nibbles and vector c + 4's in the high ones (c = 0..3);
 * N5's 8 sign masks (uint32, bit j = byte j of vector k is negative)
 * follow them. */
#define QUANT_PACK8_N5_MASKS (QUANT_PACK8_V + 4 * QK8_0)
#define QUANT_PACK8_M4 (64 + 4 * QK8_0)          /* Q4_K: 4-bit codes */
#define QUANT_PACK8_M5 (QUANT_PACK8_M4 + 32)     /* Q5_K: and a bit mask */
#define QUANT_PACK8_M4H (32 + 4 * QK8_0)         /* Q4_1: f16 scales, codes */
#define QUANT_PACK8_M5H (QUANT_PACK8_M4H + 32)   /* Q5_1: and a bit mask */
#define QUANT_PACK8_S3 (48 + 4 * QK8_0)          /* Q3_K: 4-bit codes */
#define QUANT_PACK8_S16 (QUANT_PACK8_S3 + 2 * QK8_0) /* Q6_K: and high bits */
/* IQ4_XS sub-blocks: N4's layout with the 8 rows' scales (d * (ls - 32))
 * as floats, the codes at QUANT_PACK8_X4_V. */
#define QUANT_PACK8_X4_V 32
#define QUANT_PACK8_X4 (QUANT_PACK8_X4_V + 4 * QK8_0)
typedef void (*quant_pack8_fn)(int n, const void *w, size_t w_stride, void *dst);

/* True for the weight types listed above (not the activation-only types). */
bool quant_supported(int type);
/* "Q4_K", "F16", ...; "type N" style names are not made: NULL if unknown. */
const char *quant_type_name(int type);
/* Values per block (1 for float types), 0 when unsupported. */
int quant_block_elems(int type);
/* Bytes per block, 0 when unsupported. */
size_t quant_block_bytes(int type);
/* Bytes of a row of n values; 0 when unsupported or n not whole blocks. */
size_t quant_row_bytes(int type, int64_t n);
/* The activation type weights of this type are dotted with. */
int quant_vec_type(int type);

void quant_dequantize_row(int type, const void *src, float *dst, int64_t n);
/* Quantises n floats to type (F32, Q8_0, Q8_K, Q8_0U or Q8_0S); 0 or
 * -EINVAL. */
int quant_quantize_row(int type, const float *src, void *dst, int64_t n);

quant_dot_fn quant_dot_get(int type, quant_impl impl);
/* The tile kernel for type, or NULL when there is none (use the dot). */
quant_tile_fn quant_tile_get(int type, quant_impl impl);
/* The 8-row gemm for type (Q8_0, Q4_0, Q5_0, IQ4_NL with AVX-VNNI or
 * AVX-512 VNNI; Q2_K..Q6_K, IQ4_XS with AVX-VNNI), or NULL. */
quant_gemm8_fn quant_gemm8_get(int type);
/* The decode kernel for type (Q8_0, Q4_0, Q5_0, IQ4_NL, Q4_1, Q5_1, Q4_K,
 * Q5_K, Q6_K, F16 with AVX2), or NULL: then use the dot per token. */
quant_mdot_fn quant_mdot_get(int type);
/* The packed gemm for type and its packer (*ret_pack), or NULL. */
quant_gemm8_fn quant_gemm8_packed_get(int type, quant_pack8_fn *ret_pack);
/* Two packed groups at once where the CPU has 512-bit VNNI (else NULL):
 * w is a group, w_stride the bytes to the next one, and a token's 16
 * results (the first group's rows, then the second's) are out[t*os ..
 * t*os+15], bit-identical to two calls of the packed gemm. */
quant_gemm8_fn quant_gemm16_packed_get(int type);
/* Bytes of one packed group of 8 rows of n values (0: no packed form). */
size_t quant_pack8_bytes(int type, int64_t n);
/* Whether type's packed rows hold Q8_0's int8 values (Q8_0, Q4_0, Q5_0,
 * IQ4_NL): what quant_unpack8_row can give back. */
bool quant_pack8_as_q8_0(int type);
/* Row `lane` (0..7) of a packed group as a Q8_0 row holding exactly its
 * values (dst: quant_row_bytes(QT_Q8_0, n) bytes; for Q8_0 the file's
 * bytes); 0, or -EINVAL (also for Q4_1 / Q5_1, whose values Q8_0 cannot
 * hold: keep their rows). */
int quant_unpack8_row(int type, int64_t n, const void *group, int lane, void *dst);
/* AVX-512 F/BW/VL/VNNI with the OS saving their state (cached). */
bool quant_have_avx512vnni(void);
/* AVX-VNNI (cached; VOXLINE_KERN_NO_AVXVNNI=1 says no, to run the
 * AVX-512-VNNI-only kernels on a CPU that has both). */
bool quant_have_avxvnni(void);
/* Whether the AVX2/FMA kernels can run on this CPU. */
bool quant_have_avx2(void);

/* The 16 values IQ4_NL / IQ4_XS nibbles stand for (ggml's kvalues_iq4nl). */
extern const int8_t iq4nl_values[16];

float quant_f16_to_f32(uint16_t h);
uint16_t quant_f32_to_f16(float f);
float quant_bf16_to_f32(uint16_t h);

/* Kernel tables (internal: quant.c, quant_lowbit.c and quant_avx2.c). */
quant_dot_fn quant_dot_portable(int type);
/* Portable dequantiser / dot of the types of quant_lowbit.c; false / NULL
 * for other types. */
bool quant_lowbit_dequantize(int type, const void *src, float *dst, int64_t n);
quant_dot_fn quant_lowbit_dot(int type);
/* Q3_K's 12 scale bytes -> 16 signed scales (-32..31), in group order. */
void quant_q3_K_scales(const uint8_t packed[12], int8_t out[16]);
quant_dot_fn quant_dot_avx2(int type);
/* AVX-512 BW/VL/VNNI dots of some types (quant_dot_avx512.c), preferred by
 * quant_dot_get(QUANT_IMPL_BEST); NULL for other types or CPUs. */
quant_dot_fn quant_dot_avx512(int type);
quant_tile_fn quant_tile_avx2(int type);
/* Tiles of the quant_lowbit.c types (quant_avx2.c), NULL for others. */
quant_tile_fn quant_tile_lowbit_avx2(int type);
/* VNNI gemms of the quant_lowbit.c types (quant_avx2.c), NULL for others
 * or without AVX-VNNI. */
quant_gemm8_fn quant_gemm8_lowbit_avx2(int type);
/* The VNNI gemms of Q2_K, Q3_K, IQ4_XS, Q4_K, Q5_K and Q6_K
 * (quant_gemm_lowbit_avx2.c), NULL for other types; quant_gemm8_lowbit_avx2
 * returns them. */
quant_gemm8_fn quant_gemm8_kquant_avx2(int type);
quant_gemm8_fn quant_gemm8_avx2(int type);
quant_gemm8_fn quant_gemm8_packed_avx2(int type, quant_pack8_fn *ret_pack);
quant_gemm8_fn quant_gemm16_packed_avx2(int type);
/* quant_avx2.c's packed gemm for Q4_1, Q5_1, Q4_K and Q5_K (AVX-VNNI or
 * AVX-512 VNNI), or NULL; it hands Q6_K and Q3_K to
 * quant_gemm8_packed_s16_avx2. */
quant_gemm8_fn quant_gemm8_packed_min_avx2(int type, quant_pack8_fn *ret_pack);
/* Its two-group form for Q4_1, Q5_1, Q4_K and Q5_K, or NULL; only on a
 * CPU with 512-bit VNNI (quant_gemm16_packed_avx2 checks it). */
quant_gemm8_fn quant_gemm16_packed_min_avx2(int type);
/* quant_gemm_lowbit_avx2.c's packers of Q4_K / Q5_K into the
 * QUANT_PACK8_M4 / _M5 layouts and of IQ4_XS into QUANT_PACK8_X4 (NULL
 * for other types), and its packed gemm and
 * packer for Q6_K / Q3_K (QUANT_PACK8_S16 / _S3), or NULL. */
quant_pack8_fn quant_pack8_k_avx2(int type);
quant_gemm8_fn quant_gemm8_packed_s16_avx2(int type, quant_pack8_fn *ret_pack);
/* quant_mdot_avx2.c's decode kernels (AVX2, AVX-VNNI or AVX-512 by CPU). */
quant_mdot_fn quant_mdot_avx2(int type);
/* 0, or -1 when there is no AVX2 quantiser for type. */
int quant_quantize_avx2(int type, const float *src, void *dst, int64_t n);
/* The portable quantiser (tests compare the two). */
int quant_quantize_row_portable(int type, const float *src, void *dst, int64_t n);

#endif
