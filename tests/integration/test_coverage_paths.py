"""User-visible paths the rest of the suite never runs (line coverage with
gcov showed them unexecuted):

- assign_cookie: a first visit without a sticky key gets a uid cookie, and
  the cookie keeps the user on the side its bucket says;
- a bodiless request sent on a pooled connection the backend had already
  closed is retried once on a fresh connection;
- timeouts.connect: a server whose connect() never completes -> 502;
- a backend stalling in the middle of a response body: the client sees
  the cut after timeouts.response;
- the bound on pipelined input buffered while a response is slow;
- an HTTP/0.9 request line ("GET /" CRLF) gets 400 and a close at once, not
  after timeouts.client_header.
"""

import re
import threading
import time

import pytest

import harness
from faults import Blackhole
from client import build_request

ROUTE = "default"


def _pinned(turnout_factory, address, **kw):
    return turnout_factory(backends={"legacy": [address]},
                           routes=[{"name": "all", "backend": "legacy"}], **kw)


# ------------------------------------------------------------ assign_cookie --

UID_COOKIE = re.compile(r"^turnout_uid=([0-9a-f]{32}); Max-Age=7776000; Path=/; HttpOnly$")


def test_assign_cookie_on_first_visit_then_the_cookie_keeps_the_side(turnout_factory, legacy, new,
                                                                     connect):
    """docs/routing.md: with assign_cookie on and no sticky key in the
    request, turnout makes a 128-bit uid, routes by it (key source
    "assigned") and sends it in Set-Cookie; sent back, the cookie is the key
    and no new cookie is set."""
    percent = 50
    t = turnout_factory(backends={"legacy": [legacy.address], "new": [new.address]},
                        routes=[{"name": ROUTE, "shift": {"from": "legacy", "to": "new",
                                                          "percent": percent}}],
                        extra={"assign_cookie": {"name": "turnout_uid", "max_age": "90d"}},
                        access_log="file")
    users = {}
    for i in range(12):
        c = connect(t)
        r = c.get("/first/%d" % i)
        assert r.status == 200, r
        cookies = r.header_all("Set-Cookie")
        assert len(cookies) == 1, "first visit %d: Set-Cookie %r" % (i, cookies)
        m = UID_COOKIE.match(cookies[0])
        assert m, "Set-Cookie %r is not turnout_uid=<32 hex>; Max-Age=7776000; Path=/; HttpOnly" % (
            cookies[0],)
        uid = m.group(1)
        assert uid not in users, "uid %s handed out twice" % uid
        side = harness.predict(ROUTE, uid, percent)
        assert r.header("X-Platform") == side, (
            "uid %s (bucket %d) should be on %s" % (uid, harness.bucket(ROUTE, uid), side))
        users[uid] = (c, side, i)

    for uid, (c, side, i) in users.items():
        rec = t.wait_log(lambda x, p="/first/%d" % i: x.get("path") == p,
                         what="the log line of first visit %d" % i)
        assert rec["key_source"] == "assigned", rec
        assert rec["bucket"] == harness.bucket(ROUTE, uid), rec
        assert rec["backend"] == side and rec["route"] == ROUTE, rec

        # the user comes back with the cookie: same side, no new cookie
        for j in range(3):
            r = c.get("/back/%d/%d" % (i, j),
                      [("Cookie", "theme=dark; turnout_uid=%s" % uid)])
            assert r.status == 200, r
            assert r.header("X-Platform") == side, (i, j, r)
            assert r.header_all("Set-Cookie") == [], (
                "a returning user got a new cookie: %r" % r.header_all("Set-Cookie"))
        rec = t.wait_log(lambda x, p="/back/%d/2" % i: x.get("path") == p,
                         what="the log line of the return visit of user %d" % i)
        assert rec["key_source"] == "assigned", rec
        assert rec["bucket"] == harness.bucket(ROUTE, uid), rec
        assert rec["backend"] == side, rec

    # a request that has a configured sticky key of its own gets no cookie
    r = connect(t).get("/keyed", [("X-User-Id", "u-123")])
    assert r.status == 200 and r.header_all("Set-Cookie") == [], r
    assert r.header("X-Platform") == harness.predict(ROUTE, "u-123", percent)
    rec = t.wait_log(lambda x: x.get("path") == "/keyed")
    assert rec["key_source"] == "header" and rec["bucket"] == harness.bucket(ROUTE, "u-123")
    # the backends saw every request once (each on the side checked above)
    assert sum(len(b.completed()) for b in (legacy, new)) == 12 * 4 + 1


# ------------------------------------------------ stale pooled connection ----

