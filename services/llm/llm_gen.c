/* llm_gen.c - one generation through the filters; see llm_gen.h. */
#include "llm_gen.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "stopstr.h"
#include "think.h"
#include "vx_log.h"
#include "vx_reqbody.h"
#include "vx_time.h"

const char *const llm_gen_error_kinds[LLM_N_ERROR_KINDS] = {
	"unreachable", "timeout", "protocol", "not_found", "rejected",
	"context", "other",
};
const char *const llm_gen_finish_names[4] = { "stop", "length", "cancelled",
					      "error" };

typedef struct gen_ctx {
	llm_service *svc;
	const llm_params *p;
	llm_gen_sink sink;
	void *user;
	think_splitter think;
	stopstr stop;
	vx_buf scratch;              /* content that passed the stop matcher */
	bool stop_hit;               /* a stop string ended the answer */
	bool sink_failed;            /* the sink asked to stop */
	double t0, t_first;          /* monotonic ms; t_first 0 = none yet */
	size_t engine_pieces;
	size_t pieces;               /* given to the sink */
} gen_ctx;

int llm_gen_admit(llm_service *svc)
{
	if (atomic_fetch_add(&svc->generations, 1) >= svc->max_concurrent) {
		atomic_fetch_sub(&svc->generations, 1);
		vx_counter_add(svc->rejected, 1);
		return -EAGAIN;
	}
	return 0;
}

void llm_gen_leave(llm_service *svc)
{
	atomic_fetch_sub(&svc->generations, 1);
}

/* Copies s with every invalid UTF-8 sequence replaced by U+FFFD, so no
 * engine can make an answer that is not valid JSON text. */
static int gen_utf8_repair(const char *s, size_t len, vx_buf *out)
{
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)s[i];
		size_t n = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
		if (i + n <= len && vx_utf8_valid(s + i, n)) {
			if (vx_buf_append(out, s + i, n) < 0)
				return -ENOMEM;
			i += n;
		} else {
			if (vx_buf_puts(out, "\xEF\xBF\xBD") < 0)
				return -ENOMEM;
			i++;
		}
	}
	return 0;
}

static int gen_emit(gen_ctx *g, llm_piece_kind kind, const char *text,
		    size_t len)
{
	int stop;
	if (!len)
		return 0;
	g->pieces++;
	if (vx_utf8_valid(text, len)) {
		stop = g->sink(g->user, kind, text, len);
	} else {
		vx_buf fixed = {0};
		stop = gen_utf8_repair(text, len, &fixed) < 0 ||
		       g->sink(g->user, kind, fixed.data, fixed.len);
		vx_buf_release(&fixed);
	}
	if (stop) {
		g->sink_failed = true;
		return 1;
	}
	return 0;
}

/* Content through the stop matcher; 1 stops the engine. */
static int gen_content(gen_ctx *g, const char *text, size_t len)
{
	vx_buf_reset(&g->scratch);
	int r = stopstr_feed(&g->stop, text, len, &g->scratch);
	if (r < 0)
		return 1;
	if (gen_emit(g, LLM_CONTENT, g->scratch.data, g->scratch.len))
		return 1;
	if (r == 1) {
		g->stop_hit = true;
		return 1;
	}
	return 0;
}

/* Output of the think splitter. */
static int gen_split_piece(void *user, llm_piece_kind kind, const char *text,
			   size_t len)
{
	gen_ctx *g = user;
	if (kind == LLM_REASONING)
		return g->p->include_reasoning ? gen_emit(g, kind, text, len) : 0;
	return gen_content(g, text, len);
}

/* What the engine produces. */
static int gen_engine_piece(void *user, llm_piece_kind kind, const char *text,
			    size_t len)
{
	gen_ctx *g = user;
	if (!g->t_first)
		g->t_first = vx_now_ms();
	g->engine_pieces++;
	return think_feed(&g->think, kind, text, len);
}

/* Engine errno -> HTTP status, code and metric kind (-1 = not counted). */
static int gen_error_map(int r, const char **ret_code, int *ret_kind)
{
	switch (r) {
	case -ECONNREFUSED:
		*ret_code = "upstream_unavailable";
		*ret_kind = 0;
		return 502;
	case -ETIMEDOUT:
		*ret_code = "upstream_timeout";
		*ret_kind = 1;
		return 504;
	case -EPROTO:
		*ret_code = "upstream_error";
		*ret_kind = 2;
		return 502;
	case -ENOENT:
		*ret_code = "model_not_found";
		*ret_kind = 3;
		return 404;
	case -EINVAL:
		*ret_code = "invalid_request";
		*ret_kind = 4;
		return 400;
	case -E2BIG:
		*ret_code = "context_length_exceeded";
		*ret_kind = 5;
		return 400;
	case -ECANCELED:
		*ret_code = "cancelled";
		*ret_kind = -1;
		return 499;
	case -EAGAIN:
		*ret_code = "loading";
		*ret_kind = -1;
		return 503;
	default:
		*ret_code = "engine_error";
		*ret_kind = 6;
		return 500;
	}
}

/* Ends the filters after a clean finish: held text goes out. */
static int gen_flush(gen_ctx *g)
{
	if (think_finish(&g->think))
		return 1;
	if (g->stop_hit)
		return 0;
	vx_buf_reset(&g->scratch);
	if (stopstr_finish(&g->stop, &g->scratch) < 0)
		return 1;
	return gen_emit(g, LLM_CONTENT, g->scratch.data, g->scratch.len);
}

