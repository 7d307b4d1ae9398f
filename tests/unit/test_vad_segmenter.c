/*
 * test_vad_segmenter.c - the segmenter: min_speech, min_silence, padding,
 * finish, and streaming events against an independent batch reference.
 */
#include "vad_engine.h"
#include "vx_test.h"

#include <stdint.h>
#include <stdlib.h>

#define MAX_EVENTS 512

struct events {
	int n;
	vad_event ev[MAX_EVENTS];
	int64_t start[MAX_EVENTS], end[MAX_EVENTS];
	int64_t at[MAX_EVENTS];          /* segmenter time when emitted */
	const vad_segmenter *seg;
};

static void record(void *user, vad_event ev, int64_t start_ms, int64_t end_ms)
{
	struct events *e = user;

	if (e->n >= MAX_EVENTS)
		return;
	e->ev[e->n] = ev;
	e->start[e->n] = start_ms;
	e->end[e->n] = end_ms;
	e->at[e->n] = e->seg ? e->seg->t_ms : -1;
	e->n++;
}

/* Pushes n frames of the same decision. */
static void push_n(vad_segmenter *s, int speech, int n, struct events *e)
{
	for (int i = 0; i < n; i++)
		vad_segmenter_push(s, speech, record, e);
}

static vad_seg_config cfg20(int min_speech, int min_silence, int pad)
{
	return (vad_seg_config){ .frame_ms = 20, .min_speech_ms = min_speech,
				 .min_silence_ms = min_silence, .pad_ms = pad };
}

VX_TEST(min_speech_drops_blips)
{
	vad_seg_config c = cfg20(250, 300, 0);
	vad_segmenter s;
	struct events e = { 0 };

	vad_segmenter_init(&s, &c);
	push_n(&s, 0, 10, &e);
	push_n(&s, 1, 5, &e);      /* 100 ms blip */
	push_n(&s, 0, 30, &e);
	push_n(&s, 1, 12, &e);     /* 240 ms: still short of 250 */
	push_n(&s, 0, 30, &e);
	vad_segmenter_finish(&s, record, &e);
	VX_CHECK_INT(e.n, 0);
	VX_CHECK_INT(s.speech_ms, 0);
	VX_CHECK_INT(s.t_ms, 87 * 20);
}

VX_TEST(min_speech_run_opens_when_long_enough)
{
	vad_seg_config c = cfg20(250, 300, 0);
	vad_segmenter s;
	struct events e = { .seg = &s };

	vad_segmenter_init(&s, &c);
	push_n(&s, 0, 10, &e);
	push_n(&s, 1, 13, &e);     /* 260 ms */
	VX_CHECK_INT(e.n, 1);
	VX_CHECK_INT(e.ev[0], VAD_SPEECH_START);
	VX_CHECK_INT(e.start[0], 200);
	VX_CHECK_INT(e.end[0], -1);
	/* reported as soon as the run spans 250 ms: at 200 + 260 ms */
	VX_CHECK_INT(e.at[0], 460);
	push_n(&s, 0, 14, &e);     /* 280 ms < 300: still open */
	VX_CHECK_INT(e.n, 1);
	push_n(&s, 0, 1, &e);      /* 300 ms: closes */
	VX_CHECK_INT(e.n, 2);
	VX_CHECK_INT(e.ev[1], VAD_SPEECH_END);
	VX_CHECK_INT(e.start[1], 200);
	VX_CHECK_INT(e.end[1], 460);
	VX_CHECK_INT(e.at[1], 760);
	VX_CHECK_INT(s.speech_ms, 260);
}

VX_TEST(min_silence_bridges_gaps)
{
	vad_seg_config c = cfg20(250, 300, 0);
	vad_segmenter s;
	struct events e = { 0 };

	vad_segmenter_init(&s, &c);
	push_n(&s, 0, 5, &e);
	push_n(&s, 1, 20, &e);     /* 100..500 */
	push_n(&s, 0, 14, &e);     /* 280 ms gap: bridged */
	push_n(&s, 1, 2, &e);      /* 780..820: a short burst joins the run */
	push_n(&s, 0, 10, &e);     /* 200 ms gap: bridged */
	push_n(&s, 1, 10, &e);     /* 1020..1220 */
	push_n(&s, 0, 15, &e);     /* 300 ms: ends */
	push_n(&s, 1, 20, &e);     /* 1520..1920: a second segment */
	push_n(&s, 0, 20, &e);
	VX_CHECK_INT(e.n, 4);
	VX_CHECK_INT(e.ev[0], VAD_SPEECH_START);
	VX_CHECK_INT(e.ev[1], VAD_SPEECH_END);
	VX_CHECK_INT(e.start[1], 100);
	VX_CHECK_INT(e.end[1], 1220);
	VX_CHECK_INT(e.start[3], 1520);
	VX_CHECK_INT(e.end[3], 1920);
	VX_CHECK_INT(s.speech_ms, 1120 + 400);
}

