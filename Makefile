# The verbs a user types. The build itself is CMake (CMakeLists.txt).
MAKEFLAGS += --no-print-directory
BUILD       ?= build
ASAN_BUILD  ?= build-asan
FUZZ_BUILD  ?= build-fuzz
PREFIX      ?= /usr/local
PORT        ?= 8080
# `make run` listens on this machine only; HOST= (empty) listens on every interface.
HOST        ?= 127.0.0.1
JOBS        ?= $(shell nproc 2>/dev/null || echo 2)
FUZZ_SECONDS ?= 20
CTEST_ARGS  ?=

.PHONY: all build check asan fuzz fuzz-run run install format format-check bench clean

all: build

build:
	@scripts/deps.sh build
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# The whole test suite: unit tests, interop tests with real peers, examples.
check:
	@scripts/deps.sh test
	@scripts/check-layers.py
	@scripts/check-lines.py
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

# The same suite built with AddressSanitizer and UndefinedBehaviorSanitizer.
asan:
	@scripts/deps.sh test
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DWSX_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	@cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

# libFuzzer targets (clang). `make fuzz-run` runs each for FUZZ_SECONDS on its seed corpus.
fuzz:
	@scripts/deps.sh fuzz
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DWSX_FUZZ=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS)

fuzz-run: fuzz
	@scripts/fuzz-run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(JOBS)

# Builds only the wsx tool (not the tests and benchmarks that `make` and `make check` build),
# so a fresh clone starts the chat in a few seconds.
run:
	@scripts/deps.sh build
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) --target wsx
	@scripts/run.sh $(BUILD) $(PORT) "$(HOST)"

# Configured with the prefix so that wsx.pc names it.
install:
	@scripts/deps.sh build
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)
	@cmake --install $(BUILD)

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	@clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

bench: build
	@bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
