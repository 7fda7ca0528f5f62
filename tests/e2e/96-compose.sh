#!/usr/bin/env bash
# Docker Compose v2 with the README's compose file (docs/compose.yaml): two vxbus buses from
# driver_opts (device, host_device, fd, plugin.driver=logger), a bridge network, an ECU on both
# buses and the bridge, a tester on one bus, a GUI on the bridge only. Frames flow ECU <-> tester
# and to the host device, FD frames reach the logger; the ECU reaches the GUI over IP, and its one
# default route is the bridge's. A changed driver_opts value makes Compose recreate the network:
# nothing leaks and the bus works after. `docker compose down` leaves no link, rule or state.
# engines: newest
source "$(dirname "$0")/lib.sh"

project=$(mktemp -d)
on_exit "rm -rf $project"
on_failure "docker compose --project-directory $project down --timeout 1"
cp "$VXBUS_REPO/docs/compose.yaml" "$project/compose.yaml"
compose() { docker compose --project-directory "$project" "$@"; }

step "the README's compose file is docs/compose.yaml"
readme_copy=$(awk '/^<!-- compose.yaml -->$/ { getline; inside = 1; next } inside && /^```$/ { exit } inside' \
  "$VXBUS_REPO/README.md")
expect_eq "$readme_copy" "$(cat "$VXBUS_REPO/docs/compose.yaml")" "README's compose file against docs/compose.yaml"

step "docker compose up -d"
compose up -d --quiet-pull 2>&1 | tail -n 12
expect_eq "$(container_links vehicle-ecu-1)" "ecu_body0 ecu_chassis0 eth0 lo" "the ECU's interfaces"
expect_eq "$(container_links vehicle-tester-1)" "body0 lo" "the tester's interfaces"
expect_eq "$(container_links vehicle-gui-1)" "eth0 lo" "the GUI's interfaces"
ip link show vbody0 >/dev/null || fail "the body bus's host device vbody0 is missing"
expect_eq "$(docker network inspect -f '{{.Driver}} {{index .Options "device"}} {{index .Options "plugin.driver"}}' vehicle_chassis)" \
  "$PLUGIN chassis logger" "the chassis network's driver and options"
ok "three services on two buses and a bridge, each with the interfaces it asked for"

step "frames flow ECU <-> tester and to the host device; FD on chassis reaches the logger"
listeners tester:body0:vehicle-tester-1 host:vbody0
compose exec -T ecu sh -c "$(send_frames 20 0 ecu_body0)"
expect_frames tester "$(frames 20 0)"
expect_frames host "$(frames 20 0)"
listen ecu ecu_body0 vehicle-ecu-1
compose exec -T tester sh -c "$(send_frames 5 0 body0)"
expect_frames ecu "$(frames 5 0)"
compose exec -T ecu sh -c "$(send_frames 2 3 ecu_chassis0)"
log_file=/var/lib/vxbus/plugin-data/logger/chassis.log
wait_until 20 "5 frames in the logger's $log_file" bash -c "(( \$(wc -l <$log_file) >= 5 ))"
expect_eq "$(awk '{print $3}' "$log_file")" "$(frames 2 3)" "frames the logger recorded"
ok "the buses carry frames both ways, classic and FD, and the logger serves chassis"

step "the ECU reaches the GUI over the bridge, whose gateway is its only default route"
# By address: the guest's dockerd runs without iptables, which Docker's embedded DNS needs.
gui=$(docker inspect -f '{{(index .NetworkSettings.Networks "vehicle_diag").IPAddress}}' vehicle-gui-1)
# (With nc: the test image's static busybox wget crashes.)
page=$(compose exec -T ecu sh -c "printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 10 $gui 8080") ||
  fail "the ECU cannot fetch http://$gui:8080/ (the GUI)"
expect_contains "$page" "vehicle-gui" "the GUI's page, fetched by the ECU"
routes=$(in_netns vehicle-ecu-1 ip -4 route show)
echo "$routes" | sed 's/^/  ecu route: /'
expect_eq "$(grep -c '^default' <<<"$routes")" 1 "the ECU's default routes"
expect_contains "$(grep '^default' <<<"$routes")" "dev eth0" "the ECU's default route"
for iface in ecu_body0 ecu_chassis0; do
  expect_eq "$(in_netns vehicle-ecu-1 ip -o addr show dev "$iface")" "" "addresses on the ECU's $iface"
done
ok "IP on the bridge only: the CAN interfaces have no address and no route"

step "a changed driver_opts value: Compose recreates the network, nothing leaks"
before=$(vxbus_links | wc -l)
sed -i 's/host_device: vbody0/host_device: vbody1/' "$project/compose.yaml"
compose up -d 2>&1
ip link show vbody0 >/dev/null 2>&1 && fail "the old host device vbody0 is left after the network was recreated"
ip link show vbody1 >/dev/null || fail "the new host device vbody1 is missing"
# Compose 2.40 reconnects the ECU to the recreated network without its interface_name: Docker's
# CreateEndpoint then carries none, and the interface takes the network's device (README).
expect_eq "$(container_links vehicle-ecu-1)" "body0 ecu_chassis0 eth0 lo" "the ECU's interfaces after the network was recreated"
expect_eq "$(container_links vehicle-tester-1)" "body0 lo" "the tester's interfaces after the network was recreated"
expect_eq "$(vxbus_links | wc -l)" "$before" "vxbus's links after the network was recreated"
expect_eq "$(state_summary)" "2 network(s), 3 endpoint(s)" "vxbus's state after the network was recreated"
listeners tester:body0:vehicle-tester-1 host:vbody1
compose exec -T ecu sh -c "$(send_frames 5 0 body0)"
expect_frames tester "$(frames 5 0)"
expect_frames host "$(frames 5 0)"
ok "the recreated bus works, on its new host device"

step "docker compose down leaves nothing"
compose down --timeout 1 2>&1 | tail -n 12
ip link show vbody1 >/dev/null 2>&1 && fail "vbody1 is left after compose down"
expect_nothing_left "docker compose down"
