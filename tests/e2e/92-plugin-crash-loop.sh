#!/usr/bin/env bash
# A bundled plugin that keeps crashing: killed each time it comes back, the logger is restarted
# after 0.5, 1, 2, 4 and 8 s, then marked failed; its bus keeps working without it (the network
# is removed cleanly), and a new network naming it starts it again from a clean count.
# engines: newest
source "$(dirname "$0")/lib.sh"

vxbus="$VXBUS_REPO/target/release/vxbus"
on_failure "docker network rm crashy revived"

step "a bus served by the logger"
mark=$(log_mark)
docker network create -d "$PLUGIN" -o host_device=crashh -o plugin.driver=logger crashy >/dev/null
wait_logged "$mark" "plugin logger started serving network" 30

step "kill the logger each time it comes back, until it is marked failed"
kills=0 last=""
deadline=$((SECONDS + 120))
while ! log_since "$mark" | grep -q "plugin logger failed .* times in a row: marked failed"; do
  ((SECONDS < deadline)) || fail "the logger was not marked failed within 120 s ($kills kills)"
  pid=$(pgrep -x vxbus-logger || true)
  if [[ -n $pid && $pid != "$last" ]]; then
    kill -9 "$pid" && kills=$((kills + 1)) last=$pid
  fi
  sleep 0.1
done
log_since "$mark" | grep -o 'restarting plugin logger in [0-9]* ms (restart [0-9] of at most 5)' || true
log_since "$mark" | grep -o 'plugin logger failed .*' | head -n1
expect_eq "$(log_since "$mark" | grep -c 'restarting plugin logger in')" 5 "restarts before failing"
sleep 2
pgrep -x vxbus-logger >/dev/null && fail "a logger process runs after it was marked failed"
"$vxbus" plugins
expect_contains "$("$vxbus" plugins)" "failed" "vxbus plugins"
expect_not_contains "$("$vxbus" plugins)" "(signal: 9" "vxbus plugins' last error (the last exit, not all of them nested)"
ok "killed $kills times: restarted 5 times, then marked failed"

step "the bus works without it; a new network naming it starts it again"
ip -o link show crashh >/dev/null || fail "the bus's host device is gone"
mark=$(log_mark)
docker network create -d "$PLUGIN" -o plugin.driver=logger revived >/dev/null
wait_logged "$mark" "plugin logger started serving network" 30
expect_contains "$("$vxbus" plugins)" "running" "vxbus plugins after the new network"
docker network rm revived crashy >/dev/null
expect_nothing_left "the crash loop"
ok "failed plugin left its bus working; a new network revived it"
