/* voxline-stt: speech to text over HTTP and WebSocket (port 3002). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stt_service.h"
#include "vx_jobs.h"
#include "vx_log.h"
#include "vx_wyoming.h"

#define STT_VERSION "0.1.0"

/* Buckets for audio durations (s) and real-time factors. */
static const double stt_audio_buckets[] = { 0.5, 1, 2, 5, 10, 20, 30, 60,
					    120, 300, 600 };
static const double stt_rtf_buckets[] = { 0.01, 0.02, 0.05, 0.1, 0.2, 0.3,
					  0.5, 0.75, 1, 1.5, 2, 5 };
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* The model file the built-in Whisper engine takes by default (`make models`
 * puts it there); with it present and no --engine, whisper is chosen. */
#define STT_WHISPER_DEFAULT_MODEL "models/ggml-base.en.bin"

/* --engine given, or: whisper when a model file is named by --model (or
 * lies at the default path), pocketsphinx otherwise. Exits on an unknown
 * name or a combination that cannot work. */
static void stt_engine_choose(stt_service *svc)
{
	const char *name = svc->engine_name;
	bool have_model = svc->model && svc->model[0];

	if (!name || !name[0]) {
		if (!have_model && !(svc->url && svc->url[0]) &&
		    access(STT_WHISPER_DEFAULT_MODEL, R_OK) == 0)
			svc->model = STT_WHISPER_DEFAULT_MODEL;
		name = svc->model && svc->model[0] && !(svc->url && svc->url[0]) ?
			"whisper" : "pocketsphinx";
	}
	if (!(svc->engine = stt_engine_find(name))) {
		char why[256];
		vx_fatal("--engine: %s", vx_engine_unknown(stt_engine_at,
			 name, why, sizeof(why)));
	}
	if (svc->engine == &stt_engine_whisper && !(svc->model && svc->model[0])) {
		if (svc->url && svc->url[0])
			vx_fatal("--engine whisper is the built-in engine and needs "
				 "--model FILE (a whisper.cpp ggml file); for a "
				 "whisper.cpp server at --url use --engine whisper-server");
		if (access(STT_WHISPER_DEFAULT_MODEL, R_OK) < 0)
			vx_fatal("--engine whisper needs --model FILE (a whisper.cpp "
				 "ggml file; `make models` fetches %s)",
				 STT_WHISPER_DEFAULT_MODEL);
		svc->model = STT_WHISPER_DEFAULT_MODEL;
	}
}

/* Loads the engine with one decoder per worker; why gets the engine's
 * reason when it fails. */
static int stt_engine_load(stt_service *svc, char *why, size_t why_size)
{
	stt_config ecfg = {
		.pool_size = svc->d.workers,
		.model_dir = svc->hmm, .dict = svc->dict, .lm = svc->lm,
		.decoder_args = svc->decoder_args,
		.url = svc->url, .api_key = svc->upstream_key,
		.model = svc->model,
		.timeout_ms = svc->timeout_s * 1000,
		.trim_below_ms = svc->trim_below_s ? svc->trim_below_s * 1000 : -1,
		.why = why, .why_size = why_size,
	};
	/* pocketsphinx's model is its files (--hmm), whisper's and a remote
	 * one's --model. */
	const char *model = svc->hmm;
	if (svc->engine == &stt_engine_whisper)
		model = svc->model;
	if (svc->engine->flags & VX_ENGINE_REMOTE) {
		if (!svc->url)
			vx_fatal("--engine %s needs --url", svc->engine->name);
		model = svc->model;
	}
	svc->model_name = model ? model : svc->engine->default_model;
	return svc->engine->create(&ecfg, &svc->eng);
}

static void stt_metrics_register(stt_service *svc, vx_metrics *m)
{
	svc->metrics = m;
	svc->audio_seconds = vx_metrics_histogram(m, "voxline_stt_audio_seconds",
		"Audio transcribed per request or utterance, seconds (sum = total)",
		NULL, stt_audio_buckets, N_OF(stt_audio_buckets));
	svc->processing_seconds = vx_metrics_histogram(m,
		"voxline_stt_processing_seconds",
		"Engine time per transcription, seconds", NULL,
		vx_latency_buckets, vx_latency_buckets_n);
	svc->rtf = vx_metrics_histogram(m, "voxline_stt_real_time_factor",
		"Engine time / audio duration per transcription", NULL,
		stt_rtf_buckets, N_OF(stt_rtf_buckets));
	svc->ws_utterances = vx_metrics_counter(m,
		"voxline_stt_ws_utterances_total",
		"WebSocket utterances finished with a final", NULL);
}

