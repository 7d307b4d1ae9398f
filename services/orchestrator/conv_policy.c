/*
 * conv_policy.c - the turn-taking policies of conv_policy.h.
 *
 * Both read the partial transcript as words: ASCII letters and digits
 * lower-cased, apostrophes (' and U+2019) dropped ("what's" -> "whats"),
 * runs of three or more equal letters cut to two ("mmmm" -> "mm"), other
 * UTF-8 kept as is (it matches no list, so it counts as content). Words in
 * brackets ("[BLANK_AUDIO]", "(coughs)") are sound tags, not speech, and
 * are skipped. Recognisers (pocketsphinx, whisper) rarely punctuate, so the
 * rules are about words; punctuation when present ("?", ",", "...") wins.
 *
 * End of turn: a score from 0 (reads finished) to 1000 (reads unfinished)
 * from the last words, mapped linearly onto eot_min_ms..eot_max_ms.
 * Barge-in: every word is a backchannel ("uh huh", "yeah", "got it"), a
 * weak word (a sound or a function word: what a recogniser makes of a
 * cough) or content; content interrupts, the rest waits or is ignored.
 *
 * No allocation, no state: a word is copied into a small buffer on the
 * stack while the text is scanned once from the start.
 */
#include "conv_policy.h"

#include <string.h>

#define POL_WORD_MAX 23              /* bytes of a word kept; longer match nothing */
#define POL_BACKCHANNEL_CAP_MS 1500  /* backchannels still going: then they interrupt */

/* Scores of the end-of-turn reading, per mille of eot_max_ms - eot_min_ms. */
enum {
	SCORE_DONE = 0,          /* a question, a closing word, "?" */
	SCORE_LIKELY_DONE = 150, /* a clause that ends in a content word */
	SCORE_SHORT = 300,       /* one or two content words; a question a word behind */
	SCORE_EMPTY = 500,       /* no words yet; seven digits */
	SCORE_MAYBE = 600,       /* ends in a word that often goes on ("in", "would") */
	SCORE_LEANS_OPEN = 800,  /* ends in "," ";" ":" a dash; a question in "for" */
	SCORE_OPEN = 1000,       /* ends in "and", "the", "to", "um", "is", digits */
};

/* ---- words ---- */

typedef struct pol_word {
	char s[POL_WORD_MAX + 1]; /* normalised, NUL-terminated; "" if too long */
	size_t len;               /* bytes in s */
	bool ascii;               /* only ASCII letters and digits */
	bool digits;              /* only digits */
	bool too_long;            /* longer than POL_WORD_MAX: s is cut */
} pol_word;

typedef struct pol_scan {
	const unsigned char *p, *end; /* what is left of the text */
	int tag_depth;                /* inside [...] or (...) */
	char punct;                   /* after the last word read: ? ! . , e or 0 */
} pol_scan;

/* Byte classes of the scanner. */
enum pol_cls { CL_SEP, CL_WORD, CL_DROP, CL_PUNCT, CL_OPEN, CL_CLOSE };

/* Length of the UTF-8 sequence at p (1 if it is not a valid one). */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
	size_t n = *p >= 0xf0 && *p <= 0xf4 ? 4 : *p >= 0xe0 ? 3 : *p >= 0xc2 ? 2 : 1;
	if (*p < 0x80 || n == 1 || (size_t)(end - p) < n)
		return 1;
	for (size_t i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 1;
	return n;
}

