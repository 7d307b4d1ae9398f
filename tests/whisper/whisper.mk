# tests/whisper/whisper.mk - the built-in Whisper engine's fuzz harness
# (after tests/fuzz/fuzz.mk in include order, so it joins that setup:
# `make fuzz FUZZ=whisper`, and `make fuzz-ci` runs it with the others).
#
#   tests/whisper/mkwhisper.py   random-weight model files (whisper.cpp format)
#   tests/whisper/mkseeds.py     the fuzz seeds in tests/fuzz/corpus/whisper/
FUZZ_NAMES += whisper
FUZZ_OBJS_whisper := $(call FUZZ_O,tests/whisper/fuzz_whisper services/stt/whisper/wfile)
.SECONDARY: $(FUZZ_OBJS_whisper)
fuzz-bins: $(BUILD)/fuzz/fuzz_whisper

# the core's benchmark tool (tests/bench/bench_whisper.py)
$(BUILD)/tools/whisper_bench: $(BUILD)/obj/tests/whisper/whisper_bench.o $(WHISPER_OBJS) \
		$(KERN_OBJS)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(WHISPER_LIBS)
TOOLS += $(BUILD)/tools/whisper_bench
