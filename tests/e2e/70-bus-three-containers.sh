#!/usr/bin/env bash
# The main job: three containers on one vxbus network share a CAN bus. 50 classic and 10 CAN FD
# frames sent by one arrive at the other two and at the host device, each exactly once, in
# order, data intact; the host injects frames the containers receive. Each container has only
# `lo` and its CAN interface, no IP connectivity, and Docker made no docker_gwbridge. When
# another tool flushes can-gw, vxbus restores the bus within seconds. Removing the containers and
# the network leaves no links, gateway rules or state entries, even when the removal fails
# half-way and vxbus must finish it.
# engines: newest
source "$(dirname "$0")/lib.sh"

on_failure 'docker rm -f ecu-a ecu-b ecu-c; docker network rm canbus'

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

step "another tool flushes can-gw during traffic (cangw -F): vxbus restores the bus within 5 s, an administrator's rule stays"
ip link add adm0 type vcan && ip link set adm0 up
on_exit "ip link del adm0"
listeners b:ecu0:ecu-b
# ecu-a sends 123#0000, 123#0001, ... every 0.1 s (and the time exec takes), for several seconds.
docker exec ecu-a sh -c 'i=0; while [ $i -lt 60 ]; do cansend ecu0 123#$(printf %04X $i) || exit 1; i=$((i+1)); sleep 0.1; done' &
sender=$!
sleep 2
mark=$(log_mark)
cangw -F
flushed=$(date +%s.%N)
cangw -A -s hbus -d adm0 -f 7DF:7FF # someone's own rule from the bus's host device, made at once
wait "$sender" || fail "the sender in ecu-a failed"
wait_logged "$mark" "repaired the buses: 24 rule(s) added, 0 removed" 10
got=$(heard b)
expect_eq "$(tail -n 1 <<<"$got")" "123#003B" "the last frame ecu-b got"
# The longest silence on ecu-b: the flush, until vxbus's next check (every 2 s, and after Docker's calls).
gap=$(awk -v f="$flushed" '{t = substr($1, 2, length($1) - 2) + 0; if (t > f + 0 && p != "" && t - p > g) g = t - p; p = t} END {printf "%.1f", g}' "$_dumps/b")
echo "frames stopped after the flush and flowed again after ${gap} s ($(grep -c . <<<"$got") of 60 arrived)"
awk -v g="$gap" 'BEGIN {exit !(g < 5)}' || fail "frames flowed again only after ${gap} s"
expect_contains "$(cangw -L 2>/dev/null || true)" "-s hbus -d adm0 -f 7DF:7FF" "the administrator's rule after vxbus's checks"
cangw -D -s hbus -d adm0 -f 7DF:7FF
expect_eq "$(gw_rules | wc -l)" 24 "gateway rules after the repair"
ok "the bus's 24 rules were made again, the administrator's was left"

step "docker network rm that fails half-way (the state file cannot be written) is finished by vxbus"
docker rm -f ecu-a ecu-b >/dev/null
expect_eq "$(vxbus_links | grep -c vxbh)" 1 "vxcan host ends after removing two members"
expect_eq "$(gw_rules | wc -l)" 4 "gateway rules for one member and the host device"
docker rm -f ecu-c >/dev/null
# state.json as a directory that is not empty: the rename that replaces it fails. (The daemon's
# record in memory is the one that counts: the next save writes it whole.)
rm /var/lib/vxbus/state.json
mkdir -p /var/lib/vxbus/state.json/blocked
on_exit "rmdir /var/lib/vxbus/state.json/blocked /var/lib/vxbus/state.json 2>/dev/null"
mark=$(log_mark)
out=$(docker network rm canbus 2>&1) && echo "docker network rm: $out" || echo "docker network rm failed: $out"
wait_logged "$mark" "network [0-9a-f]*: deleting it failed half-way: .*state.json.*; vxbus tries again every 2s" 10
rmdir /var/lib/vxbus/state.json/blocked /var/lib/vxbus/state.json
wait_logged "$mark" "network [0-9a-f]* deleted (finishing a docker network rm that failed half-way)" 10
docker network rm canbus >/dev/null 2>&1 || true # if Docker kept it (it forgets it whatever the driver says)
ip link show hbus >/dev/null 2>&1 && fail "the host device vxbus created is still there"
expect_nothing_left "docker rm and docker network rm"
