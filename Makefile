# meshauthz: `make run` serves the bundled policies on 127.0.0.1:8080, `make test` runs every test.
SHELL := /bin/bash
SWIFT ?= swift
PYTHON ?= python3
POLICIES ?= policies
LISTEN ?= 127.0.0.1:8080
PYTEST_ARGS ?= -q
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= all

.PHONY: all deps build static dist run test unit e2e validate policies sanitize tsan asan bench fuzz clean

# The binary as shipped links the Swift runtime and Foundation statically (no toolchain needed where it runs).
# Its objects are compiled differently (autolinked static libraries), so it has its own scratch path.
STATIC_BUILD = $(SWIFT) build --static-swift-stdlib --product meshauthz --scratch-path .build-static
STATIC_BIN = "$$($(STATIC_BUILD) --show-bin-path)/meshauthz"

all: build

## deps: install what is missing (apt: libmicrohttpd-dev libgnutls28-dev nginx wrk pkg-config; pip: requirements-test.txt)
deps:
	@scripts/install-deps.sh

## build: debug build of the meshauthz executable
build:
	$(SWIFT) build

## static: debug build of meshauthz with the Swift runtime linked in (what the end-to-end tests run)
static:
	$(STATIC_BUILD)

## dist: the release binary with the Swift runtime linked in, and its checksum, in dist/ (the Dockerfile builds the same)
dist: deps
	$(SWIFT) build -c release --static-swift-stdlib --product meshauthz --scratch-path .build-dist
	mkdir -p dist
	install -m 0755 "$$($(SWIFT) build -c release --static-swift-stdlib --scratch-path .build-dist --show-bin-path)/meshauthz" dist/meshauthz
	cd dist && sha256sum meshauthz > meshauthz.sha256 && cat meshauthz.sha256

## run: serve $(POLICIES) on $(LISTEN)
run: deps build
	exec "$$($(SWIFT) build --show-bin-path)/meshauthz" serve --policies $(POLICIES) --listen $(LISTEN)

## test: unit tests (swift test), then the end-to-end suite against the real server, built as shipped (static)
test: deps
	$(SWIFT) test
	$(STATIC_BUILD)
	MESHAUTHZ_BIN=$(STATIC_BIN) $(PYTHON) -m pytest Tests/e2e $(PYTEST_ARGS)

## unit: swift test only
unit:
	$(SWIFT) test

## e2e: the pytest suite only, against the static debug build
e2e: static
	MESHAUTHZ_BIN=$(STATIC_BIN) $(PYTHON) -m pytest Tests/e2e $(PYTEST_ARGS)

## validate: check the policy files of $(POLICIES)
validate: build
	"$$($(SWIFT) build --show-bin-path)/meshauthz" validate --policies $(POLICIES)

## policies: regenerate policies/ from policies/services.yaml (meshauthz generate; a test keeps them equal)
policies: build
	"$$($(SWIFT) build --show-bin-path)/meshauthz" generate --services $(POLICIES)/services.yaml --out $(POLICIES)

## sanitize: swift test under ThreadSanitizer, then under AddressSanitizer (own scratch paths; any report fails)
sanitize: tsan asan

# halt_on_error: the first report fails the run (exit code 66 otherwise comes only at exit). No suppressions.
tsan: deps
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
	  $(SWIFT) test --sanitize=thread --scratch-path .build-tsan

# detect_leaks: LeakSanitizer runs at exit; a leak fails the run too. The suppression files name only reports in
# Foundation and XCTest (see their comments). A leak allocated inside GnuTLS (built without frame pointers) shows
# one frame: rerun with ASAN_OPTIONS=...:fast_unwind_on_malloc=0 to see our caller (8x slower, so not by default).
asan: deps
	ASAN_OPTIONS="halt_on_error=1 detect_leaks=1 suppressions=$(CURDIR)/scripts/asan.supp" \
	  LSAN_OPTIONS="suppressions=$(CURDIR)/scripts/lsan.supp" \
	  $(SWIFT) test --sanitize=address --scratch-path .build-asan

## bench: the benchmark (Benchmarks/run.sh), when there is one
bench: deps
	@if [ -x Benchmarks/run.sh ]; then Benchmarks/run.sh; \
	elif [ -f Benchmarks/run.sh ]; then bash Benchmarks/run.sh; \
	else echo "no benchmark yet (Benchmarks/run.sh)"; fi

## fuzz: build the libFuzzer targets and run each for FUZZ_SECONDS (FUZZ_TARGETS: names or all; Fuzz/README.md)
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_TARGETS="$(FUZZ_TARGETS)" scripts/fuzz.sh

clean:
	rm -rf .build .build-* .build_* dist
