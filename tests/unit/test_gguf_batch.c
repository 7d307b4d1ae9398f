/*
 * test_gguf_batch.c - continuous batching in the gguf engine, on a small
 * random-weight model from tests/gguf/mkgguf.py (run from the repository
 * root): generations that run at once give what each gives alone (greedy
 * and seeded), slots never see each other's tokens, a cancel mid-batch
 * ends only its own sequence and frees its slot, and a conversation's next
 * turn runs only its new tokens while other sequences decode; with Gemma 3's
 * sliding-window layers (their KV in rings), a slot's cache is kept only
 * where the rings still hold what the next position reads.
 */
#include "../../services/llm/llm_engine.h"
#include "kern/quant.h"
#include "vx_test.h"
#include "vx_time.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern const llm_engine_ops llm_engine_gguf;

#define N_CONV 4

static char dir[] = "/tmp/test_gguf_batch.XXXXXX";
static char model_path[256], gemma_path[256];

typedef struct sink { char text[8192]; size_t len; atomic_int pieces; int stop_after; } sink;

static int on_piece(void *user, llm_piece_kind kind, const char *text, size_t len)
{
	sink *s = user;
	(void)kind;
	if (s->len + len < sizeof(s->text)) {
		memcpy(s->text + s->len, text, len);
		s->len += len;
		s->text[s->len] = 0;
	}
	int n = atomic_fetch_add(&s->pieces, 1) + 1;
	return s->stop_after && n >= s->stop_after;
}

static void *open_path(const char *path, int slots)
{
	llm_config cfg = { .model = path, .threads = 2, .ctx = 512, .slots = slots };
	void *eng = NULL;
	if (llm_engine_gguf.create(&cfg, &eng) < 0)
		return NULL;
	char detail[160];
	for (int i = 0; i < 500 && llm_engine_gguf.ready(eng, detail, sizeof(detail)) == -EAGAIN; i++)
		usleep(10000);
	return eng;
}

static void *open_ready(int slots) { return open_path(model_path, slots); }

/* one generation on its own thread */
typedef struct run {
	void *eng;
	llm_message msgs[4];
	llm_request req;
	atomic_bool cancel;
	sink out;
	llm_result res;
	int rc;
	double ms;                 /* how long generate() took */
	pthread_t th;
} run;

static const char *const users[N_CONV] = {
	"Hello there, how are you today?",
	"What is the capital of France, and why is it that one?",
	"Write two words.",
	"Count from one to five please, slowly and carefully, with commas.",
};

static void run_init(run *r, void *eng, int i, int max_tokens, double temperature, uint64_t seed)
{
	memset(r, 0, sizeof(*r));
	r->eng = eng;
	r->msgs[0] = (llm_message){ "system", "You are terse." };
	r->msgs[1] = (llm_message){ "user", users[i % N_CONV] };
	r->req = (llm_request){ .messages = r->msgs, .n_messages = 2, .temperature = temperature,
				.top_p = 1, .repeat_penalty = 1, .max_tokens = max_tokens,
				.has_seed = true, .seed = seed };
	r->req.think = 0;
}

static void *run_main(void *arg)
{
	run *r = arg;
	double t0 = vx_now_ms();
	r->rc = llm_engine_gguf.generate(r->eng, &r->req, &r->cancel, on_piece, &r->out, &r->res);
	r->ms = vx_now_ms() - t0;
	return NULL;
}

static void run_start(run *r) { pthread_create(&r->th, NULL, run_main, r); }
static void run_join(run *r) { pthread_join(r->th, NULL); }

VX_TEST(setup_makes_the_model)
{
	VX_CHECK(mkdtemp(dir) != NULL);
	snprintf(model_path, sizeof(model_path), "%s/qwen.gguf", dir);
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 tests/gguf/mkgguf.py %s --arch qwen2 --type Q8_0 --seed 11",
		 model_path);
	VX_CHECK_INT(system(cmd), 0);
	snprintf(gemma_path, sizeof(gemma_path), "%s/gemma3.gguf", dir);
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 tests/gguf/mkgguf.py %s --arch gemma3 "
		 "--type Q8_0 --seed 5", gemma_path);
	VX_CHECK_INT(system(cmd), 0);
}

