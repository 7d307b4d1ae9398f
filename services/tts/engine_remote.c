/*
 * engine_remote.c - the "openai" engine: any OpenAI-compatible speech
 * server (OpenAI, Kokoro-FastAPI, Piper's OpenAI wrappers, openedai-speech).
 *
 * Wire format: POST {url}/v1/audio/speech (a url ending in /v1 is taken
 * as the same server) with JSON
 * {"model","input","voice","response_format":"pcm","speed"} and
 * "Authorization: Bearer <key>" when a key is set. OpenAI answers "pcm" as
 * raw 24 kHz s16le mono; a server that answers a WAV anyway (RIFF header)
 * is read too, at the rate its header gives. The body is streamed to the
 * callback as it arrives.
 *
 * The transfer runs on a curl multi handle polled every REMOTE_POLL_MS, so
 * a cancel stops a stalled request within that time; the whole request is
 * bounded by timeout_ms. Errors: -ECONNREFUSED (server down or host
 * unknown), -ETIMEDOUT, -EPROTO (HTTP error status, a body that is not
 * audio, a broken WAV header, a connection cut mid-body), -ECANCELED.
 * Any voice name is passed through: the server decides what exists.
 *
 * Thread safety: every call uses its own curl handles; the engine object is
 * read-only after create.
 */
#include "tts_engine.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "vx_buf.h"
#include "vx_curl.h"

#define REMOTE_DEFAULT_MODEL "tts-1"
#define REMOTE_DEFAULT_VOICE "alloy"
#define REMOTE_PCM_RATE 24000          /* OpenAI's response_format "pcm" */
#define REMOTE_TIMEOUT_MS 60000        /* when the config gives none */
#define REMOTE_CONNECT_TIMEOUT_MS 10000
#define REMOTE_POLL_MS 20              /* cancel latency while waiting */
#define REMOTE_WAV_HEAD_MAX 4096       /* bytes of WAV header we accept */
#define REMOTE_CHUNK_SAMPLES 4096      /* samples per callback at most */
#define REMOTE_REQUEST_ID_MAX 128

/* OpenAI's voice names, offered in the list (any name is passed through). */
static const char *const remote_openai_voices[] = {
	"alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx",
	"sage", "shimmer", "verse",
};
#define REMOTE_N_OPENAI (sizeof(remote_openai_voices) / sizeof(remote_openai_voices[0]))

struct remote_engine {
	char *url;               /* base URL, no trailing '/' */
	char *api_key;           /* NULL = no Authorization header */
	char *model;
	char *default_voice;
	long timeout_ms;
	tts_voice voices[REMOTE_N_OPENAI + 1];   /* default first */
	size_t n_voices;
};

/* One synthesize call, reached from the curl write callback. */
struct remote_call {
	CURL *h;
	tts_audio_cb cb;
	void *user;
	const atomic_bool *cancel;
	int *ret_rate;
	long status;                        /* HTTP status; 0 = no body yet */
	bool head_done;                     /* raw PCM or WAV header read */
	uint8_t head[REMOTE_WAV_HEAD_MAX];  /* body start, until head_done */
	size_t head_len;
	uint8_t carry;                      /* odd byte between writes */
	bool has_carry;
	bool stopped;                       /* cancel or callback said stop */
	int err;                            /* first error found in the body */
	int16_t pcm[REMOTE_CHUNK_SAMPLES];
};

static void remote_destroy(void *engine)
{
	struct remote_engine *e = engine;

	if (!e)
		return;
	free(e->url);
	free(e->api_key);
	free(e->model);
	free(e->default_voice);
	free(e);
}

static int remote_create(const tts_config *cfg, void **ret_engine)
{
	struct remote_engine *e;
	size_t len;

	if (!cfg || !cfg->url || !*cfg->url)
		return -EINVAL;
	if (vx_curl_global_init() < 0)
		return -EIO;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->url = strdup(cfg->url);
	e->model = strdup(cfg->model && *cfg->model ? cfg->model
						    : REMOTE_DEFAULT_MODEL);
	e->default_voice = strdup(cfg->default_voice && *cfg->default_voice
				  ? cfg->default_voice : REMOTE_DEFAULT_VOICE);
	e->api_key = cfg->api_key && *cfg->api_key ? strdup(cfg->api_key) : NULL;
	if (!e->url || !e->model || !e->default_voice ||
	    (cfg->api_key && *cfg->api_key && !e->api_key)) {
		remote_destroy(e);
		return -ENOMEM;
	}
	/* "http://h:8880/", "http://h:8880/v1" and "http://h:8880" all mean
	 * POST http://h:8880/v1/audio/speech */
	len = strlen(e->url);
	while (len > 0 && e->url[len - 1] == '/')
		e->url[--len] = '\0';
	if (len >= 3 && strcmp(e->url + len - 3, "/v1") == 0)
		e->url[len -= 3] = '\0';
	e->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : REMOTE_TIMEOUT_MS;

	e->voices[e->n_voices++] = (tts_voice){
		.name = e->default_voice, .sample_rate = REMOTE_PCM_RATE,
	};
	for (size_t i = 0; i < REMOTE_N_OPENAI; i++) {
		if (strcmp(remote_openai_voices[i], e->default_voice) == 0)
			continue;
		e->voices[e->n_voices++] = (tts_voice){
			.name = remote_openai_voices[i],
			.sample_rate = REMOTE_PCM_RATE,
		};
	}
	*ret_engine = e;
	return 0;
}