static void gen_metrics(llm_service *svc, const llm_gen_result *ret)
{
	int fin = ret->status ? 3 : 0;
	if (!ret->status && !strcmp(ret->finish_reason, "length"))
		fin = 1;
	if (ret->status == 499)
		fin = 2;
	vx_counter_add(svc->finished[fin], 1);
	vx_counter_add(svc->tokens_in, (uint64_t)ret->prompt_tokens);
	if (ret->prompt_evaluated > 0 && ret->prompt_tokens > ret->prompt_evaluated)
		vx_counter_add(svc->tokens_cached,
			       (uint64_t)(ret->prompt_tokens - ret->prompt_evaluated));
	vx_counter_add(svc->tokens_out, (uint64_t)ret->completion_tokens);
	vx_histogram_observe(svc->gen_seconds, ret->total_ms / 1e3);
	if (ret->first_token_ms >= 0)
		vx_histogram_observe(svc->ttft, ret->first_token_ms / 1e3);
	if (ret->tokens_per_s > 0)
		vx_histogram_observe(svc->tok_rate, ret->tokens_per_s);
}

static void gen_result(gen_ctx *g, int r, const llm_result *er,
		       llm_gen_result *ret)
{
	double t_end = vx_now_ms();
	ret->total_ms = t_end - g->t0;
	ret->first_token_ms = g->t_first ? g->t_first - g->t0 : -1;
	ret->pieces = g->pieces;
	ret->prompt_tokens = er->prompt_tokens > 0 ? er->prompt_tokens : 0;
	ret->prompt_evaluated = er->prompt_evaluated > 0 ? er->prompt_evaluated : 0;
	ret->completion_tokens = er->completion_tokens >= 0 ?
		er->completion_tokens : (int)g->engine_pieces;
	snprintf(ret->model, sizeof(ret->model), "%s", er->model);
	snprintf(ret->finish_reason, sizeof(ret->finish_reason), "%s",
		 er->finish_reason[0] ? er->finish_reason : "stop");
	if (g->t_first && t_end - g->t_first > 0 && ret->completion_tokens > 0)
		ret->tokens_per_s = ret->completion_tokens * 1e3 /
				    (t_end - g->t_first);
	if (g->stop_hit) {
		/* We stopped the engine on purpose: a normal end. */
		r = 0;
		snprintf(ret->finish_reason, sizeof(ret->finish_reason), "stop");
	}
	if (r) {
		const char *code = "engine_error";
		int kind = -1;
		ret->status = gen_error_map(r, &code, &kind);
		snprintf(ret->code, sizeof(ret->code), "%s", code);
		snprintf(ret->error, sizeof(ret->error), "%s",
			 er->error[0] ? er->error : strerror(-r));
		if (kind >= 0)
			vx_counter_add(g->svc->errors[kind], 1);
		if (r == -ECANCELED)
			snprintf(ret->finish_reason, sizeof(ret->finish_reason),
				 "cancelled");
	}
}

int llm_gen_run(llm_service *svc, const llm_params *p,
		const atomic_bool *cancel, llm_gen_sink sink, void *user,
		llm_gen_result *ret)
{
	gen_ctx g = { .svc = svc, .p = p, .sink = sink, .user = user };
	llm_result er;
	memset(ret, 0, sizeof(*ret));
	memset(&er, 0, sizeof(er));
	er.prompt_tokens = er.completion_tokens = -1;
	g.t0 = vx_now_ms();
	think_init(&g.think, false, gen_split_piece, &g);
	int r = stopstr_init(&g.stop, p->req.stop, p->req.n_stop);
	if (r == 0)
		r = svc->engine->generate(svc->eng, &p->req, cancel,
					  gen_engine_piece, &g, &er);
	if (r == 0 && gen_flush(&g))
		r = -ECANCELED;
	if (r == 0 && g.sink_failed)
		r = -ECANCELED;
	if (r == -ECANCELED && g.sink_failed && !g.stop_hit)
		snprintf(er.error, sizeof(er.error), "client went away");
	gen_result(&g, r, &er, ret);
	gen_metrics(svc, ret);
	const char *rid = p->req.request_id;
	if (ret->status && ret->status != 499)
		vx_log_warn(rid, "generation failed (%d %s): %s", ret->status,
			    ret->code, ret->error);
	else
		vx_log_info(rid, "generated %d tokens in %.0f ms (first after "
			    "%.0f ms, %.1f tok/s), finish %s",
			    ret->completion_tokens, ret->total_ms,
			    ret->first_token_ms, ret->tokens_per_s,
			    ret->finish_reason);
	stopstr_release(&g.stop);
	vx_buf_release(&g.scratch);
	return ret->status ? (r ? r : -EIO) : 0;
}

void llm_gen_usage_json(const llm_gen_result *r, bool timings, vx_buf *out)
{
	int cached = r->prompt_tokens - r->prompt_evaluated;
	bool known = r->prompt_evaluated > 0 && cached >= 0;
	vx_buf_printf(out, "\"usage\":{\"prompt_tokens\":%d,"
		      "\"completion_tokens\":%d,\"total_tokens\":%d",
		      r->prompt_tokens, r->completion_tokens,
		      r->prompt_tokens + r->completion_tokens);
	if (known)
		vx_buf_printf(out, ",\"prompt_tokens_details\":{\"cached_tokens\":%d}",
			      cached);
	vx_buf_puts(out, "}");
	if (timings) {
		vx_buf_printf(out, ",\"timings\":{\"first_token_ms\":%.1f,"
			      "\"total_ms\":%.1f,\"tokens_per_s\":%.1f",
			      r->first_token_ms < 0 ? 0 : r->first_token_ms,
			      r->total_ms, r->tokens_per_s);
		if (known)
			vx_buf_printf(out, ",\"prompt_n\":%d,\"cache_n\":%d",
				      r->prompt_evaluated, cached);
		vx_buf_puts(out, "}");
	}
}
