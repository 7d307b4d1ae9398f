/*
 * wyoming.c - voxline-stt over the Wyoming protocol (--wyoming-port).
 *
 *   describe                          -> info (asr: the engine, its model
 *                                        and languages)
 *   transcribe {language?, name?}        (sets the next stream's language)
 *   audio-start {rate,width,channels}    (PCM16, 8-192 kHz, 1-8 channels)
 *   audio-chunk* (payload)
 *   audio-stop                        -> transcript {text, language}
 * With a streaming engine, before the transcript:
 *   transcript-start {language}, transcript-chunk {text}* as the
 *   hypothesis grows, transcript-stop. Chunks carry only words added to
 *   the text already sent (a partial's last word is held back as it may
 *   still change); the recogniser can still revise words already sent,
 *   which are not sent again, so the transcript event is the one to trust.
 *
 * The events become /ws/transcribe's messages and run through its code
 * (api_ws.c's vx_svcws ops on vx_wy_svcws_io: decoding on the pool, one
 * job at a time per connection); its events come back through wy_ws_text.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "stt_service.h"
#include "vx_wyoming.h"

#define WY_LANG_MAX 32

typedef struct wy_stt {
	void *ws;                     /* the vx_svcws connection */
	bool started;                 /* between audio-start and audio-stop */
	vx_wy_audio fmt;
	vx_buf mono;                  /* scratch: downmixed chunk */
	char language[WY_LANG_MAX];   /* from transcribe; "" = default */
	/* translation side (under the connection's translation lock) */
	char cur_lang[WY_LANG_MAX];   /* the stream's language */
	bool tr_started;              /* transcript-start sent */
	vx_buf sent;                  /* text sent in transcript-chunks */
} wy_stt;

static vx_svcws_ops wy_ws_ops;

static void ws_say(vx_wy_conn *c, wy_stt *st, const char *json)
{
	vx_svcws_on_text(vx_wy_as_ws(c), st->ws, json, strlen(json));
}

static void json_langs(vx_buf *b, const char *langs, const char *def)
{
	vx_buf_puts(b, "[");
	if (!langs || !*langs) {
		vx_buf_json_str(b, def, strlen(def));
	} else {
		bool first = true;
		for (const char *p = langs; *p;) {
			while (*p == ' ')
				p++;
			size_t n = strcspn(p, " ");
			if (n) {
				vx_buf_puts(b, first ? "" : ",");
				vx_buf_json_str(b, p, n);
				first = false;
			}
			p += n;
		}
	}
	vx_buf_puts(b, "]");
}

static void wy_describe(vx_wy_conn *c)
{
	stt_service *svc = vx_wy_user(c);
	const stt_engine_ops *e = svc->engine;
	vx_buf b = {0};
	vx_buf_puts(&b, "{\"asr\":[{");
	vx_wy_artifact(&b, "voxline-stt", "voxline speech to text", "0.1.0");
	vx_buf_printf(&b, "\"supports_transcript_streaming\":%s,\"models\":[{",
		      e->flags & VX_ENGINE_STREAMING ? "true" : "false");
	char name[160];
	snprintf(name, sizeof(name), "%s%s%s", e->name,
		 svc->model_name ? ":" : "", svc->model_name ? svc->model_name : "");
	vx_wy_artifact(&b, name, e->description, NULL);
	vx_buf_puts(&b, "\"languages\":");
	json_langs(&b, e->languages, svc->language);
	vx_buf_puts(&b, "}]}],\"tts\":[],\"wake\":[],\"handle\":[],\"intent\":[]}");
	if (b.data)
		vx_wy_send(c, "info", b.data, NULL, 0);
	vx_buf_release(&b);
}

static bool lang_ok(const char *l)
{
	if (!isalpha((unsigned char)l[0]))
		return false;
	for (; *l; l++)
		if (!isalnum((unsigned char)*l) && *l != '-' && *l != '_')
			return false;
	return true;
}

static void wy_transcribe(vx_wy_conn *c, wy_stt *st, const cJSON *d)
{
	const cJSON *l = cJSON_GetObjectItemCaseSensitive(d, "language");
	st->language[0] = 0;
	if (!l || cJSON_IsNull(l))
		return;
	if (!cJSON_IsString(l) || strlen(l->valuestring) >= WY_LANG_MAX ||
	    (l->valuestring[0] && !lang_ok(l->valuestring))) {
		vx_wy_error(c, "bad_language", "language must be a short tag "
			    "such as \"en\" or \"en-US\"");
		return;
	}
	snprintf(st->language, sizeof(st->language), "%s", l->valuestring);
}

static void wy_audio_start(vx_wy_conn *c, wy_stt *st, const cJSON *d)
{
	stt_service *svc = vx_wy_user(c);
	vx_wy_audio f;
	if (vx_wy_audio_format(d, &f) < 0 || f.width != 2 || f.rate < 8000 ||
	    f.rate > 192000) {
		vx_wy_error(c, "bad_format", "audio-start needs rate 8000-192000, "
			    "width 2 (PCM16) and channels 1-8");
		return;
	}
	const char *lang = st->language[0] ? st->language : svc->language;
	char cfg[160];
	snprintf(cfg, sizeof(cfg), "{\"event\":\"config\",\"sample_rate\":%d,"
		 "\"encoding\":\"pcm16\",\"language\":\"%s\"}", f.rate, lang);
	st->fmt = f;
	st->started = true;
	snprintf(st->cur_lang, sizeof(st->cur_lang), "%s", lang);
	st->tr_started = false;
	vx_buf_reset(&st->sent);
	ws_say(c, st, cfg);
}

