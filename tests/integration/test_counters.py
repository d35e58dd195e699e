"""The observability counters beyond requests (issue 9): the platforms' own
attempt results before replay, replays and refused replays by reason, the
per-second series and the actual split, per-server connections and connect
errors, per-listener connections, the fleet's applied versions -- each
exact against the traffic the test sends, with two workers, as
`show stats`, /stats.json and /metrics show them. And a scrape under load
never holds a worker up."""

import json
import threading
import time

import harness
import test_metrics
from admin import cmd, jcmd
from client import Client, build_request, map_keys
from test_fleet import redis_conf, wait_redis_up
from test_metrics import fetch, samples
from test_rollback import NO_BUDGET, faults  # noqa: F401 (fixture)

KEYS = ["user-%04d" % i for i in range(500)]


def stats_json(t, seconds=60):
    st, _, body = fetch(t.http, "/stats.json?seconds=%d" % seconds)
    assert st == 200
    return json.loads(body)


def start(turnout_factory, backends, routes, short_dir, workers=2, extra=None, **kw):
    port = harness.free_port()
    sock = short_dir("admin.sock")
    ex = {"admin": {"http": "127.0.0.1:%d" % port, "socket": sock}}
    ex.update(extra or {})
    t = turnout_factory(backends=backends, routes=routes, workers=workers, extra=ex, start=False,
                        **kw)
    for b in t.cfg["backends"].values():
        b["passive"] = {"failures": 0}
    t.write_config(t.cfg)
    t.start()
    t.http, t.sock = port, sock
    return t


def row(rows, route, side, backend):
    return next(r for r in rows if (r["route"], r["side"], r["backend"]) == (route, side, backend))


def series_sum(d, route, side, what):
    r = next(x for x in d["series"]["routes"] if x["route"] == route)
    return sum(v for v in r["sides"][side][what] if v)


def send(t, n, method="GET", path="/r", headers=(), body=b""):
    """n requests on one keep-alive connection; returns their statuses."""
    out = []
    with Client(*t.listen) as c:
        for i in range(n):
            c.send(build_request(method, "%s/%d" % (path, i), list(headers), body))
            out.append(c.response(method=method).status)
    return out


def test_attempt_results_replays_and_refusals_by_reason(turnout_factory, legacy, faults,
                                                        short_dir):
    """The new platform answers 503 to everything: each GET is replayed on
    legacy (the client sees 200), each POST is not replayable (the client
    sees the 503). The new platform's own figures count every 503."""
    new = faults("status", status=503)
    routes = [{"name": "default", "shift": {"from": "legacy", "to": "new", "percent": 100}}]
    t = start(turnout_factory, {"legacy": [legacy.address], "new": [new.address]}, routes,
              short_dir, extra={"rollback": {"budget": dict(NO_BUDGET)}})
    gets = send(t, 60)
    posts = send(t, 15, method="POST", body=b"x" * 10)
    assert gets == [200] * 60 and posts == [503] * 15

    def counted():
        rows = jcmd(t.sock, "show stats")
        to, frm = row(rows, "default", "to", "new"), row(rows, "default", "from", "legacy")
        return (to, frm) if frm["requests"] + to["requests"] == 75 else None
    to, frm = harness.wait_until(counted, 5, "75 requests counted")
    assert frm["requests"] == 60 and frm["status"]["2xx"] == 60
    assert to["requests"] == 15 and to["status"]["5xx"] == 15
    # the platforms' own figures: every attempt on new was a 503
    assert to["upstream"]["5xx"] == 75 and sum(to["upstream"].values()) == 75
    assert frm["upstream"] == dict(frm["upstream"], ok=60) and sum(frm["upstream"].values()) == 60
    assert to["replays"] == {"rollback_connect": 0, "rollback_reset": 0, "rollback_timeout": 0,
                             "rollback_status": 60}
    assert to["refused"]["not_replayable"] == 15 and sum(to["refused"].values()) == 15
    assert sum(frm["replays"].values()) == 0
    # the per-second series: all routed to `to`; attempts and errors per side
    d = harness.wait_until(lambda: (lambda d: d if series_sum(d, "default", "to", "routed") == 75
                                    else None)(stats_json(t)), 5, "the last second complete")
    assert series_sum(d, "default", "from", "routed") == 0
    assert series_sum(d, "default", "to", "attempts") == 75
    assert series_sum(d, "default", "to", "errors") == 75
    assert series_sum(d, "default", "from", "attempts") == 60
    assert series_sum(d, "default", "from", "errors") == 0
    # /metrics
    st, _, body = fetch(t.http, "/metrics")
    s = samples(body.decode())
    lab = {("route", "default"), ("side", "to"), ("backend", "new")}
    assert s[("turnout_replays_total", frozenset(lab | {("reason", "rollback_status")}))] == 60
    assert s[("turnout_replays_refused_total",
              frozenset(lab | {("reason", "not_replayable")}))] == 15
    assert s[("turnout_upstream_attempts_total", frozenset(lab | {("result", "5xx")}))] == 75
    assert "replays" in cmd(t.sock, "show stats").splitlines()[0]


