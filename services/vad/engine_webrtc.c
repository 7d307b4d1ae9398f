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

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

/* The library (and the libstdc++ it pulls in, about 1 MB resident) is
 * loaded on first use, so a daemon running the builtin engine never maps it. */
#define WEBRTC_LIB "libwebrtc_audio_processing.so.1"

typedef struct WebRtcVadInst VadInst;

static struct webrtc_api {
	VadInst *(*create)(void);
	void (*free)(VadInst *handle);
	int (*init)(VadInst *handle);
	int (*set_mode)(VadInst *handle, int mode);
	int (*process)(VadInst *handle, int fs, const int16_t *audio_frame,
		       size_t frame_length);
	int error;           /* 0 once loaded, -ENOENT when unavailable */
} api;

static pthread_once_t api_once = PTHREAD_ONCE_INIT;

static void api_load(void)
{
	void *h = dlopen(WEBRTC_LIB, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		api.error = -ENOENT;
		return;
	}
	*(void **)&api.create = dlsym(h, "WebRtcVad_Create");
	*(void **)&api.free = dlsym(h, "WebRtcVad_Free");
	*(void **)&api.init = dlsym(h, "WebRtcVad_Init");
	*(void **)&api.set_mode = dlsym(h, "WebRtcVad_set_mode");
	*(void **)&api.process = dlsym(h, "WebRtcVad_Process");
	if (!api.create || !api.free || !api.init || !api.set_mode ||
	    !api.process)
		api.error = -ENOENT;
}

static int webrtc_create(const vad_config *cfg, void **ret_state)
{
	VadInst *v;
	int r = -EINVAL;

	if (!cfg || cfg->aggressiveness < 0 ||
	    cfg->aggressiveness > VAD_AGGRESSIVENESS_MAX)
		return -EINVAL;
	pthread_once(&api_once, api_load);
	if (api.error)
		return api.error;
	v = api.create();
	if (!v)
		return -ENOMEM;
	if (api.init(v) != 0)
		goto out_free_vad;
	if (api.set_mode(v, cfg->aggressiveness) != 0)
		goto out_free_vad;
	*ret_state = v;
	return 0;

out_free_vad:
	api.free(v);
	return r;
}

static void webrtc_destroy(void *state)
{
	if (state)
		api.free(state);
}

static int webrtc_process(void *state, const int16_t *pcm, size_t n)
{
	int r;

	if (!state || !pcm || !vad_frame_valid(n))
		return -EINVAL;
	r = api.process(state, VAD_RATE, pcm, n);
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
