"""Fleet sync through a real redis-server: two turnout nodes follow each
other and tools writing Redis; Redis killed under traffic, restarted,
absent at start; AUTH; a Sentinel failover."""

import threading

import pytest

import harness
from admin import cmd, jcmd, route, wait_percent
from client import Client, map_keys

KEYS = ["user-%04d" % i for i in range(300)]
NS = "fleet"


def redis_conf(r=None, **kw):
    c = {"namespace": NS, "resync": "1s", "connect_timeout": "500ms"}
    if r is not None:
        c["address"] = r.address
    c.update(kw)
    return c


def node(turnout_factory, legacy, new, short_dir, name, redis_cfg, percent=10, **kw):
    sock = short_dir(name + ".sock")
    t = turnout_factory(backends={"legacy": [legacy.address], "new": [new.address]},
                        routes=harness.default_routes(percent), name=name,
                        extra={"admin": {"socket": sock}, "state_file": short_dir(name + ".json"),
                               "redis": redis_cfg, "node_id": name}, **kw)
    t.sock = sock
    return t


def wait_redis_up(t, timeout=10):
    return harness.wait_until(lambda: jcmd(t.sock, "show info")["redis"]["up"], timeout,
                              "%s connected to redis" % t.name)


def assert_split(t, percent, keys=KEYS):
    m = map_keys(*t.listen, keys, nconns=4)
    bad = {k: v for k, v in m.items() if v != harness.predict("default", k, percent)}
    assert not bad, "%s: %d keys off the %s%% prediction" % (t.name, len(bad), percent)


@pytest.fixture
def pair(turnout_factory, legacy, new, short_dir, redis_factory):
    r = redis_factory()
    a = node(turnout_factory, legacy, new, short_dir, "node-a", redis_conf(r))
    b = node(turnout_factory, legacy, new, short_dir, "node-b", redis_conf(r))
    wait_redis_up(a)
    wait_redis_up(b)
    return r, a, b


def test_a_change_on_one_node_reaches_the_other_and_redis(pair):
    r, a, b = pair
    assert cmd(a.sock, "set weight default 25") == "weight default: 10.00 -> 25.00\n"
    wait_percent(b.sock, "default", 25, timeout=3, source="redis")
    assert_split(b, 25)
    assert_split(a, 25)
    rc = r.client()
    assert rc.hget("turnout:%s:weights" % NS, "default") == "25.00"
    version = int(rc.get("turnout:%s:version" % NS))
    ev = rc.xrange("turnout:%s:events" % NS)[-1][1]
    assert (ev["node"], ev["what"], ev["from"], ev["to"]) == ("node-a", "weight default",
                                                              "10.00", "25.00")
    assert ev["who"].startswith("admin uid=")
    # every node reports the version it applied, here and in Redis
    for t in (a, b):
        harness.wait_until(lambda: jcmd(t.sock, "show info")["applied_version"] == version, 3,
                           "%s at version %d" % (t.name, version))
    nodes = rc.hgetall("turnout:%s:nodes" % NS)
    import json
    assert {k: json.loads(v)["version"] for k, v in nodes.items()} == {"node-a": version,
                                                                      "node-b": version}


def test_pins_server_states_and_ramps_follow(pair, legacy):
    r, a, b = pair
    cmd(b.sock, "pin vip new")
    harness.wait_until(lambda: jcmd(a.sock, "show pins") == {"vip": "new"}, 3, "the pin on a")
    assert map_keys(*a.listen, ["vip"])["vip"] == "new"
    cmd(a.sock, "set server legacy/%s state drain" % legacy.address)
    harness.wait_until(lambda: {x["backend"]: x["state"] for x in jcmd(b.sock, "show backends")}
                       ["legacy"] == "drain", 3, "drain on b")
    cmd(a.sock, "set server legacy/%s state ready" % legacy.address)
    harness.wait_until(lambda: {x["backend"]: x["state"] for x in jcmd(b.sock, "show backends")}
                       ["legacy"] == "ready", 3, "ready on b")
    cmd(a.sock, "ramp default 12 over 2s step 1")
    harness.wait_until(lambda: route(b.sock, "default")["ramp"], 3, "the ramp on b")
    wait_percent(b.sock, "default", 12, timeout=6)
    wait_percent(a.sock, "default", 12, timeout=6)
    harness.wait_until(lambda: not r.client().hexists("turnout:%s:ramps" % NS, "default"), 3,
                       "the finished ramp removed from redis")
    assert r.client().hget("turnout:%s:weights" % NS, "default") == "12.00"