def test_series_and_actual_split_match_the_routing(turnout_factory, legacy, new, short_dir):
    t = start(turnout_factory, {"legacy": [legacy.address], "new": [new.address]},
              harness.default_routes(30), short_dir)
    m = map_keys(*t.listen, KEYS, nconns=6)
    to_new = sum(1 for v in m.values() if v == "new")
    assert 0 < to_new < len(KEYS)

    def complete():
        d = stats_json(t)
        return d if series_sum(d, "default", "to", "routed") + series_sum(
            d, "default", "from", "routed") == len(KEYS) else None
    d = harness.wait_until(complete, 5, "the series complete")
    assert series_sum(d, "default", "to", "routed") == to_new
    assert series_sum(d, "default", "to", "attempts") == to_new
    assert series_sum(d, "default", "from", "attempts") == len(KEYS) - to_new
    assert series_sum(d, "default", "to", "errors") == 0
    ser = next(x for x in d["series"]["routes"] if x["route"] == "default")
    assert d["series"]["seconds"] == 60 and len(ser["sides"]["to"]["p99_ms"]) == 60
    assert any(v is not None and v > 0 for v in ser["sides"]["to"]["p99_ms"])
    assert (ser["from"], ser["to"]) == ("legacy", "new")
    r = next(x for x in d["routes"] if x["name"] == "default")
    assert r["configured"] == 30 and r["routed_60s"] == len(KEYS)
    assert abs(r["actual"] - round(100.0 * to_new / len(KEYS), 2)) <= 0.01
    st, _, body = fetch(t.http, "/metrics")
    got = samples(body.decode())[("turnout_route_actual_percent",
                                  frozenset({("route", "default")}))]
    assert abs(got - r["actual"]) <= 0.01


def test_server_and_listener_counters(turnout_factory, legacy, new, faults, short_dir):
    dead = faults("refused")
    routes = [{"name": "dead", "match": {"path": "^/dead"}, "backend": "dead"},
              {"name": "default", "backend": "legacy"}]
    t = start(turnout_factory, {"legacy": [legacy.address], "new": [new.address],
                                "dead": [dead.address]}, routes, short_dir)

    def listener():
        return stats_json(t)["listeners"][0]
    # the harness's readiness probe was a connection too
    base = harness.wait_until(lambda: (lambda x: x if x["open"] == 0 else None)(listener()), 5,
                              "the probe connection closed")["accepted"]
    assert send(t, 7, path="/dead") == [502] * 7
    clients = [Client(*t.listen) for _ in range(5)]
    try:
        for c in clients:
            c.request("GET", "/x")
            assert c.response().status == 200

        def backends():
            return {(b["backend"]): b for b in stats_json(t)["backends"]}
        lst = harness.wait_until(lambda: (lambda x: x if x["open"] == 5 else None)(listener()),
                                 5, "5 connections open")
        assert lst["accepted"] == base + 6 and lst["rejected"] == 0
        assert lst["address"] == "%s:%d" % t.listen
        b = backends()
        assert b["dead"]["connect_errors"] == 7 and b["dead"]["active"] == 0
        # every answered request left its connection in the pool
        assert b["legacy"]["active"] == 0 and 1 <= b["legacy"]["idle"] <= 5
        assert b["legacy"]["connects"] == b["legacy"]["idle"] and b["legacy"]["connect_errors"] == 0
        assert b["new"]["connects"] == 0
    finally:
        for c in clients:
            c.close()
    lst = harness.wait_until(lambda: (lambda x: x if x["open"] == 0 else None)(listener()), 5,
                             "every connection closed")
    assert lst["accepted"] == base + 6
    st, _, body = fetch(t.http, "/metrics")
    s = samples(body.decode())
    assert s[("turnout_listener_accepted_total",
              frozenset({("listener", "%s:%d" % t.listen)}))] == base + 6
    assert s[("turnout_server_connect_errors_total",
              frozenset({("backend", "dead"), ("server", dead.address)}))] == 7
    assert s[("turnout_server_usable", frozenset({("backend", "legacy"),
                                                  ("server", legacy.address)}))] == 1
    text = cmd(t.sock, "show backends")
    assert "conn_errs" in text.splitlines()[0]


