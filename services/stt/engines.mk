# services/stt/engines.mk: the STT engines (pocketsphinx, built-in Whisper,
# remote whisper.cpp and OpenAI-compatible) and their registry, linked by services/stt/stt.mk
# into voxline-stt; their unit test and tools/stt_direct.
#
#   STT_ENGINE_SRCS / STT_ENGINE_OBJS / STT_ENGINE_LIBS   for stt.mk
#   (engine_remote.c uses vx_buf from libvoxline.a; the Whisper core's
#   objects are appended by services/stt/whisper/whisper.mk)
#   $(BUILD)/tests/test_stt_engines   (flite speech round trip, WER check;
#                                      runs tests/stt_fake_server.py)
#   $(BUILD)/tools/stt_direct         (pocketsphinx called directly, for the bench)

STT_ENGINE_SRCS := services/stt/stt_engine.c services/stt/engine_pocketsphinx.c \
	services/stt/engine_remote.c services/stt/engine_whisper.c \
	services/stt/engine_whisper_stream.c
STT_ENGINE_OBJS := $(STT_ENGINE_SRCS:%.c=$(BUILD)/obj/%.o)
# The registry's lookup (vx_engine.c, libc only), for links without libvoxline.
STT_ENGINE_OBJS += $(BUILD)/obj/common/vx_engine.o
STT_ENGINE_PKGS := pocketsphinx sphinxbase libcurl libcjson
STT_ENGINE_LIBS := $(shell $(PKG_CONFIG) --libs $(STT_ENGINE_PKGS))
STT_ENGINE_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(STT_ENGINE_PKGS))
STT_FLITE_LIBS := -lflite_cmu_us_slt -lflite_cmu_us_kal16 -lflite_cmu_us_awb \
	-lflite_cmu_us_rms -lflite_usenglish -lflite_cmulex -lflite -lm

# Target-specific, so the per-directory flags of stt.mk stay its own.
$(STT_ENGINE_OBJS): CFLAGS_ALL += $(STT_ENGINE_CFLAGS)
$(BUILD)/obj/tests/unit/test_stt_engines.o: CFLAGS_ALL += -Iservices/stt
$(BUILD)/obj/tools/stt_direct.o: CFLAGS_ALL += $(STT_ENGINE_CFLAGS) $(shell $(PKG_CONFIG) --cflags sndfile)

$(BUILD)/tests/test_stt_engines: $(BUILD)/obj/tests/unit/test_stt_engines.o \
		$(STT_ENGINE_OBJS) $(BUILD)/obj/common/vx_buf.o $(BUILD)/obj/common/vx_curl.o
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(STT_ENGINE_LIBS) $(STT_FLITE_LIBS)

$(BUILD)/tools/stt_direct: $(BUILD)/obj/tools/stt_direct.o
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(shell $(PKG_CONFIG) --libs pocketsphinx sphinxbase sndfile)

ENGINE_TESTS += $(BUILD)/tests/test_stt_engines
TOOLS += $(BUILD)/tools/stt_direct
