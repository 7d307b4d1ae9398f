# tests/unit/test_gguf_batch.c: continuous batching in the gguf engine
# (several generations at once on one model; an engine test: it writes and
# loads small random-weight models).
$(BUILD)/tests/test_gguf_batch: $(BUILD)/obj/tests/unit/test_gguf_batch.o $(BUILD)/obj/services/llm/engine_gguf.o $(GGUF_OBJS) $(LIBVOXLINE)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(COMMON_LIBS)

ENGINE_TESTS += $(BUILD)/tests/test_gguf_batch
