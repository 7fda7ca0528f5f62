#!/usr/bin/env bash
# `make soak`, run in the VM by tests/vm/guest: VXBUS_SOAK_CYCLES cycles (default 100) of create a
# network, attach three containers, send frames, remove everything; after each cycle nothing of
# vxbus's may remain (links, gateway rules, state entries), and the daemon must still be the same
# process. Prints a line per cycle and the totals.
source "$VXBUS_REPO/tests/e2e/lib.sh"

cycles=${VXBUS_SOAK_CYCLES:-100}
on_exit 'docker rm -f soak-a soak-b soak-c; docker network rm soak'
daemon_pid=$(pgrep -x vxbus)
start=$(date +%s) frames_checked=0
for ((cycle = 1; cycle <= cycles; cycle++)); do
  docker network create -d "$PLUGIN" -o device=ecu -o host_device=soakhost soak >/dev/null
  # The three attach at once: concurrent CreateEndpoint/Join calls, and a shorter cycle under emulation.
  run_containers soak soak-a soak-b soak-c
  listeners b:ecu0:soak-b host:soakhost
  docker exec soak-a sh -c "$(send_frames 5 1 ecu0)"
  expect_frames b "$(frames 5 1)" >/dev/null
  expect_frames host "$(frames 5 1)" >/dev/null
  frames_checked=$((frames_checked + 12))
  docker rm -f soak-a soak-b soak-c >/dev/null
  docker network rm soak >/dev/null
  links=$(vxbus_links | wc -l) rules=$(gw_rules | wc -l) state=$(state_summary)
  printf 'soak cycle %3d/%d: %s; vxcan links %s, gateway rules %s, state %s\n' \
    "$cycle" "$cycles" "12 frames delivered exactly once" "$links" "$rules" "$state"
  ((links == 0 && rules == 0)) && [[ $state == "0 network(s), 0 endpoint(s)" ]] ||
    fail "cycle $cycle left something behind"
  ip link show soakhost >/dev/null 2>&1 && fail "cycle $cycle left the host device"
  [[ $(pgrep -x vxbus) == "$daemon_pid" ]] || fail "the daemon restarted during cycle $cycle"
done
echo "soak: $cycles cycles in $(($(date +%s) - start)) s; $frames_checked frames checked; \
$((cycles * 3)) containers attached and removed; left behind: 0 links, 0 rules, 0 state entries; \
daemon pid $daemon_pid throughout"
