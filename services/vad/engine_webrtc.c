/*
 * engine_webrtc.c - the WebRTC GMM VAD (from libwebrtc-audio-processing).
 *
 * Debian's libwebrtc_audio_processing.so.1 (0.3) exports the C VAD but
 * ships no header for it, so the prototypes are declared here; they match
 * webrtc/common_audio/vad/include/webrtc_vad.h of that release (Create
 * returns the instance; Process takes a size_t frame length). Modes 0..3
 * are the aggressiveness levels.
 */
#include "vad_engine.h"

#include <errno.h>
#include <stdlib.h>

typedef struct WebRtcVadInst VadInst;

VadInst *WebRtcVad_Create(void);
void WebRtcVad_Free(VadInst *handle);
int WebRtcVad_Init(VadInst *handle);
int WebRtcVad_set_mode(VadInst *handle, int mode);
int WebRtcVad_Process(VadInst *handle, int fs, const int16_t *audio_frame,
		      size_t frame_length);

static int webrtc_create(const vad_config *cfg, void **ret_state)
{
	VadInst *v;
	int r = -EINVAL;

	if (!cfg || cfg->aggressiveness < 0 ||
	    cfg->aggressiveness > VAD_AGGRESSIVENESS_MAX)
		return -EINVAL;
	v = WebRtcVad_Create();
	if (!v)
		return -ENOMEM;
	if (WebRtcVad_Init(v) != 0)
		goto out_free_vad;
	if (WebRtcVad_set_mode(v, cfg->aggressiveness) != 0)
		goto out_free_vad;
	*ret_state = v;
	return 0;

out_free_vad:
	WebRtcVad_Free(v);
	return r;
}

static void webrtc_destroy(void *state)
{
	if (state)
		WebRtcVad_Free(state);
}

static int webrtc_process(void *state, const int16_t *pcm, size_t n)
{
	int r;

	if (!state || !pcm || !vad_frame_valid(n))
		return -EINVAL;
	r = WebRtcVad_Process(state, VAD_RATE, pcm, n);
	if (r < 0)
		return -EINVAL;
	return r > 0;
}

const vad_engine_ops vad_engine_webrtc = {
	.name = "webrtc",
	.description = "WebRTC GMM VAD (libwebrtc-audio-processing), modes 0-3",
	.create = webrtc_create,
	.destroy = webrtc_destroy,
	.process = webrtc_process,
};
