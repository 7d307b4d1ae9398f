/*
 * api.c - voxline-vad's routes: POST /detect (a whole file) and /ws/detect
 * (a live stream: speech_start / speech_end events as audio arrives).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vad_service.h"
#include "vx_json.h"
#include "vx_log.h"
#include "vx_pcmstream.h"
#include "vx_reqbody.h"
#include "vx_svcws.h"
#include "vx_time.h"

/* ---- POST /detect ---- */

typedef struct detect_params {
	vad_config vcfg;
	vad_seg_config scfg;
} detect_params;

static int read_params(vx_req *req, const vad_service *svc, detect_params *p)
{
	if (vx_reqbody_int(req, "aggressiveness", svc->aggressiveness, 0, 3,
			   &p->vcfg.aggressiveness) < 0 ||
	    vx_reqbody_int(req, "min_speech_ms", svc->min_speech_ms, 0,
			   VAD_SEG_MS_MAX, &p->scfg.min_speech_ms) < 0 ||
	    vx_reqbody_int(req, "min_silence_ms", svc->min_silence_ms, 0,
			   VAD_SEG_MS_MAX, &p->scfg.min_silence_ms) < 0 ||
	    vx_reqbody_int(req, "pad_ms", svc->pad_ms, 0, VAD_SEG_MS_MAX,
			   &p->scfg.pad_ms) < 0 ||
	    vx_reqbody_int(req, "frame_ms", svc->frame_ms, 10, 30,
			   &p->scfg.frame_ms) < 0)
		return -EINVAL;
	if (p->scfg.frame_ms % 10) {
		vx_req_error(req, 400, "bad_parameter",
			     "frame_ms must be 10, 20 or 30");
		return -EINVAL;
	}
	return 0;
}

int vad_detect_json(vad_service *svc, const vad_config *vcfg,
		    const vad_seg_config *scfg, const vx_pcm *pcm, double t0_ms,
		    vx_buf *b)
{
	vad_segments segs = {0};
	int r = vad_engine_detect(svc->engine, vcfg, scfg, pcm->data,
				  pcm->frames, &segs);
	if (r < 0)
		return r;
	vx_counter_add(svc->audio_seconds, pcm->frames / VAD_RATE);
	vx_counter_add(svc->segments, segs.n);
	vx_buf_printf(b, "{\"sample_rate\":%d,\"duration_ms\":%lld,"
		      "\"segments\":[", VAD_RATE, (long long)segs.duration_ms);
	for (size_t i = 0; i < segs.n; i++)
		vx_buf_printf(b, "%s{\"start_ms\":%lld,\"end_ms\":%lld}",
			      i ? "," : "", (long long)segs.v[i].start_ms,
			      (long long)segs.v[i].end_ms);
	vx_buf_printf(b, "],\"speech_ms\":%lld,\"engine\":\"%s\","
		      "\"processing_ms\":%.1f}\n", (long long)segs.speech_ms,
		      svc->engine->name, vx_now_ms() - t0_ms);
	vad_segments_release(&segs);
	return 0;
}

static void detect_job(vx_req *req, void *arg)
{
	vad_service *svc = arg;
	detect_params p = {0};
	if (read_params(req, svc, &p) < 0)
		return;
	vx_pcm pcm = {0};
	if (vx_reqbody_audio(req, VAD_RATE, svc->max_audio_s, &pcm) < 0)
		return;
	vx_buf b = {0};
	int r = vad_detect_json(svc, &p.vcfg, &p.scfg, &pcm,
				vx_now_ms() - vx_req_elapsed_ms(req), &b);
	if (r < 0)
		vx_req_error(req, 500, "vad_failed", "detection failed: %s",
			     strerror(-r));
	else
		vx_req_reply_buf(req, 200, "application/json", &b);
	vx_buf_release(&b);
	vx_pcm_release(&pcm);
}

static void handle_detect(vx_req *req, void *user)
{
	vad_service *svc = user;
	vx_req_run(req, svc->pool, detect_job, svc);
}

/* ---- /ws/detect: the work runs on the lws thread (microseconds a frame) ---- */

typedef struct ws_detect {
	vad_service *svc;
	void *engine_state;
	vad_segmenter seg;
	vad_seg_config scfg;
	vx_pcmstream in;             /* client audio -> 16 kHz PCM16 */
	int16_t frame[VAD_FRAME_MAX];
	size_t frame_fill;           /* samples in frame */
	size_t frame_len;            /* samples per frame */
	int64_t samples;             /* at 16 kHz, this round */
	vx_buf pcm;                  /* scratch: decoded 16 kHz samples */
} ws_detect;

