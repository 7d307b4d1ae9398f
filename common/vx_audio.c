/*
 * vx_audio.c - decode, convert and encode audio; see vx_audio.h.
 *
 * Containers go through libsndfile's virtual I/O over memory (reading from
 * the body, writing into a vx_buf that libsndfile may seek back into to fix
 * up headers). Samples are read as float and rounded to int16 here, so float
 * and 24-bit files keep their level (libsndfile's own float -> short path
 * does not scale). Resampling is libsoxr's one-shot call.
 *
 * Ogg streams are checked before libsndfile sees them (ogg_check): Debian's
 * libsndfile 1.2.0 leaks its Vorbis decoder state (about 6 KB) on every
 * Vorbis stream whose header packets are missing or bad, and ignores a bad
 * comment or setup header. So the first logical stream's header packets
 * must all be there and valid: identification, comment and setup for Vorbis
 * (checked by libvorbis itself), OpusHead and OpusTags for Opus (checked
 * here against RFC 7845). Other Ogg codecs (FLAC) go to libsndfile as-is.
 */
#include "vx_audio.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ogg/ogg.h>
#include <sndfile.h>
#include <soxr.h>
#include <vorbis/codec.h>

/* Frames decoded per libsndfile call. */
#define VX_AUDIO_DECODE_CHUNK 4096
/* Frames encoded per libsndfile call. */
#define VX_AUDIO_ENCODE_CHUNK 16384
/* A WAV's data chunk size is 32 bits. */
#define VX_AUDIO_WAV_MAX_BYTES 0xffffffc0u

void vx_pcm_release(vx_pcm *pcm)
{
	if (!pcm)
		return;
	free(pcm->data);
	memset(pcm, 0, sizeof(*pcm));
}

static int rate_ok(int rate)
{
	return rate >= VX_AUDIO_MIN_RATE && rate <= VX_AUDIO_MAX_RATE;
}

static int channels_ok(int channels)
{
	return channels >= 1 && channels <= VX_AUDIO_MAX_CHANNELS;
}

/* ---- names and MIME types ---------------------------------------------- */

/* Compares the n bytes at s with the NUL-terminated word, ignoring case. */
static int word_is(const char *s, size_t n, const char *word)
{
	return strlen(word) == n && strncasecmp(s, word, n) == 0;
}

static int in_list(const char *s, size_t n, const char *const *list)
{
	for (; *list; list++)
		if (word_is(s, n, *list))
			return 1;
	return 0;
}

/* Parses a decimal parameter value, quoted or not, into 1..max. */
static int parse_param_int(const char *v, size_t n, int max, int *ret)
{
	if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
		v++;
		n -= 2;
	}
	if (n == 0 || n > 9)
		return -EINVAL;
	long x = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -EINVAL;
		x = x * 10 + (v[i] - '0');
	}
	if (x < 1 || x > max)
		return -EINVAL;
	*ret = (int)x;
	return 0;
}

static const char *const mime_auto[] = {
	"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave",
	"audio/flac", "audio/x-flac", "audio/ogg", "audio/opus",
	"audio/vorbis", "application/ogg", "audio/aiff", "audio/x-aiff",
	"audio/mpeg", "audio/mp3", "audio/x-caf", "audio/x-w64",
	"application/octet-stream", "audio/*", NULL,
};
static const char *const mime_pcm16[] = {
	"audio/l16", "audio/pcm", "audio/raw", "audio/x-raw", "audio/s16le",
	NULL,
};
static const char *const mime_mulaw[] = {
	"audio/pcmu", "audio/basic", "audio/mulaw", "audio/x-mulaw",
	"audio/ulaw", NULL,
};
static const char *const mime_alaw[] = {
	"audio/pcma", "audio/alaw", "audio/x-alaw", NULL,
};
/* Audio, but no container libsndfile reads. */
static const char *const mime_unsupported[] = {
	"audio/webm", "audio/mp4", "audio/aac", "audio/x-m4a", "audio/m4a",
	"audio/3gpp", "audio/amr", NULL,
};

