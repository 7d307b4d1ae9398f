/*
 * banter_orch.c - voxline-banter's side of voxline-orchestrator: the
 * /healthz check at start, a bot's turn as POST /chat (text in, JSON with the
 * reply text and a base64 WAV out) or, with --stream, as a text message on
 * its /ws/chat (banter_ws.c). Every failure is reported once through
 * banter_fail, naming the orchestrator and, when it cannot be reached, how
 * to start it.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "banter_int.h"
#include "vx_buf.h"
#include "vx_curl.h"
#include "vx_time.h"

typedef struct answer {
	vx_buf body;
	bool too_big;
} answer;

static size_t on_body(char *p, size_t size, size_t n, void *user)
{
	answer *a = user;
	if (a->body.len + size * n > BANTER_MAX_ANSWER) {
		a->too_big = true;
		return 0;
	}
	return vx_buf_append(&a->body, p, size * n) < 0 ? 0 : size * n;
}

/* One HTTP request to the orchestrator; body NULL is a GET. 0 with the
 * status in *ret_status and the body in a->body, or a negative errno. */
static int orch_http(banter *b, const char *path, const char *body, long timeout_ms,
		     answer *a, long *ret_status)
{
	const struct config *cfg = b->cfg;
	char url[1024];
	snprintf(url, sizeof(url), "%s%s", cfg->orchestrator, path);
	CURL *h = curl_easy_init();
	if (!h)
		return -ENOMEM;
	struct curl_slist *hdrs = NULL;
	int r = vx_curl_setup(h, url, "voxline-banter", timeout_ms, 5000);
	if (r == 0)
		r = vx_curl_headers_auth(&hdrs, cfg->api_key, NULL);
	if (r == 0 && body) {
		r = vx_curl_header_add(&hdrs, "Content-Type: application/json");
		if (r == 0)
			r = vx_curl_header_add(&hdrs, "Accept: application/json");
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	}
	if (r < 0)
		goto out_cleanup;
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, a);
	vx_curl_cancel_on(h, &b->stop);
	CURLcode res;
	r = vx_curl_perform(h, &b->stop, BANTER_POLL_MS, &res);
	if (r == 0 && res != CURLE_OK)
		r = a->too_big ? -EFBIG : vx_curl_errno(res, -EIO);
	if (r == 0)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, ret_status);
out_cleanup:
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	return r;
}

/* The message of a voxline error body, or the body itself. */
static void error_text(const vx_buf *body, char *out, size_t cap)
{
	cJSON *j = cJSON_ParseWithLength(body->data ? body->data : "", body->len);
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
	const char *code = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "code"));
	const char *msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "message"));
	if (code && msg)
		snprintf(out, cap, "%s: %s", code, msg);
	else
		snprintf(out, cap, "%.*s", (int)(body->len > 300 ? 300 : body->len),
			 body->data ? body->data : "");
	cJSON_Delete(j);
}

static void unreachable_hint(banter *b, int err)
{
	banter_fail(b, EXIT_UNREACHABLE, "cannot reach voxline-orchestrator at %s (%s): "
		    "start it (make run starts the whole stack) or point --orchestrator / "
		    "VOXLINE_BANTER_ORCHESTRATOR at a running one",
		    b->cfg->orchestrator, strerror(-err));
}

/* GET /healthz before anything else: a clear message when nothing answers. */
int banter_orch_check(banter *b)
{
	answer a = {0};
	long status = 0;
	int r = orch_http(b, "/healthz", NULL, 10000, &a, &status);
	if (r == -ECANCELED) {
		vx_buf_release(&a.body);
		return r;
	}
	if (r < 0) {
		unreachable_hint(b, r);
	} else if (status != 200) {
		char m[400];
		error_text(&a.body, m, sizeof(m));
		banter_fail(b, EXIT_UNREACHABLE, "voxline-orchestrator at %s is not ready "
			    "(GET /healthz: %ld): %s", b->cfg->orchestrator, status, m);
		r = -EAGAIN;
	} else {
		cJSON *j = cJSON_ParseWithLength(a.body.data, a.body.len);
		const char *st = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "status"));
		if (st && strcmp(st, "ok"))
			fprintf(stderr, "voxline-banter: warning: the orchestrator says \"%s\" "
				"(a stage is down; GET %s/healthz says which)\n", st,
				b->cfg->orchestrator);
		cJSON_Delete(j);
	}
	vx_buf_release(&a.body);
	return r;
}

