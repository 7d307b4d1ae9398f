/* llm_http.c - streaming HTTP exchange with an upstream; see llm_http.h. */
#include "llm_http.h"

#include <cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vx_buf.h"
#include "vx_curl.h"
#include "vx_time.h"

_Static_assert(LLM_HTTP_MAX_API_KEY <= VX_CURL_API_KEY_MAX &&
	       LLM_HTTP_MAX_REQUEST_ID <= VX_CURL_REQUEST_ID_MAX,
	       "vx_curl_headers_auth must take what llm_http lets through");

typedef struct llm_http_state {
	const llm_http_req *req;
	llm_http_data_fn on_data;
	void *user;
	CURL *easy;
	int64_t t0_ms;         /* start, monotonic */
	bool got_byte;         /* any body byte seen */
	long status;           /* HTTP status once known */
	vx_buf error_body;     /* body of a non-2xx answer */
	int abort;             /* negative errno once the transfer must stop */
	bool handler_abort;    /* abort came from on_data (keeps its message) */
} llm_http_state;

static pthread_once_t llm_http_once = PTHREAD_ONCE_INIT;
static int llm_http_init_result;
/* One connection cache (and DNS / TLS session cache) for the process, so
 * requests to the same upstream reuse kept-alive connections instead of a
 * TCP (and TLS) handshake each. A transfer stopped early is not put back:
 * its connection is closed, which is how the upstream learns of a cancel. */
static CURLSH *llm_http_share;
static pthread_mutex_t llm_http_share_locks[CURL_LOCK_DATA_LAST];

static void llm_http_share_lock(CURL *h, curl_lock_data d,
				curl_lock_access a, void *u)
{
	(void)h; (void)a; (void)u;
	pthread_mutex_lock(&llm_http_share_locks[d]);
}

static void llm_http_share_unlock(CURL *h, curl_lock_data d, void *u)
{
	(void)h; (void)u;
	pthread_mutex_unlock(&llm_http_share_locks[d]);
}

