/*
 * api.c - voxline-tts's HTTP routes:
 *
 *   POST /synthesize        {"text","voice","return_format","format",
 *                            "sample_rate","speed"} -> audio (wav default,
 *                            X-Sample-Rate, X-Duration-Ms) or, with
 *                            return_format "base64", {"audio_base64",...}
 *   POST /v1/audio/speech   OpenAI's: {"model","input","voice",
 *                            "response_format","speed"} -> audio at 24 kHz
 *                            (pcm: raw s16le); errors OpenAI-shaped
 *   GET  /voices            {"voices":[{"name","language","gender",
 *                            "sample_rate","engine"}],"default":...}
 *
 * Requests are checked on the connection's thread; synthesis and encoding
 * run on the service's pool (503 + Retry-After when it is full).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tts_service.h"
#include "vx_audio.h"
#include "vx_json.h"
#include "vx_log.h"
#include "vx_reqbody.h"

#define API_MAX_BODY (1u << 20)     /* JSON body bytes */
#define API_MAX_AUDIO_S 900         /* audio seconds one request may make */
#define API_MAX_SAMPLES ((size_t)API_MAX_AUDIO_S * TTS_OPENAI_RATE)

/* The body as a JSON object; answers and fails otherwise. */
static int api_body(vx_req *req, bool openai, cJSON **ret)
{
	if (!openai)
		return vx_reqbody_json(req, ret);
	if (strcmp(vx_req_media_type(req), "application/json") != 0) {
		vx_req_error_param(req, 415, "unsupported_media_type", NULL,
			  "send a JSON body with Content-Type: application/json");
		return -EMEDIUMTYPE;
	}
	size_t len;
	const char *body = vx_req_body(req, &len);
	if (!vx_utf8_valid(body, len)) {
		vx_req_error_param(req, 400, "invalid_utf8", NULL,
			  "the request body is not valid UTF-8");
		return -EILSEQ;
	}
	cJSON *j = len ? cJSON_ParseWithLength(body, len) : NULL;
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		vx_req_error_param(req, 400, "invalid_json", NULL,
			  "the request body must be a JSON object");
		return -EINVAL;
	}
	*ret = j;
	return 0;
}

/* ---- one synthesis job ---- */

typedef struct api_job {
	tts_service *svc;
	bool openai;
	char *text;
	tts_target target;
	double speed;              /* 1.0 = normal */
	vx_format format;
	bool base64;               /* JSON with the audio in base64 */
	int out_rate;              /* 0 = the voice's own */
	vx_buf pcm;                /* int16 samples as they come */
	int rate;                  /* the engine's */
	bool timed_out, too_long;
	vx_req *req;
} api_job;

static void api_job_free(api_job *job)
{
	if (!job)
		return;
	free(job->text);
	vx_buf_release(&job->pcm);
	free(job);
}

static int api_collect(void *user, const int16_t *pcm, size_t n)
{
	api_job *job = user;
	if (vx_req_elapsed_ms(job->req) > job->svc->timeout_s * 1000.0) {
		job->timed_out = true;
		return 1;
	}
	if (job->pcm.len / 2 + n > API_MAX_SAMPLES) {
		job->too_long = true;
		return 1;
	}
	return vx_buf_append(&job->pcm, pcm, n * sizeof(*pcm)) < 0;
}

/* A rate the encoder takes as it is: opus has five. */
static int api_encoder_rate(vx_format f, int rate)
{
	static const int opus[] = { 8000, 12000, 16000, 24000, 48000 };
	if (f != VX_FMT_OPUS)
		return rate;
	for (size_t i = 0; i < sizeof(opus) / sizeof(opus[0]); i++)
		if (opus[i] >= rate)
			return opus[i];
	return 48000;
}

static const char *api_format_name(vx_format f)
{
	static const char *const names[] = {
		[VX_FMT_WAV] = "wav", [VX_FMT_PCM] = "pcm", [VX_FMT_FLAC] = "flac",
		[VX_FMT_OPUS] = "opus", [VX_FMT_MP3] = "mp3",
		[VX_FMT_MULAW] = "mulaw", [VX_FMT_ALAW] = "alaw",
	};
	return (size_t)f < sizeof(names) / sizeof(names[0]) && names[f] ?
	       names[f] : "audio";
}

