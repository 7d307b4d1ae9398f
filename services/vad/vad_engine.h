/*
 * vad_engine.h - the VAD engine interface and the segmenter on top of it.
 *
 * An engine classifies 10, 20 or 30 ms frames of 16 kHz mono PCM16 as speech
 * or not. One engine instance is one stream's state (cheap: create one per
 * request or per WebSocket); instances are independent and may be used from
 * different threads, one thread each. Each engine declares itself in its
 * ops (VX_ENGINE_HEAD: name, aliases, description, flags; vx_engine.h) and
 * registers in vad_engines[] (vad_engine.c); --engine picks one by name or
 * alias (vad_engine_find); the first entry is the default.
 *
 * The segmenter turns per-frame decisions into speech segments with
 * min_speech_ms (shorter bursts are dropped), min_silence_ms (shorter gaps
 * are bridged: the hangover) and a little padding, both for a whole file
 * (/detect) and incrementally (/ws/detect emits start/end events). It holds
 * no heap memory; its state is the struct below (caller-owned).
 *
 * Times are milliseconds from the first frame pushed. Segments never
 * overlap and come out in order; speech_start is reported once a run of
 * speech is min_speech_ms long (so it lags the audio by that much) and
 * speech_end once min_silence_ms of non-speech has followed it. A run's
 * reported start is its first speech frame, moved back to where the engine
 * says the sound began (onset_ms, at most VAD_LOOKBACK_MS_MAX, never into
 * the previous segment); when the run is confirmed does not change.
 *
 *     void *st; e->create(&cfg, &st);
 *     for each 20 ms frame: vad_segmenter_push_onset(&seg, e->process(st, f, 320),
 *                               vad_engine_onset_ms(e, st), cb, user);
 *     vad_segmenter_finish(&seg, cb, user); e->destroy(st);
 *
 * or, for a whole buffer: vad_engine_detect(e, &cfg, &scfg, pcm, n, &segs);
 */
#ifndef VAD_ENGINE_H
#define VAD_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "vx_engine.h"

#define VAD_RATE 16000
#define VAD_FRAME_MAX 480            /* samples: 30 ms at 16 kHz */
#define VAD_AGGRESSIVENESS_MAX 3

/* 1 when n samples is a frame an engine accepts (10, 20 or 30 ms). */
static inline int vad_frame_valid(size_t n)
{
	return n == 160 || n == 320 || n == 480;
}

typedef struct vad_config {
	int aggressiveness;   /* 0 (lenient) .. 3 (strict) */
} vad_config;

typedef struct vad_engine_ops {
	VX_ENGINE_HEAD;       /* name, aliases, description, flags (vx_engine.h) */
	/* -EINVAL for an aggressiveness outside 0..3, -ENOMEM. */
	int (*create)(const vad_config *cfg, void **ret_state);
	void (*destroy)(void *state);   /* accepts NULL */
	/* Classifies one frame of n samples (160, 320 or 480 at 16 kHz).
	 * Returns 1 speech, 0 not speech, negative errno on error (-EINVAL for
	 * any other n or NULL pcm). Frame sizes may change between calls. */
	int (*process)(void *state, const int16_t *pcm, size_t n);
	/* Optional (NULL: none). After process(): how many ms before the end
	 * of that frame the sound now going on first rose above the noise
	 * floor (a weaker test than speech: onsets such as /f/, /h/, /th/
	 * pass it before they pass process's), 0 if the frame is not above
	 * it. The segmenter starts a segment there (look-back), bounded by
	 * VAD_LOOKBACK_MS_MAX. */
	int (*onset_ms)(void *state);
} vad_engine_ops;

/* e's onset_ms for state, 0 when e has none. */
static inline int vad_engine_onset_ms(const vad_engine_ops *e, void *state)
{
	return e->onset_ms ? e->onset_ms(state) : 0;
}

extern const vad_engine_ops *const vad_engines[];   /* NULL-terminated */
/* The engine called name or aliased so (case ignored), or NULL. NULL or ""
 * gives the default. */