static void llm_http_do_init(void)
{
	llm_http_init_result = vx_curl_global_init();
	if (llm_http_init_result < 0)
		return;
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&llm_http_share_locks[i], NULL);
	llm_http_share = curl_share_init();
	if (!llm_http_share)
		return;   /* no sharing: every request connects anew */
	curl_share_setopt(llm_http_share, CURLSHOPT_LOCKFUNC, llm_http_share_lock);
	curl_share_setopt(llm_http_share, CURLSHOPT_UNLOCKFUNC, llm_http_share_unlock);
	curl_share_setopt(llm_http_share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
	curl_share_setopt(llm_http_share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(llm_http_share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
}

int llm_http_global_init(void)
{
	pthread_once(&llm_http_once, llm_http_do_init);
	return llm_http_init_result == 0 ? 0 : -ENOMEM;
}

char *llm_http_join(const char *base, const char *path)
{
	size_t bl = strlen(base);
	while (bl && base[bl - 1] == '/')
		bl--;
	if (bl >= 3 && memcmp(base + bl - 3, "/v1", 3) == 0 &&
	    strncmp(path, "/v1/", 4) == 0)
		path += 3;
	vx_buf b = {0};
	if (vx_buf_append(&b, base, bl) || vx_buf_puts(&b, path)) {
		vx_buf_release(&b);
		return NULL;
	}
	return vx_buf_detach(&b, NULL);
}

/* Sets st->abort when the caller cancelled or a timer ran out. */
static int llm_http_check(llm_http_state *st, char *err, size_t err_len)
{
	const llm_http_req *q = st->req;
	if (st->abort)
		return st->abort;
	if (q->cancel && atomic_load(q->cancel)) {
		snprintf(err, err_len, "cancelled");
		return st->abort = -ECANCELED;
	}
	int64_t el = (int64_t)vx_now_ms() - st->t0_ms;
	bool first = q->got_first ? *q->got_first : st->got_byte;
	if (q->first_token_timeout_ms > 0 && !first &&
	    el > q->first_token_timeout_ms) {
		snprintf(err, err_len, "no token from upstream within %d ms",
			 q->first_token_timeout_ms);
		return st->abort = -ETIMEDOUT;
	}
	if (q->deadline_ms > 0 && el > q->deadline_ms) {
		snprintf(err, err_len, "upstream did not finish within %d ms",
			 q->deadline_ms);
		return st->abort = -ETIMEDOUT;
	}
	return 0;
}

static size_t llm_http_write(char *data, size_t size, size_t nmemb, void *ud)
{
	llm_http_state *st = ud;
	size_t len = size * nmemb;
	if (st->abort)
		return 0;
	if (!st->status)
		curl_easy_getinfo(st->easy, CURLINFO_RESPONSE_CODE, &st->status);
	st->got_byte = true;
	if (st->status < 200 || st->status >= 300) {
		size_t room = LLM_HTTP_MAX_ERROR_BODY - st->error_body.len;
		if (vx_buf_append(&st->error_body, data, len < room ? len : room))
			st->abort = -ENOMEM;
		return st->abort ? 0 : len;
	}
	int r = st->on_data(st->user, data, len);
	if (r < 0) {
		st->abort = r;
		st->handler_abort = true;
		return 0;
	}
	return len;
}

/* Called by libcurl during the transfer, also while it waits. */
static int llm_http_xferinfo(void *ud, curl_off_t dt, curl_off_t dn,
			     curl_off_t ut, curl_off_t un)
{
	(void)dt; (void)dn; (void)ut; (void)un;
	llm_http_state *st = ud;
	const llm_http_req *q = st->req;
	if (st->abort)
		return 1;
	return q->cancel && atomic_load(q->cancel) ? 1 : 0;
}

/* The upstream's own error message from an error body, or NULL. */
static void llm_http_error_message(const vx_buf *body, long status,
				   const char *url, char *err, size_t err_len)
{
	cJSON *j = body->data ? cJSON_Parse(body->data) : NULL;
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
	const char *msg = NULL;
	if (cJSON_IsString(e))
		msg = e->valuestring;
	else if (cJSON_IsObject(e) &&
		 cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "message")))
		msg = cJSON_GetObjectItemCaseSensitive(e, "message")->valuestring;
	else if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "message")))
		msg = cJSON_GetObjectItemCaseSensitive(j, "message")->valuestring;
	if (msg)
		snprintf(err, err_len, "upstream HTTP %ld: %s", status, msg);
	else if (body->len)
		snprintf(err, err_len, "upstream HTTP %ld: %.160s", status,
			 body->data);
	else
		snprintf(err, err_len, "upstream HTTP %ld from %s", status, url);
	cJSON_Delete(j);
}

static int llm_http_status_errno(long status)
{
	if (status == 404)
		return -ENOENT;
	if (status == 400 || status == 422)
		return -EINVAL;
	return -EPROTO;
}

static int llm_http_curl_errno(CURLcode rc, const llm_http_state *st)
{
	switch (rc) {
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
		return st->status ? -EPROTO : -ECONNREFUSED;
	default:
		return vx_curl_errno(rc, -EPROTO);
	}
}

/* The request headers; a request id unfit for a header is not sent. */
static int llm_http_headers(const llm_http_req *q, struct curl_slist **hdrs)
{
	const char *id = vx_curl_token_ok(q->request_id, LLM_HTTP_MAX_REQUEST_ID)
			 ? q->request_id : NULL;
	int r = 0;

	if (q->api_key && q->api_key[0] &&
	    !vx_curl_token_ok(q->api_key, LLM_HTTP_MAX_API_KEY))
		return -EINVAL;
	if (q->body)
		r = vx_curl_header_add(hdrs, "Content-Type: application/json");
	if (r == 0 && q->accept)
		r = vx_curl_header_add(hdrs, "Accept: %s", q->accept);
	if (r == 0)
		r = vx_curl_headers_auth(hdrs, q->api_key, id);
	/* No "Expect: 100-continue" round trip before the body. */
	if (r == 0)
		r = vx_curl_header_add(hdrs, "Expect:");
	return r;
}

