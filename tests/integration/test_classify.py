"""Classification end to end: routes matching on country, continent and
subdivision (a real .mmdb made at test time with Debian's
libmaxmind-db-writer-perl), on device class (User-Agent), and on segments
(header, cookie, query; a Redis set with a real redis-server). Each route
pins its own backend, so the backend that answers says which route took the
request."""

import os
import subprocess

import pytest

import harness
from admin import cmd, jcmd
from client import Client

HERE = os.path.dirname(os.path.abspath(__file__))
MKMMDB = os.path.join(HERE, "..", "unit", "data", "make-geo-mmdb.pl")


@pytest.fixture(scope="module")
def mmdb(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("geo") / "test-city.mmdb")
    subprocess.run(["perl", MKMMDB, out], check=True, capture_output=True, timeout=120)
    return out


def platform(resp):
    assert resp.status == 200, (resp.status, resp.body[:200])
    return resp.header("X-Platform")


def get(t, headers, target="/"):
    with Client(*t.listen) as c:
        c.request("GET", target, headers)
        return platform(c.response())


def start(turnout_factory, backend_factory, routes, names, extra, short_dir=None, **kw):
    servers = {n: backend_factory("platform", n) for n in names}
    backends = {n: [b.address] for n, b in servers.items()}
    ex = dict(extra)
    if short_dir is not None:
        ex["admin"] = {"socket": short_dir("admin.sock")}
    t = turnout_factory(backends=backends, routes=routes, extra=ex, **kw)
    if short_dir is not None:
        t.sock = ex["admin"]["socket"]
    t.backends = servers
    return t


GEO_ROUTES = [
    {"name": "bavaria", "match": {"subdivision": ["DE-BY"]}, "backend": "bavaria"},
    {"name": "nordic", "match": {"country": ["SE", "NO"]}, "backend": "nordic"},
    {"name": "asia", "match": {"continent": "AS"}, "backend": "asia"},
    {"name": "washington", "match": {"subdivision": "WA"}, "backend": "washington"},
    {"name": "default", "backend": "legacy"},
]
GEO_NAMES = ["bavaria", "nordic", "asia", "washington", "legacy"]


def test_geography_from_a_trusted_proxy_s_x_forwarded_for(turnout_factory, backend_factory,
                                                          mmdb):
    t = start(turnout_factory, backend_factory, GEO_ROUTES, GEO_NAMES,
              {"geoip": {"database": mmdb}, "trusted_proxies": ["127.0.0.0/8", "10.0.0.0/8"]})
    cases = [
        ("93.184.1.1", "bavaria"),            # DE, subdivision BY
        ("2003::1", "bavaria"),               # IPv6, DE-BY
        ("89.160.20.5", "nordic"),            # SE
        ("2a02:cf40::7", "nordic"),           # IPv6 NO
        ("175.16.199.9", "asia"),             # CN
        ("2001:218::1", "asia"),              # IPv6 JP
        ("216.160.83.60", "washington"),      # US-WA
        ("81.2.69.160", "legacy"),            # GB
        ("192.0.2.1", "legacy"),              # not in the database
        ("10.1.2.3, 93.184.7.7", "bavaria"),  # right-most untrusted... is 93.184.7.7
        ("93.184.7.7, 10.9.9.9", "bavaria"),  # a trusted hop is skipped
        ("[2003::5]:4711", "bavaria"),
    ]
    for xff, want in cases:
        assert get(t, [("X-Forwarded-For", xff)]) == want, xff
    # a client cannot choose its country: its own X-Forwarded-For entries are
    # left of the address the trusted proxy appended
    assert get(t, [("X-Forwarded-For", "93.184.1.1, 81.2.69.160")]) == "legacy"
    assert get(t, [("X-Forwarded-For", "93.184.1.1"),
                   ("X-Forwarded-For", "175.16.199.9")]) == "asia"
    # garbage where the proxy's entry should be: the proxy (peer) is used
    assert get(t, [("X-Forwarded-For", "93.184.1.1, garbage")]) == "legacy"


def test_untrusted_peer_s_x_forwarded_for_is_ignored(turnout_factory, backend_factory, mmdb):
    t = start(turnout_factory, backend_factory, GEO_ROUTES, GEO_NAMES,
              {"geoip": {"database": mmdb}})
    assert get(t, [("X-Forwarded-For", "93.184.1.1")]) == "legacy"


