/*
 * segmenter.c - per-frame speech decisions to speech segments.
 *
 * A run starts at the first speech frame and goes on while the gaps between
 * speech frames are shorter than min_silence_ms. It becomes a segment
 * (speech_start) when it spans min_speech_ms; it ends (speech_end) when
 * min_silence_ms of non-speech follows its last speech frame, or at finish.
 * A run that never reaches min_speech_ms is dropped without any event.
 * The start a segment reports is its run's first speech frame moved back
 * by the engine's onset look-back (bounded; padded, it never reaches into
 * the previous segment); confirmation still counts from the frame.
 */
#include "vad_engine.h"

#include <stdlib.h>

static int clamp_ms(int v)
{
	if (v < 0)
		return 0;
	if (v > VAD_SEG_MS_MAX)
		return VAD_SEG_MS_MAX;
	return v;
}

static void reset_run(vad_segmenter *s)
{
	s->in_speech = 0;
	s->run_start_ms = -1;
	s->onset_ms = -1;
	s->last_speech_ms = -1;
	s->seg_start_ms = -1;
}

void vad_segmenter_init(vad_segmenter *s, const vad_seg_config *cfg)
{
	vad_seg_config c = {
		.frame_ms = 20,
		.min_speech_ms = VAD_MIN_SPEECH_MS_DEFAULT,
		.min_silence_ms = VAD_MIN_SILENCE_MS_DEFAULT,
		.pad_ms = 0,
	};

	if (cfg)
		c = *cfg;
	if (c.frame_ms != 10 && c.frame_ms != 20 && c.frame_ms != 30)
		c.frame_ms = c.frame_ms < 15 ? 10 : c.frame_ms < 25 ? 20 : 30;
	c.min_speech_ms = clamp_ms(c.min_speech_ms);
	c.min_silence_ms = clamp_ms(c.min_silence_ms);
	c.pad_ms = clamp_ms(c.pad_ms);
	if (c.pad_ms > c.min_silence_ms / 2)
		c.pad_ms = c.min_silence_ms / 2;
	s->cfg = c;
	s->t_ms = 0;
	s->speech_ms = 0;
	s->prev_end_ms = 0;
	reset_run(s);
}

/* Opens the segment of the current run: reports its padded start. */
static void open_segment(vad_segmenter *s, vad_seg_cb cb, void *user)
{
	int64_t start = s->onset_ms - s->cfg.pad_ms;

	if (start < 0)
		start = 0;
	s->in_speech = 1;
	s->seg_start_ms = start;
	if (cb)
		cb(user, VAD_SPEECH_START, start, -1);
}

/* Closes the open segment with its padded end, no later than now_ms. */
static void close_segment(vad_segmenter *s, int64_t now_ms, vad_seg_cb cb,
			  void *user)
{
	int64_t end = s->last_speech_ms + s->cfg.pad_ms;

	if (end > now_ms)
		end = now_ms;
	s->speech_ms += end - s->seg_start_ms;
	s->prev_end_ms = end + s->cfg.pad_ms;
	if (cb)
		cb(user, VAD_SPEECH_END, s->seg_start_ms, end);
	reset_run(s);
}

/* Where a run whose first speech frame is [t0, t1) began: t1 - onset_ms,
 * no earlier than VAD_LOOKBACK_MS_MAX before t0, nor than the previous
 * segment's end plus the padding. */
static int64_t run_onset(const vad_segmenter *s, int64_t t0, int64_t t1,
			 int onset_ms)
{
	int64_t on = t1 - onset_ms;

	if (on > t0)
		on = t0;
	if (on < t0 - VAD_LOOKBACK_MS_MAX)
		on = t0 - VAD_LOOKBACK_MS_MAX;
	if (on < s->prev_end_ms)
		on = s->prev_end_ms < t0 ? s->prev_end_ms : t0;
	return on < 0 ? 0 : on;
}

void vad_segmenter_push(vad_segmenter *s, int is_speech, vad_seg_cb cb,
			void *user)
{
	vad_segmenter_push_onset(s, is_speech, 0, cb, user);
}

void vad_segmenter_push_onset(vad_segmenter *s, int is_speech, int onset_ms,
			      vad_seg_cb cb, void *user)
{
	int64_t t0 = s->t_ms, t1 = s->t_ms + s->cfg.frame_ms;

	s->t_ms = t1;
	if (is_speech > 0) {
		if (s->run_start_ms < 0) {
			s->run_start_ms = t0;
			s->onset_ms = run_onset(s, t0, t1, onset_ms);
		}
		s->last_speech_ms = t1;
		if (!s->in_speech &&
		    t1 - s->run_start_ms >= s->cfg.min_speech_ms)
			open_segment(s, cb, user);
		return;
	}
	if (s->run_start_ms < 0)
		return;
	/* A gap of min_silence_ms (0 means any non-speech frame) ends the run. */
	if (t1 - s->last_speech_ms >= s->cfg.min_silence_ms) {
		if (s->in_speech)
			close_segment(s, t1, cb, user);
		else
			reset_run(s);
	}
}

void vad_segmenter_finish(vad_segmenter *s, vad_seg_cb cb, void *user)
{
	if (s->in_speech)
		close_segment(s, s->t_ms, cb, user);
	else
		reset_run(s);
}

void vad_segments_release(vad_segments *s)
{
	if (!s)
		return;
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
	s->speech_ms = s->duration_ms = 0;
}
