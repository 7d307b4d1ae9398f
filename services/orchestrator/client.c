/*
 * client.c - voxline-client: talks to the orchestrator's /ws/chat like a
 * microphone and a speaker would.
 *
 * It sends {"type":"start",...}, waits for "ready", then streams a WAV file
 * (any rate/channels libsndfile reads, converted to --rate mono) as 20 ms
 * binary frames in real time (--speed N times faster, --fast unpaced),
 * followed by --silence-ms of silence so the server's VAD sees the end of
 * speech; with --text it sends {"type":"text","text":...} instead. Every
 * JSON event from the server is printed on stdout, one per line; binary
 * frames between audio_start and audio_end are the reply audio (in the
 * requested encoding and rate), written to --out as a WAV.
 *
 * A turn is done at its "metrics" event once no reply audio is open (the
 * server ends every turn, interrupted or not, with metrics; audio_end may
 * come before or after it). --turns N sends the input N times, each after
 * the previous turn is done. --barge-in-ms N sends the input again N ms
 * after the first audio_start, to interrupt the reply: that adds one turn,
 * and the run fails unless an "interrupted" event came.
 *
 * Errors are per turn: an "error" event during a turn (a stage down, a
 * stage timeout) is printed on stdout like every event and as one line on
 * stderr ("voxline-client: turn 2: llm unavailable: ..."), and the client
 * waits for that turn's "metrics" (the server ends a failed turn with it
 * too) before the next turn; without metrics within CLIENT_ERROR_WAIT_MS it
 * gives up. An error before "ready" (the start was refused) ends the run.
 *
 * --out is written only when reply audio came, through a temporary file
 * renamed into place: never an empty or half-written WAV.
 *
 * Last line on stdout: {"type":"client_summary",...} with client-side
 * timings (input end -> first reply audio byte, etc.), "turns_failed" and
 * "errors" ([{"turn":N,"stage":..,"code":..,"message":..}], one per error
 * event).
 * Exit status: 0 every turn done without an error event; 1 an error event
 * (in any turn, or refusing the start), connection failure or bad input;
 * 2 timeout (--timeout-s without progress); 3 barge-in not acknowledged;
 * 64 bad usage.
 */
#include "vx_audio.h"
#include "vx_buf.h"
#include "vx_curl.h"
#include "vx_flags.h"
#include "vx_time.h"
#include "vx_wsclient.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#define CLIENT_FRAME_MS 20                 /* audio per binary frame */
#define CLIENT_MAX_FILE_BYTES (512u << 20) /* input file size */
#define CLIENT_MAX_SECONDS 3600            /* input audio length */
#define CLIENT_MAX_REPLY_BYTES (256u << 20) /* reply audio kept for --out */
#define CLIENT_QUEUE_HIGH (1u << 20)       /* unsent bytes before --fast waits */
#define CLIENT_CLOSE_WAIT_MS 3000          /* for on_close after our close */
#define CLIENT_ERROR_WAIT_MS 5000          /* error event -> that turn's metrics */
#define CLIENT_MAX_ERRORS 100              /* kept for the summary */

enum exit_code {
	EXIT_OK = 0,
	EXIT_FAIL = 1,
	EXIT_TIMEOUT = 2,
	EXIT_NO_BARGE_IN = 3,
	EXIT_USAGE = 64,
};

struct config {
	const char *url, *file, *encoding, *conversation, *voice, *system_prompt;
	const char *out, *text, *api_key;
	int rate, silence_ms, barge_in_ms, turns;
	double speed, timeout_s;
	bool fast, quiet;
};

