/*
 * wyoming.c - voxline-tts over the Wyoming protocol (--wyoming-port).
 *
 *   describe                 -> info (tts: every loaded voice, languages)
 *   synthesize {text, voice?:{name?, language?, speaker?}}
 *                            -> audio-start {rate,width:2,channels:1},
 *                               audio-chunk* (PCM16 payload), audio-stop
 *   synthesize-start {voice?}, synthesize-chunk {text}*, synthesize-stop
 *                            -> one audio-start, audio-chunk* as each
 *                               sentence is ready, audio-stop, then
 *                               synthesize-stopped. A synthesize inside a
 *                               stream (sent for older servers) is ignored.
 *   errors                   -> error {text, code}
 *
 * Every text runs through /ws/synthesize's code (api_ws.c's vx_svcws ops
 * on vx_wy_svcws_io: synthesis on the pool, in order, with backpressure on
 * the unsent output); its events come back through wy_ws_text.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tts_service.h"
#include "vx_wyoming.h"

#define WY_STREAM_TEXT_MAX (64 * 1024)   /* bytes waiting for a sentence end */

typedef struct wy_tts {
	void *ws;                     /* the vx_svcws connection */
	/* everything below is under the connection's translation lock */
	bool streaming;               /* synthesize-start .. -stop (input) */
	bool tr_streaming;            /* .. synthesize-stopped (output) */
	bool in_config;               /* a config is being applied */
	bool config_failed;           /* ... and it answered an error */
	vx_buf acc;                   /* streamed text not yet spoken */
	bool audio_open;              /* audio-start sent, audio-stop not */
	int rate;                     /* of the audio being sent */
} wy_tts;

static vx_svcws_ops wy_ws_ops;

static void ws_say(vx_wy_conn *c, wy_tts *st, const char *json, size_t len)
{
	vx_svcws_on_text(vx_wy_as_ws(c), st->ws, json, len);
}

static void wy_describe(vx_wy_conn *c)
{
	tts_service *svc = vx_wy_user(c);
	vx_buf b = {0};
	vx_buf_puts(&b, "{\"asr\":[],\"wake\":[],\"handle\":[],\"intent\":[],"
		    "\"tts\":[{");
	vx_wy_artifact(&b, "voxline-tts", "voxline text to speech", "0.1.0");
	vx_buf_puts(&b, "\"supports_synthesize_streaming\":true,\"voices\":[");
	bool first = true;
	for (size_t i = 0; i < svc->n_backends; i++) {
		const tts_backend *be = &svc->backends[i];
		for (size_t v = 0; v < be->n_voices; v++) {
			const tts_voice *vo = &be->voices[v];
			char desc[160];
			snprintf(desc, sizeof(desc), "%s voice %s%s%s", be->name,
				 vo->name, vo->gender ? ", " : "",
				 vo->gender ? vo->gender : "");
			vx_buf_puts(&b, first ? "{" : ",{");
			first = false;
			vx_wy_artifact(&b, vo->name, desc, NULL);
			vx_buf_puts(&b, "\"languages\":[");
			if (vo->language)
				vx_buf_json_str(&b, vo->language, strlen(vo->language));
			vx_buf_puts(&b, "],\"speakers\":null}");
		}
	}
	vx_buf_puts(&b, "]}]}");
	if (b.data)
		vx_wy_send(c, "info", b.data, NULL, 0);
	vx_buf_release(&b);
}

/* Applies voice {name|language} as /ws/synthesize's config; false when it
 * was refused (the error has been sent). */
static bool wy_voice(vx_wy_conn *c, wy_tts *st, const cJSON *d)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(d, "voice");
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(v, "name");
	if (!cJSON_IsString(n))
		n = cJSON_GetObjectItemCaseSensitive(v, "language");
	if (v && !cJSON_IsNull(v) && !cJSON_IsObject(v)) {
		vx_wy_error(c, "bad_voice", "voice must be an object");
		return false;
	}
	vx_buf b = {0};
	vx_buf_puts(&b, "{\"event\":\"config\"");
	if (cJSON_IsString(n) && n->valuestring[0]) {
		vx_buf_puts(&b, ",\"voice\":");
		vx_buf_json_str(&b, n->valuestring, strlen(n->valuestring));
	}
	vx_buf_puts(&b, "}");
	st->in_config = true;
	st->config_failed = !b.data;
	if (b.data)
		ws_say(c, st, b.data, b.len);
	st->in_config = false;
	vx_buf_release(&b);
	return !st->config_failed;
}

