/*
 * vad_eval.c - measures the VAD engines on labelled synthetic audio.
 *
 * Speech is synthesised with flite (cmu_us_slt, 16 kHz), and each sentence
 * is placed at a known time in a silent track. The truth for a sentence is
 * the interval from its first to its last non-silent 5 ms block (flite's own
 * leading and trailing silence trimmed; pauses between words count as
 * speech). The track is then mixed with digital silence, white or pink
 * noise at 20 dB and at 5 dB SNR (speech power over the truth intervals),
 * and every engine runs at every aggressiveness on every frame size.
 *
 * Per run it prints frame precision, recall and F1 (a frame is speech in
 * the truth when at least half of it lies inside a truth interval), and
 * after the segmenter (min_speech 250 ms, min_silence 300 ms, no padding)
 * the segments found and the boundary error: for each true segment, the
 * detected segment overlapping it most, |start - true start| and
 * |end - true end| in ms (a missed segment counts as 1000 ms).
 *
 *   vad_eval                            the table (20 ms frames)
 *   vad_eval --frame-ms 0               all of 10, 20 and 30 ms
 *   vad_eval --write-wav a.wav --write-truth a.json [--condition white20]
 *   vad_eval --no-eval --write-wav ...  only write the files
 *   --truth-band-hz 3600   the truth of what is left of each sentence after
 *                          a low-pass to 3.6 kHz (audio sent at 8 kHz: an
 *                          /s/ that lies above 4 kHz is not in it)
 *   --seed N               the noise: condition c uses seed N + c (default
 *                          0x5eed0001; the file and the table agree)
 *   --condition C          with an evaluation: only that condition
 *   --show-errors-over MS  print each segment whose boundary is off by more
 */
#include "vad_engine.h"

#include <flite/flite.h>

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

cst_voice *register_cmu_us_slt(const char *voxdir);
void unregister_cmu_us_slt(cst_voice *v);

#define MS 16                       /* samples per ms at 16 kHz */
#define LEAD_MS 1000                /* silence before the first sentence */
#define TAIL_MS 1000                /* silence after the last one */
#define TRIM_BLOCK 80               /* 5 ms blocks for trimming */
#define TRIM_DB 45.0                /* below the loudest block: silence */
#define MISS_PENALTY_MS 1000
#define MAX_SENTENCES 16
#define DEFAULT_SEED 0x5eed0001ULL  /* noise of condition c: seed + c */

static const char *const sentences[] = {
	"The quick brown fox jumps over the lazy dog.",
	"Please turn on the lights in the kitchen.",
	"What is the weather going to be like tomorrow morning?",
	"Set a timer for ten minutes.",
	"I would like to listen to some music.",
	"How far is it from here to the nearest station?",
	"Remind me to call my sister at six.",
	"Thank you very much.",
};
static const int gaps_ms[] = { 800, 1300, 1000, 1700, 900, 1200, 2000, 1000 };
#define NSENT (sizeof(sentences) / sizeof(sentences[0]))

typedef struct condition {
	const char *name;
	int pink;                   /* 0 white, 1 pink */
	double snr_db;              /* < 0: no noise at all */
} condition;

static const condition conditions[] = {
	{ "clean", 0, -1 },
	{ "white20", 0, 20 },
	{ "pink20", 1, 20 },
	{ "white5", 0, 5 },
	{ "pink5", 1, 5 },
};
#define NCOND (sizeof(conditions) / sizeof(conditions[0]))

typedef struct track {
	float *speech;              /* the speech alone, n samples */
	size_t n;
	int nseg;
	int64_t seg_start[MAX_SENTENCES], seg_end[MAX_SENTENCES]; /* samples */
	/* the truth written by --write-truth: seg_* or, with --truth-band-hz,
	 * the same rule applied to the speech low-passed to that band */
	int64_t truth_start[MAX_SENTENCES], truth_end[MAX_SENTENCES];
	double speech_power;        /* mean square over the truth intervals */
} track;

typedef struct result {
	long tp, fp, fn;
	int detected;
	double start_err, end_err;  /* mean absolute, ms */
	double max_err;
	double cpu_s;
} result;

