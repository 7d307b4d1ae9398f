/*
 * test_gguf_engine.c - the gguf engine end to end on small random-weight
 * models written by tests/gguf/mkgguf.py (run from the repository root):
 * load, readiness, greedy determinism with and without the KV prefix
 * cache, seeded sampling, cancel, context overflow, bad files.
 */
#include "../../services/llm/llm_engine.h"
#include "vx_test.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

extern const llm_engine_ops llm_engine_gguf;

static char dir[] = "/tmp/test_gguf_engine.XXXXXX";
static char qwen_path[256], llama_path[256], qwen3_path[256];

typedef struct sink { char text[8192]; size_t len; int pieces; int stop_after; } sink;

static int on_piece(void *user, llm_piece_kind kind, const char *text, size_t len)
{
	sink *s = user;
	(void)kind;
	if (s->len + len < sizeof(s->text)) {
		memcpy(s->text + s->len, text, len);
		s->len += len;
		s->text[s->len] = 0;
	}
	s->pieces++;
	return s->stop_after && s->pieces >= s->stop_after;
}

static int make_model(const char *path, const char *args)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 tests/gguf/mkgguf.py %s %s", path, args);
	return system(cmd);
}

static void *open_ready(const char *path, int ctx)
{
	llm_config cfg = { .model = path, .threads = 2, .ctx = ctx };
	void *eng = NULL;
	if (llm_engine_gguf.create(&cfg, &eng) < 0)
		return NULL;
	char detail[160];
	for (int i = 0; i < 500 && llm_engine_gguf.ready(eng, detail, sizeof(detail)) == -EAGAIN; i++)
		usleep(10000);
	return eng;
}

/* long enough (> 2 * MODEL_BATCH tokens) that a repeated call reuses
 * cached batches of the prompt */
static const llm_message chat[] = {
	{ "system", "You are terse. You answer in one short sentence, never more. You "
		    "do not use lists, tables or headings. You never apologise. You "
		    "prefer plain words to jargon, numbers to adjectives, and you say "
		    "so when you do not know something instead of guessing at it." },
	{ "user", "Hello there, how are you today?" },
};

static llm_request greedy_req(int max_tokens)
{
	llm_request r = { .messages = chat, .n_messages = 2, .temperature = 0, .top_p = 1,
			  .repeat_penalty = 1, .max_tokens = max_tokens };
	return r;
}

VX_TEST(setup_makes_models)
{
	VX_CHECK(mkdtemp(dir) != NULL);
	snprintf(qwen_path, sizeof(qwen_path), "%s/qwen.gguf", dir);
	snprintf(llama_path, sizeof(llama_path), "%s/llama.gguf", dir);
	VX_CHECK_INT(make_model(qwen_path, "--arch qwen2 --type Q8_0"), 0);
	VX_CHECK_INT(make_model(llama_path, "--arch llama --type Q4_K_M --seed 3"), 0);
	snprintf(qwen3_path, sizeof(qwen3_path), "%s/qwen3.gguf", dir);
	VX_CHECK_INT(make_model(qwen3_path, "--arch qwen3 --type Q8_0 --seed 5"), 0);
}

VX_TEST(create_fails_on_missing_and_bad_files)
{
	void *eng = NULL;
	llm_config cfg = { .model = "/nonexistent/x.gguf", .threads = 1 };
	VX_CHECK_INT(llm_engine_gguf.create(&cfg, &eng), -ENOENT);
	char bad[300];
	snprintf(bad, sizeof(bad), "%s/bad.gguf", dir);
	FILE *f = fopen(bad, "w");
	fputs("GGUF but not really a model file, just text long enough", f);
	fclose(f);
	cfg.model = bad;
	VX_CHECK_INT(llm_engine_gguf.create(&cfg, &eng), -EINVAL);
}

VX_TEST(ready_after_warm_up_and_lists_the_model)
{
	void *eng = open_ready(qwen_path, 0);
	VX_CHECK(eng != NULL);
	if (!eng)
		return;
	char detail[160];
	VX_CHECK_INT(llm_engine_gguf.ready(eng, detail, sizeof(detail)), 0);
	llm_model_info mi;
	VX_CHECK_INT(llm_engine_gguf.models(eng, &mi, 1), 1);
	VX_CHECK_STR(mi.id, "qwen");
	llm_engine_gguf.destroy(eng);
}