def test_geo_answers_agree_with_mmdblookup(mmdb):
    for ip, want in (("93.184.1.1", "DE"), ("2001:218::1", "JP"), ("89.160.20.5", "SE")):
        out = subprocess.run(["mmdblookup", "--file", mmdb, "--ip", ip, "country", "iso_code"],
                             capture_output=True, text=True, timeout=30).stdout
        assert '"%s"' % want in out, (ip, out)


def test_geo_route_without_database_is_a_config_error(turnout_binary, tmp_path):
    cfg = harness.make_config(["127.0.0.1:%d" % harness.free_port()], {"b": ["127.0.0.1:1"]},
                              [{"name": "de", "match": {"country": "DE"}, "backend": "b"}])
    path = tmp_path / "t.yaml"
    path.write_text(harness.to_yaml(cfg) + "\n")
    r = harness.run_check(turnout_binary, str(path))
    assert r.returncode != 0
    assert b"t.yaml:" in r.stderr and b"route de matches on country but geoip.database is not set" \
        in r.stderr, r.stderr


def test_geo_database_replaced_on_disk_is_picked_up(turnout_factory, backend_factory, mmdb,
                                                    tmp_path, short_dir):
    live = str(tmp_path / "live.mmdb")
    with open(mmdb, "rb") as f:
        data = f.read()
    with open(live, "wb") as f:
        f.write(data)
    routes = [{"name": "de", "match": {"country": "DE"}, "backend": "bavaria"},
              {"name": "default", "backend": "legacy"}]
    t = start(turnout_factory, backend_factory, routes, ["bavaria", "legacy"],
              {"geoip": {"database": live}, "trusted_proxies": ["127.0.0.0/8"]}, short_dir)
    assert get(t, [("X-Forwarded-For", "93.184.1.1")]) == "bavaria"
    # an empty database file replaces it atomically: nothing is German any more
    empty = str(tmp_path / "empty.mmdb")
    subprocess.run(["perl", MKMMDB, "--empty", empty], check=True, capture_output=True,
                   timeout=120)
    os.replace(empty, live)
    harness.wait_until(lambda: get(t, [("X-Forwarded-For", "93.184.1.1")]) == "legacy", 5,
                       "the replaced database in force")
    ev = [e for e in jcmd(t.sock, "show events 50") if e["what"] == "geoip database"]
    assert ev and ev[-1]["from"] == "replaced"


DEVICES = {"smart-tv": "Tizen|Web0S|AFT[A-Z]|CrKey|Roku",
           "phone": "iPhone|Android.*Mobile",
           "desktop": "Windows NT|Macintosh|X11"}

TIZEN = ("Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) "
         "76.0.3809.146/6.0 TV Safari/537.36")
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1")
WINDOWS = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/120.0.0.0 Safari/537.36")


def test_device_classes(turnout_factory, backend_factory):
    routes = [{"name": "tv", "match": {"device": "smart-tv"}, "backend": "tv"},
              {"name": "mobile", "match": {"device": "phone"}, "backend": "mobile"},
              {"name": "default", "backend": "legacy"}]
    t = start(turnout_factory, backend_factory, routes, ["tv", "mobile", "legacy"],
              {"devices": DEVICES})
    assert get(t, [("User-Agent", TIZEN)]) == "tv"
    assert get(t, [("User-Agent", IPHONE)]) == "mobile"
    assert get(t, [("User-Agent", WINDOWS)]) == "legacy"
    assert get(t, []) == "legacy"
    for _ in range(3):  # the per-worker cache answers the same
        assert get(t, [("User-Agent", TIZEN)]) == "tv"


