/*
 * vx_audio.h - audio in and out for every service: decode, convert, encode.
 *
 * Inside voxline audio is vx_pcm: interleaved signed 16-bit samples (host
 * byte order) with a rate and a channel count. Decoding accepts anything
 * libsndfile reads from memory (wav, flac, ogg/vorbis, ogg/opus, aiff, mp3...)
 * and headerless PCM16 (s16le) / G.711 mu-law / A-law at a caller-given
 * rate. vx_audio_convert downmixes to mono and resamples with libsoxr.
 * Encoding writes wav, raw pcm (s16le), flac, ogg/opus, mp3 (where the
 * installed libsndfile can) and raw G.711.
 *
 * Errors: -EINVAL for bad arguments, -EBADMSG for audio that cannot be
 * decoded (truncated, corrupt, empty, unknown container), -E2BIG when the
 * decoded audio would exceed max_frames, -ENOTSUP for an encoding, format,
 * channel count or rate not supported, -ENOMEM. Output parameters are
 * untouched and vx_buf outputs unchanged on failure.
 *
 * Untrusted input: an Ogg stream is decoded only when its header packets
 * are all there and valid (Vorbis: identification, comment, setup; Opus:
 * OpusHead, OpusTags); otherwise -EBADMSG before libsndfile sees it, whose
 * failed Vorbis open would leak (see vx_audio.c). Failed decodes hold no
 * memory afterwards.
 *
 * Ownership: vx_pcm.data is malloc'd and owned by the vx_pcm; release it with
 * vx_pcm_release. Every function is thread-safe (no shared state);
 * resamplers are per-stream objects used by one thread at a time.
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

/* Limits on what a client can make us decode or convert. */
#define VX_AUDIO_MAX_CHANNELS 16      /* more: -ENOTSUP */
#define VX_AUDIO_MIN_RATE 1000        /* Hz; outside [MIN, MAX]: -ENOTSUP */
#define VX_AUDIO_MAX_RATE 384000      /* Hz */

typedef struct vx_pcm {
	int16_t *data;   /* frames * channels interleaved samples, owned */
	size_t frames;   /* samples per channel */
	int rate;        /* Hz */
	int channels;    /* >= 1 */
} vx_pcm;

/* Frees data and zeroes the struct; accepts a zeroed or NULL pcm. */
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
	int rate;        /* for headerless encodings; 0 = unknown (-EINVAL) */
	int channels;    /* for headerless encodings; 0 = 1 */
} vx_audio_in;

/*
 * Maps a MIME type ("audio/wav", "audio/L16;rate=8000;channels=2",
 * "audio/pcmu", "audio/basic", "audio/pcma", "audio/flac", "audio/ogg",
 * "application/octet-stream") to a vx_audio_in. Type and parameter names are
 * case-insensitive; rate= and channels= are read, other parameters ignored.
 * audio/L16 is taken as little-endian (the voxline wire format, as most
 * speech APIs use it, not RFC 2586's network order). pcmu/pcma/basic
 * default to 8000 Hz. NULL or "" means AUTO (sniff the container).
 * Returns -ENOTSUP (caller answers 415) for a type that is not audio or a
 * container libsndfile cannot read (webm, mp4/aac), -EINVAL for a bad
 * rate= or channels= value.
 */
int vx_audio_in_from_mime(const char *mime, vx_audio_in *ret);
/* Maps "pcm16" | "mulaw" | "alaw" (also "s16le", "linear16", "ulaw",
 * "pcmu", "pcma"; any case) to an encoding; -EINVAL otherwise. */
int vx_encoding_from_name(const char *name, vx_encoding *ret);
/* The wire name of a headerless encoding: "mulaw", "alaw", else "pcm16"
 * (what /ws/ configs and "ready" events say). A static string. */
const char *vx_encoding_name(vx_encoding e);

/*
 * Decodes buf into ret (caller releases). in == NULL means AUTO. Refuses
 * more than max_frames (which must be > 0) with -E2BIG, checked against the
 * container's frame count before decoding and again while decoding, so at
 * most max_frames are ever held. Zero decoded frames is -EBADMSG, as is a
 * headerless body whose length is not a whole number of frames. A wav whose
 * header claims more data than is present yields the frames present.
 */
int vx_audio_decode(const void *buf, size_t len, const vx_audio_in *in,
		    size_t max_frames, vx_pcm *ret);

/*
 * In place: mix to channels and resample to rate (libsoxr, high quality,
 * no dither). Mixing goes N -> 1 (average), 1 -> N (copy) or N -> N; any
 * other pair is -EINVAL. On failure pcm is unchanged.
 */
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

/* "wav" | "pcm" | "flac" | "opus" | "ogg" | "mp3" | "mulaw" | "alaw" (any
 * case; also "ulaw", "pcmu", "pcma"); -EINVAL otherwise. */
int vx_format_from_name(const char *name, vx_format *ret);
/* "audio/wav", "audio/pcm", "audio/flac", "audio/ogg", "audio/mpeg",
 * "audio/pcmu", "audio/pcma"; "application/octet-stream" for anything else. */
const char *vx_format_mime(vx_format f);

/*
 * Appends pcm encoded as f to out. opus needs rate 8/12/16/24/48 kHz and mp3
 * one of 8..48 kHz MPEG rates: the encoder resamples to the nearest valid
 * rate at or above the input (capped at 48 kHz) itself. wav, pcm and G.711
 * keep the rate. frames == 0 gives a valid empty file.
 */
int vx_audio_encode(const int16_t *samples, size_t frames, int rate,
		    int channels, vx_format f, vx_buf *out);

/* G.711, per sample: ITU-T G.711 as its reference code (G.191 STL) does it,
 * bit-exact. Decoders return 16-bit left-justified values. */
uint8_t vx_g711_ulaw_encode(int16_t s);
int16_t vx_g711_ulaw_decode(uint8_t u);
uint8_t vx_g711_alaw_encode(int16_t s);
int16_t vx_g711_alaw_decode(uint8_t a);

/* Base64 (RFC 4648 standard alphabet). encode pads with '='. decode ignores
 * whitespace, accepts missing final padding, and returns -EBADMSG on any
 * other non-alphabet byte, misplaced '=' or a dangling 6-bit group. */
int vx_base64_encode(const void *data, size_t len, vx_buf *out);
int vx_base64_decode(const char *text, size_t len, vx_buf *out);

/*
 * A streaming mono resampler for WebSocket audio (libsoxr LQ recipe with
 * minimum phase: 16-bit quality, anti-aliased, about 25 ms of buffering for
 * 8 -> 16 kHz in 20 ms chunks; SOXR_HQ would hold about 110 ms). Output is
 * appended to out as host-order int16 samples. Equal rates pass through.
 * After vx_resampler_flush the resampler is ready for a new stream. After
 * -ENOMEM from process or flush the stream is lost: free the resampler.
 *
 *     vx_resampler *r; vx_resampler_new(8000, 16000, &r);
 *     vx_resampler_process(r, frame, 160, &out); ... vx_resampler_flush(r, &out);
 *     vx_resampler_free(r);
 */
typedef struct vx_resampler vx_resampler;
int vx_resampler_new(int in_rate, int out_rate, vx_resampler **ret);
void vx_resampler_free(vx_resampler *r);
int vx_resampler_process(vx_resampler *r, const int16_t *in, size_t n,
			 vx_buf *out);
/* Drains what soxr still holds at end of stream. */
int vx_resampler_flush(vx_resampler *r, vx_buf *out);

#endif
