/*
 * voxline-orchestrator: holds voice conversations by calling voxline-vad,
 * -stt, -llm and -tts over their WebSockets (/ws/chat, POST /chat) and
 * keeps their history (SQLite, or PostgreSQL shared by several instances).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "conversation.h"
#include "orch_service.h"
#include "tel.h"
#include "vx_log.h"

#define ORCH_VERSION "0.1.0"

static const char *const timing_names[ORCH_N_TIMINGS] = {
	"stt", "llm_first_token", "llm_first_sentence", "tts_first_audio",
	"voice_to_voice", "orchestrator", "total",
};

static double stage_up_gauge(void *arg)
{
	return upstream_up(arg) ? 1 : 0;
}

static void register_metrics(orch_service *svc, vx_metrics *m)
{
	char labels[64];
	for (int i = 0; i < ORCH_N_TIMINGS; i++) {
		snprintf(labels, sizeof(labels), "stage=\"%s\"", timing_names[i]);
		svc->timing[i] = vx_metrics_histogram(m, "voxline_orch_turn_seconds",
			"Per-turn latency by stage: stt (speech end -> transcript), "
			"llm_first_token, llm_first_sentence, tts_first_audio, "
			"voice_to_voice (end of speech -> first reply audio byte), "
			"orchestrator (voice_to_voice minus the services), total",
			labels, vx_latency_buckets, vx_latency_buckets_n);
	}
	for (int st = 0; st < ORCH_N_STAGES; st++) {
		snprintf(labels, sizeof(labels), "stage=\"%s\"", orch_stage_names[st]);
		svc->stage_errors[st] = vx_metrics_counter(m, "voxline_orch_stage_errors_total",
			"Turns failed by a downstream service (down, error, timeout)", labels);
		vx_metrics_gauge_fn(m, "voxline_orch_stage_up", "1 while the stage is up (an "
			"instance whose /healthz answers 200), else 0", labels,
			stage_up_gauge, svc->up[st]);
	}
	svc->turns = vx_metrics_counter(m, "voxline_orch_turns_total", "Turns finished", NULL);
	svc->barge_ins = vx_metrics_counter(m, "voxline_orch_barge_ins_total",
		"Replies interrupted by the user", NULL);
	svc->refused = vx_metrics_counter(m, "voxline_orch_refused_total",
		"Conversations refused at --max-calls", NULL);
}

#define DB_HINT "set --db (env VOXLINE_ORCHESTRATOR_DB) to a writable file or a postgresql:// URL"

/* Opens the conversation store: --db as given, else voxline.db in the
 * first folder of systemd's $STATE_DIRECTORY, else in /var/lib/voxline
 * (made when missing) - never relative to the working directory. Exits
 * naming the path and the flag to set when it cannot. path (cap bytes)
 * holds a default location. */
static void open_store(orch_service *svc, char *path, size_t cap)
{
	char why[256] = "", shown[512];
	if (!svc->db_path) {
		const char *state = getenv("STATE_DIRECTORY");
		char dir[PATH_MAX];
		if (state && *state == '/')
			snprintf(dir, sizeof(dir), "%.*s", (int)strcspn(state, ":"), state);
		else
			snprintf(dir, sizeof(dir), "/var/lib/voxline");
		if (mkdir(dir, 0750) < 0 && errno != EEXIST)
			vx_fatal("conversation store: cannot create the folder %s: %s; %s%s", dir,
				 strerror(errno), DB_HINT, state ? "" :
				 ", or set STATE_DIRECTORY (systemd: StateDirectory=voxline)");
		snprintf(path, cap, "%s/voxline.db", dir);
		svc->db_path = path;
	}
	int r = history_open_why(svc->db_path, why, sizeof(why), &svc->hist);
	if (r < 0) {
		history_redact(svc->db_path, shown, sizeof(shown));
		vx_fatal("conversation store %s: %s%s%s%s; %s", shown, strerror(-r),
			 why[0] ? " (" : "", why, why[0] ? ")" : "", DB_HINT);
	}
}

