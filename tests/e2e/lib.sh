# Helpers for e2e scenarios (sourced by each tests/e2e/NN-name.sh; they run as root in the VM).
#
# A scenario is a bash script that exits 0 when what it proves holds. It gets:
#   PLUGIN (the managed plugin's full name, vxbus:latest: `-d` needs the tag), TEST_IMAGE (busybox + can-utils),
#   VXBUS_OUT (the logs directory; dockerd.log holds the plugin's output), VXBUS_REPO.
# It must leave the engine as it found it (the plugin enabled, no containers or networks);
# register cleanups with on_exit (or on_failure). The harness restores that state anyway and says
# so in its log.
# shellcheck shell=bash
set -Eeuo pipefail

# VXBUS_TRACE=1 (make e2e TRACE=1): every command the scenario runs, with the time it started, goes
# to scenarios/NAME.trace; tests/vm/profile reads those and says where each scenario's time went.
if [[ ${VXBUS_TRACE:-0} != 0 ]]; then
  exec {_trace_fd}>"$VXBUS_OUT/scenarios/${VXBUS_SCENARIO:-scenario}.trace"
  BASH_XTRACEFD=$_trace_fd
  PS4='+ $EPOCHREALTIME ${BASH_SOURCE[0]##*/}:$LINENO '
  set -x
fi

fail() { echo "FAIL: $*" >&2; exit 1; }
# Whether this run is on the newest engine (tests/vm/run's VXBUS_ENGINE): a scenario of both engines
# proves what does not depend on the engine on the newest only.
newest_engine() { [[ ${VXBUS_ENGINE:-newest} == newest ]]; }
step() { echo "--- $*"; }
ok() { echo "ok: $*"; }

