/*
 * api_ws.c - /ws/synthesize: texts in, audio out as it is made.
 *
 *   -> {"voice":"slt","sample_rate":16000,"encoding":"pcm16","speed":1.0}
 *   <- {"event":"ready","voice":"slt","sample_rate":16000,"encoding":"pcm16","engine":"flite"}
 *   -> {"text":"Hello there.","id":"s1"}       queued, spoken in order
 *   <- {"event":"start","id":"s1","sample_rate":16000,"encoding":"pcm16"}
 *   <- binary chunks (pcm16 little-endian, or mulaw/alaw bytes)
 *   <- {"event":"done","id":"s1","duration_ms":812,"processing_ms":40}
 *   -> {"event":"cancel"}   <- {"event":"cancelled"}   (current + queued)
 *   -> {"event":"end"}      <- {"event":"done","end":true} after the queue
 *
 * The config message is optional (a first text configures with defaults and
 * its own fields) and may be sent again; each text keeps the config it was
 * queued under. Errors: {"event":"error","code","message"[,"id"]}; the
 * socket stays usable. Messages holding a NUL (raw or \u0000) are refused
 * ("invalid_string"): a voice or text is never read cut short.
 *
 * Threads: callbacks run on the lws service thread and only parse and
 * queue. One pool job per socket at a time works through the queue, so
 * texts come back in order; it is started when a text arrives on an idle
 * socket and ends when the queue is empty. The state is shared by both and
 * reference-counted; closing the socket cancels the text in flight and
 * drops the queue. A slow reader makes the job wait (WS_HIGH_WATER)
 * rather than buffer without bound.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tts_service.h"
#include "vx_audio.h"
#include "vx_json.h"
#include "vx_log.h"
#include "vx_time.h"
#include "vx_ws.h"

#define WS_MAX_QUEUED 64               /* texts waiting per socket */
#define WS_ID_MAX 64                   /* bytes of an echoed id */
#define WS_HIGH_WATER (1u << 20)       /* unsent bytes before the job waits */
#define WS_WAIT_NS (5 * 1000000L)      /* poll step while waiting */

/* The output settings a text is spoken with. */
typedef struct ws_conf {
	tts_target target;
	int rate;                      /* output, Hz */
	vx_encoding encoding;          /* PCM16, MULAW or ALAW */
	double speed;
} ws_conf;

typedef struct ws_item {
	struct ws_item *next;
	char *text;                    /* NULL: the "end" marker */
	char id_field[WS_ID_MAX + 8];  /* ,"id":<json> or "" */
	ws_conf conf;
} ws_item;

typedef struct ws_state {
	tts_service *svc;
	vx_wsconn *c;
	atomic_int refs;               /* the connection's + the job's */
	atomic_bool cancel;            /* stops the text being spoken */
	pthread_mutex_t lock;          /* guards the fields below */
	ws_item *head, *tail;
	size_t n_queued;
	bool running;                  /* a job is submitted or running */
	bool cancel_pending;           /* the job owes a "cancelled" */
	bool closed;
	/* lws thread only: */
	bool configured;
	ws_conf conf;
} ws_state;

/* One text being spoken, reached from the engine's callback. */
typedef struct ws_speech {
	ws_state *st;
	const ws_item *item;
	tts_synth_stats stats;
	vx_resampler *rs;              /* engine rate -> output rate, or NULL */
	vx_buf out;                    /* one outgoing frame */
	size_t samples_out;            /* at the output rate */
	double t0_ms;
	bool timed_out, send_failed;
} ws_speech;

static const char *ws_enc_name(vx_encoding e)
{
	return e == VX_ENC_MULAW ? "mulaw" : e == VX_ENC_ALAW ? "alaw" : "pcm16";
}

static void ws_state_unref(ws_state *st)
{
	if (atomic_fetch_sub(&st->refs, 1) != 1)
		return;
	pthread_mutex_destroy(&st->lock);
	free(st);
}

