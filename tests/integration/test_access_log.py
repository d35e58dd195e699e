"""The access log: one JSON object per line with the routing decision, written
asynchronously (tests poll the file), reopened on SIGUSR1."""

import datetime
import json
import os
import signal

import harness
from client import build_request

FIELDS = {"time", "client", "method", "path", "proto", "status", "bytes_in", "bytes_out",
          "duration_ms", "route", "backend", "server", "key_source", "bucket", "reason"}


def _key(prefix, to_new, percent=30):
    for i in range(10000):
        k = "%s%d" % (prefix, i)
        if harness.shifted("default", k, percent) == to_new:
            return k
    raise AssertionError("no key")


def _check_time(rec):
    ts = rec["time"]
    assert isinstance(ts, str)
    parsed = datetime.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    assert parsed.utcoffset() == datetime.timedelta(0), "time %r is not UTC" % ts
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - parsed).total_seconds()) < 120, ts


def test_shifted_request_logged_with_decision(proxy, new, connect):
    key = _key("log-to-", True)
    body = b"payload-123"
    raw = build_request("POST", "/logged/to", [("X-User-Id", key)], body)
    c = connect(proxy)
    c.send(raw)
    r = c.response()
    assert r.status == 200 and r.header("X-Platform") == "new"
    rec = proxy.wait_log(lambda x: x.get("path") == "/logged/to")
    assert FIELDS <= set(rec), "missing fields: %s" % (FIELDS - set(rec))
    _check_time(rec)
    assert rec["client"] == "127.0.0.1"
    assert rec["method"] == "POST"
    assert rec["proto"] == "HTTP/1.1"
    assert rec["status"] == 200
    assert isinstance(rec["bytes_in"], int) and len(body) <= rec["bytes_in"] <= len(raw)
    assert isinstance(rec["bytes_out"], int)
    assert r.body_len <= rec["bytes_out"] <= len(r.raw_head) + r.body_len
    assert isinstance(rec["duration_ms"], (int, float)) and rec["duration_ms"] >= 0
    assert rec["route"] == "default"
    assert rec["backend"] == "new"
    assert rec["server"] == new.address
    assert rec["key_source"] == "header"
    assert rec["bucket"] == harness.bucket("default", key)
    assert rec["reason"] == "shift_to"


def test_decision_fields_for_each_reason_and_key_source(proxy, legacy, new, connect):
    c = connect(proxy)
    from_key = _key("log-from-", False)
    cookie_key = _key("log-cookie-", True)
    query_key = _key("log-query-", False)
    reqs = [
        ("/r/from", [("X-User-Id", from_key)]),
        ("/r/pin", [("X-User-Tier", "beta"), ("X-User-Id", from_key)]),
        ("/r/cookie", [("Cookie", "uid=%s" % cookie_key)]),
        ("/r/query?user=%s" % query_key, []),
        ("/r/ip", []),
    ]
    for target, hdrs in reqs:
        assert c.get(target, hdrs).status == 200
    logs = {}
    for target, _ in reqs:
        path = target.split("?")[0]
        logs[path] = proxy.wait_log(lambda x, p=path: x.get("path", "").split("?")[0] == p,
                                    what="log line for " + path)

    rec = logs["/r/from"]
    assert (rec["route"], rec["backend"], rec["server"], rec["reason"], rec["key_source"]) == (
        "default", "legacy", legacy.address, "shift_from", "header")
    assert rec["bucket"] == harness.bucket("default", from_key)

    rec = logs["/r/pin"]
    assert (rec["route"], rec["backend"], rec["server"], rec["reason"]) == (
        "beta", "new", new.address, "route_pin")
    assert rec["bucket"] is None and rec["key_source"] is None

    rec = logs["/r/cookie"]
    assert (rec["key_source"], rec["backend"], rec["reason"]) == ("cookie", "new", "shift_to")
    assert rec["bucket"] == harness.bucket("default", cookie_key)

    rec = logs["/r/query"]
    assert (rec["key_source"], rec["backend"], rec["reason"]) == ("query", "legacy", "shift_from")
    assert rec["bucket"] == harness.bucket("default", query_key)

    rec = logs["/r/ip"]
    assert rec["key_source"] == "client_ip"
    assert rec["bucket"] == harness.bucket("default", "127.0.0.1")
    assert rec["backend"] == harness.predict("default", "127.0.0.1", 30)


