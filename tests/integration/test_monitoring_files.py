"""The monitoring files in contrib/: the Prometheus scrape configuration and
rules pass Debian's promtool (check config, check rules, and the rules' unit
tests in turnout-rules.test.yml), the Grafana dashboard is valid JSON whose
panels all query turnout metrics, and every metric and label name the rules,
their tests and the dashboard use is one a real turnout exposes on /metrics
(or a series the rules record)."""

import json
import os
import re
import subprocess

import yaml

import harness
import test_metrics
from client import map_keys

ROOT = os.path.normpath(os.path.join(harness.HERE, "..", ".."))
PROM = os.path.join(ROOT, "contrib", "prometheus")
CONFIG = os.path.join(PROM, "prometheus.yml")
RULES = os.path.join(PROM, "turnout-rules.yml")
RULES_TEST = os.path.join(PROM, "turnout-rules.test.yml")
DASHBOARD = os.path.join(ROOT, "contrib", "grafana", "turnout-dashboard.json")

# Labels that are not turnout's own: Prometheus adds job and instance when it
# scrapes; redis="off" is the opt-out target label of TurnoutRedisDisconnected
# (see prometheus.yml).
TARGET_LABELS = {"job", "instance", "redis"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
            "group_left", "group_right", "inf", "nan"}
GROUPING = r'\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)'


