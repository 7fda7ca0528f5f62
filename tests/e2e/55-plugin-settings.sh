#!/usr/bin/env bash
# The plugin's other settings, changed with `docker plugin set` while it is disabled, take
# effect at the next enable (VXBUS_LOG has scenario 50): the state directory (the mount source
# state.source), the directory of external plugin sockets (plugins.source) and
# VXBUS_PLUGIN_START_TIMEOUT. An external plugin that answers start after 8 s fails a create
# under the default 5 s and serves one under 12 s; the daemon keeps its state and control
# socket in the new state directory and finds the plugin's socket in the new directory.
source "$(dirname "$0")/lib.sh"

state=$(mktemp -d /tmp/vxbus-state.XXXX) sockets=$(mktemp -d /tmp/vxbus-plugins.XXXX)
record=$(mktemp /tmp/slow-plugin.XXXX.jsonl)
vxbus="$VXBUS_REPO/build/plugin/rootfs/usr/bin/vxbus"
ext="$VXBUS_REPO/tests/e2e/ext-plugin.py"
defaults=(state.source=/var/lib/vxbus plugins.source=/run/vxbus/plugins VXBUS_PLUGIN_START_TIMEOUT=5)
on_exit "rm -rf $state $sockets $record"
on_exit "docker plugin disable -f $PLUGIN; docker plugin set $PLUGIN ${defaults[*]}; docker plugin enable $PLUGIN"
on_exit "docker network rm slowbus busy; pkill -f 'ext-plugin.py .*/slow'; rm -f /run/vxbus/plugins/slow"

step "settings change only while the plugin is disabled; a network in use keeps it from disabling"
out=$(docker plugin set "$PLUGIN" VXBUS_PLUGIN_START_TIMEOUT=12 2>&1) && fail "set on an enabled plugin: $out"
echo "refused: $out"
docker network create -d "$PLUGIN" busy >/dev/null
out=$(docker plugin disable "$PLUGIN" 2>&1) && fail "disabled with a network on it: $out"
echo "refused: $out"
docker network rm busy >/dev/null

step "defaults: a plugin that answers start after 8 s fails the create (5 s)"
python3 "$ext" /run/vxbus/plugins/slow "$record" slow:8 &
wait_until 10 "the slow plugin's socket" test -S /run/vxbus/plugins/slow
out=$(docker network create -d "$PLUGIN" -o plugin.driver=slow slowbus 2>&1) && fail "created: $out"
expect_contains "$out" "no answer from external plugin slow within 5000 ms" "the create's error"
expect_nothing_left "the refused create"
echo "refused: $out"
pkill -f 'ext-plugin.py /run/vxbus/plugins/slow'
rm -f /run/vxbus/plugins/slow

step "docker plugin set: state.source, plugins.source, VXBUS_PLUGIN_START_TIMEOUT=12"
docker plugin disable "$PLUGIN"
docker plugin set "$PLUGIN" state.source="$state" plugins.source="$sockets" VXBUS_PLUGIN_START_TIMEOUT=12
docker plugin enable "$PLUGIN"
docker plugin inspect -f '{{range .Settings.Mounts}}{{.Name}}={{.Source}} {{end}}{{.Settings.Env}}' "$PLUGIN"

step "the new settings are used: a slow plugin in the new socket directory serves a bus"
: >"$record"
python3 "$ext" "$sockets/slow" "$record" slow:8 &
wait_until 10 "the slow plugin's socket" test -S "$sockets/slow"
start=$(date +%s)
docker network create -d "$PLUGIN" -o plugin.driver=slow slowbus >/dev/null
echo "created after $(($(date +%s) - start)) s"
expect_contains "$(cat "$record")" '"action": "start"' "the plugin's record"
id=$(docker network inspect -f '{{.Id}}' slowbus)
expect_contains "$(cat "$state/state.json")" "$id" "the state file in the new state directory"
expect_not_contains "$(cat /var/lib/vxbus/state.json)" "$id" "the state file in the default directory"
expect_contains "$("$vxbus" --state-dir "$state" networks)" "plugin.driver=slow" "vxbus networks over the new control socket"
docker network rm slowbus >/dev/null
expect_contains "$(cat "$record")" '"action": "stop"' "the plugin's record after docker network rm"
expect_nothing_left "the network in the moved directories"
ok "state directory, plugin socket directory and start timeout taken from docker plugin set"
