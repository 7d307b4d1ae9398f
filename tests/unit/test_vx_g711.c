/* test_vx_g711.c - G.711 against the ITU tables and libsndfile's codec. */
#include "vx_audio.h"
#include "vx_test.h"

#include <stdlib.h>
#include <unistd.h>

#include <sndfile.h>

/* ITU-T G.711 mu-law decoding, codes 0x00..0x7f (0x80..0xff are the
 * negations), as printed in the reference tables. */
static const int16_t ulaw_table[128] = {
	-32124, -31100, -30076, -29052, -28028, -27004, -25980, -24956,
	-23932, -22908, -21884, -20860, -19836, -18812, -17788, -16764,
	-15996, -15484, -14972, -14460, -13948, -13436, -12924, -12412,
	-11900, -11388, -10876, -10364, -9852, -9340, -8828, -8316,
	-7932, -7676, -7420, -7164, -6908, -6652, -6396, -6140,
	-5884, -5628, -5372, -5116, -4860, -4604, -4348, -4092,
	-3900, -3772, -3644, -3516, -3388, -3260, -3132, -3004,
	-2876, -2748, -2620, -2492, -2364, -2236, -2108, -1980,
	-1884, -1820, -1756, -1692, -1628, -1564, -1500, -1436,
	-1372, -1308, -1244, -1180, -1116, -1052, -988, -924,
	-876, -844, -812, -780, -748, -716, -684, -652,
	-620, -588, -556, -524, -492, -460, -428, -396,
	-372, -356, -340, -324, -308, -292, -276, -260,
	-244, -228, -212, -196, -180, -164, -148, -132,
	-120, -112, -104, -96, -88, -80, -72, -64,
	-56, -48, -40, -32, -24, -16, -8, 0,
};

/* ITU-T G.711 A-law decoding, codes 0x00..0x7f (0x80..0xff negated). */
static const int16_t alaw_table[128] = {
	-5504, -5248, -6016, -5760, -4480, -4224, -4992, -4736,
	-7552, -7296, -8064, -7808, -6528, -6272, -7040, -6784,
	-2752, -2624, -3008, -2880, -2240, -2112, -2496, -2368,
	-3776, -3648, -4032, -3904, -3264, -3136, -3520, -3392,
	-22016, -20992, -24064, -23040, -17920, -16896, -19968, -18944,
	-30208, -29184, -32256, -31232, -26112, -25088, -28160, -27136,
	-11008, -10496, -12032, -11520, -8960, -8448, -9984, -9472,
	-15104, -14592, -16128, -15616, -13056, -12544, -14080, -13568,
	-344, -328, -376, -360, -280, -264, -312, -296,
	-472, -456, -504, -488, -408, -392, -440, -424,
	-88, -72, -120, -104, -24, -8, -56, -40,
	-216, -200, -248, -232, -152, -136, -184, -168,
	-1376, -1312, -1504, -1440, -1120, -1056, -1248, -1184,
	-1888, -1824, -2016, -1952, -1632, -1568, -1760, -1696,
	-688, -656, -752, -720, -560, -528, -624, -592,
	-944, -912, -1008, -976, -816, -784, -880, -848,
};

VX_TEST(ulaw_decode_matches_itu_table)
{
	for (int c = 0; c < 128; c++) {
		VX_CHECK_INT(vx_g711_ulaw_decode((uint8_t)c), ulaw_table[c]);
		VX_CHECK_INT(vx_g711_ulaw_decode((uint8_t)(c | 0x80)), -ulaw_table[c]);
	}
}

VX_TEST(alaw_decode_matches_itu_table)
{
	for (int c = 0; c < 128; c++) {
		VX_CHECK_INT(vx_g711_alaw_decode((uint8_t)c), alaw_table[c]);
		VX_CHECK_INT(vx_g711_alaw_decode((uint8_t)(c | 0x80)), -alaw_table[c]);
	}
}

VX_TEST(encode_known_values)
{
	VX_CHECK_INT(vx_g711_ulaw_encode(0), 0xff);
	VX_CHECK_INT(vx_g711_ulaw_encode(-1), 0x7f); /* one's complement: -1 is "-0" */
	VX_CHECK_INT(vx_g711_ulaw_encode(32767), 0x80);
	VX_CHECK_INT(vx_g711_ulaw_encode(-32768), 0x00);
	VX_CHECK_INT(vx_g711_ulaw_encode(120), 0xf0);
	VX_CHECK_INT(vx_g711_ulaw_encode(1000), 0xce);
	VX_CHECK_INT(vx_g711_alaw_encode(0), 0xd5);
	VX_CHECK_INT(vx_g711_alaw_encode(-1), 0x55);
	VX_CHECK_INT(vx_g711_alaw_encode(32767), 0xaa);
	VX_CHECK_INT(vx_g711_alaw_encode(-32768), 0x2a);
	VX_CHECK_INT(vx_g711_alaw_encode(1000), 0xfa);
}

VX_TEST(all_codes_round_trip)
{
	for (int c = 0; c < 256; c++) {
		uint8_t u = vx_g711_ulaw_encode(vx_g711_ulaw_decode((uint8_t)c));
		/* 0x7f is mu-law's negative zero: it decodes to 0, which is 0xff */
		VX_CHECK_INT(u, c == 0x7f ? 0xff : c);
		VX_CHECK_INT(vx_g711_alaw_encode(vx_g711_alaw_decode((uint8_t)c)), c);
	}
}

