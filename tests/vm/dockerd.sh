# Starting and stopping the guest's dockerd, the same way for the harness (tests/vm/guest) and
# for scenarios that restart it (tests/e2e/lib.sh). Sourced; needs $VXBUS_OUT (logs directory).
# shellcheck shell=bash

# start_dockerd: starts dockerd (output appended to $VXBUS_OUT/dockerd.log) and waits until it
# answers; returns non-zero if it does not within 120 s.
start_dockerd() {
  # No iptables in the guest, and no default bridge: vxbus networks are what the tests are about.
  setsid dockerd --iptables=false --ip6tables=false --bridge=none \
    --containerd=/run/containerd/containerd.sock >>"$VXBUS_OUT/dockerd.log" 2>&1 </dev/null &
  local _
  for _ in $(seq 120); do docker version >/dev/null 2>&1 && return 0; sleep 1; done
  return 1
}

# stop_dockerd: stops dockerd cleanly (it stops containers, then disables plugins) and waits.
stop_dockerd() {
  local pid _
  pid=$(pgrep -x dockerd) || return 0
  kill -TERM "$pid"
  for _ in $(seq 60); do pgrep -x dockerd >/dev/null || return 0; sleep 1; done
  return 1
}
