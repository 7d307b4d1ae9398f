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
 * Threads: the shared layer (vx_svcws.h) reads messages on the lws thread
 * and hands texts to one pool job per socket at a time, so texts come back
 * in order; closing the socket cancels the text in flight and drops the
 * queue. A slow reader makes the job wait (WS_HIGH_WATER) rather than
 * buffer without bound.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tts_service.h"
#include "vx_audio.h"
#include "vx_json.h"
#include "vx_log.h"
#include "vx_svcws.h"
#include "vx_time.h"

#define WS_MAX_QUEUED 64               /* texts waiting per socket */
#define WS_ID_MAX 64                   /* bytes of an echoed id */
#define WS_HIGH_WATER (1u << 20)       /* unsent bytes before the job waits */

/* The output settings a text is spoken with. */
typedef struct ws_conf {
	tts_target target;
	int rate;                      /* output, Hz */
	vx_encoding encoding;          /* PCM16, MULAW or ALAW */
	double speed;
} ws_conf;

typedef enum ws_kind { WS_TEXT, WS_END, WS_CANCELLED } ws_kind;

typedef struct ws_item {
	vx_svcws_item base;            /* kind: ws_kind */
	char *text;                    /* WS_TEXT */
	char id_field[WS_ID_MAX + 8];  /* ,"id":<json> or "" */
	ws_conf conf;
} ws_item;

/* The socket's state: the lws thread's (the job reads items only). */
typedef struct ws_state {
	tts_service *svc;
	ws_conf conf;                  /* the config texts are queued under */
} ws_state;

/* One text being spoken, reached from the engine's callback. */
typedef struct ws_speech {
	vx_svcws_conn *cn;
	tts_service *svc;
	const ws_item *item;
	tts_synth_stats stats;
	vx_resampler *rs;              /* engine rate -> output rate, or NULL */
	vx_buf out;                    /* one outgoing frame */
	size_t samples_out;            /* at the output rate */
	double t0_ms;
	bool timed_out, send_failed;
} ws_speech;

static void ws_item_free(vx_svcws_item *base)
{
	ws_item *it = (ws_item *)base;
	free(it->text);
	free(it);
}

