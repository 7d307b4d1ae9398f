/*
 * llm_engine.h - the language-model engine interface.
 *
 * An engine is created once per daemon from llm_config. generate() renders
 * the chat (or sends it upstream), streams text pieces through the callback
 * as they are produced, and fills llm_result. Pieces are whole UTF-8
 * sequences (an engine that receives split bytes holds them back). A piece is
 * either answer content or reasoning (an upstream's reasoning_content field
 * or, for engines that know, text of a thinking section); the service layer
 * additionally splits <think>...</think> out of content, so engines may pass
 * such tags through as content.
 *
 * Cancellation: engines check *cancel at least between tokens (remote engines
 * poll it from libcurl's progress callback, so a cancel closes the upstream
 * connection within milliseconds) and return -ECANCELED. The callback may
 * also return non-zero to stop (same result). Every engine call honours
 * timeouts: -ETIMEDOUT (service answers 504), upstream unreachable or
 * broken -ECONNREFUSED / -EPROTO (502), bad request -EINVAL (400),
 * unknown model -ENOENT (404), prompt longer than the context -E2BIG (400).
 * ret->error gets a human message for any failure.
 *
 * generate() is thread-safe; how many run at once is the service's limit
 * (--max-concurrent), the engine may serialise internally (a CPU engine).
 * Each engine declares what it is in its ops (VX_ENGINE_HEAD, vx_engine.h:
 * name, aliases, VX_ENGINE_REMOTE for one that calls an upstream at --url)
 * and registers in llm_engines[] (llm_engine.c); --engine picks one by name
 * or alias.
 *
 *     void *eng; ops->create(&cfg, &eng);
 *     llm_result res = {0}; ops->generate(eng, &req, &cancel, on_piece, user, &res);
 *     llm_result_release(&res); ops->destroy(eng);
 */
#ifndef LLM_ENGINE_H
#define LLM_ENGINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vx_engine.h"

typedef struct llm_config {
	const char *url;            /* remote: base URL, e.g. http://127.0.0.1:8080 */
	const char *api_key;        /* remote: bearer key or NULL */
	const char *model;          /* remote: default model name; gguf: file path */
	int connect_timeout_ms;     /* remote */
	int first_token_timeout_ms; /* remote: headers + first token */
	int threads;                /* gguf: worker threads */
	int ctx;                    /* gguf: context length, 0 = model's */
	int slots;                  /* gguf: sequences batched at once, 0 = engine default */
	bool no_repack;             /* gguf: no widened packed copy of Q4_0/Q5_0/IQ4_NL/Q4_1/Q5_1 */
	bool kv_f32;                /* gguf: float KV cache (default halves) */
	char *error;                /* optional: create() writes why it failed */
	size_t error_len;
} llm_config;

typedef struct llm_message {
	const char *role;           /* "system" | "user" | "assistant" | "tool" */
	const char *content;        /* UTF-8 */
} llm_message;

/* What a message carries besides role and content for function calling
 * (OpenAI's shapes, as the client sent them); NULL = absent. */
typedef struct llm_message_tools {
	const char *tool_calls;     /* assistant: JSON array text of
				       {"id","type","function":{"name","arguments"}} */
	const char *tool_call_id;   /* role "tool": the call it answers */
	const char *name;           /* the tool's (or speaker's) name */
} llm_message_tools;

typedef struct llm_request {
	const llm_message *messages;
	size_t n_messages;
	const char *model;          /* NULL = engine default */
	double temperature;         /* 0 = greedy */
	double top_p;               /* 1 = off */
	int top_k;                  /* 0 = off */
	double min_p;               /* 0 = off */
	double repeat_penalty;      /* 1 = off */
	int max_tokens;             /* > 0 */
	bool has_seed;
	uint64_t seed;
	int think;                  /* 0 = upstream default, 1 = ask for
				       reasoning, -1 = ask for none (ollama
				       sends "think"; others ignore it) */
	const char *const *stop;    /* stop strings (engines may ignore: the
				       service also enforces them) */
	size_t n_stop;
	int timeout_ms;             /* whole generation deadline; 0 = none */
	const char *request_id;     /* sent upstream as X-Request-Id; may be NULL */
	/* Chat-template inputs (engines that render a template use them, the
	 * others may ignore them); NULL = none. */
	const llm_message_tools *message_tools;  /* (n_messages) or NULL */
	const char *tools;          /* JSON array text: the request's "tools" */
	const char *template_kwargs;/* JSON object text: extra template
				       variables (chat_template_kwargs, e.g.
				       {"enable_thinking":false}) */
} llm_request;

/* How Hermes-style models (Qwen2.5, Qwen3) write a tool call in their
 * content: <tool_call>{"name": ..., "arguments": {...}}</tool_call>. The
 * remote engines write their upstream's structured tool calls the same way,
 * so the service reads one form from every engine. */
#define TOOL_CALL_OPEN "<tool_call>"
#define TOOL_CALL_CLOSE "</tool_call>"

typedef enum llm_piece_kind { LLM_CONTENT = 0, LLM_REASONING = 1 } llm_piece_kind;

/* Return non-zero to stop generation. */
typedef int (*llm_piece_cb)(void *user, llm_piece_kind kind, const char *text,
			    size_t len);

typedef struct llm_result {
	int prompt_tokens;          /* -1 when unknown */
	int completion_tokens;      /* -1 when unknown */
	int prompt_evaluated;       /* prompt tokens run through the model
				       (the rest came from a cached prefix);
				       0 when unknown */
	char finish_reason[16];     /* "stop" | "length" | "cancelled" */
	char model[128];            /* model that answered */
	char error[256];            /* message on failure */
} llm_result;

typedef struct llm_model_info {
	char id[128];
	char owned_by[32];
} llm_model_info;

typedef struct llm_engine_ops {
	VX_ENGINE_HEAD;     /* name, aliases, description, flags, languages */
	int (*create)(const llm_config *cfg, void **ret_engine);
	void (*destroy)(void *engine);
	int (*generate)(void *engine, const llm_request *req,
			const atomic_bool *cancel, llm_piece_cb cb, void *user,
			llm_result *ret);
	/* Optional: lists models (up to max); returns how many. */
	int (*models)(void *engine, llm_model_info *ret, size_t max);
	/* Optional: 0 when ready, -EAGAIN while loading, <0 when broken. */
	int (*ready)(void *engine, char *detail, size_t detail_len);
	/* Optional: the prompt text generate() would run for req (the chat
	 * template's rendering), malloc'd into *ret_prompt (caller frees);
	 * <0 with ret->error set on failure. */
	int (*render)(void *engine, const llm_request *req, char **ret_prompt,
		      llm_result *ret);
} llm_engine_ops;

extern const llm_engine_ops *const llm_engines[];   /* NULL-terminated */
/* The engine called name or aliased so (case ignored), the default (first)
 * for NULL or "", NULL when unknown. */
const llm_engine_ops *llm_engine_find(const char *name);
/* llm_engines[i] as a vx_engine, NULL past the last (for vx_engine_*). */
const vx_engine *llm_engine_at(size_t i);

#endif