def test_a_tool_writing_redis_is_followed_and_bad_values_are_ignored(pair):
    r, a, b = pair
    rc = r.client()
    rc.hset("turnout:%s:weights" % NS, "default", "40")
    rc.publish("turnout:%s:changes" % NS, "weights")
    for t in (a, b):
        wait_percent(t.sock, "default", 40, timeout=3, source="redis")
    rc.hset("turnout:%s:weights" % NS, "default", "forty")
    rc.hset("turnout:%s:servers" % NS, "new/x", "broken")
    rc.publish("turnout:%s:changes" % NS, "all")
    for t in (a, b):
        harness.wait_until(lambda: any(e["to"] == "unparsable percent in redis"
                                       for e in jcmd(t.sock, "show events 50")), 3,
                           "the ignored value recorded on %s" % t.name)
        assert route(t.sock, "default")["percent"] == 40
        assert "is not a percent; ignored" in t.stderr_text()
    assert_split(a, 40)


def test_a_missed_message_is_repaired_by_the_periodic_read(pair):
    r, a, b = pair
    r.client().hset("turnout:%s:weights" % NS, "default", "7.5")  # no PUBLISH
    for t in (a, b):
        wait_percent(t.sock, "default", 7.5, timeout=4, source="redis")


def _load(t, stop, errors, done, i):
    n = 0
    try:
        with Client(*t.listen) as c:
            while not stop.is_set():
                c.request("GET", "/x", [("X-User-Id", "load-%d-%d" % (i, n))])
                resp = c.response()
                if resp.status != 200:
                    errors.append(resp.status)
                n += 1
                done[i] = n
    except Exception as e:  # noqa: BLE001 - reported by the test
        errors.append(repr(e))


def test_redis_killed_under_traffic_then_restarted_nodes_converge(pair, redis_factory):
    r, a, b = pair
    cmd(a.sock, "set weight default 20")
    wait_percent(b.sock, "default", 20, timeout=3)
    stop = threading.Event()
    errors, done = [], [0] * 4
    threads = [threading.Thread(target=_load, args=(t, stop, errors, done, i))
               for i, t in enumerate((a, b, a, b))]
    for th in threads:
        th.start()
    try:
        harness.wait_until(lambda: sum(done) > 200, 10, "traffic")
        r.stop()
        for t in (a, b):
            harness.wait_until(lambda: not jcmd(t.sock, "show info")["redis"]["up"], 5,
                               "%s sees redis down" % t.name)
        assert "down" in jcmd(a.sock, "show info")["redis"]["state"]
        mark = sum(done)
        harness.wait_until(lambda: sum(done) > mark + 400, 20, "traffic while redis is down")
        # the last applied state stays; a change applies locally
        assert route(b.sock, "default")["percent"] == 20
        ans = cmd(a.sock, "set weight default 35")
        assert "redis down" in ans, ans
        # redis returns on the same port, empty: the nodes converge on a's change
        r2 = redis_factory(port=r.port)
        for t in (a, b):
            wait_redis_up(t)
        wait_percent(b.sock, "default", 35, timeout=8, source="redis")
        mark = sum(done)
        harness.wait_until(lambda: sum(done) > mark + 200, 10, "traffic after redis returned")
    finally:
        stop.set()
        for th in threads:
            th.join(20)
    assert not errors, errors[:5]
    assert r2.client().hget("turnout:%s:weights" % NS, "default") == "35.00"
    harness.wait_until(lambda: jcmd(b.sock, "show info")["applied_version"] ==
                       jcmd(a.sock, "show info")["applied_version"], 5, "the same version")
    assert_split(b, 35)


