# vxbus: the targets a newcomer, a developer and CI use. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VERSION     := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
# The managed plugin's name; for `make push`, include the registry repository: PLUGIN=host/org/vxbus
PLUGIN      ?= vxbus
TAG         ?= $(VERSION)
# `make push` also pushes the same plugin under each of these tags (the release adds latest-ARCH).
ALSO_TAGS   ?=
PLUGIN_DIR  ?= build/plugin
BIN         := target/release/vxbus
# Every program the rootfs ships: the daemon first (assemble-rootfs --check runs it), then the
# bundled plugins, one per folder under plugins/ (scripts/bundled-plugins finds them).
BINS        := $(BIN) $(shell scripts/bundled-plugins programs)
# Libraries the rootfs ships for Kvaser's libraries, which kvaser-lin loads at run time from the
# host: glibc's compatibility stubs, which libraries built for glibc before 2.34 link to.
ROOTFS_LIBS := --lib libpthread.so.0 --lib libdl.so.2 --lib librt.so.1
# e2e scenarios to run: names, globs or parts of names of files under tests/e2e, among those each
# engine runs (every scenario's `# engines:` line; tests/e2e/select). Empty: all of them.
SCENARIOS   ?=
# The engines the e2e suite runs on (tests/vm/run): newest (Debian unstable's Docker 28 and
# Compose, kernel 6.12) runs every scenario; oldest (Debian 12's Docker 20.10, kernel 6.1) the core
# ones. demo, soak, bench and vm-shell take the first.
ENGINE      ?= newest oldest

.PHONY: help deps build unit lint check-arm64 plugin-dir plugin push e2e test demo soak bench bench-tunnel bench-chunk fuzz vm-shell clean

help: ## list the targets
	@awk -F ':.*## ' '/^[a-z0-9-]+:.*## / { printf "  make %-11s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

# The plugin's config.json, its description carrying the version (both plugin routes use it).
define write-plugin-config
	sed 's/"description": "vxbus: /"description": "vxbus $(VERSION): /' plugin/config.json >$(PLUGIN_DIR)/config.json
	grep -q '"description": "vxbus $(VERSION): ' $(PLUGIN_DIR)/config.json || \
	  { echo "plugin/config.json: the description must start with 'vxbus: '" >&2; exit 1; }
endef

deps: ## install what the tests and the VM need (Debian packages, virtme-ng, a CAN-capable kernel)
	tests/vm/setup

build: ## build the release binaries of every crate (and the Kvaser STAND-IN library the e2e scenarios load)
	cargo build --release --locked --workspace

unit: ## unit and integration tests of every crate (no CAN kernel, Docker or Kvaser hardware needed)
	cargo test --release --locked --workspace

lint: ## the CI workflows: GitHub's schema, shellcheck of their scripts, the make targets and matrix names they use
	scripts/check-workflows

check-arm64: ## cargo check for linux/arm64 with Debian's rustc-web and its arm64 std (installed if missing)
	scripts/check-arm64

plugin-dir: build ## assemble build/plugin (config.json + rootfs/) from the local build, no Docker needed
	rm -rf $(PLUGIN_DIR)
	scripts/assemble-rootfs --overlay rootfs $(ROOTFS_LIBS) --check --version $(PLUGIN_DIR)/rootfs $(BINS)
	scripts/bundled-plugins install $(PLUGIN_DIR)/rootfs
	$(write-plugin-config)
	@echo "built $(PLUGIN_DIR): docker plugin create $(PLUGIN) $(PLUGIN_DIR)"

plugin: ## build the rootfs with the Dockerfile and create the managed plugin $(PLUGIN):$(TAG) (needs a Docker engine)
	docker build -t $(PLUGIN)-rootfs:$(TAG) .
	rm -rf $(PLUGIN_DIR) && mkdir -p $(PLUGIN_DIR)
	scripts/export-rootfs $(PLUGIN)-rootfs:$(TAG) $(PLUGIN_DIR)/rootfs
	$(write-plugin-config)
	docker plugin rm -f $(PLUGIN):$(TAG) >/dev/null 2>&1 || true
	docker plugin create $(PLUGIN):$(TAG) $(PLUGIN_DIR)

# One tag at a time: Docker refuses to create a second plugin from a rootfs it already holds.
push: ## push $(PLUGIN_DIR) as $(PLUGIN):$(TAG) and each of $(ALSO_TAGS) (after make plugin or plugin-dir)
	@for tag in $(TAG) $(ALSO_TAGS); do \
	  docker plugin rm -f $(PLUGIN):$$tag >/dev/null 2>&1 || true; \
	  docker plugin create $(PLUGIN):$$tag $(PLUGIN_DIR) >/dev/null; \
	  docker plugin push $(PLUGIN):$$tag; \
	  docker plugin rm -f $(PLUGIN):$$tag >/dev/null; \
	done

