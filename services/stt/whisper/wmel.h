/*
 * wmel.h - Whisper's log-mel spectrogram.
 *
 * As Whisper computes it: 16 kHz mono samples, frames every 160 samples
 * (10 ms) of 400 samples (n_fft) centred on the frame (the start reflected,
 * the end padded with zeros as Whisper pads its 30 s window), a periodic
 * Hann window, the power spectrum (201 bins), the file's mel filters,
 * log10 (floored at 1e-10), values below the maximum - 8 raised to it,
 * then (x + 4) / 4.
 *
 * Frames are computed for the first n_frames frame positions, whatever the
 * audio's length (frames past the audio are silence); the maximum is taken
 * over those frames.
 *
 * Thread-safety: a wmel is immutable after wmel_init; wmel_compute may run
 * concurrently on different outputs. team may be NULL (single-threaded).
 *
 *     wmel m; wmel_init(&m, file->filters, file->n_mel);
 *     wmel_compute(&m, pcm, n, 3000, team, out);   // out: n_mel x 3000
 *     wmel_release(&m);
 */
#ifndef WMEL_H
#define WMEL_H

#include "kern/team.h"

#define WMEL_RATE  16000
#define WMEL_N_FFT 400
#define WMEL_HOP   160
#define WMEL_N_FB  201

typedef struct wmel {
	const float *filters;    /* (n_mel, WMEL_N_FB), the file's */
	int n_mel;
	float *window;           /* WMEL_N_FFT */
	float *cos_t, *sin_t;    /* (WMEL_N_FFT, WMEL_BINS_PAD): DFT basis, bin fastest */
} wmel;

#define WMEL_BINS_PAD 208

int wmel_init(wmel *m, const float *filters, int n_mel);   /* 0 or -ENOMEM */
void wmel_release(wmel *m);
/* out: (n_mel, n_frames), row-major (mel band slowest). 0 or -ENOMEM. */
int wmel_compute(const wmel *m, const float *pcm, int n, int n_frames, team *t, float *out);
/* Frames that cover n samples: ceil(n / WMEL_HOP). */
int wmel_frames_for(int n);

#endif