def test_fleet_versions_in_stats_json(turnout_factory, legacy, new, short_dir, redis_factory):
    r = redis_factory()
    nodes = []
    for name in ("node-a", "node-b"):
        sock = short_dir(name + ".sock")
        port = harness.free_port()
        t = turnout_factory(backends={"legacy": [legacy.address], "new": [new.address]},
                            routes=harness.default_routes(10), name=name,
                            extra={"admin": {"socket": sock, "http": "127.0.0.1:%d" % port},
                                   "redis": redis_conf(r), "node_id": name})
        t.sock, t.http = sock, port
        nodes.append(t)
    a, b = nodes
    wait_redis_up(a)
    wait_redis_up(b)
    before = jcmd(a.sock, "show info")["applied_version"]
    cmd(a.sock, "set weight default 20")
    # the write is asynchronous: wait until node-a has it back from Redis
    version = harness.wait_until(
        lambda: (lambda v: v if v > before and v == int(r.client().get("turnout:fleet:version")
                                                        or 0) else None)(
            jcmd(a.sock, "show info")["applied_version"]), 5, "the change in Redis")

    def fleet():
        f = {n["node"]: n for n in stats_json(a)["fleet"]}
        return f if set(f) == {"node-a", "node-b"} and all(
            n["version"] == version for n in f.values()) else None
    f = harness.wait_until(fleet, 10, "both nodes at version %d in node-a's stats" % version)
    assert f["node-a"]["self"] and not f["node-b"]["self"]
    assert abs(f["node-b"]["seen"] - time.time()) < 30
    assert stats_json(a)["info"]["applied_version"] == version


def test_a_scrape_under_load_never_holds_a_worker(turnout_factory, legacy, new, short_dir):
    """Four clients send 400 requests each while a scraper reads /metrics,
    /stats.json and `show stats` in a loop: no request fails, requests
    complete while scrapes are in flight, and the final counts are exact."""
    t = start(turnout_factory, {"legacy": [legacy.address], "new": [new.address]},
              harness.default_routes(30), short_dir)
    n_per, nthreads = 400, 4
    done = [0] * nthreads
    errors = []
    stop = threading.Event()
    scrapes = []

    def load(i):
        try:
            with Client(*t.listen) as c:
                for k in range(n_per):
                    c.request("GET", "/l", [("X-User-Id", "u%d-%d" % (i, k))])
                    assert c.response().status == 200
                    done[i] += 1
        except BaseException as e:
            errors.append(e)

    def scrape():
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            before = sum(done)
            for path in ("/metrics", "/stats.json?seconds=299"):
                st, _, body = fetch(t.http, path)
                assert st == 200 and body
            assert "default" in cmd(t.sock, "show stats")
            scrapes.append((before, sum(done)))

    threads = [threading.Thread(target=load, args=(i,)) for i in range(nthreads)]
    sc = threading.Thread(target=scrape)
    sc.start()
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    stop.set()
    sc.join(70)
    assert not errors, errors[0]
    assert sum(done) == n_per * nthreads
    assert len(scrapes) >= 2
    # requests finished while scrapes ran
    assert sum(after - before for before, after in scrapes) > 0

    def total():
        rows = jcmd(t.sock, "show stats")
        n = sum(r["requests"] for r in rows if r["route"] == "default")
        return n if n == n_per * nthreads else None
    harness.wait_until(total, 5, "every request counted")
