/*
 * vad_engine.h - the VAD engine interface and the segmenter on top of it.
 *
 * An engine classifies 10, 20 or 30 ms frames of 16 kHz mono PCM16 as speech
 * or not. One engine instance is one stream's state (cheap: create one per
 * request or per WebSocket); instances are independent and may be used from
 * different threads, one thread each. Engines register in vad_engines[]
 * (vad_engine.c) and are chosen by name from --engine.
 *
 * The segmenter turns per-frame decisions into speech segments with
 * min_speech_ms (shorter bursts are dropped), min_silence_ms (shorter gaps
 * are bridged: the hangover) and a little padding, both for a whole file
 * (/detect) and incrementally (/ws/detect emits start/end events).
 *
 *     void *st; e->create(&cfg, &st);
 *     for each 20 ms frame: vad_segmenter_push(&seg, e->process(st, f, 320), cb, user);
 *     vad_segmenter_finish(&seg, cb, user); e->destroy(st);
 */
#ifndef VAD_ENGINE_H
#define VAD_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#define VAD_RATE 16000

typedef struct vad_config {
	int aggressiveness;   /* 0 (lenient) .. 3 (strict) */
} vad_config;

typedef struct vad_engine_ops {
	const char *name;
	const char *description;
	int (*create)(const vad_config *cfg, void **ret_state);
	void (*destroy)(void *state);
	/* Classifies one frame of n samples (160, 320 or 480 at 16 kHz).
	 * Returns 1 speech, 0 not speech, negative errno on error. */
	int (*process)(void *state, const int16_t *pcm, size_t n);
} vad_engine_ops;

extern const vad_engine_ops *const vad_engines[];   /* NULL-terminated */
const vad_engine_ops *vad_engine_find(const char *name);

/* ---- segmenter ---- */

typedef struct vad_seg_config {
	int frame_ms;         /* 10, 20 or 30 */
	int min_speech_ms;    /* default 250 */
	int min_silence_ms;   /* default 300 */
	int pad_ms;           /* added before start and after end; default 0 */
} vad_seg_config;

typedef enum vad_event { VAD_SPEECH_START, VAD_SPEECH_END } vad_event;

/* Called when a segment starts (end_ms = -1) and when it ends. */
typedef void (*vad_seg_cb)(void *user, vad_event ev, int64_t start_ms,
			   int64_t end_ms);

typedef struct vad_segmenter {
	vad_seg_config cfg;
	int64_t t_ms;          /* time of the next frame */
	int in_speech;         /* a segment is open (confirmed) */
	int64_t run_start_ms;  /* start of the current speech run, -1 if none */
	int64_t last_speech_ms;/* end of the last speech frame */
	int64_t speech_ms;     /* total of emitted segments */
} vad_segmenter;

void vad_segmenter_init(vad_segmenter *s, const vad_seg_config *cfg);
void vad_segmenter_push(vad_segmenter *s, int is_speech, vad_seg_cb cb,
			void *user);
/* Closes an open segment at the current time. */
void vad_segmenter_finish(vad_segmenter *s, vad_seg_cb cb, void *user);

#endif
