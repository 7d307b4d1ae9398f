/*
 * engine_espeak.c - the espeak-ng engine: ~130 languages, formant voices.
 *
 * Voices are the ones espeak_ListVoices reports, named by the tail of their
 * identifier in lower case ("gmw/en-US" -> "en-us", "gmw/de" -> "de",
 * "roa/fr" -> "fr"). A request may also name a language ("en-gb", "pt-br",
 * "zh"): the voice listing it with the best priority is used.
 *
 * Thread safety: espeak-ng keeps its state (voice, rate, output buffer,
 * callback) in globals, so every espeak call runs under espeak_lock, one
 * synthesis at a time per process. It is initialised once, by the first
 * create, and stays for the life of the process: Debian's 1.51 hangs in
 * espeak_ng_Terminate after an Initialize/Terminate/Initialize cycle (its
 * internal fifo thread never acknowledges), so it is never terminated.
 * Output is synchronous (ENOUTPUT_MODE_SYNCHRONOUS): the synth callback
 * streams chunks of ESPEAK_BUFFER_MS on the calling thread.
 */
#include "tts_engine.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <espeak-ng/espeak_ng.h>
#include <espeak-ng/speak_lib.h>

#define ESPEAK_DEFAULT_VOICE "en-us"
#define ESPEAK_BUFFER_MS 50           /* audio per synth callback */
#define ESPEAK_MAX_VOICES 512         /* Debian ships ~130 */
#define ESPEAK_MAX_LANGS 4            /* languages kept per voice */
#define ESPEAK_NAME_MAX 64            /* bytes, NUL included */

struct espeak_voice_ent {
	char name[ESPEAK_NAME_MAX];       /* "en-us" */
	char id[ESPEAK_NAME_MAX];         /* "gmw/en-US", for SetVoiceByName */
	char lang[ESPEAK_NAME_MAX];       /* BCP 47 of the first language */
	char langs[ESPEAK_MAX_LANGS][ESPEAK_NAME_MAX]; /* lower case */
	int prio[ESPEAK_MAX_LANGS];       /* espeak priority, lower is better */
	int n_langs;
};

struct espeak_engine {
	tts_voice *voices;                /* n, default first */
	struct espeak_voice_ent *ents;    /* parallel to voices */
	size_t n;
	int rate;                         /* espeak_ng_GetSampleRate() */
};

/* One synthesize call, reached from the synth callback via user_data. */
struct espeak_call {
	tts_audio_cb cb;
	void *user;
	const atomic_bool *cancel;
	bool stopped;
};

static pthread_mutex_t espeak_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t espeak_once = PTHREAD_ONCE_INIT;
static int espeak_init_err;   /* result of espeak_init, set once */

static int espeak_synth_cb(short *wav, int n, espeak_EVENT *events)
{
	struct espeak_call *c = events ? events->user_data : NULL;

	if (!c)
		return 0;
	if (c->stopped)
		return 1;
	if (c->cancel && atomic_load(c->cancel)) {
		c->stopped = true;
		return 1;
	}
	if (wav && n > 0 && c->cb(c->user, (const int16_t *)wav,
				  (size_t)n) != 0) {
		c->stopped = true;
		return 1;
	}
	return 0;
}

/* Once per process (pthread_once): the library's globals. */
static void espeak_init(void)
{
	espeak_ng_ERROR_CONTEXT ctx = NULL;

	espeak_ng_InitializePath(NULL);
	if (espeak_ng_Initialize(&ctx) != ENS_OK) {
		espeak_ng_ClearErrorContext(&ctx);
		espeak_init_err = -EIO;
		return;
	}
	if (espeak_ng_InitializeOutput(ENOUTPUT_MODE_SYNCHRONOUS,
				       ESPEAK_BUFFER_MS, NULL) != ENS_OK) {
		espeak_init_err = -EIO;
		return;
	}
	espeak_SetSynthCallback(espeak_synth_cb);
}