def test_segments_from_header_cookie_and_query(turnout_factory, backend_factory):
    segs = {"beta": {"header": "X-User-Tier", "equals": ["beta", "alpha"]},
            "staff": {"cookie": "role", "regex": "^(staff|admin)$"},
            "qa": {"query": "qa", "equals": "1"}}
    routes = [{"name": "staff", "match": {"segment": "staff"}, "backend": "staff"},
              {"name": "beta", "match": {"segment": "beta"}, "backend": "beta"},
              {"name": "qa", "match": {"segment": "qa"}, "backend": "qa"},
              {"name": "default", "backend": "legacy"}]
    t = start(turnout_factory, backend_factory, routes, ["staff", "beta", "qa", "legacy"],
              {"segments": segs})
    assert get(t, [("X-User-Tier", "beta")]) == "beta"
    assert get(t, [("x-user-tier", "alpha")]) == "beta"   # header names in any case
    assert get(t, [("X-User-Tier", "Beta")]) == "legacy"  # values are case-sensitive
    assert get(t, [("Cookie", "a=1; role=admin")]) == "staff"
    assert get(t, [("Cookie", "role=staffer")]) == "legacy"
    assert get(t, [], target="/x?a=2&qa=1") == "qa"
    assert get(t, [], target="/x?qa=11") == "legacy"


def test_redis_set_segment_100k_members_updated_under_traffic(
        turnout_factory, backend_factory, redis_factory, short_dir):
    r = redis_factory()
    rc = r.client()
    key = "turnout:cls:segment:staff"
    pipe = rc.pipeline(transaction=False)
    for i in range(0, 100000, 5000):
        pipe.sadd(key, *["member-%06d" % j for j in range(i, i + 5000)])
    pipe.execute()
    routes = [{"name": "staff", "match": {"segment": "staff"}, "backend": "staff"},
              {"name": "default", "backend": "legacy"}]
    t = start(turnout_factory, backend_factory, routes, ["staff", "legacy"],
              {"segments": {"staff": {"redis_set": "staff"}},
               "redis": {"address": r.address, "namespace": "cls"},
               "sticky_key": [{"header": "X-User-Id"}]}, short_dir)
    harness.wait_until(lambda: "100000 members" in cmd(t.sock, "show segments"), 20,
                       "the set loaded")
    seg = jcmd(t.sock, "show segments")[0]
    assert (seg["name"], seg["kind"], seg["members"]) == ("staff", "redis_set", 100000)
    for k in ("member-000000", "member-054321", "member-099999"):
        assert get(t, [("X-User-Id", k)]) == "staff", k
    for k in ("member-100000", "nobody"):
        assert get(t, [("X-User-Id", k)]) == "legacy", k
    # updated while traffic flows: the new member moves, the removed one leaves
    with Client(*t.listen) as c:
        rc.sadd(key, "newcomer")
        rc.srem(key, "member-000000")
        rc.publish("turnout:cls:changes", "segment:staff")

        def moved():
            c.request("GET", "/", [("X-User-Id", "newcomer")])
            return platform(c.response()) == "staff"
        harness.wait_until(moved, 10, "newcomer in the staff segment")
    assert get(t, [("X-User-Id", "member-000000")]) == "legacy"
    # Redis down: the last loaded set stays in force
    r.stop()
    harness.wait_until(lambda: not jcmd(t.sock, "show info")["redis"]["up"], 5, "redis down")
    assert get(t, [("X-User-Id", "member-054321")]) == "staff"


# ---- pins, the override header, explaining the decision ----

def override_proxy(turnout_factory, backend_factory, short_dir, monkeypatch, trusted=None):
    monkeypatch.setenv("TN_TEST_OVERRIDE_TOKEN", "t0ken-42")
    routes = [{"name": "default", "shift": {"from": "legacy", "to": "new", "percent": 0}}]
    extra = {"overrides": {"header": "X-Turnout-Backend", "token_env": "TN_TEST_OVERRIDE_TOKEN"},
             "sticky_key": [{"header": "X-User-Id"}]}
    if trusted:
        extra["trusted_proxies"] = trusted
    return start(turnout_factory, backend_factory, routes, ["legacy", "new"], extra, short_dir,
                 access_log="file")


def test_override_header_needs_the_token_and_is_never_forwarded(
        turnout_factory, backend_factory, short_dir, monkeypatch):
    t = override_proxy(turnout_factory, backend_factory, short_dir, monkeypatch)
    good = [("X-User-Id", "u1"), ("X-Turnout-Backend", "new"), ("X-Turnout-Token", "t0ken-42")]
    assert get(t, good, target="/good") == "new"
    for target, hdrs in (("/wrong", [("X-Turnout-Backend", "new"), ("X-Turnout-Token", "t0ken-43")]),
                         ("/short", [("X-Turnout-Backend", "new"), ("X-Turnout-Token", "t0ken")]),
                         ("/missing", [("X-Turnout-Backend", "new")])):
        assert get(t, [("X-User-Id", "u1")] + hdrs, target=target) == "legacy", target
    rec = t.wait_log(lambda r: r["path"] == "/wrong")
    assert (rec["override"], rec["reason"]) == ("refused", "shift_from")
    assert t.wait_log(lambda r: r["path"] == "/good")["reason"] == "override"
    # neither header reaches a backend, honoured or not
    for srv in t.backends.values():
        for req in srv.completed():
            assert not req.header("X-Turnout-Backend") and not req.header("X-Turnout-Token"), \
                req.target


