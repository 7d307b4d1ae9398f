/*
 * voxline-jobs - answer recorded questions offline through the NATS work
 * queues: each WAV goes STT -> LLM -> TTS as three chained jobs (docs/jobs.md),
 * every result on one callback subject, so however many workers run share
 * the batch. Writes <out>/<name>.answer.wav and <out>/<name>.txt (question
 * and answer) per recording and prints one JSON line per recording.
 *
 *   voxline-jobs --nats nats://127.0.0.1:4222 --out answers/ q1.wav q2.wav
 *
 * Exit status: 0 when every recording was answered, 1 when one failed or
 * the time ran out, 2 on bad usage or no NATS server.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vx_audio.h"
#include "vx_buf.h"
#include "vx_jobs.h"
#include "vx_jobs_obj.h"
#include "vx_time.h"

#define JOBS_MAX_FILE (256u << 20)   /* bytes of one recording */

enum stage { ST_STT, ST_LLM, ST_TTS, ST_DONE, ST_FAILED };
static const char *const stage_names[] = { "stt", "llm", "tts" };

typedef struct item {
	const char *path;
	char stem[256];
	enum stage stage;
	char *question, *answer;     /* heap */
	char error[300];
	double t0_ms;
} item;

typedef struct tool {
	const char *url, *out, *voice, *system, *bucket;
	int timeout_s, max_tokens;
	char batch[64], callback[128];
	natsConnection *nc;
	jsCtx *js;
	item *items;
	size_t n;
} tool;

static int read_file(const char *path, vx_buf *out)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -errno;
	char chunk[65536];
	size_t n;
	int r = 0;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (out->len + n > JOBS_MAX_FILE || vx_buf_append(out, chunk, n) < 0) {
			r = -E2BIG;
			break;
		}
	fclose(f);
	return r;
}

static int write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -errno;
	int r = fwrite(data, 1, len, f) == len ? 0 : -EIO;
	if (fclose(f) != 0)
		r = -EIO;
	return r;
}

/* Publishes one job of stage st for item i: {"id","reply","request",...}. */
static int send_job(tool *t, size_t i, enum stage st, cJSON *request,
		    const vx_buf *audio)
{
	char id[160], subj[64];
	snprintf(id, sizeof(id), "%s.%zu.%s", t->batch, i, stage_names[st]);
	snprintf(subj, sizeof(subj), "voxline.%s.jobs", stage_names[st]);
	cJSON *job = cJSON_CreateObject();
	cJSON_AddStringToObject(job, "id", id);
	cJSON_AddStringToObject(job, "reply", t->callback);
	cJSON_AddItemToObject(job, "request", request);
	int r = 0;
	if (audio) {
		cJSON *a = cJSON_AddObjectToObject(job, "audio");
		size_t max = (size_t)natsConnection_GetMaxPayload(t->nc);
		cJSON_AddStringToObject(a, "content_type", "");
		if (audio->len / 3 * 4 + 8192 < max) {
			vx_buf b64 = {0};
			r = vx_base64_encode(audio->data, audio->len, &b64);
			cJSON_AddStringToObject(a, "base64", b64.data ? b64.data : "");
			vx_buf_release(&b64);
		} else {
			char name[200];
			snprintf(name, sizeof(name), "%s.%zu.question", t->batch, i);
			r = vx_jobs_obj_ensure(t->js, t->bucket);
			if (r == 0)
				r = vx_jobs_obj_put(t->nc, t->js, t->bucket, name,
						    audio->data, audio->len);
			cJSON_AddStringToObject(a, "object", name);
			cJSON_AddStringToObject(a, "bucket", t->bucket);
		}
	}
	char *text = cJSON_PrintUnformatted(job);
	cJSON_Delete(job);
	if (!text || r < 0) {
		free(text);
		return r < 0 ? r : -ENOMEM;
	}
	natsMsg *m = NULL;
	jsErrCode jerr = 0;
	natsStatus s = natsMsg_Create(&m, subj, NULL, text, (int)strlen(text));
	if (s == NATS_OK)
		s = natsMsgHeader_Set(m, "Nats-Msg-Id", id);
	if (s == NATS_OK)
		s = js_PublishMsg(NULL, t->js, m, NULL, &jerr);
	natsMsg_Destroy(m);
	free(text);
	return s == NATS_OK ? 0 : -EIO;
}

static void fail(item *it, const char *what, const char *detail)
{
	snprintf(it->error, sizeof(it->error), "%s: %s", what, detail);
	it->stage = ST_FAILED;
}