# Globs in SCENARIOS reach tests/e2e/select unexpanded (set -f). TRACE=1 traces every command of
# each scenario and prints where their time went (tests/vm/profile).
e2e: deps plugin-dir ## the end-to-end scenarios in a VM with a CAN kernel and Docker, on each ENGINE (SCENARIOS=... to pick)
	@set -f; failed="" booted=""; for engine in $(ENGINE); do \
	  list=$$(tests/e2e/select $$engine $(SCENARIOS)) || exit 2; \
	  if [[ -z $$list ]]; then \
	    echo "make e2e: no scenario of '$(SCENARIOS)' runs on the $$engine engine; not booted"; continue; \
	  fi; \
	  start=$$(date +%s) booted=yes; \
	  VXBUS_ENGINE=$$engine VXBUS_TRACE=$(TRACE) tests/vm/run e2e $(SCENARIOS) || failed="$$failed $$engine"; \
	  [[ "$(or $(TRACE),0)" == 0 ]] || tests/vm/profile target/vm/out/$$engine || echo "make e2e: no profile of the $$engine engine's run" >&2; \
	  echo "make e2e: the $$engine engine's run took $$(($$(date +%s) - start)) s"; \
	done; \
	[[ -n $$booted ]] || { echo "make e2e: no scenario matches '$(SCENARIOS)' on any of: $(ENGINE)" >&2; exit 1; }; \
	[[ -z $$failed ]] || { echo "make e2e: FAILED on:$$failed" >&2; exit 1; }

test: ## everything a fresh machine needs to prove vxbus: prerequisites, unit tests, e2e in the VM
	@for phase in deps lint unit e2e; do \
	  start=$$(date +%s); status=0; \
	  $(MAKE) --no-print-directory $$phase || status=$$?; \
	  echo "make test: $$phase exited $$status after $$(($$(date +%s) - start)) s"; \
	  [[ $$status == 0 ]] || exit $$status; \
	done

demo: ## the main job: containers exchanging CAN frames over a vxbus network, in the VM
	$(MAKE) --no-print-directory deps
	$(MAKE) --no-print-directory plugin-dir
	VXBUS_ENGINE=$(firstword $(ENGINE)) tests/vm/run demo

soak: ## create/attach 3 containers/send/remove, $(CYCLES) times (default 100), in the VM; prints counts
	$(MAKE) --no-print-directory deps
	$(MAKE) --no-print-directory plugin-dir
	VXBUS_SOAK_CYCLES=$(or $(CYCLES),100) VXBUS_VM_TIMEOUT=$(or $(VM_TIMEOUT),7200) VXBUS_ENGINE=$(firstword $(ENGINE)) tests/vm/run soak

bench: ## the bus (in the VM) and the chunk protocol (here): figures vs their floors, as tables
	$(MAKE) --no-print-directory deps
	$(MAKE) --no-print-directory plugin-dir
	VXBUS_VM_TIMEOUT=$(or $(VM_TIMEOUT),3600) VXBUS_ENGINE=$(firstword $(ENGINE)) tests/vm/run bench
	$(MAKE) --no-print-directory bench-chunk

bench-tunnel: ## vxbus's tunnel between two network namespaces (in the VM), UDP and TCP, beside cannelloni's batching and can-cannelloni
	$(MAKE) --no-print-directory deps
	$(MAKE) --no-print-directory plugin-dir
	cargo build --release --locked -p vxbus-tunnel --example tunnelrun
	VXBUS_VM_TIMEOUT=$(or $(VM_TIMEOUT),3600) VXBUS_ENGINE=newest tests/vm/run bench-tunnel

bench-chunk: ## chunk round trips/s and p50/p99 to a child process, 64 B and 64 KiB, 1 and 64 in flight, vs bare pipes
	cargo run --release --locked -p vxbus-sdk --example chunkbench -- $(or $(SECONDS),3)

vm-shell: deps plugin-dir ## an interactive shell in the VM with Docker and the plugin ready
	VXBUS_ENGINE=$(firstword $(ENGINE)) tests/vm/run shell

clean: ## remove build outputs (keeps the downloaded kernel under target/vm)
	rm -rf build target/release target/debug target/vm/out

# The decoders of outside data: a plugin's chunks, Docker's requests, the kernel's can-gw replies, LDFs,
# and what a tunnel peer sends (cannelloni datagrams and streams).
FUZZ_TARGETS := chunk_decoder docker_request cangw_reply ldf_parser cannelloni_datagram cannelloni_stream sealed_stream

fuzz: ## fuzz each decoder of outside data for $(SECONDS) s (default 60) with cargo fuzz (installed if missing)
	command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	@for target in $(FUZZ_TARGETS); do \
	  echo "make fuzz: $$target for $(or $(SECONDS),60) s"; \
	  seeds=""; [[ $$target != ldf_parser ]] || seeds=../tests/e2e/lin; \
	  mkdir -p fuzz/corpus/$$target; \
	  (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run $$target corpus/$$target $$seeds -- -max_total_time=$(or $(SECONDS),60)) || \
	    { echo "make fuzz: $$target found a failing input (fuzz/artifacts/$$target/)" >&2; exit 1; }; \
	done
