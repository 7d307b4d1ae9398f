/*
 * voxline_banter.c - voxline-banter: two voiced bots talking to each other
 * through NATS, each one a conversation on voxline-orchestrator.
 *
 * Two personas (name, system prompt, voice). Each bot subscribes to its
 * subject <prefix>.<name>; a line arriving there goes to the orchestrator
 * (POST /chat, text in, reply text + WAV out, in the bot's own conversation
 * and voice); the bot then "plays" the reply (its duration elapses, or with
 * --wait-playback the WAV goes to <prefix>.<name>.play and the bot waits for
 * a message on <prefix>.<name>.played.<turn>) and publishes its line to the
 * other bot's subject. The opening line goes to the first bot. With
 * --stream the bot talks on one /ws/chat socket instead (banter_ws.c): the
 * reply plays from its first sentence on, paced by the orchestrator. The
 * orchestrator side is banter_orch.c; the shared state, banter_int.h.
 *
 * Output: the exchange as text (--out-text, one line a turn, written as it
 * happens) and as one stereo WAV (--out-wav, first bot left, second right,
 * each reply where it was played in time; written at the end, through a
 * temporary file and a rename). Stops after --turns replies, on SIGINT or
 * SIGTERM (the reply playing is cut where it was, the files are complete; a
 * second signal exits at once) or on the first failure.
 *
 * Threads: main (flags, startup checks, waits, writes the WAV) and one per
 * bot. libnats and libcurl are thread-safe; the shared state is in `banter`,
 * guarded by its lock, except `stop` (atomic, also set from the signal
 * handler).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <nats/nats.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "banter_int.h"
#include "vx_buf.h"
#include "vx_curl.h"
#include "vx_flags.h"
#include "vx_time.h"

static volatile sig_atomic_t g_signals;
static atomic_bool *g_stop;

static void on_signal(int sig)
{
	(void)sig;
	if (g_signals++)
		_exit(130);
	atomic_store(g_stop, true);
}

void banter_fail(banter *b, int code, const char *fmt, ...)
{
	pthread_mutex_lock(&b->lock);
	if (!b->code) {
		va_list ap;
		va_start(ap, fmt);
		fputs("voxline-banter: ", stderr);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
		va_end(ap);
		b->code = code;
		snprintf(b->why, sizeof(b->why), "failed");
	}
	pthread_mutex_unlock(&b->lock);
	atomic_store(&b->stop, true);
}

/* One line of the transcript (and of stdout unless --quiet). Lock held. */
static void say_line(banter *b, double at_ms, const char *who, const char *text,
		     const char *note)
{
	char line[BANTER_MAX_LINE + 200];
	banter_record_line(line, sizeof(line), at_ms, who, text, note);
	if (b->text) {
		fputs(line, b->text);
		fflush(b->text);
	}
	if (!b->cfg->quiet) {
		fputs(line, stdout);
		fflush(stdout);
	}
}

/* ---- a bot ---- */

/* Sleeps until until_ms or the stop flag; true when it got there. */
static bool sleep_until(banter *b, double until_ms)
{
	for (;;) {
		if (atomic_load(&b->stop))
			return false;
		double left = until_ms - vx_now_ms();
		if (left <= 0)
			return true;
		struct timespec ts = { 0, (long)((left < BANTER_POLL_MS ? left : BANTER_POLL_MS) * 1e6) };
		nanosleep(&ts, NULL);
	}
}

/* --wait-playback: sends the WAV to <prefix>.<name>.play (reply subject
 * <prefix>.<name>.played.<turn>) and waits for that done event, for at most
 * the audio's duration plus --playback-timeout-s. True when it came. */
