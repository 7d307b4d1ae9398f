/*
 * vx_engine.h - what an engine says about itself, and the one lookup every
 * service uses to pick an engine by name.
 *
 * Each engine kind (VAD, STT, TTS, LLM) has its own ops struct of function
 * pointers; it starts with VX_ENGINE_HEAD, so the engine file declares its
 * name, aliases, description, flags and languages in the same initialiser
 * as its functions, and both `ops->name` and `&ops->engine` (a vx_engine)
 * work. A kind registers its engines in one NULL-terminated table
 * (<kind>_engine.c) and exposes it to this module through an accessor
 * (vx_engine_at); the first entry is the default.
 *
 * Adding an engine of any kind: write engine_<name>.c exporting a const
 * <kind>_engine_ops with the head filled in, and add one line to the
 * kind's table.
 *
 * Names and aliases are ASCII words matched without regard to case. All
 * functions are pure (no allocation, no global state): thread-safe.
 *
 *     const vx_engine *e; char why[256];
 *     if (vx_engine_find(stt_engine_at, "ps", &e) < 0)
 *         vx_fatal("%s", vx_engine_unknown(stt_engine_at, "ps", why, sizeof(why)));
 */
#ifndef VX_ENGINE_H
#define VX_ENGINE_H

#include <stddef.h>

/* Flags: what an engine is and can do. */
#define VX_ENGINE_REMOTE    (1u << 0)  /* calls a server (needs --url); else runs in-process */
#define VX_ENGINE_STREAMING (1u << 1)  /* gives results while input still arrives (STT partials) */

#define VX_ENGINE_FIELDS                                                     \
	const char *name;        /* --engine, /healthz, /info, metrics labels */ \
	const char *aliases;     /* other names --engine takes, space-separated; NULL = none */ \
	const char *description; /* one line for people */                    \
	unsigned flags;          /* VX_ENGINE_* */                              \
	const char *languages;   /* tags it knows, space-separated ("en"); NULL = any / the upstream's */

typedef struct vx_engine {
	VX_ENGINE_FIELDS
} vx_engine;

/* The first member of every kind's ops struct: the fields by name
 * (ops->name) and the whole as a vx_engine (&ops->engine). */
#define VX_ENGINE_HEAD                                                       \
	union {                                                              \
		vx_engine engine;                                            \
		struct { VX_ENGINE_FIELDS };                                 \
	}

/* The i-th engine of a kind (0 = the default), NULL past the last. */
typedef const vx_engine *(*vx_engine_at)(size_t i);

/* 1 when e is called name or has it among its aliases (case ignored). */
int vx_engine_is(const vx_engine *e, const char *name);

/* The engine called name (or aliased so) into *ret; NULL or "" gives the
 * default (the first). 0, or -ENOENT with *ret untouched. */
int vx_engine_find(vx_engine_at at, const char *name, const vx_engine **ret);

/* Writes "unknown engine 'NAME'; known: a, b (or c), d" into buf (cut to
 * size) and returns buf, for the caller's error message. */
const char *vx_engine_unknown(vx_engine_at at, const char *name, char *buf,
			      size_t size);

#endif