static int remote_voices(void *engine, const tts_voice **ret_voices,
			 size_t *ret_n)
{
	struct remote_engine *e = engine;

	*ret_voices = e->voices;
	*ret_n = e->n_voices;
	return 0;
}

static uint32_t remote_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint16_t remote_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/*
 * Reads a RIFF/WAVE header up to the "data" chunk: -EAGAIN when more bytes
 * are needed, -EPROTO for anything but 16-bit mono PCM.
 */
static int remote_wav_parse(const uint8_t *b, size_t len, int *ret_rate,
			    size_t *ret_data_off)
{
	size_t off = 12;
	int rate = 0;

	if (len < 12)
		return -EAGAIN;
	if (memcmp(b, "RIFF", 4) != 0 || memcmp(b + 8, "WAVE", 4) != 0)
		return -EPROTO;
	for (;;) {
		uint32_t size;

		if (len < off + 8)
			return -EAGAIN;
		size = remote_le32(b + off + 4);
		if (memcmp(b + off, "data", 4) == 0) {
			if (rate == 0)
				return -EPROTO;   /* data before fmt */
			*ret_rate = rate;
			*ret_data_off = off + 8;
			return 0;
		}
		if (size > REMOTE_WAV_HEAD_MAX)
			return -EPROTO;
		if (len < off + 8 + size)
			return -EAGAIN;
		if (memcmp(b + off, "fmt ", 4) == 0) {
			const uint8_t *f = b + off + 8;
			uint16_t tag, channels, bits;

			if (size < 16)
				return -EPROTO;
			tag = remote_le16(f);
			channels = remote_le16(f + 2);
			bits = remote_le16(f + 14);
			if ((tag != 1 && tag != 0xFFFE) || channels != 1 ||
			    bits != 16)
				return -EPROTO;
			rate = (int)remote_le32(f + 4);
			if (rate <= 0)
				return -EPROTO;
		}
		off += 8 + size + (size & 1);
	}
}

/* Passes s16le bytes to the callback; -ECANCELED when it asks to stop. */
static int remote_feed(struct remote_call *c, const uint8_t *p, size_t n)
{
	size_t k = 0;

	if (c->has_carry && n > 0) {
		c->pcm[k++] = (int16_t)(c->carry | p[0] << 8);
		c->has_carry = false;
		p++;
		n--;
	}
	while (n >= 2 || k > 0) {
		while (n >= 2 && k < REMOTE_CHUNK_SAMPLES) {
			c->pcm[k++] = (int16_t)(p[0] | p[1] << 8);
			p += 2;
			n -= 2;
		}
		if (c->cb(c->user, c->pcm, k) != 0) {
			c->stopped = true;
			return -ECANCELED;
		}
		k = 0;
	}
	if (n == 1) {
		c->carry = p[0];
		c->has_carry = true;
	}
	return 0;
}

/* Decides raw PCM or WAV from the body's first bytes, then feeds the rest. */
static int remote_head(struct remote_call *c, bool at_end)
{
	size_t data_off = 0;
	int rate, r;

	if (c->head_len < 4 && !at_end)
		return -EAGAIN;
	if (c->head_len >= 4 && memcmp(c->head, "RIFF", 4) == 0) {
		r = remote_wav_parse(c->head, c->head_len, &rate, &data_off);
		if (r == -EAGAIN && (at_end || c->head_len == sizeof(c->head)))
			r = -EPROTO;
		if (r < 0)
			return r;
		*c->ret_rate = rate;
	}
	c->head_done = true;
	return remote_feed(c, c->head + data_off, c->head_len - data_off);
}

static bool remote_is_audio_type(const char *ct)
{
	/* A 2xx with a JSON or text body is an error page, not audio. */
	return !ct || (strncasecmp(ct, "application/json", 16) != 0 &&
		       strncasecmp(ct, "text/", 5) != 0);
}

static size_t remote_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct remote_call *c = ud;
	const uint8_t *p = (const uint8_t *)ptr;
	size_t n = size * nmemb;
	int r;

	if (c->status == 0) {
		char *ct = NULL;

		curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &c->status);
		curl_easy_getinfo(c->h, CURLINFO_CONTENT_TYPE, &ct);
		if (c->status < 200 || c->status >= 300 ||
		    !remote_is_audio_type(ct)) {
			c->err = -EPROTO;
			return 0;       /* aborts the transfer */
		}
	}
	if (c->cancel && atomic_load(c->cancel)) {
		c->stopped = true;
		return 0;
	}
	if (!c->head_done) {
		size_t take = sizeof(c->head) - c->head_len;

		if (take > n)
			take = n;
		memcpy(c->head + c->head_len, p, take);
		c->head_len += take;
		p += take;
		n -= take;
		r = remote_head(c, false);
		if (r == -EAGAIN)
			return size * nmemb;
		if (r < 0)
			goto out_abort;
	}
	r = remote_feed(c, p, n);
	if (r < 0)
		goto out_abort;
	return size * nmemb;

