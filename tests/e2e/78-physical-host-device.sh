#!/usr/bin/env bash
# A CAN controller as host_device: bit rate and queue length applied over netlink before it is
# brought up, the bus bridged to it both ways, and refused settings leaving it as it was.
#
# STAND-IN: no CAN hardware in the VM, so the controller is the kernel's slcan driver (a real
# can-dev driver, the one serial CAN adapters use) attached to a pseudo-terminal. A Python
# process holds the terminal's other side: it records what the driver writes (the adapter's
# ASCII protocol: `S6` sets 500 kbit/s, `O` opens the channel, `t12321122` is a frame) and
# writes frames into it as an adapter would.
# engines: newest
source "$(dirname "$0")/lib.sh"

on_exit 'pkill -f slcan_attach; pkill -f slcan-adapter'
on_failure 'docker rm -f phys-ecu; docker network rm phys'
modprobe slcan || fail "the guest kernel has no slcan module"

step "a serial CAN adapter on a pseudo-terminal, attached as can0 by the slcan driver"
adapter=$(mktemp -d)
mkfifo "$adapter/in"
python3 - "$adapter" slcan-adapter <<'PY' &
import os, pty, sys, threading
out = sys.argv[1]
master, slave = pty.openpty()
open(out + "/pty", "w").write(os.ttyname(slave))
def record():
    with open(out + "/wire", "wb", buffering=0) as wire:
        while True:
            wire.write(os.read(master, 1024))
threading.Thread(target=record, daemon=True).start()
while True:
    with open(out + "/in", "rb") as feed:  # each writer's bytes go to the driver
        os.write(master, feed.read())
PY
wait_until 20 "the pseudo-terminal" test -s "$adapter/pty"
sleep 3600 | slcan_attach -w "$(cat "$adapter/pty")" &
wait_until 20 "can0 from slcan" ip link show can0
ip -d link show can0 | sed 's/^/  /'

step "docker network create -o host_device=can0 -o baudrate=500000 -o txqueuelen=100"
docker network create -d "$PLUGIN" -o host_device=can0 -o baudrate=500000 -o txqueuelen=100 phys >/dev/null
link=$(ip -d link show can0)
echo "$link" | sed 's/^/  /'
expect_contains "$link" "state UP" "can0 brought up"
expect_contains "$link" "qlen 100" "can0's txqueuelen"
expect_contains "$link" "bitrate 500000" "can0's bit rate"
expect_contains "$(cat -v "$adapter/wire")" 'S6^MO^M' "what the driver told the adapter (S6: 500 kbit/s, O: open)"

step "frames cross between a container and the controller, both ways"
run_containers phys phys-ecu
in_netns phys-ecu cansend can0 123#1122
wait_until 10 "the frame on the adapter's wire" grep -q 't12321122' "$adapter/wire"
ok "the container's frame reached the adapter as t12321122 (ID 123, 2 bytes: 11 22)"
listen ecu can0 phys-ecu
printf 't7DF3 02010C\r' | tr -d ' ' >"$adapter/in"
expect_frames ecu "7DF#02010C"

step "someone else's rules on can0 stay: a filtered one to the member, others to a link off the bus"
# vxbus's rules carry interfaces and flags only; a rule with a filter is not vxbus's, and the
# kernel removes a rule only when every attribute matches, so vxbus must neither remove it
# (EINVAL would fail the call) nor count it as one of its own.
ip link add adminbus type vcan && ip link set adminbus up
on_exit 'ip link del adminbus'
member=$(ip -o link show | awk -F': ' '$2 ~ /^vxbh/ { sub(/@.*/, "", $2); print $2 }')
[[ -n $member ]] || fail "no vxbh link for phys-ecu"
cangw -A -s can0 -d "$member" -i -f 123:7FF
cangw -A -s can0 -d adminbus -e
cangw -A -s can0 -d adminbus -f 7DF:7FF
docker rm -f phys-ecu >/dev/null
docker network rm phys >/dev/null
ip link show can0 >/dev/null || fail "vxbus deleted a host device it did not create"
expect_contains "$(ip -d link show can0)" "state UP" "can0 after the network went"
left=$(gw_rules)
expect_contains "$left" "-s can0 -d adminbus -e" "the plain rule to a link off the bus"
expect_contains "$left" "-s can0 -d adminbus -f 7DF:7FF" "the filtered rule to a link off the bus"
ip link del adminbus

step "settings the controller refuses are refused, naming host_device, and leave it up"
for bad in "-o baudrate=19200" "-o baudrate=250000 -o baudrate_fd=2000000"; do
  # shellcheck disable=SC2086 # two options in one string
  if out=$(docker network create -d "$PLUGIN" -o host_device=can0 $bad phys 2>&1); then
    fail "create with $bad succeeded"
  fi
  echo "$bad -> $out"
  expect_contains "$out" 'option `host_device`: `can0` is a CAN controller that refused its settings' "docker's error"
  expect_contains "$(ip -d link show can0)" "state UP" "can0 after a refused create"
  expect_contains "$(ip -d link show can0)" "bitrate 500000" "can0's bit rate after a refused create"
done
expect_nothing_left "the controller's networks"
