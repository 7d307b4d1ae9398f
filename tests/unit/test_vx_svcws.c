/* test_vx_svcws.c - the service WebSocket layer in-process: a fake socket
 * (vx_svcws_io) records what would be sent, a real vx_pool runs the jobs.
 * No network, no server, no engine. */
#include "vx_test.h"
#include "vx_svcws.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the fake socket ---- */

#define SENT_MAX 64

typedef struct fake {
	pthread_mutex_t lock;
	char *sent[SENT_MAX];        /* text messages, in order */
	int n_sent;
	int n_binary;
	int close_status;
	atomic_int refs;
	atomic_bool closed;
} fake;

static fake *fake_of(const vx_wsconn *c) { return (fake *)(void *)c; }

static int fake_text(vx_wsconn *c, const char *text, size_t len)
{
	fake *f = fake_of(c);
	pthread_mutex_lock(&f->lock);
	if (f->n_sent < SENT_MAX)
		f->sent[f->n_sent++] = strndup(text, len);
	pthread_mutex_unlock(&f->lock);
	return 0;
}

static int fake_binary(vx_wsconn *c, const void *d, size_t len)
{
	(void)d;
	(void)len;
	fake_of(c)->n_binary++;
	return 0;
}

static void fake_close(vx_wsconn *c, int status, const char *reason)
{
	(void)reason;
	fake_of(c)->close_status = status;
}

static void fake_ref(vx_wsconn *c) { atomic_fetch_add(&fake_of(c)->refs, 1); }
static void fake_unref(vx_wsconn *c) { atomic_fetch_sub(&fake_of(c)->refs, 1); }
static bool fake_closed(const vx_wsconn *c) { return atomic_load(&fake_of(c)->closed); }
static size_t fake_queued(vx_wsconn *c) { (void)c; return 0; }
static const char *fake_rid(const vx_wsconn *c) { (void)c; return "test"; }

static const vx_svcws_io fake_io = {
	fake_text, fake_binary, fake_close, fake_ref, fake_unref,
	fake_closed, fake_queued, fake_rid,
};

static void fake_init(fake *f)
{
	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->lock, NULL);
}

static void fake_release(fake *f)
{
	for (int i = 0; i < f->n_sent; i++)
		free(f->sent[i]);
	pthread_mutex_destroy(&f->lock);
}

/* The i-th message sent, waiting up to 2 s for it; "" if none came. */
static const char *sent(fake *f, int i)
{
	for (int t = 0; t < 2000; t++) {
		pthread_mutex_lock(&f->lock);
		const char *s = i < f->n_sent ? f->sent[i] : NULL;
		pthread_mutex_unlock(&f->lock);
		if (s)
			return s;
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	}
	return "";
}

static int n_sent(fake *f)
{
	pthread_mutex_lock(&f->lock);
	int n = f->n_sent;
	pthread_mutex_unlock(&f->lock);
	return n;
}

static void text(vx_svcws_conn *cn, const char *s)
{
	vx_svcws_on_text(NULL, cn, s, strlen(s));
}

/* ---- a small service: items carry a number; run echoes it ---- */

typedef struct svc {
	vx_pool *pool;
	sem_t gate;                  /* run waits here when gated */
	bool gated;
	atomic_int running, max_running;
	atomic_int releases, job_ends, refusals;
	int refuse;                  /* job_start's answer */
	int config_answer;           /* ops->config's answer */
	atomic_bool saw_cancel;      /* the cancel flag, seen by run */
	atomic_bool token;           /* item -1 runs only once item -2 set it */
	atomic_int retries;          /* times item -1 asked to run later */
} svc;

typedef struct item {
	vx_svcws_item base;
	int n;
} item;

static vx_pool *svc_pool(void *user) { return ((svc *)user)->pool; }