int vx_audio_in_from_mime(const char *mime, vx_audio_in *ret)
{
	if (!ret)
		return -EINVAL;
	vx_audio_in in = { VX_ENC_AUTO, 0, 0 };
	if (!mime)
		mime = "";
	const char *p = mime + strspn(mime, " \t");
	size_t n = strcspn(p, ";");
	const char *params = p + n;
	while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;

	if (n == 0 || in_list(p, n, mime_auto))
		in.encoding = VX_ENC_AUTO;
	else if (in_list(p, n, mime_pcm16))
		in.encoding = VX_ENC_PCM16;
	else if (in_list(p, n, mime_mulaw))
		in.encoding = VX_ENC_MULAW;
	else if (in_list(p, n, mime_alaw))
		in.encoding = VX_ENC_ALAW;
	else if (in_list(p, n, mime_unsupported))
		return -ENOTSUP;
	else if (n > 6 && strncasecmp(p, "audio/", 6) == 0)
		in.encoding = VX_ENC_AUTO; /* let libsndfile try */
	else
		return -ENOTSUP;
	if (in.encoding == VX_ENC_MULAW || in.encoding == VX_ENC_ALAW)
		in.rate = 8000;

	while (*params == ';') {
		const char *name = params + 1 + strspn(params + 1, " \t");
		size_t len = strcspn(name, ";");
		params = name + len;
		const char *eq = memchr(name, '=', len);
		if (!eq)
			continue;
		size_t nlen = (size_t)(eq - name);
		while (nlen && (name[nlen - 1] == ' ' || name[nlen - 1] == '\t'))
			nlen--;
		const char *v = eq + 1 + strspn(eq + 1, " \t");
		size_t vlen = (size_t)(params - v);
		while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
			vlen--;
		int r = 0;
		if (word_is(name, nlen, "rate"))
			r = parse_param_int(v, vlen, VX_AUDIO_MAX_RATE, &in.rate);
		else if (word_is(name, nlen, "channels"))
			r = parse_param_int(v, vlen, VX_AUDIO_MAX_CHANNELS,
					    &in.channels);
		if (r < 0)
			return r;
	}
	*ret = in;
	return 0;
}

int vx_encoding_from_name(const char *name, vx_encoding *ret)
{
	static const char *const pcm16[] = { "pcm16", "pcm", "s16le",
					     "pcm_s16le", "linear16", NULL };
	static const char *const mulaw[] = { "mulaw", "ulaw", "pcmu",
					     "g711_ulaw", NULL };
	static const char *const alaw[] = { "alaw", "pcma", "g711_alaw", NULL };
	if (!name || !ret)
		return -EINVAL;
	size_t n = strlen(name);
	if (in_list(name, n, pcm16))
		*ret = VX_ENC_PCM16;
	else if (in_list(name, n, mulaw))
		*ret = VX_ENC_MULAW;
	else if (in_list(name, n, alaw))
		*ret = VX_ENC_ALAW;
	else
		return -EINVAL;
	return 0;
}

const char *vx_encoding_name(vx_encoding e)
{
	return e == VX_ENC_MULAW ? "mulaw" : e == VX_ENC_ALAW ? "alaw" : "pcm16";
}

static const struct {
	const char *name;
	vx_format format;
} format_names[] = {
	{ "wav", VX_FMT_WAV },     { "wave", VX_FMT_WAV },
	{ "pcm", VX_FMT_PCM },     { "pcm16", VX_FMT_PCM },
	{ "flac", VX_FMT_FLAC },   { "opus", VX_FMT_OPUS },
	{ "ogg", VX_FMT_OPUS },    { "mp3", VX_FMT_MP3 },
	{ "mulaw", VX_FMT_MULAW }, { "ulaw", VX_FMT_MULAW },
	{ "pcmu", VX_FMT_MULAW },  { "alaw", VX_FMT_ALAW },
	{ "pcma", VX_FMT_ALAW },
};

int vx_format_from_name(const char *name, vx_format *ret)
{
	if (!name || !ret)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(format_names) / sizeof(format_names[0]); i++) {
		if (strcasecmp(name, format_names[i].name) == 0) {
			*ret = format_names[i].format;
			return 0;
		}
	}
	return -EINVAL;
}

const char *vx_format_mime(vx_format f)
{
	switch (f) {
	case VX_FMT_WAV: return "audio/wav";
	case VX_FMT_PCM: return "audio/pcm";
	case VX_FMT_FLAC: return "audio/flac";
	case VX_FMT_OPUS: return "audio/ogg";
	case VX_FMT_MP3: return "audio/mpeg";
	case VX_FMT_MULAW: return "audio/pcmu";
	case VX_FMT_ALAW: return "audio/pcma";
	}
	return "application/octet-stream";
}

/* ---- libsndfile virtual I/O over memory ---------------------------------- */

/* A read-only file over the request body. */
struct mem_reader {
	const unsigned char *data;
	sf_count_t len;
	sf_count_t pos;   /* may be past len; reads there return 0 */
};

static sf_count_t mr_get_filelen(void *user)
{
	return ((struct mem_reader *)user)->len;
}

