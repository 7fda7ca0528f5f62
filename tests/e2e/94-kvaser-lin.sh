#!/usr/bin/env bash
# kvaser-lin, the bundled CAN-LIN bridge. First with no adapter and no library at all
# (type=simulator: the LDF's slaves answer a master's headers; a simulated master runs the
# schedule table for a slave). Then without Kvaser's libraries: the create fails naming the file.
# Then against the STAND-IN for Kvaser's libraries (crates/kvaser-standin, no hardware), put where
# a user puts Kvaser's SDK (the plugin's `kvaser` mount): a network defined as RemotiveBus users
# define it turns frames into the right LIN calls, a DLC-0 frame and a remote request bring the
# slave's answer back, a checksum error comes back as a status frame, a schedule table's headers
# are sent in order and on time, and `docker network rm` leaves the channel closed. Bad LDFs,
# tables and adapters fail the create with what is wrong.
# engines: newest
source "$(dirname "$0")/lib.sh"

standin_dir=/tmp/kvaser-standin
record=/var/lib/vxbus/plugin-data/kvaser-lin/standin.log # the plugin's own directory: it runs as its own user
on_exit "docker plugin disable -f $PLUGIN >/dev/null; docker plugin set $PLUGIN kvaser.source=/usr/lib kvaser0.path=/dev/null; docker plugin enable $PLUGIN >/dev/null; rm -rf $standin_dir $record"
on_failure "docker rm -f lin-a lin-b; docker network rm simbus simslave linbus slavebus schedbus"
install_lin_ldf
kvaser_pid() { pgrep -f "^/usr/bin/vxbus-kvaser-lin"; } # (its name is longer than pgrep -x sees)
calls() { grep -E " $1 " "$record" || true; } # FUNCTION: the stand-in's record lines of FUNCTION
closed_last() { # HANDLE: the stand-in's last two calls took HANDLE off the bus and closed it
  expect_eq "$(tail -n 2 "$record" | awk '{print $2, $3}' | tr '\n' ' ')" "linBusOff $1 linClose $1 " "the last calls"
}
vxbus="$VXBUS_REPO/target/release/vxbus"

step "type=simulator, host_mode=master: the LDF's slaves answer headers; no Kvaser library is loaded"
mark=$(log_mark)
docker network create -d "$PLUGIN" -o device=lin -o plugin.driver=kvaser-lin -o plugin.type=simulator \
  -o plugin.host_mode=master -o plugin.database=$LIN_LDF simbus >/dev/null
wait_logged "$mark" "bridging vxbn[0-9a-f]* to a simulated LIN bus (slave nodes of $LIN_LDF)" 10
run_containers simbus lin-a lin-b
listen b lin0 lin-b
# DoorState (32) and SeatState (34) have slave publishers; LockCmd (16) is the master's own.
in_netns lin-a sh -c 'cansend lin0 020#R && cansend lin0 022# && cansend lin0 010#0102'
# Answers interleave with what is still being sent: compared sorted.
expect_eq "$(heard b | sort)" "$(printf '%s\n' 020#R 022# 010#0102 020#3412 022#03 | sort)" "frames on the bus"
expect_eq "$(grep -c -E 'lib(lin|can)lib' "/proc/$(kvaser_pid)/maps" || true)" 0 "Kvaser libraries mapped by the simulator"
docker rm -f lin-a lin-b >/dev/null && docker network rm simbus >/dev/null
ok "the simulated Door and Seat answered with the LDF's initial values; no library loaded"

step "type=simulator, host_mode=slave: a simulated master runs the LDF's first table"
docker network create -d "$PLUGIN" -o device=lin -o plugin.driver=kvaser-lin -o plugin.type=simulator \
  -o plugin.host_mode=slave -o plugin.database=$LIN_LDF simslave >/dev/null
run_containers simslave lin-a
# The master never stops: six frames come at once (two rounds of the table's three slots).
got=$(in_netns lin-a timeout 20 candump -L -n 6 lin0 | awk '{print $3}')
echo "$got"
expect_eq "$(sort -u <<<"$got")" "$(printf '%s\n' 010#0140 020#3412 022#03)" "frames of the simulated nodes"
docker rm -f lin-a >/dev/null && docker network rm simslave >/dev/null
ok "the simulated master published LockCmd and polled the slaves, on the bus"

