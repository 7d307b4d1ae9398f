/*
 * api.c - voxline-orchestrator's routes: /ws/chat (the client protocol in
 * front of conversation.c), POST /chat (one turn in one request, driven
 * through the same conversation machinery), the conversation store
 * (GET /conversations, GET|DELETE /conversations/{id}), GET /voices and
 * GET /v1/models (the TTS's and the LLM's, passed through for the page),
 * GET / (the web page) and the /healthz body (every stage's state);
 * the phone front doors (/ws/twilio, /ws/telnyx, POST /twilio/voice,
 * POST /telnyx/voice) are tel.c's and tel_http.c's.
 *
 * A stage that is missing is named in every error it causes, with how to
 * start it (upstream_hint).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "conversation.h"
#include "orch_service.h"
#include "static.h"
#include "tel.h"
#include "vx_json.h"
#include "vx_log.h"
#include "vx_req.h"
#include "vx_reqbody.h"
#include "vx_time.h"
#include "vx_ws.h"

#define CHAT_WAIT_SLICE_MS 100      /* POST /chat checks for a gone client */
#define PROXY_MAX_TIMEOUT_MS 10000  /* GET /voices, /v1/models from a stage */

const char *const orch_stage_names[ORCH_N_STAGES] = { "vad", "stt", "llm", "tts" };

bool orch_call_enter(orch_service *svc)
{
	int n = atomic_fetch_add(&svc->calls, 1);
	if (n < svc->max_calls)
		return true;
	atomic_fetch_sub(&svc->calls, 1);
	vx_counter_add(svc->refused, 1);
	return false;
}

bool orch_ws_admit(void *user, const char *path)
{
	orch_service *svc = user;
	(void)path;
	if (atomic_load(&svc->calls) < svc->max_calls)
		return true;
	vx_counter_add(svc->refused, 1);
	return false;
}

void orch_call_leave(orch_service *svc)
{
	atomic_fetch_sub(&svc->calls, 1);
}

/* ---- /ws/chat ---- */

typedef struct ws_chat {
	orch_service *svc;
	vx_wsconn *c;
	conversation *cv;
} ws_chat;

static void ws_sink_event(void *user, const char *type, const char *json, size_t len)
{
	ws_chat *w = user;
	(void)type;
	vx_ws_send_text(w->c, json, len);
}

static void ws_sink_audio(void *user, const void *data, size_t len)
{
	ws_chat *w = user;
	if (vx_ws_send_binary(w->c, data, len) == -ENOBUFS)
		vx_log_warn(vx_ws_request_id(w->c), "client not reading: reply audio dropped");
}

static const conv_sink ws_sink = { ws_sink_event, ws_sink_audio };

static void ws_client_error(vx_wsconn *c, const char *code, const char *msg)
{
	vx_buf b = {0};
	vx_buf_puts(&b, "{\"type\":\"error\",\"stage\":\"client\",\"code\":");
	vx_buf_json_str(&b, code, strlen(code));
	vx_buf_puts(&b, ",\"message\":");
	vx_buf_json_str(&b, msg, strlen(msg));
	vx_buf_puts(&b, "}");
	if (b.data)
		vx_ws_send_text(c, b.data, b.len);
	vx_buf_release(&b);
}

static int ws_open(vx_wsconn *c, void *user, void **ret_state)
{
	orch_service *svc = user;
	if (!orch_call_enter(svc)) {
		/* Lost a race with orch_ws_admit (which answers 503 before
		 * the upgrade): say why, then the server closes with 1013. */
		char m[160];
		snprintf(m, sizeof(m), "at capacity: %d conversations (--max-calls)",
			 svc->max_calls);
		ws_client_error(c, "at_capacity", m);
		vx_log_warn(vx_ws_request_id(c), "/ws/chat refused: %s", m);
		return -EBUSY;
	}
	ws_chat *w = calloc(1, sizeof(*w));
	if (!w || conversation_new(svc, &ws_sink, w, vx_ws_request_id(c), true,
				   &w->cv) < 0) {
		free(w);
		orch_call_leave(svc);
		return -ENOMEM;
	}
	w->svc = svc;
	w->c = c;
	*ret_state = w;
	return 0;
}