def test_a_node_started_while_redis_is_down_boots_from_its_state_file(
        turnout_factory, legacy, new, short_dir, redis_factory):
    r = redis_factory()
    a = node(turnout_factory, legacy, new, short_dir, "node-a", redis_conf(r))
    wait_redis_up(a)
    cmd(a.sock, "set weight default 45")
    a.stop()
    r.stop()
    a.start()
    assert not jcmd(a.sock, "show info")["redis"]["up"]
    rt = route(a.sock, "default")
    assert (rt["percent"], rt["source"]) == (45, "admin")
    assert_split(a, 45)
    # redis returns, holding another weight set meanwhile by the fleet: it wins
    r2 = redis_factory(port=r.port)
    rc = r2.client()
    rc.hset("turnout:%s:weights" % NS, "default", "15")
    rc.publish("turnout:%s:changes" % NS, "weights")
    wait_redis_up(a)
    wait_percent(a.sock, "default", 15, timeout=8, source="redis")
    assert_split(a, 15)


def test_auth_with_password_from_the_environment(turnout_factory, legacy, new, short_dir,
                                                 redis_factory, monkeypatch):
    r = redis_factory(password="s3cret-pw")
    monkeypatch.setenv("TN_TEST_REDIS_PW", "s3cret-pw")
    a = node(turnout_factory, legacy, new, short_dir, "node-a",
             redis_conf(r, password_env="TN_TEST_REDIS_PW"))
    wait_redis_up(a)
    cmd(a.sock, "set weight default 22")
    harness.wait_until(lambda: r.client().hget("turnout:%s:weights" % NS, "default") == "22.00",
                       3, "the weight written to redis")  # the write is asynchronous
    monkeypatch.setenv("TN_TEST_REDIS_PW", "wrong")
    b = node(turnout_factory, legacy, new, short_dir, "node-b",
             redis_conf(r, password_env="TN_TEST_REDIS_PW"))
    harness.wait_until(lambda: "AUTH" in jcmd(b.sock, "show info")["redis"]["state"], 5,
                       "the AUTH failure shown")
    assert not jcmd(b.sock, "show info")["redis"]["up"]
    assert_split(b, 10)  # requests are served all the same


def test_sentinel_failover_is_followed(turnout_factory, legacy, new, short_dir, redis_factory):
    master = redis_factory()
    replica = redis_factory(replica_of=master.port)
    harness.wait_until(lambda: replica.client().info("replication")["master_link_status"] == "up",
                       10, "the replica in sync")
    sen = redis_factory.sentinel(master.port)
    harness.wait_until(lambda: sen.client().execute_command(
        "SENTINEL", "replicas", sen.name), 10, "the sentinel to see the replica")
    cfg = {"sentinels": [sen.address], "master": sen.name, "namespace": NS, "resync": "1s",
           "connect_timeout": "500ms"}
    a = node(turnout_factory, legacy, new, short_dir, "node-a", cfg)
    b = node(turnout_factory, legacy, new, short_dir, "node-b", cfg)
    wait_redis_up(a)
    wait_redis_up(b)
    assert str(master.port) in jcmd(a.sock, "show info")["redis"]["state"]
    cmd(a.sock, "set weight default 30")
    wait_percent(b.sock, "default", 30, timeout=3)
    master.stop()
    harness.wait_until(lambda: sen.master_port() == replica.port, 30, "the failover")
    for t in (a, b):
        harness.wait_until(lambda: jcmd(t.sock, "show info")["redis"]["up"] and
                           str(replica.port) in jcmd(t.sock, "show info")["redis"]["state"],
                           20, "%s on the new master" % t.name)
    cmd(a.sock, "set weight default 31")
    wait_percent(b.sock, "default", 31, timeout=3, source="redis")
    assert replica.client().hget("turnout:%s:weights" % NS, "default") == "31.00"


def test_a_ramp_started_while_redis_is_down_reaches_the_fleet_when_it_returns(
        pair, redis_factory):
    r, a, b = pair
    r.stop()
    harness.wait_until(lambda: not jcmd(a.sock, "show info")["redis"]["up"], 5, "redis down")
    cmd(a.sock, "ramp default 14 over 3s step 2")
    r2 = redis_factory(port=r.port)
    for t in (a, b):
        wait_redis_up(t)
    wait_percent(b.sock, "default", 14, timeout=10)
    wait_percent(a.sock, "default", 14, timeout=10)
    steps = [e for e in jcmd(b.sock, "show events 100") if e["what"].startswith("ramp default")
             or e["to"] == "ramp from redis"]
    assert steps, "node b never saw the ramp"
    harness.wait_until(lambda: r2.client().hget("turnout:%s:weights" % NS, "default") == "14.00",
                       5, "the final step in redis")
    assert_split(b, 14)
