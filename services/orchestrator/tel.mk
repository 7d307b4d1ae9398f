# services/orchestrator/tel.mk: phone calls (tel.c: /ws/twilio and
# /ws/telnyx media streams; tel_http.c: POST /twilio/voice TwiML,
# POST /telnyx/voice TeXML, X-Twilio-Signature with libcrypto's HMAC-SHA1),
# linked into voxline-orchestrator as leaves (appended: this file is
# included after orchestrator.mk, whose link line reads $$(ORCH_LEAF_OBJS)
# at second expansion and $(ORCH_LEAF_LIBS) when it runs).
DEB_PACKAGES += libssl-dev

TEL_OBJS := $(BUILD)/obj/services/orchestrator/tel.o \
	$(BUILD)/obj/services/orchestrator/tel_http.o
$(TEL_OBJS): CFLAGS_ALL += $(CFLAGS_common_) $(ORCH_LEAF_CFLAGS) \
	$(shell $(PKG_CONFIG) --cflags libcrypto)
ORCH_LEAF_OBJS += $(TEL_OBJS)
ORCH_LEAF_LIBS += $(shell $(PKG_CONFIG) --libs libcrypto)
