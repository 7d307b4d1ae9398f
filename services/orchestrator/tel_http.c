/*
 * tel_http.c - the webhooks a phone number calls when a call comes in:
 * POST /twilio/voice answers TwiML and POST /telnyx/voice TeXML that
 * connect the call to /ws/twilio or /ws/telnyx (a bidirectional stream).
 * With --twilio-auth-token, a Twilio request must carry a good
 * X-Twilio-Signature, and with --telnyx-public-key a Telnyx one a good
 * telnyx-signature-ed25519 from the last 5 minutes (else 403). See tel.h
 * and docs/telephony.md.
 */
#include "tel.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vx_audio.h"
#include "vx_log.h"
#include "vx_req.h"

#define TEL_MAX_PARAMS 256       /* POST parameters of one webhook */
#define TEL_URL_MAX 1024

typedef struct tel_param {
	char *name, *value;      /* decoded, NUL-terminated */
} tel_param;

static int hexval(int c)
{
	return isdigit(c) ? c - '0' : isxdigit(c) ? (tolower(c) - 'a' + 10) : -1;
}

/* Decodes one form-urlencoded token (+ is a space) into a new string. */
static char *form_decode(const char *s, size_t n)
{
	char *out = malloc(n + 1), *o = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '+') {
			*o++ = ' ';
		} else if (s[i] == '%' && i + 2 < n && hexval((unsigned char)s[i + 1]) >= 0 &&
			   hexval((unsigned char)s[i + 2]) >= 0) {
			*o++ = (char)(hexval((unsigned char)s[i + 1]) * 16 +
				      hexval((unsigned char)s[i + 2]));
			i += 2;
		} else {
			*o++ = s[i];
		}
	}
	*o = 0;
	return out;
}

static void params_free(tel_param *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(p[i].name);
		free(p[i].value);
	}
	free(p);
}

/* Splits an application/x-www-form-urlencoded body. */
static int params_parse(const char *body, size_t len, tel_param **ret, size_t *ret_n)
{
	tel_param *p = NULL;
	size_t n = 0;
	const char *s = body, *end = body + len;
	while (s < end) {
		const char *amp = memchr(s, '&', (size_t)(end - s));
		const char *e = amp ? amp : end;
		if (e > s) {
			if (n == TEL_MAX_PARAMS) {
				params_free(p, n);
				return -EINVAL;
			}
			if (n % 16 == 0) {
				tel_param *q = realloc(p, (n + 16) * sizeof(*p));
				if (!q) {
					params_free(p, n);
					return -ENOMEM;
				}
				p = q;
			}
			const char *eq = memchr(s, '=', (size_t)(e - s));
			const char *ne = eq ? eq : e;
			p[n].name = form_decode(s, (size_t)(ne - s));
			p[n].value = eq ? form_decode(eq + 1, (size_t)(e - eq - 1)) : strdup("");
			if (!p[n].name || !p[n].value) {
				params_free(p, n + 1);
				return -ENOMEM;
			}
			n++;
		}
		s = e + 1;
	}
	*ret = p;
	*ret_n = n;
	return 0;
}

static int param_cmp(const void *a, const void *b)
{
	const tel_param *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : strcmp(x->value, y->value);
}

static const char *param_get(const tel_param *p, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(p[i].name, name))
			return p[i].value;
	return NULL;
}

int tel_twilio_signature(const char *token, const char *url, const char *body,
			 size_t len, char out[29])
{
	tel_param *p = NULL;
	size_t n = 0;
	int r = params_parse(body, len, &p, &n);
	if (r < 0)
		return r;
	qsort(p, n, sizeof(*p), param_cmp);
	vx_buf data = {0}, b64 = {0};
	vx_buf_puts(&data, url);
	for (size_t i = 0; i < n; i++) {
		vx_buf_puts(&data, p[i].name);
		vx_buf_puts(&data, p[i].value);
	}
	params_free(p, n);
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned mac_len = 0;
	r = -ENOMEM;
	if (data.data && HMAC(EVP_sha1(), token, (int)strlen(token),
			      (const unsigned char *)data.data, data.len, mac, &mac_len) &&
	    vx_base64_encode(mac, mac_len, &b64) >= 0 && b64.len == 28) {
		memcpy(out, b64.data, 29);
		r = 0;
	}
	vx_buf_release(&data);
	vx_buf_release(&b64);
	return r;
}

