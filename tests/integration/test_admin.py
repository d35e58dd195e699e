"""The admin socket: every command, its answers, malformed commands (one ERR
line, nothing changed), and that routing follows what the commands set:
each key's backend is checked against the bucket formula."""

import json
import os
import socket
import threading

import pytest

import harness
from admin import Admin, cmd, ctl, jcmd, route, wait_percent
from client import Client, map_keys

KEYS = ["user-%04d" % i for i in range(400)]


def start(turnout_factory, legacy, new, short_dir, percent=30, extra=None, **kw):
    sock = short_dir("admin.sock")
    ex = {"admin": {"socket": sock}, "state_file": short_dir("state.json")}
    ex.update(extra or {})
    t = turnout_factory(backends={"legacy": [legacy.address], "new": [new.address]},
                        routes=harness.default_routes(percent), extra=ex, **kw)
    t.sock = sock
    return t


def sides(t, keys=KEYS):
    return map_keys(*t.listen, keys, nconns=4)


def assert_split(mapping, percent):
    bad = {k: v for k, v in mapping.items() if v != harness.predict("default", k, percent)}
    assert not bad, "%d keys off the %s%% prediction, e.g. %r" % (
        len(bad), percent, sorted(bad.items())[:5])


@pytest.fixture
def t(turnout_factory, legacy, new, short_dir):
    return start(turnout_factory, legacy, new, short_dir)


def test_socket_mode_is_0600_by_default(t):
    assert oct(os.stat(t.sock).st_mode & 0o777) == "0o600"


def test_help_lists_every_command(t):
    ans = cmd(t.sock, "help")
    for c in ("show info", "show routes", "set weight", "ramp", "ramp cancel", "rollback",
              "show backends", "set server", "pin", "show pins", "show events", "reload"):
        assert c in ans, c


def test_show_info_text_and_json(t):
    text = cmd(t.sock, "show info")
    assert "workers: 2" in text and "config_generation: 1" in text and "redis: off" in text
    info = jcmd(t.sock, "show info")
    assert info["workers"] == 2
    assert info["config_generation"] == 1
    assert info["redis"]["configured"] is False
    assert info["pid"] == t.pid
    assert info["applied_version"] == 0


def test_show_routes_json_contract(t):
    routes = jcmd(t.sock, "show routes")
    assert [r["name"] for r in routes] == ["beta", "default"]
    d = routes[1]
    assert (d["from"], d["to"], d["percent"], d["source"]) == ("legacy", "new", 30, "config")
    assert routes[0]["backend"] == "new"
    text = cmd(t.sock, "show routes")
    assert "default" in text and "config" in text and "30.00" in text


def test_set_weight_moves_users_exactly_as_the_bucket_formula_says(t):
    assert_split(sides(t), 30)
    assert cmd(t.sock, "set weight default 12.5") == "weight default: 30.00 -> 12.50\n"
    assert_split(sides(t), 12.5)
    r = route(t.sock, "default")
    assert (r["percent"], r["source"]) == (12.5, "admin")
    assert cmd(t.sock, "set weight default 100").startswith("weight default: 12.50 -> 100.00")
    assert set(sides(t).values()) == {"new"}


def test_weight_zero_sends_nobody_new_but_pinned_users_stay(t):
    pinned = next(k for k in KEYS if harness.predict("default", k, 30) == "legacy")
    assert cmd(t.sock, "pin %s new" % pinned) == "pin %s: none -> new\n" % pinned
    assert cmd(t.sock, "set weight default 0").startswith("weight default: 30.00 -> 0.00")
    m = sides(t)
    assert m.pop(pinned) == "new"
    assert set(m.values()) == {"legacy"}
    assert cmd(t.sock, "show pins") == "%s new\n" % pinned
    assert jcmd(t.sock, "show pins user-") == {pinned: "new"}
    assert jcmd(t.sock, "show pins nobody") == {}
    assert cmd(t.sock, "pin %s none" % pinned) == "pin %s: new -> none\n" % pinned
    assert sides(t, [pinned])[pinned] == "legacy"


def test_rollback_route_and_all(t):
    cmd(t.sock, "set weight default 40")
    assert cmd(t.sock, "rollback default") == "default: 40.00 -> 0.00\n"
    assert set(sides(t).values()) == {"legacy"}
    assert route(t.sock, "default")["source"] == "admin"
    cmd(t.sock, "set weight default 40")
    assert cmd(t.sock, "rollback all") == "default: 40.00 -> 0.00\n"
    assert cmd(t.sock, "rollback all") == "nothing to roll back: every route is at 0\n"