/* Class of the character at s->p (n bytes); *ret_punct for CL_PUNCT. */
static enum pol_cls classify(const unsigned char *p, size_t n, char *ret_punct)
{
	static const struct { const char *utf8; enum pol_cls cls; char punct; } wide[] = {
		{ "\xe2\x80\x99", CL_DROP, 0 },     /* right single quote: apostrophe */
		{ "\xe2\x80\x98", CL_DROP, 0 },     /* left single quote */
		{ "\xe2\x80\xa6", CL_PUNCT, 'e' },  /* ellipsis */
		{ "\xe2\x80\x93", CL_PUNCT, ',' },  /* en dash */
		{ "\xe2\x80\x94", CL_PUNCT, ',' },  /* em dash */
		{ "\xef\xbc\x9f", CL_PUNCT, '?' },  /* fullwidth ? */
		{ "\xef\xbc\x81", CL_PUNCT, '!' },  /* fullwidth ! */
		{ "\xef\xbc\x8c", CL_PUNCT, ',' },  /* fullwidth , */
		{ "\xe3\x80\x82", CL_PUNCT, '.' },  /* ideographic full stop */
		{ "\xe3\x80\x81", CL_PUNCT, ',' },  /* ideographic comma */
		{ "\xc2\xa0", CL_SEP, 0 },          /* no-break space */
		{ "\xc2\xbf", CL_SEP, 0 },          /* inverted ? */
		{ "\xc2\xa1", CL_SEP, 0 },          /* inverted ! */
	};
	unsigned char c = *p;
	if (n == 1 && c < 0x80) {
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
			return CL_WORD;
		switch (c) {
		case '\'':
			return CL_DROP;
		case '?': case '!': case '.': case ',':
			*ret_punct = (char)c;
			return CL_PUNCT;
		case ';': case ':':
			*ret_punct = ',';
			return CL_PUNCT;
		case '[': case '(': case '{': case '<':
			return CL_OPEN;
		case ']': case ')': case '}': case '>':
			return CL_CLOSE;
		default:
			return CL_SEP;  /* space, '-', quotes, controls */
		}
	}
	if (n == 1)
		return CL_WORD;         /* a stray byte: part of a word */
	for (size_t i = 0; i < sizeof(wide) / sizeof(wide[0]); i++)
		if (strlen(wide[i].utf8) == n && !memcmp(p, wide[i].utf8, n)) {
			*ret_punct = wide[i].punct;
			return wide[i].cls;
		}
	return CL_WORD;
}

/* Appends byte c to w, cutting runs of three equal letters to two. */
static void word_put(pol_word *w, unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		c = (unsigned char)(c - 'A' + 'a');
	if (c >= 0x80)
		w->ascii = false;
	if (!(c >= '0' && c <= '9'))
		w->digits = false;
	if (c >= 'a' && c <= 'z' && w->len >= 2 && w->s[w->len - 1] == (char)c &&
	    w->s[w->len - 2] == (char)c)
		return;
	if (w->len < POL_WORD_MAX)
		w->s[w->len++] = (char)c;
	else
		w->too_long = true;
}

/* The punctuation between p and the next word outside tags: the last
 * mark seen, 'e' for an ellipsis ("..." too), 0 for none. */
static char punct_after(const unsigned char *p, const unsigned char *end)
{
	char last = 0;
	int depth = 0, dots = 0;
	while (p < end) {
		size_t n = utf8_len(p, end);
		char punct = 0;
		enum pol_cls cls = classify(p, n, &punct);
		if (cls == CL_WORD && depth == 0)
			break;
		if (cls == CL_OPEN) {
			depth++;
		} else if (cls == CL_CLOSE) {
			depth -= depth > 0;
		} else if (cls == CL_PUNCT && depth == 0) {
			dots = punct == '.' ? dots + 1 : 0;
			last = dots >= 2 ? 'e' : punct;
		}
		p += n;
	}
	return last;
}

/* Reads the next word outside tags into *w and the punctuation after it
 * into s->punct; false at the end of the text. */
