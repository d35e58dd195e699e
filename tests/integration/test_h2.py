"""HTTP/2 downstream (issue 11, item 3): every HTTP/2 stream goes through the
same classify -> route -> shift -> replay -> log path as an HTTP/1.1 request.

Clients: python3-h2 (h2.connection) for most cases, raw frames for the
floods, and Debian's curl, nghttp and h2load. Over h2c with prior knowledge
on a plain listener; `scheme` is a parameter of the connection helpers so a
TLS (ALPN h2) variant can be added with the same tests.
"""

import hashlib
import signal
import socket
import struct
import subprocess
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hpack
import pytest

import harness
from backends import pattern_sha256
from faults import Faults

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
ENHANCE_YOUR_CALM = 0xB
PROTOCOL_ERROR = 0x1
NO_ERROR = 0x0
LEGACY_ONLY = [{"name": "all", "backend": "legacy"}]
SHIFT_ALL = [{"name": "default", "shift": {"from": "legacy", "to": "new", "percent": 100}}]


# ------------------------------------------------------------ h2 client ----

def _connect(addr, timeout, ssl_ctx=None):
    """A TCP connection, or TLS with ssl_ctx (ALPN h2 set by the caller):
    the hook for running these tests over a TLS listener."""
    sock = socket.create_connection(addr, timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if ssl_ctx is not None:
        sock = ssl_ctx.wrap_socket(sock, server_hostname="localhost")
        assert sock.selected_alpn_protocol() == "h2"
    return sock


class Resp:
    def __init__(self):
        self.status = None
        self.headers = []
        self.interim = []
        self.body = bytearray()
        self.sha = hashlib.sha256()
        self.length = 0
        self.ended = False
        self.reset = None  # RST_STREAM error code

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


class H2Client:
    """One HTTP/2 connection driven by h2.connection (no validation of what
    we send, so tests can send what a broken client would)."""

    def __init__(self, host, port, timeout=10.0, window_updates=True, keep_body=1 << 20,
                 ssl_ctx=None):
        self.sock = _connect((host, port), timeout, ssl_ctx)
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                        validate_outbound_headers=False,
                                        normalize_outbound_headers=False,
                                        validate_inbound_headers=False)
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.initiate_connection()
        self.window_updates = window_updates
        self.keep_body = keep_body
        self.streams = {}
        self.goaway = None  # (error_code, last_stream_id)
        self.closed = False
        self.flush()

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def start(self, path, method="GET", headers=None, body=None, authority="test.local",
              end=True, raw_headers=None):
        sid = self.conn.get_next_available_stream_id()
        hdrs = raw_headers if raw_headers is not None else [
            (":method", method), (":scheme", "http"), (":authority", authority),
            (":path", path)] + list(headers or [])
        self.streams[sid] = Resp()
        self.conn.send_headers(sid, hdrs, end_stream=end and body is None)
        self.flush()
        if body is not None:
            self.send_body(sid, body, end=end)
        return sid

    def send_body(self, sid, body, end=True, timeout=30.0):
        view = memoryview(body)
        deadline = time.monotonic() + timeout * harness.SLOW
        while view:
            win = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if win <= 0:
                if time.monotonic() > deadline:
                    raise AssertionError("the server's window stayed closed")
                self._recv_once(deadline)
                continue
            self.conn.send_data(sid, bytes(view[:win]))
            view = view[win:]
            self.flush()
        if end:
            self.conn.end_stream(sid)
            self.flush()

    def _recv_once(self, deadline):
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = self.sock.recv(1 << 20)
        except socket.timeout:
            return
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.closed = True
            return
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.closed = True
            return
        for ev in events:
            self._event(ev)
        self.flush()

    def _event(self, ev):
        r = self.streams.get(getattr(ev, "stream_id", None))
        if isinstance(ev, h2.events.ResponseReceived):
            r.status = int(dict(ev.headers)[":status"])
            r.headers = [(k, v) for k, v in ev.headers if not k.startswith(":")]
        elif isinstance(ev, h2.events.InformationalResponseReceived):
            r.interim.append(int(dict(ev.headers)[":status"]))
        elif isinstance(ev, h2.events.DataReceived):
            r.sha.update(ev.data)
            r.length += len(ev.data)
            if len(r.body) < self.keep_body:
                r.body += ev.data[:self.keep_body - len(r.body)]
            if self.window_updates and ev.flow_controlled_length:
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            r.ended = True
        elif isinstance(ev, h2.events.StreamReset):
            if r is not None:
                r.reset = ev.error_code
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaway = (ev.error_code, ev.last_stream_id)

    def wait(self, cond, timeout=10.0, what="the server"):
        deadline = time.monotonic() + timeout * harness.SLOW
        while not cond():
            if self.closed or time.monotonic() > deadline:
                if cond():
                    break
                raise AssertionError("gave up waiting for %s (closed=%s goaway=%s)"
                                     % (what, self.closed, self.goaway))
            self._recv_once(deadline)

    def done(self, sid):
        r = self.streams[sid]
        return r.ended or r.reset is not None

    def fetch(self, path, **kw):
        sid = self.start(path, **kw)
        self.wait(lambda: self.done(sid), what="stream %d" % sid)
        return self.streams[sid]

    def wait_closed(self, timeout=10.0):
        self.wait(lambda: self.closed, timeout, "the connection to close")


