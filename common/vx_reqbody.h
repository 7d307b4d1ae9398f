/*
 * vx_reqbody.h - reading a request body as audio or as a JSON object, with
 * the right JSON error answered for everything that can be wrong with it.
 *
 * Both functions answer the request themselves on failure (400 bad input,
 * 413 too much audio, 415 wrong media type) and return a negative errno; on
 * success they answer nothing. Audio comes from a multipart field "file"
 * (curl -F file=@x.wav) or a raw body with an audio Content-Type; query or
 * form fields "sample_rate"/"encoding" describe headerless audio. Call them
 * from the handler's thread or the job's, not both.
 *
 *     vx_pcm pcm = {0};
 *     if (vx_reqbody_audio(req, 16000, 600, &pcm) < 0) return;   // answered
 */
#ifndef VX_REQBODY_H
#define VX_REQBODY_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "vx_audio.h"
#include "vx_req.h"

/* Decodes to mono at rate, refusing more than max_seconds (413). */
int vx_reqbody_audio(vx_req *req, int rate, double max_seconds, vx_pcm *ret);

/* A form field or query parameter by name (form first); NULL if absent. */
const char *vx_reqbody_param(vx_req *req, const char *name);

/* An integer parameter (form field or query) in [min, max]; def when
 * absent. Answers 400 and fails when present but invalid. */
int vx_reqbody_int(vx_req *req, const char *name, int def, int min, int max,
		   int *ret);

/* Parses an application/json body that must be an object. Caller frees
 * with cJSON_Delete. */
int vx_reqbody_json(vx_req *req, cJSON **ret);

/* True when s[0..len) is valid UTF-8 (no overlongs, no surrogates). */
bool vx_utf8_valid(const char *s, size_t len);

#endif