static bool next_word(pol_scan *s, pol_word *w)
{
	for (;;) {
		memset(w, 0, sizeof(*w));
		w->ascii = w->digits = true;
		while (s->p < s->end) {
			size_t n = utf8_len(s->p, s->end);
			char punct = 0;
			enum pol_cls cls = classify(s->p, n, &punct);
			if (cls == CL_WORD) {
				for (size_t i = 0; i < n; i++)
					word_put(w, s->p[i]);
			} else if (cls == CL_DROP) {
				;               /* apostrophes: "what's" is "whats" */
			} else if (w->len) {
				break;          /* the word ends here */
			} else if (cls == CL_OPEN) {
				s->tag_depth++;
			} else if (cls == CL_CLOSE) {
				s->tag_depth -= s->tag_depth > 0;
			}
			s->p += n;
		}
		if (!w->len)
			return false;
		if (w->too_long) {      /* matches no list */
			w->len = 0;
			w->digits = false;
		}
		w->s[w->len] = '\0';
		if (s->tag_depth > 0)
			continue;       /* a sound tag, not speech */
		s->punct = punct_after(s->p, s->end);
		return true;
	}
}

static void scan_init(pol_scan *s, const char *text, size_t len)
{
	memset(s, 0, sizeof(*s));
	s->p = (const unsigned char *)(text ? text : "");
	s->end = s->p + (text ? len : 0);
}

/* Whether w is one of the NULL-terminated list. */
static bool word_in(const pol_word *w, const char *const *list)
{
	if (!w->len || !w->ascii)
		return false;
	for (; *list; list++)
		if (!strcmp(w->s, *list))
			return true;
	return false;
}

/* Whether a and b are equal once every run of a letter is cut to one
 * ("yeahhh" and "yeah", "mmhmm" and "mhm"). */
static bool eq_runs(const char *a, const char *b)
{
	while (*a && *b) {
		if (*a != *b)
			return false;
		char c = *a;
		while (*a == c)
			a++;
		while (*b == c)
			b++;
	}
	return !*a && !*b;
}

/* word_in for interjections, whose letters people stretch. */
static bool word_in_loose(const pol_word *w, const char *const *list)
{
	if (!w->len || !w->ascii)
		return false;
	for (; *list; list++)
		if (eq_runs(w->s, *list))
			return true;
	return false;
}

/* ---- word lists (apostrophes dropped: "its" is also "it's") ---- */

/* A turn that ends in one of these goes on. */
static const char *const open_words[] = {
	/* conjunctions */
	"and", "or", "but", "so", "because", "cause", "cuz", "if", "unless",
	"although", "while", "whereas", "than", "nor", "plus", "whether",
	/* articles, possessives */
	"the", "a", "an", "my", "your", "our", "their", "its", "every", "each",
	"another", "whose",
	/* fillers */
	"um", "uh", "er", "erm", "uhm", "umm", "uhh", "ah", "eh", "hmm", "mm",
	/* copulas, subjects, contractions waiting for the rest */
	"is", "are", "was", "were", "am", "be", "been", "being", "im", "ive",
	"id", "ill", "youre", "theyre", "thats", "theres", "whats", "lets",
	"i", "we", "they", "he", "she",
	NULL,
};

/* A question whose partial ends in one of these is most likely finished:
 * a streaming recogniser's partial lags by about a word, and the word it
 * has not settled on yet often shows as "a" or "the" ("what time is a"
 * while the user said "what time is it"). */
static const char *const lagging_words[] = {
	"a", "an", "the", "is", "are", "was", "were", "am", "be", "do", "does",
	"did", "i", "we", "they", "he", "she", "to",
	NULL,
};

/* A statement that ends in one of these goes on; a question often does
 * ("where are you from", "who is it for"). */
static const char *const open_prep_words[] = {
	"to", "for", "of", "from", "with", "without", "by", "about", "into",
	"onto", "at", "between", "through", "during", "until", "till", "via",
	"per", "as", "toward", "towards", "across", "against", "among",
	NULL,
};

/* A statement that ends in one of these goes on ("i would like"); a
 * question is finished ("what's the weather like", "what do you need"). */
static const char *const open_verb_words[] = {
	"want", "wanna", "gonna", "need", "like", "called", "named", "spelled",
	NULL,
};

