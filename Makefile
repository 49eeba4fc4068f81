# otpd: one library, two links (STYLE.md §12).
#   make            build otpd and otpd_test
#   make run        install what is missing, build, start a dev otpd on 127.0.0.1:8000
#   make test       install what is missing, build, run every test
#   make asan       build and run the tests under AddressSanitizer + UBSan
#   make test-browser  the /docs page end to end in headless Chromium
#   make install    install otpd, its config and its systemd unit (PREFIX, DESTDIR)
#   make tsan       ThreadSanitizer over the concurrency tests (suite "tsan")
#   make fuzz       build the libFuzzer targets (clang) and run each FUZZ_TIME s
#   make format     clang-format the C++ sources; make format-check only checks
#   make fuzz-ci    the same, briefly (60 s, 30 s, 30 s): what CI runs
# REDIS=1 with any of them builds the Redis code store (hiredis) into
# build-redis/ and runs the test suite a second time with codes in Redis.
# CI sets WERROR=1 to turn warnings into errors.

CXX      ?= g++
CXXSTD   := -std=c++17
OPT      ?= -O2 -g
WARN     := -Wall -Wextra -Wshadow
ifeq ($(WERROR),1)
WARN     += -Werror
endif
SAN      ?=
REDIS    ?=
ifeq ($(REDIS),1)
BUILD    ?= build-redis
else
BUILD    ?= build
endif
OUT      ?= .

PKGS     := sqlite3 openssl libbrotlienc zlib
ifeq ($(REDIS),1)
PKGS     += hiredis
CPPFLAGS += -DOTPD_REDIS=1
DEP_LISTS := third_party/packages.txt third_party/packages-redis.txt
else
DEP_LISTS := third_party/packages.txt
endif
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

VERSION  := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
# cpp-httplib, vendored (third_party/cpp-httplib/README.md): split once into
# declarations ($(HTTPLIB_GEN)/httplib.h, what every file includes through
# otpd_httplib.h) and the implementation, compiled only in
# src/http/httplib_server.cpp.
HTTPLIB_DIR   := third_party/cpp-httplib
HTTPLIB_GEN   := $(BUILD)/gen/cpp-httplib
HTTPLIB_SPLIT := $(HTTPLIB_GEN)/httplib.h
CPPFLAGS += -isystem $(HTTPLIB_GEN) -isystem $(HTTPLIB_DIR)
CPPFLAGS += -Isrc $(CPPFLAGS_EXTRA) -DOTPD_VERSION='"$(VERSION)"' -MMD -MP
CXXFLAGS += $(CXXSTD) $(OPT) $(WARN) $(SAN) $(PKG_CFLAGS)
LDFLAGS  += $(SAN)
# libphonenumber has no pkg-config file on Debian 12; protobuf carries its
# number metadata (src/core/phone.cpp is its one user).
PHONE_LIBS := -lphonenumber $(shell pkg-config --libs protobuf 2>/dev/null || echo -lprotobuf)
LDLIBS   += $(PKG_LIBS) $(PHONE_LIBS) -lpthread

