# switchyard - build, run, test, install.
#
#   make (all)      build build/switchyard, build/libswitchyard.so, build/plugins/*.so
#   make run        install missing packages, build, run the default config
#   make unit       build and run the cmocka unit tests (build/tests/)
#   make test       install missing packages, run every test (tests/run.sh)
#   make san        the same build with ASan+UBSan, in build-san/
#   make deps       install the packages the build needs (.ci/deps.sh build)
#   make deps-test  install the packages and servers the tests need
#   make bench | soak | fuzz      long runs (see README)
#   make install | uninstall      under PREFIX (DESTDIR stages)
#   make deb        a Debian package, build/switchyard_VERSION-1_ARCH.deb
#   make image | image-save       a container image (podman), or its OCI archive
#   make clean      remove every build directory
#
# BUILD=dir puts the whole build elsewhere (several builds can coexist).

BUILD   ?= build
PREFIX  ?= /usr/local
DESTDIR ?=
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
SYSTEMDDIR ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)
VERSION := 0.1.0

CC      ?= cc
PKGS    := luajit libevent libevent_pthreads
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

OPT     ?= -O2
SANFLAGS ?=
WARN    := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
CFLAGS  := $(OPT) -g -std=gnu11 -ffp-contract=off -pthread -fPIC $(WARN) $(SANFLAGS) \
           -D_GNU_SOURCE -DSY_VERSION='"$(VERSION)"' \
           -DSY_PREFIX='"$(PREFIX)"' $(PKG_CFLAGS) -Icore -Iplugins $(EXTRA_CFLAGS)
LDFLAGS := -pthread $(SANFLAGS) $(EXTRA_LDFLAGS)
LIBS    := $(PKG_LIBS) -ldl -lm

