/*
 * engine_gguf.c - the built-in CPU engine: a GGUF model run by
 * services/llm/gguf (loader, kernels, forward pass, tokenizer, chat
 * templates, sampler) behind llm_engine_ops.
 *
 * create() maps and checks the file, builds the tokenizer and recognises
 * the chat template (so a bad file fails at start-up with a clear message);
 * the scheduler thread (gguf/batch.h) then touches every weight page and
 * runs one token, and ready() says -EAGAIN ("loading") until that is done.
 * Generations run at once with continuous batching: cfg->slots KV slots,
 * one forward pass a step over every running sequence (prefill chunks of
 * new requests next to decode steps of running ones); requests past the
 * slots wait in the scheduler's queue (the service's --max-concurrent
 * bounds it). A slot keeps its tokens after a call and a request goes to
 * the free slot with the longest common prefix, so a conversation that
 * grows by a turn only runs the new tokens through the model even while
 * others run (llm_result.prompt_evaluated says how many ran). Each request
 * samples with its own parameters and seed: a seeded request gives the
 * same tokens alone or next to others.
 *
 * The prompt is the chat template's rendering, tokenised so that control
 * tokens (<|im_start|>, <|eot_id|>, ...) come only from the template's own
 * markup: text a client sends as a role or content is always plain text
 * (chat_template_render_masked + tok_encode_masked), so it cannot open a
 * fake system turn. A prompt that does not fit the context is -E2BIG.
 * A request with think = -1 on a model whose template has Qwen3's
 * enable_thinking switch gets the empty thinking section that template
 * adds (the model then answers without reasoning). The request's tools,
 * tool calls and template kwargs go to the model's template
 * (chat_prog_render_req); render() answers the prompt text alone
 * (POST /apply-template).
 *
 * Config: cfg->model = path of the .gguf, cfg->threads, cfg->ctx (0 = the
 * model's context length; per slot), cfg->slots (0 = GGUF_ENGINE_DEFAULT_SLOTS).
 */
#include "llm_engine.h"

#include "gguf/chat_template.h"
#include "gguf/model.h"
#include "gguf/sampler.h"
#include "gguf/batch.h"
#include "gguf/tokenizer.h"
#include "vx_buf.h"
#include "vx_log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GGUF_ENGINE_REPEAT_LAST_N 64
#define GGUF_ENGINE_DEFAULT_THREADS 4
#define GGUF_ENGINE_DEFAULT_SLOTS 4
#define GGUF_ENGINE_IDS_PER_WAKE 32   /* sampled ids taken per wake-up */
/* what Qwen3's template adds to the generation prompt for enable_thinking
 * false: an empty thinking section (sent when a request says think: false) */
#define GGUF_ENGINE_NO_THINK "<think>\n\n</think>\n\n"

typedef struct gguf_engine {
	model *m;
	tok *tk;
	chat_template tmpl;         /* the marker-based fallback */
	chat_prog *prog;            /* the model's own template, or NULL */
	bool think_switch;          /* template honours enable_thinking (Qwen3) */
	char name[128];             /* model id: file name without .gguf */
	int n_vocab, n_ctx;
	batch *batch;               /* the scheduler thread; warms the model first */
	atomic_int state;           /* 0 loading, 1 ready, < 0 -errno */
	char detail[160];           /* written before state leaves 0 */
	float *logits;              /* (n_vocab) for the warm-up */
} gguf_engine;

/* ---- tokenizer from the GGUF metadata ---- */

static char *kv_strdup(const gguf *g, const char *key)
{
	gguf_str s;
	if (gguf_get_str(g, key, &s) < 0)
		return NULL;
	return strndup(s.ptr, s.len);
}

static int32_t kv_id(const gguf *g, const char *key)
{
	uint32_t v;
	return gguf_get_u32(g, key, &v) == 0 && v <= INT32_MAX ? (int32_t)v : -1;
}

/* Copies a numeric array (possibly unaligned in the mapping). */
static int kv_numbers(const gguf *g, const char *key, uint32_t type, size_t n, void **ret)
{
	const gguf_kv *kv = gguf_find_kv(g, key);
	if (!kv)
		return 0;
	if (kv->type != GGUF_ARRAY || kv->arr_type != type || kv->arr_n != n)
		return -EINVAL;
	if (!(*ret = malloc(n ? n * 4 : 1)))
		return -ENOMEM;
	memcpy(*ret, kv->arr, n * 4);
	return 0;
}

