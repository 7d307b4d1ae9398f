/*
 * vx_jobs.c - the JetStream worker (see vx_jobs.h): one fetch thread that
 * also sends the +WPI heartbeats, jobs on the service's pool.
 */
#include <errno.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vx_audio.h"
#include "vx_jobs.h"
#include "vx_jobs_obj.h"
#include "vx_log.h"
#include "vx_time.h"

#define JOBS_FETCH_MS 500            /* a fetch waits at most this long */
#define JOBS_RETRY_MS 1000           /* setup retried, engine failures NAKed */
#define JOBS_BUSY_NAK_MS 500         /* pool full: offered again after */
#define JOBS_MAX_AUDIO (256u << 20)  /* bytes of input audio a job may carry */
#define JOBS_DEAD_JOB_MAX (64u << 10) /* a dead letter quotes jobs this small */
#define JOBS_NAME_MAX 64

enum { OUT_OK, OUT_ERROR, OUT_RETRY, OUT_DEAD, OUT_BUSY, OUT_N };
static const char *const outcome_names[OUT_N] = {
	"ok", "error", "retry", "dead", "busy"
};

typedef struct jobs_item jobs_item;

struct vx_jobs {
	vx_jobs_opts o;
	vx_jobs_config cfg;
	char stream[JOBS_NAME_MAX], subject[JOBS_NAME_MAX], dead[JOBS_NAME_MAX];
	char worker[JOBS_NAME_MAX];         /* host:pid, in results */
	natsOptions *nopts;
	natsConnection *nc;
	jsCtx *js;
	natsSubscription *sub;
	pthread_t thread;
	atomic_bool stop;                   /* vx_jobs_free: finish and leave */
	atomic_bool cancel;                 /* drain time is up */
	pthread_mutex_t lock;               /* guards items and inflight */
	pthread_cond_t idle;                /* inflight reached 0 */
	jobs_item *items;                   /* jobs fetched and not yet acked */
	int inflight;
	vx_counter *outcomes[OUT_N];
};

struct jobs_item {
	vx_jobs *j;
	natsMsg *msg;
	jobs_item *next;
};

void vx_job_fail(vx_job_result *res, int status, const char *code,
		 const char *fmt, ...)
{
	va_list ap;
	res->status = status;
	snprintf(res->code, sizeof(res->code), "%s", code);
	va_start(ap, fmt);
	vsnprintf(res->message, sizeof(res->message), fmt, ap);
	va_end(ap);
}

int vx_job_audio(const vx_job *job, int rate, double max_s, vx_pcm *ret,
		 vx_job_result *res)
{
	vx_audio_in in;
	vx_pcm pcm = {0};
	if (!job->audio || !job->audio_len) {
		vx_job_fail(res, 400, "missing_audio", "the job carries no audio");
		return -EINVAL;
	}
	int r = vx_audio_in_from_mime(job->content_type, &in);
	if (r < 0) {
		vx_job_fail(res, 415, "unsupported_media_type",
			    "audio.content_type %s is not audio voxline reads",
			    job->content_type);
		return r;
	}
	r = vx_audio_decode(job->audio, job->audio_len, &in,
			    (size_t)(max_s * VX_AUDIO_MAX_RATE) + 1, &pcm);
	if (r == 0 && (double)pcm.frames > max_s * pcm.rate)
		r = -E2BIG;
	if (r == 0)
		r = vx_audio_convert(&pcm, rate, 1);
	if (r < 0) {
		vx_pcm_release(&pcm);
		if (r == -E2BIG)
			vx_job_fail(res, 413, "audio_too_long",
				    "audio is longer than %.0f s", max_s);
		else
			vx_job_fail(res, 400, "bad_audio", "cannot read the audio: %s",
				    strerror(-r));
		return r;
	}
	*ret = pcm;
	return 0;
}

static void jobs_count(vx_jobs *j, int outcome)
{
	vx_counter_add(j->outcomes[outcome], 1);
}

/* ---- publishing ---- */