/* Each conversation alone (one slot: strictly one after another), then
 * all at once on four slots: the same text, token for token. */
static void alone_then_together(double temperature)
{
	static run alone[N_CONV], together[N_CONV];
	void *eng = open_ready(1);
	VX_CHECK(eng != NULL);
	if (!eng)
		return;
	for (int i = 0; i < N_CONV; i++) {
		run_init(&alone[i], eng, i, 24, temperature, 100 + (uint64_t)i);
		run_main(&alone[i]);
		VX_CHECK_INT(alone[i].rc, 0);
		VX_CHECK(alone[i].res.completion_tokens > 0);
	}
	llm_engine_gguf.destroy(eng);
	VX_CHECK((eng = open_ready(4)) != NULL);
	if (!eng)
		return;
	for (int i = 0; i < N_CONV; i++) {
		run_init(&together[i], eng, i, 24, temperature, 100 + (uint64_t)i);
		run_start(&together[i]);
	}
	for (int i = 0; i < N_CONV; i++) {
		run_join(&together[i]);
		VX_CHECK_INT(together[i].rc, 0);
		VX_CHECK_STR(together[i].out.text, alone[i].out.text);
		VX_CHECK_INT(together[i].res.completion_tokens, alone[i].res.completion_tokens);
		VX_CHECK_STR(together[i].res.finish_reason, alone[i].res.finish_reason);
	}
	llm_engine_gguf.destroy(eng);
}

VX_TEST(batched_and_single_runs_give_the_same_greedy_tokens)
{
	alone_then_together(0);
}

VX_TEST(interleaved_conversations_with_their_own_seeds_reproduce_single_runs)
{
	alone_then_together(1.0);
}

/* A seed with which conversation i's sampled reply (up to 400 tokens)
 * runs at least n tokens before an end-of-generation token (this model
 * samples one every ~70 tokens), so a cancel cannot come too late. */
static uint64_t long_seed(void *eng, int i, int n)
{
	static run r;
	for (uint64_t seed = 7; seed < 100; seed++) {
		run_init(&r, eng, i, 400, 1.0, seed);
		run_main(&r);
		if (r.rc == 0 && r.res.completion_tokens >= n)
			return seed;
	}
	VX_CHECK(!"no seed gives a long enough reply");
	return 7;
}

/* Three long generations on two slots: the first is cancelled after a few
 * tokens; it ends at once, the queued third takes its slot, and the other
 * two still give exactly what they give alone. */
VX_TEST(cancel_mid_batch_ends_only_that_sequence_and_frees_its_slot)
{
	static run alone[3], r[3];
	void *eng = open_ready(2);
	VX_CHECK(eng != NULL);
	if (!eng)
		return;
	uint64_t seed0 = long_seed(eng, 0, 150);
	for (int i = 1; i < 3; i++) {
		run_init(&alone[i], eng, i, 40, 1.0, 7 + (uint64_t)i);
		run_main(&alone[i]);
		VX_CHECK_INT(alone[i].rc, 0);
	}
	for (int i = 0; i < 3; i++) {
		run_init(&r[i], eng, i, i == 0 ? 400 : 40, 1.0, i == 0 ? seed0 : 7 + (uint64_t)i);
		run_start(&r[i]);
		for (int k = 0; i == 0 && k < 10000 && atomic_load(&r[0].out.pieces) < 1; k++)
			usleep(1000);
	}
	for (int i = 0; i < 10000 && atomic_load(&r[0].out.pieces) < 3; i++)
		usleep(1000);
	VX_CHECK(atomic_load(&r[0].out.pieces) >= 3);
	double t_cancel = vx_now_ms();
	atomic_store(&r[0].cancel, true);
	run_join(&r[0]);
	double ended_after = vx_now_ms() - t_cancel;
	VX_CHECK_INT(r[0].rc, -ECANCELED);
	VX_CHECK_STR(r[0].res.finish_reason, "cancelled");
	VX_CHECK(r[0].res.completion_tokens < 400);
	VX_CHECK(ended_after < 5000);   /* one step, generously */
	for (int i = 1; i < 3; i++) {
		run_join(&r[i]);
		VX_CHECK_INT(r[i].rc, 0);
		VX_CHECK_STR(r[i].out.text, alone[i].out.text);
	}
	/* a client that stops reading (callback says stop) mid-batch too */
	run_init(&r[0], eng, 0, 400, 1.0, seed0);
	r[0].out.stop_after = 2;
	run_init(&r[1], eng, 1, 40, 1.0, 8);
	run_start(&r[0]);
	run_start(&r[1]);
	run_join(&r[0]);
	run_join(&r[1]);
	VX_CHECK_INT(r[0].rc, -ECANCELED);
	VX_CHECK_INT(atomic_load(&r[0].out.pieces), 2);
	VX_CHECK_INT(r[1].rc, 0);
	VX_CHECK_STR(r[1].out.text, alone[1].out.text);
	llm_engine_gguf.destroy(eng);
}