static int svc_config(vx_svcws_conn *cn, void *state, const cJSON *j)
{
	svc *s = vx_svcws_user(cn);
	(void)state;
	(void)j;
	if (s->config_answer == 0)
		vx_svcws_send_text(cn, "{\"event\":\"ready\",\"x\":1}", 23);
	else
		vx_svcws_error(cn, "bad_config", "no");
	return s->config_answer;
}

static void svc_end(vx_svcws_conn *cn, void *state)
{
	(void)state;
	vx_svcws_end_when_idle(cn);
}

static int svc_message(vx_svcws_conn *cn, void *state, const cJSON *j,
		       const char *name, const char *raw, size_t len)
{
	(void)state;
	(void)raw;
	(void)len;
	if (name && strcmp(name, "say"))
		return -ENOENT;
	vx_svcws_send_text(cn, j ? "{\"msg\":1}" : "{\"msg\":0}", 9);
	return 0;
}

static void svc_binary(vx_svcws_conn *cn, void *state, const void *d,
		       size_t len)
{
	(void)state;
	vx_svcws_send_binary(cn, d, len);
}

static void svc_run(vx_svcws_conn *cn, void *state, vx_svcws_item *it)
{
	svc *s = vx_svcws_user(cn);
	(void)state;
	int now = atomic_fetch_add(&s->running, 1) + 1;
	if (now > atomic_load(&s->max_running))
		atomic_store(&s->max_running, now);
	if (s->gated)
		sem_wait(&s->gate);
	if (atomic_load(vx_svcws_cancel_flag(cn)))
		atomic_store(&s->saw_cancel, true);
	if (((item *)it)->n == -2)
		atomic_store(&s->token, true);
	if (((item *)it)->n == -1 && !atomic_load(&s->token)) {
		atomic_fetch_add(&s->retries, 1);
		vx_svcws_retry_later(cn);
		atomic_fetch_sub(&s->running, 1);
		return;
	}
	char msg[32];
	int n = snprintf(msg, sizeof(msg), "{\"n\":%d}", ((item *)it)->n);
	vx_svcws_send_text(cn, msg, (size_t)n);
	atomic_fetch_sub(&s->running, 1);
}

static int svc_job_start(vx_svcws_conn *cn, void *state)
{
	(void)state;
	return ((svc *)vx_svcws_user(cn))->refuse;
}

static void svc_job_end(void *user)
{
	atomic_fetch_add(&((svc *)user)->job_ends, 1);
}

static void svc_refused(vx_svcws_conn *cn, void *state, vx_svcws_item *items,
			int err)
{
	(void)state;
	(void)err;
	for (; items; items = items->next)
		atomic_fetch_add(&((svc *)vx_svcws_user(cn))->refusals, 1);
}

static svc *released_svc;   /* release gets only the state */

static void svc_release(void *state)
{
	(void)state;
	atomic_fetch_add(&released_svc->releases, 1);
}

static const vx_svcws_ops ops_audio = {   /* VAD/STT shape */
	.io = &fake_io, .pool = svc_pool, .needs_config = true,
	.events = "config, end, cancel", .config = svc_config,
	.end = svc_end, .message = svc_message, .binary = svc_binary,
	.run = svc_run, .job_start = svc_job_start, .job_end = svc_job_end,
	.refused = svc_refused, .release = svc_release,
	.max_items = 3, .max_queued_bytes = 100,
};

static const vx_svcws_ops ops_requests = {   /* LLM shape */
	.io = &fake_io, .pool = svc_pool, .bare_key = "", .raw_messages = true,
	.events = "say", .error_fields = ",\"status\":400",
	.end = svc_end, .message = svc_message, .run = svc_run,
	.job_end = svc_job_end, .release = svc_release,
};

static void svc_init(svc *s, bool gated)
{
	memset(s, 0, sizeof(*s));
	vx_pool_new(2, 4, &s->pool);
	sem_init(&s->gate, 0, 0);
	s->gated = gated;
	released_svc = s;
}

static void svc_release_all(svc *s)
{
	vx_pool_free(s->pool);
	sem_destroy(&s->gate);
}

