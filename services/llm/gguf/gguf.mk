# services/llm/gguf: the built-in GGUF engine (loader, model; the kernels are
# common/kern's KERN_OBJS; the
# tokenizer, chat templates and sampler of tok.mk live here too).
# GGUF_OBJS is linked into voxline-llm by services/llm's fragment.
GGUF_SRCS := $(wildcard services/llm/gguf/*.c)
GGUF_OBJS := $(GGUF_SRCS:%.c=$(BUILD)/obj/%.o) $(KERN_OBJS)
# the engine core alone (no tokenizer): what the tools and tests link
GGUF_CORE_OBJS := $(addprefix $(BUILD)/obj/services/llm/gguf/,gguf.o model.o) $(KERN_OBJS)
CFLAGS_services_llm_gguf_ += $(if $(filter 1,$(SANITIZE)),-O2,-O3) -fno-math-errno

GGUF_TESTS := $(BUILD)/tests/test_gguf_loader $(BUILD)/tests/test_gguf_quant
GGUF_TOOLS := $(BUILD)/tools/gguf_run $(BUILD)/tools/gguf_bench

$(GGUF_TESTS): $(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(GGUF_CORE_OBJS)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ -lm

$(GGUF_TOOLS): $(BUILD)/tools/%: $(BUILD)/obj/tools/%.o $(GGUF_CORE_OBJS)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ -lm

UNIT_TESTS += $(GGUF_TESTS)
TOOLS += $(GGUF_TOOLS)

# the engine glue with everything (tokenizer, templates, sampler included)
$(BUILD)/tests/test_gguf_engine: $(BUILD)/obj/tests/unit/test_gguf_engine.o $(BUILD)/obj/services/llm/engine_gguf.o $(GGUF_OBJS) $(LIBVOXLINE)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(COMMON_LIBS)

ENGINE_TESTS += $(BUILD)/tests/test_gguf_engine
