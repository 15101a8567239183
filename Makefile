# libfastmcpauth: `make run` builds and runs the demo; `make test` runs every test.
# Both install what is missing (Debian packages through apt-get, Python peers into .venv).
SHELL := /bin/bash
.DEFAULT_GOAL := build

PREFIX ?= /usr/local
# The one version of everything (header, Swift, Python, pkg-config are checked against it).
VERSION := $(shell cat VERSION)
DEBIAN_PACKAGES := libssl-dev libcurl4-openssl-dev libjansson-dev libsqlite3-dev libhiredis-dev \
                   redis-server pkg-config gcc python3-venv wrk curl valgrind
VENV := .venv
PY := $(VENV)/bin/python
# FastMCP needs py-key-value-aio < 0.5 and the store tests pin 0.5.0: FastMCP gets its own venv.
FASTMCP_VENV := .venv-fastmcp
RELEASE := .build/release
LIB := $(RELEASE)/libfastmcpauth.so
CLI := $(RELEASE)/fastmcpauth-cli
TEST_PREFIX := $(CURDIR)/.build/test-prefix

.PHONY: deps apt-deps venv build lint format test swift-test c-test python-test run demo install bench clean \
        fuzz-build fuzz fuzz-smoke fuzz-replay sanitize

deps: apt-deps venv

apt-deps:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:" $$missing; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

venv: $(VENV)/.installed $(FASTMCP_VENV)/.installed

$(VENV)/.installed: bindings/python/requirements-test.txt
	@[ -x $(PY) ] || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r bindings/python/requirements-test.txt
	@touch $@

$(FASTMCP_VENV)/.installed: bindings/python/requirements-fastmcp.txt
	@[ -x $(FASTMCP_VENV)/bin/python ] || python3 -m venv $(FASTMCP_VENV)
	$(FASTMCP_VENV)/bin/python -m pip install -q --disable-pip-version-check -r bindings/python/requirements-fastmcp.txt
	@touch $@

# Release build of the library and the CLI, with the SONAME link laid out beside the library.
build: deps
	swift build -c release
	ln -sf libfastmcpauth.so $(RELEASE)/libfastmcpauth.so.0

install: build
	install -d $(PREFIX)/lib $(PREFIX)/include $(PREFIX)/lib/pkgconfig $(PREFIX)/bin
	install -m 0755 $(LIB) $(PREFIX)/lib/libfastmcpauth.so.$(VERSION)
	ln -sf libfastmcpauth.so.$(VERSION) $(PREFIX)/lib/libfastmcpauth.so.0
	ln -sf libfastmcpauth.so.0 $(PREFIX)/lib/libfastmcpauth.so
	install -m 0644 include/fastmcpauth.h $(PREFIX)/include/fastmcpauth.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' pkgconfig/fastmcpauth.pc.in > $(PREFIX)/lib/pkgconfig/fastmcpauth.pc
	install -m 0755 $(CLI) $(PREFIX)/bin/fastmcpauth

