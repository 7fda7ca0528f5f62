#!/usr/bin/env bash
# Plugins: the bundled logger records a bus's frames in a candump log under the host state
# directory, or in pcapng that tshark reads back; its stderr lands in the daemon's log; it keeps no capability; killed, it is restarted
# and serves its bus again. A plugin that refuses start, options its schema refuses, unknown and
# path-like ids fail `docker network create` with a message and leave nothing behind. An external
# plugin on a host socket gets start and stop with RemotiveBus's JSON; one that never answers
# fails the create after the 5 s timeout.
# engines: newest
source "$(dirname "$0")/lib.sh"

logs=/var/lib/vxbus/plugin-data/logger
sockets=/run/vxbus/plugins
ext="$VXBUS_REPO/tests/e2e/ext-plugin.py"
on_exit "pkill -f ext-plugin.py; rm -f $sockets/ext $sockets/mute"
on_failure "docker rm -f log-a log-b; docker network rm logged remotive"

log_ends_with() { [[ $(tail -n "$1" "$logs/body.log" | awk '{print $3}') == "$2" ]]; } # N FRAMES

step "plugin.driver=logger: the plugin is spawned, registers and records what containers send"
mark=$(log_mark)
docker network create -d "$PLUGIN" -o device=ecu -o plugin.driver=logger -o plugin.file=body logged >/dev/null
wait_logged "$mark" "plugin logger registered: logger" 10
host_if=$(ip -o link show type vcan | grep -oE 'vxbn[0-9a-f]{10}')
[[ -n $host_if ]] || fail "no vxbn vcan made for the logger"
run_containers logged log-a log-b
listen b ecu0 log-b
send_in log-a 5 2 ecu0
expect_frames b "$(frames 5 2)"
wait_until 10 "7 lines in $logs/body.log" bash -c "(( \$(wc -l <$logs/body.log) >= 7 ))"
head -n 2 "$logs/body.log"
expect_eq "$(awk '{print $3}' "$logs/body.log")" "$(frames 5 2)" "frames in the logger's file"
expect_eq "$(awk '{print $2}' "$logs/body.log" | sort -u)" "$host_if" "interface in the log lines"
[[ $(head -n1 "$logs/body.log") =~ ^\([0-9]+\.[0-9]{6}\)\  ]] || fail "not a candump log line: $(head -n1 "$logs/body.log")"
wait_logged "$mark" "recording $host_if to .*body.log.*plugin=logger" 10
ok "the logger recorded 7 frames in candump format; its stderr is in the daemon's log, tagged"

step "the child keeps no capability (it declared none)"
pid=$(pgrep -x vxbus-logger)
grep -E '^(CapEff|CapBnd|NoNewPrivs)' "/proc/$pid/status"
expect_eq "$(awk '/^CapEff|^CapBnd|^CapPrm/ {print $2}' "/proc/$pid/status" | sort -u)" "0000000000000000" "child capabilities"
ok "no capabilities"

step "killing the child: it is restarted and serves its bus again"
mark=$(log_mark)
pkill -9 -x vxbus-logger
wait_logged "$mark" "restarting plugin logger in" 20
# Bounded by the restart policy: five tries, 15.5 s of backoff, 5 s to register each.
wait_logged "$mark" "plugin logger started serving network" 60
new_pid=$(pgrep -x vxbus-logger)
[[ -n $new_pid && $new_pid != "$pid" ]] || fail "no new logger process (old $pid, now '$new_pid')"
send_in log-a 3 0 ecu0
wait_until 10 "10 lines in $logs/body.log" bash -c "(( \$(wc -l <$logs/body.log) >= 10 ))"
expect_eq "$(awk '{print $3}' "$logs/body.log" | tail -n 3)" "$(frames 3 0)" "frames after the restart"
ok "restarted (pid $pid -> $new_pid) and recording again"