/* Everything the service thread and the main thread share; lock guards it. */
struct session {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	const struct config *cfg;
	vx_encoding enc;
	bool open, closed, ready, failed;
	int close_err;
	int turns_done;        /* metrics seen with no reply audio open */
	bool metrics_pending;  /* metrics came while reply audio was open */
	bool audio_open;       /* between audio_start and audio_end */
	int audio_starts, interrupted;
	int64_t first_audio_start_ms; /* monotonic; 0 = none yet */
	int64_t input_end_ms;  /* last speech frame (or text) sent */
	int64_t first_byte_ms; /* first reply audio byte after input_end_ms */
	vx_buf reply;          /* reply audio, host-order int16 */
	size_t reply_frames_dropped;
	char conversation_id[128];
	bool turn_error;       /* an error event in the turn in progress */
	int64_t error_ms;      /* monotonic time of an error awaiting metrics; 0 = none */
	int turns_failed;      /* turns ended (metrics) after an error event */
	int errors;            /* error events */
	vx_buf errors_json;    /* `{"turn":..},{..}` for the summary */
};

/* Whole monotonic milliseconds: every time in this file is one. */
static int64_t mono_ms(void)
{
	return (int64_t)vx_now_ms();
}

static void print_line(const struct session *s, const char *text, size_t len,
		       bool always)
{
	if (s->cfg->quiet && !always)
		return;
	for (size_t i = 0; i < len; i++)
		putchar(text[i] == '\n' || text[i] == '\r' ? ' ' : text[i]);
	putchar('\n');
	fflush(stdout);
}

static void on_open(vx_wsclient_conn *c, void *user)
{
	struct session *s = user;
	(void)c;
	pthread_mutex_lock(&s->lock);
	s->open = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/* An error event: before "ready" it ends the run; in a turn it marks the
 * turn failed and the turn goes on to its metrics. Lock held. */
static void on_error(struct session *s, const cJSON *ev)
{
	/* /ws/chat: {"stage","code","message"}; nested {"error":{..}} too. */
	const cJSON *e = cJSON_GetObjectItem(ev, "error");
	if (!cJSON_IsObject(e))
		e = ev;
	const char *stage = cJSON_GetStringValue(cJSON_GetObjectItem(e, "stage"));
	const char *code = cJSON_GetStringValue(cJSON_GetObjectItem(e, "code"));
	const char *msg = cJSON_GetStringValue(cJSON_GetObjectItem(e, "message"));
	stage = stage ? stage : "orchestrator";
	code = code ? code : "error";
	msg = msg ? msg : "";
	int turn = s->turns_done + 1;
	if (!s->ready) {
		s->failed = true;
		fprintf(stderr, "voxline-client: start refused: %s %s: %s\n", stage, code, msg);
	} else {
		s->turn_error = true;
		s->error_ms = mono_ms();
		fprintf(stderr, "voxline-client: turn %d: %s %s: %s\n", turn, stage, code, msg);
	}
	if (s->errors++ < CLIENT_MAX_ERRORS) {
		vx_buf *b = &s->errors_json;
		vx_buf_printf(b, "%s{\"turn\":%d,\"stage\":", b->len ? "," : "",
			      s->ready ? turn : 0);
		vx_buf_json_str(b, stage, strlen(stage));
		vx_buf_puts(b, ",\"code\":");
		vx_buf_json_str(b, code, strlen(code));
		vx_buf_puts(b, ",\"message\":");
		vx_buf_json_str(b, msg, strlen(msg));
		vx_buf_puts(b, "}");
	}
}

/* Updates the turn state for one event type; lock held. */
static void on_event(struct session *s, const char *type, const cJSON *ev)
{
	if (!strcmp(type, "ready")) {
		const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(ev, "conversation_id"));
		if (id)
			snprintf(s->conversation_id, sizeof(s->conversation_id), "%s", id);
		s->ready = true;
	} else if (!strcmp(type, "audio_start")) {
		s->audio_open = true;
		if (s->audio_starts++ == 0)
			s->first_audio_start_ms = mono_ms();
	} else if (!strcmp(type, "audio_end")) {
		s->audio_open = false;
		if (s->metrics_pending) {
			s->metrics_pending = false;
			s->turns_done++;
		}
	} else if (!strcmp(type, "interrupted")) {
		s->interrupted++;
		s->audio_open = false;
	} else if (!strcmp(type, "metrics")) {
		if (s->audio_open)
			s->metrics_pending = true;
		else
			s->turns_done++;
		if (s->turn_error)
			s->turns_failed++;
		s->turn_error = false;
		s->error_ms = 0;
	} else if (!strcmp(type, "error")) {
		on_error(s, ev);
	}
}