static bool wait_playback(bot *me, int turn, const reply *rp, double dur_ms)
{
	banter *b = me->b;
	vx_buf wav = {0};
	char played[BANTER_SUBJECT_MAX + 16];
	snprintf(played, sizeof(played), "%s.%d", me->played_prefix, turn);
	if (vx_audio_encode(rp->pcm.data, rp->pcm.frames, rp->pcm.rate, 1, VX_FMT_WAV, &wav) < 0) {
		banter_fail(b, EXIT_FAIL, "%s: out of memory", me->name);
		return false;
	}
	if ((int64_t)wav.len > natsConnection_GetMaxPayload(b->nc)) {
		banter_fail(b, EXIT_FAIL, "%s: the reply's WAV (%zu bytes) is larger than the "
			    "NATS server's max_payload (%lld): raise max_payload in its config",
			    me->name, wav.len, (long long)natsConnection_GetMaxPayload(b->nc));
		vx_buf_release(&wav);
		return false;
	}
	natsStatus s = natsConnection_PublishRequest(b->nc, me->play_subject, played,
						     wav.data, (int)wav.len);
	vx_buf_release(&wav);
	if (s != NATS_OK) {
		banter_fail(b, EXIT_FAIL, "%s: publish to %s: %s", me->name,
			    me->play_subject, natsStatus_GetText(s));
		return false;
	}
	double until = vx_now_ms() + dur_ms + b->cfg->playback_timeout_s * 1000.0;
	while (!atomic_load(&b->stop) && vx_now_ms() < until) {
		natsMsg *m = NULL;
		s = natsSubscription_NextMsg(&m, me->played_sub, BANTER_POLL_MS);
		if (s == NATS_OK) {
			bool mine = !strcmp(natsMsg_GetSubject(m), played);
			natsMsg_Destroy(m);
			if (mine)
				return true;   /* an older turn's late event is dropped */
		} else if (s != NATS_TIMEOUT) {
			banter_fail(b, EXIT_FAIL, "%s: waiting on %s: %s", me->name, played,
				    natsStatus_GetText(s));
			return false;
		}
	}
	if (!atomic_load(&b->stop))
		fprintf(stderr, "voxline-banter: warning: %s: no playback-done event on %s "
			"within %.0f ms; going on\n", me->name, played,
			dur_ms + b->cfg->playback_timeout_s * 1000.0);
	return false;
}

/* Plays the reply of turn `turn`: records it at the time it starts, waits for
 * its end (or the done event), writes its transcript line. The part played
 * so far is what is kept when the run is stopped during it. */
static int play(bot *me, int turn, reply *rp)
{
	banter *b = me->b;
	double dur_ms = rp->pcm.frames * 1000.0 / rp->pcm.rate;
	pthread_mutex_lock(&b->lock);
	double start = rp->start_ms > 0 ? rp->start_ms : vx_now_ms() - b->t0_ms;
	pthread_mutex_unlock(&b->lock);
	bool done = b->cfg->wait_playback ? wait_playback(me, turn, rp, dur_ms) :
		    sleep_until(b, b->t0_ms + start + dur_ms);
	double played_ms = vx_now_ms() - b->t0_ms - start;
	if (b->cfg->wait_playback && done)
		played_ms = dur_ms;   /* the player said so */
	bool cut = !done && atomic_load(&b->stop) && played_ms < dur_ms;
	size_t frames = cut ? (size_t)(played_ms * rp->pcm.rate / 1000.0) : rp->pcm.frames;
	if (frames > rp->pcm.frames)
		frames = rp->pcm.frames;
	pthread_mutex_lock(&b->lock);
	int r = banter_record_place(&b->rec, me->idx, start, rp->pcm.data, frames);
	if (r == 0 && b->turns < b->cfg->turns) {
		say_line(b, start, me->name, rp->text, cut ? " [cut short]" : "");
		b->latency_ms[b->turns] = rp->latency_ms;
		b->gap_ms[b->turns] = start - b->last_end_ms;
		b->last_end_ms = start + frames * 1000.0 / rp->pcm.rate;
		b->audio_ms += frames * 1000.0 / rp->pcm.rate;
		b->turns++;
		if (b->turns >= b->cfg->turns && !b->why[0])
			snprintf(b->why, sizeof(b->why), "%d turns", b->turns);
	}
	bool last = b->turns >= b->cfg->turns;
	pthread_mutex_unlock(&b->lock);
	if (r < 0)
		banter_fail(b, EXIT_FAIL, "recording: %s (at most %d s are kept)",
			    strerror(-r), BANTER_MAX_WAV_S);
	else if (last)
		atomic_store(&b->stop, true);
	return r;
}

