/*
 * engine_remote.c - the remote engines: "whisper-server" (a whisper.cpp server)
 * and "openai" (any OpenAI-compatible transcription server: OpenAI,
 * faster-whisper-server / speaches, LocalAI, vLLM).
 *
 * Wire format, one multipart/form-data POST per transcribe call, the audio
 * as a 16 kHz mono PCM16 WAV in field "file" (filename audio.wav):
 *   whisper-server  POST {url}/inference with temperature=0.0,
 *            response_format=verbose_json, language and prompt when given.
 *   openai   POST {url}/v1/audio/transcriptions with model (default
 *            "whisper-1"), response_format=verbose_json, language, prompt,
 *            and "Authorization: Bearer <key>" when a key is set.
 * Both answer JSON {"text":"...","language":"english","segments":[{"start":
 * s,"end":s,"text":"..."}]}; plain {"text":"..."} (response_format json) is
 * read too. X-Request-Id is sent when the options carry one.
 *
 * The transfer runs on a curl multi handle polled every REMOTE_POLL_MS; the
 * progress callback aborts it when *cancel is set, so a cancel stops even a
 * stalled request within about that time. Errors: -ECONNREFUSED (server
 * down, host unknown), -ETIMEDOUT (timeout_ms passed), -ECANCELED, -EPROTO
 * (HTTP status not 2xx, a body that is not a JSON transcription or larger
 * than REMOTE_BODY_MAX, a connection cut mid-answer), -EBUSY (pool_size
 * requests already in flight), -EIO other transport failures.
 * No streaming: stream_open is NULL.
 *
 * Thread safety: every call uses its own curl handles; the engine object is
 * read-only after create except the atomic in-flight count.
 */
#include "stt_engine.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "vx_buf.h"
#include "vx_curl.h"

#define REMOTE_TIMEOUT_MS 60000        /* when the config gives none */
#define REMOTE_CONNECT_TIMEOUT_MS 10000
#define REMOTE_POLL_MS 20              /* cancel latency while waiting */
#define REMOTE_BODY_MAX (8u << 20)     /* bytes of answer we accept */
#define REMOTE_WAV_HEADER 44
#define REMOTE_MAX_SAMPLES ((size_t)STT_AUDIO_MAX_SECONDS * STT_RATE)

/* What differs between the two servers. */
struct remote_kind {
	const char *path;              /* appended to the base URL */
	const char *default_model;     /* NULL = send no model field */
	bool send_temperature;         /* whisper.cpp: temperature=0.0 */
};

static const struct remote_kind remote_whisper_kind = {
	.path = "/inference",
	.default_model = NULL,
	.send_temperature = true,
};

static const struct remote_kind remote_openai_kind = {
	.path = "/v1/audio/transcriptions",
	.default_model = "whisper-1",
	.send_temperature = false,
};

struct remote_engine {
	const struct remote_kind *kind;
	char *endpoint;                /* base URL + kind->path */
	char *api_key;                 /* NULL = no Authorization header */
	char *model;                   /* NULL = no model field */
	long timeout_ms;
	int pool_size;                 /* requests in flight at most */
	atomic_int in_flight;
};

/* One transcribe call, reached from the curl callbacks. */
struct remote_call {
	vx_buf body;                   /* the answer so far */
	int err;                       /* set by a callback that stopped the transfer */
};

/* Language names whisper answers in verbose_json, to ISO 639-1 codes. */
static const char *const remote_languages[][2] = {
	{ "english", "en" }, { "spanish", "es" }, { "french", "fr" },
	{ "german", "de" }, { "italian", "it" }, { "portuguese", "pt" },
	{ "dutch", "nl" }, { "russian", "ru" }, { "chinese", "zh" },
	{ "japanese", "ja" }, { "korean", "ko" }, { "polish", "pl" },
	{ "turkish", "tr" }, { "arabic", "ar" }, { "hindi", "hi" },
};
#define REMOTE_N_LANGUAGES (sizeof(remote_languages) / sizeof(remote_languages[0]))

static void remote_destroy(void *engine)
{
	struct remote_engine *e = engine;

	if (!e)
		return;
	free(e->endpoint);
	free(e->api_key);
	free(e->model);
	free(e);
}