static void say_text(vx_wy_conn *c, wy_tts *st, const char *id,
		     const char *text, size_t len)
{
	vx_buf b = {0};
	vx_buf_printf(&b, "{\"id\":\"%s\",\"text\":", id);
	vx_buf_json_str(&b, text, len);
	vx_buf_puts(&b, "}");
	if (b.data)
		ws_say(c, st, b.data, b.len);
	vx_buf_release(&b);
}

static bool all_space(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isspace((unsigned char)p[i]))
			return false;
	return true;
}

/* Speaks each finished sentence of the streamed text (all of it when
 * last); the rest waits for more. */
static void stream_flush(vx_wy_conn *c, wy_tts *st, bool last)
{
	size_t start = 0;
	const char *p = st->acc.data;
	for (size_t i = 0; i < st->acc.len; i++) {
		bool end = p[i] == '\n' ||
			   ((p[i] == '.' || p[i] == '!' || p[i] == '?' ||
			     p[i] == ';') &&
			    i + 1 < st->acc.len && isspace((unsigned char)p[i + 1]));
		if (!end)
			continue;
		if (!all_space(p + start, i + 1 - start))
			say_text(c, st, "z", p + start, i + 1 - start);
		start = i + 1;
	}
	if (last && start < st->acc.len &&
	    !all_space(p + start, st->acc.len - start)) {
		say_text(c, st, "z", p + start, st->acc.len - start);
		start = st->acc.len;
	}
	if (start) {
		size_t rest = st->acc.len - start;
		memmove(st->acc.data, st->acc.data + start, rest);
		st->acc.len = rest;
		st->acc.data[rest] = 0;
	}
	if (last)
		vx_buf_release(&st->acc);
}

static void wy_synthesize(vx_wy_conn *c, wy_tts *st, const cJSON *d)
{
	if (st->streaming)
		return;   /* the compatibility copy of a stream's text */
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(d, "text");
	if (!cJSON_IsString(t)) {
		vx_wy_error(c, "bad_text", "synthesize needs a \"text\" string");
		return;
	}
	if (wy_voice(c, st, d))
		say_text(c, st, "s", t->valuestring, strlen(t->valuestring));
}

static void wy_event(vx_wy_conn *c, void *state, const vx_wy_event *ev)
{
	wy_tts *st = state;
	const char *ty = ev->type;
	if (!strcmp(ty, "describe")) {
		wy_describe(c);
	} else if (!strcmp(ty, "synthesize")) {
		wy_synthesize(c, st, ev->data);
	} else if (!strcmp(ty, "synthesize-start")) {
		if (st->streaming || st->tr_streaming) {
			vx_wy_error(c, "busy", "a synthesize stream is still running");
			return;
		}
		if (!wy_voice(c, st, ev->data))
			return;
		st->streaming = st->tr_streaming = true;
		vx_buf_reset(&st->acc);
	} else if (!strcmp(ty, "synthesize-chunk")) {
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(ev->data, "text");
		if (!st->streaming) {
			vx_wy_error(c, "not_started",
				    "synthesize-chunk before synthesize-start");
		} else if (!cJSON_IsString(t)) {
			vx_wy_error(c, "bad_text", "synthesize-chunk needs \"text\"");
		} else if (st->acc.len + strlen(t->valuestring) > WY_STREAM_TEXT_MAX) {
			vx_wy_error(c, "too_large", "over %d bytes of text without "
				    "a sentence end", WY_STREAM_TEXT_MAX);
		} else {
			vx_buf_puts(&st->acc, t->valuestring);
			stream_flush(c, st, false);
		}
	} else if (!strcmp(ty, "synthesize-stop")) {
		if (!st->streaming) {
			vx_wy_error(c, "not_started",
				    "synthesize-stop before synthesize-start");
			return;
		}
		stream_flush(c, st, true);
		st->streaming = false;
		ws_say(c, st, "{\"event\":\"end\"}", 15);
	} else if (!strcmp(ty, "ping")) {
		vx_wy_send(c, "pong", NULL, NULL, 0);
	} else {
		vx_wy_error(c, "unknown_event", "unknown event '%s' (describe, "
			    "synthesize, synthesize-start, synthesize-chunk, "
			    "synthesize-stop)", ty);
	}
}

