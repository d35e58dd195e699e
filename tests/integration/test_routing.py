"""Routing: the sticky, monotonic percentage shift and the sticky key sources.

Every assertion is per key: the bucket formula of DESIGN.md
(XXH3-64(route NUL key) mod 10^6 < percent * 10^4 -> `to`) predicts which
backend each key reaches, and the test checks the backend that answered.
"""

import signal

import harness
from client import Client, map_keys, route_requests

KEYS_10K = ["uid-%06d" % i for i in range(10000)]


def _mismatches(mapping, route, percent):
    return {k: got for k, got in mapping.items() if got != harness.predict(route, k, percent)}


def test_shift_ratio_within_one_point_and_every_key_on_predicted_backend(proxy, legacy, new):
    host, port = proxy.listen
    mapping = map_keys(host, port, KEYS_10K, nconns=8)
    assert len(mapping) == len(KEYS_10K)
    bad = _mismatches(mapping, "default", 30)
    assert not bad, "%d of %d keys on the wrong backend, e.g. %r" % (
        len(bad), len(mapping), sorted(bad.items())[:10])
    ratio = sum(1 for v in mapping.values() if v == "new") / len(mapping)
    assert abs(ratio - 0.30) <= 0.01, "shift ratio %.4f, configured 30%%" % ratio
    # the backends agree with what the clients saw
    assert len(new.completed()) == sum(1 for v in mapping.values() if v == "new")
    assert len(legacy.completed()) == sum(1 for v in mapping.values() if v == "legacy")
    # and each backend saw each of its keys in the header turnout forwarded
    seen_new = {r.header("X-User-Id") for r in new.completed()}
    assert seen_new == {k for k, v in mapping.items() if v == "new"}


