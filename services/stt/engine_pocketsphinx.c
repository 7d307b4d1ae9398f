/*
 * engine_pocketsphinx.c - the "pocketsphinx" engine: CMU Sphinx, embedded
 * (Debian's pocketsphinx 5prealpha with the en-us acoustic model, the
 * cmudict dictionary and the en-us trigram language model).
 *
 * The pool is pool_size independent decoders, each ps_init'ed from one
 * shared cmd_ln_t. pocketsphinx 5prealpha has no way to share the acoustic
 * or language model between decoders that run at the same time (ps_retain
 * only counts references to one decoder, and the trie LM keeps a lookup
 * cache inside), so every decoder costs about 90 MB and 0.4 s to load.
 *
 * Defaults (measured on flite speech, see tests/unit/test_stt_engines.c):
 * -samprate 16000 and -remove_noise no (spectral noise subtraction costs
 * about 2 points of WER on clean audio; pass decoder_args "-remove_noise yes"
 * for noisy microphones). Everything else is pocketsphinx's default.
 *
 * pocketsphinx's own logging is process-wide; create turns it off
 * (err_set_logfp(NULL)) since library code here does not log.
 *
 * Thread safety: the pool is guarded by a mutex; a decoder is used by one
 * thread at a time (the one holding its slot).
 */
#include "stt_engine.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sphinxbase/cmn.h>
#include <sphinxbase/err.h>
#include <sphinxbase/feat.h>
#include <pocketsphinx.h>

#define SPHINX_MODEL_ROOT "/usr/share/pocketsphinx/model/en-us"
#define SPHINX_DEFAULT_MODEL_DIR SPHINX_MODEL_ROOT "/en-us"
#define SPHINX_DEFAULT_DICT SPHINX_MODEL_ROOT "/cmudict-en-us.dict"
#define SPHINX_DEFAULT_LM SPHINX_MODEL_ROOT "/en-us.lm.bin"
#define SPHINX_CHUNK_SAMPLES 1600          /* 100 ms of audio between cancel checks */
#define SPHINX_ARGV_MAX 64                 /* argv entries given to cmd_ln */
#define SPHINX_DECODER_ARGS_MAX 1024       /* bytes of stt_config.decoder_args */
#define SPHINX_MAX_SAMPLES ((size_t)STT_AUDIO_MAX_SECONDS * STT_RATE)

/* Tuned defaults, applied unless decoder_args names the same option. */
static const char *const sphinx_default_args[][2] = {
	{ "-samprate", "16000" },
	{ "-remove_noise", "no" },
};
#define SPHINX_N_DEFAULT_ARGS (sizeof(sphinx_default_args) / sizeof(sphinx_default_args[0]))

struct sphinx_slot {
	ps_decoder_t *ps;
	bool busy;                 /* taken by a transcribe call or a stream */
};

struct sphinx_engine {
	pthread_mutex_t lock;      /* guards slot[].busy */
	int frate;                 /* frames per second, for segment times */
	int n_slots;
	struct sphinx_slot slot[];     /* n_slots decoders */
};

#define SPHINX_CEP_MAX 64          /* cepstral coefficients kept for CMN */

struct sphinx_stream {
	struct sphinx_engine *e;
	struct sphinx_slot *slot;
	bool in_utt;               /* ps_start_utt called, not yet ended */
	size_t utt_samples;        /* samples fed in this utterance */
	char *partial;             /* last partial reported, or NULL */
	mfcc_t cmn_mean[SPHINX_CEP_MAX]; /* live CMN mean when the utterance began */
	bool cmn_saved;
};

/*
 * The decoder's live cepstral mean adapts at the end of every utterance. An
 * utterance that is abandoned (cancelled, or the client left) must not
 * leave its audio in that mean, or the next utterance decodes worse for it:
 * the mean is saved when an utterance starts and put back on abandon.
 */
static void sphinx_cmn_save(struct sphinx_stream *st)
{
	feat_t *f = ps_get_feat(st->slot->ps);
	st->cmn_saved = f && f->cmn_struct && feat_cepsize(f) <= SPHINX_CEP_MAX;
	if (st->cmn_saved)
		cmn_live_get(f->cmn_struct, st->cmn_mean);
}

static void sphinx_cmn_restore(struct sphinx_stream *st)
{
	feat_t *f = ps_get_feat(st->slot->ps);
	if (st->cmn_saved && f && f->cmn_struct)
		cmn_live_set(f->cmn_struct, st->cmn_mean);
}

