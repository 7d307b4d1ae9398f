/* llm_engine.c - the table of LLM engines; see llm_engine.h. */
#include "llm_engine.h"

#include <string.h>

extern const llm_engine_ops llm_engine_openai;
extern const llm_engine_ops llm_engine_ollama;
extern const llm_engine_ops llm_engine_gguf;   /* engine_gguf.c + gguf/ */

const llm_engine_ops *const llm_engines[] = {
	&llm_engine_openai,
	&llm_engine_ollama,
	&llm_engine_gguf,
	NULL,
};

const llm_engine_ops *llm_engine_find(const char *name)
{
	for (size_t i = 0; name && llm_engines[i]; i++)
		if (strcmp(llm_engines[i]->name, name) == 0)
			return llm_engines[i];
	return NULL;
}