static vx_svcws_conn *open_conn(fake *f, const vx_svcws_ops *ops, svc *s)
{
	void *st = NULL;
	int r = vx_svcws_open((vx_wsconn *)(void *)f, ops, s, &st);
	VX_CHECK_INT(r, 0);
	return st;
}

static int push(vx_svcws_conn *cn, int n, size_t bytes)
{
	item *it = vx_svcws_item_new(sizeof(*it), 0);
	it->n = n;
	it->base.bytes = bytes;
	return vx_svcws_push(cn, &it->base);
}

/* Waits until no job drains (up to 2 s). */
static void wait_idle(vx_svcws_conn *cn)
{
	for (int t = 0; t < 2000 && !vx_svcws_idle(cn); t++)
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
}

/* ---- cases ---- */

VX_TEST(bad_messages_answer_in_the_one_error_shape)
{
	fake f; svc s; fake_init(&f); svc_init(&s, false);
	vx_svcws_conn *cn = open_conn(&f, &ops_audio, &s);
	text(cn, "not json");
	text(cn, "{\"voice\":\"a\\u0000b\"}");
	text(cn, "{\"event\":7}");
	VX_CHECK_STR(sent(&f, 0), "{\"event\":\"error\",\"code\":\"invalid_json\","
		     "\"message\":\"messages must be JSON objects\"}");
	VX_CHECK_STR(sent(&f, 1), "{\"event\":\"error\",\"code\":\"invalid_string\","
		     "\"message\":\"JSON strings must not contain NUL (\\\\u0000)\"}");
	VX_CHECK_STR(sent(&f, 2), "{\"event\":\"error\",\"code\":\"invalid_type\","
		     "\"message\":\"\\\"event\\\" must be a string\"}");
	vx_svcws_on_close(NULL, cn);
	VX_CHECK_INT(s.releases, 1);
	svc_release_all(&s); fake_release(&f);
}

VX_TEST(nothing_but_config_before_a_config_took)
{
	fake f; svc s; fake_init(&f); svc_init(&s, false);
	vx_svcws_conn *cn = open_conn(&f, &ops_audio, &s);
	text(cn, "{\"event\":\"end\"}");
	vx_svcws_on_binary(NULL, cn, "\0\0", 2);
	s.config_answer = -EINVAL;
	text(cn, "{\"sample_rate\":1}");          /* bare: a config */
	VX_CHECK(!vx_svcws_configured(cn));
	s.config_answer = 0;
	text(cn, "{\"event\":\"start\"}");
	VX_CHECK(vx_svcws_configured(cn));
	vx_svcws_on_binary(NULL, cn, "\0\0", 2);   /* now the service's */
	VX_CHECK_INT(f.n_binary, 1);
	s.config_answer = -EINVAL;                 /* refused: stays configured */
	text(cn, "{\"event\":\"config\"}");
	VX_CHECK(vx_svcws_configured(cn));
	s.config_answer = -EIO;                    /* failed: unconfigured */
	text(cn, "{\"event\":\"config\"}");
	VX_CHECK(!vx_svcws_configured(cn));
	VX_CHECK(strstr(sent(&f, 0), "\"not_configured\"") != NULL);
	VX_CHECK_STR(sent(&f, 1), "{\"event\":\"error\",\"code\":\"not_configured\","
		     "\"message\":\"send a JSON config message before audio\"}");
	VX_CHECK(strstr(sent(&f, 2), "\"bad_config\"") != NULL);
	VX_CHECK_STR(sent(&f, 3), "{\"event\":\"ready\",\"x\":1}");
	VX_CHECK_INT(n_sent(&f), 6);
	vx_svcws_on_close(NULL, cn);
	svc_release_all(&s); fake_release(&f);
}

