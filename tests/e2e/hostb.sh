# A second Docker host inside the VM, for the scenarios about buses across hosts (sourced after
# lib.sh). Host B is the network namespace `hostb`, joined to this one (host A) by a veth pair:
# $A_IP here, $B_IP there. It runs its own containerd and dockerd (their own roots, sockets and a
# private /run/docker for plugin sockets) and its own vxbus plugin, whose state directory is
# $B_STATE. `b ARGS...` is the docker CLI of host B; `in_b CMD...` runs a command in its network.
# hostb_start makes it all (about 30 s under emulation) and registers hostb_stop, which takes
# everything away again.
# shellcheck shell=bash

A_IP=10.99.0.1 B_IP=10.99.0.2
B_SOCK=/run/docker-b.sock B_STATE=/var/lib/vxbus-b
B_HOST=unix://$B_SOCK
b() { docker -H "$B_HOST" "$@"; }
in_b() { ip netns exec hostb "$@"; }

hostb_start() {
  on_exit hostb_stop
  ip netns add hostb
  ip link add vxt-a type veth peer name vxt-b netns hostb
  ip addr add "$A_IP/24" dev vxt-a && ip link set vxt-a up
  in_b ip addr add "$B_IP/24" dev vxt-b
  in_b ip link set vxt-b up && in_b ip link set lo up
  mkdir -p /var/lib/docker-b /var/lib/containerd-b "$B_STATE" /run/vxbus-b/plugins
  mount -t tmpfs tmpfs /var/lib/docker-b && mount -t tmpfs tmpfs /var/lib/containerd-b
  # Host B's processes get a mount namespace of their own, so that the tmpfs on /run/docker (where
  # dockerd puts managed plugins' sockets) is theirs alone. Not `ip netns exec`: it mounts a new
  # /sys, which hides the cgroup hierarchy dockerd needs.
  # shellcheck disable=SC2016 # expanded by the inner shell
  nsenter --net=/run/netns/hostb unshare --mount --propagation slave \
    bash -c 'mkdir -p /run/docker && mount -t tmpfs tmpfs /run/docker
    setsid containerd --address /run/containerd-b/containerd.sock --root /var/lib/containerd-b \
      --state /run/containerd-b >"$1/containerd-b.log" 2>&1 </dev/null &
    setsid dockerd -H "$2" --data-root /var/lib/docker-b --exec-root /run/docker-b \
      --pidfile /run/docker-b.pid --containerd /run/containerd-b/containerd.sock \
      --iptables=false --ip6tables=false --bridge=none >"$1/dockerd-b.log" 2>&1 </dev/null &' \
    _ "$VXBUS_OUT" "$B_HOST"
  local deadline=$((SECONDS + 120))
  until b version >/dev/null 2>&1; do
    if ((SECONDS > deadline)) || ! pgrep -f "dockerd -H $B_HOST" >/dev/null; then
      tail -n 5 "$VXBUS_OUT/dockerd-b.log" | sed 's/^/  | /' >&2
      fail "host B's dockerd did not answer within 120 s (dockerd-b.log)"
    fi
    sleep 0.5
  done
  b import "$VXBUS_REPO/target/vm/testimage.tar" "$TEST_IMAGE" >/dev/null
  b plugin create "$PLUGIN" "$VXBUS_REPO/build/plugin" >/dev/null
  b plugin set "$PLUGIN" state.source="$B_STATE" plugins.source=/run/vxbus-b/plugins
  b plugin enable "$PLUGIN" >/dev/null
}

hostb_stop() {
  local pid _
  if pid=$(cat /run/docker-b.pid 2>/dev/null); then
    b rm -f $(b ps -aq) >/dev/null 2>&1 || true
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f /run/docker-b.pid
  fi
  pkill -TERM -f 'containerd --address /run/containerd-b/' || true
  for _ in $(seq 20); do pgrep -f 'containerd --address /run/containerd-b/' >/dev/null || break; sleep 0.5; done
  pkill -KILL -f 'containerd --address /run/containerd-b/' || true
  ip netns del hostb 2>/dev/null || true
  ip link del vxt-a 2>/dev/null || true
  umount /var/lib/docker-b /var/lib/containerd-b 2>/dev/null || true
  rm -rf /var/lib/docker-b /var/lib/containerd-b "$B_STATE" /run/vxbus-b /run/docker-b /run/containerd-b
}

# What vxbus made on host B, to prove it left nothing: links, rules, state entries.
b_left() {
  in_b ip -o link show | grep -oE 'vxb[hcn][0-9a-f]{10}' | sort -u || true
  in_b cangw -L 2>/dev/null | grep '^cangw -A' || true
  jq -r '"\(.networks | length) network(s)"' "$B_STATE/state.json"
}
