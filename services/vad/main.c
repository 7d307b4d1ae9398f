/* voxline-vad: voice activity detection over HTTP and WebSocket. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vad_service.h"
#include "vx_jobs.h"
#include "vx_log.h"
#include "vx_wyoming.h"

#define VAD_VERSION "0.1.0"

int main(int argc, char **argv)
{
	vad_service svc = {0};
	int wy_port = 0;
	vx_wy_server *wy = NULL;
	vx_jobs_opts nats = {0};
	const vx_flag flags[] = {
		VX_DAEMON_FLAGS(&svc.d, "3001", "2"),
		VX_JOBS_FLAGS(&nats),
		{ "engine", VX_FLAG_STR, &svc.engine_name, "builtin", 0, 0,
		  "detector: builtin (spectral, adaptive noise floor) or webrtc (GMM)" },
		{ "aggressiveness", VX_FLAG_INT, &svc.aggressiveness, "1", 0, 3,
		  "default aggressiveness, 0 (keeps most speech) .. 3 (strictest)" },
		{ "frame-ms", VX_FLAG_INT, &svc.frame_ms, "20", 10, 30,
		  "analysis frame: 10, 20 or 30 ms" },
		{ "min-speech-ms", VX_FLAG_INT, &svc.min_speech_ms, "250", 0, 10000,
		  "default: shorter bursts are not speech" },
		{ "min-silence-ms", VX_FLAG_INT, &svc.min_silence_ms, "300", 0, 10000,
		  "default: shorter pauses do not end a segment" },
		{ "pad-ms", VX_FLAG_INT, &svc.pad_ms, "0", 0, 1000,
		  "default: added before and after each segment" },
		{ "max-audio-s", VX_FLAG_INT, &svc.max_audio_s, "3600", 1, 86400,
		  "longest audio per request or WebSocket stream, seconds" },
		VX_WYOMING_FLAG(&wy_port),
	};
	int r = vx_flags_parse(flags, sizeof(flags) / sizeof(flags[0]), "vad",
			       argc, argv);
	if (r)
		return r > 0 ? 0 : 2;
	if (vx_daemon_init(&svc.d, "vad") < 0)
		return 2;
	if (svc.frame_ms != 10 && svc.frame_ms != 20 && svc.frame_ms != 30)
		vx_fatal("--frame-ms must be 10, 20 or 30");
	if (!(svc.engine = vad_engine_find(svc.engine_name))) {
		char why[256];
		vx_fatal("--engine: %s", vx_engine_unknown(vad_engine_at,
			 svc.engine_name, why, sizeof(why)));
	}

	if ((r = vx_pool_new(svc.d.workers, svc.d.queue, &svc.pool)) < 0)
		vx_fatal("worker pool: %s", strerror(-r));
	vx_server_config cfg = {
		.service = "vad", .version = VAD_VERSION,
		.routes = vad_routes, .n_routes = vad_n_routes,
		.ws_routes = vad_ws_routes, .n_ws_routes = vad_n_ws_routes,
		.user = &svc, .info = vad_service_info,
	};
	vx_daemon_server_config(&svc.d, &cfg);
	vx_server *server;
	if ((r = vx_server_new(&cfg, &server)) < 0)
		vx_fatal("cannot serve on %s:%d: %s", svc.d.host, svc.d.port,
			 strerror(-r));
	vx_metrics *m = vx_server_metrics(server);
	svc.audio_seconds = vx_metrics_counter(m, "voxline_vad_audio_seconds_total",
		"Audio classified, seconds", NULL);
	svc.segments = vx_metrics_counter(m, "voxline_vad_segments_total",
		"Speech segments found", NULL);
	vx_log_info(NULL, "engine %s, aggressiveness %d, %d workers",
		    svc.engine->name, svc.aggressiveness, svc.d.workers);
	if (wy_port && (r = vad_wyoming_start(&svc, server, wy_port, &wy)) < 0)
		vx_fatal("cannot serve wyoming on port %d: %s", wy_port,
			 strerror(-r));

	vx_jobs *jobs;
	vx_jobs_config jc = { .service = "vad", .run = vad_jobs_run, .user = &svc,
		.pool = svc.pool, .capacity = svc.d.workers + svc.d.queue,
		.server = server, .drain_s = svc.d.drain_s };
	if ((r = vx_jobs_new(&nats, &jc, &jobs)) < 0)
		vx_fatal("--nats %s: %s", nats.url, strerror(-r));
	r = vx_server_run(server);
	vx_jobs_free(jobs);
	vx_wy_server_drain(wy, svc.d.drain_s - svc.d.drain_delay_s);
	vx_pool_free(svc.pool);     /* jobs may still count metrics */
	vx_wy_server_free(wy);
	vx_server_free(server);
	return r < 0 ? 1 : 0;
}
