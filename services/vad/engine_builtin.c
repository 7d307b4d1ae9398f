/*
 * engine_builtin.c - voxline's own VAD: a statistical-model detector.
 *
 * Every 10 ms hop (whatever the caller's frame size) the last 25 ms are
 * windowed and transformed (512-point FFT) and summed into 20 mel-spaced
 * bands from 125 Hz to 7.5 kHz (the top bands catch fricatives such as
 * /s/). Per band, a noise power estimate N is kept; the detector is the
 * likelihood ratio test of Sohn, Kim and Sung (1999): with the
 * a-posteriori SNR g = P / N and the a-priori SNR x (decision-directed,
 * Ephraim-Malah), each band contributes log LR = g x / (1 + x) - ln(1 + x),
 * and the mean over the bands is compared to a threshold that rises with
 * aggressiveness. The mean over the top bands alone (3.1-7.5 kHz) may pass
 * a higher threshold instead, so that weak fricatives (/s/, /tS/) in
 * broadband noise, which lift only those bands, still count. A hop that
 * passes the test keeps the decision on for a few hops more (hangover,
 * shorter in the strict modes).
 *
 * The noise floor adapts: the first 100 ms set it; after that a band
 * follows its power (time constant 20 hops) in hops that did not pass the
 * test themselves (hangover hops included), and in passing hops too while
 * it stays within 3 dB of its noise (the bands between formants); once
 * 250 ms of smoothed band power have been seen it is also held between the
 * minimum of that over the last 2 s and MIN_MARGIN times the minimum's
 * expected bias, which shrinks with the band's width (1 + 2.6/sqrt(bins):
 * measured on white noise). This is minimum statistics (Martin 2001): the
 * floor recovers from starting in speech and follows noise that gets
 * louder, without being pinned below the noise (a bound of 2.5 x minimum
 * for every band did that to the narrow low bands, whose minimum is far
 * below their mean, and the detector then fired on steady noise). Hops quieter than an absolute floor
 * (-58 dBFS over the bands) are never speech, so digital silence and
 * dither stay non-speech.
 *
 * A weaker onset test (the likelihood tests at ONSET_FRAC of their
 * thresholds, a fricative band ONSET_SNR over its noise, a lower absolute
 * floor) marks runs of hops that pass it (bridging gaps of
 * ONSET_GAP_HOPS); when
 * speech is confirmed the segmenter moves the start back over them
 * (onset_ms), so the quiet start of /f/, /h/ or /th/, which the speech
 * test only passes once the vowel comes, is in the segment.
 *
 * A 20 or 30 ms frame is speech when at least half of its hops are. Tuned
 * with tools/vad_eval (flite speech in silence, white and pink noise).
 */
#include "vad_engine.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define HOP 160                     /* 10 ms */
#define WIN 400                     /* 25 ms analysis window */
#define NFFT 512
#define NBIN (NFFT / 2 + 1)
#define BIN_LO 4                    /* 125 Hz */
#define BIN_HI 240                  /* 7.5 kHz */
#define NBANDS 20                   /* mel-spaced bands over BIN_LO..BIN_HI */
#define SUBWIN_HOPS 25              /* minimum statistics: 8 x 250 ms */
#define NSUBWIN 8
#define INIT_HOPS 10                /* hops averaged for the first noise floor */
#define SMOOTH 0.7f                 /* band power smoothing for the minimum */
#define MIN_BIAS 2.6f               /* mean/minimum of a band's smoothed noise
				       power ~ 1 + MIN_BIAS / sqrt(bins) */
#define MIN_MARGIN 1.6f             /* noise may be this much above that */
#define NOISE_ALPHA 0.95f           /* noise update in non-speech hops */
#define NOISE_LIKE 2.0f             /* a band this close to its noise updates it
				       even in speech hops */
#define DD_ALPHA 0.98f              /* decision-directed a-priori SNR */
#define XI_MIN 0.003f               /* -25 dB */
#define GAMMA_MAX 1e4f
#define POWER_EPS 1e-3f
#define FRIC_BAND 13                /* bands 13.. (3.1-7.5 kHz) hold fricatives */
#define FRIC_MIN_LIVE 4             /* fricative bands needed for that test */
#define DEAD_RMS 1.0f               /* a band below this (PCM16 units, as white
				       noise) in power and noise is empty */
#define FRIC_SCALE 2.0f             /* their mean log LR alone must pass this
				       many times the threshold */
#define ABS_FLOOR_RMS 40.0f         /* band RMS in PCM16 units (-58 dBFS) */
#define ONSET_FRAC 0.1f             /* the onset test: this fraction of the
				       speech test's thresholds, */
