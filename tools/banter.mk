# tools/banter.mk: voxline-banter (issue 15, part 3), two voiced bots talking
# to each other through NATS, each an orchestrator conversation (POST /chat).
#
#   $(BUILD)/bin/voxline-banter   links libvoxline.a (flags, audio, curl
#                                 helpers), libcurl, cJSON and libnats
#   tests/integration/test_banter.py starts a real nats-server -js
DEB_PACKAGES += nats-server libnats-dev

BANTER_PKGS := libcurl libnats
$(BUILD)/obj/tools/voxline_banter.o: CFLAGS_ALL += $(CFLAGS_common_) \
	$(shell $(PKG_CONFIG) --cflags $(BANTER_PKGS) 2>/dev/null)

$(BUILD)/bin/voxline-banter: $(BUILD)/obj/tools/voxline_banter.o $(LIBVOXLINE)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(COMMON_LIBS) \
		$(shell $(PKG_CONFIG) --libs $(BANTER_PKGS) 2>/dev/null || echo -lcurl -lnats)

BINS += $(BUILD)/bin/voxline-banter
