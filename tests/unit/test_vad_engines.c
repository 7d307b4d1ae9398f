/*
 * test_vad_engines.c - every registered VAD engine on real audio: digital
 * silence, a flite sentence, low white noise, bad frames; and whole-buffer
 * detection of a sentence placed at a known time.
 */
#include "vad_engine.h"
#include "vx_test.h"

#include <flite/flite.h>

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

cst_voice *register_cmu_us_slt(const char *voxdir);
void unregister_cmu_us_slt(cst_voice *v);

static const int frame_sizes[] = { 160, 320, 480 };

/* Fraction of frames of pcm[0..n) an engine instance calls speech, from
 * frame index skip on (earlier frames still go through the engine). */
static double speech_fraction(const vad_engine_ops *e, int mode,
			      const int16_t *pcm, size_t n, size_t frame,
			      size_t skip_samples)
{
	vad_config cfg = { .aggressiveness = mode };
	size_t total = 0, speech = 0;
	void *st = NULL;

	if (e->create(&cfg, &st) < 0)
		return -1.0;
	for (size_t off = 0; off + frame <= n; off += frame) {
		int r = e->process(st, pcm + off, frame);

		if (r < 0) {
			e->destroy(st);
			return -1.0;
		}
		if (off >= skip_samples) {
			total++;
			speech += (size_t)r;
		}
	}
	e->destroy(st);
	return total ? (double)speech / (double)total : -1.0;
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static double gaussian(void)
{
	double u1, u2;

	rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
	u1 = ((double)((rng * 2685821657736338717ULL) >> 11) + 1.0) / 9007199254740993.0;
	rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
	u2 = (double)((rng * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
	return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

static void add_noise(int16_t *pcm, size_t n, double rms)
{
	for (size_t i = 0; i < n; i++) {
		double v = pcm[i] + rms * gaussian();

		pcm[i] = (int16_t)(v > 32767 ? 32767 : v < -32768 ? -32768 : v);
	}
}

/* A flite sentence at lead_ms into a silent buffer of n samples. Sets the
 * speech interval (first/last sample above -40 dB of the peak). */
static int16_t *sentence_in_silence(size_t lead_ms, size_t tail_ms,
				    size_t *ret_n, size_t *ret_start,
				    size_t *ret_end)
{
	cst_voice *v;
	cst_wave *w;
	int16_t *pcm = NULL;
	double peak = 0.0;
	size_t lead = lead_ms * 16, n, s = 0, e = 0;

	flite_init();
	v = register_cmu_us_slt(NULL);
	if (!v)
		return NULL;
	w = flite_text_to_wave("Please turn on the lights in the kitchen.", v);
	if (!w || w->sample_rate != VAD_RATE)
		goto out_unregister;
	n = lead + (size_t)w->num_samples + tail_ms * 16;
	pcm = calloc(n, sizeof(*pcm));
	if (!pcm)
		goto out_free_wave;
	for (int i = 0; i < w->num_samples; i++)
		pcm[lead + (size_t)i] = w->samples[i];
	/* as tools/vad_eval: 5 ms blocks within 45 dB of the loudest one */
	for (int pass = 0; pass < 2; pass++)
		for (int k = 0; k + 80 <= w->num_samples; k += 80) {
			double en = 0.0;

			for (int i = k; i < k + 80; i++)
				en += (double)w->samples[i] * w->samples[i];
			if (pass == 0 && en > peak)
				peak = en;
			if (pass == 1 && en > peak * 3.16e-5) {
				if (!s)
					s = lead + (size_t)k;
				e = lead + (size_t)k + 80;
			}
		}
	*ret_n = n;
	*ret_start = s;
	*ret_end = e;
out_free_wave:
	delete_wave(w);
out_unregister:
	unregister_cmu_us_slt(v);
	return pcm;
}

VX_TEST(registry_finds_engines_by_name)
{
	VX_CHECK(vad_engines[0] != NULL);
	VX_CHECK(vad_engine_find(NULL) == vad_engines[0]);
	VX_CHECK(vad_engine_find("") == vad_engines[0]);
	VX_CHECK(vad_engine_find("builtin") != NULL);
	VX_CHECK(vad_engine_find("webrtc") != NULL);
	VX_CHECK(vad_engine_find("nope") == NULL);
	for (int i = 0; vad_engines[i]; i++)
		VX_CHECK(vad_engine_find(vad_engines[i]->name) == vad_engines[i]);
}

VX_TEST(digital_silence_is_not_speech)
{
	int16_t *pcm = calloc(3 * VAD_RATE, sizeof(*pcm));

	VX_CHECK(pcm != NULL);
	if (!pcm)
		return;
	for (int i = 0; vad_engines[i]; i++)
		for (int m = 0; m <= VAD_AGGRESSIVENESS_MAX; m++)
			for (int f = 0; f < 3; f++) {
				double fr = speech_fraction(vad_engines[i], m, pcm,
							    3 * VAD_RATE,
							    (size_t)frame_sizes[f], 0);
				if (fr != 0.0)
					fprintf(stderr, "%s mode %d frame %d: %.3f\n",
						vad_engines[i]->name, m,
						frame_sizes[f], fr);
				VX_CHECK(fr == 0.0);
			}
	free(pcm);
}

VX_TEST(flite_sentence_frames_are_mostly_speech)
{
	size_t n = 0, s = 0, e = 0;
	int16_t *pcm = sentence_in_silence(500, 500, &n, &s, &e);

	VX_CHECK(pcm != NULL);
	if (!pcm)
		return;
	VX_CHECK(e > s + VAD_RATE);      /* the sentence is over a second */
	for (int i = 0; vad_engines[i]; i++)
		for (int m = 0; m <= VAD_AGGRESSIVENESS_MAX; m++)
			for (int f = 0; f < 3; f++) {
				size_t fs = (size_t)frame_sizes[f];
				/* the speech part only: frames inside [s, e) */
				size_t a = (s + fs - 1) / fs * fs;
				double inside = speech_fraction(vad_engines[i], m,
								pcm, e, fs, a);
				/* and the 400 ms of silence before it */
				double before = speech_fraction(vad_engines[i], m,
								pcm, s - 1600, fs, 1600);
				if (inside < 0.8 || (m >= 2 && before > 0.1))
					fprintf(stderr, "%s mode %d frame %zu: "
						"speech %.3f, silence %.3f\n",
						vad_engines[i]->name, m, fs,
						inside, before);
				VX_CHECK(inside >= 0.8);
				/* flite's own lead-in is -65 dBFS: the lenient
				 * WebRTC modes call some of it speech */
				if (m >= 2)
					VX_CHECK(before >= 0.0 && before <= 0.1);
			}
	free(pcm);
}

VX_TEST(low_white_noise_is_mostly_not_speech)
{
	size_t n = 6 * VAD_RATE;
	int16_t *pcm = calloc(n, sizeof(*pcm));

	VX_CHECK(pcm != NULL);
	if (!pcm)
		return;
	add_noise(pcm, n, 100.0);        /* about -50 dBFS */
	for (int i = 0; vad_engines[i]; i++)
		for (int m = 2; m <= VAD_AGGRESSIVENESS_MAX; m++)
			for (int f = 0; f < 3; f++) {
				/* judged after the first second (adaptation) */
				double fr = speech_fraction(vad_engines[i], m, pcm, n,
							    (size_t)frame_sizes[f],
							    VAD_RATE);
				if (fr < 0.0 || fr > 0.1)
					fprintf(stderr, "%s mode %d frame %d: %.3f\n",
						vad_engines[i]->name, m,
						frame_sizes[f], fr);
				VX_CHECK(fr >= 0.0 && fr <= 0.1);
			}
	free(pcm);
}

VX_TEST(builtin_noise_floor_follows_louder_noise)
{
	size_t n = 8 * VAD_RATE, step = 2 * VAD_RATE;
	int16_t *pcm = calloc(n, sizeof(*pcm));
	const vad_engine_ops *e = vad_engine_find("builtin");

	VX_CHECK(pcm != NULL && e != NULL);
	if (!pcm || !e)
		return;
	add_noise(pcm, step, 60.0);
	add_noise(pcm + step, n - step, 1200.0);   /* +26 dB at 2 s */
	/* judged over the last 3 s: 3 s after the jump */
	for (int m = 0; m <= VAD_AGGRESSIVENESS_MAX; m++) {
		double fr = speech_fraction(e, m, pcm, n, 320, 5 * VAD_RATE);

		if (fr < 0.0 || fr > 0.1)
			fprintf(stderr, "mode %d: %.3f\n", m, fr);
		VX_CHECK(fr >= 0.0 && fr <= 0.1);
	}
	free(pcm);
}

VX_TEST(wrong_frame_size_is_einval)
{
	int16_t pcm[VAD_FRAME_MAX * 2] = { 0 };
	static const size_t bad[] = { 0, 1, 159, 161, 240, 321, 640, 960 };

	for (int i = 0; vad_engines[i]; i++) {
		const vad_engine_ops *e = vad_engines[i];
		vad_config cfg = { .aggressiveness = 1 };
		void *st = NULL;

		VX_CHECK_INT(e->create(&cfg, &st), 0);
		if (!st)
			continue;
		for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++)
			VX_CHECK_INT(e->process(st, pcm, bad[k]), -EINVAL);
		VX_CHECK_INT(e->process(st, NULL, 320), -EINVAL);
		/* still usable, and frame sizes may change */
		VX_CHECK_INT(e->process(st, pcm, 160), 0);
		VX_CHECK_INT(e->process(st, pcm, 480), 0);
		VX_CHECK_INT(e->process(st, pcm, 320), 0);
		e->destroy(st);
		e->destroy(NULL);
	}
}

VX_TEST(bad_aggressiveness_is_einval)
{
	for (int i = 0; vad_engines[i]; i++) {
		void *st = (void *)&st;
		vad_config lo = { .aggressiveness = -1 };
		vad_config hi = { .aggressiveness = VAD_AGGRESSIVENESS_MAX + 1 };

		VX_CHECK_INT(vad_engines[i]->create(&lo, &st), -EINVAL);
		VX_CHECK_INT(vad_engines[i]->create(&hi, &st), -EINVAL);
		VX_CHECK(st == (void *)&st);   /* untouched on failure */
	}
}

VX_TEST(detect_finds_sentence_within_100ms)
{
	size_t n = 0, s = 0, e = 0;
	int16_t *pcm = sentence_in_silence(1200, 1000, &n, &s, &e);
	vad_seg_config scfg = { .frame_ms = 20, .min_speech_ms = 250,
				.min_silence_ms = 300 };

	VX_CHECK(pcm != NULL);
	if (!pcm)
		return;
	add_noise(pcm, n, 30.0);
	for (int i = 0; vad_engines[i]; i++) {
		vad_config cfg = { .aggressiveness = 2 };
		vad_segments segs = { 0 };
		int r = vad_engine_detect(vad_engines[i], &cfg, &scfg, pcm, n,
					  &segs);

		VX_CHECK_INT(r, 0);
		VX_CHECK_INT(segs.n, 1);
		VX_CHECK_INT(segs.duration_ms, (int64_t)(n / 16));
		if (segs.n == 1) {
			long long ds = llabs(segs.v[0].start_ms - (int64_t)(s / 16));
			long long de = llabs(segs.v[0].end_ms - (int64_t)(e / 16));

			if (ds > 100 || de > 100)
				fprintf(stderr, "%s: [%lld, %lld] vs [%zu, %zu]\n",
					vad_engines[i]->name,
					(long long)segs.v[0].start_ms,
					(long long)segs.v[0].end_ms, s / 16, e / 16);
			VX_CHECK(ds <= 100);
			VX_CHECK(de <= 100);
			VX_CHECK_INT(segs.speech_ms,
				     segs.v[0].end_ms - segs.v[0].start_ms);
		}
		vad_segments_release(&segs);
	}
	/* an odd length ends in a zero-padded partial frame */
	{
		vad_segments segs = { 0 };
		vad_config cfg = { .aggressiveness = 0 };

		VX_CHECK_INT(vad_engine_detect(vad_engines[0], &cfg, &scfg, pcm,
					       s + 12345, &segs), 0);
		VX_CHECK(segs.n == 1);
		if (segs.n == 1)
			VX_CHECK(segs.v[0].end_ms <= (int64_t)((s + 12345) / 16));
		vad_segments_release(&segs);
		VX_CHECK_INT(vad_engine_detect(NULL, &cfg, &scfg, pcm, n, &segs),
			     -EINVAL);
	}
	free(pcm);
}

VX_TEST_MAIN(registry_finds_engines_by_name, digital_silence_is_not_speech,
	     flite_sentence_frames_are_mostly_speech,
	     low_white_noise_is_mostly_not_speech,
	     builtin_noise_floor_follows_louder_noise,
	     wrong_frame_size_is_einval, bad_aggressiveness_is_einval,
	     detect_finds_sentence_within_100ms)
