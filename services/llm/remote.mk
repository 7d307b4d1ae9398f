# services/llm/remote.mk: the remote LLM engines (openai, ollama), the
# engine table and the streaming text filters. The service itself
# (services/llm/llm.mk: main.c, api.c) links $(LLM_ENGINE_OBJS) and
# $(LLM_ENGINE_LIBS); a local engine adds its source to LLM_ENGINE_SRCS.

LLM_ENGINE_PKGS := libcurl libcjson
LLM_FILTER_SRCS := services/llm/sse.c services/llm/ndjson.c \
	services/llm/think.c services/llm/stopstr.c services/llm/llm_emit.c
LLM_REMOTE_SRCS := services/llm/engine_openai.c services/llm/engine_ollama.c \
	services/llm/llm_remote.c services/llm/llm_http.c $(LLM_FILTER_SRCS)
LLM_ENGINE_SRCS += services/llm/llm_engine.c $(LLM_REMOTE_SRCS)
LLM_FILTER_OBJS := $(LLM_FILTER_SRCS:%.c=$(BUILD)/obj/%.o)
LLM_REMOTE_OBJS := $(LLM_REMOTE_SRCS:%.c=$(BUILD)/obj/%.o)
LLM_ENGINE_OBJS = $(LLM_ENGINE_SRCS:%.c=$(BUILD)/obj/%.o)
LLM_ENGINE_LIBS := $(shell $(PKG_CONFIG) --libs $(LLM_ENGINE_PKGS))
LLM_ENGINE_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(LLM_ENGINE_PKGS))
CFLAGS_services_llm_ += $(LLM_ENGINE_CFLAGS)

# Unit tests: filters (no network) and engines (against tests/llm_upstream.py).
# The engine test uses the engines' ops directly, not the table, so engines
# added to llm_engine.c later do not change what it links.
$(BUILD)/tests/test_llm_filters: $(BUILD)/obj/tests/unit/test_llm_filters.o \
		$(LLM_FILTER_OBJS) $(BUILD)/obj/common/vx_buf.o
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^

$(BUILD)/tests/test_llm_engines: $(BUILD)/obj/tests/unit/test_llm_engines.o \
		$(LLM_REMOTE_OBJS) $(BUILD)/obj/common/vx_buf.o $(BUILD)/obj/common/vx_curl.o \
		$(BUILD)/obj/common/vx_time.o
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LLM_ENGINE_LIBS)

UNIT_TESTS += $(BUILD)/tests/test_llm_filters
ENGINE_TESTS += $(BUILD)/tests/test_llm_engines
