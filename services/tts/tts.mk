# services/tts/tts.mk: voxline-tts = main.c, synth.c (voice choice, engine
# call, metrics), api.c (HTTP routes), api_ws.c (/ws/synthesize) on
# libvoxline, with the engines of engines.mk ($(TTS_ENGINE_OBJS)).
TTS_SRCS := services/tts/main.c services/tts/synth.c services/tts/api.c \
	services/tts/api_ws.c services/tts/jobs.c
TTS_SRCS += services/tts/wyoming.c
TTS_OBJS := $(TTS_SRCS:%.c=$(BUILD)/obj/%.o)
CFLAGS_services_tts_ += $(CFLAGS_common_)

$(BUILD)/bin/voxline-tts: $(TTS_OBJS) $$(TTS_ENGINE_OBJS) $(LIBVOXLINE)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(COMMON_LIBS) $(TTS_ENGINE_LIBS)
BINS += $(BUILD)/bin/voxline-tts
