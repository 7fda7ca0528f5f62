#!/usr/bin/env bash
# VXBUS_LOG, changed with `docker plugin set` while the plugin is disabled, takes effect at the
# next enable; a value that is not a log level stops the daemon with a message naming it, and so
# does a METRICS value that is not an address (scenario 70 serves the metrics).
# engines: newest
source "$(dirname "$0")/lib.sh"

restore="docker plugin disable -f $PLUGIN; docker plugin set $PLUGIN VXBUS_LOG=info METRICS=off; docker plugin enable $PLUGIN"
on_exit "$restore"

set_log_level() { # LEVEL: disable, set VXBUS_LOG, take a log mark
  docker plugin disable "$PLUGIN"
  docker plugin set "$PLUGIN" VXBUS_LOG="$1"
  mark=$(log_mark)
}

step "VXBUS_LOG=debug: the daemon logs each call Docker makes"
set_log_level debug
docker plugin enable "$PLUGIN"
plugin_call NetworkDriver.GetCapabilities >/dev/null
wait_logged "$mark" "DEBUG vxbus::docker: Docker asked for the driver.s capabilities" 10
expect_contains "$(log_since "$mark")" 'starting (log filter `debug`)' "startup line"
ok "debug logging is on after docker plugin set"

step "VXBUS_LOG=info again: the same call logs nothing"
set_log_level info
docker plugin enable "$PLUGIN"
plugin_call NetworkDriver.GetCapabilities >/dev/null
plugin_call Plugin.Activate >/dev/null # logged at info: proves the lines before it were flushed
wait_logged "$mark" "Docker activated the plugin" 10
expect_not_contains "$(log_since "$mark")" "DEBUG" "log at level info"
ok "back to info"

step "VXBUS_LOG=verbose: the daemon refuses to start and says why"
set_log_level verbose
expect_enable_fails "$PLUGIN"
wait_logged "$mark" "VXBUS_LOG (--log) .verbose. is not a log level"
log_since "$mark" | grep 'is not a log level' | head -n1
wait_until 30 "no vxbus process" bash -c '! pgrep -x vxbus'
ok "a bad level is refused with a message naming VXBUS_LOG"

step "METRICS=localhost:9464: refused at enable, naming METRICS and what it takes"
docker plugin disable -f "$PLUGIN" >/dev/null 2>&1 || true
wait_until 30 "no vxbus process" bash -c '! pgrep -x vxbus'
docker plugin set "$PLUGIN" VXBUS_LOG=info METRICS=localhost:9464
mark=$(log_mark)
expect_enable_fails "$PLUGIN"
wait_logged "$mark" 'METRICS (--metrics) `localhost:9464` is not an address to serve metrics on: give IP:PORT' 10
ok "$(log_since "$mark" | grep -o 'METRICS (--metrics) .*' | head -n 1)"
