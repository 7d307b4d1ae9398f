/*
 * vad_service.h - voxline-vad's state, shared by main.c (flags, start/stop)
 * and api.c (routes). One instance per process, passed explicitly.
 */
#ifndef VAD_SERVICE_H
#define VAD_SERVICE_H

#include "vad_engine.h"
#include "vx_audio.h"
#include "vx_daemon.h"
#include "vx_metrics.h"
#include "vx_pool.h"
#include "vx_server.h"

typedef struct vad_service {
	vx_daemon_opts d;
	const char *engine_name;
	int aggressiveness;          /* default for requests: 0..3 */
	int frame_ms;                /* 10, 20, 30 */
	int min_speech_ms, min_silence_ms, pad_ms;
	int max_audio_s;             /* per request / per WebSocket utterance */

	const vad_engine_ops *engine;
	vx_pool *pool;
	vx_counter *audio_seconds;   /* audio classified, seconds */
	vx_counter *segments;        /* speech segments found */
} vad_service;

extern const vx_route vad_routes[];
extern const size_t vad_n_routes;
extern const vx_ws_route vad_ws_routes[];
extern const size_t vad_n_ws_routes;

void vad_service_info(void *user, vx_buf *out);

/* Wyoming (wyoming.c) over /ws/detect's ops (api.c). */
typedef struct vx_wy_server vx_wy_server;
const struct vx_svcws_ops *vad_ws_ops(void);
int vad_wyoming_start(vad_service *svc, vx_server *server, int port,
		      vx_wy_server **ret);

/* Runs the engine on 16 kHz pcm, counts the metrics and appends the
 * POST /detect answer (processing_ms since t0_ms, vx_now_ms's clock).
 * 0, or the engine's negative errno. Shared by api.c and jobs.c. */
int vad_detect_json(vad_service *svc, const vad_config *vcfg,
		    const vad_seg_config *scfg, const vx_pcm *pcm, double t0_ms,
		    vx_buf *b);
struct vx_job;
struct vx_job_result;
/* The NATS job (jobs.c): POST /detect's parameters in "request". */
void vad_jobs_run(void *user, const struct vx_job *job,
		  struct vx_job_result *res);

#endif