static void ws_seg_event(void *user, vad_event ev, int64_t start_ms,
			 int64_t end_ms)
{
	vx_svcws_conn *cn = user;
	char msg[128];
	int n = ev == VAD_SPEECH_START ?
		snprintf(msg, sizeof(msg),
			 "{\"event\":\"speech_start\",\"start_ms\":%lld}",
			 (long long)start_ms) :
		snprintf(msg, sizeof(msg),
			 "{\"event\":\"speech_end\",\"start_ms\":%lld,\"end_ms\":%lld}",
			 (long long)start_ms, (long long)end_ms);
	vx_svcws_send_text(cn, msg, (size_t)n);
}

static void ws_reset_round(ws_detect *w)
{
	vad_segmenter_init(&w->seg, &w->scfg);
	w->frame_fill = 0;
	w->samples = 0;
}

static void ws_release_engine(void *state)
{
	ws_detect *w = state;
	if (w->engine_state)
		w->svc->engine->destroy(w->engine_state);
	w->engine_state = NULL;
	vx_pcmstream_release(&w->in);
}

/* Reads a whole config before using any of it: a refused one leaves the
 * socket as it was (-EINVAL). A failed engine start leaves it unconfigured. */
static int ws_configure(vx_svcws_conn *cn, void *state, const cJSON *j)
{
	ws_detect *w = state;
	vad_service *svc = w->svc;
	vad_config vcfg;
	vad_seg_config scfg = { .frame_ms = svc->frame_ms };
	vx_encoding encoding = VX_ENC_PCM16;
	int rate;
	const char *enc;
	if (vx_json_string(j, "encoding", NULL, SIZE_MAX, &enc) < 0 ||
	    (enc && vx_encoding_from_name(enc, &encoding) < 0)) {
		vx_svcws_error(cn, "bad_config", "encoding must be pcm16, mulaw or alaw");
		return -EINVAL;
	}
	if (vx_json_int(j, "sample_rate", VAD_RATE, 8000, 48000, &rate) < 0 ||
	    vx_json_int(j, "aggressiveness", svc->aggressiveness, 0, 3,
			&vcfg.aggressiveness) < 0 ||
	    vx_json_int(j, "min_speech_ms", svc->min_speech_ms, 0, VAD_SEG_MS_MAX,
			&scfg.min_speech_ms) < 0 ||
	    vx_json_int(j, "min_silence_ms", svc->min_silence_ms, 0, VAD_SEG_MS_MAX,
			&scfg.min_silence_ms) < 0 ||
	    vx_json_int(j, "pad_ms", svc->pad_ms, 0, VAD_SEG_MS_MAX,
			&scfg.pad_ms) < 0) {
		vx_svcws_error(cn, "bad_config",
			       "sample_rate 8000-48000, aggressiveness 0-3, "
			       "*_ms 0-10000");
		return -EINVAL;
	}
	ws_release_engine(w);
	w->scfg = scfg;
	w->frame_len = (size_t)svc->frame_ms * VAD_RATE / 1000;
	int r = svc->engine->create(&vcfg, &w->engine_state);
	if (r == 0)
		r = vx_pcmstream_init(&w->in, encoding, rate, VAD_RATE);
	if (r < 0) {
		vx_svcws_error(cn, "engine_failed", "cannot start: %s", strerror(-r));
		ws_release_engine(w);
		return r == -EINVAL ? -EIO : r;   /* unconfigured now */
	}
	ws_reset_round(w);
	char msg[160];
	int n = snprintf(msg, sizeof(msg),
			 "{\"event\":\"ready\",\"sample_rate\":%d,\"engine\":\"%s\","
			 "\"frame_ms\":%d}", rate, svc->engine->name,
			 svc->frame_ms);
	vx_svcws_send_text(cn, msg, (size_t)n);
	return 0;
}

