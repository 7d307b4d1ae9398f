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
 * "code","message"}; an utterance that failed (no decoder in time, over
 * max_audio_s, more than STT_WS_QUEUE_MAX_BYTES waiting, engine error) is
 * dropped: its audio is ignored and its "end" is answered with an error
 * (code "utterance_dropped") instead of a final. A config is checked whole
 * before any of it is used ("bad_config": a language must be a tag such as
 * "en" or "en-US", never a path); messages holding a NUL (raw or \u0000)
 * are refused ("invalid_string") rather than read cut short.
 *
 * Threads: the shared layer (vx_svcws.h) runs the callbacks on the lws
 * service thread; they only decode G.711, resample to 16 kHz (the
 * resampler is theirs alone) and queue items (audio, end, cancel, config)
 * on the socket. One pool job at a time per socket drains the queue in
 * order and makes every engine call, so the decoder is used by one thread
 * and events keep their order. A streaming engine's decoder is taken at
 * an utterance's first audio and given back at its final, cancel or the
 * socket's close (on a pool job: that may take a while); remote engines
 * buffer the utterance and transcribe it at "end". An utterance that finds
 * every decoder held by other sockets' utterances buffers its audio too and
 * tries again at each chunk; its "end" waits for a decoder (the job gives
 * its pool thread back meanwhile: vx_svcws_retry_later) for at most
 * STT_WS_DECODER_WAIT_MS before the utterance is dropped as "overloaded".
 */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stt_service.h"
#include "vx_audio.h"
#include "vx_json.h"
#include "vx_log.h"
#include "vx_pcmstream.h"
#include "vx_svcws.h"
#include "vx_time.h"

#define WS_LANG_MAX 32       /* bytes of a language code, NUL included */
#define WS_CODE_MAX 32       /* bytes of an error code, NUL included */

typedef enum ws_kind { WS_AUDIO, WS_END, WS_CANCEL, WS_CONFIG } ws_kind;

typedef struct ws_item {
	vx_svcws_item base;           /* kind: ws_kind; bytes: of pcm */
	double t_ms;                  /* END: when it arrived (monotonic ms) */
	char code[WS_CODE_MAX];       /* END: why the receiver dropped the
				       * utterance, "" when it did not;
				       * CONFIG: the language */
	size_t n;                     /* AUDIO: samples */
	int16_t pcm[];                /* AUDIO: 16 kHz mono */
} ws_item;

typedef struct ws_stt {
	stt_service *svc;
	vx_svcws_conn *cn;

	/* receiver: the lws service thread only */
	vx_pcmstream in;              /* client audio -> 16 kHz PCM16 */
	int64_t rx_samples;           /* 16 kHz samples queued this utterance */
	char rx_dropped[WS_CODE_MAX]; /* why this utterance is dropped, or "" */
	vx_buf resampled;             /* decoded 16 kHz samples */

	/* decoder side: the running job only */
	char language[WS_LANG_MAX];
	void *stream;                 /* streaming engine: open decoder or NULL */
	vx_buf utt;                   /* remote engine: the utterance, PCM16;
				       * streaming engine: its audio until a
				       * decoder is free */
	double wait_since;            /* streaming: when the utterance found
				       * every decoder busy (ms), 0 = never */
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
	w->wait_since = 0;
	w->decode_ms = 0;
	w->failed[0] = '\0';
}

/* ---- the decoder side (pool job) ---- */

/* Fails the utterance: reports why once, ignores its audio until "end". */
static void ws_fail(ws_stt *w, int err, const char *what)
{
	stt_http_error e;
	stt_error_map(w->svc, err, &e);
	vx_log_warn(vx_svcws_request_id(w->cn), "%s: %s (%s)", what, e.code,
		    strerror(-err));
	vx_svcws_error(w->cn, e.code, "%s", e.message);
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
	vx_svcws_send_buf(w->cn, b);
}

/*
 * Streaming engine: takes a decoder for the utterance and feeds it what
 * waited for one. 0, or -EBUSY while every decoder is held by other
 * sockets' utterances (the caller keeps buffering), or the engine's error.
 */
static int ws_stream_take(ws_stt *w)
{
	const stt_engine_ops *e = w->svc->engine;
	if (w->stream)
		return 0;
	stt_options opt = { .language = w->language,
			    .request_id = vx_svcws_request_id(w->cn) };
	int r = e->stream_open(w->svc->eng, &opt, &w->stream);
	if (r < 0) {
		w->stream = NULL;
		if (r == -EBUSY && !w->wait_since)
			w->wait_since = vx_now_ms();
		return r;
	}
	if (w->utt.len)
		r = e->stream_feed(w->stream,
				   (const int16_t *)(void *)w->utt.data,
				   w->utt.len / sizeof(int16_t), ws_partial, w);
	vx_buf_release(&w->utt);
	return r;
}

