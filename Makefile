# InSpatialFs — build, test, run. Every target installs what it needs on a fresh Debian 12 (as root).
SHELL := /bin/bash
CONFIG ?= Release
DOTNET ?= dotnet
BIN := bin
NATIVE_OUT := native/build

.PHONY: all deps build native keeper test test-unprivileged fuzz run bench bench-overlay install clean help

all: build

help:
	@echo "make run      mount the demo rootfs through InSpatialFs and run a container workload on it"
	@echo "make test     build everything and run the whole test suite (prints 'N passed, N failed')"
	@echo "make test-unprivileged  the tests outside the Mount category, as an unprivileged user (nobody when run as root)"
	@echo "make build    build; the executable lands at bin/inspatialfs"
	@echo "make fuzz     long fuzz pass of the config loader and control commands (FUZZ_ITERATIONS, FUZZ_SEED)"
	@echo "make bench    whole-filesystem benchmark against native, bindfs and fuse-overlayfs"
	@echo "make bench-overlay  overlay mounts and podman runs: kernel overlayfs vs fuse-overlayfs vs inspatialfs-overlay"
	@echo "make install  install binary, systemd unit and example configs"

deps:
	@scripts/ensure-deps.sh

build: deps
	@echo "==> building (dotnet $(CONFIG)) ..."
	@$(DOTNET) build InSpatialFs.sln -c $(CONFIG) -nologo -clp:ErrorsOnly -v:q
	@# NativeAOT: bin/inspatialfs is one native executable (no runtime to load, nothing to JIT: it serves within tens of
	@# milliseconds of exec and idles in a few MiB). The debug symbols land next to it as inspatialfs.dbg.
	@echo "==> compiling bin/inspatialfs ahead of time (NativeAOT) ..."
	@$(DOTNET) publish src/InSpatialFs.Daemon/InSpatialFs.Daemon.csproj -c $(CONFIG) -nologo -v:q -clp:ErrorsOnly -o $(BIN) \
	  -r linux-x64 >/dev/null
	@# The mount program for container engines (fuse-overlayfs's command line: the daemon answers to this link's name,
	@# no script in front) and mount(8)'s helper for fuse.inspatialfs.
	@ln -sfn inspatialfs $(BIN)/inspatialfs-overlay
	@install -m 0755 scripts/mount.fuse.inspatialfs $(BIN)/
	@echo "==> bin/inspatialfs ready (and bin/inspatialfs-overlay, the mount program; bin/mount.fuse.inspatialfs for mount -t)"
	@$(MAKE) --no-print-directory native
	@$(MAKE) --no-print-directory keeper

native:
	@mkdir -p $(NATIVE_OUT)
	@for src in native/*.c; do \
	  [ -e "$$src" ] || continue; \
	  out=$(NATIVE_OUT)/$$(basename $$src .c); \
	  if [ ! -x $$out ] || [ $$src -nt $$out ]; then gcc -O2 -Wall -Werror -static -o $$out $$src -lpthread || exit 1; fi; \
	done

# The keeper holds the server's /dev/fuse descriptors across crashes and upgrades (native/keeper/inspatialfs-keeper.c).
keeper: $(BIN)/inspatialfs-keeper
	@:

$(BIN)/inspatialfs-keeper: native/keeper/inspatialfs-keeper.c
	@mkdir -p $(BIN)
	@gcc -O2 -Wall -Wextra -Werror -static -o $@ $<

test: build
	@scripts/run-tests.sh $(CONFIG)

# No root, no mount, no bin/: only the assemblies are built, and the tests run as nobody (or the calling user).
test-unprivileged:
	@$(DOTNET) build InSpatialFs.sln -c $(CONFIG) -nologo -clp:ErrorsOnly -v:q
	@scripts/test-unprivileged.sh $(CONFIG)

# The fixed-seed fuzz pass runs short inside `make test`; this is the long one (1,000,000 inputs each by default).
fuzz: build
	@FUZZ_ITERATIONS=$${FUZZ_ITERATIONS:-1000000} $(DOTNET) test tests/InSpatialFs.Daemon.Tests/InSpatialFs.Daemon.Tests.csproj \
	  -c $(CONFIG) --no-build --nologo -v:q --filter "FullyQualifiedName~InputFuzzTests" --logger "console;verbosity=normal"

run: build
	@scripts/demo.sh

bench: build
	@scripts/bench.sh

# Overlay mounts side by side: the kernel's overlayfs, fuse-overlayfs and inspatialfs-overlay (and podman on each).
bench-overlay: build
	@scripts/bench-overlay.sh

install: build
	@scripts/install.sh

clean:
	rm -rf $(BIN) $(NATIVE_OUT) src/*/bin src/*/obj tests/*/bin tests/*/obj
