# voxline: one non-recursive Makefile.
#
#   make deps        install every Debian package the build and tests need
#   make             build build/bin/voxline-* (and libvoxline.a)
#   make run         start all built daemons on localhost (Ctrl-C stops them)
#   make test        deps + build + unit + engine-test + integration
#                    + browser-test (not on the sanitizer build)
#   make unit        unit tests: fast, offline; no apt, no servers, no engines
#   make engine-test engine tests: real engines and their fake upstreams
#                    (Python servers on loopback), one process each
#   make integration the real daemons on loopback (tests/integration, tests/gguf;
#                    TESTS=file.py ... runs only those)
#   make browser-test the web page in headless chromium (tests/browser)
#   make sanitize    unit + engine-test + integration on an ASan/UBSan build
#                    (build-asan/, leak checks with tests/lsan.supp)
#   make test-deploy deployment tests: systemd, haproxy, PostgreSQL, namespaces
#   make bench       benchmarks; prints figures, never fails on a number
#   make models      download a small GGUF instruct model into models/ (internet)
#
# Switches:
#   SANITIZE=1   build with -fsanitize=address,undefined into build-asan/
#   V=1          echo full compiler command lines
#   OPT=-O2      optimisation flags
#
# Fragments (*.mk) append to BINS, UNIT_TESTS, ENGINE_TESTS and TOOLS and
# define their own objects; the generic rules below compile every .c under
# $(BUILD)/obj. A test that needs no network, no server and no engine is a
# UNIT_TEST; one that runs a real engine or starts a helper server is an
# ENGINE_TEST.

.DELETE_ON_ERROR:
.SECONDEXPANSION:
.SUFFIXES:
.DEFAULT_GOAL := all

ifeq ($(SANITIZE),1)
BUILD ?= build-asan
# Leak reports from inside Debian's engine libraries are suppressed by name
# in tests/lsan.supp; everything else fails the run.
export ASAN_OPTIONS ?= detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=0
export LSAN_OPTIONS ?= suppressions=$(abspath tests/lsan.supp):print_suppressions=0
export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT ?= -O1
else
BUILD ?= build
SAN_FLAGS :=
OPT ?= -O2
endif

CC ?= cc
PKG_CONFIG ?= pkg-config
PYTHON ?= /usr/bin/python3

WARN := -Wall -Wextra -Wshadow -Wformat=2 -Werror
CFLAGS_ALL := -std=c11 -D_GNU_SOURCE $(OPT) -g $(WARN) $(SAN_FLAGS) -MMD -MP -Icommon -pthread $(CFLAGS)
LDFLAGS_ALL := $(SAN_FLAGS) -pthread $(LDFLAGS)

ifeq ($(V),1)
Q :=
else
Q := @
endif

BINS :=
UNIT_TESTS :=
ENGINE_TESTS :=
TOOLS :=

