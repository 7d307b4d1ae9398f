# tests/browser/browser.mk: the orchestrator's web page driven in Debian's
# headless chromium (puppeteer-core over the DevTools protocol, axe-core),
# with a fake microphone fed from a WAV made by flite at test time.
DEB_PACKAGES += chromium flite