out_abort:
	if (r != -ECANCELED)
		c->err = r;
	return 0;
}

/* Builds the JSON request body. */
static int remote_body(const struct remote_engine *e, const char *text,
		       const char *voice, double speed, vx_buf *b)
{
	int r = vx_buf_puts(b, "{\"model\":");

	if (r == 0)
		r = vx_buf_json_str(b, e->model, strlen(e->model));
	if (r == 0)
		r = vx_buf_puts(b, ",\"input\":");
	if (r == 0)
		r = vx_buf_json_str(b, text, strlen(text));
	if (r == 0)
		r = vx_buf_puts(b, ",\"voice\":");
	if (r == 0)
		r = vx_buf_json_str(b, voice, strlen(voice));
	if (r == 0)
		r = vx_buf_printf(b, ",\"response_format\":\"pcm\",\"speed\":%.3f}",
				  speed);
	return r;
}

/* A request id unfit for a header is not sent (the call goes on). */
static int remote_headers(const struct remote_engine *e, const char *req_id,
			  struct curl_slist **ret)
{
	struct curl_slist *l = NULL;
	int r;

	if (!vx_curl_token_ok(req_id, REMOTE_REQUEST_ID_MAX))
		req_id = NULL;
	r = vx_curl_header_add(&l, "Content-Type: application/json");
	if (r == 0)
		r = vx_curl_headers_auth(&l, e->api_key, req_id);
	if (r < 0) {
		curl_slist_free_all(l);
		return r;
	}
	*ret = l;
	return 0;
}

/* Runs the transfer, then turns what the callbacks saw into an errno. */
static int remote_perform(struct remote_call *c)
{
	CURLcode res = CURLE_OK;
	int r = vx_curl_perform(c->h, c->cancel, REMOTE_POLL_MS, &res);

	if (r == -ECANCELED)
		c->stopped = true;
	if (c->stopped)
		r = -ECANCELED;
	else if (c->err)
		r = c->err;
	else if (r == 0 && res != CURLE_OK)
		r = vx_curl_errno(res, -EPROTO);
	else if (r == 0 && !c->head_done && c->head_len > 0)
		r = remote_head(c, true);
	if (r == 0) {
		if (c->status == 0)
			curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &c->status);
		if (c->status < 200 || c->status >= 300)
			r = -EPROTO;
	}
	return r;
}

static int remote_synthesize(void *engine, const char *text,
			     const tts_options *opt, const atomic_bool *cancel,
			     tts_audio_cb cb, void *user, int *ret_rate)
{
	struct remote_engine *e = engine;
	const char *voice = opt && opt->voice && *opt->voice ? opt->voice
							     : e->default_voice;
	struct remote_call *c;
	struct curl_slist *hdrs = NULL;
	vx_buf body = {0}, url = {0};
	double speed;
	int r;

	r = tts_engine_check(text, opt, &speed);
	if (r < 0)
		return r;
	*ret_rate = REMOTE_PCM_RATE;
	c = calloc(1, sizeof(*c));   /* holds a 8 KiB sample buffer */
	if (!c)
		return -ENOMEM;
	*c = (struct remote_call){ .cb = cb, .user = user, .cancel = cancel,
				   .ret_rate = ret_rate };

	r = remote_body(e, text, voice, speed, &body);
	if (r == 0)
		r = vx_buf_printf(&url, "%s/v1/audio/speech", e->url);
	if (r == 0)
		r = remote_headers(e, opt ? opt->request_id : NULL, &hdrs);
	if (r < 0)
		goto out_release_bufs;
	c->h = curl_easy_init();
	if (!c->h) {
		r = -ENOMEM;
		goto out_free_headers;
	}
	r = vx_curl_setup(c->h, url.data, "voxline-tts", e->timeout_ms,
			  REMOTE_CONNECT_TIMEOUT_MS);
	if (r < 0)
		goto out_cleanup_easy;
	curl_easy_setopt(c->h, CURLOPT_POST, 1L);
	curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, body.data);
	curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE, (long)body.len);
	curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, remote_write);
	curl_easy_setopt(c->h, CURLOPT_WRITEDATA, c);

	r = remote_perform(c);

out_cleanup_easy:
	curl_easy_cleanup(c->h);
out_free_headers:
	curl_slist_free_all(hdrs);
out_release_bufs:
	vx_buf_release(&url);
	vx_buf_release(&body);
	free(c);
	return r;
}

const tts_engine_ops tts_engine_openai = {
	.name = "remote",
	.aliases = "openai",
	.flags = VX_ENGINE_REMOTE,
	.description = "remote OpenAI-compatible speech server "
		       "(POST {url}/v1/audio/speech)",
	.create = remote_create,
	.destroy = remote_destroy,
	.voices = remote_voices,
	.synthesize = remote_synthesize,
};
