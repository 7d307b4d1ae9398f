/*
 * api.c - voxline-stt's HTTP side: POST /transcribe, the transcription
 * core the other routes share (engine call, timing, metrics, errors, the
 * decoding options), and the /healthz and /info callbacks. The route
 * tables are at the bottom.
 *
 * POST /transcribe takes, as query parameters or form fields: language
 * ("auto": the engine detects it, whisper multilingual models), prompt
 * (whisper: the initial prompt; remote engines pass it on), temperature
 * (0..1), temperature_inc (0..1, 0 = no fallback), beam_size (1..8) and
 * translate (true/false). Engines that cannot use an option ignore it
 * (pocketsphinx); translate on an engine that cannot translate is 400.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "stt_service.h"
#include "vx_log.h"
#include "vx_reqbody.h"
#include "vx_time.h"

#define STT_ERR_LABELS_MAX 96   /* bytes of an error counter's labels */

/* ---- the shared core ---- */

void stt_error_map(stt_service *svc, int err, stt_http_error *ret)
{
	bool remote = svc->engine->flags & VX_ENGINE_REMOTE;
	const char *kind;
	ret->status = 500;
	ret->code = "engine_failed";
	switch (err) {
	case -EBUSY:
		ret->status = 503, ret->code = "overloaded", kind = "busy";
		snprintf(ret->message, sizeof(ret->message),
			 "all %d decoders are busy; retry shortly", svc->d.workers);
		break;
	case -ENOTSUP:
		ret->status = 400, ret->code = "unsupported_language";
		kind = "language";
		snprintf(ret->message, sizeof(ret->message),
			 "engine %s does not know that language",
			 svc->engine->name);
		break;
	case -E2BIG:
		ret->status = 413, ret->code = "audio_too_long", kind = "too_long";
		snprintf(ret->message, sizeof(ret->message),
			 "audio is longer than the limit of %d s", svc->max_audio_s);
		break;
	case -ECANCELED:
		ret->status = 504, ret->code = "cancelled", kind = "cancelled";
		snprintf(ret->message, sizeof(ret->message),
			 "the request was cancelled (client left or deadline passed)");
		break;
	case -ECONNREFUSED:
		ret->status = 502, ret->code = "upstream_unavailable";
		kind = "upstream_down";
		snprintf(ret->message, sizeof(ret->message),
			 "the %s server at %s cannot be reached",
			 svc->engine->name, svc->url ? svc->url : "?");
		break;
	case -ETIMEDOUT:
		ret->status = 504, ret->code = "upstream_timeout";
		kind = "upstream_timeout";
		snprintf(ret->message, sizeof(ret->message),
			 "the %s server did not answer within %d s",
			 svc->engine->name, svc->timeout_s);
		break;
	case -EPROTO:
		ret->status = 502, ret->code = "upstream_error";
		kind = "upstream_error";
		snprintf(ret->message, sizeof(ret->message),
			 "the %s server answered with an error or not a "
			 "transcription", svc->engine->name);
		break;
	default:
		if (remote && err == -EIO)
			ret->status = 502, ret->code = "upstream_error";
		kind = "other";
		snprintf(ret->message, sizeof(ret->message),
			 "engine %s failed: %s", svc->engine->name,
			 strerror(err < 0 ? -err : EIO));
		break;
	}
	char labels[STT_ERR_LABELS_MAX];
	snprintf(labels, sizeof(labels), "engine=\"%s\",kind=\"%s\"",
		 svc->engine->name, kind);
	vx_counter_add(vx_metrics_counter(svc->metrics,
		"voxline_stt_engine_errors_total",
		"Engine failures by engine and kind", labels), 1);
}

void stt_observe(stt_service *svc, double audio_ms, double processing_ms)
{
	vx_histogram_observe(svc->audio_seconds, audio_ms / 1000.0);
	vx_histogram_observe(svc->processing_seconds, processing_ms / 1000.0);
	if (audio_ms > 0)
		vx_histogram_observe(svc->rtf, processing_ms / audio_ms);
}

int stt_run(stt_service *svc, const int16_t *pcm, size_t n,
	    const stt_options *opt, const atomic_bool *cancel, stt_outcome *ret)
{
	stt_outcome o = {0};
	double t0 = vx_now_ms();
	int r = svc->engine->transcribe(svc->eng, pcm, n, opt, cancel, &o.r);
	if (r < 0)
		return r;
	o.processing_ms = vx_now_ms() - t0;
	o.audio_ms = (double)n * 1000.0 / STT_RATE;
	o.language = o.r.language ? o.r.language :
		     opt->language && *opt->language ? opt->language : "en";
	stt_observe(svc, o.audio_ms, o.processing_ms);
	*ret = o;
	return 0;
}