static int remote_create(const stt_config *cfg, const struct remote_kind *kind,
			 void **ret_engine)
{
	struct remote_engine *e;
	const char *model;
	vx_buf url = { 0 };
	size_t len;

	if (!cfg || !cfg->url || !*cfg->url || cfg->pool_size < 1 ||
	    cfg->pool_size > STT_POOL_MAX)
		return -EINVAL;
	if (vx_curl_global_init() < 0)
		return -EIO;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->kind = kind;
	len = strlen(cfg->url);
	while (len > 0 && cfg->url[len - 1] == '/')
		len--;
	model = cfg->model && *cfg->model ? cfg->model : kind->default_model;
	if (vx_buf_append(&url, cfg->url, len) < 0 ||
	    vx_buf_puts(&url, kind->path) < 0)
		goto out_nomem;
	e->endpoint = vx_buf_detach(&url, NULL);
	if (model && !(e->model = strdup(model)))
		goto out_nomem;
	if (cfg->api_key && *cfg->api_key && !(e->api_key = strdup(cfg->api_key)))
		goto out_nomem;
	e->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : REMOTE_TIMEOUT_MS;
	e->pool_size = cfg->pool_size;
	atomic_init(&e->in_flight, 0);
	*ret_engine = e;
	return 0;

out_nomem:
	vx_buf_release(&url);
	remote_destroy(e);
	return -ENOMEM;
}

static int remote_create_whisper(const stt_config *cfg, void **ret_engine)
{
	return remote_create(cfg, &remote_whisper_kind, ret_engine);
}

static int remote_create_openai(const stt_config *cfg, void **ret_engine)
{
	return remote_create(cfg, &remote_openai_kind, ret_engine);
}

