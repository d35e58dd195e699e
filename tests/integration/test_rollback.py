"""Per-request rollback (DESIGN.md "Per-request rollback", issue 6): a request
shifted to `new` that fails before any response byte reached the client is
replayed once on `legacy`, and the client gets legacy's answer.

Every route here shifts 100 % of its requests to `new`, which misbehaves in
one way (faults.py): it refuses connections, resets, answers 503, sends no
response head in time, answers slowly but in time, closes after half a head,
or cuts a response it started. The tests check what a user notices: what
each client received, what each backend received (every request carries a
unique path, so counts are exact), and the access log line (reason and the
`attempts` list) -- plus X-Turnout-Attempts with debug_headers.

Unless a test is about the budget, the budget is made too large to matter
(ratio 100 %, a floor of 1000 replays per second). Passive ejection of `new`
is off (`passive: {failures: 0}`): these tests are about what happens to
each request; test_runtime.py covers ejection, which sends users of a
failing `new` straight to `legacy`.
"""

import collections
import hashlib
import threading
import time

import pytest

import harness
from backends import pattern_bytes
from client import Client, NoResponse, build_request
from faults import Faults

SHIFT_ALL = [{"name": "default", "shift": {"from": "legacy", "to": "new", "percent": 100}}]
NO_BUDGET = {"ratio": 100, "window": "10s", "min_per_second": 1000}
ROLLBACK_REASONS = {"rollback_connect", "rollback_reset", "rollback_timeout", "rollback_status"}


@pytest.fixture
def faults():
    f = Faults()
    yield f
    f.stop_all()


def _start(turnout_factory, legacy, new, rollback=None, debug_headers=None, workers=2,
           timeouts=None, routes=None, budget=True):
    """turnout shifting everything from legacy to new, access log to a file."""
    rb = dict(rollback or {})
    if budget and "budget" not in rb:
        rb["budget"] = dict(NO_BUDGET)
    extra = {}
    if rollback is not None or budget:
        extra["rollback"] = rb
    if debug_headers is not None:
        extra["debug_headers"] = debug_headers
    t = turnout_factory(backends={"legacy": [legacy.address], "new": [new.address]},
                        routes=routes or SHIFT_ALL, access_log="file", workers=workers,
                        timeouts=timeouts or {}, extra=extra, start=False)
    t.cfg["backends"]["new"]["passive"] = {"failures": 0}
    t.write_config(t.cfg)
    return t.start()


def _load(t, reqs, nconns=20, timeout=60.0):
    """Send reqs -- (method, target, headers, body) with unique targets --
    over nconns client threads, thread i sending reqs[i::nconns] one after
    the other on one keep-alive connection (a fresh one when turnout closed
    it). Returns {target: Response}. Raises on any client-side failure."""
    host, port = t.listen
    results = {}
    errors = []
    lock = threading.Lock()
    deadline = time.monotonic() + timeout * harness.SLOW

    def worker(part):
        c = None
        try:
            for method, target, headers, body in part:
                if time.monotonic() > deadline:
                    raise AssertionError("the load ran past its deadline")
                if c is None:
                    c = Client(host, port)
                c.send(build_request(method, target, headers, body))
                try:
                    r = c.response(method=method)
                except NoResponse as e:
                    raise AssertionError("%s %s: %s" % (method, target, e))
                with lock:
                    results[target] = r
                if not r.complete or (r.header("Connection") or "").lower() == "close":
                    c.close()
                    c = None
        except BaseException as e:  # reported below
            with lock:
                errors.append(e)
        finally:
            if c is not None:
                c.close()

    parts = [reqs[i::nconns] for i in range(nconns)]
    threads = [threading.Thread(target=worker, args=(p,), daemon=True) for p in parts if p]
    for th in threads:
        th.start()
    for th in threads:
        th.join(max(0.1, deadline - time.monotonic() + 15 * harness.SLOW))
    if any(th.is_alive() for th in threads):
        raise AssertionError("client threads still running past the deadline")
    if errors:
        raise errors[0]
    assert len(results) == len(reqs), "%d responses for %d requests" % (len(results), len(reqs))
    return results


