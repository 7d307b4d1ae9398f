/*
 * vx_req.c - requests on libmicrohttpd: routing, body, answers, jobs,
 * streams, request metrics.
 *
 * Below it: the serving loop (vx_loop.h) holds the connection, calls the
 * MHD callbacks here and suspends/resumes on request; the routing decision
 * is vx_route.c's. Above it: the server sets up a vx_req_host and answers
 * built-in routes through its builtin callback.
 */
#include "vx_req.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vx_log.h"
#include "vx_req_int.h"
#include "vx_route.h"
#include "vx_time.h"

#define REQ_MAX_HEADERS 16          /* response headers a handler may add */
#define REQ_MAX_FIELDS 32           /* multipart fields kept */
#define STREAM_HIGH_WATER (256 * 1024)  /* unsent bytes before writers wait */
#define WRITER_WAIT_MS 200          /* a blocked stream writer rechecks */

typedef struct form_state {
	vx_form_field fields[REQ_MAX_FIELDS];
	vx_buf data[REQ_MAX_FIELDS];
	size_t n;
	int error;                  /* parse result, 1 = not parsed yet */
} form_state;

struct vx_req {
	vx_req_host *host;
	vx_loop *loop;              /* the loop whose MHD daemon holds conn */
	vx_loop_watch watch;        /* conn, and its place in the loop's list */
	struct MHD_Connection *conn;
	const vx_route *route;
	vx_route_stats *stats;
	char *url;                  /* path without the query */
	const char *method;
	char id[40];
	double t_start;
	double deadline;            /* monotonic seconds */
	atomic_int refs;
	atomic_bool cancelled;
	bool seen_first_call;
	bool dispatched;
	bool refuse_now;            /* answer 413 before reading the body */
	size_t discarded;           /* body bytes dropped after a 413 */
	bool counted_in_flight;
	vx_buf body;
	size_t max_body;
	char media_type[96];

	/* answer */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int status;
	char *hdr_name[REQ_MAX_HEADERS], *hdr_value[REQ_MAX_HEADERS];
	int n_hdr;
	char *resp_ctype;
	vx_buf resp;
	bool replied;
	bool job_running;
	bool streaming;             /* stream_begin called */
	bool stream_done;           /* job finished */
	size_t stream_off;          /* bytes of resp already handed to MHD */
	bool client_gone;
	bool suspended;             /* MHD holds it until we resume it */
	bool queued;                /* the answer is with MHD */
	bool done;                  /* MHD finished with it: conn is gone */

	form_state *form;
};

static vx_req *req_of(vx_loop_watch *w)
{
	return (vx_req *)((char *)w - offsetof(vx_req, watch));
}

static void req_ref(vx_req *req) { atomic_fetch_add(&req->refs, 1); }
static void req_unref(vx_req *req);
static void job_answered(vx_req *req);
void vx_req_hold(vx_loop_watch *w) { req_ref(req_of(w)); }
void vx_req_release(vx_loop_watch *w) { req_unref(req_of(w)); }

/* Lock held: something the suspended connection waits for is ready. */
static void req_wake_locked(vx_req *req)
{
	pthread_cond_broadcast(&req->cond);
	if (req->suspended && !req->done) {
		req->suspended = false;
		vx_loop_resume(req->loop, &req->watch);
	}
}

static void req_unref(vx_req *req)
{
	if (atomic_fetch_sub(&req->refs, 1) != 1)
		return;
	for (int i = 0; i < req->n_hdr; i++) {
		free(req->hdr_name[i]);
		free(req->hdr_value[i]);
	}
	if (req->form) {
		for (size_t i = 0; i < req->form->n; i++) {
			free((char *)req->form->fields[i].name);
			free((char *)req->form->fields[i].filename);
			free((char *)req->form->fields[i].content_type);
			vx_buf_release(&req->form->data[i]);
		}
		free(req->form);
	}
	free(req->resp_ctype);
	vx_buf_release(&req->resp);
	vx_buf_release(&req->body);
	pthread_mutex_destroy(&req->lock);
	pthread_cond_destroy(&req->cond);
	free(req->url);
	free(req);
}

