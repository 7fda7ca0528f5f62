#!/usr/bin/env python3
"""A vxbus child plugin written from PROTOCOL.md alone, with Python's standard library only.

The tests use it to drive the supervisor: it records every message it gets as a JSON line in
$VXBUS_PLUGIN_DATA_DIR/events.jsonl, and its per-network item `mode` decides what `start` does:
ok (serve), refuse (answer with an error), hang (never answer), crash (answer, then exit), deaf
(stop reading its pipe: what a stuck plugin does).
Item `peer`: on start, open a channel to that plugin and send `ping`; a `ping` on a channel is
answered `pong`. Its settings are `greeting` (a reconfigure to `refuse` is refused), or those
in settings.json in its directory. With attacks.json in its directory, it first tries what a
plugin must not be able to do and records what came of each.
"""
import json
import os
import sys
import threading
import time

INFO = {
    "name": "pyplugin",
    "version": "1.0",
    "type": "bus",
    "interface": "1",
    "config": {
        "mode": {"type": "enumeration", "options": ["ok", "refuse", "hang", "crash", "deaf"],
                 "default": "ok", "description": "what start does"},
        "peer": {"type": "string", "default": "", "description": "plugin to ping on start"},
        "count": {"type": "integer", "default": "1", "minimum": "0", "maximum": "9",
                  "description": "a number"},
        "label": {"type": "string", "default": "", "mandatory": "false",
                  "description": "a label"},
    },
    "settings": {
        "greeting": {"type": "string", "default": "hello", "description": "a word"},
    },
}

# A test may give the plugin other settings: settings.json beside it (its working directory).
if os.path.exists("settings.json"):
    with open("settings.json") as f:
        INFO["settings"] = json.load(f)

fds = os.environ.get("VXBUS_CHUNK_FDS")
if fds:
    rfd, wfd = (int(x) for x in fds.split(","))
else:
    rfd, wfd = sys.stdin.fileno(), sys.stdout.fileno()
rfile = os.fdopen(rfd, "rb", buffering=0)
wlock = threading.Lock()
data_dir = os.environ.get("VXBUS_PLUGIN_DATA_DIR", ".")
my_id = os.environ.get("VXBUS_PLUGIN_ID", "pyplugin")
events_lock = threading.Lock()


def record(event, **fields):
    with events_lock, open(os.path.join(data_dir, "events.jsonl"), "a") as f:
        f.write(json.dumps(dict(event=event, **fields)) + "\n")


def write_chunk(thread, direction, cmd, buf):
    cmd_b = cmd.encode()
    header = b"%d\0%d\0%d\0%d\0" % (thread, direction, len(cmd_b), len(buf))
    with wlock:
        os.write(wfd, header + cmd_b + buf)


def read_exact(n):
    out = b""
    while len(out) < n:
        part = rfile.read(n - len(out))
        if not part:
            raise EOFError
        out += part
    return out


def read_number():
    digits = b""
    while True:
        b = read_exact(1)
        if b == b"\0":
            return int(digits)
        digits += b


def read_chunk():
    thread, direction, cmd_len, buf_len = (read_number() for _ in range(4))
    cmd = read_exact(cmd_len).decode()
    return thread, direction, cmd, read_exact(buf_len)


next_thread = 1
pending = {}
pending_lock = threading.Lock()


def call(cmd, obj):
    global next_thread
    with pending_lock:
        thread = next_thread
        next_thread += 1
        slot = {"done": threading.Event()}
        pending[thread] = slot
    write_chunk(thread, 1, cmd, json.dumps(obj).encode() if obj is not None else b"")
    if not slot["done"].wait(10):
        raise RuntimeError("no answer to " + cmd)
    if slot["direction"] == 4:
        raise RuntimeError(slot["buf"].decode())
    return json.loads(slot["buf"]) if slot["buf"] else None


def notify(cmd, buf):
    global next_thread
    with pending_lock:
        thread = next_thread
        next_thread += 1
    write_chunk(thread, 3, cmd, buf)


