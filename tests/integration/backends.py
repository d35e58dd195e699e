"""Test backends: raw-socket threaded HTTP/1.1 servers written for the suite,
so a test controls and sees every byte.

PlatformBackend -- plays "legacy" or "new": parses each request itself
    (head, Content-Length or chunked body), records it, answers with
    `X-Platform: <name>` and a body naming the platform, keeps connections
    alive, and serves special paths:
        /size/N     N bytes, Content-Length, streamed in large writes
        /chunked/N  N bytes, chunked
        /close/N    N bytes, delimited by closing the connection
        /slow/MS    answers after MS milliseconds
        /upload     reads the body slowly (upload_rate bytes/s in reads of
                    upload_read_size) and answers "sha256 length"
        /status/N   answers status N
        /early      103 Early Hints, then 200
        /hop        a response carrying hop-by-hop headers
    Any body it receives is hashed; small bodies are kept.

RawBackend -- reads a request head (and a Content-Length body), then answers
    configured raw bytes, closes, resets, or never answers.

Both listen on 127.0.0.1 (or ::1) on a port the OS picks, count accepted
connections and received bytes, and stop their threads in stop().
"""

import hashlib
import random
import select
import socket
import struct
import threading
import time

from fields import FieldLookup

# Deterministic payload: a random block whose length is not a power of two,
# repeated, so reordered, dropped or repeated pieces change the hash.
_PATTERN_LEN = (1 << 20) + 7
_PATTERN = random.Random(20240601).randbytes(_PATTERN_LEN)
_PATTERN2 = memoryview(_PATTERN + _PATTERN)
_sha_cache = {}


def pattern_slices(n, piece=1 << 20):
    """Yield memoryviews covering the first n bytes of the payload pattern."""
    off = 0
    while off < n:
        k = min(piece, n - off, _PATTERN_LEN)
        s = off % _PATTERN_LEN
        yield _PATTERN2[s:s + k]
        off += k


def pattern_bytes(n):
    return b"".join(bytes(s) for s in pattern_slices(n))


def pattern_sha256(n):
    """sha256 hex of the first n pattern bytes (what /size/N etc. send)."""
    if n not in _sha_cache:
        h = hashlib.sha256()
        for s in pattern_slices(n):
            h.update(s)
        _sha_cache[n] = h.hexdigest()
    return _sha_cache[n]


class PeerClosed(Exception):
    pass


class BadRequest(Exception):
    pass


class _Reader:
    """Buffered reads on a socket, counting bytes."""

    def __init__(self, sock, conn):
        self.sock = sock
        self.conn = conn
        self.buf = bytearray()
        self.scratch = bytearray(1 << 20)

    def _recv(self, n):
        data = self.sock.recv(n)
        if not data:
            raise PeerClosed()
        self.conn.bytes += len(data)
        return data

    def head(self, limit=1 << 20):
        """The raw head through the blank line, or None on EOF before any byte."""
        start = 0
        while True:
            i = self.buf.find(b"\r\n\r\n", start)
            if i >= 0:
                head = bytes(self.buf[:i + 4])
                del self.buf[:i + 4]
                return head
            if len(self.buf) > limit:
                raise BadRequest("head too long")
            start = max(0, len(self.buf) - 3)
            try:
                self.buf += self._recv(65536)
            except PeerClosed:
                if not self.buf:
                    return None
                raise

    def line(self, limit=65536):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > limit:
                raise BadRequest("line too long")
            self.buf += self._recv(65536)

    def exact(self, n, sink, read_size=1 << 20, pace=None):
        """Read n bytes into sink(memoryview). pace: a _Pace or None."""
        while n > 0:
            if self.buf:
                k = min(n, len(self.buf))
                if pace is not None:
                    k = min(k, read_size)
                sink(memoryview(bytes(self.buf[:k])))
                del self.buf[:k]
                n -= k
                if pace is not None:
                    pace.account(k)
                continue
            want = min(n, read_size, len(self.scratch))
            got = self.sock.recv_into(self.scratch, want)
            if got == 0:
                raise PeerClosed()
            self.conn.bytes += got
            sink(memoryview(self.scratch)[:got])
            n -= got
            if pace is not None:
                pace.account(got)


