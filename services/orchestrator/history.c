/* history.c - the conversation store's front: checks arguments, makes ids,
 * writes JSON, and hands the rest to a backend chosen by the location
 * (history_sqlite.c, history_pg.c); see history.h and history_int.h. */
#include "history_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

struct history {
	const history_backend *be;
	void *state; /* the backend's */
};

/* Location prefixes that choose a backend; anything else is an SQLite path. */
static const struct {
	const char *prefix;
	const history_backend *be;
} backends[] = {
	{ "postgresql://", &history_pg_backend },
	{ "postgres://", &history_pg_backend },
};

static const history_backend *backend_for(const char *where)
{
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (!strncmp(where, backends[i].prefix, strlen(backends[i].prefix)))
			return backends[i].be;
	return &history_sqlite_backend;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool id_valid(const char *id)
{
	size_t n = id ? strlen(id) : 0;
	if (n == 0 || n > HISTORY_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static bool text_ok(const char *s)
{
	return !s || strlen(s) <= HISTORY_MAX_TEXT_BYTES;
}

/* A random RFC 4122 version 4 UUID, lowercase. */
static int make_uuid(char out[37])
{
	unsigned char r[16];
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return -EIO;
	r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
	r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
		 r[10], r[11], r[12], r[13], r[14], r[15]);
	return 0;
}

char *history_dup(const char *s, bool *oom)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		*oom = true;
	return d;
}

history_turn *history_push_turn(history_conversation *c, size_t *cap)
{
	if (c->n_turns == *cap) {
		size_t ncap = *cap ? 2 * *cap : 16;
		history_turn *t = realloc(c->turns, ncap * sizeof(*t));
		if (!t)
			return NULL;
		c->turns = t;
		*cap = ncap;
	}
	history_turn *t = &c->turns[c->n_turns++];
	memset(t, 0, sizeof(*t));
	return t;
}

int history_open_why(const char *where, char *why, size_t why_cap, history **ret)
{
	if (why && why_cap)
		why[0] = '\0';
	if (!where || !*where || !ret)
		return -EINVAL;
	history *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->be = backend_for(where);
	int r = h->be->open(where, why, why_cap, &h->state);
	if (r < 0) {
		free(h);
		return r;
	}
	*ret = h;
	return 0;
}

int history_open(const char *where, history **ret)
{
	return history_open_why(where, NULL, 0, ret);
}

const char *history_backend_name(const history *h)
{
	return h ? h->be->name : NULL;
}

struct out {
	char *p;
	size_t cap, len; /* cap >= 1; p[len] is the NUL */
};

/* Appends n bytes of s to o, cutting at its capacity. */
static void put(struct out *o, const char *s, size_t n)
{
	if (n > o->cap - 1 - o->len)
		n = o->cap - 1 - o->len;
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

void history_redact(const char *where, char *out, size_t out_cap)
{
	if (!out_cap)
		return;
	struct out o = { out, out_cap, 0 };
	out[0] = '\0';
	if (!where)
		return;
	const char *rest = where;
	if (backend_for(where) != &history_sqlite_backend) {
		/* scheme://user:password@host... -> scheme://user:***@host... */
		const char *auth = strstr(where, "://") + 3;
		const char *end = auth + strcspn(auth, "/?");
		const char *at = memrchr(auth, '@', (size_t)(end - auth));
		const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
		if (colon) {
			put(&o, where, (size_t)(colon + 1 - where));
			put(&o, "***", 3);
			rest = at;
		}
		/* ...?password=secret&x -> ...?password=***&x */
		for (const char *p; (p = strstr(rest, "password=")); ) {
			p += strlen("password=");
			put(&o, rest, (size_t)(p - rest));
			put(&o, "***", 3);
			rest = p + strcspn(p, "&");
		}
	}
	put(&o, rest, strlen(rest));
}

void history_close(history *h)
{
	if (!h)
		return;
	h->be->close(h->state);
	free(h);
}

int history_create(history *h, const char *id, const char *system_prompt,
		   const char *voice, char ret_id[HISTORY_ID_MAX + 1])
{
	char made[HISTORY_ID_MAX + 1];
	int r;
	if (!h || !text_ok(system_prompt) || !text_ok(voice))
		return -EINVAL;
	if (id && *id) {
		if (!id_valid(id))
			return -EINVAL;
		snprintf(made, sizeof(made), "%s", id);
	} else if ((r = make_uuid(made)) < 0) {
		return r;
	}
	r = h->be->create(h->state, made, now_ms(), system_prompt, voice);
	if (r == 0 && ret_id)
		memcpy(ret_id, made, strlen(made) + 1);
	return r;
}

int history_exists(history *h, const char *id)
{
	if (!h)
		return -EINVAL;
	if (!id_valid(id))
		return 0;
	return h->be->exists(h->state, id);
}

int history_append_turn(history *h, const char *conv_id, const char *role,
			const char *content, const char *reasoning,
			bool interrupted, const char *timings_json)
{
	if (!h || !role || !*role || strlen(role) > HISTORY_ROLE_MAX)
		return -EINVAL;
	if (!text_ok(content) || !text_ok(reasoning) || !text_ok(timings_json))
		return -E2BIG;
	if (!id_valid(conv_id))
		return -ENOENT;
	return h->be->append(h->state, conv_id, now_ms(), role, content ? content : "",
			     reasoning, interrupted, timings_json);
}

void history_conversation_release(history_conversation *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_turns; i++) {
		free(c->turns[i].role);
		free(c->turns[i].content);
		free(c->turns[i].reasoning);
		free(c->turns[i].timings_json);
	}
	free(c->turns);
	free(c->system_prompt);
	free(c->voice);
	free(c->meta_json);
	memset(c, 0, sizeof(*c));
}

int history_load(history *h, const char *id, history_conversation *ret)
{
	history_conversation c = {0};
	if (!h || !ret)
		return -EINVAL;
	if (!id_valid(id))
		return -ENOENT;
	int r = h->be->load(h->state, id, &c);
	if (r < 0) {
		history_conversation_release(&c);
		return r;
	}
	*ret = c;
	return 0;
}

static int json_str_or_null(vx_buf *b, const char *s)
{
	return s ? vx_buf_json_str(b, s, strlen(s)) : vx_buf_puts(b, "null");
}

struct list_out {
	vx_buf *json;
	int n;
};

/* One history_list row as a JSON object. */
static int list_row(void *arg, const char *id, int64_t created_at,
		    int64_t updated_at, int64_t n_turns)
{
	struct list_out *o = arg;
	int r = vx_buf_puts(o->json, o->n ? ",{\"id\":" : "{\"id\":");
	if (r == 0)
		r = json_str_or_null(o->json, id);
	if (r == 0)
		r = vx_buf_printf(o->json, ",\"created_at\":%lld,\"updated_at\":%lld,\"turns\":%lld}",
				  (long long)created_at, (long long)updated_at,
				  (long long)n_turns);
	o->n++;
	return r;
}

/* Cuts b back to len (after a failed append). */
static void truncate_to(vx_buf *b, size_t len)
{
	b->len = len;
	if (b->data)
		b->data[len] = '\0';
}

int history_list(history *h, int limit, int offset, vx_buf *json)
{
	if (!h || !json || offset < 0)
		return -EINVAL;
	if (limit <= 0 || limit > HISTORY_LIST_MAX)
		limit = HISTORY_LIST_MAX;
	size_t start = json->len;
	struct list_out o = { json, 0 };
	int r = vx_buf_puts(json, "[");
	if (r == 0)
		r = h->be->list(h->state, limit, offset, list_row, &o);
	if (r >= 0)
		r = vx_buf_puts(json, "]");
	if (r < 0) {
		truncate_to(json, start);
		return r;
	}
	return o.n;
}

/* Appends c as the JSON object history_get_json documents. */
static int conversation_json(const history_conversation *c, vx_buf *b)
{
	int r = vx_buf_puts(b, "{\"id\":");
	if (!r) r = vx_buf_json_str(b, c->id, strlen(c->id));
	if (!r) r = vx_buf_printf(b, ",\"created_at\":%lld,\"updated_at\":%lld,\"system_prompt\":",
				  (long long)c->created_at, (long long)c->updated_at);
	if (!r) r = json_str_or_null(b, c->system_prompt);
	if (!r) r = vx_buf_puts(b, ",\"voice\":");
	if (!r) r = json_str_or_null(b, c->voice);
	if (!r) r = vx_buf_printf(b, ",\"meta\":%s,\"turns\":[", c->meta_json ? c->meta_json : "{}");
	for (size_t i = 0; i < c->n_turns && !r; i++) {
		const history_turn *t = &c->turns[i];
		r = vx_buf_printf(b, "%s{\"idx\":%d,\"role\":", i ? "," : "", t->idx);
		if (!r) r = json_str_or_null(b, t->role);
		if (!r) r = vx_buf_puts(b, ",\"content\":");
		if (!r) r = json_str_or_null(b, t->content);
		if (!r) r = vx_buf_puts(b, ",\"reasoning\":");
		if (!r) r = json_str_or_null(b, t->reasoning);
		if (!r) r = vx_buf_printf(b, ",\"interrupted\":%s,\"created_at\":%lld,\"timings\":%s}",
					  t->interrupted ? "true" : "false",
					  (long long)t->created_at,
					  t->timings_json ? t->timings_json : "null");
	}
	if (!r) r = vx_buf_puts(b, "]}");
	return r;
}

int history_get_json(history *h, const char *id, vx_buf *json)
{
	history_conversation c = {0};
	if (!json)
		return -EINVAL;
	int r = history_load(h, id, &c);
	if (r < 0)
		return r;
	size_t start = json->len;
	r = conversation_json(&c, json);
	if (r < 0)
		truncate_to(json, start);
	history_conversation_release(&c);
	return r;
}

int history_set_meta(history *h, const char *id, const char *meta_json)
{
	if (!h || !meta_json)
		return -EINVAL;
	size_t n = strlen(meta_json);
	if (n < 2 || meta_json[0] != '{' || meta_json[n - 1] != '}')
		return -EINVAL;   /* an object; the backend checks the JSON */
	if (!text_ok(meta_json))
		return -E2BIG;
	if (!id_valid(id))
		return -ENOENT;
	return h->be->set_meta(h->state, id, now_ms(), meta_json);
}

int history_delete(history *h, const char *id)
{
	if (!h)
		return -EINVAL;
	if (!id_valid(id))
		return -ENOENT;
	return h->be->remove(h->state, id);
}
