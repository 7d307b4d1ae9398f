/*
 * tok_fixture.h - test helper: builds a tokenizer from the JSON vocabulary
 * tests/gguf/tokref.py writes ({"model","pre","tokens","scores","types",
 * "merges","bos","eos","eot","unk","pad","add_bos"}), i.e. the same fields
 * a GGUF file's tokenizer.ggml.* keys hold.
 *
 *     tok *t; if (tok_fixture_load("vocab.json", &t) == 0) { ...; tok_free(t); }
 */
#ifndef VX_TOK_FIXTURE_H
#define VX_TOK_FIXTURE_H

#include "../../services/llm/gguf/tokenizer.h"

/* 0, -errno (file unreadable), -EINVAL (bad JSON or vocabulary), -ENOMEM. */
int tok_fixture_load(const char *path, tok **ret);

#endif
