/* test_vx_resampler.c - streaming soxr resampler: length, pitch, aliasing. */
#include "vx_audio.h"
#include "vx_test.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

static int16_t *make_sine(int rate, double hz, double amp, size_t n)
{
	int16_t *s = malloc(n * sizeof(*s));
	for (size_t i = 0; s && i < n; i++)
		s[i] = (int16_t)lrint(amp * sin(2 * M_PI * hz * (double)i / rate));
	return s;
}

/* Feeds n samples in chunks of chunk, then flushes; output into out. */
static int stream(vx_resampler *r, const int16_t *in, size_t n, size_t chunk,
		  vx_buf *out)
{
	for (size_t off = 0; off < n; off += chunk) {
		size_t k = n - off < chunk ? n - off : chunk;
		int ret = vx_resampler_process(r, in + off, k, out);
		if (ret < 0)
			return ret;
	}
	return vx_resampler_flush(r, out);
}

/* Frequency from upward zero crossings over [from, to). */
static double crossing_hz(const int16_t *s, size_t from, size_t to, int rate)
{
	size_t first = 0, last = 0, count = 0;
	for (size_t i = from + 1; i < to; i++) {
		if (s[i - 1] < 0 && s[i] >= 0) {
			if (!count)
				first = i;
			last = i;
			count++;
		}
	}
	if (count < 2)
		return 0;
	return (double)(count - 1) * rate / (double)(last - first);
}

static double rms(const int16_t *s, size_t from, size_t to)
{
	double sum = 0;
	for (size_t i = from; i < to; i++)
		sum += (double)s[i] * s[i];
	return to > from ? sqrt(sum / (double)(to - from)) : 0;
}

VX_TEST(one_second_8k_in_160_chunks_is_16000_samples_at_16k)
{
	int16_t *in = make_sine(8000, 440, 10000, 8000);
	vx_resampler *r = NULL;
	vx_buf out = {0};
	VX_CHECK_INT(vx_resampler_new(8000, 16000, &r), 0);
	VX_CHECK_INT(stream(r, in, 8000, 160, &out), 0);
	size_t n = out.len / sizeof(int16_t);
	if (n < 15990 || n > 16010)
		fprintf(stderr, "got %zu samples\n", n);
	VX_CHECK(n >= 15990 && n <= 16010);
	VX_CHECK_INT(out.len % 2, 0);
	vx_buf_release(&out);
	vx_resampler_free(r);
	free(in);
}

VX_TEST(sine_keeps_its_frequency_up_and_down)
{
	const int pairs[][2] = { { 8000, 16000 }, { 48000, 16000 }, { 44100, 16000 },
				 { 16000, 24000 }, { 22050, 8000 } };
	for (size_t p = 0; p < sizeof(pairs) / sizeof(pairs[0]); p++) {
		int ir = pairs[p][0], orate = pairs[p][1];
		size_t n = (size_t)ir * 2;
		int16_t *in = make_sine(ir, 440, 12000, n);
		vx_resampler *r = NULL;
		vx_buf out = {0};
		VX_CHECK_INT(vx_resampler_new(ir, orate, &r), 0);
		VX_CHECK_INT(stream(r, in, n, (size_t)ir / 50, &out), 0);
		const int16_t *s = (const int16_t *)out.data;
		size_t m = out.len / sizeof(int16_t);
		/* steady state: skip 100 ms at both ends */
		double hz = crossing_hz(s, (size_t)orate / 10, m - (size_t)orate / 10, orate);
		double level = rms(s, (size_t)orate / 10, m - (size_t)orate / 10);
		if (fabs(hz - 440) > 1 || fabs(level - 12000 / sqrt(2)) > 300)
			fprintf(stderr, "%d->%d: %.2f Hz, rms %.0f\n", ir, orate, hz, level);
		VX_CHECK(fabs(hz - 440) <= 1);
		VX_CHECK(fabs(level - 12000 / sqrt(2)) <= 300);
		VX_CHECK(m >= (size_t)orate * 2 - 10 && m <= (size_t)orate * 2 + 10);
		vx_buf_release(&out);
		vx_resampler_free(r);
		free(in);
	}
}

