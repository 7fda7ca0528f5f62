#!/usr/bin/env bash
# Without a kernel module a bus needs, the daemon's start log and `docker network create` name it
# and the command that loads it; once loaded, the create works.
# engines: newest
source "$(dirname "$0")/lib.sh"

on_exit 'modprobe -a vxcan can-gw'
on_failure 'docker plugin enable "$PLUGIN"; docker network rm kbus'

step "unload can-gw and vxcan (no bus exists, so nothing uses them)"
docker plugin disable -f "$PLUGIN" >/dev/null
modprobe -r can-gw vxcan || fail "cannot unload can-gw and vxcan"
mark=$(log_mark)
docker plugin enable "$PLUGIN" >/dev/null
wait_logged "$mark" "module can-gw not loaded; load it on the host with \`modprobe -a can-gw\`"
# vxcan is a link kind: the daemon's probe made the kernel load it on demand (can-gw never is).
[[ -d /sys/module/vxcan ]] || fail "vxcan was not loaded on demand by the start-up probe"
ok "the start log names the missing module; vxcan was loaded on demand"

step "docker network create names the module and the command"
if out=$(docker network create -d "$PLUGIN" kbus 2>&1); then fail "create succeeded: $out"; fi
echo "$out"
expect_contains "$out" "NetworkDriver.CreateNetwork: the host's kernel lacks what a CAN bus needs: module can-gw not loaded; load it on the host with \`modprobe -a can-gw\`" "docker's error"
expect_eq "$(docker network ls -q --filter name=kbus)" "" "networks after the refused create"

step "after modprobe the create works"
modprobe -a vxcan can-gw
docker network create -d "$PLUGIN" kbus >/dev/null
docker network rm kbus >/dev/null
expect_nothing_left "create and remove"
