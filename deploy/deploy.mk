# deploy/deploy.mk: `make install` and `make deb`, and the packages of the
# systemd deployment test (tests/deploy/test_systemd.py: an mmdebstrap rootfs
# booted with systemd-nspawn).
#
#   make install [PREFIX=/usr/local] [DESTDIR=]
#       $(PREFIX)/bin/voxline-*                      the daemons and voxline-client
#       $(UNITDIR)/voxline-*.service, *.socket       hardened units (deploy/systemd)
#       $(GENERATORDIR)/voxline-listen-generator     the sockets' address, one setting
#       $(PREFIX)/share/voxline/web/index.html       the orchestrator's page
#       $(PREFIX)/share/doc/voxline/                 README.md, systemd.md, websocket.md
#       /etc/voxline/<daemon>.env, listen.conf       examples; never overwritten
#     UNITDIR is /lib/systemd/system for PREFIX=/usr, else
#     $(PREFIX)/lib/systemd/system (systemd reads /usr/local/lib/systemd/system).
#     The units name /usr/bin and /usr/share; install rewrites them for PREFIX.
#
#   make deb
#       $(BUILD)/voxline_$(VOXLINE_VERSION)_$(DEB_ARCH).deb: `make install`
#       with PREFIX=/usr into $(BUILD)/deb/root, stripped; Depends from
#       dpkg-shlibdeps plus the engines' data (pocketsphinx-en-us). The
#       postinst only reloads systemd: the units' DynamicUser= and
#       StateDirectory= make the user and /var/lib/voxline. Then
#       `apt install ./build/voxline_*.deb && systemctl enable --now voxline-stt.socket`.

DEB_PACKAGES += systemd systemd-container mmdebstrap dpkg-dev

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR := $(PREFIX)/bin
DATADIR := $(PREFIX)/share
DOCDIR := $(DATADIR)/doc/voxline
SYSCONFDIR := /etc
ifeq ($(PREFIX),/usr)
UNITDIR ?= /lib/systemd/system
GENERATORDIR ?= /lib/systemd/system-generators
else
UNITDIR ?= $(PREFIX)/lib/systemd/system
GENERATORDIR ?= $(PREFIX)/lib/systemd/system-generators
endif
INSTALL ?= install
INSTALL_STRIP ?=

VOXLINE_DAEMONS := vad stt tts llm orchestrator
VOXLINE_VERSION := $(shell sed -n 's/^\#define VAD_VERSION "\(.*\)"/\1/p' services/vad/main.c)
DEB_ARCH := $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
DEB_FILE := $(BUILD)/voxline_$(VOXLINE_VERSION)_$(DEB_ARCH).deb
DEB_ROOT := $(BUILD)/deb/root
INSTALL_BINS := $(VOXLINE_DAEMONS:%=$(BUILD)/bin/voxline-%) $(BUILD)/bin/voxline-client
UNIT_FILES := $(wildcard deploy/systemd/voxline-*.service deploy/systemd/voxline-*.socket)
ENV_EXAMPLES := $(VOXLINE_DAEMONS:%=$(BUILD)/deploy/%.env)
DOC_FILES := README.md docs/websocket.md

# Example env files: every flag of the daemon's --help, commented out, with
# its help text and default, so the file never falls behind the flags.
$(BUILD)/deploy/%.env: $(BUILD)/bin/voxline-% deploy/deploy.mk
	@mkdir -p $(@D)
	$(Q){ echo "# /etc/voxline/$*.env: options of voxline-$* as environment variables,"; \
	  echo "# read by voxline-$*.service (EnvironmentFile=). Every line is commented"; \
	  echo "# out: the daemon's default stands. Under the .socket unit the listening"; \
	  echo "# address comes from systemd (/etc/voxline/listen.conf), so HOST and PORT"; \
	  echo "# matter only when the service runs without its socket."; \
	  echo "# A default shown is the daemon's own; the unit's Environment= lines"; \
	  echo "# (systemctl cat voxline-$*.service) come first, this file overrides them."; \
	  echo "# After a change: systemctl restart voxline-$*.service"; \
	  $< --help 2>&1 | awk '/^  --/ { help = ""; next } \
	    /^      env / { d = ""; h = help; \
	      if (match(h, / \(default [^)]*\)$$/)) { d = substr(h, RSTART + 10, RLENGTH - 11); h = substr(h, 1, RSTART - 1) } \
	      printf "\n# %s\n#%s=%s\n", h, $$2, d; next } \
	    /^      / { sub(/^ +/, ""); help = help == "" ? $$0 : help " " $$0 }'; } > $@.tmp
	$(Q)grep -q '^#VOXLINE_' $@.tmp || { echo "$@: no flags read from $< --help" >&2; exit 1; }
	$(Q)mv $@.tmp $@