/* The public https base (no trailing slash): --public-url, else the
 * request's (X-Forwarded-)Host, https unless X-Forwarded-Proto says http. */
static void public_base(vx_req *req, const orch_service *svc, char *out, size_t cap)
{
	if (svc->public_url && *svc->public_url) {
		snprintf(out, cap, "%s", svc->public_url);
	} else {
		const char *host = vx_req_header(req, "X-Forwarded-Host");
		const char *proto = vx_req_header(req, "X-Forwarded-Proto");
		if (!host)
			host = vx_req_header(req, "Host");
		snprintf(out, cap, "%s://%.*s", proto && !strcmp(proto, "http") ? "http" : "https",
			 (int)strcspn(host ? host : "localhost", ", "), host ? host : "localhost");
	}
	size_t n = strlen(out);
	while (n && out[n - 1] == '/')
		out[--n] = 0;
}

/* The stream URL: the base with ws(s):// for http(s)://. */
static void stream_url(const char *base, const char *path, char *out, size_t cap)
{
	if (!strncmp(base, "https://", 8))
		snprintf(out, cap, "wss://%s%s", base + 8, path);
	else if (!strncmp(base, "http://", 7))
		snprintf(out, cap, "ws://%s%s", base + 7, path);
	else
		snprintf(out, cap, "%s%s", base, path);
}

static void xml_escape(vx_buf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': vx_buf_puts(b, "&amp;"); break;
		case '<': vx_buf_puts(b, "&lt;"); break;
		case '>': vx_buf_puts(b, "&gt;"); break;
		case '"': vx_buf_puts(b, "&quot;"); break;
		case '\'': vx_buf_puts(b, "&apos;"); break;
		default:
			if ((unsigned char)*s >= 0x20 || *s == '\t')
				vx_buf_append(b, s, 1);
		}
	}
}

/* Checks X-Twilio-Signature when a token is set; false after answering 403. */
static bool twilio_signed(vx_req *req, const orch_service *svc, const char *base)
{
	if (!svc->twilio_auth_token || !*svc->twilio_auth_token)
		return true;
	const char *sig = vx_req_header(req, "X-Twilio-Signature");
	char url[TEL_URL_MAX], want[29];
	snprintf(url, sizeof(url), "%s%s", base, vx_req_path(req));
	size_t len;
	const char *body = vx_req_body(req, &len);
	int r = tel_twilio_signature(svc->twilio_auth_token, url, body ? body : "",
				     body ? len : 0, want);
	if (r == 0 && sig && strlen(sig) == 28 && CRYPTO_memcmp(sig, want, 28) == 0)
		return true;
	vx_log_warn(vx_req_id(req), "POST %s: %s X-Twilio-Signature (signed URL %s)",
		    vx_req_path(req), sig ? "bad" : "no", url);
	vx_req_error(req, 403, "bad_signature", "X-Twilio-Signature %s for %s",
		     sig ? "does not match" : "missing", url);
	return false;
}

int tel_telnyx_key_parse(const char *b64, unsigned char key[32])
{
	vx_buf raw = {0};
	int r = vx_base64_decode(b64, strlen(b64), &raw) < 0 || raw.len != 32 ? -EINVAL : 0;
	if (r == 0)
		memcpy(key, raw.data, 32);
	vx_buf_release(&raw);
	return r;
}

