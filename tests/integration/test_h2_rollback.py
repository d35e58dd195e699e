"""Per-request rollback over HTTP/2 (issue 11): test_rollback.py's fault
matrix -- `new` refuses, resets, answers 503, sends no head in time, half a
head, closes, answers garbage, or never accepts the connection -- run with
HTTP/2 clients, over h2c with prior knowledge and over TLS (ALPN h2). Each
HTTP/2 stream is a stream of the same pipeline, so every client must get
legacy's answer to its own request, each backend must see each request
once, and the access log must give the same reason and attempts as over
HTTP/1.1 (and proto HTTP/2). The requests go as many concurrent streams
on a few connections."""

import collections
import threading
import time

import pytest

import harness
from faults import Faults
from test_h2 import H2Client
from test_rollback import (FAILURES, NO_BUDGET, SHIFT_ALL, _check_attempt, _log_of, _logs,
                           _once_each)
from test_tls import client_ctx, make_cert, tls_listen

TRANSPORTS = ["h2c", "h2-tls"]


@pytest.fixture
def faults():
    f = Faults()
    yield f
    f.stop_all()


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    return make_cert(str(tmp_path_factory.mktemp("h2rb")), "h2rb", ["localhost"], kind="ec")


def _start(turnout_factory, legacy, new, transport, cert, timeouts):
    """turnout shifting everything to new, replaying on legacy, budget out
    of the way, passive ejection off; one listener of the transport."""
    t = turnout_factory(backends={"legacy": [legacy.address], "new": [new.address]},
                        routes=SHIFT_ALL, access_log="file", timeouts=timeouts,
                        extra={"rollback": {"budget": dict(NO_BUDGET)}}, start=False)
    t.cfg["backends"]["new"]["passive"] = {"failures": 0}
    if transport == "h2-tls":
        t.cfg["listen"] = [tls_listen(t.port, [cert])]
    t.write_config(t.cfg)
    return t.start()


def _h2_load(t, targets, ssl_ctx, nconns=2, window=10, timeout=60.0):
    """GET every target, as up to `window` concurrent streams on each of
    nconns connections (one thread each). Returns {target: test_h2.Resp}.
    20 in flight, as in test_rollback.py: the Python backends must answer
    a replay within the 250 ms response timeout of the no-head case."""
    results = {}
    errors = []
    lock = threading.Lock()
    deadline = time.monotonic() + timeout * harness.SLOW

    def worker(part):
        c = None
        try:
            c = H2Client(*t.listen, ssl_ctx=ssl_ctx, keep_body=4096)
            for i in range(0, len(part), window):
                sids = {c.start(tg): tg for tg in part[i:i + window]}
                left = max(0.1, deadline - time.monotonic()) / harness.SLOW
                c.wait(lambda: all(c.done(s) for s in sids), left,
                       "%d streams" % len(sids))
                with lock:
                    results.update({tg: c.streams[s] for s, tg in sids.items()})
        except BaseException as e:  # reported below
            with lock:
                errors.append(e)
        finally:
            if c is not None:
                c.close()

    threads = [threading.Thread(target=worker, args=(targets[i::nconns],), daemon=True)
               for i in range(nconns)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(max(0.1, deadline - time.monotonic() + 15 * harness.SLOW))
    assert not any(th.is_alive() for th in threads), "client threads still running"
    if errors:
        raise errors[0]
    assert len(results) == len(targets), "%d answers for %d requests" % (len(results),
                                                                         len(targets))
    return results


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("case", list(FAILURES))
def test_failed_shifted_h2_requests_are_replayed_on_legacy(case, transport, turnout_factory,
                                                            legacy, faults, cert):
    mode, timeouts, reason, (st0, err0), new_sees, n = FAILURES[case]
    new = faults(mode)
    t = _start(turnout_factory, legacy, new, transport, cert, timeouts)
    targets = ["/rb2/%s/%s/%04d" % (transport, case, i) for i in range(n)]
    ssl_ctx = client_ctx(alpn=("h2",)) if transport == "h2-tls" else None
    res = _h2_load(t, targets, ssl_ctx)

    # every client got legacy's answer to its own request, on its stream
    bad = {tg: (r.status, r.reset, r.header("x-platform"), bytes(r.body[:100]))
           for tg, r in res.items()
           if not (r.status == 200 and r.reset is None and r.ended
                   and r.header("x-platform") == "legacy"
                   and bytes(r.body) == ("legacy GET %s\n" % tg).encode())}
    if bad:
        first = sorted(bad)[0]
        raise AssertionError("%d of %d streams did not get legacy's 200, e.g. %r; its log "
                             "line: %r" % (len(bad), n, sorted(bad.items())[:3],
                                           _log_of(t, first)))
    assert all(r.header("x-turnout-attempts") is None for r in res.values())
    # legacy saw each request exactly once; new saw each once (or could not)
    _once_each(legacy, targets)
    if new_sees:
        _once_each(new, targets)
    for req in legacy.completed()[:5]:
        assert req.header_all("Via") == ["2 turnout"], req
        assert req.header("X-Forwarded-Proto") == ("https" if transport == "h2-tls" else "http")
    # the log: one line per request, the same reason and attempts as HTTP/1.1
    logs = _logs(t, targets)
    reasons = collections.Counter(x["reason"] for x in logs.values())
    assert reasons == {reason: n}, reasons
    for tg in targets:
        rec = logs[tg]
        assert (rec["status"], rec["backend"], rec["server"], rec["proto"]) == (
            200, "legacy", legacy.address, "HTTP/2"), rec
        att = rec["attempts"]
        assert len(att) == 2, rec
        _check_attempt(att[0], "new", new.address, st0, err0)
        _check_attempt(att[1], "legacy", legacy.address, 200, None)