/* A conversation's second turn reuses its first turn's K/V (prompt and
 * reply) from its slot while three other generations run and another
 * slot is free: only the new tokens are run. */
VX_TEST(next_turn_prefills_only_its_new_tokens_while_others_run)
{
	static run bg[3], turn;
	void *eng = open_ready(5);
	VX_CHECK(eng != NULL);
	if (!eng)
		return;
	run_init(&turn, eng, 3, 12, 0, 1);
	run_main(&turn);
	VX_CHECK_INT(turn.rc, 0);
	llm_result first = turn.res;
	char reply[8192];
	snprintf(reply, sizeof(reply), "%s", turn.out.text);
	VX_CHECK_INT(first.prompt_evaluated, first.prompt_tokens);
	for (int i = 0; i < 3; i++) {
		run_init(&bg[i], eng, i, 60, 1.0, 50 + (uint64_t)i);
		run_start(&bg[i]);
	}
	for (int k = 0; k < 10000 && atomic_load(&bg[0].out.pieces) < 1; k++)
		usleep(1000);
	run_init(&turn, eng, 3, 12, 0, 1);
	turn.msgs[2] = (llm_message){ "assistant", reply };
	turn.msgs[3] = (llm_message){ "user", "And then?" };
	turn.req.n_messages = 4;
	run_main(&turn);
	VX_CHECK_INT(turn.rc, 0);
	int cached = turn.res.prompt_tokens - turn.res.prompt_evaluated;
	printf("  turn 1: %d prompt tokens run; turn 2: %d of %d run, %d cached\n",
	       first.prompt_evaluated, turn.res.prompt_evaluated, turn.res.prompt_tokens, cached);
	VX_CHECK(cached >= first.prompt_tokens - 1);
	VX_CHECK(turn.res.prompt_evaluated < turn.res.prompt_tokens - first.prompt_tokens + 8);
	for (int i = 0; i < 3; i++) {
		run_join(&bg[i]);
		VX_CHECK_INT(bg[i].rc, 0);
	}
	llm_engine_gguf.destroy(eng);
}

/* Gemma 3's local layers keep a ring of their 16-position window and a
 * batch (96 positions), not the 512-position context. On one slot: a
 * conversation past 96 positions, then a request that shares only its
 * system prompt (the rings have overwritten that window: all of it runs
 * again), then the first conversation's next turn (its window is the
 * ring's latest: only the new tokens run); each gives what it gives on a
 * fresh engine. */
