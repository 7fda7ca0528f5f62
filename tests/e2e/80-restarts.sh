#!/usr/bin/env bash
# The plugin is disabled (forced) and enabled, and the host reboots (simulated: dockerd stops,
# the kernel's CAN links and rules go, dockerd starts), while containers run on a bus: the bus
# keeps working or comes back, new containers join, and vxbus's state matches the kernel. On the
# oldest engine it is also the bus scenario: a container has its CAN interface and lo only.
# What Docker re-sends (or not) after each is in docs/docker-facts.md; the log lines checked here are
# how vxbus reports what it found. The steps that prove vxbus's own recovery (an unreadable state
# file, a record that no longer parses, an endpoint Docker removed while the plugin was disabled)
# do not depend on the engine and run on the newest only: the last costs 30 s of Docker looking
# for the disabled driver.
# engines: newest oldest
source "$(dirname "$0")/lib.sh"

on_failure 'docker rm -f r-a r-b r-c r-d; docker network rm rbus'
on_exit 'rm -f /var/lib/vxbus/state.json.unreadable*'

# bus_carries SENDER RECEIVER...: 5 classic and 1 FD frame from SENDER reach every RECEIVER's can0
# and the host device rhost, each once, in order.
bus_carries() {
  local sender=$1 r
  shift
  local specs=(host:rhost)
  for r in "$@"; do specs+=("$r:can0:$r"); done
  listeners "${specs[@]}"
  send_in "$sender" 5 1 can0
  for r in "$@" host; do expect_frames "$r" "$(frames 5 1)"; done
}

docker network create -d "$PLUGIN" -o device=can -o host_device=rhost rbus >/dev/null
run_containers rbus r-a &
run_containers rbus r-b -- --restart always
wait $! || fail "r-a did not start"

# What Docker adds to a container on a bus differs between engines (70 has the details): no
# docker_gwbridge, no veth, on every engine this scenario runs on.
expect_eq "$(container_links r-a)" "can0 lo" "interfaces in r-a"
ip link show docker_gwbridge >/dev/null 2>&1 && fail "Docker created docker_gwbridge"

step "plugin disable -f while containers run: the bus keeps working (it is in the kernel)"
docker plugin disable -f "$PLUGIN" >/dev/null
daemon_running && fail "the daemon still runs after disable"
bus_carries r-a r-b

if newest_engine; then
  step "an unreadable state file: the daemon starts and keeps the running bus, saying why"
  # Before, it started with no networks and deleted the members' vxcan pairs as orphans.
  saved=$(mktemp)
  on_exit "rm -f $saved"
  cp /var/lib/vxbus/state.json "$saved"
  echo '{ not json' >/var/lib/vxbus/state.json
  mark=$(log_mark)
  docker plugin enable "$PLUGIN" >/dev/null
  wait_logged "$mark" "link(s) named like vxbus's are not in the state, and kept"
  bus_carries r-a r-b
  docker plugin disable -f "$PLUGIN" >/dev/null
  cp "$saved" /var/lib/vxbus/state.json
  rm -f /var/lib/vxbus/state.json.unreadable*

  # A second network whose recorded options no longer parse (as after a downgrade) and whose vcan
  # is gone: before, reconciling it failed the whole start and enable crash-looped.
  python3 - /var/lib/vxbus/state.json <<'PY'
import json, sys
state = json.load(open(sys.argv[1]))
state["networks"]["badbadbad"] = {"options": {"com.docker.network.generic": {"fd": "maybe"}},
    "host_device": {"name": "vxbn0badbadbad", "created": True}, "endpoints": {}}
json.dump(state, open(sys.argv[1], "w"))
PY
fi

step "plugin enable: the state is reconciled, nothing is changed, new containers join (on the newest: a record that no longer parses is skipped)"
mark=$(log_mark)
docker plugin enable "$PLUGIN" >/dev/null
if newest_engine; then
  wait_logged "$mark" "network badbadbad skipped while reconciling: .*fd.*maybe"
  wait_logged "$mark" "state reconciled with the kernel: 2 network(s), 2 endpoint(s); 0 endpoint(s) forgotten, 0 orphan link(s) deleted, 0 rule(s) added, 0 removed, 1 network(s) skipped"
else
  wait_logged "$mark" "state reconciled with the kernel: 1 network(s), 2 endpoint(s); 0 endpoint(s) forgotten, 0 orphan link(s) deleted, 0 rule(s) added, 0 removed"
fi
run_containers rbus r-c
bus_carries r-c r-a r-b

if newest_engine; then
  step "a container removed while the plugin is disabled is forgotten at enable"
  docker plugin disable -f "$PLUGIN" >/dev/null
  python3 - /var/lib/vxbus/state.json <<'PY'
import json, sys
state = json.load(open(sys.argv[1]))
del state["networks"]["badbadbad"]
json.dump(state, open(sys.argv[1], "w"))
PY
  docker rm -f r-c >/dev/null
  mark=$(log_mark)
  docker plugin enable "$PLUGIN" >/dev/null
  wait_logged "$mark" "state reconciled with the kernel: 1 network(s), 2 endpoint(s); 1 endpoint(s) forgotten"
  expect_eq "$(state_summary)" "1 network(s), 2 endpoint(s)" "state after the forgotten endpoint"
  expect_eq "$(gw_rules | wc -l)" 12 "gateway rules for two members and the host device"
else
  # r-c has no restart policy: the reboot below stops it, and Docker tells vxbus (Leave, DeleteEndpoint).
  expect_eq "$(state_summary)" "1 network(s), 3 endpoint(s)" "state with r-c"
  expect_eq "$(gw_rules | wc -l)" 24 "gateway rules for three members and the host device"
fi

step "a simulated reboot (dockerd stops, the kernel loses every CAN link and rule, dockerd starts): containers with a restart policy come back on the bus"
stop_dockerd || fail "dockerd did not stop within 60 s"
for link in rhost $(vxbus_links); do ip link del "$link" 2>/dev/null || true; done
cangw -F
mark=$(log_mark)
start_dockerd || fail "dockerd did not answer within 120 s after the reboot"
wait_until 60 "r-b running again" bash -c '[[ $(docker inspect -f "{{.State.Running}}" r-b) == true ]]'
wait_until 60 "plugin enabled again" plugin_enabled
expect_eq "$(docker inspect -f '{{.State.Running}}' r-a)" false "r-a (no restart policy) after the restart"
expect_eq "$(container_links r-b)" "can0 lo" "r-b's interfaces after the restart"
wait_logged "$mark" "network [0-9a-f]*: host device rhost was gone: created it again"
docker start r-a >/dev/null
run_containers rbus r-d
bus_carries r-a r-b r-d
expect_eq "$(state_summary)" "1 network(s), 3 endpoint(s)" "state after the restart"
expect_eq "$(gw_rules | wc -l)" 24 "gateway rules for three members and the host device"

step "cleanup leaves nothing"
docker rm -f r-a r-b r-d $(newest_engine || echo r-c) >/dev/null
docker network rm rbus >/dev/null
expect_nothing_left "the restarts"
