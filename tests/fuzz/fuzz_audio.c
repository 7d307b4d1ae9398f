/*
 * fuzz_audio.c - vx_audio_decode (what every service does with an uploaded
 * body: libsndfile from memory for wav/flac/ogg/aiff/mp3..., or headerless
 * PCM16 / G.711) and then vx_audio_convert to 16 kHz mono, as STT and VAD
 * do.
 *
 * Input: byte 0 picks how to read the body (0-3: AUTO, i.e. sniff the
 * container, most of the time; 4: PCM16, 5: mu-law, 6: A-law, 7: a MIME
 * type given in the body's first line), byte 1 the rate and channels of a
 * headerless read; the rest is the body. max_frames is kept small (10 s at
 * 48 kHz) so a claim of hours is refused, not decoded. Checked: success
 * gives frames within max_frames, a sane rate and channel count and
 * data; failure leaves the output untouched (zeroed).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vx_audio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FRAMES (48000 * 10)

static volatile int64_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	static const int rates[4] = { 8000, 16000, 44100, 999 };
	vx_audio_in in = { .encoding = VX_ENC_AUTO,
			   .rate = rates[data[1] & 3],
			   .channels = (data[1] >> 2) & 3 };
	const uint8_t *body = data + 2;
	size_t len = size - 2;
	switch (data[0] & 7) {
	case 4: in.encoding = VX_ENC_PCM16; break;
	case 5: in.encoding = VX_ENC_MULAW; break;
	case 6: in.encoding = VX_ENC_ALAW; break;
	case 7: {
		const uint8_t *nl = memchr(body, '\n', len < 200 ? len : 200);
		if (!nl)
			return 0;
		char mime[201];
		memcpy(mime, body, (size_t)(nl - body));
		mime[nl - body] = '\0';
		if (vx_audio_in_from_mime(mime, &in) != 0)
			return 0;
		len -= (size_t)(nl - body) + 1;
		body = nl + 1;
		break;
	}
	default: break;
	}
	vx_pcm pcm = {0};
	int r = vx_audio_decode(body, len, &in, MAX_FRAMES, &pcm);
	if (r != 0) {
		if (pcm.data || pcm.frames || pcm.rate || pcm.channels)
			abort();
		return 0;
	}
	if (!pcm.data || pcm.frames == 0 || pcm.frames > MAX_FRAMES ||
	    pcm.channels < 1 || pcm.channels > VX_AUDIO_MAX_CHANNELS ||
	    pcm.rate < VX_AUDIO_MIN_RATE || pcm.rate > VX_AUDIO_MAX_RATE)
		abort();
	/* the samples are all there (ASan sees a short buffer) */
	int64_t sum = 0;
	for (size_t i = 0; i < pcm.frames * (size_t)pcm.channels; i++)
		sum += pcm.data[i];
	sink += sum;
	/* keep conversion cheap: only short clips */
	if (pcm.frames <= 48000 && vx_audio_convert(&pcm, 16000, 1) == 0 &&
	    (pcm.rate != 16000 || pcm.channels != 1))
		abort();
	vx_pcm_release(&pcm);
	return 0;
}
