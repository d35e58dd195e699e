"""The admin HTTP listener: /metrics in the Prometheus text format (checked
with Debian's promtool), counters exact against the traffic sent, the
histogram agreeing with the access log, /stats.json, /healthz, 404 and
405."""

import json
import re
import subprocess
import urllib.error
import urllib.request

import harness
from client import map_keys

KEYS = ["user-%04d" % i for i in range(400)]


def fetch(port, path, method="GET"):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def samples(text):
    """{(name, frozenset(labels)): value} from the exposition text."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', line)
        assert m, line
        labels = frozenset(re.findall(r'([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def start(turnout_factory, legacy, new, workers=2):
    port = harness.free_port()
    t = turnout_factory(backends={"legacy": [legacy.address], "new": [new.address]},
                        routes=harness.default_routes(30), workers=workers, access_log="file",
                        extra={"admin": {"http": "127.0.0.1:%d" % port}})
    t.http = port
    return t


def test_metrics_are_exact_and_valid_prometheus_text(turnout_factory, legacy, new, tmp_path):
    t = start(turnout_factory, legacy, new)
    m = map_keys(*t.listen, KEYS, nconns=6)
    to_new = sum(1 for v in m.values() if v == "new")
    lines = harness.wait_until(lambda: t.log_lines() if len(t.log_lines()) >= len(KEYS) else None,
                               5, "every request logged")

    def counted():
        st, hdrs, body = fetch(t.http, "/metrics")
        s = samples(body.decode())
        key = ("turnout_requests_total", frozenset({("route", "default"), ("side", "from"),
                                                    ("backend", "legacy"), ("class", "2xx")}))
        return (body, s) if s.get(key) == len(KEYS) - to_new else None
    body, s = harness.wait_until(counted, 5, "the counters")
    lab = lambda side, backend: frozenset({("route", "default"), ("side", side),  # noqa: E731
                                           ("backend", backend)})
    assert s[("turnout_requests_total", lab("to", "new") | {("class", "2xx")})] == to_new
    assert s[("turnout_requests_total", lab("to", "new") | {("class", "5xx")})] == 0
    for side, backend in (("from", "legacy"), ("to", "new")):
        recs = [r for r in lines if r["backend"] == backend]
        count = s[("turnout_request_duration_seconds_count", lab(side, backend))]
        total = s[("turnout_request_duration_seconds_sum", lab(side, backend))]
        inf = s[("turnout_request_duration_seconds_bucket", lab(side, backend) | {("le", "+Inf")})]
        assert count == inf == len(recs)
        log_sum = sum(r["duration_ms"] for r in recs) / 1000.0
        assert abs(total - log_sum) <= 0.001 * len(recs) + 0.01 * log_sum, (total, log_sum)
        assert s[("turnout_response_bytes_total", lab(side, backend))] == \
            sum(r["bytes_out"] for r in recs)
    assert s[("turnout_route_percent", frozenset({("route", "default"), ("source", "config")}))] == 30
    assert s[("turnout_workers", frozenset())] == 2
    path = tmp_path / "metrics.txt"
    path.write_bytes(body)
    r = subprocess.run(["promtool", "check", "metrics"], stdin=open(path, "rb"),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_stats_json_healthz_and_errors(turnout_factory, legacy, new):
    t = start(turnout_factory, legacy, new, workers=1)
    map_keys(*t.listen, KEYS[:50])

    def stats():
        st, hdrs, body = fetch(t.http, "/stats.json")
        assert st == 200 and hdrs["Content-Type"] == "application/json"
        d = json.loads(body)
        return d if sum(x["requests"] for x in d["stats"]) == 50 else None
    d = harness.wait_until(stats, 5, "50 requests in stats.json")
    assert d["info"]["workers"] == 1 and d["info"]["config_generation"] == 1
    assert [r["name"] for r in d["routes"]] == ["beta", "default"]
    assert {(x["route"], x["side"], x["backend"]) for x in d["stats"]} >= {
        ("default", "from", "legacy"), ("default", "to", "new")}
    assert fetch(t.http, "/healthz")[:3:2] == (200, b"ok\n")
    assert fetch(t.http, "/nope")[0] == 404
    assert fetch(t.http, "/metrics", method="HEAD")[0] == 200
    assert fetch(t.http, "/metrics", method="POST")[0] == 405


def test_admin_http_allow_replaces_loopback(turnout_factory, legacy, new):
    """admin.http_allow lists the networks answered (loopback is answered
    only when it is listed); the others get 403, and a reload changes it."""
    port = harness.free_port()
    t = turnout_factory(backends={"legacy": [legacy.address], "new": [new.address]},
                        routes=harness.default_routes(30),
                        extra={"admin": {"http": "127.0.0.1:%d" % port,
                                         "http_allow": ["10.0.0.0/8"]}})
    for path in ("/metrics", "/stats.json", "/dashboard", "/healthz", "/nope"):
        st, _, body = fetch(port, path)
        assert st == 403 and b"admin.http_allow" in body, (path, st, body)
    t.cfg["admin"]["http_allow"] = ["10.0.0.0/8", "127.0.0.0/8"]
    t.reload(t.cfg)
    harness.wait_until(lambda: fetch(port, "/healthz")[0] == 200, 5, "loopback allowed")


def test_process_metrics(turnout_factory, legacy, new):
    t = start(turnout_factory, legacy, new, workers=1)
    st, _, body = fetch(t.http, "/metrics")
    s = samples(body.decode())
    get = lambda n: s[(n, frozenset())]  # noqa: E731
    assert get("process_resident_memory_bytes") > 1 << 20
    assert get("process_open_fds") >= 3 and get("process_max_fds") >= get("process_open_fds")
    assert abs(get("process_start_time_seconds") - get("turnout_start_time_seconds")) < 0.01
    assert get("process_cpu_seconds_total") >= 0