static sf_count_t mr_seek(sf_count_t offset, int whence, void *user)
{
	struct mem_reader *m = user;
	sf_count_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? m->pos : m->len;
	if (whence != SEEK_SET && whence != SEEK_CUR && whence != SEEK_END)
		return -1;
	if (offset < -base || offset > INT64_MAX - base)
		return -1;
	m->pos = base + offset;
	return m->pos;
}

static sf_count_t mr_read(void *ptr, sf_count_t count, void *user)
{
	struct mem_reader *m = user;
	if (count <= 0 || m->pos >= m->len)
		return 0;
	sf_count_t n = m->len - m->pos < count ? m->len - m->pos : count;
	memcpy(ptr, m->data + m->pos, (size_t)n);
	m->pos += n;
	return n;
}

static sf_count_t mr_write(const void *ptr, sf_count_t count, void *user)
{
	(void)ptr;
	(void)count;
	(void)user;
	return 0;
}

static sf_count_t mr_tell(void *user)
{
	return ((struct mem_reader *)user)->pos;
}

/* A seekable file appended to a vx_buf: bytes [base, out->len) are the file. */
struct mem_writer {
	vx_buf *out;
	size_t base;   /* out->len when the file was opened */
	size_t pos;    /* relative to base */
	int err;       /* first failure (-ENOMEM), 0 if none */
};

static sf_count_t mw_get_filelen(void *user)
{
	struct mem_writer *m = user;
	return (sf_count_t)(m->out->len - m->base);
}

static sf_count_t mw_seek(sf_count_t offset, int whence, void *user)
{
	struct mem_writer *m = user;
	sf_count_t len = (sf_count_t)(m->out->len - m->base);
	sf_count_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? (sf_count_t)m->pos : len;
	if (whence != SEEK_SET && whence != SEEK_CUR && whence != SEEK_END)
		return -1;
	if (offset < -base || offset > (sf_count_t)((size_t)-1 / 4) - base)
		return -1;
	m->pos = (size_t)(base + offset);
	return (sf_count_t)m->pos;
}

static sf_count_t mw_read(void *ptr, sf_count_t count, void *user)
{
	struct mem_writer *m = user;
	size_t len = m->out->len - m->base;
	if (count <= 0 || m->pos >= len)
		return 0;
	size_t n = len - m->pos < (size_t)count ? len - m->pos : (size_t)count;
	memcpy(ptr, m->out->data + m->base + m->pos, n);
	m->pos += n;
	return (sf_count_t)n;
}

static sf_count_t mw_write(const void *ptr, sf_count_t count, void *user)
{
	struct mem_writer *m = user;
	if (count <= 0)
		return 0;
	vx_buf *b = m->out;
	size_t at = m->base + m->pos;
	if ((size_t)count > (size_t)-1 / 4 || at > (size_t)-1 / 4) {
		m->err = -ENOMEM;
		return 0;
	}
	size_t end = at + (size_t)count;
	if (end > b->len) {
		if (vx_buf_reserve(b, end - b->len) < 0) {
			m->err = -ENOMEM;
			return 0;
		}
		if (at > b->len) /* seeked past the end: the gap reads as zeros */
			memset(b->data + b->len, 0, at - b->len);
	}
	memcpy(b->data + at, ptr, (size_t)count);
	if (end > b->len) {
		b->len = end;
		b->data[b->len] = '\0';
	}
	m->pos += (size_t)count;
	return count;
}

static sf_count_t mw_tell(void *user)
{
	return (sf_count_t)((struct mem_writer *)user)->pos;
}

/* ---- decoding ----------------------------------------------------------- */

static int16_t float_to_s16(float f)
{
	float v = f * 32768.0f;
	if (v >= 32767.0f)
		return 32767;
	if (v <= -32768.0f)
		return -32768;
	if (v != v)
		return 0; /* NaN */
	return (int16_t)lrintf(v);
}

/* Frames that fit max_frames and a size_t of bytes for channels. */
static size_t frames_cap(size_t max_frames, int channels)
{
	size_t lim = (size_t)-1 / 4 / sizeof(int16_t) / (size_t)channels;
	return max_frames < lim ? max_frames : lim;
}