/* Publishes body to subj with Nats-Msg-Id msg_id (NULL = none). */
static int jobs_publish(vx_jobs *j, const char *subj, const char *msg_id,
			const vx_buf *body)
{
	natsMsg *m = NULL;
	natsStatus s = natsMsg_Create(&m, subj, NULL, body->data ? body->data : "",
				      (int)body->len);
	if (s == NATS_OK && msg_id)
		s = natsMsgHeader_Set(m, "Nats-Msg-Id", msg_id);
	if (s == NATS_OK)
		s = natsConnection_PublishMsg(j->nc, m);
	if (s == NATS_OK)   /* on the wire before the ack that follows */
		s = natsConnection_FlushTimeout(j->nc, 5000);
	natsMsg_Destroy(m);
	return s == NATS_OK ? 0 : -EIO;
}

/* The envelope's first fields: {"id":..,"service":..,"worker":..,"attempt":N */
static void jobs_head(vx_jobs *j, const char *id, int attempt, vx_buf *b)
{
	vx_buf_puts(b, "{\"id\":");
	vx_buf_json_str(b, id, strlen(id));
	vx_buf_printf(b, ",\"service\":\"%s\",\"worker\":\"%s\",\"attempt\":%d",
		      j->cfg.service, j->worker, attempt);
}

static void jobs_error_json(const vx_job_result *res, vx_buf *b)
{
	vx_buf_printf(b, ",\"error\":{\"status\":%d,\"code\":", res->status);
	vx_buf_json_str(b, res->code, strlen(res->code));
	vx_buf_puts(b, ",\"message\":");
	vx_buf_json_str(b, res->message, strlen(res->message));
	vx_buf_puts(b, "}");
}

/* The answer to the job's reply subject; output audio inline (base64) or,
 * past the server's payload limit, in the object store. */
static int jobs_answer(vx_jobs *j, const char *id, const char *reply,
		       int attempt, double ms, vx_job_result *res)
{
	vx_buf b = {0};
	char msg_id[300];
	int r = 0;
	jobs_head(j, id, attempt, &b);
	vx_buf_printf(&b, ",\"processing_ms\":%.1f", ms);
	if (res->status) {
		vx_buf_puts(&b, ",\"status\":\"error\"");
		jobs_error_json(res, &b);
	} else {
		vx_buf_puts(&b, ",\"status\":\"ok\",\"result\":");
		vx_buf_append(&b, res->json.data ? res->json.data : "{}",
			      res->json.data ? res->json.len : 2);
	}
	if (!res->status && res->audio.len) {
		size_t max = (size_t)natsConnection_GetMaxPayload(j->nc);
		vx_buf_printf(&b, ",\"audio\":{\"format\":\"%s\"",
			      res->audio_format ? res->audio_format : "wav");
		if (res->audio.len / 3 * 4 + b.len + 4096 < max) {
			vx_buf_puts(&b, ",\"base64\":\"");
			r = vx_base64_encode(res->audio.data, res->audio.len, &b);
			vx_buf_puts(&b, "\"}");
		} else {
			char name[300];
			snprintf(name, sizeof(name), "%s.result.%s", id,
				 res->audio_format ? res->audio_format : "wav");
			r = vx_jobs_obj_ensure(j->js, j->o.bucket);
			if (r == 0)
				r = vx_jobs_obj_put(j->nc, j->js, j->o.bucket, name,
						    res->audio.data, res->audio.len);
			vx_buf_puts(&b, ",\"object\":");
			vx_buf_json_str(&b, name, strlen(name));
			vx_buf_puts(&b, ",\"bucket\":");
			vx_buf_json_str(&b, j->o.bucket, strlen(j->o.bucket));
			vx_buf_printf(&b, ",\"size\":%zu}", res->audio.len);
		}
	}
	vx_buf_puts(&b, "}\n");
	snprintf(msg_id, sizeof(msg_id), "%s.result", id);
	if (r == 0)
		r = jobs_publish(j, reply, msg_id, &b);
	vx_buf_release(&b);
	return r;
}

/* A dead letter: the error, where the job came from, and the job itself
 * when it is small. */