static int kv_strings(const gguf_kv *kv, const char ***ret_p, size_t **ret_len)
{
	size_t n = (size_t)kv->arr_n;
	const char **p = malloc((n ? n : 1) * sizeof(*p));
	size_t *len = malloc((n ? n : 1) * sizeof(*len));
	if (!p || !len) {
		free(p);
		free(len);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		p[i] = kv->arr_str[i].ptr;
		len[i] = kv->arr_str[i].len;
	}
	*ret_p = p;
	*ret_len = len;
	return 0;
}

static int build_tokenizer(const gguf *g, int n_vocab, tok **ret, char *err, size_t err_len)
{
	tok_spec s = { 0 };
	const gguf_kv *toks = gguf_find_kv(g, "tokenizer.ggml.tokens");
	const gguf_kv *merges = gguf_find_kv(g, "tokenizer.ggml.merges");
	char *model_name = kv_strdup(g, "tokenizer.ggml.model");
	char *pre = kv_strdup(g, "tokenizer.ggml.pre");
	const char **tp = NULL, **mp = NULL;
	size_t *tl = NULL, *ml = NULL;
	float *scores = NULL;
	int32_t *types = NULL;
	int rc = -EINVAL;
	if (!model_name || !toks || toks->type != GGUF_ARRAY || toks->arr_type != GGUF_STRING) {
		snprintf(err, err_len, "no tokenizer in the file (tokenizer.ggml.model/tokens)");
		goto out_free;
	}
	if (toks->arr_n > (uint64_t)n_vocab) {
		snprintf(err, err_len, "tokenizer has %llu tokens, the model only %d rows",
			 (unsigned long long)toks->arr_n, n_vocab);
		goto out_free;
	}
	if ((rc = kv_strings(toks, &tp, &tl)) < 0)
		goto out_free;
	if (merges && merges->type == GGUF_ARRAY && merges->arr_type == GGUF_STRING &&
	    (rc = kv_strings(merges, &mp, &ml)) < 0)
		goto out_free;
	if ((rc = kv_numbers(g, "tokenizer.ggml.scores", GGUF_FLOAT32, toks->arr_n, (void **)&scores)) < 0 ||
	    (rc = kv_numbers(g, "tokenizer.ggml.token_type", GGUF_INT32, toks->arr_n, (void **)&types)) < 0) {
		snprintf(err, err_len, "tokenizer scores/token_type do not match the tokens");
		goto out_free;
	}
	s.model = model_name;
	s.pre = pre;
	s.tokens = tp;
	s.token_lens = tl;
	s.n_tokens = (size_t)toks->arr_n;
	s.scores = scores;
	s.types = types;
	s.merges = mp;
	s.merge_lens = ml;
	s.n_merges = mp ? (size_t)merges->arr_n : 0;
	s.bos = kv_id(g, "tokenizer.ggml.bos_token_id");
	s.eos = kv_id(g, "tokenizer.ggml.eos_token_id");
	s.eot = kv_id(g, "tokenizer.ggml.eot_token_id");
	s.unk = kv_id(g, "tokenizer.ggml.unknown_token_id");
	s.pad = kv_id(g, "tokenizer.ggml.padding_token_id");
	s.add_bos = !strcmp(model_name, "llama");
	gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &s.add_bos);
	if ((rc = tok_new(&s, ret)) < 0)
		snprintf(err, err_len, "cannot build the '%s' tokenizer: %s", model_name,
			 strerror(-rc));
out_free:
	free(model_name);
	free(pre);
	free(tp);
	free(tl);
	free(mp);
	free(ml);
	free(scores);
	free(types);
	return rc;
}

/* ---- lifecycle ---- */

