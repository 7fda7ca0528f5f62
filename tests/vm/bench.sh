#!/usr/bin/env bash
# `make bench`, run in the VM by tests/vm/guest. Prints figures, asserts nothing about speed.
#
# One container sends to another with canbench (crates/dataplane/examples/canbench.rs): a burst (as fast as the
# sender's socket takes frames) for throughput and latency, and a paced run at 10,000 frames/s
# for loss. First over a bare vxcan pair between the two containers (the floor: no gateway),
# then through a vxbus network with 2, 10 and 50 members (VXBUS_BENCH_SIZES), the others idle
# (each still gets a copy of every frame). Then one 10-member bus with the bus load on and off
# (VXBUS_BUS_LOAD=off: no socket weighs each frame) in turn, twice, for the cost of counting and
# the runs' noise; the daemon's memory is printed before and after each. Last, the time of `docker run` on a vxbus network
# against `--network none`. Figures from a VM under software emulation: compare the rows with
# each other, not with real hardware.
source "$VXBUS_REPO/tests/e2e/lib.sh"

BURST=${VXBUS_BENCH_BURST:-20000} PACED=${VXBUS_BENCH_PACED:-20000} RATE=10000
on_exit 'docker rm -f $(docker ps -aq --filter name=bench-); docker network rm bench'
results=$(mktemp)

# measure LABEL SENDER SIFACE RECEIVER RIFACE COUNT [RATE]: one run; appends a result line.
measure() {
  local label=$1 sender=$2 siface=$3 receiver=$4 riface=$5 count=$6 rate=${7:-} out sent
  out=$(mktemp)
  docker exec "$receiver" canbench recv "$riface" "$count" >"$out" 2>&1 &
  local pid=$!
  wait_until 60 "canbench ready in $receiver" grep -q ready "$out"
  sent=$(docker exec "$sender" canbench send "$siface" "$count" $rate)
  wait "$pid" || fail "canbench recv failed: $(cat "$out")"
  local got
  got=$(grep received= "$out")
  printf '%s\t%s\t%s\n' "$label" "$sent" "$got" | tee -a "$results"
}
field() { grep -o "$1=[0-9.]*" <<<"$2" | cut -d= -f2; } # field NAME LINE

run_members() { # N: containers bench-1..N on --network $NET (or none)
  local i
  for ((i = 1; i <= $1; i++)); do
    docker run -d --name "bench-$i" --network "$NET" "$TEST_IMAGE" sleep 3600 >/dev/null
  done
}

step "floor: a bare vxcan pair between two containers, no gateway"
NET=none run_members 2
ip link add bench-fa netns "$(container_pid bench-1)" type vxcan peer name bench-fb netns "$(container_pid bench-2)"
nsenter -t "$(container_pid bench-1)" -n ip link set bench-fa up
nsenter -t "$(container_pid bench-2)" -n ip link set bench-fb up
measure "floor burst" bench-1 bench-fa bench-2 bench-fb "$BURST"
measure "floor paced" bench-1 bench-fa bench-2 bench-fb "$PACED" "$RATE"
docker rm -f bench-1 bench-2 >/dev/null

rss() { awk '/^VmRSS/ { print $2 " kB" }' "/proc/$(pgrep -x vxbus)/status"; } # the daemon's memory
# bus_runs LABEL N: a bus of N members, a burst and a paced run through it.
bus_runs() {
  docker network create -d "$PLUGIN" -o device=can bench >/dev/null
  start=$(date +%s)
  NET=bench run_members "$2"
  echo "$2 containers attached in $(($(date +%s) - start)) s; $(gw_rules | wc -l) gateway rules"
  local before
  before=$(rss)
  measure "$1 $2 burst" bench-1 can0 bench-2 can0 "$BURST"
  measure "$1 $2 paced" bench-1 can0 bench-2 can0 "$PACED" "$RATE"
  echo "the daemon's memory (VmRSS): $before before the runs, $(rss) after"
  docker rm -f $(docker ps -aq --filter name=bench-) >/dev/null
  docker network rm bench >/dev/null
}

