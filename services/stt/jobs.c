/*
 * jobs.c - voxline-stt's NATS job (docs/jobs.md): the audio and the
 * "request" fields of POST /transcribe (language, prompt) through the same
 * core (stt_run, stt_error_map, stt_transcript_json).
 */
#include <errno.h>
#include <string.h>

#include "stt_service.h"
#include "vx_jobs.h"
#include "vx_json.h"

void stt_jobs_run(void *user, const vx_job *job, vx_job_result *res)
{
	stt_service *svc = user;
	const char *lang = NULL, *prompt = NULL;
	if (vx_json_string(job->request, "language", NULL, 64, &lang) < 0 ||
	    vx_json_string(job->request, "prompt", NULL, 4096, &prompt) < 0) {
		vx_job_fail(res, 400, "invalid_type",
			    "\"language\" and \"prompt\" are strings");
		return;
	}
	stt_options opt = {
		.language = lang && *lang ? lang : svc->language,
		.prompt = prompt,
		.request_id = job->id,
	};
	vx_pcm pcm = {0};
	if (vx_job_audio(job, STT_RATE, svc->max_audio_s, &pcm, res) < 0)
		return;
	stt_outcome o;
	int r = stt_run(svc, pcm.data, pcm.frames, &opt, job->cancel, &o);
	if (r < 0) {
		stt_http_error e;
		stt_error_map(svc, r, &e);
		vx_job_fail(res, e.status, e.code, "%s", e.message);
	} else {
		stt_transcript_json(svc, &o, &res->json);
		stt_result_release(&o.r);
	}
	vx_pcm_release(&pcm);
}