static void on_text(vx_wsclient_conn *c, void *user, const char *text, size_t len)
{
	struct session *s = user;
	(void)c;
	cJSON *ev = cJSON_ParseWithLength(text, len);
	const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(ev, "type"));
	bool is_error = !type || !strcmp(type, "error");
	print_line(s, text, len, is_error);
	pthread_mutex_lock(&s->lock);
	if (type)
		on_event(s, type, ev);
	else
		s->failed = true; /* not a JSON event: the server is broken */
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	cJSON_Delete(ev);
}

/* Appends reply audio in the session's encoding as int16 samples. */
static void on_binary(vx_wsclient_conn *c, void *user, const void *data, size_t len)
{
	struct session *s = user;
	const uint8_t *b = data;
	(void)c;
	pthread_mutex_lock(&s->lock);
	if (s->first_byte_ms == 0 && s->input_end_ms && len)
		s->first_byte_ms = mono_ms();
	size_t n = s->enc == VX_ENC_PCM16 ? len / 2 : len;
	if (s->reply.len + n * 2 > CLIENT_MAX_REPLY_BYTES ||
	    vx_buf_reserve(&s->reply, n * 2) < 0) {
		s->reply_frames_dropped++;
	} else {
		int16_t *out = (int16_t *)(void *)(s->reply.data + s->reply.len);
		for (size_t i = 0; i < n; i++) {
			if (s->enc == VX_ENC_MULAW)
				out[i] = vx_g711_ulaw_decode(b[i]);
			else if (s->enc == VX_ENC_ALAW)
				out[i] = vx_g711_alaw_decode(b[i]);
			else
				out[i] = (int16_t)(b[2 * i] | b[2 * i + 1] << 8);
		}
		s->reply.len += n * 2;
	}
	pthread_mutex_unlock(&s->lock);
}

static void on_close(vx_wsclient_conn *c, void *user, int err)
{
	struct session *s = user;
	(void)c;
	pthread_mutex_lock(&s->lock);
	s->closed = true;
	s->close_err = err;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/* Reads and converts the input file to cfg->rate mono. */
static int load_input(const struct config *cfg, vx_pcm *ret)
{
	FILE *f = fopen(cfg->file, "rb");
	if (!f)
		return -errno;
	vx_buf data = {0};
	char chunk[65536];
	size_t n;
	int r = 0;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (data.len + n > CLIENT_MAX_FILE_BYTES) {
			r = -E2BIG;
			break;
		}
		if ((r = vx_buf_append(&data, chunk, n)) < 0)
			break;
	}
	if (r == 0 && ferror(f))
		r = -EIO;
	fclose(f);
	if (r == 0)
		r = vx_audio_decode(data.data, data.len, NULL,
				    (size_t)CLIENT_MAX_SECONDS * VX_AUDIO_MAX_RATE, ret);
	vx_buf_release(&data);
	if (r == 0 && (r = vx_audio_convert(ret, cfg->rate, 1)) < 0)
		vx_pcm_release(ret);
	return r;
}

/* Encodes n mono samples (NULL: silence) as one wire frame into out. */
static void encode_frame(vx_encoding enc, const int16_t *pcm, size_t n, vx_buf *out)
{
	vx_buf_reset(out);
	vx_buf_reserve(out, n * 2);
	uint8_t *o = (uint8_t *)out->data;
	for (size_t i = 0; i < n; i++) {
		int16_t v = pcm ? pcm[i] : 0;
		if (enc == VX_ENC_MULAW) {
			o[i] = vx_g711_ulaw_encode(v);
		} else if (enc == VX_ENC_ALAW) {
			o[i] = vx_g711_alaw_encode(v);
		} else {
			o[2 * i] = (uint8_t)(v & 0xff);
			o[2 * i + 1] = (uint8_t)((uint16_t)v >> 8);
		}
	}
	out->len = enc == VX_ENC_PCM16 ? n * 2 : n;
}

