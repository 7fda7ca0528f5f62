#!/usr/bin/env bash
# `docker plugin disable` stops the daemon cleanly (SIGTERM, socket removed, exit 0), and
# `docker plugin enable` brings it back.
# engines: newest
source "$(dirname "$0")/lib.sh"

on_exit "docker plugin enable $PLUGIN"

step "disable"
socket=$(plugin_socket)
[[ -S $socket ]] || fail "no socket at $socket before disable"
mark=$(log_mark)
docker plugin disable "$PLUGIN"
wait_until 30 "the vxbus process to exit" bash -c '! pgrep -x vxbus'
since=$(log_since "$mark")
echo "$since" | grep -i vxbus || true
expect_contains "$since" "received SIGTERM: shutting down" "daemon log on disable"
expect_contains "$since" "stopped cleanly" "daemon log on disable"
expect_not_contains "$since" "cannot run" "daemon log on disable"
[[ ! -S $socket ]] || fail "the socket $socket is still there after disable"

step "enable again"
mark=$(log_mark)
docker plugin enable "$PLUGIN"
plugin_enabled || fail "not enabled after enable"
wait_logged "$mark" "ready: serving"
expect_eq "$(plugin_call Plugin.Activate)" '{"Implements":["NetworkDriver"]}' "Plugin.Activate after enable"
ok "disable stops the daemon cleanly; enable restarts it"