/* Runs on the scheduler thread before any request. */
static void warm_main(void *arg)
{
	gguf_engine *e = arg;
	int32_t t = tok_bos(e->tk) >= 0 ? tok_bos(e->tk) : 0;
	int rc = model_warm(e->m);
	if (rc == 0)
		rc = model_eval(e->m, &t, 1, 0, e->logits, false);
	if (rc < 0) {
		snprintf(e->detail, sizeof(e->detail), "warm-up failed: %s", strerror(-rc));
		atomic_store(&e->state, rc);
	} else {
		snprintf(e->detail, sizeof(e->detail), "%s", e->name);
		atomic_store(&e->state, 1);
	}
}

static void gguf_destroy(void *engine);

/* The model's Jinja template, interpreted; when it does not parse, the
 * marker-based renderer serves (said once in the log). bos_token renders
 * empty when the tokenizer prepends BOS itself. */
static void load_chat_prog(gguf_engine *e, const char *src, size_t len)
{
	char bos[64] = "", eos[64] = "", err[200];
	int n;
	if (!tok_add_bos(e->tk) && tok_bos(e->tk) >= 0 &&
	    (n = tok_piece(e->tk, tok_bos(e->tk), bos, sizeof(bos) - 1)) >= 0)
		bos[n < (int)sizeof(bos) - 1 ? n : 0] = 0;
	if (tok_eos(e->tk) >= 0 && (n = tok_piece(e->tk, tok_eos(e->tk), eos, sizeof(eos) - 1)) >= 0)
		eos[n < (int)sizeof(eos) - 1 ? n : 0] = 0;
	int rc = chat_prog_new(src, len, bos, eos, &e->prog, err, sizeof(err));
	if (rc < 0) {
		e->prog = NULL;
		vx_log(VX_LOG_WARN, NULL, "gguf: the model's chat template is not usable (%s); "
		       "rendering with the built-in %s template", err, chat_template_name(e->tmpl));
	}
}

static int gguf_create(const llm_config *cfg, void **ret_engine)
{
	if (!cfg || !cfg->model || !*cfg->model)
		return -EINVAL;
	gguf_engine *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	model_params mp = {
		.n_threads = cfg->threads > 0 ? cfg->threads : GGUF_ENGINE_DEFAULT_THREADS,
		.n_ctx = cfg->ctx > 0 ? cfg->ctx : 0,
		.n_slots = cfg->slots > 0 ? cfg->slots : GGUF_ENGINE_DEFAULT_SLOTS,
		.no_repack = cfg->no_repack, .kv_f32 = cfg->kv_f32,
	};
	int rc = model_load(cfg->model, &mp, &e->m, e->detail, sizeof(e->detail));
	if (rc < 0)
		goto out_fail;
	const model_hparams *hp = model_get_hparams(e->m);
	const gguf *g = model_get_gguf(e->m);
	e->n_vocab = hp->n_vocab;
	e->n_ctx = hp->n_ctx;
	vx_log(VX_LOG_INFO, NULL, "gguf: %s, %d layers: KV cache of %d slots x %d positions in %s, "
	       "%.1f MiB when full (taken as contexts fill)", hp->arch_name, hp->n_layer,
	       model_n_slots(e->m), hp->n_ctx, cfg->kv_f32 ? "f32" : "f16",
	       (double)model_kv_bytes(e->m) / (1 << 20));
	if ((rc = build_tokenizer(g, hp->n_vocab, &e->tk, e->detail, sizeof(e->detail))) < 0)
		goto out_fail;
	gguf_str tmpl;
	char *src = gguf_get_str(g, "tokenizer.chat_template", &tmpl) == 0
			    ? strndup(tmpl.ptr, tmpl.len) : NULL;
	chat_template_detect(src, &e->tmpl);
	e->think_switch = src && strstr(src, "enable_thinking") && e->tmpl == CHAT_TMPL_CHATML;
	if (src)
		load_chat_prog(e, src, tmpl.len);
	free(src);
	const char *base = strrchr(cfg->model, '/');
	base = base ? base + 1 : cfg->model;
	snprintf(e->name, sizeof(e->name), "%s", base);
	size_t bl = strlen(e->name);
	if (bl > 5 && !strcmp(e->name + bl - 5, ".gguf"))
		e->name[bl - 5] = 0;
	if (!(e->logits = malloc((size_t)e->n_vocab * sizeof(float)))) {
		rc = -ENOMEM;
		goto out_fail;
	}
	snprintf(e->detail, sizeof(e->detail), "loading %s", e->name);
	if ((rc = batch_new(e->m, e->tk, warm_main, e, &e->batch)) < 0) {
		snprintf(e->detail, sizeof(e->detail), "cannot start the scheduler: %s",
			 strerror(-rc));
		goto out_fail;
	}
	*ret_engine = e;
	return 0;
out_fail:
	if (cfg->error && cfg->error_len)
		snprintf(cfg->error, cfg->error_len, "%s", e->detail);
	gguf_destroy(e);
	return rc < 0 ? rc : -EINVAL;
}