#define ONSET_SNR 2.0f              /* a fricative band this far over noise */
#define ONSET_FLOOR_RMS 20.0f       /* and of its absolute floor (-64 dBFS) */
#define ONSET_GAP_HOPS 2            /* a run of onset hops bridges this many
				       failing hops */

typedef struct level {
	float llr_threshold;        /* mean log LR a speech hop must exceed */
	int hangover_hops;          /* hops kept on after the last speech hop */
} level;

static const level levels[VAD_AGGRESSIVENESS_MAX + 1] = {
	{ 0.03f, 8 },
	{ 0.06f, 6 },
	{ 0.12f, 5 },
	{ 0.25f, 4 },
};

typedef struct builtin {
	level lv;
	float hist[WIN];            /* last WIN samples, oldest first */
	float window[WIN];          /* Hann */
	float cos_t[NFFT / 2], sin_t[NFFT / 2];
	uint16_t bitrev[NFFT];
	float re[NFFT], im[NFFT];   /* FFT scratch */
	int band_edge[NBANDS + 1];  /* band b is bins [edge[b], edge[b+1]) */
	float power[NBANDS];        /* this hop's band powers */
	float smooth[NBANDS];       /* recursively smoothed band powers */
	float noise[NBANDS];        /* noise power estimate per band */
	float max_over_min[NBANDS]; /* noise / window minimum allowed */
	float dead[NBANDS];         /* band power of white noise at DEAD_RMS */
	float clean[NBANDS];        /* last hop's clean-speech power estimate */
	float sub_min[NSUBWIN][NBANDS]; /* minimum of smooth per sub-window */
	float cur_min[NBANDS];      /* minimum in the current sub-window */
	int sub_hops;               /* hops in the current sub-window */
	int nsub;                   /* sub-windows filled (<= NSUBWIN) */
	int sub_pos;                /* next sub_min slot */
	long samples;               /* samples seen, saturating at WIN */
	long hops;                  /* hops analysed (with a full window) */
	int hang;                   /* hangover hops left */
	int speech;                 /* decision of the last hop */
	int raw;                    /* the last hop passed the test itself
				       (speech without the hangover) */
	long onset_first;           /* first hop of the current onset run */
	long onset_last;            /* its last hop that passed, -1 if none */
} builtin;

static void fft_init(builtin *b)
{
	int bits = 0;

	while ((1 << bits) < NFFT)
		bits++;
	for (int i = 0; i < NFFT; i++) {
		int r = 0;

		for (int k = 0; k < bits; k++)
			if (i & (1 << k))
				r |= 1 << (bits - 1 - k);
		b->bitrev[i] = (uint16_t)r;
	}
	for (int i = 0; i < NFFT / 2; i++) {
		b->cos_t[i] = (float)cos(2.0 * M_PI * i / NFFT);
		b->sin_t[i] = (float)-sin(2.0 * M_PI * i / NFFT);
	}
	for (int i = 0; i < WIN; i++)
		b->window[i] = (float)(0.5 - 0.5 * cos(2.0 * M_PI * (i + 0.5) / WIN));
}

static double mel(double hz)
{
	return 2595.0 * log10(1.0 + hz / 700.0);
}

static double mel_to_hz(double m)
{
	return 700.0 * (pow(10.0, m / 2595.0) - 1.0);
}

/* Mel-spaced band edges over bins BIN_LO..BIN_HI, each band >= 2 bins;
 * their noise bounds (needs the window). */
static void bands_init(builtin *b)
{
	float wsum = 0.0f;              /* E|X(k)|^2 of unit white noise */

	for (int i = 0; i < WIN; i++)
		wsum += b->window[i] * b->window[i];
	double bin_hz = (double)VAD_RATE / NFFT;
	double m_lo = mel(BIN_LO * bin_hz), m_hi = mel((BIN_HI + 1) * bin_hz);

	b->band_edge[0] = BIN_LO;
	for (int i = 1; i <= NBANDS; i++) {
		double hz = mel_to_hz(m_lo + (m_hi - m_lo) * i / NBANDS);
		int e = (int)lround(hz / bin_hz);

		if (e < b->band_edge[i - 1] + 2)
			e = b->band_edge[i - 1] + 2;
		b->band_edge[i] = i == NBANDS ? BIN_HI + 1 : e;
	}
	for (int i = 0; i < NBANDS; i++) {
		int bins = b->band_edge[i + 1] - b->band_edge[i];

		b->max_over_min[i] = MIN_MARGIN * (1.0f + MIN_BIAS / sqrtf((float)bins));
		b->dead[i] = (float)bins * wsum * DEAD_RMS * DEAD_RMS;
	}
}

