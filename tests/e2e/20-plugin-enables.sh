#!/usr/bin/env bash
# `docker plugin create` + `enable` from build/plugin (done by the harness) gives a running
# daemon that logged its startup line and answers Docker's handshake on its socket.
source "$(dirname "$0")/lib.sh"

step "the plugin is enabled and its daemon runs"
plugin_enabled || fail "docker plugin inspect says $PLUGIN is not enabled"
daemon_running || fail "no vxbus process runs"
docker plugin ls

step "dockerd's log holds the daemon's startup line"
startup=$(grep "ready: serving Docker's network driver protocol" "$VXBUS_OUT/dockerd.log") ||
  fail "no startup line in dockerd.log"
echo "$startup"
expect_contains "$startup" "on /run/docker/plugins/vxbus.sock" "socket named in the startup line"
expect_contains "$startup" 'level=info' "dockerd's level for the daemon's info lines (stdout)"

step "the socket Docker uses answers the handshake"
expect_eq "$(plugin_call Plugin.Activate)" '{"Implements":["NetworkDriver"]}' "Plugin.Activate"
expect_eq "$(plugin_call NetworkDriver.GetCapabilities)" '{"Scope":"local","ConnectivityScope":"local"}' \
  "NetworkDriver.GetCapabilities"

step "the host directories the plugin mounts exist"
for dir in /var/lib/vxbus /run/vxbus/plugins; do
  [[ -d $dir ]] || fail "$dir does not exist on the host"
done
ok "plugin enabled, daemon ready, handshake answered"