/* Reads every frame of sf as int16, refusing more than max_frames. */
static int sndfile_read_all(SNDFILE *sf, const SF_INFO *info, size_t max_frames,
			    vx_pcm *ret)
{
	size_t ch = (size_t)info->channels;
	size_t cap = 0, got = 0;
	int16_t *data = NULL;
	int r;
	float *chunk = malloc(VX_AUDIO_DECODE_CHUNK * ch * sizeof(float));
	if (!chunk)
		return -ENOMEM;
	/* The container's count is a hint only: reads below stop at the cap. */
	if (info->frames > 0 && (uint64_t)info->frames <= max_frames)
		cap = (size_t)info->frames;

	for (;;) {
		size_t left = max_frames - got;
		size_t want = left < VX_AUDIO_DECODE_CHUNK ? left + 1 : VX_AUDIO_DECODE_CHUNK;
		sf_count_t n = sf_readf_float(sf, chunk, (sf_count_t)want);
		if (n <= 0)
			break;
		if ((size_t)n > left) {
			r = -E2BIG;
			goto out_free_data;
		}
		if (!data || got + (size_t)n > cap) {
			size_t ncap = cap ? cap : VX_AUDIO_DECODE_CHUNK;
			while (ncap < got + (size_t)n)
				ncap *= 2;
			if (ncap > max_frames)
				ncap = max_frames;
			int16_t *p = realloc(data, ncap * ch * sizeof(*data));
			if (!p) {
				r = -ENOMEM;
				goto out_free_data;
			}
			data = p;
			cap = ncap;
		}
		for (size_t i = 0; i < (size_t)n * ch; i++)
			data[got * ch + i] = float_to_s16(chunk[i]);
		got += (size_t)n;
	}
	/* Truncated or corrupt: libsndfile said so, decoded nothing, or
	 * decoded fewer frames than the container promised. WAV-like
	 * containers already clamp their count to the data present, and an
	 * mp3 without a Xing/LAME tag only has an estimate, so only a
	 * decoder error refuses those. */
	if (sf_error(sf) != SF_ERR_NO_ERROR || got == 0 ||
	    ((info->format & SF_FORMAT_TYPEMASK) != SF_FORMAT_MPEG &&
	     info->frames > 0 && info->frames != SF_COUNT_MAX &&
	     got < (uint64_t)info->frames)) {
		r = -EBADMSG;
		goto out_free_data;
	}
	if (cap > got) {
		int16_t *p = realloc(data, got * ch * sizeof(*data));
		if (p)
			data = p;
	}
	ret->data = data;
	ret->frames = got;
	ret->rate = info->samplerate;
	ret->channels = info->channels;
	free(chunk);
	return 0;

out_free_data:
	free(data);
	free(chunk);
	return r;
}

/* ---- Ogg header check ---------------------------------------------------- */

/* Bytes fed to libogg at a time while looking for header pages. */
#define VX_OGG_FEED 4096

/* Where the container starts: after any ID3v2 tags, as libsndfile skips
 * them before it sniffs the format. */
static size_t skip_id3(const unsigned char *b, size_t len)
{
	size_t at = 0;
	while (len - at >= 10 && memcmp(b + at, "ID3", 3) == 0) {
		const unsigned char *h = b + at;
		if ((h[6] | h[7] | h[8] | h[9]) & 0x80)
			break;
		size_t size = (size_t)h[6] << 21 | (size_t)h[7] << 14 |
			      (size_t)h[8] << 7 | h[9];
		size = size + 10 + (h[5] & 0x10 ? 10 : 0);
		if (size > len - at)
			break;
		at += size;
	}
	return at;
}

/* The first logical stream of an Ogg buffer, packet by packet. */
struct ogg_reader {
	const unsigned char *buf;
	size_t len, fed;
	ogg_sync_state sync;
	ogg_stream_state stream;
	bool stream_init;
	bool eos;          /* the stream's last page is in */
};

/* The next page of any stream; 1, or 0 at the end of the buffer. */
static int ogg_next_page(struct ogg_reader *o, ogg_page *og)
{
	for (;;) {
		int r = ogg_sync_pageout(&o->sync, og);
		if (r == 1)
			return 1;
		if (r < 0)
			continue;   /* skipped junk (or a page with a bad CRC) */
		if (o->fed == o->len)
			return 0;
		size_t n = o->len - o->fed < VX_OGG_FEED ? o->len - o->fed : VX_OGG_FEED;
		char *dst = ogg_sync_buffer(&o->sync, (long)n);
		if (!dst)
			return 0;
		memcpy(dst, o->buf + o->fed, n);
		ogg_sync_wrote(&o->sync, (long)n);
		o->fed += n;
	}
}

/* The next packet of the first stream: 1, 0 when the stream or the buffer
 * ends first, -1 for a hole (a page missing). */
