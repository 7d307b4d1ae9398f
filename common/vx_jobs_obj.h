/*
 * vx_jobs_obj.h - the JetStream object store, as far as voxline's jobs use
 * it: put a blob under a name, get it back.
 *
 * Layout as NATS defines object stores: stream OBJ_<bucket>, chunks on
 * $O.<bucket>.C.<nuid>, the object's info (JSON: name, bucket, nuid, size,
 * chunks) on $O.<bucket>.M.<base64url(name)>, replaced with a Nats-Rollup
 * header. Reads go through $JS.API.STREAM.MSG.GET (last_by_subj for the
 * info, next_by_subj for each chunk), so a bucket made by another client
 * works as long as it is there. No digest is written or checked.
 *
 * Thread-safe as the connection is; calls block (network round trips): call
 * them from a worker or tool thread, never from a serving loop.
 *
 *     vx_jobs_obj_ensure(js, "voxline-audio");
 *     vx_jobs_obj_put(nc, js, "voxline-audio", "q1.wav", data, len);
 *     vx_buf b = {0}; vx_jobs_obj_get(nc, "voxline-audio", "q1.wav", max, &b);
 */
#ifndef VX_JOBS_OBJ_H
#define VX_JOBS_OBJ_H

#include <nats/nats.h>
#include <stddef.h>

#include "vx_buf.h"

#define VX_JOBS_OBJ_CHUNK (128u * 1024)    /* bytes per chunk at most (less
					      when the max payload is small) */
#define VX_JOBS_OBJ_MAX_AGE_S (24 * 3600)  /* a bucket we make keeps a day */

/* Makes stream OBJ_<bucket> when it is missing. 0 or -EIO. */
int vx_jobs_obj_ensure(jsCtx *js, const char *bucket);
/* Stores data[0..len) as name. 0, -EIO, -ENOMEM. */
int vx_jobs_obj_put(natsConnection *nc, jsCtx *js, const char *bucket,
		    const char *name, const void *data, size_t len);
/* Appends the object to out. -ENOENT when missing, -E2BIG past max bytes,
 * -EIO, -EPROTO for a damaged object. */
int vx_jobs_obj_get(natsConnection *nc, const char *bucket, const char *name,
		    size_t max, vx_buf *out);

#endif
