/*
 * wmel.c - Whisper's log-mel spectrogram (direct DFT over a table, as a
 * float gemm per block of frames; frames of pure silence give the floor).
 * See wmel.h.
 */
#include "wmel.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "kern/fgemm.h"

int wmel_init(wmel *m, const float *filters, int n_mel)
{
	memset(m, 0, sizeof *m);
	m->filters = filters;
	m->n_mel = n_mel;
	m->window = malloc(WMEL_N_FFT * sizeof(float));
	m->cos_t = aligned_alloc(64, WMEL_N_FFT * WMEL_BINS_PAD * sizeof(float));
	m->sin_t = aligned_alloc(64, WMEL_N_FFT * WMEL_BINS_PAD * sizeof(float));
	if (!m->window || !m->cos_t || !m->sin_t) {
		wmel_release(m);
		return -ENOMEM;
	}
	for (int n = 0; n < WMEL_N_FFT; n++) {
		m->window[n] = (float)(0.5 - 0.5 * cos(2.0 * M_PI * n / WMEL_N_FFT));
		for (int k = 0; k < WMEL_BINS_PAD; k++) {
			double a = 2.0 * M_PI * (double)((long)k * n % WMEL_N_FFT) / WMEL_N_FFT;
			bool in = k < WMEL_N_FB;
			m->cos_t[n * WMEL_BINS_PAD + k] = in ? (float)cos(a) : 0.0f;
			m->sin_t[n * WMEL_BINS_PAD + k] = in ? (float)sin(a) : 0.0f;
		}
	}
	return 0;
}

void wmel_release(wmel *m)
{
	free(m->window);
	free(m->cos_t);
	free(m->sin_t);
	m->window = m->cos_t = m->sin_t = NULL;
}

int wmel_frames_for(int n)
{
	return (n + WMEL_HOP - 1) / WMEL_HOP;
}

typedef struct job {
	const wmel *m;
	const float *pcm;
	int n, n_frames;
	float *out;
} job;

#define FRAMES_PER_TASK 8

/* The sample at index i of the centred signal: reflected before 0, zero
 * past the audio. */
static float sample(const float *pcm, int n, long i)
{
	if (i < 0)
		i = -i;
	return i < n ? pcm[i] : 0.0f;
}

/* FRAMES_PER_TASK frames: windowed samples as rows of X, the DFT as two
 * products X . cos_t and X . sin_t (fgemm), then power, mel filters, log. */
static void frames_task(void *arg, int task, int thread)
{
	const job *j = arg;
	const wmel *m = j->m;
	float re[FRAMES_PER_TASK][WMEL_BINS_PAD], im[FRAMES_PER_TASK][WMEL_BINS_PAD];
	float x[FRAMES_PER_TASK][WMEL_N_FFT];
	bool silent[FRAMES_PER_TASK];
	(void)thread;

	int f0 = task * FRAMES_PER_TASK;
	int nf = f0 + FRAMES_PER_TASK < j->n_frames ? FRAMES_PER_TASK : j->n_frames - f0;
	if (nf < 1)
		return;
	for (int r = 0; r < nf; r++) {
		long start = (long)(f0 + r) * WMEL_HOP - WMEL_N_FFT / 2;
		silent[r] = true;
		for (int i = 0; i < WMEL_N_FFT; i++) {
			x[r][i] = sample(j->pcm, j->n, start + i) * m->window[i];
			silent[r] &= x[r][i] == 0.0f;
		}
	}
	fgemm(nf, WMEL_BINS_PAD, WMEL_N_FFT, x[0], WMEL_N_FFT, m->cos_t, WMEL_BINS_PAD, re[0],
	      WMEL_BINS_PAD, false);
	fgemm(nf, WMEL_BINS_PAD, WMEL_N_FFT, x[0], WMEL_N_FFT, m->sin_t, WMEL_BINS_PAD, im[0],
	      WMEL_BINS_PAD, false);
	for (int r = 0; r < nf; r++) {
		int f = f0 + r;
		if (silent[r]) {
			for (int b = 0; b < m->n_mel; b++)
				j->out[(size_t)b * j->n_frames + f] = -10.0f;   /* log10(1e-10) */
			continue;
		}
		float *pw = re[r];
		for (int k = 0; k < WMEL_N_FB; k++)
			pw[k] = pw[k] * pw[k] + im[r][k] * im[r][k];
		for (int b = 0; b < m->n_mel; b++) {
			const float *w = m->filters + (size_t)b * WMEL_N_FB;
			double sum = 0;
			for (int k = 0; k < WMEL_N_FB; k++)
				sum += (double)w[k] * pw[k];
			j->out[(size_t)b * j->n_frames + f] = (float)log10(sum > 1e-10 ? sum : 1e-10);
		}
	}
}

int wmel_compute(const wmel *m, const float *pcm, int n, int n_frames, team *t, float *out)
{
	job j = { .m = m, .pcm = pcm, .n = n, .n_frames = n_frames, .out = out };
	int n_tasks = (n_frames + FRAMES_PER_TASK - 1) / FRAMES_PER_TASK;

	if (t)
		team_run(t, frames_task, &j, n_tasks);
	else
		for (int i = 0; i < n_tasks; i++)
			frames_task(&j, i, 0);
	size_t total = (size_t)m->n_mel * (size_t)n_frames;
	float mx = -INFINITY;
	for (size_t i = 0; i < total; i++)
		mx = out[i] > mx ? out[i] : mx;
	for (size_t i = 0; i < total; i++) {
		float v = out[i] < mx - 8.0f ? mx - 8.0f : out[i];
		out[i] = (v + 4.0f) / 4.0f;
	}
	return 0;
}
