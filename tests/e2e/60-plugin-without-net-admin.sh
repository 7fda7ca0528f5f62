#!/usr/bin/env bash
# A managed plugin whose config.json does not grant CAP_NET_ADMIN cannot be enabled, and
# dockerd's log says why in the daemon's words (the capability and how to grant it).
# engines: newest
source "$(dirname "$0")/lib.sh"

nocap=vxbus-nocap:latest
dir=$(mktemp -d)
on_exit "docker plugin rm -f $nocap; rm -rf $dir"

step "a copy of build/plugin without CAP_NET_ADMIN in its config.json"
cp -a "$VXBUS_REPO/build/plugin/rootfs" "$dir/rootfs"
# Docker 20.10 refuses a second plugin whose rootfs layer is byte-identical ("content ...:
# already exists"), so make this one differ.
echo "e2e variant: no CAP_NET_ADMIN" >"$dir/rootfs/etc/vxbus-e2e-variant"
python3 - "$VXBUS_REPO/build/plugin/config.json" "$dir/config.json" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
config["linux"]["capabilities"] = []
json.dump(config, open(sys.argv[2], "w"), indent=2)
PY
docker plugin create "$nocap" "$dir" >/dev/null

step "docker plugin enable fails; the daemon's refusal is in dockerd's log"
mark=$(log_mark)
expect_enable_fails "$nocap"
wait_logged "$mark" "vxbus needs CAP_NET_ADMIN"
refusal=$(log_since "$mark" | grep -m1 'vxbus needs CAP_NET_ADMIN')
echo "$refusal"
expect_contains "$refusal" "--grant-all-permissions" "the refusal"
expect_contains "$refusal" "level=error" "dockerd's level (the daemon writes errors to stderr)"
expect_contains "$refusal" "ERROR vxbus" "the daemon's own level"
plugin_enabled || fail "the real plugin $PLUGIN was disturbed"
ok "without CAP_NET_ADMIN the plugin does not enable, and says why"
