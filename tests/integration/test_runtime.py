"""Runtime state without Redis: the state file across restarts, ramps (also
across a reload and a restart), active and passive health checks, and
reloads under load."""

import signal
import threading
import time

import harness
from admin import cmd, jcmd, route, wait_percent
from client import Client, map_keys

KEYS = ["user-%04d" % i for i in range(300)]


def start(turnout_factory, legacy, new_addrs, short_dir, percent=30, backends_extra=None,
          **kw):
    sock = short_dir("admin.sock")
    t = turnout_factory(backends={"legacy": [legacy.address], "new": new_addrs},
                        routes=harness.default_routes(percent),
                        extra={"admin": {"socket": sock}, "state_file": short_dir("state.json")},
                        **kw)
    if backends_extra:
        cfg = dict(t.cfg)
        for name, more in backends_extra.items():
            cfg["backends"][name].update(more)
        t.stop()
        t.write_config(cfg)
        t.start()
    t.sock = sock
    return t


def assert_split(t, percent, keys=KEYS):
    m = map_keys(*t.listen, keys, nconns=4)
    bad = {k: v for k, v in m.items() if v != harness.predict("default", k, percent)}
    assert not bad, "%d keys off the %s%% prediction" % (len(bad), percent)


def events(t, what_prefix):
    return [e for e in jcmd(t.sock, "show events 1000") if e["what"].startswith(what_prefix)]


def test_state_file_keeps_weights_pins_and_server_states_across_a_restart(
        turnout_factory, legacy, new, short_dir):
    t = start(turnout_factory, legacy, [new.address], short_dir)
    cmd(t.sock, "set weight default 55.5")
    cmd(t.sock, "pin someone new")
    cmd(t.sock, "set server legacy/%s state drain" % legacy.address)
    v = jcmd(t.sock, "show info")["applied_version"]
    assert t.stop() == 0
    t.start()
    r = route(t.sock, "default")
    assert (r["percent"], r["source"]) == (55.5, "admin")
    assert jcmd(t.sock, "show pins") == {"someone": "new"}
    b = {x["backend"]: x for x in jcmd(t.sock, "show backends")}
    assert b["legacy"]["state"] == "drain"
    assert jcmd(t.sock, "show info")["applied_version"] == v
    assert events(t, "restored")
    cmd(t.sock, "set server legacy/%s state ready" % legacy.address)
    assert_split(t, 55.5)


def test_state_file_entry_is_dropped_when_the_file_changed_that_route(
        turnout_factory, legacy, new, short_dir):
    t = start(turnout_factory, legacy, [new.address], short_dir)
    cmd(t.sock, "set weight default 70")
    t.stop()
    cfg = dict(t.cfg)
    cfg["routes"] = harness.default_routes(10)
    t.write_config(cfg)
    t.start()
    r = route(t.sock, "default")
    assert (r["percent"], r["source"]) == (10, "config")


def test_ramp_walks_in_steps_and_every_step_is_an_event(turnout_factory, legacy, new, short_dir):
    t = start(turnout_factory, legacy, [new.address], short_dir, percent=0)
    ans = cmd(t.sock, "ramp default 10 over 2s step 5")
    assert ans.startswith("ramp default: 0.00 -> 10.00 over 2 s, 2 steps of 5.00"), ans
    r = route(t.sock, "default")
    assert r["source"] == "ramp" and r["ramp"]["to"] == 10
    wait_percent(t.sock, "default", 10, timeout=6)
    steps = [(e["what"], e["from"], e["to"]) for e in events(t, "ramp default")]
    assert steps == [("ramp default", "0.00", "10.00 over 2 s, 2 steps of 5.00 every 1000 ms"),
                     ("ramp default step", "0.00", "5.00"),
                     ("ramp default done", "5.00", "10.00")], steps
    r = route(t.sock, "default")
    assert r["ramp"] is None and r["source"] == "ramp"
    assert_split(t, 10)


def test_ramp_default_step_is_one_point_and_cancel_stops_it(
        turnout_factory, legacy, new, short_dir):
    t = start(turnout_factory, legacy, [new.address], short_dir, percent=0)
    ans = cmd(t.sock, "ramp default 50 over 100s")
    assert "50 steps of 1.00 every 2000 ms" in ans, ans
    wait_percent(t.sock, "default", 1, timeout=6, source="ramp")
    assert cmd(t.sock, "ramp cancel default") == "ramp default cancelled at 1.00\n"
    r = route(t.sock, "default")
    assert (r["percent"], r["source"], r["ramp"]) == (1, "admin", None)
    # a set weight during a ramp cancels it too
    cmd(t.sock, "ramp default 40 over 100s")
    assert "(ramp cancelled)" in cmd(t.sock, "set weight default 3")
    assert route(t.sock, "default")["ramp"] is None


def test_ramp_survives_a_reload_and_a_restart(turnout_factory, legacy, new, short_dir):
    t = start(turnout_factory, legacy, [new.address], short_dir, percent=0)
    cmd(t.sock, "ramp default 4 over 4s step 1")
    wait_percent(t.sock, "default", 1, timeout=6, source="ramp")
    assert cmd(t.sock, "reload").startswith("reloaded")
    assert route(t.sock, "default")["ramp"]["to"] == 4
    t.stop()
    t.start()
    r = route(t.sock, "default")
    assert r["ramp"] is not None or r["percent"] == 4
    wait_percent(t.sock, "default", 4, timeout=8, source="ramp")
    assert route(t.sock, "default")["ramp"] is None


