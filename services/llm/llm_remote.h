/*
 * llm_remote.h - what the remote engines (openai, ollama) share: their
 * configuration, JSON request pieces, result bookkeeping, and the model
 * list / readiness probes. Only engine_openai.c and engine_ollama.c use it.
 *
 * Ownership: llm_remote_new copies everything from llm_config; free with
 * llm_remote_free (accepts NULL). The struct is read-only after creation,
 * so generate() may run on many threads at once.
 *
 *     llm_remote *r; llm_remote_new(cfg, "http://127.0.0.1:8080", (void **)&r);
 *     llm_http_req hr = llm_remote_http_req(r, req, url, body, cancel, accept, &got_first);
 *     llm_remote_free(r);
 */
#ifndef LLM_REMOTE_H
#define LLM_REMOTE_H

#include <cJSON.h>

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

/* JSON pieces (NULL on allocation failure, which cJSON_AddItem* ignores). */
cJSON *llm_remote_messages(const llm_request *req);
cJSON *llm_remote_strings(const char *const *s, size_t n);

/* Result bookkeeping: init before the call, end after it (sets
 * finish_reason "cancelled" on -ECANCELED). */
void llm_remote_result_init(llm_result *ret, const llm_request *req,
			    const llm_remote *eng);
void llm_remote_result_end(llm_result *ret, int r, bool stopped_by_cb);
/* Copies token counts from a usage-like object when present. */
void llm_remote_usage(llm_result *ret, const cJSON *usage,
		      const char *prompt_key, const char *completion_key);

llm_http_req llm_remote_http_req(const llm_remote *eng, const llm_request *req,
				 const char *url, const char *body,
				 const atomic_bool *cancel, const char *accept,
				 const bool *got_first);

/* GET {url}{path}; lists objects of array array_key by field id_key.
 * Returns how many were stored, or a negative errno. */
int llm_remote_models(void *engine, const char *path, const char *array_key,
		      const char *id_key, llm_model_info *ret, size_t max);
/* GET {url}{path} answers 2xx: 0, else a negative errno and detail. */
int llm_remote_ready(void *engine, const char *path, char *detail,
		     size_t detail_len);

#endif
