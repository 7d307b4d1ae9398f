/*
 * test_whisper_tok.c - Whisper's tokenizer (wtok.c) on a model written by
 * tests/whisper/mkwhisper.py: encodings equal tests/whisper/tokref.py's
 * (GPT-2's regex pre-tokenizer and rank BPE in Python), decoding round
 * trips, and the special and timestamp ids sit where whisper.cpp puts them
 * for English-only and multilingual vocabularies.
 * Needs /usr/bin/python3 with numpy and regex (make deps); fails if absent.
 */
#include "../../services/stt/whisper/wfile.h"
#include "../../services/stt/whisper/wtok.h"
#include "vx_test.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#ifndef WHISPER_TEST_DIR
#error "WHISPER_TEST_DIR (tests/whisper) must be defined"
#endif

static char dir[] = "/tmp/test_whisper_tok_XXXXXX";
static char model[256];

static int run(const char *cmd)
{
	int rc = system(cmd);
	if (rc != 0)
		fprintf(stderr, "  command failed (%d): %s\n", rc, cmd);
	return rc;
}

static wfile *open_model(void)
{
	char err[256];
	wfile *f = NULL;
	if (wfile_open(model, &f, err, sizeof err) < 0)
		fprintf(stderr, "  %s\n", err);
	return f;
}

VX_TEST(encodings_match_the_python_reference_and_round_trip)
{
	char cmd[512], out[160];
	snprintf(out, sizeof out, "%s/expect.txt", dir);
	snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tokref.py %s > %s", WHISPER_TEST_DIR, model, out);
	VX_CHECK_INT(run(cmd), 0);
	wfile *f = open_model();
	FILE *fp = fopen(out, "r");
	VX_CHECK(f && fp);
	if (!f || !fp)
		goto out;
	wtok t;
	VX_CHECK_INT(wtok_init(&t, f), 0);
	char line[8192];
	int n_lines = 0;
	while (fgets(line, sizeof line, fp)) {
		char *tab = strchr(line, '\t');
		if (!tab)
			continue;
		*tab = 0;
		char text[2048];
		size_t tl = strlen(line) / 2;
		for (size_t i = 0; i < tl; i++)
			sscanf(line + 2 * i, "%2hhx", (unsigned char *)&text[i]);
		int32_t want[512], got[512];
		int nw = 0;
		for (char *p = tab + 1, *e; nw < 512; p = e) {
			long v = strtol(p, &e, 10);
			if (e == p)
				break;
			want[nw++] = (int32_t)v;
		}
		int ng = wtok_encode(&t, text, tl, got, 512);
		int same = ng == nw && !memcmp(got, want, sizeof *got * (size_t)nw);
		if (!same) {
			fprintf(stderr, "  \"%.*s\": %d ids, reference %d\n", (int)tl, text, ng, nw);
			vx_test_case_failed = 1;
		}
		/* decoding gives the text back */
		char dec[2048];
		size_t dl = 0;
		for (int i = 0; i < ng && i < 512; i++) {
			size_t bl;
			const uint8_t *b = wtok_bytes(&t, got[i], &bl);
			VX_CHECK(b != NULL);
			if (b && dl + bl < sizeof dec) {
				memcpy(dec + dl, b, bl);
				dl += bl;
			}
		}
		VX_CHECK(dl == tl && !memcmp(dec, text, tl));
		n_lines++;
	}
	VX_CHECK_INT(n_lines, 20);
	/* too small an output: the count needed, nothing written past max */
	int32_t two[3] = { -7, -7, -7 };
	VX_CHECK(wtok_encode(&t, "hello world again", 17, two, 2) > 2 && two[2] == -7);
	wtok_release(&t);
out:
	if (fp)
		fclose(fp);
	wfile_close(f);
}