/* ---- accessors ---- */

const char *vx_req_method(const vx_req *req) { return req->method; }
const char *vx_req_path(const vx_req *req) { return req->url; }
const char *vx_req_id(const vx_req *req) { return req->id; }
const atomic_bool *vx_req_cancelled(const vx_req *req) { return &req->cancelled; }

double vx_req_elapsed_ms(const vx_req *req)
{
	return (vx_now() - req->t_start) * 1000.0;
}

const char *vx_req_header(const vx_req *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *vx_req_query(const vx_req *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND,
					   name);
}

const char *vx_req_content_type(const vx_req *req)
{
	const char *ct = vx_req_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
	return ct ? ct : "";
}

const char *vx_req_media_type(const vx_req *req)
{
	return req->media_type;
}

const char *vx_req_body(const vx_req *req, size_t *ret_len)
{
	if (ret_len)
		*ret_len = req->body.len;
	return req->body.data ? req->body.data : "";
}

/* ---- multipart ---- */

static enum MHD_Result form_iter(void *cls, enum MHD_ValueKind kind,
				 const char *key, const char *filename,
				 const char *content_type,
				 const char *transfer_encoding,
				 const char *data, uint64_t off, size_t size)
{
	form_state *f = cls;
	(void)kind;
	(void)transfer_encoding;
	(void)off;
	if (!key)
		return MHD_YES;
	size_t i;
	for (i = 0; i < f->n; i++) {
		if (!strcmp(f->fields[i].name, key))
			break;
	}
	if (i == f->n) {
		if (f->n == REQ_MAX_FIELDS)
			return MHD_YES;   /* extra fields are ignored */
		f->fields[i].name = strdup(key);
		f->fields[i].filename = filename ? strdup(filename) : NULL;
		f->fields[i].content_type = content_type ? strdup(content_type) : NULL;
		f->n++;
	}
	if (size && vx_buf_append(&f->data[i], data, size) < 0) {
		f->error = -ENOMEM;
		return MHD_NO;
	}
	return MHD_YES;
}

static int form_parse(vx_req *req)
{
	form_state *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	req->form = f;
	if (strcmp(req->media_type, "multipart/form-data") != 0 &&
	    strcmp(req->media_type, "application/x-www-form-urlencoded") != 0) {
		f->error = -EMEDIUMTYPE;
		return f->error;
	}
	struct MHD_PostProcessor *pp =
		MHD_create_post_processor(req->conn, 64 * 1024, form_iter, f);
	if (!pp) {
		f->error = -EBADMSG;   /* no or bad boundary */
		return f->error;
	}
	size_t len;
	const char *body = vx_req_body(req, &len);
	if (MHD_post_process(pp, body, len) != MHD_YES && !f->error)
		f->error = -EBADMSG;
	if (MHD_destroy_post_processor(pp) != MHD_YES && !f->error)
		f->error = -EBADMSG;
	for (size_t i = 0; i < f->n; i++) {
		f->fields[i].data = f->data[i].data ? f->data[i].data : "";
		f->fields[i].len = f->data[i].len;
	}
	if (!f->error && f->n == 0 && len > 0)
		f->error = -EBADMSG;
	return f->error;
}

int vx_req_form(vx_req *req, const char *name, const vx_form_field **ret)
{
	int r = req->form ? req->form->error : form_parse(req);
	if (r < 0)
		return r;
	for (size_t i = 0; i < req->form->n; i++) {
		if (!strcmp(req->form->fields[i].name, name)) {
			*ret = &req->form->fields[i];
			return 0;
		}
	}
	return -ENOENT;
}

/* ---- answers ---- */

void vx_req_add_header(vx_req *req, const char *name, const char *value)
{
	pthread_mutex_lock(&req->lock);
	if (req->n_hdr < REQ_MAX_HEADERS && !req->replied) {
		req->hdr_name[req->n_hdr] = strdup(name);
		req->hdr_value[req->n_hdr] = strdup(value);
		if (req->hdr_name[req->n_hdr] && req->hdr_value[req->n_hdr])
			req->n_hdr++;
	}
	pthread_mutex_unlock(&req->lock);
}