static void gguf_destroy(void *engine)
{
	gguf_engine *e = engine;
	if (!e)
		return;
	batch_free(e->batch);
	chat_prog_free(e->prog);
	tok_free(e->tk);
	model_free(e->m);
	free(e->logits);
	free(e);
}

static int gguf_ready(void *engine, char *detail, size_t detail_len)
{
	gguf_engine *e = engine;
	int st = atomic_load(&e->state);
	if (detail && detail_len)
		snprintf(detail, detail_len, "%s", st == 0 ? "loading model" : e->detail);
	return st == 1 ? 0 : st == 0 ? -EAGAIN : st;
}

static int gguf_models(void *engine, llm_model_info *ret, size_t max)
{
	gguf_engine *e = engine;
	if (max < 1)
		return 0;
	memset(ret, 0, sizeof(*ret));
	snprintf(ret->id, sizeof(ret->id), "%s", e->name);
	snprintf(ret->owned_by, sizeof(ret->owned_by), "voxline");
	return 1;
}

/* ---- generation ---- */

/* Length of the longest prefix of b[0..n) made of whole UTF-8 sequences
 * (an incomplete sequence at the end is held back; invalid bytes pass). */
static size_t utf8_complete(const char *b, size_t n)
{
	size_t i = n, k = 0;
	while (i > 0 && k < 4 && ((unsigned char)b[i - 1] & 0xC0) == 0x80) {
		i--;
		k++;
	}
	if (i == 0)
		return n;
	unsigned char c = (unsigned char)b[i - 1];
	size_t need = c >= 0xF0 && c < 0xF8 ? 4 : c >= 0xE0 && c < 0xF0 ? 3 : c >= 0xC0 && c < 0xE0 ? 2 : 1;
	return need > k + 1 ? i - 1 : n;
}

typedef struct gen {
	gguf_engine *e;
	const llm_request *req;
	llm_piece_cb cb;
	void *user;
	llm_result *res;
	int32_t *ids;              /* (n_ctx + 1) the prompt */
	char pend[64];             /* bytes of an unfinished UTF-8 sequence */
	size_t n_pend;
} gen;

static int emit(gen *G, int32_t id)
{
	char piece[TOK_PIECE_MAX + 64];
	if (tok_is_control(G->e->tk, id))
		return 0;
	memcpy(piece, G->pend, G->n_pend);
	int len = tok_piece(G->e->tk, id, piece + G->n_pend, TOK_PIECE_MAX);
	if (len < 0)
		return 0;
	if (len > TOK_PIECE_MAX)
		len = TOK_PIECE_MAX;
	size_t n = G->n_pend + (size_t)len, ok = utf8_complete(piece, n);
	G->n_pend = n - ok;
	memcpy(G->pend, piece + ok, G->n_pend);
	if (ok && G->cb(G->user, LLM_CONTENT, piece, ok))
		return -ECANCELED;
	return 0;
}

/* Appends template markup s to a rendered prompt and its mask. */
static int append_markup(vx_buf *text, vx_buf *markup, const char *s)
{
	size_t n = strlen(s);
	int rc = vx_buf_reserve(markup, n);
	if (rc < 0 || (rc = vx_buf_append(text, s, n)) < 0)
		return rc;
	memset(markup->data + markup->len, 1, n);
	markup->len += n;
	markup->data[markup->len] = 0;
	return 0;
}

/* The prompt text of req and its markup bits: the model's template, the
 * built-in one when it fails; error gets why neither did. */