int main(int argc, char **argv)
{
	stt_service svc = {0};
	int wy_port = 0;
	vx_wy_server *wy = NULL;
	vx_jobs_opts nats = {0};
	const vx_flag flags[] = {
		VX_DAEMON_FLAGS(&svc.d, "3002", "2"),
		VX_JOBS_FLAGS(&nats),
		{ "engine", VX_FLAG_STR, &svc.engine_name, "", 0, 0,
		  "pocketsphinx (embedded), whisper (embedded, --model FILE), "
		  "whisper-server (whisper.cpp server) or openai "
		  "(OpenAI-compatible server); default whisper when a model "
		  "file is given or " STT_WHISPER_DEFAULT_MODEL " exists, "
		  "else pocketsphinx" },
		{ "url", VX_FLAG_STR, &svc.url, "", 0, 0,
		  "remote engines: base URL of the server" },
		{ "upstream-key", VX_FLAG_STR, &svc.upstream_key, "", 0, 0,
		  "remote engines: bearer key sent upstream" },
		{ "model", VX_FLAG_STR, &svc.model, "", 0, 0,
		  "whisper: the ggml model file; remote engines: model name "
		  "(openai default whisper-1)" },
		{ "language", VX_FLAG_STR, &svc.language, "en", 0, 0,
		  "default language of requests" },
		{ "max-audio-s", VX_FLAG_INT, &svc.max_audio_s, "600", 1,
		  STT_AUDIO_MAX_SECONDS,
		  "longest audio per request or WebSocket utterance, seconds" },
		{ "hmm", VX_FLAG_STR, &svc.hmm, "", 0, 0,
		  "pocketsphinx acoustic model dir (default Debian's en-us)" },
		{ "dict", VX_FLAG_STR, &svc.dict, "", 0, 0,
		  "pocketsphinx pronunciation dictionary" },
		{ "lm", VX_FLAG_STR, &svc.lm, "", 0, 0,
		  "pocketsphinx language model" },
		{ "decoder-args", VX_FLAG_STR, &svc.decoder_args, "", 0, 0,
		  "pocketsphinx: extra \"-name value\" options" },
		{ "trim-below-s", VX_FLAG_INT, &svc.trim_below_s, "10", 0, 30,
		  "whisper: audio windows shorter than this run the encoder over "
		  "their own length, not 30 s (faster; 0 = never trim, as whisper.cpp)" },
		{ "timeout-s", VX_FLAG_INT, &svc.timeout_s, "60", 1, 3600,
		  "remote engines: limit per upstream request, seconds" },
		VX_WYOMING_FLAG(&wy_port),
	};
	int r = vx_flags_parse(flags, N_OF(flags), "stt", argc, argv);
	if (r)
		return r > 0 ? 0 : 2;
	if (vx_daemon_init(&svc.d, "stt") < 0)
		return 2;
	stt_engine_choose(&svc);
	if (svc.d.workers > STT_POOL_MAX)
		vx_fatal("--workers: at most %d decoders", STT_POOL_MAX);
	char why[512] = "";
	if ((r = stt_engine_load(&svc, why, sizeof(why))) < 0)
		vx_fatal("engine %s: cannot load: %s", svc.engine->name,
			 why[0] ? why : strerror(-r));
	if ((r = vx_pool_new(svc.d.workers, svc.d.queue, &svc.pool)) < 0)
		vx_fatal("worker pool: %s", strerror(-r));

	vx_server_config cfg = {
		.service = "stt", .version = STT_VERSION,
		.routes = stt_routes, .n_routes = stt_n_routes,
		.ws_routes = stt_ws_routes, .n_ws_routes = stt_n_ws_routes,
		.user = &svc, .health = stt_service_health,
		.info = stt_service_info,
	};
	vx_daemon_server_config(&svc.d, &cfg);
	vx_server *server;
	if ((r = vx_server_new(&cfg, &server)) < 0)
		vx_fatal("cannot serve on %s:%d: %s", svc.d.host, svc.d.port,
			 strerror(-r));
	stt_metrics_register(&svc, vx_server_metrics(server));
	if (wy_port && (r = stt_wyoming_start(&svc, server, wy_port, &wy)) < 0)
		vx_fatal("cannot serve wyoming on port %d: %s", wy_port,
			 strerror(-r));
	vx_log_info(NULL, "engine %s, model %s, %d decoders, queue %d",
		    svc.engine->name, svc.model_name, svc.d.workers, svc.d.queue);

	vx_jobs *jobs;
	vx_jobs_config jc = { .service = "stt", .run = stt_jobs_run, .user = &svc,
		.pool = svc.pool, .capacity = svc.d.workers + svc.d.queue,
		.server = server, .drain_s = svc.d.drain_s };
	if ((r = vx_jobs_new(&nats, &jc, &jobs)) < 0)
		vx_fatal("--nats %s: %s", nats.url, strerror(-r));
	r = vx_server_run(server);
	vx_jobs_free(jobs);
	stt_ws_quiesce(&svc, svc.d.drain_s);
	vx_wy_server_drain(wy, svc.d.drain_s - svc.d.drain_delay_s);
	vx_pool_free(svc.pool);     /* jobs may still count metrics */
	vx_wy_server_free(wy);
	vx_server_free(server);
	svc.engine->destroy(svc.eng);
	return r < 0 ? 1 : 0;
}