def test_override_from_a_trusted_address_without_token(turnout_factory, backend_factory,
                                                       short_dir, monkeypatch):
    t = override_proxy(turnout_factory, backend_factory, short_dir, monkeypatch,
                       trusted=["127.0.0.0/8"])
    assert get(t, [("X-User-Id", "u1"), ("X-Turnout-Backend", "new")]) == "new"
    assert get(t, [("X-User-Id", "u1"), ("X-Turnout-Backend", "nosuch")]) == "legacy"


def test_pin_beats_override_beats_route(turnout_factory, backend_factory, short_dir,
                                        monkeypatch):
    t = override_proxy(turnout_factory, backend_factory, short_dir, monkeypatch)
    cmd(t.sock, "pin pinned-user legacy")
    hdr = [("X-Turnout-Backend", "new"), ("X-Turnout-Token", "t0ken-42")]
    assert get(t, [("X-User-Id", "pinned-user")] + hdr) == "legacy"
    assert get(t, [("X-User-Id", "other")] + hdr) == "new"
    assert get(t, [("X-User-Id", "other")]) == "legacy"


def test_decision_header_and_access_log_explain_the_route(turnout_factory, backend_factory,
                                                           mmdb):
    routes = [{"name": "tv-de", "match": {"device": "smart-tv", "country": "DE",
                                          "path": "^/api/"},
               "shift": {"from": "legacy", "to": "new", "percent": 100}},
              {"name": "default", "backend": "legacy"}]
    t = start(turnout_factory, backend_factory, routes, ["legacy", "new"],
              {"devices": DEVICES, "geoip": {"database": mmdb},
               "trusted_proxies": ["127.0.0.0/8"], "debug_headers": True,
               "segments": {"beta": {"header": "X-User-Tier", "equals": "beta"}},
               "sticky_key": [{"header": "X-User-Id"}]}, access_log="file")
    with Client(*t.listen) as c:
        c.request("GET", "/api/x", [("User-Agent", TIZEN), ("X-Forwarded-For", "93.184.1.1"),
                                    ("X-User-Id", "u5")])
        r = c.response()
    assert platform(r) == "new"
    dec = r.header("X-Turnout-Decision")
    assert dec.startswith("route=tv-de match=path,country,device country=DE continent=EU "
                          "subdivision=BY device=smart-tv key=header bucket=%d "
                          % harness.bucket("tv-de", "u5")), dec
    assert dec.endswith("reason=shift_to backend=new"), dec
    rec = t.wait_log(lambda x: x["path"] == "/api/x")
    assert (rec["match"], rec["country"], rec["continent"], rec["device"]) == (
        "path,country,device", "DE", "EU", "smart-tv")
    assert rec["bucket"] == harness.bucket("tv-de", "u5")


def test_decision_header_is_never_sent_to_untrusted_clients(turnout_factory, backend_factory):
    routes = [{"name": "default", "shift": {"from": "legacy", "to": "new", "percent": 50}}]
    for trusted, want in ((None, None), (["10.0.0.0/8"], None), (["127.0.0.0/8"], "route=")):
        extra = {"debug_headers": True, "sticky_key": [{"header": "X-User-Id"}]}
        if trusted:
            extra["trusted_proxies"] = trusted
        t = start(turnout_factory, backend_factory, routes, ["legacy", "new"], extra)
        with Client(*t.listen) as c:
            c.request("GET", "/", [("X-User-Id", "u1")])
            r = c.response()
        assert r.header("X-Turnout-Attempts"), trusted  # debug_headers is on
        dec = r.header("X-Turnout-Decision")
        assert (dec[:6] if dec else None) == want, (trusted, dec)
        t.stop()


