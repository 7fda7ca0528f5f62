#!/usr/bin/env bash
# `docker network create -d vxbus` reaches the driver, which refuses it with its clear
# "not implemented yet" error (until the network driver lands); nothing is left behind.
source "$(dirname "$0")/lib.sh"

on_exit 'docker network rm notimpl'

step "docker network create -d $PLUGIN is refused with the driver's message"
mark=$(log_mark)
if out=$(docker network create -d "$PLUGIN" -o device=ecu -o baudrate=500000 notimpl 2>&1); then
  fail "docker network create succeeded: $out"
fi
echo "$out"
expect_contains "$out" "NetworkDriver.CreateNetwork: not implemented yet in vxbus" "docker's error"

step "the request reached the daemon with the user's options"
since=$(log_since "$mark")
refused=$(grep "refused NetworkDriver.CreateNetwork" <<<"$since") || fail "the daemon logged no refusal:"$'\n'"$since"
echo "$refused"
expect_contains "$refused" 'com.docker.network.generic' "request body"
expect_contains "$refused" 'device' "request body"
expect_contains "$refused" 'ecu' "request body"

step "no network was left behind"
expect_eq "$(docker network ls -q --filter name=notimpl)" "" "networks named notimpl"
daemon_running || fail "the daemon died answering CreateNetwork"
ok "create refused clearly, nothing left"
