"""Per-worker statistics summed on the control thread (`show stats` on the
admin socket): exact counts by route, side, backend and status class with
several workers, and a latency histogram whose count and sum agree with
the access log."""

import harness
from admin import cmd, jcmd
from client import Client, map_keys

KEYS = ["user-%04d" % i for i in range(600)]


def test_counts_are_exact_by_route_side_backend_and_class(turnout_factory, legacy, new,
                                                          short_dir):
    sock = short_dir("admin.sock")
    t = turnout_factory(backends={"legacy": [legacy.address], "new": [new.address]},
                        routes=harness.default_routes(30), workers=2, access_log="file",
                        extra={"admin": {"socket": sock}})
    m = map_keys(*t.listen, KEYS, nconns=6)
    to_new = sum(1 for v in m.values() if v == "new")
    # beta users (route beta pins new), and some 404s from legacy
    with Client(*t.listen) as c:
        for i in range(25):
            c.request("GET", "/", [("X-User-Tier", "beta"), ("X-User-Id", "b%d" % i)])
            assert c.response().status == 200
        n404 = 0
        for k in KEYS[:100]:
            if harness.predict("default", k, 30) != "legacy":
                continue
            c.request("GET", "/status/404", [("X-User-Id", k)])
            assert c.response().status == 404
            n404 += 1
    lines = harness.wait_until(lambda: t.log_lines() if len(t.log_lines()) >= 625 + n404 else None,
                               5, "every request logged")

    def stats():
        return {(r["route"], r["side"], r["backend"]): r for r in jcmd(sock, "show stats")}
    s = harness.wait_until(lambda: stats() if stats()[("default", "from", "legacy")]["requests"]
                           == len(KEYS) - to_new + n404 else None, 5, "the counts")
    frm, to, beta = s[("default", "from", "legacy")], s[("default", "to", "new")], \
        s[("beta", "pinned", "new")]
    assert (frm["requests"], to["requests"], beta["requests"]) == (
        len(KEYS) - to_new + n404, to_new, 25)
    assert frm["status"]["2xx"] == len(KEYS) - to_new and frm["status"]["4xx"] == n404
    assert to["status"]["2xx"] == to_new and to["status"]["5xx"] == 0
    assert frm["attempts"] == frm["requests"]
    # the histogram agrees with the access log
    for key, st in s.items():
        recs = [r for r in lines if r["route"] == key[0] and r["backend"] == key[2]]
        assert st["latency"]["count"] == len(recs) == sum(st["latency"]["buckets"]), key
        log_sum = sum(r["duration_ms"] for r in recs) / 1000.0
        assert abs(st["latency"]["sum_s"] - log_sum) <= 0.001 * len(recs) + 0.01 * log_sum, (
            key, st["latency"]["sum_s"], log_sum)
        assert st["bytes_out"] == sum(r["bytes_out"] for r in recs), key
    text = cmd(sock, "show stats")
    assert "default" in text and "legacy" in text and "p99_ms" in text


def test_counts_survive_a_reload(turnout_factory, legacy, new, short_dir):
    sock = short_dir("admin.sock")
    t = turnout_factory(backends={"legacy": [legacy.address], "new": [new.address]},
                        routes=harness.default_routes(30), extra={"admin": {"socket": sock}})
    map_keys(*t.listen, KEYS[:100])
    total = lambda: sum(r["requests"] for r in jcmd(sock, "show stats"))  # noqa: E731
    harness.wait_until(lambda: total() == 100, 5, "100 counted")
    assert cmd(sock, "reload").startswith("reloaded")
    map_keys(*t.listen, KEYS[100:150])
    harness.wait_until(lambda: total() == 150, 5, "150 counted across the reload")
