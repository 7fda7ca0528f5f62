#!/usr/bin/env bash
# VXBUS_LOG, changed with `docker plugin set` while the plugin is disabled, takes effect at the
# next enable; a value that is not a log level stops the daemon with a message naming it.
source "$(dirname "$0")/lib.sh"

restore="docker plugin disable -f $PLUGIN; docker plugin set $PLUGIN VXBUS_LOG=info; docker plugin enable $PLUGIN"
on_exit "$restore"

step "VXBUS_LOG=debug: the daemon logs each call Docker makes"
docker plugin disable "$PLUGIN"
docker plugin set "$PLUGIN" VXBUS_LOG=debug
mark=$(log_mark)
docker plugin enable "$PLUGIN"
plugin_call NetworkDriver.GetCapabilities >/dev/null
wait_until 10 "the debug line for GetCapabilities" \
  bash -c "tail -n +$((mark + 1)) '$VXBUS_OUT/dockerd.log' | grep -q 'DEBUG vxbus::docker: Docker asked for the driver.s capabilities'"
expect_contains "$(log_since "$mark")" 'starting (log filter `debug`)' "startup line"
ok "debug logging is on after docker plugin set"

step "VXBUS_LOG=info again: the same call logs nothing"
docker plugin disable "$PLUGIN"
docker plugin set "$PLUGIN" VXBUS_LOG=info
mark=$(log_mark)
docker plugin enable "$PLUGIN"
plugin_call NetworkDriver.GetCapabilities >/dev/null
plugin_call Plugin.Activate >/dev/null # logged at info: proves the lines before it were flushed
wait_until 10 "the info line for Activate" bash -c "tail -n +$((mark + 1)) '$VXBUS_OUT/dockerd.log' | grep -q 'Docker activated the plugin'"
expect_not_contains "$(log_since "$mark")" "DEBUG" "log at level info"
ok "back to info"

step "VXBUS_LOG=verbose: the daemon refuses to start and says why"
docker plugin disable "$PLUGIN"
docker plugin set "$PLUGIN" VXBUS_LOG=verbose
mark=$(log_mark)
if out=$(timeout 120 docker plugin enable "$PLUGIN" 2>&1); then
  fail "docker plugin enable succeeded with VXBUS_LOG=verbose: $out"
fi
echo "docker plugin enable failed, as it should: $out"
wait_until 30 "the refusal in dockerd's log" \
  bash -c "tail -n +$((mark + 1)) '$VXBUS_OUT/dockerd.log' | grep -q 'VXBUS_LOG (--log) .verbose. is not a log level'"
log_since "$mark" | grep 'is not a log level' | head -n1
wait_until 30 "no vxbus process" bash -c '! pgrep -x vxbus'
ok "a bad level is refused with a message naming VXBUS_LOG"