/* Runs 16 kHz samples through the frame buffer and the detector. */
static void ws_feed16k(vx_svcws_conn *cn, ws_detect *w, const int16_t *pcm,
		       size_t n)
{
	for (size_t i = 0; i < n; i++) {
		w->frame[w->frame_fill++] = pcm[i];
		if (w->frame_fill < w->frame_len)
			continue;
		int speech = w->svc->engine->process(w->engine_state, w->frame,
						     w->frame_len);
		vad_segmenter_push_onset(&w->seg, speech > 0,
					 vad_engine_onset_ms(w->svc->engine,
							     w->engine_state),
					 ws_seg_event, cn);
		w->frame_fill = 0;
	}
	w->samples += (int64_t)n;
}

static void ws_end(vx_svcws_conn *cn, void *state)
{
	ws_detect *w = state;
	vx_buf_reset(&w->pcm);
	if (vx_pcmstream_flush(&w->in, &w->pcm) == 0 && w->pcm.data)
		ws_feed16k(cn, w, (const int16_t *)(void *)w->pcm.data,
			   w->pcm.len / 2);
	vad_segmenter_finish(&w->seg, ws_seg_event, cn);
	char msg[128];
	int n = snprintf(msg, sizeof(msg),
			 "{\"event\":\"done\",\"duration_ms\":%lld,\"speech_ms\":%lld}",
			 (long long)(w->samples / (VAD_RATE / 1000)),
			 (long long)w->seg.speech_ms);
	vx_svcws_send_text(cn, msg, (size_t)n);
	ws_reset_round(w);
}

static void ws_cancel(vx_svcws_conn *cn, void *state)
{
	ws_detect *w = state;
	(void)cn;
	vx_pcmstream_flush(&w->in, &w->pcm);   /* dropped */
	vx_buf_reset(&w->pcm);
	ws_reset_round(w);
}

static void ws_binary(vx_svcws_conn *cn, void *state, const void *data,
		      size_t len)
{
	ws_detect *w = state;
	if (w->samples / VAD_RATE > w->svc->max_audio_s) {
		vx_svcws_error(cn, "audio_too_long",
			       "over %d s of audio in one round", w->svc->max_audio_s);
		vx_svcws_close(cn, 1009, "audio too long");
		return;
	}
	vx_buf_reset(&w->pcm);
	if (vx_pcmstream_feed(&w->in, data, len, &w->pcm) == 0 && w->pcm.data)
		ws_feed16k(cn, w, (const int16_t *)(void *)w->pcm.data,
			   w->pcm.len / 2);
}

static void ws_init(vx_svcws_conn *cn, void *state)
{
	ws_detect *w = state;
	w->svc = vx_svcws_user(cn);
}

static void ws_release(void *state)
{
	ws_detect *w = state;
	ws_release_engine(w);
	vx_buf_release(&w->pcm);
}

static const vx_svcws_ops ws_ops = {
	.state_size = sizeof(ws_detect),
	.needs_config = true,
	.events = "config, end, cancel",
	.init = ws_init,
	.config = ws_configure,
	.end = ws_end,
	.cancel = ws_cancel,
	.binary = ws_binary,
	.release = ws_release,
};

static int ws_open(vx_wsconn *c, void *user, void **ret_state)
{
	return vx_svcws_open(c, &ws_ops, user, ret_state);
}

const vx_svcws_ops *vad_ws_ops(void) { return &ws_ops; }

/* ---- tables ---- */

const vx_route vad_routes[] = {
	{ "POST", "/detect", handle_detect, 0, false, false },
};
const size_t vad_n_routes = sizeof(vad_routes) / sizeof(vad_routes[0]);

const vx_ws_route vad_ws_routes[] = {
	{ "/ws/detect", ws_open, vx_svcws_on_text, vx_svcws_on_binary,
	  vx_svcws_on_close, false },
};
const size_t vad_n_ws_routes = sizeof(vad_ws_routes) / sizeof(vad_ws_routes[0]);

void vad_service_info(void *user, vx_buf *out)
{
	vad_service *svc = user;
	vx_buf_printf(out, ",\"engine\":\"%s\",\"engines\":[", svc->engine->name);
	for (size_t i = 0; vad_engines[i]; i++)
		vx_buf_printf(out, "%s\"%s\"", i ? "," : "", vad_engines[i]->name);
	vx_buf_printf(out, "],\"sample_rates\":[8000,16000,48000],"
		      "\"encodings\":[\"pcm16\",\"mulaw\",\"alaw\"],"
		      "\"aggressiveness\":%d,\"frame_ms\":%d,\"workers\":%d",
		      svc->aggressiveness, svc->frame_ms, svc->d.workers);
}
