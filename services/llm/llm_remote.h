/*
 * llm_remote.h - what the remote engines (openai, ollama) share: their
 * configuration, the request body, the streamed call (emitter, result,
 * POST), and the model list / readiness probes. Only engine_openai.c and
 * engine_ollama.c use it.
 *
 * Ownership: llm_remote_new copies everything from llm_config; free with
 * llm_remote_free (accepts NULL). The struct is read-only after creation,
 * so generate() may run on many threads at once.
 *
 *     llm_remote *r; llm_remote_new(cfg, "http://127.0.0.1:8080", (void **)&r);
 *     llm_remote_stream s; llm_remote_stream_init(&s, r, req, cb, user, ret);
 *     cJSON *o = llm_remote_body(r, req); llm_remote_sampling(o, req); ...
 *     int rc = llm_remote_post(r, req, "/api/chat", body, cancel, accept,
 *                              on_data, &st, &s);
 *     llm_remote_stream_end(&s, rc); llm_remote_free(r);
 */
#ifndef LLM_REMOTE_H
#define LLM_REMOTE_H

#include <cJSON.h>

#include "llm_emit.h"
#include "llm_engine.h"
#include "llm_http.h"

#define LLM_REMOTE_FIRST_TOKEN_TIMEOUT_MS 120000 /* when config gives 0 */
#define LLM_REMOTE_LIST_TIMEOUT_MS 10000          /* models() deadline */
#define LLM_REMOTE_READY_TIMEOUT_MS 2000          /* ready() deadline */
#define LLM_REMOTE_MAX_LIST_BYTES (4u << 20)      /* models() body limit */

typedef struct llm_remote {
	char *url;                  /* base URL, no trailing '/' */
	char *api_key;              /* NULL = none */
	char *model;                /* default model name ("" = none) */
	int connect_timeout_ms;     /* > 0 */
	int first_token_timeout_ms; /* > 0 */
} llm_remote;

int llm_remote_new(const llm_config *cfg, const char *default_url,
		   void **ret_engine);
void llm_remote_free(void *engine);

/* JSON pieces (NULL on allocation failure, which cJSON_AddItem* ignores).
 * Messages carry their tool_calls, tool_call_id and name when the request
 * has them; args_object: tool calls' arguments as JSON objects (Ollama),
 * else as the JSON text OpenAI's API takes. */
cJSON *llm_remote_messages(const llm_request *req, bool args_object);
cJSON *llm_remote_strings(const char *const *s, size_t n);

/* A request body with "model", "messages", the request's "tools" and
 * "stream":true; the caller adds its fields, prints and deletes it. NULL
 * when out of memory. */
cJSON *llm_remote_body(const llm_remote *eng, const llm_request *req,
		       bool args_object);
/* Adds temperature, and top_p, top_k, min_p, repeat_penalty, seed and stop
 * when the request sets them, to obj (the body or Ollama's "options"). */
void llm_remote_sampling(cJSON *obj, const llm_request *req);

/*
 * One streamed call, the part both engines' parsers share: the emitter that
 * filters pieces to the caller's callback, the result being filled, and
 * whether the first token (or the end) arrived, for the first-token
 * timeout. Error messages go to res->error.
 */
typedef struct llm_remote_stream {
	llm_emit emit;
	llm_result *res;
	bool got_first;
} llm_remote_stream;

/* Clears ret (token counts -1, model = the request's or the default) and
 * sets up the emitter. */
void llm_remote_stream_init(llm_remote_stream *s, const llm_remote *eng,
			    const llm_request *req, llm_piece_cb cb, void *user,
			    llm_result *ret);
/* Emits v when it is a non-empty string (and counts it as the first token);
 * 0 or the callback's error. */
int llm_remote_piece(llm_remote_stream *s, llm_piece_kind kind,
		     const cJSON *v);
/* An upstream's structured tool call (function name, arguments as JSON
 * text) emitted as content in the Hermes form (TOOL_CALL_OPEN, llm_engine.h)
 * the service turns into tool_calls; 0 or the callback's error. */
int llm_remote_tool_call(llm_remote_stream *s, const char *name,
			 const char *args, size_t args_len);
/* Takes the upstream's "model" name from a chunk when it has one. */
void llm_remote_model(llm_remote_stream *s, const cJSON *chunk);
/* Parses one chunk; NULL (with res->error set) when it is not JSON. */
cJSON *llm_remote_parse(llm_remote_stream *s, const char *text);
/* POSTs body to {url}{path} (accept: the streaming media type) and feeds
 * the answer to on_data(user, ...); the caller flushes s->emit after its
 * parser. body NULL means allocation failed: -ENOMEM. 0 or a negative
 * errno with res->error set. */
int llm_remote_post(const llm_remote *eng, const llm_request *req,
		    const char *path, const char *body,
		    const atomic_bool *cancel, const char *accept,
		    llm_http_data_fn on_data, void *user, llm_remote_stream *s);
/* After the call: finish_reason and error "cancelled" when the call was
 * cancelled or the callback stopped it. */
void llm_remote_stream_end(llm_remote_stream *s, int r);
/* Copies token counts from a usage-like object when present. */
void llm_remote_usage(llm_result *ret, const cJSON *usage,
		      const char *prompt_key, const char *completion_key);

/* GET {url}{path}; lists objects of array array_key by field id_key.
 * Returns how many were stored, or a negative errno. */
int llm_remote_models(void *engine, const char *path, const char *array_key,
		      const char *id_key, llm_model_info *ret, size_t max);
/* GET {url}{path} answers 2xx: 0, else a negative errno and detail. */
int llm_remote_ready(void *engine, const char *path, char *detail,
		     size_t detail_len);

#endif
