/* voxline-llm: chat generation over HTTP (voxline, OpenAI) and WebSocket,
 * from a built-in GGUF engine or a remote OpenAI-compatible / Ollama
 * upstream. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llm_gen.h"
#include "llm_service.h"
#include "vx_jobs.h"
#include "vx_log.h"

#define LLM_VERSION "0.1.0"
#define LLM_QUIESCE_MS 3000   /* at exit, wait this long for generations */
#define LLM_DEADLINE_SLACK_S 5  /* server request deadline past --timeout-s */

/* --engine (name or alias); without it, the first local engine for a
 * --model without --url (a model file), else the default (openai). */
static const llm_engine_ops *pick_engine(const llm_service *svc)
{
	bool model_file = svc->model && svc->model[0] &&
			  !(svc->url && svc->url[0]);
	if (svc->engine_name && svc->engine_name[0])
		return llm_engine_find(svc->engine_name);
	for (size_t i = 0; model_file && llm_engines[i]; i++)
		if (!(llm_engines[i]->flags & VX_ENGINE_REMOTE))
			return llm_engines[i];
	return llm_engine_find(NULL);
}

/* The id answers carry when a request names no model. */
static void find_model_id(llm_service *svc)
{
	llm_model_info info;
	if (svc->local && svc->engine->models &&
	    svc->engine->models(svc->eng, &info, 1) == 1)
		snprintf(svc->model_id, sizeof(svc->model_id), "%s", info.id);
	else
		snprintf(svc->model_id, sizeof(svc->model_id), "%s",
			 svc->model ? svc->model : "");
}

static void register_metrics(llm_service *svc, vx_metrics *m)
{
	static const double rate_buckets[] = { 1, 2, 5, 10, 20, 30, 50, 75, 100,
					       150, 200, 300, 500, 1000 };
	char labels[64];
	svc->ttft = vx_metrics_histogram(m, "voxline_llm_time_to_first_token_seconds",
		"Time from request to the first generated token", NULL,
		vx_latency_buckets, vx_latency_buckets_n);
	svc->tok_rate = vx_metrics_histogram(m, "voxline_llm_tokens_per_second",
		"Completion tokens per second after the first token", NULL,
		rate_buckets, sizeof(rate_buckets) / sizeof(rate_buckets[0]));
	svc->gen_seconds = vx_metrics_histogram(m, "voxline_llm_generation_seconds",
		"Whole generation time", NULL, vx_latency_buckets,
		vx_latency_buckets_n);
	svc->tokens_in = vx_metrics_counter(m, "voxline_llm_prompt_tokens_total",
		"Prompt tokens, as the engine counted them", NULL);
	svc->tokens_cached = vx_metrics_counter(m, "voxline_llm_prompt_cached_tokens_total",
		"Prompt tokens whose K/V were reused from a slot's cached prefix (gguf)", NULL);
	svc->tokens_out = vx_metrics_counter(m, "voxline_llm_completion_tokens_total",
		"Completion tokens generated", NULL);
	svc->rejected = vx_metrics_counter(m, "voxline_llm_rejected_total",
		"Generations refused past --max-concurrent (503)", NULL);
	for (int i = 0; i < LLM_N_ERROR_KINDS; i++) {
		snprintf(labels, sizeof(labels), "kind=\"%s\"", llm_gen_error_kinds[i]);
		svc->errors[i] = vx_metrics_counter(m, "voxline_llm_upstream_errors_total",
			"Failed generations by kind", labels);
	}
	for (int i = 0; i < 4; i++) {
		snprintf(labels, sizeof(labels), "finish=\"%s\"", llm_gen_finish_names[i]);
		svc->finished[i] = vx_metrics_counter(m, "voxline_llm_generations_total",
			"Generations by how they ended", labels);
	}
}

static double gauge_generations(void *arg)
{
	llm_service *svc = arg;
	return atomic_load(&svc->generations);
}

