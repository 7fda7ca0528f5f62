#!/usr/bin/env bash
# `docker network create -d vxbus:latest -o ...` reaches the driver with the user's options: a bad
# option is refused with a message naming it, the value and what is allowed, leaving nothing
# behind; valid definitions (RemotiveBus's, rustycan4docker's) create working buses unchanged;
# an existing CAN interface is bridged and left in place; a non-CAN one is refused.
# engines: newest
source "$(dirname "$0")/lib.sh"

on_failure 'docker rm -f opt-a opt-b; docker network rm optnet remotive rusty'
on_exit 'ip link del mine'

create_fails_with() { # EXPECTED -o OPTION...: the create fails, Docker shows EXPECTED
  local expected=$1 out before
  shift
  before=$(host_snapshot)
  if out=$(docker network create -d "$PLUGIN" "$@" optnet 2>&1); then
    fail "docker network create $* succeeded: $out"
  fi
  echo "docker network create $*"
  echo "  -> $out"
  expect_contains "$out" "Error response from daemon: NetworkDriver.CreateNetwork: $expected" "docker's error"
  expect_eq "$(docker network ls -q --filter name=optnet)" "" "networks left after a refused create"
  expect_eq "$(host_snapshot)" "$before" "the host's links, gateway rules and vxbus state after a refused create"
}

step "refused options are named, with the value and what is allowed"
create_fails_with 'option `device`: `a_very_long_prefix` is not allowed: an interface name prefix of at most 14 bytes' \
  -o device=a_very_long_prefix
create_fails_with 'option `type`: `slcan` is not allowed: vcan' -o type=slcan
create_fails_with 'option `baudrate`: `fast` is not allowed: a positive integer bit rate in bit/s' \
  -o device=ecu -o baudrate=fast
create_fails_with "option \`vxcan.peer\` is rustycan4docker's name for \`device\`: give one of them, not both" \
  -o device=ecu -o vxcan.peer=ecu
create_fails_with 'unknown option `bitrate`: vxbus takes type, device, host_device' -o bitrate=500000
create_fails_with 'option `baudrate_fd`: `2000000` is a CAN FD data bit rate, but fd=false turns CAN FD off' \
  -o fd=false -o baudrate_fd=2000000

create_fails_with 'option `host_device`: `lo` exists and is not a CAN interface' -o host_device=lo
expect_eq "$(ip -o link show | grep -c 'myhostbus\|vcan0')" 0 "host devices made by refused creates"

step "a RemotiveBus definition creates a working bus, unchanged"
# Its plugin id names the bundled LIN bridge (`kvaser`, an alias of kvaser-lin); with no adapter
# here, its simulator stands for the LIN side (scenario 94 drives the adapter path).
install_lin_ldf
docker network create -d "$PLUGIN" -o type=vcan -o device=mybus -o baudrate=19200 -o host_device=myhostbus \
  -o plugin.driver=kvaser -o plugin.host_mode=master -o plugin.type=simulator \
  -o plugin.database="$LIN_LDF" remotive >/dev/null
options=$(docker network inspect -f '{{json .Options}}' remotive)
echo "docker network inspect: $options"
expect_contains "$options" '"plugin.driver":"kvaser"' "plugin options in docker network inspect"
expect_contains "$options" '"plugin.host_mode":"master"' "plugin options in docker network inspect"
expect_contains "$(ip -d -o link show myhostbus)" "vcan" "RemotiveBus host device"
run_containers remotive opt-a
expect_eq "$(container_links opt-a)" "lo mybus0" "interfaces on the RemotiveBus network"
listen host myhostbus
send_in opt-a 3 1 mybus0
expect_frames host "$(frames 3 1)"
create_fails_with 'option `host_device`: `myhostbus` is already used by vxbus network' -o host_device=myhostbus

step "a rustycan4docker definition creates a working bus, unchanged"
docker network create -d "$PLUGIN" -o vxcan.dev=vcan -o vxcan.id=0 -o vxcan.peer=vxcanp rusty >/dev/null
expect_contains "$(ip -d -o link show vcan0)" "vcan" "rustycan4docker host device (vxcan.dev + vxcan.id)"
run_containers rusty opt-b
expect_eq "$(container_links opt-b)" "lo vxcanp0" "interfaces on the rustycan4docker network"
listen b vxcanp0 opt-b
sh -c "$(send_frames 2 0 vcan0)"
expect_frames b "$(frames 2 0)"

step "an existing vcan is bridged, and left in place when the network goes"
ip link add mine type vcan
ip link set mine mtu 72 up
docker network create -d "$PLUGIN" -o host_device=mine optnet >/dev/null
docker network rm optnet >/dev/null
ip link show mine >/dev/null || fail "vxbus deleted a host device it did not create"

step "removing the networks leaves nothing"
docker rm -f opt-a opt-b >/dev/null
docker network rm remotive rusty >/dev/null
expect_nothing_left "removing the networks"
ip -o link show | grep -E 'myhostbus|vcan0' && fail "host devices vxbus created are still there"
daemon_running || fail "the daemon died"
ok "options reach the driver; valid definitions make working buses"
