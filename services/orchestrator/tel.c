/*
 * tel.c - Twilio and Telnyx media streams over the conversation: the
 * socket protocol in, the paced media/mark/clear out (see tel.h).
 */
#include "tel.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conversation.h"
#include "vx_audio.h"
#include "vx_json.h"
#include "vx_log.h"
#include "vx_time.h"
#include "vx_ws.h"

#define TEL_RATE 8000
#define TEL_FRAME_BYTES (TEL_RATE / 1000 * TEL_FRAME_MS)   /* G.711: 1 byte a sample */
#define TEL_SID_MAX 128

enum tel_provider { TEL_TWILIO, TEL_TELNYX };

/* A mark to send once the stream has sent `pos` bytes of reply audio. */
typedef struct tel_mark {
	uint64_t pos;          /* stream position (bytes queued since the call began) */
	unsigned reply;        /* which reply */
	uint64_t bytes;        /* of that reply up to here */
} tel_mark;

typedef struct tel_call tel_call;
struct tel_call {
	orch_service *svc;
	enum tel_provider prov;
	vx_wsconn *c;
	conversation *cv;
	tel_call *next, *prev;  /* the pacer's list (once started) */
	pthread_mutex_t lock;   /* guards everything below */
	bool started, stopped, listed;
	char stream_sid[TEL_SID_MAX];
	uint8_t fill;           /* G.711 silence: pads a reply's last frame */
	/* out: reply audio waiting for its frame */
	vx_buf q;               /* q.data[q_off..q.len) not yet sent */
	size_t q_off;
	uint64_t pos_queued, pos_sent; /* stream bytes queued / sent in all */
	bool flush;             /* the reply's audio ended: pad its last frame */
	bool pacing;            /* frames are due from next_due on */
	int64_t next_due;       /* us, monotonic */
	unsigned reply;         /* the reply being sent (marks carry it) */
	uint64_t reply_bytes;   /* of it queued so far */
	tel_mark *marks;        /* marks[0..n_marks): in pos order */
	size_t n_marks, cap_marks;
	vx_buf out;             /* scratch: one outgoing message */
};

struct tel_pacer {
	pthread_mutex_t lock;   /* guards calls */
	tel_call *calls;
	pthread_t thread;
	atomic_bool stop;
};

static int64_t now_us(void)
{
	return (int64_t)(vx_now() * 1e6);
}

/* ---- outgoing messages (call lock held) ---- */

/* {"event":<ev>[,"streamSid":..]  - the rest appended by the caller. */
static void msg_begin(tel_call *t, const char *ev)
{
	vx_buf_reset(&t->out);
	vx_buf_printf(&t->out, "{\"event\":\"%s\"", ev);
	if (t->prov == TEL_TWILIO) {
		vx_buf_puts(&t->out, ",\"streamSid\":");
		vx_buf_json_str(&t->out, t->stream_sid, strlen(t->stream_sid));
	}
}

static void msg_send(tel_call *t)
{
	if (t->out.data)
		vx_ws_send_text(t->c, t->out.data, t->out.len);
}

static void send_media(tel_call *t, const uint8_t *frame, size_t n)
{
	msg_begin(t, "media");
	vx_buf_puts(&t->out, ",\"media\":{\"payload\":\"");
	vx_base64_encode(frame, n, &t->out);
	vx_buf_puts(&t->out, "\"}}");
	msg_send(t);
}

static void send_mark(tel_call *t, const tel_mark *m)
{
	msg_begin(t, "mark");
	vx_buf_printf(&t->out, ",\"mark\":{\"name\":\"r%u:%llu\"}}", m->reply,
		      (unsigned long long)m->bytes);
	msg_send(t);
}

static void send_clear(tel_call *t)
{
	msg_begin(t, "clear");
	vx_buf_puts(&t->out, "}");
	msg_send(t);
}

/* ---- the pacer: one frame per call every TEL_FRAME_MS ---- */

