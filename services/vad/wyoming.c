/*
 * wyoming.c - voxline-vad over the Wyoming protocol (--wyoming-port).
 *
 *   describe                         -> info (the detector under "vad")
 *   audio-start {rate,width,channels} (a round; PCM16, any rate, 1-8 ch.)
 *   audio-chunk* (payload: audio)    -> voice-started {timestamp}
 *                                       voice-stopped {timestamp}  (ms)
 *   audio-stop                       -> (a speech still open is stopped)
 *   errors                           -> error {text, code}
 *
 * The events are translated into /ws/detect's messages and run through
 * the same code (api.c's vx_svcws ops on vx_wy_svcws_io); its answers
 * come back through wy_ws_text and are translated into Wyoming events.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vad_service.h"
#include "vx_json.h"
#include "vx_wyoming.h"

typedef struct wy_vad {
	void *ws;                    /* the vx_svcws connection */
	bool started;                /* between audio-start and audio-stop */
	vx_wy_audio fmt;
	vx_buf mono;                 /* scratch: downmixed chunk */
} wy_vad;

static vx_svcws_ops wy_ws_ops;   /* api.c's, on vx_wy_svcws_io */

static void ws_say(vx_wy_conn *c, wy_vad *st, const char *json)
{
	vx_svcws_on_text(vx_wy_as_ws(c), st->ws, json, strlen(json));
}

static void wy_describe(vx_wy_conn *c)
{
	vad_service *svc = vx_wy_user(c);
	vx_buf b = {0};
	vx_buf_puts(&b, "{\"asr\":[],\"tts\":[],\"wake\":[],\"handle\":[],"
		    "\"intent\":[],\"vad\":[{");
	vx_wy_artifact(&b, "voxline-vad", "voxline voice activity detection",
		       "0.1.0");
	vx_buf_puts(&b, "\"models\":[");
	for (size_t i = 0; vad_engines[i]; i++) {
		const vad_engine_ops *e = vad_engines[i];
		vx_buf_puts(&b, i ? ",{" : "{");
		vx_wy_artifact(&b, e->name, e->description, NULL);
		vx_buf_printf(&b, "\"languages\":[],\"active\":%s}",
			      e == svc->engine ? "true" : "false");
	}
	vx_buf_puts(&b, "]}]}");
	if (b.data)
		vx_wy_send(c, "info", b.data, NULL, 0);
	vx_buf_release(&b);
}

static void wy_audio_start(vx_wy_conn *c, wy_vad *st, const cJSON *d)
{
	vx_wy_audio f;
	if (vx_wy_audio_format(d, &f) < 0 || f.width != 2 ||
	    f.rate < 8000 || f.rate > 48000) {
		vx_wy_error(c, "bad_format", "audio-start needs rate 8000-48000, "
			    "width 2 (PCM16) and channels 1-8");
		return;
	}
	char cfg[96];
	snprintf(cfg, sizeof(cfg), "{\"event\":\"config\",\"sample_rate\":%d,"
		 "\"encoding\":\"pcm16\"}", f.rate);
	if (st->started)
		ws_say(c, st, "{\"event\":\"cancel\"}");
	st->fmt = f;
	st->started = true;
	ws_say(c, st, cfg);
}

static void wy_chunk(vx_wy_conn *c, wy_vad *st, const vx_wy_event *ev)
{
	if (!st->started) {
		vx_wy_error(c, "not_started", "audio-chunk before audio-start");
		return;
	}
	if (vx_wy_mono16(&st->fmt, ev->payload, ev->payload_len, &st->mono) < 0) {
		vx_wy_error(c, "bad_audio", "audio-chunk: not whole PCM16 frames "
			    "of %d channels", st->fmt.channels);
		return;
	}
	if (st->mono.len)
		vx_svcws_on_binary(vx_wy_as_ws(c), st->ws, st->mono.data,
				   st->mono.len);
	if (st->mono.cap > 256 * 1024)
		vx_buf_release(&st->mono);
}

static void wy_event(vx_wy_conn *c, void *state, const vx_wy_event *ev)
{
	wy_vad *st = state;
	if (!strcmp(ev->type, "describe")) {
		wy_describe(c);
	} else if (!strcmp(ev->type, "audio-start")) {
		wy_audio_start(c, st, ev->data);
	} else if (!strcmp(ev->type, "audio-chunk")) {
		wy_chunk(c, st, ev);
	} else if (!strcmp(ev->type, "audio-stop")) {
		if (!st->started) {
			vx_wy_error(c, "not_started", "audio-stop before audio-start");
			return;
		}
		st->started = false;
		ws_say(c, st, "{\"event\":\"end\"}");
	} else if (!strcmp(ev->type, "ping")) {
		vx_wy_send(c, "pong", NULL, NULL, 0);
	} else {
		vx_wy_error(c, "unknown_event", "unknown event '%s' (describe, "
			    "audio-start, audio-chunk, audio-stop)", ev->type);
	}
}

/* /ws/detect's answers -> Wyoming events. */
static void wy_ws_text(vx_wy_conn *c, void *state, const char *text,
		       size_t len)
{
	(void)state;
	cJSON *j = cJSON_ParseWithLength(text, len);
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "event");
	const char *name = cJSON_IsString(e) ? e->valuestring : "";
	char data[96];
	if (!strcmp(name, "speech_start") || !strcmp(name, "speech_end")) {
		bool start = name[7] == 's';
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(j,
					start ? "start_ms" : "end_ms");
		snprintf(data, sizeof(data), "{\"timestamp\":%.0f}",
			 cJSON_IsNumber(t) ? t->valuedouble : 0.0);
		vx_wy_send(c, start ? "voice-started" : "voice-stopped", data,
			   NULL, 0);
	} else if (!strcmp(name, "error")) {
		vx_wy_forward_error(c, j);
	}
	/* ready, done: nothing in Wyoming */
	cJSON_Delete(j);
}

static void wy_ws_binary(vx_wy_conn *c, void *state, const void *d, size_t n)
{
	(void)c; (void)state; (void)d; (void)n;
}

static int wy_init(vx_wy_conn *c, void *state)
{
	wy_vad *st = state;
	return vx_svcws_open(vx_wy_as_ws(c), &wy_ws_ops, vx_wy_user(c), &st->ws);
}

static void wy_closed(vx_wy_conn *c, void *state)
{
	wy_vad *st = state;
	if (st->ws)
		vx_svcws_on_close(vx_wy_as_ws(c), st->ws);
	st->ws = NULL;
}

static void wy_release(void *state)
{
	wy_vad *st = state;
	vx_buf_release(&st->mono);
}

static const vx_wy_ops wy_ops = {
	.state_size = sizeof(wy_vad),
	.init = wy_init,
	.event = wy_event,
	.closed = wy_closed,
	.release = wy_release,
	.ws_text = wy_ws_text,
	.ws_binary = wy_ws_binary,
};

int vad_wyoming_start(vad_service *svc, vx_server *server, int port,
		      vx_wy_server **ret)
{
	vx_wy_svcws_ops(vad_ws_ops(), &wy_ws_ops);
	return vx_wy_start("vad", &svc->d, port, server, &wy_ops, svc, ret);
}