void stt_segments_json(const stt_result *r, vx_buf *out)
{
	vx_buf_puts(out, "[");
	for (size_t i = 0; i < r->n_segments; i++) {
		const stt_segment *s = &r->segments[i];
		vx_buf_printf(out, "%s{\"start_ms\":%lld,\"end_ms\":%lld,\"text\":",
			      i ? "," : "", (long long)s->start_ms,
			      (long long)s->end_ms);
		vx_buf_json_str(out, s->text, strlen(s->text));
		vx_buf_puts(out, "}");
	}
	vx_buf_puts(out, "]");
}

void stt_transcript_json(const stt_service *svc, const stt_outcome *o,
			 vx_buf *b)
{
	vx_buf_puts(b, "{\"text\":");
	vx_buf_json_str(b, o->r.text, strlen(o->r.text));
	vx_buf_puts(b, ",\"language\":");
	vx_buf_json_str(b, o->language, strlen(o->language));
	if (o->r.language_prob > 0)
		vx_buf_printf(b, ",\"language_probability\":%.6f", o->r.language_prob);
	vx_buf_printf(b, ",\"duration_ms\":%.0f,\"segments\":", o->audio_ms);
	stt_segments_json(&o->r, b);
	vx_buf_printf(b, ",\"engine\":\"%s\",\"processing_ms\":%.1f}\n",
		      svc->engine->name, o->processing_ms);
}

/* A number in [lo, hi] from the whole of text. */
static bool parse_num(const char *text, double lo, double hi, double *ret)
{
	char *end;
	errno = 0;
	double v = strtod(text, &end);
	if (errno || end == text || *end || !isfinite(v) || v < lo || v > hi)
		return false;
	*ret = v;
	return true;
}

int stt_decode_options(vx_req *req, stt_options *opt)
{
	const char *t = vx_reqbody_param(req, "temperature");
	const char *ti = vx_reqbody_param(req, "temperature_inc");
	const char *b = vx_reqbody_param(req, "beam_size");
	const char *tr = vx_reqbody_param(req, "translate");
	double v;

	if (t && *t) {
		if (!parse_num(t, 0, 1, &v)) {
			vx_req_error_param(req, 400, "invalid_value", "temperature",
					   "temperature must be a number from 0 to 1");
			return -EINVAL;
		}
		opt->temperature = (float)v;
	}
	if (ti && *ti) {
		if (!parse_num(ti, 0, 1, &v)) {
			vx_req_error_param(req, 400, "invalid_value", "temperature_inc",
					   "temperature_inc must be a number from 0 to 1 "
					   "(0: no fallback)");
			return -EINVAL;
		}
		opt->temperature_inc = v > 0 ? (float)v : -1.0f;
	}
	if (b && *b) {
		if (!parse_num(b, 1, STT_BEAM_MAX, &v) || v != floor(v)) {
			vx_req_error_param(req, 400, "invalid_value", "beam_size",
					   "beam_size must be an integer from 1 to %d",
					   STT_BEAM_MAX);
			return -EINVAL;
		}
		opt->beam_size = (int)v;
	}
	if (tr && *tr) {
		bool yes = !strcasecmp(tr, "true") || !strcmp(tr, "1");
		if (!yes && strcasecmp(tr, "false") && strcmp(tr, "0")) {
			vx_req_error_param(req, 400, "invalid_value", "translate",
					   "translate must be true or false");
			return -EINVAL;
		}
		opt->translate = yes;
	}
	return 0;
}

bool stt_can_translate(vx_req *req, const stt_service *svc, const stt_options *opt)
{
	if (!opt->translate || svc->engine->can_translate)
		return true;
	vx_req_error_param(req, 400, "translation_unsupported", NULL,
			   "engine %s cannot translate; the whisper engine with a "
			   "multilingual model can", svc->engine->name);
	return false;
}

/* ---- POST /transcribe ---- */