def test_explain_on_the_admin_socket(turnout_factory, backend_factory, short_dir, mmdb):
    routes = [{"name": "tv", "match": {"device": "smart-tv"}, "backend": "tv"},
              {"name": "de", "match": {"country": "DE"}, "backend": "de"},
              {"name": "default", "shift": {"from": "legacy", "to": "new", "percent": 30}}]
    t = start(turnout_factory, backend_factory, routes, ["tv", "de", "legacy", "new"],
              {"devices": DEVICES, "geoip": {"database": mmdb},
               "sticky_key": [{"header": "X-User-Id"}]}, short_dir)
    ans = cmd(t.sock, "explain GET /home User-Agent: " + TIZEN)
    assert ans.startswith("route=tv match=device device=smart-tv reason=route_pin backend=tv")
    ans = cmd(t.sock, "explain GET http://example.com/ client=93.184.1.1 User-Agent: curl/8.0")
    assert "route=de" in ans and "country=DE" in ans, ans
    ans = cmd(t.sock, "explain GET / X-User-Id: u42")
    side = harness.predict("default", "u42", 30)
    assert "bucket=%d" % harness.bucket("default", "u42") in ans and "backend=" + side in ans
    j = jcmd(t.sock, "explain GET / X-User-Id: u42")
    assert (j["route"], j["backend"]) == ("default", side)
    assert cmd(t.sock, "explain GET").startswith("ERR usage: explain")
    assert cmd(t.sock, "explain GET nopath").startswith("ERR bad URL")
    # explain sends nothing
    assert get(t, [("User-Agent", TIZEN)]) == "tv"


# ---- a 10-route plan mixing every match type ----

MIX_ROUTES = [
    {"name": "staff", "match": {"segment": "staff"}, "backend": "new"},
    {"name": "beta", "match": {"segment": "beta"}, "backend": "new"},
    {"name": "qa", "match": {"segment": "qa"}, "backend": "new"},
    {"name": "tv-de", "match": {"device": "smart-tv", "country": "DE"},
     "shift": {"from": "legacy", "to": "new", "percent": 100}},
    {"name": "tv-eu", "match": {"device": "smart-tv", "continent": "EU"},
     "shift": {"from": "legacy", "to": "new", "percent": 50}},
    {"name": "api", "match": {"host": "^api\\.", "path": "^/v2/"},
     "shift": {"from": "legacy", "to": "new", "percent": 25}},
    {"name": "mobile-asia", "match": {"device": "phone", "continent": "AS"}, "backend": "new"},
    {"name": "upload", "match": {"method": "POST", "path": "^/upload"}, "backend": "legacy"},
    {"name": "bavaria", "match": {"subdivision": "DE-BY"},
     "shift": {"from": "legacy", "to": "new", "percent": 10}},
    {"name": "default", "shift": {"from": "legacy", "to": "new", "percent": 5}},
]

GEO = {"93.184.1.1": ("DE", "EU", "BY"), "89.160.20.5": ("SE", "EU", ""),
       "175.16.199.9": ("CN", "AS", ""), "216.160.83.60": ("US", "NA", "WA"),
       "192.0.2.7": ("", "", "")}
UAS = {"smart-tv": TIZEN, "phone": IPHONE, "desktop": WINDOWS}


def expected(req):
    """The backend DESIGN.md's rules give for req (a dict of attributes)."""
    country, continent, sub = GEO[req["ip"]]
    for r in MIX_ROUTES:
        m = r.get("match", {})
        ok = True
        if "segment" in m:
            ok = req["segment_" + m["segment"]]
        if "device" in m:
            ok = ok and req["device"] == m["device"]
        if "country" in m:
            ok = ok and country == m["country"]
        if "continent" in m:
            ok = ok and continent == m["continent"]
        if "subdivision" in m:
            ok = ok and (country, sub) == ("DE", "BY")
        if "host" in m:
            ok = ok and req["host"].startswith("api.")
        if "path" in m:
            ok = ok and req["path"].startswith(m["path"][1:])
        if "method" in m:
            ok = ok and req["method"] == m["method"]
        if not ok:
            continue
        if "backend" in r:
            return r["name"], r["backend"]
        return r["name"], harness.predict(r["name"], req["user"], r["shift"]["percent"])
    raise AssertionError("no route")


