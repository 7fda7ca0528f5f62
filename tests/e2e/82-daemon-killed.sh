#!/usr/bin/env bash
# The daemon is killed (SIGKILL: no shutdown code runs) while containers are on a bus that has a
# plugin. dockerd restarts the managed plugin; its state file (written atomically) matches the
# kernel, so reconciliation changes nothing; the plugin's child, which died with the daemon, is
# started again for the bus; the bus keeps carrying frames throughout and a new container joins.
# engines: newest
source "$(dirname "$0")/lib.sh"

logs=/var/lib/vxbus/plugin-data/logger
on_failure 'docker rm -f k-a k-b k-c; docker network rm kbus'

docker network create -d "$PLUGIN" -o device=can -o host_device=khost \
  -o plugin.driver=logger -o plugin.file=killed kbus >/dev/null
run_containers kbus k-a k-b
wait_until 10 "the logger's file" test -f "$logs/killed.log"

step "SIGKILL to the daemon: its child dies with it; the bus, in the kernel, keeps working"
before=$(host_snapshot)
daemon=$(pgrep -x vxbus) logger=$(pgrep -x vxbus-logger)
mark=$(log_mark)
kill -9 "$daemon"
wait_until 10 "the logger to die with the daemon" bash -c "! kill -0 $logger"
listeners b:can0:k-b host:khost
send_in k-a 3 1 can0
expect_frames b "$(frames 3 1)"
expect_frames host "$(frames 3 1)"

step "dockerd restarts the plugin: nothing to reconcile, the logger serves the bus again"
wait_logged "$mark" "state reconciled with the kernel: 1 network(s), 2 endpoint(s); 0 endpoint(s) forgotten, 0 orphan link(s) deleted, 0 rule(s) added, 0 removed" 90
wait_logged "$mark" "plugin logger started serving network" 30
[[ $(pgrep -x vxbus) != "$daemon" ]] || fail "the daemon has its old pid"
expect_eq "$(host_snapshot)" "$before" "links, gateway rules and state after the restart"
lines=$(wc -l <"$logs/killed.log")
run_containers kbus k-c
listeners a:can0:k-a c:can0:k-c
send_in k-b 4 0 can0
expect_frames a "$(frames 4 0)"
expect_frames c "$(frames 4 0)"
wait_until 10 "4 more lines in the logger's file" bash -c "(( \$(wc -l <$logs/killed.log) >= $lines + 4 ))"
expect_eq "$(tail -n 4 "$logs/killed.log" | awk '{print $3}')" "$(frames 4 0)" "frames the restarted logger recorded"
ok "the restarted daemon and logger serve the bus; a new container joined"

step "cleanup leaves nothing"
docker rm -f k-a k-b k-c >/dev/null
docker network rm kbus >/dev/null
expect_nothing_left "the killed daemon"