/* A turn that ends in one of these may go on. */
static const char *const maybe_words[] = {
	"in", "on", "after", "before", "over", "under", "around", "near",
	"this", "these", "those", "some", "any", "her", "that", "which", "who",
	"where", "when", "will", "would", "can", "could", "should", "shall",
	"must", "might", "may", "have", "has", "had", "do", "does", "did",
	"going", "trying", "then", "also", "just", "very", "really", "more",
	NULL,
};

/* A turn that ends in one of these reads finished. */
static const char *const done_words[] = {
	"please", "thanks", "thank", "bye", "goodbye", "hello", "hi", "hey",
	"yes", "no", "yeah", "yep", "nope", "okay", "ok", "sure", "right",
	"fine", "great", "now", "today", "tonight", "tomorrow", "yesterday",
	"here", "there", "it", "me", "them", "us", "you", "too", "again",
	"either", "anyway", "already", "yet", "done", "all", "thing", "things",
	NULL,
};

/* A turn that starts with one of these is a question. */
static const char *const question_words[] = {
	"what", "whats", "when", "where", "wheres", "who", "whos", "whom",
	"why", "how", "hows", "which", "is", "are", "am", "was", "were", "can",
	"could", "would", "will", "shall", "should", "do", "does", "did",
	"may", "might", "have", "has", "isnt", "arent", "dont", "doesnt",
	"didnt", "cant", "wont", "wouldnt", "couldnt", "shouldnt",
	NULL,
};

/* Skipped at the start of a turn when looking for its first word. */
static const char *const lead_fillers[] = {
	"um", "uh", "er", "erm", "uhm", "umm", "uhh", "ah", "oh", "so", "well",
	"okay", "ok", "and", "hey", "hi", "hmm", "mm",
	NULL,
};

/* Numbers said digit by digit ("oh" too: "five five oh"). */
static const char *const digit_words[] = {
	"zero", "oh", "one", "two", "three", "four", "five", "six", "seven",
	"eight", "nine", "double", "triple",
	NULL,
};

static const char *const number_words[] = {
	"ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
	"seventeen", "eighteen", "nineteen", "twenty", "thirty", "forty",
	"fifty", "sixty", "seventy", "eighty", "ninety", "hundred", "thousand",
	NULL,
};

/* A number after one of these is being dictated. */
static const char *const number_cues[] = {
	"is", "number", "code", "pin", "zip", "extension", "ext", "digits",
	"dial", "call", "was", "are", "phone", "card", "account", "id",
	NULL,
};

/* Backchannels, each word on its own (repeats allowed: "yeah yeah"). */
static const char *const backchannel_words[] = {
	"uh", "huh", "uhhuh", "uhuh", "mm", "mhm", "mmhm", "mhmm", "mmhmm",
	"hm", "hmm", "hmhm", "um", "umm", "yeah", "yea", "yes", "yep", "yup",
	"ya", "yah", "okay", "ok", "okey", "kay", "right", "sure", "alright",
	"cool", "great", "nice", "good", "fine", "exactly", "indeed", "true",
	"totally", "absolutely", "definitely", "wow", "oh", "ohh", "ah", "ahh",
	"aha", "ha", "gotcha", "understood", "interesting", "perfect",
	"awesome", "er", "erm", "uhm",
	NULL,
};

/* Two-word backchannels: "i see", "got it", "all right", ... */
static const char *const backchannel_pairs[][2] = {
	{ "i", "see" }, { "i", "know" }, { "i", "understand" }, { "i", "got" },
	{ "i", "get" }, { "got", "it" }, { "get", "it" }, { "got", "you" },
	{ "all", "right" }, { "makes", "sense" }, { "go", "on" },
	{ "go", "ahead" }, { "thats", "right" }, { "thats", "true" },
	{ "thats", "good" }, { "thats", "great" }, { "of", "course" },
	{ "sounds", "good" }, { "sounds", "great" }, { "very", "good" },
	{ "me", "too" }, { "oh", "yeah" }, { "oh", "okay" }, { "oh", "right" },
};

