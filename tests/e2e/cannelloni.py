#!/usr/bin/env python3
"""Far ends of a vxbus tunnel for the e2e scenarios, speaking cannelloni's format.

  cannelloni.py udp BIND PEER OUT [FRAME...]   a UDP leaf bound to BIND: sends the FRAMEs to PEER
                                              (in one datagram), then writes every frame it
                                              receives to OUT, one a line
  cannelloni.py tcp SERVER OUT [FRAME...]      a TCP client through can-cannelloni, the python-can
                                              backend on PyPI (an implementation independent of
                                              vxbus's): the same, over cannelloni's stream (it
                                              carries classic frames only)
  cannelloni.py send-from BIND PEER FRAME...   one datagram of FRAMEs from BIND to PEER, then exit
  cannelloni.py bench-recv SERVER COUNT        `make bench-tunnel`'s far end through can-cannelloni:
                                              takes canbench's frames (sequence number in the id,
                                              send time in the data) and prints a line as
                                              `canbench recv` does

FRAMEs and the lines in OUT are in candump's notation: 123#1122, 1A0##4AABB (FD with flags 4).
Each runs until killed (OUT is flushed line by line); it writes OUT.ready once it can receive,
and sends the frames of a file OUT.send (one a line) when one appears, then deletes it.
The UDP side is written here by hand, from cannelloni's format (version 2 datagrams).
"""
import os
import socket
import struct
import sys
import time

EFF = 0x80000000
RTR = 0x40000000


def parse(text):
    ident, rest = text.split("#", 1)
    can_id = int(ident, 16) | (EFF if len(ident) > 3 else 0)
    if rest.startswith("#"):
        return can_id, int(rest[1], 16), bytes.fromhex(rest[2:])
    return can_id, None, bytes.fromhex(rest)


def show(can_id, flags, data):
    ident = f"{can_id & 0x1FFFFFFF:08X}" if can_id & EFF else f"{can_id & 0x7FF:03X}"
    if flags is not None:
        return f"{ident}##{flags & 0xF:X}{data.hex().upper()}"
    return f"{ident}#{data.hex().upper()}"


def encode(frames):
    out = b""
    for can_id, flags, data in frames:
        if flags is None:
            out += struct.pack("!IB", can_id, len(data)) + data
        else:
            out += struct.pack("!IBB", can_id, len(data) | 0x80, flags) + data
    return out


def decode(body, count):
    frames, at = [], 0
    for _ in range(count):
        can_id, length = struct.unpack_from("!IB", body, at)
        at += 5
        flags = None
        if length & 0x80:
            length &= 0x7F
            flags = body[at]
            at += 1
        data = b"" if can_id & RTR else body[at:at + length]
        at += len(data)
        frames.append((can_id, flags, data))
    return frames


def address(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


def ready(out):
    open(out + ".ready", "w").close()


def to_send(out):
    """The frames of OUT.send, if it exists (it is deleted)."""
    try:
        with open(out + ".send") as wanted:
            frames = [parse(line.strip()) for line in wanted if line.strip()]
    except FileNotFoundError:
        return []
    os.unlink(out + ".send")
    return frames


def udp(bind, peer, out, frames, seq=0):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(address(bind))

    def send(frames):
        nonlocal seq
        if frames:
            sock.sendto(struct.pack("!BBBH", 2, 0, seq, len(frames)) + encode(frames), address(peer))
            seq = (seq + 1) & 0xFF

    send(frames)
    if out is None:
        return
    sock.settimeout(0.2)
    with open(out, "a", buffering=1) as sink:
        ready(out)
        while True:
            send(to_send(out))
            try:
                datagram = sock.recv(65536)
            except socket.timeout:
                continue
            version, op, _seq, count = struct.unpack_from("!BBBH", datagram)
            if version != 2 or op != 0:
                continue
            for frame in decode(datagram[5:], count):
                sink.write(show(*frame) + "\n")


def tcp(server, out, frames):
    import can
    from can_cannelloni.bus import CannelloniBus

    bus = CannelloniBus(channel=server, reconnect=True, reconnect_interval=0.2)
    with open(out, "a", buffering=1) as sink:
        ready(out)
        while True:
            # can-cannelloni carries classic frames only.
            for can_id, _flags, data in frames + to_send(out):
                bus.send(can.Message(arbitration_id=can_id & 0x1FFFFFFF,
                                     is_extended_id=bool(can_id & EFF), data=data))
            frames = []
            message = bus.recv(timeout=0.2)
            if message is None:
                continue
            can_id = message.arbitration_id | (EFF if message.is_extended_id else 0)
            sink.write(show(can_id, None, bytes(message.data)) + "\n")


def bench_recv(server, count):
    """canbench's receiver, through can-cannelloni: what a Python cannelloni end gets."""
    from can_cannelloni.bus import CannelloniBus

    bus = CannelloniBus(channel=server, reconnect=False)
    print("ready", flush=True)
    seen, latencies, first, last, wait = set(), [], None, None, 120.0
    duplicates = 0
    while len(seen) + duplicates < count:
        message = bus.recv(timeout=wait)
        if message is None:
            break
        now = time.monotonic_ns()
        if first is None:
            first, wait = now, 3.0
        last = now
        if message.arbitration_id in seen:
            duplicates += 1
            continue
        seen.add(message.arbitration_id)
        latencies.append((now - int.from_bytes(bytes(message.data), "little")) // 1000)
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0
    seconds = (last - first) / 1e9 if first and last and last > first else 0.0
    print(f"received={len(seen)} lost={count - len(seen)} duplicates={duplicates} reordered=0 "
          f"seconds={seconds:.3f} fps={len(seen) / seconds if seconds else 0:.0f} "
          f"p50_us={pick(0.5)} p99_us={pick(0.99)} max_us={latencies[-1] if latencies else 0}", flush=True)
    bus.shutdown()


def main(argv):
    mode = argv[1]
    if mode == "udp":
        udp(argv[2], argv[3], argv[4], [parse(f) for f in argv[5:]])
    elif mode == "send-from":
        udp(argv[2], argv[3], None, [parse(f) for f in argv[4:]], seq=int(time.time()) & 0xFF)
    elif mode == "bench-recv":
        bench_recv(argv[2], int(argv[3]))
    elif mode == "tcp":
        tcp(argv[2], argv[3], [parse(f) for f in argv[4:]])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
