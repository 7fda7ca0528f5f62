#!/usr/bin/env bash
# One bus on two Docker hosts, joined by vxbus's tunnel in cannelloni's format, with plain
# cannelloni ends on it. Host B is a second dockerd with its own vxbus in a network namespace of
# the VM (hostb.sh), 10.99.0.2 across a veth from host A's 10.99.0.1.
# - UDP: a container on each host and a UDP cannelloni leaf on A: every frame (classic, FD) reaches
#   every other member exactly once, in order, never back to its sender; a stranger's datagram is
#   dropped and counted; the counters match what was sent; datagrams between the hosts are
#   sealed (tunnel.key), the leaf's plain; a leaf added with `vxbus tunnel` is recorded in the
#   state, and removed again; a port in use and a missing key file are refused at create.
# - TCP (fd=false): host B connects to A, sealed (tunnel.key), and so do two clients of
#   can-cannelloni (the python-can backend from PyPI), plain: one port, many clients. A's daemon is killed; dockerd restarts it, the
#   tunnels come back from the state: B and the clients connect again by themselves, and the
#   sealed UDP bus resumes.
# - Swarm: with the hosts in a Swarm, a `--scope swarm --config-from` network whose config-only
#   network says the same on each node (`tunnel.peers=swarm`, no address) is one bus across the
#   Swarm: each node's tunnel has the other node as its peer, from Docker's node notifications,
#   and a global service's tasks share the bus, also after A's daemon is killed (the nodes come
#   back from the state).
# - Removing the networks leaves no socket, link, rule or state entry on either host.
# engines: newest
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/hostb.sh"
vxbus=$VXBUS_REPO/target/release/vxbus
peer=$VXBUS_REPO/tests/e2e/cannelloni.py
work=$(mktemp -d)
on_exit "pkill -f $peer; rm -rf $work"

step "host B: a second Docker host with its own vxbus"
hostb_start

step "UDP: bus 'body' on both hosts, sealed between them (tunnel.key), a container on each, a cannelloni leaf on A"
mkdir -p /var/lib/vxbus/keys "$B_STATE/keys"
on_exit "rm -rf /var/lib/vxbus/keys"
(umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >/var/lib/vxbus/keys/body.key)
cp /var/lib/vxbus/keys/body.key "$B_STATE/keys/"
# The path is the one the plugin sees: each host's state directory is its /var/lib/vxbus.
key=/var/lib/vxbus/keys/body.key
docker network create -d "$PLUGIN" -o tunnel.listen=$A_IP:20000 -o tunnel.peers=$B_IP:20000 \
  -o tunnel.leaves=$A_IP:20001 -o tunnel.key=$key body >/dev/null
on_failure docker network rm body
b network create -d "$PLUGIN" -o tunnel.listen=$B_IP:20000 -o tunnel.peers=$A_IP:20000 \
  -o tunnel.key=$key body >/dev/null
run_containers body ecu-a &
started_a=$!
DOCKER_HOST=$B_HOST run_containers body ecu-b
wait "$started_a" || fail "ecu-a did not start"
on_failure docker rm -f ecu-a
python3 "$peer" udp $A_IP:20001 $A_IP:20000 "$work/leaf" &
listeners a:can0:ecu-a
DOCKER_HOST=$B_HOST listeners b:can0:ecu-b
wait_until 20 "the leaf to listen" test -e "$work/leaf.ready"

at_least() { # FILE N: FILE has N lines or more
  [[ -e $1 ]] && (($(wc -l <"$1") >= $2))
}
from_b=$'200#B0\n201#B1B1\n2A0##4B2B2B2B2B2B2B2B2B2B2B2B2'
from_leaf=$'300#1E\n3A0##51E1E1E1E1E1E1E1E'
send_in ecu-a 3 2 can0
wait_until 20 "the leaf to get A's 5 frames" at_least "$work/leaf" 5
b exec ecu-b sh -c "for f in $(tr '\n' ' ' <<<"$from_b"); do cansend can0 \$f; done"
wait_until 20 "the leaf to get B's 3 frames" at_least "$work/leaf" 8
send_later() { echo "$2" >"$1.tmp" && mv "$1.tmp" "$1"; } # FILE TEXT: whole, for a poller
send_later "$work/leaf.send" "$from_leaf"
# A stranger sends from a port that is no peer's.
python3 "$peer" send-from $A_IP:20009 $A_IP:20000 '7FF#FF'
expect_frames a "$(frames 3 2)"$'\n'"$from_b"$'\n'"$from_leaf"
DOCKER_HOST=$B_HOST expect_frames b "$(frames 3 2)"$'\n'"$from_b"$'\n'"$from_leaf"
sleep 0.5
expect_eq "$(cat "$work/leaf")" "$(frames 3 2)"$'\n'"$from_b" "what the leaf got (never its own frames)"
ok "every member got every other member's frames once, in order"