static int sphinx_lang_check(const stt_options *opt)
{
	const char *l = opt ? opt->language : NULL;

	if (!l || !*l || strcmp(l, "auto") == 0)
		return 0;
	if (strncasecmp(l, "en", 2) == 0 && (l[2] == '\0' || l[2] == '-' || l[2] == '_'))
		return 0;
	return -ENOTSUP;
}

static bool sphinx_argv_has(char **argv, int argc, const char *name)
{
	for (int i = 0; i + 1 < argc; i += 2)
		if (strcmp(argv[i], name) == 0)
			return true;
	return false;
}

/*
 * Builds the decoder configuration: model paths, then decoder_args, then
 * the defaults decoder_args does not override (cmd_ln refuses duplicates).
 */
static int sphinx_config_new(const stt_config *cfg, cmd_ln_t **ret_config)
{
	char *argv[SPHINX_ARGV_MAX];
	int argc = 0, err = 0;
	char *args = NULL, *save = NULL;
	cmd_ln_t *config;
	/* NULL or "" = the default, as flags with an empty default give */
	const char *hmm = cfg->model_dir && *cfg->model_dir ? cfg->model_dir
							    : SPHINX_DEFAULT_MODEL_DIR;
	const char *dict = cfg->dict && *cfg->dict ? cfg->dict : SPHINX_DEFAULT_DICT;
	const char *lm = cfg->lm && *cfg->lm ? cfg->lm : SPHINX_DEFAULT_LM;
	char mdef[4096];

	if ((size_t)snprintf(mdef, sizeof(mdef), "%s/mdef", hmm) >= sizeof(mdef))
		return -EINVAL;
	if (access(mdef, R_OK) != 0 || access(dict, R_OK) != 0 ||
	    access(lm, R_OK) != 0)
		return -ENOENT;
	argv[argc++] = "-hmm";
	argv[argc++] = (char *)hmm;
	argv[argc++] = "-dict";
	argv[argc++] = (char *)dict;
	argv[argc++] = "-lm";
	argv[argc++] = (char *)lm;
	if (cfg->decoder_args && *cfg->decoder_args) {
		if (strnlen(cfg->decoder_args, SPHINX_DECODER_ARGS_MAX + 1) >
		    SPHINX_DECODER_ARGS_MAX)
			return -EINVAL;
		args = strdup(cfg->decoder_args);
		if (!args)
			return -ENOMEM;
		for (char *t = strtok_r(args, " \t\n", &save); t;
		     t = strtok_r(NULL, " \t\n", &save)) {
			if (argc >= SPHINX_ARGV_MAX - 2 * (int)SPHINX_N_DEFAULT_ARGS) {
				err = -EINVAL;
				goto out_free_args;
			}
			argv[argc++] = t;
		}
		if (argc % 2 != 0) {
			err = -EINVAL;    /* a name without a value */
			goto out_free_args;
		}
	}
	for (size_t i = 0; i < SPHINX_N_DEFAULT_ARGS; i++) {
		if (sphinx_argv_has(argv, argc, sphinx_default_args[i][0]))
			continue;
		argv[argc++] = (char *)sphinx_default_args[i][0];
		argv[argc++] = (char *)sphinx_default_args[i][1];
	}
	config = cmd_ln_parse_r(NULL, ps_args(), argc, argv, 1);
	if (!config) {
		err = -EINVAL;    /* unknown option, duplicate or bad value */
		goto out_free_args;
	}
	*ret_config = config;
out_free_args:
	free(args);
	return err;
}

static void sphinx_destroy(void *engine)
{
	struct sphinx_engine *e = engine;

	if (!e)
		return;
	for (int i = 0; i < e->n_slots; i++)
		if (e->slot[i].ps)
			ps_free(e->slot[i].ps);
	pthread_mutex_destroy(&e->lock);
	free(e);
}

