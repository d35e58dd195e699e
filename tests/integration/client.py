"""A raw HTTP/1.x client for the suite: it sends exactly the bytes a test
gives it and parses what comes back byte by byte, so a test can see framing,
interim responses, cuts and closes the way a real client would.

Every read has a deadline; nothing blocks forever.
"""

import hashlib
import select
import socket
import time

from fields import FieldLookup
from harness import SLOW


class NoResponse(AssertionError):
    """The connection ended (EOF or reset) before any response byte."""


class Response(FieldLookup):
    def __init__(self):
        self.version = None
        self.status = None
        self.reason = None
        self.headers = []  # [(name, value)] in order
        self.raw_head = b""
        self.interim = []  # 1xx responses before this one
        self.body = b""  # kept when the body is small (see Client.response)
        self.body_len = 0
        self.body_sha256 = None
        self.framing = None  # "length", "chunked", "close", "none"
        self.chunked_raw = b""  # the chunked framing as received (small bodies)
        self.trailers = []
        self.complete = False  # False: the connection ended inside the body
        self.cut = None  # "eof" or "reset" when the body was cut

    def has(self, name):
        return self.header(name) is not None

    def text(self):
        return self.body.decode("latin-1")

    def __repr__(self):
        return "<Response %s %s %s framing=%s len=%d complete=%s headers=%r>" % (
            self.version, self.status, self.reason, self.framing, self.body_len,
            self.complete, self.headers)


def build_request(method="GET", target="/", headers=None, body=None, version="HTTP/1.1",
                  host="test.local"):
    """Request bytes. headers: list of (name, value) or dict. A Host header is
    added for HTTP/1.1 unless `host` is None or the caller gave one; a
    Content-Length is added for a bytes body unless the caller framed it."""
    hdrs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    names = {k.lower() for k, _ in hdrs}
    if host is not None and "host" not in names:
        hdrs.insert(0, ("Host", host))
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        hdrs.append(("Content-Length", str(len(body))))
    head = "%s %s %s\r\n" % (method, target, version)
    head += "".join("%s: %s\r\n" % (k, v) for k, v in hdrs)
    head += "\r\n"
    data = head.encode("latin-1")
    if body:
        data += body
    return data


def chunked_body(data, chunk=65536, ext="", trailers=None):
    out = []
    for i in range(0, len(data), chunk):
        piece = data[i:i + chunk]
        out.append(b"%x%s\r\n" % (len(piece), ext.encode()) + piece + b"\r\n")
    out.append(b"0\r\n")
    for k, v in (trailers or []):
        out.append(("%s: %s\r\n" % (k, v)).encode())
    out.append(b"\r\n")
    return b"".join(out)