static int llm_http_setup(llm_http_state *st, struct curl_slist **ret_hdrs)
{
	const llm_http_req *q = st->req;
	CURL *e = st->easy;
	struct curl_slist *h = NULL;
	int r = llm_http_headers(q, &h);

	*ret_hdrs = h;
	if (r < 0)
		return r;
	r = vx_curl_setup(e, q->url, "voxline-llm", 0,
			  q->connect_timeout_ms > 0 ? q->connect_timeout_ms
						    : LLM_HTTP_CONNECT_TIMEOUT_MS);
	if (r < 0)
		return r;
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, llm_http_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, st);
	curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, llm_http_xferinfo);
	curl_easy_setopt(e, CURLOPT_XFERINFODATA, st);
	curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
	if (llm_http_share)
		curl_easy_setopt(e, CURLOPT_SHARE, llm_http_share);
	if (q->body) {
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, q->body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(q->body));
	}
	return 0;
}

/* Drives the transfer, checking cancel and timers every LLM_HTTP_POLL_MS. */
static CURLcode llm_http_drive(llm_http_state *st, CURLM *m, char *err,
			       size_t err_len)
{
	CURLcode rc = CURLE_OK;
	for (;;) {
		int running = 0;
		if (curl_multi_perform(m, &running) != CURLM_OK)
			return CURLE_OUT_OF_MEMORY;
		if (llm_http_check(st, err, err_len))
			return CURLE_ABORTED_BY_CALLBACK;
		if (!running)
			break;
		if (curl_multi_poll(m, NULL, 0, LLM_HTTP_POLL_MS, NULL) != CURLM_OK)
			return CURLE_OUT_OF_MEMORY;
	}
	int left;
	CURLMsg *msg;
	while ((msg = curl_multi_info_read(m, &left)))
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == st->easy)
			rc = msg->data.result;
	return rc;
}

int llm_http_run(const llm_http_req *req, llm_http_data_fn on_data,
		 void *user, char *err, size_t err_len)
{
	llm_http_state st = { .req = req, .on_data = on_data, .user = user };
	struct curl_slist *hdrs = NULL;
	int r = llm_http_global_init();
	if (r)
		return r;
	st.t0_ms = (int64_t)vx_now_ms();
	st.easy = curl_easy_init();
	CURLM *m = curl_multi_init();
	if (!st.easy || !m) {
		r = -ENOMEM;
		goto out_cleanup;
	}
	if ((r = llm_http_setup(&st, &hdrs))) {
		snprintf(err, err_len, r == -EINVAL
			 ? "api key must be printable ASCII, at most %d bytes"
			 : "out of memory", LLM_HTTP_MAX_API_KEY);
		goto out_cleanup;
	}
	if (curl_multi_add_handle(m, st.easy) != CURLM_OK) {
		r = -ENOMEM;
		goto out_cleanup;
	}
	CURLcode rc = llm_http_drive(&st, m, err, err_len);
	if (!st.status)
		curl_easy_getinfo(st.easy, CURLINFO_RESPONSE_CODE, &st.status);
	if (st.abort) {
		r = st.abort;
		if (r == -ENOMEM && !st.handler_abort)
			snprintf(err, err_len, "out of memory");
	} else if (rc == CURLE_ABORTED_BY_CALLBACK && req->cancel &&
		   atomic_load(req->cancel)) {
		r = -ECANCELED;
		snprintf(err, err_len, "cancelled");
	} else if (st.status && (st.status < 200 || st.status >= 300)) {
		r = llm_http_status_errno(st.status);
		llm_http_error_message(&st.error_body, st.status, req->url, err,
				       err_len);
	} else if (rc != CURLE_OK) {
		r = llm_http_curl_errno(rc, &st);
		snprintf(err, err_len, "upstream %s: %s", req->url,
			 curl_easy_strerror(rc));
	}
	curl_multi_remove_handle(m, st.easy);
out_cleanup:
	/* Cleaning up an unfinished transfer closes its connection. */
	if (st.easy)
		curl_easy_cleanup(st.easy);
	if (m)
		curl_multi_cleanup(m);
	curl_slist_free_all(hdrs);
	vx_buf_release(&st.error_body);
	return r;
}
