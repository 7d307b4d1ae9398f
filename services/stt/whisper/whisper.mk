# services/stt/whisper/whisper.mk - the built-in Whisper engine's core
# (issue 12): the ggml model file reader, tokenizer, mel spectrogram and
# model. WHISPER_OBJS is what the engine, its tests and tools link; it
# shares the GGUF engine's kernels and thread pool (common/kern, KERN_OBJS).
WHISPER_SRCS := $(wildcard services/stt/whisper/*.c)
WHISPER_OBJS := $(WHISPER_SRCS:%.c=$(BUILD)/obj/%.o)
CFLAGS_services_stt_whisper_ += $(if $(filter 1,$(SANITIZE)),-O2,-O3) -fno-math-errno
# wdecode.c's compression ratio is zlib's (as openai-whisper computes it):
# every link of WHISPER_OBJS adds WHISPER_LIBS.
DEB_PACKAGES += zlib1g-dev
WHISPER_LIBS := -lz -lm

$(BUILD)/tests/test_whisper_file: $(BUILD)/obj/tests/unit/test_whisper_file.o \
		$(BUILD)/obj/services/stt/whisper/wfile.o
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^

UNIT_TESTS += $(BUILD)/tests/test_whisper_file

$(BUILD)/obj/tests/unit/test_whisper_tok.o: CFLAGS_ALL += -DWHISPER_TEST_DIR='"$(abspath tests/whisper)"'
$(BUILD)/tests/test_whisper_tok: $(BUILD)/obj/tests/unit/test_whisper_tok.o \
		$(addprefix $(BUILD)/obj/services/stt/whisper/,wfile.o wtok.o)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^

UNIT_TESTS += $(BUILD)/tests/test_whisper_tok

$(BUILD)/obj/tests/unit/test_whisper_model.o: CFLAGS_ALL += -DWHISPER_TEST_DIR='"$(abspath tests/whisper)"'
$(BUILD)/tests/test_whisper_model: $(BUILD)/obj/tests/unit/test_whisper_model.o \
		$(WHISPER_OBJS) $(KERN_OBJS)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(WHISPER_LIBS)

ENGINE_TESTS += $(BUILD)/tests/test_whisper_model

$(BUILD)/tests/test_whisper_decode: $(BUILD)/obj/tests/unit/test_whisper_decode.o \
		$(addprefix $(BUILD)/obj/services/stt/whisper/,wdecode.o wtok.o)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(WHISPER_LIBS)

UNIT_TESTS += $(BUILD)/tests/test_whisper_decode

# beam search's per-beam decoder snapshots on a real (random tiny) model
$(BUILD)/obj/tests/unit/test_whisper_beam.o: CFLAGS_ALL += -DWHISPER_TEST_DIR='"$(abspath tests/whisper)"'
$(BUILD)/tests/test_whisper_beam: $(BUILD)/obj/tests/unit/test_whisper_beam.o \
		$(WHISPER_OBJS) $(KERN_OBJS)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(WHISPER_LIBS)

ENGINE_TESTS += $(BUILD)/tests/test_whisper_beam

# The engine (services/stt/engine_whisper.c, "whisper" in stt_engines[]):
# every link of the STT engines (voxline-stt, test_stt_engines) takes the
# Whisper core with it. test_whisper_engine tests it through its ops.
STT_ENGINE_OBJS += $(WHISPER_OBJS) $(KERN_OBJS)
STT_ENGINE_LIBS += $(WHISPER_LIBS)
$(BUILD)/tests/test_stt_engines: $(WHISPER_OBJS) $(KERN_OBJS)
$(BUILD)/obj/tests/unit/test_whisper_engine.o: CFLAGS_ALL += \
	-DWHISPER_TEST_DIR='"$(abspath tests/whisper)"'
$(BUILD)/tests/test_whisper_engine: $(BUILD)/obj/tests/unit/test_whisper_engine.o \
		$(BUILD)/obj/services/stt/engine_whisper.o $(WHISPER_OBJS) $(KERN_OBJS) \
		$(STT_ENGINE_OBJS) $(BUILD)/obj/common/vx_buf.o $(BUILD)/obj/common/vx_curl.o
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(STT_ENGINE_LIBS) -lm

ENGINE_TESTS += $(BUILD)/tests/test_whisper_engine