VX_TEST(greedy_is_deterministic_with_and_without_prefix_cache)
{
	const char *paths[] = { qwen_path, llama_path };
	for (int p = 0; p < 2; p++) {
		void *eng = open_ready(paths[p], 0);
		VX_CHECK(eng != NULL);
		if (!eng)
			return;
		llm_request req = greedy_req(12);
		sink a = { 0 }, b = { 0 }, c = { 0 };
		llm_result ra, rb, rc;
		VX_CHECK_INT(llm_engine_gguf.generate(eng, &req, NULL, on_piece, &a, &ra), 0);
		VX_CHECK(ra.prompt_tokens > 128);
		VX_CHECK(a.len > 0);
		printf("  %s: %d+%d tokens: \"%s\"\n", paths[p], ra.prompt_tokens, ra.completion_tokens, a.text);
		VX_CHECK(ra.completion_tokens >= 1 && ra.completion_tokens <= 12);
		VX_CHECK(!strcmp(ra.finish_reason, "length") || !strcmp(ra.finish_reason, "stop"));
		/* second call: the prompt's K/V are reused from the cache */
		VX_CHECK_INT(llm_engine_gguf.generate(eng, &req, NULL, on_piece, &b, &rb), 0);
		VX_CHECK_STR(b.text, a.text);
		VX_CHECK_INT(rb.completion_tokens, ra.completion_tokens);
		llm_engine_gguf.destroy(eng);
		/* a fresh engine (empty cache) agrees too */
		eng = open_ready(paths[p], 0);
		VX_CHECK_INT(llm_engine_gguf.generate(eng, &req, NULL, on_piece, &c, &rc), 0);
		VX_CHECK_STR(c.text, a.text);
		llm_engine_gguf.destroy(eng);
	}
}

VX_TEST(seeded_sampling_repeats_and_seeds_differ)
{
	void *eng = open_ready(qwen_path, 0);
	VX_CHECK(eng != NULL);
	if (!eng)
		return;
	llm_request req = greedy_req(24);
	req.temperature = 1.5;
	req.has_seed = true;
	sink out[3] = { { .len = 0 } };
	llm_result r;
	for (int i = 0; i < 3; i++) {
		req.seed = i < 2 ? 42 : 7;
		VX_CHECK_INT(llm_engine_gguf.generate(eng, &req, NULL, on_piece, &out[i], &r), 0);
	}
	VX_CHECK_STR(out[1].text, out[0].text);
	VX_CHECK(strcmp(out[2].text, out[0].text) != 0);
	llm_engine_gguf.destroy(eng);
}

VX_TEST(cancel_flag_and_callback_stop_generation)
{
	void *eng = open_ready(qwen_path, 0);
	VX_CHECK(eng != NULL);
	if (!eng)
		return;
	llm_request req = greedy_req(50);
	atomic_bool cancel = true;
	sink s = { 0 };
	llm_result r;
	VX_CHECK_INT(llm_engine_gguf.generate(eng, &req, &cancel, on_piece, &s, &r), -ECANCELED);
	VX_CHECK_STR(r.finish_reason, "cancelled");
	sink t = { .stop_after = 2 };
	req.temperature = 1.0;   /* keep going past any end token */
	req.has_seed = true;
	VX_CHECK_INT(llm_engine_gguf.generate(eng, &req, NULL, on_piece, &t, &r), -ECANCELED);
	VX_CHECK_INT(t.pieces, 2);
	llm_engine_gguf.destroy(eng);
}

VX_TEST(prompt_longer_than_context_is_e2big)
{
	void *eng = open_ready(qwen_path, 16);
	VX_CHECK(eng != NULL);
	if (!eng)
		return;
	llm_request req = greedy_req(4);
	sink s = { 0 };
	llm_result r;
	VX_CHECK_INT(llm_engine_gguf.generate(eng, &req, NULL, on_piece, &s, &r), -E2BIG);
	VX_CHECK(strstr(r.error, "context") != NULL);
	llm_engine_gguf.destroy(eng);
}

static int prompt_tokens(void *eng, int think)
{
	llm_request req = greedy_req(1);
	req.think = think;
	sink s = { 0 };
	llm_result r;
	int rc = llm_engine_gguf.generate(eng, &req, NULL, on_piece, &s, &r);
	return rc < 0 ? rc : r.prompt_tokens;
}

/* think: false on a Qwen3 template adds its empty thinking section
 * (<think>, newlines, </think>, newlines); other templates ignore it. */
VX_TEST(think_false_closes_the_thinking_section_on_qwen3)
{
	void *eng = open_ready(qwen3_path, 0);
	VX_CHECK(eng != NULL);
	if (!eng)
		return;
	int plain = prompt_tokens(eng, 0), off = prompt_tokens(eng, -1);
	VX_CHECK(plain > 0);
	VX_CHECK(off >= plain + 3 && off <= plain + 6);
	VX_CHECK_INT(prompt_tokens(eng, 1), plain);
	llm_engine_gguf.destroy(eng);
	eng = open_ready(qwen_path, 0);
	VX_CHECK(eng != NULL);
	if (!eng)
		return;
	VX_CHECK_INT(prompt_tokens(eng, -1), prompt_tokens(eng, 0));
	llm_engine_gguf.destroy(eng);
}

VX_TEST(cleanup_removes_models)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	VX_CHECK_INT(system(cmd), 0);
}

VX_TEST_MAIN(setup_makes_models, create_fails_on_missing_and_bad_files,
	     ready_after_warm_up_and_lists_the_model,
	     greedy_is_deterministic_with_and_without_prefix_cache,
	     seeded_sampling_repeats_and_seeds_differ, cancel_flag_and_callback_stop_generation,
	     prompt_longer_than_context_is_e2big,
	     think_false_closes_the_thinking_section_on_qwen3, cleanup_removes_models)