OK_THEN_CLOSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def test_bodiless_request_on_a_stale_pooled_connection_is_retried_once(
        turnout_factory, backend_factory, connect):
    """The backend answers without Connection: close and closes the
    connection right after. The client pipelines a second GET, so turnout
    leases the pooled connection again in the very callback that pooled it,
    before it can see the backend's FIN: the request goes out on a dead
    connection. turnout must retry it once on a fresh connection; the
    client gets 200 and the backend sees that request exactly once."""
    b = backend_factory("raw", "legacy", response=OK_THEN_CLOSE, after="close")
    t = _pinned(turnout_factory, b.address, access_log="file")
    for round_ in range(3):  # the same each time, not a lucky race
        c = connect(t)
        a, z = "/stale/%d/a" % round_, "/stale/%d/b" % round_
        c.send(build_request("GET", a) + build_request("GET", z))
        r1 = c.response()
        r2 = c.response()
        assert (r1.status, r1.body) == (200, b"ok"), r1
        assert (r2.status, r2.body) == (200, b"ok"), (
            "the request sent on the stale pooled connection was not retried: %r" % r2)
        seen = [q.target for q in b.completed() if q.target.startswith("/stale/%d/" % round_)]
        assert seen == [a, z], "the backend saw %r" % seen
        conn_of = {q.target: q.conn for q in b.completed()}
        assert conn_of[a] != conn_of[z], "the second request went on the first connection"
        rec = t.wait_log(lambda x, p=z: x.get("path") == p)
        assert rec["status"] == 200, rec
    assert not b.partial and not b.errors, (b.partial, b.errors)
    assert b.connections == 6, "one connection per request, then one per retry: %d" % b.connections


# ---------------------------------------------------------- connect timeout --

@pytest.fixture
def blackhole():
    bh = Blackhole()
    try:
        yield bh.start()
    finally:
        bh.stop()


def test_connect_that_never_completes_gives_502_after_connect_timeout(turnout_factory, blackhole,
                                                                      connect):
    t = _pinned(turnout_factory, blackhole.address, timeouts={"connect": "500ms"},
                access_log="file")
    c = connect(t)
    for i in range(2):
        t0 = time.monotonic()
        r = c.get("/blackhole/%d" % i, timeout=10)
        elapsed = time.monotonic() - t0
        assert r.status == 502, r
        assert 0.45 <= elapsed <= 0.5 + 2.0 * harness.SLOW, (
            "502 after %.2fs; timeouts.connect is 500ms" % elapsed)
        if (r.header("Connection") or "").lower() == "close":
            c.close()
            c.connect()
    rec = t.wait_log(lambda x: x.get("path") == "/blackhole/0")
    assert rec["status"] == 502 and rec["reason"] == "connect_timeout", rec
    assert rec["backend"] == "legacy" and rec["server"] == blackhole.address, rec


# ------------------------------------------------- stall inside a response --

def test_backend_stalling_inside_a_response_body_is_cut_after_response_timeout(
        turnout_factory, backend_factory, connect):
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
    b = backend_factory("raw", "legacy", response=head + b"x" * 1000, after="hang")
    t = _pinned(turnout_factory, b.address, timeouts={"response": "1s"}, access_log="file")
    c = connect(t)
    t0 = time.monotonic()
    r = c.get("/stall", timeout=10)
    elapsed = time.monotonic() - t0
    assert r.status == 200 and r.header("Content-Length") == "100000", r
    assert not r.complete and r.cut in ("eof", "reset"), r
    assert r.body_len == 1000 and r.body == b"x" * 1000, r.body_len
    # the body must move every timeouts.response: cut after one or two periods
    assert 0.9 <= elapsed <= 2.0 + 2.0 * harness.SLOW, "cut after %.2fs, timeout 1s" % elapsed
    rec = t.wait_log(lambda x: x.get("path") == "/stall")
    assert rec["reason"] == "response_timeout" and rec["status"] == 200, rec
    # the stalled upstream connection is closed, never pooled
    harness.wait_until(lambda: b.open_connections == 0, 5,
                       "turnout to close the stalled upstream connection")
    assert len(b.completed()) == 1


# ----------------------------------------------- bounded pipelined input ----

PIPE_BODY = 1 << 20  # bytes per pipelined POST
PIPE_COUNT = 64  # 64 MiB in all: far beyond what socket buffers hold
READ_HIGH = 256 << 10  # docs/architecture.md: reading stops at 256 KiB


