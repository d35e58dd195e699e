"""Backend failures the client sees as gateway errors: a dead backend (nothing
listens) -> 502 at once, well within timeouts.connect; a backend that accepts
but never answers -> 504 once timeouts.response has passed."""

import time

import harness


def _pinned(turnout_factory, address, **timeouts):
    return turnout_factory(backends={"legacy": [address]},
                           routes=[{"name": "all", "backend": "legacy"}],
                           timeouts=timeouts, access_log="file")


def test_dead_backend_gives_502_well_within_connect_timeout(turnout_factory, connect):
    dead = "127.0.0.1:%d" % harness.free_port()
    t = _pinned(turnout_factory, dead, connect="3s")
    c = connect(t)
    for i in range(3):  # every request, not only the first
        t0 = time.monotonic()
        r = c.get("/dead/%d" % i)
        elapsed = time.monotonic() - t0
        assert r.status == 502, r
        assert elapsed < min(1.0 * harness.SLOW, 2.0), "502 took %.2fs; connect timeout is 3s" % elapsed
        if (r.header("Connection") or "").lower() == "close":
            c.close()
            c.connect()
    rec = t.wait_log(lambda x: x.get("path") == "/dead/0")
    assert rec["status"] == 502


def test_silent_backend_gives_504_after_response_timeout(turnout_factory, backend_factory, connect):
    b = backend_factory("raw", "legacy", mode="hang")
    t = _pinned(turnout_factory, b.address, response="1s")
    c = connect(t)
    t0 = time.monotonic()
    r = c.get("/silent", timeout=10)
    elapsed = time.monotonic() - t0
    assert r.status == 504, r
    assert 0.9 <= elapsed < 1.0 + 2.0 * harness.SLOW, "504 after %.2fs, timeout 1s" % elapsed
    assert len(b.completed()) == 1
    # the upstream connection that timed out is not reused: turnout closed it
    harness.wait_until(lambda: b.open_connections == 0, 5,
                       "turnout to close the timed-out upstream connection")


def test_backend_answering_after_timeout_is_not_delivered_to_next_request(
        turnout_factory, backend_factory, legacy, connect):
    """A slow answer that arrives after the 504 must never be taken as the
    answer to a later request (the timed-out connection is discarded)."""
    t = _pinned(turnout_factory, legacy.address, response="1s")
    c = connect(t)
    r = c.get("/slow/1800")
    assert r.status == 504
    if (r.header("Connection") or "").lower() == "close":
        c.close()
        c.connect()
    r = c.get("/fresh")
    assert r.status == 200 and r.text() == "legacy GET /fresh\n"
