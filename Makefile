# godwit: the two README commands are `make demo` and `make test`.
# Both install what is missing (Debian 12, as root), build, and run.

BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)

# Debian packages the build and the tests need.
DEPS := cmake ninja-build g++ make nasm pkg-config \
        libfdt-dev libzstd-dev libboost-dev libboost-program-options-dev \
        nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev \
        curl iproute2 ca-certificates

.PHONY: all deps build build-asan demo test bench docker-test clean

all: build

deps:
	@./scripts/install-deps.sh $(DEPS)

build:
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@ninja -C $(BUILD)

# The sanitizer build compiles only what the unit tests run.
UNIT_TESTS := $(basename $(notdir $(wildcard tests/unit/*_test.cpp)))

build-asan:
	@cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DGODWIT_SANITIZE=ON >/dev/null
	@ninja -C $(ASAN_BUILD) godwitctl ab-check $(UNIT_TESTS)

demo: deps build
	@./scripts/demo.sh $(BUILD)

# The whole suite: every test of the normal build, then the unit tests again
# under AddressSanitizer + UndefinedBehaviorSanitizer.
# Both runs always happen; the target fails if either failed.
test: deps build build-asan
	@status=0; \
	(cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600) || status=1; \
	echo "== unit tests under ASan+UBSan =="; \
	(cd $(ASAN_BUILD) && ctest --output-on-failure -j $(JOBS) -L unit --timeout 600) || status=1; \
	exit $$status

# Benchmarks (JSON on stdout; see bench/).
bench: deps build
	@$(BUILD)/bin/godwit-bench $(BUILD)

# The same tests inside a Debian 12 container (see scripts/docker-test.sh).
docker-test:
	@./scripts/docker-test.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