# One formatter and linter per language: swift format (.swift-format), ruff (configured in
# bindings/python/pyproject.toml), and gcc's warnings as errors for the C files.
RUFF := $(VENV)/bin/ruff --config bindings/python/pyproject.toml
PY_SOURCES := bindings/python bench
C_SOURCES := $(wildcard bindings/c/*.c) bench/bench_c.c

lint: deps
	swift format lint --strict --recursive --parallel Sources Tests Package.swift
	$(RUFF) format --check $(PY_SOURCES)
	$(RUFF) check $(PY_SOURCES)
	for file in $(C_SOURCES); do \
	  gcc -std=c11 -Wall -Wextra -Werror -fsyntax-only -Iinclude $$(pkg-config --cflags jansson) $$file || exit 1; \
	done

# Rewrites the tree in the one shape lint checks.
format: venv
	swift format --in-place --recursive --parallel Sources Tests Package.swift
	$(RUFF) format $(PY_SOURCES)
	$(RUFF) check --fix $(PY_SOURCES)

test: deps
	$(MAKE) lint
	$(MAKE) swift-test
	$(MAKE) build
	$(MAKE) fuzz-replay
	$(MAKE) c-test
	$(MAKE) python-test
	$(MAKE) fuzz-smoke

# Fuzzing: one libFuzzer build (with AddressSanitizer) of every target in Sources/fastmcpauth-fuzz;
# `make fuzz FUZZ_SECONDS=N` runs each target N seconds, growing .build-fuzz/corpus from the seeds
# in Tests/fuzz/corpus; a crash, leak or timeout fails the run and leaves its input in
# .build-fuzz/artifacts. `make test` runs each for a few seconds (the smoke) and replays the seeds.
FUZZ_TARGETS := jwt jwk json form redirect fernet envelope facade client
FUZZ_SECONDS ?= 60
FUZZ := .build-fuzz/release/fastmcpauth-fuzz

fuzz-build: deps
	swift build --scratch-path .build-fuzz -c release --product fastmcpauth-fuzz \
	  -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING

fuzz: fuzz-build
	@mkdir -p .build-fuzz/artifacts
	@for target in $(FUZZ_TARGETS); do \
	  mkdir -p .build-fuzz/corpus/$$target; \
	  echo "== fuzz $$target ($(FUZZ_SECONDS) s)"; \
	  FASTMCPAUTH_FUZZ_TARGET=$$target ASAN_OPTIONS=detect_leaks=1 $(FUZZ) -max_total_time=$(FUZZ_SECONDS) \
	    -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
	    -artifact_prefix=.build-fuzz/artifacts/$$target- \
	    .build-fuzz/corpus/$$target Tests/fuzz/corpus/$$target 2>&1 | \
	    grep -E "^stat::number_of_executed_units|^stat::peak_rss|ERROR|SUMMARY|Done" ; \
	  test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	done

fuzz-smoke:
	$(MAKE) fuzz FUZZ_SECONDS=3

# The seed corpora through the normal (uninstrumented) build: every past finding stays fixed.
fuzz-replay: build
	@for target in $(FUZZ_TARGETS); do $(RELEASE)/fastmcpauth-fuzz $$target Tests/fuzz/corpus/$$target/* || exit 1; done

swift-test:
	swift test

# The Swift tests under AddressSanitizer, then the concurrency tests (stores, verifier caches, the
# proxy's races, remote JWKS, the OAuth client's refresh race) under ThreadSanitizer. Not in `make test` (CI time): run before resolving.
TSAN_TESTS := StoreTests|ProxyRaceTests|VerifiedTokenCacheTests|ConcurrencyTests|RemoteJWKSTests|RemoteTokenVerifierTests|OAuthClientTests|OAuthClientAuthorizerTests|RedirectGuardTests
sanitize: deps
	ASAN_OPTIONS=fast_unwind_on_malloc=0 LSAN_OPTIONS=suppressions=$(CURDIR)/Tests/lsan.supp \
	  swift test --scratch-path .build-asan --sanitize=address --disable-xctest
	TSAN_OPTIONS=halt_on_error=1 swift test --scratch-path .build-tsan --sanitize=thread --disable-xctest --filter '$(TSAN_TESTS)'

c-test: build
	rm -rf $(TEST_PREFIX)
	$(MAKE) install PREFIX=$(TEST_PREFIX)
	bash bindings/c/run-tests.sh $(TEST_PREFIX)

python-test: build venv
	cd bindings/python && ../../$(PY) -m pytest -q tests

# The main job: the MCP host on 127.0.0.1:8000 (FASTMCP_HOST/FASTMCP_PORT and the FastMCP auth
# variables apply; with none, the OAuth proxy runs in front of the embedded development identity
# provider, loopback only).
run: build
	$(RELEASE)/fastmcpauth-host

# The CLI in four steps: key, token, verification, rejection of a tampered token.
DEMO := .build/demo
demo: build
	@mkdir -p $(DEMO)
	@echo "== 1. Generate an ES256 private key (JWK)"
	umask 077 && $(CLI) keygen --alg ES256 > $(DEMO)/key.json
	@$(PY) -c 'import json,sys; k=json.load(open(sys.argv[1])); k.pop("d"); json.dump({"keys":[k]}, open(sys.argv[2],"w"))' $(DEMO)/key.json $(DEMO)/jwks.json
	@echo "== 2. Sign a token for alice (valid 5 minutes)"
	$(CLI) sign --key $(DEMO)/key.json --claims '{"sub":"alice","iss":"https://demo.example","aud":"mcp","scope":"read write"}' --expires-in 300 > $(DEMO)/token
	@cat $(DEMO)/token
	@echo "== 3. Verify it against the public JWKS"
	$(CLI) verify "$$(cat $(DEMO)/token)" --jwks $(DEMO)/jwks.json --alg ES256 --issuer https://demo.example --audience mcp
	@echo "== 4. A tampered token is rejected"
	@tampered=$$(sed 's/\.[^.]*\./.eyJzdWIiOiJtYWxsb3J5In0./' $(DEMO)/token); \
	if $(CLI) verify "$$tampered" --jwks $(DEMO)/jwks.json --alg ES256; then echo "UNEXPECTED: tampered token accepted"; exit 1; \
	else echo "(rejected, as it must be)"; fi

bench: build venv
	$(PY) bench/bench.py
	$(PY) bench/bench_host.py
	$(FASTMCP_VENV)/bin/python bench/bench_proxy.py
	$(PY) bench/soak_host.py

clean:
	rm -rf .build $(VENV) $(FASTMCP_VENV)
