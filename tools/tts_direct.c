/*
 * tts_direct - synthesises text by calling flite directly (not through the
 * voxline engine interface) and prints the wall time, for the benchmark
 * "service overhead vs engine library directly".
 *
 *     tts_direct [-v slt|kal|kal16|awb|rms] [-n runs] [-o out.pcm] "text"
 *
 * Prints one JSON line on stdout:
 *   {"voice":"slt","runs":N,"sample_rate":16000,"samples":N,"audio_ms":N,
 *    "load_ms":N,"wall_ms":N,"min_ms":N,"rtf":N}
 * wall_ms is the mean over runs of flite_text_to_wave (voice loaded once,
 * before timing; load_ms is that load); rtf = wall / audio duration. -o
 * writes the last run's audio as raw s16le mono.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <flite/flite.h>

cst_voice *register_cmu_us_slt(const char *voxdir);
cst_voice *register_cmu_us_kal(const char *voxdir);
cst_voice *register_cmu_us_kal16(const char *voxdir);
cst_voice *register_cmu_us_awb(const char *voxdir);
cst_voice *register_cmu_us_rms(const char *voxdir);

#define TTS_DIRECT_MAX_RUNS 1000

static const struct {
	const char *name;
	cst_voice *(*reg)(const char *voxdir);
} tts_direct_voices[] = {
	{ "slt", register_cmu_us_slt },
	{ "kal", register_cmu_us_kal },
	{ "kal16", register_cmu_us_kal16 },
	{ "awb", register_cmu_us_awb },
	{ "rms", register_cmu_us_rms },
};

static double tts_direct_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void tts_direct_usage(FILE *f)
{
	fprintf(f, "usage: tts_direct [-v slt|kal|kal16|awb|rms] [-n runs 1..%d] "
		"[-o out.pcm] \"text\"\n", TTS_DIRECT_MAX_RUNS);
}

static int tts_direct_write(const char *path, const cst_wave *w)
{
	FILE *f = fopen(path, "wb");
	size_t n = (size_t)w->num_samples;
	int r = 0;

	if (!f)
		return -errno;
	if (fwrite(w->samples, sizeof(short), n, f) != n)
		r = -EIO;
	if (fclose(f) != 0 && r == 0)
		r = -errno;
	return r;
}

int main(int argc, char **argv)
{
	const char *voice = "slt", *out = NULL;
	cst_voice *v = NULL;
	cst_wave *w = NULL;
	double t0, load_ms, sum = 0, min = 0, audio_ms;
	int runs = 1, opt, r;

	while ((opt = getopt(argc, argv, "v:n:o:h")) != -1) {
		switch (opt) {
		case 'v': voice = optarg; break;
		case 'n': runs = atoi(optarg); break;
		case 'o': out = optarg; break;
		case 'h': tts_direct_usage(stdout); return 0;
		default: tts_direct_usage(stderr); return 2;
		}
	}
	if (optind != argc - 1 || runs < 1 || runs > TTS_DIRECT_MAX_RUNS) {
		tts_direct_usage(stderr);
		return 2;
	}

	t0 = tts_direct_now_ms();
	flite_init();
	for (size_t i = 0; i < sizeof(tts_direct_voices) / sizeof(tts_direct_voices[0]); i++)
		if (strcmp(tts_direct_voices[i].name, voice) == 0)
			v = tts_direct_voices[i].reg(NULL);
	if (!v) {
		fprintf(stderr, "tts_direct: unknown voice %s\n", voice);
		return 2;
	}
	load_ms = tts_direct_now_ms() - t0;

	for (int i = 0; i < runs; i++) {
		double dt;

		delete_wave(w);
		t0 = tts_direct_now_ms();
		w = flite_text_to_wave(argv[optind], v);
		dt = tts_direct_now_ms() - t0;
		if (!w) {
			fprintf(stderr, "tts_direct: synthesis failed\n");
			return 1;
		}
		sum += dt;
		if (i == 0 || dt < min)
			min = dt;
	}
	audio_ms = 1e3 * w->num_samples / w->sample_rate;
	printf("{\"voice\":\"%s\",\"runs\":%d,\"sample_rate\":%d,\"samples\":%d,"
	       "\"audio_ms\":%.1f,\"load_ms\":%.3f,\"wall_ms\":%.3f,"
	       "\"min_ms\":%.3f,\"rtf\":%.5f}\n",
	       voice, runs, w->sample_rate, w->num_samples, audio_ms, load_ms,
	       sum / runs, min, audio_ms > 0 ? sum / runs / audio_ms : 0.0);
	r = out ? tts_direct_write(out, w) : 0;
	if (r < 0)
		fprintf(stderr, "tts_direct: %s: %s\n", out, strerror(-r));
	delete_wave(w);
	return r < 0 ? 1 : 0;
}
