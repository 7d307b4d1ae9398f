# services/orchestrator/policy.mk: the turn-taking policies (conv_policy.c,
# pure functions: end of turn and barge-in), a leaf of the orchestrator.
#
#   ORCH_LEAF_SRCS / ORCH_LEAF_OBJS += conv_policy   (appended: this file is
#     included after leaves.mk and orchestrator.mk, whose link line reads
#     $$(ORCH_LEAF_OBJS) at second expansion)
#   $(BUILD)/tests/test_conv_policy                  its unit test

ORCH_LEAF_SRCS += services/orchestrator/conv_policy.c
ORCH_LEAF_OBJS += $(BUILD)/obj/services/orchestrator/conv_policy.o

$(BUILD)/obj/tests/unit/test_conv_policy.o: CFLAGS_ALL += -Iservices/orchestrator

$(BUILD)/tests/test_conv_policy: $(BUILD)/obj/tests/unit/test_conv_policy.o \
		$(BUILD)/obj/services/orchestrator/conv_policy.o
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^

UNIT_TESTS += $(BUILD)/tests/test_conv_policy