static int ogg_next_packet(struct ogg_reader *o, ogg_packet *op)
{
	for (;;) {
		int r = ogg_stream_packetout(&o->stream, op);
		if (r != 0)
			return r < 0 ? -1 : 1;
		ogg_page og;
		do {
			if (o->eos || !ogg_next_page(o, &og))
				return 0;
		} while (ogg_page_serialno(&og) != o->stream.serialno);
		if (ogg_page_eos(&og))
			o->eos = true;
		if (ogg_stream_pagein(&o->stream, &og) < 0)
			return -1;
	}
}

/* Vorbis I spec 4.2: the identification packet (already seen by the
 * caller) and the comment and setup packets, each checked by libvorbis. */
static int ogg_check_vorbis(struct ogg_reader *o, ogg_packet *ident)
{
	vorbis_info vi;
	vorbis_comment vc;
	vorbis_info_init(&vi);
	vorbis_comment_init(&vc);
	int r = vorbis_synthesis_headerin(&vi, &vc, ident) == 0 ? 0 : -EBADMSG;
	for (int i = 0; r == 0 && i < 2; i++) {
		ogg_packet op;
		if (ogg_next_packet(o, &op) != 1 ||
		    vorbis_synthesis_headerin(&vi, &vc, &op) != 0)
			r = -EBADMSG;
	}
	vorbis_comment_clear(&vc);
	vorbis_info_clear(&vi);
	return r;
}

static uint32_t get_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* RFC 7845 5.1: OpusHead, with its channel mapping table. */
static bool opus_head_ok(const unsigned char *p, size_t n)
{
	if (n < 19 || memcmp(p, "OpusHead", 8) != 0 || p[8] >> 4 != 0)
		return false;
	unsigned channels = p[9], family = p[18];
	if (channels == 0)
		return false;
	if (family == 0)
		return channels <= 2;
	if (n < 21 + (size_t)channels)
		return false;
	unsigned streams = p[19], coupled = p[20];
	if (streams == 0 || coupled > streams || streams + coupled > 255)
		return false;
	for (unsigned i = 0; i < channels; i++)
		if (p[21 + i] != 255 && p[21 + i] >= streams + coupled)
			return false;
	return true;
}

/* RFC 7845 5.2: OpusTags, a vendor string and counted comments that all
 * fit in the packet. */
static bool opus_tags_ok(const unsigned char *p, size_t n)
{
	if (n < 16 || memcmp(p, "OpusTags", 8) != 0)
		return false;
	size_t at = 8, left = n - 8;
	uint32_t vendor = get_le32(p + at);
	if (vendor > left - 8)
		return false;
	at += 4 + vendor;
	left -= 4 + vendor;
	uint32_t count = get_le32(p + at);
	at += 4;
	left -= 4;
	if (count > left / 4)
		return false;
	for (uint32_t i = 0; i < count; i++) {
		if (left < 4)
			return false;
		uint32_t len = get_le32(p + at);
		if (len > left - 4)
			return false;
		at += 4 + len;
		left -= 4 + len;
	}
	return true;
}

static int ogg_check_opus(struct ogg_reader *o, ogg_packet *head)
{
	if (!opus_head_ok(head->packet, (size_t)head->bytes))
		return -EBADMSG;
	ogg_packet tags;
	if (ogg_next_packet(o, &tags) != 1 ||
	    !opus_tags_ok(tags.packet, (size_t)tags.bytes))
		return -EBADMSG;
	return 0;
}

/* 0 when buf is not Ogg, or is Ogg whose first stream libsndfile can open
 * without harm (see the top of the file); -EBADMSG otherwise. */
static int ogg_check(const unsigned char *buf, size_t len)
{
	size_t at = skip_id3(buf, len);
	if (len - at < 4 || memcmp(buf + at, "OggS", 4) != 0)
		return 0;
	struct ogg_reader o = { .buf = buf + at, .len = len - at };
	ogg_sync_init(&o.sync);
	ogg_page og;
	ogg_packet first;
	int r = 0;
	if (!ogg_next_page(&o, &og) || !ogg_page_bos(&og)) {
		r = -EBADMSG;   /* libsndfile needs a first page too */
		goto out_clear;
	}
	ogg_stream_init(&o.stream, ogg_page_serialno(&og));
	o.stream_init = true;
	o.eos = ogg_page_eos(&og);
	if (ogg_stream_pagein(&o.stream, &og) < 0 ||
	    ogg_stream_packetout(&o.stream, &first) != 1) {
		r = -EBADMSG;
		goto out_clear;
	}
	bool vorbis = first.bytes >= 7 && memcmp(first.packet, "\x01vorbis", 7) == 0;
	bool opus = first.bytes >= 8 && memcmp(first.packet, "OpusHead", 8) == 0;
	if (!vorbis && !opus)
		goto out_clear;   /* FLAC or a codec libsndfile refuses */
	/* The first page holds the identification packet alone. */
	ogg_packet extra;
	if (ogg_page_packets(&og) != 1 ||
	    ogg_stream_packetpeek(&o.stream, &extra) != 0) {
		r = -EBADMSG;
		goto out_clear;
	}
	r = vorbis ? ogg_check_vorbis(&o, &first) : ogg_check_opus(&o, &first);

out_clear:
	if (o.stream_init)
		ogg_stream_clear(&o.stream);
	ogg_sync_clear(&o.sync);
	return r;
}