static void sleep_until_ms(int64_t t)
{
	int64_t now = mono_ms();
	if (t > now) {
		struct timespec d = { (time_t)((t - now) / 1000),
				      (long)((t - now) % 1000) * 1000000 };
		nanosleep(&d, NULL);
	}
}

/* Sends one message, waiting while the queue is full. */
static int send_msg(vx_wsclient_conn *c, const void *data, size_t len, bool binary)
{
	for (;;) {
		while (vx_wsclient_queued(c) > CLIENT_QUEUE_HIGH)
			sleep_until_ms(mono_ms() + 1);
		int r = binary ? vx_wsclient_send_binary(c, data, len) :
				 vx_wsclient_send_text(c, data, len);
		if (r != -ENOBUFS)
			return r;
		sleep_until_ms(mono_ms() + 1);
	}
}

/* Streams the whole input (speech, then silence) paced by --speed. */
static int send_input(struct session *s, vx_wsclient_conn *c, const vx_pcm *pcm)
{
	const struct config *cfg = s->cfg;
	int r;
	if (cfg->text) {
		vx_buf m = {0};
		vx_buf_puts(&m, "{\"type\":\"text\",\"text\":");
		vx_buf_json_str(&m, cfg->text, strlen(cfg->text));
		r = vx_buf_puts(&m, "}");
		if (r == 0)
			r = send_msg(c, m.data, m.len, false);
		vx_buf_release(&m);
		pthread_mutex_lock(&s->lock);
		s->input_end_ms = mono_ms();
		s->first_byte_ms = 0;
		pthread_mutex_unlock(&s->lock);
		return r;
	}
	size_t per = (size_t)cfg->rate * CLIENT_FRAME_MS / 1000;
	size_t speech = (pcm->frames + per - 1) / per;
	size_t silence = (size_t)cfg->silence_ms / CLIENT_FRAME_MS;
	double period = cfg->fast ? 0 : CLIENT_FRAME_MS / cfg->speed;
	int16_t *pad = calloc(per, sizeof(*pad));
	vx_buf frame = {0};
	int64_t t0 = mono_ms();
	r = pad ? 0 : -ENOMEM;
	for (size_t i = 0; i < speech + silence && r == 0; i++) {
		const int16_t *src = NULL;
		if (i < speech) {
			size_t off = i * per, n = pcm->frames - off < per ? pcm->frames - off : per;
			memcpy(pad, pcm->data + off, n * sizeof(*pad));
			memset(pad + n, 0, (per - n) * sizeof(*pad));
			src = pad;
		}
		sleep_until_ms(t0 + (int64_t)(i * period));
		encode_frame(s->enc, src, per, &frame);
		r = frame.data ? send_msg(c, frame.data, frame.len, true) : -ENOMEM;
		if (i + 1 == speech) {
			pthread_mutex_lock(&s->lock);
			s->input_end_ms = mono_ms();
			s->first_byte_ms = 0;
			pthread_mutex_unlock(&s->lock);
		}
	}
	vx_buf_release(&frame);
	free(pad);
	return r;
}

static int send_start(const struct session *s, vx_wsclient_conn *c)
{
	const struct config *cfg = s->cfg;
	vx_buf m = {0};
	int r = vx_buf_printf(&m, "{\"type\":\"start\",\"sample_rate\":%d,\"encoding\":\"%s\"",
			      cfg->rate, vx_encoding_name(s->enc));
	const char *keys[] = { "conversation_id", "voice", "system_prompt" };
	const char *vals[] = { cfg->conversation, cfg->voice, cfg->system_prompt };
	for (int i = 0; i < 3 && r == 0; i++) {
		if (!vals[i])
			continue;
		r = vx_buf_printf(&m, ",\"%s\":", keys[i]);
		if (r == 0)
			r = vx_buf_json_str(&m, vals[i], strlen(vals[i]));
	}
	if (r == 0)
		r = vx_buf_puts(&m, "}");
	if (r == 0)
		r = send_msg(c, m.data, m.len, false);
	vx_buf_release(&m);
	return r;
}