HEALTH = {"health_check": {"path": "/healthz", "interval": "200ms", "timeout": "150ms",
                           "rise": 2, "fall": 2}}


def test_active_health_check_takes_to_down_and_users_go_to_from(
        turnout_factory, legacy, new, short_dir):
    t = start(turnout_factory, legacy, [new.address], short_dir, percent=100,
              backends_extra={"new": HEALTH})
    assert set(map_keys(*t.listen, KEYS[:50]).values()) == {"new"}
    new.health_status = 503
    harness.wait_until(lambda: {x["backend"]: x for x in jcmd(t.sock, "show backends")}
                       ["new"]["health"] == "down", 5, "new's server down")
    r = route(t.sock, "default")
    assert (r["percent"], r["source"]) == (0, "health")
    new.reset_counters()
    assert set(map_keys(*t.listen, KEYS[:50]).values()) == {"legacy"}
    assert not new.completed("/")
    ev = events(t, "server new/")
    assert ev and ev[-1]["to"] == "HTTP 503"
    harness.wait_until(lambda: events(t, "route default"), 3, "the route event")
    new.health_status = 200
    harness.wait_until(lambda: route(t.sock, "default")["source"] != "health", 5, "new back up")
    assert set(map_keys(*t.listen, KEYS[:50]).values()) == {"new"}


def test_passive_health_ejects_a_refusing_server(turnout_factory, legacy, short_dir):
    dead = "127.0.0.1:%d" % harness.free_port()
    t = start(turnout_factory, legacy, [dead], short_dir, percent=100, access_log="file")
    m = map_keys(*t.listen, KEYS[:20], nconns=1)
    assert set(m.values()) == {"legacy"}  # replayed on legacy
    b = {x["backend"]: x for x in jcmd(t.sock, "show backends")}
    assert b["new"]["ejected"] and not b["new"]["usable"]
    # once ejected, no attempt goes to the dead server at all
    lines = harness.wait_until(lambda: t.log_lines() if len(t.log_lines()) >= 20 else None, 5,
                               "20 log lines")  # the log is written every 100 ms
    tail = lines[-5:]
    assert all(len(rec["attempts"]) == 1 and rec["attempts"][0]["backend"] == "legacy"
               for rec in tail), tail
    harness.wait_until(lambda: events(t, "server new/"), 3, "the ejection event")
    assert route(t.sock, "default")["source"] == "health"
    cmd(t.sock, "set server new/%s state ready" % dead)
    b = {x["backend"]: x for x in jcmd(t.sock, "show backends")}
    assert not b["new"]["ejected"]


def test_reload_under_load_fails_no_request(turnout_factory, legacy, new, short_dir):
    t = start(turnout_factory, legacy, [new.address], short_dir, percent=30)
    stop = threading.Event()
    done = [0] * 4
    errors = []

    def load(i):
        n = 0
        try:
            c = Client(*t.listen)
            while not stop.is_set():
                c.request("GET", "/x", [("X-User-Id", "u%d-%d" % (i, n))])
                r = c.response()
                if r.status != 200:
                    errors.append((r.status, r.body[:100]))
                n += 1
                done[i] = n
                if n % 50 == 0:  # new connections too
                    c.close()
                    c = Client(*t.listen)
            c.close()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=load, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    reloads = 0
    try:
        for reloads in range(1, 25):
            cfg = dict(t.cfg)
            cfg["routes"] = harness.default_routes(10 + reloads % 5)
            t.write_config(cfg)
            if reloads % 2:
                t.signal(signal.SIGHUP)
                harness.wait_until(
                    lambda: jcmd(t.sock, "show info")["config_generation"] == reloads + 1, 5,
                    "reload %d" % reloads)
            else:
                assert cmd(t.sock, "reload").startswith("reloaded")
            # spread the reloads over the load
            target = sum(done) + 220
            harness.wait_until(lambda: sum(done) >= target or errors, 30, "requests")
    finally:
        stop.set()
        for th in threads:
            th.join(30)
    assert not errors, errors[:5]
    assert reloads >= 20
    assert sum(done) >= 5000, sum(done)
    assert jcmd(t.sock, "show info")["config_generation"] == reloads + 1


def test_passive_health_ejects_a_hanging_server(turnout_factory, legacy, backend_factory,
                                                short_dir):
    hang = backend_factory("raw", "new", mode="hang")
    t = start(turnout_factory, legacy, [hang.address], short_dir, percent=100,
              access_log="file", timeouts={"response": "300ms"})
    m = map_keys(*t.listen, KEYS[:12], nconns=1)
    assert set(m.values()) == {"legacy"}  # the first ones replayed after the timeout
    recs = harness.wait_until(lambda: [r for r in t.log_lines() if r["path"] == "/"]
                              if len(t.log_lines()) >= 12 else None, 5, "12 log lines")
    timed_out = [r for r in recs if r["attempts"][0]["error"] == "timeout"]
    assert len(timed_out) == 5, [r["attempts"] for r in recs]
    # then new is ejected: the rest go to legacy at once, without waiting
    rest = recs[5:]
    assert rest and all(r["reason"] == "to_down" and len(r["attempts"]) == 1 for r in rest), \
        [(r["reason"], r["attempts"]) for r in rest]
    b = {x["backend"]: x for x in jcmd(t.sock, "show backends")}
    assert b["new"]["ejected"]