def _sticky_round(t):
    keys = ["sticky-%02d" % i for i in range(20)]
    # 1000 requests: 5 connections, every key 50 times, in different orders
    seq = [keys[(i * 7 + i // 20) % 20] for i in range(1000)]
    pairs = route_requests(*t.listen, seq, nconns=5)
    assert len(pairs) == 1000
    seen = {}
    for k, p in pairs:
        seen.setdefault(k, set()).add(p)
    return keys, seen


def test_same_key_always_reaches_same_backend_also_after_restart(proxy):
    keys, first = _sticky_round(proxy)
    for k in keys:
        assert first[k] == {harness.predict("default", k, 30)}, (k, first[k])
    sides = {next(iter(v)) for v in first.values()}
    assert sides == {"legacy", "new"}, "the key set should cover both sides"

    rc = proxy.stop(timeout=10)
    assert rc == 0, "turnout exited %s on SIGTERM" % rc
    proxy.start()  # same config, same port
    _, second = _sticky_round(proxy)
    assert second == first


def test_raising_percent_only_moves_predicted_keys_from_legacy_to_new(turnout_factory, legacy, new):
    t = turnout_factory(backends={"legacy": [legacy.address], "new": [new.address]},
                        routes=harness.default_routes(10))
    keys = ["mono-%05d" % i for i in range(3000)]
    before = map_keys(*t.listen, keys)
    assert not _mismatches(before, "default", 10)

    movers = {k for k in keys if not harness.shifted("default", k, 10)
              and harness.shifted("default", k, 40)}
    assert len(movers) > 500
    probe = sorted(movers)[0]
    cfg = dict(t.config)
    cfg["routes"] = harness.default_routes(40)
    t.reload(cfg)

    def moved():
        with Client(*t.listen) as c:
            return c.get("/", [("X-User-Id", probe)]).header("X-Platform") == "new"

    harness.wait_until(moved, 10, "key %s to move to new after SIGHUP" % probe, interval=0.05)
    after = map_keys(*t.listen, keys)
    went_back = [k for k in keys if before[k] == "new" and after[k] != "new"]
    assert not went_back, "keys moved back from new to legacy: %r" % went_back[:10]
    moved_keys = {k for k in keys if before[k] == "legacy" and after[k] == "new"}
    assert moved_keys == movers, "unexpected movers %r, missing %r" % (
        sorted(moved_keys - movers)[:10], sorted(movers - moved_keys)[:10])
    assert t.running()


def _first_key(prefix, want_shifted, percent=30, route="default", exclude=()):
    for i in range(10000):
        k = "%s%d" % (prefix, i)
        if harness.shifted(route, k, percent) == want_shifted and k not in exclude:
            return k
    raise AssertionError("no key found")


def _side(shift):
    return "new" if shift else "legacy"


def test_sticky_key_sources_in_configured_order(proxy, connect):
    c = connect(proxy)
    # one key per source, chosen so the sources disagree on the side
    ck = _first_key("cookie-", True)
    hk = _first_key("header-", False)
    qk = _first_key("query-", True)
    ip_side = _side(harness.shifted("default", "127.0.0.1", 30))

    cases = [
        # (headers, target, key that decides)
        ([("Cookie", "a=1; uid=%s; b=2" % ck), ("X-User-Id", hk)], "/?user=" + qk, ck),
        ([("X-User-Id", hk)], "/p?x=1&user=%s" % qk, hk),
        ([], "/p?x=1&user=%s&y=2" % qk, qk),
        ([("Cookie", "uid=%s" % ck)], "/", ck),
        ([("X-User-Id", hk)], "/", hk),
    ]
    for headers, target, key in cases:
        r = c.get(target, headers)
        assert r.status == 200
        assert r.header("X-Platform") == _side(harness.shifted("default", key, 30)), (
            headers, target)
    # no key at all: the client address is the key
    r = c.get("/nokey")
    assert r.header("X-Platform") == ip_side


def test_beta_header_pins_to_new_before_the_shift(proxy, connect):
    c = connect(proxy)
    legacy_key = _first_key("pin-", False)
    r = c.get("/", [("X-User-Id", legacy_key), ("X-User-Tier", "beta")])
    assert r.header("X-Platform") == "new"
    # the route regex is anchored: "betamax" is not beta
    r = c.get("/", [("X-User-Id", legacy_key), ("X-User-Tier", "betamax")])
    assert r.header("X-Platform") == "legacy"
    r = c.get("/", [("X-User-Id", legacy_key)])
    assert r.header("X-Platform") == "legacy"


def test_no_matching_route_answers_503_and_reaches_no_backend(turnout_factory, legacy, new,
                                                             connect):
    routes = [{"name": "beta", "match": {"header": {"X-User-Tier": "^beta$"}}, "backend": "new"}]
    t = turnout_factory(backends={"legacy": [legacy.address], "new": [new.address]},
                        routes=routes)
    c = connect(t)
    r = c.get("/", [("X-User-Id", "x")])
    assert r.status == 503
    r = c.get("/", [("X-User-Tier", "beta")])
    assert r.status == 200 and r.header("X-Platform") == "new"
    assert legacy.connections == 0
    assert [q.target for q in new.completed()] == ["/"]


def test_sighup_with_valid_config_moves_all_keys_at_100_percent(proxy):
    keys = ["full-%03d" % i for i in range(200)]
    before = map_keys(*proxy.listen, keys)
    assert set(before.values()) == {"legacy", "new"}
    cfg = dict(proxy.config)
    cfg["routes"] = harness.default_routes(100)
    proxy.reload(cfg)
    probe = next(k for k in keys if before[k] == "legacy")

    def moved():
        with Client(*proxy.listen) as c:
            return c.get("/", [("X-User-Id", probe)]).header("X-Platform") == "new"

    harness.wait_until(moved, 10, "reload to take effect", interval=0.05)
    after = map_keys(*proxy.listen, keys)
    assert set(after.values()) == {"new"}
    assert proxy.running()
    proxy.signal(signal.SIGTERM)
    assert proxy.wait_exit(15) == 0


def test_fractional_percent_and_the_extremes_predicted_per_key(turnout_factory, legacy, new):
    keys = ["frac-%05d" % i for i in range(4000)]
    t = turnout_factory(backends={"legacy": [legacy.address], "new": [new.address]},
                        routes=harness.default_routes(12.34))
    got = map_keys(*t.listen, keys)
    assert not _mismatches(got, "default", 12.34)
    for percent, side in ((0, "legacy"), (100, "new")):
        cfg = dict(t.config)
        cfg["routes"] = harness.default_routes(percent)
        t.reload(cfg)
        probe = next(k for k in keys if got[k] != side)

        def applied():
            with Client(*t.listen) as c:
                return c.get("/", [("X-User-Id", probe)]).header("X-Platform") == side

        harness.wait_until(applied, 10, "percent %s to apply" % percent, interval=0.05)
        assert set(map_keys(*t.listen, keys[:500]).values()) == {side}


def test_match_on_host_path_method_and_header(turnout_factory, legacy, new, connect):
    routes = [
        {"name": "api", "match": {"path": "^/api/"}, "backend": "new"},
        {"name": "tv", "match": {"host": "^tv\\.example$"}, "backend": "new"},
        {"name": "writes", "match": {"method": ["POST", "PUT"]}, "backend": "new"},
        {"name": "hdr", "match": {"header": {"X-Device": "^(roku|tizen)"}}, "backend": "new"},
        {"name": "rest", "backend": "legacy"},
    ]
    t = turnout_factory(backends={"legacy": [legacy.address], "new": [new.address]},
                        routes=routes, access_log="file")
    c = connect(t)
    cases = [
        ("GET", "/api/v1?x=1", "a.example", [], "new", "api"),
        ("GET", "/apix", "a.example", [], "legacy", "rest"),
        ("GET", "/x?p=/api/", "a.example", [], "legacy", "rest"),  # path excludes the query
        ("GET", "/tv", "tv.example:8080", [], "new", "tv"),  # host match ignores the port
        ("GET", "/tv2", "tv.example.com", [], "legacy", "rest"),
        ("POST", "/w", "a.example", [], "new", "writes"),
        ("GET", "/w2", "a.example", [], "legacy", "rest"),
        ("GET", "/d", "a.example", [("X-Device", "tizen-2024")], "new", "hdr"),
        ("GET", "/d2", "a.example", [("X-Device", "android")], "legacy", "rest"),
    ]
    for method, target, host, hdrs, side, route in cases:
        body = b"x" if method == "POST" else None
        c.request(method, target, hdrs, body, host=host)
        r = c.response(method=method)
        assert r.status == 200
        assert r.header("X-Platform") == side, (method, target, host, hdrs)
        rec = t.wait_log(lambda x, p=target: x.get("path") in (p, p.split("?")[0]))
        assert rec["route"] == route, (target, rec)


def test_sighup_keeps_connections_and_requests_in_flight(proxy, legacy, new, connect):
    key = next(k for k in ("inflight-%d" % i for i in range(1000))
               if not harness.shifted("default", k, 30))
    idle = connect(proxy)
    assert idle.get("/", [("X-User-Id", key)]).header("X-Platform") == "legacy"
    busy = connect(proxy)
    busy.request("GET", "/slow/1000", [("X-User-Id", key)])
    harness.wait_until(lambda: legacy.completed("/slow/1000"), 5, "the slow request to arrive")

    cfg = dict(proxy.config)
    cfg["routes"] = harness.default_routes(100)
    proxy.reload(cfg)

    # the request in flight finishes on the backend it started on
    r = busy.response()
    assert r.status == 200 and r.header("X-Platform") == "legacy"

    # the idle keep-alive connection survives the reload and follows the new plan
    def applied():
        return idle.get("/", [("X-User-Id", key)]).header("X-Platform") == "new"

    harness.wait_until(applied, 10, "the reload to apply on the kept connection", interval=0.05)
    assert proxy.accepts()