int main(int argc, char **argv)
{
	llm_service svc = {0};
	vx_jobs_opts nats = {0};
	const vx_flag flags[] = {
		VX_DAEMON_FLAGS(&svc.d, "3004", "1"),
		VX_JOBS_FLAGS(&nats),
		{ "engine", VX_FLAG_STR, &svc.engine_name, "", 0, 0,
		  "openai, ollama or gguf (default: gguf when --model is given "
		  "without --url, else openai)" },
		{ "url", VX_FLAG_STR, &svc.url, "", 0, 0,
		  "upstream base URL (openai: http://127.0.0.1:8080, "
		  "ollama: http://127.0.0.1:11434)" },
		{ "api-key-upstream", VX_FLAG_STR, &svc.upstream_key, "", 0, 0,
		  "bearer key sent to the upstream (not this service's --api-key)" },
		{ "model", VX_FLAG_STR, &svc.model, "", 0, 0,
		  "default model name (remote) or .gguf file (gguf)" },
		{ "connect-timeout-ms", VX_FLAG_INT, &svc.connect_timeout_ms, "5000",
		  1, 600000, "upstream connect timeout" },
		{ "first-token-timeout-ms", VX_FLAG_INT, &svc.first_token_timeout_ms,
		  "60000", 1, 3600000,
		  "upstream must send its first token within this (else 504)" },
		{ "threads", VX_FLAG_INT, &svc.threads, "0", 0, 256,
		  "gguf: compute threads (0 = engine default)" },
		{ "ctx", VX_FLAG_INT, &svc.ctx, "0", 0, 1048576,
		  "gguf: context length in tokens (0 = the model's)" },
		{ "slots", VX_FLAG_INT, &svc.slots, "4", 1, 64,
		  "gguf: KV slots = sequences decoded together (continuous "
		  "batching, like llama-server's --parallel); generations past "
		  "it queue up to --max-concurrent" },
		{ "no-repack", VX_FLAG_BOOL, &svc.no_repack, "false", 0, 0,
		  "gguf: keep Q4_0/Q5_0/IQ4_NL/Q4_1/Q5_1/Q3_K..Q6_K weights as "
		  "stored (by default they are widened during warm-up into the "
		  "byte layouts of the batched gemms: faster, most with many "
		  "streams, for 1.5-2.4x those tensors' memory)" },
		{ "kv-type", VX_FLAG_STR, &svc.kv_type, "f16", 0, 0,
		  "gguf: KV cache values, f16 (half the memory, as llama.cpp's "
		  "default) or f32" },
		{ "max-concurrent", VX_FLAG_INT, &svc.max_concurrent, "64", 1, 10000,
		  "generations at once (HTTP + WebSocket); past it 503 + Retry-After" },
		{ "max-tokens", VX_FLAG_INT, &svc.max_tokens, "150", 1, 1000000,
		  "default max_tokens of a request" },
		{ "max-tokens-limit", VX_FLAG_INT, &svc.max_tokens_limit, "8192", 1,
		  1000000, "largest max_tokens a request may ask for" },
		{ "max-prompt-kb", VX_FLAG_INT, &svc.max_prompt_kb, "256", 1, 1048576,
		  "content of all messages of a request, KiB (413 past it)" },
		{ "timeout-s", VX_FLAG_INT, &svc.timeout_s, "120", 1, 86400,
		  "deadline of a whole generation, seconds (504, or an error "
		  "event once streaming; --request-timeout-s is kept above it)" },
		{ "temperature", VX_FLAG_DOUBLE, &svc.temperature, "0.7", 0, 2,
		  "default sampling temperature" },
		{ "system-prompt", VX_FLAG_STR, &svc.system_prompt, "", 0, 0,
		  "system message prepended when a request has none" },
		{ "chat-template-kwargs", VX_FLAG_STR, &svc.template_kwargs_text, "", 0, 0,
		  "JSON object of chat template variables every request gets "
		  "unless its chat_template_kwargs sets them, as llama-server's "
		  "flag of that name (e.g. '{\"enable_thinking\":false}')" },
		{ "probe-interval-ms", VX_FLAG_INT, &svc.probe_interval_ms, "2000", 0,
		  600000, "how often /healthz re-checks a remote upstream "
		  "(0 = never: always ready)" },
	};
	int r = vx_flags_parse(flags, sizeof(flags) / sizeof(flags[0]), "llm",
			       argc, argv);
	if (r)
		return r > 0 ? 0 : 2;
	if (vx_daemon_init(&svc.d, "llm") < 0)
		return 2;
	if (svc.template_kwargs_text &&
	    !cJSON_IsObject(svc.template_kwargs = cJSON_Parse(svc.template_kwargs_text))) {
		vx_log_error(NULL, "--chat-template-kwargs: not a JSON object: %s",
			     svc.template_kwargs_text);
		cJSON_Delete(svc.template_kwargs);
		return 2;
	}
	if (strcmp(svc.kv_type, "f16") && strcmp(svc.kv_type, "f32")) {
		vx_log_error(NULL, "--kv-type %s: f16 or f32", svc.kv_type);
		return 2;
	}
	if (svc.max_tokens > svc.max_tokens_limit)
		vx_fatal("--max-tokens %d is over --max-tokens-limit %d",
			 svc.max_tokens, svc.max_tokens_limit);
	/* The generation's own deadline must come first, so it is answered
	 * as a 504 (or an error event) rather than cut by the server. */
	if (svc.d.request_timeout_s < svc.timeout_s + LLM_DEADLINE_SLACK_S)
		svc.d.request_timeout_s = svc.timeout_s + LLM_DEADLINE_SLACK_S;
	if (!(svc.engine = pick_engine(&svc))) {
		char why[256];
		vx_fatal("--engine: %s", vx_engine_unknown(llm_engine_at,
			 svc.engine_name, why, sizeof(why)));
	}
	svc.local = !(svc.engine->flags & VX_ENGINE_REMOTE);
	svc.limits = (llm_params_limits){
		.max_tokens_default = svc.max_tokens,
		.max_tokens_limit = svc.max_tokens_limit,
		.max_prompt_bytes = (size_t)svc.max_prompt_kb * 1024,
		.temperature_default = svc.temperature,
		.system_prompt = svc.system_prompt,
		.template_kwargs = svc.template_kwargs,
		.timeout_ms = svc.timeout_s * 1000,
	};
	svc.started = (double)time(NULL);
	pthread_mutex_init(&svc.ws_lock, NULL);

	char engine_error[256] = "";
	llm_config ecfg = {
		.error = engine_error, .error_len = sizeof(engine_error),
		.url = svc.url, .api_key = svc.upstream_key, .model = svc.model,
		.connect_timeout_ms = svc.connect_timeout_ms,
		.first_token_timeout_ms = svc.first_token_timeout_ms,
		.threads = svc.threads, .ctx = svc.ctx, .slots = svc.slots,
		.no_repack = svc.no_repack, .kv_f32 = !strcmp(svc.kv_type, "f32"),
	};
	if ((r = svc.engine->create(&ecfg, &svc.eng)) < 0)
		vx_fatal("engine %s (model %s, url %s): %s", svc.engine->name,
			 svc.model ? svc.model : "-", svc.url ? svc.url : "default",
			 engine_error[0] ? engine_error : strerror(-r));
	find_model_id(&svc);
	/* Workers = slots; the queue only absorbs a worker that is still
	 * returning from its last job (admission already capped the count). */
	if ((r = vx_pool_new(svc.max_concurrent, svc.max_concurrent, &svc.pool)) < 0)
		vx_fatal("worker pool: %s", strerror(-r));
	vx_server_config cfg = {
		.service = "llm", .version = LLM_VERSION,
		.routes = llm_routes, .n_routes = llm_n_routes,
		.ws_routes = llm_ws_routes, .n_ws_routes = llm_n_ws_routes,
		.user = &svc, .health = llm_service_health,
		.info = llm_service_info,
	};
	vx_daemon_server_config(&svc.d, &cfg);
	if ((r = vx_server_new(&cfg, &svc.server)) < 0)
		vx_fatal("cannot serve on %s:%d: %s", svc.d.host, svc.d.port,
			 strerror(-r));
	vx_metrics *m = vx_server_metrics(svc.server);
	register_metrics(&svc, m);
	vx_metrics_gauge_fn(m, "voxline_llm_generations_in_flight",
			    "Generations running now", NULL, gauge_generations, &svc);
	llm_service_probe_start(&svc);
	vx_log_info(NULL, "engine %s, model %s, upstream %s, max %d concurrent",
		    svc.engine->name, svc.model ? svc.model : "(default)",
		    svc.local ? "-" : svc.url ? svc.url : "(default)",
		    svc.max_concurrent);

	vx_jobs *jobs;
	vx_jobs_config jc = { .service = "llm", .run = llm_jobs_run, .user = &svc,
		.pool = svc.pool, .capacity = svc.max_concurrent,
		.server = svc.server, .drain_s = svc.d.drain_s };
	if ((r = vx_jobs_new(&nats, &jc, &jobs)) < 0)
		vx_fatal("--nats %s: %s", nats.url, strerror(-r));
	r = vx_server_run(svc.server);
	vx_jobs_free(jobs);
	if (!llm_service_quiesce(&svc, LLM_QUIESCE_MS)) {
		/* A client still holds a generation: freeing would pull the
		 * server from under it. The process ends anyway. */
		vx_log_warn(NULL, "exiting with %d generations in flight",
			    atomic_load(&svc.generations));
		return r < 0 ? 1 : 0;
	}
	vx_pool_free(svc.pool);     /* jobs may still count metrics */
	vx_server_free(svc.server);
	llm_service_probe_stop(&svc);
	svc.engine->destroy(svc.eng);
	pthread_mutex_destroy(&svc.ws_lock);
	cJSON_Delete(svc.template_kwargs);
	return r < 0 ? 1 : 0;
}