/* What a recogniser makes of a cough or a breath: not speech. */
static const char *const weak_words[] = {
	"the", "a", "an", "and", "i", "it", "he", "she", "in", "on", "of",
	"to", "is", "eh", "hah", "heh", "uhh",
	NULL,
};

/* ---- end of turn ---- */

static bool is_digit_word(const pol_word *w)
{
	return (w->digits && w->len) || word_in(w, digit_words);
}

/* One letter said alone (spelling), except the words "a" and "i". */
static bool is_letter(const pol_word *w)
{
	return w->len == 1 && w->s[0] >= 'b' && w->s[0] <= 'z' && w->s[0] != 'i';
}

/* What the scan of a turn's text keeps. */
typedef struct eot_read {
	int words;          /* words read */
	bool question;      /* the first real word asks */
	pol_word last;      /* the last word */
	int run_digits;     /* digits said in the trailing run of numbers */
	bool run_cued;      /* the run follows "is", "number", ... */
	bool run_number;    /* the trailing run has number words ("twenty") */
	int run_letters;    /* letters in the trailing run of spelled letters */
	char punct;         /* after the last word */
} eot_read;

static void eot_scan(const char *text, size_t len, eot_read *r)
{
	pol_scan s;
	pol_word w;
	bool lead = true;
	scan_init(&s, text, len);
	memset(r, 0, sizeof(*r));
	while (next_word(&s, &w)) {
		if (lead && !word_in(&w, lead_fillers)) {
			lead = false;
			r->question = word_in(&w, question_words);
		}
		bool digit = is_digit_word(&w), number = word_in(&w, number_words);
		if (digit || number) {
			if (!r->run_digits && !r->run_number)
				r->run_cued = r->words && word_in(&r->last, number_cues);
			r->run_digits += !digit ? 0 : w.digits ? (int)w.len : 1;
			r->run_number |= number;
		} else {
			r->run_digits = 0;
			r->run_number = false;
		}
		r->run_letters = is_letter(&w) ? r->run_letters + 1 : 0;
		r->last = w;
		r->words++;
		r->punct = s.punct;
	}
}

/* How unfinished the turn reads, 0..1000. */
static int eot_score(const eot_read *r)
{
	if (!r->words)
		return SCORE_EMPTY;
	if (r->punct == '?' || r->punct == '!')
		return SCORE_DONE;
	if (r->punct == 'e')
		return SCORE_OPEN;
	if (r->punct == ',')
		return SCORE_LEANS_OPEN;
	if (r->run_digits || r->run_number) {
		/* "five five five": dictating; ten digits: a whole phone number */
		if (r->run_digits >= 10)
			return SCORE_LIKELY_DONE;
		if (r->run_digits >= 7)
			return SCORE_EMPTY;
		if (r->run_digits >= 2 || r->run_cued)
			return SCORE_OPEN;
		return r->question ? SCORE_DONE : SCORE_SHORT;
	}
	if (r->run_letters >= 2)
		return SCORE_OPEN;
	if (r->question && word_in(&r->last, lagging_words))
		return SCORE_SHORT;
	if (word_in(&r->last, open_words))
		return SCORE_OPEN;
	if (word_in(&r->last, open_prep_words))
		return r->question ? SCORE_LEANS_OPEN : SCORE_OPEN;
	if (word_in(&r->last, open_verb_words))
		return r->question ? SCORE_DONE : SCORE_OPEN;
	if (word_in(&r->last, maybe_words))
		return SCORE_MAYBE;
	if (r->question || word_in(&r->last, done_words))
		return SCORE_DONE;
	if (r->punct == '.')
		return SCORE_LIKELY_DONE / 2;
	return r->words >= 3 ? SCORE_LIKELY_DONE : SCORE_SHORT;
}

