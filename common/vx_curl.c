/* vx_curl.c - shared libcurl plumbing; see vx_curl.h. */
#include "vx_curl.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static pthread_once_t vx_curl_once = PTHREAD_ONCE_INIT;
static CURLcode vx_curl_init_res;

static void vx_curl_do_init(void)
{
	vx_curl_init_res = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int vx_curl_global_init(void)
{
	pthread_once(&vx_curl_once, vx_curl_do_init);
	return vx_curl_init_res == CURLE_OK ? 0 : -EIO;
}

int vx_curl_setup(CURL *h, const char *url, const char *user_agent,
		  long timeout_ms, long connect_timeout_ms)
{
	if (timeout_ms > 0 && connect_timeout_ms > timeout_ms)
		connect_timeout_ms = timeout_ms;
	if (curl_easy_setopt(h, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_USERAGENT, user_agent) != CURLE_OK)
		return -ENOMEM;
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 0L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout_ms);
	return 0;
}

static int vx_curl_progress(void *user, curl_off_t dltotal, curl_off_t dlnow,
			    curl_off_t ultotal, curl_off_t ulnow)
{
	const atomic_bool *cancel = user;

	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	return atomic_load(cancel) ? 1 : 0;
}

int vx_curl_cancel_on(CURL *h, const atomic_bool *cancel)
{
	if (!h)
		return -EINVAL;
	if (!cancel)
		return 0;
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, vx_curl_progress);
	/* the callback only reads through it */
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)cancel);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	return 0;
}

bool vx_curl_token_ok(const char *s, size_t max)
{
	size_t n = 0;

	if (!s)
		return false;
	for (; s[n]; n++)
		if (n >= max || s[n] < 0x21 || s[n] > 0x7e)
			return false;
	return n > 0;
}

int vx_curl_header_add(struct curl_slist **list, const char *fmt, ...)
{
	char line[VX_CURL_HEADER_MAX + 1];
	struct curl_slist *n;
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (len < 0 || (size_t)len >= sizeof(line) || strpbrk(line, "\r\n"))
		return -EINVAL;
	n = curl_slist_append(*list, line);
	if (!n)
		return -ENOMEM;
	*list = n;
	return 0;
}

int vx_curl_headers_auth(struct curl_slist **list, const char *api_key,
			 const char *request_id)
{
	struct curl_slist *add = NULL, *tail;
	bool key = api_key && *api_key, id = request_id && *request_id;
	int r = 0;

	if ((key && !vx_curl_token_ok(api_key, VX_CURL_API_KEY_MAX)) ||
	    (id && !vx_curl_token_ok(request_id, VX_CURL_REQUEST_ID_MAX)))
		return -EINVAL;
	if (key)
		r = vx_curl_header_add(&add, "Authorization: Bearer %s", api_key);
	if (r == 0 && id)
		r = vx_curl_header_add(&add, "X-Request-Id: %s", request_id);
	if (r < 0) {
		curl_slist_free_all(add);
		return r;
	}
	if (!*list) {
		*list = add;
		return 0;
	}
	for (tail = *list; tail->next; tail = tail->next)
		;
	tail->next = add;
	return 0;
}

int vx_curl_perform(CURL *h, const atomic_bool *cancel, int poll_ms,
		    CURLcode *ret_result)
{
	CURLM *m = curl_multi_init();
	CURLcode res = CURLE_OK;
	CURLMsg *msg;
	int running = 1, left, err = 0;

	if (!m)
		return -ENOMEM;
	if (curl_multi_add_handle(m, h) != CURLM_OK) {
		err = -ENOMEM;
		goto out_cleanup_multi;
	}
	for (;;) {
		if (curl_multi_perform(m, &running) != CURLM_OK) {
			err = -EIO;
			break;
		}
		if (!running)
			break;
		if (cancel && atomic_load(cancel)) {
			err = -ECANCELED;
			break;
		}
		if (curl_multi_poll(m, NULL, 0, poll_ms, NULL) != CURLM_OK) {
			err = -EIO;
			break;
		}
	}
	while ((msg = curl_multi_info_read(m, &left)))
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == h)
			res = msg->data.result;
	curl_multi_remove_handle(m, h);
	if (err == 0)
		*ret_result = res;
out_cleanup_multi:
	curl_multi_cleanup(m);
	return err;
}

int vx_curl_errno(CURLcode res, int other)
{
	switch (res) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_ABORTED_BY_CALLBACK:
		return -ECANCELED;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_WEIRD_SERVER_REPLY:
		return -EPROTO;
	default:
		return other;
	}
}