VX_TEST(downsampling_rejects_tones_above_nyquist)
{
	/* 10 kHz at 48 kHz would alias to 6 kHz at 16 kHz without a filter */
	size_t n = 48000;
	int16_t *in = make_sine(48000, 10000, 16000, n);
	vx_resampler *r = NULL;
	vx_buf out = {0};
	VX_CHECK_INT(vx_resampler_new(48000, 16000, &r), 0);
	VX_CHECK_INT(stream(r, in, n, 960, &out), 0);
	size_t m = out.len / sizeof(int16_t);
	double level = rms((const int16_t *)out.data, 1600, m - 1600);
	if (level > 16000 / sqrt(2) / 100)
		fprintf(stderr, "alias rms %.1f\n", level);
	VX_CHECK(m > 15000);
	VX_CHECK(level < 16000 / sqrt(2) / 100); /* at least 40 dB down */
	vx_buf_release(&out);
	vx_resampler_free(r);
	free(in);
}

VX_TEST(latency_is_low_with_20ms_chunks)
{
	/* After 200 ms of input at most 80 ms of output may still be held. */
	int16_t *in = make_sine(8000, 300, 8000, 1600);
	vx_resampler *r = NULL;
	vx_buf out = {0};
	VX_CHECK_INT(vx_resampler_new(8000, 16000, &r), 0);
	for (int k = 0; k < 10; k++)
		VX_CHECK_INT(vx_resampler_process(r, in + k * 160, 160, &out), 0);
	size_t m = out.len / sizeof(int16_t);
	printf("  8k->16k: %zu of 3200 samples out after 200 ms (lag %.0f ms)\n",
	       m, (3200.0 - (double)m) / 16.0);
	VX_CHECK(m >= 3200 - 80 * 16);
	vx_buf_release(&out);
	vx_resampler_free(r);
	free(in);
}

VX_TEST(reusable_after_flush)
{
	int16_t *in = make_sine(16000, 1000, 5000, 16000);
	vx_resampler *r = NULL;
	VX_CHECK_INT(vx_resampler_new(16000, 8000, &r), 0);
	for (int round = 0; round < 2; round++) {
		vx_buf out = {0};
		VX_CHECK_INT(stream(r, in, 16000, 320, &out), 0);
		size_t m = out.len / sizeof(int16_t);
		VX_CHECK(m >= 7990 && m <= 8010);
		double hz = crossing_hz((const int16_t *)out.data, 800, m - 800, 8000);
		VX_CHECK(fabs(hz - 1000) <= 2);
		vx_buf_release(&out);
	}
	vx_resampler_free(r);
	free(in);
}

VX_TEST(equal_rates_pass_through)
{
	int16_t in[480];
	for (int i = 0; i < 480; i++)
		in[i] = (int16_t)(i * 37 - 9000);
	vx_resampler *r = NULL;
	vx_buf out = {0};
	VX_CHECK_INT(vx_resampler_new(16000, 16000, &r), 0);
	VX_CHECK_INT(vx_resampler_process(r, in, 480, &out), 0);
	VX_CHECK_INT(vx_resampler_flush(r, &out), 0);
	VX_CHECK_INT(out.len, sizeof(in));
	VX_CHECK(out.len == sizeof(in) && memcmp(out.data, in, sizeof(in)) == 0);
	vx_buf_release(&out);
	vx_resampler_free(r);
}

VX_TEST(bad_arguments)
{
	vx_resampler *r = (vx_resampler *)&r;
	VX_CHECK_INT(vx_resampler_new(0, 16000, &r), -EINVAL);
	VX_CHECK_INT(vx_resampler_new(8000, -1, &r), -EINVAL);
	VX_CHECK_INT(vx_resampler_new(8000, VX_AUDIO_MAX_RATE + 1, &r), -EINVAL);
	VX_CHECK(r == (vx_resampler *)&r); /* untouched on failure */
	VX_CHECK_INT(vx_resampler_new(8000, 16000, NULL), -EINVAL);
	VX_CHECK_INT(vx_resampler_new(8000, 16000, &r), 0);
	vx_buf out = {0};
	VX_CHECK_INT(vx_resampler_process(r, NULL, 10, &out), -EINVAL);
	VX_CHECK_INT(vx_resampler_process(r, NULL, 0, &out), 0);
	VX_CHECK_INT(vx_resampler_flush(r, NULL), -EINVAL);
	vx_resampler_free(r);
	vx_resampler_free(NULL);
}

VX_TEST_MAIN(one_second_8k_in_160_chunks_is_16000_samples_at_16k,
	     sine_keeps_its_frequency_up_and_down,
	     downsampling_rejects_tones_above_nyquist,
	     latency_is_low_with_20ms_chunks, reusable_after_flush,
	     equal_rates_pass_through, bad_arguments)
