/*
 * tts_engine.c - the engine registry and the argument checks every engine
 * shares.
 *
 * Adding an engine: write engine_<name>.c exporting a const tts_engine_ops
 * that says what it is (name, aliases, flags, languages) and has its
 * functions, declare it in tts_engine.h and add it to tts_engines[]. The
 * first entry is the default (flite: embedded, no data files, fastest to
 * first audio).
 */
#include "tts_engine.h"

#include <errno.h>
#include <string.h>

const tts_engine_ops *const tts_engines[] = {
	&tts_engine_flite,
	&tts_engine_espeak,
	&tts_engine_openai,
	NULL,
};

const vx_engine *tts_engine_at(size_t i)
{
	return tts_engines[i] ? &tts_engines[i]->engine : NULL;
}

const tts_engine_ops *tts_engine_find(const char *name)
{
	const vx_engine *e;

	if (vx_engine_find(tts_engine_at, name, &e) < 0)
		return NULL;
	return (const tts_engine_ops *)e;   /* e is the ops' first member */
}

int tts_engine_check(const char *text, const tts_options *opt,
		     double *ret_speed)
{
	double speed = opt ? opt->speed : 0.0;

	if (!text || !*text)
		return -EINVAL;
	if (strnlen(text, TTS_TEXT_MAX + 1) > TTS_TEXT_MAX)
		return -E2BIG;
	if (speed == 0.0)
		speed = 1.0;
	/* written so that NaN fails too */
	if (!(speed >= TTS_SPEED_MIN && speed <= TTS_SPEED_MAX))
		return -EINVAL;
	*ret_speed = speed;
	return 0;
}