/* Waits (lock held) until pred or the deadline; false on timeout. */
static bool wait_until(struct session *s, int64_t deadline_ms)
{
	int64_t now = mono_ms();
	if (now >= deadline_ms)
		return false;
	vx_cond_wait_ms(&s->cond, &s->lock, deadline_ms - now);
	return true;
}

/*
 * The conversation: start, ready, then per turn send the input and wait
 * for the turn to end; a barge-in sends the input again mid-reply.
 */
static int converse(struct session *s, vx_wsclient_conn *c, const vx_pcm *pcm)
{
	const struct config *cfg = s->cfg;
	int64_t timeout = (int64_t)(cfg->timeout_s * 1000);
	int target = cfg->turns + (cfg->barge_in_ms >= 0 ? 1 : 0);
	int sent = 0;
	bool barged = false;
	int code = EXIT_OK;

	if (send_start(s, c) < 0)
		return EXIT_FAIL;
	pthread_mutex_lock(&s->lock);
	int64_t deadline = mono_ms() + timeout;
	while (!s->ready && !s->failed && !s->closed)
		if (!wait_until(s, deadline))
			break;
	if (!s->ready)
		code = s->failed || s->closed ? EXIT_FAIL : EXIT_TIMEOUT;
	while (code == EXIT_OK && s->turns_done < target) {
		if (s->failed || s->closed) {
			code = EXIT_FAIL;
			break;
		}
		bool send_now = sent == s->turns_done && sent < target;
		if (!send_now && cfg->barge_in_ms >= 0 && !barged && s->audio_starts &&
		    mono_ms() >= s->first_audio_start_ms + cfg->barge_in_ms) {
			send_now = barged = true;
		}
		if (send_now) {
			sent++;
			pthread_mutex_unlock(&s->lock);
			int r = send_input(s, c, pcm);
			pthread_mutex_lock(&s->lock);
			if (r < 0) {
				fprintf(stderr, "voxline-client: send: %s\n", strerror(-r));
				code = EXIT_FAIL;
			}
			deadline = mono_ms() + timeout;
			continue;
		}
		if (s->error_ms && mono_ms() >= s->error_ms + CLIENT_ERROR_WAIT_MS) {
			fprintf(stderr, "voxline-client: turn %d: no \"metrics\" within "
				"%d ms of the error; giving up\n", s->turns_done + 1,
				CLIENT_ERROR_WAIT_MS);
			code = EXIT_FAIL;
			break;
		}
		int64_t until = deadline;
		if (s->error_ms && s->error_ms + CLIENT_ERROR_WAIT_MS < until)
			until = s->error_ms + CLIENT_ERROR_WAIT_MS;
		if (cfg->barge_in_ms >= 0 && !barged && s->audio_starts &&
		    s->first_audio_start_ms + cfg->barge_in_ms < until)
			until = s->first_audio_start_ms + cfg->barge_in_ms;
		int before = s->turns_done;
		if (!wait_until(s, until) && until == deadline && mono_ms() >= deadline) {
			code = EXIT_TIMEOUT;
			break;
		}
		if (s->turns_done != before)
			deadline = mono_ms() + timeout;
	}
	if (code == EXIT_OK && (s->failed || s->errors))
		code = EXIT_FAIL;   /* a turn (or the start) reported an error */
	if (code == EXIT_OK && cfg->barge_in_ms >= 0 && !s->interrupted)
		code = EXIT_NO_BARGE_IN;
	pthread_mutex_unlock(&s->lock);
	return code;
}

/* Writes the reply audio to cfg->out through cfg->out + ".part" (removed
 * on failure); -ENODATA, and no file, when no audio came. */