step "the counters say the same (vxbus tunnel list --json, on both hosts; vxbus stats)"
a_stats=$("$vxbus" tunnel list body --json)
b_stats=$(DOCKER_HOST=$B_HOST "$vxbus" --state-dir "$B_STATE" tunnel list body --json)
far() { jq -c --arg at "$2" '.[].peers[] | select(.address == $at) | [.role, .sealed, .tx_frames, .rx_frames, .lost, .decode_errors, .auth_failures]' <<<"$1"; }
expect_eq "$(far "$a_stats" $B_IP:20000)" '["peer",true,7,3,0,0,0]' "A's counters for B (to: A's 5 + the leaf's 2; from: B's 3; sealed)"
expect_eq "$(far "$a_stats" $A_IP:20001)" '["leaf",false,8,2,0,0,0]' "A's counters for the leaf (plain)"
expect_eq "$(far "$b_stats" $A_IP:20000)" '["peer",true,3,7,0,0,0]' "B's counters for A"
expect_eq "$(jq -c '.[] | [.bus_rx_frames, .bus_tx_frames, .foreign_datagrams]' <<<"$a_stats")" '[5,5,1]' \
  "A's bus counters (read 5 from the bus, wrote 5 to it) and the stranger's datagram"
"$vxbus" tunnel list body | grep -qE "^  $A_IP:20001 +leaf +yes +8 +2 " ||
  fail "vxbus tunnel list shows no line for the leaf with its counters:"$'\n'"$("$vxbus" tunnel list body)"
# vxbus stats: the tunnel's host interface is the member the far ends' frames come through.
host_member() { "$vxbus" stats body --json | jq -c '.buses[].members[] | select(.kind == "host_device") | [.sent.frames, .received.frames]'; }
counted_5_5() { [[ $(host_member) == "[5,5]" ]]; }
wait_until 10 "vxbus stats on A: 5 frames from the far ends onto the bus, 5 to them" counted_5_5
expect_eq "$("$vxbus" stats body --json | jq -c '[.buses[].tunnel.peers[] | .tx_frames] | sort')" '[7,8]' \
  "vxbus stats on A: the far ends' counters"
"$vxbus" stats body

step "netem drops 30%, then all, of A's datagrams to B: B counts them lost (no restart)"
b_body() { # FIELD: of B's counters of its peer A on body
  DOCKER_HOST=$B_HOST "$vxbus" --state-dir "$B_STATE" tunnel list body --json | jq ".[].peers[0].$1"
}
modprobe sch_netem
tc qdisc add dev vxt-a root netem loss 30%
on_exit "tc qdisc del dev vxt-a root 2>/dev/null"
lost_before=$(b_body lost)
# One frame a datagram: the link is idle between cansends.
in_netns ecu-a sh -c 'i=0; while [ $i -lt 60 ]; do cansend can0 7A0#$(printf %02X $i); i=$((i + 1)); done'
tc qdisc del dev vxt-a root
sleep 1
b_after=$(DOCKER_HOST=$B_HOST "$vxbus" --state-dir "$B_STATE" tunnel list body --json | jq -c '.[].peers[0] | [.lost, .rx_frames]')
lost=$(($(jq '.[0]' <<<"$b_after") - lost_before)) got=$(($(jq '.[1]' <<<"$b_after") - 7))
echo "B counted $lost datagram(s) lost and got $got of 60 frames"
((lost > 0 && got < 60)) ||
  fail "B's counters after 30% loss: $lost lost, $got of 60 frames received"
# All of A's datagrams lost for 3 s, its keepalives (one a second when idle) with them: for a
# sealed peer (the same id throughout) the gap after the silence is loss, not a restart.
lost_before=$(b_body lost)
tc qdisc add dev vxt-a root netem loss 100%
sleep 3
tc qdisc del dev vxt-a root
lost_meanwhile() { (($(b_body lost) - lost_before >= 2)); }
wait_until 5 "B to count A's keepalives lost in the silence" lost_meanwhile
expect_eq "$(b_body restarts)" 0 "restarts B counted of A on body after A's silence"