VX_TEST(unknown_events_and_messages_are_routed)
{
	fake f; svc s; fake_init(&f); svc_init(&s, false);
	vx_svcws_conn *cn = open_conn(&f, &ops_audio, &s);
	text(cn, "{}");
	text(cn, "{\"event\":\"dance\"}");
	text(cn, "{\"event\":\"say\"}");
	VX_CHECK_STR(sent(&f, 1), "{\"event\":\"error\",\"code\":\"unknown_event\","
		     "\"message\":\"unknown event 'dance' (config, end, cancel)\"}");
	VX_CHECK_STR(sent(&f, 2), "{\"msg\":1}");
	vx_svcws_on_close(NULL, cn);
	svc_release_all(&s); fake_release(&f);
}

VX_TEST(request_sockets_take_bare_and_raw_messages_and_answer_config_ready)
{
	fake f; svc s; fake_init(&f); svc_init(&s, false);
	vx_svcws_conn *cn = open_conn(&f, &ops_requests, &s);
	text(cn, "{\"event\":\"config\"}");
	text(cn, "{\"messages\":[]}");
	text(cn, "oops");
	text(cn, "{\"event\":\"x\"}");
	text(cn, "{\"event\":\"end\"}");
	VX_CHECK_STR(sent(&f, 0), "{\"event\":\"ready\"}");
	VX_CHECK_STR(sent(&f, 1), "{\"msg\":1}");
	VX_CHECK_STR(sent(&f, 2), "{\"msg\":0}");
	VX_CHECK_STR(sent(&f, 3), "{\"event\":\"error\",\"code\":\"unknown_event\","
		     "\"message\":\"unknown event 'x' (say)\",\"status\":400}");
	VX_CHECK_STR(sent(&f, 4), "{\"event\":\"done\",\"end\":true}");
	vx_svcws_on_close(NULL, cn);
	svc_release_all(&s); fake_release(&f);
}

VX_TEST(items_run_in_order_one_at_a_time_then_end_is_answered)
{
	fake f; svc s; fake_init(&f); svc_init(&s, true);
	vx_svcws_conn *cn = open_conn(&f, &ops_requests, &s);
	VX_CHECK_INT(push(cn, 1, 0), 0);
	VX_CHECK_INT(push(cn, 2, 0), 0);
	VX_CHECK_INT(push(cn, 3, 0), 0);
	vx_svcws_end_when_idle(cn);                /* owed: a job drains */
	VX_CHECK_INT(n_sent(&f), 0);
	for (int i = 0; i < 3; i++)
		sem_post(&s.gate);
	VX_CHECK_STR(sent(&f, 0), "{\"n\":1}");
	VX_CHECK_STR(sent(&f, 1), "{\"n\":2}");
	VX_CHECK_STR(sent(&f, 2), "{\"n\":3}");
	VX_CHECK_STR(sent(&f, 3), "{\"event\":\"done\",\"end\":true}");
	wait_idle(cn);
	VX_CHECK_INT(s.max_running, 1);
	VX_CHECK_INT(s.job_ends, 1);
	vx_svcws_on_close(NULL, cn);
	VX_CHECK_INT(s.releases, 1);
	VX_CHECK_INT(f.refs, 0);                   /* socket refs paired */
	svc_release_all(&s); fake_release(&f);
}

VX_TEST(queue_limits_refuse_with_enobufs)
{
	fake f; svc s; fake_init(&f); svc_init(&s, true);
	vx_svcws_conn *cn = open_conn(&f, &ops_audio, &s);
	VX_CHECK_INT(push(cn, 1, 0), 0);           /* taken by the job */
	while (!atomic_load(&s.running))
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	VX_CHECK_INT(push(cn, 2, 60), 0);
	VX_CHECK_INT(push(cn, 3, 60), -ENOBUFS);   /* 120 > 100 bytes */
	VX_CHECK_INT(push(cn, 4, 0), 0);
	VX_CHECK_INT(push(cn, 5, 0), 0);
	VX_CHECK_INT(push(cn, 6, 0), -ENOBUFS);    /* 4 > 3 items */
	for (int i = 0; i < 4; i++)
		sem_post(&s.gate);
	VX_CHECK_STR(sent(&f, 3), "{\"n\":5}");
	wait_idle(cn);
	vx_svcws_on_close(NULL, cn);
	svc_release_all(&s); fake_release(&f);
}

