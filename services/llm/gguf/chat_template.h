/*
 * chat_template.h - turns chat messages into the prompt text a GGUF model
 * was trained on.
 *
 * The GGUF key tokenizer.chat_template holds a Jinja program. chat_prog
 * runs it (jinja.h: the subset real templates use, with Hugging Face's
 * environment), so a model gets exactly the prompt it was trained on,
 * default system prompts and all. When the program does not parse or
 * fails on a conversation, the marker-based renderer is the fallback: it
 * recognises the family by its marker tokens and renders it in C: ChatML (<|im_start|>: Qwen, SmolLM), Llama 3 (<|start_header_id|>),
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
 * chat_template is stateless; a chat_prog is immutable after
 * chat_prog_new: both are thread-safe.
 *
 *     chat_prog *p;   // NULL when the model's template is not usable
 *     if (chat_prog_new(src, len, "", "</s>", &p, err, sizeof err) < 0) p = NULL;
 *     if (!p || chat_prog_render_masked(p, msgs, n, true, &prompt, &markup, err, sizeof err) < 0)
 *             chat_template_render_masked(t, msgs, n, true, &prompt, &markup);
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

/* A model's own template (tokenizer.chat_template), parsed. */
typedef struct chat_prog chat_prog;

/*
 * Parses the Jinja source src (len bytes). bos and eos are what the
 * template's bos_token and eos_token render as: the texts of those tokens,
 * or "" for bos when the caller prepends the BOS token itself (the rule
 * above: the rendered text never holds BOS then). Caller owns *ret.
 * -EINVAL (err: "line N: ...") when src is outside the supported subset,
 * -E2BIG when it is over the source or nesting limits, -ENOMEM.
 */
int chat_prog_new(const char *src, size_t len, const char *bos, const char *eos,
		  chat_prog **ret, char *err, size_t err_len);
void chat_prog_free(chat_prog *p);      /* accepts NULL */

/*
 * Runs the template over msgs with the variables Hugging Face passes
 * (messages [{role, content}], bos_token, eos_token,
 * add_generation_prompt) and appends the prompt to out and its markup bits
 * to ret_markup, as chat_template_render_masked (roles and contents are
 * data, 0). -EPERM: the template refused the conversation
 * (raise_exception, e.g. "System role not supported"); -EINVAL, -ELOOP,
 * -E2BIG: the template failed or ran past a limit; err says which. On
 * failure out and ret_markup are cut back to their lengths on entry.
 */
int chat_prog_render_masked(const chat_prog *p, const llm_message *msgs, size_t n,
			    bool add_generation_prompt, vx_buf *out, vx_buf *ret_markup,
			    char *err, size_t err_len);

/*
 * chat_prog_render_masked with a whole request's template inputs, as
 * llama.cpp's server and Hugging Face pass them:
 *   - each entry of req->template_kwargs (chat_template_kwargs, e.g.
 *     enable_thinking) is a global; messages, tools, bos_token, eos_token
 *     and add_generation_prompt are set after them and win;
 *   - tools: req->tools as a list (absent when NULL or []);
 *   - messages[i] gains tool_calls, tool_call_id and name from
 *     req->message_tools[i] when given. A call's function.arguments stays
 *     the JSON string the client sent, unless the template only shows
 *     arguments given as an object (Llama 3.1: arguments | tojson; probed
 *     once in chat_prog_new, chat_prog_object_arguments): then a string
 *     that parses as a JSON object is passed as that object.
 * Every string and key from those JSON texts is data (markup 0), so a
 * tool description cannot hold a control token either. JSON nested
 * deeper than 64 is -E2BIG; JSON that does not parse or a kwargs text
 * that is not an object, -EINVAL (err says which input).
 */
int chat_prog_render_req(const chat_prog *p, const llm_request *req,
			 bool add_generation_prompt, vx_buf *out, vx_buf *ret_markup,
			 char *err, size_t err_len);

/* Whether tool calls' string arguments are passed as objects (above). */
bool chat_prog_object_arguments(const chat_prog *p);

#endif