step "type=lin without Kvaser's libraries (the kvaser mount is the host's /usr/lib): a clear error"
before=$(host_snapshot)
out=$(docker network create -d "$PLUGIN" -o plugin.driver=kvaser-lin -o plugin.host_mode=master \
  -o plugin.device_id=0 nolib 2>&1) && fail "created without Kvaser's libraries: $out"
echo "$out"
expect_contains "$out" "cannot load Kvaser's libcanlib.so.1 from /usr/lib/kvaser" "the error"
expect_contains "$out" "install Kvaser's Linux drivers and SDK" "the error"
expect_eq "$(host_snapshot)" "$before" "the host after the refused create"
# The library path is kvaser-lin's setting (vxbus set), read at each create.
"$vxbus" set kvaser-lin library_path=/opt/kvaser
out=$(docker network create -d "$PLUGIN" -o plugin.driver=kvaser-lin -o plugin.host_mode=master \
  -o plugin.device_id=0 nolib 2>&1) && fail "created without Kvaser's libraries: $out"
expect_contains "$out" "cannot load Kvaser's libcanlib.so.1 from /opt/kvaser" "the error after vxbus set"
"$vxbus" set kvaser-lin library_path=/usr/lib/kvaser
ok "refused, naming the file, the directory and the fix; nothing left; library_path followed"

step "the STAND-IN for Kvaser's libraries where the SDK would be, an adapter's node: docker plugin set vxbus kvaser.source=DIR kvaser0.path=DEV"
mkdir -p "$standin_dir"
for name in liblinlib.so.1 libcanlib.so.1; do
  cp "$VXBUS_REPO/target/release/libkvaser_standin.so" "$standin_dir/$name"
done
# The far node answers 32, 33 (with a checksum error) and 34; when the adapter is a slave, a
# simulated master sends headers 32 and 34 every 20 ms. The record goes to the plugin's data
# directory, the one place its user may write.
cat >"$standin_dir/kvaser-standin.json" <<EOF
{"channels": [{"ean": "73-30130-01112-1", "serial": 1}],
 "responses": {"32": [17, 34], "33": [5], "34": [3]}, "checksum_errors": [33],
 "headers": [32, 34], "header_period_ms": 20, "record": "$record"}
EOF
: >"$record" && chown --reference="$(dirname "$record")" "$record"
docker plugin disable "$PLUGIN" >/dev/null
# No Kvaser adapter here: a serial port's node stands for /dev/leaf0, to show the setting at work.
docker plugin set "$PLUGIN" kvaser.source=$standin_dir kvaser0.path=/dev/ttyS0
docker plugin enable "$PLUGIN" >/dev/null
daemon=$(pgrep -x vxbus)
[[ -c /proc/$daemon/root/dev/ttyS0 ]] || fail "/dev/ttyS0 is not in the plugin's /dev (daemon pid $daemon): $(ls -la "/proc/$daemon/root/dev/" 2>&1)"
[[ -e /proc/$daemon/root/usr/lib/kvaser/liblinlib.so.1 ]] || fail "the stand-in is not at /usr/lib/kvaser in the plugin"
ok "the plugin sees $standin_dir at /usr/lib/kvaser, and /dev/ttyS0"

step "a network as RemotiveBus users define it: plugin.driver=kvaser (the alias), host_mode=master, device_id=EAN:serial"
mark=$(log_mark)
docker network create -d "$PLUGIN" -o device=lin -o plugin.driver=kvaser -o plugin.host_mode=master \
  -o plugin.device_id=011121:1 linbus >/dev/null
