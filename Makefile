# swift-ipvs: the two commands a newcomer needs are `make demo` and `make test`.
# Each installs what it needs (Debian packages, the Debian kernel image for the test VM) and
# caches it under .cache/. See README.md.

SWIFT ?= swift
# Runs a command on a real IPVS kernel: the host's in a fresh network namespace when it has
# IPVS, else a qemu VM booting Debian's stock kernel (Scripts/vm/README.md).
KERNEL_RUN = Scripts/kernel-run.sh

.PHONY: all build deps vm-prepare test unit-test kernel-test bench-smoke demo bench clean

all: build

deps:
	Scripts/install-deps.sh

build: deps
	$(SWIFT) build

# Installs the host packages and builds the cached kernel + initrd (.cache/vm/).
vm-prepare:
	Scripts/vm/prepare.sh

# Every test: unit tests on the host, kernel tests on a real IPVS kernel, and one pass of every
# benchmark workload at a tiny size so the benchmark code cannot rot.
test: deps vm-prepare
	$(SWIFT) build --build-tests
	$(MAKE) --no-print-directory unit-test kernel-test bench-smoke

unit-test:
	$(SWIFT) test --skip-build --skip KernelTests

# Each kernel test runs in its own process and network namespace; FILTER narrows them.
kernel-test:
	$(KERNEL_RUN) Scripts/run-kernel-tests.sh $(FILTER)

# Every `make bench` tool path once, at 10 services (about a minute in the VM); no docs written.
bench-smoke:
	Scripts/bench.sh --smoke

# The agent balancing real traffic to pods (network namespaces) on a real kernel.
demo: deps vm-prepare
	$(SWIFT) build
	$(KERNEL_RUN) Scripts/demo.sh

# Performance, side by side with ipvsadm, moby/ipvs and a libnl C floor (docs/benchmarks.md).
bench: deps vm-prepare
	Scripts/bench.sh

clean:
	rm -rf .build