static int write_reply(const struct config *cfg, struct session *s)
{
	if (s->reply.len < 2)
		return -ENODATA;
	vx_buf wav = {0}, tmp = {0};
	int r = vx_audio_encode((const int16_t *)(void *)s->reply.data, s->reply.len / 2,
				cfg->rate, 1, VX_FMT_WAV, &wav);
	if (r == 0)
		r = vx_buf_printf(&tmp, "%s.part", cfg->out);
	if (r == 0) {
		FILE *f = fopen(tmp.data, "wb");
		if (!f) {
			r = -errno;
		} else {
			bool ok = fwrite(wav.data, 1, wav.len, f) == wav.len;
			if (fclose(f) != 0 || !ok)
				r = -EIO;
			if (r == 0 && rename(tmp.data, cfg->out) < 0)
				r = -errno;
			if (r < 0)
				unlink(tmp.data);
		}
	}
	vx_buf_release(&tmp);
	vx_buf_release(&wav);
	return r;
}

static void print_summary(const struct session *s, int code, int64_t t_start)
{
	vx_buf line = {0};
	long long first = s->first_byte_ms && s->input_end_ms ?
			  (long long)(s->first_byte_ms - s->input_end_ms) : -1;
	vx_buf_printf(&line, "{\"type\":\"client_summary\",\"exit\":%d,"
		      "\"conversation_id\":", code);
	vx_buf_json_str(&line, s->conversation_id, strlen(s->conversation_id));
	vx_buf_printf(&line, ",\"turns\":%d,\"turns_failed\":%d,\"interrupted\":%d,"
		      "\"reply_audio_ms\":%lld,\"last_input_end_to_first_audio_ms\":%lld,"
		      "\"elapsed_ms\":%lld,\"errors\":[%s]}",
		      s->turns_done, s->turns_failed, s->interrupted,
		      (long long)(s->reply.len / 2 * 1000 / (size_t)s->cfg->rate), first,
		      (long long)(mono_ms() - t_start),
		      s->errors_json.data ? s->errors_json.data : "");
	if (line.data)
		print_line(s, line.data, line.len, true);
	vx_buf_release(&line);
}