VX_TEST(sliding_window_rings_keep_a_prefix_only_while_they_hold_its_window)
{
	static run first, other, next, fresh;
	void *eng = open_path(gemma_path, 1);
	VX_CHECK(eng != NULL);
	if (!eng)
		return;
	static const char *const story = "Tell me about the lighthouse keeper who kept "
		"a log of every ship, every storm and every gull for forty years, and "
		"what the log said on the night the lamp went out, and who came to "
		"relight it before the fishing boats were due back in the harbour.";
	run_init(&first, eng, 3, 12, 0, 1);
	first.msgs[1].content = story;
	run_main(&first);
	VX_CHECK_INT(first.rc, 0);
	VX_CHECK(first.res.prompt_tokens > 96);
	char reply[8192];
	snprintf(reply, sizeof(reply), "%s", first.out.text);
	run_init(&other, eng, 1, 12, 0, 1);
	run_main(&other);
	VX_CHECK_INT(other.rc, 0);
	VX_CHECK_INT(other.res.prompt_evaluated, other.res.prompt_tokens);
	run_init(&next, eng, 3, 12, 0, 1);
	next.msgs[1].content = story;
	next.msgs[2] = (llm_message){ "assistant", reply };
	next.msgs[3] = (llm_message){ "user", "And then?" };
	next.req.n_messages = 4;
	run_main(&next);   /* the slot now holds `other`: all of it runs */
	VX_CHECK_INT(next.rc, 0);
	run_init(&fresh, eng, 3, 12, 0, 1);
	fresh.msgs[1].content = story;
	fresh.msgs[2] = next.msgs[2];
	fresh.msgs[3] = (llm_message){ "user", "And then? Go on." };
	fresh.req.n_messages = 4;
	run_main(&fresh);   /* continues `next`'s history: a prefix past the ring */
	VX_CHECK_INT(fresh.rc, 0);
	int cached = fresh.res.prompt_tokens - fresh.res.prompt_evaluated;
	printf("  other: %d of %d run; next turn after the reply: %d of %d run\n",
	       other.res.prompt_evaluated, other.res.prompt_tokens, fresh.res.prompt_evaluated,
	       fresh.res.prompt_tokens);
	VX_CHECK(cached > 96);
	llm_engine_gguf.destroy(eng);
	/* the same requests, each on a fresh engine */
	static run want[3];
	run *got[3] = { &other, &next, &fresh };
	for (int i = 0; i < 3; i++) {
		VX_CHECK((eng = open_path(gemma_path, 1)) != NULL);
		if (!eng)
			return;
		want[i] = *got[i];
		memset(&want[i].out, 0, sizeof(want[i].out));
		want[i].eng = eng;
		want[i].req.messages = want[i].msgs;
		run_main(&want[i]);
		VX_CHECK_INT(want[i].rc, 0);
		VX_CHECK_INT(want[i].res.prompt_evaluated, want[i].res.prompt_tokens);
		VX_CHECK_STR(got[i]->out.text, want[i].out.text);
		llm_engine_gguf.destroy(eng);
	}
}

/* Random bytes for a row of weight type `type` with n values, its f16
 * scale fields set to small finite values (F16 rows: finite values). */
static void random_row(int type, int n, uint8_t *row, unsigned *seed)
{
	size_t bytes = quant_row_bytes(type, n), bb = quant_block_bytes(type);
	for (size_t i = 0; i < bytes; i++)
		row[i] = (uint8_t)rand_r(seed);
	for (size_t b = 0; b < bytes / bb; b++) {
		uint8_t *blk = row + b * bb;
		uint16_t h[2] = { quant_f32_to_f16(0.01f + (float)(rand_r(seed) % 100) * 1e-4f),
				  quant_f32_to_f16((float)(rand_r(seed) % 100) * 1e-4f) };
		switch (type) {
		case QT_F16: {
			uint16_t v = quant_f32_to_f16((float)(rand_r(seed) % 2001 - 1000) * 1e-3f);
			memcpy(blk, &v, 2);
			break;
		}
		case QT_Q6_K:
			memcpy(blk + offsetof(block_q6_K, d), h, 2);
			break;
		case QT_Q3_K:
			memcpy(blk + offsetof(block_q3_K, d), h, 2);
			break;
		case QT_Q4_1: case QT_Q5_1: case QT_Q4_K: case QT_Q5_K:
			memcpy(blk, h, 4);   /* d, then m / dmin */
			break;
		default:
			memcpy(blk, h, 2);
			break;
		}
	}
}

/* The decode kernel (one weight row, up to QUANT_MDOT_T tokens) gives each
 * token the same bits whatever company it has (alone, first, last, with
 * 1-3 others), and the product of the dequantised rows within rounding. */