@pytest.fixture
def h2c(turnout_factory):
    clients = []

    def make(t, **kw):
        host, port = t.listen
        c = H2Client(host, port, **kw)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def faults():
    f = Faults()
    yield f
    f.stop_all()


def start(turnout_factory, legacy, new=None, routes=None, access_log="file", **kw):
    backends = {"legacy": [legacy.address], "new": [(new or legacy).address]}
    return turnout_factory(backends=backends, routes=routes or LEGACY_ONLY,
                           access_log=access_log, **kw)


# --------------------------------------------------------- raw frames ----

def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", sid & 0x7FFFFFFF) + payload


def req_block(path="/", authority="test.local", extra=()):
    return hpack.Encoder().encode([(":method", "GET"), (":scheme", "http"),
                                   (":authority", authority), (":path", path)] + list(extra))


class RawH2:
    """A socket speaking raw frames: for floods and protocol errors."""

    def __init__(self, t, ssl_ctx=None):
        self.sock = _connect(t.listen, 10, ssl_ctx)
        self.buf = b""
        self.frames = []
        self.closed = False
        self.sock.sendall(PREFACE + frame(4, 0, 0))

    def send(self, data):
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def _parse(self):
        while len(self.buf) >= 9:
            n = struct.unpack(">I", b"\0" + self.buf[:3])[0]
            if len(self.buf) < 9 + n:
                return
            ftype, flags = self.buf[3], self.buf[4]
            sid = struct.unpack(">I", self.buf[5:9])[0] & 0x7FFFFFFF
            self.frames.append((ftype, flags, sid, self.buf[9:9 + n]))
            self.buf = self.buf[9 + n:]

    def read(self, timeout=0.05):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 20)
        except socket.timeout:
            return
        except OSError:
            data = b""
        if not data:
            self.closed = True
            return
        self.buf += data
        self._parse()

    def goaway(self):
        for ftype, _, _, p in self.frames:
            if ftype == 7:
                return struct.unpack(">I", p[4:8])[0]
        return None

    def rst(self, sid):
        for ftype, _, s, p in self.frames:
            if ftype == 3 and s == sid:
                return struct.unpack(">I", p[:4])[0]
        return None

    def wait(self, cond, timeout=10.0, what="frames"):
        deadline = time.monotonic() + timeout * harness.SLOW
        while not cond():
            if self.closed or time.monotonic() > deadline:
                if cond():
                    return
                raise AssertionError("gave up waiting for %s; got %s" % (
                    what, [(f[0], f[2]) for f in self.frames[-10:]]))
            self.read()

    def drain_until_closed(self, timeout=10.0):
        self.wait(lambda: self.closed, timeout, "the connection to close")

    def close(self):
        self.sock.close()


