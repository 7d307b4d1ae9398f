/*
 * vx_jobs_obj.c - put and get blobs in a JetStream object store bucket
 * (layout in vx_jobs_obj.h).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "vx_audio.h"
#include "vx_jobs_obj.h"

#define OBJ_SUBJ_MAX 512
#define OBJ_TIMEOUT_MS 5000

/* base64url of name (with padding, as the NATS clients write it). */
static int obj_name_enc(const char *name, char *out, size_t size)
{
	vx_buf b = {0};
	if (vx_base64_encode(name, strlen(name), &b) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < b.len; i++)
		b.data[i] = b.data[i] == '+' ? '-' : b.data[i] == '/' ? '_' :
			    b.data[i];
	int r = b.len + 1 <= size ? 0 : -ENAMETOOLONG;
	if (!r)
		memcpy(out, b.data, b.len + 1);
	vx_buf_release(&b);
	return r;
}

int vx_jobs_obj_ensure(jsCtx *js, const char *bucket)
{
	char name[256], s1[OBJ_SUBJ_MAX], s2[OBJ_SUBJ_MAX];
	snprintf(name, sizeof(name), "OBJ_%s", bucket);
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	if (js_GetStreamInfo(&si, js, name, NULL, &jerr) == NATS_OK) {
		jsStreamInfo_Destroy(si);
		return 0;
	}
	snprintf(s1, sizeof(s1), "$O.%s.C.>", bucket);
	snprintf(s2, sizeof(s2), "$O.%s.M.>", bucket);
	const char *subjects[] = { s1, s2 };
	jsStreamConfig cfg;
	jsStreamConfig_Init(&cfg);
	cfg.Name = name;
	cfg.Subjects = subjects;
	cfg.SubjectsLen = 2;
	cfg.Storage = js_FileStorage;
	cfg.MaxAge = (int64_t)VX_JOBS_OBJ_MAX_AGE_S * 1000000000LL;
	cfg.AllowRollup = true;
	cfg.AllowDirect = true;
	natsStatus s = js_AddStream(&si, js, &cfg, NULL, &jerr);
	jsStreamInfo_Destroy(si);
	/* Another worker may have made it in between. */
	return s == NATS_OK || jerr == JSStreamNameExistErr ? 0 : -EIO;
}

int vx_jobs_obj_put(natsConnection *nc, jsCtx *js, const char *bucket,
		    const char *name, const void *data, size_t len)
{
	static const char abc[] =
		"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	unsigned char rnd[22];
	char nuid[sizeof(rnd) + 1], subj[OBJ_SUBJ_MAX], enc[OBJ_SUBJ_MAX / 2];
	/* A chunk fits a message, and its base64 fits a MSG.GET answer. */
	size_t chunk = (size_t)natsConnection_GetMaxPayload(nc) / 4 * 3;
	chunk = chunk > 4096 ? chunk - 2048 : 2048;
	if (chunk > VX_JOBS_OBJ_CHUNK)
		chunk = VX_JOBS_OBJ_CHUNK;
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return -EIO;
	for (size_t i = 0; i < sizeof(rnd); i++)
		nuid[i] = abc[rnd[i] % (sizeof(abc) - 1)];
	nuid[sizeof(rnd)] = 0;
	if (obj_name_enc(name, enc, sizeof(enc)) < 0)
		return -ENAMETOOLONG;
	snprintf(subj, sizeof(subj), "$O.%s.C.%s", bucket, nuid);
	size_t chunks = 0;
	for (size_t off = 0; off < len; off += chunk, chunks++) {
		size_t n = len - off < chunk ? len - off : chunk;
		jsErrCode jerr = 0;
		if (js_Publish(NULL, js, subj, (const char *)data + off, (int)n,
			       NULL, &jerr) != NATS_OK)
			return -EIO;
	}
	cJSON *info = cJSON_CreateObject();
	if (!info)
		return -ENOMEM;
	cJSON_AddStringToObject(info, "name", name);
	cJSON_AddStringToObject(info, "bucket", bucket);
	cJSON_AddStringToObject(info, "nuid", nuid);
	cJSON_AddNumberToObject(info, "size", (double)len);
	cJSON_AddNumberToObject(info, "chunks", (double)chunks);
	char *text = cJSON_PrintUnformatted(info);
	cJSON_Delete(info);
	if (!text)
		return -ENOMEM;
	snprintf(subj, sizeof(subj), "$O.%s.M.%s", bucket, enc);
	natsMsg *m = NULL;
	int r = -EIO;
	if (natsMsg_Create(&m, subj, NULL, text, (int)strlen(text)) == NATS_OK &&
	    natsMsgHeader_Set(m, "Nats-Rollup", "sub") == NATS_OK &&
	    js_PublishMsg(NULL, js, m, NULL, NULL) == NATS_OK)
		r = 0;
	natsMsg_Destroy(m);
	free(text);
	return r;
}