static int decode_sndfile(const void *buf, size_t len, size_t max_frames,
			  vx_pcm *ret)
{
	int r0 = ogg_check(buf, len);
	if (r0 < 0)
		return r0;
	struct mem_reader mr = { buf, (sf_count_t)len, 0 };
	SF_VIRTUAL_IO io = { mr_get_filelen, mr_seek, mr_read, mr_write, mr_tell };
	SF_INFO info;
	memset(&info, 0, sizeof(info));
	SNDFILE *sf = sf_open_virtual(&io, SFM_READ, &info, &mr);
	if (!sf)
		return -EBADMSG;
	int r;
	if (info.channels < 1 || info.samplerate < 1) {
		r = -EBADMSG;
		goto out_close;
	}
	if (!channels_ok(info.channels) || !rate_ok(info.samplerate)) {
		r = -ENOTSUP;
		goto out_close;
	}
	max_frames = frames_cap(max_frames, info.channels);
	/* Refuse what the container says is too long before decoding any of it
	 * (SF_COUNT_MAX means "unknown"). */
	if (info.frames != SF_COUNT_MAX && info.frames > 0 &&
	    (uint64_t)info.frames > max_frames) {
		r = -E2BIG;
		goto out_close;
	}
	r = sndfile_read_all(sf, &info, max_frames, ret);

out_close:
	sf_close(sf);
	return r;
}

/* Headerless PCM16 / G.711: the length alone says how many frames. */
static int decode_raw(const unsigned char *buf, size_t len, const vx_audio_in *in,
		      size_t max_frames, vx_pcm *ret)
{
	int ch = in->channels ? in->channels : 1;
	if (in->rate == 0)
		return -EINVAL; /* the caller must say the rate */
	if (!rate_ok(in->rate) || !channels_ok(ch))
		return -ENOTSUP;
	size_t bytes = in->encoding == VX_ENC_PCM16 ? 2 : 1;
	size_t bpf = bytes * (size_t)ch;
	if (len % bpf)
		return -EBADMSG;
	size_t frames = len / bpf;
	if (frames == 0)
		return -EBADMSG;
	if (frames > frames_cap(max_frames, ch))
		return -E2BIG;
	size_t n = frames * (size_t)ch;
	int16_t *data = malloc(n * sizeof(*data));
	if (!data)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (in->encoding == VX_ENC_PCM16)
			data[i] = (int16_t)(uint16_t)(buf[2 * i] | buf[2 * i + 1] << 8);
		else if (in->encoding == VX_ENC_MULAW)
			data[i] = vx_g711_ulaw_decode(buf[i]);
		else
			data[i] = vx_g711_alaw_decode(buf[i]);
	}
	ret->data = data;
	ret->frames = frames;
	ret->rate = in->rate;
	ret->channels = ch;
	return 0;
}

int vx_audio_decode(const void *buf, size_t len, const vx_audio_in *in,
		    size_t max_frames, vx_pcm *ret)
{
	static const vx_audio_in auto_in = { VX_ENC_AUTO, 0, 0 };
	if ((!buf && len) || !ret || max_frames == 0)
		return -EINVAL;
	if (!in)
		in = &auto_in;
	if (len == 0)
		return -EBADMSG;
	if (len > INT64_MAX)
		return -E2BIG;
	vx_pcm pcm = { NULL, 0, 0, 0 };
	int r;
	switch (in->encoding) {
	case VX_ENC_AUTO:
		r = decode_sndfile(buf, len, max_frames, &pcm);
		break;
	case VX_ENC_PCM16:
	case VX_ENC_MULAW:
	case VX_ENC_ALAW:
		r = decode_raw(buf, len, in, max_frames, &pcm);
		break;
	default:
		return -EINVAL;
	}
	if (r == 0)
		*ret = pcm;
	return r;
}

/* ---- conversion ---------------------------------------------------------- */

