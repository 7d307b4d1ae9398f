/*
 * wagree.h - local agreement for a streamed transcript: which words of a
 * growing utterance's re-decoded hypotheses are settled and shown for good
 * (LocalAgreement-2, as whisper_streaming does it, over whole words).
 *
 * Every re-decode of the growing audio gives a hypothesis (text; words are
 * split at ASCII whitespace). The text shown for it is the committed words
 * followed by the hypothesis's words from the position after the last
 * committed one (a word is matched by its position, never moved). Each
 * time a text is shown, the words it shares with the previous shown text
 * at the same positions, counted from the start up to the first word that
 * differs, become committed. Invariant: committed words are never
 * withdrawn; every later shown text, and the final text made by
 * wagree_splice, begins with them. A word shown at the same place twice in
 * a row, with the same words before it, is therefore never withdrawn.
 *
 * Pure: no I/O, no clocks, no model. Ownership: a wagree owns its text.
 * Thread-safety: none; one wagree per stream.
 *
 *     wagree a; wagree_init(&a);
 *     wagree_push(&a, " the cat");       // shown "the cat", nothing committed
 *     wagree_push(&a, " the cat sat");   // shown "the cat sat", "the cat" committed
 *     wagree_release(&a);
 */
#ifndef WAGREE_H
#define WAGREE_H

#include <stddef.h>

typedef struct wagree {
	char *text;              /* shown words joined by one space ("" at first), owned */
	int n_words;             /* words in text */
	int n_committed;         /* its first n_committed words are committed */
	size_t committed_len;    /* bytes of text they take (no trailing space) */
} wagree;

void wagree_init(wagree *a);
void wagree_release(wagree *a);   /* accepts a released or zeroed wagree */
/* Forgets everything (a new utterance). */
void wagree_reset(wagree *a);

/* Shows hypothesis hyp and commits what agrees with the text shown before.
 * 1 when the shown text changed, 0 when it did not, -ENOMEM (a unchanged). */
int wagree_push(wagree *a, const char *hyp);
/* The text hyp would show (committed words, then hyp's from n_committed
 * on), without taking it: the final of an utterance. Caller frees *ret. */
int wagree_splice(const wagree *a, const char *hyp, char **ret);
/* Rewrites piece, a run of hyp's words whose first is hyp's word *pos (a
 * segment's text), as wagree_splice would show it: committed words in
 * place of hyp's below n_committed; advances *pos by the piece's words.
 * Caller frees *ret. 0 or -ENOMEM. */
int wagree_rewrite(const wagree *a, const char *piece, int *pos, char **ret);
/* The committed words from word pos on, one space apart ("" when pos >=
 * n_committed), into *ret (caller frees): what a hypothesis with only pos
 * words leaves out. 0 or -ENOMEM. */
int wagree_committed_from(const wagree *a, int pos, char **ret);
/* Whether hyp's first n words are the committed words' first n. */
int wagree_agrees(const wagree *a, const char *hyp, int n);
/* Every shown word becomes committed (a window's forced end). */
void wagree_commit_all(wagree *a);
/* Removes the first n committed words (n <= n_committed): they moved out
 * of the window into text that is settled. */
void wagree_drop(wagree *a, int n);
/* Words in s. */
int wagree_count(const char *s);

#endif
