# services/tts/engines.mk: the TTS engines (flite, espeak-ng, remote
# OpenAI-compatible) and their registry, linked by services/tts/tts.mk into
# voxline-tts; their unit test and tools/tts_direct.
#
#   TTS_ENGINE_SRCS / TTS_ENGINE_OBJS / TTS_ENGINE_LIBS   for tts.mk
#   (engine_remote.c uses vx_buf from libvoxline.a)
#   $(BUILD)/tests/test_tts_engines   (runs tests/tts_fake_server.py)
#   $(BUILD)/tools/tts_direct         (flite called directly, for the bench)

TTS_ENGINE_SRCS := services/tts/tts_engine.c services/tts/engine_flite.c \
	services/tts/engine_espeak.c services/tts/engine_remote.c
TTS_ENGINE_OBJS := $(TTS_ENGINE_SRCS:%.c=$(BUILD)/obj/%.o)
# The registry's lookup (vx_engine.c, libc only), for links without libvoxline.
TTS_ENGINE_OBJS += $(BUILD)/obj/common/vx_engine.o
TTS_FLITE_LIBS := -lflite_cmu_us_slt -lflite_cmu_us_kal -lflite_cmu_us_kal16 \
	-lflite_cmu_us_awb -lflite_cmu_us_rms -lflite_usenglish -lflite_cmulex \
	-lflite -lm
TTS_ENGINE_PKGS := espeak-ng libcurl
TTS_ENGINE_LIBS := $(TTS_FLITE_LIBS) $(shell $(PKG_CONFIG) --libs $(TTS_ENGINE_PKGS))
TTS_ENGINE_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(TTS_ENGINE_PKGS))

# Target-specific, so the per-directory flags of tts.mk stay its own.
$(TTS_ENGINE_OBJS): CFLAGS_ALL += $(TTS_ENGINE_CFLAGS)
$(BUILD)/obj/tests/unit/test_tts_engines.o: CFLAGS_ALL += -Iservices/tts
$(BUILD)/obj/tools/tts_direct.o: CFLAGS_ALL += -Iservices/tts

$(BUILD)/tests/test_tts_engines: $(BUILD)/obj/tests/unit/test_tts_engines.o \
		$(TTS_ENGINE_OBJS) $(BUILD)/obj/common/vx_buf.o $(BUILD)/obj/common/vx_curl.o
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(TTS_ENGINE_LIBS)

$(BUILD)/tools/tts_direct: $(BUILD)/obj/tools/tts_direct.o
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(TTS_FLITE_LIBS)

ENGINE_TESTS += $(BUILD)/tests/test_tts_engines
TOOLS += $(BUILD)/tools/tts_direct
