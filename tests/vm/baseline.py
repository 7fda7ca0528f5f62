"""baseline.py PLUGIN: what a scenario left in the guest's Docker engine, read from its API.

Prints three lines: the ids of all containers (space-separated, empty if none), the ids of the
networks whose driver is PLUGIN, and whether PLUGIN is enabled (true or false). Exits 3 when
Docker's socket does not answer. tests/vm/guest uses it between scenarios.
"""

import http.client
import json
import socket
import sys

DOCKER_SOCKET = "/var/run/docker.sock"


class UnixConnection(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(DOCKER_SOCKET)


def get(path):
    conn = UnixConnection("docker", timeout=30)
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    if response.status != 200:
        raise OSError(f"GET {path}: {response.status} {body[:200]!r}")
    return json.loads(body)


def main():
    plugin = sys.argv[1]
    try:
        containers = [c["Id"][:12] for c in get("/containers/json?all=1")]
        networks = [n["Id"][:12] for n in get("/networks") if n.get("Driver") == plugin]
        enabled = any(p.get("Name") == plugin and p.get("Enabled") for p in get("/plugins"))
    except (OSError, ValueError, KeyError, http.client.HTTPException) as err:
        print(f"baseline: Docker's API does not answer: {err}", file=sys.stderr)
        return 3
    print(" ".join(containers))
    print(" ".join(networks))
    print("true" if enabled else "false")
    return 0


if __name__ == "__main__":
    sys.exit(main())
