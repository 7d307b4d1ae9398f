/* banter_record.c - the stereo timeline and transcript lines of
 * voxline-banter; see banter_record.h. */
#include "banter_record.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "vx_audio.h"

void banter_record_init(banter_record *r, int rate, double max_s)
{
	memset(r, 0, sizeof(*r));
	r->rate = rate;
	r->max_frames = max_s > 0 ? (size_t)(max_s * rate) : 0;
}

void banter_record_release(banter_record *r)
{
	vx_buf_release(&r->frames);
	r->n_frames = 0;
}

int banter_record_place(banter_record *r, int channel, double start_ms,
			const int16_t *pcm, size_t frames)
{
	if ((channel != 0 && channel != 1) || !(start_ms >= 0))
		return -EINVAL;
	double at_d = start_ms * r->rate / 1000.0;
	if (at_d > (double)r->max_frames)
		return -EFBIG;
	size_t at = (size_t)at_d;
	if (frames > r->max_frames - at)
		return -EFBIG;
	size_t end = at + frames;
	if (end > r->n_frames) {
		size_t add = (end - r->n_frames) * 2 * sizeof(int16_t);
		if (vx_buf_reserve(&r->frames, add) < 0)
			return -ENOMEM;
		memset(r->frames.data + r->frames.len, 0, add);
		r->frames.len += add;
		r->n_frames = end;
	}
	int16_t *s = (int16_t *)(void *)r->frames.data;
	for (size_t i = 0; i < frames; i++)
		s[(at + i) * 2 + (size_t)channel] = pcm[i];
	return 0;
}

double banter_record_seconds(const banter_record *r)
{
	return r->rate ? (double)r->n_frames / r->rate : 0.0;
}

int banter_record_write_wav(const banter_record *r, const char *path)
{
	vx_buf out = {0};
	char tmp[4200];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	int ret = vx_audio_encode((const int16_t *)(const void *)r->frames.data, r->n_frames,
				  r->rate, 2, VX_FMT_WAV, &out);
	if (ret < 0)
		goto out_release;
	FILE *f = fopen(tmp, "wb");
	if (!f) {
		ret = -errno;
		goto out_release;
	}
	bool ok = fwrite(out.data, 1, out.len, f) == out.len && fflush(f) == 0 &&
		  fsync(fileno(f)) == 0;
	ret = ok ? 0 : (errno ? -errno : -EIO);
	if (fclose(f) != 0 && ret == 0)
		ret = -errno;
	if (ret == 0 && rename(tmp, path) < 0)
		ret = -errno;
	if (ret < 0)
		unlink(tmp);
out_release:
	vx_buf_release(&out);
	return ret;
}

int banter_record_line(char *out, size_t cap, double at_ms, const char *who,
		       const char *text, const char *note)
{
	int n = snprintf(out, cap, "[%9.3f] %s: ", at_ms / 1000.0, who);
	if (n < 0 || (size_t)n >= cap)
		return n;
	size_t head = (size_t)n;
	int m = snprintf(out + head, cap - head, "%s%s\n", text, note ? note : "");
	if (m < 0)
		return m;
	size_t tlen = strlen(text);   /* only the text's own bytes are flattened */
	for (size_t i = head; i < head + tlen && i < cap - 1; i++)
		if (out[i] == '\n' || out[i] == '\r')
			out[i] = ' ';
	return n + m;
}