def test_show_events_records_who_what_from_to(t):
    cmd(t.sock, "set weight default 20")
    cmd(t.sock, "set weight default 25")
    ev = jcmd(t.sock, "show events 2")
    assert [(e["what"], e["from"], e["to"]) for e in ev] == [
        ("weight default", "30.00", "20.00"), ("weight default", "20.00", "25.00")]
    assert ev[0]["who"].startswith("admin uid=")
    assert ev[1]["version"] == ev[0]["version"] + 1
    assert len(jcmd(t.sock, "show events 1")) == 1
    text = cmd(t.sock, "show events")
    assert "weight default: 20.00 -> 25.00" in text


MALFORMED = [
    ("set weight default 12.345", "bad percent"),
    ("set weight default 101", "bad percent"),
    ("set weight default -1", "bad percent"),
    ("set weight default abc", "bad percent"),
    ("set weight default", "usage: set weight"),
    ("set weight default 10 extra", "usage: set weight"),
    ("set weight nosuch 10", "no route named"),
    ("set weight beta 10", "pins backend new"),
    ("set server new state maint", "expected BACKEND/SERVER"),
    ("set server nosuch/x state maint", "no backend named"),
    ("set server new/nosuch state maint", "has no server named"),
    ("set server new/%s state broken", "bad state"),
    ("set server new/%s mode maint", "usage: set server"),
    ("set nothing", "unknown set command"),
    ("ramp default 50 over", "usage: ramp"),
    ("ramp default 50 over 0s", "bad duration"),
    ("ramp default 50 over soon", "bad duration"),
    ("ramp default 500 over 10s", "bad percent"),
    ("ramp default 50 over 10s step 0", "bad step"),
    ("ramp default 50 during 10s", "usage: ramp"),
    ("ramp default 30 over 10s", "already at"),
    ("ramp cancel default", "no ramp running"),
    ("ramp cancel nosuch", "no route named"),
    ("rollback", "usage: rollback"),
    ("rollback nosuch", "no route named"),
    ("pin onlykey", "usage: pin"),
    ("pin k nosuch", "no backend named"),
    ("show", "unknown show command"),
    ("show nothing", "unknown show command"),
    ("show info extra", "unexpected argument"),
    ("show events 0", "N must be a number"),
    ("show events many", "N must be a number"),
    ("reload now", "usage: reload"),
    ("frobnicate", "unknown command"),
    ("x" * 5000, "command too long"),
    (" ".join(["w"] * 20), "too many words"),
]


def test_malformed_commands_answer_one_err_line_and_change_nothing(t, new):
    server = new.address
    before_routes = jcmd(t.sock, "show routes")
    before_events = jcmd(t.sock, "show events 1000")
    before_pins = jcmd(t.sock, "show pins")
    with Admin(t.sock) as a:
        for line, why in MALFORMED:
            if "%s" in line:
                line = line % server
            ans = a.cmd(line)
            assert ans.startswith("ERR ") and ans.count("\n") == 1, (line, ans)
            assert why in ans, (line, ans)
    assert jcmd(t.sock, "show routes") == before_routes
    assert jcmd(t.sock, "show events 1000") == before_events
    assert jcmd(t.sock, "show pins") == before_pins
    assert_split(sides(t), 30)


def test_pipelined_commands_blank_lines_and_crlf(t):
    with Admin(t.sock) as a:
        a.send(b"set weight default 5\r\n\nshow routes json\nbogus\n")
        assert a.read_answer() == "weight default: 30.00 -> 5.00\n"
        assert json.loads(a.read_answer())[1]["percent"] == 5
        assert a.read_answer().startswith("ERR unknown command")


def test_socat_style_half_close_gets_the_answer(t):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(t.sock)
    s.sendall(b"show info\n")
    s.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    assert data.startswith(b"name: turnout\n") and data.endswith(b"\n\n")


def test_many_clients_and_a_client_that_never_reads(t):
    # one client floods commands and never reads its answers
    hog = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    hog.connect(t.sock)
    hog.setblocking(False)
    sent = 0
    try:
        while sent < (64 << 20):
            sent += hog.send(b"help\n" * 2000)
    except BlockingIOError:
        pass
    # fifty others are served meanwhile, and so is the proxy
    clients = [Admin(t.sock) for _ in range(50)]
    try:
        for i, a in enumerate(clients):
            assert a.cmd("show info").startswith("name: turnout")
        assert_split(sides(t, KEYS[:100]), 30)
    finally:
        for a in clients:
            a.close()
        hog.close()