/* In-place iterative radix-2 FFT of re/im (bit-reversed load done here). */
static void fft(builtin *b)
{
	for (int i = 0; i < NFFT; i++) {
		int j = b->bitrev[i];

		if (j > i) {
			float t = b->re[i];

			b->re[i] = b->re[j];
			b->re[j] = t;
			t = b->im[i];
			b->im[i] = b->im[j];
			b->im[j] = t;
		}
	}
	for (int len = 2; len <= NFFT; len <<= 1) {
		int half = len / 2, step = NFFT / len;

		for (int i = 0; i < NFFT; i += len) {
			for (int k = 0; k < half; k++) {
				float wr = b->cos_t[k * step], wi = b->sin_t[k * step];
				float *ar = &b->re[i + k], *ai = &b->im[i + k];
				float *br = &b->re[i + k + half], *bi = &b->im[i + k + half];
				float tr = wr * *br - wi * *bi;
				float ti = wr * *bi + wi * *br;

				*br = *ar - tr;
				*bi = *ai - ti;
				*ar += tr;
				*ai += ti;
			}
		}
	}
}

/* Periodogram of the windowed history into b->power; returns the mean
 * power per sample of the speech band (PCM16 units squared). */
static float analyse(builtin *b)
{
	float band = 0.0f, wsum = 0.0f;

	for (int i = 0; i < WIN; i++) {
		b->re[i] = b->hist[i] * b->window[i];
		wsum += b->window[i] * b->window[i];
	}
	memset(b->re + WIN, 0, (NFFT - WIN) * sizeof(float));
	memset(b->im, 0, sizeof(b->im));
	fft(b);
	for (int i = 0; i < NBANDS; i++) {
		float p = POWER_EPS;

		for (int k = b->band_edge[i]; k < b->band_edge[i + 1]; k++)
			p += b->re[k] * b->re[k] + b->im[k] * b->im[k];
		b->power[i] = p;
		band += p;
	}
	/* Parseval: sum over one side ~ half the windowed energy * NFFT. */
	return 2.0f * band / (wsum * NFFT);
}

/* Minimum statistics: tracks min of the smoothed periodogram over 2 s. */
static void track_minimum(builtin *b)
{
	/* starts from the first noise floor, once there is one */
	if (b->hops < INIT_HOPS)
		return;
	for (int k = 0; k < NBANDS; k++) {
		b->smooth[k] = b->hops == INIT_HOPS ? b->noise[k] :
			SMOOTH * b->smooth[k] + (1.0f - SMOOTH) * b->power[k];
		if (b->sub_hops == 0 || b->smooth[k] < b->cur_min[k])
			b->cur_min[k] = b->smooth[k];
	}
	if (++b->sub_hops < SUBWIN_HOPS)
		return;
	memcpy(b->sub_min[b->sub_pos], b->cur_min, sizeof(b->cur_min));
	b->sub_pos = (b->sub_pos + 1) % NSUBWIN;
	if (b->nsub < NSUBWIN)
		b->nsub++;
	b->sub_hops = 0;
}

static float window_minimum(const builtin *b, int k)
{
	float m = b->cur_min[k];

	for (int s = 0; s < b->nsub; s++)
		if (b->sub_min[s][k] < m)
			m = b->sub_min[s][k];
	return m;
}

static void update_noise(builtin *b)
{
	for (int k = 0; k < NBANDS; k++) {
		float n = b->noise[k], lo, hi;

		if (b->hops < INIT_HOPS)
			n = (n * (float)b->hops + b->power[k]) / (float)(b->hops + 1);
		else if (!b->raw || b->power[k] < NOISE_LIKE * n)
			n = NOISE_ALPHA * n + (1.0f - NOISE_ALPHA) * b->power[k];
		/* the minimum means something once a sub-window is full */
		if (b->nsub > 0) {
			lo = window_minimum(b, k);
			hi = b->max_over_min[k] * lo;
			n = n < lo ? lo : n > hi ? hi : n;
		}
		b->noise[k] = n;
	}
}

/* The onset test: the likelihood ratios pass ONSET_FRAC of the speech
 * test's thresholds and some fricative band (wide bands, whose noise power
 * is steady) stands ONSET_SNR above its noise; a slow rise of the
 * background by a few dB does not pass it. */
static int onset_passed(const builtin *b, float llr, float llr_hi)
{
	float top = 0.0f;

	if (llr <= ONSET_FRAC * b->lv.llr_threshold &&
	    llr_hi <= ONSET_FRAC * FRIC_SCALE * b->lv.llr_threshold)
		return 0;
	for (int k = FRIC_BAND; k < NBANDS; k++)
		if (b->power[k] > top * b->noise[k])
			top = b->power[k] / b->noise[k];
	return top > ONSET_SNR;
}