static void ws_item_free(ws_item *it)
{
	if (!it)
		return;
	free(it->text);
	free(it);
}

/* Takes the queue out, lock held; the caller frees it outside. */
static ws_item *ws_take_queue_locked(ws_state *st)
{
	ws_item *q = st->head;
	st->head = st->tail = NULL;
	st->n_queued = 0;
	return q;
}

static void ws_free_list(ws_item *it)
{
	while (it) {
		ws_item *next = it->next;
		ws_item_free(it);
		it = next;
	}
}

/* ---- the job: speaking one text ---- */

/* Waits while the client is behind; false when the text should stop. */
static bool ws_wait_writable(ws_speech *sp)
{
	ws_state *st = sp->st;
	while (vx_ws_queued(st->c) > WS_HIGH_WATER) {
		if (atomic_load(&st->cancel) || atomic_load(vx_ws_closed(st->c)))
			return false;
		nanosleep(&(struct timespec){ 0, WS_WAIT_NS }, NULL);
	}
	return true;
}

/* Encodes sp->out's int16 samples in place and sends them. */
static int ws_send_audio(ws_speech *sp, const int16_t *pcm, size_t n)
{
	const ws_conf *cf = &sp->item->conf;
	vx_buf *o = &sp->out;
	vx_buf_reset(o);
	if (cf->encoding == VX_ENC_PCM16) {
		if (vx_buf_append(o, pcm, n * 2) < 0)
			return -ENOMEM;
	} else {
		if (vx_buf_reserve(o, n) < 0)
			return -ENOMEM;
		for (size_t i = 0; i < n; i++)
			o->data[i] = (char)(cf->encoding == VX_ENC_MULAW ?
					    vx_g711_ulaw_encode(pcm[i]) :
					    vx_g711_alaw_encode(pcm[i]));
		o->len = n;
		o->data[n] = '\0';
	}
	sp->samples_out += n;
	if (!n)
		return 0;
	if (!ws_wait_writable(sp))
		return -ECANCELED;
	return vx_ws_send_binary(sp->st->c, o->data, o->len);
}

static int ws_resample_send(ws_speech *sp, const int16_t *pcm, size_t n,
			    bool flush)
{
	vx_buf tmp = {0};
	int r = flush ? vx_resampler_flush(sp->rs, &tmp) :
		vx_resampler_process(sp->rs, pcm, n, &tmp);
	if (r == 0 && tmp.data)
		r = ws_send_audio(sp, (const int16_t *)(void *)tmp.data,
				  tmp.len / 2);
	vx_buf_release(&tmp);
	return r;
}

static int ws_chunk(void *user, const int16_t *pcm, size_t n)
{
	ws_speech *sp = user;
	const ws_conf *cf = &sp->item->conf;
	if (vx_now_ms() - sp->t0_ms > sp->st->svc->timeout_s * 1000.0) {
		sp->timed_out = true;
		return 1;
	}
	int rate = sp->stats.rate;
	if (rate != cf->rate && !sp->rs &&
	    vx_resampler_new(rate, cf->rate, &sp->rs) < 0) {
		sp->send_failed = true;
		return 1;
	}
	int r = sp->rs ? ws_resample_send(sp, pcm, n, false) :
		ws_send_audio(sp, pcm, n);
	if (r < 0) {
		sp->send_failed = true;
		return 1;
	}
	return 0;
}

