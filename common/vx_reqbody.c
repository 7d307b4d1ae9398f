/* vx_reqbody.c - request bodies as audio or JSON; see vx_reqbody.h. */
#include "vx_reqbody.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

bool vx_utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;
	while (i < len) {
		unsigned c = s[i];
		size_t n;
		unsigned min;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xE0) == 0xC0) {
			n = 1, min = 0x80, c &= 0x1F;
		} else if ((c & 0xF0) == 0xE0) {
			n = 2, min = 0x800, c &= 0x0F;
		} else if ((c & 0xF8) == 0xF0) {
			n = 3, min = 0x10000, c &= 0x07;
		} else {
			return false;
		}
		if (len - i <= n)
			return false;   /* truncated sequence */
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return false;
			c = (c << 6) | (s[i + k] & 0x3F);
		}
		if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
			return false;
		i += n + 1;
	}
	return true;
}

const char *vx_reqbody_param(vx_req *req, const char *name)
{
	const vx_form_field *f;
	if (vx_req_form(req, name, &f) == 0 && !f->filename)
		return f->data;
	return vx_req_query(req, name);
}

int vx_reqbody_int(vx_req *req, const char *name, int def, int min, int max,
		   int *ret)
{
	const char *v = vx_reqbody_param(req, name);
	if (!v) {
		*ret = def;
		return 0;
	}
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < min || n > max) {
		vx_req_error(req, 400, "bad_parameter",
			     "%s must be an integer from %d to %d", name, min, max);
		return -EINVAL;
	}
	*ret = (int)n;
	return 0;
}

/* Picks the audio bytes and how to read them. Answers and fails on error. */
static int audio_source(vx_req *req, const char **ret_data, size_t *ret_len,
			vx_audio_in *ret_in)
{
	const char *mt = vx_req_media_type(req);
	int r;
	if (!strcmp(mt, "multipart/form-data")) {
		const vx_form_field *f;
		r = vx_req_form(req, "file", &f);
		if (r == -ENOENT) {
			vx_req_error(req, 400, "missing_file",
				     "multipart body has no \"file\" field");
			return r;
		}
		if (r < 0) {
			vx_req_error(req, 400, "bad_multipart",
				     "malformed multipart/form-data body");
			return r;
		}
		*ret_data = f->data;
		*ret_len = f->len;
		const char *ct = f->content_type;
		if (!ct || vx_audio_in_from_mime(ct, ret_in) < 0)
			*ret_in = (vx_audio_in){ .encoding = VX_ENC_AUTO };
	} else {
		if (!mt[0]) {
			vx_req_error(req, 415, "unsupported_media_type",
				     "send audio as multipart field \"file\" "
				     "or a body with an audio Content-Type");
			return -EMEDIUMTYPE;
		}
		if (vx_audio_in_from_mime(vx_req_content_type(req), ret_in) < 0) {
			vx_req_error(req, 415, "unsupported_media_type",
				     "Content-Type %s is not audio", mt);
			return -EMEDIUMTYPE;
		}
		*ret_data = vx_req_body(req, ret_len);
	}
	const char *enc = vx_reqbody_param(req, "encoding");
	if (enc && vx_encoding_from_name(enc, &ret_in->encoding) < 0) {
		vx_req_error(req, 400, "bad_encoding",
			     "encoding must be pcm16, mulaw or alaw");
		return -EINVAL;
	}
	const char *rate = vx_reqbody_param(req, "sample_rate");
	if (rate)
		ret_in->rate = atoi(rate);
	if (!*ret_len) {
		vx_req_error(req, 400, "empty_audio", "the audio is empty");
		return -EINVAL;
	}
	return 0;
}

int vx_reqbody_audio(vx_req *req, int rate, double max_seconds, vx_pcm *ret)
{
	const char *data;
	size_t len;
	vx_audio_in in = {0};
	int r = audio_source(req, &data, &len, &in);
	if (r < 0)
		return r;
	if (in.encoding != VX_ENC_AUTO && in.rate <= 0) {
		vx_req_error(req, 400, "missing_sample_rate",
			     "headerless audio needs a rate (audio/L16;rate=N "
			     "or sample_rate=N)");
		return -EINVAL;
	}
	/* Limit in frames at the source rate; unknown rate: assume 48 kHz. */
	double src_rate = in.rate > 0 ? in.rate : 48000;
	vx_pcm pcm = {0};
	r = vx_audio_decode(data, len, &in, (size_t)(max_seconds * src_rate) + 1,
			    &pcm);
	if (r == -E2BIG) {
		vx_req_error(req, 413, "audio_too_long",
			     "audio is longer than the limit of %.0f s",
			     max_seconds);
		return r;
	}
	if (r == -ENOTSUP) {
		vx_req_error(req, 415, "unsupported_audio",
			     "audio format, rate or channel count not supported");
		return r;
	}
	if (r < 0) {
		vx_req_error(req, 400, "bad_audio",
			     "audio could not be decoded (truncated, corrupt "
			     "or not audio)");
		return r;
	}
	if ((double)pcm.frames / pcm.rate > max_seconds) {
		vx_pcm_release(&pcm);
		vx_req_error(req, 413, "audio_too_long",
			     "audio is longer than the limit of %.0f s",
			     max_seconds);
		return -E2BIG;
	}
	if (pcm.frames == 0) {
		vx_pcm_release(&pcm);
		vx_req_error(req, 400, "empty_audio", "the audio has no samples");
		return -EINVAL;
	}
	r = vx_audio_convert(&pcm, rate, 1);
	if (r < 0) {
		vx_pcm_release(&pcm);
		vx_req_error(req, 500, "resample_failed",
			     "could not convert the audio (%s)", strerror(-r));
		return r;
	}
	*ret = pcm;
	return 0;
}

int vx_reqbody_json(vx_req *req, cJSON **ret)
{
	if (strcmp(vx_req_media_type(req), "application/json") != 0) {
		vx_req_error(req, 415, "unsupported_media_type",
			     "send a JSON body with Content-Type: application/json");
		return -EMEDIUMTYPE;
	}
	size_t len;
	const char *body = vx_req_body(req, &len);
	if (!len) {
		vx_req_error(req, 400, "empty_body", "the request body is empty");
		return -EINVAL;
	}
	if (!vx_utf8_valid(body, len)) {
		vx_req_error(req, 400, "invalid_utf8",
			     "the request body is not valid UTF-8");
		return -EILSEQ;
	}
	cJSON *j = cJSON_ParseWithLength(body, len);
	if (!j) {
		vx_req_error(req, 400, "invalid_json",
			     "the request body is not valid JSON");
		return -EINVAL;
	}
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		vx_req_error(req, 400, "invalid_json",
			     "the request body must be a JSON object");
		return -EINVAL;
	}
	*ret = j;
	return 0;
}