step "vxbus tunnel add/remove: a leaf on the running bus, recorded in the state"
leaves() { jq -r '.networks[].options["tunnel.leaves"] // empty' /var/lib/vxbus/state.json; }
"$vxbus" tunnel add body $A_IP:20002 --leaf >/dev/null
expect_eq "$(leaves)" "$A_IP:20001,$A_IP:20002" "tunnel.leaves in the state after add"
added_twice=$("$vxbus" tunnel add body $A_IP:20002 --leaf 2>&1) && fail "a second add succeeded"
expect_contains "$added_twice" "already" "a second add"
"$vxbus" tunnel remove body $A_IP:20002 >/dev/null
expect_eq "$(leaves)" "$A_IP:20001" "tunnel.leaves in the state after remove"
links_before=$(vxbus_links)
on_failure docker network rm other nokey
in_use=$(docker network create -d "$PLUGIN" -o tunnel.listen=$A_IP:20000 other 2>&1) &&
  fail "a second network listening on $A_IP:20000 was created"
expect_contains "$in_use" "option \`tunnel.listen\`: \`$A_IP:20000\` is not allowed" "a port in use"
expect_eq "$(vxbus_links)" "$links_before" "vxbus's links after the refused create"

step "tunnel.key: a missing key file is refused"
no_key=$(docker network create -d "$PLUGIN" -o tunnel.listen=$A_IP:20201 \
  -o tunnel.key=/var/lib/vxbus/keys/none.key nokey 2>&1) && fail "a network with a missing key file was created"
expect_contains "$no_key" "option \`tunnel.key\`: \`/var/lib/vxbus/keys/none.key\` is not allowed" "a missing key file"

step "TCP (fd=false): B and two can-cannelloni clients connect to A's one port; A-B sealed"
# With a key, plain clients only from tunnel.clients: the two below run on host A.
docker network create -d "$PLUGIN" -o fd=false -o tunnel.transport=tcp -o tunnel.listen=$A_IP:20100 \
  -o tunnel.key=$key -o tunnel.clients=$A_IP wire >/dev/null
on_failure docker network rm wire
b network create -d "$PLUGIN" -o fd=false -o tunnel.transport=tcp -o tunnel.peers=$A_IP:20100 \
  -o tunnel.key=$key wire >/dev/null
docker network connect wire ecu-a &
connected_a=$!
b network connect wire ecu-b
wait "$connected_a" || fail "ecu-a did not join wire"
python3 "$peer" tcp $A_IP:20100 "$work/c1" &
python3 "$peer" tcp $A_IP:20100 "$work/c2" &
connected() { # N: A's tunnel on wire has N far ends connected
  [[ $("$vxbus" tunnel list wire --json | jq '[.[].peers[] | select(.connected)] | length') == "$1" ]]
}
wait_until 30 "B and both clients connected to A" connected 3
expect_eq "$("$vxbus" tunnel list wire --json | jq -c '[.[].peers[] | .role] | sort')" \
  '["client","client","client"]' "A's far ends on wire"
# B's mark is read before the hub hears of the connection: it is a vxbus host from the start.
expect_eq "$("$vxbus" tunnel list wire --json | jq '[.[].peers[] | select(.vxbus)] | length')" "1" \
  "far ends that said they are vxbus hosts (B)"
# B's stream is sealed (tunnel.key on both hosts); the cannelloni clients' stay plain.
expect_eq "$("$vxbus" tunnel list wire --json | jq -c '[.[].peers[] | [.vxbus, .sealed]] | sort')" \
  '[[false,false],[false,false],[true,true]]' "A's far ends on wire: [vxbus host, sealed]"
listeners wa:can1:ecu-a
DOCKER_HOST=$B_HOST listeners wb:can1:ecu-b
from_c1=$'500#C1\n501#C1C1'
from_wb=$'600#B0\n601#B1'
send_later "$work/c1.send" "$from_c1"
wait_until 20 "client 2 to get client 1's frames" at_least "$work/c2" 2
b exec ecu-b sh -c "for f in $(tr '\n' ' ' <<<"$from_wb"); do cansend can1 \$f; done"
expect_frames wa "$from_c1"$'\n'"$from_wb"
DOCKER_HOST=$B_HOST expect_frames wb "$from_c1"$'\n'"$from_wb"
expect_eq "$(cat "$work/c2")" "$from_c1"$'\n'"$from_wb" "what client 2 got"
expect_eq "$(cat "$work/c1")" "$from_wb" "what client 1 got (never its own frames)"