static bool keep_odd(const vx_svcws_item *it)
{
	return ((const item *)it)->n % 2;
}

VX_TEST(cancel_drops_what_waits_and_flags_the_running_item)
{
	fake f; svc s; fake_init(&f); svc_init(&s, true);
	vx_svcws_conn *cn = open_conn(&f, &ops_requests, &s);
	push(cn, 2, 0);
	while (!atomic_load(&s.running))
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	push(cn, 3, 0);
	push(cn, 4, 0);
	VX_CHECK(vx_svcws_cancel(cn, keep_odd));   /* a job drains */
	sem_post(&s.gate);
	VX_CHECK_STR(sent(&f, 0), "{\"n\":2}");
	VX_CHECK(atomic_load(&s.saw_cancel));
	atomic_store(&s.saw_cancel, false);
	sem_post(&s.gate);
	VX_CHECK_STR(sent(&f, 1), "{\"n\":3}");    /* kept; flag lowered */
	wait_idle(cn);
	VX_CHECK(!atomic_load(&s.saw_cancel));
	VX_CHECK_INT(n_sent(&f), 2);               /* 4 was dropped */
	vx_svcws_on_close(NULL, cn);
	svc_release_all(&s); fake_release(&f);
}

VX_TEST(exclusive_push_is_busy_until_cancel_then_replaces_the_waiting)
{
	fake f; svc s; fake_init(&f); svc_init(&s, true);
	vx_svcws_conn *cn = open_conn(&f, &ops_requests, &s);
	vx_svcws_item *old = NULL;
	item *a = vx_svcws_item_new(sizeof(*a), 0), *b, *c;
	a->n = 1;
	VX_CHECK_INT(vx_svcws_push_exclusive(cn, &a->base, &old), 0);
	while (!atomic_load(&s.running))
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	b = vx_svcws_item_new(sizeof(*b), 0);
	b->n = 2;
	VX_CHECK_INT(vx_svcws_push_exclusive(cn, &b->base, &old), -EBUSY);
	vx_svcws_cancel(cn, NULL);
	VX_CHECK_INT(vx_svcws_push_exclusive(cn, &b->base, &old), 0);
	VX_CHECK(old == NULL);
	c = vx_svcws_item_new(sizeof(*c), 0);
	c->n = 3;
	VX_CHECK_INT(vx_svcws_push_exclusive(cn, &c->base, &old), 0);
	VX_CHECK(old == &b->base);                 /* handed back to answer */
	vx_svcws_item_free(cn, old);
	sem_post(&s.gate);
	sem_post(&s.gate);
	VX_CHECK_STR(sent(&f, 1), "{\"n\":3}");
	wait_idle(cn);
	VX_CHECK_INT(n_sent(&f), 2);
	vx_svcws_on_close(NULL, cn);
	svc_release_all(&s); fake_release(&f);
}

VX_TEST(a_refused_job_hands_back_the_queue)
{
	fake f; svc s; fake_init(&f); svc_init(&s, false);
	vx_svcws_conn *cn = open_conn(&f, &ops_audio, &s);
	s.refuse = -EBUSY;
	VX_CHECK_INT(push(cn, 1, 0), -EAGAIN);
	VX_CHECK_INT(s.refusals, 1);
	VX_CHECK_INT(s.job_ends, 0);               /* job_start said no */
	VX_CHECK(vx_svcws_idle(cn));
	s.refuse = 0;
	VX_CHECK_INT(push(cn, 2, 0), 0);
	VX_CHECK_STR(sent(&f, 0), "{\"n\":2}");
	vx_svcws_on_close(NULL, cn);
	svc_release_all(&s); fake_release(&f);
}