/* One-shot resample of interleaved int16; *ret is malloc'd (maybe empty). */
static int resample(const int16_t *in, size_t frames, int channels,
		    int in_rate, int out_rate, int16_t **ret, size_t *ret_frames)
{
	double want = (double)frames * out_rate / in_rate;
	if (want > (double)((size_t)-1 / 4 / sizeof(int16_t) / (size_t)channels))
		return -ENOMEM;
	size_t olen = (size_t)want + 2;
	int16_t *out = malloc(olen * (size_t)channels * sizeof(*out));
	if (!out)
		return -ENOMEM;
	size_t odone = 0;
	if (frames) {
		soxr_io_spec_t io = soxr_io_spec(SOXR_INT16_I, SOXR_INT16_I);
		io.flags |= SOXR_NO_DITHER;
		soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);
		soxr_runtime_spec_t rt = soxr_runtime_spec(1);
		soxr_error_t err = soxr_oneshot(in_rate, out_rate, (unsigned)channels,
						in, frames, NULL, out, olen, &odone,
						&io, &q, &rt);
		if (err) {
			free(out);
			return -ENOMEM;
		}
	}
	*ret = out;
	*ret_frames = odone;
	return 0;
}

int vx_audio_convert(vx_pcm *pcm, int rate, int channels)
{
	if (!pcm || (!pcm->data && pcm->frames) || !channels_ok(pcm->channels) ||
	    !rate_ok(pcm->rate) || !channels_ok(channels))
		return -EINVAL;
	if (!rate_ok(rate))
		return -ENOTSUP;
	if (channels != pcm->channels && channels != 1 && pcm->channels != 1)
		return -EINVAL;
	if (channels == pcm->channels && rate == pcm->rate)
		return 0;

	size_t frames = pcm->frames;
	int16_t *mono = NULL, *resampled = NULL, *mixed = NULL;
	const int16_t *cur = pcm->data;
	int cur_ch = pcm->channels;
	int r;

	if (channels == 1 && cur_ch > 1) {
		mono = malloc((frames ? frames : 1) * sizeof(*mono));
		if (!mono)
			return -ENOMEM;
		for (size_t i = 0; i < frames; i++) {
			long sum = 0;
			for (int c = 0; c < cur_ch; c++)
				sum += cur[i * (size_t)cur_ch + (size_t)c];
			sum += sum >= 0 ? cur_ch / 2 : -(cur_ch / 2);
			mono[i] = (int16_t)(sum / cur_ch);
		}
		cur = mono;
		cur_ch = 1;
	}
	if (rate != pcm->rate) {
		r = resample(cur, frames, cur_ch, pcm->rate, rate, &resampled, &frames);
		if (r < 0)
			goto out_free_mono;
		cur = resampled;
	}
	if (channels > cur_ch) { /* 1 -> N: copy */
		if (frames > (size_t)-1 / 4 / sizeof(int16_t) / (size_t)channels) {
			r = -ENOMEM;
			goto out_free_resampled;
		}
		mixed = malloc((frames ? frames : 1) * (size_t)channels * sizeof(*mixed));
		if (!mixed) {
			r = -ENOMEM;
			goto out_free_resampled;
		}
		for (size_t i = 0; i < frames; i++)
			for (int c = 0; c < channels; c++)
				mixed[i * (size_t)channels + (size_t)c] = cur[i];
		cur = mixed;
	}

	/* Keep whichever buffer holds the result; free the others. */
	int16_t *keep = (int16_t *)cur;
	if (keep != mono)
		free(mono);
	if (keep != resampled)
		free(resampled);
	if (keep != pcm->data)
		free(pcm->data);
	pcm->data = keep;
	pcm->frames = frames;
	pcm->rate = rate;
	pcm->channels = channels;
	return 0;

out_free_resampled:
	free(resampled);
out_free_mono:
	free(mono);
	return r;
}

/* ---- encoding ------------------------------------------------------------ */

/* The lowest rate in valid[] at or above rate, else the highest. */
static int nearest_rate(int rate, const int *valid, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (valid[i] >= rate)
			return valid[i];
	return valid[n - 1];
}