step "A's daemon killed: dockerd restarts it, the tunnel comes back, B and the clients reconnect"
daemon_a=$(pgrep -x vxbus --ns $$ --nslist net) || fail "no vxbus daemon found on host A"
[[ $daemon_a =~ ^[0-9]+$ ]] || fail "not one vxbus daemon on host A: '$daemon_a'"
mark=$(log_mark)
kill -9 "$daemon_a"
wait_logged "$mark" "tunnel started on vxbn" 60
wait_until 30 "B and both clients connected to A again" connected 3
b_connects=$(DOCKER_HOST=$B_HOST "$vxbus" --state-dir "$B_STATE" tunnel list wire --json | jq '.[].peers[0].connects')
((b_connects >= 2)) || fail "B connected $b_connects time(s) to A, not again after the restart"
# The UDP bus 'body' restarted with the daemon too (a new id for its sealed datagrams, which B
# learns from A's first one): it resumes as well.
listeners wa2:can1:ecu-a a2:can0:ecu-a
udp_before=$(b_body tx_frames)
b exec ecu-b sh -c "cansend can1 602#B2 && sleep 1 && cansend can0 700#B0"
expect_frames wa2 '602#B2'
expect_frames a2 '700#B0'
udp_after=$(b_body tx_frames)
expect_eq "$((udp_after - udp_before))" 1 "frames B sent A on body after A's restart"
# The gap shows: B saw A come back with a new id, and connect to it again over TCP.
expect_eq "$(b_body restarts)" 1 "restarts B counted of A on body"
b_restarts=$(DOCKER_HOST=$B_HOST "$vxbus" --state-dir "$B_STATE" tunnel list wire --json | jq '.[].peers[0].restarts')
((b_restarts >= 1)) || fail "B counted $b_restarts restart(s) of A on wire, not the one after A's restart"
# A plain client from host B's address: not in tunnel.clients of a sealed bus, refused.
in_b bash -c "exec 3<>/dev/tcp/$A_IP/20100 && printf CANNELLONIv1 >&3 && timeout 3 cat <&3 >/dev/null" || true
expect_eq "$("$vxbus" tunnel list wire --json | jq '.[].refused_clients')" 1 "plain clients A refused on wire"
wait_until 10 "both clients to get B's frame after the restart" \
  bash -c "grep -q 602#B2 $work/c1 && grep -q 602#B2 $work/c2"

step "Swarm: tunnel.peers=swarm, the same options on each node, a global service on the bus"
docker swarm init --advertise-addr $A_IP >/dev/null
on_exit "b swarm leave --force >/dev/null 2>&1; docker swarm leave --force >/dev/null 2>&1; docker network rm docker_gwbridge >/dev/null 2>&1; b network rm docker_gwbridge >/dev/null 2>&1"
b swarm join --token "$(docker swarm join-token -q worker)" $A_IP:2377 >/dev/null
# No peer typed anywhere: each node's dockerd tells its vxbus of the Swarm's nodes (DiscoverNew),
# and the tunnel takes the other nodes, at its own port, as peers. Docker hands a local-scope
# driver a Swarm network's options only from a config-only network on each node.
swarm_options=(-o tunnel.listen=0.0.0.0:20400 -o tunnel.peers=swarm)
docker network create --config-only "${swarm_options[@]}" swcfg >/dev/null
b network create --config-only "${swarm_options[@]}" swcfg >/dev/null
docker network create -d "$PLUGIN" --scope swarm --config-from swcfg swbus >/dev/null
docker service create --detach --quiet --name swsvc --mode global --network swbus "$TEST_IMAGE" \
  sh -c 'trap "exit 0" TERM; sleep 3600 & wait' >/dev/null
on_failure "docker service rm swsvc; docker network rm swbus swcfg; b network rm swcfg"
task_on() { # DOCKER-CLI...: the name of the service's running container on that node
  "$@" ps --format '{{.Names}}' --filter label=com.docker.swarm.service.name=swsvc --filter status=running
}
wait_until 60 "the service's task running on both nodes" bash -c \
  "[[ -n \$(docker ps -q --filter label=com.docker.swarm.service.name=swsvc --filter status=running) &&
     -n \$(docker -H $B_HOST ps -q --filter label=com.docker.swarm.service.name=swsvc --filter status=running) ]]"