/* Publishes {"turn":N,"from":name,"text":...} to subject. */
static int send_line(banter *b, const char *subject, int turn, const char *from,
		     const char *text)
{
	cJSON *j = cJSON_CreateObject();
	cJSON_AddNumberToObject(j, "turn", turn);
	cJSON_AddStringToObject(j, "from", from);
	cJSON_AddStringToObject(j, "text", text);
	char *s = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	if (!s)
		return -ENOMEM;
	pthread_mutex_lock(&b->lock);
	b->line_sent_ms = vx_now_ms();
	pthread_mutex_unlock(&b->lock);
	natsStatus st = natsConnection_PublishString(b->nc, subject, s);
	free(s);
	if (st == NATS_OK)
		st = natsConnection_FlushTimeout(b->nc, 5000);
	if (st != NATS_OK) {
		banter_fail(b, EXIT_FAIL, "publish to %s: %s (is the NATS server at %s "
			    "still running?)", subject, natsStatus_GetText(st), b->cfg->nats);
		return -EIO;
	}
	return 0;
}

/* Takes the next line for this bot: 1 with its text and turn, 0 on stop. */
static int next_line(bot *me, char **ret_text, int *ret_turn)
{
	banter *b = me->b;
	while (!atomic_load(&b->stop)) {
		natsMsg *m = NULL;
		natsStatus s = natsSubscription_NextMsg(&m, me->sub, BANTER_POLL_MS);
		if (s == NATS_TIMEOUT) {
			pthread_mutex_lock(&b->lock);
			bool mine = b->turns % 2 == me->idx;
			double waited = vx_now_ms() - b->line_sent_ms;
			pthread_mutex_unlock(&b->lock);
			if (mine && waited > b->cfg->timeout_s * 1000.0) {
				banter_fail(b, EXIT_FAIL, "%s: no line arrived on %s within %g s "
					    "(NATS connection lost?)", me->name, me->subject,
					    b->cfg->timeout_s);
				return 0;
			}
			continue;
		}
		if (s != NATS_OK) {
			banter_fail(b, EXIT_FAIL, "%s: NATS subscription %s: %s", me->name,
				    me->subject, natsStatus_GetText(s));
			return 0;
		}
		cJSON *j = cJSON_ParseWithLength(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
		natsMsg_Destroy(m);
		const char *text = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "text"));
		const cJSON *turn = cJSON_GetObjectItemCaseSensitive(j, "turn");
		if (!text || !*text || !cJSON_IsNumber(turn)) {
			fprintf(stderr, "voxline-banter: warning: %s: a message on %s is not "
				"{\"turn\":N,\"text\":\"...\"}; ignored\n", me->name, me->subject);
			cJSON_Delete(j);
			continue;
		}
		*ret_text = strndup(text, BANTER_MAX_LINE);
		*ret_turn = turn->valueint;
		cJSON_Delete(j);
		return *ret_text ? 1 : 0;
	}
	return 0;
}

static void *bot_main(void *arg)
{
	bot *me = arg;
	banter *b = me->b;
	bot *other = &b->bots[1 - me->idx];
	char *line;
	int turn;
	if (b->cfg->stream && banter_orch_open_stream(me) < 0)
		return NULL;
	while (next_line(me, &line, &turn) > 0) {
		reply rp = {0};
		int r = banter_orch_ask(me, line, &rp);
		free(line);
		if (r == 0)
			r = play(me, turn, &rp);
		if (r == 0 && !atomic_load(&b->stop))
			r = send_line(b, other->subject, turn + 1, me->name, rp.text);
		banter_reply_release(&rp);
		if (r < 0)
			break;
	}
	banter_ws_free(me->ws);
	me->ws = NULL;
	return NULL;
}