# The core library: every core/*.c and core/STAGE/*.c but main.c.  The
# command-line tools in core/tools/NAME/ (`switchyard traces`) are linked
# into the binary only, not into libswitchyard.so.
CORE_SRCS := $(filter-out core/main.c,$(wildcard core/*.c core/*/*.c))
CORE_OBJS := $(CORE_SRCS:core/%.c=$(BUILD)/core/%.o)
TOOL_SRCS := $(wildcard core/tools/*/*.c)
TOOL_OBJS := $(TOOL_SRCS:core/%.c=$(BUILD)/core/%.o)
MAIN_OBJ  := $(BUILD)/core/main.o

# A sink plugin is one file, plugins/NAME.c, or a folder, plugins/NAME/,
# whose *.c are linked together into NAME.so (lib/, examples/ and proto/
# are not plugins); plugins/lib/*.c is shared helper code linked into each
# of them (not part of the ABI).
PLUGIN_DIRS := $(filter-out lib examples proto,$(patsubst plugins/%/,%,$(wildcard plugins/*/)))
PLUGIN_SOS  := $(patsubst plugins/%.c,$(BUILD)/plugins/%.so,$(wildcard plugins/*.c)) \
               $(PLUGIN_DIRS:%=$(BUILD)/plugins/%.so)
PLUGLIB_OBJS := $(patsubst plugins/lib/%.c,$(BUILD)/plugins/lib/%.o,$(wildcard plugins/lib/*.c))

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all run test unit san deps deps-test clean install bench soak fuzz
all: $(BUILD)/switchyard $(BUILD)/libswitchyard.so $(PLUGIN_SOS)

# Each compile writes the headers (and included .c files) it read into
# TARGET.d, so a header change rebuilds only what includes it.
DEPFLAGS = -MMD -MP -MT $@ -MF $@.d

$(BUILD)/core/%.o: core/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@

$(BUILD)/libswitchyard-core.a: $(CORE_OBJS)
	@rm -f $@
	ar rcs $@ $^

# The core as a shared library, for Lua specs that drive the real parser and
# aggregator through the FFI.
$(BUILD)/libswitchyard.so: $(CORE_OBJS)
	$(CC) -shared $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/libswitchyard-tools.a: $(TOOL_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/switchyard: $(MAIN_OBJ) $(BUILD)/libswitchyard-tools.a $(BUILD)/libswitchyard-core.a
	$(CC) $(LDFLAGS) -rdynamic -o $@ $^ $(LIBS)
	@ln -sfn $(CURDIR)/lua $(BUILD)/lua

$(BUILD)/plugins/lib/%.o: plugins/lib/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) -fvisibility=hidden -c $< -o $@

# The helpers are linked from an archive, so a plugin carries only the ones
# it uses (and no undefined references of helpers it does not use, such as
# httpq's to libevent's HTTP client).
$(BUILD)/plugins/libhelpers.a: $(PLUGLIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

PLUGIN_DEPS := $(BUILD)/plugins/libhelpers.a plugins/switchyard_sink.h $(wildcard plugins/lib/*.h)

$(BUILD)/plugins/%.so: plugins/%.c $(PLUGIN_DEPS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) -fvisibility=hidden -shared $(LDFLAGS) -o $@ $< \
	    $(BUILD)/plugins/libhelpers.a $(PLUGIN_LIBS_$*) -lm

# plugins/NAME/: every .c of the folder in one compile and link.
define folder_plugin
$$(BUILD)/plugins/$(1).so: $$(wildcard plugins/$(1)/*.c plugins/$(1)/*.h) $$(PLUGIN_DEPS)
	@mkdir -p $$(@D)
	$$(CC) $$(CFLAGS) -fvisibility=hidden -shared $$(LDFLAGS) -o $$@ $$(wildcard plugins/$(1)/*.c) \
	    $$(BUILD)/plugins/libhelpers.a $$(PLUGIN_LIBS_$(1)) -lm
endef
$(foreach p,$(PLUGIN_DIRS),$(eval $(call folder_plugin,$(p))))

PLUGIN_LIBS_redis := -lhiredis -levent
PLUGIN_LIBS_influxdb := -levent
PLUGIN_LIBS_prometheus := -levent

# remote_write: the protobuf schema is compiled by protoc-c at build time.
PROTO_GEN := $(BUILD)/gen
$(PROTO_GEN)/remote.pb-c.c $(PROTO_GEN)/remote.pb-c.h &: plugins/proto/remote.proto
	@mkdir -p $(PROTO_GEN)
	protoc-c --proto_path=plugins/proto --c_out=$(PROTO_GEN) remote.proto

$(PROTO_GEN)/remote.pb-c.o: $(PROTO_GEN)/remote.pb-c.c $(PROTO_GEN)/remote.pb-c.h
	$(CC) $(CFLAGS) -fvisibility=hidden -c $< -o $@

$(BUILD)/plugins/remote_write.so: $(PROTO_GEN)/remote.pb-c.o
PLUGIN_LIBS_remote_write := -I$(PROTO_GEN) $(PROTO_GEN)/remote.pb-c.o -lprotobuf-c -lsnappy -levent

# Shared plugin objects are not intermediates: concurrent builds need them.
.SECONDARY: $(PLUGLIB_OBJS)

# (Unit tests that compile plugin helper code in find it in their .d.)
$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libswitchyard-tools.a $(BUILD)/libswitchyard-core.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) -o $@ $< $(BUILD)/libswitchyard-tools.a $(BUILD)/libswitchyard-core.a \
	    $(LDFLAGS) $(LIBS) -lcmocka

# Only the single-file plugins write a .d (a folder plugin depends on its
# whole folder): a stale one left by a plugin that moved into a folder
# would name a source that is gone.
-include $(CORE_OBJS:=.d) $(TOOL_OBJS:=.d) $(MAIN_OBJ).d $(PLUGLIB_OBJS:=.d) \
    $(patsubst plugins/%.c,$(BUILD)/plugins/%.so.d,$(wildcard plugins/*.c)) $(UNIT_BINS:=.d)

deps:
	@./.ci/deps.sh build

deps-test:
	@./.ci/deps.sh test

# The built-in default config: UDP and TCP on 127.0.0.1:8125, console output.
run: deps
	@$(MAKE) --no-print-directory all
	./$(BUILD)/switchyard

unit: all $(UNIT_BINS)
	@./tests/run-unit.sh $(BUILD)

san:
	@$(MAKE) --no-print-directory BUILD=build-san OPT=-O1 \
	    SANFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	    all $(patsubst $(BUILD)/%,build-san/%,$(UNIT_BINS))

test: deps-test
	@$(MAKE) --no-print-directory all $(UNIT_BINS)
	@$(MAKE) --no-print-directory san
	@./tests/run.sh

bench: deps-test all
	@./tests/bench/run.sh full

soak: deps-test all
	@./tests/soak/run.sh full

fuzz: deps-test
	@./tests/fuzz/run.sh full

# install: everything under $(DESTDIR)$(PREFIX) (DESTDIR only stages; the
# paths compiled in are PREFIX's).  The binary finds its plugins and Lua
# library beside itself (a build tree), else under the PREFIX compiled into
# core/main.c (SY_PREFIX).  So that `make && make install PREFIX=/opt/sy`
# is right whatever PREFIX the plain build had, the installed binary is
# relinked here from main.c compiled for this PREFIX (only main.c uses
# SY_PREFIX; the core library and the plugins are the ones `all` built).
install: all
	@mkdir -p $(BUILD)/install
	$(CC) $(CFLAGS) -c core/main.c -o $(BUILD)/install/main.o
	$(CC) $(LDFLAGS) -rdynamic -o $(BUILD)/install/switchyard $(BUILD)/install/main.o \
	    $(BUILD)/libswitchyard-tools.a $(BUILD)/libswitchyard-core.a $(LIBS)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/switchyard/plugins \
	    $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	    $(DESTDIR)$(PREFIX)/share/switchyard/lua/switchyard
	install -m 755 $(BUILD)/install/switchyard $(DESTDIR)$(PREFIX)/bin/switchyard
	install -m 644 $(BUILD)/libswitchyard.so $(DESTDIR)$(PREFIX)/lib/libswitchyard.so
	install -m 644 $(PLUGIN_SOS) $(DESTDIR)$(PREFIX)/lib/switchyard/plugins/
	install -m 644 plugins/switchyard_sink.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 lua/switchyard/*.lua $(DESTDIR)$(PREFIX)/share/switchyard/lua/switchyard/
	@if [ -d lua/switchyard/examples ]; then \
	    echo "install -m 644 lua/switchyard/examples/*.lua $(DESTDIR)$(PREFIX)/share/switchyard/lua/switchyard/examples/"; \
	    install -d $(DESTDIR)$(PREFIX)/share/switchyard/lua/switchyard/examples && \
	    install -m 644 lua/switchyard/examples/*.lua \
	        $(DESTDIR)$(PREFIX)/share/switchyard/lua/switchyard/examples/; \
	fi
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' plugins/switchyard-sink.pc.in \
	    > $(DESTDIR)$(PREFIX)/lib/pkgconfig/switchyard-sink.pc
	chmod 644 $(DESTDIR)$(PREFIX)/lib/pkgconfig/switchyard-sink.pc
	install -d $(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)$(PREFIX)/share/doc/switchyard \
	    $(DESTDIR)$(SYSCONFDIR)/switchyard $(DESTDIR)$(SYSTEMDDIR)
	install -m 644 core/dist/switchyard.8 $(DESTDIR)$(PREFIX)/share/man/man8/switchyard.8
	install -m 644 README.md LICENSE $(DESTDIR)$(PREFIX)/share/doc/switchyard/
	install -m 644 plugins/examples/jsonl/README.md $(DESTDIR)$(PREFIX)/share/doc/switchyard/writing-a-sink.md
	@# an operator's edited config is never overwritten
	@if [ ! -e $(DESTDIR)$(SYSCONFDIR)/switchyard/switchyard.lua ]; then \
	    install -m 644 core/dist/switchyard.lua $(DESTDIR)$(SYSCONFDIR)/switchyard/switchyard.lua; fi
	sed -e 's|@BINDIR@|$(PREFIX)/bin|g' core/dist/switchyard.service \
	    > $(DESTDIR)$(SYSTEMDDIR)/switchyard.service
	chmod 644 $(DESTDIR)$(SYSTEMDDIR)/switchyard.service

# uninstall: removes what install put there (only switchyard's own files:
# plugins someone else installed into the plugin directory stay, and so
# does the directory then).
.PHONY: uninstall
uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/switchyard $(DESTDIR)$(PREFIX)/lib/libswitchyard.so \
	    $(DESTDIR)$(PREFIX)/include/switchyard_sink.h \
	    $(DESTDIR)$(PREFIX)/lib/pkgconfig/switchyard-sink.pc \
	    $(patsubst $(BUILD)/plugins/%,$(DESTDIR)$(PREFIX)/lib/switchyard/plugins/%,$(PLUGIN_SOS)) \
	    $(patsubst lua/switchyard/%,$(DESTDIR)$(PREFIX)/share/switchyard/lua/switchyard/%, \
	        $(wildcard lua/switchyard/*.lua lua/switchyard/examples/*.lua))
	-rmdir $(DESTDIR)$(PREFIX)/share/switchyard/lua/switchyard/examples \
	    $(DESTDIR)$(PREFIX)/share/switchyard/lua/switchyard $(DESTDIR)$(PREFIX)/share/switchyard/lua \
	    $(DESTDIR)$(PREFIX)/share/switchyard $(DESTDIR)$(PREFIX)/lib/switchyard/plugins \
	    $(DESTDIR)$(PREFIX)/lib/switchyard 2>/dev/null

# deb: a Debian package, $(BUILD)/switchyard_VERSION-1_ARCH.deb, made with
# dpkg-deb alone (no debian/ source tree, no debhelper).  The package is
# built in a tree of its own, $(BUILD)/deb/build: a release build for
# PREFIX=/usr with Debian's hardening flags, incremental after the first
# time and rebuilt from scratch when its flags change.  It is staged with
# `make install DESTDIR=$(BUILD)/deb/root PREFIX=/usr`, and
# core/dist/deb/build.sh makes the package from there (stripping, the
# copyright and changelog files, Depends computed from the ELF files, the
# maintainer scripts: see its top).
# Install it with `apt-get install ./build/switchyard_*.deb`;
# tests/integration/test_deb.sh installs, runs, removes and purges it.
DEB_VERSION    := $(VERSION)-1
DEB_ARCH        = $(shell dpkg --print-architecture 2>/dev/null)
DEB_MAINTAINER ?= switchyard developers <dev@switchyard.invalid>
DEB_DIR        := $(BUILD)/deb
DEB_ROOT       := $(DEB_DIR)/root
DEB_BUILD      := $(DEB_DIR)/build
DEB_FILE        = $(BUILD)/switchyard_$(DEB_VERSION)_$(DEB_ARCH).deb
DEB_MULTIARCH   = $(shell dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || $(CC) -print-multiarch 2>/dev/null)
DEB_CFLAGS     ?= -fstack-protector-strong -Wformat -Werror=format-security \
                  -D_FORTIFY_SOURCE=2 -ffile-prefix-map=$(CURDIR)=.
DEB_LDFLAGS    ?= -Wl,-z,relro -Wl,-z,now
DEB_MAKEVARS    = BUILD=$(DEB_BUILD) PREFIX=/usr SYSCONFDIR=/etc SYSTEMDDIR=/lib/systemd/system \
                  OPT=-O2 SANFLAGS= 'EXTRA_CFLAGS=$(strip $(DEB_CFLAGS) $(EXTRA_CFLAGS))' \
                  'EXTRA_LDFLAGS=$(strip $(DEB_LDFLAGS) $(EXTRA_LDFLAGS))'
STRIP          ?= strip

# The release build tree, emptied when its flags change (deb and image).
define release_tree
@mkdir -p $(DEB_BUILD)
@if [ "$$(cat $(DEB_BUILD)/.flags 2>/dev/null)" != "$(CC) $(DEB_MAKEVARS)" ]; then \
    rm -rf $(DEB_BUILD) && mkdir -p $(DEB_BUILD) && \
    echo "$(CC) $(DEB_MAKEVARS)" >$(DEB_BUILD)/.flags; fi
endef

.PHONY: deb
deb:
	@command -v dpkg-deb >/dev/null && test -n "$(DEB_ARCH)" || \
	    { echo "make deb needs Debian's dpkg (dpkg-deb, dpkg --print-architecture)" >&2; exit 1; }
	$(release_tree)
	rm -rf $(DEB_ROOT) $(DEB_DIR)/debian $(DEB_FILE)
	$(MAKE) --no-print-directory $(DEB_MAKEVARS) DESTDIR=$(abspath $(DEB_ROOT)) install
	DEB_VERSION='$(DEB_VERSION)' DEB_ARCH='$(DEB_ARCH)' DEB_MULTIARCH='$(DEB_MULTIARCH)' \
	    DEB_MAINTAINER='$(DEB_MAINTAINER)' STRIP='$(STRIP)' \
	    core/dist/deb/build.sh $(DEB_DIR) $(DEB_ROOT) $(DEB_FILE)

# image: the container image $(IMAGE), FROM scratch, built with podman
# from core/dist/image/Containerfile.  Its binaries are the Debian
# package's (the same release build tree, PREFIX=/usr: the daemon finds
# its plugins and Lua library from /usr/bin, or at the compiled-in /usr
# paths where /proc is not mounted), installed into $(IMAGE_DIR)/install
# and stripped;
# core/dist/image/rootfs.sh copies from there what the daemon runs with,
# and every shared library ldd finds for it, into $(IMAGE_DIR)/context/rootfs.
# One layer (--squash-all); labels for version, revision and source.
# image-save writes the image as an OCI archive, $(IMAGE_ARCHIVE).
# tests/integration/test_image.sh unpacks that archive and runs the daemon
# from it under chroot.
IMAGE         ?= localhost/switchyard:$(VERSION)
IMAGE_DIR     := $(BUILD)/image
IMAGE_ARCHIVE ?= $(BUILD)/switchyard_$(VERSION)_oci.tar
# (the remote's URL without any user name or token in it)
IMAGE_SOURCE  ?= $(or $(shell git config --get remote.origin.url 2>/dev/null | \
                          sed -e 's|^\([a-z+]*://\)[^/@]*@|\1|'),https://switchyard.invalid/switchyard)
PODMAN        ?= podman

.PHONY: image image-save
image:
	@command -v $(PODMAN) >/dev/null || \
	    { echo "make image needs podman (apt-get install podman)" >&2; exit 1; }
	$(release_tree)
	rm -rf $(IMAGE_DIR)
	$(MAKE) --no-print-directory $(DEB_MAKEVARS) DESTDIR=$(abspath $(IMAGE_DIR)/install) install
	find $(IMAGE_DIR)/install -name '*.so' -type f -exec $(STRIP) --remove-section=.comment \
	    --remove-section=.note --strip-unneeded {} +
	$(STRIP) --remove-section=.comment --remove-section=.note $(IMAGE_DIR)/install/usr/bin/switchyard
	core/dist/image/rootfs.sh $(IMAGE_DIR)/install $(IMAGE_DIR)/context/rootfs
	mkdir -p $(IMAGE_DIR)/context/empty
	@# the image this tag named before is removed once replaced (unless in use)
	old=$$($(PODMAN) image inspect --format '{{.Id}}' $(IMAGE) 2>/dev/null); \
	$(PODMAN) build --squash-all -f core/dist/image/Containerfile -t $(IMAGE) \
	    --build-arg VERSION=$(VERSION) --build-arg SOURCE=$(IMAGE_SOURCE) \
	    --build-arg REVISION=$$(git rev-parse HEAD 2>/dev/null || echo unknown) \
	    --build-arg CREATED=$$(date -u $${SOURCE_DATE_EPOCH:+-d @$$SOURCE_DATE_EPOCH} +%Y-%m-%dT%H:%M:%SZ) \
	    $(IMAGE_DIR)/context && \
	if [ -n "$$old" ] && [ "$$old" != "$$($(PODMAN) image inspect --format '{{.Id}}' $(IMAGE))" ]; then \
	    $(PODMAN) rmi "$$old" >/dev/null 2>&1 || true; fi
	@echo "$(IMAGE): $$($(PODMAN) image inspect --format '{{.Size}}' $(IMAGE)) bytes"

image-save: image
	rm -f $(IMAGE_ARCHIVE)
	$(PODMAN) save --format oci-archive -o $(IMAGE_ARCHIVE) $(IMAGE)

clean:
	rm -rf build build-san build-*
