#!/usr/bin/env bash
# `docker network create -d vxbus:latest -o ...` reaches the driver with the user's options: a bad
# option is refused with a message naming it, the value and what is allowed; valid definitions
# (vxbus's own, RemotiveBus's, rustycan4docker's) pass validation and are then refused with the
# clear "not implemented yet" (until the network driver lands). Nothing is left behind.
source "$(dirname "$0")/lib.sh"

on_exit 'docker network rm optnet'

create_fails_with() { # EXPECTED -o OPTION...: the create fails, Docker shows EXPECTED
  local expected=$1 out
  shift
  if out=$(docker network create -d "$PLUGIN" "$@" optnet 2>&1); then
    fail "docker network create $* succeeded: $out"
  fi
  echo "docker network create $*"
  echo "  -> $out"
  expect_contains "$out" "Error response from daemon: NetworkDriver.CreateNetwork: $expected" "docker's error"
  expect_eq "$(docker network ls -q --filter name=optnet)" "" "networks left after a refused create"
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

step "valid definitions pass validation, then meet 'not implemented yet'"
mark=$(log_mark)
create_fails_with "not implemented yet in vxbus" -o device=ecu -o baudrate=500000
create_fails_with "not implemented yet in vxbus" \
  -o type=vcan -o device=mybus -o baudrate=19200 -o host_device=myhostbus -o plugin.driver=kvaser -o plugin.host_mode=master
create_fails_with "not implemented yet in vxbus" -o vxcan.dev=vcan -o vxcan.id=0 -o vxcan.peer=vxcanp
since=$(log_since "$mark")
valid=$(grep "options valid" <<<"$since") || fail "the daemon logged no validated options:"$'\n'"$since"
echo "$valid" | sed 's/.*options valid: /  daemon read: /; s/" plugin=.*//'
expect_contains "$valid" 'options valid: type=vcan device=ecu baudrate=500000 fd=true"' "vxbus definition"
expect_contains "$valid" \
  'options valid: type=vcan device=mybus host_device=myhostbus baudrate=19200 fd=true plugin.driver=kvaser plugin.host_mode=master"' \
  "RemotiveBus definition"
expect_contains "$valid" 'options valid: type=vcan device=vxcanp host_device=vcan0 fd=true"' "rustycan4docker definition"
daemon_running || fail "the daemon died answering CreateNetwork"
ok "options validated through Docker; nothing left behind"