static void remote_put_le(uint8_t *p, uint32_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* The samples as a RIFF/WAVE file: 16 kHz, mono, 16-bit. Caller frees. */
static uint8_t *remote_wav_new(const int16_t *pcm, size_t n, size_t *ret_len)
{
	size_t data = n * 2;
	uint8_t *w = malloc(REMOTE_WAV_HEADER + data);

	if (!w)
		return NULL;
	memcpy(w, "RIFF", 4);
	remote_put_le(w + 4, (uint32_t)(36 + data), 4);
	memcpy(w + 8, "WAVEfmt ", 8);
	remote_put_le(w + 16, 16, 4);                 /* fmt chunk size */
	remote_put_le(w + 20, 1, 2);                  /* PCM */
	remote_put_le(w + 22, 1, 2);                  /* channels */
	remote_put_le(w + 24, STT_RATE, 4);
	remote_put_le(w + 28, STT_RATE * 2, 4);       /* byte rate */
	remote_put_le(w + 32, 2, 2);                  /* block align */
	remote_put_le(w + 34, 16, 2);                 /* bits */
	memcpy(w + 36, "data", 4);
	remote_put_le(w + 40, (uint32_t)data, 4);
	for (size_t i = 0; i < n; i++)
		remote_put_le(w + REMOTE_WAV_HEADER + 2 * i, (uint16_t)pcm[i], 2);
	*ret_len = REMOTE_WAV_HEADER + data;
	return w;
}

static size_t remote_write(char *p, size_t size, size_t nmemb, void *user)
{
	struct remote_call *c = user;
	size_t len = size * nmemb;

	if (c->body.len + len > REMOTE_BODY_MAX) {
		c->err = -EPROTO;
		return 0;
	}
	if (vx_buf_append(&c->body, p, len) < 0) {
		c->err = -ENOMEM;
		return 0;
	}
	return len;
}

static int remote_curl_error(CURLcode res)
{
	switch (res) {
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return -EINVAL;
	default:
		return vx_curl_errno(res, -EIO);
	}
}

static int remote_add_field(curl_mime *mime, const char *name, const char *value)
{
	curl_mimepart *p = curl_mime_addpart(mime);

	if (!p || curl_mime_name(p, name) != CURLE_OK ||
	    curl_mime_data(p, value, CURL_ZERO_TERMINATED) != CURLE_OK)
		return -ENOMEM;
	return 0;
}

/* The multipart body: file, then the fields this kind of server takes. */
static int remote_mime_build(struct remote_engine *e, CURL *h,
			     const uint8_t *wav, size_t wav_len,
			     const stt_options *opt, curl_mime **ret_mime)
{
	curl_mime *mime = curl_mime_init(h);
	curl_mimepart *p;
	const char *lang = opt && opt->language && *opt->language &&
			   strcmp(opt->language, "auto") != 0 ? opt->language : NULL;
	const char *prompt = opt && opt->prompt && *opt->prompt ? opt->prompt : NULL;

	if (!mime)
		return -ENOMEM;
	p = curl_mime_addpart(mime);
	if (!p || curl_mime_name(p, "file") != CURLE_OK ||
	    curl_mime_data(p, (const char *)wav, wav_len) != CURLE_OK ||
	    curl_mime_filename(p, "audio.wav") != CURLE_OK ||
	    curl_mime_type(p, "audio/wav") != CURLE_OK)
		goto out_free_mime;
	if ((e->model && remote_add_field(mime, "model", e->model) < 0) ||
	    (e->kind->send_temperature &&
	     remote_add_field(mime, "temperature", "0.0") < 0) ||
	    remote_add_field(mime, "response_format", "verbose_json") < 0 ||
	    (lang && remote_add_field(mime, "language", lang) < 0) ||
	    (prompt && remote_add_field(mime, "prompt", prompt) < 0))
		goto out_free_mime;
	*ret_mime = mime;
	return 0;

out_free_mime:
	curl_mime_free(mime);
	return -ENOMEM;
}

static int remote_headers_build(struct remote_engine *e, const stt_options *opt,
				struct curl_slist **ret_headers)
{
	struct curl_slist *hdrs = NULL;
	int err;

	err = vx_curl_headers_auth(&hdrs, e->api_key, opt ? opt->request_id : NULL);
	if (err == 0)
		err = vx_curl_header_add(&hdrs, "Accept: application/json");
	if (err < 0) {
		curl_slist_free_all(hdrs);
		return err;
	}
	*ret_headers = hdrs;
	return 0;
}

/* A copy of s without leading and trailing white space. */
static char *remote_strdup_trim(const char *s)
{
	size_t len;

	while (isspace((unsigned char)*s))
		s++;
	len = strlen(s);
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		len--;
	return strndup(s, len);
}

static const char *remote_language_code(const char *name)
{
	for (size_t i = 0; i < REMOTE_N_LANGUAGES; i++)
		if (strcasecmp(remote_languages[i][0], name) == 0)
			return remote_languages[i][1];
	return name;
}

static int remote_segments_parse(const cJSON *segs, stt_result *r)
{
	int n = cJSON_GetArraySize(segs);
	const cJSON *s;

	if (n <= 0)
		return 0;
	r->segments = calloc((size_t)n, sizeof(*r->segments));
	if (!r->segments)
		return -ENOMEM;
	cJSON_ArrayForEach(s, segs) {
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(s, "start");
		const cJSON *en = cJSON_GetObjectItemCaseSensitive(s, "end");
		const cJSON *tx = cJSON_GetObjectItemCaseSensitive(s, "text");
		stt_segment *seg = &r->segments[r->n_segments];

		if (!cJSON_IsNumber(st) || !cJSON_IsNumber(en) ||
		    !cJSON_IsString(tx) || st->valuedouble < 0 ||
		    en->valuedouble < st->valuedouble)
			return -EPROTO;
		seg->start_ms = (int64_t)(st->valuedouble * 1000.0 + 0.5);
		seg->end_ms = (int64_t)(en->valuedouble * 1000.0 + 0.5);
		seg->text = remote_strdup_trim(tx->valuestring);
		if (!seg->text)
			return -ENOMEM;
		r->n_segments++;
	}
	return 0;
}

/* Reads {"text":...,"language":...,"segments":[...]} into ret. */
static int remote_answer_parse(const char *body, const stt_options *opt,
			       stt_result *ret)
{
	stt_result r = { 0 };
	cJSON *j = cJSON_Parse(body);
	const cJSON *text, *lang, *segs;
	const char *code = opt && opt->language && *opt->language &&
			   strcmp(opt->language, "auto") != 0 ? opt->language : NULL;
	int err = -EPROTO;

	if (!j)
		return -EPROTO;
	text = cJSON_GetObjectItemCaseSensitive(j, "text");
	lang = cJSON_GetObjectItemCaseSensitive(j, "language");
	segs = cJSON_GetObjectItemCaseSensitive(j, "segments");
	if (!cJSON_IsString(text))
		goto out_delete;
	if (cJSON_IsString(lang) && *lang->valuestring)
		code = remote_language_code(lang->valuestring);
	err = -ENOMEM;
	r.text = remote_strdup_trim(text->valuestring);
	if (!r.text || (code && !(r.language = strdup(code))))
		goto out_release;
	if (cJSON_IsArray(segs)) {
		err = remote_segments_parse(segs, &r);
		if (err < 0)
			goto out_release;
	} else if (segs && !cJSON_IsNull(segs)) {
		err = -EPROTO;
		goto out_release;
	}
	*ret = r;
	cJSON_Delete(j);
	return 0;

out_release:
	stt_result_release(&r);
out_delete:
	cJSON_Delete(j);
	return err;
}

static int remote_transcribe(void *engine, const int16_t *pcm, size_t n,
			     const stt_options *opt, const atomic_bool *cancel,
			     stt_result *ret)
{
	struct remote_engine *e = engine;
	struct remote_call c = { 0 };
	struct curl_slist *hdrs = NULL;
	curl_mime *mime = NULL;
	uint8_t *wav;
	size_t wav_len;
	long status = 0;
	CURLcode res = CURLE_OK;
	CURL *h;
	int err;

	if (!pcm && n > 0)
		return -EINVAL;
	if (n > REMOTE_MAX_SAMPLES)
		return -E2BIG;
	if (atomic_fetch_add(&e->in_flight, 1) >= e->pool_size) {
		err = -EBUSY;
		goto out_leave;
	}
	err = -ENOMEM;
	wav = remote_wav_new(pcm, n, &wav_len);
	if (!wav)
		goto out_leave;
	h = curl_easy_init();
	if (!h)
		goto out_free_wav;
	err = remote_mime_build(e, h, wav, wav_len, opt, &mime);
	if (err < 0)
		goto out_cleanup_easy;
	err = remote_headers_build(e, opt, &hdrs);
	if (err < 0)
		goto out_free_mime;
	err = vx_curl_setup(h, e->endpoint, "voxline-stt", e->timeout_ms,
			    REMOTE_CONNECT_TIMEOUT_MS);
	if (err == 0)
		err = vx_curl_cancel_on(h, cancel);
	if (err < 0)
		goto out_free_headers;
	curl_easy_setopt(h, CURLOPT_MIMEPOST, mime);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, remote_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &c);
	err = vx_curl_perform(h, cancel, REMOTE_POLL_MS, &res);
	if (err == 0 && res != CURLE_OK)
		err = c.err < 0 ? c.err : remote_curl_error(res);
	if (err < 0)
		goto out_free_headers;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status > 299 || !c.body.data) {
		err = -EPROTO;
		goto out_free_headers;
	}
	err = remote_answer_parse(c.body.data, opt, ret);

out_free_headers:
	curl_slist_free_all(hdrs);
out_free_mime:
	curl_mime_free(mime);
out_cleanup_easy:
	curl_easy_cleanup(h);
out_free_wav:
	free(wav);
out_leave:
	vx_buf_release(&c.body);
	atomic_fetch_sub(&e->in_flight, 1);
	return err;
}

const stt_engine_ops stt_engine_whisper_server = {
	.name = "whisper-server",
	.aliases = "whisper.cpp whispercpp",
	.description = "a whisper.cpp server (POST {url}/inference)",
	.flags = VX_ENGINE_REMOTE,
	.default_model = "default",
	.create = remote_create_whisper,
	.destroy = remote_destroy,
	.transcribe = remote_transcribe,
};

const stt_engine_ops stt_engine_openai = {
	.name = "openai",
	.description = "an OpenAI-compatible server (POST {url}/v1/audio/transcriptions)",
	.flags = VX_ENGINE_REMOTE,
	.default_model = "whisper-1",
	.create = remote_create_openai,
	.destroy = remote_destroy,
	.transcribe = remote_transcribe,
};