/* Index of the first/last 5 ms block within TRIM_DB of the loudest. */
static void trim(const short *x, int n, int *ret_first, int *ret_last)
{
	int nb = n / TRIM_BLOCK, first = 0, last = n;
	double peak = 0.0, thr;

	for (int b = 0; b < nb; b++) {
		double e = 0.0;

		for (int i = 0; i < TRIM_BLOCK; i++) {
			double v = x[b * TRIM_BLOCK + i];

			e += v * v;
		}
		if (e > peak)
			peak = e;
	}
	thr = peak * pow(10.0, -TRIM_DB / 10.0);
	for (int b = 0; b < nb; b++) {
		double e = 0.0;

		for (int i = 0; i < TRIM_BLOCK; i++) {
			double v = x[b * TRIM_BLOCK + i];

			e += v * v;
		}
		if (e > thr) {
			if (first == 0 && last == n)
				first = b * TRIM_BLOCK;
			last = (b + 1) * TRIM_BLOCK;
		}
	}
	*ret_first = first;
	*ret_last = last;
}

/* x low-passed to hz (windowed sinc, LP_TAPS taps), into a new buffer. */
#define LP_TAPS 129
static short *lowpass(const short *x, int n, int hz)
{
	double h[LP_TAPS], fc = (double)hz / VAD_RATE;
	short *y = malloc((size_t)n * sizeof(*y));

	if (!y)
		return NULL;
	for (int i = 0; i < LP_TAPS; i++) {
		int k = i - LP_TAPS / 2;
		double sinc = k ? sin(2.0 * M_PI * fc * k) / (M_PI * k) : 2.0 * fc;

		h[i] = sinc * (0.54 - 0.46 * cos(2.0 * M_PI * i / (LP_TAPS - 1)));
	}
	for (int i = 0; i < n; i++) {
		double acc = 0.0;

		for (int j = 0; j < LP_TAPS; j++) {
			int at = i + j - LP_TAPS / 2;

			if (at >= 0 && at < n)
				acc += h[j] * x[at];
		}
		y[i] = (short)lrint(acc > 32767 ? 32767 : acc < -32768 ? -32768 : acc);
	}
	return y;
}

/* Synthesises the sentences and lays them out; 0 or -errno. With
 * band_hz > 0 the truth is trimmed on the speech low-passed to band_hz
 * (what of each sentence is left in 8 kHz audio, say). */
