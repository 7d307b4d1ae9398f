/*
 * banter_record.h - voxline-banter's record of an exchange: one stereo
 * timeline (a bot per channel, each reply at the time it was played, silence
 * between) and the transcript's line format.
 *
 * Invariants: the timeline is n_frames interleaved int16 frames (left,
 * right) at `rate`, never longer than max_frames; a place that would pass
 * it changes nothing. Silence is exact zeros, so a channel that is all zero
 * over an interval said nothing then.
 *
 * Ownership: the caller owns the struct (banter_record_init /
 * banter_record_release); the record owns its buffer. Not thread-safe: the
 * caller serialises (voxline-banter holds its lock).
 *
 *     banter_record rec;
 *     banter_record_init(&rec, 16000, 3600);
 *     banter_record_place(&rec, 0, 1250.0, pcm, frames);   // left, at 1.25 s
 *     banter_record_write_wav(&rec, "banter.wav");  banter_record_release(&rec);
 */
#ifndef BANTER_RECORD_H
#define BANTER_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "vx_buf.h"

typedef struct banter_record {
	vx_buf frames;       /* int16 stereo, interleaved */
	size_t n_frames;     /* frames held (samples per channel) */
	size_t max_frames;   /* limit: max_s * rate */
	int rate;            /* Hz */
} banter_record;

/* An empty timeline at rate Hz holding at most max_s seconds. */
void banter_record_init(banter_record *r, int rate, double max_s);
void banter_record_release(banter_record *r);

/* Copies frames of mono pcm into channel (0 left, 1 right) from start_ms
 * on; the timeline grows with silence as needed, the other channel is left
 * as it was. 0, -EINVAL (channel, negative start), -EFBIG (past
 * max_frames), -ENOMEM; nothing changes on failure. */
int banter_record_place(banter_record *r, int channel, double start_ms,
			const int16_t *pcm, size_t frames);

/* Length of the timeline in seconds. */
double banter_record_seconds(const banter_record *r);

/* Writes the timeline as a 16-bit stereo WAV: to "<path>.tmp", flushed to
 * disk, then renamed over path, so path is either the old file or the
 * whole new one. 0 or a negative errno (nothing left behind). */
int banter_record_write_wav(const banter_record *r, const char *path);

/* One transcript line into out: "[%9.3f] who: text<note>\n" (seconds from
 * the start), CR and LF in text made spaces so a turn is one line. Returns
 * what snprintf does (the line is cut to cap - 1 bytes). */
int banter_record_line(char *out, size_t cap, double at_ms, const char *who,
		       const char *text, const char *note);

#endif
