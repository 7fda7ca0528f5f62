#!/usr/bin/env bash
# `docker plugin create` + `enable` from build/plugin (done by the harness) gives a running
# daemon that logged its startup line and answers Docker's handshake on its socket.
# engines: newest oldest
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
expect_eq "$(plugin_call NetworkDriver.GetCapabilities)" '{"Scope":"local","ConnectivityScope":"global","GwAllocChecker":true}' \
  "NetworkDriver.GetCapabilities"

step "the plugin carries the version in Cargo.toml: in its description and in vxbus --version"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$VXBUS_REPO/Cargo.toml" | head -n1)
description=$(docker plugin inspect -f '{{.Config.Description}}' "$PLUGIN")
expect_contains "$description" "vxbus $version: " "the plugin's description"
rootfs=/var/lib/docker/plugins/$(docker plugin inspect -f '{{.Id}}' "$PLUGIN")/rootfs
expect_eq "$(chroot "$rootfs" /usr/bin/vxbus --version)" "vxbus $version" "vxbus --version in the plugin's rootfs"
echo "$description"

step "the host directories the plugin mounts exist"
for dir in /var/lib/vxbus /run/vxbus/plugins; do
  [[ -d $dir ]] || fail "$dir does not exist on the host"
done
ok "plugin enabled, daemon ready, handshake answered"