/* --eot-policy and --barge-in-policy by name; bounds in order. */
static int policy_flags(conv_policy_cfg *p, const char *eot, const char *barge)
{
	if (!eot || !strcmp(eot, "adaptive"))
		p->eot = EOT_ADAPTIVE;
	else if (!strcmp(eot, "fixed"))
		p->eot = EOT_FIXED;
	else
		return fprintf(stderr, "--eot-policy %s: fixed or adaptive\n", eot), -EINVAL;
	if (!barge || !strcmp(barge, "backchannel"))
		p->barge = BARGE_BACKCHANNEL;
	else if (!strcmp(barge, "immediate"))
		p->barge = BARGE_IMMEDIATE;
	else
		return fprintf(stderr, "--barge-in-policy %s: immediate or backchannel\n",
			       barge), -EINVAL;
	if (p->eot_max_ms < p->eot_min_ms)
		return fprintf(stderr, "--eot-max-ms %d is below --eot-min-ms %d\n",
			       p->eot_max_ms, p->eot_min_ms), -EINVAL;
	return 0;
}

static double calls_gauge(void *arg)
{
	orch_service *svc = arg;
	return atomic_load(&svc->calls);
}

/* --upstream-api-key as the header line the stage calls carry. */
static int upstream_auth_line(orch_service *svc)
{
	const char *k = svc->upstream_key;
	svc->upstream_auth[0] = '\0';
	if (!k || !*k)
		return 0;
	size_t n = strlen(k);
	bool ok = n <= ORCH_MAX_UPSTREAM_KEY;
	for (size_t i = 0; ok && i < n; i++)
		ok = k[i] > ' ' && k[i] < 127;
	if (!ok) {
		vx_log_error(NULL, "--upstream-api-key: at most %d printable "
			     "characters, no spaces", ORCH_MAX_UPSTREAM_KEY);
		return -EINVAL;
	}
	snprintf(svc->upstream_auth, sizeof(svc->upstream_auth),
		 "Authorization: Bearer %s\r\n", k);
	return 0;
}

