#!/usr/bin/env bash
# `make bench-tunnel`, run in the VM by tests/vm/guest. Prints figures, asserts nothing about speed.
#
# Two hosts are two network namespaces joined by a veth pair (10.98.0.1 and .2), each with a vcan
# as its bus; `tunnelrun` (crates/tunnel/examples) runs vxbus's tunnel on each, the same code the
# daemon runs for a bus. canbench (crates/dataplane/examples) sends on host A's bus, paced at
# 1,000, 5,000 and 10,000 frames/s and as a burst, and receives on host B's: frames/s, one-way
# latency (both namespaces share CLOCK_MONOTONIC, so it is measured exactly) and loss, for UDP
# and TCP. Beside vxbus's rows:
# - cannelloni's batching: cannelloni holds frames up to its timeout (100 ms by default) to fill
#   a datagram. The cannelloni program is not available here, so that row is vxbus's tunnel
#   with tunnel.batch_delay=100ms, which batches the same way: an emulation, named as one.
# - can-cannelloni (PyPI), an independent cannelloni end in Python, as the TCP receiver on host B.
# - the floor: canbench to canbench on one vcan, no tunnel, for what the VM alone costs.
# Paced runs send at least MIN_FRAMES; each transport has a warm-up run first, left out.
# Figures from a VM under software emulation: compare the rows with each other, not with
# hardware.
source "$VXBUS_REPO/tests/e2e/lib.sh"

run=$VXBUS_REPO/target/release/examples/tunnelrun
canbench=$VXBUS_REPO/target/release/examples/canbench
peer=$VXBUS_REPO/tests/e2e/cannelloni.py
SECONDS_PER_RUN=${VXBUS_BENCH_SECONDS:-3} BURST=${VXBUS_BENCH_BURST:-20000}
# A paced run sends at least this many frames (10 s at 1,000/s): its p99 is then the 100th
# slowest, so that one stall of the emulated VM (tens of ms, tens of frames) is not all of it.
MIN_FRAMES=10000
paced_count() { local count=$(($1 * SECONDS_PER_RUN)); echo $((count < MIN_FRAMES ? MIN_FRAMES : count)); }
A=10.98.0.1 B=10.98.0.2
results=$(mktemp) work=$(mktemp -d)

cleanup() {
  pkill -f "^$run " || true
  pkill -f "$peer bench-recv" || true
  ip netns del tb 2>/dev/null || true
  ip link del tb-a 2>/dev/null || true
  ip link del tba 2>/dev/null || true
}
on_exit cleanup
ip netns add tb
ip link add tb-a type veth peer name tb-b netns tb
ip addr add $A/24 dev tb-a && ip link set tb-a up
ip -n tb addr add $B/24 dev tb-b && ip -n tb link set tb-b up && ip -n tb link set lo up
ip link add tba type vcan && ip link set tba up
ip -n tb link add tbb type vcan && ip -n tb link set tbb up

# start_end NAME NETNS|- TUNNELRUN-ARGS...: a tunnel end, returning once it listens.
start_end() {
  local name=$1 ns=$2
  shift 2
  local cmd=("$run" "$@")
  [[ $ns == - ]] || cmd=(ip netns exec "$ns" "${cmd[@]}")
  "${cmd[@]}" >"$work/$name" 2>&1 &
  wait_until 30 "tunnelrun $name ready" grep -q ready "$work/$name"
}
no_ends() { ! pgrep -f "^$run " >/dev/null; } # (anchored: no shell whose command line names it)
stop_ends() {
  pkill -TERM -f "^$run " || true
  wait_until 10 "the tunnel ends to stop" no_ends
}