VX_TEST(finish_closes_open_segment)
{
	vad_seg_config c = cfg20(100, 300, 0);
	vad_segmenter s;
	struct events e = { 0 };

	vad_segmenter_init(&s, &c);
	push_n(&s, 0, 3, &e);
	push_n(&s, 1, 20, &e);     /* 60..460 */
	push_n(&s, 0, 4, &e);      /* 80 ms of trailing silence, not yet 300 */
	VX_CHECK_INT(e.n, 1);
	vad_segmenter_finish(&s, record, &e);
	VX_CHECK_INT(e.n, 2);
	VX_CHECK_INT(e.ev[1], VAD_SPEECH_END);
	VX_CHECK_INT(e.start[1], 60);
	VX_CHECK_INT(e.end[1], 460);
	/* finish again is a no-op, and the segmenter goes on after it */
	vad_segmenter_finish(&s, record, &e);
	VX_CHECK_INT(e.n, 2);
	push_n(&s, 1, 10, &e);
	vad_segmenter_finish(&s, record, &e);
	VX_CHECK_INT(e.n, 4);
	VX_CHECK_INT(e.start[3], 540);
	VX_CHECK_INT(e.end[3], 740);
}

VX_TEST(finish_while_speaking_ends_at_current_time)
{
	vad_seg_config c = cfg20(100, 300, 200);   /* pad clamps to 150 */
	vad_segmenter s;
	struct events e = { 0 };

	vad_segmenter_init(&s, &c);
	VX_CHECK_INT(s.cfg.pad_ms, 150);
	push_n(&s, 0, 2, &e);
	push_n(&s, 1, 10, &e);     /* 40..240 */
	vad_segmenter_finish(&s, record, &e);
	VX_CHECK_INT(e.n, 2);
	VX_CHECK_INT(e.start[0], 0);     /* 40 - 150 clamped to 0 */
	VX_CHECK_INT(e.end[1], 240);     /* 240 + 150 clamped to now */
}

VX_TEST(padding_extends_both_ends)
{
	vad_seg_config c = cfg20(100, 300, 100);
	vad_segmenter s;
	struct events e = { 0 };

	vad_segmenter_init(&s, &c);
	push_n(&s, 0, 25, &e);
	push_n(&s, 1, 10, &e);     /* 500..700 */
	push_n(&s, 0, 20, &e);
	VX_CHECK_INT(e.n, 2);
	VX_CHECK_INT(e.start[1], 400);
	VX_CHECK_INT(e.end[1], 800);
	VX_CHECK_INT(s.speech_ms, 400);
}

VX_TEST(engine_errors_count_as_non_speech)
{
	vad_seg_config c = cfg20(0, 0, 0);
	vad_segmenter s;
	struct events e = { 0 };

	vad_segmenter_init(&s, &c);
	vad_segmenter_push(&s, -22, record, &e);
	vad_segmenter_finish(&s, record, &e);
	VX_CHECK_INT(e.n, 0);
}

VX_TEST(bad_config_is_clamped)
{
	vad_seg_config c = { .frame_ms = 7, .min_speech_ms = -5,
			     .min_silence_ms = 1 << 30, .pad_ms = -1 };
	vad_segmenter s;

	vad_segmenter_init(&s, &c);
	VX_CHECK_INT(s.cfg.frame_ms, 10);
	VX_CHECK_INT(s.cfg.min_speech_ms, 0);
	VX_CHECK_INT(s.cfg.min_silence_ms, VAD_SEG_MS_MAX);
	VX_CHECK_INT(s.cfg.pad_ms, 0);
	vad_segmenter_init(&s, NULL);
	VX_CHECK_INT(s.cfg.frame_ms, 20);
	VX_CHECK_INT(s.cfg.min_speech_ms, VAD_MIN_SPEECH_MS_DEFAULT);
	VX_CHECK_INT(s.cfg.min_silence_ms, VAD_MIN_SILENCE_MS_DEFAULT);
}

/*
 * The batch reference: runs of speech frames, merged across gaps shorter
 * than min_silence, kept when they span min_speech, padded and clamped.
 * Written independently of segmenter.c's state machine.
 */
static int batch_segments(const int *dec, int n, const vad_seg_config *c,
			  int64_t *start, int64_t *end, int max)
{
	int64_t rs[MAX_EVENTS], re[MAX_EVENTS];
	int nr = 0, ns = 0, pad = c->pad_ms;
	int64_t total = (int64_t)n * c->frame_ms;

	if (pad > c->min_silence_ms / 2)
		pad = c->min_silence_ms / 2;
	for (int i = 0; i < n; i++) {
		if (!dec[i])
			continue;
		int j = i;

		while (j < n && dec[j])
			j++;
		if (nr < MAX_EVENTS) {
			rs[nr] = (int64_t)i * c->frame_ms;
			re[nr] = (int64_t)j * c->frame_ms;
			nr++;
		}
		i = j;
	}
	for (int i = 0; i < nr;) {
		int64_t s = rs[i], e = re[i];
		int j = i + 1;

		while (j < nr && rs[j] - e < c->min_silence_ms)
			e = re[j++];
		if (e - s >= c->min_speech_ms && ns < max) {
			start[ns] = s - pad < 0 ? 0 : s - pad;
			end[ns] = e + pad > total ? total : e + pad;
			ns++;
		}
		i = j;
	}
	return ns;
}