void vx_req_reply_buf(vx_req *req, int status, const char *content_type,
		      vx_buf *body)
{
	job_answered(req);
	pthread_mutex_lock(&req->lock);
	if (!req->replied) {
		req->replied = true;
		req->status = status;
		req->resp_ctype = strdup(content_type ? content_type : "text/plain");
		req->resp = *body;
		vx_buf_init(body);
		req_wake_locked(req);
	}
	pthread_mutex_unlock(&req->lock);
	vx_buf_release(body);
}

void vx_req_reply(vx_req *req, int status, const char *content_type,
		  const void *data, size_t len)
{
	vx_buf b = {0};
	if (vx_buf_append(&b, data, len) < 0) {
		status = 500;
		content_type = "application/json";
		vx_buf_puts(&b, "{\"error\":{\"code\":\"out_of_memory\","
			    "\"message\":\"out of memory\"}}");
	}
	vx_req_reply_buf(req, status, content_type, &b);
}

void vx_req_reply_json(vx_req *req, int status, const char *json)
{
	vx_req_reply(req, status, "application/json", json, strlen(json));
}

static void __attribute__((format(printf, 5, 0)))
req_error(vx_req *req, int status, const char *code, const char *param,
	  const char *fmt, va_list ap)
{
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	vx_buf b = {0};
	vx_error_json(&b, status, code, param, msg);
	vx_buf_puts(&b, "\n");
	if (status == 503)
		vx_req_add_header(req, "Retry-After", "1");
	if (status >= 500)
		vx_log_warn(req->id, "answered %d %s: %s", status, code, msg);
	vx_req_reply_buf(req, status, "application/json", &b);
}

void vx_req_error(vx_req *req, int status, const char *code,
		  const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	req_error(req, status, code, NULL, fmt, ap);
	va_end(ap);
}

void vx_req_error_param(vx_req *req, int status, const char *code,
			const char *param, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	req_error(req, status, code, param, fmt, ap);
	va_end(ap);
}

/* ---- handing answers to libmicrohttpd (loop thread only) ---- */

static void add_common_headers(vx_req *req, struct MHD_Response *resp)
{
	MHD_add_response_header(resp, "X-Request-Id", req->id);
	for (int i = 0; i < req->n_hdr; i++)
		MHD_add_response_header(resp, req->hdr_name[i], req->hdr_value[i]);
	/* Past the drain delay, keep-alive ends with each answer. */
	if (atomic_load(req->host->accept_stopped))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
}

/* The request stops counting as work in flight once its whole answer is
 * with MHD (or the connection ends): /healthz then reports real work, not
 * answers still on their way out. */
static void leave_flight(vx_req *req)
{
	if (req->counted_in_flight) {
		req->counted_in_flight = false;
		atomic_fetch_sub(&req->host->in_flight, 1);
	}
}

static enum MHD_Result queue_buffered(vx_req *req)
{
	leave_flight(req);
	size_t len;
	char *data = vx_buf_detach(&req->resp, &len);
	struct MHD_Response *resp = MHD_create_response_from_buffer(
		len, data ? data : (char *)"", data ? MHD_RESPMEM_MUST_FREE :
		MHD_RESPMEM_PERSISTENT);
	if (!resp) {
		free(data);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				req->resp_ctype);
	add_common_headers(req, resp);
	enum MHD_Result r = MHD_queue_response(req->conn,
					       (unsigned)req->status, resp);
	MHD_destroy_response(resp);
	return r;
}

/* MHD asks for more of a streamed answer (loop thread). With nothing to
 * give yet the connection is suspended until the writer adds some. */