class _Pace:
    def __init__(self, rate, stop):
        self.rate = rate
        self.stop = stop
        self.t0 = time.monotonic()
        self.n = 0

    def account(self, n):
        self.n += n
        ahead = self.n / self.rate - (time.monotonic() - self.t0)
        if ahead > 0:
            self.stop.wait(ahead)  # pacing a slow reader, interrupted by stop()


class _Conn:
    def __init__(self, sock, index):
        self.sock = sock
        self.index = index
        self.bytes = 0
        self.closed = False


class Request(FieldLookup):
    """One request as the backend received it."""

    def __init__(self):
        self.method = None
        self.target = None
        self.version = None
        self.headers = []
        self.raw_head = b""
        self.body_len = 0
        self.body_sha256 = None
        self.body = b""
        self.chunked = False
        self.raw_body = b""  # the chunked framing as received, small bodies only
        self.trailers = []
        self.conn = None
        self.complete = False
        self.received_at = None

    def __repr__(self):
        return "<Request %s %s %s conn=%s len=%d complete=%s>" % (
            self.method, self.target, self.version, self.conn, self.body_len, self.complete)


def _parse_request_head(raw):
    lines = raw[:-4].split(b"\r\n")
    parts = lines[0].decode("latin-1").split(" ")
    if len(parts) != 3:
        raise BadRequest("bad request line %r" % lines[0])
    req = Request()
    req.method, req.target, req.version = parts
    req.raw_head = raw
    for line in lines[1:]:
        k, sep, v = line.decode("latin-1").partition(":")
        if not sep:
            raise BadRequest("bad header line %r" % line)
        req.headers.append((k, v.strip(" \t")))
    return req


class _Server:
    """Accept loop and connection bookkeeping shared by both backends."""

    def __init__(self, name, host="127.0.0.1"):
        self.name = name
        self.host = host
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.lsock = socket.socket(fam, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, 0))
        self.lsock.listen(1024)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.conns = []
        self.threads = []
        self.requests = []  # complete requests, in order of arrival
        self.partial = []  # heads whose body never completed (the connection ended)
        self.in_progress = 0  # heads received, body not yet complete, connection open
        self.errors = []  # requests the backend could not parse
        self.accept_thread = threading.Thread(target=self._accept_loop, daemon=True,
                                              name="%s-accept" % name)

    @property
    def address(self):
        if ":" in self.host:
            return "[%s]:%d" % (self.host, self.port)
        return "%s:%d" % (self.host, self.port)

    def start(self):
        self.accept_thread.start()
        return self

    def _accept_loop(self):
        while not self.stopping.is_set():
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            if self.stopping.is_set():
                s.close()
                return
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                c = _Conn(s, len(self.conns))
                self.conns.append(c)
            t = threading.Thread(target=self._run_conn, args=(c,), daemon=True,
                                 name="%s-conn%d" % (self.name, c.index))
            with self.lock:
                self.threads.append(t)
            t.start()

    def _run_conn(self, c):
        try:
            self.serve(c)
        except (PeerClosed, OSError):
            pass
        except (BadRequest, ValueError, UnicodeError) as e:
            with self.lock:
                self.errors.append(repr(e))
        finally:
            c.closed = True
            try:
                c.sock.close()
            except OSError:
                pass

    def stop(self):
        self.stopping.set()
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.lsock.close()
        with self.lock:
            conns = list(self.conns)
            threads = list(self.threads)
        for c in conns:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.accept_thread.join(5)
        deadline = time.monotonic() + 5
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))

    # figures a test asserts on
    @property
    def connections(self):
        """Connections accepted so far."""
        with self.lock:
            return len(self.conns)

    @property
    def open_connections(self):
        with self.lock:
            return sum(1 for c in self.conns if not c.closed)

    @property
    def bytes_received(self):
        with self.lock:
            return sum(c.bytes for c in self.conns)

    def completed(self, path=None):
        with self.lock:
            return [r for r in self.requests if path is None or r.target == path]

    def reset_counters(self):
        with self.lock:
            self.requests = []
            self.partial = []
            self.errors = []

    def _record_head(self, req, c):
        req.conn = c.index
        req.received_at = time.monotonic()
        with self.lock:
            self.in_progress += 1

    def _record_done(self, req, complete):
        req.complete = complete
        with self.lock:
            self.in_progress -= 1
            (self.requests if complete else self.partial).append(req)