static void ws_speak(ws_state *st, const ws_item *it)
{
	vx_wsconn *c = st->c;
	const ws_conf *cf = &it->conf;
	ws_speech sp = { .st = st, .item = it, .t0_ms = vx_now_ms() };
	char ev[256];
	int n = snprintf(ev, sizeof(ev), "{\"event\":\"start\"%s,\"sample_rate\":%d,"
			 "\"encoding\":\"%s\"}", it->id_field, cf->rate,
			 ws_enc_name(cf->encoding));
	vx_ws_send_text(c, ev, (size_t)n);
	int r = tts_synth_run(st->svc, &cf->target, it->text, cf->speed,
			      vx_ws_request_id(c), &st->cancel, ws_chunk, &sp,
			      &sp.stats);
	if (r == 0 && sp.rs && ws_resample_send(&sp, NULL, 0, true) < 0)
		r = -ECANCELED;
	if (sp.timed_out) {
		vx_ws_send_error_fields(c, it->id_field, "timeout",
					"synthesis took longer than %d s",
					st->svc->timeout_s);
	} else if (r == -ECANCELED || sp.send_failed) {
		;   /* cancelled or gone: the job loop answers "cancelled" */
	} else if (r < 0) {
		const char *code;
		tts_synth_error_status(r, &code);
		vx_log_warn(vx_ws_request_id(c), "%s engine: %s",
			    cf->target.be->name, strerror(-r));
		vx_ws_send_error_fields(c, it->id_field, code, "%s engine: %s",
					cf->target.be->name, strerror(-r));
	} else {
		n = snprintf(ev, sizeof(ev), "{\"event\":\"done\"%s,"
			     "\"duration_ms\":%lld,\"processing_ms\":%.0f,"
			     "\"first_chunk_ms\":%.1f}", it->id_field,
			     (long long)(sp.samples_out * 1000 / (size_t)cf->rate),
			     sp.stats.total_ms, sp.stats.first_chunk_ms);
		vx_ws_send_text(c, ev, (size_t)n);
	}
	vx_resampler_free(sp.rs);
	vx_buf_release(&sp.out);
}

static void ws_job(void *arg)
{
	ws_state *st = arg;
	static const char cancelled[] = "{\"event\":\"cancelled\"}";
	static const char ended[] = "{\"event\":\"done\",\"end\":true}";
	for (;;) {
		pthread_mutex_lock(&st->lock);
		if (st->cancel_pending) {
			st->cancel_pending = false;
			vx_ws_send_text(st->c, cancelled, sizeof(cancelled) - 1);
		}
		ws_item *it = st->closed ? NULL : st->head;
		if (it) {
			st->head = it->next;
			if (!st->head)
				st->tail = NULL;
			st->n_queued--;
			atomic_store(&st->cancel, false);
		} else {
			st->running = false;
		}
		pthread_mutex_unlock(&st->lock);
		if (!it)
			break;
		if (it->text)
			ws_speak(st, it);
		else
			vx_ws_send_text(st->c, ended, sizeof(ended) - 1);
		ws_item_free(it);
	}
	vx_ws_unref(st->c);
	ws_state_unref(st);
}

/* ---- the lws thread: parsing and queueing ---- */