static void finish(tool *t, item *it, const cJSON *audio)
{
	vx_buf wav = {0};
	const cJSON *b64 = cJSON_GetObjectItemCaseSensitive(audio, "base64");
	const cJSON *obj = cJSON_GetObjectItemCaseSensitive(audio, "object");
	const cJSON *bk = cJSON_GetObjectItemCaseSensitive(audio, "bucket");
	int r = -EPROTO;
	if (cJSON_IsString(b64))
		r = vx_base64_decode(b64->valuestring, strlen(b64->valuestring), &wav);
	else if (cJSON_IsString(obj))
		r = vx_jobs_obj_get(t->nc, cJSON_IsString(bk) ? bk->valuestring :
				    t->bucket, obj->valuestring, JOBS_MAX_FILE, &wav);
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s.answer.wav", t->out, it->stem);
	if (r == 0)
		r = write_file(path, wav.data, wav.len);
	vx_buf_release(&wav);
	if (r < 0) {
		fail(it, "cannot write the answer audio", strerror(-r));
		return;
	}
	vx_buf txt = {0};
	vx_buf_printf(&txt, "Q: %s\nA: %s\n", it->question, it->answer);
	snprintf(path, sizeof(path), "%s/%s.txt", t->out, it->stem);
	r = write_file(path, txt.data, txt.len);
	vx_buf_release(&txt);
	if (r < 0)
		fail(it, "cannot write the text", strerror(-r));
	else
		it->stage = ST_DONE;
}

/* One result from the callback subject: the next stage's job, or done. */
static void on_result(tool *t, const char *data, int len)
{
	cJSON *j = cJSON_ParseWithLength(data, len > 0 ? (size_t)len : 0);
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
	const cJSON *status = cJSON_GetObjectItemCaseSensitive(j, "status");
	const cJSON *res = cJSON_GetObjectItemCaseSensitive(j, "result");
	size_t i;
	char stage[8];
	size_t blen = strlen(t->batch);
	if (!cJSON_IsString(id) || strncmp(id->valuestring, t->batch, blen) ||
	    sscanf(id->valuestring + blen, ".%zu.%7s", &i, stage) != 2 ||
	    i >= t->n)
		goto out_free;
	item *it = &t->items[i];
	/* A result for a stage already past is a duplicate: ignored. */
	if (it->stage >= ST_DONE || strcmp(stage, stage_names[it->stage]))
		goto out_free;
	if (!cJSON_IsString(status) || strcmp(status->valuestring, "ok")) {
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
		snprintf(it->error, sizeof(it->error), "%s: %s", stage,
			 cJSON_IsString(m) ? m->valuestring : "failed");
		it->stage = ST_FAILED;
		goto out_free;
	}
	cJSON *req = cJSON_CreateObject();
	int r = 0;
	if (it->stage == ST_STT) {
		const cJSON *text = cJSON_GetObjectItemCaseSensitive(res, "text");
		it->question = strdup(cJSON_IsString(text) ? text->valuestring : "");
		cJSON *msgs = cJSON_AddArrayToObject(req, "messages");
		if (t->system && *t->system) {
			cJSON *s = cJSON_CreateObject();
			cJSON_AddStringToObject(s, "role", "system");
			cJSON_AddStringToObject(s, "content", t->system);
			cJSON_AddItemToArray(msgs, s);
		}
		cJSON *u = cJSON_CreateObject();
		cJSON_AddStringToObject(u, "role", "user");
		cJSON_AddStringToObject(u, "content", *it->question ?
					it->question : "(silence)");
		cJSON_AddItemToArray(msgs, u);
		if (t->max_tokens > 0)
			cJSON_AddNumberToObject(req, "max_tokens", t->max_tokens);
		it->stage = ST_LLM;
		r = send_job(t, i, ST_LLM, req, NULL);
	} else if (it->stage == ST_LLM) {
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(res, "message");
		const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
		it->answer = strdup(cJSON_IsString(c) ? c->valuestring : "");
		cJSON_AddStringToObject(req, "text", *it->answer ? it->answer : "...");
		if (t->voice && *t->voice)
			cJSON_AddStringToObject(req, "voice", t->voice);
		it->stage = ST_TTS;
		r = send_job(t, i, ST_TTS, req, NULL);
	} else {
		cJSON_Delete(req);
		finish(t, it, cJSON_GetObjectItemCaseSensitive(j, "audio"));
	}
	if (r < 0)
		fail(it, "cannot publish the next job", strerror(-r));
out_free:
	cJSON_Delete(j);
}

static void report(const tool *t, const item *it)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "file", it->path);
	cJSON_AddStringToObject(o, "status", it->stage == ST_DONE ? "ok" : "error");
	if (it->question)
		cJSON_AddStringToObject(o, "question", it->question);
	if (it->answer)
		cJSON_AddStringToObject(o, "answer", it->answer);
	if (it->stage == ST_DONE) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s.answer.wav", t->out, it->stem);
		cJSON_AddStringToObject(o, "audio", path);
	} else {
		cJSON_AddStringToObject(o, "error", it->error[0] ? it->error :
					"no answer in time");
	}
	char *s = cJSON_PrintUnformatted(o);
	printf("%s\n", s ? s : "{}");
	fflush(stdout);
	free(s);
	cJSON_Delete(o);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: voxline-jobs --nats URL --out DIR [--voice NAME] "
		"[--system PROMPT] [--max-tokens N] [--timeout-s N] "
		"[--bucket NAME] question.wav...\n");
}