int main(int argc, char **argv)
{
	orch_service svc = {0};
	char db_default[PATH_MAX + 16];
	const char *eot = NULL, *barge = NULL;
	const vx_flag flags[] = {
		VX_DAEMON_FLAGS(&svc.d, "3000", "4"),
		{ "vad-url", VX_FLAG_STR, &svc.urls[ORCH_VAD], "http://127.0.0.1:3001", 0, 0,
		  "voxline-vad instances, comma-separated" },
		{ "stt-url", VX_FLAG_STR, &svc.urls[ORCH_STT], "http://127.0.0.1:3002", 0, 0,
		  "voxline-stt instances, comma-separated" },
		{ "tts-url", VX_FLAG_STR, &svc.urls[ORCH_TTS], "http://127.0.0.1:3003", 0, 0,
		  "voxline-tts instances, comma-separated" },
		{ "llm-url", VX_FLAG_STR, &svc.urls[ORCH_LLM], "http://127.0.0.1:3004", 0, 0,
		  "voxline-llm instances, comma-separated" },
		{ "llm-model", VX_FLAG_STR, &svc.llm_model, "", 0, 0,
		  "model name sent to voxline-llm (default: its own)" },
		{ "db", VX_FLAG_STR, &svc.db_path, "", 0, 0,
		  "conversation history: an SQLite file, or postgresql://user:password@host/db "
		  "to share it between orchestrators (default: voxline.db in $STATE_DIRECTORY, "
		  "else in /var/lib/voxline)" },
		{ "max-calls", VX_FLAG_INT, &svc.max_calls, "100", 1, 100000,
		  "concurrent conversations (/ws/chat + POST /chat); past it refused" },
		{ "voice", VX_FLAG_STR, &svc.voice, "", 0, 0,
		  "default TTS voice (default: the TTS service's)" },
		{ "system-prompt", VX_FLAG_STR, &svc.system_prompt,
		  "You are a helpful voice assistant. Answer briefly, in plain spoken sentences.",
		  0, 0, "default system prompt" },
		{ "max-tokens", VX_FLAG_INT, &svc.max_tokens, "150", 1, 32768,
		  "longest reply, tokens" },
		{ "barge-in", VX_FLAG_BOOL, &svc.barge_in, "true", 0, 0,
		  "user speech while the reply plays interrupts it" },
		{ "barge-in-policy", VX_FLAG_STR, &barge, "backchannel", 0, 0,
		  "speech over the reply: immediate (interrupts at once) or backchannel "
		  "(\"uh-huh\", \"yeah\" and coughs do not; other speech does by "
		  "--barge-in-min-ms)" },
		{ "barge-in-min-ms", VX_FLAG_INT, &svc.policy.barge_min_ms, "300", 0, 10000,
		  "backchannel policy: speech heard before it interrupts" },
		{ "eot-policy", VX_FLAG_STR, &eot, "adaptive", 0, 0,
		  "end of turn: fixed (--eot-min-ms of silence) or adaptive (--eot-min-ms "
		  "when the words read finished, up to --eot-max-ms when not)" },
		{ "eot-min-ms", VX_FLAG_INT, &svc.policy.eot_min_ms, "300", 50, 10000,
		  "shortest silence that ends a turn (VAD's min_silence_ms)" },
		{ "eot-max-ms", VX_FLAG_INT, &svc.policy.eot_max_ms, "1500", 50, 30000,
		  "longest silence the adaptive policy waits for an unfinished turn" },
		{ "health-interval-s", VX_FLAG_INT, &svc.health_interval_s, "2", 1, 3600,
		  "seconds between /healthz checks of each upstream instance" },
		{ "stage-timeout-s", VX_FLAG_INT, &svc.stage_timeout_s, "15", 1, 600,
		  "a stage silent this long fails the turn (error event naming it)" },
		{ "max-context-messages", VX_FLAG_INT, &svc.max_context_messages, "40", 0, 10000,
		  "history messages sent to the LLM (newest kept)" },
		{ "max-utterance-s", VX_FLAG_INT, &svc.max_utterance_s, "60", 1, 3600,
		  "longest user utterance; longer speech is cut and answered" },
		{ "web-root", VX_FLAG_STR, &svc.web_root, "services/orchestrator/web", 0, 0,
		  "folder with index.html, served at GET /" },
		{ "public-url", VX_FLAG_STR, &svc.public_url, "", 0, 0,
		  "https base URL phone providers reach this orchestrator at (TwiML/TeXML "
		  "stream URLs, Twilio signatures); default: from the Host header" },
		{ "twilio-auth-token", VX_FLAG_STR, &svc.twilio_auth_token, "", 0, 0,
		  "Twilio auth token: POST /twilio/voice requires a good X-Twilio-Signature "
		  "(default: not checked)" },
		{ "telnyx-public-key", VX_FLAG_STR, &svc.telnyx_public_key, "", 0, 0,
		  "Telnyx account public key (base64, from the portal): POST /telnyx/voice "
		  "requires a good telnyx-signature-ed25519 (default: not checked)" },
		{ "upstream-api-key", VX_FLAG_STR, &svc.upstream_key, "", 0, 0,
		  "bearer key sent to VAD, STT, LLM and TTS (their --api-key), "
		  "on WebSocket links and HTTP calls alike" },
		{ "telephony-greeting", VX_FLAG_STR, &svc.tel_greeting, "", 0, 0,
		  "said to a caller when a phone call (/ws/twilio, /ws/telnyx) starts "
		  "(default: none, the caller speaks first)" },
	};
	int r = vx_flags_parse(flags, sizeof(flags) / sizeof(flags[0]), "orchestrator",
			       argc, argv);
	if (r)
		return r > 0 ? 0 : 2;
	if (vx_daemon_init(&svc.d, "orchestrator") < 0)
		return 2;
	if (policy_flags(&svc.policy, eot, barge) < 0)
		return 2;
	if (upstream_auth_line(&svc) < 0)
		return 2;
	if (svc.telnyx_public_key && *svc.telnyx_public_key &&
	    tel_telnyx_key_parse(svc.telnyx_public_key, svc.telnyx_key) < 0) {
		vx_log_error(NULL, "--telnyx-public-key: not the base64 of a 32-byte Ed25519 key");
		return 2;
	}

	static const char *const paths[ORCH_N_STAGES] = {
		"/ws/detect", "/ws/transcribe", "/ws/generate", "/ws/synthesize",
	};
	for (int st = 0; st < ORCH_N_STAGES; st++)
		if ((r = upstream_new(orch_stage_names[st], svc.urls[st], paths[st],
				      &svc.up[st])) < 0)
			vx_fatal("--%s-url %s: %s", orch_stage_names[st], svc.urls[st],
				 strerror(-r));
	open_store(&svc, db_default, sizeof(db_default));
	if ((r = vx_pool_new(1, ORCH_DB_QUEUE, &svc.db_pool)) < 0 ||
	    (r = vx_pool_new(svc.d.workers, svc.d.queue, &svc.chat_pool)) < 0)
		vx_fatal("worker pool: %s", strerror(-r));
	vx_wsclient_opts wo = { .connect_timeout_ms = 3000,
				.max_connections = svc.max_calls * 4 + 64 };
	if ((r = vx_wsclient_new_opts(&wo, &svc.wsc)) < 0)
		vx_fatal("websocket client: %s", strerror(-r));
	pthread_mutex_init(&svc.lock, NULL);
	if ((r = upstream_checker_start(svc.up, ORCH_N_STAGES, svc.health_interval_s,
					&svc.checker)) < 0 ||
	    (r = conversation_ticker_start(&svc)) < 0 || (r = tel_start(&svc)) < 0)
		vx_fatal("threads: %s", strerror(-r));

	vx_server_config cfg = {
		.service = "orchestrator", .version = ORCH_VERSION,
		.routes = orch_routes, .n_routes = orch_n_routes,
		.ws_routes = orch_ws_routes, .n_ws_routes = orch_n_ws_routes,
		.user = &svc, .health = orch_service_health, .info = orch_service_info,
		.ws_admit = orch_ws_admit,
	};
	vx_daemon_server_config(&svc.d, &cfg);
	vx_server *server;
	if ((r = vx_server_new(&cfg, &server)) < 0)
		vx_fatal("cannot serve on %s:%d: %s", svc.d.host, svc.d.port, strerror(-r));
	vx_metrics *m = vx_server_metrics(server);
	register_metrics(&svc, m);
	vx_metrics_gauge_fn(m, "voxline_orch_calls", "Conversations open", NULL,
			    calls_gauge, &svc);
	char db_shown[512];
	history_redact(svc.db_path, db_shown, sizeof(db_shown));
	vx_log_info(NULL, "vad %s, stt %s, llm %s, tts %s, db %s (%s), max %d calls, "
		    "end of turn %s %d-%d ms, barge-in %s", svc.urls[ORCH_VAD],
		    svc.urls[ORCH_STT], svc.urls[ORCH_LLM], svc.urls[ORCH_TTS], db_shown,
		    history_backend_name(svc.hist), svc.max_calls,
		    svc.policy.eot == EOT_ADAPTIVE ? "adaptive" : "fixed",
		    svc.policy.eot_min_ms, svc.policy.eot_max_ms,
		    !svc.barge_in ? "off" : svc.policy.barge == BARGE_BACKCHANNEL ?
		    "backchannel" : "immediate");

	r = vx_server_run(server);
	/* Order: no new events (server), then upstream sockets (their
	 * on_close drop the last conversation references), then the jobs. */
	vx_server_free(server);
	vx_wsclient_free(svc.wsc);
	conversation_ticker_stop(&svc);
	tel_stop(&svc);
	upstream_checker_stop(svc.checker);
	vx_pool_free(svc.chat_pool);
	vx_pool_free(svc.db_pool);
	history_close(svc.hist);
	for (int st = 0; st < ORCH_N_STAGES; st++)
		upstream_free(svc.up[st]);
	pthread_mutex_destroy(&svc.lock);
	return r < 0 ? 1 : 0;
}