/* Reads a config; on success it becomes the socket's and "ready" goes out. */
static int ws_configure(ws_state *st, const cJSON *j)
{
	tts_service *svc = st->svc;
	ws_conf cf = { .encoding = VX_ENC_PCM16, .speed = 1.0 };
	const char *vname, *enc;
	if (vx_json_string(j, "voice", NULL, SIZE_MAX, &vname) < 0) {
		vx_ws_send_error(st->c, "bad_config", "voice must be a string");
		return -EINVAL;
	}
	if (tts_synth_resolve(svc, vname, &cf.target) < 0) {
		char some[256];
		tts_synth_some_voices(svc, some, sizeof(some));
		vx_ws_send_error(st->c, "unknown_voice",
				 "unknown voice '%.64s'; voices: %s",
				 vname ? vname : "", some);
		return -ENOENT;
	}
	if (vx_json_string(j, "encoding", NULL, SIZE_MAX, &enc) < 0 ||
	    (enc && vx_encoding_from_name(enc, &cf.encoding) < 0)) {
		vx_ws_send_error(st->c, "bad_config",
				 "encoding must be pcm16, mulaw or alaw");
		return -EINVAL;
	}
	int def_rate = cf.target.rate > 0 ? cf.target.rate : TTS_OPENAI_RATE;
	if (vx_json_int(j, "sample_rate", def_rate, TTS_RATE_MIN, TTS_RATE_MAX,
			&cf.rate) < 0) {
		vx_ws_send_error(st->c, "bad_config",
				 "sample_rate is an integer from %d to %d",
				 TTS_RATE_MIN, TTS_RATE_MAX);
		return -EINVAL;
	}
	if (vx_json_number(j, "speed", 1.0, TTS_SPEED_MIN, TTS_SPEED_MAX,
			   &cf.speed) < 0) {
		vx_ws_send_error(st->c, "bad_config",
				 "speed is a number from 0.25 to 4.0");
		return -EINVAL;
	}
	st->conf = cf;
	st->configured = true;
	vx_buf b = {0};
	vx_buf_puts(&b, "{\"event\":\"ready\",\"voice\":");
	vx_buf_json_str(&b, cf.target.voice, strlen(cf.target.voice));
	vx_buf_printf(&b, ",\"sample_rate\":%d,\"encoding\":\"%s\",\"engine\":\"%s\"}",
		      cf.rate, ws_enc_name(cf.encoding), cf.target.be->name);
	if (b.data)
		vx_ws_send_text(st->c, b.data, b.len);
	vx_buf_release(&b);
	return 0;
}

/* Queues it and starts the job when the socket was idle; takes it. */
static void ws_enqueue(ws_state *st, ws_item *it)
{
	pthread_mutex_lock(&st->lock);
	if (st->n_queued >= WS_MAX_QUEUED) {
		pthread_mutex_unlock(&st->lock);
		vx_ws_send_error_fields(st->c, it->id_field, "queue_full",
					"%d texts are already waiting on "
					"this socket", WS_MAX_QUEUED);
		ws_item_free(it);
		return;
	}
	if (st->tail)
		st->tail->next = it;
	else
		st->head = it;
	st->tail = it;
	st->n_queued++;
	bool start = !st->running;
	st->running = true;
	pthread_mutex_unlock(&st->lock);
	if (!start)
		return;
	atomic_fetch_add(&st->refs, 1);
	vx_ws_ref(st->c);
	if (vx_pool_submit(st->svc->pool, ws_job, st) == 0)
		return;
	vx_ws_unref(st->c);
	atomic_fetch_sub(&st->refs, 1);   /* the connection still holds one */
	pthread_mutex_lock(&st->lock);
	st->running = false;
	ws_item *q = ws_take_queue_locked(st);
	pthread_mutex_unlock(&st->lock);
	for (ws_item *x = q; x; x = x->next)
		vx_ws_send_error_fields(st->c, x->id_field, "overloaded",
					"all %d workers are busy; retry "
					"shortly", st->svc->d.workers);
	ws_free_list(q);
}

static void ws_text_msg(ws_state *st, const cJSON *j)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "text");
	ws_item *it = calloc(1, sizeof(*it));
	if (!it) {
		vx_ws_send_error(st->c, "out_of_memory", "out of memory");
		return;
	}
	(void)vx_json_id_member(j, WS_ID_MAX, it->id_field,
				sizeof(it->id_field));
	if (!cJSON_IsString(t)) {
		vx_ws_send_error_fields(st->c, it->id_field, "invalid_type",
					"\"text\" must be a string");
		goto out_free_item;
	}
	size_t len = strlen(t->valuestring);
	int r = tts_synth_check_text(st->svc, t->valuestring, len);
	if (r < 0) {
		const char *code = r == -EINVAL ? "empty_text" :
				   r == -EILSEQ ? "invalid_utf8" :
				   "text_too_long";
		vx_ws_send_error_fields(st->c, it->id_field, code,
					"text must be non-empty UTF-8 of at "
					"most %d characters",
					st->svc->max_text_chars);
		goto out_free_item;
	}
	if (!st->configured && ws_configure(st, j) < 0)
		goto out_free_item;
	it->text = strdup(t->valuestring);
	if (!it->text)
		goto out_free_item;
	it->conf = st->conf;
	ws_enqueue(st, it);
	return;