/* Sends the frames due by now and the marks they complete. */
static void pace_call(tel_call *t, int64_t now)
{
	size_t avail = t->q.len - t->q_off;
	if (!avail) {
		t->pacing = false;
		t->flush = false;
		return;
	}
	if (!t->pacing) {
		t->pacing = true;
		t->next_due = now;
	}
	if (t->next_due < now - TEL_CATCH_UP_FRAMES * TEL_FRAME_MS * 1000)
		t->next_due = now - TEL_CATCH_UP_FRAMES * TEL_FRAME_MS * 1000;
	while (t->next_due <= now && (avail = t->q.len - t->q_off) > 0) {
		uint8_t frame[TEL_FRAME_BYTES];
		size_t n = avail < TEL_FRAME_BYTES ? avail : TEL_FRAME_BYTES;
		if (n < TEL_FRAME_BYTES && !t->flush)
			break;   /* more of this reply is coming */
		memcpy(frame, t->q.data + t->q_off, n);
		memset(frame + n, t->fill, TEL_FRAME_BYTES - n);
		send_media(t, frame, TEL_FRAME_BYTES);
		t->q_off += n;
		t->pos_sent += n;
		t->next_due += TEL_FRAME_MS * 1000;
		size_t k = 0;
		while (k < t->n_marks && t->marks[k].pos <= t->pos_sent)
			send_mark(t, &t->marks[k++]);
		if (k) {
			memmove(t->marks, t->marks + k, (t->n_marks - k) * sizeof(*t->marks));
			t->n_marks -= k;
		}
	}
	if (t->q_off == t->q.len) {
		vx_buf_reset(&t->q);
		t->q_off = 0;
	} else if (t->q_off > (1u << 16)) {
		memmove(t->q.data, t->q.data + t->q_off, t->q.len - t->q_off);
		t->q.len -= t->q_off;
		t->q_off = 0;
	}
}

static void *pacer_main(void *arg)
{
	orch_service *svc = arg;
	struct tel_pacer *p = svc->tel;
	struct timespec next;
	clock_gettime(CLOCK_MONOTONIC, &next);
	while (!atomic_load(&p->stop)) {
		next.tv_nsec += TEL_FRAME_MS * 1000000L;
		if (next.tv_nsec >= 1000000000L) {
			next.tv_nsec -= 1000000000L;
			next.tv_sec++;
		}
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
			;
		int64_t now = now_us();
		pthread_mutex_lock(&p->lock);
		for (tel_call *t = p->calls; t; t = t->next) {
			pthread_mutex_lock(&t->lock);
			pace_call(t, now);
			pthread_mutex_unlock(&t->lock);
		}
		pthread_mutex_unlock(&p->lock);
		/* A pacer that fell far behind (a stalled machine) starts afresh. */
		struct timespec cur;
		clock_gettime(CLOCK_MONOTONIC, &cur);
		if (cur.tv_sec > next.tv_sec + 1)
			next = cur;
	}
	return NULL;
}

int tel_start(orch_service *svc)
{
	struct tel_pacer *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	atomic_init(&p->stop, false);
	svc->tel = p;
	int r = pthread_create(&p->thread, NULL, pacer_main, svc);
	if (r) {
		pthread_mutex_destroy(&p->lock);
		free(p);
		svc->tel = NULL;
		return -r;
	}
	return 0;
}

void tel_stop(orch_service *svc)
{
	struct tel_pacer *p = svc->tel;
	if (!p)
		return;
	atomic_store(&p->stop, true);
	pthread_join(p->thread, NULL);
	pthread_mutex_destroy(&p->lock);
	free(p);
	svc->tel = NULL;
}

static void pacer_add(tel_call *t)
{
	struct tel_pacer *p = t->svc->tel;
	pthread_mutex_lock(&p->lock);
	t->next = p->calls;
	if (p->calls)
		p->calls->prev = t;
	p->calls = t;
	t->listed = true;
	pthread_mutex_unlock(&p->lock);
}

static void pacer_remove(tel_call *t)
{
	struct tel_pacer *p = t->svc->tel;
	pthread_mutex_lock(&p->lock);
	if (t->listed) {
		if (t->prev)
			t->prev->next = t->next;
		else
			p->calls = t->next;
		if (t->next)
			t->next->prev = t->prev;
		t->listed = false;
	}
	pthread_mutex_unlock(&p->lock);
}