static void ws_audio(ws_stt *w, const ws_item *it)
{
	const stt_engine_ops *e = w->svc->engine;
	if (w->failed[0])
		return;
	double t0 = vx_now_ms();
	int r = (e->flags & VX_ENGINE_STREAMING) ? ws_stream_take(w) : -EBUSY;
	if (r == -EBUSY) {
		/* remote engine, or no decoder free yet: keep the audio */
		if (vx_buf_append(&w->utt, it->pcm, it->n * sizeof(int16_t)) < 0)
			ws_fail(w, -ENOMEM, "buffering");
		else
			w->utt_samples += (int64_t)it->n;
		return;
	}
	if (r == 0)
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
	vx_svcws_send_buf(w->cn, b);
}

static void ws_end_utterance(ws_stt *w, const ws_item *it)
{
	const stt_engine_ops *e = w->svc->engine;
	stt_result res = {0};
	int r = 0;
	const char *why = it->code[0] ? it->code : w->failed;
	if (why[0]) {
		vx_svcws_error(w->cn, "utterance_dropped",
			       "the utterance was dropped (%s); nothing to "
			       "transcribe", why);
		ws_discard(w);
		return;
	}
	double t0 = vx_now_ms();
	if (e->flags & VX_ENGINE_STREAMING) {
		if (w->utt_samples > 0 && (r = ws_stream_take(w)) == -EBUSY &&
		    vx_now_ms() - w->wait_since < STT_WS_DECODER_WAIT_MS) {
			/* others' utterances hold every decoder: this end
			 * runs again once their jobs had a turn */
			vx_svcws_retry_later(w->cn);
			return;
		}
		if (r == 0 && w->stream)
			r = e->stream_finish(w->stream, &res);
	} else if (w->utt_samples > 0) {
		stt_options opt = { .language = w->language,
				    .request_id = vx_svcws_request_id(w->cn) };
		r = e->transcribe(w->svc->eng, (const int16_t *)(void *)w->utt.data,
				  (size_t)w->utt_samples, &opt,
				  vx_svcws_cancel_flag(w->cn), &res);
	}
	w->decode_ms += vx_now_ms() - t0;
	if (r == -ECANCELED) {
		ws_discard(w);   /* the CANCEL item behind us answers */
		return;
	}
	if (r < 0) {
		ws_fail(w, r, "transcribe");
		vx_svcws_error(w->cn, "utterance_dropped",
			       "the utterance was dropped (%s)", w->failed);
	} else {
		ws_final(w, &res, it->t_ms);
	}
	stt_result_release(&res);
	ws_discard(w);
}

/* Pool thread: one item of the socket's queue, in order. */
static void ws_run(vx_svcws_conn *cn, void *state, vx_svcws_item *base)
{
	ws_stt *w = state;
	const ws_item *it = (const ws_item *)base;
	switch ((ws_kind)base->kind) {
	case WS_AUDIO:
		ws_audio(w, it);
		break;
	case WS_END:
		ws_end_utterance(w, it);
		break;
	case WS_CANCEL:
		ws_discard(w);
		vx_svcws_send_text(cn, "{\"event\":\"cancelled\"}", 21);
		break;
	case WS_CONFIG:
		ws_discard(w);
		snprintf(w->language, sizeof(w->language), "%s", it->code);
		break;
	}
}

/* A closed socket's decoder is given back on a pool job. */
static bool ws_release_on_pool(void *state)
{
	return ((ws_stt *)state)->stream != NULL;
}

static void ws_release(void *state)
{
	ws_stt *w = state;
	ws_discard(w);
	vx_pcmstream_release(&w->in);
	vx_buf_release(&w->resampled);
	vx_buf_release(&w->ev);
}

static int ws_job_start(vx_svcws_conn *cn, void *state)
{
	(void)cn;
	atomic_fetch_add(&((ws_stt *)state)->svc->ws_jobs, 1);
	return 0;
}

static void ws_job_end(void *user)
{
	atomic_fetch_sub(&((stt_service *)user)->ws_jobs, 1);
}

