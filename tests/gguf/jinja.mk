# tests/gguf/jinja.mk - the Jinja chat-template interpreter
# (services/llm/gguf/jinja*.c, joined to GGUF_OBJS by gguf.mk's wildcard):
#
#   build/tests/test_jinja        unit: language, whitespace, limits, masks, and
#                                 every tests/gguf/templates/*.jinja against
#                                 expected prompts written from the model cards
#   build/tools/jinja_render      template + JSON context -> render
#                                 (tests/gguf/test_jinja.py compares it with jinja2)
#   fuzz_jinja                    libFuzzer: parse + render any template
JINJA_OBJS := $(addprefix $(BUILD)/obj/services/llm/gguf/,jinja_parse.o jinja_eval.o jinja_lib.o)

# python3-jinja2: the reference renderer of tests/gguf/test_jinja.py
DEB_PACKAGES += python3-jinja2

# chat_template.o renders with jinja: whatever links it links these too
$(BUILD)/tests/test_gguf_tok $(BUILD)/tests/test_gguf_tok_sampler $(BUILD)/tools/gguf_tok: $(JINJA_OBJS)

$(BUILD)/tests/test_jinja: $(BUILD)/obj/tests/unit/test_jinja.o $(BUILD)/obj/services/llm/gguf/chat_template.o $(JINJA_OBJS) $(LIBVOXLINE)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(COMMON_LIBS) -lm

$(BUILD)/tools/jinja_render: $(BUILD)/obj/tests/gguf/jinja_render.o $(JINJA_OBJS) $(LIBVOXLINE)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(COMMON_LIBS) -lm

UNIT_TESTS += $(BUILD)/tests/test_jinja
TOOLS += $(BUILD)/tools/jinja_render

# fuzz (tests/fuzz/fuzz.mk is included before this file)
FUZZ_NAMES += jinja
FUZZ_OBJS_jinja := $(call FUZZ_O,tests/fuzz/fuzz_jinja services/llm/gguf/jinja_parse \
	services/llm/gguf/jinja_eval services/llm/gguf/jinja_lib) $(call FUZZ_COMMON,)
FUZZ_OBJS_chat += $(call FUZZ_O,services/llm/gguf/jinja_parse services/llm/gguf/jinja_eval \
	services/llm/gguf/jinja_lib)
.SECONDARY: $(FUZZ_OBJS_jinja)
fuzz-bins: $(BUILD)/fuzz/fuzz_jinja