static int jobs_dead_letter(vx_jobs *j, natsMsg *msg, const char *id,
			    int attempt, const vx_job_result *res)
{
	vx_buf b = {0};
	jobs_head(j, id, attempt, &b);
	jobs_error_json(res, &b);
	int len = natsMsg_GetDataLength(msg);
	cJSON *job = len > 0 && (size_t)len <= JOBS_DEAD_JOB_MAX ?
		     cJSON_ParseWithLength(natsMsg_GetData(msg), (size_t)len) :
		     NULL;
	if (job) {
		char *text = cJSON_PrintUnformatted(job);
		if (text) {
			vx_buf_puts(&b, ",\"job\":");
			vx_buf_puts(&b, text);
			free(text);
		}
		cJSON_Delete(job);
	}
	vx_buf_puts(&b, "}\n");
	char msg_id[300];
	snprintf(msg_id, sizeof(msg_id), "%s.dead", id);
	int r = jobs_publish(j, j->dead, msg_id, &b);
	vx_buf_release(&b);
	return r;
}

/* ---- one job ---- */

/* Off the heartbeat list (before its ack: the two never race). */
static void jobs_item_unlist(vx_jobs *j, jobs_item *it)
{
	pthread_mutex_lock(&j->lock);
	for (jobs_item **p = &j->items; *p; p = &(*p)->next)
		if (*p == it) {
			*p = it->next;
			break;
		}
	pthread_mutex_unlock(&j->lock);
}

static void jobs_item_done(vx_jobs *j, jobs_item *it)
{
	jobs_item_unlist(j, it);
	natsMsg_Destroy(it->msg);
	free(it);
	pthread_mutex_lock(&j->lock);
	if (--j->inflight == 0)
		pthread_cond_broadcast(&j->idle);
	pthread_mutex_unlock(&j->lock);
}

/* Reads the envelope: id, reply subject, request, audio. Fails with res
 * set (status 400) when the job is unreadable. */
static int jobs_read(vx_jobs *j, natsMsg *msg, cJSON **ret_json, vx_job *job,
		     const char **ret_reply, vx_buf *audio, vx_job_result *res)
{
	int len = natsMsg_GetDataLength(msg);
	cJSON *root = cJSON_ParseWithLength(natsMsg_GetData(msg),
					    len > 0 ? (size_t)len : 0);
	*ret_json = root;
	if (!cJSON_IsObject(root)) {
		vx_job_fail(res, 400, "bad_job", "the job is not a JSON object");
		return -EINVAL;
	}
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
	const cJSON *reply = cJSON_GetObjectItemCaseSensitive(root, "reply");
	const cJSON *req = cJSON_GetObjectItemCaseSensitive(root, "request");
	const cJSON *au = cJSON_GetObjectItemCaseSensitive(root, "audio");
	const char *hreply = NULL;
	if (cJSON_IsString(id) && *id->valuestring)
		job->id = id->valuestring;
	if (cJSON_IsString(reply) && *reply->valuestring)
		*ret_reply = reply->valuestring;
	else if (natsMsgHeader_Get(msg, "Voxline-Reply", &hreply) == NATS_OK)
		*ret_reply = hreply;
	if (!*ret_reply) {
		vx_job_fail(res, 400, "bad_job", "the job has no reply subject");
		return -EINVAL;
	}
	if (req && !cJSON_IsObject(req)) {
		vx_job_fail(res, 400, "bad_job", "\"request\" must be an object");
		return -EINVAL;
	}
	if (req)
		job->request = req;
	if (!au)
		return 0;
	const cJSON *b64 = cJSON_GetObjectItemCaseSensitive(au, "base64");
	const cJSON *obj = cJSON_GetObjectItemCaseSensitive(au, "object");
	const cJSON *bucket = cJSON_GetObjectItemCaseSensitive(au, "bucket");
	const cJSON *ct = cJSON_GetObjectItemCaseSensitive(au, "content_type");
	if (cJSON_IsString(ct))
		job->content_type = ct->valuestring;
	int r = -EINVAL;
	if (cJSON_IsString(b64)) {
		r = vx_base64_decode(b64->valuestring, strlen(b64->valuestring),
				     audio);
		if (r < 0)
			vx_job_fail(res, 400, "bad_audio", "audio.base64 is not base64");
	} else if (cJSON_IsString(obj)) {
		const char *bk = cJSON_IsString(bucket) ? bucket->valuestring :
				 j->o.bucket;
		r = vx_jobs_obj_get(j->nc, bk, obj->valuestring, JOBS_MAX_AUDIO,
				    audio);
		if (r == -ENOENT || r == -E2BIG || r == -EPROTO)
			vx_job_fail(res, 400, "bad_audio", "object %s in bucket %s: %s",
				    obj->valuestring, bk, r == -ENOENT ? "not found" :
				    r == -E2BIG ? "too large" : "damaged");
		else if (r < 0)
			vx_job_fail(res, 503, "object_store",
				    "cannot read object %s from bucket %s",
				    obj->valuestring, bk);
	} else {
		vx_job_fail(res, 400, "bad_job",
			    "\"audio\" needs \"base64\" or \"object\"");
	}
	if (r < 0)
		return r;
	job->audio = audio->data;
	job->audio_len = audio->len;
	return 0;
}

