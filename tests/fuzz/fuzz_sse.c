/*
 * fuzz_sse.c - the SSE parser and the OpenAI-compatible engine's stream
 * reader (engine_openai.c's openai_data: events -> chat.completion.chunk
 * JSON -> pieces) on any upstream body.
 *
 * Input: byte 0 seeds how the body is cut into network reads (and bit 7
 * picks a small max_event, 64 bytes); the rest is the body. Checked: the
 * events the parser dispatches do not depend on the cutting, each is
 * NUL-terminated at its length and within max_event; the engine reader
 * survives the body and leaves its result strings terminated.
 */
#include "../../services/llm/engine_openai.c"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct seen {
	vx_buf all;        /* event NUL data NUL, per event */
	size_t max;
} seen;

static int on_event(void *user, const char *event, const char *data, size_t len)
{
	seen *s = user;
	if (data[len] != '\0' || len > s->max || strlen(event) >= 64)
		abort();
	if (vx_buf_append(&s->all, event, strlen(event) + 1) < 0 ||
	    vx_buf_append(&s->all, data, len + 1) < 0)
		abort();
	return 0;
}

static size_t next_cut(uint32_t *seed, size_t left)
{
	if (!*seed)
		return left;
	*seed = *seed * 1103515245u + 12345u;
	size_t k = 1 + (*seed >> 16) % 7;
	return k < left ? k : left;
}

static int parse(const char *body, size_t len, uint32_t seed, size_t max, seen *s)
{
	sse_parser p;
	int r = 0;
	sse_init(&p, max);
	s->max = max ? max : SSE_MAX_EVENT_DEFAULT;
	for (size_t off = 0; off < len && !r;) {
		size_t n = next_cut(&seed, len - off);
		r = sse_feed(&p, body + off, n, on_event, s);
		off += n;
	}
	sse_release(&p);
	return r;
}

static int on_piece(void *user, llm_piece_kind kind, const char *text, size_t len)
{
	(void)user;
	if ((kind != LLM_CONTENT && kind != LLM_REASONING) || (len && !text))
		abort();
	return 0;
}

static void engine(const char *body, size_t len, uint32_t seed)
{
	llm_remote eng = { .url = "http://127.0.0.1:1", .model = "m" };
	llm_request req = { .max_tokens = 16 };
	llm_result res;
	openai_stream s = { .done = false };
	int r = 0;
	llm_remote_stream_init(&s.rs, &eng, &req, on_piece, NULL, &res);
	sse_init(&s.sse, 0);
	for (size_t off = 0; off < len && !r;) {
		size_t n = next_cut(&seed, len - off);
		r = openai_data(&s, body + off, n);
		off += n;
	}
	if (!r)
		r = llm_emit_flush(&s.rs.emit);
	sse_release(&s.sse);
	if (!memchr(res.error, 0, sizeof(res.error)) ||
	    !memchr(res.model, 0, sizeof(res.model)) ||
	    !memchr(res.finish_reason, 0, sizeof(res.finish_reason)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint32_t seed = data[0] | 0x100u;
	size_t max = data[0] & 0x80 ? 64 : 0;
	const char *body = (const char *)data + 1;
	size_t len = size - 1;
	seen whole = {0}, cut = {0};

	int r1 = parse(body, len, 0, max, &whole);
	int r2 = parse(body, len, seed, max, &cut);
	if (r1 != r2 || (r1 == 0 && (whole.all.len != cut.all.len ||
		(whole.all.len && memcmp(whole.all.data, cut.all.data, whole.all.len)))))
		abort();
	vx_buf_release(&whole.all);
	vx_buf_release(&cut.all);

	engine(body, len, seed);
	return 0;
}
