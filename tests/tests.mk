# Test-only daemons and tools shared by the integration tests.
$(BUILD)/tools/vx_testd: $(BUILD)/obj/tests/testd.o $(LIBVOXLINE)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(COMMON_LIBS)
CFLAGS_tests_ := $(CFLAGS_common_)
TOOLS += $(BUILD)/tools/vx_testd

# python3-cryptography: test_telephony signs Telnyx webhooks with Ed25519
DEB_PACKAGES += python3-cryptography