/* ---- the conversation's sink (its lock held) ---- */

static void sink_event(void *user, const char *type, const char *json, size_t len)
{
	tel_call *t = user;
	vx_log_debug(vx_ws_request_id(t->c), "call %s: %.*s", t->stream_sid,
		     (int)(len < 300 ? len : 300), json);
	if (!strcmp(type, "audio_start")) {
		pthread_mutex_lock(&t->lock);
		t->reply++;
		t->reply_bytes = 0;
		t->flush = false;
		pthread_mutex_unlock(&t->lock);
	} else if (!strcmp(type, "audio_end")) {
		pthread_mutex_lock(&t->lock);
		t->flush = true;
		pthread_mutex_unlock(&t->lock);
	} else if (!strcmp(type, "interrupted")) {
		/* Barge-in: what is queued is never played; the caller's side
		 * drops what it buffered. */
		pthread_mutex_lock(&t->lock);
		vx_buf_reset(&t->q);
		t->q_off = 0;
		t->pos_queued = t->pos_sent;
		t->n_marks = 0;
		t->pacing = t->flush = false;
		t->reply++;   /* late echoes of the cut reply's marks are ignored */
		send_clear(t);
		pthread_mutex_unlock(&t->lock);
		vx_log_info(vx_ws_request_id(t->c), "call %s: barge-in, clear sent", t->stream_sid);
	} else if (!strcmp(type, "error")) {
		vx_log_warn(vx_ws_request_id(t->c), "call %s: %.*s", t->stream_sid, (int)len, json);
	}
}

static void sink_audio(void *user, const void *data, size_t len)
{
	tel_call *t = user;
	pthread_mutex_lock(&t->lock);
	size_t waiting = t->q.len - t->q_off;
	if (waiting + len > (size_t)TEL_MAX_QUEUE_S * TEL_RATE || t->n_marks == TEL_MAX_MARKS) {
		pthread_mutex_unlock(&t->lock);
		vx_log_warn(vx_ws_request_id(t->c), "call %s: reply audio queue full, dropped",
			    t->stream_sid);
		return;
	}
	if (t->n_marks == t->cap_marks) {
		size_t cap = t->cap_marks ? t->cap_marks * 2 : 16;
		tel_mark *m = realloc(t->marks, cap * sizeof(*m));
		if (!m) {
			pthread_mutex_unlock(&t->lock);
			return;
		}
		t->marks = m;
		t->cap_marks = cap;
	}
	vx_buf_append(&t->q, data, len);
	t->pos_queued += len;
	t->reply_bytes += len;
	t->marks[t->n_marks++] = (tel_mark){ t->pos_queued, t->reply, t->reply_bytes };
	pthread_mutex_unlock(&t->lock);
}

static const conv_sink tel_sink = { sink_event, sink_audio };

/* ---- the socket ---- */

static int call_open(vx_wsconn *c, orch_service *svc, enum tel_provider prov,
		     void **ret_state)
{
	if (!orch_call_enter(svc)) {
		vx_log_warn(vx_ws_request_id(c), "%s call refused: at capacity (--max-calls %d)",
			    prov == TEL_TWILIO ? "twilio" : "telnyx", svc->max_calls);
		return -EBUSY;   /* the server closes with 1013 */
	}
	tel_call *t = calloc(1, sizeof(*t));
	if (!t || conversation_new(svc, &tel_sink, t, vx_ws_request_id(c), true, &t->cv) < 0) {
		free(t);
		orch_call_leave(svc);
		return -ENOMEM;
	}
	t->svc = svc;
	t->prov = prov;
	t->c = c;
	t->fill = 0xFF;   /* mu-law zero */
	pthread_mutex_init(&t->lock, NULL);
	*ret_state = t;
	return 0;
}

int tel_twilio_open(vx_wsconn *c, void *user, void **ret_state)
{
	return call_open(c, user, TEL_TWILIO, ret_state);
}

int tel_telnyx_open(vx_wsconn *c, void *user, void **ret_state)
{
	return call_open(c, user, TEL_TELNYX, ret_state);
}

