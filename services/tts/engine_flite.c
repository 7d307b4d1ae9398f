/*
 * engine_flite.c - the embedded flite engine (CMU Flite 2.2, Debian's
 * libflite_cmu_us_* voices: slt, kal, kal16, awb, rms).
 *
 * Streaming: the text is cut into utterances with flite's own tokenizer and
 * break rule (as flite_ts_to_speech does) and each utterance streams its
 * audio through a "streaming_info" callback set on the utterance, so the
 * first chunk of a long text leaves after the first sentence's front end,
 * not after the whole text.
 *
 * Thread safety: per-call settings (streaming callback, duration_stretch)
 * live in the utterance's features, which shadow the voice's; the voice is
 * only read. Two threads synthesising on one voice run clean under
 * valgrind --tool=helgrind, cold and warm. Voices are process-wide (the
 * diphone voices' register functions return singletons), loaded by the
 * first create and unloaded by the last destroy.
 *
 * Memory: registering all five voices costs under 1 MB; their data is
 * read-only in the shared libraries and paged in on first use (~2 MB each).
 */
#include "tts_engine.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <flite/flite.h>

cst_voice *register_cmu_us_slt(const char *voxdir);
cst_voice *register_cmu_us_kal(const char *voxdir);
cst_voice *register_cmu_us_kal16(const char *voxdir);
cst_voice *register_cmu_us_awb(const char *voxdir);
cst_voice *register_cmu_us_rms(const char *voxdir);
void unregister_cmu_us_slt(cst_voice *v);
void unregister_cmu_us_kal(cst_voice *v);
void unregister_cmu_us_kal16(cst_voice *v);
void unregister_cmu_us_awb(cst_voice *v);
void unregister_cmu_us_rms(cst_voice *v);

#define FLITE_DEFAULT_VOICE "slt"
#define FLITE_CHUNK_SAMPLES 1024     /* streaming granularity (64 ms at 16 kHz) */
#define FLITE_MAX_UTT_TOKENS 500     /* flite's own bound on one utterance */

struct flite_voice_def {
	const char *name;
	const char *language;
	const char *gender;
	cst_voice *(*reg)(const char *voxdir);
	void (*unreg)(cst_voice *v);
};

static const struct flite_voice_def flite_voice_defs[] = {
	{ "slt", "en-US", "female", register_cmu_us_slt, unregister_cmu_us_slt },
	{ "kal", "en-US", "male", register_cmu_us_kal, unregister_cmu_us_kal },
	{ "kal16", "en-US", "male", register_cmu_us_kal16, unregister_cmu_us_kal16 },
	{ "awb", "en-GB-scotland", "male", register_cmu_us_awb, unregister_cmu_us_awb },
	{ "rms", "en-US", "male", register_cmu_us_rms, unregister_cmu_us_rms },
};

#define FLITE_N_VOICES (sizeof(flite_voice_defs) / sizeof(flite_voice_defs[0]))

/* Process-wide voices, shared by every engine object. */
static pthread_mutex_t flite_lock = PTHREAD_MUTEX_INITIALIZER;
static int flite_refs;                          /* live engine objects */
static cst_voice *flite_loaded[FLITE_N_VOICES]; /* NULL when not loaded */

struct flite_engine {
	tts_voice voices[FLITE_N_VOICES];   /* default first */
	cst_voice *cst[FLITE_N_VOICES];     /* parallel to voices */
	float stretch[FLITE_N_VOICES];      /* the voice's own duration_stretch */
};

/* One synthesize call, reached from the streaming callback. */
struct flite_call {
	tts_audio_cb cb;
	void *user;
	const atomic_bool *cancel;
	int rate;            /* the voice's rate, reported to the caller */
	bool stopped;        /* cancel or callback asked to stop */
	int err;             /* first failure inside a callback */
};

static void flite_unload_locked(void)
{
	for (size_t i = 0; i < FLITE_N_VOICES; i++) {
		if (flite_loaded[i])
			flite_voice_defs[i].unreg(flite_loaded[i]);
		flite_loaded[i] = NULL;
	}
}

