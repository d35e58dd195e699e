"""Client-side timeouts: a client too slow with its head or body gets 408 and
the connection closes; an idle keep-alive connection is closed after
timeouts.client_idle. Timeouts are 1 s here; timing bounds are loose on the
upper side (scheduling, ASan) and tight on the lower side (no early fire)."""

import time

import harness
from client import Client, build_request


def _start(turnout_factory, legacy):
    return turnout_factory(backends={"legacy": [legacy.address]},
                           routes=[{"name": "all", "backend": "legacy"}],
                           timeouts={"client_header": "1s", "client_body": "1s",
                                     "client_idle": "1s"})


def _expect_408(c, t0, low, high):
    r = c.response(timeout=high + 2)
    elapsed = time.monotonic() - t0
    assert r.status == 408, r
    assert low <= elapsed <= high, "408 after %.2fs, expected %.1f..%.1f" % (elapsed, low, high)
    assert c.wait_closed(3) in ("eof", "reset")
    return r


def test_incomplete_head_gets_408_after_client_header_timeout(turnout_factory, legacy, connect):
    t = _start(turnout_factory, legacy)
    c = connect(t)
    c.send(b"GET /slowhead HTTP/1.1\r\nHost: test.local\r\n")
    _expect_408(c, time.monotonic(), 0.9, 1.0 + 2.0 * harness.SLOW)
    assert legacy.connections == 0


def test_head_trickling_bytes_still_bounded_by_client_header(turnout_factory, legacy, connect):
    """client_header bounds the whole head, not the gap between bytes."""
    t = _start(turnout_factory, legacy)
    c = connect(t)
    t0 = time.monotonic()
    head = b"GET /trickle HTTP/1.1\r\nHost: test.local\r\nX-Long: " + b"x" * 100
    sent = 0
    got = None
    # one byte every 0.1 s: the head would take 15 s; turnout must answer 408 after ~1 s
    for i in range(len(head)):
        if time.monotonic() - t0 > 4 * harness.SLOW:
            break
        try:
            c.send(head[i:i + 1])
        except OSError:
            break
        sent += 1
        if not c.is_open(0.1):  # something arrived: the 408 (or a close)
            got = c.extra
            break
    elapsed = time.monotonic() - t0
    assert got, "no 408 while the head trickled for %.1fs" % elapsed
    assert got.startswith(b"HTTP/1.1 408") or got.startswith(b"HTTP/1.0 408"), got[:100]
    assert 0.9 <= elapsed <= 1.0 + 2.0 * harness.SLOW
    assert legacy.connections == 0


def test_body_progressing_survives_then_408_when_it_stops(turnout_factory, legacy, connect):
    t = _start(turnout_factory, legacy)
    c = connect(t)
    c.send(build_request("POST", "/trickle", [("Content-Length", str(64 * 1024))]))
    # 2 KiB every 0.25 s for 2.5 s, longer than client_body (1 s): every period
    # sees several times the 1 KiB minimum, so the upload goes on
    for i in range(10):
        c.send(b"x" * 2048)
        assert c.is_open(0.25), "turnout answered while the body was progressing: %r" % c.extra
    t_last = time.monotonic()
    # client_body fires every second; the first period without enough bytes ends 1..2 s after
    _expect_408(c, t_last, 0.9, 2.0 + 2.0 * harness.SLOW)
    assert legacy.completed() == []
    harness.wait_until(lambda: legacy.in_progress == 0, 5,
                       "turnout to abort the upstream request whose body never completed")


def test_body_trickling_below_the_minimum_rate_is_cut_off(turnout_factory, legacy, connect):
    t = _start(turnout_factory, legacy)
    c = connect(t)
    t0 = time.monotonic()
    c.send(build_request("POST", "/trickle", [("Content-Length", "20")]))
    # one byte every 0.2 s keeps the connection busy but moves < 1 KiB per
    # client_body period (1 s): a slowloris body, cut at the first period end
    closed = False
    for i in range(15):
        c.send(b"x")
        if not c.is_open(0.2):
            closed = True
            break
    assert closed, "a body trickling 5 bytes/s was never cut off"
    elapsed = time.monotonic() - t0
    assert 0.9 <= elapsed <= 1.5 + 2.0 * harness.SLOW, "cut after %.2fs" % elapsed
    assert c.extra.startswith(b"HTTP/1.1 408 "), c.extra[:200]
    assert legacy.completed() == []


def test_idle_keepalive_connection_closed_after_client_idle(turnout_factory, legacy, connect):
    t = _start(turnout_factory, legacy)
    c = connect(t)
    assert c.get("/one").status == 200
    t0 = time.monotonic()
    state = c.wait_closed(5)
    elapsed = time.monotonic() - t0
    assert state in ("eof", "reset"), "idle connection still open after 5s"
    assert 0.9 <= elapsed <= 1.0 + 2.0 * harness.SLOW, "closed after %.2fs" % elapsed
    assert c.extra == b"", "an idle close sends no response: %r" % c.extra


def test_keepalive_connection_stays_open_while_requests_keep_coming(turnout_factory, legacy,
                                                                    connect):
    t = _start(turnout_factory, legacy)
    c = connect(t)
    t0 = time.monotonic()
    n = 0
    # a request every 0.5 s for 2.5 s: longer than client_idle in total
    while time.monotonic() - t0 < 2.5 and n < 10:
        assert c.get("/tick/%d" % n).status == 200
        n += 1
        assert c.is_open(0.5), "after request %d at %.2fs: connection %s, bytes %r" % (
            n, time.monotonic() - t0, "closed" if c.eof else "open", c.extra[:200])
    assert n >= 4
    assert legacy.connections == 1


def test_connection_that_sends_nothing_is_closed(turnout_factory, legacy):
    t = _start(turnout_factory, legacy)
    with Client(*t.listen) as c:
        assert c.wait_closed(4) in ("eof", "reset")
    assert legacy.connections == 0
