/*
 * conv_policy.h - turn-taking policies: when the user's turn has ended, and
 * whether speech over the reply is an interruption. Pure functions of what
 * the conversation machine (conv_machine.h) knows: durations it measured and
 * the partial transcript so far. No clocks, no sockets, no state.
 *
 * End of turn. VAD reports speech_end after its own short silence
 * (eot_min_ms). The machine then asks how much silence this turn needs in
 * all; with the adaptive policy a partial transcript that reads as finished
 * ("What time is it?") needs eot_min_ms, one that does not ("My number is
 * five five five") needs up to eot_max_ms. Speech that resumes before that
 * continues the same turn. The fixed policy always answers eot_min_ms.
 *
 * Barge-in. Speech over the reply is first only a candidate. The machine
 * asks the policy each time something changes (speech went on longer, a
 * partial arrived, speech ended): WAIT, INTERRUPT or IGNORE. With the
 * backchannel policy, short sounds (coughs) and backchannel words
 * ("uh-huh", "yeah", "okay", "mm-hm") are ignored and anything else
 * interrupts by barge_min_ms of detected speech. Speech with no words yet
 * past barge_min_ms interrupts too (a real interruption the recogniser has
 * not caught up with), so a cough is ignored when it ends, or its text
 * shows it is no word, before that. Backchannels still going after 1.5 s
 * interrupt. The immediate policy interrupts at once. Both policies read
 * words (recognisers rarely punctuate): case, punctuation, apostrophes and
 * bracketed sound tags ("[coughs]") do not matter; non-ASCII words are
 * content. Ask again when a newer partial arrives: answers follow the words.
 *
 *     conv_policy_cfg p; conv_policy_defaults(&p);
 *     int need = conv_policy_eot_silence_ms(&p, "my number is five", 17);
 *     enum conv_barge b = conv_policy_barge(&p, 180, false, "yeah", 4);
 */
#ifndef CONV_POLICY_H
#define CONV_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum conv_eot_policy { EOT_FIXED, EOT_ADAPTIVE };
enum conv_barge_policy { BARGE_IMMEDIATE, BARGE_BACKCHANNEL };

typedef struct conv_policy_cfg {
	enum conv_eot_policy eot;
	int eot_min_ms;           /* silence ending a turn that reads finished */
	int eot_max_ms;           /* silence ending a turn that reads unfinished */
	enum conv_barge_policy barge;
	int barge_min_ms;         /* detected speech before it interrupts */
} conv_policy_cfg;

/* Fills in the defaults (the orchestrator's flag defaults). */
void conv_policy_defaults(conv_policy_cfg *p);

/* Total silence (ms, from the end of speech) that ends a turn whose
 * partial transcript so far is text[0..len); eot_min_ms..eot_max_ms. */
int conv_policy_eot_silence_ms(const conv_policy_cfg *p, const char *text, size_t len);

enum conv_barge { BARGE_WAIT, BARGE_INTERRUPT, BARGE_IGNORE };

/* Speech over the reply: speech_ms of it detected so far, ended when VAD
 * reported its end, text[0..len) its partial transcript so far (may be
 * empty). WAIT: ask again when something changes.
 *
 * speech_ms counts from VAD's speech_start (the detection), not from the
 * onset VAD reports in it: VAD only reports speech after its min_speech_ms
 * (250), and barge_min_ms after that is the budget of a real interruption
 * ("within 300 ms of becoming detectable") and the time STT has to show
 * that the speech is only "uh-huh". When ended, it runs to VAD's
 * speech_end, which comes after VAD's closing silence (300 ms): a 200 ms
 * cough ends at about 250 ms, under barge_min_ms, and is ignored. Counted
 * from the onset instead, every candidate would pass barge_min_ms some
 * 50 ms after its detection, before STT's first partial. */
enum conv_barge conv_policy_barge(const conv_policy_cfg *p, int64_t speech_ms, bool ended,
				  const char *text, size_t len);

#endif