class _Sender(threading.Thread):
    """Sends raw request bytes on its own handle of the client's socket,
    counting what the kernel accepted."""

    def __init__(self, sock, count):
        super().__init__(daemon=True)
        self.sock = sock.dup()  # own timeout: the reader sets the other's
        self.sock.settimeout(60 * harness.SLOW)
        self.count = count
        self.sent = 0
        self.error = None
        self.body = memoryview(bytes(range(256)) * (PIPE_BODY // 256))

    def run(self):
        try:
            for i in range(self.count):
                self._send(memoryview(build_request("POST", "/pipe/%d" % i,
                                                    [("Content-Length", str(PIPE_BODY))])))
                self._send(self.body)
        except BaseException as e:  # reported by the test
            self.error = e
        finally:
            self.sock.close()

    def _send(self, mv):
        while mv:
            n = self.sock.send(mv[:65536])
            self.sent += n
            mv = mv[n:]


def test_pipelined_input_is_bounded_while_a_response_is_slow(turnout_factory, legacy, connect):
    t = _pinned(turnout_factory, legacy.address,
                timeouts={"response": "30s", "client_body": "30s", "client_idle": "30s"})
    c = connect(t, timeout=30)
    assert c.get("/warm").status == 200
    before = t.proc_status()["VmRSS"]
    slow = "/slow/%d" % int(4000 * harness.SLOW)
    c.send(build_request("GET", slow))
    harness.wait_until(lambda: legacy.completed(slow), 5, "the slow request to reach the backend")

    sender = _Sender(c.sock, PIPE_COUNT)
    total = sum(PIPE_BODY + len(build_request("POST", "/pipe/%d" % i,
                                              [("Content-Length", str(PIPE_BODY))]))
                for i in range(PIPE_COUNT))
    sender.start()
    try:
        # the client pushes until turnout stops reading and the socket
        # buffers are full: its count then stops moving
        state = {"n": -1, "since": time.monotonic()}

        def stalled():
            n, now = sender.sent, time.monotonic()
            if n != state["n"]:
                state["n"], state["since"] = n, now
                return False
            return n >= READ_HIGH and now - state["since"] >= 0.3

        harness.wait_until(stalled, 3, "the pipelining client to be held back", interval=0.05)
        grown = t.proc_status()["VmRSS"] - before
        pushed = sender.sent
        assert not legacy.completed("/pipe/0"), "a pipelined request went ahead of the slow one"
        assert pushed < total - (16 << 20), (
            "the client pushed %d of %d bytes while the first response was pending: "
            "turnout kept reading" % (pushed, total))
        assert grown < (8 << 20), (
            "turnout's RSS grew by %d bytes while %d pipelined bytes waited" % (grown, pushed))

        # once the slow response is out, every pipelined request is served, in order
        r = c.response(timeout=30)
        assert r.status == 200 and r.text() == "legacy GET %s\n" % slow, r
        for i in range(PIPE_COUNT):
            r = c.response(timeout=30)
            assert r.status == 200 and r.text() == "legacy POST /pipe/%d\n" % i, (i, r)
    finally:
        sender.join(60 * harness.SLOW)
    assert not sender.is_alive(), "the sender did not finish"
    assert sender.error is None, sender.error
    assert sender.sent == total
    done = legacy.completed()
    assert [q.target for q in done] == ["/warm", slow] + ["/pipe/%d" % i for i in range(PIPE_COUNT)]
    assert all(q.body_len == PIPE_BODY for q in done[2:])
    assert len({q.body_sha256 for q in done[2:]}) == 1
    if not harness.SANITIZED:
        assert t.proc_status()["VmHWM"] < (64 << 20)


# ------------------------------------------------------------------ HTTP/0.9 --

def test_http09_request_line_gets_400_and_close_at_once(turnout_factory, legacy, connect):
    """"GET /" CRLF is an HTTP/0.9 request: no head follows, so there is
    nothing to wait for. The answer must not wait for client_header (5 s)."""
    t = _pinned(turnout_factory, legacy.address, timeouts={"client_header": "5s"},
                access_log="file")
    c = connect(t)
    t0 = time.monotonic()
    c.send(b"GET /\r\n")
    r = c.response(timeout=6)
    elapsed = time.monotonic() - t0
    assert r.status == 400, "expected 400 at once, got %d after %.2fs" % (r.status, elapsed)
    assert elapsed < 1.0 * harness.SLOW, "400 after %.2fs; client_header is 5s" % elapsed
    assert (r.header("Connection") or "").lower() == "close", r.headers
    assert c.wait_closed(1) in ("eof", "reset"), "connection still open after the 400"
    rec = t.wait_log(lambda x: x.get("status") == 400)
    assert "HTTP version" in (rec["reason"] or ""), rec
    assert legacy.connections == 0


def test_http09_request_line_is_judged_only_once_its_crlf_arrives(turnout_factory, legacy,
                                                                  connect):
    t = _pinned(turnout_factory, legacy.address, timeouts={"client_header": "5s"})
    c = connect(t)
    c.send(b"GET /index.html")
    assert c.is_open(0.3), "turnout answered before the request line ended: %r" % c.extra
    c.send(b"\r")
    assert c.is_open(0.3), "turnout answered before the request line's LF: %r" % c.extra
    t0 = time.monotonic()
    c.send(b"\n")
    r = c.response(timeout=6)
    assert r.status == 400 and time.monotonic() - t0 < 1.0 * harness.SLOW, r
    assert c.wait_closed(1) in ("eof", "reset")
    # a request line that does end in a version still waits for its head
    c2 = connect(t)
    c2.send(b"GET / HTTP/1.1\r\n")
    assert c2.is_open(0.5), "a valid request line was answered before its head: %r" % c2.extra
    c2.send(b"Host: test.local\r\n\r\n")
    r = c2.response()
    assert r.status == 200 and r.header("X-Platform") == "legacy", r
    assert [q.target for q in legacy.completed()] == ["/"]