for n in ${VXBUS_BENCH_SIZES:-2 10 50}; do
  step "vxbus: $n members"
  bus_runs vxbus "$n"
done

step "the cost of the bus load: one 10-member bus, the load meter on and off in turn, twice"
# The plugin restarts in between (disable -f, set, enable): the bus and its containers stay.
load_meter() { # on|off
  docker plugin disable -f "$PLUGIN" >/dev/null
  docker plugin set "$PLUGIN" VXBUS_BUS_LOAD="$1"
  docker plugin enable "$PLUGIN" >/dev/null
}
on_exit "load_meter on"
docker network create -d "$PLUGIN" -o device=can bench >/dev/null
NET=bench run_members 10
for round in 1 2; do
  for meter in on off; do
    load_meter "$meter"
    echo "round $round, bus load $meter: the daemon's memory (VmRSS) $(rss) before"
    measure "vxbus-load-$meter 10 burst" bench-1 can0 bench-2 can0 "$BURST"
    measure "vxbus-load-$meter 10 paced" bench-1 can0 bench-2 can0 "$PACED" "$RATE"
    echo "round $round, bus load $meter: the daemon's memory (VmRSS) $(rss) after"
  done
done
load_meter on
docker rm -f $(docker ps -aq --filter name=bench-) >/dev/null
docker network rm bench >/dev/null

step "docker run time: --network none against a vxbus network"
docker network create -d "$PLUGIN" bench >/dev/null
declare -A took
for net in none bench; do
  times=()
  for _ in 1 2 3 4 5; do
    t0=$(date +%s%N)
    docker run --rm --network "$net" "$TEST_IMAGE" true
    times+=($((($(date +%s%N) - t0) / 1000000)))
  done
  took[$net]=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 3p)
  echo "docker run --network $net: ${times[*]} ms (median ${took[$net]} ms)"
done
docker network rm bench >/dev/null

step "results"
floor() { field "$1" "$(grep -P "^floor $2\t" "$results" | cut -f3)"; } # floor FIELD burst|paced
echo
echo "| run | members | received/sent | frames/s (receiver) | vs floor (same run kind) | p50 µs | p99 µs | p99 vs floor | lost | duplicates | reordered |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
while IFS=$'\t' read -r label sent got; do
  members=2
  [[ $label == vxbus* ]] && members=$(cut -d' ' -f2 <<<"$label")
  fps=$(field fps "$got") p99=$(field p99_us "$got") mode=${label##* }
  floor_fps=$(floor fps "$mode") floor_p99=$(floor p99_us "$mode")
  printf '| %s | %s | %s/%s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$members" \
    "$(field received "$got")" "$(field sent "$sent")" "$fps" \
    "$(awk -v a="$fps" -v b="$floor_fps" 'BEGIN { printf "%.0f%%", b ? 100 * a / b : 0 }')" \
    "$(field p50_us "$got")" "$p99" \
    "$(awk -v a="$p99" -v b="$floor_p99" 'BEGIN { printf "%.2fx", b ? a / b : 0 }')" \
    "$(field lost "$got")" "$(field duplicates "$got")" "$(field reordered "$got")"
done <"$results"
echo
echo "Deliveries per sent frame grow as members − 1 (every other member gets a copy): at n members"
echo "the kernel makes n − 1 copies of each frame, so the receiver's rate above is 1/(n − 1) of the"
echo "bus's total deliveries per second; the paced rows show whether $RATE frames/s still arrive whole."
echo "The vxbus rows run with the bus load on (the default: a socket weighs every frame); the"
echo "vxbus-load-on and -off rows are one 10-member bus with it on and off in turn, twice."
echo "docker run (median of 5): --network none ${took[none]} ms, vxbus ${took[bench]} ms"
