/*
 * jobs.c - voxline-tts's NATS job (docs/jobs.md): POST /synthesize's JSON
 * body as "request" ({"text","voice","format","sample_rate","speed"}),
 * through the routes' core (tts_synth_check_text, tts_synth_resolve,
 * tts_synth_run); the audio comes back as the result's audio.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tts_service.h"
#include "vx_jobs.h"
#include "vx_json.h"

#define JOBS_MAX_AUDIO_S 900      /* audio seconds one job may make */

typedef struct jobs_collect {
	vx_buf pcm;                   /* int16 samples */
	size_t max_samples;
	const atomic_bool *cancel;
	bool too_long;
} jobs_collect;

static int jobs_collect_cb(void *user, const int16_t *pcm, size_t n)
{
	jobs_collect *c = user;
	if (atomic_load(c->cancel))
		return 1;
	if (c->pcm.len / 2 + n > c->max_samples) {
		c->too_long = true;
		return 1;
	}
	return vx_buf_append(&c->pcm, pcm, n * sizeof(*pcm)) < 0;
}

/* The request's fields; fails with res set. */
static int jobs_params(tts_service *svc, const cJSON *q, tts_target *t,
		       const char **ret_text, double *ret_speed, int *ret_rate,
		       vx_format *ret_fmt, const char **ret_fmt_name,
		       vx_job_result *res)
{
	const char *text = NULL, *voice = NULL, *fmt = NULL;
	if (vx_json_string(q, "text", NULL, SIZE_MAX, &text) < 0 || !text ||
	    vx_json_string(q, "voice", NULL, SIZE_MAX, &voice) < 0 ||
	    vx_json_string(q, "format", "wav", 16, &fmt) < 0) {
		vx_job_fail(res, 400, "invalid_type", "\"text\" is a string; "
			    "\"voice\" and \"format\" are strings when given");
		return -EINVAL;
	}
	int r = tts_synth_check_text(svc, text, strlen(text));
	if (r < 0) {
		vx_job_fail(res, r == -E2BIG ? 413 : 400, r == -E2BIG ?
			    "text_too_long" : r == -EILSEQ ? "invalid_utf8" :
			    "empty_text", "\"text\" is %s", r == -E2BIG ?
			    "too long" : r == -EILSEQ ? "not UTF-8" : "empty");
		return r;
	}
	if (tts_synth_resolve(svc, voice, t) < 0) {
		char some[256];
		tts_synth_some_voices(svc, some, sizeof(some));
		vx_job_fail(res, 400, "unknown_voice", "unknown voice '%.64s'; "
			    "voices: %s", voice, some);
		return -ENOENT;
	}
	if (vx_format_from_name(fmt, ret_fmt) < 0 || *ret_fmt == VX_FMT_OPUS) {
		vx_job_fail(res, 400, "bad_format",
			    "format is wav, pcm, flac, mp3, mulaw or alaw");
		return -EINVAL;
	}
	if (vx_json_number(q, "speed", 1.0, TTS_SPEED_MIN, TTS_SPEED_MAX,
			   ret_speed) < 0 ||
	    vx_json_int(q, "sample_rate", 0, TTS_RATE_MIN, TTS_RATE_MAX,
			ret_rate) < 0) {
		vx_job_fail(res, 400, "bad_parameter", "speed %.2f-%.1f, "
			    "sample_rate %d-%d", TTS_SPEED_MIN, TTS_SPEED_MAX,
			    TTS_RATE_MIN, TTS_RATE_MAX);
		return -EINVAL;
	}
	*ret_text = text;
	*ret_fmt_name = fmt;
	return 0;
}

void tts_jobs_run(void *user, const vx_job *job, vx_job_result *res)
{
	tts_service *svc = user;
	tts_target t;
	const char *text, *fmt_name;
	double speed;
	int out_rate;
	vx_format fmt;
	if (jobs_params(svc, job->request, &t, &text, &speed, &out_rate, &fmt,
			&fmt_name, res) < 0)
		return;
	jobs_collect c = { .cancel = job->cancel,
			   .max_samples = (size_t)JOBS_MAX_AUDIO_S * TTS_RATE_MAX };
	tts_synth_stats st;
	int r = tts_synth_run(svc, &t, text, speed, job->id, job->cancel,
			      jobs_collect_cb, &c, &st);
	if (c.too_long) {
		vx_job_fail(res, 422, "audio_too_long",
			    "the audio would be longer than %d s", JOBS_MAX_AUDIO_S);
	} else if (r < 0) {
		const char *code;
		int status = tts_synth_error_status(r, &code);
		vx_job_fail(res, status, code, "%s engine: %s", t.be->name,
			    strerror(-r));
	} else if (st.rate <= 0) {
		vx_job_fail(res, 500, "synthesis_failed",
			    "the engine reported no sample rate");
	}
	if (res->status)
		goto out_release;
	vx_pcm pcm = { .rate = st.rate, .channels = 1 };
	size_t len;
	pcm.data = (int16_t *)(void *)vx_buf_detach(&c.pcm, &len);
	pcm.frames = len / 2;
	int rate = out_rate ? out_rate : st.rate;
	r = 0;
	if (pcm.frames && rate != pcm.rate)
		r = vx_audio_convert(&pcm, rate, 1);
	pcm.rate = rate;
	if (r == 0)
		r = vx_audio_encode(pcm.data, pcm.frames, pcm.rate, 1, fmt,
				    &res->audio);
	if (r < 0) {
		vx_job_fail(res, r == -ENOTSUP ? 400 : 500, "encode_failed",
			    "cannot encode %s at %d Hz: %s", fmt_name, rate,
			    strerror(-r));
	} else {
		res->audio_format = fmt_name;
		vx_buf_printf(&res->json, "{\"format\":\"%s\",\"sample_rate\":%d,"
			      "\"duration_ms\":%lld,\"voice\":", fmt_name, pcm.rate,
			      (long long)(pcm.frames * 1000 / (size_t)pcm.rate));
		vx_buf_json_str(&res->json, t.voice, strlen(t.voice));
		vx_buf_printf(&res->json, ",\"engine\":\"%s\"}", t.be->name);
	}
	vx_pcm_release(&pcm);
out_release:
	vx_buf_release(&c.pcm);
}
