# voxline-orchestrator: main.c, api.c, the conversation (conversation.c, its
# sockets conv_link.c, its pure state machine conv_machine.c and the actions'
# executor conv_act.c, see conv_int.h), turn.c, upstream.c on libvoxline, with the leaves of leaves.mk
# (sentences, history: SQLite or PostgreSQL) and policy.mk (conv_policy.c).
#
#   $(BUILD)/bin/voxline-orchestrator
#   $(BUILD)/tests/test_orch_turn, $(BUILD)/tests/test_orch_upstream,
#   $(BUILD)/tests/test_conv_machine (the machine driven by event sequences)
ORCH_SRCS := services/orchestrator/main.c services/orchestrator/api.c \
	services/orchestrator/conversation.c services/orchestrator/conv_link.c \
	services/orchestrator/conv_act.c services/orchestrator/conv_machine.c \
	services/orchestrator/turn.c services/orchestrator/upstream.c
ORCH_OBJS := $(ORCH_SRCS:%.c=$(BUILD)/obj/%.o)
$(ORCH_OBJS): CFLAGS_ALL += $(CFLAGS_common_) $(ORCH_LEAF_CFLAGS)

$(BUILD)/bin/voxline-orchestrator: $(ORCH_OBJS) $$(ORCH_LEAF_OBJS) $(LIBVOXLINE)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(ORCH_LEAF_LIBS) $(COMMON_LIBS)
BINS += $(BUILD)/bin/voxline-orchestrator

ORCH_TEST_OBJS := $(BUILD)/obj/tests/unit/test_orch_turn.o \
	$(BUILD)/obj/tests/unit/test_orch_upstream.o $(BUILD)/obj/tests/unit/test_conv_machine.o
$(ORCH_TEST_OBJS): CFLAGS_ALL += -Iservices/orchestrator

$(BUILD)/tests/test_orch_turn: $(BUILD)/obj/tests/unit/test_orch_turn.o \
		$(BUILD)/obj/services/orchestrator/turn.o $(BUILD)/obj/common/vx_buf.o
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^

$(BUILD)/tests/test_orch_upstream: $(BUILD)/obj/tests/unit/test_orch_upstream.o \
		$(BUILD)/obj/services/orchestrator/upstream.o $(BUILD)/obj/common/vx_buf.o \
		$(BUILD)/obj/common/vx_time.o
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^

$(BUILD)/tests/test_conv_machine: $(BUILD)/obj/tests/unit/test_conv_machine.o \
		$(BUILD)/obj/services/orchestrator/conv_machine.o \
		$(BUILD)/obj/services/orchestrator/conv_policy.o \
		$(BUILD)/obj/services/orchestrator/turn.o \
		$(BUILD)/obj/services/orchestrator/sentences.o $(BUILD)/obj/common/vx_buf.o
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^

UNIT_TESTS += $(BUILD)/tests/test_orch_turn $(BUILD)/tests/test_orch_upstream \
	$(BUILD)/tests/test_conv_machine