include common/common.mk
-include $(sort $(wildcard services/*/*.mk services/*/*/*.mk tests/*.mk tests/*/*.mk tools/*.mk deploy/*.mk))

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS_ALL) $(CFLAGS_$(subst /,_,$(dir $<))) -c -o $@ $<

.PHONY: all deps run test unit engine-test integration sanitize bench clean tools models test-deploy
all: $(BINS) $(TOOLS)
tools: $(TOOLS)

# Fragments add their own with DEB_PACKAGES += (the list is read when `deps` runs).
DEB_PACKAGES += build-essential pkg-config curl wrk \
	libmicrohttpd-dev libwebsockets-dev libsndfile1-dev libsoxr-dev \
	libcjson-dev libcurl4-openssl-dev libsystemd-dev libsqlite3-dev \
	libpocketsphinx-dev libsphinxbase-dev pocketsphinx-en-us \
	flite1-dev libespeak-ng-dev espeak-ng-data libwebrtc-audio-processing-dev \
	python3 python3-pytest python3-numpy python3-regex python3-websocket

# Installs only what is missing; a no-op (no root needed) when all are there.
# Node.js comes from Debian only when no node/npm is on the PATH already.
deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@if ! command -v npm >/dev/null; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends nodejs npm; fi
	@if [ -f tests/package.json ] && { [ ! -f tests/node_modules/.package-lock.json ] || \
		[ tests/package-lock.json -nt tests/node_modules/.package-lock.json ]; }; then \
		cd tests && npm install --no-audit --no-fund --silent; fi

run: deps all
	$(PYTHON) tools/run.py --bin $(BUILD)/bin

# Unit tests need nothing installed beyond the build: no deps step here.
unit: $(UNIT_TESTS)
	@fail=0; for t in $(UNIT_TESTS); do echo "== $$t"; $$t || fail=1; done; exit $$fail

engine-test: $(ENGINE_TESTS)
	@fail=0; for t in $(ENGINE_TESTS); do echo "== $$t"; $$t || fail=1; done; exit $$fail

# TESTS= narrows the run to some files: make integration TESTS=tests/integration/test_vad.py
TESTS ?= tests/integration tests/gguf
integration: all
	VOXLINE_BIN=$(abspath $(BUILD)/bin) VOXLINE_TOOLS=$(abspath $(BUILD)/tools) \
		$(PYTHON) -m pytest -q -p no:cacheprovider $(TESTS) $(PYTEST_ARGS)

test: deps
	$(MAKE) all $(UNIT_TESTS) $(ENGINE_TESTS)
	$(MAKE) unit
	$(MAKE) engine-test
	$(MAKE) integration
	$(if $(filter 1,$(SANITIZE)),,$(MAKE) browser-test)

# Deployment tests (real systemd, haproxy, PostgreSQL, namespaces, containers):
# tests/deploy/, one file per scenario. Root is needed for namespaces and nspawn.
test-deploy: deps all
	VOXLINE_BIN=$(abspath $(BUILD)/bin) VOXLINE_TOOLS=$(abspath $(BUILD)/tools) \
		$(PYTHON) -m pytest -q -p no:cacheprovider tests/deploy $(PYTEST_ARGS)

# Every tier on the ASan/UBSan build (its own BUILD dir, build-asan/ unless
# BUILD= says otherwise): a leak, an overflow or undefined behaviour in a
# daemon fails the test that caused it.
sanitize: deps
	$(MAKE) SANITIZE=1 test

bench: deps all
	$(PYTHON) tests/bench/run.py --bin $(abspath $(BUILD)/bin) --tools $(abspath $(BUILD)/tools)

# A small instruct model for the built-in engine (needs internet).
MODEL_URL ?= https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF/resolve/main/qwen2.5-0.5b-instruct-q8_0.gguf
MODEL_FILE ?= models/qwen2.5-0.5b-instruct-q8_0.gguf
# The expected sha256; empty: the server's (URL.sha256, or Hugging Face's
# X-Linked-Etag, which is the LFS object's sha256). See tools/fetch_model.sh.
MODEL_SHA256 ?=
# The built-in Whisper engine's model (voxline-stt picks it up from this
# path). Checked like the above (whisper.cpp's models/README.md gives its
# SHA-1 as 137c40403d78fd54d454da0f9bd998f78703390c).
WHISPER_MODEL_URL ?= https://huggingface.co/ggerganov/whisper.cpp/resolve/main/ggml-base.en.bin
WHISPER_MODEL_FILE ?= models/ggml-base.en.bin
WHISPER_MODEL_SHA256 ?=
# Resumable (models/*.part), with a progress bar, checksum-verified.
models:
	@sh tools/fetch_model.sh '$(MODEL_URL)' '$(MODEL_FILE)' '$(MODEL_SHA256)'
	@sh tools/fetch_model.sh '$(WHISPER_MODEL_URL)' '$(WHISPER_MODEL_FILE)' '$(WHISPER_MODEL_SHA256)'

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