/* "en-gb-x-rp" -> "en-GB-x-rp", "cmn-latn-pinyin" -> "cmn-Latn-pinyin". */
static void espeak_bcp47(const char *in, char *out, size_t size)
{
	bool priv = false;
	size_t o = 0, sub = 0;

	while (*in && o + 1 < size) {
		size_t len = strcspn(in, "-");

		if (sub > 0 && o + 1 < size)
			out[o++] = '-';
		if (len == 1 && (in[0] == 'x' || in[0] == 'X'))
			priv = true;
		for (size_t i = 0; i < len && o + 1 < size; i++) {
			int ch = (unsigned char)in[i];

			if (sub > 0 && !priv && len == 2)
				ch = toupper(ch);
			else if (sub > 0 && !priv && len == 4 && i == 0)
				ch = toupper(ch);
			else
				ch = tolower(ch);
			out[o++] = (char)ch;
		}
		in += len;
		if (*in == '-')
			in++;
		sub++;
	}
	out[o] = '\0';
}

static void espeak_lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* Fills ent from an espeak voice; -EINVAL for one without an identifier. */
static int espeak_ent_fill(const espeak_VOICE *v, struct espeak_voice_ent *ent)
{
	const char *tail, *l;

	if (!v->identifier || !*v->identifier)
		return -EINVAL;
	tail = strrchr(v->identifier, '/');
	tail = tail ? tail + 1 : v->identifier;
	snprintf(ent->name, sizeof(ent->name), "%s", tail);
	espeak_lower(ent->name);
	snprintf(ent->id, sizeof(ent->id), "%s", v->identifier);

	/* languages: (priority byte, NUL-terminated string)*, then a 0 byte */
	ent->n_langs = 0;
	for (l = v->languages; l && *l; l += strlen(l + 1) + 2) {
		if (ent->n_langs == ESPEAK_MAX_LANGS)
			break;
		ent->prio[ent->n_langs] = (unsigned char)l[0];
		snprintf(ent->langs[ent->n_langs], ESPEAK_NAME_MAX, "%s", l + 1);
		espeak_lower(ent->langs[ent->n_langs]);
		ent->n_langs++;
	}
	espeak_bcp47(ent->n_langs ? ent->langs[0] : ent->name, ent->lang,
		     sizeof(ent->lang));
	return 0;
}

/* By name, then by full identifier, then by best-priority language. */
static int espeak_find(const struct espeak_engine *e, const char *name,
		       size_t *ret_i)
{
	size_t best = 0;
	int best_prio = 1 << 30;

	for (size_t i = 0; i < e->n; i++) {
		if (strcasecmp(e->ents[i].name, name) == 0 ||
		    strcasecmp(e->ents[i].id, name) == 0) {
			*ret_i = i;
			return 0;
		}
	}
	for (size_t i = 0; i < e->n; i++) {
		for (int k = 0; k < e->ents[i].n_langs; k++) {
			if (strcasecmp(e->ents[i].langs[k], name) == 0 &&
			    e->ents[i].prio[k] < best_prio) {
				best = i;
				best_prio = e->ents[i].prio[k];
			}
		}
	}
	if (best_prio == 1 << 30)
		return -ENOENT;
	*ret_i = best;
	return 0;
}

static void espeak_destroy(void *engine)
{
	struct espeak_engine *e = engine;

	if (!e)
		return;
	free(e->voices);
	free(e->ents);
	free(e);
}

/* Copies espeak's voice list into e; under espeak_lock. */
static int espeak_list_locked(struct espeak_engine *e)
{
	const espeak_VOICE **list = espeak_ListVoices(NULL);
	size_t n = 0;

	while (list && list[n] && n < ESPEAK_MAX_VOICES)
		n++;
	if (n == 0)
		return -EIO;
	e->ents = calloc(n, sizeof(*e->ents));
	e->voices = calloc(n, sizeof(*e->voices));
	if (!e->ents || !e->voices)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct espeak_voice_ent *ent = &e->ents[e->n];

		if (espeak_ent_fill(list[i], ent) < 0)
			continue;
		e->voices[e->n] = (tts_voice){
			.name = ent->name,
			.language = ent->lang,
			.gender = list[i]->gender == 1 ? "male"
				  : list[i]->gender == 2 ? "female" : NULL,
			.sample_rate = e->rate,
		};
		e->n++;
	}
	return e->n ? 0 : -EIO;
}

