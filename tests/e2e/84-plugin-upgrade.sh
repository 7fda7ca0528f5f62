#!/usr/bin/env bash
# `docker plugin upgrade` while a bus has containers: a next version is pushed to a registry in
# the guest (Debian's docker-registry on 127.0.0.1, which Docker trusts without TLS), the plugin
# is disabled, upgraded from it and enabled. Docker keeps the settings and the state directory
# (a host mount); the new version finds its networks, changes nothing in the kernel, and the bus
# works for old and new containers. Afterwards the engine gets the plugin built here back, made
# as the harness made it (Docker 20.10 refuses to `plugin create` a rootfs it already holds, so
# the version installed now cannot be pushed beside it and upgraded back to).
source "$(dirname "$0")/lib.sh"

registry=127.0.0.1:5000
next=$registry/vxbus:next
store=$(mktemp -d) staged=$(mktemp -d)
# Debian's /etc/docker/registry/config.yml asks for htpasswd logins: the guest's registry has its own.
printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s/data\nhttp:\n  addr: %s\n' \
  "$store" "$registry" >"$store/config.yml"
docker-registry serve "$store/config.yml" >"$VXBUS_OUT/registry.log" 2>&1 &
registry_pid=$!

# The plugin built here, as the harness installs it, with the default settings.
reinstall() {
  docker plugin disable -f "$PLUGIN" || true
  docker plugin rm -f "$PLUGIN" >/dev/null &&
    docker plugin create "$PLUGIN" "$VXBUS_REPO/build/plugin" >/dev/null &&
    docker plugin enable "$PLUGIN" >/dev/null
}
upgraded=false
cleanup() {
  docker rm -f u-a u-b u-c
  docker network rm ubus
  if $upgraded; then reinstall; fi
  docker plugin rm -f "$next" >/dev/null
  kill "$registry_pid"
  rm -rf "$store" "$staged"
}
on_exit cleanup
wait_until 30 "the registry to answer" curl -sf "http://$registry/v2/"

step "push a next version: the rootfs built here with a marker file, its description marked"
cp -a "$VXBUS_REPO/build/plugin/." "$staged/"
echo "upgrade test" >"$staged/rootfs/etc/vxbus-next"
python3 - "$staged/config.json" <<'EOF'
import json, sys
config = json.load(open(sys.argv[1]))
config["description"] += " [next: upgrade test]"
json.dump(config, open(sys.argv[1], "w"), indent=2)
EOF
docker plugin create "$next" "$staged" >/dev/null
docker plugin push "$next" >/dev/null
docker plugin rm "$next" >/dev/null
ok "pushed $next"

docker network create -d "$PLUGIN" -o device=can -o host_device=uhost ubus >/dev/null
run_containers ubus u-a u-b

step "disable, set a setting, upgrade, enable: settings and networks are kept, nothing changes"
before=$(host_snapshot)
docker plugin disable -f "$PLUGIN" >/dev/null
upgraded=true
docker plugin set "$PLUGIN" VXBUS_LOG=debug
mark=$(log_mark)
docker plugin upgrade --skip-remote-check --grant-all-permissions "$PLUGIN" "$next"
docker plugin enable "$PLUGIN" >/dev/null
expect_contains "$(docker plugin inspect -f '{{.Config.Description}}' "$PLUGIN")" "[next: upgrade test]" "description after the upgrade"
expect_contains "$(docker plugin inspect -f '{{.Settings.Env}}' "$PLUGIN")" "VXBUS_LOG=debug" "settings after the upgrade"
rootfs=/var/lib/docker/plugins/$(docker plugin inspect -f '{{.Id}}' "$PLUGIN")/rootfs
[[ -f $rootfs/etc/vxbus-next ]] || fail "the plugin's rootfs ($rootfs) is not the next version's"
wait_logged "$mark" "state reconciled with the kernel: 1 network(s), 2 endpoint(s); 0 endpoint(s) forgotten, 0 orphan link(s) deleted, 0 rule(s) added, 0 removed" 60
expect_contains "$(log_since "$mark")" 'starting (log filter `debug`)' "the upgraded daemon's start line"
expect_eq "$(host_snapshot)" "$before" "links, gateway rules and state after the upgrade"

step "the upgraded plugin serves the bus: old and new containers"
run_containers ubus u-c
listeners b:can0:u-b c:can0:u-c host:uhost
docker exec u-a sh -c "$(send_frames 4 1 can0)"
for r in b c host; do expect_frames "$r" "$(frames 4 1)"; done

step "cleanup leaves nothing; the engine gets the plugin built here back"
docker rm -f u-a u-b u-c >/dev/null
docker network rm ubus >/dev/null
expect_nothing_left "the upgrade"
reinstall || fail "cannot install the plugin built here again"
upgraded=false
expect_eq "$(docker plugin inspect -f '{{.Config.Description}}' "$PLUGIN")" "$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["description"])' "$VXBUS_REPO/build/plugin/config.json")" "description after reinstalling"
expect_contains "$(docker plugin inspect -f '{{.Settings.Env}}' "$PLUGIN")" "VXBUS_LOG=info" "settings after reinstalling"
ok "back on the plugin built here, default settings"