/* On a pool thread: run, answer, then ack (or NAK / dead-letter). */
static void jobs_run(void *arg)
{
	jobs_item *it = arg;
	vx_jobs *j = it->j;
	natsMsg *msg = it->msg;
	jsMsgMetaData *meta = NULL;
	char seq_id[48];
	int attempt = 1;
	if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
		attempt = (int)meta->NumDelivered;
		snprintf(seq_id, sizeof(seq_id), "%s-%llu", j->cfg.service,
			 (unsigned long long)meta->Sequence.Stream);
		jsMsgMetaData_Destroy(meta);
	} else {
		snprintf(seq_id, sizeof(seq_id), "%s-unknown", j->cfg.service);
	}
	vx_job job = { .id = seq_id, .content_type = "", .attempt = attempt,
		       .cancel = &j->cancel };
	static const cJSON empty = { .type = cJSON_Object };
	job.request = &empty;
	const char *reply = NULL;
	vx_job_result res = {0};
	vx_buf audio = {0};
	cJSON *root = NULL;
	double t0 = vx_now_ms();
	int outcome;

	if (jobs_read(j, msg, &root, &job, &reply, &audio, &res) == 0)
		j->cfg.run(j->cfg.user, &job, &res);
	double ms = vx_now_ms() - t0;
	bool retry = res.status >= 500 && attempt < j->o.max_deliver &&
		     !atomic_load(&j->cancel);
	if (retry) {
		vx_log_warn(job.id, "job failed (attempt %d of %d): %s: %s",
			    attempt, j->o.max_deliver, res.code, res.message);
		jobs_item_unlist(j, it);
		natsMsg_NakWithDelay(msg, (int64_t)JOBS_RETRY_MS, NULL);
		outcome = OUT_RETRY;
	} else if (res.status >= 500 || !reply) {
		/* Out of attempts, or nobody to answer: the dead-letter subject
		 * gets it, the caller (when there is one) the error. */
		vx_log_warn(job.id, "job dead after %d deliveries: %s: %s",
			    attempt, res.code, res.message);
		int r = jobs_dead_letter(j, msg, job.id, attempt, &res);
		if (reply)
			r |= jobs_answer(j, job.id, reply, attempt, ms, &res);
		jobs_item_unlist(j, it);
		if (r == 0)
			natsMsg_AckSync(msg, NULL, NULL);
		outcome = OUT_DEAD;
	} else if (jobs_answer(j, job.id, reply, attempt, ms, &res) == 0) {
		jobs_item_unlist(j, it);
		natsMsg_AckSync(msg, NULL, NULL);
		outcome = res.status ? OUT_ERROR : OUT_OK;
	} else {
		/* Not answered (connection down): no ack, it comes back. */
		vx_log_warn(job.id, "cannot publish the result to %s", reply);
		outcome = OUT_RETRY;
	}
	jobs_count(j, outcome);
	vx_log_debug(job.id, "job %s in %.1f ms", outcome_names[outcome], ms);
	vx_buf_release(&res.json);
	vx_buf_release(&res.audio);
	vx_buf_release(&audio);
	cJSON_Delete(root);
	jobs_item_done(j, it);
}

