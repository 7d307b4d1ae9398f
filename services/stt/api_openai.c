/*
 * api_openai.c - POST /v1/audio/transcriptions and /v1/audio/translations,
 * answered as the OpenAI API does: multipart fields file (required), model
 * (accepted and echoed in the OpenAI-Model header; the daemon's engine
 * decides), language (transcriptions; "auto" = detect), prompt, temperature
 * (0..1; whisper: the first try, failing windows fall back 0.2 hotter up to
 * 1.0; pocketsphinx ignores it) and response_format json | text |
 * verbose_json | srt | vtt; voxline's extensions temperature_inc (0 = no
 * fallback) and beam_size (1..8) as in stt_decode_options. Translations
 * (into English) need an engine that can translate (whisper) and a
 * multilingual model: else 400 translation_unsupported. verbose_json
 * reports the language the engine used or detected, and per segment the
 * whisper engine's temperature, avg_logprob, compression_ratio and
 * no_speech_prob (constants for other engines). Errors are OpenAI's shape:
 * {"error":{"message","type","param","code"}}.
 *
 * Subtitles and verbose_json want phrases, while pocketsphinx gives one
 * segment a word: one-word segments are joined into phrases, cut at a pause
 * of STT_PHRASE_GAP_MS or when a phrase reaches STT_PHRASE_MAX_MS; an
 * engine that cuts phrases itself (stt_result.phrases) is taken as it is.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "stt_service.h"
#include "vx_log.h"
#include "vx_reqbody.h"

#define STT_PHRASE_GAP_MS 400     /* a pause this long starts a new phrase */
#define STT_PHRASE_MAX_MS 8000    /* longest phrase built from words */
#define STT_MODEL_NAME_MAX 128    /* bytes of a model name echoed back */

typedef enum oa_format { OA_JSON, OA_TEXT, OA_VERBOSE, OA_SRT, OA_VTT } oa_format;

static const char *const oa_format_names[] = { "json", "text", "verbose_json",
					       "srt", "vtt" };

static const char *const oa_language_names[][2] = {
	{ "en", "english" }, { "es", "spanish" }, { "fr", "french" },
	{ "de", "german" }, { "it", "italian" }, { "pt", "portuguese" },
	{ "nl", "dutch" }, { "ru", "russian" }, { "zh", "chinese" },
	{ "ja", "japanese" }, { "ko", "korean" }, { "pl", "polish" },
};

typedef struct oa_phrase {
	int64_t start_ms, end_ms;
	size_t first, last;       /* segments joined, inclusive */
} oa_phrase;

static const char *oa_language_name(const char *code)
{
	for (size_t i = 0; i < sizeof(oa_language_names) / sizeof(oa_language_names[0]); i++)
		if (!strcasecmp(oa_language_names[i][0], code))
			return oa_language_names[i][1];
	return code;
}

/* Groups segments into phrases; returns how many (<= n_segments, or 1 for
 * a text without segments). Caller frees *ret. */
static size_t oa_phrases(const stt_outcome *o, oa_phrase **ret)
{
	const stt_result *r = &o->r;
	size_t n = 0;
	oa_phrase *p = calloc(r->n_segments ? r->n_segments : 1, sizeof(*p));
	*ret = p;
	if (!p)
		return 0;
	if (!r->n_segments) {
		if (!*r->text)
			return 0;
		p[0] = (oa_phrase){ 0, (int64_t)o->audio_ms, 0, 0 };
		return 1;
	}
	for (size_t i = 0; i < r->n_segments; i++) {
		const stt_segment *s = &r->segments[i];
		bool word = !strchr(s->text, ' ');
		oa_phrase *cur = n ? &p[n - 1] : NULL;
		bool cur_words = cur && cur->first == cur->last ?
			!strchr(r->segments[cur->first].text, ' ') : cur != NULL;
		if (cur && word && cur_words && !r->phrases &&
		    s->start_ms - cur->end_ms < STT_PHRASE_GAP_MS &&
		    s->end_ms - cur->start_ms <= STT_PHRASE_MAX_MS) {
			cur->end_ms = s->end_ms;
			cur->last = i;
			continue;
		}
		p[n++] = (oa_phrase){ s->start_ms, s->end_ms, i, i };
	}
	return n;
}

static void oa_phrase_text(const stt_outcome *o, const oa_phrase *ph, vx_buf *out)
{
	if (!o->r.n_segments) {
		vx_buf_puts(out, o->r.text);
		return;
	}
	for (size_t i = ph->first; i <= ph->last; i++)
		vx_buf_printf(out, "%s%s", i > ph->first ? " " : "",
			      o->r.segments[i].text);
}