def _sequential(t, reqs):
    """The same, one request after the other on one connection."""
    return _load(t, reqs, nconns=1)


def _logs(t, paths, timeout=10.0):
    """{path: access log record} once every path in `paths` has its line;
    fails if a path was logged more than once."""
    want = set(paths)

    def complete():
        recs = [x for x in t.log_lines() if x.get("path") in want]
        return recs if len({x["path"] for x in recs}) == len(want) else None

    recs = harness.wait_until(complete, timeout, "access log lines for %d requests" % len(want))
    dup = [p for p, n in collections.Counter(x["path"] for x in recs).items() if n > 1]
    assert not dup, "requests logged more than once: %r" % dup[:5]
    return {x["path"]: x for x in recs}


def _once_each(backend, targets):
    """Assert `backend` received each of `targets` exactly once, and nothing else."""
    got = collections.Counter(r.target for r in backend.completed())
    want = collections.Counter(targets)
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    dup = sorted(k for k, n in got.items() if n > 1)
    assert not (missing or extra or dup), (
        "%s: %d requests, %d missing (e.g. %r), %d unexpected (e.g. %r), %d more than once "
        "(e.g. %r)" % (backend.name, sum(got.values()), len(missing), missing[:3], len(extra),
                       extra[:3], len(dup), dup[:3]))


