/*
 * vad_engine.c - the engine registry and whole-buffer detection.
 *
 * Adding an engine: write engine_<name>.c exporting a const vad_engine_ops
 * (name, description, aliases if any, and the three functions), declare it
 * below and add it to vad_engines[]. The first entry is the default (the
 * one that scored best in tools/vad_eval).
 */
#include "vad_engine.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

extern const vad_engine_ops vad_engine_builtin;
extern const vad_engine_ops vad_engine_webrtc;

const vad_engine_ops *const vad_engines[] = {
	&vad_engine_builtin,
	&vad_engine_webrtc,
	NULL,
};

const vx_engine *vad_engine_at(size_t i)
{
	return vad_engines[i] ? &vad_engines[i]->engine : NULL;
}

const vad_engine_ops *vad_engine_find(const char *name)
{
	const vx_engine *e;

	if (vx_engine_find(vad_engine_at, name, &e) < 0)
		return NULL;
	return (const vad_engine_ops *)e;   /* e is the ops' first member */
}

/* Collects segmenter events into a vad_segments list. */
struct collect {
	vad_segments segs;
	int err;              /* first error, sticky */
};

static void collect_cb(void *user, vad_event ev, int64_t start_ms,
		       int64_t end_ms)
{
	struct collect *c = user;

	if (ev != VAD_SPEECH_END || c->err)
		return;
	if (c->segs.n == c->segs.cap) {
		size_t cap = c->segs.cap ? c->segs.cap * 2 : 16;
		vad_segment *v;

		if (c->segs.n >= VAD_SEGMENTS_MAX) {
			c->err = -E2BIG;
			return;
		}
		v = realloc(c->segs.v, cap * sizeof(*v));
		if (!v) {
			c->err = -ENOMEM;
			return;
		}
		c->segs.v = v;
		c->segs.cap = cap;
	}
	c->segs.v[c->segs.n++] = (vad_segment){ start_ms, end_ms };
	c->segs.speech_ms += end_ms - start_ms;
}

int vad_engine_detect(const vad_engine_ops *e, const vad_config *cfg,
		      const vad_seg_config *scfg, const int16_t *pcm, size_t n,
		      vad_segments *ret)
{
	struct collect c = { 0 };
	vad_segmenter seg;
	int16_t last[VAD_FRAME_MAX];
	size_t frame;
	void *st = NULL;
	int r;

	if (!e || !cfg || !ret || (!pcm && n))
		return -EINVAL;
	vad_segmenter_init(&seg, scfg);
	frame = (size_t)seg.cfg.frame_ms * (VAD_RATE / 1000);
	r = e->create(cfg, &st);
	if (r < 0)
		return r;
	for (size_t off = 0; off < n && !c.err; off += frame) {
		const int16_t *f = pcm + off;

		if (n - off < frame) {
			memset(last, 0, sizeof(last));
			memcpy(last, f, (n - off) * sizeof(*f));
			f = last;
		}
		r = e->process(st, f, frame);
		if (r < 0)
			goto out_free_segs;
		vad_segmenter_push_onset(&seg, r, vad_engine_onset_ms(e, st),
					 collect_cb, &c);
	}
	vad_segmenter_finish(&seg, collect_cb, &c);
	r = c.err;
	if (r < 0)
		goto out_free_segs;
	/* The zero-padded tail frame may end past the audio: clamp to it. */
	c.segs.duration_ms = (int64_t)(n / (VAD_RATE / 1000));
	if (c.segs.n && c.segs.v[c.segs.n - 1].end_ms > c.segs.duration_ms) {
		vad_segment *l = &c.segs.v[c.segs.n - 1];

		c.segs.speech_ms -= l->end_ms - c.segs.duration_ms;
		l->end_ms = c.segs.duration_ms;
	}
	*ret = c.segs;
	e->destroy(st);
	return 0;

out_free_segs:
	vad_segments_release(&c.segs);
	e->destroy(st);
	return r;
}
