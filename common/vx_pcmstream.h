/*
 * vx_pcmstream.h - headerless audio arriving in pieces (WebSocket frames)
 * turned into mono PCM16 at the rate an engine wants.
 *
 * Feeds may split a PCM16 sample across two messages: the odd byte is kept
 * for the next feed. G.711 mu-law and A-law are decoded; then the samples
 * are resampled (vx_resampler; equal rates pass through). Caller-owned
 * storage: init/release in pairs. Not thread-safe: one stream, one thread.
 *
 *     vx_pcmstream ps;
 *     vx_pcmstream_init(&ps, VX_ENC_MULAW, 8000, 16000);
 *     vx_buf pcm = {0};  vx_pcmstream_feed(&ps, frame, len, &pcm);  // int16 samples
 *     vx_pcmstream_release(&ps);
 */
#ifndef VX_PCMSTREAM_H
#define VX_PCMSTREAM_H

#include <stdbool.h>
#include <stdint.h>

#include "vx_audio.h"

typedef struct vx_pcmstream {
	vx_encoding encoding;      /* VX_ENC_PCM16, _MULAW or _ALAW */
	vx_resampler *resampler;
	uint8_t odd_byte;          /* first byte of a split PCM16 sample */
	bool has_odd;
	vx_buf scratch;            /* decoded samples before resampling */
} vx_pcmstream;

/* -EINVAL for VX_ENC_AUTO or a bad rate; -ENOMEM. */
int vx_pcmstream_init(vx_pcmstream *s, vx_encoding encoding, int in_rate,
		      int out_rate);
void vx_pcmstream_release(vx_pcmstream *s);
/* Appends the int16 samples at out_rate that data yields to out. */
int vx_pcmstream_feed(vx_pcmstream *s, const void *data, size_t len,
		      vx_buf *out);
/* End of a round: appends what the resampler still holds, drops a
 * dangling odd byte; the stream is ready for a new round. */
int vx_pcmstream_flush(vx_pcmstream *s, vx_buf *out);

#endif
