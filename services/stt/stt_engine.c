/*
 * stt_engine.c - the engine registry and the result type every engine
 * fills.
 *
 * Adding an engine: write engine_<name>.c exporting a const stt_engine_ops
 * that says what it is (name, aliases, flags, languages, default_model) and
 * has its functions, declare it in stt_engine.h and add it to stt_engines[].
 * The first entry is the default (pocketsphinx: embedded, works offline,
 * streams partials); voxline-stt picks "whisper" instead when it is given
 * a model file (main.c).
 */
#include "stt_engine.h"

#include <stdlib.h>
#include <string.h>

const stt_engine_ops *const stt_engines[] = {
	&stt_engine_pocketsphinx,
	&stt_engine_whisper,
	&stt_engine_whisper_server,
	&stt_engine_openai,
	NULL,
};

const vx_engine *stt_engine_at(size_t i)
{
	return stt_engines[i] ? &stt_engines[i]->engine : NULL;
}

const stt_engine_ops *stt_engine_find(const char *name)
{
	const vx_engine *e;

	if (vx_engine_find(stt_engine_at, name, &e) < 0)
		return NULL;
	return (const stt_engine_ops *)e;   /* e is the ops' first member */
}

void stt_result_release(stt_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_segments; i++)
		free(r->segments[i].text);
	free(r->segments);
	free(r->text);
	free(r->language);
	memset(r, 0, sizeof(*r));
}
