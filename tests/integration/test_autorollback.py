"""Automatic rollback (issue 10, DESIGN.md "Per-request rollback"): a real
legacy backend, a new backend whose faults the test controls (flaky.py),
and two turnout nodes sharing one redis-server, under load from many users.
The judge's windows are aligned to Unix time (multiples of `window`), so a
test that wants a fault to fill whole windows starts it on a boundary."""

import json
import math
import threading
import time

import pytest

import harness
from admin import cmd, jcmd, route, wait_percent
from client import Client
from flaky import FlakyBackend
from test_fleet import wait_redis_up
from test_metrics import fetch, samples
from test_rollback import NO_BUDGET

NS = "judge"
WINDOW = 2  # seconds


@pytest.fixture
def flaky():
    started = []

    def make(name):
        b = FlakyBackend(name)
        started.append(b)
        return b.start()
    yield make
    for b in reversed(started):
        b.stop()


def auto(**kw):
    a = {"error_rate": "5%", "p99": "1s", "margin": "2%", "window": "%ds" % WINDOW,
         "windows": 2, "min_requests": 40}
    a.update(kw)
    return a


def start_nodes(turnout_factory, short_dir, redis, legacy, new, auto_cfg, percent=50, n=2,
                access_log="off", passive=False):
    nodes = []
    for i in range(n):
        name = "node-%c" % (ord("a") + i)
        sock = short_dir(name + ".sock")
        port = harness.free_port()
        t = turnout_factory(
            backends={"legacy": [legacy.address], "new": [new.address]},
            routes=[{"name": "default", "shift": {"from": "legacy", "to": "new",
                                                  "percent": percent}}],
            name=name, workers=2, start=False, access_log=access_log,
            extra={"admin": {"socket": sock, "http": "127.0.0.1:%d" % port}, "node_id": name,
                   "redis": {"address": redis.address, "namespace": NS, "resync": "1s"},
                   "rollback": {"budget": dict(NO_BUDGET), "auto": auto_cfg}})
        for b in t.cfg["backends"].values():
            if not passive:
                b["passive"] = {"failures": 0}  # the judge, not ejection, is under test
        t.write_config(t.cfg)
        t.start()
        t.sock, t.http = sock, port
        nodes.append(t)
    for t in nodes:
        wait_redis_up(t)
    return nodes


class Load:
    """Threads sending GETs through the nodes (round robin), each request
    from one of `users` users (X-User-Id), until stop(). Records every
    answer: (time, node, user, platform, status)."""

    def __init__(self, nodes, users=400, threads=4, pause=0.0, max_seconds=120):
        self.nodes = nodes
        self.users = ["user-%05d" % i for i in range(users)]
        self.log = []
        self.errors = []
        self.lock = threading.Lock()
        self.halt = threading.Event()
        self.pause = pause
        self.deadline = time.monotonic() + max_seconds * harness.SLOW
        self.threads = [threading.Thread(target=self.run, args=(i, threads), daemon=True)
                        for i in range(threads)]
        for th in self.threads:
            th.start()

    def run(self, i, n):
        t = self.nodes[i % len(self.nodes)]
        mine = self.users[i::n]
        k = 0
        c = None
        try:
            while not self.halt.is_set() and time.monotonic() < self.deadline:
                if c is None:
                    c = Client(*t.listen)
                user = mine[k % len(mine)]
                k += 1
                c.request("GET", "/r/%s/%d" % (user, k), [("X-User-Id", user)])
                r = c.response()
                with self.lock:
                    self.log.append((time.time(), t.name, user, r.header("X-Platform"), r.status))
                if self.pause:
                    self.halt.wait(self.pause)
        except BaseException as e:
            self.errors.append(e)
        finally:
            if c is not None:
                c.close()

    def count(self):
        with self.lock:
            return len(self.log)

    def stop(self):
        self.halt.set()
        for th in self.threads:
            th.join(30)
        assert not any(th.is_alive() for th in self.threads)
        assert not self.errors, self.errors[0]
        return self.log


def windows(t, route_name="default"):
    return jcmd(t.sock, "show rollback %s" % route_name)[0]["windows"]


