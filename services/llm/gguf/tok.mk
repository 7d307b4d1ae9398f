# services/llm/gguf/tok.mk - tests and tools of the GGUF tokenizer, chat
# templates and sampler (their .c files join GGUF_OBJS through gguf.mk).
#
#   build/tests/test_gguf_tok          tokenizer + chat templates (runs tokref.py)
#   build/tests/test_gguf_tok_sampler  sampler
#   build/tools/gguf_tok               stdin -> ids JSON (tests/gguf/test_tokenizer.py)
TOK_OBJS := $(addprefix $(BUILD)/obj/services/llm/gguf/,tokenizer.o tokenizer_pre.o chat_template.o sampler.o)
TOK_OBJS += $(KERN_OBJS)   # the sampler's vmath_argmax
TOK_FIXTURE_OBJS := $(BUILD)/obj/tests/gguf/tok_fixture.o

$(BUILD)/tests/test_gguf_tok: $(BUILD)/obj/tests/unit/test_gguf_tok.o $(TOK_OBJS) $(TOK_FIXTURE_OBJS) $(LIBVOXLINE)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(COMMON_LIBS)

$(BUILD)/tests/test_gguf_tok_sampler: $(BUILD)/obj/tests/unit/test_gguf_tok_sampler.o $(TOK_OBJS) $(LIBVOXLINE)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(COMMON_LIBS)

$(BUILD)/tools/gguf_tok: $(BUILD)/obj/tests/gguf/gguf_tok.o $(TOK_OBJS) $(TOK_FIXTURE_OBJS) $(LIBVOXLINE)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(COMMON_LIBS)

UNIT_TESTS += $(BUILD)/tests/test_gguf_tok $(BUILD)/tests/test_gguf_tok_sampler
TOOLS += $(BUILD)/tools/gguf_tok