/* Copies a string member of obj (or "") into out. */
static void copy_str(const cJSON *obj, const char *name, char *out, size_t cap)
{
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, name));
	snprintf(out, cap, "%s", s ? s : "");
}

/* The conversation's meta: {"telephony":{"provider":..,<ids>,"custom_parameters":{}}}. */
static char *call_meta(const tel_call *t, const cJSON *start, const cJSON *custom)
{
	static const char *const twilio_ids[][2] = {
		{ "streamSid", "stream_sid" }, { "callSid", "call_sid" },
		{ "accountSid", "account_sid" },
	};
	static const char *const telnyx_ids[][2] = {
		{ "call_control_id", "call_control_id" }, { "call_session_id", "call_session_id" },
		{ "call_leg_id", "call_leg_id" }, { "from", "from" }, { "to", "to" },
		{ "client_state", "client_state" },
	};
	cJSON *root = cJSON_CreateObject(), *tel = cJSON_AddObjectToObject(root, "telephony");
	if (!tel) {
		cJSON_Delete(root);
		return NULL;
	}
	cJSON_AddStringToObject(tel, "provider", t->prov == TEL_TWILIO ? "twilio" : "telnyx");
	if (t->prov == TEL_TELNYX)
		cJSON_AddStringToObject(tel, "stream_id", t->stream_sid);
	size_t n = t->prov == TEL_TWILIO ? 3 : 6;
	for (size_t i = 0; i < n; i++) {
		const char *const *k = t->prov == TEL_TWILIO ? twilio_ids[i] : telnyx_ids[i];
		const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(start, k[0]));
		if (v)
			cJSON_AddStringToObject(tel, k[1], v);
	}
	if (cJSON_IsObject(custom))
		cJSON_AddItemToObject(tel, "custom_parameters", cJSON_Duplicate(custom, true));
	char *s = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	return s;
}

static void on_start(tel_call *t, const cJSON *j)
{
	const char *rid = vx_ws_request_id(t->c);
	const cJSON *start = cJSON_GetObjectItemCaseSensitive(j, "start");
	if (!cJSON_IsObject(start) || t->started) {
		vx_log_warn(rid, "%s", t->started ? "a second start ignored" :
			    "start without a start object ignored");
		return;
	}
	bool tw = t->prov == TEL_TWILIO;
	const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(start, tw ? "mediaFormat" : "media_format");
	const char *enc = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(fmt, "encoding"));
	int rate = TEL_RATE;
	if (fmt && vx_json_int(fmt, tw ? "sampleRate" : "sample_rate", TEL_RATE, 1, 192000,
			       &rate) < 0)
		rate = 0;
	vx_encoding e = VX_ENC_MULAW;
	if (enc && (!strcmp(enc, "PCMA") || !strcmp(enc, "audio/x-alaw")))
		e = VX_ENC_ALAW;
	else if (enc && strcmp(enc, "PCMU") && strcmp(enc, "audio/x-mulaw"))
		rate = 0;
	if (rate != TEL_RATE) {
		vx_log_warn(rid, "start: media format %s at %d Hz unsupported (8 kHz PCMU or PCMA)",
			    enc ? enc : "?", rate);
		vx_ws_close(t->c, 1003, "unsupported media format");
		return;
	}
	const cJSON *custom = cJSON_GetObjectItemCaseSensitive(start,
		tw ? "customParameters" : "custom_parameters");
	const char *conv_id = cJSON_GetStringValue(
		cJSON_GetObjectItemCaseSensitive(custom, "conversation_id"));
	pthread_mutex_lock(&t->lock);
	if (tw) {
		copy_str(start, "streamSid", t->stream_sid, sizeof(t->stream_sid));
		if (!t->stream_sid[0])
			copy_str(j, "streamSid", t->stream_sid, sizeof(t->stream_sid));
	} else {
		copy_str(j, "stream_id", t->stream_sid, sizeof(t->stream_sid));
	}
	t->fill = e == VX_ENC_ALAW ? 0xD5 : 0xFF;
	t->started = true;
	pthread_mutex_unlock(&t->lock);
	char *meta = call_meta(t, start, custom);
	conv_config cfg = {
		.sample_rate = TEL_RATE, .encoding = e, .conversation_id = conv_id,
		.marks = true, .meta_json = meta, .greeting = t->svc->tel_greeting,
	};
	int r = conversation_start(t->cv, &cfg, false);
	free(meta);
	if (r < 0) {
		vx_log_warn(rid, "call %s: cannot start: %s", t->stream_sid, strerror(-r));
		vx_ws_close(t->c, 1011, "cannot start the conversation");
		return;
	}
	pacer_add(t);
	vx_log_info(rid, "%s call started, stream %s", tw ? "twilio" : "telnyx", t->stream_sid);
}

