/*
 * fuzz_whisper.c - the whisper.cpp model reader (wfile_open_mem: magic,
 * hparams, mel filters, vocabulary, tensors) on any bytes, then every
 * field of what it accepted.
 *
 * wfile.h promises that a file that passes is safe to use: so every token
 * byte, filter value and tensor byte is read here (ASan checks the reads
 * stay inside the input) and every tensor is found again by name. The
 * input is copied into a buffer of its exact size.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../services/stt/whisper/wfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink;

static void touch(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t s = 0;
	for (size_t i = 0; i < n; i++)
		s += b[i];
	sink += s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	wfile *f = NULL;
	char err[256];
	if (wfile_open_mem(buf, size, &f, err, sizeof err) == 0) {
		touch(f->filters, (size_t)f->n_mel * (size_t)f->n_fb * sizeof(float));
		for (int32_t i = 0; i < f->n_tokens; i++)
			touch(f->tok[i], f->tok_len[i]);
		for (int i = 0; i < f->n_tensors; i++) {
			const wfile_tensor *t = &f->tensors[i];
			touch(t->data, t->n_bytes);
			if (wfile_tensor_get(f, t->name) != t)
				abort();
		}
		wfile_close(f);
	} else if (!memchr(err, 0, sizeof err) || !err[0]) {
		abort();   /* a refusal always says why */
	}
	free(buf);
	return 0;
}