static int flite_load_locked(void)
{
	if (flite_refs > 0)
		return 0;
	flite_init();
	for (size_t i = 0; i < FLITE_N_VOICES; i++) {
		flite_loaded[i] = flite_voice_defs[i].reg(NULL);
		if (!flite_loaded[i]) {
			flite_unload_locked();
			return -EIO;
		}
	}
	return 0;
}

static void flite_destroy(void *engine)
{
	if (!engine)
		return;
	pthread_mutex_lock(&flite_lock);
	if (--flite_refs == 0)
		flite_unload_locked();
	pthread_mutex_unlock(&flite_lock);
	free(engine);
}

static int flite_def_find(const char *name, size_t *ret_i)
{
	for (size_t i = 0; i < FLITE_N_VOICES; i++) {
		if (strcasecmp(flite_voice_defs[i].name, name) == 0) {
			*ret_i = i;
			return 0;
		}
	}
	return -ENOENT;
}

static int flite_create(const tts_config *cfg, void **ret_engine)
{
	const char *def = cfg && cfg->default_voice && *cfg->default_voice
			  ? cfg->default_voice : FLITE_DEFAULT_VOICE;
	struct flite_engine *e;
	size_t first, out = 0;
	int r;

	r = flite_def_find(def, &first);
	if (r < 0)
		return r;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;

	pthread_mutex_lock(&flite_lock);
	r = flite_load_locked();
	if (r == 0)
		flite_refs++;
	pthread_mutex_unlock(&flite_lock);
	if (r < 0)
		goto out_free_engine;

	/* The default voice first, then the others in table order. */
	for (size_t k = 0; k < FLITE_N_VOICES; k++) {
		size_t i = k == 0 ? first : (k <= first ? k - 1 : k);
		const struct flite_voice_def *d = &flite_voice_defs[i];
		cst_voice *v = flite_loaded[i];

		e->cst[out] = v;
		e->stretch[out] = get_param_float(v->features,
						  "duration_stretch", 1.0f);
		e->voices[out] = (tts_voice){
			.name = d->name,
			.language = d->language,
			.gender = d->gender,
			.sample_rate = get_param_int(v->features, "sample_rate",
						     16000),
		};
		out++;
	}
	*ret_engine = e;
	return 0;

out_free_engine:
	free(e);
	return r;
}

static int flite_voices(void *engine, const tts_voice **ret_voices,
			size_t *ret_n)
{
	struct flite_engine *e = engine;

	*ret_voices = e->voices;
	*ret_n = FLITE_N_VOICES;
	return 0;
}

static int flite_stream_chunk(const cst_wave *w, int start, int size,
			      int last, cst_audio_streaming_info *asi)
{
	struct flite_call *c = asi->userdata;

	(void)last;
	if (c->stopped)
		return CST_AUDIO_STREAM_STOP;
	if (c->cancel && atomic_load(c->cancel)) {
		c->stopped = true;
		return CST_AUDIO_STREAM_STOP;
	}
	if (w->sample_rate != c->rate || w->num_channels != 1) {
		c->err = -EIO;
		c->stopped = true;
		return CST_AUDIO_STREAM_STOP;
	}
	if (size > 0 && c->cb(c->user, (const int16_t *)w->samples + start,
			      (size_t)size) != 0) {
		c->stopped = true;
		return CST_AUDIO_STREAM_STOP;
	}
	return CST_AUDIO_STREAM_CONT;
}

/* Synthesises one utterance of tokens; takes utt (deletes it). */
static int flite_synth_utt(cst_utterance *utt, cst_voice *v, float stretch,
			   struct flite_call *c)
{
	cst_audio_streaming_info *asi;