def wait_conclusive(t, n, timeout=30):
    """Until n windows with a verdict other than inconclusive were judged."""
    return harness.wait_until(
        lambda: (lambda w: w if sum(x["verdict"] != "inconclusive" for x in w) >= n else None)(
            windows(t)), timeout, "%d conclusive windows on %s" % (n, t.name))


def next_boundary(window=WINDOW):
    """Sleeps until just after the next window boundary; returns it."""
    b = math.floor(time.time() / window) * window + window
    while time.time() < b + 0.05:
        time.sleep(min(0.05, max(0.0, b + 0.05 - time.time())))
    return b


def rollback_events(redis):
    evs = redis.client().xrange("turnout:%s:events" % NS)
    return [e for _, e in evs if e.get("who") == "auto-rollback"]


def test_twenty_percent_failures_roll_back_on_both_nodes_with_no_user_error(
        turnout_factory, short_dir, redis_factory, backend_factory, flaky):
    r = redis_factory()
    legacy = backend_factory(name="legacy")
    new = flaky("new")
    a, b = start_nodes(turnout_factory, short_dir, r, legacy, new, auto())
    load = Load([a, b])
    try:
        wait_conclusive(a, 1)
        t0 = next_boundary()
        new.set_faults(fail_ratio=0.2)
        for t in (a, b):
            wait_percent(t.sock, "default", 0, timeout=2 * WINDOW + 5, source="auto-rollback")
        took = time.time() - t0
        assert took <= 2 * WINDOW + 1, took
        seen = load.count()
        harness.wait_until(lambda: load.count() > seen + 200, 10, "more traffic after it")
    finally:
        log = load.stop()
    assert new.failed > 0
    bad = [x for x in log if x[4] != 200]
    assert not bad, "%d users saw errors: %s" % (len(bad), bad[:5])
    # one rollback, one event, for the fleet; its detail has both sides' figures
    evs = rollback_events(r)
    assert len(evs) == 1, evs
    print("\nrolled back %.2f s after the fault: %s: %s -> %s (%s)" % (
        took, evs[0]["what"], evs[0]["from"], evs[0]["to"], evs[0]["detail"]))
    assert evs[0]["what"] == "auto-rollback default" and evs[0]["to"] == "0.00"
    assert "errors" in evs[0]["detail"] and "z " in evs[0]["detail"]
    assert "to (new)" in evs[0]["detail"] and "from (legacy)" in evs[0]["detail"]
    w = windows(a) + windows(b)
    assert any(x["verdict"] == "bad" and x["bad_errors"] for x in w)
    # after it, nobody new goes to new: the last answers all come from legacy
    assert all(x[3] == "legacy" for x in log[-100:])
    # the judge never raises it again by itself
    assert route(a.sock, "default")["percent"] == 0
    assert r.client().hget("turnout:%s:sources" % NS, "default") == "auto-rollback"
    text = cmd(a.sock, "show rollback default")
    assert "bad" in text and "window_end" in text
    ev = [e for e in jcmd(a.sock, "show events 50") + jcmd(b.sock, "show events 50")
          if e["who"] == "auto-rollback"]
    assert len(ev) == 1 and ev[0]["detail"]


@pytest.mark.parametrize("legacy_ratio,new_ratio", [(0.02, 0.02), (0.3, 0.3)])
def test_no_rollback_when_legacy_fails_as_much(legacy_ratio, new_ratio, turnout_factory,
                                               short_dir, redis_factory, flaky):
    r = redis_factory()
    legacy, new = flaky("legacy"), flaky("new")
    a, b = start_nodes(turnout_factory, short_dir, r, legacy, new, auto())
    legacy.set_faults(fail_ratio=legacy_ratio)
    new.set_faults(fail_ratio=new_ratio)
    load = Load([a, b])
    try:
        w = wait_conclusive(a, 4, timeout=40)
    finally:
        load.stop()
    conclusive = [x for x in w if x["verdict"] != "inconclusive"]
    assert all(x["verdict"] == "good" for x in conclusive), conclusive
    assert any(abs(x["to"]["error_rate"] - new_ratio) < 0.05 for x in conclusive)
    for t in (a, b):
        assert route(t.sock, "default")["percent"] == 50
    assert rollback_events(r) == []


