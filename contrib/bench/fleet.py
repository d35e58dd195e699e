#!/usr/bin/python3
"""Fleet propagation: how long from `set weight` on node A until node B
routes with the new percent, through one real redis-server.

Starts redis-server, two platform backends and two turnout nodes (2 workers
each) on free 127.0.0.1 ports. Picks a probe user whose bucket on route
`default` is known, then N times: sets the weight on A (through its admin
socket) to a value that moves the probe user to the other side, and sends
requests for that user to B on a keep-alive connection until B's answer
comes from the other platform. The time from just before the command is
sent to that answer is one sample. Prints p50, p90, p99 and max, and writes
them to contrib/bench/results/fleet.txt.

Usage: contrib/bench/fleet.py [--changes 200] [--turnout build/turnout]
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import harness  # noqa: E402
from admin import Admin  # noqa: E402
from backends import PlatformBackend  # noqa: E402
from redis_server import RedisServer  # noqa: E402


def probe_key():
    """A user whose bucket sits mid-range, away from the edges."""
    for i in range(100000):
        k = "probe-%d" % i
        b = harness.bucket("default", k)
        if 400000 <= b < 600000:
            return k, b
    raise RuntimeError("no probe key")


class Probe:
    """Keep-alive GETs for one user; returns the X-Platform of each answer."""

    def __init__(self, port, key):
        self.req = ("GET / HTTP/1.1\r\nHost: b\r\nX-User-Id: %s\r\n\r\n" % key).encode()
        self.port = port
        self.connect()

    def connect(self):
        self.s = socket.create_connection(("127.0.0.1", self.port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def platform(self):
        self.s.sendall(self.req)
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                head = self.buf[:i].decode("latin-1")
                length = 0
                plat = None
                for line in head.split("\r\n")[1:]:
                    k, _, v = line.partition(":")
                    if k.lower() == "content-length":
                        length = int(v)
                    elif k.lower() == "x-platform":
                        plat = v.strip()
                while len(self.buf) < i + 4 + length:
                    self.buf += self.s.recv(65536)
                self.buf = self.buf[i + 4 + length:]
                return plat
            d = self.s.recv(65536)
            if not d:
                raise RuntimeError("connection closed")
            self.buf += d


def start_node(binary, d, name, legacy, new, redis_addr):
    port = harness.free_port()
    sock = os.path.join(d, name + ".sock")
    cfg = {
        "workers": 2,
        "listen": [{"address": "127.0.0.1:%d" % port}],
        "access_log": "off",
        "node_id": name,
        "admin": {"socket": sock},
        "redis": {"address": redis_addr, "namespace": "bench"},
        "backends": {"legacy": {"servers": [{"address": legacy.address}]},
                     "new": {"servers": [{"address": new.address}]}},
        "sticky_key": [{"header": "X-User-Id"}],
        "routes": [{"name": "default", "shift": {"from": "legacy", "to": "new", "percent": 0}}],
    }
    path = os.path.join(d, name + ".yaml")
    with open(path, "w") as f:
        f.write(harness.to_yaml(cfg) + "\n")
    err = open(os.path.join(d, name + ".stderr"), "wb")
    p = subprocess.Popen([binary, "-c", path], stdout=err, stderr=err, stdin=subprocess.DEVNULL)
    harness.wait_until(lambda: os.path.exists(sock) and _accepts(port), 10, name)
    return p, port, sock


def _accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def pct(samples, q):
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--changes", type=int, default=200)
    ap.add_argument("--turnout", default=os.path.join(REPO, "build", "turnout"))
    ap.add_argument("--out", default=os.path.join(HERE, "results", "fleet.txt"))
    args = ap.parse_args()

    d = tempfile.mkdtemp(prefix="tn-fleet-")
    r = RedisServer().start()
    legacy = PlatformBackend("legacy").start()
    new = PlatformBackend("new").start()
    procs = []
    try:
        pa, port_a, sock_a = start_node(args.turnout, d, "node-a", legacy, new, r.address)
        procs.append(pa)
        pb, port_b, sock_b = start_node(args.turnout, d, "node-b", legacy, new, r.address)
        procs.append(pb)
        for s in (sock_a, sock_b):
            harness.wait_until(lambda: '"up":true' in Admin(s).cmd("show info json"), 10, "redis")
        key, bucket = probe_key()
        above = "%.2f" % ((bucket // 100 + 1) / 100.0)   # bucket < percent*10^4: to "new"
        below = "%.2f" % ((bucket // 100 - 1) / 100.0)   # to "legacy"
        admin = Admin(sock_a)
        probe = Probe(port_b, key)
        assert probe.platform() == "legacy"
        samples = []
        side = "legacy"
        for i in range(args.changes):
            want = "new" if side == "legacy" else "legacy"
            value = above if want == "new" else below
            t0 = time.perf_counter()
            admin.send(("set weight default %s\n" % value).encode())
            deadline = t0 + 5
            while probe.platform() != want:
                if time.perf_counter() > deadline:
                    raise RuntimeError("change %d not seen on node B within 5 s" % i)
            samples.append((time.perf_counter() - t0) * 1000)
            ans = admin.read_answer()
            assert ans.startswith("weight default"), ans
            side = want
        line = ("fleet propagation, %d changes (set weight on A -> B routes the probe user "
                "to the other side), ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f  mean %.2f"
                % (len(samples), pct(samples, 0.5), pct(samples, 0.9), pct(samples, 0.99),
                   max(samples), sum(samples) / len(samples)))
        print(line)
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as f:
            f.write("# %s, %s, turnout %s\n" % (time.strftime("%Y-%m-%d %H:%M:%S"),
                                                 os.uname().nodename, args.turnout))
            f.write(line + "\n")
            f.write("samples: " + " ".join("%.2f" % s for s in samples) + "\n")
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        legacy.stop()
        new.stop()
        r.cleanup()


if __name__ == "__main__":
    main()