/* ---- the job: speaking one text ---- */

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
	if (!vx_svcws_wait_writable(sp->cn, WS_HIGH_WATER))
		return -ECANCELED;
	return vx_svcws_send_binary(sp->cn, o->data, o->len);
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
	if (vx_now_ms() - sp->t0_ms > sp->svc->timeout_s * 1000.0) {
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

static void ws_speak(vx_svcws_conn *cn, tts_service *svc, const ws_item *it)
{
	const ws_conf *cf = &it->conf;
	ws_speech sp = { .cn = cn, .svc = svc, .item = it, .t0_ms = vx_now_ms() };
	const char *rid = vx_svcws_request_id(cn);
	char ev[256];
	int n = snprintf(ev, sizeof(ev), "{\"event\":\"start\"%s,\"sample_rate\":%d,"
			 "\"encoding\":\"%s\"}", it->id_field, cf->rate,
			 vx_encoding_name(cf->encoding));
	vx_svcws_send_text(cn, ev, (size_t)n);
	int r = tts_synth_run(svc, &cf->target, it->text, cf->speed, rid,
			      vx_svcws_cancel_flag(cn), ws_chunk, &sp, &sp.stats);
	if (r == 0 && sp.rs && ws_resample_send(&sp, NULL, 0, true) < 0)
		r = -ECANCELED;
	if (sp.timed_out) {
		vx_svcws_error_fields(cn, it->id_field, "timeout",
				      "synthesis took longer than %d s",
				      svc->timeout_s);
	} else if (r == -ECANCELED || sp.send_failed) {
		;   /* cancelled or gone: a WS_CANCELLED item answers */
	} else if (r < 0) {
		const char *code;
		tts_synth_error_status(r, &code);
		vx_log_warn(rid, "%s engine: %s", cf->target.be->name,
			    strerror(-r));
		vx_svcws_error_fields(cn, it->id_field, code, "%s engine: %s",
				      cf->target.be->name, strerror(-r));
	} else {
		n = snprintf(ev, sizeof(ev), "{\"event\":\"done\"%s,"
			     "\"duration_ms\":%lld,\"processing_ms\":%.0f,"
			     "\"first_chunk_ms\":%.1f}", it->id_field,
			     (long long)(sp.samples_out * 1000 / (size_t)cf->rate),
			     sp.stats.total_ms, sp.stats.first_chunk_ms);
		vx_svcws_send_text(cn, ev, (size_t)n);
	}
	vx_resampler_free(sp.rs);
	vx_buf_release(&sp.out);
}

static const char ws_cancelled[] = "{\"event\":\"cancelled\"}";
static const char ws_ended[] = "{\"event\":\"done\",\"end\":true}";

/* Pool thread: one item of the socket's queue, in order. */
static void ws_run(vx_svcws_conn *cn, void *state, vx_svcws_item *base)
{
	(void)state;
	ws_item *it = (ws_item *)base;
	if (base->kind == WS_TEXT)
		ws_speak(cn, vx_svcws_user(cn), it);
	else if (base->kind == WS_END)
		vx_svcws_send_text(cn, ws_ended, sizeof(ws_ended) - 1);
	else
		vx_svcws_send_text(cn, ws_cancelled, sizeof(ws_cancelled) - 1);
}

/* No worker would take the queue: each waiting item is told so. */
static void ws_refused(vx_svcws_conn *cn, void *state, vx_svcws_item *items,
		       int err)
{
	ws_state *st = state;
	(void)err;
	for (vx_svcws_item *x = items; x; x = x->next)
		vx_svcws_error_fields(cn, ((ws_item *)x)->id_field, "overloaded",
				      "all %d workers are busy; retry shortly",
				      st->svc->d.workers);
}

/* ---- the lws thread: parsing and queueing ---- */

/* Reads a config; on success it becomes the socket's and "ready" goes out. */
static int ws_configure(vx_svcws_conn *cn, void *state, const cJSON *j)
{
	ws_state *st = state;
	tts_service *svc = st->svc;
	ws_conf cf = { .encoding = VX_ENC_PCM16, .speed = 1.0 };
	const char *vname, *enc;
	if (vx_json_string(j, "voice", NULL, SIZE_MAX, &vname) < 0) {
		vx_svcws_error(cn, "bad_config", "voice must be a string");
		return -EINVAL;
	}
	if (tts_synth_resolve(svc, vname, &cf.target) < 0) {
		char some[256];
		tts_synth_some_voices(svc, some, sizeof(some));
		vx_svcws_error(cn, "unknown_voice",
			       "unknown voice '%.64s'; voices: %s",
			       vname ? vname : "", some);
		return -EINVAL;
	}
	if (vx_json_string(j, "encoding", NULL, SIZE_MAX, &enc) < 0 ||
	    (enc && vx_encoding_from_name(enc, &cf.encoding) < 0)) {
		vx_svcws_error(cn, "bad_config",
			       "encoding must be pcm16, mulaw or alaw");
		return -EINVAL;
	}
	int def_rate = cf.target.rate > 0 ? cf.target.rate : TTS_OPENAI_RATE;
	if (vx_json_int(j, "sample_rate", def_rate, TTS_RATE_MIN, TTS_RATE_MAX,
			&cf.rate) < 0) {
		vx_svcws_error(cn, "bad_config",
			       "sample_rate is an integer from %d to %d",
			       TTS_RATE_MIN, TTS_RATE_MAX);
		return -EINVAL;
	}
	if (vx_json_number(j, "speed", 1.0, TTS_SPEED_MIN, TTS_SPEED_MAX,
			   &cf.speed) < 0) {
		vx_svcws_error(cn, "bad_config",
			       "speed is a number from 0.25 to 4.0");
		return -EINVAL;
	}
	st->conf = cf;
	vx_buf b = {0};
	vx_buf_puts(&b, "{\"event\":\"ready\",\"voice\":");
	vx_buf_json_str(&b, cf.target.voice, strlen(cf.target.voice));
	vx_buf_printf(&b, ",\"sample_rate\":%d,\"encoding\":\"%s\",\"engine\":\"%s\"}",
		      cf.rate, vx_encoding_name(cf.encoding), cf.target.be->name);
	vx_svcws_send_buf(cn, &b);
	vx_buf_release(&b);
	return 0;
}

/* Queues it (taken); a full queue is refused with the text's id. */
static void ws_enqueue(vx_svcws_conn *cn, ws_item *it)
{
	char id_field[sizeof(it->id_field)];
	memcpy(id_field, it->id_field, sizeof(id_field));
	if (vx_svcws_push(cn, &it->base) == -ENOBUFS)
		vx_svcws_error_fields(cn, id_field, "queue_full",
				      "%d texts are already waiting on this "
				      "socket", WS_MAX_QUEUED);
}

/* A text to speak ({"text":...}, "event" "text" or "speak"). The first
 * one on an unconfigured socket configures it from its own fields. */
static int ws_message(vx_svcws_conn *cn, void *state, const cJSON *j,
		      const char *name, const char *raw, size_t rawlen)
{
	ws_state *st = state;
	(void)raw;
	(void)rawlen;
	if (name && strcmp(name, "text") != 0 && strcmp(name, "speak") != 0)
		return -ENOENT;
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "text");
	ws_item *it = vx_svcws_item_new(sizeof(*it), WS_TEXT);
	if (!it) {
		vx_svcws_error(cn, "out_of_memory", "out of memory");
		return 0;
	}
	(void)vx_json_id_member(j, WS_ID_MAX, it->id_field,
				sizeof(it->id_field));
	if (!cJSON_IsString(t)) {
		vx_svcws_error_fields(cn, it->id_field, "invalid_type",
				      "\"text\" must be a string");
		goto out_free_item;
	}
	size_t len = strlen(t->valuestring);
	int r = tts_synth_check_text(st->svc, t->valuestring, len);
	if (r < 0) {
		const char *code = r == -EINVAL ? "empty_text" :
				   r == -EILSEQ ? "invalid_utf8" :
				   "text_too_long";
		vx_svcws_error_fields(cn, it->id_field, code,
				      "text must be non-empty UTF-8 of at "
				      "most %d characters",
				      st->svc->max_text_chars);
		goto out_free_item;
	}
	if (!vx_svcws_configured(cn)) {
		if (ws_configure(cn, st, j) < 0)
			goto out_free_item;
		vx_svcws_set_configured(cn, true);
	}
	it->text = strdup(t->valuestring);
	if (!it->text)
		goto out_free_item;
	it->conf = st->conf;
	ws_enqueue(cn, it);
	return 0;
out_free_item:
	ws_item_free(&it->base);
	return 0;
}