const vad_engine_ops *vad_engine_find(const char *name);
/* vad_engines[i] as a vx_engine, NULL past the last (for vx_engine_*). */
const vx_engine *vad_engine_at(size_t i);

/* ---- segmenter ---- */

#define VAD_MIN_SPEECH_MS_DEFAULT 250
#define VAD_MIN_SILENCE_MS_DEFAULT 300
#define VAD_SEG_MS_MAX 10000         /* upper bound of min_speech/min_silence/pad */
#define VAD_LOOKBACK_MS_MAX 300      /* a run's start moves back at most this */

typedef struct vad_seg_config {
	int frame_ms;         /* 10, 20 or 30 */
	int min_speech_ms;    /* default 250 */
	int min_silence_ms;   /* default 300 */
	int pad_ms;           /* added before start and after end; default 0;
				 clamped to min_silence_ms / 2 so padded
				 segments never overlap */
} vad_seg_config;

typedef enum vad_event { VAD_SPEECH_START, VAD_SPEECH_END } vad_event;

/* Called when a segment starts (end_ms = -1) and when it ends. */
typedef void (*vad_seg_cb)(void *user, vad_event ev, int64_t start_ms,
			   int64_t end_ms);

typedef struct vad_segmenter {
	vad_seg_config cfg;    /* as given, values clamped to valid ranges */
	int64_t t_ms;          /* time of the next frame */
	int in_speech;         /* a segment is open (confirmed) */
	int64_t run_start_ms;  /* start of the current speech run, -1 if none */
	int64_t onset_ms;      /* its start moved back by the look-back */
	int64_t prev_end_ms;   /* end of the last segment + pad_ms, 0 if none */
	int64_t last_speech_ms;/* end of the last speech frame */
	int64_t seg_start_ms;  /* reported (padded) start of the open segment */
	int64_t speech_ms;     /* total of emitted segments */
} vad_segmenter;

/* cfg values out of range are clamped (frame_ms to 10/20/30, the rest to
 * 0..VAD_SEG_MS_MAX); a NULL cfg means 20 ms frames and the defaults. */
void vad_segmenter_init(vad_segmenter *s, const vad_seg_config *cfg);
/* One frame's decision: is_speech > 0 speech, 0 not; a negative value (an
 * engine error) counts as not speech. cb may be NULL. */
void vad_segmenter_push(vad_segmenter *s, int is_speech, vad_seg_cb cb,
			void *user);
/* The same with the engine's onset_ms for this frame (look-back). */
void vad_segmenter_push_onset(vad_segmenter *s, int is_speech, int onset_ms,
			      vad_seg_cb cb, void *user);
/* Closes an open segment at the current time (a run still shorter than
 * min_speech_ms is dropped). The segmenter can go on being pushed after. */
void vad_segmenter_finish(vad_segmenter *s, vad_seg_cb cb, void *user);

/* ---- whole buffers ---- */

#define VAD_SEGMENTS_MAX 100000      /* more than that is -E2BIG */

typedef struct vad_segment {
	int64_t start_ms;
	int64_t end_ms;
} vad_segment;

typedef struct vad_segments {
	vad_segment *v;       /* n segments in time order; heap, or NULL */
	size_t n;
	size_t cap;
	int64_t speech_ms;    /* sum of end_ms - start_ms */
	int64_t duration_ms;  /* audio length (n / 16, rounded down) */
} vad_segments;

/*
 * Runs engine e (a fresh instance made with cfg) over pcm[0..n) in
 * scfg->frame_ms frames (a trailing partial frame is zero-padded) and
 * segments the result. On success *ret is filled and the caller owns it:
 * release with vad_segments_release. 0, -EINVAL, -ENOMEM, -E2BIG or the
 * engine's error; *ret is untouched on failure.
 */
int vad_engine_detect(const vad_engine_ops *e, const vad_config *cfg,
		      const vad_seg_config *scfg, const int16_t *pcm, size_t n,
		      vad_segments *ret);
void vad_segments_release(vad_segments *s);

#endif