wait_logged "$mark" "bridging vxbn[0-9a-f]* to Kvaser channel 0 (device_id 011121:1) as Master, 19200 bit/s, Enhanced checksum" 10
cat "$record"
expect_contains "$(calls linOpenChannel)" "channel=0 master -> h=" "the channel opened as master"
expect_contains "$(calls linSetupLIN)" "checksum=enhanced flags=" "the setup"
expect_contains "$(calls linSetupLIN)" "bps=19200 -> 0" "the bit rate"
handle=$(calls linOpenChannel | tail -n1 | grep -oE 'h=[0-9]+$')
run_containers linbus lin-a lin-b
listen b lin0 lin-b
in_netns lin-a sh -c 'cansend lin0 010#0102 && cansend lin0 020# && cansend lin0 020#R && cansend lin0 021# && cansend lin0 7FF#01'
# The answers to 32 twice; 33's answer had a checksum error: status [33, 2 (checksum), 1 error].
expect_eq "$(heard b | sort)" "$(printf '%s\n' 010#0102 020# 020#R 021# 7FF#01 020#1122 020#1122 7F0#210201000000 | sort)" "frames on the bus"
expect_eq "$(calls linWriteMessage | awk '{print $3, $4, $5, $7}')" "$handle id=16 data=0102 0" "LIN writes"
expect_eq "$(calls linRequestMessage | awk '{print $4}' | tr '\n' ' ')" "id=32 id=32 id=33 " "LIN headers"
wait_logged "$mark" "LIN error on id 0x21: checksum (1 so far; reported on CAN id 0x7F0)" 5
ok "a write, two headers answered (DLC 0 and RTR), a checksum error reported; 0x7FF (not LIN) ignored"

step "docker network rm: the channel goes off the bus and is closed"
docker rm -f lin-a lin-b >/dev/null
mark=$(log_mark)
docker network rm linbus >/dev/null
tail -n 3 "$record"
closed_last "$handle"
wait_logged "$mark" "LIN channel closed" 5
ok "bus off, then closed, by the time docker network rm returned"

step "host_mode=slave: the containers set and withdraw the adapter's responses; the master's traffic reaches them"
docker network create -d "$PLUGIN" -o device=lin -o baudrate=9600 -o plugin.driver=kvaser -o plugin.host_mode=slave \
  -o plugin.device_id=011121:1 -o plugin.checksum=classic slavebus >/dev/null
expect_contains "$(calls linOpenChannel | tail -n1)" "channel=0 slave -> h=" "the channel opened as slave"
expect_contains "$(calls linSetupLIN | tail -n1)" "checksum=classic flags=" "the checksum option"
expect_contains "$(calls linSetupLIN | tail -n1)" "bps=9600 -> 0" "the LIN bit rate from the network's baudrate"
handle=$(calls linOpenChannel | tail -n1 | grep -oE 'h=[0-9]+$')
run_containers slavebus lin-a
# Before the containers answer 34, the far node does (022#03); the answer to 32 comes every round.
got=$(in_netns lin-a timeout 20 candump -L -n 4 lin0 | awk '{print $3}' | sort -u)
expect_eq "$got" "$(printf '%s\n' 020#1122 022#03)" "what the simulated master's headers brought"
in_netns lin-a cansend lin0 022#0707
wait_until 10 "linUpdateMessage of 34" bash -c "grep -q 'linUpdateMessage $handle id=34 data=0707 -> 0' $record"
# Now the adapter answers 34 itself: its own answer is not echoed; only 020#1122 comes.
got=$(in_netns lin-a timeout 20 candump -L -n 6 lin0 | awk '{print $3}' | sort -u)
expect_eq "$got" "020#1122" "frames after the containers took over 34"
in_netns lin-a cansend lin0 022#
wait_until 10 "linClearMessage of 34" bash -c "grep -q 'linClearMessage $handle id=34 -> 0' $record"
docker rm -f lin-a >/dev/null && docker network rm slavebus >/dev/null
closed_last "$handle"
ok "slave at the network's baudrate: responses set (linUpdateMessage) and withdrawn (linClearMessage); the master's answers on the bus; closed"