/* ---- the fetch thread ---- */

/* Streams and the shared consumer; then the pull subscription bound to it. */
static int jobs_setup(vx_jobs *j)
{
	jsErrCode jerr = 0;
	jsStreamInfo *si = NULL;
	char dead_stream[JOBS_NAME_MAX + 8];
	if (js_GetStreamInfo(&si, j->js, j->stream, NULL, &jerr) != NATS_OK) {
		const char *subjects[] = { j->subject };
		jsStreamConfig sc;
		jsStreamConfig_Init(&sc);
		sc.Name = j->stream;
		sc.Subjects = subjects;
		sc.SubjectsLen = 1;
		sc.Retention = js_WorkQueuePolicy;
		sc.Storage = js_FileStorage;
		sc.Duplicates = 120LL * 1000000000LL;   /* Nats-Msg-Id window */
		if (js_AddStream(&si, j->js, &sc, NULL, &jerr) != NATS_OK &&
		    jerr != JSStreamNameExistErr)
			return -EIO;
	}
	jsStreamInfo_Destroy(si);
	si = NULL;
	snprintf(dead_stream, sizeof(dead_stream), "%s_DEAD", j->stream);
	if (js_GetStreamInfo(&si, j->js, dead_stream, NULL, &jerr) != NATS_OK) {
		const char *subjects[] = { j->dead };
		jsStreamConfig sc;
		jsStreamConfig_Init(&sc);
		sc.Name = dead_stream;
		sc.Subjects = subjects;
		sc.SubjectsLen = 1;
		sc.Storage = js_FileStorage;
		if (js_AddStream(&si, j->js, &sc, NULL, &jerr) != NATS_OK &&
		    jerr != JSStreamNameExistErr)
			return -EIO;
	}
	jsStreamInfo_Destroy(si);
	jsConsumerInfo *ci = NULL;
	if (js_GetConsumerInfo(&ci, j->js, j->stream, "workers", NULL,
			       &jerr) != NATS_OK) {
		jsConsumerConfig cc;
		jsConsumerConfig_Init(&cc);
		cc.Durable = "workers";
		cc.AckPolicy = js_AckExplicit;
		cc.AckWait = (int64_t)j->o.ack_wait_s * 1000000000LL;
		/* One more than NAKs: the last delivery is the one that dead-
		 * letters; the server never stops at its own limit first. */
		cc.MaxDeliver = j->o.max_deliver + 1;
		cc.MaxAckPending = j->o.max_ack_pending > 0 ? j->o.max_ack_pending :
				   16 * j->cfg.capacity;
		cc.FilterSubject = j->subject;
		if (js_AddConsumer(&ci, j->js, j->stream, &cc, NULL, &jerr) !=
		    NATS_OK && jerr != JSConsumerNameExistErr)
			return -EIO;
	}
	jsConsumerInfo_Destroy(ci);
	jsSubOptions so;
	jsSubOptions_Init(&so);
	so.Stream = j->stream;
	so.Consumer = "workers";
	if (js_PullSubscribe(&j->sub, j->js, j->subject, "workers", NULL, &so,
			     &jerr) != NATS_OK)
		return -EIO;
	vx_log_info(NULL, "nats: taking jobs from %s (stream %s, consumer "
		    "workers, %d at a time)", j->subject, j->stream,
		    j->cfg.capacity);
	return 0;
}

/* +WPI for every job this worker holds. */
static void jobs_heartbeat(vx_jobs *j)
{
	pthread_mutex_lock(&j->lock);
	for (jobs_item *it = j->items; it; it = it->next)
		natsMsg_InProgress(it->msg, NULL);
	pthread_mutex_unlock(&j->lock);
}