int tel_telnyx_verify(const unsigned char key[32], const char *timestamp, const char *sig_b64,
		      const char *body, size_t len, long long now, const char **why)
{
	char *end = NULL;
	if (!timestamp || !sig_b64)
		return *why = "missing (telnyx-timestamp and telnyx-signature-ed25519)", -EINVAL;
	long long ts = strtoll(timestamp, &end, 10);
	if (!*timestamp || *end || ts < now - TEL_TELNYX_TOLERANCE_S ||
	    ts > now + TEL_TELNYX_TOLERANCE_S)
		return *why = "has a telnyx-timestamp more than 5 minutes from now", -EINVAL;
	vx_buf sig = {0}, msg = {0};
	vx_buf_puts(&msg, timestamp);
	vx_buf_puts(&msg, "|");
	vx_buf_append(&msg, body, len);
	EVP_PKEY *pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, key, 32);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok = pk && md && msg.data && vx_base64_decode(sig_b64, strlen(sig_b64), &sig) >= 0 &&
		 sig.len == 64 && EVP_DigestVerifyInit(md, NULL, NULL, NULL, pk) == 1 &&
		 EVP_DigestVerify(md, (const unsigned char *)sig.data, sig.len,
				  (const unsigned char *)msg.data, msg.len) == 1;
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pk);
	vx_buf_release(&sig);
	vx_buf_release(&msg);
	*why = "does not match";
	return ok ? 0 : -EINVAL;
}

/* Checks telnyx-signature-ed25519 when a key is set; false after 403. */
static bool telnyx_signed(vx_req *req, const orch_service *svc)
{
	if (!svc->telnyx_public_key || !*svc->telnyx_public_key)
		return true;
	size_t len;
	const char *body = vx_req_body(req, &len), *why = NULL;
	if (tel_telnyx_verify(svc->telnyx_key, vx_req_header(req, "telnyx-timestamp"),
			      vx_req_header(req, "telnyx-signature-ed25519"), body ? body : "",
			      body ? len : 0, (long long)time(NULL), &why) == 0)
		return true;
	vx_log_warn(vx_req_id(req), "POST %s: Telnyx signature %s", vx_req_path(req), why);
	vx_req_error(req, 403, "bad_signature", "telnyx-signature-ed25519 %s", why);
	return false;
}

/* TwiML or TeXML: <Connect><Stream> to the provider's socket, with the
 * caller's numbers as custom parameters. */
static void answer_connect(vx_req *req, orch_service *svc, bool twilio)
{
	char base[TEL_URL_MAX], url[TEL_URL_MAX + 16];
	public_base(req, svc, base, sizeof(base));
	if (twilio ? !twilio_signed(req, svc, base) : !telnyx_signed(req, svc))
		return;
	size_t len;
	const char *body = vx_req_body(req, &len);
	tel_param *p = NULL;
	size_t n = 0;
	if (params_parse(body ? body : "", body ? len : 0, &p, &n) < 0) {
		vx_req_error(req, 400, "bad_request", "the body is not form parameters");
		return;
	}
	stream_url(base, twilio ? "/ws/twilio" : "/ws/telnyx", url, sizeof(url));
	vx_buf b = {0};
	vx_buf_puts(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Connect>"
		    "<Stream url=\"");
	xml_escape(&b, url);
	vx_buf_puts(&b, twilio ? "\">" : "\" bidirectionalMode=\"rtp\">");
	static const char *const fwd[][2] = { { "From", "from" }, { "To", "to" } };
	for (size_t i = 0; i < 2; i++) {
		const char *v = param_get(p, n, fwd[i][0]);
		if (!v)
			continue;
		vx_buf_printf(&b, "<Parameter name=\"%s\" value=\"", fwd[i][1]);
		xml_escape(&b, v);
		vx_buf_puts(&b, "\"/>");
	}
	vx_buf_puts(&b, "</Stream></Connect></Response>\n");
	params_free(p, n);
	vx_req_reply_buf(req, 200, "application/xml", &b);
}

void tel_handle_twilio_voice(vx_req *req, void *user)
{
	answer_connect(req, user, true);
}

void tel_handle_telnyx_voice(vx_req *req, void *user)
{
	answer_connect(req, user, false);
}