/* Reads the start message's fields into cfg; an error message or NULL. */
static const char *parse_start(const cJSON *j, conv_config *cfg)
{
	const char *enc;
	cfg->sample_rate = 16000;
	cfg->encoding = VX_ENC_PCM16;
	if (vx_json_int(j, "sample_rate", 16000, 8000, 48000, &cfg->sample_rate) < 0)
		return "sample_rate must be an integer 8000-48000";
	if (vx_json_string(j, "encoding", NULL, SIZE_MAX, &enc) < 0 ||
	    (enc && (vx_encoding_from_name(enc, &cfg->encoding) < 0 ||
		     cfg->encoding == VX_ENC_AUTO)))
		return "encoding must be pcm16, mulaw or alaw";
	static const char *const keys[] = { "conversation_id", "voice", "system_prompt",
					    "model", "language" };
	const char **vals[] = { &cfg->conversation_id, &cfg->voice, &cfg->system_prompt,
				&cfg->model, &cfg->language };
	for (int i = 0; i < 5; i++) {
		*vals[i] = NULL;
		if (vx_json_string(j, keys[i], NULL, ORCH_MAX_TEXT_BYTES, vals[i]) < 0)
			return "conversation_id, voice, system_prompt, model and language "
			       "must be strings";
	}
	return NULL;
}

static void ws_text(vx_wsconn *c, void *state, const char *text, size_t len)
{
	ws_chat *w = state;
	cJSON *j = cJSON_ParseWithLength(text, len);
	const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "type"));
	if (!cJSON_IsObject(j) || !type) {
		ws_client_error(c, "bad_message",
				"text messages are JSON objects with a \"type\"");
		goto out_free;
	}
	if (!strcmp(type, "start")) {
		conv_config cfg = {0};
		const char *err = parse_start(j, &cfg);
		int r = err ? -EINVAL : conversation_start(w->cv, &cfg, false);
		if (r == -EALREADY)
			ws_client_error(c, "already_started", "the conversation has started");
		else if (r < 0)
			ws_client_error(c, "bad_start", err ? err : "cannot start");
	} else if (!strcmp(type, "text")) {
		const char *t;
		if (vx_json_string(j, "text", NULL, ORCH_MAX_TEXT_BYTES, &t) < 0 ||
		    !t || !*t) {
			ws_client_error(c, "bad_text", "\"text\" must be a non-empty string "
					"of at most 16384 bytes");
			goto out_free;
		}
		int r = conversation_text(w->cv, t, strlen(t));
		if (r == -ENOTCONN)
			ws_client_error(c, "not_started",
					"send {\"type\":\"start\"} and wait for \"ready\"");
		else if (r == -EBUSY)
			ws_client_error(c, "busy", "a turn is in progress");
	} else if (!strcmp(type, "stop")) {
		if (conversation_stop(w->cv) == -ENOTCONN)
			ws_client_error(c, "not_started",
					"send {\"type\":\"start\"} and wait for \"ready\"");
	} else {
		char m[96];
		snprintf(m, sizeof(m), "unknown message type \"%.40s\"", type);
		ws_client_error(c, "bad_message", m);
	}
out_free:
	cJSON_Delete(j);
}

static void ws_binary(vx_wsconn *c, void *state, const void *data, size_t len)
{
	ws_chat *w = state;
	if (conversation_audio(w->cv, data, len) == -ENOTCONN)
		ws_client_error(c, "not_started",
				"send {\"type\":\"start\"} before audio");
}

static void ws_close(vx_wsconn *c, void *state)
{
	ws_chat *w = state;
	(void)c;
	conversation_close(w->cv);
	conversation_unref(w->cv);
	orch_call_leave(w->svc);
	free(w);
}

