/* Unit tests for tools/banter_record.c: voxline-banter's stereo timeline
 * (placement, limits, the WAV written whole or not at all) and its
 * transcript lines. Files go to a fresh directory under $TMPDIR or /tmp. */
#include "../../tools/banter_record.h"
#include "vx_test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vx_audio.h"

static const int16_t tone[4] = { 1000, -1000, 2000, -2000 };

static int16_t sample(const banter_record *r, size_t frame, int ch)
{
	return ((const int16_t *)(const void *)r->frames.data)[frame * 2 + (size_t)ch];
}

VX_TEST(place_fills_one_channel_at_its_time_with_silence_before)
{
	banter_record r;
	banter_record_init(&r, 1000, 60);   /* 1 frame a millisecond */
	VX_CHECK_INT(banter_record_place(&r, 1, 3.0, tone, 4), 0);
	VX_CHECK_INT(r.n_frames, 7);
	for (size_t i = 0; i < 3; i++)
		VX_CHECK(sample(&r, i, 0) == 0 && sample(&r, i, 1) == 0);
	for (size_t i = 0; i < 4; i++) {
		VX_CHECK_INT(sample(&r, 3 + i, 1), tone[i]);
		VX_CHECK_INT(sample(&r, 3 + i, 0), 0);
	}
	banter_record_release(&r);
}

VX_TEST(place_keeps_the_other_channel_where_they_overlap)
{
	banter_record r;
	banter_record_init(&r, 1000, 60);
	VX_CHECK_INT(banter_record_place(&r, 0, 0.0, tone, 4), 0);
	VX_CHECK_INT(banter_record_place(&r, 1, 2.0, tone, 4), 0);
	VX_CHECK_INT(r.n_frames, 6);
	VX_CHECK_INT(sample(&r, 2, 0), tone[2]);
	VX_CHECK_INT(sample(&r, 3, 0), tone[3]);
	VX_CHECK_INT(sample(&r, 2, 1), tone[0]);
	VX_CHECK_INT(sample(&r, 5, 0), 0);
	VX_CHECK(banter_record_seconds(&r) == 0.006);
	banter_record_release(&r);
}

VX_TEST(place_past_the_limit_is_efbig_and_changes_nothing)
{
	banter_record r;
	banter_record_init(&r, 1000, 0.005);   /* 5 frames */
	VX_CHECK_INT(banter_record_place(&r, 0, 0.0, tone, 4), 0);
	VX_CHECK_INT(banter_record_place(&r, 0, 2.0, tone, 4), -EFBIG);
	VX_CHECK_INT(banter_record_place(&r, 0, 1e12, tone, 1), -EFBIG);
	VX_CHECK_INT(r.n_frames, 4);
	VX_CHECK_INT(sample(&r, 2, 0), tone[2]);
	VX_CHECK_INT(banter_record_place(&r, 1, 1.0, tone, 4), 0);   /* up to the limit */
	VX_CHECK_INT(r.n_frames, 5);
	banter_record_release(&r);
}

VX_TEST(place_refuses_a_bad_channel_or_start)
{
	banter_record r;
	banter_record_init(&r, 1000, 60);
	VX_CHECK_INT(banter_record_place(&r, 2, 0.0, tone, 4), -EINVAL);
	VX_CHECK_INT(banter_record_place(&r, -1, 0.0, tone, 4), -EINVAL);
	VX_CHECK_INT(banter_record_place(&r, 0, -1.0, tone, 4), -EINVAL);
	VX_CHECK_INT(r.n_frames, 0);
	banter_record_release(&r);
}

static char *tmpdir(void)
{
	static char dir[512];
	const char *base = getenv("TMPDIR");
	snprintf(dir, sizeof(dir), "%s/banter-record-XXXXXX", base && *base ? base : "/tmp");
	return mkdtemp(dir);
}

VX_TEST(write_wav_is_a_stereo_wav_of_the_timeline_and_leaves_no_tmp)
{
	banter_record r;
	banter_record_init(&r, 16000, 60);
	VX_CHECK_INT(banter_record_place(&r, 0, 0.0, tone, 4), 0);
	VX_CHECK_INT(banter_record_place(&r, 1, 0.5, tone, 4), 0);   /* frame 8 */
	char *dir = tmpdir();
	VX_CHECK(dir != NULL);
	if (!dir) {
		banter_record_release(&r);
		return;
	}
	char path[600], tmp[610];
	snprintf(path, sizeof(path), "%s/x.wav", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	VX_CHECK_INT(banter_record_write_wav(&r, path), 0);
	struct stat st;
	VX_CHECK(stat(tmp, &st) < 0);
	FILE *f = fopen(path, "rb");
	char buf[4096];
	size_t n = f ? fread(buf, 1, sizeof(buf), f) : 0;
	if (f)
		fclose(f);
	vx_pcm pcm = {0};
	VX_CHECK_INT(vx_audio_decode(buf, n, NULL, 1000, &pcm), 0);
	VX_CHECK_INT(pcm.channels, 2);
	VX_CHECK_INT(pcm.rate, 16000);
	VX_CHECK_INT(pcm.frames, 12);
	VX_CHECK_INT(pcm.data ? pcm.data[2 * 1] : 0, tone[1]);
	VX_CHECK_INT(pcm.data ? pcm.data[8 * 2 + 1] : 0, tone[0]);
	VX_CHECK_INT(pcm.data ? pcm.data[8 * 2] : 1, 0);
	vx_pcm_release(&pcm);
	unlink(path);
	rmdir(dir);
	banter_record_release(&r);
}

VX_TEST(write_wav_into_a_missing_directory_fails_and_writes_nothing)
{
	banter_record r;
	banter_record_init(&r, 16000, 60);
	VX_CHECK_INT(banter_record_place(&r, 0, 0.0, tone, 4), 0);
	char *dir = tmpdir();
	VX_CHECK(dir != NULL);
	if (!dir) {
		banter_record_release(&r);
		return;
	}
	char path[600];
	snprintf(path, sizeof(path), "%s/no/such/dir/x.wav", dir);
	VX_CHECK_INT(banter_record_write_wav(&r, path), -ENOENT);
	VX_CHECK_INT(rmdir(dir), 0);   /* empty: nothing was left in it */
	banter_record_release(&r);
}

VX_TEST(line_is_one_line_with_seconds_name_text_and_note)
{
	char out[128];
	banter_record_line(out, sizeof(out), 12345.6, "bob", "Hi.\nHow are\r\nyou?", " [cut short]");
	VX_CHECK_STR(out, "[   12.346] bob: Hi. How are  you? [cut short]\n");
	banter_record_line(out, sizeof(out), 0, "alice", "x", NULL);
	VX_CHECK_STR(out, "[    0.000] alice: x\n");
	char small[16];
	banter_record_line(small, sizeof(small), 0, "alice", "a long line\nhere", "");
	VX_CHECK_STR(small, "[    0.000] ali");
}

VX_TEST_MAIN(place_fills_one_channel_at_its_time_with_silence_before,
	     place_keeps_the_other_channel_where_they_overlap,
	     place_past_the_limit_is_efbig_and_changes_nothing,
	     place_refuses_a_bad_channel_or_start,
	     write_wav_is_a_stereo_wav_of_the_timeline_and_leaves_no_tmp,
	     write_wav_into_a_missing_directory_fails_and_writes_nothing,
	     line_is_one_line_with_seconds_name_text_and_note)