/* ---- setup ---- */

/* A name is a NATS subject token and part of a conversation id. */
static bool name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > BANTER_MAX_NAME)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
			return false;
	return true;
}

/* --personas FILE: [{"name":..,"voice":..,"system_prompt":..}, {...}];
 * strings stay in *ret_json (caller deletes). */
static int load_personas(struct config *cfg, cJSON **ret_json)
{
	FILE *f = fopen(cfg->personas, "rb");
	if (!f) {
		fprintf(stderr, "voxline-banter: --personas %s: %s\n", cfg->personas, strerror(errno));
		return -errno;
	}
	char *buf = malloc(BANTER_MAX_PERSONAS_FILE);
	size_t n = buf ? fread(buf, 1, BANTER_MAX_PERSONAS_FILE, f) : 0;
	fclose(f);
	cJSON *j = buf ? cJSON_ParseWithLength(buf, n) : NULL;
	free(buf);
	if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) != 2) {
		fprintf(stderr, "voxline-banter: --personas %s: not a JSON array of two "
			"{\"name\",\"voice\",\"system_prompt\"} objects\n", cfg->personas);
		cJSON_Delete(j);
		return -EINVAL;
	}
	for (int i = 0; i < 2; i++) {
		const cJSON *p = cJSON_GetArrayItem(j, i);
		const char *const keys[3] = { "name", "voice", "system_prompt" };
		const char **vals[3] = { &cfg->name[i], &cfg->voice[i], &cfg->prompt[i] };
		for (int k = 0; k < 3; k++) {
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, keys[k]);
			if (cJSON_IsString(v))
				*vals[k] = v->valuestring;
			else if (v) {
				fprintf(stderr, "voxline-banter: --personas %s: persona %d: "
					"\"%s\" must be a string\n", cfg->personas, i + 1, keys[k]);
				cJSON_Delete(j);
				return -EINVAL;
			}
		}
	}
	*ret_json = j;
	return 0;
}

/* --stream: ws://host[:port]/ws/chat from --orchestrator's http:// URL. */
static int stream_url(struct config *cfg)
{
	const char *o = cfg->orchestrator;
	if (cfg->wait_playback) {
		fprintf(stderr, "voxline-banter: --stream and --wait-playback do not go "
			"together (with --stream the orchestrator paces the playback)\n");
		return -EINVAL;
	}
	if (strncmp(o, "http://", 7)) {
		fprintf(stderr, "voxline-banter: --stream needs an http:// --orchestrator "
			"URL (its /ws/chat is ws://, without TLS)\n");
		return -EINVAL;
	}
	size_t n = strlen(o + 7);
	while (n && o[7 + n - 1] == '/')
		n--;
	if (n + 20 > sizeof(cfg->ws_url)) {
		fprintf(stderr, "voxline-banter: --orchestrator URL too long\n");
		return -EINVAL;
	}
	snprintf(cfg->ws_url, sizeof(cfg->ws_url), "ws://%.*s/ws/chat", (int)n, o + 7);
	return 0;
}