def _body_sink(req, keep):
    h = hashlib.sha256()
    kept = bytearray()

    def sink(mv):
        h.update(mv)
        req.body_len += len(mv)
        if len(kept) < keep:
            kept.extend(mv[:keep - len(kept)])

    def finish():
        req.body_sha256 = h.hexdigest()
        req.body = bytes(kept)

    return sink, finish


def _read_body(rd, req, keep=1 << 20, read_size=1 << 20, pace=None):
    """Read the request body per its framing, hashing it."""
    te = req.header("Transfer-Encoding")
    cl = req.header("Content-Length")
    sink, finish = _body_sink(req, keep)
    if te is not None:
        if te.strip().lower() != "chunked":
            raise BadRequest("backend got Transfer-Encoding %r" % te)
        req.chunked = True
        raw = bytearray()
        while True:
            line = rd.line()
            if len(raw) < 65536:
                raw += line
            if not line.endswith(b"\r\n"):
                raise BadRequest("chunk line without CRLF %r" % line)
            size = int(line[:-2].split(b";")[0].strip() or b"x", 16)
            if size == 0:
                break
            rd.exact(size, sink, read_size, pace)
            crlf = bytearray()
            rd.exact(2, lambda mv: crlf.extend(mv))
            if len(raw) < 65536:
                raw += b"<data>" + crlf
            if crlf != b"\r\n":
                raise BadRequest("chunk data not followed by CRLF")
        while True:
            line = rd.line()
            if len(raw) < 65536:
                raw += line
            if line == b"\r\n":
                break
            k, _, v = line.decode("latin-1").partition(":")
            req.trailers.append((k.strip(), v.strip()))
        req.raw_body = bytes(raw)
    elif cl is not None:
        rd.exact(int(cl), sink, read_size, pace)
    finish()


def _wants_close(req):
    conn = ",".join(req.header_all("Connection")).lower()
    tokens = {t.strip() for t in conn.split(",")}
    if req.version == "HTTP/1.0":
        return "keep-alive" not in tokens
    return "close" in tokens