VX_TEST(encode_is_monotonic_and_close)
{
	int prev_u = -40000, prev_a = -40000;
	for (int x = -32768; x <= 32767; x++) {
		int du = vx_g711_ulaw_decode(vx_g711_ulaw_encode((int16_t)x));
		int da = vx_g711_alaw_decode(vx_g711_alaw_encode((int16_t)x));
		if (du < prev_u || da < prev_a) {
			VX_CHECK(!"decode(encode(x)) decreased");
			break;
		}
		prev_u = du;
		prev_a = da;
		/* within half a step of the largest segment (plus clipping) */
		int eu = abs(du - x), ea = abs(da - x);
		if (eu > (abs(x) > 32000 ? 700 : 520) || ea > (abs(x) > 32000 ? 520 : 512)) {
			fprintf(stderr, "x=%d du=%d da=%d\n", x, du, da);
			VX_CHECK(!"quantisation error too large");
			break;
		}
	}
}

/* Writes samples with libsndfile as a WAV of subtype sub; returns the path
 * of a temp file the caller unlinks. */
static int write_libsndfile_wav(const int16_t *s, size_t n, int sub, char *path)
{
	strcpy(path, "/tmp/vx_g711_XXXXXX");
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	close(fd);
	SF_INFO info = { .samplerate = 8000, .channels = 1, .format = SF_FORMAT_WAV | sub };
	SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
	if (!sf)
		return -1;
	sf_count_t w = sf_write_short(sf, s, (sf_count_t)n);
	sf_close(sf);
	return w == (sf_count_t)n ? 0 : -1;
}

/* Reads the codes of the WAV's data chunk (raw) and libsndfile's decoding. */
static int read_both(const char *path, uint8_t *codes, int16_t *decoded, size_t n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	static unsigned char file[1 << 18];
	size_t len = fread(file, 1, sizeof(file), f);
	fclose(f);
	size_t pos = 12;
	while (pos + 8 <= len && memcmp(file + pos, "data", 4) != 0) {
		unsigned sz = file[pos + 4] | file[pos + 5] << 8 |
			      file[pos + 6] << 16 | (unsigned)file[pos + 7] << 24;
		pos += 8 + sz + (sz & 1);
	}
	if (pos + 8 + n > len)
		return -1;
	memcpy(codes, file + pos + 8, n);
	SF_INFO info = {0};
	SNDFILE *sf = sf_open(path, SFM_READ, &info);
	if (!sf)
		return -1;
	sf_count_t r = sf_read_short(sf, decoded, (sf_count_t)n);
	sf_close(sf);
	return r == (sf_count_t)n ? 0 : -1;
}

/* libsndfile writes a mu-law / A-law WAV of every 16-bit value; our decoder
 * must read its codes exactly as libsndfile does, and our encoder must be
 * at least as close to the input as libsndfile's. */
static void compare_with_libsndfile(int sub, uint8_t (*enc)(int16_t),
				    int16_t (*dec)(uint8_t))
{
	enum { N = 65536 };
	int16_t *in = malloc(N * sizeof(*in)), *lib = malloc(N * sizeof(*lib));
	uint8_t *codes = malloc(N);
	char path[64];
	VX_CHECK(in && lib && codes);
	if (!in || !lib || !codes)
		goto out;
	for (int i = 0; i < N; i++)
		in[i] = (int16_t)(i - 32768);
	VX_CHECK_INT(write_libsndfile_wav(in, N, sub, path), 0);
	VX_CHECK_INT(read_both(path, codes, lib, N), 0);
	unlink(path);
	int seen[256] = {0}, distinct = 0, mismatch = 0, worse = 0, same = 0;
	for (int i = 0; i < N; i++) {
		if (!seen[codes[i]]++)
			distinct++;
		if (dec(codes[i]) != lib[i])
			mismatch++;
		int ours = abs(dec(enc(in[i])) - in[i]);
		if (ours > abs(lib[i] - in[i]))
			worse++;
		if (enc(in[i]) == codes[i])
			same++;
	}
	VX_CHECK_INT(distinct, 256); /* every code is compared */
	VX_CHECK_INT(mismatch, 0);
	VX_CHECK_INT(worse, 0);
	VX_CHECK(same > N * 99 / 100); /* the codecs differ only at boundaries */
out:
	free(in);
	free(lib);
	free(codes);
}

VX_TEST(ulaw_agrees_with_libsndfile)
{
	compare_with_libsndfile(SF_FORMAT_ULAW, vx_g711_ulaw_encode, vx_g711_ulaw_decode);
}

VX_TEST(alaw_agrees_with_libsndfile)
{
	compare_with_libsndfile(SF_FORMAT_ALAW, vx_g711_alaw_encode, vx_g711_alaw_decode);
}

VX_TEST_MAIN(ulaw_decode_matches_itu_table, alaw_decode_matches_itu_table,
	     encode_known_values, all_codes_round_trip,
	     encode_is_monotonic_and_close, ulaw_agrees_with_libsndfile,
	     alaw_agrees_with_libsndfile)
