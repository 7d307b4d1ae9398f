/*
 * api_ws.c - /ws/transcribe: live transcription over a WebSocket
 * (protocol in docs/websocket.md).
 *
 *   -> {"sample_rate":8000,"encoding":"mulaw","language":"en"}   (all optional)
 *   <- {"event":"ready","sample_rate":8000,"encoding":"mulaw","engine":...,"language":"en"}
 *   -> binary audio ...          <- {"event":"partial","text":...} as it changes
 *   -> {"event":"end"}           <- {"event":"final","text":...,"duration_ms":N,
 *                                    "processing_ms":N,"segments":[...]}
 *   -> {"event":"cancel"}        <- {"event":"cancelled"}
 * The socket takes any number of utterances. Errors are {"event":"error",
 * "code","message"}; an utterance that failed (decoders busy, over
 * max_audio_s, more than STT_WS_QUEUE_MAX_BYTES waiting, engine error) is
 * dropped: its audio is ignored and its "end" is answered with an error
 * (code "utterance_dropped") instead of a final. A config is checked whole
 * before any of it is used ("bad_config": a language must be a tag such as
 * "en" or "en-US", never a path); messages holding a NUL (raw or \u0000)
 * are refused ("invalid_string") rather than read cut short.
 *
 * Threads: the callbacks run on the lws service thread; they only decode
 * G.711, resample to 16 kHz (the resampler is theirs alone) and queue
 * items (audio, end, cancel, config) on the connection. One pool job at a
 * time per connection drains the queue in order and makes every engine
 * call, so the decoder is used by one thread and events keep their order.
 * A streaming engine's decoder is taken at an utterance's first audio and
 * given back at its final, cancel or the socket's close; remote engines
 * buffer the utterance and transcribe it at "end".
 *
 * Ownership: the connection state is reference-counted (the connection's
 * reference, dropped in on_close, plus one per queued or running job).
 * Closing drops what is queued and cancels a remote call in flight; the
 * job then gives the decoder back.
 */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "stt_service.h"
#include "vx_audio.h"
#include "vx_json.h"
#include "vx_log.h"
#include "vx_pcmstream.h"
#include "vx_time.h"
#include "vx_ws.h"

#define WS_LANG_MAX 32       /* bytes of a language code, NUL included */
#define WS_CODE_MAX 32       /* bytes of an error code, NUL included */

typedef enum ws_kind { WS_AUDIO, WS_END, WS_CANCEL, WS_CONFIG } ws_kind;

typedef struct ws_item {
	struct ws_item *next;
	ws_kind kind;
	double t_ms;                  /* END: when it arrived (monotonic ms) */
	char code[WS_CODE_MAX];       /* END: why the receiver dropped the
				       * utterance, "" when it did not;
				       * CONFIG: the language */
	size_t n;                     /* AUDIO: samples */
	int16_t pcm[];                /* AUDIO: 16 kHz mono */
} ws_item;

typedef struct ws_stt {
	stt_service *svc;
	vx_wsconn *c;
	atomic_int refs;              /* the connection's + one per job */
	atomic_bool cancel;           /* stops a remote call in flight */

	pthread_mutex_t lock;         /* guards the queue fields below */
	ws_item *head, *tail;
	size_t queued_bytes;          /* audio bytes in the queue */
	bool job_active;              /* a job is queued or draining */
	bool closed;

	/* receiver: the lws service thread only */
	bool configured;
	vx_encoding encoding;
	int rate;                     /* the client's, Hz */
	vx_pcmstream in;              /* client audio -> 16 kHz PCM16 */
	int64_t rx_samples;           /* 16 kHz samples queued this utterance */
	char rx_dropped[WS_CODE_MAX]; /* why this utterance is dropped, or "" */
	vx_buf resampled;             /* decoded 16 kHz samples */

	/* decoder side: the running job only */
	char language[WS_LANG_MAX];
	void *stream;                 /* streaming engine: open decoder or NULL */
	vx_buf utt;                   /* remote engine: the utterance, PCM16 */
	int64_t utt_samples;
	double decode_ms;             /* engine time this utterance */
	char failed[WS_CODE_MAX];     /* the job dropped this utterance: why */
	vx_buf ev;                    /* the event being written */
} ws_stt;

