/*
 * llm_engine.c - the table of LLM engines; see llm_engine.h.
 *
 * Adding an engine: write engine_<name>.c exporting a const llm_engine_ops
 * that says what it is (name, aliases, flags) and has its functions,
 * declare it below and add it to llm_engines[]. The first entry is the
 * default; a --model without --url picks the first local engine.
 */
#include "llm_engine.h"

extern const llm_engine_ops llm_engine_openai;
extern const llm_engine_ops llm_engine_ollama;
extern const llm_engine_ops llm_engine_gguf;   /* engine_gguf.c + gguf/ */

const llm_engine_ops *const llm_engines[] = {
	&llm_engine_openai,
	&llm_engine_ollama,
	&llm_engine_gguf,
	NULL,
};

const vx_engine *llm_engine_at(size_t i)
{
	return llm_engines[i] ? &llm_engines[i]->engine : NULL;
}

const llm_engine_ops *llm_engine_find(const char *name)
{
	const vx_engine *e;

	if (vx_engine_find(llm_engine_at, name, &e) < 0)
		return NULL;
	return (const llm_engine_ops *)e;   /* e is the ops' first member */
}
