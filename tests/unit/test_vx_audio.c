/* test_vx_audio.c - decode / convert / encode on audio the tests make. */
#include "vx_audio.h"
#include "vx_test.h"

#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <ogg/ogg.h>
#include <sndfile.h>

#define BIG (1u << 24) /* max_frames when a test is not about the limit */

/* frames of a sine at hz on every channel (channel c at amp / (c + 1)). */
static int16_t *make_sine(int rate, int channels, double hz, double amp,
			  size_t frames)
{
	int16_t *s = malloc(frames * (size_t)channels * sizeof(*s) + 1);
	for (size_t i = 0; s && i < frames; i++)
		for (int c = 0; c < channels; c++)
			s[i * (size_t)channels + (size_t)c] = (int16_t)lrint(
				amp / (c + 1) * sin(2 * M_PI * hz * (double)i / rate));
	return s;
}

/* Frequency of channel ch from upward zero crossings in [from, to). */
static double crossing_hz(const vx_pcm *p, int ch, size_t from, size_t to)
{
	size_t first = 0, last = 0, count = 0, n = (size_t)p->channels;
	for (size_t i = from + 1; i < to && i < p->frames; i++) {
		int16_t a = p->data[(i - 1) * n + (size_t)ch], b = p->data[i * n + (size_t)ch];
		if (a < 0 && b >= 0) {
			if (!count)
				first = i;
			last = i;
			count++;
		}
	}
	return count < 2 ? 0 : (double)(count - 1) * p->rate / (double)(last - first);
}

static double rms(const vx_pcm *p, int ch, size_t from, size_t to)
{
	double sum = 0;
	size_t n = 0;
	for (size_t i = from; i < to && i < p->frames; i++, n++) {
		double v = p->data[i * (size_t)p->channels + (size_t)ch];
		sum += v * v;
	}
	return n ? sqrt(sum / (double)n) : 0;
}

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

