# tests/unit/test_whisper_agree.c: local agreement of streamed Whisper
# hypotheses (services/stt/whisper/wagree.c, a pure module: a unit test).
$(BUILD)/tests/test_whisper_agree: $(BUILD)/obj/tests/unit/test_whisper_agree.o \
		$(BUILD)/obj/services/stt/whisper/wagree.o
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^

UNIT_TESTS += $(BUILD)/tests/test_whisper_agree