VX_TEST(close_cancels_the_running_item_and_releases_after_the_job)
{
	fake f; svc s; fake_init(&f); svc_init(&s, true);
	vx_svcws_conn *cn = open_conn(&f, &ops_requests, &s);
	push(cn, 1, 0);
	push(cn, 2, 0);
	while (!atomic_load(&s.running))
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	vx_svcws_on_close(NULL, cn);
	VX_CHECK_INT(s.releases, 0);               /* the job still holds it */
	sem_post(&s.gate);
	for (int t = 0; t < 2000 && !atomic_load(&s.releases); t++)
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	VX_CHECK_INT(s.releases, 1);
	VX_CHECK(atomic_load(&s.saw_cancel));
	VX_CHECK_INT(n_sent(&f), 1);               /* item 2 never ran */
	svc_release_all(&s);                       /* joins: job_end done */
	VX_CHECK_INT(s.job_ends, 1);
	VX_CHECK_INT(f.refs, 0);
	fake_release(&f);
}

/* An item that waits for what another socket's item gives (a decoder) runs
 * again later without holding the only pool thread, in its place in its
 * queue; a cancel drops it while it waits. */
VX_TEST(an_item_run_later_gives_the_pool_thread_back)
{
	fake f, g; svc s; fake_init(&f); fake_init(&g); svc_init(&s, false);
	vx_pool_free(s.pool);
	vx_pool_new(1, 4, &s.pool);
	vx_svcws_conn *a = open_conn(&f, &ops_requests, &s);
	vx_svcws_conn *b = open_conn(&g, &ops_requests, &s);
	VX_CHECK_INT(push(a, -1, 0), 0);
	VX_CHECK_INT(push(a, 1, 0), 0);            /* behind the waiting one */
	for (int t = 0; t < 2000 && atomic_load(&s.retries) < 2; t++)
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	VX_CHECK(atomic_load(&s.retries) >= 2);
	VX_CHECK_INT(n_sent(&f), 0);
	VX_CHECK(!vx_svcws_idle(a));               /* still owed a run */
	VX_CHECK_INT(push(b, -2, 0), 0);           /* gets the one thread */
	VX_CHECK_STR(sent(&g, 0), "{\"n\":-2}");
	VX_CHECK_STR(sent(&f, 0), "{\"n\":-1}");
	VX_CHECK_STR(sent(&f, 1), "{\"n\":1}");
	wait_idle(a);
	wait_idle(b);
	VX_CHECK_INT(s.max_running, 1);
	VX_CHECK_INT(atomic_load(&s.job_ends), atomic_load(&s.retries) + 2);
	/* waiting again, then cancelled: dropped, nothing more runs */
	atomic_store(&s.token, false);
	push(a, -1, 0);
	for (int t = 0; t < 2000 && vx_svcws_idle(a); t++)
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	vx_svcws_cancel(a, NULL);
	wait_idle(a);
	VX_CHECK(vx_svcws_idle(a));
	VX_CHECK_INT(n_sent(&f), 2);
	vx_svcws_on_close(NULL, a);
	vx_svcws_on_close(NULL, b);
	svc_release_all(&s);
	VX_CHECK_INT(f.refs, 0);
	VX_CHECK_INT(g.refs, 0);
	VX_CHECK_INT(s.releases, 2);
	fake_release(&f); fake_release(&g);
}

VX_TEST_MAIN(bad_messages_answer_in_the_one_error_shape,
	     nothing_but_config_before_a_config_took,
	     unknown_events_and_messages_are_routed,
	     request_sockets_take_bare_and_raw_messages_and_answer_config_ready,
	     items_run_in_order_one_at_a_time_then_end_is_answered,
	     queue_limits_refuse_with_enobufs,
	     cancel_drops_what_waits_and_flags_the_running_item,
	     exclusive_push_is_busy_until_cancel_then_replaces_the_waiting,
	     a_refused_job_hands_back_the_queue,
	     close_cancels_the_running_item_and_releases_after_the_job,
	     an_item_run_later_gives_the_pool_thread_back)