static void audio_start(vx_wy_conn *c, wy_tts *st)
{
	char d[96];
	snprintf(d, sizeof(d), "{\"rate\":%d,\"width\":2,\"channels\":1}",
		 st->rate);
	vx_wy_send(c, "audio-start", d, NULL, 0);
	st->audio_open = true;
}

static void audio_stop(vx_wy_conn *c, wy_tts *st)
{
	if (st->audio_open)
		vx_wy_send(c, "audio-stop", NULL, NULL, 0);
	st->audio_open = false;
}

/* /ws/synthesize's events -> Wyoming events. */
static void wy_ws_text(vx_wy_conn *c, void *state, const char *text,
		       size_t len)
{
	wy_tts *st = state;
	cJSON *j = cJSON_ParseWithLength(text, len);
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "event");
	const char *name = cJSON_IsString(e) ? e->valuestring : "";
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
	bool in_stream = cJSON_IsString(id) && !strcmp(id->valuestring, "z");
	if (!strcmp(name, "start")) {
		const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "sample_rate");
		st->rate = cJSON_IsNumber(r) ? (int)r->valuedouble : 16000;
		if (!st->audio_open)
			audio_start(c, st);
	} else if (!strcmp(name, "done")) {
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "end"))) {
			if (st->tr_streaming) {
				audio_stop(c, st);
				vx_wy_send(c, "synthesize-stopped", NULL, NULL, 0);
				st->tr_streaming = false;
			}
		} else if (!in_stream) {
			if (!st->audio_open) {   /* nothing to say: empty audio */
				if (!st->rate)
					st->rate = 16000;
				audio_start(c, st);
			}
			audio_stop(c, st);
		}
	} else if (!strcmp(name, "error")) {
		if (st->in_config)
			st->config_failed = true;
		vx_wy_forward_error(c, j);
		if (!in_stream && st->audio_open)
			audio_stop(c, st);
	} else if (!strcmp(name, "ready")) {
		const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "sample_rate");
		if (cJSON_IsNumber(r) && !st->audio_open)
			st->rate = (int)r->valuedouble;
	}
	cJSON_Delete(j);
}

static void wy_ws_binary(vx_wy_conn *c, void *state, const void *d, size_t n)
{
	wy_tts *st = state;
	char data[96];
	if (!st->audio_open)
		audio_start(c, st);
	snprintf(data, sizeof(data), "{\"rate\":%d,\"width\":2,\"channels\":1}",
		 st->rate);
	vx_wy_send(c, "audio-chunk", data, d, n);
}

static int wy_init(vx_wy_conn *c, void *state)
{
	wy_tts *st = state;
	return vx_svcws_open(vx_wy_as_ws(c), &wy_ws_ops, vx_wy_user(c), &st->ws);
}

static void wy_closed(vx_wy_conn *c, void *state)
{
	wy_tts *st = state;
	if (st->ws)
		vx_svcws_on_close(vx_wy_as_ws(c), st->ws);
	st->ws = NULL;
}

static void wy_release(void *state)
{
	wy_tts *st = state;
	vx_buf_release(&st->acc);
}

static const vx_wy_ops wy_ops = {
	.state_size = sizeof(wy_tts),
	.init = wy_init,
	.event = wy_event,
	.closed = wy_closed,
	.release = wy_release,
	.ws_text = wy_ws_text,
	.ws_binary = wy_ws_binary,
};

int tts_wyoming_start(tts_service *svc, vx_server *server, int port,
		      vx_wy_server **ret)
{
	vx_wy_svcws_ops(tts_ws_ops(), &wy_ws_ops);
	return vx_wy_start("tts", &svc->d, port, server, &wy_ops, svc, ret);
}
