#!/usr/bin/env bash
# The main job: three containers on one vxbus network share a CAN bus. 50 classic and 10 CAN FD
# frames sent by one arrive at the other two and at the host device, each exactly once, in
# order, data intact; the host injects frames the containers receive. Each container has only
# `lo` and its CAN interface, no IP connectivity, and Docker made no docker_gwbridge. Removing
# the containers and the network leaves no links, gateway rules or state entries.
source "$(dirname "$0")/lib.sh"

on_exit 'docker rm -f ecu-a ecu-b ecu-c; docker network rm canbus'

step "create the network (default IPAM) with a host device"
docker network create -d "$PLUGIN" -o device=ecu -o host_device=hbus canbus >/dev/null
link=$(ip -d -o link show hbus) || fail "host device hbus was not created"
expect_contains "$link" "mtu 72" "hbus carries CAN FD"
expect_contains "$link" "vcan" "hbus is a vcan"
expect_eq "$(state_summary)" "1 network(s), 0 endpoint(s)" "state after create"

step "three containers join at docker run"
run_containers canbus ecu-a ecu-b ecu-c
for c in ecu-a ecu-b ecu-c; do
  expect_eq "$(container_links "$c")" "ecu0 lo" "interfaces in $c"
done
expect_eq "$(vxbus_links | grep -c vxbh)" 3 "vxcan host ends"
expect_eq "$(gw_rules | wc -l)" 24 "gateway rules (4 links: 12 directed pairs, classic and FD)"
expect_eq "$(state_summary)" "1 network(s), 3 endpoint(s)" "state with three members"
ip link show docker_gwbridge >/dev/null 2>&1 && fail "Docker created docker_gwbridge"
expect_eq "$(ip -o link show type veth | wc -l)" 0 "veth links on the host"
ok "each container has lo and ecu0 only; no docker_gwbridge, no veth"

step "Docker's default IPAM address on a CAN interface gives no IP connectivity"
b_ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' ecu-b)
echo "ecu-b's address from Docker's IPAM: $b_ip"
if docker exec ecu-a ping -c 1 -W 2 "$b_ip"; then fail "ecu-a reached ecu-b over IP"; fi
ok "no IP packet crosses the CAN bus"

step "ecu-a sends 50 classic and 10 FD frames: ecu-b, ecu-c and the host device get each once, in order"
# ecu-a's own listener: the sender's other sockets see its frames (CAN loopback), once
listeners b:ecu0:ecu-b c:ecu0:ecu-c host:hbus a:ecu0:ecu-a
docker exec ecu-a sh -c "$(send_frames 50 10 ecu0)"
expected=$(frames 50 10)
expect_frames b "$expected"
expect_frames c "$expected"
expect_frames host "$expected"
expect_frames a "$expected"

step "the host injects on hbus: every container gets it once"
listeners a:ecu0:ecu-a b:ecu0:ecu-b c:ecu0:ecu-c
sh -c "$(send_frames 3 1 hbus)"
expected=$(frames 3 1)
for c in a b c; do expect_frames "$c" "$expected"; done

step "removing the containers and the network leaves nothing"
docker rm -f ecu-a ecu-b >/dev/null
expect_eq "$(vxbus_links | grep -c vxbh)" 1 "vxcan host ends after removing two members"
expect_eq "$(gw_rules | wc -l)" 4 "gateway rules for one member and the host device"
docker rm -f ecu-c >/dev/null
docker network rm canbus >/dev/null
ip link show hbus >/dev/null 2>&1 && fail "the host device vxbus created is still there"
expect_nothing_left "docker rm and docker network rm"