task_a=$(task_on docker) task_b=$(task_on b)
swarm_peers() { # [vxbus ARGS...]: the far ends of that host's tunnel on swbus
  "$vxbus" "$@" tunnel list swbus --json | jq -r '[.[].peers[] | "\(.role) \(.address)"] | join(",")'
}
swarm_peered() { # each node's tunnel on swbus has the other node as its one peer
  [[ $(swarm_peers) == "peer $B_IP:20400" &&
     $(DOCKER_HOST=$B_HOST swarm_peers --state-dir "$B_STATE") == "peer $A_IP:20400" ]]
}
# Docker may tell a node of the other after the task has started: wait, then show what is.
(wait_until 10 "each node's tunnel on swbus to have the other node as its peer" swarm_peered) 2>/dev/null || true
expect_eq "$(swarm_peers)" "peer $B_IP:20400" "host A's peers on swbus"
expect_eq "$(DOCKER_HOST=$B_HOST swarm_peers --state-dir "$B_STATE")" "peer $A_IP:20400" "host B's peers on swbus"
DOCKER_HOST=$B_HOST listeners sw:can0:"$task_b"
send_in "$task_a" 2 1 can0
expect_frames sw "$(frames 2 1)"
# The nodes are in the state: Docker tells a restarted plugin of no node again, and the bus
# must not need it to.
expect_eq "$(jq -c '.swarm_nodes' /var/lib/vxbus/state.json)" "[\"$A_IP\",\"$B_IP\"]" "the Swarm's nodes in A's state"
daemon_a=$(pgrep -x vxbus --ns $$ --nslist net) || fail "no vxbus daemon found on host A"
[[ $daemon_a =~ ^[0-9]+$ ]] || fail "not one vxbus daemon on host A: '$daemon_a'"
mark=$(log_mark)
kill -9 "$daemon_a"
wait_logged "$mark" "peers are now the Swarm's other nodes: $B_IP:20400" 60
listeners swa:can0:"$task_a"
b exec "$task_b" cansend can0 7A0#5A
expect_frames swa '7A0#5A'
docker service rm swsvc >/dev/null
wait_until 60 "the service's tasks gone" bash -c \
  "[[ -z \$(docker ps -aq --filter label=com.docker.swarm.service.name=swsvc) &&
     -z \$(docker -H $B_HOST ps -aq --filter label=com.docker.swarm.service.name=swsvc) ]]"
docker network rm swbus swcfg >/dev/null
b network rm swcfg >/dev/null
b swarm leave --force >/dev/null
b_forgotten() { # A's vxbus answers, and no longer lists B's node
  local nodes
  nodes=$("$vxbus" swarm --json) || return 1
  ! jq -e --arg ip "$B_IP" 'any(.[]; . == $ip)' <<<"$nodes" >/dev/null
}
wait_until 20 "A to hear of B leaving the Swarm (DiscoverDelete)" b_forgotten
docker swarm leave --force >/dev/null
# No one tells a node that it left itself: the nodes each host still has are forgotten by hand.
for vxbus_of in "$vxbus" "$vxbus --state-dir $B_STATE"; do
  for ip in $($vxbus_of swarm --json | jq -r '.[]'); do
    $vxbus_of swarm --forget "$ip" >/dev/null || true # a late DiscoverDelete may forget it first
  done
done
expect_eq "$(jq -c '[.swarm_nodes // empty]' /var/lib/vxbus/state.json "$B_STATE/state.json")" $'[]\n[]' \
  "the Swarm nodes left in A's and B's state"
# Swarm made a docker_gwbridge on each node for its tasks' other networks: not vxbus's.
docker network rm docker_gwbridge >/dev/null 2>&1 || true
b network rm docker_gwbridge >/dev/null 2>&1 || true
ok "one bus across the Swarm's two nodes, their tunnels' peers found from the Swarm, kept across a restart"

step "removing the networks leaves nothing on either host"
pkill -f "$peer" || true
docker rm -f ecu-a >/dev/null &
b rm -f ecu-b >/dev/null
wait
docker network rm body wire >/dev/null
b network rm body wire >/dev/null
expect_nothing_left "removing the tunnel networks"
# Listening and connected sockets (a closed connection's TIME-WAIT is the kernel's, not a socket).
tunnel_sockets() {
  "$@" ss -Hlnu "( sport = :20000 or sport = :20400 )"
  "$@" ss -Hlnt "( sport = :20100 )"
  "$@" ss -Hnt state established "( sport = :20100 or dport = :20100 )"
}
expect_eq "$(tunnel_sockets)" "" "host A's UDP and TCP sockets"
expect_eq "$(tunnel_sockets in_b)" "" "host B's UDP and TCP sockets"
expect_eq "$(b_left)" "0 network(s)" "what vxbus left on host B"
ok "one bus across two hosts and cannelloni ends, over UDP and TCP"