static int encode_sndfile(const int16_t *samples, size_t frames, int rate,
			  int channels, int sf_format, vx_buf *out)
{
	SF_INFO info;
	memset(&info, 0, sizeof(info));
	info.samplerate = rate;
	info.channels = channels;
	info.format = sf_format;
	if (!sf_format_check(&info))
		return -ENOTSUP;
	struct mem_writer mw = { out, out->len, 0, 0 };
	SF_VIRTUAL_IO io = { mw_get_filelen, mw_seek, mw_read, mw_write, mw_tell };
	int r = 0;
	SNDFILE *sf = sf_open_virtual(&io, SFM_WRITE, &info, &mw);
	if (!sf) {
		/* e.g. mp3 in a libsndfile built without lame */
		r = mw.err ? mw.err : -ENOTSUP;
		goto out_restore;
	}
	for (size_t done = 0; done < frames;) {
		size_t n = frames - done;
		if (n > VX_AUDIO_ENCODE_CHUNK)
			n = VX_AUDIO_ENCODE_CHUNK;
		sf_count_t w = sf_writef_short(sf, samples + done * (size_t)channels,
					       (sf_count_t)n);
		if (w != (sf_count_t)n) {
			r = mw.err ? mw.err : -EIO;
			break;
		}
		done += n;
	}
	if (sf_close(sf) != 0 && r == 0)
		r = -EIO;
	if (r == 0 && mw.err)
		r = mw.err;
	if (r == 0)
		return 0;

out_restore:
	out->len = mw.base;
	if (out->data)
		out->data[out->len] = '\0';
	return r;
}

/* Encodes after resampling to a rate the codec takes. */
static int encode_resampled(const int16_t *samples, size_t frames, int rate,
			    int channels, int sf_format, const int *valid,
			    size_t nvalid, vx_buf *out)
{
	int to = nearest_rate(rate, valid, nvalid);
	if (to == rate)
		return encode_sndfile(samples, frames, rate, channels, sf_format, out);
	int16_t *res = NULL;
	size_t rframes = 0;
	int r = resample(samples, frames, channels, rate, to, &res, &rframes);
	if (r < 0)
		return r;
	r = encode_sndfile(res, rframes, to, channels, sf_format, out);
	free(res);
	return r;
}

static int encode_raw(const int16_t *samples, size_t n, vx_format f, vx_buf *out)
{
	size_t bytes = f == VX_FMT_PCM ? 2 : 1;
	if (n > (size_t)-1 / 4)
		return -ENOMEM;
	int r = vx_buf_reserve(out, n * bytes);
	if (r < 0)
		return r;
	unsigned char *o = (unsigned char *)out->data + out->len;
	for (size_t i = 0; i < n; i++) {
		if (f == VX_FMT_PCM) {
			uint16_t u = (uint16_t)samples[i];
			o[2 * i] = (unsigned char)(u & 0xff);
			o[2 * i + 1] = (unsigned char)(u >> 8);
		} else if (f == VX_FMT_MULAW) {
			o[i] = vx_g711_ulaw_encode(samples[i]);
		} else {
			o[i] = vx_g711_alaw_encode(samples[i]);
		}
	}
	out->len += n * bytes;
	out->data[out->len] = '\0';
	return 0;
}

int vx_audio_encode(const int16_t *samples, size_t frames, int rate,
		    int channels, vx_format f, vx_buf *out)
{
	static const int opus_rates[] = { 8000, 12000, 16000, 24000, 48000 };
	static const int mp3_rates[] = { 8000, 11025, 12000, 16000, 22050,
					 24000, 32000, 44100, 48000 };
	if (!out || (!samples && frames) || !channels_ok(channels) ||
	    !rate_ok(rate))
		return -EINVAL;
	if (frames > (size_t)-1 / 4 / sizeof(int16_t) / (size_t)channels)
		return -E2BIG;
	size_t n = frames * (size_t)channels;
	switch (f) {
	case VX_FMT_PCM:
	case VX_FMT_MULAW:
	case VX_FMT_ALAW:
		return encode_raw(samples, n, f, out);
	case VX_FMT_WAV:
		if (n * sizeof(int16_t) > VX_AUDIO_WAV_MAX_BYTES)
			return -E2BIG;
		return encode_sndfile(samples, frames, rate, channels,
				      SF_FORMAT_WAV | SF_FORMAT_PCM_16, out);
	case VX_FMT_FLAC:
		return encode_sndfile(samples, frames, rate, channels,
				      SF_FORMAT_FLAC | SF_FORMAT_PCM_16, out);
	case VX_FMT_OPUS:
		return encode_resampled(samples, frames, rate, channels,
					SF_FORMAT_OGG | SF_FORMAT_OPUS, opus_rates,
					sizeof(opus_rates) / sizeof(opus_rates[0]), out);
	case VX_FMT_MP3:
		if (channels > 2)
			return -ENOTSUP;
		return encode_resampled(samples, frames, rate, channels,
					SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III,
					mp3_rates, sizeof(mp3_rates) / sizeof(mp3_rates[0]),
					out);
	}
	return -EINVAL;
}