VX_TEST(decode_kernel_gives_each_token_the_same_bits_in_any_company)
{
	static const int types[] = { QT_Q8_0, QT_Q4_0, QT_Q5_0, QT_IQ4_NL, QT_Q4_1, QT_Q5_1,
				     QT_Q4_K, QT_Q5_K, QT_Q6_K, QT_F16 };
	enum { N = 3 * 256 + 32 * 0, NF16 = 3 * 256 + 13, T = QUANT_MDOT_T };
	unsigned seed = 7;
	int covered = 0;
	for (size_t k = 0; k < sizeof(types) / sizeof(types[0]); k++) {
		int ty = types[k], vt = quant_vec_type(ty);
		quant_mdot_fn md = quant_mdot_get(ty);
		if (!md)
			continue;      /* no AVX2: the engine takes the dot per token */
		covered++;
		/* 32-value types: an odd block count too (tails of the 2-block loop) */
		int ns[2] = { N, ty == QT_F16 ? NF16 : quant_block_elems(ty) == 32 ? N - 32 : N };
		for (int ni = 0; ni < 2; ni++) {
			int n = ns[ni];
			size_t ab = quant_row_bytes(vt, n);
			uint8_t *w = malloc(quant_row_bytes(ty, n)), *act = malloc(ab * T);
			float *x = malloc(sizeof(float) * (size_t)n * (T + 1));
			VX_CHECK(w && act && x);
			if (!w || !act || !x)
				return;
			random_row(ty, n, w, &seed);
			for (int i = 0; i < n * T; i++)
				x[i] = (float)(rand_r(&seed) % 2001 - 1000) * 1e-3f;
			for (int t = 0; t < T; t++)
				VX_CHECK_INT(quant_quantize_row(vt, x + (size_t)t * n, act + t * ab, n), 0);
			float all[T], one[T], part[T];
			md(n, w, act, ab, T, all);
			for (int t = 0; t < T; t++) {
				md(n, w, act + t * ab, ab, 1, one + t);
				VX_CHECK(memcmp(&one[t], &all[t], sizeof(float)) == 0);
			}
			for (int nt = 2; nt < T; nt++)
				for (int t0 = 0; t0 + nt <= T; t0++) {
					md(n, w, act + t0 * ab, ab, nt, part);
					VX_CHECK(memcmp(part, all + t0, sizeof(float) * (size_t)nt) == 0);
				}
			/* against dequantise-then-multiply (activations dequantised too) */
			float *wf = x + (size_t)n * T, *af = malloc(sizeof(float) * (size_t)n);
			VX_CHECK(af != NULL);
			quant_dequantize_row(ty, w, wf, n);
			for (int t = 0; t < T && af; t++) {
				quant_dequantize_row(vt, act + t * ab, af, n);
				double ref = 0, mag = 0;
				for (int i = 0; i < n; i++) {
					ref += (double)wf[i] * af[i];
					mag += fabs((double)wf[i] * af[i]);
				}
				if (fabs(all[t] - ref) > 1e-4 * mag + 1e-6)
					printf("  %s n=%d token %d: %g vs %g\n", quant_type_name(ty), n, t,
					       all[t], ref);
				VX_CHECK(fabs(all[t] - ref) <= 1e-4 * mag + 1e-6);
			}
			free(af);
			free(x);
			free(act);
			free(w);
		}
	}
	if (quant_have_avx2())
		VX_CHECK_INT(covered, (int)(sizeof(types) / sizeof(types[0])));
}

/* The packed gemm (rows packed at load, see quant.h's QUANT_PACK8_*: Q8_0
 * as bytes + 128, Q4_0 / Q5_0 / IQ4_NL / IQ4_XS / Q4_1 / Q5_1 / Q4_K /
 * Q5_K as 4-bit codes with their scales (and mins), Q6_K / Q3_K as codes
 * (and high bits) with their 16-value scales; activations in Q8_0S) gives each token the bits of the 8-row gemm on
 * the file's rows (Q8_0U activations of the same values),
 * alone or with up to 15 others, and an int8-packed row unpacks to a Q8_0
 * row of the same values (for Q8_0 the file's bytes). */