	if (c->cancel && atomic_load(c->cancel)) {
		/* the front end runs before the first chunk: check here too */
		c->stopped = true;
		delete_utterance(utt);
		return 0;
	}
	asi = new_audio_streaming_info();
	if (!asi) {
		delete_utterance(utt);
		return -ENOMEM;
	}
	asi->min_buffsize = FLITE_CHUNK_SAMPLES;
	asi->asc = flite_stream_chunk;
	asi->userdata = c;
	/* The utterance owns asi from here (freed with its features). */
	feat_set(utt->features, "streaming_info", audio_streaming_info_val(asi));
	feat_set_float(utt->features, "duration_stretch", stretch);

	utt = flite_do_synth(utt, v, utt_synth_tokens);
	if (!utt)
		return c->stopped ? 0 : -EIO;
	delete_utterance(utt);
	return c->err;
}

/* Cuts text into utterances as flite_ts_to_speech does, one at a time. */
static int flite_synth_text_stream(const char *text, cst_voice *v,
				   float stretch, struct flite_call *c)
{
	const cst_features *f = v->features;
	cst_breakfunc brk = default_utt_break;
	cst_tokenstream *ts;
	cst_utterance *utt = NULL;
	cst_relation *tokrel = NULL;
	int ntok = 0, r = 0;

	if (feat_present(f, "utt_break"))
		brk = val_breakfunc(feat_val(f, "utt_break"));
	ts = ts_open_string(text,
			    get_param_string(f, "text_whitespace", NULL),
			    get_param_string(f, "text_singlecharsymbols", NULL),
			    get_param_string(f, "text_prepunctuation", NULL),
			    get_param_string(f, "text_postpunctuation", NULL));
	if (!ts)
		return -ENOMEM;

	while (!ts_eof(ts) || ntok > 0) {
		const char *tok = ts_get(ts);
		cst_item *t;

		if (utt && (cst_strlen(tok) == 0 || ntok > FLITE_MAX_UTT_TOKENS ||
			    (relation_head(tokrel) && brk(ts, tok, tokrel)))) {
			r = flite_synth_utt(utt, v, stretch, c);
			utt = NULL;
			if (r < 0 || c->stopped || ts_eof(ts))
				break;
		}
		if (cst_strlen(tok) == 0 && ts_eof(ts))
			break;
		if (!utt) {
			utt = new_utterance();
			tokrel = utt_relation_create(utt, "Token");
			ntok = 0;
		}
		ntok++;
		t = relation_append(tokrel, NULL);
		item_set_string(t, "name", tok);
		item_set_string(t, "whitespace", ts->whitespace);
		item_set_string(t, "prepunctuation", ts->prepunctuation);
		item_set_string(t, "punc", ts->postpunctuation);
	}
	if (utt && r == 0 && !c->stopped)
		r = flite_synth_utt(utt, v, stretch, c);
	else if (utt)
		delete_utterance(utt);
	ts_close(ts);
	return r;
}

static int flite_synthesize(void *engine, const char *text,
			    const tts_options *opt, const atomic_bool *cancel,
			    tts_audio_cb cb, void *user, int *ret_rate)
{
	struct flite_engine *e = engine;
	struct flite_call c = { .cb = cb, .user = user, .cancel = cancel };
	size_t vi = 0;
	double speed;
	int r;

	r = tts_engine_check(text, opt, &speed);
	if (r < 0)
		return r;
	if (opt && opt->voice && *opt->voice) {
		for (vi = 0; vi < FLITE_N_VOICES; vi++)
			if (strcasecmp(e->voices[vi].name, opt->voice) == 0)
				break;
		if (vi == FLITE_N_VOICES)
			return -ENOENT;
	}
	c.rate = e->voices[vi].sample_rate;
	*ret_rate = c.rate;

	r = flite_synth_text_stream(text, e->cst[vi],
				    (float)(e->stretch[vi] / speed), &c);
	if (r < 0)
		return r;
	return c.stopped ? -ECANCELED : 0;
}

const tts_engine_ops tts_engine_flite = {
	.name = "flite",
	.description = "CMU Flite (embedded; voices slt, kal, kal16, awb, rms)",
	.languages = "en",
	.create = flite_create,
	.destroy = flite_destroy,
	.voices = flite_voices,
	.synthesize = flite_synthesize,
};
