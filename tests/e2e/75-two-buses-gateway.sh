#!/usr/bin/env bash
# A gateway ECU on two vxbus networks has two CAN interfaces and the buses stay separate; a
# container joins and leaves a bus at run time (docker network connect / disconnect); a
# container on a vxbus network and an IP (bridge) network has both, and still no docker_gwbridge.
# engines: newest
source "$(dirname "$0")/lib.sh"

on_failure 'docker rm -f gw body-ecu chassis-ecu late; docker network rm body chassis ipnet'

step "two buses, a gateway on both, one ECU on each"
docker network create -d "$PLUGIN" -o device=body body >/dev/null
docker network create -d "$PLUGIN" -o device=chassis chassis >/dev/null
docker create --name gw --network body "$TEST_IMAGE" sleep 600 >/dev/null
docker network connect chassis gw
docker start gw >/dev/null
run_containers body body-ecu &
run_containers chassis chassis-ecu
wait $! || fail "body-ecu did not start"
expect_eq "$(container_links gw)" "body0 chassis0 lo" "the gateway's interfaces"
expect_eq "$(container_links body-ecu)" "body0 lo" "body-ecu's interfaces"

step "frames stay on their bus"
listeners gw-body:body0:gw gw-chassis:chassis0:gw chassis:chassis0:chassis-ecu
send_in body-ecu 5 2 body0
expect_frames gw-body "$(frames 5 2)"
expect_eq "$(heard gw-chassis)" "" "frames on the gateway's chassis0 from the body bus"
expect_eq "$(heard chassis)" "" "frames on chassis-ecu from the body bus"
listeners body:body0:body-ecu gw-chassis:chassis0:gw
send_in chassis-ecu 3 0 chassis0
expect_frames gw-chassis "$(frames 3 0)"
expect_eq "$(heard body)" "" "frames on body-ecu from the chassis bus"
ok "two buses, two interfaces in the gateway, no crossing"

step "docker network connect / disconnect at run time, beside an IP network"
# (Docker refuses to connect a container started with --network none to anything.)
docker network create -d bridge --subnet 10.99.0.0/24 ipnet >/dev/null
run_containers ipnet late
docker network connect body late
expect_eq "$(container_links late)" "body0 eth0 lo" "late's interfaces on ipnet and body"
ip link show docker_gwbridge >/dev/null 2>&1 && fail "Docker created docker_gwbridge"
listen late body0 late
send_in body-ecu 4 1 body0
expect_frames late "$(frames 4 1)"
docker network disconnect body late
expect_eq "$(container_links late)" "eth0 lo" "late's interfaces after disconnect"
expect_eq "$(state_summary)" "2 network(s), 4 endpoint(s)" "state after disconnect (the gateway has one on each bus)"
expect_eq "$(vxbus_links | grep -c vxbh)" 4 "vxcan host ends after disconnect"
ok "connect adds the interface, disconnect removes it and its link; the IP network is untouched"

step "cleanup leaves nothing"
docker rm -f gw body-ecu chassis-ecu late >/dev/null
docker network rm body chassis ipnet >/dev/null
expect_nothing_left "removing both buses"
