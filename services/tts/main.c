/* voxline-tts: text to speech over HTTP and WebSocket (flite, espeak-ng,
 * or a remote OpenAI-compatible speech server). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tts_service.h"
#include "vx_jobs.h"
#include "vx_log.h"
#include "vx_wyoming.h"

#define TTS_VERSION "0.1.0"

static const double tts_rtf_buckets[] = {
	0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5,
};

/* Creates the engine a flag names ("flite", "espeak-ng", "remote", or an
 * alias of one: tts_engine.h). */
static int tts_load_backend(tts_service *svc, const char *flag_name)
{
	const tts_engine_ops *ops = tts_engine_find(flag_name);
	if (!ops) {
		char why[256];
		vx_fatal("%s", vx_engine_unknown(tts_engine_at, flag_name, why,
						 sizeof(why)));
	}
	if (tts_synth_backend(svc, ops->name))
		return 0;   /* listed twice */
	if (svc->n_backends == TTS_MAX_BACKENDS)
		vx_fatal("at most %d engines", TTS_MAX_BACKENDS);
	bool remote = ops->flags & VX_ENGINE_REMOTE;
	if (remote && !svc->url)
		vx_fatal("engine %s needs --url (an OpenAI-compatible speech server)",
			 ops->name);

	tts_backend *be = &svc->backends[svc->n_backends];
	be->name = ops->name;
	be->ops = ops;
	be->passthrough = remote;
	tts_config cfg = {
		.url = svc->url, .api_key = svc->upstream_key,
		.model = svc->model, .timeout_ms = svc->timeout_s * 1000,
	};
	int r = be->ops->create(&cfg, &be->engine);
	if (r < 0)
		vx_fatal("cannot load engine %s: %s", be->name, strerror(-r));
	r = be->ops->voices(be->engine, &be->voices, &be->n_voices);
	if (r < 0 || !be->n_voices)
		vx_fatal("engine %s has no voices", be->name);
	svc->n_backends++;
	return 0;
}

static void tts_load_backends(tts_service *svc)
{
	const char *list = svc->engine ? svc->engine : svc->engines;
	char buf[256];
	if (!list || strlen(list) >= sizeof(buf))
		vx_fatal("--engines: a comma-separated list, e.g. flite,espeak-ng");
	snprintf(buf, sizeof(buf), "%s", list);
	char *save = NULL;
	for (char *tok = strtok_r(buf, ", ", &save); tok;
	     tok = strtok_r(NULL, ", ", &save))
		tts_load_backend(svc, tok);
	if (!svc->n_backends)
		vx_fatal("no engine to load (--engines)");
}

static void tts_register_metrics(tts_service *svc, vx_metrics *m)
{
	char labels[64];
	for (size_t i = 0; i < svc->n_backends; i++) {
		tts_backend *be = &svc->backends[i];
		snprintf(labels, sizeof(labels), "engine=\"%s\"", be->name);
		be->chars = vx_metrics_counter(m, "voxline_tts_characters_total",
			"Characters of text synthesised", labels);
		be->audio_seconds = vx_metrics_counter(m,
			"voxline_tts_audio_seconds_total",
			"Audio produced, whole seconds", labels);
		be->first_chunk = vx_metrics_histogram(m,
			"voxline_tts_first_chunk_seconds",
			"Engine call to its first audio chunk", labels,
			vx_latency_buckets, vx_latency_buckets_n);
		be->rtf = vx_metrics_histogram(m, "voxline_tts_real_time_factor",
			"Synthesis wall time / audio duration", labels,
			tts_rtf_buckets,
			sizeof(tts_rtf_buckets) / sizeof(tts_rtf_buckets[0]));
		be->failures = vx_metrics_counter(m,
			"voxline_tts_engine_failures_total",
			"Engine calls that failed (cancels not counted)", labels);
	}
}

static int tts_discard(void *user, const int16_t *pcm, size_t n)
{
	(void)user;
	(void)pcm;
	(void)n;
	return 0;
}

/* One short text on the default voice: checks it (a voice espeak-ng does not
 * know fails here, not on the first request) and pages the voice in. */