static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	vx_req *req = cls;
	(void)pos;
	ssize_t n = 0;
	pthread_mutex_lock(&req->lock);
	size_t avail = req->resp.len - req->stream_off;
	if (avail) {
		n = (ssize_t)(avail < max ? avail : max);
		memcpy(buf, req->resp.data + req->stream_off, (size_t)n);
		req->stream_off += (size_t)n;
		if (req->stream_off == req->resp.len) {
			vx_buf_reset(&req->resp);
			req->stream_off = 0;
		}
		pthread_cond_broadcast(&req->cond);
	} else if (req->client_gone) {
		n = MHD_CONTENT_READER_END_WITH_ERROR;
	} else if (req->stream_done) {
		leave_flight(req);
		n = MHD_CONTENT_READER_END_OF_STREAM;
	} else {
		req->suspended = true;
	}
	bool suspend = req->suspended;
	pthread_mutex_unlock(&req->lock);
	if (suspend)
		vx_loop_suspend(req->loop, &req->watch);
	return n;
}

static enum MHD_Result queue_stream(vx_req *req)
{
	struct MHD_Response *resp = MHD_create_response_from_callback(
		MHD_SIZE_UNKNOWN, 16 * 1024, stream_reader, req, NULL);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				req->resp_ctype);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	add_common_headers(req, resp);
	enum MHD_Result r = MHD_queue_response(req->conn,
					       (unsigned)req->status, resp);
	MHD_destroy_response(resp);
	return r;
}

/* A suspended request's periodic check (loop thread): the client hung up,
 * the deadline passed, or the drain ended (cut: answer 503 if unanswered). */
void vx_req_watch(vx_loop_watch *w, bool gone, double now, bool cut)
{
	vx_req *req = req_of(w);
	pthread_mutex_lock(&req->lock);
	if (gone)
		req->client_gone = true;
	if (gone || cut || now > req->deadline)
		atomic_store(&req->cancelled, true);
	bool answer = cut && !req->replied;
	/* A stream whose client left (or the drain's end) stops at once; a
	 * job's connection waits for the job, which sees the cancel flag. */
	if (req->streaming && (gone || cut)) {
		req->client_gone = true;
		req_wake_locked(req);
	}
	pthread_cond_broadcast(&req->cond);
	pthread_mutex_unlock(&req->lock);
	if (answer)
		vx_req_error(req, 503, "draining",
			     "server is shutting down; retry on another instance");
}

/* The loop is stopping: the request is resumed for MHD to close it. */
void vx_req_abandon(vx_loop_watch *w)
{
	vx_req *req = req_of(w);
	pthread_mutex_lock(&req->lock);
	req->suspended = false;
	req->client_gone = true;
	atomic_store(&req->cancelled, true);
	pthread_cond_broadcast(&req->cond);
	pthread_mutex_unlock(&req->lock);
}

/* ---- jobs ---- */

/* The request whose job this thread runs (job_trampoline), until it has
 * answered. */
static __thread vx_req *tl_job_req;

/* req's answer is complete: when it comes from req's own job, the job's
 * place in the pool is free from now on, before the client can have the
 * answer (else a client that calls again at once could find the pool
 * still full: seen as a flaky 503 with --workers 1 --queue 0). */
static void job_answered(vx_req *req)
{
	if (tl_job_req == req) {
		tl_job_req = NULL;
		vx_pool_job_done();
	}
}

typedef struct job_ctx {
	vx_req *req;
	vx_req_job fn;
	void *arg;
} job_ctx;

static void job_trampoline(void *p)
{
	job_ctx *jc = p;
	vx_req *req = jc->req;
	vx_req_host *h = req->host;
	tl_job_req = req;
	jc->fn(req, jc->arg);
	free(jc);
	job_answered(req);   /* a stream ends below */
	pthread_mutex_lock(&req->lock);
	req->job_running = false;
	req->stream_done = true;
	req_wake_locked(req);
	pthread_mutex_unlock(&req->lock);
	req_unref(req);
	atomic_fetch_sub(&h->jobs, 1);
}

