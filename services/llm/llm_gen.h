/*
 * llm_gen.h - one generation as every route runs it: admission, the engine
 * call, the output filters, the result in HTTP terms, and the metrics.
 *
 * Pieces from the engine go through a think_splitter (text inside
 * <think>...</think> becomes reasoning; an upstream's reasoning field
 * already is) and, for content, a stopstr matcher (the service enforces stop
 * strings itself: finish_reason "stop", the stop string not sent). Reasoning
 * is dropped when the request said "reasoning": false. What remains goes to
 * the caller's sink as whole UTF-8 pieces; a sink that returns non-zero
 * (client gone) stops the engine.
 *
 * Admission: llm_gen_admit reserves one of --max-concurrent slots (or fails
 * with -EAGAIN and counts a rejection); llm_gen_leave gives it back. Every
 * route admits before it queues work, so the pool never has to refuse.
 *
 * Thread-safety: llm_gen_run runs on a pool thread, many at once; the
 * service's metrics are atomics. The result is the caller's.
 *
 *     if (llm_gen_admit(svc) < 0) answer_503();
 *     llm_gen_result res; llm_gen_run(svc, &params, cancel, sink, user, &res);
 *     llm_gen_leave(svc);
 */
#ifndef LLM_GEN_H
#define LLM_GEN_H

#include <stdatomic.h>
#include <stddef.h>

#include "llm_service.h"
#include "vx_buf.h"

/* Return non-zero to stop the generation (the client is gone). */
typedef int (*llm_gen_sink)(void *user, llm_piece_kind kind, const char *text,
			    size_t len);

typedef struct llm_gen_result {
	int status;                 /* 0 = success, else the HTTP status to answer
				       (400, 404, 499 cancelled, 502, 503, 504, 500) */
	char code[32];              /* error code, e.g. "upstream_timeout" */
	char error[256];            /* message */
	char finish_reason[16];     /* "stop" | "length" | "cancelled" | ... */
	char model[128];            /* model that answered ("" = unknown) */
	int prompt_tokens;          /* >= 0 (0 when the engine did not say) */
	int completion_tokens;      /* >= 0 (counted pieces when it did not say) */
	int prompt_evaluated;       /* prompt tokens the engine ran; 0 = unknown */
	double first_token_ms;      /* since the start; -1 when none came */
	double total_ms;
	double tokens_per_s;        /* after the first token; 0 when unknown */
	size_t pieces;              /* pieces handed to the sink */
} llm_gen_result;

int llm_gen_admit(llm_service *svc);
void llm_gen_leave(llm_service *svc);

/* Runs p on the engine. Returns 0 when it finished (ret->status 0) or a
 * negative errno with ret->status/code/error saying what to answer. */
int llm_gen_run(llm_service *svc, const llm_params *p,
		const atomic_bool *cancel, llm_gen_sink sink, void *user,
		llm_gen_result *ret);

/* Appends "usage":{prompt_tokens,completion_tokens,total_tokens} and, with
 * timings, ,"timings":{first_token_ms,total_ms,tokens_per_s}. When the
 * engine said how many prompt tokens it ran, usage gains
 * prompt_tokens_details.cached_tokens (OpenAI) and timings prompt_n and
 * cache_n (llama-server's names: tokens run and tokens reused). */
void llm_gen_usage_json(const llm_gen_result *r, bool timings, vx_buf *out);

/* Names of the upstream error kinds (metric labels), LLM_N_ERROR_KINDS. */
extern const char *const llm_gen_error_kinds[];
extern const char *const llm_gen_finish_names[];   /* 4 */

#endif
