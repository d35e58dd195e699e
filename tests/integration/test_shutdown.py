"""Signals that end turnout: SIGTERM drains (stop accepting, finish what is in
flight, exit 0); SIGINT exits at once."""

import signal
import threading
import time

import harness
from client import Client

N = 50


def _slow_clients(t, path, n):
    results = [None] * n
    errors = []

    def run(i):
        try:
            with Client(*t.listen, timeout=20) as c:
                r = c.get("%s?i=%d" % (path, i), timeout=20)
                results[i] = (r.status, r.body, r.complete)
        except BaseException as e:
            errors.append((i, e))

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for th in threads:
        th.start()
    return threads, results, errors


def test_sigterm_finishes_50_requests_in_flight_refuses_new_connections_exits_0(
        turnout_factory, legacy):
    t = turnout_factory(backends={"legacy": [legacy.address]},
                        routes=[{"name": "all", "backend": "legacy"}])
    threads, results, errors = _slow_clients(t, "/slow/1500", N)
    harness.wait_until(lambda: len(legacy.completed()) >= N, 10,
                       "the backend to receive all %d slow requests" % N)
    t_term = time.monotonic()
    t.signal(signal.SIGTERM)

    # the listener closes: a new connection is refused while the drain goes on
    # (every worker has its own listener: five refusals in a row, not one)
    harness.wait_until(lambda: not any(t.accepts() for _ in range(5)), 3,
                       "turnout to stop accepting after SIGTERM")
    refused_at = time.monotonic()

    for th in threads:
        th.join(20 * harness.SLOW)
    assert not any(th.is_alive() for th in threads), "clients still waiting"
    assert not errors, "requests failed during the drain: %r" % errors[:3]
    for i, res in enumerate(results):
        status, body, complete = res
        assert status == 200 and complete, (i, res)
        assert body == ("legacy GET /slow/1500?i=%d\n" % i).encode()
    rc = t.wait_exit(12)
    assert rc == 0, "exit code %s after SIGTERM" % rc
    # the refusal came during the drain, before the slow answers were due
    assert refused_at - t_term < 1.5 * harness.SLOW


def test_sigterm_with_idle_keepalive_client_exits_promptly(turnout_factory, legacy, connect):
    t = turnout_factory(backends={"legacy": [legacy.address]},
                        routes=[{"name": "all", "backend": "legacy"}])
    c = connect(t)
    assert c.get("/").status == 200
    t.signal(signal.SIGTERM)
    # an idle keep-alive connection does not hold the drain until timeouts.drain (10 s)
    assert c.wait_closed(5) in ("eof", "reset")
    assert t.wait_exit(5) == 0


def test_sigint_exits_at_once_with_a_request_in_flight(turnout_factory, legacy):
    t = turnout_factory(backends={"legacy": [legacy.address]},
                        routes=[{"name": "all", "backend": "legacy"}])
    threads, results, errors = _slow_clients(t, "/slow/8000", 1)
    harness.wait_until(lambda: len(legacy.completed()) == 1, 10, "the slow request to arrive")
    t0 = time.monotonic()
    t.signal(signal.SIGINT)
    t.wait_exit(3)
    assert time.monotonic() - t0 < 3 * harness.SLOW
    threads[0].join(10)
    assert results[0] is None or results[0][0] != 200 or not results[0][2]
