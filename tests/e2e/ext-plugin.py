#!/usr/bin/env python3
"""An external vxbus plugin for the e2e scenarios, as RemotiveBus's plugin API describes one:
binds SOCKET, reads one JSON message per connection, appends it to RECORD (one line each) and
answers `{"success": true}` (MODE ok), the same after N seconds (MODE slow:N),
`{"success": false, "error": ...}` (MODE refuse), or nothing (MODE silent).

    ext-plugin.py SOCKET RECORD MODE
"""
import json
import os
import socket
import sys
import time

path, record, mode = sys.argv[1:4]
if os.path.exists(path):
    os.unlink(path)
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(path)
server.listen(4)
while True:
    conn, _ = server.accept()
    data = b""
    while not data.endswith(b"\n"):
        part = conn.recv(65536)
        if not part:
            break
        data += part
    with open(record, "a") as f:
        f.write(json.dumps(json.loads(data)) + "\n")
    if mode == "ok" or mode.startswith("slow:"):
        if mode.startswith("slow:"):
            time.sleep(float(mode.split(":", 1)[1]))
        conn.sendall(b'{"success": true}\n')
    elif mode == "refuse":
        conn.sendall(b'{"success": false, "error": "no LIN adapter found"}\n')
    else:
        time.sleep(3600)
    conn.close()