static void put16(unsigned char *p, unsigned v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

/* A canonical 44-byte-header WAV; data_claim is what the header says. */
static unsigned char *make_wav(unsigned tag, unsigned channels, uint32_t rate,
			       unsigned bits, const void *data, size_t len,
			       uint32_t data_claim, size_t *ret_len)
{
	unsigned char *w = malloc(44 + len);
	if (!w)
		return NULL;
	memcpy(w, "RIFF", 4);
	put32(w + 4, (uint32_t)(36 + len));
	memcpy(w + 8, "WAVEfmt ", 8);
	put32(w + 16, 16);
	put16(w + 20, tag);
	put16(w + 22, channels);
	put32(w + 24, rate);
	put32(w + 28, rate * channels * bits / 8);
	put16(w + 32, channels * bits / 8);
	put16(w + 34, bits);
	memcpy(w + 36, "data", 4);
	put32(w + 40, data_claim);
	if (len)
		memcpy(w + 44, data, len);
	*ret_len = 44 + len;
	return w;
}

/* ---- decoding ------------------------------------------------------------ */

VX_TEST(wav_round_trip_is_exact)
{
	int16_t *s = make_sine(22050, 2, 440, 20000, 5000);
	vx_buf b = {0};
	vx_pcm p = {0};
	VX_CHECK_INT(vx_audio_encode(s, 5000, 22050, 2, VX_FMT_WAV, &b), 0);
	VX_CHECK(b.len == 44 + 5000 * 4 && memcmp(b.data, "RIFF", 4) == 0);
	VX_CHECK_INT(vx_audio_decode(b.data, b.len, NULL, BIG, &p), 0);
	VX_CHECK_INT(p.frames, 5000);
	VX_CHECK_INT(p.rate, 22050);
	VX_CHECK_INT(p.channels, 2);
	VX_CHECK(p.data && memcmp(p.data, s, 5000 * 4) == 0);
	vx_pcm_release(&p);
	VX_CHECK(p.data == NULL && p.frames == 0);
	vx_buf_release(&b);
	free(s);
}

VX_TEST(flac_round_trip_is_exact)
{
	int16_t *s = make_sine(16000, 1, 300, 30000, 16000);
	s[100] = -32768;
	s[101] = 32767;
	vx_buf b = {0};
	vx_pcm p = {0};
	VX_CHECK_INT(vx_audio_encode(s, 16000, 16000, 1, VX_FMT_FLAC, &b), 0);
	VX_CHECK(b.len > 4 && b.len < 32000 && memcmp(b.data, "fLaC", 4) == 0);
	VX_CHECK_INT(vx_audio_decode(b.data, b.len, NULL, BIG, &p), 0);
	VX_CHECK_INT(p.frames, 16000);
	VX_CHECK_INT(p.rate, 16000);
	VX_CHECK(p.data && memcmp(p.data, s, 16000 * 2) == 0);
	vx_pcm_release(&p);
	vx_buf_release(&b);
	free(s);
}

VX_TEST(pcm_round_trip_is_little_endian_and_exact)
{
	int16_t s[4] = { 1, -2, 0x1234, -32768 };
	vx_buf b = {0};
	vx_pcm p = {0};
	VX_CHECK_INT(vx_audio_encode(s, 2, 8000, 2, VX_FMT_PCM, &b), 0);
	VX_CHECK_INT(b.len, 8);
	VX_CHECK(b.len == 8 && memcmp(b.data, "\x01\x00\xfe\xff\x34\x12\x00\x80", 8) == 0);
	vx_audio_in in = { VX_ENC_PCM16, 8000, 2 };
	VX_CHECK_INT(vx_audio_decode(b.data, b.len, &in, BIG, &p), 0);
	VX_CHECK_INT(p.frames, 2);
	VX_CHECK_INT(p.channels, 2);
	VX_CHECK(p.data && memcmp(p.data, s, sizeof(s)) == 0);
	vx_pcm_release(&p);
	vx_buf_release(&b);
}

/* Lossy codecs: same length, same pitch, same level. */
static void check_lossy_round_trip(vx_format f, int rate, int want_rate)
{
	size_t frames = (size_t)rate; /* 1 s */
	int16_t *s = make_sine(rate, 1, 440, 10000, frames);
	vx_buf b = {0};
	vx_pcm p = {0};
	VX_CHECK_INT(vx_audio_encode(s, frames, rate, 1, f, &b), 0);
	VX_CHECK(b.len > 100 && b.len < frames); /* compressed */
	VX_CHECK_INT(vx_audio_decode(b.data, b.len, NULL, BIG, &p), 0);
	VX_CHECK_INT(p.rate, want_rate);
	VX_CHECK_INT(p.channels, 1);
	VX_CHECK(p.frames + 2000 > (size_t)want_rate && p.frames < (size_t)want_rate + 2000);
	double hz = crossing_hz(&p, 0, p.frames / 10, p.frames * 9 / 10);
	double level = rms(&p, 0, p.frames / 10, p.frames * 9 / 10);
	if (fabs(hz - 440) > 2 || fabs(level - 10000 / sqrt(2)) > 700)
		fprintf(stderr, "format %d: %zu frames, %.1f Hz, rms %.0f\n", f,
			p.frames, hz, level);
	VX_CHECK(fabs(hz - 440) <= 2);
	VX_CHECK(fabs(level - 10000 / sqrt(2)) <= 700);
	vx_pcm_release(&p);
	vx_buf_release(&b);
	free(s);
}

VX_TEST(opus_round_trip_keeps_valid_rate)
{
	check_lossy_round_trip(VX_FMT_OPUS, 16000, 16000);
	check_lossy_round_trip(VX_FMT_OPUS, 48000, 48000);
}

VX_TEST(opus_resamples_invalid_rates)
{
	check_lossy_round_trip(VX_FMT_OPUS, 44100, 48000);
	check_lossy_round_trip(VX_FMT_OPUS, 22050, 24000);
	check_lossy_round_trip(VX_FMT_OPUS, 11025, 12000);
}

VX_TEST(mp3_round_trip_or_not_supported)
{
	SF_INFO info = { .samplerate = 16000, .channels = 1,
			 .format = SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III };
	if (!sf_format_check(&info)) {
		vx_buf b = {0};
		int16_t s[1] = {0};
		VX_CHECK_INT(vx_audio_encode(s, 1, 16000, 1, VX_FMT_MP3, &b), -ENOTSUP);
		VX_CHECK_INT(b.len, 0);
		return;
	}
	check_lossy_round_trip(VX_FMT_MP3, 16000, 16000);
	check_lossy_round_trip(VX_FMT_MP3, 44100, 44100);
	check_lossy_round_trip(VX_FMT_MP3, 30000, 32000);
}

VX_TEST(g711_round_trip)
{
	const vx_format fmts[] = { VX_FMT_MULAW, VX_FMT_ALAW };
	const vx_encoding encs[] = { VX_ENC_MULAW, VX_ENC_ALAW };
	int16_t *s = make_sine(8000, 1, 440, 12000, 8000);
	for (int k = 0; k < 2; k++) {
		vx_buf b = {0};
		vx_pcm p = {0};
		VX_CHECK_INT(vx_audio_encode(s, 8000, 8000, 1, fmts[k], &b), 0);
		VX_CHECK_INT(b.len, 8000);
		vx_audio_in in = { encs[k], 8000, 0 };
		VX_CHECK_INT(vx_audio_decode(b.data, b.len, &in, BIG, &p), 0);
		VX_CHECK_INT(p.frames, 8000);
		VX_CHECK_INT(p.rate, 8000);
		double err = 0, sig = 0;
		for (size_t i = 0; p.data && i < 8000; i++) {
			int16_t want = k == 0 ? vx_g711_ulaw_decode(vx_g711_ulaw_encode(s[i]))
					      : vx_g711_alaw_decode(vx_g711_alaw_encode(s[i]));
			VX_CHECK(p.data[i] == want);
			if (p.data[i] != want)
				break;
			err += (double)(p.data[i] - s[i]) * (p.data[i] - s[i]);
			sig += (double)s[i] * s[i];
		}
		VX_CHECK(err > 0 && 10 * log10(sig / err) > 30); /* G.711 SNR ~ 38 dB */
		vx_pcm_release(&p);
		vx_buf_release(&b);
	}
	free(s);
}

VX_TEST(float_wav_keeps_its_level)
{
	float f[4] = { 0.5f, -0.25f, 1.5f, -2.0f };
	size_t len;
	unsigned char *w = make_wav(3, 1, 16000, 32, f, sizeof(f), sizeof(f), &len);
	vx_pcm p = {0};
	VX_CHECK_INT(vx_audio_decode(w, len, NULL, BIG, &p), 0);
	VX_CHECK_INT(p.frames, 4);
	if (p.frames == 4) {
		VX_CHECK_INT(p.data[0], 16384);
		VX_CHECK_INT(p.data[1], -8192);
		VX_CHECK_INT(p.data[2], 32767);  /* clipped */
		VX_CHECK_INT(p.data[3], -32768);
	}
	vx_pcm_release(&p);
	free(w);
}

VX_TEST(truncated_wav)
{
	int16_t *s = make_sine(16000, 1, 440, 10000, 1000);
	vx_buf b = {0};
	vx_pcm p = {0};
	VX_CHECK_INT(vx_audio_encode(s, 1000, 16000, 1, VX_FMT_WAV, &b), 0);
	VX_CHECK_INT(vx_audio_decode(b.data, 10, NULL, BIG, &p), -EBADMSG);
	VX_CHECK_INT(vx_audio_decode(b.data, 44, NULL, BIG, &p), -EBADMSG);
	VX_CHECK(p.data == NULL); /* untouched on failure */
	/* header claims 1000 frames, 28 are there: libsndfile reads those */
	VX_CHECK_INT(vx_audio_decode(b.data, 100, NULL, BIG, &p), 0);
	VX_CHECK_INT(p.frames, 28);
	VX_CHECK(p.data && memcmp(p.data, s, 28 * 2) == 0);
	vx_pcm_release(&p);
	VX_CHECK_INT(vx_audio_decode(b.data, 101, NULL, BIG, &p), 0);
	VX_CHECK_INT(p.frames, 28); /* half a sample is dropped */
	vx_pcm_release(&p);
	vx_buf_release(&b);
	free(s);
}

VX_TEST(truncated_or_corrupt_flac_and_opus)
{
	int16_t *s = make_sine(16000, 1, 440, 10000, 16000);
	const vx_format fmts[] = { VX_FMT_FLAC, VX_FMT_OPUS };
	for (int k = 0; k < 2; k++) {
		vx_buf b = {0};
		vx_pcm p = {0};
		VX_CHECK_INT(vx_audio_encode(s, 16000, 16000, 1, fmts[k], &b), 0);
		size_t cuts[] = { 10, 44, 100, b.len / 2, b.len - 1 };
		for (int c = 0; c < 5; c++) {
			int r = vx_audio_decode(b.data, cuts[c], NULL, BIG, &p);
			if (r != -EBADMSG)
				fprintf(stderr, "format %d cut at %zu: %d\n", fmts[k], cuts[c], r);
			VX_CHECK_INT(r, -EBADMSG);
		}
		for (size_t i = b.len / 2; i < b.len / 2 + 200 && i < b.len; i++)
			b.data[i] ^= 0x5a;
		VX_CHECK_INT(vx_audio_decode(b.data, b.len, NULL, BIG, &p), -EBADMSG);
		VX_CHECK(p.data == NULL);
		vx_buf_release(&b);
	}
	free(s);
}

VX_TEST(corrupt_header_and_garbage)
{
	int16_t d[100] = {0};
	size_t len;
	vx_pcm p = {0};
	unsigned char *w = make_wav(1, 1, 16000, 16, d, sizeof(d), sizeof(d), &len);
	VX_CHECK_INT(vx_audio_decode(w, len, NULL, BIG, &p), 0);
	vx_pcm_release(&p);
	memcpy(w + 8, "WAVX", 4);
	VX_CHECK_INT(vx_audio_decode(w, len, NULL, BIG, &p), -EBADMSG);
	free(w);
	w = make_wav(1, 0, 16000, 16, d, sizeof(d), sizeof(d), &len); /* 0 channels */
	VX_CHECK_INT(vx_audio_decode(w, len, NULL, BIG, &p), -EBADMSG);
	free(w);
	w = make_wav(0x1234, 1, 16000, 16, d, sizeof(d), sizeof(d), &len); /* codec */
	VX_CHECK_INT(vx_audio_decode(w, len, NULL, BIG, &p), -EBADMSG);
	free(w);
	w = make_wav(1, 1, 16000, 0, d, sizeof(d), sizeof(d), &len); /* 0 bits */
	VX_CHECK_INT(vx_audio_decode(w, len, NULL, BIG, &p), -EBADMSG);
	free(w);
	w = make_wav(1, 1, 16000, 16, d, sizeof(d), sizeof(d), &len);
	put32(w + 16, 4); /* fmt chunk too short for a format */
	VX_CHECK_INT(vx_audio_decode(w, len, NULL, BIG, &p), -EBADMSG);
	free(w);
	w = make_wav(1, 1, 0, 16, d, sizeof(d), sizeof(d), &len); /* 0 Hz */
	VX_CHECK_INT(vx_audio_decode(w, len, NULL, BIG, &p), -EBADMSG);
	free(w);
	w = make_wav(1, 40, 16000, 16, d, 80, 80, &len); /* too many channels */
	VX_CHECK_INT(vx_audio_decode(w, len, NULL, BIG, &p), -ENOTSUP);
	free(w);

	const char *text = "this is not audio at all, just some text\n";
	VX_CHECK_INT(vx_audio_decode(text, strlen(text), NULL, BIG, &p), -EBADMSG);
	unsigned char g[4096];
	for (unsigned seed = 1; seed <= 50; seed++) {
		unsigned x = seed;
		for (size_t i = 0; i < sizeof(g); i++) {
			x = x * 1103515245u + 12345u;
			g[i] = (unsigned char)(x >> 16);
		}
		int r = vx_audio_decode(g, sizeof(g), NULL, BIG, &p);
		if (r != -EBADMSG)
			fprintf(stderr, "random seed %u: %d\n", seed, r);
		VX_CHECK_INT(r, -EBADMSG);
	}
	VX_CHECK(p.data == NULL);
}

VX_TEST(streamed_wav_with_unknown_length_decodes)
{
	/* Writers on a pipe put 0xffffffff in the data size. */
	int16_t d[300];
	for (int i = 0; i < 300; i++)
		d[i] = (int16_t)(i * 100 - 15000);
	size_t len;
	vx_pcm p = {0};
	unsigned char *w = make_wav(1, 1, 8000, 16, d, sizeof(d), 0xffffffffu, &len);
	put32(w + 4, 0xffffffffu);
	VX_CHECK_INT(vx_audio_decode(w, len, NULL, BIG, &p), 0);
	VX_CHECK_INT(p.frames, 300);
	VX_CHECK(p.data && memcmp(p.data, d, sizeof(d)) == 0);
	vx_pcm_release(&p);
	free(w);
}

VX_TEST(max_frames_is_enforced)
{
	int16_t *s = make_sine(8000, 2, 440, 10000, 1000);
	const vx_format fmts[] = { VX_FMT_WAV, VX_FMT_FLAC, VX_FMT_OPUS };
	for (int k = 0; k < 3; k++) {
		vx_buf b = {0};
		vx_pcm p = {0};
		VX_CHECK_INT(vx_audio_encode(s, 1000, 8000, 2, fmts[k], &b), 0);
		VX_CHECK_INT(vx_audio_decode(b.data, b.len, NULL, 999, &p), -E2BIG);
		VX_CHECK(p.data == NULL);
		VX_CHECK_INT(vx_audio_decode(b.data, b.len, NULL, 1000, &p), 0);
		VX_CHECK_INT(p.frames, 1000);
		vx_pcm_release(&p);
		vx_buf_release(&b);
	}
	/* a FLAC with "total samples unknown" in STREAMINFO: nothing to check
	 * up front, so the limit must hold while decoding */
	vx_buf fl = {0};
	vx_pcm q = {0};
	VX_CHECK_INT(vx_audio_encode(s, 1000, 8000, 2, VX_FMT_FLAC, &fl), 0);
	VX_CHECK(fl.len > 26 && memcmp(fl.data, "fLaC", 4) == 0);
	fl.data[21] = (char)(fl.data[21] & 0xf0);
	memset(fl.data + 22, 0, 4);
	VX_CHECK_INT(vx_audio_decode(fl.data, fl.len, NULL, 999, &q), -E2BIG);
	VX_CHECK_INT(vx_audio_decode(fl.data, fl.len, NULL, 1000, &q), 0);
	VX_CHECK_INT(q.frames, 1000);
	VX_CHECK(q.data && memcmp(q.data, s, 4000) == 0);
	vx_pcm_release(&q);
	vx_buf_release(&fl);
	/* a streamed WAV with a data size of "unknown" */
	size_t len;
	vx_pcm p = {0};
	unsigned char *w = make_wav(1, 2, 8000, 16, s, 4000, 0xffffffffu, &len);
	VX_CHECK_INT(vx_audio_decode(w, len, NULL, 999, &p), -E2BIG);
	VX_CHECK_INT(vx_audio_decode(w, len, NULL, 1000, &p), 0);
	vx_pcm_release(&p);
	free(w);
	/* headerless */
	vx_audio_in in = { VX_ENC_PCM16, 8000, 2 };
	VX_CHECK_INT(vx_audio_decode(s, 4000, &in, 999, &p), -E2BIG);
	VX_CHECK_INT(vx_audio_decode(s, 4000, &in, 1000, &p), 0);
	VX_CHECK_INT(p.frames, 1000);
	vx_pcm_release(&p);
	in.encoding = VX_ENC_MULAW;
	VX_CHECK_INT(vx_audio_decode(s, 2002, &in, 1000, &p), -E2BIG);
	VX_CHECK_INT(vx_audio_decode(s, 10, &in, 0, &p), -EINVAL);
	free(s);
}

VX_TEST(zero_length_and_odd_lengths)
{
	vx_pcm p = {0};
	vx_audio_in pcm = { VX_ENC_PCM16, 16000, 1 };
	vx_audio_in stereo = { VX_ENC_PCM16, 16000, 2 };
	vx_audio_in ulaw = { VX_ENC_MULAW, 8000, 2 };
	const char bytes[7] = {0};
	VX_CHECK_INT(vx_audio_decode("", 0, NULL, BIG, &p), -EBADMSG);
	VX_CHECK_INT(vx_audio_decode(NULL, 0, NULL, BIG, &p), -EBADMSG);
	VX_CHECK_INT(vx_audio_decode(bytes, 0, &pcm, BIG, &p), -EBADMSG);
	VX_CHECK_INT(vx_audio_decode(bytes, 7, &pcm, BIG, &p), -EBADMSG);
	VX_CHECK_INT(vx_audio_decode(bytes, 6, &stereo, BIG, &p), -EBADMSG);
	VX_CHECK_INT(vx_audio_decode(bytes, 7, &ulaw, BIG, &p), -EBADMSG);
	VX_CHECK_INT(vx_audio_decode(bytes, 1, &pcm, BIG, &p), -EBADMSG);
	VX_CHECK(p.data == NULL);
	/* a valid but empty WAV encodes, and decodes as "no audio" */
	vx_buf b = {0};
	VX_CHECK_INT(vx_audio_encode(NULL, 0, 16000, 1, VX_FMT_WAV, &b), 0);
	VX_CHECK_INT(b.len, 44);
	VX_CHECK_INT(vx_audio_decode(b.data, b.len, NULL, BIG, &p), -EBADMSG);
	vx_buf_release(&b);
	VX_CHECK_INT(vx_audio_decode(bytes, 6, &pcm, BIG, &p), 0);
	VX_CHECK_INT(p.frames, 3);
	vx_pcm_release(&p);
}

VX_TEST(decode_bad_arguments)
{
	vx_pcm p = {0};
	vx_audio_in in = { VX_ENC_PCM16, 0, 1 }; /* rate unknown */
	VX_CHECK_INT(vx_audio_decode("ab", 2, &in, BIG, &p), -EINVAL);
	in.rate = 500;
	VX_CHECK_INT(vx_audio_decode("ab", 2, &in, BIG, &p), -ENOTSUP);
	in.rate = 8000;
	in.channels = VX_AUDIO_MAX_CHANNELS + 1;
	VX_CHECK_INT(vx_audio_decode("ab", 2, &in, BIG, &p), -ENOTSUP);
	VX_CHECK_INT(vx_audio_decode(NULL, 2, NULL, BIG, &p), -EINVAL);
	VX_CHECK_INT(vx_audio_decode("ab", 2, NULL, BIG, NULL), -EINVAL);
	in.encoding = (vx_encoding)42;
	VX_CHECK_INT(vx_audio_decode("ab", 2, &in, BIG, &p), -EINVAL);
	VX_CHECK(p.data == NULL);
}

/* ---- conversion ---------------------------------------------------------- */

VX_TEST(stereo_8k_to_mono_16k)
{
	/* left 440 Hz at 12000, right the same at 6000: mono is 9000 */
	vx_pcm p = { make_sine(8000, 2, 440, 12000, 8000), 8000, 8000, 2 };
	VX_CHECK_INT(vx_audio_convert(&p, 16000, 1), 0);
	VX_CHECK_INT(p.rate, 16000);
	VX_CHECK_INT(p.channels, 1);
	VX_CHECK(p.frames >= 15990 && p.frames <= 16010);
	double hz = crossing_hz(&p, 0, 1600, p.frames - 1600);
	double level = rms(&p, 0, 1600, p.frames - 1600);
	if (fabs(hz - 440) > 0.5 || fabs(level - 9000 / sqrt(2)) > 60)
		fprintf(stderr, "%.2f Hz, rms %.0f\n", hz, level);
	VX_CHECK(fabs(hz - 440) <= 0.5);
	VX_CHECK(fabs(level - 9000 / sqrt(2)) <= 60);
	vx_pcm_release(&p);
}

VX_TEST(downmix_averages_and_rounds)
{
	int16_t *d = malloc(6 * sizeof(*d));
	memcpy(d, (int16_t[]){ 1000, -1000, 32767, 32767, -3, 0 }, 6 * sizeof(*d));
	vx_pcm p = { d, 3, 16000, 2 };
	VX_CHECK_INT(vx_audio_convert(&p, 16000, 1), 0);
	VX_CHECK_INT(p.frames, 3);
	VX_CHECK_INT(p.data[0], 0);
	VX_CHECK_INT(p.data[1], 32767);
	VX_CHECK_INT(p.data[2], -2); /* -1.5 rounds away from zero */
	VX_CHECK_INT(vx_audio_convert(&p, 16000, 2), 0); /* 1 -> 2 copies */
	VX_CHECK_INT(p.channels, 2);
	VX_CHECK(p.data[4] == -2 && p.data[5] == -2);
	vx_pcm_release(&p);
}

VX_TEST(convert_refuses_and_leaves_pcm_unchanged)
{
	int16_t *d = calloc(30, sizeof(*d));
	vx_pcm p = { d, 10, 16000, 3 };
	VX_CHECK_INT(vx_audio_convert(&p, 8000, 2), -EINVAL); /* 3 -> 2 */
	VX_CHECK_INT(vx_audio_convert(&p, 10, 1), -ENOTSUP);
	VX_CHECK_INT(vx_audio_convert(NULL, 8000, 1), -EINVAL);
	VX_CHECK(p.data == d && p.frames == 10 && p.rate == 16000 && p.channels == 3);
	VX_CHECK_INT(vx_audio_convert(&p, 16000, 3), 0); /* no-op */
	VX_CHECK(p.data == d);
	vx_pcm_release(&p);
}

VX_TEST(decode_and_convert_60s_of_cd_audio)
{
	size_t frames = 60 * 44100;
	int16_t *s = make_sine(44100, 2, 1000, 16000, frames);
	vx_buf b = {0};
	vx_pcm p = {0};
	VX_CHECK_INT(vx_audio_encode(s, frames, 44100, 2, VX_FMT_WAV, &b), 0);
	free(s);
	struct timespec t0, t1, t2;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	VX_CHECK_INT(vx_audio_decode(b.data, b.len, NULL, frames, &p), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	VX_CHECK_INT(vx_audio_convert(&p, 16000, 1), 0);
	clock_gettime(CLOCK_MONOTONIC, &t2);
	double dec = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	double conv = (double)(t2.tv_sec - t1.tv_sec) * 1e3 + (double)(t2.tv_nsec - t1.tv_nsec) / 1e6;
	printf("  60 s 44.1 kHz stereo wav (%zu bytes): decode %.1f ms, convert to 16 kHz mono %.1f ms\n",
	       b.len, dec, conv);
	VX_CHECK(p.frames >= 959990 && p.frames <= 960010);
	VX_CHECK(fabs(crossing_hz(&p, 0, 16000, 32000) - 1000) < 1);
	vx_pcm_release(&p);
	vx_buf_release(&b);
}

/* ---- encoding ------------------------------------------------------------ */

VX_TEST(encode_appends_and_keeps_prefix)
{
	int16_t s[160] = {0};
	vx_buf b = {0};
	vx_pcm p = {0};
	vx_buf_puts(&b, "XYZ");
	VX_CHECK_INT(vx_audio_encode(s, 160, 8000, 1, VX_FMT_FLAC, &b), 0);
	VX_CHECK(memcmp(b.data, "XYZfLaC", 7) == 0);
	VX_CHECK_INT(vx_audio_decode(b.data + 3, b.len - 3, NULL, BIG, &p), 0);
	VX_CHECK_INT(p.frames, 160);
	vx_pcm_release(&p);
	size_t before = b.len;
	VX_CHECK_INT(vx_audio_encode(s, 160, 8000, VX_AUDIO_MAX_CHANNELS + 1, VX_FMT_WAV, &b), -EINVAL);
	VX_CHECK_INT(vx_audio_encode(s, 160, 8000, 3, VX_FMT_MP3, &b), -ENOTSUP);
	VX_CHECK_INT(vx_audio_encode(s, 160, 8000, 1, (vx_format)99, &b), -EINVAL);
	VX_CHECK_INT(vx_audio_encode(NULL, 160, 8000, 1, VX_FMT_WAV, &b), -EINVAL);
	VX_CHECK_INT(b.len, before);
	vx_buf_release(&b);
}

/* ---- names --------------------------------------------------------------- */

VX_TEST(mime_types)
{
	vx_audio_in in;
	VX_CHECK_INT(vx_audio_in_from_mime("audio/wav", &in), 0);
	VX_CHECK_INT(in.encoding, VX_ENC_AUTO);
	VX_CHECK_INT(vx_audio_in_from_mime("Audio/L16; Rate=8000; CHANNELS=2", &in), 0);
	VX_CHECK(in.encoding == VX_ENC_PCM16 && in.rate == 8000 && in.channels == 2);
	VX_CHECK_INT(vx_audio_in_from_mime("audio/l16;rate=\"16000\"", &in), 0);
	VX_CHECK(in.encoding == VX_ENC_PCM16 && in.rate == 16000 && in.channels == 0);
	VX_CHECK_INT(vx_audio_in_from_mime("audio/L16", &in), 0);
	VX_CHECK(in.encoding == VX_ENC_PCM16 && in.rate == 0);
	VX_CHECK_INT(vx_audio_in_from_mime("audio/pcmu", &in), 0);
	VX_CHECK(in.encoding == VX_ENC_MULAW && in.rate == 8000);
	VX_CHECK_INT(vx_audio_in_from_mime("audio/basic", &in), 0);
	VX_CHECK(in.encoding == VX_ENC_MULAW && in.rate == 8000);
	VX_CHECK_INT(vx_audio_in_from_mime("AUDIO/PCMA;rate=16000", &in), 0);
	VX_CHECK(in.encoding == VX_ENC_ALAW && in.rate == 16000);
	VX_CHECK_INT(vx_audio_in_from_mime("audio/flac", &in), 0);
	VX_CHECK_INT(in.encoding, VX_ENC_AUTO);
	VX_CHECK_INT(vx_audio_in_from_mime("audio/ogg; codecs=opus", &in), 0);
	VX_CHECK_INT(in.encoding, VX_ENC_AUTO);
	VX_CHECK_INT(vx_audio_in_from_mime("application/octet-stream", &in), 0);
	VX_CHECK_INT(in.encoding, VX_ENC_AUTO);
	VX_CHECK_INT(vx_audio_in_from_mime(NULL, &in), 0);
	VX_CHECK_INT(in.encoding, VX_ENC_AUTO);
	in.encoding = VX_ENC_ALAW;
	VX_CHECK_INT(vx_audio_in_from_mime("text/plain", &in), -ENOTSUP);
	VX_CHECK_INT(vx_audio_in_from_mime("application/json", &in), -ENOTSUP);
	VX_CHECK_INT(vx_audio_in_from_mime("multipart/form-data; boundary=x", &in), -ENOTSUP);
	VX_CHECK_INT(vx_audio_in_from_mime("audio/webm;codecs=opus", &in), -ENOTSUP);
	VX_CHECK_INT(vx_audio_in_from_mime("audio", &in), -ENOTSUP);
	VX_CHECK_INT(vx_audio_in_from_mime("audio/L16;rate=abc", &in), -EINVAL);
	VX_CHECK_INT(vx_audio_in_from_mime("audio/L16;rate=0", &in), -EINVAL);
	VX_CHECK_INT(vx_audio_in_from_mime("audio/L16;channels=99", &in), -EINVAL);
	VX_CHECK_INT(in.encoding, VX_ENC_ALAW); /* untouched on failure */
}

VX_TEST(names)
{
	vx_encoding e;
	vx_format f;
	VX_CHECK_INT(vx_encoding_from_name("pcm16", &e), 0);
	VX_CHECK_INT(e, VX_ENC_PCM16);
	VX_CHECK_INT(vx_encoding_from_name("MULAW", &e), 0);
	VX_CHECK_INT(e, VX_ENC_MULAW);
	VX_CHECK_INT(vx_encoding_from_name("alaw", &e), 0);
	VX_CHECK_INT(e, VX_ENC_ALAW);
	VX_CHECK_INT(vx_encoding_from_name("opus", &e), -EINVAL);
	VX_CHECK_INT(vx_format_from_name("ogg", &f), 0);
	VX_CHECK_INT(f, VX_FMT_OPUS);
	VX_CHECK_INT(vx_format_from_name("Mp3", &f), 0);
	VX_CHECK_INT(f, VX_FMT_MP3);
	VX_CHECK_INT(vx_format_from_name("pcm", &f), 0);
	VX_CHECK_INT(f, VX_FMT_PCM);
	VX_CHECK_INT(vx_format_from_name("aac", &f), -EINVAL);
	VX_CHECK_STR(vx_format_mime(VX_FMT_WAV), "audio/wav");
	VX_CHECK_STR(vx_format_mime(VX_FMT_OPUS), "audio/ogg");
	VX_CHECK_STR(vx_format_mime(VX_FMT_MP3), "audio/mpeg");
	VX_CHECK_STR(vx_format_mime((vx_format)99), "application/octet-stream");
}

/* ---- Ogg streams whose headers are missing or bad ---------------------- */

/* Heap bytes in use (0 under ASan, whose LeakSanitizer checks instead). */
static size_t heap_used(void)
{
	return mallinfo2().uordblks;
}

/* Appends packets as Ogg pages of one stream, each packet flushed onto
 * pages of its own (as encoders do for headers); the first is BOS. */
static void ogg_pages(vx_buf *out, const unsigned char *const *pkts,
		      const size_t *lens, int n, bool eos_last)
{
	ogg_stream_state os;
	ogg_stream_init(&os, 0x1234);
	for (int i = 0; i < n; i++) {
		ogg_packet op = { (unsigned char *)pkts[i], (long)lens[i],
				  i == 0, eos_last && i == n - 1, 0, i };
		ogg_stream_packetin(&os, &op);
		ogg_page og;
		while (ogg_stream_flush(&os, &og)) {
			vx_buf_append(out, og.header, (size_t)og.header_len);
			vx_buf_append(out, og.body, (size_t)og.body_len);
		}
	}
	ogg_stream_clear(&os);
}

/* The reproducer: one Ogg page holding a Vorbis identification
 * header and nothing else (58 bytes). */
static void vorbis_ident_only(vx_buf *out)
{
	unsigned char id[30] = { 1, 'v', 'o', 'r', 'b', 'i', 's' };
	put32(id + 7, 0);          /* version */
	id[11] = 1;                /* channels */
	put32(id + 12, 16000);     /* rate */
	put32(id + 20, 32000);     /* nominal bitrate */
	id[28] = 0xb8;             /* blocksizes 256 / 2048 */
	id[29] = 1;                /* framing */
	const unsigned char *pk[] = { id };
	size_t len[] = { sizeof(id) };
	ogg_pages(out, pk, len, 1, false);
}

/* A second of Ogg/Vorbis written by libsndfile into a memfd. */
static int make_vorbis(vx_buf *out)
{
	int fd = memfd_create("vorbis", 0);
	if (fd < 0)
		return -errno;
	SF_INFO info = { 0, 16000, 1, SF_FORMAT_OGG | SF_FORMAT_VORBIS, 0, 0 };
	SNDFILE *sf = sf_open_fd(fd, SFM_WRITE, &info, 0);
	int16_t *s = make_sine(16000, 1, 440, 10000, 16000);
	int r = -EIO;
	if (sf && s && sf_writef_short(sf, s, 16000) == 16000)
		r = 0;
	if (sf)
		sf_close(sf);
	free(s);
	off_t size = lseek(fd, 0, SEEK_END);
	if (r == 0 && size > 0 && vx_buf_reserve(out, (size_t)size) == 0 &&
	    pread(fd, out->data + out->len, (size_t)size, 0) == size)
		out->len += (size_t)size;
	else
		r = -EIO;
	close(fd);
	return r;
}

/* Offset just past the page on which the n-th packet of an Ogg buffer
 * (one stream) ends. */
static size_t headers_end(const vx_buf *b, int n)
{
	size_t pos = 0;
	int done = 0;
	while (pos + 27 <= b->len) {
		const unsigned char *h = (const unsigned char *)b->data + pos;
		size_t segs = h[26], body = 0;
		for (size_t i = 0; i < segs; i++) {
			body += h[27 + i];
			done += h[27 + i] < 255;
		}
		pos += 27 + segs + body;
		if (done >= n)
			return pos;
	}
	return b->len;
}

VX_TEST(ogg_vorbis_identification_alone_is_refused_and_leaks_nothing)
{
	vx_buf b = {0};
	vorbis_ident_only(&b);
	VX_CHECK_INT(b.len, 58);
	vx_pcm p = {0};
	VX_CHECK_INT(vx_audio_decode(b.data, b.len, NULL, BIG, &p), -EBADMSG);
	size_t before = heap_used();
	for (int i = 0; i < 500; i++)
		VX_CHECK_INT(vx_audio_decode(b.data, b.len, NULL, BIG, &p), -EBADMSG);
	/* libsndfile 1.2.0 alone leaks ~5.7 KB per call: 2.8 MB here. */
	VX_CHECK(heap_used() < before + 16 * 1024);
	VX_CHECK(p.data == NULL);

	/* Behind an ID3v2 tag libsndfile still finds it. */
	vx_buf t = {0};
	unsigned char id3[10 + 20] = { 'I', 'D', '3', 4, 0, 0, 0, 0, 0, 20 };
	vx_buf_append(&t, id3, sizeof(id3));
	vx_buf_append(&t, b.data, b.len);
	VX_CHECK_INT(vx_audio_decode(t.data, t.len, NULL, BIG, &p), -EBADMSG);
	vx_buf_release(&t);
	vx_buf_release(&b);
}

VX_TEST(ogg_vorbis_and_opus_decode_and_any_header_cut_is_refused)
{
	vx_buf files[2] = { {0}, {0} };
	VX_CHECK_INT(make_vorbis(&files[0]), 0);
	int16_t *s = make_sine(16000, 1, 440, 10000, 16000);
	VX_CHECK_INT(vx_audio_encode(s, 16000, 16000, 1, VX_FMT_OPUS, &files[1]), 0);
	free(s);
	for (int k = 0; k < 2; k++) {
		vx_buf *b = &files[k];
		vx_pcm p = {0};
		VX_CHECK_INT(vx_audio_decode(b->data, b->len, NULL, BIG, &p), 0);
		VX_CHECK(p.frames >= 15000 && p.rate == 16000);
		VX_CHECK(fabs(crossing_hz(&p, 0, 2000, 14000) - 440) < 5);
		vx_pcm_release(&p);
		/* Vorbis: identification, comment and setup pages; Opus:
		 * OpusHead and OpusTags. Every cut before their end refuses. */
		size_t hdr = headers_end(b, k == 0 ? 3 : 2);
		VX_CHECK(hdr < b->len);
		for (size_t cut = 1; cut < hdr; cut++) {
			int r = vx_audio_decode(b->data, cut, NULL, BIG, &p);
			if (r != -EBADMSG)
				fprintf(stderr, "ogg %d cut at %zu of %zu: %d\n",
					k, cut, hdr, r);
			VX_CHECK_INT(r, -EBADMSG);
		}
		size_t before = heap_used();
		for (int round = 0; round < 3; round++)
			for (size_t cut = 1; cut < hdr; cut += 7)
				vx_audio_decode(b->data, cut, NULL, BIG, &p);
		VX_CHECK(heap_used() < before + 16 * 1024);
		VX_CHECK(p.data == NULL);
		vx_buf_release(b);
	}
}

VX_TEST(ogg_vorbis_with_bad_comment_or_setup_is_refused)
{
	vx_buf good = {0};
	VX_CHECK_INT(make_vorbis(&good), 0);
	/* Re-packetise the three headers with libogg, spoil one, re-page. */
	ogg_sync_state oy;
	ogg_stream_state os;
	ogg_sync_init(&oy);
	char *dst = ogg_sync_buffer(&oy, (long)good.len);
	memcpy(dst, good.data, good.len);
	ogg_sync_wrote(&oy, (long)good.len);
	ogg_page og;
	ogg_packet op;
	unsigned char *pk[3] = { NULL, NULL, NULL };
	size_t len[3] = { 0, 0, 0 };
	int n = 0;
	VX_CHECK_INT(ogg_sync_pageout(&oy, &og), 1);
	ogg_stream_init(&os, ogg_page_serialno(&og));
	ogg_stream_pagein(&os, &og);
	while (n < 3) {
		int r = ogg_stream_packetout(&os, &op);
		if (r == 1) {
			pk[n] = malloc((size_t)op.bytes);
			memcpy(pk[n], op.packet, (size_t)op.bytes);
			len[n++] = (size_t)op.bytes;
		} else if (ogg_sync_pageout(&oy, &og) == 1) {
			ogg_stream_pagein(&os, &og);
		} else {
			break;
		}
	}
	VX_CHECK_INT(n, 3);
	for (int bad = 1; n == 3 && bad < 3; bad++) {
		unsigned char *saved = malloc(len[bad]);
		memcpy(saved, pk[bad], len[bad]);
		if (bad == 1)
			put32(pk[1] + 7, 0x7fffffff);   /* vendor length */
		else
			memset(pk[2] + 7, 0xff, len[2] - 7);  /* codebooks */
		vx_buf b = {0};
		ogg_pages(&b, (const unsigned char *const *)pk, len, 3, true);
		vx_pcm p = {0};
		VX_CHECK_INT(vx_audio_decode(b.data, b.len, NULL, BIG, &p), -EBADMSG);
		vx_buf_release(&b);
		/* Only two of the three headers. */
		ogg_pages(&b, (const unsigned char *const *)pk, len, 2, true);
		VX_CHECK_INT(vx_audio_decode(b.data, b.len, NULL, BIG, &p), -EBADMSG);
		vx_buf_release(&b);
		memcpy(pk[bad], saved, len[bad]);
		free(saved);
	}
	for (int i = 0; i < 3; i++)
		free(pk[i]);
	ogg_stream_clear(&os);
	ogg_sync_clear(&oy);
	vx_buf_release(&good);
}

VX_TEST(ogg_opus_with_bad_head_or_tags_is_refused)
{
	unsigned char head[19] = { 'O', 'p', 'u', 's', 'H', 'e', 'a', 'd', 1, 1 };
	put16(head + 10, 312);          /* pre-skip */
	put32(head + 12, 16000);        /* input rate */
	unsigned char tags[24] = { 'O', 'p', 'u', 's', 'T', 'a', 'g', 's', 4 };
	memcpy(tags + 12, "test", 4);   /* vendor, then 0 comments */
	/* A 20 ms silent CELT frame (TOC 0xf8) so the stream has audio. */
	unsigned char audio[3] = { 0xf8, 0xff, 0xfe };
	const unsigned char *pk[3] = { head, tags, audio };
	size_t len[3] = { sizeof(head), sizeof(tags) - 4, sizeof(audio) };
	vx_buf b = {0};
	vx_pcm p = {0};

	ogg_pages(&b, pk, len, 1, true);          /* OpusHead alone */
	VX_CHECK_INT(vx_audio_decode(b.data, b.len, NULL, BIG, &p), -EBADMSG);
	vx_buf_release(&b);
	head[9] = 0;                              /* no channels */
	ogg_pages(&b, pk, len, 3, true);
	VX_CHECK_INT(vx_audio_decode(b.data, b.len, NULL, BIG, &p), -EBADMSG);
	vx_buf_release(&b);
	head[9] = 3;                              /* 3 channels in family 0 */
	ogg_pages(&b, pk, len, 3, true);
	VX_CHECK_INT(vx_audio_decode(b.data, b.len, NULL, BIG, &p), -EBADMSG);
	vx_buf_release(&b);
	head[9] = 1;
	put32(tags + 8, 1000);                    /* vendor past the packet */
	ogg_pages(&b, pk, len, 3, true);
	VX_CHECK_INT(vx_audio_decode(b.data, b.len, NULL, BIG, &p), -EBADMSG);
	vx_buf_release(&b);
	put32(tags + 8, 4);
	put32(tags + 16, 1);                      /* a comment that is not there */
	len[1] = sizeof(tags);
	put32(tags + 20, 0);
	tags[20] = 200;
	ogg_pages(&b, pk, len, 3, true);
	VX_CHECK_INT(vx_audio_decode(b.data, b.len, NULL, BIG, &p), -EBADMSG);
	vx_buf_release(&b);
	VX_CHECK(p.data == NULL);
}

VX_TEST_MAIN(wav_round_trip_is_exact, flac_round_trip_is_exact,
	     pcm_round_trip_is_little_endian_and_exact,
	     opus_round_trip_keeps_valid_rate, opus_resamples_invalid_rates,
	     mp3_round_trip_or_not_supported, g711_round_trip,
	     float_wav_keeps_its_level, truncated_wav,
	     truncated_or_corrupt_flac_and_opus, corrupt_header_and_garbage,
	     streamed_wav_with_unknown_length_decodes, max_frames_is_enforced,
	     zero_length_and_odd_lengths, decode_bad_arguments,
	     stereo_8k_to_mono_16k, downmix_averages_and_rounds,
	     convert_refuses_and_leaves_pcm_unchanged,
	     decode_and_convert_60s_of_cd_audio, encode_appends_and_keeps_prefix,
	     mime_types, names,
	     ogg_vorbis_identification_alone_is_refused_and_leaks_nothing,
	     ogg_vorbis_and_opus_decode_and_any_header_cut_is_refused,
	     ogg_vorbis_with_bad_comment_or_setup_is_refused,
	     ogg_opus_with_bad_head_or_tags_is_refused)