.PHONY: install deb
install: $(INSTALL_BINS) $(ENV_EXAMPLES)
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(GENERATORDIR) \
		$(DESTDIR)$(DATADIR)/voxline/web $(DESTDIR)$(DOCDIR) $(DESTDIR)$(SYSCONFDIR)/voxline
	$(INSTALL) -m 755 $(INSTALL_STRIP) $(INSTALL_BINS) $(DESTDIR)$(BINDIR)/
	for u in $(UNIT_FILES); do \
		sed -e 's|/usr/bin/|$(BINDIR)/|g' -e 's|/usr/share/|$(DATADIR)/|g' $$u > $$u.$$$$.tmp && \
		$(INSTALL) -m 644 $$u.$$$$.tmp $(DESTDIR)$(UNITDIR)/$${u##*/} && rm -f $$u.$$$$.tmp || exit 1; done
	$(INSTALL) -m 755 deploy/systemd/voxline-listen-generator $(DESTDIR)$(GENERATORDIR)/
	$(INSTALL) -m 644 services/orchestrator/web/index.html $(DESTDIR)$(DATADIR)/voxline/web/
	$(INSTALL) -m 644 $(DOC_FILES) $(DESTDIR)$(DOCDIR)/
	$(INSTALL) -m 644 deploy/systemd/README.md $(DESTDIR)$(DOCDIR)/systemd.md
	@# Configuration: examples only where the admin has no file yet.
	for f in $(ENV_EXAMPLES) deploy/systemd/listen.conf; do \
		t=$(DESTDIR)$(SYSCONFDIR)/voxline/$${f##*/}; \
		if [ -e $$t ]; then echo "  keep    $$t"; else $(INSTALL) -m 644 $$f $$t || exit 1; fi; done
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi

deb: $(DEB_FILE)
$(DEB_FILE): $(INSTALL_BINS) $(ENV_EXAMPLES) $(UNIT_FILES) deploy/systemd/voxline-listen-generator \
		deploy/systemd/listen.conf deploy/systemd/README.md $(DOC_FILES) \
		services/orchestrator/web/index.html $(wildcard deploy/debian/*) deploy/deploy.mk
	rm -rf $(BUILD)/deb
	$(MAKE) --no-print-directory install BUILD=$(BUILD) DESTDIR=$(abspath $(DEB_ROOT)) \
		PREFIX=/usr INSTALL_STRIP=-s
	mkdir -p $(DEB_ROOT)/DEBIAN $(BUILD)/deb/debian
	echo 'Source: voxline' > $(BUILD)/deb/debian/control
	cd $(BUILD)/deb && dpkg-shlibdeps -O root/usr/bin/voxline-* 2>shlibdeps.log \
		| sed -n 's/^shlibs:Depends=//p' > depends || { cat shlibdeps.log; exit 1; }
	test -s $(BUILD)/deb/depends
	sed -e 's/@VERSION@/$(VOXLINE_VERSION)/' -e 's/@ARCH@/$(DEB_ARCH)/' \
		-e "s/@DEPENDS@/$$(cat $(BUILD)/deb/depends)/" \
		-e "s/@SIZE@/$$(du -sk --exclude=DEBIAN $(DEB_ROOT) | cut -f1)/" \
		deploy/debian/control.in > $(DEB_ROOT)/DEBIAN/control
	cd $(DEB_ROOT) && find etc -type f | sed 's|^|/|' | sort > DEBIAN/conffiles
	$(INSTALL) -m 755 deploy/debian/postinst deploy/debian/prerm deploy/debian/postrm $(DEB_ROOT)/DEBIAN/
	dpkg-deb --root-owner-group -Zxz --build $(DEB_ROOT) $@.tmp
	mv $@.tmp $@
	@dpkg-deb -f $@ Package Version Depends

# `make test-deploy` installs the package it tests.
test-deploy: $(DEB_FILE)
