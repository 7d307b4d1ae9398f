# tests/unit/test_whisper_agree.c: local agreement of streamed Whisper
# hypotheses (services/stt/whisper/wagree.c, a pure module: a unit test).
$(BUILD)/tests/test_whisper_agree: $(BUILD)/obj/tests/unit/test_whisper_agree.o \
		$(BUILD)/obj/services/stt/whisper/wagree.o
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^

UNIT_TESTS += $(BUILD)/tests/test_whisper_agree

# tests/unit/test_whisper_stream.c: the Whisper engine's streams through
# its ops on a random tiny model (an engine test: it writes a model file).
$(BUILD)/obj/tests/unit/test_whisper_stream.o: CFLAGS_ALL += \
	-DWHISPER_TEST_DIR='"$(abspath tests/whisper)"'
$(BUILD)/tests/test_whisper_stream: $(BUILD)/obj/tests/unit/test_whisper_stream.o \
		$$(STT_ENGINE_OBJS) $(BUILD)/obj/common/vx_buf.o $(BUILD)/obj/common/vx_curl.o
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(STT_ENGINE_LIBS) $(WHISPER_LIBS) -lm

ENGINE_TESTS += $(BUILD)/tests/test_whisper_stream
