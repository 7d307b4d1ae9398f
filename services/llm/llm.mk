# services/llm/llm.mk: voxline-llm = the routes (api*.c), request parsing,
# the generation core and main.c on libvoxline, with the engines of
# remote.mk ($(LLM_ENGINE_OBJS): openai, ollama, the filters, the table)
# and the built-in GGUF engine (engine_gguf.c + $(GGUF_OBJS) of gguf/gguf.mk).
LLM_SRCS := services/llm/main.c services/llm/api.c services/llm/api_openai.c \
	services/llm/api_ws.c services/llm/llm_gen.c services/llm/llm_params.c \
	services/llm/jobs.c
LLM_OBJS := $(LLM_SRCS:%.c=$(BUILD)/obj/%.o)
CFLAGS_services_llm_ += $(CFLAGS_common_)
LLM_ENGINE_SRCS += services/llm/engine_gguf.c

$(BUILD)/bin/voxline-llm: $(LLM_OBJS) $$(LLM_ENGINE_OBJS) $$(GGUF_OBJS) $(LIBVOXLINE)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(COMMON_LIBS) $(LLM_ENGINE_LIBS) -lm
BINS += $(BUILD)/bin/voxline-llm