step "vxbus plugins / set on the host: a setting reaches the running logger without a restart"
vxbus="$VXBUS_REPO/target/release/vxbus"
"$vxbus" plugins
expect_contains "$("$vxbus" plugins)" "logger        running" "vxbus plugins"
expect_contains "$("$vxbus" networks)" "plugin.driver=logger" "vxbus networks"
pid=$(pgrep -x vxbus-logger)
mark=$(log_mark)
"$vxbus" set logger max_file_size=4096
"$vxbus" set logger max_files=2
wait_logged "$mark" "settings now: max_file_size 4096 bytes, max_files 2.*plugin=logger" 10
expect_eq "$(pgrep -x vxbus-logger)" "$pid" "logger pid after reconfigure"
# About 45 bytes a line: 200 frames fill 4096 bytes twice; with max_files=2 one old file is kept.
in_netns log-a sh -c 'i=0; while [ $i -lt 200 ]; do cansend ecu0 321#00; i=$((i+1)); done'
wait_until 20 "a rotated log" test -f "$logs/body.log.1"
sleep 1
ls -l "$logs"
[[ ! -e $logs/body.log.2 ]] || fail "max_files=2 kept body.log.2"
(($(stat -c %s "$logs/body.log.1") <= 4096)) || fail "body.log.1 is over 4096 bytes"
expect_contains "$("$vxbus" settings logger)" "max_file_size = 4096" "vxbus settings logger"
ok "reconfigured in place (pid $pid); rotated at 4096 bytes keeping 2 files"

step "plugin disable -f / enable: the daemon's restart starts the logger again for its bus"
mark=$(log_mark)
docker plugin disable -f "$PLUGIN" >/dev/null
wait_until 20 "the logger to die with the daemon" bash -c '! pgrep -x vxbus-logger'
docker plugin enable "$PLUGIN" >/dev/null
wait_logged "$mark" "plugin logger started serving network" 30
send_in log-a 2 0 ecu0
wait_until 10 "the 2 frames at the end of body.log" log_ends_with 2 "$(frames 2 0)"
expect_contains "$("$vxbus" settings logger)" "max_files = 2" "settings kept across the restart"
ok "the logger serves its bus again after the daemon restarted; settings kept"

step "plugin.format=pcapng: tshark reads every frame back, in order, with its id, flags and data"
rm -f "$logs/cap.pcapng" # the sizes below are of a file this run starts
docker network create -d "$PLUGIN" -o plugin.driver=logger -o plugin.format=pcapng -o plugin.file=cap \
  captured >/dev/null
on_failure docker network rm captured
cap_if=vxbn$(docker network inspect -f '{{.Id}}' captured | cut -c1-10)
wait_until 10 "the logger to record $cap_if" bash -c "[[ -s $logs/cap.pcapng ]]"
header=$(stat -c %s "$logs/cap.pcapng") # a section header and the interface's description
# Sent on the bus's host side: the logger's socket there gets them as from any member.
sent=$'123#DEAD\n12345678#0102030405060708\n7FF#R\n1A0##1'"$(printf '%02X' {1..12})"$'\n00F#'
for f in $sent; do cansend "$cap_if" "$f"; done
# A classic frame's packet block takes 48 bytes, an FD frame's 104. (tshark takes seconds to
# start under emulation: it runs once the file is whole.) The logger flushes when the bus has
# been quiet for 200 ms.
whole() { (($(stat -c %s "$logs/cap.pcapng") == header + 4 * 48 + 104)); }
wait_until 10 "the 5 packets in cap.pcapng ($header bytes before them)" whole
pcap_frames() { # one line per packet: id (decimal), extended, remote (none for FD), length, data
  tshark -r "$logs/cap.pcapng" -T fields -E separator=, -e can.id -e can.flags.xtd \
    -e can.flags.rtr -e can.len -e data.data "$@"
}
expect_eq "$(pcap_frames 2>&1 | grep -v '^Running as user')" "$(printf '%s\n' 291,False,False,2,dead \
  305419896,True,False,8,0102030405060708 2047,False,True,0, \
  416,False,,12,0102030405060708090a0b0c 15,False,False,0,)" \
  "what tshark reads from the pcapng file (id, extended, remote, length, data)"