class Bystander:
    """A well-behaved second HTTP/2 client asking GETs in a loop while a
    test abuses the proxy: every answer must be a 200 from legacy."""

    def __init__(self, t):
        self.t = t
        self.stop_ev = threading.Event()
        self.ok = 0
        self.errors = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        c = None
        try:
            c = H2Client(*self.t.listen)
            i = 0
            while not self.stop_ev.is_set():
                r = c.fetch("/bystander/%d" % i)
                i += 1
                if r.status != 200 or r.header("x-platform") != "legacy":
                    self.errors.append((r.status, r.reset))
                    return
                self.ok += 1
        except Exception as e:  # reported by finish()
            self.errors.append(repr(e))
        finally:
            if c:
                c.close()

    def __enter__(self):
        self.thread.start()
        harness.wait_until(lambda: self.ok > 0 or self.errors, 10, "the bystander's first answer")
        return self

    def __exit__(self, *a):
        before = self.ok
        harness.wait_until(lambda: self.ok > before or self.errors, 10,
                           "the bystander to be served after the abuse")
        self.stop_ev.set()
        self.thread.join(15 * harness.SLOW)
        assert not self.thread.is_alive()
        assert not self.errors, self.errors


# ------------------------------------------------------------- basics ----

def test_get_post_and_header_mapping(turnout_factory, legacy, h2c):
    t = start(turnout_factory, legacy)
    c = h2c(t)
    r = c.fetch("/h2/get?x=1", headers=[("cookie", "a=1"), ("user-agent", "t"),
                                        ("cookie", "b=2"), ("te", "trailers"),
                                        ("cookie", "uid=42")])
    assert (r.status, r.header("x-platform")) == (200, "legacy")
    assert bytes(r.body) == b"legacy GET /h2/get?x=1\n"
    assert r.header("via") == "1.1 turnout" and r.header("date")
    assert r.header("content-length") == str(len(r.body))
    req = legacy.completed("/h2/get?x=1")[0]
    assert req.version == "HTTP/1.1"
    assert req.header_all("Host") == ["test.local"]  # :authority -> Host
    assert req.header_all("Cookie") == ["a=1; b=2; uid=42"]  # crumbs joined
    assert req.header("TE") is None
    assert req.header("X-Forwarded-Proto") == "http"
    assert req.header("X-Forwarded-For") == "127.0.0.1"
    # RFC 9110 7.6.3: Via upstream names the protocol the client spoke
    assert req.header_all("Via") == ["2 turnout"]

    r = c.fetch("/upload", method="POST", body=b"hello h2",
                headers=[("content-length", "8")])
    assert r.status == 200
    assert bytes(r.body) == ("%s 8\n" % hashlib.sha256(b"hello h2").hexdigest()).encode()
    up = legacy.completed("/upload")[-1]
    assert up.header("Content-Length") == "8" and not up.chunked
    # no length: streamed upstream chunked
    r = c.fetch("/upload", method="POST", body=b"x" * 100000)
    assert bytes(r.body).startswith(hashlib.sha256(b"x" * 100000).hexdigest().encode())
    assert legacy.completed("/upload")[-1].chunked
    # HEAD and 204: no DATA
    r = c.fetch("/size/1000", method="HEAD")
    assert (r.status, r.length, r.header("content-length")) == (200, 0, "1000")
    r = c.fetch("/status/204")
    assert (r.status, r.length) == (204, 0)
    # hop-by-hop response fields never reach an HTTP/2 client
    r = c.fetch("/hop")
    names = {k.lower() for k, _ in r.headers}
    assert "x-end-to-end" in names
    assert not names & {"connection", "keep-alive", "proxy-connection", "upgrade", "x-bar",
                        "transfer-encoding"}
    # 103 goes out as an interim HEADERS
    r = c.fetch("/early")
    assert r.interim == [103] and r.status == 200
    log = t.wait_log(lambda x: x["path"] == "/h2/get?x=1")
    assert (log["method"], log["status"], log["backend"]) == ("GET", 200, "legacy")
    assert log["proto"] == "HTTP/2"
    # a request refused at its head is logged as HTTP/2 too
    assert c.fetch("/refused", headers=[("host", "other.example")]).status == 400
    log = t.wait_log(lambda x: x["status"] == 400 and x["reason"] == "host_authority_mismatch")
    assert log["proto"] == "HTTP/2"