/* No worker would take the queue: the stream cannot go on. */
static void ws_refused(vx_svcws_conn *cn, void *state, vx_svcws_item *items,
		       int err)
{
	(void)state;
	(void)items;
	(void)err;
	vx_log_warn(vx_svcws_request_id(cn), "worker pool full: closing stream");
	vx_svcws_error(cn, "overloaded",
		       "all workers and the queue are busy; reconnect shortly");
	vx_svcws_close(cn, 1013, "overloaded");
}

/* ---- the receiver side (lws service thread) ---- */

static ws_item *ws_item_new(ws_kind kind, size_t n)
{
	ws_item *it = vx_svcws_item_new(sizeof(*it) + n * sizeof(int16_t), kind);
	if (it) {
		it->n = n;
		it->base.bytes = n * sizeof(int16_t);
	}
	return it;
}

/* Queues 16 kHz samples, enforcing the per-utterance limits. */
static void ws_queue_audio(ws_stt *w, const int16_t *pcm, size_t n)
{
	stt_service *svc = w->svc;
	vx_svcws_conn *cn = w->cn;
	if (!n || w->rx_dropped[0])
		return;
	const char *why = NULL;
	ws_item *it = NULL;
	if (w->rx_samples + (int64_t)n > (int64_t)svc->max_audio_s * STT_RATE) {
		why = "audio_too_long";
		vx_svcws_error(cn, why, "over %d s of audio in one utterance",
			       svc->max_audio_s);
	} else if (!(it = ws_item_new(WS_AUDIO, n))) {
		why = "out_of_memory";
		vx_svcws_error(cn, why, "out of memory");
	} else {
		memcpy(it->pcm, pcm, n * sizeof(int16_t));
		if (vx_svcws_push(cn, &it->base) == -ENOBUFS) {
			why = "queue_full";
			vx_svcws_error(cn, why, "more than %u bytes of audio "
				       "wait for the decoder; send in real time",
				       STT_WS_QUEUE_MAX_BYTES);
		}
	}
	if (why)
		snprintf(w->rx_dropped, sizeof(w->rx_dropped), "%s", why);
	else
		w->rx_samples += (int64_t)n;
}

/* Drains what the resampler still holds: queued when queue is true (the
 * end of an utterance), dropped otherwise (cancel). */