def test_proto_names_the_client_protocol(proxy, new, connect):
    """"proto" is the version of the client's request line; the backend's Via
    names it too (RFC 9110 7.6.3), while the request upstream is HTTP/1.1."""
    c = connect(proxy)
    beta = [("X-User-Tier", "beta")]  # pinned to new
    assert c.get("/proto/11", beta).status == 200
    assert c.get("/proto/10", beta, version="HTTP/1.0").status == 200
    for path, proto, via in (("/proto/11", "HTTP/1.1", "1.1 turnout"),
                             ("/proto/10", "HTTP/1.0", "1.0 turnout")):
        rec = proxy.wait_log(lambda x, p=path: x.get("path") == p)
        assert rec["proto"] == proto, rec
        req = new.completed(path)[0]
        assert req.version == "HTTP/1.1" and req.header_all("Via") == [via], req


def test_duration_covers_backend_time(proxy, connect):
    c = connect(proxy)
    assert c.get("/slow/300", [("X-User-Tier", "beta")]).status == 200
    rec = proxy.wait_log(lambda x: x.get("path") == "/slow/300")
    assert 290 <= rec["duration_ms"] < 5000 * harness.SLOW, rec["duration_ms"]


def test_no_route_logged_with_503(turnout_factory, legacy, new, connect):
    routes = [{"name": "beta", "match": {"header": {"X-User-Tier": "^beta$"}}, "backend": "new"}]
    t = turnout_factory(backends={"legacy": [legacy.address], "new": [new.address]},
                        routes=routes, access_log="file")
    c = connect(t)
    assert c.get("/nowhere").status == 503
    rec = t.wait_log(lambda x: x.get("path") == "/nowhere")
    assert rec["status"] == 503 and rec["reason"] == "no_route"
    assert rec["route"] is None and rec["backend"] is None and rec["server"] is None


def test_sigusr1_reopens_access_log(proxy, connect):
    path = proxy.access_log
    c = connect(proxy)
    assert c.get("/before-rotate").status == 200
    proxy.wait_log(lambda x: x.get("path") == "/before-rotate")
    os.rename(path, path + ".1")
    proxy.signal(signal.SIGUSR1)

    n = [0]

    def new_file_has_line():
        n[0] += 1
        assert c.get("/after-rotate/%d" % n[0]).status == 200
        if not os.path.exists(path):
            return False
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]

    lines = harness.wait_until(new_file_has_line, 10, "a new access log file after SIGUSR1",
                               interval=0.05)
    assert n[0] < 500
    assert all(x["path"].startswith("/after-rotate/") for x in lines)
    with open(path + ".1") as f:
        old = [json.loads(line) for line in f if line.strip()]
    assert any(x["path"] == "/before-rotate" for x in old)
    # nothing is lost: every request of the loop is in one file or the other, once
    def all_logged():
        got = []
        for p in (path, path + ".1"):
            with open(p) as f:
                got += [json.loads(line)["path"] for line in f if line.strip()]
        want = ["/after-rotate/%d" % i for i in range(1, n[0] + 1)]
        return sorted(x for x in got if x.startswith("/after-rotate/")) == sorted(want)

    harness.wait_until(all_logged, 5, "every request to be logged exactly once across the two files")


def test_access_log_to_stdout(turnout_factory, legacy, connect):
    t = turnout_factory(backends={"legacy": [legacy.address]},
                        routes=[{"name": "all", "backend": "legacy"}], access_log="stdout")
    c = connect(t)
    assert c.get("/to-stdout").status == 200

    def line():
        with open(t.stdout_path) as f:
            for raw in f:
                raw = raw.strip()
                if raw.startswith("{"):
                    rec = json.loads(raw)
                    if rec.get("path") == "/to-stdout":
                        return rec
        return None

    rec = harness.wait_until(line, 5, "the access log line on stdout")
    assert rec["status"] == 200 and rec["route"] == "all" and rec["reason"] == "route_pin"
