# Builds the managed plugin's root filesystem from source: `make plugin` exports the final
# stage into build/plugin/rootfs and runs `docker plugin create`. The rootfs is assembled by
# the same script as `make plugin-dir`, so both routes ship the same files (the release workflow
# checks it with scripts/compare-rootfs). Reproducible: the base image is pinned to a Rust
# release and a Debian release, and Cargo.lock pins every crate (`--locked`).

FROM rust:1.95.0-slim-bookworm AS build
# bindgen (crates/kvaser-canlib-sys) needs libclang at build time.
RUN apt-get update && apt-get install -y --no-install-recommends libclang-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY plugins ./plugins
ENV CARGO_INCREMENTAL=0
# The daemon and every bundled plugin (the test-only stand-in is left out).
RUN cargo build --release --locked --workspace --exclude kvaser-standin
COPY scripts ./scripts
COPY rootfs ./rootfs
# The same arguments and steps as the Makefile's plugin-dir (BINS, ROOTFS_LIBS).
RUN scripts/assemble-rootfs --overlay rootfs --lib libpthread.so.0 --lib libdl.so.2 --lib librt.so.1 \
    --check --version /out target/release/vxbus $(scripts/bundled-plugins programs) && \
    scripts/bundled-plugins install /out

FROM scratch
COPY --from=build /out/ /
ENTRYPOINT ["/usr/bin/vxbus"]
