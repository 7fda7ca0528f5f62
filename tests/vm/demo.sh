#!/usr/bin/env bash
# `make demo`, run in the VM by tests/vm/guest: containers talking over a vxbus network.
source "$VXBUS_REPO/tests/e2e/lib.sh"

banner() { printf '\n=== %s\n' "$*"; }
on_exit 'docker rm -f ecu-a ecu-b lin-ecu; docker network rm demo-bus demo-lin'

banner "1. vxbus is installed as a managed Docker plugin"
docker plugin ls
grep -o 'vxbus 0[^"]*ready[^"(]*' "$VXBUS_OUT/dockerd.log" | tail -n1

banner "2. docker network create -d $PLUGIN -o device=ecu -o host_device=demohost demo-bus"
docker network create -d "$PLUGIN" -o device=ecu -o baudrate=fast demo-bus 2>&1 || true
echo "(a bad option is refused, naming it; now a good one:)"
docker network create -d "$PLUGIN" -o device=ecu -o host_device=demohost demo-bus
ip -d link show demohost | sed 's/^/  host: /'

banner "3. two containers join the bus at docker run; each gets ecu0 (and lo), nothing else"
for ecu in a b; do
  docker run -d --name "ecu-$ecu" --network demo-bus "$TEST_IMAGE" sleep 600 >/dev/null
  echo "container ecu-$ecu:"
  docker exec "ecu-$ecu" ip link | sed 's/^/  /'
done

banner "4. ecu-a sends; ecu-b's candump prints each frame as it arrives"
candump_start ecu0 7 ecu-b
for i in 1 2 3 4 5; do
  frame="123#0$i.11.22.33.44.55.66.77"
  echo "  ecu-a sends:    $frame"
  docker exec ecu-a cansend ecu0 "$frame"
done
echo "  ecu-a sends:    1A0##1.00112233445566778899AABBCCDDEEFF (CAN FD, 16 bytes)"
docker exec ecu-a cansend ecu0 '1A0##1.00112233445566778899AABBCCDDEEFF'
echo "  ecu-a sends:    7DF#02010C (a classic OBD request)"
docker exec ecu-a cansend ecu0 '7DF#02010C'
candump_expect 7

banner "5. the host sees the bus on demohost, and answers: ecu-a prints it"
candump_start ecu0 1 ecu-a
echo "  host sends on demohost:    7E8#04410C1AF8"
cansend demohost '7E8#04410C1AF8'
candump_expect 1

banner "6. what vxbus built in the kernel: a vxcan pair per container, can-gw rules between host ends"
ip -br link show type vxcan | sed 's/^/  /'
cangw -L 2>/dev/null | sed 's/^/  /' || true

banner "7. a LIN bus with no hardware: the bundled kvaser-lin plugin simulates an LDF's slave nodes"
install_lin_ldf
echo "  docker network create -d $PLUGIN -o device=lin -o plugin.driver=kvaser-lin -o plugin.type=simulator"
echo "    -o plugin.host_mode=master -o plugin.database=$LIN_LDF demo-lin"
docker network create -d "$PLUGIN" -o device=lin -o plugin.driver=kvaser-lin -o plugin.type=simulator \
  -o plugin.host_mode=master -o plugin.database="$LIN_LDF" demo-lin
docker run -d --name lin-ecu --network demo-lin "$TEST_IMAGE" sleep 600 >/dev/null
candump_start lin0 2 lin-ecu
echo "  lin-ecu sends:  020#R (the header of LIN frame 0x20, DoorState; the simulated Door answers)"
docker exec lin-ecu cansend lin0 '020#R'
candump_expect 2

banner "8. docker rm and docker network rm leave nothing behind"
docker rm -f ecu-a ecu-b lin-ecu >/dev/null
docker network rm demo-bus demo-lin >/dev/null
echo "  vxcan links: $(ip -br link show type vxcan | wc -l), gateway rules: $(gw_rules | wc -l), demohost: $(ip link show demohost >/dev/null 2>&1 && echo present || echo gone)"
expect_nothing_left "the demo"
banner "done: frames crossed between containers and the host in the kernel (vxcan + can-gw), built by vxbus"