int vx_req_run(vx_req *req, vx_pool *pool, vx_req_job job, void *arg)
{
	job_ctx *jc = malloc(sizeof(*jc));
	if (!jc) {
		vx_req_error(req, 500, "out_of_memory", "out of memory");
		return -ENOMEM;
	}
	*jc = (job_ctx){ req, job, arg };
	req_ref(req);
	atomic_fetch_add(&req->host->jobs, 1);
	pthread_mutex_lock(&req->lock);
	req->job_running = true;
	pthread_mutex_unlock(&req->lock);
	int r = vx_pool_submit(pool, job_trampoline, jc);
	if (r < 0) {
		pthread_mutex_lock(&req->lock);
		req->job_running = false;
		pthread_mutex_unlock(&req->lock);
		atomic_fetch_sub(&req->host->jobs, 1);
		atomic_fetch_sub(&req->refs, 1);
		free(jc);
		vx_req_error(req, 503, "overloaded",
			     "all workers are busy; retry shortly");
		return -EAGAIN;
	}
	return 0;
}

int vx_req_stream_begin(vx_req *req, int status, const char *content_type)
{
	pthread_mutex_lock(&req->lock);
	int r = 0;
	if (req->replied) {
		r = -EALREADY;
	} else {
		req->replied = true;
		req->streaming = true;
		req->status = status;
		req->resp_ctype = strdup(content_type);
		req_wake_locked(req);
	}
	pthread_mutex_unlock(&req->lock);
	return r;
}

int vx_req_stream_write(vx_req *req, const void *data, size_t len)
{
	int r = 0;
	pthread_mutex_lock(&req->lock);
	/* A client that stops reading holds the writer here until the
	 * request's deadline (or the idle timeout closes the connection). */
	while (!req->client_gone && !atomic_load(&req->cancelled) &&
	       req->resp.len - req->stream_off > STREAM_HIGH_WATER) {
		vx_cond_wait_ms(&req->cond, &req->lock, WRITER_WAIT_MS);
		if (vx_now() > req->deadline)
			atomic_store(&req->cancelled, true);
	}
	if (req->client_gone || atomic_load(&req->cancelled))
		r = -EPIPE;
	else
		r = vx_buf_append(&req->resp, data, len);
	req_wake_locked(req);
	pthread_mutex_unlock(&req->lock);
	return r;
}

/* ---- request metrics ---- */

static void req_count(vx_req_host *h, vx_route_stats *rs, int status,
		      double seconds)
{
	if (status < 100 || status > 599)
		status = 500;
	vx_counter *c = atomic_load(&rs->by_status[status]);
	if (!c) {
		char labels[160];
		snprintf(labels, sizeof(labels), "route=\"%s\",code=\"%d\"",
			 rs->label, status);
		c = vx_metrics_counter(h->metrics, "voxline_http_requests_total",
				       "HTTP requests by route and status",
				       labels);
		atomic_store(&rs->by_status[status], c);
	}
	vx_counter_add(c, 1);
	vx_histogram_observe(rs->latency, seconds);
}

static void stats_init(vx_req_host *h, vx_route_stats *rs, const char *label)
{
	char labels[128];
	rs->label = label;
	snprintf(labels, sizeof(labels), "route=\"%s\"", label);
	rs->latency = vx_metrics_histogram(h->metrics,
		"voxline_http_request_duration_seconds",
		"HTTP request latency by route", labels,
		vx_latency_buckets, vx_latency_buckets_n);
}

void vx_req_host_init(vx_req_host *h)
{
	stats_init(h, &h->builtin_stats, "builtin");
	for (size_t i = 0; i < h->n_routes; i++)
		stats_init(h, &h->stats[i], h->routes[i].path);
}

/* ---- MHD callbacks ---- */

static void make_request_id(char *out, size_t cap)
{
	static atomic_uint_fast64_t counter;
	static uint64_t salt;
	if (!salt) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		salt = ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)ts.tv_nsec ^
		       ((uint64_t)getpid() << 40);
	}
	uint64_t n = atomic_fetch_add(&counter, 1) + 1;
	uint64_t x = (salt + n) * 0x9E3779B97F4A7C15ull;
	x ^= x >> 29;
	snprintf(out, cap, "%016llx", (unsigned long long)x);
}