def test_turnoutctl_exit_codes_and_json(t, short_dir):
    r = ctl(t.sock, "set", "weight", "default", "15")
    assert (r.returncode, r.stdout) == (0, "weight default: 30.00 -> 15.00\n")
    r = ctl(t.sock, "set", "weight", "default", "15.555")
    assert r.returncode == 1 and r.stderr.startswith("ERR bad percent"), r
    r = ctl(t.sock, "--json", "show", "routes")
    assert r.returncode == 0 and json.loads(r.stdout)[1]["percent"] == 15
    r = ctl(t.sock, "--json", "rollback", "default")
    assert r.returncode == 0 and json.loads(r.stdout) == {"ok": True,
                                                          "answer": "default: 15.00 -> 0.00"}
    r = ctl(short_dir("nothing.sock"), "show", "info")
    assert r.returncode == 2 and "cannot connect" in r.stderr
    env = dict(os.environ, TURNOUT_SOCKET=t.sock)
    r = ctl(None, "show", "info", env=env)
    assert r.returncode == 0 and "name: turnout" in r.stdout


def test_set_server_maint_and_drain(turnout_factory, legacy, backend_factory, short_dir):
    n1 = backend_factory("platform", "new")
    n2 = backend_factory("platform", "new")
    sock = short_dir("admin.sock")
    t = turnout_factory(backends={"legacy": [legacy.address], "new": [n1.address, n2.address]},
                        routes=harness.default_routes(100), extra={"admin": {"socket": sock}})
    sides(t, KEYS[:40])
    assert len(n1.completed()) and len(n2.completed())
    assert cmd(sock, "set server new/%s state maint" % n1.address) == \
        "server new/%s: ready -> maint\n" % n1.address
    n1.reset_counters()
    n2.reset_counters()
    m = sides(t, KEYS[:40])
    assert set(m.values()) == {"new"}
    assert len(n1.completed()) == 0 and len(n2.completed()) == 40
    b = {(x["backend"], x["server"]): x for x in jcmd(sock, "show backends")}
    assert b[("new", n1.address)]["state"] == "maint" and not b[("new", n1.address)]["usable"]

    # drain: a request in flight on n2 finishes; new ones go to n1
    cmd(sock, "set server new/%s state ready" % n1.address)
    c = Client(*t.listen)
    c.request("GET", "/slow/1500", [("X-User-Id", KEYS[0])])
    victim = harness.wait_until(
        lambda: next((srv for srv in (n1, n2) if srv.completed("/slow/1500")), None), 5,
        "the slow request to reach a server of new")
    other = n1 if victim is n2 else n2
    n1.reset_counters()
    n2.reset_counters()
    cmd(sock, "set server new/%s state drain" % victim.address)
    m = sides(t, KEYS[:30])
    assert set(m.values()) == {"new"}
    assert len(victim.completed()) == 0 and len(other.completed()) == 30
    r = c.response()
    assert r.status == 200
    c.close()


def test_reload_keeps_runtime_weight_unless_the_file_changes_it(t, legacy, new, short_dir):
    cmd(t.sock, "set weight default 50")
    cfg = dict(t.cfg)
    cfg["debug_headers"] = True  # an unrelated change
    t.write_config(cfg)
    assert cmd(t.sock, "reload") == "reloaded: configuration generation 2 in force\n"
    r = route(t.sock, "default")
    assert (r["percent"], r["source"]) == (50, "admin")
    assert_split(sides(t), 50)
    # the file changes this route's percent: the file wins
    cfg = dict(cfg)
    cfg["routes"] = harness.default_routes(20)
    t.write_config(cfg)
    assert cmd(t.sock, "reload").startswith("reloaded")
    r = route(t.sock, "default")
    assert (r["percent"], r["source"]) == (20, "config")
    assert_split(sides(t), 20)


def test_reload_of_a_bad_file_is_err_with_file_line_column_and_nothing_changes(t):
    cmd(t.sock, "set weight default 45")
    good = dict(t.cfg)
    t.write_config(good.copy() | {"routes": [{"name": "default",
                                              "shift": {"from": "legacy", "to": "nosuch",
                                                        "percent": 5}}]})
    ans = cmd(t.sock, "reload")
    assert ans.startswith("ERR reload rejected") and ans.count("\n") == 1, ans
    assert "%s.yaml:" % t.name in ans and "nosuch" in ans
    assert jcmd(t.sock, "show info")["config_generation"] == 1
    assert_split(sides(t), 45)
    # and by SIGHUP: logged, old plan stays
    import signal
    t.signal(signal.SIGHUP)
    harness.wait_until(lambda: "reload rejected" in t.stderr_text(), 5, "the rejection logged")
    assert_split(sides(t), 45)