static void transcribe_job(vx_req *req, void *arg)
{
	stt_service *svc = arg;
	const char *lang = vx_reqbody_param(req, "language");
	stt_options opt = {
		.language = lang && *lang ? lang : svc->language,
		.prompt = vx_reqbody_param(req, "prompt"),
		.request_id = vx_req_id(req),
	};
	if (stt_decode_options(req, &opt) < 0 || !stt_can_translate(req, svc, &opt))
		return;   /* answered */
	vx_pcm pcm = {0};
	if (vx_reqbody_audio(req, STT_RATE, svc->max_audio_s, &pcm) < 0)
		return;   /* answered */
	stt_outcome o;
	int r = stt_run(svc, pcm.data, pcm.frames, &opt, vx_req_cancelled(req), &o);
	if (r < 0) {
		stt_http_error e;
		stt_error_map(svc, r, &e);
		if (r == -ENOTSUP && opt.translate) {
			e.code = "translation_unsupported";
			snprintf(e.message, sizeof(e.message), "the model (%s) is "
				 "English-only and cannot translate (or does not "
				 "know that language)", svc->model_name);
		}
		vx_log_warn(vx_req_id(req), "transcribe: %s (%s)", e.code,
			    strerror(-r));
		vx_req_error(req, e.status, e.code, "%s", e.message);
		goto out_release;
	}
	vx_buf b = {0};
	stt_transcript_json(svc, &o, &b);
	vx_req_reply_buf(req, 200, "application/json", &b);
	vx_log_debug(vx_req_id(req), "transcribed %.0f ms in %.1f ms",
		     o.audio_ms, o.processing_ms);
	stt_result_release(&o.r);
out_release:
	vx_pcm_release(&pcm);
}

static void handle_transcribe(vx_req *req, void *user)
{
	stt_service *svc = user;
	vx_req_run(req, svc->pool, transcribe_job, svc);
}

/* ---- health and info ---- */

vx_health stt_service_health(void *user, vx_buf *extra, char *detail,
			     size_t detail_len)
{
	stt_service *svc = user;
	vx_pool_stats ps;
	vx_pool_get_stats(svc->pool, &ps);
	vx_buf_printf(extra, ",\"engine\":\"%s\",\"model\":", svc->engine->name);
	vx_buf_json_str(extra, svc->model_name, strlen(svc->model_name));
	vx_buf_printf(extra, ",\"workers\":%d,\"busy\":%d,\"queued\":%d,"
		      "\"capacity\":%d", ps.workers, ps.busy, ps.queued,
		      ps.workers + ps.queue_max);
	if (ps.busy + ps.queued >= ps.workers + ps.queue_max) {
		snprintf(detail, detail_len, "all %d workers busy and the queue "
			 "is full", ps.workers);
		return VX_HEALTH_OVERLOADED;
	}
	return VX_HEALTH_OK;
}

/* The engine's languages as a JSON array; ["auto"] when it takes any
 * (a remote server detects the language). */
static void api_languages_json(const char *langs, vx_buf *out)
{
	size_t n = 0;

	vx_buf_puts(out, "[");
	while (langs && *(langs += strspn(langs, " "))) {
		size_t len = strcspn(langs, " ");
		vx_buf_puts(out, n++ ? "," : "");
		vx_buf_json_str(out, langs, len);
		langs += len;
	}
	vx_buf_puts(out, n ? "]" : "\"auto\"]");
}

void stt_service_info(void *user, vx_buf *out)
{
	stt_service *svc = user;
	const vx_engine *e = &svc->engine->engine;
	bool streams = e->flags & VX_ENGINE_STREAMING;
	vx_buf_printf(out, ",\"engine\":\"%s\",\"engines\":[", e->name);
	for (size_t i = 0; stt_engines[i]; i++)
		vx_buf_printf(out, "%s\"%s\"", i ? "," : "", stt_engines[i]->name);
	vx_buf_puts(out, "],\"model\":");
	vx_buf_json_str(out, svc->model_name, strlen(svc->model_name));
	vx_buf_puts(out, ",\"languages\":");
	api_languages_json(e->languages, out);
	vx_buf_puts(out, ",\"default_language\":");
	vx_buf_json_str(out, svc->language, strlen(svc->language));
	vx_buf_printf(out, ",\"streaming_partials\":%s,\"sample_rate\":%d,"
		      "\"input_sample_rates\":\"%d-%d\","
		      "\"encodings\":[\"pcm16\",\"mulaw\",\"alaw\"],"
		      "\"response_formats\":[\"json\",\"text\",\"verbose_json\","
		      "\"srt\",\"vtt\"],\"max_audio_s\":%d,\"workers\":%d",
		      streams ? "true" : "false", STT_RATE, VX_AUDIO_MIN_RATE,
		      VX_AUDIO_MAX_RATE, svc->max_audio_s, svc->d.workers);
}

/* ---- tables ---- */

const vx_route stt_routes[] = {
	{ "POST", "/transcribe", handle_transcribe, 0, false, false },
	{ "POST", "/v1/audio/transcriptions", stt_openai_handle, 0, false, false },
	{ "POST", "/v1/audio/translations", stt_openai_handle, 0, false, false },
};
const size_t stt_n_routes = sizeof(stt_routes) / sizeof(stt_routes[0]);