static bool request_id_ok(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n > 36)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!isalnum((unsigned char)id[i]) && !strchr("-_.:", id[i]))
			return false;
	}
	return true;
}

void *vx_req_on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	vx_loop *l = cls;
	vx_req_host *h = vx_loop_arg(l);
	vx_req *req = calloc(1, sizeof(*req));
	if (!req)
		return NULL;
	req->host = h;
	req->loop = l;
	req->conn = conn;
	req->watch = (vx_loop_watch){ .conn = conn, .idx = (size_t)-1 };
	req->t_start = vx_now();
	req->deadline = req->t_start + h->request_timeout_s;
	req->stats = &h->builtin_stats;
	atomic_init(&req->refs, 1);
	pthread_mutex_init(&req->lock, NULL);
	pthread_cond_init(&req->cond, NULL);
	size_t plen = strcspn(uri, "?");
	req->url = strndup(uri, plen);
	if (!req->url) {
		free(req);
		return NULL;
	}
	atomic_fetch_add(&h->in_flight, 1);
	req->counted_in_flight = true;
	return req;
}

static void parse_media_type(vx_req *req)
{
	const char *ct = vx_req_content_type(req);
	size_t n = strcspn(ct, ";");
	while (n && isspace((unsigned char)ct[n - 1]))
		n--;
	size_t i = 0;
	while (i < n && isspace((unsigned char)ct[i]))
		i++;
	size_t j = 0;
	for (; i < n && j + 1 < sizeof(req->media_type); i++)
		req->media_type[j++] = (char)tolower((unsigned char)ct[i]);
	req->media_type[j] = '\0';
}

/* First call: headers are in. Decides route, auth and body limit
 * (vx_route_decide); built-in routes are the server's. */
static void on_headers(vx_req_host *h, vx_req *req, const char *method)
{
	req->method = method;
	const char *rid = vx_req_header(req, "X-Request-Id");
	if (rid && request_id_ok(rid))
		snprintf(req->id, sizeof(req->id), "%s", rid);
	else
		make_request_id(req->id, sizeof(req->id));
	parse_media_type(req);

	if (h->builtin && h->builtin(h->builtin_arg, req))
		return;
	const char *up = vx_req_header(req, MHD_HTTP_HEADER_UPGRADE);
	if (up && !strcasecmp(up, "websocket") &&
	    vx_route_ws_find(h->ws_routes, h->n_ws_routes, req->url,
			     strlen(req->url))) {
		/* The loop hands upgrades to libwebsockets only as the first
		 * request of a connection; this one came on a kept-alive one. */
		vx_req_add_header(req, MHD_HTTP_HEADER_CONNECTION, "close");
		vx_req_error(req, 503, "reconnect",
			     "a WebSocket upgrade must be the first request on "
			     "its connection; open a new connection");
		return;
	}
	vx_route_table t = {
		.routes = h->routes, .n_routes = h->n_routes,
		.api_key = h->api_key, .max_body = h->max_body,
		.discard_max = VX_REQ_DISCARD_MAX,
	};
	vx_route_request q = {
		.method = method, .path = req->url,
		.authorization = vx_req_header(req, MHD_HTTP_HEADER_AUTHORIZATION),
		.content_length = vx_req_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH),
		.transfer_encoding =
			vx_req_header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL,
	};
	vx_route_verdict v;
	vx_route_decide(&t, &q, &v);
	if (v.route >= 0)
		req->stats = &h->stats[v.route];
	if (v.matched)
		req->route = &h->routes[v.route];
	req->max_body = v.max_body;
	if (!v.status)
		return;
	if (v.allow[0])
		vx_req_add_header(req, "Allow", v.allow);
	if (v.www_authenticate)
		vx_req_add_header(req, "WWW-Authenticate", "Bearer");
	req->refuse_now = v.close;
	vx_req_error(req, v.status, v.code, "%s", v.message);
}

/* The whole request is in (or its connection was resumed): run the route,
 * then queue the answer, or suspend until a job produces it. */
