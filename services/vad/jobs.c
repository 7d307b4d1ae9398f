/*
 * jobs.c - voxline-vad's NATS job (docs/jobs.md): the audio, and POST
 * /detect's parameters as "request" fields, through the route's core
 * (vad_detect_json).
 */
#include <errno.h>
#include <string.h>

#include "vad_service.h"
#include "vx_jobs.h"
#include "vx_json.h"
#include "vx_time.h"

void vad_jobs_run(void *user, const vx_job *job, vx_job_result *res)
{
	vad_service *svc = user;
	const cJSON *q = job->request;
	vad_config vcfg = {0};
	vad_seg_config scfg = {0};
	double t0 = vx_now_ms();
	if (vx_json_int(q, "aggressiveness", svc->aggressiveness, 0, 3,
			&vcfg.aggressiveness) < 0 ||
	    vx_json_int(q, "min_speech_ms", svc->min_speech_ms, 0,
			VAD_SEG_MS_MAX, &scfg.min_speech_ms) < 0 ||
	    vx_json_int(q, "min_silence_ms", svc->min_silence_ms, 0,
			VAD_SEG_MS_MAX, &scfg.min_silence_ms) < 0 ||
	    vx_json_int(q, "pad_ms", svc->pad_ms, 0, VAD_SEG_MS_MAX,
			&scfg.pad_ms) < 0 ||
	    vx_json_int(q, "frame_ms", svc->frame_ms, 10, 30,
			&scfg.frame_ms) < 0 || scfg.frame_ms % 10) {
		vx_job_fail(res, 400, "bad_parameter", "aggressiveness 0-3, "
			    "min_speech_ms/min_silence_ms/pad_ms 0-%d, frame_ms "
			    "10, 20 or 30", VAD_SEG_MS_MAX);
		return;
	}
	vx_pcm pcm = {0};
	if (vx_job_audio(job, VAD_RATE, svc->max_audio_s, &pcm, res) < 0)
		return;
	int r = vad_detect_json(svc, &vcfg, &scfg, &pcm, t0, &res->json);
	if (r < 0)
		vx_job_fail(res, 500, "vad_failed", "detection failed: %s",
			    strerror(-r));
	vx_pcm_release(&pcm);
}