# The Redis store (hiredis) only in the Redis build; its tests compile to
# nothing without OTPD_REDIS.
# The cpp-httplib implementation first: it is the longest to compile.
LIB_SRCS  := src/http/httplib_server.cpp $(filter-out src/http/httplib_server.cpp,$(wildcard src/*/*.cpp))
ifneq ($(REDIS),1)
LIB_SRCS  := $(filter-out src/store/%_redis.cpp,$(LIB_SRCS))
endif
TEST_SRCS := $(wildcard tests/*.cpp)
LIB_OBJS  := $(LIB_SRCS:%.cpp=$(BUILD)/%.o)
TEST_OBJS := $(TEST_SRCS:%.cpp=$(BUILD)/%.o)
MAIN_OBJ  := $(BUILD)/main.o
# The docs pages' CSS and JS, embedded at build time (src/http/docs_assets.h).
DOCS_ASSETS := src/http/docs/docs.css src/http/docs/docs.js
DOCS_GEN    := $(BUILD)/gen/docs_assets.cpp
DOCS_OBJ    := $(BUILD)/gen/docs_assets.o

.PHONY: all deps test-deps run test test-browser check asan tsan fuzz fuzz-ci bench clean \
        layers man deb \
        install uninstall

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
UNITDIR    ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
MANDIR     ?= $(PREFIX)/share/man
COMPLETIONDIR ?= $(PREFIX)/share/bash-completion/completions
STRIP      ?= strip
DESTDIR    ?=
all: otpd otpd_test

# The config file every command reads when none is named (config_path.h).
$(BUILD)/src/config/config_path.o: CPPFLAGS += -DOTPD_DEFAULT_CONFIG='"$(SYSCONFDIR)/otpd/otpd.conf"'

# The binaries remember which build they came from, so switching between
# the default and the Redis build relinks them.
FLAVOUR       := $(if $(filter 1,$(REDIS)),redis,default)
FLAVOUR_STAMP := $(OUT)/.build-flavour
$(shell mkdir -p $(OUT) && { [ "$$(cat $(FLAVOUR_STAMP) 2>/dev/null)" = "$(FLAVOUR)" ] || \
  echo $(FLAVOUR) > $(FLAVOUR_STAMP); })

deps:
	@./third_party/install.sh $(DEP_LISTS)

# The build's packages plus those only tests use (nginx; redis-server).
test-deps:
	@./third_party/install.sh $(DEP_LISTS) third_party/packages-test.txt \
	  $(if $(filter 1,$(REDIS)),third_party/packages-redis-test.txt)

$(BUILD)/%.o: %.cpp | $(HTTPLIB_SPLIT)
	@mkdir -p $(dir $@)
	$(CXX) $(CPPFLAGS) $(CXXFLAGS) -c $< -o $@

$(HTTPLIB_SPLIT): $(HTTPLIB_DIR)/split.sh $(HTTPLIB_DIR)/httplib.h
	sh $(HTTPLIB_DIR)/split.sh $(HTTPLIB_DIR)/httplib.h $(HTTPLIB_GEN)

$(DOCS_GEN): src/http/docs/embed.sh $(DOCS_ASSETS)
	@mkdir -p $(dir $@)
	sh src/http/docs/embed.sh kDocsCss=src/http/docs/docs.css kDocsJs=src/http/docs/docs.js > $@.tmp
	mv $@.tmp $@

$(DOCS_OBJ): $(DOCS_GEN)
	$(CXX) $(CXXSTD) $(OPT) $(WARN) $(SAN) -c $< -o $@

# The manual pages: otpd(8) from man/otpd.8.in, otpd.conf(5) generated from
# otpd.conf.example (man/conf2man.awk), so it says what the example says.
MAN_PAGES := $(BUILD)/man/otpd.8 $(BUILD)/man/otpd.conf.5
man: $(MAN_PAGES)

$(BUILD)/man/otpd.8: man/otpd.8.in VERSION
	@mkdir -p $(dir $@)
	sed 's|@VERSION@|$(VERSION)|g' man/otpd.8.in > $@

$(BUILD)/man/otpd.conf.5: man/otpd.conf.5.head man/conf2man.awk man/otpd.conf.5.tail otpd.conf.example VERSION
	@mkdir -p $(dir $@)
	{ sed 's|@VERSION@|$(VERSION)|g' man/otpd.conf.5.head; \
	  awk -f man/conf2man.awk otpd.conf.example; cat man/otpd.conf.5.tail; } > $@.tmp
	mv $@.tmp $@

$(BUILD)/libotpd.a: $(LIB_OBJS) $(DOCS_OBJ)
	@rm -f $@
	ar rcs $@ $^

libotpd.a: $(BUILD)/libotpd.a
	cp $< $@

$(OUT)/otpd: $(MAIN_OBJ) $(BUILD)/libotpd.a $(FLAVOUR_STAMP)
	$(CXX) $(LDFLAGS) $(filter %.o %.a,$^) $(LDLIBS) -o $@

# The tests also decode what the server compressed.
$(OUT)/otpd_test: $(TEST_OBJS) $(BUILD)/libotpd.a $(FLAVOUR_STAMP)
	$(CXX) $(LDFLAGS) $(filter %.o %.a,$^) $(LDLIBS) $(shell pkg-config --libs libbrotlidec) -o $@

# The dev server: a database under ./var, the demo user abc, codes on the
# console and in var/sms.log.
run: deps
	@$(MAKE) --no-print-directory otpd
	@mkdir -p var
	./otpd users add abc +12015551111 --config= --database var/otpd.db
	./otpd serve --config= --database var/otpd.db --sms-log-file var/sms.log

test: test-deps
	sh tests/layers_check_test.sh
	@$(MAKE) --no-print-directory otpd otpd_test
	./otpd_test
ifeq ($(REDIS),1)
	OTPD_TEST_STORE=redis ./otpd_test
endif
	sh tests/install_test.sh
	sh tests/man_test.sh
	sh tests/deb_test.sh
	sh tests/metrics_check.sh
	sh tests/nginx_test.sh

check: test

# clang-format (.clang-format: Google style, 100 columns) over the C++
# sources: format rewrites them, format-check fails listing those that
# differ. Debian's clang-format package provides the tool.
FORMAT_SRCS = $(wildcard main.cpp src/*/*.h src/*/*.cpp tests/*.h tests/*.cpp tests/fuzz/*.cpp)
CLANG_FORMAT ?= clang-format
format:
	$(CLANG_FORMAT) -i $(FORMAT_SRCS)

format-check:
	@echo clang-format | ./third_party/install.sh /dev/stdin
	@bad=0; for f in $(FORMAT_SRCS); do \
	  $(CLANG_FORMAT) $$f | cmp -s - $$f || { echo "not formatted: $$f"; bad=1; }; \
	done; exit $$bad

# The layering check alone (DESIGN.md, Layers).
layers:
	sh tests/layers_check.sh

# The /docs page end to end: a real otpd, Debian's Chromium driven by
# playwright-core (pinned in tests/browser/package-lock.json). Screenshots
# go to $(BUILD)/browser/.
test-browser: deps
	@./third_party/install.sh third_party/packages-browser.txt
	@command -v npm >/dev/null 2>&1 || echo npm | ./third_party/install.sh /dev/stdin
	@$(MAKE) --no-print-directory $(OUT)/otpd
	cd tests/browser && npm ci --no-audit --no-fund --prefer-offline
	cd tests/browser && OTPD_BIN=$(abspath $(OUT)/otpd) BROWSER_OUT=$(abspath $(BUILD)/browser) \
	  node docs_test.js

# Sanitizer builds live apart from the normal one (build-asan/; with
# REDIS=1, build-asan-redis/, and so for tsan and fuzz).
REDIS_SUFFIX := $(if $(filter 1,$(REDIS)),-redis)
ASAN_DIR := build-asan$(REDIS_SUFFIX)
TSAN_DIR := build-tsan$(REDIS_SUFFIX)
FUZZ_DIR := build-fuzz$(REDIS_SUFFIX)
# GCC 12 with these sanitizers at -O1 warns maybe-uninitialized inside
# <regex>'s std::function (cpp-httplib's implementation uses std::regex),
# a false positive the GCC manual warns of; WERROR=1 would fail on it.
asan: deps
	@$(MAKE) --no-print-directory BUILD=$(ASAN_DIR) OUT=$(ASAN_DIR) OPT='-O1 -g' \
	  SAN='-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all -Wno-maybe-uninitialized' \
	  $(ASAN_DIR)/otpd $(ASAN_DIR)/otpd_test
	OTPD_BIN=$(ASAN_DIR)/otpd ASAN_OPTIONS=detect_leaks=1 $(ASAN_DIR)/otpd_test

# Throughput and latency against a bare cpp-httplib server measured in the
# same run; writes bench/results.md (see README, Performance).
bench: deps
	@./third_party/install.sh third_party/packages-bench.txt \
	  $(if $(filter 1,$(REDIS)),third_party/packages-redis-test.txt)
	REDIS=$(REDIS) bench/run.sh
# The binary, the config (never overwriting one that exists), an empty
# 0600 Twilio token file for LoadCredential=, the systemd unit and the
# otpd system user. Installing into the live system (no DESTDIR, as root)
# also creates the user and reloads systemd.
install: otpd $(MAN_PAGES)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
	  $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(COMPLETIONDIR)
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/otpd
	install -m 0755 otpd $(DESTDIR)$(BINDIR)/otpd
	$(STRIP) --strip-all $(DESTDIR)$(BINDIR)/otpd
	install -m 0644 $(BUILD)/man/otpd.8 $(DESTDIR)$(MANDIR)/man8/otpd.8
	install -m 0644 $(BUILD)/man/otpd.conf.5 $(DESTDIR)$(MANDIR)/man5/otpd.conf.5
	install -m 0644 contrib/bash-completion/otpd $(DESTDIR)$(COMPLETIONDIR)/otpd
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/otpd/otpd.conf ]; then \
	  echo "keeping $(DESTDIR)$(SYSCONFDIR)/otpd/otpd.conf"; \
	else \
	  install -m 0644 otpd.conf.example $(DESTDIR)$(SYSCONFDIR)/otpd/otpd.conf; \
	fi
	@[ -e $(DESTDIR)$(SYSCONFDIR)/otpd/twilio_auth_token ] || \
	  install -m 0600 /dev/null $(DESTDIR)$(SYSCONFDIR)/otpd/twilio_auth_token
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' otpd.service.in \
	  > $(DESTDIR)$(UNITDIR)/otpd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/otpd.service
	install -m 0644 otpd.sysusers $(DESTDIR)$(SYSUSERSDIR)/otpd.conf
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" -eq 0 ]; then \
	  if command -v systemd-sysusers >/dev/null; then systemd-sysusers $(SYSUSERSDIR)/otpd.conf; \
	  elif ! id otpd >/dev/null 2>&1; then \
	    useradd --system --home-dir /var/lib/otpd --shell /usr/sbin/nologin otpd; fi; \
	  if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi; \
	fi

# Leaves the config, the token file, the database and the user in place.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/otpd $(DESTDIR)$(UNITDIR)/otpd.service \
	  $(DESTDIR)$(SYSUSERSDIR)/otpd.conf $(DESTDIR)$(MANDIR)/man8/otpd.8 \
	  $(DESTDIR)$(MANDIR)/man5/otpd.conf.5 $(DESTDIR)$(COMPLETIONDIR)/otpd

# Debian packages from a staged `make install` with dpkg-deb: otpd and,
# with the debug symbols split off the binary, otpd-dbgsym. Into $(BUILD)/deb/.
deb: otpd $(MAN_PAGES)
	@./third_party/install.sh third_party/packages-deb.txt
	MAKE="$(MAKE)" BUILD=$(BUILD) VERSION=$(VERSION) sh packaging/make_deb.sh

# ThreadSanitizer over the tests that race on purpose (build-tsan/): the
# ones in the doctest test suite "tsan" (TEST_CASE(...) * doctest::test_suite("tsan")).
TSAN_SUITE ?= tsan
tsan: deps
	@$(MAKE) --no-print-directory BUILD=$(TSAN_DIR) OUT=$(TSAN_DIR) OPT='-O1 -g' \
	  SAN='-fsanitize=thread' $(TSAN_DIR)/otpd $(TSAN_DIR)/otpd_test
	OTPD_BIN=$(TSAN_DIR)/otpd TSAN_OPTIONS="halt_on_error=1 suppressions=$(CURDIR)/tests/tsan.supp" \
	  timeout 300 $(TSAN_DIR)/otpd_test -ts='$(TSAN_SUITE)'

# The fuzz targets: every object built by clang with coverage for libFuzzer
# (build-fuzz/), each target linked with the fuzzer's main: http_api (the
# HTTP handlers), config (the config file reader) and users_csv (the users
# CSV reader). New inputs go to build-fuzz/corpus-NAME; the seeds in
# tests/fuzz/corpus-NAME (tests/fuzz/corpus for http_api) stay as they are.
FUZZ_CXX  ?= clang++
FUZZ_TIME ?= 300
# 0: a new random seed each run; fuzz-ci fixes it so a CI run can be replayed.
FUZZ_SEED ?= 0
# -1: no limit on inputs; with a seed, a count makes a run repeatable.
FUZZ_RUNS ?= -1
FUZZ_SAN  := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_TARGETS := http_api config users_csv
FUZZ_COMMON := $(FUZZ_DIR)/tests/otp_stack.o $(FUZZ_DIR)/tests/test_util.o $(FUZZ_DIR)/tests/redis_server.o \
               $(FUZZ_DIR)/libotpd.a

$(FUZZ_TARGETS:%=$(FUZZ_DIR)/%_fuzz): $(FUZZ_DIR)/%_fuzz: FORCE
	@./third_party/install.sh third_party/packages.txt third_party/packages-fuzz.txt
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_DIR) CXX=$(FUZZ_CXX) OPT='-O1 -g' \
	  SAN='$(FUZZ_SAN) -fsanitize=fuzzer-no-link' CPPFLAGS_EXTRA=-Itests \
	  $(FUZZ_COMMON) $(FUZZ_DIR)/tests/fuzz/$*_fuzz.o
	$(FUZZ_CXX) $(FUZZ_SAN) -fsanitize=fuzzer $(FUZZ_DIR)/tests/fuzz/$*_fuzz.o $(FUZZ_COMMON) \
	  $(PKG_LIBS) $(PHONE_LIBS) -lpthread -o $@

# make fuzz: every target FUZZ_TIME s; make fuzz FUZZ_TARGETS=config: one.
fuzz: $(FUZZ_TARGETS:%=$(FUZZ_DIR)/%_fuzz)
	@set -e; for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_DIR)/corpus-$$t; \
	  seeds=tests/fuzz/corpus-$$t; [ $$t = http_api ] && seeds=tests/fuzz/corpus; \
	  echo "fuzz $$t: $(FUZZ_TIME) s"; \
	  $(FUZZ_DIR)/$${t}_fuzz -seed=$(FUZZ_SEED) -runs=$(FUZZ_RUNS) -max_total_time=$(FUZZ_TIME) -timeout=10 -rss_limit_mb=2048 \
	    $(FUZZ_DIR)/corpus-$$t $$seeds; \
	done

# CI: 60 s for the HTTP handlers; 30 000 inputs from seed 1 for each reader
# (the same inputs every run, so a red run can be replayed).
fuzz-ci:
	@$(MAKE) --no-print-directory fuzz FUZZ_TARGETS=http_api FUZZ_TIME=60 FUZZ_SEED=1
	@$(MAKE) --no-print-directory fuzz FUZZ_TARGETS="config users_csv" FUZZ_TIME=120 FUZZ_SEED=1 \
	  FUZZ_RUNS=30000

FORCE:

clean:
	rm -rf build build-redis build-asan build-tsan build-fuzz build-bench build-*-redis \
	  otpd otpd_test \
	  libotpd.a .build-flavour \
	  tests/browser/node_modules

-include $(LIB_OBJS:.o=.d) $(TEST_OBJS:.o=.d) $(MAIN_OBJ:.o=.d)