def test_too_little_traffic_is_inconclusive(turnout_factory, short_dir, redis_factory,
                                            backend_factory, flaky):
    r = redis_factory()
    legacy = backend_factory(name="legacy")
    new = flaky("new")
    new.set_faults(fail_ratio=0.5)
    a, b = start_nodes(turnout_factory, short_dir, r, legacy, new, auto(min_requests=1000))
    load = Load([a, b], threads=2, pause=0.02)
    try:
        w = harness.wait_until(lambda: (lambda w: w if len(w) >= 4 else None)(windows(a)), 30,
                               "4 windows judged")
    finally:
        load.stop()
    assert all(x["verdict"] == "inconclusive" for x in w), w
    assert any(x["to"]["requests"] > 0 and x["to"]["errors"] > 0 for x in w)
    assert route(a.sock, "default")["percent"] == 50
    assert rollback_events(r) == []


def test_latency_tenfold_rolls_back(turnout_factory, short_dir, redis_factory, backend_factory,
                                    flaky):
    r = redis_factory()
    legacy = backend_factory(name="legacy")
    new = flaky("new")
    a, b = start_nodes(turnout_factory, short_dir, r, legacy, new, auto(p99="30ms"))
    load = Load([a, b], threads=6)
    try:
        w = wait_conclusive(a, 1)
        base = max(x["to"]["p99_ms"] or 0 for x in w)
        next_boundary()
        new.set_faults(delay=max(0.05, base * 10 / 1000.0))
        for t in (a, b):
            wait_percent(t.sock, "default", 0, timeout=4 * WINDOW + 5, source="auto-rollback")
    finally:
        log = load.stop()
    assert new.failed == 0 and all(x[4] == 200 for x in log)
    w = windows(a) + windows(b)
    bad = [x for x in w if x["verdict"] == "bad"]
    assert bad and all(x["bad_latency"] and not x["bad_errors"] for x in bad), bad
    assert all(x["to"]["error_rate"] == 0 for x in bad)
    evs = rollback_events(r)
    assert len(evs) == 1 and "p99" in evs[0]["detail"]


def test_one_bad_window_is_not_enough(turnout_factory, short_dir, redis_factory,
                                      backend_factory, flaky):
    r = redis_factory()
    legacy = backend_factory(name="legacy")
    new = flaky("new")
    a, b = start_nodes(turnout_factory, short_dir, r, legacy, new, auto())
    load = Load([a, b])
    try:
        wait_conclusive(a, 1)
        start = next_boundary()
        new.set_faults(fail_ratio=0.3)
        while time.time() < start + WINDOW - 0.15:  # one whole window, not more
            time.sleep(0.02)
        new.set_faults(fail_ratio=0.0)
        harness.wait_until(lambda: (lambda w: w if w[-1]["end"] >= start + 4 * WINDOW else None)(
            windows(a)), 4 * WINDOW + 5, "three windows after the bad one")
    finally:
        load.stop()
    for t in (a, b):
        w = windows(t)
        verdicts = {x["end"]: x["verdict"] for x in w}
        assert verdicts.get(start + WINDOW) == "bad", w
        assert verdicts.get(start + 2 * WINDOW) == "good", w
        assert route(t.sock, "default")["percent"] == 50
    assert rollback_events(r) == []


def test_ramp_down_walks_the_percent_down(turnout_factory, short_dir, redis_factory,
                                          backend_factory, flaky):
    r = redis_factory()
    legacy = backend_factory(name="legacy")
    new = flaky("new")
    a, b = start_nodes(turnout_factory, short_dir, r, legacy, new, auto(ramp_down="6s"),
                       percent=40)
    load = Load([a, b])
    seen = set()
    try:
        wait_conclusive(a, 1)
        new.set_faults(fail_ratio=0.3)

        def down():
            for t in (a, b):
                x = route(t.sock, "default")
                if x["source"] == "auto-rollback" and 0 < x["percent"] < 40:
                    seen.add(x["percent"])
            return route(b.sock, "default")["percent"] == 0 or None
        harness.wait_until(down, 4 * WINDOW + 15, "the ramp down to 0", interval=0.1)
    finally:
        load.stop()
    assert len(seen) >= 3, seen  # steps on the way down
    for t in (a, b):
        wait_percent(t.sock, "default", 0, timeout=5, source="auto-rollback")
        assert route(t.sock, "default")["ramp"] is None
    evs = rollback_events(r)
    assert len(evs) == 1 and evs[0]["to"].startswith("0.00 over 6 s")