out_free_item:
	ws_item_free(it);
}

static void ws_cancel(ws_state *st)
{
	static const char cancelled[] = "{\"event\":\"cancelled\"}";
	pthread_mutex_lock(&st->lock);
	ws_item *q = ws_take_queue_locked(st);
	if (st->running) {
		st->cancel_pending = true;
		atomic_store(&st->cancel, true);
	} else {
		vx_ws_send_text(st->c, cancelled, sizeof(cancelled) - 1);
	}
	pthread_mutex_unlock(&st->lock);
	ws_free_list(q);
}

static void ws_end(ws_state *st)
{
	static const char ended[] = "{\"event\":\"done\",\"end\":true}";
	pthread_mutex_lock(&st->lock);
	bool idle = !st->running;
	pthread_mutex_unlock(&st->lock);
	if (idle) {   /* only this thread starts jobs: it stays idle */
		vx_ws_send_text(st->c, ended, sizeof(ended) - 1);
		return;
	}
	ws_item *it = calloc(1, sizeof(*it));
	if (it)
		ws_enqueue(st, it);
}

static int ws_open(vx_wsconn *c, void *user, void **ret_state)
{
	ws_state *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->svc = user;
	st->c = c;
	atomic_init(&st->refs, 1);
	atomic_init(&st->cancel, false);
	pthread_mutex_init(&st->lock, NULL);
	*ret_state = st;
	return 0;
}

static void ws_text(vx_wsconn *c, void *state, const char *text, size_t len)
{
	ws_state *st = state;
	cJSON *j = cJSON_ParseWithLength(text, len);
	if (!cJSON_IsObject(j)) {
		vx_ws_send_error(c, "invalid_json", "messages must be JSON objects");
		goto out_free;
	}
	if (vx_ws_text_has_nul(text, len)) {
		vx_ws_send_error(c, "invalid_string",
				 "JSON strings must not contain NUL (\\u0000)");
		goto out_free;
	}
	const cJSON *ev = cJSON_GetObjectItemCaseSensitive(j, "event");
	const char *name = cJSON_IsString(ev) ? ev->valuestring : NULL;
	if (ev && !name)
		vx_ws_send_error(c, "invalid_type", "\"event\" must be a string");
	else if (name && !strcmp(name, "cancel"))
		ws_cancel(st);
	else if (name && !strcmp(name, "end"))
		ws_end(st);
	else if ((name && (!strcmp(name, "text") || !strcmp(name, "speak"))) ||
		 (!name && cJSON_GetObjectItemCaseSensitive(j, "text")))
		ws_text_msg(st, j);
	else if (!name || !strcmp(name, "config") || !strcmp(name, "start"))
		ws_configure(st, j);
	else
		vx_ws_send_error(c, "unknown_event", "unknown event '%.32s' "
				 "(config, text, cancel, end)", name);
out_free:
	cJSON_Delete(j);
}

static void ws_close(vx_wsconn *c, void *state)
{
	ws_state *st = state;
	(void)c;
	pthread_mutex_lock(&st->lock);
	st->closed = true;
	atomic_store(&st->cancel, true);
	ws_item *q = ws_take_queue_locked(st);
	pthread_mutex_unlock(&st->lock);
	ws_free_list(q);
	ws_state_unref(st);
}

const vx_ws_route tts_ws_routes[] = {
	{ "/ws/synthesize", ws_open, ws_text, NULL, ws_close },
};
const size_t tts_n_ws_routes = sizeof(tts_ws_routes) / sizeof(tts_ws_routes[0]);