class Client:
    """One client connection."""

    def __init__(self, host, port, timeout=10.0, connect=True):
        self.host = host
        self.port = port
        self.timeout = timeout * SLOW
        self.buf = bytearray()
        self.eof = False
        self.sock = None
        if connect:
            self.connect()

    def connect(self):
        fam = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect((self.host, self.port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = s
        return self

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    # sending
    def send(self, data):
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)

    def request(self, method="GET", target="/", headers=None, body=None, version="HTTP/1.1",
                host="test.local"):
        self.send(build_request(method, target, headers, body, version, host))

    def get(self, target="/", headers=None, version="HTTP/1.1", host="test.local", **kw):
        self.request("GET", target, headers, None, version, host)
        return self.response(method="GET", **kw)

    # receiving
    def _deadline(self, timeout):
        return time.monotonic() + (timeout * SLOW if timeout is not None else self.timeout)

    def _fill(self, deadline, n=262144):
        """Read more bytes into buf; False on EOF. Raises ConnectionResetError
        on a reset and socket.timeout past the deadline."""
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("read deadline passed")
        self.sock.settimeout(left)
        data = self.sock.recv(n)
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _read_line(self, deadline, limit=1 << 20):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > limit:
                raise AssertionError("line longer than %d bytes" % limit)
            if not self._fill(deadline):
                raise EOFError("EOF inside a line")

    def _read_head(self, deadline):
        """The raw head up to and including the blank line."""
        start = 0
        while True:
            i = self.buf.find(b"\r\n\r\n", start)
            if i >= 0:
                head = bytes(self.buf[:i + 4])
                del self.buf[:i + 4]
                return head
            start = max(0, len(self.buf) - 3)
            try:
                more = self._fill(deadline)
            except ConnectionResetError:
                if not self.buf:
                    raise NoResponse("connection reset before any response byte")
                raise
            if not more:
                if not self.buf:
                    raise NoResponse("connection closed before any response byte")
                raise EOFError("EOF inside the response head: %r" % bytes(self.buf[:200]))

    def read_head(self, timeout=None):
        """Read one response head only (e.g. an interim 100 Continue)."""
        return _parse_head(self._read_head(self._deadline(timeout)))

    def response(self, method="GET", timeout=None, keep_body=1 << 20, sink=None,
                 read_size=262144, rate=None, version_hint=None):
        """Read one final response (1xx responses are collected in .interim).
        keep_body: keep the body in .body up to this many bytes (the sha256 and
        length are always computed). rate: bytes per second the client reads
        at (a slow client), with reads of read_size bytes."""
        deadline = self._deadline(timeout)
        interim = []
        while True:
            raw = self._read_head(deadline)
            r = _parse_head(raw)
            if 100 <= r.status < 200 and r.status != 101:
                interim.append(r)
                continue
            break
        r.interim = interim
        h = hashlib.sha256()
        kept = bytearray()
        pacer = _Pacer(rate)

        def consume(data):
            h.update(data)
            r.body_len += len(data)
            if len(kept) < keep_body:
                kept.extend(data[:keep_body - len(kept)])
            if sink is not None:
                sink(data)
            pacer.account(len(data), deadline)

        te = r.header("Transfer-Encoding")
        cl = r.header("Content-Length")
        try:
            if method == "HEAD" or r.status in (204, 304) or r.status == 101:
                r.framing = "none"
                r.complete = True
            elif te is not None:
                if te.strip().lower() != "chunked":
                    raise AssertionError("unexpected Transfer-Encoding %r" % te)
                r.framing = "chunked"
                self._read_chunked(r, deadline, consume, read_size, keep_body)
            elif cl is not None:
                r.framing = "length"
                self._read_n(int(cl), deadline, consume, read_size)
                r.complete = True
            else:
                r.framing = "close"
                self._read_to_eof(deadline, consume, read_size)
                r.complete = True
        except EOFError:
            r.cut = "eof"
        except ConnectionResetError:
            r.cut = "reset"
        r.body = bytes(kept)
        r.body_sha256 = h.hexdigest()
        return r

    def _take(self, n):
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def _read_n(self, n, deadline, consume, read_size):
        while n > 0:
            if not self.buf:
                if not self._fill(deadline, read_size):
                    raise EOFError("EOF with %d body bytes missing" % n)
            data = self._take(min(n, len(self.buf)))
            n -= len(data)
            consume(data)

    def _read_to_eof(self, deadline, consume, read_size):
        while True:
            if self.buf:
                consume(self._take(len(self.buf)))
            if not self._fill(deadline, read_size):
                return

    def _read_chunked(self, r, deadline, consume, read_size, keep_raw):
        raw = bytearray()
        while True:
            line = self._read_line(deadline)
            if len(raw) < keep_raw:
                raw += line
            if not line.endswith(b"\r\n"):
                raise AssertionError("chunk-size line without CRLF: %r" % line)
            size = int(line[:-2].split(b";")[0].strip(), 16)
            if size == 0:
                break
            self._read_n(size, deadline, consume, read_size)
            while len(self.buf) < 2:
                if not self._fill(deadline):
                    raise EOFError("EOF after chunk data")
            crlf = self._take(2)
            if crlf != b"\r\n":
                raise AssertionError("chunk data not followed by CRLF: %r" % crlf)
        while True:
            line = self._read_line(deadline)
            if len(raw) < keep_raw:
                raw += line
            if line == b"\r\n":
                break
            k, _, v = line.decode("latin-1").partition(":")
            r.trailers.append((k.strip(), v.strip()))
        r.chunked_raw = bytes(raw)
        r.complete = True

    def wait_closed(self, timeout=3.0, scaled=True):
        """Wait until the peer closes: returns "eof" or "reset", or
        "open" if the connection is still open at the deadline (timeout
        seconds, times SLOW when scaled). Unread bytes that arrive are kept
        in .extra."""
        deadline = self._deadline(timeout) if scaled else time.monotonic() + timeout
        self.extra = bytes(self.buf)
        if self.eof:
            return "eof"
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return "open"
            rl, _, _ = select.select([self.sock], [], [], left)
            if not rl:
                continue
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                return "reset"
            if not data:
                self.eof = True
                return "eof"
            self.extra += data

    def is_open(self, timeout=0.3):
        """True when nothing (no EOF, no bytes) arrived within `timeout`
        seconds. Not scaled by SLOW: tests use it to pace a client against a
        turnout timeout, so the window must stay what the test says."""
        return self.wait_closed(timeout, scaled=False) == "open" and not self.extra


class _Pacer:
    """Keeps a reader at `rate` bytes per second (None: unpaced)."""

    def __init__(self, rate):
        self.rate = rate
        self.t0 = time.monotonic()
        self.n = 0

    def account(self, n, deadline):
        if not self.rate:
            return
        self.n += n
        ahead = self.n / self.rate - (time.monotonic() - self.t0)
        if ahead > 0:
            time.sleep(min(ahead, max(0.0, deadline - time.monotonic())))


def _parse_head(raw):
    r = Response()
    r.raw_head = raw
    lines = raw[:-4].split(b"\r\n")
    status_line = lines[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise AssertionError("bad status line from turnout: %r" % status_line)
    r.version = parts[0]
    r.status = int(parts[1])
    r.reason = parts[2] if len(parts) > 2 else ""
    for line in lines[1:]:
        k, sep, v = line.decode("latin-1").partition(":")
        if not sep or k != k.strip() or not k:
            raise AssertionError("bad header line from turnout: %r" % line)
        r.headers.append((k, v.strip(" \t")))
    return r


def one_request(host, port, data, timeout=10.0, method="GET"):
    """Open a connection, send raw bytes, read one response, report whether
    the connection then closed. Returns (response, close_state)."""
    with Client(host, port, timeout=timeout) as c:
        c.send(data)
        r = c.response(method=method)
        return r, c.wait_closed(3.0)


def route_requests(host, port, keys, nconns=8, header="X-User-Id", target="/", timeout=60.0):
    """Send one request per entry of keys (header: key; keys may repeat)
    over nconns keep-alive connections in threads, connection i taking
    keys[i::nconns]. Returns [(key, X-Platform of the response)].
    Raises if any request failed or the deadline passed."""
    import threading

    keys = list(keys)
    result = []
    errors = []
    lock = threading.Lock()
    deadline = time.monotonic() + timeout * SLOW

    def worker(part):
        try:
            with Client(host, port) as c:
                for k in part:
                    if time.monotonic() > deadline:
                        raise AssertionError("route_requests ran past its deadline")
                    c.request("GET", target, [(header, k)])
                    r = c.response()
                    if r.status != 200:
                        raise AssertionError("key %r: status %d %r" % (k, r.status, r.body[:200]))
                    with lock:
                        result.append((k, r.header("X-Platform")))
        except BaseException as e:  # reported by the caller
            with lock:
                errors.append(e)

    parts = [keys[i::nconns] for i in range(nconns)]
    threads = [threading.Thread(target=worker, args=(p,), daemon=True) for p in parts if p]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic() + 5))
    if any(t.is_alive() for t in threads):
        raise AssertionError("route_requests: client threads still running at the deadline")
    if errors:
        raise errors[0]
    return result


def map_keys(host, port, keys, nconns=8, **kw):
    """{key: X-Platform} for distinct keys (see route_requests)."""
    return dict(route_requests(host, port, keys, nconns, **kw))