VX_TEST(special_and_timestamp_tokens_of_an_english_model)
{
	wfile *f = open_model();
	VX_CHECK(f != NULL);
	if (!f)
		return;
	wtok t;
	char buf[64];
	size_t n;
	VX_CHECK_INT(wtok_init(&t, f), 0);
	VX_CHECK(!t.multilingual);
	VX_CHECK_INT(t.eot, 50256);
	VX_CHECK_INT(t.sot, 50257);
	VX_CHECK_INT(t.transcribe, 50358);
	VX_CHECK_INT(t.notimestamps, 50362);
	VX_CHECK_INT(t.beg, 50363);
	VX_CHECK(wtok_bytes(&t, t.eot, &n) == NULL);   /* stored, but special */
	VX_CHECK(wtok_bytes(&t, -1, &n) == NULL && wtok_bytes(&t, 51864, &n) == NULL);
	VX_CHECK_STR(wtok_name(&t, t.eot, buf, sizeof buf), "<|endoftext|>");
	VX_CHECK_STR(wtok_name(&t, t.sot, buf, sizeof buf), "<|startoftranscript|>");
	VX_CHECK_STR(wtok_name(&t, t.notimestamps, buf, sizeof buf), "<|notimestamps|>");
	VX_CHECK_STR(wtok_name(&t, t.beg, buf, sizeof buf), "<|0.00|>");
	VX_CHECK_STR(wtok_name(&t, t.beg + 61, buf, sizeof buf), "<|1.22|>");
	VX_CHECK_INT(wtok_timestamp_ms(&t, t.beg + 1500), 30000);
	VX_CHECK_INT(wtok_timestamp_ms(&t, t.notimestamps), -1);
	VX_CHECK_INT(wtok_language(&t, "en"), -1);
	VX_CHECK_STR(wtok_name(&t, 262 - 256 + 256, buf, sizeof buf), wtok_name(&t, 262, buf, sizeof buf));
	wtok_release(&t);
	wfile_close(f);
}

VX_TEST(multilingual_vocabularies_shift_the_specials)
{
	wfile *f = open_model();
	VX_CHECK(f != NULL);
	if (!f)
		return;
	wtok t;
	char buf[64];
	f->hp.n_vocab = 51865;   /* as a multilingual file's hparams say */
	VX_CHECK_INT(wtok_init(&t, f), 0);
	VX_CHECK(t.multilingual);
	VX_CHECK_INT(t.eot, 50257);
	VX_CHECK_INT(t.sot, 50258);
	VX_CHECK_INT(t.translate, 50358);
	VX_CHECK_INT(t.transcribe, 50359);
	VX_CHECK_INT(t.notimestamps, 50363);
	VX_CHECK_INT(t.beg, 50364);
	VX_CHECK_INT(wtok_language(&t, "en"), 50259);
	VX_CHECK_INT(wtok_language(&t, "de"), 50261);
	VX_CHECK_STR(wtok_name(&t, 50259 + 2, buf, sizeof buf), "<|de|>");
	wtok_release(&t);
	f->hp.n_vocab = 51866;   /* large-v3: 100 languages (yue) */
	VX_CHECK_INT(wtok_init(&t, f), 0);
	VX_CHECK_INT(t.transcribe, 50360);
	VX_CHECK_INT(t.beg, 50365);
	VX_CHECK_INT(wtok_language(&t, "yue"), 50358);
	wtok_release(&t);
	wfile_close(f);
}

int main(void)
{
	char cmd[512];
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	/* WHISPER_TOK_MODEL=file.bin: a model of your own (e.g. one written with
	 * mkwhisper.py --vocab-from a real ggml file, for GPT-2's vocabulary) */
	const char *own = getenv("WHISPER_TOK_MODEL");
	snprintf(model, sizeof model, "%s", own ? own : "");
	if (!own)
		snprintf(model, sizeof model, "%s/m.bin", dir);
	snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/mkwhisper.py %s --type q8_0", WHISPER_TEST_DIR,
		 model);
	if (!own && run(cmd) != 0) {
		fprintf(stderr, "test_whisper_tok: cannot write the test model (python3, numpy?)\n");
		return 1;
	}
	vx_test_fn fns[] = { encodings_match_the_python_reference_and_round_trip,
			     special_and_timestamp_tokens_of_an_english_model,
			     multilingual_vocabularies_shift_the_specials };
	int rc = vx_test_run("encodings_match_the_python_reference_and_round_trip, "
			     "special_and_timestamp_tokens_of_an_english_model, "
			     "multilingual_vocabularies_shift_the_specials", fns, 3);
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	run(cmd);
	return rc;
}
