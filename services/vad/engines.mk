# services/vad/engines.mk: the VAD engines and segmenter (linked by vad.mk
# into voxline-vad), their unit tests and tools/vad_eval.
#
#   VAD_ENGINE_SRCS / VAD_ENGINE_OBJS / VAD_ENGINE_LIBS  for services/vad/vad.mk
#   $(BUILD)/tests/test_vad_segmenter, $(BUILD)/tests/test_vad_engines
#   $(BUILD)/tools/vad_eval   (frame precision/recall per engine and mode)

VAD_ENGINE_SRCS := services/vad/vad_engine.c services/vad/segmenter.c \
	services/vad/engine_builtin.c services/vad/engine_webrtc.c
VAD_ENGINE_OBJS := $(VAD_ENGINE_SRCS:%.c=$(BUILD)/obj/%.o)
# The registry's lookup (vx_engine.c, libc only), for links without libvoxline.
VAD_ENGINE_OBJS += $(BUILD)/obj/common/vx_engine.o
# The WebRTC VAD library is dlopen()ed on first use (engine_webrtc.c).
VAD_ENGINE_LIBS := -ldl -lm

# tests/integration/test_vad_onset.py and tests/bench/bench_vad.py speak
# their onset set with flite and espeak-ng voices.
DEB_PACKAGES += flite espeak-ng

VAD_FLITE_CFLAGS := -I/usr/include/flite
VAD_FLITE_LIBS := -lflite_cmu_us_slt -lflite_usenglish -lflite_cmulex -lflite -lm

VAD_TEST_OBJS := $(BUILD)/obj/tests/unit/test_vad_segmenter.o \
	$(BUILD)/obj/tests/unit/test_vad_engines.o $(BUILD)/obj/tools/vad_eval.o
# Target-specific, so other fragments' per-directory flags stay theirs.
$(VAD_TEST_OBJS): CFLAGS_ALL += -Iservices/vad $(VAD_FLITE_CFLAGS)

$(BUILD)/tests/test_vad_segmenter: $(BUILD)/obj/tests/unit/test_vad_segmenter.o $(VAD_ENGINE_OBJS)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(VAD_ENGINE_LIBS)

$(BUILD)/tests/test_vad_engines: $(BUILD)/obj/tests/unit/test_vad_engines.o $(VAD_ENGINE_OBJS)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(VAD_ENGINE_LIBS) $(VAD_FLITE_LIBS)

$(BUILD)/tools/vad_eval: $(BUILD)/obj/tools/vad_eval.o $(VAD_ENGINE_OBJS)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(VAD_ENGINE_LIBS) $(VAD_FLITE_LIBS)

UNIT_TESTS += $(BUILD)/tests/test_vad_segmenter
ENGINE_TESTS += $(BUILD)/tests/test_vad_engines
TOOLS += $(BUILD)/tools/vad_eval