void banter_reply_release(reply *rp)
{
	free(rp->text);
	vx_pcm_release(&rp->pcm);
	memset(rp, 0, sizeof(*rp));
}

/* Reads a 200 answer of POST /chat: reply text and audio. */
static int parse_answer(bot *me, const vx_buf *body, reply *rp)
{
	banter *b = me->b;
	int r = -EBADMSG;
	cJSON *j = cJSON_ParseWithLength(body->data, body->len);
	const char *text = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "reply"));
	const char *audio = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "audio_base64"));
	if (!text || !audio) {
		banter_fail(b, EXIT_FAIL, "%s: the orchestrator's answer has no reply or "
			    "audio_base64 (is %s a voxline-orchestrator?)", me->name,
			    b->cfg->orchestrator);
		goto out_delete;
	}
	while (*text == ' ' || *text == '\n')
		text++;
	if (!*text) {
		banter_fail(b, EXIT_FAIL, "%s: the orchestrator's reply is empty "
			    "(nothing to say to the other bot)", me->name);
		goto out_delete;
	}
	vx_buf wav = {0};
	if ((r = vx_base64_decode(audio, strlen(audio), &wav)) < 0 ||
	    (r = vx_audio_decode(wav.data, wav.len, NULL,
				 (size_t)BANTER_MAX_REPLY_S * VX_AUDIO_MAX_RATE, &rp->pcm)) < 0 ||
	    (r = vx_audio_convert(&rp->pcm, b->cfg->rate, 1)) < 0) {
		banter_fail(b, EXIT_FAIL, "%s: the reply has no usable audio (%s; reply "
			    "text: \"%.80s\")", me->name, strerror(-r), text);
		vx_buf_release(&wav);
		goto out_delete;
	}
	vx_buf_release(&wav);
	if (!(rp->text = strndup(text, BANTER_MAX_LINE)))
		r = -ENOMEM;
out_delete:
	cJSON_Delete(j);
	return r;
}

/* --stream: the turn on the bot's /ws/chat; the reply's audio starts (and
 * plays, paced by the orchestrator) before its text is whole. A turn
 * stopped after its audio started is returned (0) to be cut where it was. */
static int ask_stream(bot *me, const char *line, reply *rp)
{
	banter *b = me->b;
	banter_ws_turn t = {0};
	char err[600] = "";
	double sent = vx_now_ms();
	int r = banter_ws_say(me->ws, line, (int)(b->cfg->timeout_s * 1000), err,
			      sizeof(err), &t);
	rp->latency_ms = (t.audio_start_ms ? t.audio_start_ms : vx_now_ms()) - sent;
	if (r == -ECANCELED && t.audio_start_ms)
		r = 0;
	if (r == -ECANCELED) {
		goto out_release;
	} else if (r == -EPROTO) {
		banter_fail(b, EXIT_FAIL, "%s: the orchestrator: %s", me->name, err);
	} else if (r == -ETIMEDOUT || r == -EFBIG || r == -ENOMEM) {
		banter_fail(b, EXIT_FAIL, "%s: %s: %s", me->name, b->cfg->ws_url,
			    r == -ETIMEDOUT ? "the turn did not end within --timeout-s" :
			    r == -EFBIG ? "the reply is too large" : strerror(-r));
	} else if (r < 0) {
		unreachable_hint(b, r);
	} else if (!t.audio.len || !t.text.len) {
		banter_fail(b, EXIT_FAIL, "%s: the orchestrator's reply has no %s", me->name,
			    t.text.len ? "audio" : "text (nothing to say to the other bot)");
		r = -ENODATA;
	}
	if (r < 0)
		goto out_release;
	size_t len = t.audio.len & ~(size_t)1;
	rp->pcm.rate = b->cfg->rate;
	rp->pcm.channels = 1;
	rp->pcm.frames = len / 2;
	rp->pcm.data = (int16_t *)(void *)vx_buf_detach(&t.audio, NULL);
	rp->start_ms = t.audio_start_ms - b->t0_ms;
	const char *text = t.text.data;
	while (*text == ' ' || *text == '\n')
		text++;
	if (!(rp->text = strndup(text, BANTER_MAX_LINE)))   /* what /chat takes */
		r = -ENOMEM;
out_release:
	banter_ws_turn_release(&t);
	return r;
}