static int track_make(track *t, int band_hz)
{
	int tfirst[NSENT], tlast[NSENT];
	cst_voice *voice;
	cst_wave *waves[NSENT] = { 0 };
	int first[NSENT], last[NSENT];
	size_t total = (size_t)LEAD_MS * MS, pos;
	double sum = 0.0;
	long count = 0;
	int r = -EIO;

	flite_init();
	voice = register_cmu_us_slt(NULL);
	if (!voice)
		return -EIO;
	for (size_t i = 0; i < NSENT; i++) {
		waves[i] = flite_text_to_wave(sentences[i], voice);
		if (!waves[i] || waves[i]->sample_rate != VAD_RATE ||
		    waves[i]->num_channels != 1)
			goto out_free_waves;
		trim(waves[i]->samples, waves[i]->num_samples, &first[i], &last[i]);
		tfirst[i] = first[i];
		tlast[i] = last[i];
		if (band_hz > 0) {
			short *lp = lowpass(waves[i]->samples, waves[i]->num_samples,
					    band_hz);

			if (!lp) {
				r = -ENOMEM;
				goto out_free_waves;
			}
			trim(lp, waves[i]->num_samples, &tfirst[i], &tlast[i]);
			free(lp);
		}
		total += (size_t)waves[i]->num_samples + (size_t)gaps_ms[i] * MS;
	}
	total += (size_t)TAIL_MS * MS;
	t->speech = calloc(total, sizeof(float));
	if (!t->speech) {
		r = -ENOMEM;
		goto out_free_waves;
	}
	t->n = total;
	t->nseg = 0;
	/* each wave starts so that its trimmed speech begins at pos */
	pos = (size_t)LEAD_MS * MS;
	for (size_t i = 0; i < NSENT; i++) {
		const cst_wave *w = waves[i];
		size_t at = pos - (size_t)first[i];

		for (int k = 0; k < w->num_samples; k++)
			t->speech[at + (size_t)k] += w->samples[k];
		t->seg_start[t->nseg] = (int64_t)pos;
		t->seg_end[t->nseg] = (int64_t)(at + (size_t)last[i]);
		t->truth_start[t->nseg] = (int64_t)(at + (size_t)tfirst[i]);
		t->truth_end[t->nseg] = (int64_t)(at + (size_t)tlast[i]);
		for (int64_t k = t->seg_start[t->nseg]; k < t->seg_end[t->nseg]; k++) {
			sum += (double)t->speech[k] * t->speech[k];
			count++;
		}
		pos = (size_t)t->seg_end[t->nseg] + (size_t)gaps_ms[i] * MS;
		t->nseg++;
	}
	t->speech_power = count ? sum / (double)count : 0.0;
	r = 0;

out_free_waves:
	for (size_t i = 0; i < NSENT; i++)
		if (waves[i])
			delete_wave(waves[i]);
	unregister_cmu_us_slt(voice);
	return r;
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static double gaussian(uint64_t *s)
{
	double u1 = ((double)(rng_next(s) >> 11) + 1.0) / 9007199254740993.0;
	double u2 = (double)(rng_next(s) >> 11) / 9007199254740992.0;

	return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* The track mixed with the condition's noise, as PCM16. Caller frees. */
static int16_t *mix(const track *t, const condition *c, uint64_t seed)
{
	int16_t *out = malloc(t->n * sizeof(*out));
	float *noise = NULL;
	double b[7] = { 0 }, ms = 0.0, gain;

	if (!out)
		return NULL;
	if (c->snr_db >= 0) {
		noise = malloc(t->n * sizeof(*noise));
		if (!noise) {
			free(out);
			return NULL;
		}
		for (size_t i = 0; i < t->n; i++) {
			double w = gaussian(&seed), v = w;

			if (c->pink) {       /* Paul Kellet's pinking filter */
				b[0] = 0.99886 * b[0] + w * 0.0555179;
				b[1] = 0.99332 * b[1] + w * 0.0750759;
				b[2] = 0.96900 * b[2] + w * 0.1538520;
				b[3] = 0.86650 * b[3] + w * 0.3104856;
				b[4] = 0.55000 * b[4] + w * 0.5329522;
				b[5] = -0.7616 * b[5] - w * 0.0168980;
				v = b[0] + b[1] + b[2] + b[3] + b[4] + b[5] +
				    b[6] + w * 0.5362;
				b[6] = w * 0.115926;
			}
			noise[i] = (float)v;
			ms += v * v;
		}
		ms /= (double)t->n;
		gain = sqrt(t->speech_power / ms / pow(10.0, c->snr_db / 10.0));
	}
	for (size_t i = 0; i < t->n; i++) {
		double v = t->speech[i] + (noise ? gain * noise[i] : 0.0);

		v = v > 32767.0 ? 32767.0 : v < -32768.0 ? -32768.0 : v;
		out[i] = (int16_t)lrint(v);
	}
	free(noise);
	return out;
}

static double cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct seg_list {
	int n;
	int64_t start[256], end[256];
};

static void seg_collect(void *user, vad_event ev, int64_t start_ms,
			int64_t end_ms)
{
	struct seg_list *l = user;

	if (ev == VAD_SPEECH_END && l->n < 256) {
		l->start[l->n] = start_ms;
		l->end[l->n] = end_ms;
		l->n++;
	}
}

/* Runs one engine/mode/frame size over pcm and scores it against t. */
static int evaluate(const vad_engine_ops *e, int mode, int frame_ms,
		    const track *t, const int16_t *pcm, int verbose,
		    result *ret)
{
	vad_config cfg = { .aggressiveness = mode };
	vad_seg_config scfg = { .frame_ms = frame_ms,
				.min_speech_ms = VAD_MIN_SPEECH_MS_DEFAULT,
				.min_silence_ms = VAD_MIN_SILENCE_MS_DEFAULT };
	size_t frame = (size_t)frame_ms * MS;
	struct seg_list segs = { 0 };
	vad_segmenter seg;
	result res = { 0 };
	void *st;
	double t0;
	int r, k = 0;

	r = e->create(&cfg, &st);
	if (r < 0)
		return r;
	vad_segmenter_init(&seg, &scfg);
	for (size_t off = 0; off + frame <= t->n; off += frame) {
		int64_t overlap = 0;
		int truth;

		t0 = cpu_now();
		r = e->process(st, pcm + off, frame);
		res.cpu_s += cpu_now() - t0;
		if (r < 0)
			goto out_destroy;
		vad_segmenter_push_onset(&seg, r, vad_engine_onset_ms(e, st),
					 seg_collect, &segs);
		for (; k < t->nseg && t->seg_end[k] <= (int64_t)off; k++)
			;
		for (int j = k; j < t->nseg && t->seg_start[j] < (int64_t)(off + frame); j++) {
			int64_t a = t->seg_start[j] > (int64_t)off ? t->seg_start[j] : (int64_t)off;
			int64_t b = t->seg_end[j] < (int64_t)(off + frame) ? t->seg_end[j] : (int64_t)(off + frame);

			if (b > a)
				overlap += b - a;
		}
		truth = 2 * overlap >= (int64_t)frame;
		res.tp += r && truth;
		res.fp += r && !truth;
		res.fn += !r && truth;
	}
	vad_segmenter_finish(&seg, seg_collect, &segs);
	res.detected = segs.n;
	for (int j = 0; j < t->nseg; j++) {
		int64_t ts = t->seg_start[j] / MS, te = t->seg_end[j] / MS, best = 0;
		int bi = -1;

		for (int i = 0; i < segs.n; i++) {
			int64_t a = segs.start[i] > ts ? segs.start[i] : ts;
			int64_t b = segs.end[i] < te ? segs.end[i] : te;

			if (b - a > best) {
				best = b - a;
				bi = i;
			}
		}
		double es = bi < 0 ? MISS_PENALTY_MS : (double)llabs(segs.start[bi] - ts);
		double ee = bi < 0 ? MISS_PENALTY_MS : (double)llabs(segs.end[bi] - te);

		if (verbose && (es > verbose || ee > verbose))
			printf("  %s mode %d frame %d: truth %lld-%lld, found %lld-%lld\n",
			       e->name, mode, frame_ms, (long long)ts, (long long)te,
			       (long long)(bi < 0 ? -1 : segs.start[bi]),
			       (long long)(bi < 0 ? -1 : segs.end[bi]));
		res.start_err += es / t->nseg;
		res.end_err += ee / t->nseg;
		if (es > res.max_err)
			res.max_err = es;
		if (ee > res.max_err)
			res.max_err = ee;
	}
	*ret = res;
	r = 0;

out_destroy:
	e->destroy(st);
	return r;
}

static int write_u32(FILE *f, uint32_t v)
{
	unsigned char b[4] = { v, v >> 8, v >> 16, v >> 24 };

	return fwrite(b, 1, 4, f) == 4 ? 0 : -EIO;
}

static int write_u16(FILE *f, uint16_t v)
{
	unsigned char b[2] = { v, v >> 8 };

	return fwrite(b, 1, 2, f) == 2 ? 0 : -EIO;
}

/* A 16 kHz mono PCM16 WAV file. */
static int write_wav(const char *path, const int16_t *pcm, size_t n)
{
	FILE *f = fopen(path, "wb");
	uint32_t bytes = (uint32_t)(n * 2);
	int r = 0;

	if (!f)
		return -errno;
	r |= fwrite("RIFF", 1, 4, f) != 4;
	r |= write_u32(f, 36 + bytes);
	r |= fwrite("WAVEfmt ", 1, 8, f) != 8;
	r |= write_u32(f, 16);
	r |= write_u16(f, 1);
	r |= write_u16(f, 1);
	r |= write_u32(f, VAD_RATE);
	r |= write_u32(f, VAD_RATE * 2);
	r |= write_u16(f, 2);
	r |= write_u16(f, 16);
	r |= fwrite("data", 1, 4, f) != 4;
	r |= write_u32(f, bytes);
	for (size_t i = 0; i < n && !r; i++)
		r |= write_u16(f, (uint16_t)pcm[i]);
	if (fclose(f) != 0)
		r = 1;
	return r ? -EIO : 0;
}

static int write_truth(const char *path, const track *t, const condition *c,
		       int band_hz)
{
	FILE *f = fopen(path, "w");
	int r;

	if (!f)
		return -errno;
	fprintf(f, "{\"sample_rate\":%d,\"duration_ms\":%lld,\"condition\":\"%s\","
		"\"band_hz\":%d,", VAD_RATE, (long long)(t->n / MS), c->name,
		band_hz > 0 ? band_hz : VAD_RATE / 2);
	if (c->snr_db < 0)
		fprintf(f, "\"snr_db\":null,\"segments\":[");
	else
		fprintf(f, "\"snr_db\":%g,\"segments\":[", c->snr_db);
	for (int i = 0; i < t->nseg; i++)
		fprintf(f, "%s{\"start_ms\":%lld,\"end_ms\":%lld,\"text\":\"%s\"}",
			i ? "," : "", (long long)(t->truth_start[i] / MS),
			(long long)(t->truth_end[i] / MS), sentences[i]);
	fprintf(f, "]}\n");
	r = ferror(f) ? -EIO : 0;
	if (fclose(f) != 0)
		r = -EIO;
	return r;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: vad_eval [--frame-ms 10|20|30|0] [--engine NAME]\n"
		"                [--write-wav FILE] [--write-truth FILE]\n"
		"                [--condition clean|white20|pink20|white5|pink5]\n"
		"                [--truth-band-hz HZ] [--seed N]\n"
		"                [--show-errors-over MS] [--no-eval]\n");
}

struct options {
	int frame_ms;               /* 10, 20, 30, or 0 for all */
	const char *engine;         /* NULL: all */
	const char *wav, *truth;
	const condition *cond;      /* for --write-* */
	int eval;
	uint64_t seed;              /* noise of condition c: seed + c */
	int verbose;                /* print segments off by more (ms); 0 = none */
	int only_cond;              /* --condition given: evaluate only that */
	int band_hz;                /* --truth-band-hz; 0 = full band */
};

static int parse_args(int argc, char **argv, struct options *o)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--no-eval") == 0) {
			o->eval = 0;
			continue;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			exit(0);
		}
		if (!v)
			return -EINVAL;
		i++;
		if (strcmp(a, "--frame-ms") == 0) {
			o->frame_ms = atoi(v);
			if (o->frame_ms && o->frame_ms != 10 &&
			    o->frame_ms != 20 && o->frame_ms != 30)
				return -EINVAL;
		} else if (strcmp(a, "--show-errors-over") == 0) {
			o->verbose = atoi(v);
			if (o->verbose <= 0)
				return -EINVAL;
		} else if (strcmp(a, "--truth-band-hz") == 0) {
			o->band_hz = atoi(v);
			if (o->band_hz < 1000 || o->band_hz >= VAD_RATE / 2)
				return -EINVAL;
		} else if (strcmp(a, "--seed") == 0) {
			char *end;

			o->seed = strtoull(v, &end, 0);
			if (*end || !o->seed)
				return -EINVAL;
		} else if (strcmp(a, "--engine") == 0) {
			if (!vad_engine_find(v))
				return -EINVAL;
			o->engine = v;
		} else if (strcmp(a, "--write-wav") == 0) {
			o->wav = v;
		} else if (strcmp(a, "--write-truth") == 0) {
			o->truth = v;
		} else if (strcmp(a, "--condition") == 0) {
			o->cond = NULL;
			for (size_t c = 0; c < NCOND; c++)
				if (strcmp(conditions[c].name, v) == 0)
					o->cond = &conditions[c];
			if (!o->cond)
				return -EINVAL;
			o->only_cond = 1;
		} else {
			return -EINVAL;
		}
	}
	return 0;
}

