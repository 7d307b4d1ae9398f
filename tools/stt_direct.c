/*
 * stt_direct - transcribes a WAV file by calling pocketsphinx directly, not
 * through voxline's engine interface or any service: the baseline for the
 * benchmark "service overhead vs engine library directly".
 *
 * Uses the same model and decoder options as the "pocketsphinx" engine
 * (services/stt/engine_pocketsphinx.c): -samprate 16000 -remove_noise no.
 * The input must be 16 kHz; channels are averaged to mono.
 *
 *     stt_direct [-n REPEAT] file.wav
 * prints the text, then "load_ms N audio_ms N decode_ms N rtf X" (decode
 * time is the mean over REPEAT runs, default 1).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <pocketsphinx.h>
#include <sndfile.h>
#include <sphinxbase/err.h>

#define DIRECT_MODEL_ROOT "/usr/share/pocketsphinx/model/en-us"
#define DIRECT_RATE 16000
#define DIRECT_MAX_SECONDS 600
#define DIRECT_REPEAT_MAX 1000
#define DIRECT_CHUNK 1600            /* samples per ps_process_raw */

static double direct_now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* The file as 16 kHz mono PCM16; caller frees. */
static int direct_read_wav(const char *path, int16_t **ret_pcm, size_t *ret_n)
{
	SF_INFO info = { 0 };
	SNDFILE *f = sf_open(path, SFM_READ, &info);
	int16_t *frames, *mono;
	sf_count_t got;
	int err = 0;

	if (!f)
		return -ENOENT;
	if (info.samplerate != DIRECT_RATE || info.channels < 1 ||
	    info.frames > (sf_count_t)DIRECT_MAX_SECONDS * DIRECT_RATE) {
		err = -EINVAL;
		goto out_close;
	}
	frames = malloc((size_t)info.frames * (size_t)info.channels * sizeof(*frames));
	mono = malloc(((size_t)info.frames + 1) * sizeof(*mono));
	if (!frames || !mono) {
		free(frames);
		free(mono);
		err = -ENOMEM;
		goto out_close;
	}
	got = sf_readf_short(f, frames, info.frames);
	for (sf_count_t i = 0; i < got; i++) {
		long sum = 0;

		for (int c = 0; c < info.channels; c++)
			sum += frames[i * info.channels + c];
		mono[i] = (int16_t)(sum / info.channels);
	}
	free(frames);
	*ret_pcm = mono;
	*ret_n = (size_t)got;
out_close:
	sf_close(f);
	return err;
}

int main(int argc, char **argv)
{
	int repeat = 1, opt, err;
	int16_t *pcm = NULL;
	size_t n = 0;
	cmd_ln_t *config;
	ps_decoder_t *ps;
	const char *hyp = NULL;
	double t, load_ms, decode_ms = 0;

	while ((opt = getopt(argc, argv, "n:")) != -1) {
		if (opt != 'n')
			goto usage;
		repeat = atoi(optarg);
		if (repeat < 1 || repeat > DIRECT_REPEAT_MAX)
			goto usage;
	}
	if (optind + 1 != argc)
		goto usage;
	err = direct_read_wav(argv[optind], &pcm, &n);
	if (err < 0) {
		fprintf(stderr, "stt_direct: %s: %s (need a 16 kHz WAV)\n",
			argv[optind], strerror(-err));
		return 1;
	}
	err_set_logfp(NULL);
	t = direct_now_ms();
	config = cmd_ln_init(NULL, ps_args(), 1,
			     "-hmm", DIRECT_MODEL_ROOT "/en-us",
			     "-dict", DIRECT_MODEL_ROOT "/cmudict-en-us.dict",
			     "-lm", DIRECT_MODEL_ROOT "/en-us.lm.bin",
			     "-samprate", "16000", "-remove_noise", "no", NULL);
	ps = config ? ps_init(config) : NULL;
	load_ms = direct_now_ms() - t;
	if (!ps) {
		fprintf(stderr, "stt_direct: cannot load the pocketsphinx model\n");
		free(pcm);
		cmd_ln_free_r(config);
		return 1;
	}
	for (int i = 0; i < repeat; i++) {
		t = direct_now_ms();
		ps_start_utt(ps);
		/* in 100 ms pieces, as the engine feeds it */
		for (size_t off = 0; off < n; off += DIRECT_CHUNK)
			ps_process_raw(ps, pcm + off,
				       n - off < DIRECT_CHUNK ? n - off : DIRECT_CHUNK,
				       0, 0);
		ps_end_utt(ps);
		hyp = ps_get_hyp(ps, NULL);
		decode_ms += direct_now_ms() - t;
	}
	decode_ms /= repeat;
	printf("%s\n", hyp ? hyp : "");
	printf("load_ms %.1f audio_ms %.1f decode_ms %.1f rtf %.3f\n", load_ms,
	       (double)n * 1000.0 / DIRECT_RATE, decode_ms,
	       n ? decode_ms / ((double)n * 1000.0 / DIRECT_RATE) : 0.0);
	ps_free(ps);
	cmd_ln_free_r(config);
	free(pcm);
	return 0;

usage:
	fprintf(stderr, "usage: stt_direct [-n REPEAT] file.wav\n");
	return 2;
}