# measure LABEL FAR-END TRANSPORT BATCH RATE|burst: one run, with fresh tunnels; appends a line.
measure() {
  local label=$1 far=$2 transport=$3 batch=$4 rate=$5 count out sent
  count=$BURST
  [[ $rate == burst ]] || count=$(paced_count "$rate")
  if [[ $transport == udp ]]; then
    start_end near - tba udp $A:21000 $B:21000 - "$batch"
    start_end far tb tbb udp $B:21000 $A:21000 - "$batch"
  else
    start_end near - tba tcp $A:21000 - - "$batch"
    [[ $far == can-cannelloni ]] || start_end far tb tbb tcp - $A:21000 - "$batch"
  fi
  out=$work/recv
  if [[ $far == can-cannelloni ]]; then
    ip netns exec tb python3 "$peer" bench-recv $A:21000 "$count" >"$out" 2>&1 &
  else
    ip netns exec tb "$canbench" recv tbb "$count" >"$out" 2>&1 &
  fi
  local receiver=$!
  wait_until 60 "the receiver ready" grep -q ready "$out"
  sleep 1 # a TCP end connects with backoff; a UDP one needs nothing
  sent=$("$canbench" send tba "$count" $([[ $rate == burst ]] || echo "$rate"))
  wait "$receiver" || fail "the receiver failed: $(cat "$out")"
  stop_ends
  [[ -n $label ]] || return 0
  printf '%s\t%s\t%s\t%s\t%s\n' "$label" "$far" "$rate" "$sent" "$(grep received= "$out")" | tee -a "$results"
}
# warm_up TRANSPORT: a run left out of the table. Software emulation translates code the first
# time it runs (the tunnel's, and the kernel's UDP or TCP path), which shows as a tail in
# whichever row comes first.
warm_up() { MIN_FRAMES=0 measure "" vxbus "$1" 0 1000; }
# floor RATE: canbench to canbench on host A's vcan, no tunnel at all: what the emulated kernel
# and scheduler alone cost, the floor under every tunnel row.
floor() {
  local rate=$1 count out=$work/recv sent
  count=$(paced_count "$rate")
  "$canbench" recv tba "$count" >"$out" 2>&1 &
  local receiver=$!
  wait_until 60 "the receiver ready" grep -q ready "$out"
  sent=$("$canbench" send tba "$count" "$rate")
  wait "$receiver" || fail "the receiver failed: $(cat "$out")"
  printf '%s\t%s\t%s\t%s\t%s\n' "floor: no tunnel (one vcan)" "-" "$rate" "$sent" "$(grep received= "$out")" | tee -a "$results"
}
field() { grep -o "$1=[0-9.]*" <<<"$2" | cut -d= -f2; } # field NAME LINE

for rate in 1000 10000; do
  step "floor: no tunnel, $rate"
  floor "$rate"
done
for transport in udp tcp; do
  step "vxbus $transport, a warm-up run (not in the table)"
  warm_up "$transport"
  for rate in 1000 5000 10000 burst; do
    step "vxbus $transport, $rate"
    measure "vxbus $transport" vxbus "$transport" 0 "$rate"
  done
done
step "cannelloni's batching (emulated: vxbus with tunnel.batch_delay=100ms), udp, 1000"
measure "udp, frames held up to 100 ms (cannelloni's default, emulated)" vxbus udp 100ms 1000
for rate in 1000 5000; do
  step "can-cannelloni (PyPI) receiving from vxbus tcp, $rate"
  measure "vxbus tcp → can-cannelloni" can-cannelloni tcp 0 "$rate"
done

step "results"
echo
echo "| run | receiver | rate (frames/s) | received/sent | lost | frames/s (receiver) | p50 µs | p99 µs | max µs |"
echo "|---|---|---|---|---|---|---|---|---|"
while IFS=$'\t' read -r label far rate sent got; do
  printf '| %s | %s | %s | %s/%s | %s | %s | %s | %s | %s |\n' "$label" "$far" "$rate" \
    "$(field received "$got")" "$(field sent "$sent")" "$(field lost "$got")" "$(field fps "$got")" \
    "$(field p50_us "$got")" "$(field p99_us "$got")" "$(field max_us "$got")"
done <"$results"