/* "HH:MM:SS,mmm" (srt) or "HH:MM:SS.mmm" (vtt). */
static void oa_timestamp(vx_buf *out, int64_t ms, char sep)
{
	vx_buf_printf(out, "%02lld:%02lld:%02lld%c%03lld",
		      (long long)(ms / 3600000), (long long)(ms / 60000 % 60),
		      (long long)(ms / 1000 % 60), sep, (long long)(ms % 1000));
}

static void oa_render(const stt_outcome *o, oa_format f, bool translate, vx_buf *b,
		      const char **ret_type)
{
	oa_phrase *ph = NULL;
	size_t n = 0;
	if (f == OA_VERBOSE || f == OA_SRT || f == OA_VTT)
		n = oa_phrases(o, &ph);
	vx_buf text = {0};
	*ret_type = f == OA_VTT ? "text/vtt; charset=utf-8" :
		    f == OA_JSON || f == OA_VERBOSE ? "application/json" :
		    "text/plain; charset=utf-8";
	switch (f) {
	case OA_JSON:
		vx_buf_puts(b, "{\"text\":");
		vx_buf_json_str(b, o->r.text, strlen(o->r.text));
		vx_buf_puts(b, "}\n");
		return;
	case OA_TEXT:
		vx_buf_printf(b, "%s\n", o->r.text);
		return;
	case OA_VERBOSE:
		vx_buf_printf(b, "{\"task\":\"%s\",\"language\":",
			      translate ? "translate" : "transcribe");
		const char *lang = oa_language_name(translate ? "en" : o->language);
		vx_buf_json_str(b, lang, strlen(lang));
		if (o->r.language_prob > 0)
			vx_buf_printf(b, ",\"language_probability\":%.6f", o->r.language_prob);
		vx_buf_printf(b, ",\"duration\":%.3f,\"text\":", o->audio_ms / 1000.0);
		vx_buf_json_str(b, o->r.text, strlen(o->r.text));
		vx_buf_puts(b, ",\"segments\":[");
		for (size_t i = 0; i < n; i++) {
			vx_buf_reset(&text);
			oa_phrase_text(o, &ph[i], &text);
			vx_buf_printf(b, "%s{\"id\":%zu,\"seek\":0,\"start\":%.3f,"
				      "\"end\":%.3f,\"text\":", i ? "," : "", i,
				      ph[i].start_ms / 1000.0, ph[i].end_ms / 1000.0);
			vx_buf_json_str(b, text.data ? text.data : "", text.len);
			const stt_segment *sg = o->r.n_segments ? &o->r.segments[ph[i].first] : NULL;
			if (o->r.decoded && sg)
				vx_buf_printf(b, ",\"tokens\":[],\"temperature\":%.1f,"
					      "\"avg_logprob\":%.6f,\"compression_ratio\":%.6f,"
					      "\"no_speech_prob\":%.6f}", sg->temperature,
					      sg->avg_logprob, sg->compression_ratio,
					      sg->no_speech_prob);
			else
				vx_buf_puts(b, ",\"tokens\":[],\"temperature\":0.0,"
					    "\"avg_logprob\":0.0,\"compression_ratio\":1.0,"
					    "\"no_speech_prob\":0.0}");
		}
		vx_buf_puts(b, "]}\n");
		break;
	case OA_SRT:
	case OA_VTT:
		if (f == OA_VTT)
			vx_buf_puts(b, "WEBVTT\n\n");
		for (size_t i = 0; i < n; i++) {
			if (f == OA_SRT)
				vx_buf_printf(b, "%zu\n", i + 1);
			oa_timestamp(b, ph[i].start_ms, f == OA_SRT ? ',' : '.');
			vx_buf_puts(b, " --> ");
			oa_timestamp(b, ph[i].end_ms, f == OA_SRT ? ',' : '.');
			vx_buf_puts(b, "\n");
			oa_phrase_text(o, &ph[i], b);
			vx_buf_puts(b, "\n\n");
		}
		break;
	}
	vx_buf_release(&text);
	free(ph);
}

