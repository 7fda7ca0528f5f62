#!/usr/bin/env bash
# The guest kernel has what vxbus builds on: vcan, vxcan pairs across network namespaces, and
# can-gw rules (classic and CAN FD), and the test image's can-utils run in a container.
# engines: newest
source "$(dirname "$0")/lib.sh"

on_exit 'ip link del smoke-vcan; ip link del smoke-vxa; cangw -F; docker rm -f smoke'

step "vcan, a vxcan pair and can-gw rules (classic, and FD with -X) from the pair into the vcan"
ip link add smoke-vcan type vcan
ip link set smoke-vcan mtu 72 up # CANFD_MTU: carry FD frames
ip link add smoke-vxa type vxcan peer name smoke-vxb
ip link set smoke-vxa up
ip link set smoke-vxb up
cangw -A -s smoke-vxa -d smoke-vcan -e
cangw -A -s smoke-vxa -d smoke-vcan -e -X
candump_start smoke-vcan 2
cansend smoke-vxb 123#DEADBEEF
cansend smoke-vxb '456##1.000102030405060708090A0B'
candump_expect 2
frames=$(cat "$CAN_DUMP")
expect_contains "$frames" "smoke-vcan  123   [4]  DE AD BE EF" "classic frame routed by can-gw"
expect_contains "$frames" "smoke-vcan  456  [12]  00 01 02 03 04 05 06 07 08 09 0A 0B" "FD frame routed by can-gw"
rules=$(cangw -L || true) # can-utils 2020.11 exits non-zero after listing
echo "$rules"
expect_contains "$rules" "-s smoke-vxa -d smoke-vcan -e # 1 handled" "classic rule counters"
expect_contains "$rules" "-s smoke-vxa -d smoke-vcan -X -e # 1 handled" "FD rule counters"
ok "vcan, vxcan and can-gw carry classic and FD frames"

step "a vxcan peer moved into a container carries frames both ways; can-utils run in the test image"
run_containers none smoke
pid=$(container_pid smoke)
ip link add smoke-vxh type vxcan peer name smoke-vxc netns "$pid"
ip link set smoke-vxh up
nsenter -t "$pid" -n ip link set smoke-vxc up
candump_start smoke-vxc 1 smoke
cansend smoke-vxh 7FF#0102
candump_expect 1
expect_contains "$(cat "$CAN_DUMP")" "smoke-vxc  7FF   [2]  01 02" "host to container"
candump_start smoke-vxh 1
docker exec smoke cansend smoke-vxc 010#CAFE
candump_expect 1
expect_contains "$(cat "$CAN_DUMP")" "smoke-vxh  010   [2]  CA FE" "container to host"
ok "vxcan crosses network namespaces; the test image's candump and cansend work"