def test_bodies_stream_20mib_each_way(turnout_factory, legacy, h2c):
    t = start(turnout_factory, legacy)
    c = h2c(t, keep_body=0)
    n = 20 << 20
    r = c.fetch("/size/%d" % n)
    assert (r.status, r.length, r.sha.hexdigest()) == (200, n, pattern_sha256(n))
    r = c.fetch("/chunked/%d" % n)
    assert (r.status, r.length, r.sha.hexdigest()) == (200, n, pattern_sha256(n))
    body = bytes(range(256)) * (n // 256)
    c.keep_body = 1 << 10
    sid = c.start("/upload", method="POST", body=b"", end=False,
                  headers=[("content-length", str(n))])
    c.send_body(sid, body, end=True, timeout=60)
    c.wait(lambda: c.done(sid), 60)
    r = c.streams[sid]
    assert r.status == 200
    assert bytes(r.body) == ("%s %d\n" % (hashlib.sha256(body).hexdigest(), n)).encode()


def test_many_concurrent_streams_on_one_connection(turnout_factory, legacy, h2c):
    t = start(turnout_factory, legacy)
    c = h2c(t)
    sids = {c.start("/many/%d" % i): i for i in range(100)}
    c.wait(lambda: all(c.done(s) for s in sids), 30, "100 streams")
    for s, i in sids.items():
        r = c.streams[s]
        assert (r.status, bytes(r.body)) == (200, b"legacy GET /many/%d\n" % i)
    assert sorted(x.target for x in legacy.completed() if x.target.startswith("/many/")) == \
        sorted("/many/%d" % i for i in range(100))


def test_split_and_sticky_same_as_http1(turnout_factory, legacy, new, h2c, connect):
    t = turnout_factory(backends={"legacy": [legacy.address], "new": [new.address]},
                        routes=harness.default_routes(30))
    c = h2c(t)
    h1 = connect(t)
    for i in range(60):
        key = "user-%d" % i
        want = harness.predict("default", key, 30)
        r = c.fetch("/split/%d" % i, headers=[("x-user-id", key)])
        assert r.header("x-platform") == want, key
        r1 = h1.get("/split/%d" % i, headers=[("X-User-Id", key)])
        assert r1.header("X-Platform") == want
    r = c.fetch("/beta", headers=[("x-user-tier", "beta"), ("x-user-id", "user-0")])
    assert r.header("x-platform") == "new"


@pytest.mark.parametrize("mode,reason", [("refused", "rollback_connect"),
                                         ("reset", "rollback_reset"),
                                         ("status", "rollback_status")])
def test_replay_on_legacy(mode, reason, turnout_factory, legacy, faults, h2c):
    new = faults(mode)
    t = turnout_factory(backends={"legacy": [legacy.address], "new": [new.address]},
                        routes=SHIFT_ALL, access_log="file", start=False,
                        extra={"rollback": {"budget": {"ratio": 100, "window": "10s",
                                                       "min_per_second": 1000}}})
    t.cfg["backends"]["new"]["passive"] = {"failures": 0}
    t.write_config(t.cfg)
    t.start()
    c = h2c(t)
    sids = {c.start("/rb/%s/%d" % (mode, i)): i for i in range(20)}
    c.wait(lambda: all(c.done(s) for s in sids), 30)
    for s, i in sids.items():
        r = c.streams[s]
        assert (r.status, bytes(r.body)) == (200, b"legacy GET /rb/%s/%d\n" % (mode.encode(), i))
    rec = t.wait_log(lambda x: x["path"] == "/rb/%s/0" % mode)
    assert rec["reason"] == reason and len(rec["attempts"]) == 2


# ------------------------------------------------------------ clients ----

def test_curl_nghttp_h2load(turnout_factory, legacy, tmp_path):
    t = start(turnout_factory, legacy)
    url = "http://%s:%d" % t.listen
    out = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w",
                          "%{http_code} %{http_version} %{size_download}",
                          url + "/size/3000000"], capture_output=True, timeout=60, text=True)
    assert out.stdout == "200 2 3000000", out
    f = tmp_path / "up.bin"
    data = bytes(range(256)) * 4096 * 5
    f.write_bytes(data)
    out = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "--data-binary", "@%s" % f,
                          url + "/upload"], capture_output=True, timeout=60, text=True)
    assert out.stdout == "%s %d\n" % (hashlib.sha256(data).hexdigest(), len(data)), out
    out = subprocess.run(["nghttp", "-s", url + "/ng"], capture_output=True, timeout=60, text=True)
    assert out.returncode == 0 and "200" in out.stdout + out.stderr or out.returncode == 0, out
    assert legacy.completed("/ng")
    out = subprocess.run(["h2load", "-n", "2000", "-c", "4", "-m", "50", url + "/load"],
                         capture_output=True, timeout=120, text=True)
    assert "2000 succeeded" in out.stdout and "2000 2xx" in out.stdout, out.stdout


