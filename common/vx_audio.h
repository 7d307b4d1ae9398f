/*
 * vx_audio.h - audio in and out for every service: decode, convert, encode.
 *
 * Inside voxline audio is vx_pcm: interleaved signed 16-bit samples with a
 * rate and a channel count. Decoding accepts anything libsndfile reads (wav,
 * flac, ogg/vorbis, ogg/opus, aiff...) and headerless PCM16 / G.711 mu-law /
 * A-law at a caller-given rate. vx_audio_convert downmixes to mono and
 * resamples with libsoxr. Encoding writes wav, raw pcm (s16le), flac,
 * ogg/opus (and mp3 where libsndfile can).
 *
 * Errors: -EINVAL for bad arguments, -EBADMSG for audio that cannot be
 * decoded (truncated, corrupt, unknown container), -E2BIG when the decoded
 * audio would exceed max_frames, -ENOTSUP for an encoding not built in,
 * -ENOMEM. Every function is thread-safe (no shared state); resamplers are
 * per-stream objects used by one thread at a time.
 *
 *     vx_pcm pcm = {0};
 *     if (vx_audio_decode(body, len, &fmt, max_frames, &pcm) == 0 &&
 *         vx_audio_convert(&pcm, 16000, 1) == 0) run(pcm.data, pcm.frames);
 *     vx_pcm_release(&pcm);
 */
#ifndef VX_AUDIO_H
#define VX_AUDIO_H

#include <stddef.h>
#include <stdint.h>

#include "vx_buf.h"

typedef struct vx_pcm {
	int16_t *data;   /* frames * channels interleaved samples, owned */
	size_t frames;   /* samples per channel */
	int rate;        /* Hz */
	int channels;    /* >= 1 */
} vx_pcm;

void vx_pcm_release(vx_pcm *pcm);

typedef enum vx_encoding {
	VX_ENC_AUTO = 0,   /* a container libsndfile recognises (wav, flac, ogg...) */
	VX_ENC_PCM16,      /* headerless s16le */
	VX_ENC_MULAW,      /* headerless G.711 mu-law, 8 bits a sample */
	VX_ENC_ALAW,       /* headerless G.711 A-law, 8 bits a sample */
} vx_encoding;

/* How to read a body: from a Content-Type or from an explicit choice. */
typedef struct vx_audio_in {
	vx_encoding encoding;
	int rate;        /* for headerless encodings; 0 = unknown */
	int channels;    /* for headerless encodings; 0 = 1 */
} vx_audio_in;

/*
 * Maps a MIME type ("audio/wav", "audio/L16;rate=8000;channels=2",
 * "audio/pcmu", "audio/basic", "audio/pcma", "audio/flac", "audio/ogg",
 * "application/octet-stream") to a vx_audio_in. Returns -ENOTSUP (caller
 * answers 415) for a type that is not audio.
 */
int vx_audio_in_from_mime(const char *mime, vx_audio_in *ret);
/* Maps "pcm16" | "mulaw" | "alaw" to an encoding; -EINVAL otherwise. */
int vx_encoding_from_name(const char *name, vx_encoding *ret);

/* Decodes buf into ret (caller releases). Refuses more than max_frames. */
int vx_audio_decode(const void *buf, size_t len, const vx_audio_in *in,
		    size_t max_frames, vx_pcm *ret);

/* In place: downmix to channels (1) and resample to rate. */
int vx_audio_convert(vx_pcm *pcm, int rate, int channels);

typedef enum vx_format {
	VX_FMT_WAV = 0,
	VX_FMT_PCM,      /* raw s16le */
	VX_FMT_FLAC,
	VX_FMT_OPUS,     /* ogg/opus */
	VX_FMT_MP3,      /* where libsndfile writes it, else -ENOTSUP */
	VX_FMT_MULAW,    /* raw G.711 mu-law */
	VX_FMT_ALAW,     /* raw G.711 A-law */
} vx_format;

/* "wav" | "pcm" | "flac" | "opus" | "ogg" | "mp3" | "mulaw" | "alaw". */
int vx_format_from_name(const char *name, vx_format *ret);
const char *vx_format_mime(vx_format f);

/* Appends pcm encoded as f to out. opus needs rate 8/12/16/24/48 kHz: the
 * encoder resamples to 48 kHz (or the nearest valid) itself. */
int vx_audio_encode(const int16_t *samples, size_t frames, int rate,
		    int channels, vx_format f, vx_buf *out);

/* G.711, per sample (ITU-T tables, exact). */
uint8_t vx_g711_ulaw_encode(int16_t s);
int16_t vx_g711_ulaw_decode(uint8_t u);
uint8_t vx_g711_alaw_encode(int16_t s);
int16_t vx_g711_alaw_decode(uint8_t a);

/* Base64 (RFC 4648, with padding). decode ignores whitespace and returns
 * -EBADMSG on any other non-alphabet byte. */
int vx_base64_encode(const void *data, size_t len, vx_buf *out);
int vx_base64_decode(const char *text, size_t len, vx_buf *out);

/*
 * A streaming mono resampler for WebSocket audio (libsoxr, VHQ not needed:
 * quick and low-latency). Output is appended to out as int16 samples.
 */
typedef struct vx_resampler vx_resampler;
int vx_resampler_new(int in_rate, int out_rate, vx_resampler **ret);
void vx_resampler_free(vx_resampler *r);
int vx_resampler_process(vx_resampler *r, const int16_t *in, size_t n,
			 vx_buf *out);
/* Drains what soxr still holds at end of stream. */
int vx_resampler_flush(vx_resampler *r, vx_buf *out);

#endif