def handle(thread, direction, cmd, buf):
    try:
        result = dispatch(cmd, buf)
        if direction == 1:
            if result is None:  # hang: never answer
                return
            write_chunk(thread, 2, cmd, result)
    except Exception as err:  # the error travels back to the caller
        if direction == 1:
            write_chunk(thread, 4, cmd, str(err).encode())


def dispatch(cmd, buf):
    if cmd in ("start", "stop"):
        msg = json.loads(buf)
        record(cmd, message=msg, pid=os.getpid())
        mode = msg["bus"]["plugin"].get("mode", "ok")
        if cmd == "start" and mode == "refuse":
            raise RuntimeError("refusing bus %s on purpose" % msg["bus"]["device"])
        if cmd == "start" and mode == "hang":
            return None
        if cmd == "start" and mode == "crash":
            threading.Timer(0.2, lambda: os._exit(3)).start()
        peer = msg["bus"]["plugin"].get("peer")
        if cmd == "start" and peer:
            threading.Thread(target=ping, args=(peer,)).start()
        return b""
    if cmd == "reconfigure":
        settings = json.loads(buf)["settings"]
        record(cmd, settings=settings)
        if settings.get("greeting") == "refuse":
            raise RuntimeError("greeting `refuse` is refused on purpose")
        return b""
    if cmd in ("plugins.connected", "plugins.disconnected", "channel.opened"):
        record(cmd, message=json.loads(buf))
        return b""
    if cmd == "channel.data":
        channel, _, data = buf.partition(b"\0")
        record(cmd, channel=int(channel), data=data.decode())
        if data == b"ping":
            notify("channel.data", channel + b"\0pong")
        return b""
    if cmd == "channel.close":
        record(cmd, channel=int(buf))
        return b""
    raise RuntimeError("unknown command `%s`" % cmd)


def ping(peer):
    names = call("plugins.list", None)
    record("plugins.list", names=names)
    try:
        opened = call("channel.open", {"to": peer})
    except RuntimeError as err:
        record("channel.open", error=str(err))
        return
    record("channel.open", answer=opened)
    notify("channel.data", b"%d\0ping" % opened["channel"])


def reader():
    while True:
        try:
            thread, direction, cmd, buf = read_chunk()
        except EOFError:
            record("eof")
            print("vxbus closed the connection; exiting", file=sys.stderr, flush=True)
            os._exit(0)
        if cmd == "start" and direction == 1 and b'"mode":"deaf"' in buf.replace(b" ", b""):
            record("deaf")  # reads nothing more: its pipe fills up
            while True:
                time.sleep(3600)
        if direction in (2, 4):
            with pending_lock:
                slot = pending.pop(thread)
            slot["direction"], slot["buf"] = direction, buf
            slot["done"].set()
        else:
            threading.Thread(target=handle, args=(thread, direction, cmd, buf), daemon=True).start()


threading.Thread(target=reader, daemon=True).start()
print("pyplugin %s starting (pid %d)" % (my_id, os.getpid()), file=sys.stderr, flush=True)


def attack(kind, target):
    """One thing a plugin must not be able to do to the daemon or other plugins: "ok" if it
    could, else the error's name."""
    import errno
    import signal
    import socket
    try:
        if kind == "write":
            with open(target, "a") as f:
                f.write("intruder was here\n")
        elif kind == "read":
            with open(target) as f:
                f.read()
        elif kind == "connect":
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(target)
        elif kind == "rebind":
            os.unlink(target)
            with socket.socket(socket.AF_UNIX) as s:
                s.bind(target)
        elif kind == "kill":
            os.kill(int(target), signal.SIGKILL)
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e))


# A test may give the plugin attacks to try (attacks.json beside it: [[kind, target], ...]).
if os.path.exists("attacks.json"):
    with open("attacks.json") as f:
        record("attacks", results=[[k, t, attack(k, t)] for k, t in json.load(f)])

registered = call("register", INFO)
record("registered", settings=registered["settings"], pid=os.getpid(),
       status=open("/proc/self/status").read())
while True:
    time.sleep(3600)