/* Answers the collected audio: convert, encode, headers. */
static void api_answer(vx_req *req, api_job *job)
{
	vx_pcm pcm = { .rate = job->rate, .channels = 1 };
	size_t len;
	pcm.data = (int16_t *)(void *)vx_buf_detach(&job->pcm, &len);
	pcm.frames = len / 2;
	int rate = job->out_rate ? job->out_rate : job->rate;
	rate = api_encoder_rate(job->format, rate);
	vx_buf enc = {0}, out = {0};
	int r = 0;
	if (pcm.frames && rate != pcm.rate)
		r = vx_audio_convert(&pcm, rate, 1);
	pcm.rate = rate;
	if (r == 0)
		r = vx_audio_encode(pcm.data, pcm.frames, pcm.rate, 1, job->format,
				    &enc);
	if (r < 0) {
		vx_req_error_param(req, r == -ENOTSUP ? 400 : 500,
			  r == -ENOTSUP ? "unsupported_format" : "encode_failed",
			  "response_format", "cannot encode %s at %d Hz: %s",
			  api_format_name(job->format), rate, strerror(-r));
		goto out_release;
	}
	long long dur_ms = (long long)(pcm.frames * 1000 / (size_t)pcm.rate);
	char val[32];
	snprintf(val, sizeof(val), "%d", pcm.rate);
	vx_req_add_header(req, "X-Sample-Rate", val);
	snprintf(val, sizeof(val), "%lld", dur_ms);
	vx_req_add_header(req, "X-Duration-Ms", val);
	vx_req_add_header(req, "X-Voice", job->target.voice);
	vx_req_add_header(req, "X-Engine", job->target.be->name);
	if (!job->base64) {
		vx_req_reply_buf(req, 200, vx_format_mime(job->format), &enc);
		goto out_release;
	}
	vx_buf_puts(&out, "{\"audio_base64\":\"");
	if (vx_base64_encode(enc.data, enc.len, &out) < 0) {
		vx_req_error_param(req, 500, "out_of_memory", NULL, "out of memory");
		goto out_release;
	}
	vx_buf_printf(&out, "\",\"format\":\"%s\",\"sample_rate\":%d,"
		      "\"duration_ms\":%lld,\"voice\":",
		      api_format_name(job->format), pcm.rate, dur_ms);
	vx_buf_json_str(&out, job->target.voice, strlen(job->target.voice));
	vx_buf_printf(&out, ",\"engine\":\"%s\"}\n", job->target.be->name);
	vx_req_reply_buf(req, 200, "application/json", &out);
out_release:
	vx_buf_release(&out);
	vx_buf_release(&enc);
	vx_pcm_release(&pcm);
}

static void api_job_run(vx_req *req, void *arg)
{
	api_job *job = arg;
	tts_service *svc = job->svc;
	tts_synth_stats st;
	job->req = req;
	int r = tts_synth_run(svc, &job->target, job->text, job->speed,
			      vx_req_id(req), vx_req_cancelled(req), api_collect,
			      job, &st);
	job->rate = st.rate;
	if (job->timed_out) {
		vx_req_error_param(req, 504, "timeout", NULL,
			  "synthesis took longer than %d s", svc->timeout_s);
	} else if (job->too_long) {
		vx_req_error_param(req, 422, "audio_too_long", "input",
			  "the audio would be longer than %d s", API_MAX_AUDIO_S);
	} else if (r == -ECANCELED) {
		vx_log_info(vx_req_id(req), "client left; synthesis stopped");
	} else if (r < 0) {
		const char *code;
		int status = tts_synth_error_status(r, &code);
		if (r == -ENOENT) {
			char some[256];
			tts_synth_some_voices(svc, some, sizeof(some));
			vx_req_error_param(req, status, code, "voice",
				  "unknown voice '%s'; voices: %s",
				  job->target.voice, some);
		} else {
			vx_req_error_param(req, status, code, NULL,
				  "%s engine: %s", job->target.be->name,
				  strerror(-r));
		}
	} else if (st.rate <= 0) {
		vx_req_error_param(req, 500, "synthesis_failed", NULL,
			  "the engine reported no sample rate");
	} else {
		vx_log_debug(vx_req_id(req), "%zu samples at %d Hz in %.1f ms "
			     "(first chunk %.1f ms)", st.samples, st.rate,
			     st.total_ms, st.first_chunk_ms);
		api_answer(req, job);
	}
	api_job_free(job);
}