static int espeak_create(const tts_config *cfg, void **ret_engine)
{
	const char *def = cfg && cfg->default_voice && *cfg->default_voice
			  ? cfg->default_voice : ESPEAK_DEFAULT_VOICE;
	struct espeak_engine *e = calloc(1, sizeof(*e));
	struct espeak_voice_ent ent;
	tts_voice v;
	size_t di;
	int r;

	if (!e)
		return -ENOMEM;
	pthread_once(&espeak_once, espeak_init);
	r = espeak_init_err;
	if (r < 0)
		goto out_destroy;
	pthread_mutex_lock(&espeak_lock);
	e->rate = espeak_ng_GetSampleRate();
	r = espeak_list_locked(e);
	pthread_mutex_unlock(&espeak_lock);
	if (r < 0)
		goto out_destroy;

	r = espeak_find(e, def, &di);
	if (r < 0)
		goto out_destroy;
	/* Move the default to the front; the pointers in voices follow. */
	ent = e->ents[di];
	v = e->voices[di];
	memmove(&e->ents[1], &e->ents[0], di * sizeof(e->ents[0]));
	memmove(&e->voices[1], &e->voices[0], di * sizeof(e->voices[0]));
	e->ents[0] = ent;
	e->voices[0] = v;
	for (size_t i = 0; i <= di; i++) {
		e->voices[i].name = e->ents[i].name;
		e->voices[i].language = e->ents[i].lang;
	}
	*ret_engine = e;
	return 0;

out_destroy:
	espeak_destroy(e);
	return r;
}

static int espeak_voices(void *engine, const tts_voice **ret_voices,
			 size_t *ret_n)
{
	struct espeak_engine *e = engine;

	*ret_voices = e->voices;
	*ret_n = e->n;
	return 0;
}

static int espeak_synthesize(void *engine, const char *text,
			     const tts_options *opt, const atomic_bool *cancel,
			     tts_audio_cb cb, void *user, int *ret_rate)
{
	struct espeak_engine *e = engine;
	struct espeak_call c = { .cb = cb, .user = user, .cancel = cancel };
	espeak_ng_STATUS st;
	size_t vi = 0;
	double speed;
	int r, wpm;

	r = tts_engine_check(text, opt, &speed);
	if (r < 0)
		return r;
	if (opt && opt->voice && *opt->voice) {
		r = espeak_find(e, opt->voice, &vi);
		if (r < 0)
			return r;
	}
	wpm = (int)(espeakRATE_NORMAL * speed + 0.5);
	if (wpm < espeakRATE_MINIMUM)
		wpm = espeakRATE_MINIMUM;
	if (wpm > espeakRATE_MAXIMUM)
		wpm = espeakRATE_MAXIMUM;
	*ret_rate = e->rate;
	if (cancel && atomic_load(cancel))
		return -ECANCELED;

	pthread_mutex_lock(&espeak_lock);
	st = espeak_ng_SetVoiceByName(e->ents[vi].id);
	if (st == ENS_OK)
		st = espeak_ng_SetParameter(espeakRATE, wpm, 0);
	if (st == ENS_OK)
		st = espeak_ng_Synthesize(text, strlen(text) + 1, 0,
					  POS_CHARACTER, 0, espeakCHARS_UTF8,
					  NULL, &c);
	pthread_mutex_unlock(&espeak_lock);

	if (c.stopped)
		return -ECANCELED;
	return st == ENS_OK ? 0 : -EIO;
}

const tts_engine_ops tts_engine_espeak = {
	.name = "espeak-ng",
	.aliases = "espeak",
	.description = "eSpeak NG (formant synthesis, ~130 languages)",
	.create = espeak_create,
	.destroy = espeak_destroy,
	.voices = espeak_voices,
	.synthesize = espeak_synthesize,
};