/* Mean log likelihood ratio of speech over all bands (ret) and over the
 * fricative bands (ret_hi). */
static float likelihood(builtin *b, float *ret_hi)
{
	float sum = 0.0f, hi = 0.0f;
	int live = 0, live_hi = 0;

	for (int k = 0; k < NBANDS; k++) {
		float g = b->power[k] / b->noise[k], x, gain;

		if (g > GAMMA_MAX)
			g = GAMMA_MAX;
		x = DD_ALPHA * b->clean[k] / b->noise[k] +
		    (1.0f - DD_ALPHA) * (g > 1.0f ? g - 1.0f : 0.0f);
		if (x < XI_MIN)
			x = XI_MIN;
		gain = x / (1.0f + x);
		b->clean[k] = gain * gain * b->power[k];
		float l = g * gain - logf(1.0f + x);

		/* a band with nothing in it (above the Nyquist frequency of
		 * upsampled 8 kHz audio) would only dilute the mean */
		if (b->power[k] < b->dead[k] && b->noise[k] < b->dead[k])
			continue;
		sum += l;
		live++;
		if (k >= FRIC_BAND) {
			hi += l;
			live_hi++;
		}
	}
	*ret_hi = live_hi >= FRIC_MIN_LIVE ? hi / (float)live_hi : 0.0f;
	return live ? sum / (float)live : 0.0f;
}

/* Analyses the hop now complete in hist; returns its decision. */
static int decide_hop(builtin *b)
{
	float band_power = analyse(b), llr, llr_hi;
	int raw;

	track_minimum(b);
	update_noise(b);
	llr = likelihood(b, &llr_hi);
	raw = b->hops >= INIT_HOPS &&
	      (llr > b->lv.llr_threshold ||
	       llr_hi > FRIC_SCALE * b->lv.llr_threshold) &&
	      band_power > ABS_FLOOR_RMS * ABS_FLOOR_RMS;
	/* the weaker onset test: where the sound began, for the look-back */
	if (b->hops >= INIT_HOPS &&
	    (raw || onset_passed(b, llr, llr_hi)) &&
	    band_power > ONSET_FLOOR_RMS * ONSET_FLOOR_RMS) {
		if (b->onset_last < 0 ||
		    b->hops - b->onset_last > ONSET_GAP_HOPS + 1)
			b->onset_first = b->hops;
		b->onset_last = b->hops;
	}
	if (raw)
		b->hang = b->lv.hangover_hops;
	else if (b->hang > 0)
		b->hang--;
	b->raw = raw;
	b->speech = raw || b->hang > 0;
	b->hops++;
	return b->speech;
}

static int builtin_create(const vad_config *cfg, void **ret_state)
{
	builtin *b;

	if (!cfg || cfg->aggressiveness < 0 ||
	    cfg->aggressiveness > VAD_AGGRESSIVENESS_MAX)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->lv = levels[cfg->aggressiveness];
	b->onset_last = -1;
	fft_init(b);
	bands_init(b);
	*ret_state = b;
	return 0;
}

static void builtin_destroy(void *state)
{
	free(state);
}

static int builtin_process(void *state, const int16_t *pcm, size_t n)
{
	builtin *b = state;
	int hops = 0, speech = 0;

	if (!b || !pcm || !vad_frame_valid(n))
		return -EINVAL;
	for (size_t off = 0; off < n; off += HOP) {
		memmove(b->hist, b->hist + HOP, (WIN - HOP) * sizeof(float));
		for (int i = 0; i < HOP; i++)
			b->hist[WIN - HOP + i] = (float)pcm[off + (size_t)i];
		if (b->samples < WIN)
			b->samples += HOP;
		/* no decision until the window holds real audio only */
		speech += b->samples >= WIN ? decide_hop(b) : 0;
		hops++;
	}
	return 2 * speech >= hops;
}

static int builtin_onset_ms(void *state)
{
	const builtin *b = state;

	/* hops is one past the last analysed hop */
	if (!b || b->onset_last < 0 || b->hops - 1 != b->onset_last)
		return 0;
	return (int)(b->hops - b->onset_first) * (HOP * 1000 / VAD_RATE);
}

const vad_engine_ops vad_engine_builtin = {
	.name = "builtin",
	.description = "statistical-model VAD (per-bin likelihood ratio, "
		       "adaptive noise floor, hangover), modes 0-3",
	.create = builtin_create,
	.destroy = builtin_destroy,
	.process = builtin_process,
	.onset_ms = builtin_onset_ms,
};