def promtool(*args):
    r = subprocess.run(["promtool"] + list(args), cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, "promtool %s:\n%s%s" % (" ".join(args), r.stdout, r.stderr)
    return r.stdout


def parse_expr(expr):
    """(metric names, label names) a PromQL expression uses."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    labels = set()
    for m in re.finditer(r'label_values\(\s*([a-zA-Z_:][\w:]*)[^,)]*,\s*(\w+)\s*\)', e):
        labels.add(m.group(2))
    e = re.sub(r'(label_values\(\s*[a-zA-Z_:][\w:]*[^,)]*),\s*\w+\s*\)', r'\1)', e)
    for m in re.finditer(r'\{([^}]*)\}', e):
        labels |= set(re.findall(r'([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)', m.group(1)))
    for m in re.finditer(GROUPING, e):
        labels |= set(re.findall(r'[a-zA-Z_]\w*', m.group(1)))
    e = re.sub(r'\{[^}]*\}', ' ', e)
    e = re.sub(r'\[[^\]]*\]', ' ', e)
    e = re.sub(GROUPING, ' ', e)
    e = re.sub(r'\$\w+', ' ', e)
    names = set()
    for m in re.finditer(r'(?<![\w.])[a-zA-Z_:][\w:]*', e):
        if e[m.end():].lstrip().startswith("(") or m.group().lower() in KEYWORDS:
            continue  # a function, an aggregation or a keyword
        names.add(m.group())
    return names, labels


def load_rules():
    with open(RULES) as f:
        doc = yaml.safe_load(f)
    return [r for g in doc["groups"] for r in g["rules"]]


def load_dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def dashboard_panels(d):
    for p in d["panels"]:
        yield p
        yield from p.get("panels", [])  # collapsed rows keep their panels


def dashboard_exprs(d):
    """[(where, expr)] of every panel target and query variable."""
    out = [("panel %r" % p["title"], t["expr"])
           for p in dashboard_panels(d) for t in p.get("targets", [])]
    for v in d["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            out.append(("variable %r" % v["name"], q))
    return out


def test_promtool_check_config_and_rules():
    out = promtool("check", "config", CONFIG)
    assert "1 rule files found" in out, out
    promtool("check", "rules", RULES)


def test_promtool_rule_unit_tests():
    # turnout-rules.test.yml: TurnoutNewPlatformErrorsAboveLegacy fires for
    # 10 % against 1 % and not for 10 % against 10 % (nor without traffic),
    # TurnoutStaleVersion fires for the lagging node, and more.
    with open(RULES_TEST) as f:
        doc = yaml.safe_load(f)
    tested = {a["alertname"] for t in doc["tests"] for a in t.get("alert_rule_test", [])}
    assert tested >= {"TurnoutNewPlatformErrorsAboveLegacy", "TurnoutStaleVersion"}
    firing = {(a["alertname"], bool(a["exp_alerts"]))
              for t in doc["tests"] for a in t.get("alert_rule_test", [])}
    assert ("TurnoutNewPlatformErrorsAboveLegacy", True) in firing
    assert ("TurnoutNewPlatformErrorsAboveLegacy", False) in firing
    assert ("TurnoutStaleVersion", True) in firing
    promtool("test", "rules", RULES_TEST)


def test_rules_shape():
    rules = load_rules()
    alerts = {r["alert"]: r for r in rules if "alert" in r}
    assert set(alerts) == {"TurnoutNewPlatformErrorsAboveLegacy", "TurnoutRedisDisconnected",
                           "TurnoutStaleVersion", "TurnoutHighLatencyNewPlatform",
                           "TurnoutReplayRateHigh", "TurnoutAutomaticRollback"}
    for name, r in alerts.items():
        # a rollback is an event: it fires at once; the others wait out noise
        assert r.get("for") or name == "TurnoutAutomaticRollback", name
        assert r["labels"]["severity"] in ("warning", "critical"), name
        assert r["annotations"]["summary"] and "$labels" in r["annotations"]["description"], name


def test_grafana_dashboard():
    d = load_dashboard()
    assert d["schemaVersion"] >= 36
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["route"]["query"]["query"] == "label_values(turnout_requests_total, route)"
    panels = [p for p in dashboard_panels(d) if p["type"] != "row"]
    assert len({p["id"] for p in dashboard_panels(d)}) == len(list(dashboard_panels(d)))
    for p in panels:
        assert p["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert re.search(r'\bturnout_\w+', t["expr"]), (p["title"], t["expr"])
    titles = " | ".join(p["title"] for p in panels).lower()
    for word in ("configured percent", "requests/s", "error", "p99", "applied runtime version",
                 "redis", "config generation", "replays", "automatic rollbacks", "verdicts",
                 "before replay"):
        assert word in titles, word


def test_names_exist_in_a_real_exposition(turnout_factory, legacy, new):
    t = test_metrics.start(turnout_factory, legacy, new, workers=1)
    keys = test_metrics.KEYS[:40]
    m = map_keys(*t.listen, keys, nconns=2)
    assert set(m.values()) == {"legacy", "new"}

    def exposition():
        st, hdrs, body = test_metrics.fetch(t.http, "/metrics")
        s = test_metrics.samples(body.decode())
        n = sum(v for (name, _), v in s.items() if name == "turnout_requests_total")
        return (body.decode(), s) if st == 200 and n == len(keys) else None
    text, s = harness.wait_until(exposition, 5, "the requests counted in /metrics")
    exposed = {name for name, _ in s} | set(re.findall(r'^# TYPE (\S+)', text, re.M))
    exposed_labels = {k for _, labels in s for k, _ in labels} | TARGET_LABELS

    rules = load_rules()
    recorded = {r["record"] for r in rules if "record" in r}
    used = [("rule %s" % (r.get("record") or r.get("alert")), r["expr"]) for r in rules]
    used += dashboard_exprs(load_dashboard())
    with open(RULES_TEST) as f:
        for test in yaml.safe_load(f)["tests"]:
            used += [("test series", i["series"]) for i in test["input_series"]]
    problems = []
    for where, expr in used:
        names, labels = parse_expr(expr)
        assert names, (where, expr)
        for n in sorted(names - exposed - recorded):
            problems.append("%s: metric %s is not in /metrics" % (where, n))
        for n in sorted(labels - exposed_labels):
            problems.append("%s: label %s is not in /metrics" % (where, n))
    assert not problems, "\n".join(problems)