static void ws_rx_flush(ws_stt *w, bool queue)
{
	vx_buf_reset(&w->resampled);
	if (vx_svcws_configured(w->cn) &&
	    vx_pcmstream_flush(&w->in, &w->resampled) == 0 &&
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

static int ws_configure(vx_svcws_conn *cn, void *state, const cJSON *j)
{
	ws_stt *w = state;
	stt_service *svc = w->svc;
	vx_encoding enc = VX_ENC_PCM16;
	int rate;
	const char *e, *l;
	if (vx_json_string(j, "encoding", NULL, SIZE_MAX, &e) < 0 ||
	    (e && vx_encoding_from_name(e, &enc) < 0)) {
		vx_svcws_error(cn, "bad_config",
			       "encoding must be pcm16, mulaw or alaw");
		return -EINVAL;
	}
	if (vx_json_int(j, "sample_rate", STT_RATE, 8000, 192000, &rate) < 0) {
		vx_svcws_error(cn, "bad_config",
			       "sample_rate must be 8000 to 192000");
		return -EINVAL;
	}
	if (vx_json_string(j, "language", NULL, WS_LANG_MAX - 1, &l) < 0 ||
	    (l && *l && !ws_language_ok(l))) {
		vx_svcws_error(cn, "bad_config",
			       "language must be a short code such as \"en\" "
			       "or \"en-US\" (letters, digits, '-')");
		return -EINVAL;
	}
	if (l && !*l)
		l = NULL;   /* "" is the default, as on POST /transcribe */
	vx_pcmstream in;
	int r = vx_pcmstream_init(&in, enc, rate, STT_RATE);
	ws_item *it = r == 0 ? ws_item_new(WS_CONFIG, 0) : NULL;
	if (!it) {
		if (r == 0)
			vx_pcmstream_release(&in);
		vx_svcws_error(cn, "engine_failed", "cannot start: %s",
			       strerror(r < 0 ? -r : ENOMEM));
		return -EINVAL;
	}
	if (vx_svcws_configured(cn))
		vx_pcmstream_release(&w->in);
	w->in = in;
	vx_svcws_set_configured(cn, true);
	ws_rx_reset(w);
	const char *lang = l ? l : svc->language;
	snprintf(it->code, sizeof(it->code), "%s", lang);
	vx_svcws_push(cn, &it->base);   /* drops an utterance in progress,
					 * sets the language */
	vx_buf b = {0};
	vx_buf_printf(&b, "{\"event\":\"ready\",\"sample_rate\":%d,"
		      "\"encoding\":\"%s\",\"engine\":\"%s\",\"language\":",
		      rate, vx_encoding_name(enc), svc->engine->name);
	vx_buf_json_str(&b, lang, strlen(lang));
	vx_buf_printf(&b, ",\"partials\":%s}",
		      svc->engine->flags & VX_ENGINE_STREAMING ? "true" : "false");
	vx_svcws_send_buf(cn, &b);
	vx_buf_release(&b);
	return 0;
}

/* What a cancel keeps: configs and earlier cancels. */
static bool ws_keep_on_cancel(const vx_svcws_item *it)
{
	return it->kind != WS_AUDIO && it->kind != WS_END;
}

/* Drops queued audio and ends of the current utterance; "cancelled"
 * comes in order once the job has let go of it. */
static void ws_cancel(vx_svcws_conn *cn, void *state)
{
	ws_stt *w = state;
	vx_svcws_cancel(cn, ws_keep_on_cancel);
	ws_rx_flush(w, false);
	ws_rx_reset(w);
	ws_item *it = ws_item_new(WS_CANCEL, 0);
	if (it)
		vx_svcws_push(cn, &it->base);
}

static void ws_end(vx_svcws_conn *cn, void *state)
{
	ws_stt *w = state;
	ws_item *it = ws_item_new(WS_END, 0);
	if (!it) {
		vx_svcws_error(cn, "out_of_memory", "out of memory");
		return;
	}
	ws_rx_flush(w, true);   /* the resampler's tail goes first */
	it->t_ms = vx_now_ms();
	snprintf(it->code, sizeof(it->code), "%s", w->rx_dropped);
	ws_rx_reset(w);
	vx_svcws_push(cn, &it->base);
}

static void ws_binary(vx_svcws_conn *cn, void *state, const void *data,
		      size_t len)
{
	ws_stt *w = state;
	if (w->rx_dropped[0])
		return;
	vx_buf_reset(&w->resampled);
	if (vx_pcmstream_feed(&w->in, data, len, &w->resampled) < 0) {
		vx_svcws_error(cn, "resample_failed", "cannot convert the audio");
		snprintf(w->rx_dropped, sizeof(w->rx_dropped), "resample_failed");
		return;
	}
	if (w->resampled.len >= sizeof(int16_t))
		ws_queue_audio(w, (const int16_t *)(void *)w->resampled.data,
			       w->resampled.len / sizeof(int16_t));
	if (w->resampled.cap > 64 * 1024)
		vx_buf_release(&w->resampled);
}

static void ws_init(vx_svcws_conn *cn, void *state)
{
	ws_stt *w = state;
	w->svc = vx_svcws_user(cn);
	w->cn = cn;
	snprintf(w->language, sizeof(w->language), "%s", w->svc->language);
}

static vx_pool *ws_pool(void *user)
{
	return ((stt_service *)user)->pool;
}

static const vx_svcws_ops ws_ops = {
	.state_size = sizeof(ws_stt),
	.pool = ws_pool,
	.needs_config = true,
	.events = "config, end, cancel",
	.max_queued_bytes = STT_WS_QUEUE_MAX_BYTES,
	.init = ws_init,
	.config = ws_configure,
	.end = ws_end,
	.cancel = ws_cancel,
	.binary = ws_binary,
	.run = ws_run,
	.job_start = ws_job_start,
	.job_end = ws_job_end,
	.refused = ws_refused,
	.release_on_pool = ws_release_on_pool,
	.release = ws_release,
};

static int ws_open(vx_wsconn *c, void *user, void **ret_state)
{
	return vx_svcws_open(c, &ws_ops, user, ret_state);
}

const vx_svcws_ops *stt_ws_ops(void) { return &ws_ops; }

void stt_ws_quiesce(stt_service *svc, int timeout_s)
{
	for (int i = 0; i < timeout_s * 100 && atomic_load(&svc->ws_jobs) > 0; i++)
		usleep(10000);
}

const vx_ws_route stt_ws_routes[] = {
	{ "/ws/transcribe", ws_open, vx_svcws_on_text, vx_svcws_on_binary,
	  vx_svcws_on_close, false },
};
const size_t stt_n_ws_routes = sizeof(stt_ws_routes) / sizeof(stt_ws_routes[0]);