static int write_files(const struct options *o, const track *t)
{
	int16_t *pcm;
	int r = 0;

	if (o->wav) {
		pcm = mix(t, o->cond, o->seed + (uint64_t)(o->cond - conditions));
		if (!pcm)
			return -ENOMEM;
		r = write_wav(o->wav, pcm, t->n);
		free(pcm);
		if (r < 0) {
			fprintf(stderr, "vad_eval: %s: %s\n", o->wav, strerror(-r));
			return r;
		}
	}
	if (o->truth) {
		r = write_truth(o->truth, t, o->cond, o->band_hz);
		if (r < 0)
			fprintf(stderr, "vad_eval: %s: %s\n", o->truth, strerror(-r));
	}
	return r;
}

#define NMODES (VAD_AGGRESSIVENESS_MAX + 1)
#define MAX_ENGINES 8

/* Prints the table and the per-engine summary; 0 or -errno. */
static int run_eval(const struct options *o, const track *t)
{
	static const int all_frames[] = { 10, 20, 30 };
	int16_t *pcm[NCOND] = { 0 };
	double f1_sum[MAX_ENGINES][NMODES] = { { 0 } };
	double err_sum[MAX_ENGINES][NMODES] = { { 0 } };
	double cpu[MAX_ENGINES] = { 0 }, audio_s[MAX_ENGINES] = { 0 };
	int runs[MAX_ENGINES][NMODES] = { { 0 } };
	int r = 0;

	for (size_t c = 0; c < NCOND; c++) {
		pcm[c] = mix(t, &conditions[c], o->seed + c);
		if (!pcm[c]) {
			r = -ENOMEM;
			goto out_free_pcm;
		}
	}
	printf("%d sentences, %.1f s of audio, %d true segments; segmenter "
	       "min_speech %d ms, min_silence %d ms\n\n", (int)NSENT,
	       (double)t->n / VAD_RATE, t->nseg, VAD_MIN_SPEECH_MS_DEFAULT,
	       VAD_MIN_SILENCE_MS_DEFAULT);
	printf("%-8s %4s %-8s %5s %6s %6s %6s %7s %9s %9s %8s\n", "engine",
	       "mode", "cond", "frame", "prec", "recall", "F1", "segs",
	       "start_err", "end_err", "max_err");
	for (int ei = 0; vad_engines[ei] && ei < MAX_ENGINES; ei++) {
		const vad_engine_ops *e = vad_engines[ei];

		if (o->engine && strcmp(o->engine, e->name) != 0)
			continue;
		for (int m = 0; m < NMODES; m++) {
			for (size_t c = 0; c < NCOND; c++) {
				if (o->only_cond && o->cond != &conditions[c])
					continue;
				for (int fi = 0; fi < 3; fi++) {
					int fm = all_frames[fi];
					result res;
					double p, rc, f1;

					if (o->frame_ms && o->frame_ms != fm)
						continue;
					r = evaluate(e, m, fm, t, pcm[c], o->verbose, &res);
					if (r < 0) {
						fprintf(stderr, "vad_eval: %s mode %d: %s\n",
							e->name, m, strerror(-r));
						goto out_free_pcm;
					}
					p = res.tp + res.fp ? (double)res.tp / (double)(res.tp + res.fp) : 0.0;
					rc = res.tp + res.fn ? (double)res.tp / (double)(res.tp + res.fn) : 0.0;
					f1 = p + rc > 0 ? 2 * p * rc / (p + rc) : 0.0;
					printf("%-8s %4d %-8s %5d %6.3f %6.3f %6.3f %3d/%-3d %9.0f %9.0f %8.0f\n",
					       e->name, m, conditions[c].name, fm, p, rc, f1,
					       res.detected, t->nseg, res.start_err,
					       res.end_err, res.max_err);
					f1_sum[ei][m] += f1;
					err_sum[ei][m] += (res.start_err + res.end_err) / 2;
					runs[ei][m]++;
					cpu[ei] += res.cpu_s;
					audio_s[ei] += (double)t->n / VAD_RATE;
				}
			}
		}
	}
	printf("\nsummary (mean over conditions and frame sizes)\n");
	printf("%-8s %4s %7s %14s\n", "engine", "mode", "mean_F1", "mean_bound_err");
	{
		double best = -1.0;
		int be = -1, bm = -1;

		for (int ei = 0; vad_engines[ei] && ei < MAX_ENGINES; ei++) {
			for (int m = 0; m < NMODES; m++) {
				double f1;

				if (!runs[ei][m])
					continue;
				f1 = f1_sum[ei][m] / runs[ei][m];
				printf("%-8s %4d %7.3f %11.0f ms\n", vad_engines[ei]->name,
				       m, f1, err_sum[ei][m] / runs[ei][m]);
				if (f1 > best) {
					best = f1;
					be = ei;
					bm = m;
				}
			}
		}
		printf("\ncpu per second of audio\n");
		for (int ei = 0; vad_engines[ei] && ei < MAX_ENGINES; ei++)
			if (audio_s[ei] > 0)
				printf("%-8s %8.3f ms\n", vad_engines[ei]->name,
				       1000.0 * cpu[ei] / audio_s[ei]);
		if (be >= 0)
			printf("\nbest mean F1: %s mode %d (%.3f)\n",
			       vad_engines[be]->name, bm, best);
	}

out_free_pcm:
	for (size_t c = 0; c < NCOND; c++)
		free(pcm[c]);
	return r;
}

int main(int argc, char **argv)
{
	struct options o = { .frame_ms = 20, .cond = &conditions[1], .eval = 1,
			     .seed = DEFAULT_SEED };
	track t = { 0 };
	int r;

	if (parse_args(argc, argv, &o) < 0) {
		usage(stderr);
		return 2;
	}
	r = track_make(&t, o.band_hz);
	if (r < 0) {
		fprintf(stderr, "vad_eval: synthesis failed: %s\n", strerror(-r));
		return 1;
	}
	r = write_files(&o, &t);
	if (r >= 0 && o.eval)
		r = run_eval(&o, &t);
	free(t.speech);
	return r < 0 ? 1 : 0;
}