static int render_chat(gguf_engine *e, const llm_request *req, vx_buf *text, vx_buf *markup,
		       char *error, size_t error_len)
{
	/* control tokens only from the template's markup, never from what
	 * the client wrote (no "<|im_start|>system" injection) */
	int rc = -ENOENT;
	if (e->prog) {   /* the model's template; the built-in one when it fails */
		char err[200];
		rc = chat_prog_render_req(e->prog, req, true, text, markup, err, sizeof(err));
		if (rc < 0)
			vx_log(VX_LOG_WARN, NULL, "gguf: the model's chat template failed (%s); "
			       "rendering with the built-in %s template", err,
			       chat_template_name(e->tmpl));
	}
	/* the model's template adds the empty thinking section itself when
	 * it is given enable_thinking (llm_params passes "think" so) */
	bool no_think = req->think < 0 && e->think_switch &&
			(rc < 0 || !req->template_kwargs ||
			 !strstr(req->template_kwargs, "\"enable_thinking\":"));
	if (rc < 0)
		rc = chat_template_render_masked(e->tmpl, req->messages, req->n_messages,
						 true, text, markup);
	if (rc == 0 && no_think)
		rc = append_markup(text, markup, GGUF_ENGINE_NO_THINK);
	if (rc < 0)
		snprintf(error, error_len, "cannot render the chat: %s", strerror(-rc));
	return rc;
}

/* llm_engine_ops.render: the text tokenize_prompt encodes (BOS, when the
 * tokenizer adds it, is the id in front, not in the text). */
static int gguf_render(void *engine, const llm_request *req, char **ret_prompt,
		       llm_result *ret)
{
	vx_buf text = { 0 }, markup = { 0 };
	int rc = render_chat(engine, req, &text, &markup, ret->error, sizeof(ret->error));
	vx_buf_release(&markup);
	if (rc < 0) {
		vx_buf_release(&text);
		return rc;
	}
	*ret_prompt = text.data ? text.data : strdup("");
	return *ret_prompt ? 0 : -ENOMEM;
}

static int tokenize_prompt(gen *G, int *ret_n)
{
	gguf_engine *e = G->e;
	vx_buf text = { 0 }, markup = { 0 };
	int rc = render_chat(e, G->req, &text, &markup, G->res->error, sizeof(G->res->error));
	if (rc < 0)
		goto out_release;
	size_t off = 0, n = 0;
	if (tok_add_bos(e->tk) && tok_bos(e->tk) >= 0)
		G->ids[off++] = tok_bos(e->tk);
	rc = tok_encode_masked(e->tk, text.data ? text.data : "", text.len,
			       (const unsigned char *)(markup.data ? markup.data : ""),
			       G->ids + off, (size_t)e->n_ctx + 1 - off, &n);
	n += off;
	if (rc == -E2BIG)   /* the ids buffer (n_ctx + 1) filled up */
		n = (size_t)e->n_ctx;
	if (rc == -E2BIG || n >= (size_t)e->n_ctx) {
		snprintf(G->res->error, sizeof(G->res->error),
			 "prompt of %s%zu tokens does not fit the %d-token context",
			 rc == -E2BIG ? "more than " : "", n, e->n_ctx);
		rc = -E2BIG;
		goto out_release;
	}
	if (rc < 0) {
		snprintf(G->res->error, sizeof(G->res->error), "tokenizer: %s", strerror(-rc));
		goto out_release;
	}
	*ret_n = (int)n;
out_release:
	vx_buf_release(&text);
	vx_buf_release(&markup);
	return rc;
}

static int make_sampler(const llm_request *req, sampler **ret)
{
	sampler_params p;
	sampler_params_init(&p);
	p.temperature = (float)req->temperature;
	p.top_p = req->top_p > 0 && req->top_p <= 1 ? (float)req->top_p : 1.0f;
	p.top_k = req->top_k > 0 ? req->top_k : 0;
	p.min_p = req->min_p > 0 ? (float)req->min_p : 0.0f;
	p.repeat_penalty = req->repeat_penalty > 0 ? (float)req->repeat_penalty : 1.0f;
	p.repeat_last_n = GGUF_ENGINE_REPEAT_LAST_N;
	if (req->has_seed) {
		p.seed = req->seed;
	} else {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		p.seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30);
	}
	return sampler_new(&p, ret);
}