expect_contains "$(tshark -r "$logs/cap.pcapng" -V -Y frame.number==4 2>&1)" "FD Frame: True" \
  "tshark's reading of the fourth packet"
docker network rm captured >/dev/null
ok "tshark reads the 5 frames (standard, extended, remote, FD, empty) from the pcapng file"

step "docker network rm: the plugin is told to stop first; its vcan goes with the network"
mark=$(log_mark)
docker rm -f log-a log-b >/dev/null
docker network rm logged >/dev/null
wait_logged "$mark" "plugin logger stopped serving network" 10
wait_logged "$mark" "network .* recording stopped.*plugin=logger" 10
expect_nothing_left "removing the logged network"

before=$(host_snapshot)
refused() { # EXPECTED OPTIONS...: docker network create fails saying EXPECTED; nothing changes
  local expected=$1 out
  shift
  out=$(docker network create -d "$PLUGIN" "$@" refused 2>&1) && fail "created with $*"
  expect_contains "$out" "$expected" "docker network create $*"
  expect_eq "$(host_snapshot)" "$before" "host after the refused create"
  echo "refused: $out"
}

step "refusals: a plugin that refuses start, options its schema refuses, unknown and path-like ids"
refused 'plugin logger: plugin.file `.hidden` is not allowed' -o plugin.driver=logger -o plugin.file=.hidden
refused 'plugin.colour is not an item of plugin logger; its items: file, format' -o plugin.driver=logger -o plugin.colour=red
refused 'plugin.format: `xml` is not allowed' -o plugin.driver=logger -o plugin.format=xml
refused "plugin.driver \`nosuch\`: no such plugin: not bundled (bundled: kvaser, kvaser-lin, logger) and no socket $sockets/nosuch" \
  -o plugin.driver=nosuch
refused 'option `plugin.driver`: `../../usr/bin` is not allowed' -o plugin.driver=../../usr/bin
ok "each refused with its reason; nothing left behind"

step "an external plugin on $sockets/ext gets start and stop with the documented JSON"
rm -f /tmp/ext.jsonl
python3 "$ext" "$sockets/ext" /tmp/ext.jsonl ok &
wait_until 10 "the external plugin's socket" test -S "$sockets/ext"
docker network create -d "$PLUGIN" -o type=vcan -o device=mybus -o baudrate=19200 -o host_device=myhostbus \
  -o plugin.driver=ext -o plugin.name="My Can" remotive >/dev/null
id=$(docker network inspect -f '{{.Id}}' remotive)
docker network rm remotive >/dev/null
cat /tmp/ext.jsonl
python3 - "$id" <<'EOF' || fail "the external plugin did not get the documented messages"
import json, sys
lines = [json.loads(l) for l in open("/tmp/ext.jsonl")]
bus = {"type": "vcan", "device": "mybus", "host_device": "myhostbus", "baudrate": 19200,
       "plugin": {"driver": "ext", "name": "My Can"}, "fd": True, "network_id": sys.argv[1],
       "host_interface": "myhostbus"}
expected = [{"version": 1, "action": a, "bus": bus} for a in ("start", "stop")]
assert lines == expected, (lines, expected)
EOF
expect_nothing_left "the external plugin's network"
ip link show myhostbus >/dev/null 2>&1 && fail "myhostbus left behind"
ok "start and stop arrived as RemotiveBus plugins expect"

step "an external plugin that never answers: the create fails after 5 s and leaves nothing"
python3 "$ext" "$sockets/mute" /tmp/mute.jsonl silent &
wait_until 10 "the silent plugin's socket" test -S "$sockets/mute"
refused 'plugin mute: start: no answer from external plugin mute within 5000 ms' \
  -o host_device=mutebus -o plugin.driver=mute
ok "timed out with the plugin's name"