/* The bot's turn at the orchestrator: line in, reply text and audio out. */
int banter_orch_ask(bot *me, const char *line, reply *rp)
{
	if (me->b->cfg->stream)
		return ask_stream(me, line, rp);
	banter *b = me->b;
	const struct config *cfg = b->cfg;
	cJSON *req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "text", line);
	cJSON_AddStringToObject(req, "conversation_id", me->conv_id);
	cJSON_AddStringToObject(req, "voice", me->voice);
	cJSON_AddStringToObject(req, "system_prompt", me->prompt);
	cJSON_AddNumberToObject(req, "sample_rate", cfg->rate);
	if (cfg->model)
		cJSON_AddStringToObject(req, "model", cfg->model);
	char *body = cJSON_PrintUnformatted(req);
	cJSON_Delete(req);
	if (!body)
		return -ENOMEM;
	answer a = {0};
	long status = 0;
	double t = vx_now_ms();
	int r = orch_http(b, "/chat", body, (long)(cfg->timeout_s * 1000), &a, &status);
	rp->latency_ms = vx_now_ms() - t;
	free(body);
	if (r == -ECANCELED) {
		goto out_release;
	} else if (r == -ETIMEDOUT || r == -EFBIG || r == -ENOMEM) {
		banter_fail(b, EXIT_FAIL, "%s: POST %s/chat: %s", me->name, cfg->orchestrator,
			    r == -ETIMEDOUT ? "no answer within --timeout-s" :
			    r == -EFBIG ? "the answer is too large" : strerror(-r));
	} else if (r < 0) {   /* refused, reset, cut: gone */
		unreachable_hint(b, r);
	} else if (status != 200) {
		char m[600];
		error_text(&a.body, m, sizeof(m));
		banter_fail(b, EXIT_FAIL, "%s: the orchestrator answered %ld: %s",
			    me->name, status, m);
		r = -EPROTO;
	} else {
		r = parse_answer(me, &a.body, rp);
	}
out_release:
	vx_buf_release(&a.body);
	return r;
}

/* --stream: the bot's /ws/chat session, started with its persona. */
int banter_orch_open_stream(bot *me)
{
	banter *b = me->b;
	const struct config *cfg = b->cfg;
	cJSON *j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "type", "start");
	cJSON_AddNumberToObject(j, "sample_rate", cfg->rate);
	cJSON_AddStringToObject(j, "encoding", "pcm16");
	cJSON_AddStringToObject(j, "conversation_id", me->conv_id);
	cJSON_AddStringToObject(j, "voice", me->voice);
	cJSON_AddStringToObject(j, "system_prompt", me->prompt);
	if (cfg->model)
		cJSON_AddStringToObject(j, "model", cfg->model);
	char *start = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	if (!start) {
		banter_fail(b, EXIT_FAIL, "out of memory");
		return -ENOMEM;
	}
	char err[600] = "", auth[VX_CURL_API_KEY_MAX + 32] = "";
	if (cfg->api_key && *cfg->api_key)
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n",
			 cfg->api_key);
	int r = banter_ws_open(b->wc, cfg->ws_url, auth, start, 10000, &b->stop,
			       err, sizeof(err), &me->ws);
	free(start);
	if (r == -EPROTO)
		banter_fail(b, EXIT_FAIL, "%s: the orchestrator refused the start: %s",
			    me->name, err);
	else if (r == -ENOMEM || r == -EINVAL)
		banter_fail(b, EXIT_FAIL, "%s: %s: %s", me->name, cfg->ws_url, strerror(-r));
	else if (r < 0 && r != -ECANCELED)
		unreachable_hint(b, r);
	return r;
}