def test_a_rollback_cancels_a_running_ramp(turnout_factory, short_dir, redis_factory,
                                           backend_factory, flaky):
    r = redis_factory()
    legacy = backend_factory(name="legacy")
    new = flaky("new")
    a, b = start_nodes(turnout_factory, short_dir, r, legacy, new, auto(), percent=20)
    load = Load([a, b])
    try:
        assert cmd(a.sock, "ramp default 90 over 120s").startswith("ramp default: 20.00")
        harness.wait_until(lambda: route(b.sock, "default")["ramp"], 5, "the ramp on node-b")
        new.set_faults(fail_ratio=0.3)
        for t in (a, b):
            wait_percent(t.sock, "default", 0, timeout=4 * WINDOW + 5, source="auto-rollback")
        harness.wait_until(lambda: all(route(t.sock, "default")["ramp"] is None for t in (a, b)),
                           5, "no ramp on either node")
    finally:
        load.stop()
    assert r.client().hget("turnout:%s:ramps" % NS, "default") is None
    # the old ramp's next step would have come within 2 s: still 0 after
    t_end = time.time() + 3
    while time.time() < t_end:
        assert route(a.sock, "default")["percent"] == 0
        time.sleep(0.2)


def test_metrics_and_stats_json(turnout_factory, short_dir, redis_factory, backend_factory,
                                flaky):
    r = redis_factory()
    legacy = backend_factory(name="legacy")
    new = flaky("new")
    a, = start_nodes(turnout_factory, short_dir, r, legacy, new, auto(), n=1)
    load = Load([a])
    try:
        wait_conclusive(a, 1)
        new.set_faults(fail_ratio=0.3)
        wait_percent(a.sock, "default", 0, timeout=4 * WINDOW + 5, source="auto-rollback")
    finally:
        load.stop()
    w = windows(a)
    st, _, body = fetch(a.http, "/metrics")
    s = samples(body.decode())
    for v in ("good", "bad", "inconclusive"):
        got = s[("turnout_rollback_windows_total", frozenset({("route", "default"),
                                                              ("verdict", v)}))]
        assert got >= sum(x["verdict"] == v for x in w), v
    assert s[("turnout_rollback_windows_total", frozenset({("route", "default"),
                                                          ("verdict", "bad")}))] >= 2
    assert s[("turnout_auto_rollbacks_total", frozenset({("route", "default")}))] == 1
    last = s[("turnout_last_auto_rollback_timestamp_seconds",
              frozenset({("route", "default")}))]
    assert abs(last - time.time()) < 30
    st, _, body = fetch(a.http, "/stats.json")
    d = json.loads(body)
    rb = next(x for x in d["rollback"] if x["route"] == "default")
    assert rb["enabled"] and rb["rollbacks"] == 1 and rb["windows"]
    assert any(x["who"] == "auto-rollback" for x in d["events"])
    assert next(x for x in d["routes"] if x["name"] == "default")["source"] == "auto-rollback"