static void on_media(tel_call *t, const cJSON *j)
{
	const cJSON *media = cJSON_GetObjectItemCaseSensitive(j, "media");
	const char *track = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(media, "track"));
	const char *p = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(media, "payload"));
	if (!t->started || !p || (track && strcmp(track, "inbound") &&
				  strcmp(track, "inbound_track")))
		return;   /* before start, no payload, or our own audio echoed */
	size_t n = strlen(p);
	vx_buf audio = {0};
	if (n > TEL_MAX_MEDIA_B64 || vx_base64_decode(p, n, &audio) < 0) {
		vx_log_warn(vx_ws_request_id(t->c), "call %s: bad media payload dropped",
			    t->stream_sid);
	} else if (audio.len) {
		conversation_audio(t->cv, audio.data, audio.len);
	}
	vx_buf_release(&audio);
}

static void on_mark(tel_call *t, const cJSON *j)
{
	const cJSON *mark = cJSON_GetObjectItemCaseSensitive(j, "mark");
	const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(mark, "name"));
	unsigned reply;
	unsigned long long bytes;
	char tail;
	if (!name || sscanf(name, "r%u:%llu%c", &reply, &bytes, &tail) != 2)
		return;   /* not one of ours */
	pthread_mutex_lock(&t->lock);
	bool current = reply == t->reply;
	pthread_mutex_unlock(&t->lock);
	if (current)
		conversation_played(t->cv, bytes);
}

void tel_ws_text(vx_wsconn *c, void *state, const char *text, size_t len)
{
	tel_call *t = state;
	cJSON *j = vx_ws_text_has_nul(text, len) ? NULL : cJSON_ParseWithLength(text, len);
	const char *ev = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "event"));
	if (!cJSON_IsObject(j) || !ev) {
		vx_log_warn(vx_ws_request_id(c), "call: message without an event dropped");
		goto out_free;
	}
	if (t->stopped)
		goto out_free;
	if (!strcmp(ev, "media")) {
		on_media(t, j);
	} else if (!strcmp(ev, "mark")) {
		on_mark(t, j);
	} else if (!strcmp(ev, "start")) {
		on_start(t, j);
	} else if (!strcmp(ev, "stop")) {
		/* The call ended: the reply in progress is kept as far as it
		 * was heard; the socket closes once what is queued went out. */
		t->stopped = true;
		conversation_close(t->cv);
		vx_ws_close(c, 1000, "call ended");
		vx_log_info(vx_ws_request_id(c), "call %s stopped", t->stream_sid);
	} else if (strcmp(ev, "connected") && strcmp(ev, "dtmf") && strcmp(ev, "error")) {
		vx_log_debug(vx_ws_request_id(c), "call: event \"%.40s\" ignored", ev);
	}
out_free:
	cJSON_Delete(j);
}

void tel_ws_binary(vx_wsconn *c, void *state, const void *data, size_t len)
{
	(void)state;
	(void)data;
	vx_log_debug(vx_ws_request_id(c), "call: binary message of %zu bytes ignored", len);
}

void tel_ws_close(vx_wsconn *c, void *state)
{
	tel_call *t = state;
	(void)c;
	conversation_close(t->cv);   /* no sink calls after this */
	pacer_remove(t);             /* nor pacer visits */
	conversation_unref(t->cv);
	orch_call_leave(t->svc);
	pthread_mutex_destroy(&t->lock);
	vx_buf_release(&t->q);
	vx_buf_release(&t->out);
	free(t->marks);
	free(t);
}