static void api_submit(vx_req *req, api_job *job)
{
	if (vx_req_run(req, job->svc->pool, api_job_run, job) < 0)
		api_job_free(job);   /* answered 503 */
}

/* ---- reading the request ---- */

/* Text and voice, shared by both routes; answers and fails when bad. */
static int api_text_voice(vx_req *req, tts_service *svc, bool openai,
			  const cJSON *j, const char *field, const char *voice,
			  api_job *job)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, field);
	if (!cJSON_IsString(t)) {
		vx_req_error_param(req, 400, t ? "invalid_type" : "missing_text",
			  field, "\"%s\" must be a string", field);
		return -EINVAL;
	}
	size_t len = strlen(t->valuestring);
	int r = tts_synth_check_text(svc, t->valuestring, len);
	if (r == -EINVAL) {
		vx_req_error_param(req, 400, "empty_text", field,
			  "\"%s\" is empty", field);
		return r;
	}
	if (r == -EILSEQ) {
		vx_req_error_param(req, 400, "invalid_utf8", field,
			  "\"%s\" is not valid UTF-8 text", field);
		return r;
	}
	if (r == -E2BIG) {
		vx_req_error_param(req, openai ? 400 : 413, "text_too_long", field,
			  "\"%s\" has %zu characters; at most %d",
			  field, tts_synth_chars(t->valuestring, len),
			  svc->max_text_chars);
		return r;
	}
	r = tts_synth_resolve(svc, voice, &job->target);
	if (r < 0) {
		char some[256];
		tts_synth_some_voices(svc, some, sizeof(some));
		vx_req_error_param(req, 400, "unknown_voice", "voice",
			  "unknown voice '%.64s'; voices: %s", voice, some);
		return r;
	}
	job->text = strdup(t->valuestring);
	if (!job->text) {
		vx_req_error_param(req, 500, "out_of_memory", NULL, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

/* "format" and "return_format" of POST /synthesize. */
static int api_formats(vx_req *req, const cJSON *j, api_job *job)
{
	const char *ret_fmt, *fmt;
	vx_format f1 = VX_FMT_WAV, f2 = VX_FMT_WAV;
	bool has1 = false;
	if (vx_json_string(j, "return_format", NULL, SIZE_MAX, &ret_fmt) < 0 ||
	    vx_json_string(j, "format", NULL, SIZE_MAX, &fmt) < 0) {
		vx_req_error(req, 400, "invalid_type",
			     "\"return_format\" and \"format\" are strings");
		return -EINVAL;
	}
	if (ret_fmt && !strcasecmp(ret_fmt, "base64")) {
		job->base64 = true;
	} else if (ret_fmt) {
		if (vx_format_from_name(ret_fmt, &f1) < 0) {
			vx_req_error(req, 400, "bad_format",
				     "return_format is wav, pcm or base64 "
				     "(or flac, opus, mp3, mulaw, alaw)");
			return -EINVAL;
		}
		has1 = true;
	}
	if (fmt && vx_format_from_name(fmt, &f2) < 0) {
		vx_req_error(req, 400, "bad_format",
			     "format is wav, pcm, flac, opus, mp3, mulaw or alaw");
		return -EINVAL;
	}
	if (fmt && has1 && f1 != f2) {
		vx_req_error(req, 400, "bad_format",
			     "return_format \"%s\" and format \"%s\" disagree",
			     ret_fmt, fmt);
		return -EINVAL;
	}
	job->format = fmt ? f2 : f1;
	return 0;
}

static api_job *api_job_new(vx_req *req, tts_service *svc, bool openai)
{
	api_job *job = calloc(1, sizeof(*job));
	if (!job) {
		vx_req_error_param(req, 500, "out_of_memory", NULL, "out of memory");
		return NULL;
	}
	job->svc = svc;
	job->openai = openai;
	job->format = VX_FMT_WAV;
	return job;
}

/* ---- POST /synthesize ---- */

static void handle_synthesize(vx_req *req, void *user)
{
	tts_service *svc = user;
	cJSON *j = NULL;
	if (api_body(req, false, &j) < 0)
		return;
	api_job *job = api_job_new(req, svc, false);
	const char *voice;
	if (!job)
		goto out_free_json;
	if (vx_json_string(j, "voice", NULL, SIZE_MAX, &voice) < 0) {
		vx_req_error(req, 400, "invalid_type", "\"voice\" must be a string");
		goto out_free_job;
	}
	if (api_text_voice(req, svc, false, j, "text", voice, job) < 0 ||
	    api_formats(req, j, job) < 0)
		goto out_free_job;
	if (vx_json_number(j, "speed", 1.0, TTS_SPEED_MIN, TTS_SPEED_MAX,
			   &job->speed) < 0) {
		vx_req_error(req, 400, "bad_speed", "speed is a number from %.2f to %.1f",
			     TTS_SPEED_MIN, TTS_SPEED_MAX);
		goto out_free_job;
	}
	if (vx_json_int(j, "sample_rate", 0, TTS_RATE_MIN, TTS_RATE_MAX,
			&job->out_rate) < 0) {
		vx_req_error(req, 400, "bad_sample_rate",
			     "sample_rate is an integer from %d to %d",
			     TTS_RATE_MIN, TTS_RATE_MAX);
		goto out_free_job;
	}
	cJSON_Delete(j);
	api_submit(req, job);
	return;
out_free_job:
	api_job_free(job);
out_free_json:
	cJSON_Delete(j);
}

/* ---- POST /v1/audio/speech ---- */

static void handle_speech(vx_req *req, void *user)
{
	tts_service *svc = user;
	cJSON *j = NULL;
	if (api_body(req, true, &j) < 0)
		return;
	api_job *job = api_job_new(req, svc, true);
	const char *voice = NULL, *model, *fmt;
	if (!job)
		goto out_free_json;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "voice");
	if (cJSON_IsObject(v))   /* newer API: {"id": "..."} */
		v = cJSON_GetObjectItemCaseSensitive(v, "id");
	if (v && !cJSON_IsNull(v) && !cJSON_IsString(v)) {
		vx_req_error_param(req, 400, "invalid_type", "voice",
			  "\"voice\" must be a string");
		goto out_free_job;
	}
	voice = cJSON_IsString(v) ? v->valuestring : NULL;
	if (vx_json_string(j, "model", NULL, SIZE_MAX, &model) < 0) {
		vx_req_error_param(req, 400, "invalid_type", "model",
			  "\"model\" must be a string");
		goto out_free_job;
	}
	if (api_text_voice(req, svc, true, j, "input", voice, job) < 0)
		goto out_free_job;
	if (vx_json_string(j, "response_format", NULL, SIZE_MAX, &fmt) < 0) {
		vx_req_error_param(req, 400, "invalid_type", "response_format",
			  "\"response_format\" must be a string");
		goto out_free_job;
	}
	job->format = VX_FMT_MP3;
	if (fmt && !strcasecmp(fmt, "aac")) {
		vx_req_error_param(req, 400, "unsupported_format", "response_format",
			  "aac is not supported here; use mp3, opus, flac, wav or pcm");
		goto out_free_job;
	}
	if (fmt && (vx_format_from_name(fmt, &job->format) < 0 ||
		    job->format == VX_FMT_MULAW || job->format == VX_FMT_ALAW)) {
		vx_req_error_param(req, 400, "invalid_value", "response_format",
			  "response_format is mp3, opus, flac, wav or pcm");
		goto out_free_job;
	}
	if (vx_json_number(j, "speed", 1.0, TTS_SPEED_MIN, TTS_SPEED_MAX,
			   &job->speed) < 0) {
		vx_req_error_param(req, 400, "invalid_value", "speed",
			  "speed is a number from 0.25 to 4.0");
		goto out_free_job;
	}
	job->out_rate = TTS_OPENAI_RATE;
	cJSON_Delete(j);
	api_submit(req, job);
	return;
out_free_job:
	api_job_free(job);
out_free_json:
	cJSON_Delete(j);
}

/* ---- GET /voices ---- */

static void handle_voices(vx_req *req, void *user)
{
	tts_service *svc = user;
	const char *engine = vx_req_query(req, "engine");
	const char *lang = vx_req_query(req, "language");
	tts_backend *only = NULL;
	if (engine && *engine && !(only = tts_synth_backend(svc, engine))) {
		vx_req_error(req, 400, "unknown_engine",
			     "engine '%.32s' is not loaded", engine);
		return;
	}
	vx_buf b = {0};
	bool first = true;
	vx_buf_puts(&b, "{\"voices\":[");
	for (size_t i = 0; i < svc->n_backends; i++) {
		const tts_backend *be = &svc->backends[i];
		if (only && be != only)
			continue;
		for (size_t k = 0; k < be->n_voices; k++) {
			const tts_voice *v = &be->voices[k];
			if (lang && *lang && (!v->language ||
			    strncasecmp(v->language, lang, strlen(lang))))
				continue;
			vx_buf_puts(&b, first ? "{\"name\":" : ",{\"name\":");
			first = false;
			vx_buf_json_str(&b, v->name, strlen(v->name));
			vx_buf_puts(&b, ",\"language\":");
			if (v->language)
				vx_buf_json_str(&b, v->language, strlen(v->language));
			else
				vx_buf_puts(&b, "null");
			vx_buf_puts(&b, ",\"gender\":");
			if (v->gender)
				vx_buf_json_str(&b, v->gender, strlen(v->gender));
			else
				vx_buf_puts(&b, "null");
			vx_buf_printf(&b, ",\"sample_rate\":%d,\"engine\":\"%s\"}",
				      v->sample_rate, be->name);
		}
	}
	vx_buf_puts(&b, "],\"default\":");
	vx_buf_json_str(&b, svc->default_target.voice,
			strlen(svc->default_target.voice));
	vx_buf_puts(&b, "}\n");
	vx_req_reply_buf(req, 200, "application/json", &b);
}

/* ---- tables, /info, /healthz ---- */

const vx_route tts_routes[] = {
	{ "POST", "/synthesize", handle_synthesize, API_MAX_BODY, false, false },
	{ "POST", "/v1/audio/speech", handle_speech, API_MAX_BODY, false, false },
	{ "GET", "/voices", handle_voices, 0, false, false },
};
const size_t tts_n_routes = sizeof(tts_routes) / sizeof(tts_routes[0]);

static void api_engines_json(const tts_service *svc, vx_buf *out)
{
	vx_buf_puts(out, "\"engines\":[");
	for (size_t i = 0; i < svc->n_backends; i++)
		vx_buf_printf(out, "%s\"%s\"", i ? "," : "", svc->backends[i].name);
	vx_buf_puts(out, "],\"voice\":");
	vx_buf_json_str(out, svc->default_target.voice,
			strlen(svc->default_target.voice));
}

void tts_service_info(void *user, vx_buf *out)
{
	tts_service *svc = user;
	size_t n = 0;
	vx_buf_puts(out, ",\"engine\":\"");
	vx_buf_puts(out, svc->default_target.be->name);
	vx_buf_puts(out, "\",");
	api_engines_json(svc, out);
	for (size_t i = 0; i < svc->n_backends; i++)
		n += svc->backends[i].n_voices;
	vx_buf_printf(out, ",\"voices\":%zu,\"formats\":[\"wav\",\"pcm\","
		      "\"flac\",\"opus\",\"mp3\",\"mulaw\",\"alaw\"],"
		      "\"sample_rates\":{\"min\":%d,\"max\":%d},"
		      "\"max_text_chars\":%d,\"workers\":%d",
		      n, TTS_RATE_MIN, TTS_RATE_MAX, svc->max_text_chars,
		      svc->d.workers);
}

vx_health tts_service_health(void *user, vx_buf *extra, char *detail,
			     size_t detail_len)
{
	tts_service *svc = user;
	vx_pool_stats ps;
	vx_pool_get_stats(svc->pool, &ps);
	vx_buf_printf(extra, ",\"engine\":\"%s\",", svc->default_target.be->name);
	api_engines_json(svc, extra);
	vx_buf_printf(extra, ",\"jobs\":%d,\"capacity\":%d",
		      ps.busy + ps.queued, ps.workers + ps.queue_max);
	if (ps.busy >= ps.workers && ps.queued >= ps.queue_max) {
		snprintf(detail, detail_len, "all %d workers busy, queue full",
			 ps.workers);
		return VX_HEALTH_OVERLOADED;
	}
	return VX_HEALTH_OK;
}
