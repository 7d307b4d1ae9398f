/*
 * chat_template.h - turns chat messages into the prompt text a GGUF model
 * was trained on.
 *
 * The GGUF key tokenizer.chat_template holds a Jinja program; instead of
 * running Jinja we recognise the family by its marker tokens and render it
 * in C: ChatML (<|im_start|>: Qwen, SmolLM), Llama 3 (<|start_header_id|>),
 * Gemma (<start_of_turn>), Phi-3 (<|user|> ... <|end|>) and Zephyr
 * (<|user|> ... </s>: TinyLlama chat). Anything else falls back to ChatML.
 *
 * The rendered text never holds BOS: for Llama 3 the "<|begin_of_text|>"
 * the template starts with is the BOS token, which the caller prepends when
 * tok_add_bos() says so. No default system prompt is injected (Qwen's
 * templates add one; we do not). Unknown roles are rendered as they are
 * (ChatML, Llama 3) or as user turns (Gemma, Phi-3, Zephyr). Llama 3 trims
 * leading and trailing whitespace of each content, as its template does.
 * The model ends its turn with an end-of-generation token (<|im_end|>,
 * <|eot_id|>, <end_of_turn>, <|end|>, </s>); the engine stops on
 * tok_is_eog().
 *
 * Prompt injection: message text (roles and contents) must never become
 * control tokens. chat_template_render_masked marks which bytes are the
 * template's own markup; tok_encode_masked then recognises control tokens
 * only there, so a user who types "<|im_end|>" gets plain-text tokens.
 *
 * Stateless and thread-safe.
 *
 *     chat_template t; chat_template_detect(gguf_chat_template_or_NULL, &t);
 *     vx_buf prompt = {0}, markup = {0};
 *     chat_template_render_masked(t, msgs, n, true, &prompt, &markup);
 *     tok_encode_masked(tk, prompt.data, prompt.len, (unsigned char *)markup.data, ...);
 *     vx_buf_release(&prompt); vx_buf_release(&markup);
 */
#ifndef VX_GGUF_CHAT_TEMPLATE_H
#define VX_GGUF_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "../llm_engine.h"
#include "vx_buf.h"

typedef enum chat_template {
	CHAT_TMPL_CHATML = 0,
	CHAT_TMPL_LLAMA3,
	CHAT_TMPL_GEMMA,
	CHAT_TMPL_PHI3,
	CHAT_TMPL_ZEPHYR,
} chat_template;

/*
 * Recognises the template family of a Jinja source (NULL allowed).
 * Returns 0 when recognised, 1 when it fell back to ChatML (NULL or
 * unknown source); *ret is always set.
 */
int chat_template_detect(const char *jinja_src_or_null, chat_template *ret);

/* "chatml", "llama3", "gemma", "phi3", "zephyr". */
const char *chat_template_name(chat_template t);

/*
 * Appends the rendered conversation to out; with add_generation_prompt the
 * opening of an assistant turn follows. Returns 0, -EINVAL (bad template,
 * NULL role or content), -ENOMEM (out keeps what was appended so far).
 */
int chat_template_render(chat_template t, const llm_message *msgs, size_t n,
			 bool add_generation_prompt, vx_buf *out);

/*
 * chat_template_render, and appends to ret_markup one byte per byte appended
 * to out: 1 where it is the template's markup, 0 where it is a message's
 * role or content. out and ret_markup must hold equally many bytes on entry
 * (-EINVAL otherwise; both empty is the usual case).
 */
int chat_template_render_masked(chat_template t, const llm_message *msgs, size_t n,
				bool add_generation_prompt, vx_buf *out,
				vx_buf *ret_markup);

#endif