static int sphinx_create(const stt_config *cfg, void **ret_engine)
{
	struct sphinx_engine *e;
	cmd_ln_t *config = NULL;
	int err;

	if (!cfg || cfg->pool_size < 1 || cfg->pool_size > STT_POOL_MAX)
		return -EINVAL;
	err_set_logfp(NULL);
	err = sphinx_config_new(cfg, &config);
	if (err < 0)
		return err;
	e = calloc(1, sizeof(*e) + (size_t)cfg->pool_size * sizeof(e->slot[0]));
	if (!e) {
		err = -ENOMEM;
		goto out_free_config;
	}
	pthread_mutex_init(&e->lock, NULL);
	e->n_slots = cfg->pool_size;
	e->frate = (int)cmd_ln_int32_r(config, "-frate");
	if (e->frate <= 0) {
		err = -EINVAL;
		goto out_destroy;
	}
	for (int i = 0; i < e->n_slots; i++) {
		/* ps_init takes its own reference on config */
		e->slot[i].ps = ps_init(config);
		if (!e->slot[i].ps) {
			err = -EINVAL;   /* files exist, so they did not load */
			goto out_destroy;
		}
	}
	cmd_ln_free_r(config);
	*ret_engine = e;
	return 0;

out_destroy:
	sphinx_destroy(e);
out_free_config:
	cmd_ln_free_r(config);
	return err;
}

static struct sphinx_slot *sphinx_slot_take(struct sphinx_engine *e)
{
	struct sphinx_slot *s = NULL;

	pthread_mutex_lock(&e->lock);
	for (int i = 0; i < e->n_slots && !s; i++) {
		if (!e->slot[i].busy) {
			s = &e->slot[i];
			s->busy = true;
		}
	}
	pthread_mutex_unlock(&e->lock);
	return s;
}

static void sphinx_slot_give(struct sphinx_engine *e, struct sphinx_slot *s)
{
	pthread_mutex_lock(&e->lock);
	s->busy = false;
	pthread_mutex_unlock(&e->lock);
}

/*
 * Starts an utterance on a fresh stream: segment frames count from the
 * stream start (ps_seg_frames adds the stream offset), so without
 * ps_start_stream they would run on from the decoder's previous utterance.
 */
static int sphinx_utt_start(ps_decoder_t *ps)
{
	if (ps_start_stream(ps) < 0 || ps_start_utt(ps) < 0)
		return -EIO;
	return 0;
}

/* A dictionary entry that is a spoken word, not <s>, <sil>, [NOISE], (NULL). */
static bool sphinx_word_is_spoken(const char *w)
{
	return w && *w && *w != '<' && *w != '[' && *w != '(';
}

/* The length of w without an alternative-pronunciation suffix "(2)". */
static size_t sphinx_word_base_len(const char *w)
{
	const char *p = strchr(w, '(');

	return p && p > w ? (size_t)(p - w) : strlen(w);
}

/* Fills ret from the decoder's ended utterance: text and one segment a word. */
static int sphinx_result_build(ps_decoder_t *ps, int frate, stt_result *ret)
{
	stt_result r = { 0 };
	const char *hyp = ps_get_hyp(ps, NULL);
	size_t cap = 0;
	ps_seg_t *seg;
	int err = -ENOMEM;

	r.text = strdup(hyp ? hyp : "");
	r.language = strdup("en");
	if (!r.text || !r.language)
		goto out_release;
	for (seg = ps_seg_iter(ps); seg; seg = ps_seg_next(seg)) {
		const char *w = ps_seg_word(seg);
		stt_segment *s;
		int sf, ef;

		if (!sphinx_word_is_spoken(w))
			continue;
		if (r.n_segments == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			stt_segment *n = realloc(r.segments, ncap * sizeof(*n));

			if (!n)
				goto out_free_seg;
			r.segments = n;
			cap = ncap;
		}
		s = &r.segments[r.n_segments];
		s->text = strndup(w, sphinx_word_base_len(w));
		if (!s->text)
			goto out_free_seg;
		ps_seg_frames(seg, &sf, &ef);
		s->start_ms = (int64_t)sf * 1000 / frate;
		s->end_ms = (int64_t)(ef + 1) * 1000 / frate;
		r.n_segments++;
	}
	*ret = r;
	return 0;

out_free_seg:
	ps_seg_free(seg);
out_release:
	stt_result_release(&r);
	return err;
}

