/*
 * fuzz_ndjson.c - the NDJSON splitter and the Ollama engine's stream
 * reader (engine_ollama.c's ollama_data / ollama_line: lines -> JSON ->
 * pieces, "done", usage, errors) on any upstream body.
 *
 * Input: byte 0 seeds how the body is cut into network reads (bit 7 picks
 * a small max_line, 64 bytes); the rest is the body. Checked: the lines
 * the splitter delivers do not depend on the cutting, are NUL-terminated
 * at their length, non-empty, hold no LF and end in no CR, and stay within
 * max_line; the engine reader survives and leaves its strings terminated.
 */
#include "../../services/llm/engine_ollama.c"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct seen {
	vx_buf all;        /* line NUL, per line */
	size_t max;
} seen;

static int on_line(void *user, const char *line, size_t len)
{
	seen *s = user;
	if (line[len] != '\0' || len == 0 || len > s->max ||
	    memchr(line, '\n', len) || line[len - 1] == '\r')
		abort();
	if (vx_buf_append(&s->all, line, len + 1) < 0)
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

static int split(const char *body, size_t len, uint32_t seed, size_t max, seen *s)
{
	ndjson_splitter sp;
	int r = 0;
	ndjson_init(&sp, max);
	s->max = max ? max : NDJSON_MAX_LINE_DEFAULT;
	for (size_t off = 0; off < len && !r;) {
		size_t n = next_cut(&seed, len - off);
		r = ndjson_feed(&sp, body + off, n, on_line, s);
		off += n;
	}
	if (!r)
		r = ndjson_finish(&sp, on_line, s);
	ndjson_release(&sp);
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
	ollama_stream s = { .done = false };
	int r = 0;
	llm_remote_stream_init(&s.rs, &eng, &req, on_piece, NULL, &res);
	ndjson_init(&s.lines, 0);
	for (size_t off = 0; off < len && !r;) {
		size_t n = next_cut(&seed, len - off);
		r = ollama_data(&s, body + off, n);
		off += n;
	}
	if (!r)
		r = ndjson_finish(&s.lines, ollama_line, &s);
	if (!r)
		r = llm_emit_flush(&s.rs.emit);
	ndjson_release(&s.lines);
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

	int r1 = split(body, len, 0, max, &whole);
	int r2 = split(body, len, seed, max, &cut);
	if (r1 != r2 || (r1 == 0 && (whole.all.len != cut.all.len ||
		(whole.all.len && memcmp(whole.all.data, cut.all.data, whole.all.len)))))
		abort();
	vx_buf_release(&whole.all);
	vx_buf_release(&cut.all);

	engine(body, len, seed);
	return 0;
}
