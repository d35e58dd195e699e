"""Fault-injecting backends for the per-request rollback tests: the new
platform failing in each way the rollback contract names.

FaultBackend(name, mode) -- reads each request like the other test backends
    (head, then a Content-Length or chunked body; recorded in completed()),
    then, by mode:
        "status"     answers `status` (default 503) with the body
                     "<name> status <N> <target>\\n"; keeps the connection
        "reset"      aborts the connection with an RST, no response byte
        "close"      closes the connection, no response byte
        "hang"       never answers; reads and discards until the peer closes
        "half_head"  sends `partial` (default "HTTP/1.1 200 OK\\r\\nContent-Le")
                     and closes
        "garbage"    sends a malformed response head and closes
        "slow"       answers 200 ("<name> <METHOD> <target>\\n") after `delay`
                     seconds; keeps the connection
        "cut"        sends a 200 head announcing `announce` body bytes, then
                     `send` bytes, and closes
        "early"      answers `status` as soon as the head is in, without
                     reading the body (recorded as partial), and closes
    Every response it sends carries X-Platform: <name>. Like a real server
    it answers "100 Continue" to Expect: 100-continue, so an Expect header
    that reached it shows up at the client as an extra interim response.

Refused() -- an address nothing listens on: connecting is refused at once.

Blackhole() -- a listener whose accept queue is full and that never
    accepts: the kernel drops further SYNs, so a connection attempt gets no
    answer and times out on the connecting side.

All of them have .address, .completed(), .connections and stop(), so a test
can treat them alike; backend_factory-style cleanup is the test's (use the
`faults` fixture of test_rollback.py, or call stop()).
"""

import select
import socket
import struct
import threading
import time

import harness
from backends import _read_body, _Reader, _parse_request_head, _Server, _wants_close

MODES = ("status", "reset", "close", "hang", "half_head", "garbage", "slow", "cut", "early")


class FaultBackend(_Server):
    def __init__(self, name="new", mode="status", status=503, delay=0.3,
                 partial=b"HTTP/1.1 200 OK\r\nContent-Le", announce=100000, send=10,
                 host="127.0.0.1"):
        if mode not in MODES:
            raise ValueError("unknown fault mode %r" % mode)
        super().__init__(name, host)
        self.mode = mode
        self.status = status
        self.delay = delay
        self.half_head_bytes = partial
        self.announce = announce
        self.send = send
        self.early_answered = 0  # "early": heads answered before their body

    def serve(self, c):
        rd = _Reader(c.sock, c)
        while not self.stopping.is_set():
            raw = rd.head()
            if raw is None:
                return
            req = _parse_request_head(raw)
            self._record_head(req, c)
            if self.mode == "early":
                body = ("%s status %d %s\n" % (self.name, self.status, req.target)).encode()
                c.sock.sendall(self._head(self.status, "Early", [
                    ("Content-Length", str(len(body))), ("Connection", "close")]) + body)
                self.early_answered += 1
                self._record_done(req, False)
                return
            done = False
            try:
                if (req.header("Expect") or "").strip().lower() == "100-continue":
                    c.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                _read_body(rd, req)
                done = True
            finally:
                self._record_done(req, done)
            if not self._answer(c, req):
                return
            if _wants_close(req):
                return

    def _head(self, status, reason, headers):
        lines = ["HTTP/1.1 %d %s" % (status, reason), "X-Platform: %s" % self.name]
        lines += ["%s: %s" % kv for kv in headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _answer(self, c, req):
        """Misbehave for req; False when the connection must end."""
        head_only = req.method == "HEAD"
        mode = self.mode
        if mode == "reset":
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False  # _run_conn closes the socket: RST
        if mode == "close":
            return False
        if mode == "hang":
            while not self.stopping.is_set():
                data = c.sock.recv(65536)
                if not data:
                    break
                c.bytes += len(data)
            return False
        if mode == "half_head":
            c.sock.sendall(self.half_head_bytes)
            return False
        if mode == "garbage":
            c.sock.sendall(b"HTTP/1.1 2000 Nonsense\r\nX-Platform: %s\r\n\r\n"
                           % self.name.encode())
            return False
        if mode == "cut":
            c.sock.sendall(self._head(200, "OK", [("Content-Length", str(self.announce))])
                           + b"x" * self.send)
            return False
        if mode == "slow":
            if self.stopping.wait(self.delay):
                return False
            body = ("%s %s %s\n" % (self.name, req.method, req.target)).encode("latin-1")
            c.sock.sendall(self._head(200, "OK", [("Content-Type", "text/plain"),
                                                  ("Content-Length", str(len(body)))])
                           + (b"" if head_only else body))
            return True
        # status
        body = ("%s status %d %s\n" % (self.name, self.status, req.target)).encode("latin-1")
        c.sock.sendall(self._head(self.status, "Fault", [("Content-Type", "text/plain"),
                                                         ("Content-Length", str(len(body)))])
                       + (b"" if head_only else body))
        return True


class Refused:
    """An address where connections are refused (nothing listens there)."""

    name = "refused"
    connections = 0

    def __init__(self, host="127.0.0.1"):
        self.host = host
        self.port = harness.free_port(host)

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    def start(self):
        return self

    def completed(self, path=None):
        return []

    def stop(self):
        pass


def _pending_connect(addr, wait):
    """A non-blocking connect to addr: (socket, True) when it completed
    within `wait` seconds, (socket, False) when it is still pending."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    err = s.connect_ex(addr)
    if err == 0:
        return s, True
    _, wl, _ = select.select([], [s], [], wait)
    if wl and s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
        return s, True
    return s, False


class Blackhole:
    """A listener (backlog 0) that never accepts, its accept queue filled by
    connections this object holds: Linux drops any further SYN, so a
    connection attempt hangs until the connecting side gives up."""

    name = "blackhole"

    def __init__(self, host="127.0.0.1"):
        self.host = host
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind((host, 0))
        self.lsock.listen(0)
        self.port = self.lsock.getsockname()[1]
        self.fillers = []

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    @property
    def connections(self):
        return 0  # it never accepts

    def start(self):
        addr = (self.host, self.port)
        for _ in range(16):  # the queue holds one or two connections
            s, done = _pending_connect(addr, 0.2 * harness.SLOW)
            if not done:
                s.close()
                break
            self.fillers.append(s)
        else:
            raise AssertionError("blackhole: the accept queue of %s never filled" % self.address)
        # proof: a fresh attempt gets no answer
        t0 = time.monotonic()
        s, done = _pending_connect(addr, 0.3)
        s.close()
        if done:
            raise AssertionError("blackhole: a connection to %s completed after %.2fs"
                                 % (self.address, time.monotonic() - t0))
        return self

    def completed(self, path=None):
        return []

    def stop(self):
        for s in self.fillers:
            s.close()
        self.fillers = []
        self.lsock.close()


class Faults:
    """Starts fault backends and stops them all (used by a fixture)."""

    def __init__(self):
        self.started = []
        self.lock = threading.Lock()

    def __call__(self, mode, name="new", **kw):
        if mode == "refused":
            b = Refused()
        elif mode == "blackhole":
            b = Blackhole()
        else:
            b = FaultBackend(name, mode, **kw)
        with self.lock:
            self.started.append(b)
        return b.start()

    def stop_all(self):
        with self.lock:
            started, self.started = self.started, []
        for b in reversed(started):
            b.stop()