int main(int argc, char **argv)
{
	struct config cfg;
	const vx_flag flags[] = {
		{ "url", VX_FLAG_STR, &cfg.url, "ws://127.0.0.1:3000/ws/chat", 0, 0, "orchestrator /ws/chat URL" },
		{ "file", VX_FLAG_STR, &cfg.file, NULL, 0, 0, "input audio (WAV or anything libsndfile reads)" },
		{ "text", VX_FLAG_STR, &cfg.text, NULL, 0, 0, "send this text instead of audio (skips STT)" },
		{ "rate", VX_FLAG_INT, &cfg.rate, "16000", 8000, 48000, "sample rate sent and asked for (Hz)" },
		{ "encoding", VX_FLAG_STR, &cfg.encoding, "pcm16", 0, 0, "pcm16 | mulaw | alaw" },
		{ "conversation", VX_FLAG_STR, &cfg.conversation, NULL, 0, 0, "conversation id to continue" },
		{ "voice", VX_FLAG_STR, &cfg.voice, NULL, 0, 0, "TTS voice" },
		{ "api-key", VX_FLAG_STR, &cfg.api_key, NULL, 0, 0, "the orchestrator's bearer key (its --api-key)" },
		{ "system-prompt", VX_FLAG_STR, &cfg.system_prompt, NULL, 0, 0, "system prompt" },
		{ "out", VX_FLAG_STR, &cfg.out, NULL, 0, 0, "write the reply audio to this WAV" },
		{ "speed", VX_FLAG_DOUBLE, &cfg.speed, "1", 0.01, 1000, "stream N times faster than real time" },
		{ "fast", VX_FLAG_BOOL, &cfg.fast, "false", 0, 0, "stream as fast as possible" },
		{ "silence-ms", VX_FLAG_INT, &cfg.silence_ms, "1000", 0, 600000, "silence appended after the file (ms)" },
		{ "barge-in-ms", VX_FLAG_INT, &cfg.barge_in_ms, "-1", -1, 600000, "send the input again N ms after the first audio_start (-1: off)" },
		{ "turns", VX_FLAG_INT, &cfg.turns, "1", 1, 1000, "turns to run (the input is sent once per turn)" },
		{ "timeout-s", VX_FLAG_DOUBLE, &cfg.timeout_s, "60", 0.1, 86400, "give up after this long without a turn ending" },
		{ "quiet", VX_FLAG_BOOL, &cfg.quiet, "false", 0, 0, "print only errors and the summary" },
	};
	int r = vx_flags_parse(flags, sizeof(flags) / sizeof(flags[0]), "client", argc, argv);
	if (r)
		return r > 0 ? EXIT_OK : EXIT_USAGE;

	struct session s = { .cfg = &cfg, .conversation_id = "" };
	if (vx_encoding_from_name(cfg.encoding, &s.enc) < 0 || s.enc == VX_ENC_AUTO) {
		fprintf(stderr, "voxline-client: --encoding must be pcm16, mulaw or alaw\n");
		return EXIT_USAGE;
	}
	if (!cfg.file && !cfg.text) {
		fprintf(stderr, "voxline-client: --file or --text is needed (see --help)\n");
		return EXIT_USAGE;
	}
	vx_pcm pcm = {0};
	if (!cfg.text && (r = load_input(&cfg, &pcm)) < 0) {
		fprintf(stderr, "voxline-client: %s: %s\n", cfg.file, strerror(-r));
		return EXIT_FAIL;
	}

	int code = EXIT_FAIL;
	int64_t t_start = mono_ms();
	pthread_mutex_init(&s.lock, NULL);
	pthread_cond_init(&s.cond, NULL);
	vx_wsclient *wc = NULL;
	vx_wsclient_conn *c = NULL;
	vx_wsclient_callbacks cb = { .on_open = on_open, .on_text = on_text,
				     .on_binary = on_binary, .on_close = on_close };
	if ((r = vx_wsclient_new(&wc)) < 0) {
		fprintf(stderr, "voxline-client: websocket client: %s\n", strerror(-r));
		goto out_release_pcm;
	}
	char auth[VX_CURL_API_KEY_MAX + 32] = "";
	if (cfg.api_key && *cfg.api_key)
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n",
			 cfg.api_key);
	if ((r = vx_wsclient_connect(wc, cfg.url, auth, &cb, &s, &c)) < 0) {
		fprintf(stderr, "voxline-client: %s: %s\n", cfg.url, strerror(-r));
		goto out_free_client;
	}
	code = converse(&s, c, &pcm);

	vx_wsclient_close(c);
	pthread_mutex_lock(&s.lock);
	int64_t close_deadline = mono_ms() + CLIENT_CLOSE_WAIT_MS;
	while (!s.closed && wait_until(&s, close_deadline))
		;
	if (code == EXIT_FAIL && s.closed && s.close_err && !s.failed)
		fprintf(stderr, "voxline-client: %s: connection: %s\n", cfg.url,
			strerror(-s.close_err));
	if (code == EXIT_TIMEOUT)
		fprintf(stderr, "voxline-client: timed out after %g s\n", cfg.timeout_s);
	if (code == EXIT_NO_BARGE_IN)
		fprintf(stderr, "voxline-client: barge-in sent but no \"interrupted\" event\n");
	pthread_mutex_unlock(&s.lock);
	vx_wsclient_unref(c);
	vx_wsclient_free(wc); /* joins the service thread: s is ours again */
	wc = NULL;
	if (cfg.out && (r = write_reply(&cfg, &s)) == -ENODATA) {
		fprintf(stderr, "voxline-client: no reply audio came; %s not written\n",
			cfg.out);
	} else if (cfg.out && r < 0) {
		fprintf(stderr, "voxline-client: %s: %s\n", cfg.out, strerror(-r));
		if (code == EXIT_OK)
			code = EXIT_FAIL;
	}
	print_summary(&s, code, t_start);

out_free_client:
	vx_wsclient_free(wc);
out_release_pcm:
	vx_buf_release(&s.reply);
	vx_buf_release(&s.errors_json);
	pthread_cond_destroy(&s.cond);
	pthread_mutex_destroy(&s.lock);
	vx_pcm_release(&pcm);
	return code;
}