static void wy_chunk(vx_wy_conn *c, wy_stt *st, const vx_wy_event *ev)
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
	wy_stt *st = state;
	if (!strcmp(ev->type, "describe")) {
		wy_describe(c);
	} else if (!strcmp(ev->type, "transcribe")) {
		wy_transcribe(c, st, ev->data);
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
			    "transcribe, audio-start, audio-chunk, audio-stop)",
			    ev->type);
	}
}

/* One data object {"key":"text"} sent as event type. */
static void send_text_event(vx_wy_conn *c, const char *type, const char *key,
			    const char *text, size_t len, const char *lang)
{
	vx_buf b = {0};
	vx_buf_printf(&b, "{\"%s\":", key);
	vx_buf_json_str(&b, text, len);
	if (lang) {
		vx_buf_puts(&b, ",\"language\":");
		vx_buf_json_str(&b, lang, strlen(lang));
	}
	vx_buf_puts(&b, "}");
	if (b.data)
		vx_wy_send(c, type, b.data, NULL, 0);
	vx_buf_release(&b);
}

/* Streaming: what text adds to what was sent, as a transcript-chunk. A
 * partial's last word may still change: only the words before it go. */
static void stream_text(vx_wy_conn *c, wy_stt *st, const char *text,
			bool final)
{
	if (!st->tr_started) {
		char d[64];
		snprintf(d, sizeof(d), "{\"language\":\"%s\"}", st->cur_lang);
		vx_wy_send(c, "transcript-start", d, NULL, 0);
		st->tr_started = true;
	}
	size_t n = strlen(text), have = st->sent.len;
	if (!final) {
		const char *sp = strrchr(text, ' ');
		n = sp ? (size_t)(sp - text) + 1 : 0;
	}
	if (n <= have || (have && memcmp(text, st->sent.data, have) != 0))
		return;
	send_text_event(c, "transcript-chunk", "text", text + have, n - have,
			NULL);
	vx_buf_append(&st->sent, text + have, n - have);
}

static void wy_ws_text(vx_wy_conn *c, void *state, const char *text,
		       size_t len)
{
	wy_stt *st = state;
	stt_service *svc = vx_wy_user(c);
	bool streams = svc->engine->flags & VX_ENGINE_STREAMING;
	cJSON *j = cJSON_ParseWithLength(text, len);
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "event");
	const char *name = cJSON_IsString(e) ? e->valuestring : "";
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "text");
	const char *tx = cJSON_IsString(t) ? t->valuestring : "";
	if (!strcmp(name, "partial") && streams) {
		stream_text(c, st, tx, false);
	} else if (!strcmp(name, "final")) {
		const cJSON *l = cJSON_GetObjectItemCaseSensitive(j, "language");
		const char *lang = cJSON_IsString(l) ? l->valuestring : st->cur_lang;
		if (streams) {
			stream_text(c, st, tx, true);
			vx_wy_send(c, "transcript-stop", NULL, NULL, 0);
		}
		send_text_event(c, "transcript", "text", tx, strlen(tx), lang);
		st->tr_started = false;
		vx_buf_reset(&st->sent);
	} else if (!strcmp(name, "error")) {
		vx_wy_forward_error(c, j);
	}
	/* ready, cancelled, done: nothing in Wyoming */
	cJSON_Delete(j);
}

static void wy_ws_binary(vx_wy_conn *c, void *state, const void *d, size_t n)
{
	(void)c; (void)state; (void)d; (void)n;
}

static int wy_init(vx_wy_conn *c, void *state)
{
	wy_stt *st = state;
	return vx_svcws_open(vx_wy_as_ws(c), &wy_ws_ops, vx_wy_user(c), &st->ws);
}

static void wy_closed(vx_wy_conn *c, void *state)
{
	wy_stt *st = state;
	if (st->ws)
		vx_svcws_on_close(vx_wy_as_ws(c), st->ws);
	st->ws = NULL;
}

static void wy_release(void *state)
{
	wy_stt *st = state;
	vx_buf_release(&st->mono);
	vx_buf_release(&st->sent);
}

static const vx_wy_ops wy_ops = {
	.state_size = sizeof(wy_stt),
	.init = wy_init,
	.event = wy_event,
	.closed = wy_closed,
	.release = wy_release,
	.ws_text = wy_ws_text,
	.ws_binary = wy_ws_binary,
};

int stt_wyoming_start(stt_service *svc, vx_server *server, int port,
		      vx_wy_server **ret)
{
	vx_wy_svcws_ops(stt_ws_ops(), &wy_ws_ops);
	return vx_wy_start("stt", &svc->d, port, server, &wy_ops, svc, ret);
}