def test_a_whole_migration_rolls_itself_back(turnout_factory, short_dir, redis_factory,
                                             backend_factory, flaky):
    """Two nodes, one Redis, 600 users under constant load; a ramp from 0 to
    100 % in steps; midway the new platform fails 20 % of its requests. No
    user sees an error (replay); the route rolls itself back on both nodes;
    until then no user changes side more than once (legacy to new), after
    it every user is on legacy."""
    r = redis_factory()
    legacy = backend_factory(name="legacy")
    new = flaky("new")
    a, b = start_nodes(turnout_factory, short_dir, r, legacy, new, auto(), percent=0,
                       access_log="file")
    load = Load([a, b], users=600, threads=6)
    try:
        assert cmd(a.sock, "ramp default 100 over 40s").startswith("ramp default: 0.00 -> ")
        harness.wait_until(lambda: route(b.sock, "default")["percent"] >= 40, 30,
                           "the ramp at 40 %", interval=0.05)
        t_fault = time.time()
        new.set_faults(fail_ratio=0.2)
        applied = {}
        for t in (a, b):
            wait_percent(t.sock, "default", 0, timeout=4 * WINDOW + 10, source="auto-rollback")
            applied[t.name] = time.time()
        seen = load.count()
        harness.wait_until(lambda: load.count() > seen + 1500, 20, "traffic after the rollback")
    finally:
        log = load.stop()
    errors = [x for x in log if x[4] != 200]
    assert not errors, "%d users saw errors: %s" % (len(errors), errors[:5])
    # when each node applied it, from its own events
    when = {}
    for t in (a, b):
        evs = [e for e in jcmd(t.sock, "show events 200")
               if e["what"] in ("auto-rollback default", "weight default") and
               e["to"].startswith("0.00") and e["time_ms"] / 1000.0 >= t_fault]
        assert evs, t.name
        when[t.name] = evs[0]["time_ms"] / 1000.0
    # every request's side, as the router decided it (the first attempt)
    recs = []
    for t in (a, b):
        lines = harness.wait_until(
            lambda: (lambda ls: ls if len(ls) >= sum(x[1] == t.name for x in log) else None)(
                t.log_lines()), 10, "%s's access log complete" % t.name)
        for rec in lines:
            _, _, user, k = rec["path"].split("/")
            recs.append((user, int(k), t.name, rec["attempts"][0]["backend"], rec))
    recs.sort(key=lambda x: (x[0], x[1]))
    replayed = sum(1 for x in recs if x[4]["reason"].startswith("rollback_"))
    assert replayed > 0
    by_user = {}
    for user, _, node, side, rec in recs:
        by_user.setdefault(user, []).append((node, side, rec))
    moved = 0
    for user, seq in by_user.items():
        sides = [s for _, s, _ in seq]
        changes = [(sides[i], sides[i + 1]) for i in range(len(sides) - 1)
                   if sides[i] != sides[i + 1]]
        assert changes in ([], [("legacy", "new")], [("legacy", "new"), ("new", "legacy")],
                           [("new", "legacy")]), (user, changes)
        if changes and changes[0] == ("legacy", "new"):
            moved += 1
        # the way back happens only with the rollback
        for i in range(1, len(seq)):
            if seq[i - 1][1] == "new" and seq[i][1] == "legacy":
                assert harness_time(seq[i][2]) >= when[seq[i][0]] - 0.5, (user, seq[i][2])
        # after it, legacy only
        assert seq[-1][1] == "legacy", user
    assert moved >= 150  # the ramp had moved a good share of the users
    took = {n: round(w - t_fault, 2) for n, w in when.items()}
    print("\nmigration: fault -> rollback applied: %s s; %d requests, %d replayed, %d users "
          "moved to new and back" % (took, len(recs), replayed, moved))
    assert max(took.values()) <= 3 * WINDOW + 2


def harness_time(rec):
    """An access log record's time (Unix seconds)."""
    import datetime
    return datetime.datetime.strptime(rec["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def test_rollback_with_passive_ejection_on(turnout_factory, short_dir, redis_factory,
                                           backend_factory, flaky):
    """Passive health's defaults (5 consecutive 5xx eject new for 10 s, then
    longer) take new out again and again; the windows of those pauses are
    inconclusive, and the bad windows between them still add up to the
    judge's rollback."""
    r = redis_factory()
    legacy = backend_factory(name="legacy")
    new = flaky("new")
    a, b = start_nodes(turnout_factory, short_dir, r, legacy, new, auto(), passive=True)
    load = Load([a, b])
    try:
        wait_conclusive(a, 1)
        new.set_faults(fail_ratio=0.3)
        for t in (a, b):
            wait_percent(t.sock, "default", 0, timeout=90, source="auto-rollback")
    finally:
        log = load.stop()
    assert not [x for x in log if x[4] != 200]
    w = windows(a) + windows(b)
    assert sum(x["verdict"] == "bad" for x in w) >= 2
    assert len(rollback_events(r)) == 1
