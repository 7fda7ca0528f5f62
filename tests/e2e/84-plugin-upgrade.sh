#!/usr/bin/env bash
# `docker plugin upgrade` while a bus has containers: a next version is pushed to a registry in
# the guest (Debian's docker-registry on 127.0.0.1, which Docker trusts without TLS), the plugin
# is disabled, upgraded from it and enabled. Docker keeps the settings and the state directory
# (a host mount); the new version finds its networks, changes nothing in the kernel, and the bus
# works for old and new containers. Then the release's path: the rootfs built here goes into an
# image and out again as `make plugin` does it (scripts/export-rootfs), holds the same files,
# is pushed by `make push` as VERSION-ARCH and latest-ARCH, and is installed from the registry
# as users install it (`docker plugin install --alias`), which puts the engine back on the
# plugin built here, with default settings.
# engines: newest
source "$(dirname "$0")/lib.sh"

registry=127.0.0.1:5000
next=$registry/vxbus:next
store=$(mktemp -d) staged=$(mktemp -d) exported=$(mktemp -d)
# Debian's /etc/docker/registry/config.yml asks for htpasswd logins: the guest's registry has its own.
printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s/data\nhttp:\n  addr: %s\n' \
  "$store" "$registry" >"$store/config.yml"
docker-registry serve "$store/config.yml" >"$VXBUS_OUT/registry.log" 2>&1 &
registry_pid=$!

# The plugin built here, as the harness installs it, with the default settings.
reinstall() {
  docker plugin rm -f "$PLUGIN" >/dev/null 2>&1 # it may be gone already
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
  docker rmi vxbus-rootfs:e2e >/dev/null
  rm -rf "$store" "$staged" "$exported"
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
send_in u-a 4 1 can0
for r in b c host; do expect_frames "$r" "$(frames 4 1)"; done

step "cleanup leaves nothing"
docker rm -f u-a u-b u-c >/dev/null
docker network rm ubus >/dev/null
expect_nothing_left "the upgrade"

step "the release: the rootfs through an image and docker export (as make plugin) holds the same files"
printf 'FROM scratch\nCOPY rootfs/ /\nENTRYPOINT ["/usr/bin/vxbus"]\n' |
  DOCKER_BUILDKIT=0 docker build -q -t vxbus-rootfs:e2e -f - "$VXBUS_REPO/build/plugin" >/dev/null
"$VXBUS_REPO/scripts/export-rootfs" vxbus-rootfs:e2e "$exported/rootfs"
"$VXBUS_REPO/scripts/compare-rootfs" "$exported/rootfs" "$VXBUS_REPO/build/plugin/rootfs"
cp "$VXBUS_REPO/build/plugin/config.json" "$exported/"

step "make push sends it as VERSION-ARCH and latest-ARCH; docker plugin install --alias gets it back"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$VXBUS_REPO/Cargo.toml" | head -n1)
arch=$(dpkg --print-architecture)
make -s -C "$VXBUS_REPO" push PLUGIN="$registry/vxbus" TAG="$version-$arch" ALSO_TAGS="latest-$arch" PLUGIN_DIR="$exported"
for tag in "$version-$arch" "latest-$arch"; do
  curl -sf "http://$registry/v2/vxbus/manifests/$tag" \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' >/dev/null ||
    fail "the registry has no vxbus:$tag"
done
expect_eq "$(docker plugin ls --format '{{.Name}}' | grep -c "^$registry/vxbus:" || true)" 0 "plugins make push left in the engine"
docker plugin disable -f "$PLUGIN" >/dev/null
docker plugin rm -f "$PLUGIN" >/dev/null
docker plugin install --grant-all-permissions --alias "${PLUGIN%:latest}" "$registry/vxbus:latest-$arch"
upgraded=false # the engine holds the plugin built here again
plugin_enabled || fail "the installed plugin is not enabled"
expect_eq "$(docker plugin inspect -f '{{.PluginReference}}' "$PLUGIN")" "$registry/vxbus:latest-$arch" "the installed plugin's reference"
expect_eq "$(docker plugin inspect -f '{{.Config.Description}}' "$PLUGIN")" "$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["description"])' "$VXBUS_REPO/build/plugin/config.json")" "description after installing"
expect_contains "$(docker plugin inspect -f '{{.Settings.Env}}' "$PLUGIN")" "VXBUS_LOG=info" "settings after installing"
docker network create -d "$PLUGIN" -o host_device=uhost ubus >/dev/null
expect_contains "$(ip -o link show uhost)" "uhost" "the installed plugin's bus device"
docker network rm ubus >/dev/null
expect_nothing_left "the installed plugin's network"
ok "installed from the registry as users do: the plugin built here, default settings"