/* ---- POST /chat ---- */

/* Collects one turn's events for the answer. */
typedef struct chat_sink {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool ready, done, failed;
	vx_buf transcript, reply, reasoning, audio, metrics;
	char err_stage[16], err_code[32], err_msg[256];
} chat_sink;

static void chat_sink_event(void *user, const char *type, const char *json, size_t len)
{
	chat_sink *s = user;
	cJSON *j = cJSON_ParseWithLength(json, len);
	const char *text = cJSON_GetStringValue(cJSON_GetObjectItem(j, "text"));
	pthread_mutex_lock(&s->lock);
	if (!strcmp(type, "ready")) {
		s->ready = true;
	} else if (!strcmp(type, "transcript") && text) {
		vx_buf_reset(&s->transcript);
		vx_buf_puts(&s->transcript, text);
	} else if (!strcmp(type, "response_delta") && text) {
		vx_buf_puts(&s->reply, text);
	} else if (!strcmp(type, "reasoning") && text) {
		vx_buf_puts(&s->reasoning, text);
	} else if (!strcmp(type, "metrics")) {
		vx_buf_reset(&s->metrics);
		vx_buf_append(&s->metrics, json, len);
		s->done = true;
	} else if (!strcmp(type, "error") && !s->failed) {
		const char *st = cJSON_GetStringValue(cJSON_GetObjectItem(j, "stage"));
		const char *code = cJSON_GetStringValue(cJSON_GetObjectItem(j, "code"));
		const char *msg = cJSON_GetStringValue(cJSON_GetObjectItem(j, "message"));
		s->failed = true;
		snprintf(s->err_stage, sizeof(s->err_stage), "%s", st ? st : "orchestrator");
		snprintf(s->err_code, sizeof(s->err_code), "%s", code ? code : "failed");
		snprintf(s->err_msg, sizeof(s->err_msg), "%s", msg ? msg : "");
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	cJSON_Delete(j);
}

static void chat_sink_audio(void *user, const void *data, size_t len)
{
	chat_sink *s = user;
	pthread_mutex_lock(&s->lock);
	vx_buf_append(&s->audio, data, len);
	pthread_mutex_unlock(&s->lock);
}

static const conv_sink chat_sink_ops = { chat_sink_event, chat_sink_audio };

/* Waits (lock held) until pred is true, the request is cancelled or
 * timeout_ms passes; false on timeout or cancel. */
static bool chat_wait(chat_sink *s, vx_req *req, const bool *pred, int64_t timeout_ms)
{
	double end_ms = vx_now_ms() + (double)timeout_ms;
	while (!*pred && !s->failed) {
		if (atomic_load(vx_req_cancelled(req)))
			return false;
		double left = end_ms - vx_now_ms();
		if (left <= 0)
			return false;
		vx_cond_wait_ms(&s->cond, &s->lock, left < CHAT_WAIT_SLICE_MS ?
				(long long)left + 1 : CHAT_WAIT_SLICE_MS);
	}
	return *pred;
}

typedef struct chat_input {
	const char *text;           /* or audio */
	vx_pcm pcm;
	conv_config cfg;
	cJSON *json;                /* owns the strings */
} chat_input;

/* Reads the request: JSON {"text",...} or audio (multipart file or raw). */
static int chat_read(vx_req *req, chat_input *in)
{
	in->cfg.sample_rate = 16000;
	in->cfg.encoding = VX_ENC_PCM16;
	if (!strcmp(vx_req_media_type(req), "application/json")) {
		if (vx_reqbody_json(req, &in->json) < 0)
			return -EINVAL;
		const char *t;
		if (vx_json_string(in->json, "text", NULL, ORCH_MAX_TEXT_BYTES, &t) < 0 ||
		    !t || !*t) {
			vx_req_error(req, 400, "bad_text", "\"text\" must be a non-empty "
				     "string of at most %d bytes", ORCH_MAX_TEXT_BYTES);
			return -EINVAL;
		}
		in->text = t;
		const char *err = parse_start(in->json, &in->cfg);
		if (err) {
			vx_req_error(req, 400, "bad_parameter", "%s", err);
			return -EINVAL;
		}
		in->cfg.encoding = VX_ENC_PCM16;   /* the answer is a WAV */
		return 0;
	}
	/* Decoded to 16 kHz mono pcm16; the reply comes at the same rate. */
	if (vx_reqbody_audio(req, 16000, ORCH_MAX_CHAT_AUDIO_S, &in->pcm) < 0)
		return -EINVAL;
	in->cfg.conversation_id = vx_reqbody_param(req, "conversation_id");
	in->cfg.voice = vx_reqbody_param(req, "voice");
	in->cfg.system_prompt = vx_reqbody_param(req, "system_prompt");
	return 0;
}

static bool wants_wav(vx_req *req)
{
	const char *a = vx_req_header(req, "Accept");
	return a && strcasestr(a, "audio/wav") != NULL;
}

static void chat_answer(vx_req *req, chat_sink *s, const char *id, int rate)
{
	vx_buf wav = {0};
	if (vx_audio_encode((const int16_t *)(void *)s->audio.data, s->audio.len / 2,
			    rate, 1, VX_FMT_WAV, &wav) < 0) {
		vx_req_error(req, 500, "encode_failed", "cannot encode the reply audio");
		return;
	}
	if (wants_wav(req)) {
		vx_req_reply_buf(req, 200, "audio/wav", &wav);
		return;
	}
	vx_buf b = {0};
	vx_buf_puts(&b, "{\"conversation_id\":");
	vx_buf_json_str(&b, id, strlen(id));
	vx_buf_puts(&b, ",\"transcript\":");
	vx_buf_json_str(&b, s->transcript.data ? s->transcript.data : "", s->transcript.len);
	vx_buf_puts(&b, ",\"reply\":");
	vx_buf_json_str(&b, s->reply.data ? s->reply.data : "", s->reply.len);
	vx_buf_puts(&b, ",\"reasoning\":");
	if (s->reasoning.len)
		vx_buf_json_str(&b, s->reasoning.data, s->reasoning.len);
	else
		vx_buf_puts(&b, "null");
	vx_buf_printf(&b, ",\"format\":\"wav\",\"sample_rate\":%d,\"audio_base64\":\"", rate);
	vx_base64_encode(wav.data, wav.len, &b);
	vx_buf_puts(&b, "\",\"timings\":");
	vx_buf_append(&b, s->metrics.data, s->metrics.len);
	vx_buf_puts(&b, "}\n");
	vx_buf_release(&wav);
	vx_req_reply_buf(req, 200, "application/json", &b);
}

/* The stage of an error event's "stage", or -1. */
static int stage_index(const char *name)
{
	for (int st = 0; st < ORCH_N_STAGES; st++)
		if (!strcmp(name, orch_stage_names[st]))
			return st;
	return -1;
}

/* Answers a failed turn: 400 for a bad conversation id, 504 for a stage
 * timeout, else 502; a stage that is missing (unreachable, or down by the
 * health checks) gets the hint that says how to start it. */
static void chat_fail(vx_req *req, orch_service *svc, const chat_sink *s)
{
	int st = stage_index(s->err_stage);
	int status = !strcmp(s->err_stage, "history") &&
		     !strcmp(s->err_code, "bad_conversation_id") ? 400 :
		     !strcmp(s->err_code, "timeout") ? 504 : 502;
	/* The conversation may have said it already (conv_link's words). */
	bool hinted = strstr(s->err_msg, "make run") != NULL;
	if (st >= 0 && !hinted &&
	    (!strcmp(s->err_code, "unavailable") || !upstream_up(svc->up[st]))) {
		char hint[UPSTREAM_MAX_HINT];
		upstream_hint(svc->up[st], hint, sizeof(hint));
		vx_req_error(req, status, s->err_code, "%s: %s. %s", s->err_stage,
			     s->err_msg, hint);
		return;
	}
	vx_req_error(req, status, s->err_code, "%s: %s", s->err_stage, s->err_msg);
}

static void chat_job(vx_req *req, void *arg)
{
	orch_service *svc = arg;
	chat_input in = {0};
	if (chat_read(req, &in) < 0)
		goto out_release_input;
	if (!orch_call_enter(svc)) {
		vx_req_error(req, 503, "at_capacity", "%d conversations in progress "
			     "(--max-calls)", svc->max_calls);
		goto out_release_input;
	}
	chat_sink s = {0};
	pthread_mutex_init(&s.lock, NULL);
	pthread_cond_init(&s.cond, NULL);
	conversation *cv;
	if (conversation_new(svc, &chat_sink_ops, &s, vx_req_id(req), false, &cv) < 0) {
		orch_call_leave(svc);
		vx_req_error(req, 500, "no_memory", "out of memory");
		goto out_destroy_sink;
	}
	int64_t timeout_ms = (int64_t)svc->stage_timeout_s * 4000 + 5000;
	int r = conversation_start(cv, &in.cfg, true);
	pthread_mutex_lock(&s.lock);
	bool ok = r == 0 && s.ready && !s.failed;
	pthread_mutex_unlock(&s.lock);
	if (ok)
		r = in.text ? conversation_text(cv, in.text, strlen(in.text)) :
			      conversation_utterance(cv, in.pcm.data, in.pcm.frames * 2);
	pthread_mutex_lock(&s.lock);
	bool done = ok && r == 0 && chat_wait(&s, req, &s.done, timeout_ms);
	pthread_mutex_unlock(&s.lock);
	char id[HISTORY_ID_MAX + 1];
	conversation_id(cv, id);
	conversation_close(cv);   /* no sink calls after this */
	conversation_unref(cv);
	/* before the answer: a client that has it may call again at once */
	orch_call_leave(svc);

	if (s.failed) {
		chat_fail(req, svc, &s);
	} else if (!done) {
		vx_req_error(req, 504, "timeout", "the turn did not finish in %lld ms",
			     (long long)timeout_ms);
	} else if (!s.transcript.len && !in.text) {
		vx_req_error(req, 422, "no_speech", "no speech was recognised");
	} else if (!s.audio.len && wants_wav(req)) {
		/* An empty WAV would pass for a reply: say why there is none. */
		vx_req_error(req, 502, "no_audio", "the turn produced no reply audio "
			     "(reply text: %zu bytes)", s.reply.len);
	} else {
		if (in.text && !s.transcript.len)   /* typed: the text is what was said */
			vx_buf_puts(&s.transcript, in.text);
		chat_answer(req, &s, id, in.cfg.sample_rate);
	}
	vx_buf_release(&s.transcript);
	vx_buf_release(&s.reply);
	vx_buf_release(&s.reasoning);
	vx_buf_release(&s.audio);
	vx_buf_release(&s.metrics);
out_destroy_sink:
	pthread_cond_destroy(&s.cond);
	pthread_mutex_destroy(&s.lock);
out_release_input:
	vx_pcm_release(&in.pcm);
	cJSON_Delete(in.json);
}

static void handle_chat(vx_req *req, void *user)
{
	orch_service *svc = user;
	vx_req_run(req, svc->chat_pool, chat_job, svc);
}

/* ---- the conversation store ---- */

static void handle_list(vx_req *req, void *user)
{
	orch_service *svc = user;
	int limit, offset;
	if (vx_reqbody_int(req, "limit", 100, 1, HISTORY_LIST_MAX, &limit) < 0 ||
	    vx_reqbody_int(req, "offset", 0, 0, 1 << 30, &offset) < 0)
		return;
	vx_buf b = {0};
	vx_buf_puts(&b, "{\"conversations\":");
	int r = history_list(svc->hist, limit, offset, &b);
	if (r < 0) {
		vx_buf_release(&b);
		vx_req_error(req, 500, "history_failed", "%s", strerror(-r));
		return;
	}
	vx_buf_puts(&b, "}\n");
	vx_req_reply_buf(req, 200, "application/json", &b);
}

/* The {id} of /conversations/{id}, or NULL after answering 404. */
static const char *conversation_path_id(vx_req *req)
{
	const char *id = vx_req_path(req) + strlen("/conversations/");
	if (!*id || strchr(id, '/')) {
		vx_req_error(req, 404, "not_found", "no such conversation");
		return NULL;
	}
	return id;
}

static void handle_get(vx_req *req, void *user)
{
	orch_service *svc = user;
	const char *id = conversation_path_id(req);
	if (!id)
		return;
	vx_buf b = {0};
	int r = history_get_json(svc->hist, id, &b);
	if (r == -ENOENT || r == -EINVAL)
		vx_req_error(req, 404, "not_found", "no conversation \"%.64s\"", id);
	else if (r < 0)
		vx_req_error(req, 500, "history_failed", "%s", strerror(-r));
	else
		vx_buf_puts(&b, "\n"), vx_req_reply_buf(req, 200, "application/json", &b);
	vx_buf_release(&b);
}

static void handle_delete(vx_req *req, void *user)
{
	orch_service *svc = user;
	const char *id = conversation_path_id(req);
	if (!id)
		return;
	int r = history_delete(svc->hist, id);
	if (r == -ENOENT || r == -EINVAL) {
		vx_req_error(req, 404, "not_found", "no conversation \"%.64s\"", id);
	} else if (r < 0) {
		vx_req_error(req, 500, "history_failed", "%s", strerror(-r));
	} else {
		vx_buf b = {0};
		vx_buf_puts(&b, "{\"deleted\":true,\"id\":");
		vx_buf_json_str(&b, id, strlen(id));
		vx_buf_puts(&b, "}\n");
		vx_req_reply_buf(req, 200, "application/json", &b);
	}
}

/* ---- GET /, /static/<name>, /favicon.ico: the web page (static.c) ---- */

static void handle_static(vx_req *req, void *user)
{
	orch_service *svc = user;
	static_serve(req, svc->web_root);
}

/* ---- GET /voices, GET /v1/models: a stage's list, passed through ---- */

/* Answers with what stage st answers to GET path (status, body and type
 * as they are); 503 naming the stage and how to start it when no instance
 * answers, and the same hint added to a 5xx from a stage that is down. */
static void proxy_get(vx_req *req, orch_service *svc, int st, const char *path)
{
	int timeout_ms = svc->stage_timeout_s * 1000;
	if (timeout_ms > PROXY_MAX_TIMEOUT_MS)
		timeout_ms = PROXY_MAX_TIMEOUT_MS;
	vx_buf body = {0};
	char ctype[128], hint[UPSTREAM_MAX_HINT];
	int status = 0;
	int r = upstream_get(svc->up[st], path, svc->upstream_auth, timeout_ms,
			     &status, &body, ctype, sizeof(ctype));
	if (r < 0 || (status >= 500 && !upstream_up(svc->up[st]))) {
		upstream_hint(svc->up[st], hint, sizeof(hint));
		vx_log_warn(vx_req_id(req), "GET %s: %s: %s", path,
			    orch_stage_names[st], r < 0 ? strerror(-r) : "down");
		vx_req_add_header(req, "Retry-After", "2");
		vx_req_error(req, 503, "stage_unavailable", "%s: %s", orch_stage_names[st],
			     hint);
		vx_buf_release(&body);
		return;
	}
	vx_req_reply_buf(req, status, ctype[0] ? ctype : "application/json", &body);
}

static void handle_voices(vx_req *req, void *user)
{
	proxy_get(req, user, ORCH_TTS, "/voices");
}

static void handle_models(vx_req *req, void *user)
{
	proxy_get(req, user, ORCH_LLM, "/v1/models");
}

/* ---- tables, health, info ---- */

const vx_route orch_routes[] = {
	{ "POST", "/chat", handle_chat, 0, false, false },
	{ "GET", "/conversations", handle_list, 0, true, false },
	{ "GET", "/conversations/*", handle_get, 0, true, false },
	{ "DELETE", "/conversations/*", handle_delete, 0, true, false },
	{ "GET", "/voices", handle_voices, 0, true, false },
	{ "GET", "/v1/models", handle_models, 0, true, false },
	{ "GET", "/", handle_static, 0, true, false },
	{ "GET", "/static/*", handle_static, 0, true, false },
	{ "GET", "/favicon.ico", handle_static, 0, true, false },
	{ "POST", "/twilio/voice", tel_handle_twilio_voice, 0, false, true },
	{ "POST", "/telnyx/voice", tel_handle_telnyx_voice, 0, false, true },
};
const size_t orch_n_routes = sizeof(orch_routes) / sizeof(orch_routes[0]);

const vx_ws_route orch_ws_routes[] = {
	{ "/ws/chat", ws_open, ws_text, ws_binary, ws_close, false },
	{ "/ws/twilio", tel_twilio_open, tel_ws_text, tel_ws_binary, tel_ws_close, true },
	{ "/ws/telnyx", tel_telnyx_open, tel_ws_text, tel_ws_binary, tel_ws_close, true },
};
const size_t orch_n_ws_routes = sizeof(orch_ws_routes) / sizeof(orch_ws_routes[0]);

vx_health orch_service_health(void *user, vx_buf *extra, char *detail,
			      size_t detail_len)
{
	orch_service *svc = user;
	int calls = atomic_load(&svc->calls);
	vx_buf_printf(extra, ",\"calls\":%d,\"max_calls\":%d,\"upstreams\":{", calls,
		      svc->max_calls);
	for (int st = 0; st < ORCH_N_STAGES; st++)
		vx_buf_printf(extra, "%s\"%s\":{\"healthy\":%zu,\"instances\":%zu}",
			      st ? "," : "", orch_stage_names[st],
			      upstream_healthy(svc->up[st]), upstream_count(svc->up[st]));
	vx_buf_puts(extra, "},\"stages\":{");
	char down[64] = "";
	for (int st = 0; st < ORCH_N_STAGES; st++) {
		vx_buf_printf(extra, "%s\"%s\":", st ? "," : "", orch_stage_names[st]);
		upstream_stage_json(svc->up[st], extra);
		if (!upstream_up(svc->up[st]))
			snprintf(down + strlen(down), sizeof(down) - strlen(down), "%s%s",
				 down[0] ? ", " : "", orch_stage_names[st]);
	}
	vx_buf_puts(extra, "}");
	if (calls >= svc->max_calls) {
		snprintf(detail, detail_len, "%d conversations (--max-calls)", calls);
		return VX_HEALTH_OVERLOADED;
	}
	if (down[0]) {
		/* Still ready: calls are accepted (and fail naming the stage);
		 * every orchestrator shares the stages, so taking this one out
		 * of a balancer would not help. */
		snprintf(detail, detail_len, "stage unavailable: %s (see stages.*.hint)",
			 down);
		return VX_HEALTH_DEGRADED;
	}
	return VX_HEALTH_OK;
}

void orch_service_info(void *user, vx_buf *out)
{
	orch_service *svc = user;
	vx_buf_puts(out, ",\"upstreams\":[");
	for (int st = 0; st < ORCH_N_STAGES; st++) {
		if (st)
			vx_buf_puts(out, ",");
		upstream_status_json(svc->up[st], out);
	}
	vx_buf_printf(out, "],\"max_calls\":%d,\"barge_in\":%s,\"max_tokens\":%d,"
		      "\"stage_timeout_s\":%d,\"encodings\":[\"pcm16\",\"mulaw\",\"alaw\"]",
		      svc->max_calls, svc->barge_in ? "true" : "false", svc->max_tokens,
		      svc->stage_timeout_s);
}