def test_ten_route_plan_every_request_on_its_expected_backend(
        turnout_factory, legacy, new, redis_factory, mmdb):
    import random

    r = redis_factory()
    r.client().sadd("turnout:mix:segment:staff", *["staff-%d" % i for i in range(50)])
    t = turnout_factory(
        backends={"legacy": [legacy.address], "new": [new.address]}, routes=MIX_ROUTES,
        access_log="file",
        extra={"devices": DEVICES, "geoip": {"database": mmdb},
               "trusted_proxies": ["127.0.0.0/8"],
               "redis": {"address": r.address, "namespace": "mix"},
               "segments": {"staff": {"redis_set": "staff"},
                            "beta": {"header": "X-User-Tier", "equals": "beta"},
                            "qa": {"cookie": "qa", "regex": "^1$"}},
               "sticky_key": [{"header": "X-User-Id"}]})
    rnd = random.Random(7)
    reqs = []
    for i in range(400):
        user = rnd.choice(["staff-%d" % rnd.randrange(50), "user-%d" % rnd.randrange(10 ** 6)])
        reqs.append({
            "user": user, "ip": rnd.choice(list(GEO)), "device": rnd.choice(list(UAS)),
            "segment_staff": user.startswith("staff-"),
            "segment_beta": rnd.random() < 0.1, "segment_qa": rnd.random() < 0.1,
            "host": rnd.choice(["www.example.com", "api.example.com"]),
            "path": rnd.choice(["/", "/v2/items", "/upload/x"]),
            "method": rnd.choice(["GET", "POST"]),
        })
    # wait for the staff set before checking
    harness.wait_until(lambda: get(t, [("X-User-Id", "staff-3")]) == "new", 10, "staff loaded")
    wrong = []
    with Client(*t.listen) as c:
        for i, q in enumerate(reqs):
            hdrs = [("Host", q["host"]), ("X-User-Id", q["user"]),
                    ("X-Forwarded-For", q["ip"]), ("User-Agent", UAS[q["device"]])]
            if q["segment_beta"]:
                hdrs.append(("X-User-Tier", "beta"))
            if q["segment_qa"]:
                hdrs.append(("Cookie", "qa=1"))
            body = b"x" if q["method"] == "POST" else None
            target = q["path"] + ("?" if "?" not in q["path"] else "&") + "n=%d" % i
            c.send(_raw(q["method"], target, hdrs, body))
            resp = c.response(method=q["method"])
            route, backend = expected(q)
            got = resp.header("X-Platform")
            if got != backend:
                wrong.append((i, route, backend, got, q))
    assert not wrong, "%d of %d wrong, e.g. %r" % (len(wrong), len(reqs), wrong[:3])
    lines = harness.wait_until(lambda: t.log_lines() if len(t.log_lines()) >= len(reqs) else None,
                               5, "every request logged")  # the log is written every 100 ms
    routes_seen = {rec["route"] for rec in lines}
    assert len(routes_seen) >= 9, routes_seen


def _raw(method, target, headers, body):
    lines = ["%s %s HTTP/1.1" % (method, target)]
    lines += ["%s: %s" % h for h in headers]
    if body is not None:
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def test_client_ip_sticky_key_behind_a_trusted_proxy(turnout_factory, backend_factory):
    routes = [{"name": "default", "shift": {"from": "legacy", "to": "new", "percent": 50}}]
    t = start(turnout_factory, backend_factory, routes, ["legacy", "new"],
              {"trusted_proxies": ["127.0.0.0/8"], "sticky_key": [{"client_ip": True}]},
              access_log="file")
    ips = ["203.0.113.%d" % i for i in range(1, 41)] + ["2001:db8::%x" % i for i in range(1, 21)]
    for ip in ips:
        want = harness.predict("default", ip, 50)
        assert get(t, [("X-Forwarded-For", "198.51.100.1, " + ip)], target="/ip/" + ip) == want
    rec = t.wait_log(lambda r: r["path"] == "/ip/203.0.113.5")
    assert (rec["key_source"], rec["bucket"]) == ("client_ip",
                                                  harness.bucket("default", "203.0.113.5"))
    # without X-Forwarded-For the peer's own address is the key
    assert get(t, [], target="/peer") == harness.predict("default", "127.0.0.1", 50)
