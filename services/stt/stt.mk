# services/stt/stt.mk: voxline-stt = main.c + the routes (api.c /transcribe
# and the shared core, api_openai.c /v1/audio/transcriptions, api_ws.c
# /ws/transcribe) on libvoxline, with the engines of engines.mk
# ($(STT_ENGINE_OBJS), $(STT_ENGINE_LIBS)).
STT_SRCS := services/stt/main.c services/stt/api.c services/stt/api_openai.c \
	services/stt/api_ws.c services/stt/jobs.c
STT_SRCS += services/stt/wyoming.c
STT_OBJS := $(STT_SRCS:%.c=$(BUILD)/obj/%.o)

# Target-specific, so engines.mk's flags for the engine objects stay its own.
$(STT_OBJS): CFLAGS_ALL += $(CFLAGS_common_) \
	$(shell $(PKG_CONFIG) --cflags pocketsphinx sphinxbase libcurl libcjson)

$(BUILD)/bin/voxline-stt: $(STT_OBJS) $$(STT_ENGINE_OBJS) $(LIBVOXLINE)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(COMMON_LIBS) $(STT_ENGINE_LIBS)
BINS += $(BUILD)/bin/voxline-stt
