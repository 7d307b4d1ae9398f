# tools/banter.mk: voxline-banter (issue 15, part 3), two voiced bots talking
# to each other through NATS, each an orchestrator conversation (POST /chat).
#
#   $(BUILD)/bin/voxline-banter      tools/voxline_banter.c (flags, bots, NATS,
#                                    output) + tools/banter_orch.c (POST /chat,
#                                    /healthz) + tools/banter_record.c (the
#                                    stereo timeline, transcript lines) +
#                                    tools/banter_ws.c (--stream: /ws/chat);
#                                    links libvoxline.a, libcurl, cJSON, libnats
#   $(BUILD)/tests/test_banter_record   banter_record's unit test
#   tests/integration/test_banter.py starts a real nats-server -js
DEB_PACKAGES += nats-server libnats-dev

BANTER_PKGS := libcurl libnats
BANTER_OBJS := $(BUILD)/obj/tools/voxline_banter.o $(BUILD)/obj/tools/banter_orch.o \
	$(BUILD)/obj/tools/banter_record.o $(BUILD)/obj/tools/banter_ws.o
$(BANTER_OBJS): CFLAGS_ALL += $(CFLAGS_common_)
$(BUILD)/obj/tools/voxline_banter.o $(BUILD)/obj/tools/banter_orch.o: CFLAGS_ALL += \
	$(shell $(PKG_CONFIG) --cflags $(BANTER_PKGS) 2>/dev/null)
$(BUILD)/obj/tests/unit/test_banter_record.o: CFLAGS_ALL += $(CFLAGS_common_)

$(BUILD)/bin/voxline-banter: $(BANTER_OBJS) $(LIBVOXLINE)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(COMMON_LIBS) \
		$(shell $(PKG_CONFIG) --libs $(BANTER_PKGS) 2>/dev/null || echo -lcurl -lnats)

$(BUILD)/tests/test_banter_record: $(BUILD)/obj/tests/unit/test_banter_record.o \
		$(BUILD)/obj/tools/banter_record.o $(LIBVOXLINE)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(COMMON_LIBS)

BINS += $(BUILD)/bin/voxline-banter
UNIT_TESTS += $(BUILD)/tests/test_banter_record