static void check_packed_type(int type)
{
	quant_pack8_fn pack = NULL;
	quant_gemm8_fn gp = quant_gemm8_packed_get(type, &pack);
	quant_gemm8_fn g8 = quant_gemm8_get(type);
	VX_CHECK(quant_pack8_bytes(type, QK_K) > 0);
	if (!gp) {
		printf("  no AVX-VNNI: %s is not packed, nothing to compare\n", quant_type_name(type));
		return;
	}
	VX_CHECK(pack != NULL);
	enum { T = QUANT_GEMM8_TOKENS };
	const int N = quant_block_elems(type) == QK_K ? 4 * QK_K : 29 * 32;
	/* the packed gemm's activations (Q8_0S) and the gemm8's (Q8_0U) hold
	 * the same values */
	const int pt = QT_Q8_0S;
	size_t rb = quant_row_bytes(type, N), ab = quant_row_bytes(pt, N);
	size_t ub = quant_row_bytes(QT_Q8_0U, N);
	size_t pb = quant_pack8_bytes(type, N), qb = quant_row_bytes(QT_Q8_0, N);
	uint8_t *w = malloc(8 * rb), *p = malloc(pb), *act = malloc(T * ab), *row = malloc(qb);
	uint8_t *actu = malloc(T * ub);
	float *x = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * N);
	float *af = malloc(sizeof(float) * N);
	static float want[T * 8], got[T * 8];
	VX_CHECK(w && p && act && actu && row && x && y && af);
	if (!w || !p || !act || !actu || !row || !x || !y || !af)
		return;
	unsigned seed = 3;
	for (int r = 0; r < 8; r++)
		random_row(type, N, w + r * rb, &seed);
	for (int t = 0; t < T; t++) {
		for (int i = 0; i < N; i++)
			x[i] = (float)(rand_r(&seed) % 2001 - 1000) * 1e-3f;
		VX_CHECK_INT(quant_quantize_row(pt, x, act + t * ab, N), 0);
		VX_CHECK_INT(quant_quantize_row(QT_Q8_0U, x, actu + t * ub, N), 0);
	}
	pack(N, w, rb, p);
	for (int r = 0; r < 8 && quant_pack8_as_q8_0(type); r++) {
		VX_CHECK_INT(quant_unpack8_row(type, N, p, r, row), 0);
		if (type == QT_Q8_0)
			VX_CHECK(memcmp(row, w + r * rb, rb) == 0);
		quant_dequantize_row(type, w + r * rb, x, N);
		quant_dequantize_row(QT_Q8_0, row, y, N);
		VX_CHECK(memcmp(x, y, sizeof(float) * N) == 0);
	}
	gp(N, p, 0, act, ab, T, got, 8);
	if (g8) {
		g8(N, w, rb, actu, ub, T, want, 8);
		VX_CHECK(memcmp(got, want, sizeof(want)) == 0);
	} else {   /* the type has no 8-row gemm on this CPU: a token alone is the reference */
		for (int t = 0; t < T; t++)
			gp(N, p, 0, act + t * ab, ab, 1, want + t * 8, 8);
		VX_CHECK(memcmp(got, want, sizeof(want)) == 0);
	}
	/* and the product of the dequantised rows and activations */
	for (int r = 0; r < 8; r++) {
		quant_dequantize_row(type, w + r * rb, x, N);
		for (int t = 0; t < T; t++) {
			quant_dequantize_row(pt, act + t * ab, af, N);
			double ref = 0, mag = 0;
			for (int i = 0; i < N; i++) {
				double v = (double)x[i] * af[i];
				ref += v;
				mag += fabs(v);
			}
			VX_CHECK(fabs(got[t * 8 + r] - ref) <= 1e-5 * mag + 1e-6);
		}
	}
	for (int nt = 1; nt < T; nt++)
		for (int t0 = 0; t0 + nt <= T; t0 += nt) {
			gp(N, p, 0, act + t0 * ab, ab, nt, got, 8);
			VX_CHECK(memcmp(got, want + t0 * 8, sizeof(float) * 8 * (size_t)nt) == 0);
		}
	/* two groups at once (512-bit VNNI): this group, then one of 8 other
	 * rows; each token's 16 results are the two gemm8 results */
	quant_gemm8_fn g16 = quant_gemm16_packed_get(type);
	uint8_t *p2 = malloc(2 * pb), *w2 = malloc(8 * rb);
	static float want2[T * 8], got16[T * 16];
	if (g16 && p2 && w2) {
		for (int r = 0; r < 8; r++)
			random_row(type, N, w2 + r * rb, &seed);
		memcpy(p2, p, pb);
		pack(N, w2, rb, p2 + pb);
		if (g8)
			g8(N, w2, rb, actu, ub, T, want2, 8);
		else
			gp(N, p2 + pb, 0, act, ab, T, want2, 8);
		for (int nt = 1; nt <= T; nt++) {
			g16(N, p2, pb, act, ab, nt, got16, 16);
			for (int t = 0; t < nt; t++)
				VX_CHECK(memcmp(got16 + t * 16, want + t * 8, 32) == 0 &&
					 memcmp(got16 + t * 16 + 8, want2 + t * 8, 32) == 0);
		}
	}
	free(w2);
	free(p2);
	free(af);
	free(actu);
	free(y);
	free(x);
	free(row);
	free(act);
	free(p);
	free(w);
}