/* One $JS.API.STREAM.MSG.GET: the message's data (decoded) and sequence. */
static int obj_msg_get(natsConnection *nc, const char *stream, const char *query,
		       vx_buf *ret_data, unsigned long long *ret_seq)
{
	char subj[OBJ_SUBJ_MAX];
	snprintf(subj, sizeof(subj), "$JS.API.STREAM.MSG.GET.%s", stream);
	natsMsg *reply = NULL;
	if (natsConnection_RequestString(&reply, nc, subj, query,
					 OBJ_TIMEOUT_MS) != NATS_OK)
		return -EIO;
	int r = -EPROTO;
	cJSON *j = cJSON_ParseWithLength(natsMsg_GetData(reply),
					 (size_t)natsMsg_GetDataLength(reply));
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(j, "message");
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(msg, "data");
	const cJSON *seq = cJSON_GetObjectItemCaseSensitive(msg, "seq");
	if (err) {
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(err, "code");
		r = cJSON_IsNumber(code) && code->valueint == 404 ? -ENOENT : -EIO;
	} else if (cJSON_IsNumber(seq)) {
		r = 0;
		if (cJSON_IsString(data))
			r = vx_base64_decode(data->valuestring,
					     strlen(data->valuestring), ret_data);
		*ret_seq = (unsigned long long)seq->valuedouble;
	}
	cJSON_Delete(j);
	natsMsg_Destroy(reply);
	return r < 0 ? r : 0;
}

int vx_jobs_obj_get(natsConnection *nc, const char *bucket, const char *name,
		    size_t max, vx_buf *out)
{
	char stream[256], enc[OBJ_SUBJ_MAX / 2], query[OBJ_SUBJ_MAX + 64];
	vx_buf meta = {0};
	unsigned long long seq = 0;
	snprintf(stream, sizeof(stream), "OBJ_%s", bucket);
	if (obj_name_enc(name, enc, sizeof(enc)) < 0)
		return -ENAMETOOLONG;
	snprintf(query, sizeof(query), "{\"last_by_subj\":\"$O.%s.M.%s\"}",
		 bucket, enc);
	int r = obj_msg_get(nc, stream, query, &meta, &seq);
	if (r < 0)
		goto out_release;
	cJSON *info = cJSON_ParseWithLength(meta.data ? meta.data : "", meta.len);
	const cJSON *nuid = cJSON_GetObjectItemCaseSensitive(info, "nuid");
	const cJSON *size = cJSON_GetObjectItemCaseSensitive(info, "size");
	const cJSON *del = cJSON_GetObjectItemCaseSensitive(info, "deleted");
	r = -EPROTO;
	if (cJSON_IsTrue(del))
		r = -ENOENT;
	else if (!cJSON_IsString(nuid) || !cJSON_IsNumber(size) ||
		 size->valuedouble < 0)
		goto out_info;
	else if ((size_t)size->valuedouble > max)
		r = -E2BIG;
	else
		r = 0;
	if (r < 0)
		goto out_info;
	size_t want = (size_t)size->valuedouble, start = out->len;
	seq = 0;
	while (out->len - start < want) {
		snprintf(query, sizeof(query),
			 "{\"seq\":%llu,\"next_by_subj\":\"$O.%s.C.%s\"}",
			 seq + 1, bucket, nuid->valuestring);
		size_t before = out->len;
		if ((r = obj_msg_get(nc, stream, query, out, &seq)) < 0)
			break;
		if (out->len == before || out->len - start > want) {
			r = -EPROTO;   /* an empty or extra chunk */
			break;
		}
	}
	if (r == -ENOENT)
		r = -EPROTO;       /* info without its chunks */
out_info:
	cJSON_Delete(info);
out_release:
	vx_buf_release(&meta);
	return r;
}
