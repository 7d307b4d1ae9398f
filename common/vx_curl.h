/*
 * vx_curl.h - the libcurl plumbing every voxline HTTP client repeats.
 *
 * What: one-time curl_global_init, the options every request sets (URL,
 * NOSIGNAL, User-Agent, timeouts), the Authorization / X-Request-Id
 * headers, a cancel flag polled during the transfer, a transfer loop on a
 * private multi handle, and the CURLcode -> negative errno mapping:
 *   -ECONNREFUSED  could not connect, host or proxy unresolvable
 *   -ETIMEDOUT     CURLOPT_TIMEOUT_MS / CONNECTTIMEOUT_MS passed
 *   -ECANCELED     a progress callback stopped the transfer
 *   -ENOMEM        libcurl ran out of memory
 *   -EPROTO        nothing, a cut or a garbled answer from the server
 *   other          anything else (the caller's choice of errno)
 * Headers carry only what cannot smuggle in another header: a value with
 * CR or LF, or a line longer than VX_CURL_HEADER_MAX, is -EINVAL.
 *
 * Ownership: the caller owns every CURL handle and curl_slist; nothing
 * here keeps a pointer past the call, except that vx_curl_cancel_on makes
 * the handle read *cancel until the caller's curl_easy_cleanup.
 *
 * Thread safety: all functions are thread-safe for distinct handles;
 * vx_curl_global_init may be called from any thread, any number of times.
 * Linking: the users of this module link libcurl themselves (-lcurl is not
 * part of COMMON_LIBS).
 *
 *     if ((r = vx_curl_global_init()) < 0) return r;
 *     vx_curl_setup(h, url, "voxline-x", 60000, 10000);
 *     vx_curl_headers_auth(&hdrs, key, req_id);
 *     r = vx_curl_perform(h, cancel, 20, &res);
 *     if (r == 0 && res != CURLE_OK) r = vx_curl_errno(res, -EIO);
 */
#ifndef VX_CURL_H
#define VX_CURL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>

#define VX_CURL_HEADER_MAX 1100     /* bytes of one header line we send */
#define VX_CURL_API_KEY_MAX 1024    /* bytes of a bearer key */
#define VX_CURL_REQUEST_ID_MAX 200  /* bytes of an X-Request-Id value */

/* curl_global_init once per process. 0, or -EIO when libcurl failed. */
int vx_curl_global_init(void);

/* Sets URL, NOSIGNAL, User-Agent, the total timeout (0 = none) and the
 * connect timeout (capped to the total one when that is set).
 * 0 or -ENOMEM. */
int vx_curl_setup(CURL *h, const char *url, const char *user_agent,
		  long timeout_ms, long connect_timeout_ms);

/* Makes the transfer stop with CURLE_ABORTED_BY_CALLBACK (-ECANCELED) once
 * *cancel is true; cancel NULL = not cancellable. Returns 0 or -EINVAL. */
int vx_curl_cancel_on(CURL *h, const atomic_bool *cancel);

/* Printable ASCII without spaces, 1..max bytes; NULL is not a token. */
bool vx_curl_token_ok(const char *s, size_t max);

/* Appends one header line built from fmt to *list. -EINVAL when the line
 * holds CR or LF or is longer than VX_CURL_HEADER_MAX, -ENOMEM; *list is
 * unchanged on failure. */
int vx_curl_header_add(struct curl_slist **list, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Appends "Authorization: Bearer <api_key>" when api_key is non-empty and
 * "X-Request-Id: <request_id>" when request_id is non-empty. -EINVAL when
 * either is not a token (vx_curl_token_ok with VX_CURL_API_KEY_MAX /
 * VX_CURL_REQUEST_ID_MAX): a caller that would rather drop a bad request
 * id checks it first. -ENOMEM; *list is unchanged on failure. */
int vx_curl_headers_auth(struct curl_slist **list, const char *api_key,
			 const char *request_id);

/* Runs h to its end on a private multi handle, waking every poll_ms to
 * look at *cancel (NULL = never). 0 when the transfer ended, its result
 * (possibly an error) in *ret_result; -ECANCELED when *cancel was seen
 * first; -ENOMEM / -EIO when the multi interface failed. h is removed from
 * the multi handle before return, never cleaned up. */
int vx_curl_perform(CURL *h, const atomic_bool *cancel, int poll_ms,
		    CURLcode *ret_result);

/* The negative errno for a failed transfer (table above); other for the
 * codes the table does not name. */
int vx_curl_errno(CURLcode res, int other);

#endif