static int sphinx_transcribe(void *engine, const int16_t *pcm, size_t n,
				const stt_options *opt,
				const atomic_bool *cancel, stt_result *ret)
{
	struct sphinx_engine *e = engine;
	struct sphinx_slot *s;
	int err;

	if (!pcm && n > 0)
		return -EINVAL;
	if (n > SPHINX_MAX_SAMPLES)
		return -E2BIG;
	err = sphinx_lang_check(opt);
	if (err < 0)
		return err;
	s = sphinx_slot_take(e);
	if (!s)
		return -EBUSY;
	if (sphinx_utt_start(s->ps) < 0) {
		err = -EIO;
		goto out_give;
	}
	for (size_t off = 0; off < n; off += SPHINX_CHUNK_SAMPLES) {
		size_t len = n - off < SPHINX_CHUNK_SAMPLES ? n - off : SPHINX_CHUNK_SAMPLES;

		if (cancel && atomic_load(cancel)) {
			err = -ECANCELED;
			goto out_end_utt;
		}
		if (ps_process_raw(s->ps, pcm + off, len, 0, 0) < 0) {
			err = -EIO;
			goto out_end_utt;
		}
	}
	if (ps_end_utt(s->ps) < 0) {
		err = -EIO;
		goto out_give;
	}
	err = sphinx_result_build(s->ps, e->frate, ret);
	goto out_give;

out_end_utt:
	ps_end_utt(s->ps);
out_give:
	sphinx_slot_give(e, s);
	return err;
}

static int sphinx_stream_open(void *engine, const stt_options *opt,
			  void **ret_stream)
{
	struct sphinx_engine *e = engine;
	struct sphinx_stream *st;
	int err = sphinx_lang_check(opt);

	if (err < 0)
		return err;
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->e = e;
	st->slot = sphinx_slot_take(e);
	if (!st->slot) {
		free(st);
		return -EBUSY;
	}
	*ret_stream = st;
	return 0;
}

static int sphinx_stream_start(struct sphinx_stream *st)
{
	if (st->in_utt)
		return 0;
	sphinx_cmn_save(st);
	if (sphinx_utt_start(st->slot->ps) < 0)
		return -EIO;
	st->in_utt = true;
	st->utt_samples = 0;
	free(st->partial);
	st->partial = NULL;
	return 0;
}

static int sphinx_stream_feed(void *stream, const int16_t *pcm, size_t n,
			  stt_partial_cb cb, void *user)
{
	struct sphinx_stream *st = stream;
	const char *hyp;
	int err;

	if (!pcm && n > 0)
		return -EINVAL;
	err = sphinx_stream_start(st);
	if (err < 0)
		return err;
	if (n > SPHINX_MAX_SAMPLES - st->utt_samples)
		return -E2BIG;
	if (n == 0)
		return 0;
	if (ps_process_raw(st->slot->ps, pcm, n, 0, 0) < 0)
		return -EIO;
	st->utt_samples += n;
	hyp = ps_get_hyp(st->slot->ps, NULL);
	if (!hyp || !*hyp || (st->partial && strcmp(st->partial, hyp) == 0))
		return 0;
	free(st->partial);
	st->partial = strdup(hyp);
	if (!st->partial)
		return -ENOMEM;
	if (cb)
		cb(user, st->partial);
	return 0;
}

static int sphinx_stream_finish(void *stream, stt_result *ret)
{
	struct sphinx_stream *st = stream;
	int err = sphinx_stream_start(st);   /* an empty utterance gives "" */

	if (err < 0)
		return err;
	st->in_utt = false;
	if (ps_end_utt(st->slot->ps) < 0)
		return -EIO;
	return sphinx_result_build(st->slot->ps, st->e->frate, ret);
}

static void sphinx_stream_close(void *stream)
{
	struct sphinx_stream *st = stream;

	if (!st)
		return;
	if (st->in_utt) {   /* abandoned: forget what it taught the CMN */
		ps_end_utt(st->slot->ps);
		sphinx_cmn_restore(st);
	}
	sphinx_slot_give(st->e, st->slot);
	free(st->partial);
	free(st);
}

const stt_engine_ops stt_engine_pocketsphinx = {
	.name = "pocketsphinx",
	.description = "CMU pocketsphinx, embedded (en-us model)",
	.flags = VX_ENGINE_STREAMING,
	.languages = "en",
	.default_model = "en-us",
	.create = sphinx_create,
	.destroy = sphinx_destroy,
	.transcribe = sphinx_transcribe,
	.stream_open = sphinx_stream_open,
	.stream_feed = sphinx_stream_feed,
	.stream_finish = sphinx_stream_finish,
	.stream_close = sphinx_stream_close,
};