# Cleanups run at exit, last registered first. on_exit's always run; on_failure's only when the
# scenario failed: for what its own last steps remove when it passes (containers, networks),
# since each docker call takes a second under emulation and the harness checks for leftovers.
_cleanups=()
on_exit() { _cleanups+=("always $*"); }
on_failure() { _cleanups+=("failed $*"); }
_run_cleanups() {
  local rc=$? i
  for ((i = ${#_cleanups[@]} - 1; i >= 0; i--)); do
    [[ ${_cleanups[i]} == always* || $rc != 0 ]] || continue
    eval "${_cleanups[i]#* }" >/dev/null 2>&1 || true
  done
}
trap _run_cleanups EXIT
# The harness's timeout sends SIGTERM: exit with a failing status, so on_failure's cleanups run.
trap 'exit 143' TERM
trap 'exit 130' INT
# A command that fails outside the expect_* helpers ends the scenario (set -e): say which, and where.
trap 'echo "FAIL: \`$BASH_COMMAND\` exited $? (${BASH_SOURCE[0]##*/} line $LINENO)" >&2' ERR

expect_contains() { # TEXT NEEDLE [WHAT]
  [[ $1 == *"$2"* ]] || fail "${3:-output}: expected to contain '$2', got:"$'\n'"$1"
}
expect_not_contains() { # TEXT NEEDLE [WHAT]
  [[ $1 != *"$2"* ]] || fail "${3:-output}: expected not to contain '$2', got:"$'\n'"$1"
}
expect_eq() { # ACTUAL EXPECTED [WHAT]
  [[ $1 == "$2" ]] || fail "${3:-value}: expected '$2', got '$1'"
}

wait_until() { # SECONDS WHAT COMMAND...: polls COMMAND every 0.2 s (a slow COMMAND, less often)
  local seconds=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "$what: not within ${seconds} s"
    sleep 0.2
  done
}

# dockerd's log, where the plugin's stdout and stderr land. Take a mark before an action and
# read what was logged since, so a scenario checks the lines its own action caused.
log_mark() { wc -l <"$VXBUS_OUT/dockerd.log"; }
log_since() { tail -n +"$(($1 + 1))" "$VXBUS_OUT/dockerd.log"; }
wait_logged() { # MARK PATTERN [SECONDS]: a line matching PATTERN (grep's basic regex) is logged after MARK
  local mark=$1 pattern=$2 seconds=${3:-30}
  # shellcheck disable=SC2016 # expanded by the inner shell
  (wait_until "$seconds" "a line matching '$pattern' in dockerd's log" \
    bash -c 'tail -n +"$(($1 + 1))" "$VXBUS_OUT/dockerd.log" | grep -q -- "$2"' _ "$mark" "$pattern") 2>/dev/null && return 0
  echo "vxbus logged since the mark (last 25 lines):" >&2
  log_since "$mark" | grep -o 'msg="[0-9T:.-]*Z .*' | cut -c6-300 | tail -n 25 | sed 's/^/  | /' >&2
  fail "a line matching '$pattern' in dockerd's log: not within $seconds s"
}

plugin_enabled() { [[ $(docker plugin inspect -f '{{.Enabled}}' "$PLUGIN") == true ]]; }
plugin_socket() { echo "/run/docker/plugins/$(docker plugin inspect -f '{{.Id}}' "$PLUGIN")/vxbus.sock"; }
plugin_call() { # PATH [BODY]: posts to the plugin's socket as Docker would
  curl -sS --unix-socket "$(plugin_socket)" -X POST "http://plugin/$1" -d "${2:-}"
}
daemon_running() { pgrep -x vxbus >/dev/null; }
expect_enable_fails() { # PLUGIN: `docker plugin enable` fails, as when the daemon refuses to start
  local out
  if out=$(timeout 120 docker plugin enable "$1" 2>&1); then
    fail "docker plugin enable $1 succeeded: $out"
  fi
  echo "docker plugin enable failed, as it should: $out"
}

# A CAN socket is bound to IFACE (in the network namespace of PID, when given): the kernel lists
# it in /proc/net/can/rcvlist_all. Start a listener, wait for this, then send.
can_listener_on() { # IFACE [PID]
  local iface=$1 pid=${2:-}
  local read=(cat /proc/net/can/rcvlist_all)
  [[ -z $pid ]] || read=(nsenter -t "$pid" -n "${read[@]}")
  "${read[@]}" | grep -Eq "^[[:space:]]+$iface[[:space:]]+[0-9A-Fa-f]+[[:space:]]"
}
# container_pid CONTAINER: its PID 1 as the host sees it. Looked up once per container (a docker
# inspect takes a second under emulation) and kept with the process's start time, which tells a
# PID that still belongs to it from one its restart left behind. known_pids CONTAINER... looks up
# every one not kept yet in a single docker inspect.
_pids=$(mktemp -d)
_start_time() { # PID: the process's start time (field 22 of its stat; the name before it may hold spaces)
  local stat fields
  { stat=$(<"/proc/$1/stat"); } 2>/dev/null || return 1
  read -r -a fields <<<"${stat##*) }"
  echo "${fields[19]}"
}
_kept_pid() { # CONTAINER: prints the kept PID if it is still the container's process
  local pid start
  read -r pid start 2>/dev/null <"$_pids/$1" || return 1
  [[ -n $start && $(_start_time "$pid") == "$start" ]] && echo "$pid"
}
known_pids() { # CONTAINER... (by name)
  local c name pid start unknown=()
  for c in "$@"; do _kept_pid "$c" >/dev/null || unknown+=("$c"); done
  ((${#unknown[@]})) || return 0
  while read -r name pid; do
    [[ $pid =~ ^[1-9][0-9]*$ ]] && start=$(_start_time "$pid") ||
      fail "container ${name#/} has no running process (PID '$pid')"
    echo "$pid $start" >"$_pids/${name#/}"
  done < <(docker inspect -f '{{.Name}} {{.State.Pid}}' "${unknown[@]}")
}
container_pid() {
  _kept_pid "$1" || { known_pids "$1" && _kept_pid "$1"; } || fail "no PID for container $1"
}
# run_containers NETWORK NAME... [-- DOCKER-RUN-OPTION...]: starts a test container per NAME on
# NETWORK, all at once (each `docker run` takes seconds under emulation, mostly waiting), and
# returns when all run; fails naming any that did not start.
run_containers() {
  local network=$1 name pids=() names=()
  shift
  while (($#)) && [[ $1 != -- ]]; do names+=("$1"); shift; done
  (($#)) && shift
  for name in "${names[@]}"; do
    # A shell that exits on SIGTERM: a container whose PID 1 is sleep ignores it, and every
    # `docker stop` or dockerd shutdown then waits 10 s before it kills.
    docker run -d --name "$name" --network "$network" "$@" "$TEST_IMAGE" \
      sh -c 'trap "exit 0" TERM; sleep 3600 & wait' >/dev/null &
    pids+=($!)
  done
  local i failed=()
  for i in "${!pids[@]}"; do wait "${pids[i]}" || failed+=("${names[i]}"); done
  ((${#failed[@]} == 0)) || fail "docker run on $network failed for: ${failed[*]}"
}

# candump_start IFACE COUNT [CONTAINER]: candump on IFACE (inside CONTAINER when given) until COUNT
# frames, each printed as it arrives and kept in $CAN_DUMP; returns once the socket is bound.
candump_start() {
  local iface=$1 count=$2 container=${3:-} pid="" bound=20
  local run=(candump -t z -n "$count" -T 20000 "$iface")
  if [[ -n $container ]]; then
    run=(docker exec "$container" "${run[@]}") pid=$(container_pid "$container") bound=30
  fi
  CAN_DUMP=$(mktemp)
  "${run[@]}" > >(tee "$CAN_DUMP" | sed -u "s/^/  ${container:-host} received: /") &
  CAN_LISTENER=$!
  wait_until "$bound" "candump bound on $iface${container:+ in $container}" can_listener_on "$iface" $pid
}
# candump_expect COUNT: the listener ended without error, having received exactly COUNT frames.
candump_expect() {
  wait "$CAN_LISTENER" || fail "candump ended with an error: $(cat "$CAN_DUMP")"
  sleep 0.2 # let the printer drain
  local got
  got=$(grep -c . "$CAN_DUMP")
  ((got == $1)) || fail "candump received $got frames, not $1:"$'\n'"$(cat "$CAN_DUMP")"
}

# in_netns CONTAINER COMMAND...: runs COMMAND (the VM's own binaries) in CONTAINER's network
# namespace, where its CAN interfaces are. A `docker exec` takes one to two seconds under
# emulation; this takes milliseconds and reaches the same sockets of the same kernel. Scenarios use
# `docker exec` where what a user runs inside a container is the point (10, 70, 96) and this for
# the rest of their traffic.
in_netns() {
  local pid
  pid=$(container_pid "$1")
  shift
  nsenter -t "$pid" -n "$@"
}
# send_in CONTAINER CLASSIC FD IFACE: sends `frames CLASSIC FD` on IFACE in CONTAINER's namespace.
send_in() { in_netns "$1" sh -c "$(send_frames "$2" "$3" "$4")"; }

# listen NAME IFACE [CONTAINER]: records every frame on IFACE (in CONTAINER's network namespace
# when given, see in_netns), in candump's log format; returns once its socket is bound. Several
# listeners may run at once; `heard NAME` ends one once no frame has come for 3 s and prints what
# it got. listeners NAME:IFACE[:CONTAINER]...: the same for several, started together, returning
# once every socket is bound.
_dumps=$(mktemp -d) _listeners=0
listen() { listeners "$1:$2${3:+:$3}"; }
listeners() {
  local spec name iface container pid waits=() containers=() run tag
  for spec in "$@"; do
    IFS=: read -r name iface container <<<"$spec"
    [[ -z $container ]] || containers+=("$container")
  done
  ((${#containers[@]} == 0)) || known_pids "${containers[@]}" # one docker inspect for all
  for spec in "$@"; do
    IFS=: read -r name iface container <<<"$spec"
    # candump's -T (give up after this many ms without a frame) is a safety net of ten minutes and
    # differs per listener, so `heard` can find the process and stop it.
    _listeners=$((_listeners + 1))
    tag="candump -L -T $((600000 + _listeners)) $iface"
    run=($tag) pid=""
    [[ -z $container ]] || { pid=$(container_pid "$container") && run=(nsenter -t "$pid" -n "${run[@]}"); }
    rm -f "$_dumps/$name" "$_dumps/$name.done"
    echo "$tag" >"$_dumps/$name.tag"
    { "${run[@]}" >"$_dumps/$name" 2>&1 || true; touch "$_dumps/$name.done"; } 2>/dev/null &  # no "Terminated" noise
    waits+=("$name $iface $pid")
  done
  for spec in "${waits[@]}"; do
    read -r name iface pid <<<"$spec"
    wait_until 20 "candump ($name) bound on $iface${pid:+ in the namespace of PID $pid}" can_listener_on "$iface" $pid
  done
}
# heard NAME [COUNT]: stops listener NAME and prints the frames it got (ID#DATA), in order. Call
# it after the sender is done. Without COUNT it waits until no frame has come for 3 s (and at least
# 1 s); with COUNT, until COUNT frames came (or none for 3 s, and at least 1 s), then 0.5 s more
# for any frame too many: a duplicate from a loop follows its original within milliseconds (one
# later than that is missed). Listeners collected one after another share their quiet time.
heard() {
  local file=$_dumps/$1 want=${2:-0}
  if ((want > 0)); then
    local since=$SECONDS
    while (($(grep -c . "$file") < want)) &&
      ((SECONDS - since < 1 || $(date +%s) - $(stat -c %Y "$file") < 3)); do sleep 0.2; done
    sleep 0.5
  else
    sleep 1
    while (($(date +%s) - $(stat -c %Y "$file") < 3)); do sleep 0.5; done
  fi
  pkill -f -- "$(cat "$file.tag")" || true
  wait_until 30 "candump ($1) to end" test -e "$file.done"
  awk '{print $3}' "$file"
}
# expect_frames NAME EXPECTED: listener NAME got exactly the frames EXPECTED (one per line): each
# once, in this order, data intact.
expect_frames() {
  local got
  got=$(heard "$1" "$(grep -c . <<<"$2")")
  if [[ $got != "$2" ]]; then
    echo "candump ($1) printed:" >&2
    head -20 "$_dumps/$1" >&2
    diff <(echo "$2") <(echo "$got") | head -20 >&2 || true
    fail "$1 did not get exactly the frames sent (diff: expected < > got): $(grep -c . <<<"$got") frames"
  fi
  echo "ok: $1 got all $(grep -c . <<<"$got") frames once each, in order"
}

# `frames N M` prints N classic frames 123#iiii and M FD frames 1A0##4 (flags: FDF, which the
# kernel sets on every FD frame) with 16 bytes of i, as candump -L prints them; `send_frames N M
# IFACE` prints a busybox sh script that sends them on IFACE (run it with `docker exec C sh -c`,
# or `sh -c` on the host).
frames() {
  local i
  for ((i = 0; i < $1; i++)); do printf '123#%02X%02X\n' "$i" "$i"; done
  for ((i = 0; i < ${2:-0}; i++)); do printf '1A0##4%s\n' "$(printf '%02X' $(for _ in $(seq 16); do echo "$i"; done))"; done
}
send_frames() { # CLASSIC FD IFACE: prints a sh script that sends `frames CLASSIC FD` on IFACE
  echo "for f in $(frames "$1" "$2" | tr '\n' ' '); do cansend $3 \$f || exit 1; done"
}

# The LIN description (tests/e2e/lin/body.ldf) where the managed plugin can read it: its
# /var/lib/vxbus is the host's. LIN_DIR goes at exit.
LIN_DIR=/var/lib/vxbus/lin
LIN_LDF=$LIN_DIR/body.ldf
install_lin_ldf() {
  mkdir -p "$LIN_DIR" && cp "$VXBUS_REPO/tests/e2e/lin/body.ldf" "$LIN_LDF"
  on_exit "rm -rf $LIN_DIR"
}

# What vxbus owns in the kernel and on disk, to prove nothing is left behind.
vxbus_links() { ip -o link show | grep -oE 'vxb[hcn][0-9a-f]{10}' | sort -u || true; } # vxcan ends, plugin vcans
gw_rules() { cangw -L 2>/dev/null | grep '^cangw -A' || true; } # can-utils 2020.11 exits non-zero
state_summary() { # networks and endpoints in vxbus's state file
  jq -r '"\(.networks | length) network(s), \([.networks[].endpoints | length] | add // 0) endpoint(s)"' \
    /var/lib/vxbus/state.json
}
expect_nothing_left() { # WHAT: no vxcan pairs, gateway rules or state entries of vxbus remain
  expect_eq "$(vxbus_links)" "" "vxcan links left after $1"
  expect_eq "$(gw_rules)" "" "gateway rules left after $1"
  expect_eq "$(state_summary)" "0 network(s), 0 endpoint(s)" "state entries after $1"
  ok "nothing left after $1"
}
host_snapshot() { # every link on the host, every gateway rule (without its counters), vxbus's state summary
  ip -o link show | awk -F': ' '{print $2}'
  gw_rules | sed 's/ *#.*//'
  state_summary
}
# The interfaces in CONTAINER's network namespace, by name, space-separated.
container_links() {
  in_netns "$1" ip -o link show | awk -F': ' '{sub(/@.*/, "", $2); print $2}' | sort | xargs
}

source "$VXBUS_REPO/tests/vm/dockerd.sh"
restart_dockerd() { # stops dockerd cleanly and starts it again, as `systemctl restart docker` does
  stop_dockerd || fail "dockerd did not stop within 60 s"
  start_dockerd || fail "dockerd did not answer within 120 s after a restart"
}
