#!/usr/bin/env bash
# `make demo`, run in the VM by tests/vm/guest: two containers exchanging CAN frames.
#
# Until the network driver lands, `docker network create -d vxbus:latest` is refused (shown
# below), so part 2 builds by hand, from the same kernel pieces, the bus the driver will make:
# a vxcan pair per container and can-gw rules between their host ends. It says so as it runs.
source "$VXBUS_REPO/tests/e2e/lib.sh"

banner() { printf '\n=== %s\n' "$*"; }
on_exit 'docker rm -f ecu-a ecu-b; ip link del demo-a; ip link del demo-b; cangw -F'

banner "1. vxbus is installed as a managed Docker plugin"
docker plugin ls
grep -o 'vxbus 0[^"]*ready[^"(]*' "$VXBUS_OUT/dockerd.log" | tail -n1

banner "2. docker network create -d $PLUGIN -o device=ecu demo-bus"
docker network create -d "$PLUGIN" -o device=ecu demo-bus 2>&1 || true
docker network create -d "$PLUGIN" -o device=ecu -o baudrate=fast demo-bus 2>&1 || true
echo "(the driver validates the options; creating buses is the next piece of work)"

banner "3. By hand, the bus the driver will build: two containers, a vxcan pair each, can-gw between them"
for ecu in a b; do
  docker run -d --name "ecu-$ecu" --network none "$TEST_IMAGE" sleep 600 >/dev/null
  pid=$(container_pid "ecu-$ecu")
  ip link add "demo-$ecu" type vxcan peer name ecu0 netns "$pid"
  ip link set "demo-$ecu" up
  nsenter -t "$pid" -n ip link set ecu0 up
  echo "container ecu-$ecu: interface ecu0 (host end demo-$ecu)"
done
# -i: both containers' ecu0 and the host's first link can share ifindex 2 (indexes are per
# namespace); without it can-gw silently drops a frame whose incoming index equals the
# destination's. -X: a rule carries either classic or CAN FD frames, so each needs both.
for dir in "a b" "b a"; do
  set -- $dir
  cangw -A -s "demo-$1" -d "demo-$2" -e -i    # classic CAN frames
  cangw -A -s "demo-$1" -d "demo-$2" -e -i -X # CAN FD frames
done
cangw -L 2>/dev/null || true

banner "4. ecu-a sends; ecu-b's candump prints each frame as it arrives"
candump_start ecu0 7 ecu-b
for i in 1 2 3 4 5; do
  frame="123#0$i.11.22.33.44.55.66.77"
  echo "  ecu-a sends:    $frame"
  docker exec ecu-a cansend ecu0 "$frame"
  sleep 0.5
done
echo "  ecu-a sends:    1A0##1.00112233445566778899AABBCCDDEEFF (CAN FD, 16 bytes)"
docker exec ecu-a cansend ecu0 '1A0##1.00112233445566778899AABBCCDDEEFF'
echo "  ecu-a sends:    7DF#02010C (a classic OBD request)"
docker exec ecu-a cansend ecu0 '7DF#02010C'
candump_expect 7

banner "5. and back: ecu-b answers, ecu-a prints it"
candump_start ecu0 1 ecu-a
echo "  ecu-b sends:    7E8#04410C1AF8"
docker exec ecu-b cansend ecu0 '7E8#04410C1AF8'
candump_expect 1
cangw -L 2>/dev/null || true
banner "done: the frames crossed between containers in the kernel (vxcan + can-gw)"