def test_preface_in_pieces_and_h1_upgrade_ignored(turnout_factory, legacy, connect):
    t = start(turnout_factory, legacy)
    s = socket.create_connection(t.listen, timeout=10)
    try:
        for i in range(0, len(PREFACE), 5):
            s.sendall(PREFACE[i:i + 5])
            time.sleep(0.01)
        s.sendall(frame(4, 0, 0) + frame(1, 5, 1, req_block("/pieces")))
        raw = RawH2.__new__(RawH2)
        raw.sock, raw.buf, raw.frames, raw.closed = s, b"", [], False
        raw.wait(lambda: any(f[0] == 0 and f[2] == 1 and f[1] & 1 for f in raw.frames))
    finally:
        s.close()
    # an HTTP/1.1 Upgrade: h2c is answered in HTTP/1.1, never 101
    h1 = connect(t)
    r = h1.get("/upg", headers=[("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"),
                                ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")])
    assert r.status == 200
    req = legacy.completed("/upg")[0]
    assert req.header("Upgrade") is None and req.header("HTTP2-Settings") is None


def test_h2c_false_refuses_the_preface(turnout_factory, legacy):
    t = start(turnout_factory, legacy, start=False)
    t.cfg["listen"][0]["h2c"] = False
    t.write_config(t.cfg)
    t.start()
    s = socket.create_connection(t.listen, timeout=10)
    try:
        s.sendall(PREFACE + frame(4, 0, 0))
        data = b""
        deadline = time.monotonic() + 5 * harness.SLOW
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        assert data.startswith(b"HTTP/1.1 4") or data.startswith(b"HTTP/1.1 5"), data[:100]
    finally:
        s.close()


# ---------------------------------------------------------- malformed ----

MALFORMED = {
    "connection_field": [("connection", "keep-alive")],
    "upgrade_field": [("upgrade", "websocket")],
    "transfer_encoding": [("transfer-encoding", "chunked")],
    "te_not_trailers": [("te", "gzip")],
    "uppercase_name": [("X-Upper", "1")],
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_fields_reset_the_stream(case, turnout_factory, legacy, h2c):
    t = start(turnout_factory, legacy)
    c = h2c(t)
    r = c.fetch("/bad/" + case, headers=MALFORMED[case])
    assert r.reset == PROTOCOL_ERROR and r.status is None
    assert not legacy.completed("/bad/" + case)
    assert c.fetch("/after").status == 200  # the connection goes on


def test_invalid_pseudo_headers_and_limits(turnout_factory, legacy, h2c):
    t = start(turnout_factory, legacy)
    c = h2c(t)
    # no :path
    r = c.fetch("/", raw_headers=[(":method", "GET"), (":scheme", "http"),
                                  (":authority", "a")])
    assert r.reset == PROTOCOL_ERROR
    # pseudo-header after a regular field
    r = c.fetch("/", raw_headers=[(":method", "GET"), (":scheme", "http"), ("x", "1"),
                                  (":path", "/p"), (":authority", "a")])
    assert r.reset == PROTOCOL_ERROR
    # Host that disagrees with :authority
    r = c.fetch("/mismatch", headers=[("host", "other.example")])
    assert r.status == 400
    # Host alone stands for :authority
    r = c.fetch("/hostonly", raw_headers=[(":method", "GET"), (":scheme", "http"),
                                          (":path", "/hostonly"), ("host", "h.example")])
    assert r.status == 200 and legacy.completed("/hostonly")[0].header("Host") == "h.example"
    # CONNECT
    r = c.fetch("/", raw_headers=[(":method", "CONNECT"), (":authority", "a:443")])
    assert r.status == 501
    # oversized header list
    r = c.fetch("/big", headers=[("x-big", "a" * 20000)])
    assert r.status == 431
    # content-length that disagrees with the DATA
    sid = c.start("/cl", method="POST", body=b"12345", headers=[("content-length", "10")])
    c.wait(lambda: c.done(sid))
    assert c.streams[sid].reset == PROTOCOL_ERROR
    assert not legacy.completed("/cl")
    assert c.fetch("/still").status == 200
    assert not {"/mismatch", "/big", "/"} & {x.target for x in legacy.completed()}


# ------------------------------------------------------------- floods ----

def _flood(t, build, n, batch=200):
    """Sends n abusive units built by build(i) on a raw connection, reading
    as it goes; returns the RawH2 once the server closed it."""
    raw = RawH2(t)
    i = 0
    while i < n and not raw.closed:
        if not raw.send(b"".join(build(j) for j in range(i, min(n, i + batch)))):
            break
        i += batch
        raw.read(0.001)
    raw.drain_until_closed(15)
    return raw


FLOODS = {
    "rapid_reset": lambda i: frame(1, 5, 2 * i + 1, req_block("/rr/%d" % i)) +
    frame(3, 0, 2 * i + 1, struct.pack(">I", 8)),
    "settings": lambda i: frame(4, 0, 0, struct.pack(">HI", 4, 65535)),
    "ping": lambda i: frame(6, 0, 0, struct.pack(">Q", i)),
    "priority": lambda i: frame(2, 0, 2 * i + 1, struct.pack(">IB", 0, 15)),
    "window_update": lambda i: frame(8, 0, 0, struct.pack(">I", 1)),
}


@pytest.mark.parametrize("kind", list(FLOODS))
def test_floods_get_enhance_your_calm(kind, turnout_factory, legacy):
    t = start(turnout_factory, legacy)
    with Bystander(t):
        raw = _flood(t, FLOODS[kind], 10000)
        assert raw.goaway() == ENHANCE_YOUR_CALM, raw.frames[-5:]
    if kind == "rapid_reset":
        assert len(legacy.completed()) < 2000  # far from 10 000 requests upstream
    assert "ENHANCE_YOUR_CALM" in t.stderr_text()


def test_empty_data_and_continuation_floods(turnout_factory, legacy):
    t = start(turnout_factory, legacy)
    with Bystander(t):
        raw = RawH2(t)
        raw.send(frame(1, 4, 1, hpack.Encoder().encode([
            (":method", "POST"), (":scheme", "http"), (":authority", "a"), (":path", "/empty")])))
        for _ in range(50):
            if not raw.send(frame(0, 0, 1) * 200):
                break
            raw.read(0.001)
        raw.drain_until_closed(15)
        assert raw.goaway() == ENHANCE_YOUR_CALM

        raw = RawH2(t)
        enc = hpack.Encoder()
        raw.send(frame(1, 0, 1, enc.encode([(":method", "GET"), (":scheme", "http"),
                                            (":authority", "a"), (":path", "/cont")])))
        for i in range(10000):
            if not raw.send(frame(9, 0, 1, enc.encode([("x-c%d" % i, "v" * 100)]))):
                break
            if i % 100 == 0:
                raw.read(0.001)
            if raw.closed:
                break
        raw.drain_until_closed(15)
        assert raw.goaway() in (ENHANCE_YOUR_CALM, PROTOCOL_ERROR)
    assert not legacy.completed("/cont")


def test_window_exhaustion_stalls_only_that_client(turnout_factory, legacy, h2c):
    t = start(turnout_factory, legacy, timeouts={"response": "3s"})
    c = h2c(t, window_updates=False, keep_body=0)
    before = t.proc_status()["VmRSS"]
    sids = [c.start("/size/%d" % (50 << 20)) for _ in range(10)]
    c.wait(lambda: sum(c.streams[s].length for s in sids) >= 65535, 10, "the first window")
    with Bystander(t):
        # the stalled streams take nothing more; the bystander is served
        got = sum(c.streams[s].length for s in sids)
        assert got <= 65535
        grown = t.proc_status()["VmRSS"] - before
        assert grown < 64 << 20, grown
    # the stalled streams are cut when they make no progress for timeouts.response
    c.wait(lambda: all(c.done(s) for s in sids), 20, "the stalled streams to be reset")
    assert all(c.streams[s].reset is not None for s in sids)


# ------------------------------------------------- drain, idle, access log ----

def test_sigterm_goaway_finishes_open_streams(turnout_factory, legacy):
    # raw frames: h2 (the library) treats frames after a GOAWAY as an error
    t = start(turnout_factory, legacy)
    raw = RawH2(t)
    raw.send(frame(1, 5, 1, req_block("/slow/800")) + frame(1, 5, 3, req_block("/slow/900")))
    harness.wait_until(lambda: len(legacy.completed()) >= 2, 10,
                       "the backend to get the requests")
    t.signal(signal.SIGTERM)
    raw.drain_until_closed(10)
    kinds = [(f[0], f[2]) for f in raw.frames]
    assert raw.goaway() == NO_ERROR
    goaway_at = kinds.index((7, 0))
    for sid, path in ((1, b"/slow/800"), (3, b"/slow/900")):
        # the response comes after the GOAWAY, complete
        assert (1, sid) in kinds[goaway_at:], kinds
        data = b"".join(f[3] for f in raw.frames if f[0] == 0 and f[2] == sid)
        assert data == b"legacy GET " + path + b"\n"
        assert any(f[0] == 0 and f[2] == sid and f[1] & 1 for f in raw.frames)
    assert t.wait_exit(10) == 0


def test_idle_connection_gets_goaway_and_closes(turnout_factory, legacy, h2c):
    t = start(turnout_factory, legacy, timeouts={"client_idle": "1s"})
    c = h2c(t)
    assert c.fetch("/once").status == 200
    t0 = time.monotonic()
    c.wait_closed(10)
    assert c.goaway is not None and c.goaway[0] == NO_ERROR
    assert time.monotonic() - t0 >= 0.8
