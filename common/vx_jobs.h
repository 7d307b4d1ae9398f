/*
 * vx_jobs.h - a daemon as a NATS JetStream worker (--nats URL).
 *
 * Next to HTTP, a service takes jobs from its work-queue stream
 * (VOXLINE_<SVC>, subject voxline.<svc>.jobs, work-queue retention, made
 * when missing) through one durable pull consumer ("workers") that every
 * instance shares, so each job goes to one worker. The message format is in
 * docs/jobs.md. For each job this module decodes the envelope (id, reply
 * subject, the request object, input audio inline in base64 or as an object
 * in the JetStream object store), runs the service's function on the
 * service's own vx_pool (never on a serving loop), publishes the result to
 * the job's reply subject with Nats-Msg-Id "<id>.result", and only then
 * acks. So:
 *
 *   - a worker killed mid-job leaves the job unacked: after ack-wait the
 *     server hands it to another worker; long jobs send +WPI (in progress)
 *     every ack-wait/3 so they are not redelivered while alive;
 *   - an engine failure (status >= 500) is retried (NAK with a delay) until
 *     the job was delivered max-deliver times; then the job, with its error,
 *     goes to voxline.<svc>.dead (stream VOXLINE_<SVC>_DEAD) and the caller
 *     gets the error too; a job that cannot be read at all goes there at
 *     once; a bad request (4xx) is answered with its error and acked;
 *   - admission: an instance fetches only as many jobs as its pool has room
 *     for (workers + queue, less what HTTP holds); the consumer's
 *     max-ack-pending caps all instances together (--nats-max-ack-pending,
 *     by default room for 16 instances of this size);
 *   - voxline_jobs_total{outcome="ok|error|retry|dead|busy"} counts them;
 *   - the connection reconnects forever; on SIGTERM (vx_server_draining)
 *     fetching stops at once and vx_jobs_free waits for jobs in flight.
 *
 * Thread-safety: the run function is called on pool threads, many at once.
 * vx_jobs_new/vx_jobs_free from the main thread.
 *
 *     vx_jobs *j;   // flags: VX_JOBS_FLAGS(&o); cfg.run = svc_jobs_run ...
 *     if (vx_jobs_new(&o, &cfg, &j) < 0) fatal();       // after vx_server_new
 *     vx_server_run(server); vx_jobs_free(j); vx_pool_free(pool); ...
 */
#ifndef VX_JOBS_H
#define VX_JOBS_H

#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "vx_audio.h"
#include "vx_buf.h"
#include "vx_flags.h"
#include "vx_metrics.h"
#include "vx_pool.h"
#include "vx_server.h"

#define VX_JOBS_BUCKET "voxline-audio"   /* object store bucket by default */

typedef struct vx_jobs_opts {
	const char *url;          /* NATS server URL; "" = worker mode off */
	int max_deliver;          /* deliveries of a failing job before dead */
	int ack_wait_s;           /* unacked and silent this long: redelivered */
	const char *bucket;       /* object store bucket for large audio */
	int max_ack_pending;      /* consumer-wide; 0 = 16 x capacity */
} vx_jobs_opts;

#define VX_JOBS_FLAGS(o)                                                              \
	{ "nats", VX_FLAG_STR, &(o)->url, "", 0, 0,                                    \
	  "NATS URL (nats://host:4222): also take jobs from JetStream "               \
	  "voxline.<service>.jobs (docs/jobs.md); empty = off" },                      \
	{ "nats-max-deliver", VX_FLAG_INT, &(o)->max_deliver, "3", 1, 100,             \
	  "deliveries of a failing job before it goes to voxline.<service>.dead" },    \
	{ "nats-ack-wait-s", VX_FLAG_INT, &(o)->ack_wait_s, "30", 1, 3600,             \
	  "a job neither acked nor in progress (+WPI) this long is redelivered" },    \
	{ "nats-bucket", VX_FLAG_STR, &(o)->bucket, VX_JOBS_BUCKET, 0, 0,              \
	  "JetStream object store bucket for audio past the server's max payload" }, \
	{ "nats-max-ack-pending", VX_FLAG_INT, &(o)->max_ack_pending, "0", 0, 1000000, \
	  "jobs all instances together may hold unacked (set when the consumer "       \
	  "is made); 0 = 16 x (workers + queue)" }

/* One job as the service's function sees it. */
typedef struct vx_job {
	const char *id;               /* the job's id (for logs, as a request id) */
	const cJSON *request;         /* "request": the HTTP route's JSON body
					 (an object; empty when absent) */
	const void *audio;            /* input audio bytes, NULL = none */
	size_t audio_len;
	const char *content_type;     /* of audio; "" = a file format (sniffed) */
	int attempt;                  /* 1 on the first delivery */
	const atomic_bool *cancel;    /* set when the worker must give up */
} vx_job;

/* What the service's function hands back. */
typedef struct vx_job_result {
	int status;                   /* 0 = ok; else an HTTP-like status:
					 4xx = the request is bad (answered),
					 5xx = the engine failed (retried) */
	char code[48];                /* error code, e.g. "bad_audio" */
	char message[256];
	vx_buf json;                  /* ok: the result object, as the HTTP
					 route answers it */
	vx_buf audio;                 /* ok, optional: output audio bytes; sent
					 inline or through the object store */
	const char *audio_format;     /* of audio, e.g. "wav" */
} vx_job_result;

/* Fills res (status, code and message, or json [+ audio]). */
typedef void (*vx_jobs_fn)(void *user, const vx_job *job, vx_job_result *res);

typedef struct vx_jobs_config {
	const char *service;          /* "stt": subjects voxline.stt.* */
	vx_jobs_fn run;
	void *user;
	vx_pool *pool;                /* the service's engine pool */
	int capacity;                 /* jobs in flight at most: workers + queue */
	vx_server *server;            /* for draining and metrics */
	int drain_s;                  /* vx_jobs_free waits this long at most */
} vx_jobs_config;

typedef struct vx_jobs vx_jobs;

/* Starts the worker: connects in the background (retrying forever), makes
 * the streams and the consumer when missing, fetches. With no URL (--nats
 * empty) *ret is NULL and nothing starts. -EINVAL for a bad URL, -ENOMEM. */
int vx_jobs_new(const vx_jobs_opts *o, const vx_jobs_config *cfg,
		vx_jobs **ret);
/* Stops fetching, waits for jobs in flight (up to drain_s, then cancels
 * them and waits), closes the connection. Accepts NULL. */
void vx_jobs_free(vx_jobs *j);

/* The job's audio as mono PCM16 at rate (caller releases); fails with res
 * set (400/413/415) when it is missing or unreadable or past max_s. */
int vx_job_audio(const vx_job *job, int rate, double max_s, vx_pcm *ret,
		 vx_job_result *res);
/* Sets res to an error. */
void vx_job_fail(vx_job_result *res, int status, const char *code,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
