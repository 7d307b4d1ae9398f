# tools/jobs.mk: NATS JetStream work queues (issue 15): the worker mode every
# engine service links (common/vx_jobs.c + services/<svc>/jobs.c) and the
# voxline-jobs pipeline tool.
DEB_PACKAGES += nats-server libnats-dev

# common/vx_jobs*.c sit in libvoxline (libnats is in COMMON_PKGS); the
# services' jobs.c are in their own SRCS.

# voxline-jobs: recorded questions -> STT -> LLM -> TTS jobs -> answers.
$(BUILD)/tools/voxline-jobs: $(BUILD)/obj/tools/voxline-jobs.o $(LIBVOXLINE)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(COMMON_LIBS)
$(BUILD)/obj/tools/voxline-jobs.o: CFLAGS_ALL += $(CFLAGS_common_)
TOOLS += $(BUILD)/tools/voxline-jobs