void conv_policy_defaults(conv_policy_cfg *p)
{
	p->eot = EOT_ADAPTIVE;
	p->eot_min_ms = 300;
	p->eot_max_ms = 1500;
	p->barge = BARGE_BACKCHANNEL;
	p->barge_min_ms = 300;
}

int conv_policy_eot_silence_ms(const conv_policy_cfg *p, const char *text, size_t len)
{
	int lo = p->eot_min_ms > 0 ? p->eot_min_ms : 0;
	int hi = p->eot_max_ms > lo ? p->eot_max_ms : lo;
	if (p->eot != EOT_ADAPTIVE)
		return lo;
	eot_read r;
	eot_scan(text, len, &r);
	return lo + (int)(((int64_t)(hi - lo) * eot_score(&r) + 500) / 1000);
}

/* ---- barge-in ---- */

/* What speech over the reply said, by kind of word. */
typedef struct barge_read {
	int words;          /* words read */
	int content;        /* words that are neither backchannel nor weak */
	int weak;           /* sounds and function words */
} barge_read;

static bool is_pair(const pol_word *a, const pol_word *b)
{
	for (size_t i = 0; i < sizeof(backchannel_pairs) / sizeof(backchannel_pairs[0]); i++)
		if (a->len && b->len && !strcmp(a->s, backchannel_pairs[i][0]) &&
		    !strcmp(b->s, backchannel_pairs[i][1]))
			return true;
	return false;
}

static bool is_pair_head(const pol_word *w)
{
	for (size_t i = 0; i < sizeof(backchannel_pairs) / sizeof(backchannel_pairs[0]); i++)
		if (w->len && !strcmp(w->s, backchannel_pairs[i][0]))
			return true;
	return false;
}

/* Sorts each word; a word that may start a pair ("i" of "i see") waits
 * for the next and is weak if no pair follows. */
static void barge_scan(const char *text, size_t len, barge_read *r)
{
	pol_scan s;
	pol_word w, prev;
	bool pending = false;   /* prev is a pair head not yet matched */
	bool have_prev = false;
	scan_init(&s, text, len);
	memset(r, 0, sizeof(*r));
	while (next_word(&s, &w)) {
		r->words++;
		if (have_prev && is_pair(&prev, &w)) {
			pending = false;  /* prev and w: one backchannel */
		} else {
			if (pending) {
				r->weak++;      /* "i" not followed by "see" */
				pending = false;
			}
			if (word_in_loose(&w, backchannel_words))
				;
			else if (is_pair_head(&w))
				pending = true;
			else if (word_in(&w, weak_words) || is_letter(&w))
				r->weak++;
			else
				r->content++;
		}
		prev = w;
		have_prev = true;
	}
	if (pending)
		r->weak++;
}

enum conv_barge conv_policy_barge(const conv_policy_cfg *p, int64_t speech_ms, bool ended,
				  const char *text, size_t len)
{
	if (p->barge != BARGE_BACKCHANNEL)
		return BARGE_INTERRUPT;
	barge_read r;
	barge_scan(text, len, &r);
	bool brief = speech_ms < p->barge_min_ms;
	if (r.content >= 2 || (r.content == 1 && r.words >= 2))
		return BARGE_INTERRUPT;         /* "wait stop", "yeah but ..." */
	if (r.content == 1)                     /* "stop": by barge_min_ms */
		return brief && !ended ? BARGE_WAIT : BARGE_INTERRUPT;
	if (r.words == 0 || (r.words == 1 && r.weak == 1)) {
		/* a cough, or speech the recogniser has not caught up with */
		if (!brief)
			return BARGE_INTERRUPT;
		return ended ? BARGE_IGNORE : BARGE_WAIT;
	}
	/* backchannels, sounds and weak words only */
	if (ended)
		return BARGE_IGNORE;
	return speech_ms < POL_BACKCHANNEL_CAP_MS ? BARGE_WAIT : BARGE_INTERRUPT;
}
