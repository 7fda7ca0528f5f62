#!/usr/bin/env bash
# The plugin's other settings, changed with `docker plugin set` while it is disabled, take
# effect at the next enable (VXBUS_LOG has scenario 50): the state directory (the mount source
# state.source), the directory of external plugin sockets (plugins.source) and
# VXBUS_PLUGIN_START_TIMEOUT. An external plugin that answers start after 8 s fails a create
# under the default 5 s and serves one under 60 s; the daemon keeps its state and control
# socket in the new state directory and finds the plugin's socket in the new directory. With
# 60 s, a plugin that never answers start holds up no other network: a network is created and
# a container runs on it meanwhile.
# engines: newest
source "$(dirname "$0")/lib.sh"

state=$(mktemp -d /tmp/vxbus-state.XXXX) sockets=$(mktemp -d /tmp/vxbus-plugins.XXXX)
record=$(mktemp /tmp/slow-plugin.XXXX.jsonl) silent_record=$(mktemp /tmp/silent-plugin.XXXX.jsonl)
vxbus="$VXBUS_REPO/build/plugin/rootfs/usr/bin/vxbus"
ext="$VXBUS_REPO/tests/e2e/ext-plugin.py"
defaults=(state.source=/var/lib/vxbus plugins.source=/run/vxbus/plugins VXBUS_PLUGIN_START_TIMEOUT=5)
on_exit "rm -rf $state $sockets $record $silent_record"
on_exit "docker plugin disable -f $PLUGIN; docker plugin set $PLUGIN ${defaults[*]}; docker plugin enable $PLUGIN"
on_exit "pkill -f 'ext-plugin.py .*/(slow|silent)'; rm -f /run/vxbus/plugins/slow"
on_failure "docker network rm slowbus busy other stalled"

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

step "docker plugin set: state.source, plugins.source, VXBUS_PLUGIN_START_TIMEOUT=60"
docker plugin disable "$PLUGIN"
docker plugin set "$PLUGIN" state.source="$state" plugins.source="$sockets" VXBUS_PLUGIN_START_TIMEOUT=60
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

step "a plugin that never answers start (60 s to go) holds up no other network"
# Docker may give up on the stalled create before the daemon does (its plugin client has a
# time limit of its own), so what is checked is the daemon's side: the container on the other
# network ran before the daemon gave up on the silent plugin. Had the stalled create held
# the driver, the other network's calls would have waited for its 60 s to pass, and the
# daemon's failure would say so; instead it ends when the plugin goes away.
python3 "$ext" "$sockets/silent" "$silent_record" silent &
wait_until 10 "the silent plugin's socket" test -S "$sockets/silent"
stalled_out=$(mktemp)
on_exit "rm -f $stalled_out"
mark=$(log_mark)
docker network create -d "$PLUGIN" -o plugin.driver=silent stalled >"$stalled_out" 2>&1 &
stalled=$!
wait_until 30 "start reaching the silent plugin" grep -q '"action": "start"' "$silent_record"
docker network create -d "$PLUGIN" other >/dev/null
docker run --rm --network other "$TEST_IMAGE" true
docker network rm other >/dev/null
ok "a network created, a container run on it and the network removed while the plugin's start was pending"
pkill -f "ext-plugin.py $sockets/silent"
wait "$stalled" && fail "the create whose plugin went away succeeded: $(cat "$stalled_out")"
echo "the stalled create: $(cat "$stalled_out")"
wait_logged "$mark" "not created: plugin silent" 30
failure=$(log_since "$mark" | grep -o 'not created: plugin silent.*' | head -n 1)
expect_not_contains "$failure" "within 60000 ms" "the daemon's failure of the stalled create"
wait_until 20 "the vcan made for the stalled network deleted" bash -c '! ip -o link show | grep -q vxbn'
expect_not_contains "$(cat "$state/state.json")" "vxbn" "the state file after the stalled create"
ok "state directory, plugin socket directory and start timeout taken from docker plugin set"