step "a device_id no adapter has, a broken LDF, an unknown schedule table: the create fails with what is wrong"
refused() { # EXPECTED OPTION...: docker network create with OPTIONs fails with EXPECTED in its message
  local expected=$1 out
  shift
  out=$(docker network create -d "$PLUGIN" -o plugin.driver=kvaser-lin -o plugin.host_mode=master "$@" bad 2>&1) &&
    fail "created with $*: $out"
  expect_contains "$out" "$expected" "the refusal of $*"
  echo "refused: $out"
}
refused "no Kvaser channel matches device_id 999999:9; channels found: 0 = 73-30130-01112-1:1" -o plugin.device_id=999999:9
printf 'LIN_description_file ;\nLIN_speed = fast ;\n' >"$LIN_DIR/broken.ldf"
refused "plugin.database $LIN_DIR/broken.ldf: line 2: " -o plugin.device_id=0 -o plugin.database=$LIN_DIR/broken.ldf
refused "plugin.schedule_table_name \`Fast\` is not a schedule table of $LIN_LDF; its tables: Normal, Diag" \
  -o plugin.device_id=0 -o plugin.database=$LIN_LDF -o plugin.schedule_table_name=Fast
refused "plugin.host_mode is mandatory" -o plugin.host_mode= -o plugin.device_id=0
expect_eq "$(docker network ls -q --filter name=bad)" "" "networks named bad"
ok "each refused with the option, file and line"

step "a schedule table on the base tick: the stand-in sees the table's headers in order and on time"
: >"$record" && chown --reference="$(dirname "$record")" "$record"
docker network create -d "$PLUGIN" -o device=lin -o plugin.driver=kvaser-lin -o plugin.host_mode=master \
  -o plugin.device_id=011121:1 -o plugin.database=$LIN_LDF -o plugin.schedule_table_name=Normal \
  -o plugin.base_tick_ms=5 schedbus >/dev/null
run_containers schedbus lin-a
in_netns lin-a cansend lin0 010#AB55
# Timing is judged over 3 s of steady running, not while containers and links come and go
# (under software emulation those stall the whole machine for tens of milliseconds).
from=$(grep -c . "$record")
sleep 3
to=$(grep -c . "$record")
docker rm -f lin-a >/dev/null && docker network rm schedbus >/dev/null
handle=$(calls linOpenChannel | tail -n1 | grep -oE 'h=[0-9]+$')
slots=$(grep -E "(linWriteMessage|linRequestMessage) $handle " "$record")
steady=$(sed -n "$((from + 1)),${to}p" "$record" | grep -E "(linWriteMessage|linRequestMessage) $handle ")
sed -n 1,6p <<<"$slots" # (sed, not head, reads to the end: no SIGPIPE under pipefail)
# LockCmd (16, the master's: its data), DoorState (32), SeatState (34): over and over, 20 ms apart.
order=$(grep -oE 'id=[0-9]+' <<<"$slots" | sed -n 1,30p | tr '\n' ' ')
expect_eq "$order" "$(for _ in $(seq 10); do printf 'id=16 id=32 id=34 '; done)" "the order of the slots"
expect_contains "$(grep 'id=16' <<<"$slots" | sed -n 1p)" "data=0140" "LockCmd's first data (the LDF's initial values)"
expect_contains "$(echo "$slots" | grep 'id=16' | tail -n1)" "data=AB55" "LockCmd's data after the container sent 010#AB55"
# Each slot is due 20 ms after the one before was due; the bridge keeps the table on those
# times, so after a late slot the next gap is shorter. How much later than 20 ms after the one
# before each came (early ones count 0), in the stand-in's milliseconds:
late=$(echo "$steady" | awk 'NR > 1 { d = $1 - prev - 20; print (d > 0 ? d : 0) } { prev = $1 }' | sort -n)
count=$(grep -c . <<<"$late")
p99=$(awk -v n="$count" 'NR == int(n * 0.99) { print }' <<<"$late")
max=$(tail -n1 <<<"$late")
echo "slots in 3 s of steady running: $((count + 1)); later than due (ms): p99 $p99, max $max"
((count >= 100)) || fail "only $count slots in 3 s, not about 150"
((p99 <= 5)) || fail "more than one slot in a hundred came over a tick (5 ms) late: p99 $p99 ms"
((max <= 15)) || fail "a slot came $max ms late: three ticks"
closed_last "$handle"
ok "slots in order; 99% within a tick of their time (max $max ms late); the channel closed"

expect_nothing_left "the kvaser-lin scenario"