static uint32_t lcg(uint32_t *x)
{
	*x = *x * 1664525u + 1013904223u;
	return *x >> 8;
}

VX_TEST(streaming_events_equal_batch_segments)
{
	static const int frames[] = { 10, 20, 30 };
	uint32_t seed = 12345;
	int mismatches = 0, segments_seen = 0;

	for (int trial = 0; trial < 300; trial++) {
		vad_seg_config c = {
			.frame_ms = frames[trial % 3],
			.min_speech_ms = (int)(lcg(&seed) % 400),
			.min_silence_ms = (int)(lcg(&seed) % 500),
			.pad_ms = (int)(lcg(&seed) % 200),
		};
		int dec[400], n = 50 + (int)(lcg(&seed) % 350);
		int64_t bs[MAX_EVENTS], be[MAX_EVENTS];
		struct events e = { 0 };
		vad_segmenter s;
		int nb, ns = 0, ok = 1;
		/* bursty decisions: runs of random length */
		int cur = 0, left = 0;

		for (int i = 0; i < n; i++) {
			if (left-- <= 0) {
				cur = !cur;
				left = 1 + (int)(lcg(&seed) % (cur ? 30 : 25));
			}
			dec[i] = cur;
		}
		vad_segmenter_init(&s, &c);
		for (int i = 0; i < n; i++)
			vad_segmenter_push(&s, dec[i], record, &e);
		vad_segmenter_finish(&s, record, &e);
		nb = batch_segments(dec, n, &c, bs, be, MAX_EVENTS);
		/* events alternate start/end, each end matching its start */
		for (int i = 0; i < e.n; i++) {
			if (e.ev[i] != (i % 2 ? VAD_SPEECH_END : VAD_SPEECH_START))
				ok = 0;
			if (i % 2 && e.start[i] != e.start[i - 1])
				ok = 0;
		}
		if (e.n % 2)
			ok = 0;
		for (int i = 1; i < e.n; i += 2) {
			if (ns >= nb || e.start[i] != bs[ns] || e.end[i] != be[ns])
				ok = 0;
			ns++;
		}
		if (ns != nb)
			ok = 0;
		segments_seen += nb;
		if (!ok && mismatches++ < 3)
			fprintf(stderr, "trial %d: frame %d speech %d silence %d "
				"pad %d: %d streaming vs %d batch segments\n",
				trial, c.frame_ms, c.min_speech_ms,
				c.min_silence_ms, c.pad_ms, ns, nb);
	}
	VX_CHECK_INT(mismatches, 0);
	VX_CHECK(segments_seen > 300);   /* the trials did exercise segments */
}

/* Pushes n speech frames, the first with the engine's onset_ms. */
static void push_onset(vad_segmenter *s, int onset_ms, int n, struct events *e)
{
	vad_segmenter_push_onset(s, 1, onset_ms, record, e);
	push_n(s, 1, n - 1, e);
}

VX_TEST(onset_moves_a_run_start_back_within_bounds)
{
	vad_seg_config c = cfg20(60, 100, 0);
	int onsets[] = { 120, 1000, 10, 0 };
	int64_t want[] = { 900, 1000 - VAD_LOOKBACK_MS_MAX, 1000, 1000 };

	for (size_t i = 0; i < sizeof(onsets) / sizeof(onsets[0]); i++) {
		vad_segmenter s;
		struct events e = { 0 };

		vad_segmenter_init(&s, &c);
		push_n(&s, 0, 50, &e);              /* speech from 1000 ms */
		push_onset(&s, onsets[i], 4, &e);
		VX_CHECK_INT(e.n, 1);
		VX_CHECK_INT(e.start[0], want[i]);
	}
}

VX_TEST(onset_never_reaches_into_the_previous_segment)
{
	vad_seg_config c = cfg20(60, 100, 0);
	vad_segmenter s;
	struct events e = { 0 };

	vad_segmenter_init(&s, &c);
	push_n(&s, 0, 10, &e);
	push_n(&s, 1, 5, &e);                       /* [200, 300) */
	push_n(&s, 0, 7, &e);                       /* closed; now 440 ms */
	push_onset(&s, VAD_LOOKBACK_MS_MAX, 4, &e); /* would be 160 ms */
	vad_segmenter_finish(&s, record, &e);
	VX_CHECK_INT(e.n, 4);
	VX_CHECK_INT(e.end[1], 300);
	VX_CHECK_INT(e.start[2], 300);
	VX_CHECK(e.start[2] >= e.end[1]);
}

VX_TEST_MAIN(min_speech_drops_blips, min_speech_run_opens_when_long_enough,
	     min_silence_bridges_gaps, finish_closes_open_segment,
	     finish_while_speaking_ends_at_current_time,
	     padding_extends_both_ends, engine_errors_count_as_non_speech,
	     bad_config_is_clamped, streaming_events_equal_batch_segments,
	     onset_moves_a_run_start_back_within_bounds,
	     onset_never_reaches_into_the_previous_segment)
