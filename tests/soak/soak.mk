# make soak: mixed good, bad, slow and vanishing clients against all five
# daemons on loopback for SOAK_S seconds (default 600); not run by CI.
# Prints RSS, fds and threads per daemon at start and end, errors by kind.
SOAK_S ?= 600
SOAK_CLIENTS ?= 50

# Encoders the hostile-audio integration test and the soak use to make
# good Ogg/Vorbis and Ogg/Opus files.
DEB_PACKAGES += vorbis-tools opus-tools

.PHONY: soak
soak: all
	$(PYTHON) tests/soak/soak.py --bin $(abspath $(BUILD)/bin) \
		--tools $(abspath $(BUILD)/tools) --seconds $(SOAK_S) \
		--clients $(SOAK_CLIENTS)