/* The "file" field as 16 kHz mono; answers and fails on error. */
static int oa_audio(vx_req *req, stt_service *svc, vx_pcm *ret)
{
	const vx_form_field *f;
	int r = vx_req_form(req, "file", &f);
	if (r == -EMEDIUMTYPE) {
		vx_req_error_param(req, 415, "unsupported_media_type", NULL,
			 "send multipart/form-data with the audio in field 'file'");
		return r;
	}
	if (r == -ENOENT || (r == 0 && !f->len)) {
		vx_req_error_param(req, 400, "missing_file", "file",
			 "a non-empty 'file' field is required");
		return -EINVAL;
	}
	if (r < 0) {
		vx_req_error_param(req, 400, "bad_multipart", NULL,
			 "malformed multipart/form-data body");
		return r;
	}
	vx_audio_in in = { .encoding = VX_ENC_AUTO };
	if (f->content_type && vx_audio_in_from_mime(f->content_type, &in) < 0)
		in = (vx_audio_in){ .encoding = VX_ENC_AUTO };
	if (in.encoding != VX_ENC_AUTO && in.rate <= 0) {
		vx_req_error_param(req, 400, "missing_sample_rate", "file",
			 "headerless audio needs audio/L16;rate=N");
		return -EINVAL;
	}
	double src_rate = in.rate > 0 ? in.rate : 48000;
	vx_pcm pcm = {0};
	r = vx_audio_decode(f->data, f->len, &in,
			    (size_t)(svc->max_audio_s * src_rate) + 1, &pcm);
	if (r == 0 && (double)pcm.frames / pcm.rate > svc->max_audio_s)
		r = -E2BIG;
	if (r == 0)
		r = vx_audio_convert(&pcm, STT_RATE, 1);
	if (r == -E2BIG) {
		vx_req_error_param(req, 413, "audio_too_long", "file",
				   "audio is longer than the limit of %d s",
				   svc->max_audio_s);
	} else if (r < 0) {
		vx_req_error_param(req, 400, "bad_audio", "file",
			 "the file could not be decoded as audio (truncated, "
			 "corrupt or an unsupported format)");
	}
	if (r < 0) {
		vx_pcm_release(&pcm);
		return r;
	}
	*ret = pcm;
	return 0;
}

static void openai_job(vx_req *req, void *arg)
{
	stt_service *svc = arg;
	const char *fmt = vx_reqbody_param(req, "response_format");
	oa_format f = OA_JSON;
	if (fmt && *fmt) {
		size_t i = 0;
		while (i < 5 && strcmp(fmt, oa_format_names[i]))
			i++;
		if (i == 5) {
			vx_req_error_param(req, 400, "invalid_value", "response_format",
				 "response_format must be json, text, "
				 "verbose_json, srt or vtt");
			return;
		}
		f = (oa_format)i;
	}
	const char *model = vx_reqbody_param(req, "model");
	char model_hdr[STT_MODEL_NAME_MAX];
	snprintf(model_hdr, sizeof(model_hdr), "%s",
		 model && *model && !strpbrk(model, "\r\n") ? model : svc->model_name);
	bool translate = strstr(vx_req_path(req), "/translations") != NULL;
	const char *lang = vx_reqbody_param(req, "language");
	stt_options opt = {
		.language = translate ? "auto" : lang && *lang ? lang : svc->language,
		.prompt = vx_reqbody_param(req, "prompt"),
		.request_id = vx_req_id(req),
	};
	if (stt_decode_options(req, &opt) < 0)
		return;
	opt.translate |= translate;
	if (!stt_can_translate(req, svc, &opt))
		return;
	vx_pcm pcm = {0};
	if (oa_audio(req, svc, &pcm) < 0)
		return;
	stt_outcome o;
	int r = stt_run(svc, pcm.data, pcm.frames, &opt, vx_req_cancelled(req), &o);
	vx_pcm_release(&pcm);
	if (r < 0) {
		stt_http_error e;
		stt_error_map(svc, r, &e);
		if (r == -ENOTSUP && opt.translate) {
			e.code = "translation_unsupported";
			snprintf(e.message, sizeof(e.message), "the model (%s) is "
				 "English-only: it cannot translate", svc->model_name);
			vx_req_error_param(req, 400, e.code, "model", "%s", e.message);
			return;
		}
		vx_log_warn(vx_req_id(req), "transcription (model %s): %s (%s)",
			    model_hdr, e.code, strerror(-r));
		vx_req_error_param(req, e.status, e.code,
				   e.status == 400 ? "language" : NULL, "%s",
				   e.message);
		return;
	}
	vx_buf b = {0};
	const char *ctype;
	oa_render(&o, f, opt.translate, &b, &ctype);
	vx_req_add_header(req, "OpenAI-Model", model_hdr);
	vx_req_reply_buf(req, 200, ctype, &b);
	stt_result_release(&o.r);
}

void stt_openai_handle(vx_req *req, void *user)
{
	stt_service *svc = user;
	vx_req_run(req, svc->pool, openai_job, svc);
}