/* Gives back the decoder and forgets the utterance (decoder side). */
static void ws_discard(ws_stt *w)
{
	if (w->stream)
		w->svc->engine->stream_close(w->stream);
	w->stream = NULL;
	vx_buf_release(&w->utt);
	w->utt_samples = 0;
	w->decode_ms = 0;
	w->failed[0] = '\0';
}

static void ws_unref(ws_stt *w)
{
	if (atomic_fetch_sub(&w->refs, 1) != 1)
		return;
	ws_discard(w);
	for (ws_item *it = w->head, *next; it; it = next) {
		next = it->next;
		free(it);
	}
	vx_pcmstream_release(&w->in);
	vx_buf_release(&w->resampled);
	vx_buf_release(&w->ev);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

/* ---- the decoder side (pool job) ---- */

/* Fails the utterance: reports why once, ignores its audio until "end". */
static void ws_fail(ws_stt *w, int err, const char *what)
{
	stt_http_error e;
	stt_error_map(w->svc, err, &e);
	vx_log_warn(vx_ws_request_id(w->c), "%s: %s (%s)", what, e.code,
		    strerror(-err));
	vx_ws_send_error(w->c, e.code, "%s", e.message);
	if (w->stream)
		w->svc->engine->stream_close(w->stream);
	w->stream = NULL;
	vx_buf_release(&w->utt);
	snprintf(w->failed, sizeof(w->failed), "%s", e.code);
}

static void ws_partial(void *user, const char *text)
{
	ws_stt *w = user;
	vx_buf *b = &w->ev;
	vx_buf_reset(b);
	vx_buf_puts(b, "{\"event\":\"partial\",\"text\":");
	vx_buf_json_str(b, text, strlen(text));
	vx_buf_puts(b, "}");
	if (b->data)
		vx_ws_send_text(w->c, b->data, b->len);
}

static void ws_audio(ws_stt *w, const ws_item *it)
{
	const stt_engine_ops *e = w->svc->engine;
	if (w->failed[0])
		return;
	if (!e->stream_open) {
		if (vx_buf_append(&w->utt, it->pcm, it->n * sizeof(int16_t)) < 0)
			ws_fail(w, -ENOMEM, "buffering");
		else
			w->utt_samples += (int64_t)it->n;
		return;
	}
	double t0 = vx_now_ms();
	int r = 0;
	if (!w->stream) {
		stt_options opt = { .language = w->language,
				    .request_id = vx_ws_request_id(w->c) };
		r = e->stream_open(w->svc->eng, &opt, &w->stream);
		if (r < 0) {
			w->stream = NULL;
			ws_fail(w, r, "stream open");
			return;
		}
	}
	r = e->stream_feed(w->stream, it->pcm, it->n, ws_partial, w);
	w->decode_ms += vx_now_ms() - t0;
	if (r < 0)
		ws_fail(w, r, "stream feed");
	else
		w->utt_samples += (int64_t)it->n;
}

static void ws_final(ws_stt *w, const stt_result *r, double t_end)
{
	stt_service *svc = w->svc;
	double audio_ms = (double)w->utt_samples * 1000.0 / STT_RATE;
	const char *lang = r->language ? r->language : w->language;
	vx_buf *b = &w->ev;
	vx_buf_reset(b);
	vx_buf_puts(b, "{\"event\":\"final\",\"text\":");
	vx_buf_json_str(b, r->text ? r->text : "", r->text ? strlen(r->text) : 0);
	vx_buf_puts(b, ",\"language\":");
	vx_buf_json_str(b, lang, strlen(lang));
	vx_buf_printf(b, ",\"duration_ms\":%.0f,\"processing_ms\":%.1f,"
		      "\"segments\":", audio_ms, vx_now_ms() - t_end);
	stt_segments_json(r, b);
	vx_buf_puts(b, "}");
	/* Counted before the client can see the final (and read /metrics). */
	if (w->utt_samples > 0)
		stt_observe(svc, audio_ms, w->decode_ms);
	vx_counter_add(svc->ws_utterances, 1);
	if (b->data)
		vx_ws_send_text(w->c, b->data, b->len);
}

static void ws_end(ws_stt *w, const ws_item *it)
{
	const stt_engine_ops *e = w->svc->engine;
	stt_result res = {0};
	int r = 0;
	const char *why = it->code[0] ? it->code : w->failed;
	if (why[0]) {
		vx_ws_send_error(w->c, "utterance_dropped",
				 "the utterance was dropped (%s); nothing to "
				 "transcribe", why);
		ws_discard(w);
		return;
	}
	double t0 = vx_now_ms();
	if (e->stream_open && w->stream) {
		r = e->stream_finish(w->stream, &res);
	} else if (!e->stream_open && w->utt_samples > 0) {
		stt_options opt = { .language = w->language,
				    .request_id = vx_ws_request_id(w->c) };
		r = e->transcribe(w->svc->eng, (const int16_t *)(void *)w->utt.data,
				  (size_t)w->utt_samples, &opt, &w->cancel, &res);
	}
	w->decode_ms += vx_now_ms() - t0;
	if (r == -ECANCELED) {
		ws_discard(w);   /* the CANCEL item behind us answers */
		return;
	}
	if (r < 0) {
		ws_fail(w, r, "transcribe");
		vx_ws_send_error(w->c, "utterance_dropped",
				 "the utterance was dropped (%s)", w->failed);
	} else {
		ws_final(w, &res, it->t_ms);
	}
	stt_result_release(&res);
	ws_discard(w);
}

static void ws_process(ws_stt *w, const ws_item *it)
{
	switch (it->kind) {
	case WS_AUDIO:
		ws_audio(w, it);
		break;
	case WS_END:
		ws_end(w, it);
		break;
	case WS_CANCEL:
		ws_discard(w);
		atomic_store(&w->cancel, false);
		vx_ws_send_text(w->c, "{\"event\":\"cancelled\"}", 21);
		break;
	case WS_CONFIG:
		ws_discard(w);
		atomic_store(&w->cancel, false);
		snprintf(w->language, sizeof(w->language), "%s", it->code);
		break;
	}
}

static void ws_free_items(ws_item *it)
{
	while (it) {
		ws_item *next = it->next;
		free(it);
		it = next;
	}
}

/* Drains the connection's queue in order; one such job per connection. */
static void ws_job(void *arg)
{
	ws_stt *w = arg;
	stt_service *svc = w->svc;
	vx_wsconn *c = w->c;
	pthread_mutex_lock(&w->lock);
	for (;;) {
		if (w->closed) {
			ws_free_items(w->head);
			w->head = w->tail = NULL;
			w->queued_bytes = 0;
			pthread_mutex_unlock(&w->lock);
			ws_discard(w);   /* closed: nobody else will touch it */
			break;
		}
		ws_item *it = w->head;
		if (!it) {
			w->job_active = false;
			pthread_mutex_unlock(&w->lock);
			break;
		}
		w->head = it->next;
		if (!w->head)
			w->tail = NULL;
		w->queued_bytes -= it->n * sizeof(int16_t);
		pthread_mutex_unlock(&w->lock);
		ws_process(w, it);
		free(it);
		pthread_mutex_lock(&w->lock);
	}
	ws_unref(w);
	vx_ws_unref(c);
	atomic_fetch_sub(&svc->ws_jobs, 1);
}

/* ---- the receiver side (lws service thread) ---- */

/* Appends it to the queue and makes sure a job drains it. */
static void ws_push(ws_stt *w, ws_item *it)
{
	pthread_mutex_lock(&w->lock);
	if (w->tail)
		w->tail->next = it;
	else
		w->head = it;
	w->tail = it;
	w->queued_bytes += it->n * sizeof(int16_t);
	bool start = !w->job_active;
	w->job_active = true;
	pthread_mutex_unlock(&w->lock);
	if (!start)
		return;
	atomic_fetch_add(&w->refs, 1);
	atomic_fetch_add(&w->svc->ws_jobs, 1);
	vx_ws_ref(w->c);
	if (vx_pool_submit(w->svc->pool, ws_job, w) == 0)
		return;
	vx_ws_unref(w->c);
	atomic_fetch_sub(&w->svc->ws_jobs, 1);
	atomic_fetch_sub(&w->refs, 1);   /* the connection still holds one */
	pthread_mutex_lock(&w->lock);
	w->job_active = false;
	pthread_mutex_unlock(&w->lock);
	vx_log_warn(vx_ws_request_id(w->c), "worker pool full: closing stream");
	vx_ws_send_error(w->c, "overloaded",
			 "all workers and the queue are busy; reconnect shortly");
	vx_ws_close(w->c, 1013, "overloaded");
}

static ws_item *ws_item_new(ws_kind kind, size_t n)
{
	ws_item *it = calloc(1, sizeof(*it) + n * sizeof(int16_t));
	if (it) {
		it->kind = kind;
		it->n = n;
	}
	return it;
}

/* Queues 16 kHz samples, enforcing the per-utterance limits. */
static void ws_queue_audio(ws_stt *w, const int16_t *pcm, size_t n)
{
	stt_service *svc = w->svc;
	if (!n || w->rx_dropped[0])
		return;
	const char *why = NULL;
	if (w->rx_samples + (int64_t)n > (int64_t)svc->max_audio_s * STT_RATE) {
		why = "audio_too_long";
		vx_ws_send_error(w->c, why, "over %d s of audio in one utterance",
				 svc->max_audio_s);
	} else {
		pthread_mutex_lock(&w->lock);
		bool full = w->queued_bytes + n * sizeof(int16_t) >
			    STT_WS_QUEUE_MAX_BYTES;
		pthread_mutex_unlock(&w->lock);
		if (full) {
			why = "queue_full";
			vx_ws_send_error(w->c, why, "more than %u bytes of audio "
					 "wait for the decoder; send in real time",
					 STT_WS_QUEUE_MAX_BYTES);
		}
	}
	ws_item *it = why ? NULL : ws_item_new(WS_AUDIO, n);
	if (!why && !it) {
		why = "out_of_memory";
		vx_ws_send_error(w->c, why, "out of memory");
	}
	if (why) {
		snprintf(w->rx_dropped, sizeof(w->rx_dropped), "%s", why);
		return;
	}
	memcpy(it->pcm, pcm, n * sizeof(int16_t));
	w->rx_samples += (int64_t)n;
	ws_push(w, it);
}

/* Drains what the resampler still holds: queued when queue is true (the
 * end of an utterance), dropped otherwise (cancel). */
static void ws_rx_flush(ws_stt *w, bool queue)
{
	vx_buf_reset(&w->resampled);
	if (w->configured && vx_pcmstream_flush(&w->in, &w->resampled) == 0 &&
	    queue && w->resampled.len >= sizeof(int16_t))
		ws_queue_audio(w, (const int16_t *)(void *)w->resampled.data,
			       w->resampled.len / sizeof(int16_t));
}

/* Starts a new utterance on the receiver side. */
static void ws_rx_reset(ws_stt *w)
{
	w->rx_samples = 0;
	w->rx_dropped[0] = '\0';
}

static const char *ws_encoding_name(vx_encoding e)
{
	return e == VX_ENC_MULAW ? "mulaw" : e == VX_ENC_ALAW ? "alaw" : "pcm16";
}

/* A language tag (ISO 639 / BCP 47 shape): a letter, then letters, digits,
 * '-' or '_'; "auto" passes too. Engines still say which they know. */
static bool ws_language_ok(const char *l)
{
	if (!isalpha((unsigned char)l[0]))
		return false;
	for (const char *p = l; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
			return false;
	return true;
}

static void ws_configure(ws_stt *w, const cJSON *j)
{
	stt_service *svc = w->svc;
	vx_encoding enc = VX_ENC_PCM16;
	int rate;
	const char *e, *l;
	if (vx_json_string(j, "encoding", NULL, SIZE_MAX, &e) < 0 ||
	    (e && vx_encoding_from_name(e, &enc) < 0)) {
		vx_ws_send_error(w->c, "bad_config",
				 "encoding must be pcm16, mulaw or alaw");
		return;
	}
	if (vx_json_int(j, "sample_rate", STT_RATE, 8000, 192000, &rate) < 0) {
		vx_ws_send_error(w->c, "bad_config",
				 "sample_rate must be 8000 to 192000");
		return;
	}
	if (vx_json_string(j, "language", NULL, WS_LANG_MAX - 1, &l) < 0 ||
	    (l && *l && !ws_language_ok(l))) {
		vx_ws_send_error(w->c, "bad_config",
				 "language must be a short code such as \"en\" "
				 "or \"en-US\" (letters, digits, '-')");
		return;
	}
	if (l && !*l)
		l = NULL;   /* "" is the default, as on POST /transcribe */
	vx_pcmstream in;
	int r = vx_pcmstream_init(&in, enc, rate, STT_RATE);
	ws_item *it = r == 0 ? ws_item_new(WS_CONFIG, 0) : NULL;
	if (!it) {
		if (r == 0)
			vx_pcmstream_release(&in);
		vx_ws_send_error(w->c, "engine_failed", "cannot start: %s",
				 strerror(r < 0 ? -r : ENOMEM));
		return;
	}
	if (w->configured)
		vx_pcmstream_release(&w->in);
	w->in = in;
	w->encoding = enc;
	w->rate = rate;
	w->configured = true;
	ws_rx_reset(w);
	const char *lang = l ? l : svc->language;
	snprintf(it->code, sizeof(it->code), "%s", lang);
	ws_push(w, it);   /* drops an utterance in progress, sets the language */

	vx_buf b = {0};
	vx_buf_printf(&b, "{\"event\":\"ready\",\"sample_rate\":%d,"
		      "\"encoding\":\"%s\",\"engine\":\"%s\",\"language\":",
		      rate, ws_encoding_name(enc), svc->engine->name);
	vx_buf_json_str(&b, lang, strlen(lang));
	vx_buf_printf(&b, ",\"partials\":%s}",
		      svc->engine->stream_open ? "true" : "false");
	if (b.data)
		vx_ws_send_text(w->c, b.data, b.len);
	vx_buf_release(&b);
}

/* Drops queued audio and ends (not yet started) of the current utterance. */
static void ws_cancel(ws_stt *w)
{
	pthread_mutex_lock(&w->lock);
	ws_item **pp = &w->head;
	w->tail = NULL;
	while (*pp) {
		ws_item *it = *pp;
		if (it->kind == WS_AUDIO || it->kind == WS_END) {
			*pp = it->next;
			w->queued_bytes -= it->n * sizeof(int16_t);
			free(it);
		} else {
			w->tail = it;
			pp = &it->next;
		}
	}
	atomic_store(&w->cancel, true);
	pthread_mutex_unlock(&w->lock);
	ws_rx_flush(w, false);
	ws_rx_reset(w);
	ws_item *it = ws_item_new(WS_CANCEL, 0);
	if (it)
		ws_push(w, it);
}

static void ws_on_text(vx_wsconn *c, void *state, const char *text, size_t len)
{
	ws_stt *w = state;
	cJSON *j = cJSON_ParseWithLength(text, len);
	if (!j || !cJSON_IsObject(j)) {
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
	if (ev && !name) {
		vx_ws_send_error(c, "invalid_type", "\"event\" must be a string");
	} else if (!name || !strcmp(name, "config") || !strcmp(name, "start")) {
		ws_configure(w, j);
	} else if (!w->configured) {
		vx_ws_send_error(c, "not_configured",
				 "send a JSON config message first");
	} else if (!strcmp(name, "end")) {
		ws_item *it = ws_item_new(WS_END, 0);
		if (!it) {
			vx_ws_send_error(c, "out_of_memory", "out of memory");
			goto out_free;
		}
		ws_rx_flush(w, true);   /* the resampler's tail goes first */
		it->t_ms = vx_now_ms();
		snprintf(it->code, sizeof(it->code), "%s", w->rx_dropped);
		ws_rx_reset(w);
		ws_push(w, it);
	} else if (!strcmp(name, "cancel")) {
		ws_cancel(w);
	} else {
		vx_ws_send_error(c, "unknown_event",
				 "events are config, end and cancel");
	}
out_free:
	cJSON_Delete(j);
}

static void ws_on_binary(vx_wsconn *c, void *state, const void *data, size_t len)
{
	ws_stt *w = state;
	if (!w->configured) {
		vx_ws_send_error(c, "not_configured",
				 "send a JSON config message before audio");
		return;
	}
	if (w->rx_dropped[0])
		return;
	vx_buf_reset(&w->resampled);
	if (vx_pcmstream_feed(&w->in, data, len, &w->resampled) < 0) {
		vx_ws_send_error(c, "resample_failed", "cannot convert the audio");
		snprintf(w->rx_dropped, sizeof(w->rx_dropped), "resample_failed");
		return;
	}
	if (w->resampled.len >= sizeof(int16_t))
		ws_queue_audio(w, (const int16_t *)(void *)w->resampled.data,
			       w->resampled.len / sizeof(int16_t));
	if (w->resampled.cap > 64 * 1024)
		vx_buf_release(&w->resampled);
}

static int ws_on_open(vx_wsconn *c, void *user, void **ret_state)
{
	ws_stt *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->svc = user;
	w->c = c;
	atomic_init(&w->refs, 1);
	atomic_init(&w->cancel, false);
	pthread_mutex_init(&w->lock, NULL);
	snprintf(w->language, sizeof(w->language), "%s", w->svc->language);
	*ret_state = w;
	return 0;
}

static void ws_on_close(vx_wsconn *c, void *state)
{
	ws_stt *w = state;
	(void)c;
	pthread_mutex_lock(&w->lock);
	w->closed = true;
	atomic_store(&w->cancel, true);
	ws_free_items(w->head);
	w->head = w->tail = NULL;
	w->queued_bytes = 0;
	/* A decoder still held (no job running) is given back by a job,
	 * since ending an utterance may take a while. */
	bool reap = !w->job_active && w->stream;
	if (reap)
		w->job_active = true;
	pthread_mutex_unlock(&w->lock);
	if (reap) {
		atomic_fetch_add(&w->refs, 1);
		atomic_fetch_add(&w->svc->ws_jobs, 1);
		vx_ws_ref(c);
		if (vx_pool_submit(w->svc->pool, ws_job, w) < 0) {
			vx_ws_unref(c);
			atomic_fetch_sub(&w->svc->ws_jobs, 1);
			atomic_fetch_sub(&w->refs, 1);
			ws_discard(w);   /* pool stopping: give it back here */
		}
	}
	ws_unref(w);
}

void stt_ws_quiesce(stt_service *svc, int timeout_s)
{
	for (int i = 0; i < timeout_s * 100 && atomic_load(&svc->ws_jobs) > 0; i++)
		usleep(10000);
}

const vx_ws_route stt_ws_routes[] = {
	{ "/ws/transcribe", ws_on_open, ws_on_text, ws_on_binary, ws_on_close },
};
const size_t stt_n_ws_routes = sizeof(stt_ws_routes) / sizeof(stt_ws_routes[0]);
