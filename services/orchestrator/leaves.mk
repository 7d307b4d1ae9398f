# services/orchestrator/leaves.mk: the orchestrator's leaf modules, linked
# by the lead's services/orchestrator/orchestrator.mk into the daemon, their
# unit tests, and the voxline-client command-line tool.
#
#   ORCH_LEAF_SRCS / ORCH_LEAF_OBJS / ORCH_LEAF_LIBS   for orchestrator.mk
#     sentences.c (streaming sentence splitter), history.c (the store's front)
#     with its backends history_sqlite.c (SQLite) and history_pg.c (libpq);
#     all use vx_buf (and the SQLite one vx_time) from libvoxline.a
#   $(BUILD)/bin/voxline-client       streams a WAV to /ws/chat
#   $(BUILD)/tests/test_orch_sentences, $(BUILD)/tests/test_orch_history,
#   $(BUILD)/tests/test_voxline_client (a script: tests/fake_chat_server.py --check)

ORCH_HISTORY_SRCS := services/orchestrator/history.c \
	services/orchestrator/history_sqlite.c services/orchestrator/history_pg.c
ORCH_HISTORY_OBJS := $(ORCH_HISTORY_SRCS:%.c=$(BUILD)/obj/%.o)
ORCH_LEAF_SRCS := services/orchestrator/sentences.c $(ORCH_HISTORY_SRCS)
ORCH_LEAF_OBJS := $(ORCH_LEAF_SRCS:%.c=$(BUILD)/obj/%.o)
ORCH_LEAF_LIBS := $(shell $(PKG_CONFIG) --libs sqlite3 libpq)
ORCH_LEAF_CFLAGS := $(shell $(PKG_CONFIG) --cflags sqlite3 libpq)

# Target-specific, so the per-directory flags of orchestrator.mk stay its own.
$(ORCH_LEAF_OBJS): CFLAGS_ALL += $(ORCH_LEAF_CFLAGS)
$(BUILD)/obj/tests/unit/test_orch_sentences.o: CFLAGS_ALL += -Iservices/orchestrator
$(BUILD)/obj/tests/unit/test_orch_history.o: CFLAGS_ALL += -Iservices/orchestrator $(ORCH_LEAF_CFLAGS)

$(BUILD)/tests/test_orch_sentences: $(BUILD)/obj/tests/unit/test_orch_sentences.o \
		$(BUILD)/obj/services/orchestrator/sentences.o $(BUILD)/obj/common/vx_buf.o
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^

$(BUILD)/tests/test_orch_history: $(BUILD)/obj/tests/unit/test_orch_history.o \
		$(ORCH_HISTORY_OBJS) $(BUILD)/obj/common/vx_buf.o $(BUILD)/obj/common/vx_time.o
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(ORCH_LEAF_LIBS) $(shell $(PKG_CONFIG) --libs libcjson)

UNIT_TESTS += $(BUILD)/tests/test_orch_sentences $(BUILD)/tests/test_orch_history

# voxline-client: links libvoxline.a (ws client, audio, flags) and cJSON.
$(BUILD)/obj/services/orchestrator/client.o: CFLAGS_ALL += $(CFLAGS_common_)

$(BUILD)/bin/voxline-client: $(BUILD)/obj/services/orchestrator/client.o $(LIBVOXLINE)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(COMMON_LIBS)

BINS += $(BUILD)/bin/voxline-client

# The client's test: a script that runs voxline-client against the fake
# /ws/chat of tests/fake_chat_server.py (stdlib Python, its own scenarios).
$(BUILD)/tests/test_voxline_client: $(BUILD)/bin/voxline-client tests/fake_chat_server.py
	@mkdir -p $(@D)
	$(Q)printf '#!/bin/sh\nexec %s %s --check %s\n' '$(PYTHON)' \
		'$(abspath tests/fake_chat_server.py)' '$(abspath $(BUILD)/bin/voxline-client)' > $@
	$(Q)chmod +x $@

ENGINE_TESTS += $(BUILD)/tests/test_voxline_client