static void check_packed_types(void)
{
	int types[] = { QT_Q8_0, QT_Q4_0, QT_Q5_0, QT_IQ4_NL, QT_Q4_1, QT_Q5_1,
			QT_Q4_K, QT_Q5_K, QT_Q6_K, QT_Q3_K, QT_IQ4_XS };
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		check_packed_type(types[i]);
	VX_CHECK(quant_pack8_bytes(QT_Q2_K, 256) == 0);
	VX_CHECK(quant_pack8_bytes(QT_Q4_K, 128) == 0);   /* not whole super-blocks */
	VX_CHECK(!quant_pack8_as_q8_0(QT_Q4_1) && !quant_pack8_as_q8_0(QT_Q5_1) &&
		 !quant_pack8_as_q8_0(QT_Q4_K) && !quant_pack8_as_q8_0(QT_Q6_K));
}

VX_TEST(packed_gemm_gives_each_token_the_bits_of_the_gemm8_in_any_company)
{
	check_packed_types();
}

/* CPUs with AVX-512 VNNI but not AVX-VNNI (Ice Lake, Cascade Lake, Zen 4)
 * run the EVEX forms of the gemm8 and the packed gemm: checked in a child
 * started with VOXLINE_KERN_NO_AVXVNNI=1 (the choice is made once per
 * process). On a CPU without AVX-512 VNNI the child finds no gemm and
 * says so, as above. */
VX_TEST(packed_gemm_on_avx512_vnni_only_cpus)
{
	VX_CHECK(vx_test_rerun("VOXLINE_KERN_NO_AVXVNNI", "--packed-only"));
}

VX_TEST(cleanup_removes_the_model)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	VX_CHECK_INT(system(cmd), 0);
}

#define CASES setup_makes_the_model, batched_and_single_runs_give_the_same_greedy_tokens, \
	interleaved_conversations_with_their_own_seeds_reproduce_single_runs, \
	cancel_mid_batch_ends_only_that_sequence_and_frees_its_slot, \
	next_turn_prefills_only_its_new_tokens_while_others_run, \
	sliding_window_rings_keep_a_prefix_only_while_they_hold_its_window, \
	decode_kernel_gives_each_token_the_same_bits_in_any_company, \
	packed_gemm_gives_each_token_the_bits_of_the_gemm8_in_any_company, \
	packed_gemm_on_avx512_vnni_only_cpus, cleanup_removes_the_model
#define NAMES_(...) #__VA_ARGS__
#define NAMES(...) NAMES_(__VA_ARGS__)

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--packed-only")) {
		check_packed_types();
		return vx_test_case_failed;
	}
	vx_test_fn fns[] = { CASES };
	return vx_test_run(NAMES(CASES), fns, (int)(sizeof fns / sizeof *fns));
}
