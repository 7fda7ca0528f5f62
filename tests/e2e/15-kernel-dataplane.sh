#!/usr/bin/env bash
# vxbus's data plane code against the guest's real kernel: the Rust tests in crates/*/tests/kernel_*.rs
# (built on the host by tests/vm/run) create vcan and vxcan links over rtnetlink and can-gw rules
# with vxbus's own netlink messages, send classic and FD frames across them, check each arrives
# exactly once, remove everything, and report a missing can-gw module by name. Here a kernel
# without CAN fails them instead of skipping.
# engines: newest
source "$(dirname "$0")/lib.sh"

mapfile -t binaries <"$VXBUS_REPO/target/vm/kernel-tests.txt"
((${#binaries[@]} > 0)) || fail "no kernel test binaries listed in target/vm/kernel-tests.txt"
for binary in "${binaries[@]}"; do
  step "$(basename "$binary")"
  VXBUS_KERNEL_TESTS=required "$binary" --test-threads=1 --nocapture ||
    fail "$(basename "$binary") failed"
done
step "nothing left behind"
expect_eq "$(ip -o link show | grep -c ' kt-')" "0" "kt-* links"
expect_eq "$(cangw -L 2>/dev/null | grep -c '^cangw')" "0" "can-gw rules"
grep -q '^can_gw ' /proc/modules || fail "can-gw was not loaded again after the test that unloads it"
ok "the data plane carries frames over links and rules it made itself"
