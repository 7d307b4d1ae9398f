# tests/browser/browser.mk: the orchestrator's web page driven in Debian's
# headless chromium (puppeteer-core over the DevTools protocol, axe-core),
# with a fake microphone fed from a WAV made by flite at test time.
DEB_PACKAGES += chromium flite

# make browser-test: the browser tests on this build's daemons (PYTEST_ARGS
# passes options, e.g. PYTEST_ARGS='-k barge'). npm packages come from
# tests/package.json through `make deps`.
browser-test: deps all
	VOXLINE_BIN=$(abspath $(BUILD)/bin) $(PYTHON) -m pytest -q -p no:cacheprovider \
		tests/browser $(PYTEST_ARGS)

.PHONY: browser-test