static int parse_args(tool *t, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "nats", required_argument, NULL, 'n' },
		{ "out", required_argument, NULL, 'o' },
		{ "voice", required_argument, NULL, 'v' },
		{ "system", required_argument, NULL, 's' },
		{ "max-tokens", required_argument, NULL, 'm' },
		{ "timeout-s", required_argument, NULL, 't' },
		{ "bucket", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	int c;
	t->url = getenv("VOXLINE_NATS_URL");
	t->out = ".";
	t->bucket = VX_JOBS_BUCKET;
	t->timeout_s = 300;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'n': t->url = optarg; break;
		case 'o': t->out = optarg; break;
		case 'v': t->voice = optarg; break;
		case 's': t->system = optarg; break;
		case 'm': t->max_tokens = atoi(optarg); break;
		case 't': t->timeout_s = atoi(optarg); break;
		case 'b': t->bucket = optarg; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -EINVAL;
		}
	}
	if (!t->url || !*t->url || optind >= argc || t->timeout_s <= 0) {
		usage(stderr);
		return -EINVAL;
	}
	t->n = (size_t)(argc - optind);
	t->items = calloc(t->n, sizeof(*t->items));
	if (!t->items)
		return -ENOMEM;
	for (size_t i = 0; i < t->n; i++) {
		item *it = &t->items[i];
		char tmp[256];
		it->path = argv[optind + (int)i];
		snprintf(tmp, sizeof(tmp), "%s", it->path);
		snprintf(it->stem, sizeof(it->stem), "%s", basename(tmp));
		char *dot = strrchr(it->stem, '.');
		if (dot && dot != it->stem)
			*dot = 0;
	}
	return 0;
}

int main(int argc, char **argv)
{
	tool t = {0};
	natsSubscription *sub = NULL;
	natsOptions *no = NULL;
	int rc = 2;
	if (parse_args(&t, argc, argv) < 0)
		return 2;
	mkdir(t.out, 0755);
	snprintf(t.batch, sizeof(t.batch), "vxj-%ld-%d", (long)time(NULL),
		 (int)getpid());
	snprintf(t.callback, sizeof(t.callback), "voxline.results.%s", t.batch);
	if (natsOptions_Create(&no) != NATS_OK ||
	    natsOptions_SetURL(no, t.url) != NATS_OK ||
	    natsOptions_SetMaxReconnect(no, -1) != NATS_OK ||
	    natsConnection_Connect(&t.nc, no) != NATS_OK ||
	    natsConnection_JetStream(&t.js, t.nc, NULL) != NATS_OK ||
	    natsConnection_SubscribeSync(&sub, t.nc, t.callback) != NATS_OK ||
	    natsConnection_FlushTimeout(t.nc, 5000) != NATS_OK) {
		fprintf(stderr, "voxline-jobs: cannot reach NATS at %s: %s\n",
			t.url, nats_GetLastError(NULL));
		goto out_close;
	}
	for (size_t i = 0; i < t.n; i++) {
		vx_buf wav = {0};
		item *it = &t.items[i];
		it->t0_ms = vx_now_ms();
		int r = read_file(it->path, &wav);
		if (r == 0)
			r = send_job(&t, i, ST_STT, cJSON_CreateObject(), &wav);
		if (r < 0)
			fail(it, "cannot send the question", strerror(-r));
		vx_buf_release(&wav);
	}
	double end = vx_now_ms() + t.timeout_s * 1000.0;
	for (;;) {
		size_t open = 0;
		for (size_t i = 0; i < t.n; i++)
			open += t.items[i].stage < ST_DONE;
		if (!open || vx_now_ms() >= end)
			break;
		natsMsg *m = NULL;
		if (natsSubscription_NextMsg(&m, sub, 500) != NATS_OK)
			continue;
		on_result(&t, natsMsg_GetData(m), natsMsg_GetDataLength(m));
		natsMsg_Destroy(m);
	}
	rc = 0;
	for (size_t i = 0; i < t.n; i++) {
		report(&t, &t.items[i]);
		rc |= t.items[i].stage != ST_DONE;
	}
out_close:
	natsSubscription_Destroy(sub);
	jsCtx_Destroy(t.js);
	natsConnection_Destroy(t.nc);
	natsOptions_Destroy(no);
	for (size_t i = 0; i < t.n; i++) {
		free(t.items[i].question);
		free(t.items[i].answer);
	}
	free(t.items);
	nats_Close();
	return rc;
}
