/*
 * llm_http.h - one streaming HTTP exchange with an LLM upstream (libcurl).
 *
 * Shared by the remote engines: POSTs a JSON body (or GETs), hands the 2xx
 * response body to a data handler as it arrives, and turns everything else
 * into a negative errno plus a message:
 *   -ECANCELED     *cancel became true (checked every LLM_HTTP_POLL_MS, so
 *                  the upstream connection is closed within milliseconds)
 *   -ETIMEDOUT     connect timeout, no first token in time, or deadline
 *   -ECONNREFUSED  upstream unreachable (refused, unresolvable, reset before
 *                  answering)
 *   -ENOENT        HTTP 404 (unknown model or path)
 *   -EINVAL        HTTP 400 / 422 (upstream rejected the request)
 *   -EPROTO        any other HTTP status, a broken or truncated transfer
 * For an HTTP error the message is the upstream's own ("error":{"message"}
 * as OpenAI sends, or "error":"..." as Ollama sends), prefixed by the status.
 * A negative return from the data handler aborts and is returned as is
 * (the handler writes its own message).
 *
 * The first-token timer runs until *got_first turns true (the engine sets
 * it when the first token is decoded); with got_first NULL, until the first
 * body byte.
 *
 * Thread-safe: each call uses its own handles; llm_http_global_init() (also
 * called by llm_http_run) initialises libcurl once per process.
 *
 *     llm_http_req hr = { .url = u, .body = json, .cancel = &c };
 *     r = llm_http_run(&hr, on_data, ctx, err, sizeof(err));
 */
#ifndef LLM_HTTP_H
#define LLM_HTTP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#define LLM_HTTP_CONNECT_TIMEOUT_MS 5000  /* when the caller gives 0 */
#define LLM_HTTP_POLL_MS 5                /* cancel / timer check period */
#define LLM_HTTP_MAX_ERROR_BODY 65536     /* bytes of an error body kept */
#define LLM_HTTP_MAX_REQUEST_ID 200       /* longer or unprintable: not sent */
#define LLM_HTTP_MAX_API_KEY 1024         /* longer or unprintable: -EINVAL */

/* Return 0 to go on, a negative errno to abort the transfer. */
typedef int (*llm_http_data_fn)(void *user, const char *data, size_t len);

typedef struct llm_http_req {
	const char *url;              /* full URL */
	const char *body;             /* JSON to POST; NULL = GET */
	const char *api_key;          /* bearer key or NULL */
	const char *request_id;       /* sent as X-Request-Id when printable
					 ASCII without spaces; NULL = none */
	const char *accept;           /* Accept header, or NULL */
	int connect_timeout_ms;       /* 0 = LLM_HTTP_CONNECT_TIMEOUT_MS */
	int first_token_timeout_ms;   /* 0 = none */
	int deadline_ms;              /* whole exchange; 0 = none */
	const atomic_bool *cancel;    /* NULL = not cancellable */
	const bool *got_first;        /* see above; NULL = first body byte */
} llm_http_req;

int llm_http_global_init(void);
int llm_http_run(const llm_http_req *req, llm_http_data_fn on_data,
		 void *user, char *err, size_t err_len);
/* Joins base URL and path, dropping a trailing '/' of base and a "/v1"
 * repeated by both (base ".../v1" + path "/v1/models"). Caller frees. */
char *llm_http_join(const char *base, const char *path);

#endif
