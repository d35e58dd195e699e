"""Upstream keep-alive: turnout pools backend connections per worker, so a
backend sees no more connections than there are concurrent clients."""

import threading

import harness
from client import Client

N_CLIENTS = 4
M_REQUESTS = 50


def _pinned(turnout_factory, backend, **kw):
    return turnout_factory(backends={"legacy": [backend.address]},
                           routes=[{"name": "all", "backend": "legacy"}], **kw)


def test_keepalive_clients_reuse_upstream_connections(turnout_factory, legacy):
    t = _pinned(turnout_factory, legacy)
    errors = []
    barrier = threading.Barrier(N_CLIENTS)

    def run(i):
        try:
            with Client(*t.listen) as c:
                barrier.wait(10)
                for j in range(M_REQUESTS):
                    r = c.get("/c%d/r%d" % (i, j))
                    assert r.status == 200 and r.text() == "legacy GET /c%d/r%d\n" % (i, j)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(N_CLIENTS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60 * harness.SLOW)
    assert not any(th.is_alive() for th in threads), "clients did not finish"
    assert not errors, errors[0]
    assert len(legacy.completed()) == N_CLIENTS * M_REQUESTS
    assert legacy.connections <= N_CLIENTS, (
        "%d keep-alive clients made the backend accept %d connections"
        % (N_CLIENTS, legacy.connections))


def test_one_keepalive_client_uses_one_upstream_connection(turnout_factory, legacy, connect):
    t = _pinned(turnout_factory, legacy)
    c = connect(t)
    for j in range(100):
        r = c.get("/seq/%d" % j)
        assert r.status == 200
    assert legacy.connections == 1
    assert {q.conn for q in legacy.completed()} == {0}


def test_upstream_connection_outlives_client_connection(turnout_factory, legacy):
    workers = 2
    t = _pinned(turnout_factory, legacy, workers=workers)
    for j in range(20):
        with Client(*t.listen) as c:
            r = c.get("/short/%d" % j, [("Connection", "close")])
            assert r.status == 200
            assert c.wait_closed(3) in ("eof", "reset")
    # pooled per worker: at most a couple of connections per worker, never one per client
    assert legacy.connections <= 2 * workers, legacy.connections
    # turnout never forwards the client's "Connection: close" upstream
    assert all(q.header("Connection") is None or "close" not in q.header("Connection").lower()
               for q in legacy.completed())
    assert legacy.open_connections >= 1, "the pooled upstream connection stays open"


def test_pooled_connection_closed_by_backend_is_not_reused(turnout_factory, backend_factory,
                                                           connect):
    """A backend closes idle keep-alive connections after 0.2 s (like a
    server's keepalive_timeout). A request that comes 0.5 s later must not be
    sent on the dead pooled connection and fail: the client sees 200."""
    b = backend_factory("platform", "legacy", idle_close=0.2)
    t = _pinned(turnout_factory, b)
    c = connect(t)
    for i in range(3):
        r = c.get("/stale/%d" % i)
        assert r.status == 200, "request %d after the backend closed its idle connection: %r" % (
            i, r)
        # the backend closes its side; wait until it has, then go on
        harness.wait_until(lambda: b.open_connections == 0, 3,
                           "the backend to close its idle connection")
    assert [q.target for q in b.completed()] == ["/stale/0", "/stale/1", "/stale/2"]


def test_backend_connection_close_header_respected(turnout_factory, backend_factory, connect):
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    b = backend_factory("raw", "legacy", response=raw, after="close")
    t = _pinned(turnout_factory, b)
    c = connect(t)
    for i in range(5):
        r = c.get("/cc/%d" % i)
        assert r.status == 200 and r.body == b"ok"
    assert b.connections == 5
    assert len(b.completed()) == 5