class PlatformBackend(_Server):
    def __init__(self, name, host="127.0.0.1", upload_rate=32 << 20, upload_read_size=16384,
                 idle_close=None):
        super().__init__(name, host)
        self.upload_rate = upload_rate
        self.upload_read_size = upload_read_size
        self.idle_close = idle_close  # seconds: close a keep-alive connection idle that long
        self.response_extra_headers = []  # added to every ordinary response
        self.health_status = 200  # what GET /healthz answers (health checks)

    def serve(self, c):
        rd = _Reader(c.sock, c)
        while not self.stopping.is_set():
            if self.idle_close is not None and not rd.buf:
                rl, _, _ = select.select([c.sock], [], [], self.idle_close)
                if not rl:
                    return  # like a server's keepalive_timeout: close silently
            raw = rd.head()
            if raw is None:
                return
            req = _parse_request_head(raw)
            self._record_head(req, c)
            done = False
            try:
                expect = (req.header("Expect") or "").lower()
                if expect == "100-continue":
                    c.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                if req.target.split("?")[0] == "/upload":
                    _read_body(rd, req, keep=0, read_size=self.upload_read_size,
                               pace=_Pace(self.upload_rate, self.stopping))
                else:
                    _read_body(rd, req)
                done = True
            finally:
                self._record_done(req, done)
            if not self.respond(c, req):
                return
            if _wants_close(req):
                return

    def _send(self, c, status, reason, headers, body=b"", head_only=False):
        lines = ["HTTP/1.1 %d %s" % (status, reason), "X-Platform: %s" % self.name]
        lines += ["%s: %s" % kv for kv in headers + self.response_extra_headers]
        c.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
                       + (b"" if head_only else body))

    def respond(self, c, req):
        """Answer req; returns False when the connection must close."""
        head_only = req.method == "HEAD"
        path, _, query = req.target.partition("?")
        parts = path.split("/")
        close_hdr = [("Connection", "close")] if _wants_close(req) else []
        if len(parts) == 3 and parts[1] in ("size", "chunked", "close") and parts[2].isdigit():
            n = int(parts[2])
            if parts[1] == "size":
                self._send(c, 200, "OK", [("Content-Length", str(n))] + close_hdr, head_only=True)
                if not head_only:
                    for s in pattern_slices(n):
                        c.sock.sendall(s)
                return True
            if parts[1] == "chunked":
                self._send(c, 200, "OK", [("Transfer-Encoding", "chunked")] + close_hdr,
                           head_only=True)
                if not head_only:
                    for s in pattern_slices(n, 256 << 10):
                        c.sock.sendall(b"%x\r\n" % len(s))
                        c.sock.sendall(s)
                        c.sock.sendall(b"\r\n")
                    c.sock.sendall(b"0\r\n\r\n")
                return True
            self._send(c, 200, "OK", [("Connection", "close")], head_only=True)
            if not head_only:
                for s in pattern_slices(n):
                    c.sock.sendall(s)
            return False
        if len(parts) == 3 and parts[1] == "slow" and parts[2].isdigit():
            if self.stopping.wait(int(parts[2]) / 1000.0):
                return False
        if path == "/healthz":
            body = b"health\n"
            self._send(c, self.health_status, "Health", [("Content-Length", str(len(body)))]
                       + close_hdr, body, head_only)
            return True
        if path == "/upload":
            body = ("%s %d\n" % (req.body_sha256, req.body_len)).encode()
            self._send(c, 200, "OK", [("Content-Length", str(len(body)))] + close_hdr, body,
                       head_only)
            return True
        if len(parts) == 3 and parts[1] == "status" and parts[2].isdigit():
            st = int(parts[2])
            if st in (204, 304):
                self._send(c, st, "Status", close_hdr)
            else:
                body = ("%s status %d\n" % (self.name, st)).encode()
                self._send(c, st, "Status", [("Content-Length", str(len(body)))] + close_hdr,
                           body, head_only)
            return True
        if path == "/early":
            c.sock.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
        hop = []
        if path == "/hop":
            hop = [("Connection", "X-Bar, keep-alive"), ("X-Bar", "secret"),
                   ("Keep-Alive", "timeout=5"), ("Proxy-Connection", "keep-alive"),
                   ("Trailer", "X-Checksum"), ("Upgrade", "foo/1"), ("X-End-To-End", "yes")]
        body = ("%s %s %s\n" % (self.name, req.method, req.target)).encode("latin-1")
        self._send(c, 200, "OK", hop + [("Content-Type", "text/plain"),
                                        ("Content-Length", str(len(body)))] + close_hdr,
                   body, head_only)
        return True


class RawBackend(_Server):
    """mode: "respond" (send `response`, then `after`: "hang", "close" or
    "keep" to serve the next request), "close" (close without answering),
    "reset" (abort with RST), "hang" (never answer)."""

    def __init__(self, name="raw", response=b"", mode="respond", after="hang",
                 host="127.0.0.1"):
        super().__init__(name, host)
        self.response = response
        self.mode = mode
        self.after = after

    def serve(self, c):
        rd = _Reader(c.sock, c)
        while not self.stopping.is_set():
            raw = rd.head()
            if raw is None:
                return
            req = _parse_request_head(raw)
            self._record_head(req, c)
            done = False
            try:
                _read_body(rd, req)
                done = True
            finally:
                self._record_done(req, done)
            if self.mode == "close":
                return
            if self.mode == "reset":
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            if self.mode == "hang":
                self._hang(c)
                return
            c.sock.sendall(self.response)
            if self.after == "hang":
                self._hang(c)
                return
            if self.after == "close":
                return

    def _hang(self, c):
        """Keep the connection open, reading and discarding, until the peer
        closes or the backend stops."""
        while not self.stopping.is_set():
            data = c.sock.recv(65536)
            if not data:
                return
            c.bytes += len(data)
