# meshauthz: `make run` serves the bundled policies on 127.0.0.1:8080, `make test` runs every test.
SHELL := /bin/bash
SWIFT ?= swift
PYTHON ?= python3
POLICIES ?= policies
LISTEN ?= 127.0.0.1:8080
PYTEST_ARGS ?= -q
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= all

.PHONY: all deps build run test unit e2e validate policies sanitize tsan asan bench fuzz clean

all: build

## deps: install what is missing (apt: libmicrohttpd-dev libgnutls28-dev nginx wrk pkg-config; pip: requirements-test.txt)
deps:
	@scripts/install-deps.sh

## build: debug build of the meshauthz executable
build:
	$(SWIFT) build

## run: serve $(POLICIES) on $(LISTEN)
run: deps build
	exec "$$($(SWIFT) build --show-bin-path)/meshauthz" serve --policies $(POLICIES) --listen $(LISTEN)

## test: unit tests (swift test), then the end-to-end suite against the real server
test: deps
	$(SWIFT) build
	$(SWIFT) test
	MESHAUTHZ_BIN="$$($(SWIFT) build --show-bin-path)/meshauthz" $(PYTHON) -m pytest Tests/e2e $(PYTEST_ARGS)

## unit: swift test only
unit:
	$(SWIFT) test

## e2e: the pytest suite only, against the current debug build
e2e: build
	MESHAUTHZ_BIN="$$($(SWIFT) build --show-bin-path)/meshauthz" $(PYTHON) -m pytest Tests/e2e $(PYTEST_ARGS)

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
	rm -rf .build .build-* .build_*