static void tts_warm_up(tts_service *svc)
{
	tts_synth_stats st;
	if (svc->default_target.be->passthrough)
		return;   /* the remote server may come up later */
	int r = tts_synth_run(svc, &svc->default_target, "Hi.", 1.0, NULL, NULL,
			      tts_discard, NULL, &st);
	atomic_store(&svc->default_target.be->audio_us, 0);
	if (r == -ENOENT)
		vx_fatal("unknown --voice %s", svc->voice);
	if (r < 0)
		vx_fatal("engine %s fails on its default voice: %s",
			 svc->default_target.be->name, strerror(-r));
}

static void tts_free_backends(tts_service *svc)
{
	for (size_t i = 0; i < svc->n_backends; i++)
		svc->backends[i].ops->destroy(svc->backends[i].engine);
	svc->n_backends = 0;
}

int main(int argc, char **argv)
{
	tts_service svc = {0};
	int wy_port = 0;
	vx_wy_server *wy = NULL;
	vx_jobs_opts nats = {0};
	const vx_flag flags[] = {
		VX_DAEMON_FLAGS(&svc.d, "3003", "2"),
		VX_JOBS_FLAGS(&nats),
		{ "engines", VX_FLAG_STR, &svc.engines, "flite,espeak-ng", 0, 0,
		  "engines to load, comma-separated: flite, espeak-ng, remote" },
		{ "engine", VX_FLAG_STR, &svc.engine, "", 0, 0,
		  "one engine instead of --engines (remote: needs --url)" },
		{ "voice", VX_FLAG_STR, &svc.voice, "", 0, 0,
		  "default voice (slt, kal, awb, rms, en-us, de, espeak:fr, ...); "
		  "default: the first engine's first" },
		{ "url", VX_FLAG_STR, &svc.url, "", 0, 0,
		  "remote engine: base URL of an OpenAI-compatible speech server" },
		{ "upstream-key", VX_FLAG_STR, &svc.upstream_key, "", 0, 0,
		  "remote engine: bearer key sent upstream" },
		{ "model", VX_FLAG_STR, &svc.model, "", 0, 0,
		  "remote engine: model name (default tts-1)" },
		{ "max-text-chars", VX_FLAG_INT, &svc.max_text_chars, "5000", 1,
		  TTS_TEXT_MAX / 4, "longest text per request or message, characters" },
		{ "timeout-s", VX_FLAG_INT, &svc.timeout_s, "60", 1, 3600,
		  "longest synthesis of one text, seconds" },
		VX_WYOMING_FLAG(&wy_port),
	};
	int r = vx_flags_parse(flags, sizeof(flags) / sizeof(flags[0]), "tts",
			       argc, argv);
	if (r)
		return r > 0 ? 0 : 2;
	if (vx_daemon_init(&svc.d, "tts") < 0)
		return 2;

	tts_load_backends(&svc);
	if (tts_synth_resolve(&svc, svc.voice, &svc.default_target) < 0)
		vx_fatal("unknown --voice %s", svc.voice);
	tts_warm_up(&svc);

	if ((r = vx_pool_new(svc.d.workers, svc.d.queue, &svc.pool)) < 0)
		vx_fatal("worker pool: %s", strerror(-r));
	vx_server_config cfg = {
		.service = "tts", .version = TTS_VERSION,
		.routes = tts_routes, .n_routes = tts_n_routes,
		.ws_routes = tts_ws_routes, .n_ws_routes = tts_n_ws_routes,
		.user = &svc, .info = tts_service_info,
		.health = tts_service_health,
	};
	vx_daemon_server_config(&svc.d, &cfg);
	vx_server *server;
	if ((r = vx_server_new(&cfg, &server)) < 0)
		vx_fatal("cannot serve on %s:%d: %s", svc.d.host, svc.d.port,
			 strerror(-r));
	tts_register_metrics(&svc, vx_server_metrics(server));
	if (wy_port && (r = tts_wyoming_start(&svc, server, wy_port, &wy)) < 0)
		vx_fatal("cannot serve wyoming on port %d: %s", wy_port,
			 strerror(-r));
	vx_log_info(NULL, "%zu engine(s), first %s; default voice %s (%s); "
		    "%d workers", svc.n_backends, svc.backends[0].name,
		    svc.default_target.voice, svc.default_target.be->name,
		    svc.d.workers);

	vx_jobs *jobs;
	vx_jobs_config jc = { .service = "tts", .run = tts_jobs_run, .user = &svc,
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
	tts_free_backends(&svc);
	return r < 0 ? 1 : 0;
}
