/*
 * llm_params.h - a chat request's JSON turned into an llm_request, with
 * every check a client can fail and the OpenAI-style reason for it.
 *
 * One parser serves POST /generate, POST /v1/chat/completions and
 * /ws/generate: they take the same body ({"messages":[...], "temperature",
 * "top_p", "top_k", "min_p", "repeat_penalty", "max_tokens" or
 * "max_completion_tokens", "stop", "seed", "stream", "stream_options",
 * "model", "reasoning" / "include_reasoning", "think", "tools",
 * "chat_template_kwargs"}). Unknown fields are ignored, as OpenAI clients
 * send many; null means absent.
 *
 * Checks: the body is UTF-8 and a JSON object; messages is a non-empty
 * array (at most LLM_PARAMS_MAX_MESSAGES) of {"role","content"} with role
 * system|developer|user|assistant|tool and content a string (or an array
 * of {"type":"text","text":...} parts, joined; null or absent for an
 * assistant message with tool_calls); numbers within their ranges; the
 * prompt's content bytes plus the JSON of tools, tool calls and kwargs
 * within limits->max_prompt_bytes (413). A default system prompt is
 * prepended when no message is a system one.
 *
 * Function calling (OpenAI's shapes, passed to the engine as compact JSON
 * text, see llm_request): "tools" an array of at most LLM_PARAMS_MAX_TOOLS
 * objects, those of type "function" with function.name a string ([] =
 * none); a message's "tool_calls" an array of {"function":{"name",
 * "arguments": string or object}}; "tool_call_id" and "name" strings.
 * "chat_template_kwargs" an object of template variables; its
 * enable_thinking and "think" are one switch (either sets the other when
 * only one is given).
 *
 * Ownership: llm_params owns the parsed JSON its strings point into and the
 * message array; pair llm_params_parse with llm_params_release (also after
 * a failed parse). Not thread-safe; a parsed llm_params is read-only and
 * may be handed to another thread.
 *
 *     llm_params p; llm_params_error e;
 *     if (llm_params_parse(body, len, &limits, &p, &e) < 0) answer(e.status, e.code, e.message);
 *     engine->generate(eng, &p.req, ...); llm_params_release(&p);
 */
#ifndef LLM_PARAMS_H
#define LLM_PARAMS_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "llm_engine.h"
#include "stopstr.h"

#define LLM_PARAMS_MAX_MESSAGES 1024   /* messages per request */
#define LLM_PARAMS_MAX_MODEL 128       /* bytes of a model name */
#define LLM_PARAMS_MAX_TOP_K 100000
#define LLM_PARAMS_MAX_REPEAT_PENALTY 10.0
#define LLM_PARAMS_MAX_TOOLS 128       /* tools, and tool calls per message */
#define LLM_PARAMS_MAX_NAME 256        /* bytes of tool_call_id, name */

typedef struct llm_params_limits {
	int max_tokens_default;     /* when the request gives none */
	int max_tokens_limit;       /* larger requests are refused (400) */
	size_t max_prompt_bytes;    /* content bytes of all messages (413) */
	double temperature_default;
	const char *system_prompt;  /* prepended when no system message; NULL = none */
	int timeout_ms;             /* copied to req.timeout_ms */
	const cJSON *template_kwargs; /* object: chat_template_kwargs a request
				       does not set (--chat-template-kwargs);
				       NULL = none */
} llm_params_limits;

typedef struct llm_params {
	llm_request req;            /* points into the fields below */
	llm_message *messages;      /* (n_messages) heap */
	llm_message_tools *mtools;  /* (n_messages) heap: tool_calls, ... */
	char **texts;               /* JSON texts req points to (cJSON_free) */
	size_t n_texts;
	const char *stop[STOPSTR_MAX_STOPS];
	bool stream;                /* "stream": true */
	bool include_usage;         /* "stream_options":{"include_usage":true} */
	bool include_reasoning;     /* false: reasoning is dropped, not sent */
	size_t prompt_bytes;        /* content bytes of all messages */
	cJSON *json;                /* the body; owns every string above */
} llm_params;

typedef struct llm_params_error {
	int status;                 /* 400 or 413 */
	char code[48];              /* e.g. "invalid_messages" */
	char param[48];             /* e.g. "messages[1].role", "" = none */
	char message[256];
} llm_params_error;

/* Parses body[0..len). 0 on success; -EINVAL (or -E2BIG for 413, -ENOMEM)
 * with *ret_err filled otherwise. *ret is always safe to release. */
int llm_params_parse(const char *body, size_t len,
		     const llm_params_limits *limits, llm_params *ret,
		     llm_params_error *ret_err);
void llm_params_release(llm_params *p);

#endif