static void jobs_dispatch(vx_jobs *j, natsMsg *msg)
{
	jobs_item *it = calloc(1, sizeof(*it));
	if (!it) {
		natsMsg_Nak(msg, NULL);
		natsMsg_Destroy(msg);
		return;
	}
	it->j = j;
	it->msg = msg;
	pthread_mutex_lock(&j->lock);
	it->next = j->items;
	j->items = it;
	j->inflight++;
	pthread_mutex_unlock(&j->lock);
	if (vx_pool_submit(j->cfg.pool, jobs_run, it) < 0) {
		/* HTTP traffic filled the pool since we looked. */
		natsMsg_NakWithDelay(msg, (int64_t)JOBS_BUSY_NAK_MS, NULL);
		jobs_count(j, OUT_BUSY);
		jobs_item_done(j, it);
	}
}

static void *jobs_main(void *arg)
{
	vx_jobs *j = arg;
	double next_hb = 0, hb_ms = j->o.ack_wait_s * 1000.0 / 3;
	bool ready = false;
	while (!atomic_load(&j->stop)) {
		double now = vx_now_ms();
		if (now >= next_hb) {
			jobs_heartbeat(j);
			next_hb = now + hb_ms;
		}
		bool draining = j->cfg.server && vx_server_draining(j->cfg.server);
		if (!ready && !draining) {
			if (natsConnection_Status(j->nc) == NATS_CONN_STATUS_CONNECTED &&
			    jobs_setup(j) == 0)
				ready = true;
			else
				usleep(JOBS_RETRY_MS * 1000);
			continue;
		}
		vx_pool_stats ps;
		vx_pool_get_stats(j->cfg.pool, &ps);
		pthread_mutex_lock(&j->lock);
		int room = j->cfg.capacity - j->inflight;
		pthread_mutex_unlock(&j->lock);
		int pool_room = ps.workers + ps.queue_max - ps.busy - ps.queued;
		if (pool_room < room)
			room = pool_room;
		if (draining || room <= 0) {
			usleep(50 * 1000);
			continue;
		}
		natsMsgList list = {0};
		jsErrCode jerr = 0;
		natsStatus s = natsSubscription_Fetch(&list, j->sub, room,
						      JOBS_FETCH_MS, &jerr);
		if (s != NATS_OK && s != NATS_TIMEOUT) {
			usleep(200 * 1000);   /* disconnected: nats.c reconnects */
			continue;
		}
		/* A pull asked before SIGTERM may still bring jobs: handed back
		 * at once for another worker. */
		draining = j->cfg.server && vx_server_draining(j->cfg.server);
		for (int i = 0; i < list.Count; i++) {
			if (draining)
				natsMsg_Nak(list.Msgs[i], NULL);
			else
				jobs_dispatch(j, list.Msgs[i]);
			if (!draining)
				list.Msgs[i] = NULL;
		}
		natsMsgList_Destroy(&list);
	}
	return NULL;
}

/* ---- lifecycle ---- */

/* Connection callbacks run on libnats threads, possibly after vx_jobs_free
 * has begun: their closure is the URL (flag storage, lives as long as the
 * process), never the vx_jobs. */
static void jobs_on_disconnect(natsConnection *nc, void *closure)
{
	if (!natsConnection_IsClosed(nc))
		vx_log_warn(NULL, "nats: disconnected from %s; reconnecting",
			    (const char *)closure);
}

static void jobs_on_reconnect(natsConnection *nc, void *closure)
{
	(void)nc;
	vx_log_info(NULL, "nats: reconnected to %s", (const char *)closure);
}

