# swift-ipvs: the two commands a newcomer needs are `make demo` and `make test`.
# Each installs what it needs (Debian packages, the Debian kernel image for the test VM) and
# caches it under .cache/. See README.md.

SWIFT ?= swift
# Runs a command on a real IPVS kernel: the host's in a fresh network namespace when it has
# IPVS, else a qemu VM booting Debian's stock kernel (Scripts/vm/README.md).
KERNEL_RUN = Scripts/kernel-run.sh

# make install and make deb: release binaries with the Swift runtime linked in (no Swift install
# needed where they run), built in make bench's release folder so both share one compilation.
PREFIX ?= /usr/local
DESTDIR ?=
RELEASE_BUILD = $(SWIFT) build -c release --static-swift-stdlib --scratch-path .build-bench
RELEASE_BIN = .build-bench/release

.PHONY: all build deps vm-prepare test unit-test kernel-test bench-smoke deb-test demo bench clean \
	release install deb

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
	$(MAKE) --no-print-directory unit-test kernel-test bench-smoke deb-test

unit-test:
	$(SWIFT) test --skip-build --skip KernelTests

# Each kernel test runs in its own process and network namespace; FILTER narrows them.
kernel-test:
	$(KERNEL_RUN) Scripts/run-kernel-tests.sh $(FILTER)

# Every `make bench` tool path once, at 10 services (about a minute in the VM); no docs written.
bench-smoke:
	Scripts/bench.sh --smoke

# The Debian package installed in a clean Debian root (cached under .cache/debian/), and its
# binaries run once on the IPVS kernel (Scripts/package/deb-test.sh).
deb-test: deb
	Scripts/package/deb-test.sh $$(ls -t .build-bench/deb/swift-ipvs_*.deb | head -n 1)

release: deps
	$(RELEASE_BUILD) --product ipvs-agent
	$(RELEASE_BUILD) --product ipvsctl

# Binaries, man pages, shell completions, the systemd unit and the example configuration
# (Scripts/package/install.sh lists where each goes).
install: release
	Scripts/package/install.sh $(RELEASE_BIN) $(PREFIX) $(DESTDIR)

# A Debian package (dpkg-deb) in .build-bench/deb/, its dependencies found by dpkg-shlibdeps.
deb: release
	Scripts/package/deb.sh $(RELEASE_BIN) .build-bench/deb

# The agent balancing real traffic to pods (network namespaces) on a real kernel.
demo: deps vm-prepare
	$(SWIFT) build
	$(KERNEL_RUN) Scripts/demo.sh

# Performance, side by side with ipvsadm, moby/ipvs and a libnl C floor (docs/benchmarks.md).
bench: deps vm-prepare
	Scripts/bench.sh

clean:
	rm -rf .build
