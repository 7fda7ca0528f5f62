#!/usr/bin/env bash
# What Docker 28 offers a network driver, on the newest engine. A container names its interface
# on a bus (`driver-opt=com.docker.network.endpoint.ifname=NAME`): Docker passes a plugin driver
# only a prefix and appends an index, so it gets NAME0 (docs/docker-facts.md). A name the kernel
# would refuse (too long, a `/`) fails `docker run` naming it, leaving nothing. No gateway address
# is reserved on a bus (GwAllocCheck), and `--ipv4=false` gives it no subnet and its members no
# address. A container on a bus and a bridge has the bridge's default route, whichever it joined
# first. With `default-network-opts` in daemon.json (Docker's per-driver defaults), every new bus
# gets no IPv4 without an option per network.
# engines: newest
source "$(dirname "$0")/lib.sh"

on_failure 'docker rm -f body-ecu gw-ecu bad-slash bad-long bus-first bridge-first quiet; docker network rm names gwcheck ipnet plain withv4'
ifname_opt=com.docker.network.endpoint.ifname

docker version -f '{{.Server.Version}}' | grep -qE '^(2[89]|[3-9][0-9])\.' ||
  fail "this scenario needs Docker 28 or later, not $(docker version -f '{{.Server.Version}}')"

step "two containers on one bus, named body and gw_body by their own choice"
docker network create -d "$PLUGIN" --ipv4=false -o device=can names >/dev/null
docker run -d --name body-ecu --network "name=names,driver-opt=$ifname_opt=body" "$TEST_IMAGE" \
  sh -c 'trap "exit 0" TERM; sleep 3600 & wait' >/dev/null &
docker run -d --name gw-ecu --network "name=names,driver-opt=$ifname_opt=gw_body" "$TEST_IMAGE" \
  sh -c 'trap "exit 0" TERM; sleep 3600 & wait' >/dev/null
wait $! || fail "docker run body-ecu failed"
expect_eq "$(container_links body-ecu)" "body0 lo" "body-ecu's interfaces"
expect_eq "$(container_links gw-ecu)" "gw_body0 lo" "gw-ecu's interfaces"
listeners gw:gw_body0:gw-ecu
send_in body-ecu 10 2 body0
expect_frames gw "$(frames 10 2)"
ok "each container got the interface name it asked for, and the bus joins them"

step "no IPv4 on a CAN bus: no gateway reserved by default; with --ipv4=false no subnet, address or route"
docker network create -d "$PLUGIN" -o device=gw gwcheck >/dev/null
expect_eq "$(docker network inspect -f '{{range .IPAM.Config}}{{.Gateway}}{{end}}' gwcheck)" "" "the gateway of a default vxbus network"
expect_eq "$(docker network inspect -f '{{.EnableIPv4}} {{json .IPAM.Config}}' names)" "false null" "the --ipv4=false network's IPAM config"
for c in body-ecu gw-ecu; do
  expect_eq "$(in_netns "$c" ip -o -4 addr show scope global)" "" "IPv4 addresses in $c"
  expect_eq "$(in_netns "$c" ip -4 route show)" "" "IPv4 routes in $c"
done
ok "the network has no IPv4 subnet and its members no address"

step "a container on a bus (IPv4 on) and a bridge: its one default route is the bridge's, in either attach order"
docker network create ipnet >/dev/null
bridge_gw=$(docker network inspect -f '{{range .IPAM.Config}}{{.Gateway}}{{end}}' ipnet)
run_containers gwcheck bus-first &
run_containers ipnet bridge-first
wait $! || fail "docker run bus-first failed"
docker network connect ipnet bus-first &
docker network connect gwcheck bridge-first
wait $! || fail "docker network connect ipnet bus-first failed"
known_pids bus-first bridge-first
for c in bus-first bridge-first; do
  routes=$(in_netns "$c" ip -4 route show default)
  echo "$c: $routes"
  read -r _ _ via _ dev _ <<<"$routes"
  expect_eq "$(grep -c . <<<"$routes") $via" "1 $bridge_gw" "default routes in $c (count and gateway)"
  expect_eq "$(container_links "$c" | grep -o 'gw0')" "gw0" "$c's interface on the bus"
  expect_not_contains "$dev" "gw" "the default route's interface in $c"
done
docker rm -f bus-first bridge-first >/dev/null
docker network rm gwcheck ipnet >/dev/null
ok "the bus offers no gateway: the bridge's is the default route whichever network came first"

step "a name the kernel refuses fails docker run, naming it, and leaves nothing"
before=$(host_snapshot)
for spec in "bad-slash ecu/body" "bad-long name_of_15_byte"; do
  read -r container name <<<"$spec"
  if out=$(docker run -d --name "$container" --network "name=names,driver-opt=$ifname_opt=$name" \
    "$TEST_IMAGE" true 2>&1); then
    fail "docker run with interface name $name succeeded"
  fi
  echo "docker run with interface name $name: $out"
  expect_contains "$out" "$name" "the error of docker run with interface name $name"
  docker rm -f "$container" >/dev/null 2>&1 || true
done
expect_eq "$(host_snapshot)" "$before" "links, rules and state after the refused names"
ok "refused names leave no link, rule or state entry"

step "cleanup leaves nothing"
docker rm -f body-ecu gw-ecu >/dev/null
docker network rm names >/dev/null
expect_nothing_left "removing the bus"

step "no IPv4 on any new bus without per-network options: one setting in daemon.json (default-network-opts)"
# Docker passes the setting to the driver among its options too; vxbus lets Docker's own pass.
[[ ! -e /etc/docker/daemon.json ]] || fail "/etc/docker/daemon.json exists already: $(cat /etc/docker/daemon.json)"
on_failure 'restart_dockerd'
on_exit 'rm -f /etc/docker/daemon.json'
mkdir -p /etc/docker
printf '{"default-network-opts": {"%s": {"com.docker.network.enable_ipv4": "false"}}}\n' "$PLUGIN" >/etc/docker/daemon.json
cat /etc/docker/daemon.json
restart_dockerd
wait_until 60 "the plugin enabled after the restart" plugin_enabled
docker network create -d "$PLUGIN" -o device=plain plain >/dev/null
docker network create -d "$PLUGIN" -o device=v4 --ipv4=true withv4 >/dev/null
expect_eq "$(docker network inspect -f '{{.EnableIPv4}} {{json .IPAM.Config}}' plain)" "false null" "a bus created with no option"
expect_contains "$(docker network inspect -f '{{.EnableIPv4}} {{json .IPAM.Config}}' withv4)" "true [{" "a bus created with --ipv4=true"
run_containers plain quiet
expect_eq "$(in_netns quiet ip -o -4 addr show scope global)" "" "IPv4 addresses in a container on it"
docker rm -f quiet >/dev/null
docker network rm plain withv4 >/dev/null
rm /etc/docker/daemon.json
restart_dockerd
wait_until 60 "the plugin enabled after the restart" plugin_enabled
expect_nothing_left "the buses made under default-network-opts"
ok "with default-network-opts a bus gets no IPv4 unless asked (--ipv4=true)"