/* Queues the prompt on the scheduler and streams what it samples; the
 * job's slot is given back (cancelled if need be) before returning. */
static int run_generation(gen *G, const atomic_bool *cancel)
{
	gguf_engine *e = G->e;
	int n_prompt, rc;
	if ((rc = tokenize_prompt(G, &n_prompt)) < 0)
		return rc;
	G->res->prompt_tokens = n_prompt;
	sampler *smp;
	if ((rc = make_sampler(G->req, &smp)) < 0) {
		snprintf(G->res->error, sizeof(G->res->error), "bad sampling parameters");
		return rc;
	}
	batch_req sr = {
		.prompt = G->ids, .n_prompt = n_prompt, .smp = smp,
		.max_tokens = G->req->max_tokens > 0 ? G->req->max_tokens : e->n_ctx,
		.cancel = cancel, .timeout_ms = G->req->timeout_ms,
	};
	batch_job *job;
	if ((rc = batch_submit(e->batch, &sr, &job)) < 0) {
		sampler_free(smp);
		return rc;
	}
	int32_t got[GGUF_ENGINE_IDS_PER_WAKE];
	int n, cb_rc = 0;
	while (cb_rc == 0 && (n = batch_next(e->batch, job, got, GGUF_ENGINE_IDS_PER_WAKE)) > 0)
		for (int i = 0; i < n && cb_rc == 0; i++)
			cb_rc = emit(G, got[i]);
	batch_result r;
	batch_job_end(e->batch, job, &r);
	sampler_free(smp);
	G->res->completion_tokens = r.n_gen;
	G->res->prompt_evaluated = n_prompt - r.n_cached;
	snprintf(G->res->finish_reason, sizeof(G->res->finish_reason), "%s",
		 r.eog ? "stop" : "length");
	rc = cb_rc < 0 ? cb_rc : r.rc;
	if (rc == 0 && G->n_pend)   /* a dangling partial sequence at the end */
		rc = G->cb(G->user, LLM_CONTENT, G->pend, G->n_pend) ? -ECANCELED : 0;
	return rc;
}

static int gguf_generate(void *engine, const llm_request *req, const atomic_bool *cancel,
			 llm_piece_cb cb, void *user, llm_result *ret)
{
	gguf_engine *e = engine;
	memset(ret, 0, sizeof(*ret));
	ret->prompt_tokens = -1;
	snprintf(ret->model, sizeof(ret->model), "%s", e->name);
	if (!req || !req->messages || req->n_messages == 0 || !cb) {
		snprintf(ret->error, sizeof(ret->error), "no messages");
		return -EINVAL;
	}
	gen G = { .e = e, .req = req, .cb = cb, .user = user, .res = ret };
	int rc = atomic_load(&e->state);
	if (rc < 0) {
		snprintf(ret->error, sizeof(ret->error), "%s", e->detail);
	} else if (!(G.ids = malloc(((size_t)e->n_ctx + 1) * sizeof(int32_t)))) {
		rc = -ENOMEM;
	} else {
		rc = run_generation(&G, cancel);
		free(G.ids);
	}
	if (rc == -ECANCELED) {
		snprintf(ret->finish_reason, sizeof(ret->finish_reason), "cancelled");
		if (!ret->error[0])
			snprintf(ret->error, sizeof(ret->error), "cancelled");
	} else if (rc == -ETIMEDOUT) {
		snprintf(ret->error, sizeof(ret->error), "generation deadline passed");
	} else if (rc < 0 && !ret->error[0]) {
		snprintf(ret->error, sizeof(ret->error), "generation failed: %s", strerror(-rc));
	}
	return rc < 0 ? rc : 0;
}

const llm_engine_ops llm_engine_gguf = {
	.name = "gguf",
	.description = "built-in CPU engine for GGUF models (llama, qwen2, qwen3, gemma2, gemma3, phi3), "
		       "continuous batching over --slots KV slots",
	.create = gguf_create,
	.destroy = gguf_destroy,
	.generate = gguf_generate,
	.models = gguf_models,
	.render = gguf_render,
	.ready = gguf_ready,
};