static int check_config(const struct config *cfg)
{
	for (int i = 0; i < 2; i++) {
		if (!cfg->name[i] || !name_ok(cfg->name[i])) {
			fprintf(stderr, "voxline-banter: persona %d: a name is 1-%d of "
				"[A-Za-z0-9_-] (it is a NATS subject token)\n", i + 1, BANTER_MAX_NAME);
			return -EINVAL;
		}
		if (!cfg->voice[i] || !cfg->prompt[i] || !*cfg->prompt[i] ||
		    strlen(cfg->prompt[i]) > BANTER_MAX_LINE) {
			fprintf(stderr, "voxline-banter: persona %s needs a voice and a system "
				"prompt of at most %d bytes\n", cfg->name[i], BANTER_MAX_LINE);
			return -EINVAL;
		}
	}
	if (!strcmp(cfg->name[0], cfg->name[1])) {
		fprintf(stderr, "voxline-banter: the two personas need different names\n");
		return -EINVAL;
	}
	if (!cfg->first_line || !*cfg->first_line || strlen(cfg->first_line) > BANTER_MAX_LINE) {
		fprintf(stderr, "voxline-banter: --first-line must be 1-%d bytes\n", BANTER_MAX_LINE);
		return -EINVAL;
	}
	if (!cfg->prefix || !*cfg->prefix || strlen(cfg->prefix) > 100 ||
	    strpbrk(cfg->prefix, " \t\r\n*>")) {
		fprintf(stderr, "voxline-banter: --subject-prefix must be 1-100 bytes "
			"without spaces, * or >\n");
		return -EINVAL;
	}
	return 0;
}

/* Connects to NATS and subscribes both bots (and their done events). */
static int nats_setup(banter *b)
{
	const struct config *cfg = b->cfg;
	natsOptions *o = NULL;
	natsStatus s = natsOptions_Create(&o);
	if (s == NATS_OK)
		s = natsOptions_SetURL(o, cfg->nats);
	if (s == NATS_OK)
		s = natsOptions_SetName(o, "voxline-banter");
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(o, 3000);
	if (s == NATS_OK)
		s = natsConnection_Connect(&b->nc, o);
	natsOptions_Destroy(o);
	if (s != NATS_OK) {
		banter_fail(b, EXIT_UNREACHABLE, "cannot reach NATS at %s (%s): start a "
			    "server (nats-server -js, Debian package nats-server) or point "
			    "--nats / VOXLINE_BANTER_NATS at one", cfg->nats, natsStatus_GetText(s));
		return -ECONNREFUSED;
	}
	for (int i = 0; i < 2 && s == NATS_OK; i++) {
		bot *bt = &b->bots[i];
		s = natsConnection_SubscribeSync(&bt->sub, b->nc, bt->subject);
		if (s == NATS_OK && cfg->wait_playback) {
			char wild[BANTER_SUBJECT_MAX + 4];
			snprintf(wild, sizeof(wild), "%s.*", bt->played_prefix);
			s = natsConnection_SubscribeSync(&bt->played_sub, b->nc, wild);
		}
	}
	if (s == NATS_OK)
		s = natsConnection_FlushTimeout(b->nc, 5000);
	if (s != NATS_OK) {
		banter_fail(b, EXIT_FAIL, "NATS at %s: subscribe: %s", cfg->nats,
			    natsStatus_GetText(s));
		return -EIO;
	}
	return 0;
}

static void nats_teardown(banter *b)
{
	for (int i = 0; i < 2; i++) {
		natsSubscription_Destroy(b->bots[i].sub);
		natsSubscription_Destroy(b->bots[i].played_sub);
	}
	natsConnection_Destroy(b->nc);
	nats_CloseAndWait(2000);
}

static void bots_init(banter *b)
{
	const struct config *cfg = b->cfg;
	long stamp = (long)time(NULL);
	for (int i = 0; i < 2; i++) {
		bot *bt = &b->bots[i];
		bt->b = b;
		bt->idx = i;
		bt->name = cfg->name[i];
		bt->voice = cfg->voice[i];
		bt->prompt = cfg->prompt[i];
		snprintf(bt->conv_id, sizeof(bt->conv_id), "banter-%s-%ld-%d", bt->name,
			 stamp, (int)getpid());
		snprintf(bt->subject, sizeof(bt->subject), "%s.%s", cfg->prefix, bt->name);
		snprintf(bt->play_subject, sizeof(bt->play_subject), "%s.%s.play",
			 cfg->prefix, bt->name);
		snprintf(bt->played_prefix, sizeof(bt->played_prefix), "%s.%s.played",
			 cfg->prefix, bt->name);
	}
}