def _is_ms(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0


def _check_attempt(a, backend, server, status, error):
    assert set(a) >= {"backend", "server", "status", "error", "connect_ms", "ttfb_ms"}, a
    assert (a["backend"], a["server"], a["status"], a["error"]) == (backend, server, status,
                                                                     error), a
    assert a["connect_ms"] is None or _is_ms(a["connect_ms"]), a
    assert a["ttfb_ms"] is None or _is_ms(a["ttfb_ms"]), a
    if status is None:
        assert a["ttfb_ms"] is None, a


def _legacy_ok(r, method, target):
    return (r.status == 200 and r.header("X-Platform") == "legacy" and r.complete
            and r.body == ("legacy %s %s\n" % (method, target)).encode())


def _new_status_body(status, target):
    return ("new status %d %s\n" % (status, target)).encode()


def _log_of(t, target):
    """The access log line of target, for failure messages (best effort)."""
    try:
        return t.wait_log(lambda x: x.get("path") == target, timeout=2.0)
    except harness.Timeout:
        return "(no access log line for %s)" % target


def _assert_legacy_answered(t, res, method="GET"):
    bad = {tg: r for tg, r in res.items() if not _legacy_ok(r, method, tg)}
    if bad:
        first = sorted(bad)[0]
        raise AssertionError("%d of %d clients did not get legacy's 200, e.g. %s got %r "
                             "(body %r); its log line: %r" % (
                                 len(bad), len(res), first, bad[first], bad[first].body[:200],
                                 _log_of(t, first)))


# ------------------------------------------ (a)-(d), (f): 1000 requests each ----

# mode of `new`, turnout timeouts, reason, the first attempt's (status, error),
# whether new receives the requests, how many requests
FAILURES = {
    "a_refused": ("refused", {}, "rollback_connect", (None, "connect_error"), False, 1000),
    "b_reset": ("reset", {}, "rollback_reset", (None, "reset"), True, 1000),
    "c_503": ("status", {}, "rollback_status", (503, None), True, 1000),
    "d_no_head": ("hang", {"response": "250ms"}, "rollback_timeout", (None, "timeout"), True, 1000),
    "f_half_head": ("half_head", {}, "rollback_reset", (None, "closed"), True, 1000),
    # the other failure kinds of the contract, fewer requests
    "close_no_byte": ("close", {}, "rollback_reset", (None, "closed"), True, 40),
    "malformed_head": ("garbage", {}, "rollback_reset", (None, "bad_response"), True, 40),
    "connect_timeout": ("blackhole", {"connect": "200ms"}, "rollback_connect",
                        (None, "connect_timeout"), False, 40),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_failed_shifted_requests_are_replayed_on_legacy(case, turnout_factory, legacy, faults):
    mode, timeouts, reason, (st0, err0), new_sees, n = FAILURES[case]
    new = faults(mode)
    t = _start(turnout_factory, legacy, new, timeouts=timeouts)
    targets = ["/rb/%s/%04d" % (case, i) for i in range(n)]
    res = _load(t, [("GET", tg, [], None) for tg in targets], nconns=20)

    # every client got legacy's answer to its own request
    _assert_legacy_answered(t, res)
    assert all(r.header("X-Turnout-Attempts") is None for r in res.values()), \
        "X-Turnout-Attempts sent without debug_headers"
    # legacy saw each request exactly once; new saw each once (or could not)
    _once_each(legacy, targets)
    if new_sees:
        _once_each(new, targets)
    # the log: one line per request, replayed for the failure's reason
    logs = _logs(t, targets)
    reasons = collections.Counter(x["reason"] for x in logs.values())
    assert reasons == {reason: n}, reasons
    for tg in targets:
        rec = logs[tg]
        assert (rec["status"], rec["backend"], rec["server"]) == (
            200, "legacy", legacy.address), rec
        att = rec["attempts"]
        assert len(att) == 2, rec
        _check_attempt(att[0], "new", new.address, st0, err0)
        _check_attempt(att[1], "legacy", legacy.address, 200, None)


# ------------------------------------------------------- (e): slow in time ----

def test_slow_answer_within_response_timeout_is_not_replayed(turnout_factory, legacy, faults):
    new = faults("slow", delay=0.3)
    t = _start(turnout_factory, legacy, new, timeouts={"response": "2s"})
    targets = ["/rb/slow/%02d" % i for i in range(40)]
    res = _load(t, [("GET", tg, [], None) for tg in targets], nconns=20)
    bad = {tg: r for tg, r in res.items()
           if not (r.status == 200 and r.header("X-Platform") == "new"
                   and r.body == ("new GET %s\n" % tg).encode())}
    assert not bad, "clients that did not get new's answer: %r" % sorted(bad.items())[:3]
    assert legacy.completed() == [], "legacy got %d requests" % len(legacy.completed())
    _once_each(new, targets)
    logs = _logs(t, targets)
    for rec in logs.values():
        assert rec["reason"] == "shift_to" and rec["backend"] == "new", rec
        assert len(rec["attempts"]) == 1, rec
        _check_attempt(rec["attempts"][0], "new", new.address, 200, None)
        assert rec["attempts"][0]["ttfb_ms"] >= 250, rec


# ---------------------------------------------------------------- methods ----

POST_CASES = {
    # rollback settings, request headers, replayed?
    "post_in_methods": ({"methods": ["GET", "POST"]}, [], True),
    "idempotency_key_on": ({"idempotency_key": True}, [("Idempotency-Key", "idem-1")], True),
    "idempotency_key_off": ({}, [("Idempotency-Key", "idem-1")], False),
    "no_key_but_option_on": ({"idempotency_key": True}, [], False),
    "default_methods": ({}, [], False),
}


@pytest.mark.parametrize("case", list(POST_CASES))
def test_post_replayed_only_when_methods_or_idempotency_key_allow(case, turnout_factory, legacy,
                                                                  faults):
    rollback, headers, replayed = POST_CASES[case]
    new = faults("status")
    t = _start(turnout_factory, legacy, new, rollback=rollback)
    bodies = {"/rb/post/%s/%d" % (case, i): ("order %d of %s\n" % (i, case)).encode() * (i + 1)
              for i in range(3)}
    res = _sequential(t, [("POST", tg, headers, b) for tg, b in bodies.items()])
    logs = _logs(t, bodies)
    _once_each(new, list(bodies))
    if replayed:
        _assert_legacy_answered(t, res, "POST")
        _once_each(legacy, list(bodies))
        for req in legacy.completed():
            assert req.body == bodies[req.target], req
            assert req.header("Idempotency-Key") == (headers[0][1] if headers else None), req
        assert {x["reason"] for x in logs.values()} == {"rollback_status"}, logs
    else:
        for tg, r in res.items():
            # the original error: new's own 503
            assert (r.status, r.header("X-Platform"), r.body) == (
                503, "new", _new_status_body(503, tg)), r
        assert legacy.completed() == []
        for rec in logs.values():
            assert rec["reason"] == "not_replayable" and rec["status"] == 503, rec
            assert len(rec["attempts"]) == 1, rec


@pytest.mark.parametrize("mode", ["refused", "reset"])
def test_post_not_replayable_gets_502(mode, turnout_factory, legacy, faults):
    new = faults(mode)
    t = _start(turnout_factory, legacy, new)
    targets = ["/rb/post502/%s/%d" % (mode, i) for i in range(3)]
    res = _sequential(t, [("POST", tg, [], b"form=data&n=%d" % i) for i, tg in enumerate(targets)])
    assert [r.status for r in res.values()] == [502] * 3, res
    assert legacy.completed() == []
    logs = _logs(t, targets)
    assert {x["reason"] for x in logs.values()} == {"not_replayable"}, logs


# -------------------------------------------------------------- max_body ----

def _chunked(data, sizes=(1, 17, 4096, 3, 999, 12000, 250), ext_every=3):
    """data framed as chunks of irregular sizes, some with an extension."""
    out = []
    i = k = 0
    while i < len(data):
        n = sizes[k % len(sizes)]
        piece = data[i:i + n]
        ext = b";ext=%d" % k if k % ext_every == 1 else b""
        out.append(b"%x%s\r\n" % (len(piece), ext) + piece + b"\r\n")
        i += n
        k += 1
    out.append(b"0\r\n\r\n")
    return b"".join(out)


def _put(target, data, framing, extra_headers=()):
    if framing == "chunked":
        return ("PUT", target, [("Transfer-Encoding", "chunked")] + list(extra_headers),
                _chunked(data))
    return ("PUT", target, list(extra_headers), data)


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_body_over_max_body_is_not_replayed(framing, turnout_factory, legacy, faults):
    new = faults("status")
    t = _start(turnout_factory, legacy, new, rollback={"max_body": 1024})
    fits = pattern_bytes(1024)
    over = pattern_bytes(1025)
    t_fits = "/rb/maxbody/%s/fits" % framing
    t_over = "/rb/maxbody/%s/over" % framing
    big = "/rb/maxbody/%s/big" % framing
    res = _sequential(t, [_put(t_fits, fits, framing), _put(t_over, over, framing),
                          _put(big, pattern_bytes(200000), framing)])
    # at max_body: replayed, legacy gets it whole
    assert _legacy_ok(res[t_fits], "PUT", t_fits), (res[t_fits], _log_of(t, t_fits))
    # over it: the client gets new's own 503, legacy nothing
    for tg in (t_over, big):
        r = res[tg]
        assert (r.status, r.header("X-Platform"), r.body) == (
            503, "new", _new_status_body(503, tg)), r
    _once_each(legacy, [t_fits])
    assert legacy.completed()[0].body == fits
    _once_each(new, [t_fits, t_over, big])
    logs = _logs(t, [t_fits, t_over, big])
    assert logs[t_fits]["reason"] == "rollback_status", logs[t_fits]
    for tg in (t_over, big):
        assert logs[tg]["reason"] == "body_too_large" and logs[tg]["status"] == 503, logs[tg]
        assert len(logs[tg]["attempts"]) == 1, logs[tg]


# ----------------------------------------------------- chunked to legacy ----

def test_chunked_body_reaches_legacy_byte_for_byte_with_content_length(turnout_factory, legacy,
                                                                      faults):
    new = faults("status")
    t = _start(turnout_factory, legacy, new)
    data = pattern_bytes(60000)  # under the default max_body (64k)
    tg = "/rb/chunked-replay"
    res = _sequential(t, [_put(tg, data, "chunked")])
    assert _legacy_ok(res[tg], "PUT", tg), (res[tg], _log_of(t, tg))
    # the first attempt went to new chunked, as the client sent it
    [nreq] = new.completed()
    assert nreq.chunked and nreq.body_len == len(data), nreq
    assert nreq.body_sha256 == hashlib.sha256(data).hexdigest()
    # the replay: decoded, framed with Content-Length
    [lreq] = legacy.completed()
    assert lreq.header("Content-Length") == str(len(data)), lreq.headers
    assert lreq.header("Transfer-Encoding") is None, lreq.headers
    assert not lreq.chunked
    assert lreq.body_len == len(data)
    assert lreq.body_sha256 == hashlib.sha256(data).hexdigest()
    assert lreq.body == data
    rec = _logs(t, [tg])[tg]
    assert rec["reason"] == "rollback_status", rec


def _send_body_in_pieces(c, framed, piece=4096):
    """Sends framed in pieces, each after turnout took the previous one (the
    connection stays open: turnout keeps reading while it holds the body)."""
    for i in range(0, len(framed), piece):
        c.send(framed[i:i + piece])


def test_body_still_arriving_when_to_fails_is_held_then_replayed(turnout_factory, legacy,
                                                                 faults, connect):
    """new refuses the connection while the chunked body is still on its way:
    turnout keeps reading it, then replays the whole body on legacy."""
    new = faults("refused")
    t = _start(turnout_factory, legacy, new)
    data = pattern_bytes(40000)
    tg = "/rb/hold"
    c = connect(t)
    c.send(build_request("PUT", tg, [("Transfer-Encoding", "chunked")]))
    # the attempt on new fails at once; the body has not started yet
    _send_body_in_pieces(c, _chunked(data))
    r = c.response(method="PUT")
    assert _legacy_ok(r, "PUT", tg), (r, _log_of(t, tg))
    [lreq] = legacy.completed()
    assert lreq.header("Content-Length") == str(len(data)) and not lreq.chunked, lreq.headers
    assert lreq.body == data
    rec = _logs(t, [tg])[tg]
    assert rec["reason"] == "rollback_connect", rec
    _check_attempt(rec["attempts"][0], "new", new.address, None, "connect_error")
    _check_attempt(rec["attempts"][1], "legacy", legacy.address, 200, None)


def test_early_failure_status_holds_the_body_then_replays(turnout_factory, legacy, faults,
                                                          connect):
    """new answers 503 as soon as it has the head, before the body: turnout
    keeps reading the body (the client sees nothing of new's answer) and
    replays the whole of it on legacy."""
    new = faults("early")
    t = _start(turnout_factory, legacy, new)
    data = pattern_bytes(30000)
    framed = _chunked(data)
    tg = "/rb/early"
    c = connect(t)
    c.send(build_request("PUT", tg, [("Transfer-Encoding", "chunked")]) + framed[:1000])
    harness.wait_until(lambda: new.early_answered == 1, 5, "new to answer the head early")
    _send_body_in_pieces(c, framed[1000:])
    r = c.response(method="PUT")
    assert _legacy_ok(r, "PUT", tg), (r, _log_of(t, tg))
    [lreq] = legacy.completed()
    assert lreq.body == data and lreq.header("Content-Length") == str(len(data))
    rec = _logs(t, [tg])[tg]
    assert rec["reason"] == "rollback_status", rec
    _check_attempt(rec["attempts"][0], "new", new.address, 503, None)
    _check_attempt(rec["attempts"][1], "legacy", legacy.address, 200, None)


def test_held_body_that_outgrows_max_body_gets_the_original_error(turnout_factory, legacy,
                                                                  faults, connect):
    new = faults("refused")
    t = _start(turnout_factory, legacy, new, rollback={"max_body": "16k"})
    data = pattern_bytes(100000)
    tg = "/rb/hold-too-large"
    c = connect(t)
    c.send(build_request("PUT", tg, [("Transfer-Encoding", "chunked")]))
    try:
        _send_body_in_pieces(c, _chunked(data))
    except OSError:
        pass  # turnout answered and closed while the body was still coming
    r = c.response(method="PUT")
    assert r.status == 502, r
    assert legacy.completed() == [], legacy.completed()
    rec = _logs(t, [tg])[tg]
    assert rec["status"] == 502 and rec["reason"] == "body_too_large", rec
    assert [a["backend"] for a in rec["attempts"]] == ["new"], rec


# ------------------------------------------------------------ 100-continue ----

def test_expect_100_continue_with_replay(turnout_factory, legacy, faults, connect):
    new = faults("status")
    t = _start(turnout_factory, legacy, new)
    data = pattern_bytes(5000)
    tg = "/rb/expect"
    c = connect(t)
    c.send(build_request("PUT", tg, [("Content-Length", str(len(data))),
                                     ("Expect", "100-continue")]))
    interim = c.read_head(timeout=3)
    assert interim.status == 100, "expected 100 Continue before sending the body, got %r" % interim
    c.send(data)
    r = c.response(method="PUT")
    assert _legacy_ok(r, "PUT", tg), (r, _log_of(t, tg))
    # no second 100: no backend saw Expect (each would have sent its own)
    assert r.interim == [], r.interim
    [lreq] = legacy.completed()
    assert lreq.body == data
    assert lreq.header("Expect") is None, lreq.headers
    [nreq] = new.completed()
    assert nreq.header("Expect") is None, nreq.headers
    assert nreq.body == data
    rec = _logs(t, [tg])[tg]
    assert rec["reason"] == "rollback_status", rec
    # the connection stays usable
    r = c.get("/rb/expect-after")
    assert _legacy_ok(r, "GET", "/rb/expect-after"), (r, _log_of(t, "/rb/expect-after"))


# ------------------------------------------------------------------ budget ----

# case -> (mode of new, reason of the replays, status an over-budget client gets)
BUDGET_CASES = {
    "refused": ("refused", "rollback_connect", 502),
    "reset": ("reset", "rollback_reset", 502),
    "status": ("status", "rollback_status", 503),
}


@pytest.mark.parametrize("case", list(BUDGET_CASES))
def test_budget_caps_replays_and_the_rest_get_the_original_error(case, turnout_factory, legacy,
                                                                 faults):
    mode, reason, err_status = BUDGET_CASES[case]
    new = faults(mode)
    t = _start(turnout_factory, legacy, new, workers=1,
               rollback={"budget": {"ratio": 20, "window": "30s", "min_per_second": 0}})
    # N = 52: floor(0.2 * 52) = floor(0.2 * 51) = 10, so the count is exact
    # whether or not a request counts itself before its replay is decided.
    n = 52
    targets = ["/rb/budget/%s/%02d" % (case, i) for i in range(n)]
    res = _sequential(t, [("GET", tg, [], None) for tg in targets])
    replayed = [tg for tg in targets if _legacy_ok(res[tg], "GET", tg)]
    refused = [tg for tg in targets if tg not in replayed]
    assert len(replayed) == 10, "%d replays for %d requests, 20%% budget" % (len(replayed), n)
    assert targets[0] not in replayed  # 1 replay needs 5 requests
    for tg in refused:
        r = res[tg]
        assert r.status == err_status, (tg, r)
        if err_status == 503:  # new's own response, untouched
            assert (r.header("X-Platform"), r.body) == ("new", _new_status_body(503, tg)), r
    _once_each(legacy, replayed)
    logs = _logs(t, targets)
    reasons = collections.Counter(x["reason"] for x in logs.values())
    assert reasons == {reason: 10, "budget": n - 10}, reasons
    for tg in refused:
        assert logs[tg]["status"] == err_status and len(logs[tg]["attempts"]) == 1, logs[tg]
        assert logs[tg]["backend"] == "new", logs[tg]


# -------------------------------------------------------- response started ----

def test_response_cut_after_head_is_not_replayed(turnout_factory, legacy, faults, connect):
    new = faults("cut", announce=100000, send=10)
    t = _start(turnout_factory, legacy, new)
    targets = ["/rb/cut/%d" % i for i in range(3)]
    for tg in targets:
        c = connect(t)
        c.request("GET", tg)
        r = c.response()
        assert r.status == 200 and r.header("X-Platform") == "new", r
        assert r.header("Content-Length") == "100000", r
        assert not r.complete and r.cut in ("eof", "reset"), r
        assert r.body_len == 10, r
        c.close()
    assert legacy.completed() == []
    _once_each(new, targets)
    logs = _logs(t, targets)
    for rec in logs.values():
        assert rec["reason"] == "response_started", rec
        assert rec["backend"] == "new" and len(rec["attempts"]) == 1, rec
        assert rec["attempts"][0]["backend"] == "new", rec


# ---------------------------------------------------------------- attempts ----

@pytest.mark.parametrize("mode", ["status", "refused"])
def test_attempts_in_log_and_debug_header(mode, turnout_factory, legacy, faults, connect):
    new = faults(mode)
    t = _start(turnout_factory, legacy, new, debug_headers=True)
    first, err = (503, None) if mode == "status" else (None, "connect_error")
    c = connect(t)
    tg1, tg2 = "/rb/attempts/1", "/rb/attempts/2"
    r1 = c.get(tg1)
    assert _legacy_ok(r1, "GET", tg1), (r1, _log_of(t, tg1))
    r2 = c.get(tg2)  # same client connection: same worker, pooled upstreams
    assert _legacy_ok(r2, "GET", tg2), (r2, _log_of(t, tg2))
    want_hdr = "new/%s %s, legacy/%s 200" % (new.address, first or err, legacy.address)
    assert r1.header_all("X-Turnout-Attempts") == [want_hdr], r1.headers
    assert r2.header_all("X-Turnout-Attempts") == [want_hdr], r2.headers

    logs = _logs(t, [tg1, tg2])
    rec = logs[tg1]
    assert (rec["status"], rec["route"], rec["backend"], rec["server"], rec["reason"]) == (
        200, "default", "legacy", legacy.address,
        "rollback_status" if mode == "status" else "rollback_connect"), rec
    a0, a1 = rec["attempts"]
    _check_attempt(a0, "new", new.address, first, err)
    _check_attempt(a1, "legacy", legacy.address, 200, None)
    # first request: fresh connections, timed
    assert _is_ms(a1["connect_ms"]) and _is_ms(a1["ttfb_ms"]), a1
    # second request: legacy's pooled connection was reused, no connect time
    b0, b1 = logs[tg2]["attempts"]
    assert legacy.connections == 1
    assert b1["connect_ms"] is None and _is_ms(b1["ttfb_ms"]), logs[tg2]
    if mode == "status":
        assert _is_ms(a0["connect_ms"]) and _is_ms(a0["ttfb_ms"]), a0
        # new's connection may or may not be kept after its 503; the log says which
        assert new.connections in (1, 2)
        if new.connections == 1:
            assert b0["connect_ms"] is None, logs[tg2]
        else:
            assert _is_ms(b0["connect_ms"]), logs[tg2]


# -------------------------------------------------------- switched off ----

@pytest.mark.parametrize("mode", ["refused", "status"])
def test_rollback_disabled_replays_nothing(mode, turnout_factory, legacy, faults):
    new = faults(mode)
    t = _start(turnout_factory, legacy, new, rollback={"enabled": False})
    targets = ["/rb/off/%s/%02d" % (mode, i) for i in range(10)]
    res = _load(t, [("GET", tg, [], None) for tg in targets], nconns=5)
    for tg, r in res.items():
        if mode == "refused":
            assert r.status == 502, r
        else:
            assert (r.status, r.header("X-Platform"), r.body) == (
            503, "new", _new_status_body(503, tg)), r
    assert legacy.completed() == []
    logs = _logs(t, targets)
    for rec in logs.values():
        assert rec["reason"] not in ROLLBACK_REASONS and len(rec["attempts"]) == 1, rec


# (rollback settings, mode of new, new's kwargs, timeouts) -> (replayed, status when not)
SWITCHES = {
    "on_connect_error_off": ({"on_connect_error": False}, "refused", {}, {}, False, 502),
    "on_timeout_off": ({"on_timeout": False}, "hang", {}, {"response": "300ms"}, False, 504),
    "on_status_empty": ({"on_status": []}, "status", {}, {}, False, 503),
    "on_status_500_gets_503": ({"on_status": [500]}, "status", {}, {}, False, 503),
    "on_status_500_gets_500": ({"on_status": [500]}, "status", {"status": 500}, {}, True, None),
}


@pytest.mark.parametrize("case", list(SWITCHES))
def test_failure_switches(case, turnout_factory, legacy, faults):
    rollback, mode, kw, timeouts, replayed, status = SWITCHES[case]
    new = faults(mode, **kw)
    t = _start(turnout_factory, legacy, new, rollback=rollback, timeouts=timeouts)
    targets = ["/rb/switch/%s/%d" % (case, i) for i in range(3)]
    res = _sequential(t, [("GET", tg, [], None) for tg in targets])
    logs = _logs(t, targets)
    if replayed:
        _assert_legacy_answered(t, res)
        _once_each(legacy, targets)
        assert {x["reason"] for x in logs.values()} == {"rollback_status"}, logs
    else:
        assert [r.status for r in res.values()] == [status] * 3, res
        assert legacy.completed() == []
        for rec in logs.values():
            assert rec["reason"] not in ROLLBACK_REASONS and len(rec["attempts"]) == 1, rec


def test_defaults_replay_get_not_post(turnout_factory, legacy, faults):
    """No rollback section at all: on, default methods, default budget (its
    floor of 10 replays per second covers a few requests)."""
    new = faults("refused")
    t = _start(turnout_factory, legacy, new, budget=False)
    gets = ["/rb/defaults/get/%d" % i for i in range(5)]
    res = _sequential(t, [("GET", tg, [], None) for tg in gets]
                      + [("POST", "/rb/defaults/post", [], b"a=1")])
    for tg in gets:
        assert _legacy_ok(res[tg], "GET", tg), (res[tg], _log_of(t, tg))
        assert res[tg].header("X-Turnout-Attempts") is None
    assert res["/rb/defaults/post"].status == 502
    _once_each(legacy, gets)
    logs = _logs(t, gets + ["/rb/defaults/post"])
    assert logs["/rb/defaults/post"]["reason"] == "not_replayable"
    assert {logs[tg]["reason"] for tg in gets} == {"rollback_connect"}


def test_pinned_and_from_requests_are_never_replayed(turnout_factory, legacy, faults, connect):
    """A failure of a request pinned to a backend, or of one sent to the
    shift's `from`, is the client's: nothing is replayed anywhere."""
    new = faults("status")
    routes = [
        {"name": "beta", "match": {"header": {"X-User-Tier": "^beta$"}}, "backend": "new"},
        # percent 0: everything stays on `from`, which is the failing one here
        {"name": "back", "shift": {"from": "new", "to": "legacy", "percent": 0}},
    ]
    t = _start(turnout_factory, legacy, new, routes=routes)
    c = connect(t)
    r = c.get("/rb/pinned", [("X-User-Tier", "beta")])
    assert (r.status, r.header("X-Platform")) == (503, "new"), r
    r = c.get("/rb/from")
    assert (r.status, r.header("X-Platform")) == (503, "new"), r
    assert legacy.completed() == []
    logs = _logs(t, ["/rb/pinned", "/rb/from"])
    assert logs["/rb/pinned"]["reason"] == "route_pin", logs
    assert logs["/rb/from"]["reason"] == "shift_from", logs
    assert all(len(x["attempts"]) == 1 for x in logs.values()), logs