/* Drops the queue and stops the text being spoken; "cancelled" comes
 * after it (at once when idle). */
static void ws_cancel(vx_svcws_conn *cn, void *state)
{
	(void)state;
	if (!vx_svcws_cancel(cn, NULL)) {
		vx_svcws_send_text(cn, ws_cancelled, sizeof(ws_cancelled) - 1);
		return;
	}
	ws_item *it = vx_svcws_item_new(sizeof(*it), WS_CANCELLED);
	if (it)
		ws_enqueue(cn, it);
}

/* "done","end":true after what is queued (at once when idle). */
static void ws_end(vx_svcws_conn *cn, void *state)
{
	(void)state;
	if (vx_svcws_idle(cn)) {   /* only this thread starts jobs */
		vx_svcws_send_text(cn, ws_ended, sizeof(ws_ended) - 1);
		return;
	}
	ws_item *it = vx_svcws_item_new(sizeof(*it), WS_END);
	if (it)
		ws_enqueue(cn, it);
}

static void ws_init(vx_svcws_conn *cn, void *state)
{
	ws_state *st = state;
	st->svc = vx_svcws_user(cn);
}

static vx_pool *ws_pool(void *user)
{
	return ((tts_service *)user)->pool;
}

static const vx_svcws_ops ws_ops = {
	.state_size = sizeof(ws_state),
	.pool = ws_pool,
	.bare_key = "text",
	.events = "config, text, cancel, end",
	.max_items = WS_MAX_QUEUED,
	.init = ws_init,
	.config = ws_configure,
	.end = ws_end,
	.cancel = ws_cancel,
	.message = ws_message,
	.run = ws_run,
	.item_free = ws_item_free,
	.refused = ws_refused,
};

static int ws_open(vx_wsconn *c, void *user, void **ret_state)
{
	return vx_svcws_open(c, &ws_ops, user, ret_state);
}

const vx_svcws_ops *tts_ws_ops(void) { return &ws_ops; }

const vx_ws_route tts_ws_routes[] = {
	{ "/ws/synthesize", ws_open, vx_svcws_on_text, NULL, vx_svcws_on_close, false },
};
const size_t tts_n_ws_routes = sizeof(tts_ws_routes) / sizeof(tts_ws_routes[0]);