/* The transcript's header: who, in which voice, in which conversation. */
static int text_open(banter *b)
{
	const struct config *cfg = b->cfg;
	if (!(b->text = fopen(cfg->out_text, "w"))) {
		banter_fail(b, EXIT_FAIL, "--out-text %s: %s", cfg->out_text, strerror(errno));
		return -errno;
	}
	char when[32];
	time_t now = time(NULL);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
	fprintf(b->text, "# voxline-banter %s, orchestrator %s, NATS %s\n", when,
		cfg->orchestrator, cfg->nats);
	for (int i = 0; i < 2; i++)
		fprintf(b->text, "# %s: voice %s, %s channel, subject %s, conversation %s\n",
			b->bots[i].name, b->bots[i].voice, i ? "right" : "left",
			b->bots[i].subject, b->bots[i].conv_id);
	fprintf(b->text, "# opening line, to %s: %s\n", b->bots[0].name, cfg->first_line);
	fflush(b->text);
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* ret[0] the median, ret[1] the max of v[0..n) (sorted in place); 0s when n is 0. */
static void median_max(double *v, int n, double ret[2])
{
	ret[0] = ret[1] = 0;
	if (n <= 0)
		return;
	qsort(v, (size_t)n, sizeof(double), cmp_double);
	ret[0] = v[n / 2];
	ret[1] = v[n - 1];
}

/* The end: transcript footer, WAV, summary on stderr. */
static int finish(banter *b)
{
	const struct config *cfg = b->cfg;
	int r = banter_record_write_wav(&b->rec, cfg->out_wav);
	if (r < 0)
		fprintf(stderr, "voxline-banter: --out-wav %s: %s\n", cfg->out_wav, strerror(-r));
	double secs = banter_record_seconds(&b->rec);
	const char *why = b->why[0] ? b->why : "interrupted";
	if (b->text) {
		fprintf(b->text, "# end: %d turns, %.3f s recorded, stopped: %s\n",
			b->turns, secs, why);
		if (fclose(b->text) != 0 && r == 0) {
			fprintf(stderr, "voxline-banter: --out-text %s: %s\n", cfg->out_text,
				strerror(errno));
			r = -EIO;
		}
		b->text = NULL;
	}
	double lat[2], gap[2];
	median_max(b->latency_ms, b->turns, lat);
	median_max(b->gap_ms, b->turns, gap);
	fprintf(stderr, "voxline-banter: %d turns (%s), %.1f s of speech in %.1f s; reply "
		"latency (line sent -> reply audio) median %.0f ms, max %.0f ms; gap between turns "
		"(one reply's end -> the next one's start) median %.0f ms, max %.0f ms; "
		"wrote %s and %s\n", b->turns, why, b->audio_ms / 1000.0, secs, lat[0],
		lat[1], gap[0], gap[1], cfg->out_text, cfg->out_wav);
	return r;
}

static const char *const HELP =
	"\nvoxline-banter: two voiced bots talk to each other through NATS.\n\n"
	"Each persona (--a-*, --b-* or --personas FILE, a JSON array of two\n"
	"{\"name\",\"voice\",\"system_prompt\"}) is a conversation on\n"
	"voxline-orchestrator. Bot <name> listens on <prefix>.<name> for lines\n"
	"{\"turn\":N,\"from\":\"...\",\"text\":\"...\"}; each line is sent to the\n"
	"orchestrator (POST /chat: the reply's text and audio in the bot's voice\n"
	"and conversation), \"played\" (its duration elapses; with --wait-playback\n"
	"its WAV is published on <prefix>.<name>.play with the reply subject\n"
	"<prefix>.<name>.played.<turn>, and the bot waits for any message there,\n"
	"at most the duration plus --playback-timeout-s), then sent to the other\n"
	"bot. --first-line goes to the first bot.\n\n"
	"--stream: each bot talks on one /ws/chat socket instead (start with its\n"
	"persona, then a text message a turn): its reply plays from the first\n"
	"sentence's audio on, paced by the orchestrator, and the turn ends when\n"
	"the orchestrator says it has played (a real LLM's gap between turns is\n"
	"its first sentence, not its whole reply).\n\n"
	"Output: --out-text, one line a turn, \"[seconds] name: text\" (# lines\n"
	"are the header and footer); --out-wav, stereo, the first bot left, the\n"
	"second right, each reply where it played. Stops after --turns replies or\n"
	"on Ctrl-C (the reply playing is cut there; both files are complete; a\n"
	"second Ctrl-C quits at once).\n\n"
	"Needs: voxline-orchestrator and its stages (make run) and a NATS server\n"
	"(nats-server, or nats-server -js).\n"
	"Exit status: 0 done or stopped by Ctrl-C, 1 failed during the run,\n"
	"2 bad options, 3 the orchestrator or NATS cannot be reached.\n\n"
	"    voxline-banter --turns 6 --first-line \"Tea or coffee?\"\n";

int main(int argc, char **argv)
{
	struct config cfg;
	const vx_flag flags[] = {
		{ "orchestrator", VX_FLAG_STR, &cfg.orchestrator, "http://127.0.0.1:3000", 0, 0, "voxline-orchestrator's URL" },
		{ "nats", VX_FLAG_STR, &cfg.nats, "nats://127.0.0.1:4222", 0, 0, "NATS server URL" },
		{ "subject-prefix", VX_FLAG_STR, &cfg.prefix, "voxline.banter", 0, 0, "bot <name> listens on <prefix>.<name>" },
		{ "first-line", VX_FLAG_STR, &cfg.first_line, "Hello! What shall we talk about today?", 0, 0, "the opening line, sent to the first bot" },
		{ "turns", VX_FLAG_INT, &cfg.turns, "6", 1, 1000, "stop after this many replies" },
		{ "out-text", VX_FLAG_STR, &cfg.out_text, "banter.txt", 0, 0, "the exchange as text" },
		{ "out-wav", VX_FLAG_STR, &cfg.out_wav, "banter.wav", 0, 0, "the exchange as a stereo WAV" },
		{ "personas", VX_FLAG_STR, &cfg.personas, NULL, 0, 0, "JSON file: [{\"name\",\"voice\",\"system_prompt\"} x 2] (overrides --a-*, --b-*)" },
		{ "a-name", VX_FLAG_STR, &cfg.name[0], "alice", 0, 0, "first persona's name ([A-Za-z0-9_-])" },
		{ "a-voice", VX_FLAG_STR, &cfg.voice[0], "slt", 0, 0, "first persona's TTS voice" },
		{ "a-prompt", VX_FLAG_STR, &cfg.prompt[0], "You are Alice, cheerful and curious. Answer in one short sentence and ask something back.", 0, 0, "first persona's system prompt" },
		{ "b-name", VX_FLAG_STR, &cfg.name[1], "bob", 0, 0, "second persona's name" },
		{ "b-voice", VX_FLAG_STR, &cfg.voice[1], "awb", 0, 0, "second persona's TTS voice" },
		{ "b-prompt", VX_FLAG_STR, &cfg.prompt[1], "You are Bob, dry and sceptical. Answer in one short sentence.", 0, 0, "second persona's system prompt" },
		{ "model", VX_FLAG_STR, &cfg.model, NULL, 0, 0, "LLM model (default: the orchestrator's)" },
		{ "rate", VX_FLAG_INT, &cfg.rate, "16000", 8000, 48000, "sample rate of the replies and the WAV (Hz)" },
		{ "stream", VX_FLAG_BOOL, &cfg.stream, "false", 0, 0, "talk on /ws/chat: each reply plays from its first sentence on" },
		{ "wait-playback", VX_FLAG_BOOL, &cfg.wait_playback, "false", 0, 0, "wait for a playback-done event instead of the audio's duration" },
		{ "playback-timeout-s", VX_FLAG_DOUBLE, &cfg.playback_timeout_s, "10", 0, 3600, "--wait-playback: wait this long past the duration" },
		{ "timeout-s", VX_FLAG_DOUBLE, &cfg.timeout_s, "120", 1, 86400, "limit for one reply from the orchestrator" },
		{ "api-key", VX_FLAG_STR, &cfg.api_key, NULL, 0, 0, "the orchestrator's bearer key" },
		{ "quiet", VX_FLAG_BOOL, &cfg.quiet, "false", 0, 0, "do not print the lines on stdout" },
	};
	int r = vx_flags_parse(flags, sizeof(flags) / sizeof(flags[0]), "banter", argc, argv);
	if (r) {
		if (r > 0)
			fputs(HELP, stdout);
		return r > 0 ? EXIT_OK : EXIT_USAGE;
	}
	cJSON *personas = NULL;
	if (cfg.personas && load_personas(&cfg, &personas) < 0)
		return EXIT_USAGE;
	if (check_config(&cfg) < 0 || (cfg.stream && stream_url(&cfg) < 0)) {
		cJSON_Delete(personas);
		return EXIT_USAGE;
	}

	banter b = { .cfg = &cfg };
	pthread_mutex_init(&b.lock, NULL);
	atomic_init(&b.stop, false);
	g_stop = &b.stop;
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	bots_init(&b);
	banter_record_init(&b.rec, cfg.rate, BANTER_MAX_WAV_S);
	b.latency_ms = calloc((size_t)cfg.turns, sizeof(double));
	b.gap_ms = calloc((size_t)cfg.turns, sizeof(double));
	if (!b.latency_ms || !b.gap_ms) {
		fprintf(stderr, "voxline-banter: out of memory\n");
		r = -ENOMEM;
		goto out_destroy;
	}
	if (vx_curl_global_init() < 0) {
		fprintf(stderr, "voxline-banter: libcurl failed to start\n");
		r = -EIO;
		goto out_destroy;
	}
	if ((r = banter_orch_check(&b)) < 0 || (r = nats_setup(&b)) < 0)
		goto out_nats;
	if ((r = text_open(&b)) < 0)
		goto out_nats;
	if (cfg.stream && (r = vx_wsclient_new(&b.wc)) < 0) {
		banter_fail(&b, EXIT_FAIL, "websocket client: %s", strerror(-r));
		goto out_nats;
	}

	b.t0_ms = b.line_sent_ms = vx_now_ms();   /* the opening's clock starts now */
	for (int i = 0; i < 2 && r == 0; i++) {
		if ((r = -pthread_create(&b.bots[i].thread, NULL, bot_main, &b.bots[i])) == 0)
			b.bots[i].started = true;
		else
			banter_fail(&b, EXIT_FAIL, "cannot start a thread: %s", strerror(-r));
	}
	if (r == 0)
		r = send_line(&b, b.bots[0].subject, 1, "opening", cfg.first_line);
	while (!atomic_load(&b.stop))
		sleep_until(&b, vx_now_ms() + 1000);
	for (int i = 0; i < 2; i++)
		if (b.bots[i].started)
			pthread_join(b.bots[i].thread, NULL);
	vx_wsclient_free(b.wc);
	if (finish(&b) < 0 && !b.code)
		b.code = EXIT_FAIL;
out_nats:
	if (b.text)
		fclose(b.text);
	nats_teardown(&b);
	curl_global_cleanup();
out_destroy:
	free(b.latency_ms);
	free(b.gap_ms);
	banter_record_release(&b.rec);
	pthread_mutex_destroy(&b.lock);
	cJSON_Delete(personas);
	if (b.code)
		return b.code;
	return r < 0 ? EXIT_FAIL : EXIT_OK;
}