int vx_jobs_new(const vx_jobs_opts *o, const vx_jobs_config *cfg,
		vx_jobs **ret)
{
	if (!o->url || !*o->url) {
		*ret = NULL;   /* worker mode off */
		return 0;
	}
	vx_jobs *j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->o = *o;
	j->cfg = *cfg;
	if (j->cfg.capacity < 1)
		j->cfg.capacity = 1;
	char host[32] = "";
	gethostname(host, sizeof(host) - 1);
	snprintf(j->worker, sizeof(j->worker), "%s:%d", host, (int)getpid());
	snprintf(j->subject, sizeof(j->subject), "voxline.%s.jobs", cfg->service);
	snprintf(j->dead, sizeof(j->dead), "voxline.%s.dead", cfg->service);
	snprintf(j->stream, sizeof(j->stream), "VOXLINE_%s", cfg->service);
	for (char *p = j->stream; *p; p++)
		*p = (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
	vx_metrics *m = vx_server_metrics(cfg->server);
	for (int i = 0; i < OUT_N; i++) {
		char labels[48];
		snprintf(labels, sizeof(labels), "outcome=\"%s\"", outcome_names[i]);
		j->outcomes[i] = vx_metrics_counter(m, "voxline_jobs_total",
			"NATS JetStream jobs by outcome", labels);
	}
	pthread_mutex_init(&j->lock, NULL);
	pthread_cond_init(&j->idle, NULL);
	int r = -EINVAL;
	natsStatus s = natsOptions_Create(&j->nopts);
	if (s == NATS_OK)
		s = natsOptions_SetURL(j->nopts, o->url);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(j->nopts, -1);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(j->nopts, 250);
	if (s == NATS_OK)
		s = natsOptions_SetRetryOnFailedConnect(j->nopts, true, NULL, NULL);
	if (s == NATS_OK)
		s = natsOptions_SetDisconnectedCB(j->nopts, jobs_on_disconnect,
						  (void *)o->url);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectedCB(j->nopts, jobs_on_reconnect,
						 (void *)o->url);
	if (s == NATS_OK) {
		s = natsConnection_Connect(&j->nc, j->nopts);
		if (s == NATS_NOT_YET_CONNECTED)
			s = NATS_OK;
	}
	if (s == NATS_OK)
		s = natsConnection_JetStream(&j->js, j->nc, NULL);
	if (s != NATS_OK)
		goto out_free;
	r = -errno;
	if (pthread_create(&j->thread, NULL, jobs_main, j) != 0)
		goto out_free;
	*ret = j;
	return 0;
out_free:
	vx_log_debug(NULL, "nats: %s", natsStatus_GetText(s));
	jsCtx_Destroy(j->js);
	natsConnection_Destroy(j->nc);
	natsOptions_Destroy(j->nopts);
	pthread_cond_destroy(&j->idle);
	pthread_mutex_destroy(&j->lock);
	free(j);
	return r < 0 ? r : -EINVAL;
}

void vx_jobs_free(vx_jobs *j)
{
	if (!j)
		return;
	atomic_store(&j->stop, true);
	pthread_join(j->thread, NULL);
	/* Jobs in flight finish (heartbeating) until drain_s; then they are
	 * cancelled and, unacked, go to another worker. */
	double end = vx_now_ms() + (j->cfg.drain_s > 0 ? j->cfg.drain_s : 15) * 1000.0;
	pthread_mutex_lock(&j->lock);
	while (j->inflight > 0) {
		if (vx_now_ms() >= end)
			atomic_store(&j->cancel, true);
		pthread_mutex_unlock(&j->lock);
		jobs_heartbeat(j);
		pthread_mutex_lock(&j->lock);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 200 * 1000000L;
		if (ts.tv_nsec >= 1000000000L)
			ts.tv_sec++, ts.tv_nsec -= 1000000000L;
		if (j->inflight > 0)
			pthread_cond_timedwait(&j->idle, &j->lock, &ts);
	}
	pthread_mutex_unlock(&j->lock);
	if (natsConnection_Status(j->nc) == NATS_CONN_STATUS_CONNECTED)
		natsConnection_FlushTimeout(j->nc, 2000);   /* the last NAKs */
	natsSubscription_Destroy(j->sub);
	jsCtx_Destroy(j->js);
	natsConnection_Close(j->nc);
	natsConnection_Destroy(j->nc);
	natsOptions_Destroy(j->nopts);
	pthread_cond_destroy(&j->idle);
	pthread_mutex_destroy(&j->lock);
	free(j);
	nats_CloseAndWait(2000);   /* the library's threads are gone after */
}
