# switchyard - build, run, test, install.
#
#   make            build build/switchyard and build/plugins/*.so
#   make run        install missing packages, build, run the default config
#   make test       install missing packages, run every test
#   make san        the same build with ASan+UBSan, in build-san/
#   make bench | soak | fuzz      long runs (see README)
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
           -DSY_PREFIX='"$(PREFIX)"' $(PKG_CFLAGS) -Iplugins $(EXTRA_CFLAGS)
LDFLAGS := -pthread $(SANFLAGS) $(EXTRA_LDFLAGS)
LIBS    := $(PKG_LIBS) -ldl -lm

CORE_SRCS := $(filter-out core/main.c,$(wildcard core/*.c))
CORE_OBJS := $(CORE_SRCS:core/%.c=$(BUILD)/core/%.o)
MAIN_OBJ  := $(BUILD)/core/main.o

# Every plugins/NAME.c is a sink plugin; plugins/lib/*.c is shared helper code
# compiled into each of them (not part of the ABI).
PLUGIN_SRCS := $(wildcard plugins/*.c)
PLUGIN_SOS  := $(PLUGIN_SRCS:plugins/%.c=$(BUILD)/plugins/%.so)
PLUGLIB_OBJS := $(patsubst plugins/lib/%.c,$(BUILD)/plugins/lib/%.o,$(wildcard plugins/lib/*.c))

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all run test unit san deps deps-test clean install bench soak fuzz check-tests
all: $(BUILD)/switchyard $(BUILD)/libswitchyard.so $(PLUGIN_SOS)

$(BUILD)/core/%.o: core/%.c $(wildcard core/*.h) plugins/switchyard_sink.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libswitchyard-core.a: $(CORE_OBJS)
	@rm -f $@
	ar rcs $@ $^

# The core as a shared library, for Lua specs that drive the real parser and
# aggregator through the FFI.
$(BUILD)/libswitchyard.so: $(CORE_OBJS)
	$(CC) -shared $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/switchyard: $(MAIN_OBJ) $(BUILD)/libswitchyard-core.a
	$(CC) $(LDFLAGS) -rdynamic -o $@ $^ $(LIBS)
	@ln -sfn $(CURDIR)/lua $(BUILD)/lua

$(BUILD)/plugins/lib/%.o: plugins/lib/%.c $(wildcard plugins/lib/*.h) plugins/switchyard_sink.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fvisibility=hidden -c $< -o $@

$(BUILD)/plugins/%.so: plugins/%.c $(PLUGLIB_OBJS) plugins/switchyard_sink.h $(wildcard plugins/lib/*.h)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fvisibility=hidden -shared $(LDFLAGS) -o $@ $< $(PLUGLIB_OBJS) \
	    $(PLUGIN_LIBS_$*) -lm

PLUGIN_LIBS_redis := -lhiredis -levent

# Shared plugin objects are not intermediates: concurrent builds need them.
.SECONDARY: $(PLUGLIB_OBJS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libswitchyard-core.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Icore -o $@ $< $(BUILD)/libswitchyard-core.a $(LDFLAGS) $(LIBS) -lcmocka

# The sink host test breaks connections mid-line with netq compiled in.
$(BUILD)/tests/test_sinkhost: plugins/lib/netq.c plugins/lib/netq.h

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
	    $(BUILD)/libswitchyard-core.a $(LIBS)
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

clean:
	rm -rf build build-san build-*