static void run_route(vx_req *req, void *arg)
{
	(void)arg;
	req->route->fn(req, req->host->user);
}

static enum MHD_Result on_request(vx_req_host *h, vx_req *req)
{
	if (!req->dispatched) {
		req->dispatched = true;
		if (req->replied)
			;
		else if (req->route->blocking)
			vx_req_run(req, h->handler_pool, run_route, NULL);
		else
			req->route->fn(req, h->user);
	}
	pthread_mutex_lock(&req->lock);
	bool queued = req->queued, streaming = req->streaming;
	bool replied = req->replied, wait = req->job_running && !replied;
	if (replied)
		req->queued = true;
	if (wait)
		req->suspended = true;
	pthread_mutex_unlock(&req->lock);
	if (queued)
		return MHD_YES;
	if (wait) {
		vx_loop_suspend(req->loop, &req->watch);
		return MHD_YES;
	}
	if (streaming)
		return queue_stream(req);
	if (!replied) {
		if (atomic_load(&req->cancelled) && vx_now() > req->deadline)
			vx_req_error(req, 504, "deadline_exceeded",
				     "request took longer than allowed");
		else
			vx_req_error(req, 500, "no_answer",
				     "the handler did not answer");
		req->queued = true;
	}
	return queue_buffered(req);
}

enum MHD_Result vx_req_on_access(void *cls, struct MHD_Connection *conn,
				 const char *url, const char *method,
				 const char *version, const char *upload_data,
				 size_t *upload_data_size, void **con_cls)
{
	vx_req_host *h = vx_loop_arg(cls);
	vx_req *req = *con_cls;
	(void)url;
	(void)version;
	(void)conn;
	if (!req)
		return MHD_NO;
	if (!req->seen_first_call) {
		req->seen_first_call = true;
		on_headers(h, req, method);
		/* Only a body that is too large is answered before it is read
		 * (MHD then closes the connection); the rest waits for the end
		 * of the request so keep-alive is kept. */
		if (req->refuse_now) {
			req->queued = true;
			return queue_buffered(req);
		}
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		if (req->replied) {
			/* Already answered (a body past the limit): MHD
			 * cannot answer mid-upload, so the rest is read and
			 * dropped, up to DISCARD_MAX past the limit, then the
			 * line is cut. */
			req->discarded += n;
			return req->discarded > VX_REQ_DISCARD_MAX + req->max_body ?
				MHD_NO : MHD_YES;
		}
		if (req->body.len + n > req->max_body) {
			vx_req_error(req, 413, "body_too_large",
				     "request body is over the limit of %zu bytes",
				     req->max_body);
			req->discarded = req->body.len + n;
			vx_buf_release(&req->body);
			return MHD_YES;
		}
		if (vx_buf_append(&req->body, upload_data, n) < 0)
			return MHD_NO;
		return MHD_YES;
	}
	return on_request(h, req);
}

void vx_req_on_completed(void *cls, struct MHD_Connection *conn,
			 void **con_cls, enum MHD_RequestTerminationCode toe)
{
	vx_req_host *h = vx_loop_arg(cls);
	vx_req *req = *con_cls;
	(void)conn;
	if (!req)
		return;
	*con_cls = NULL;
	pthread_mutex_lock(&req->lock);
	if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
		req->client_gone = true;
	req->done = true;
	req->suspended = false;
	atomic_store(&req->cancelled, true);
	pthread_cond_broadcast(&req->cond);
	int status = req->status ? req->status : 499;
	if (req->client_gone && toe != MHD_REQUEST_TERMINATED_COMPLETED_OK &&
	    !req->streaming)
		status = 499;
	pthread_mutex_unlock(&req->lock);
	if (req->method)
		req_count(h, req->stats, status, vx_now() - req->t_start);
	if (status == 503 && req->stats != &h->builtin_stats)
		vx_counter_add(h->rejected, 1);   /* not /healthz saying "loading" */
	leave_flight(req);
	req_unref(req);
}
