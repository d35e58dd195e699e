"""Configuration checks an operator relies on: `turnout -t -c FILE`, errors as
FILE:LINE:COLUMN: expected ..., refusing to start on a bad file, and a bad
file on SIGHUP leaving the running config in place."""

import re
import signal
import subprocess

import harness
from client import Client, map_keys

ERR_RE = r"^%s:(\d+):(\d+): (.*)$"


def _errors(stderr, path):
    out = []
    for line in stderr.splitlines():
        m = re.match(ERR_RE % re.escape(path), line)
        if m:
            out.append((int(m.group(1)), int(m.group(2)), m.group(3)))
    return out


def _bad_config(port):
    # line numbers matter: errors on lines 1, 3, 13 and 15
    return """workers: many
listen:
  - address: "127.0.0.1:notaport"
access_log: "off"
timeouts: { client_header: 2s, client_idle: 5s, connect: 1s, response: 2s, upstream_idle: 10s, drain: 10s }
backends:
  legacy: { servers: [ { address: "127.0.0.1:%d" } ] }
  new:    { servers: [ { address: "127.0.0.1:%d" } ] }
sticky_key: [ { header: X-User-Id } ]
routes:
  - name: other
    match: { path: "^/other" }
    backend: nosuchbackend
  - name: default
    shift: { from: legacy, to: new, percent: 150 }
""" % (port, port)


def test_check_mode_accepts_valid_file(turnout_binary, tmp_path, legacy, new):
    cfg = harness.make_config(listen=["127.0.0.1:%d" % harness.free_port()],
                              backends={"legacy": [legacy.address], "new": [new.address]},
                              routes=harness.default_routes(30))
    path = str(tmp_path / "good.yaml")
    with open(path, "w") as f:
        f.write(harness.to_yaml(cfg) + "\n")
    p = harness.run_check(turnout_binary, path)
    assert p.returncode == 0, p.stderr.decode()
    assert "configuration file %s is valid" % path in p.stdout.decode()
    assert legacy.connections == 0 and new.connections == 0


def test_check_mode_reports_every_error_with_file_line_column(turnout_binary, tmp_path):
    path = str(tmp_path / "bad.yaml")
    with open(path, "w") as f:
        f.write(_bad_config(harness.free_port()))
    p = harness.run_check(turnout_binary, path)
    err = p.stderr.decode()
    assert p.returncode == 1, (p.returncode, err)
    errs = _errors(err, path)
    assert len(errs) >= 2, "expected several errors, got:\n" + err
    for line, col, msg in errs:
        assert col >= 1
        # "expected ..." says what would have been valid
        assert "expected" in msg, msg
    lines = {e[0] for e in errs}
    assert {1, 3, 13, 15} <= lines, "errors reported on lines %s:\n%s" % (sorted(lines), err)
    assert "is valid" not in p.stdout.decode()


def test_check_mode_reports_yaml_syntax_error_position(turnout_binary, tmp_path):
    path = str(tmp_path / "syntax.yaml")
    with open(path, "w") as f:
        f.write('workers: 2\nlisten:\n  - address: "127.0.0.1:8080\n')
    p = harness.run_check(turnout_binary, path)
    err = p.stderr.decode()
    assert p.returncode == 1, err
    errs = _errors(err, path)
    assert errs and errs[0][0] in (3, 4), err


def test_check_mode_on_missing_file_fails(turnout_binary, tmp_path):
    path = str(tmp_path / "missing.yaml")
    p = harness.run_check(turnout_binary, path)
    assert p.returncode != 0
    assert path in p.stderr.decode()


def test_refuses_to_start_with_bad_file(turnout_binary, tmp_path):
    port = harness.free_port()
    path = str(tmp_path / "bad.yaml")
    text = _bad_config(port).replace("127.0.0.1:notaport", "127.0.0.1:%d" % port)
    with open(path, "w") as f:
        f.write(text)
    p = subprocess.Popen([turnout_binary, "-c", path], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=harness.turnout_env())
    try:
        out, err = p.communicate(timeout=10 * harness.SLOW)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
    assert p.returncode not in (0, None)
    assert _errors(err.decode(), path), err.decode()
    with Client("127.0.0.1", port, connect=False) as c:
        try:
            c.connect()
            listening = True
        except OSError:
            listening = False
    assert not listening, "turnout left a listener behind"


def test_sighup_with_bad_file_keeps_old_routing(proxy):
    keys = ["hup-%03d" % i for i in range(200)]
    before = map_keys(*proxy.listen, keys)
    assert before == {k: harness.predict("default", k, 30) for k in keys}
    good = dict(proxy.config)

    proxy.write_config(_bad_config(harness.free_port()))
    proxy.signal(signal.SIGHUP)
    harness.wait_until(lambda: _errors(proxy.stderr_text(), proxy.config_path), 10,
                       "turnout to log the rejected config with file:line:column")
    assert proxy.running()
    assert map_keys(*proxy.listen, keys) == before

    # the next good file is taken
    good["routes"] = harness.default_routes(100)
    proxy.reload(good)
    probe = next(k for k in keys if before[k] == "legacy")

    def moved():
        with Client(*proxy.listen) as c:
            return c.get("/", [("X-User-Id", probe)]).header("X-Platform") == "new"

    harness.wait_until(moved, 10, "the good config to be applied", interval=0.05)
    assert set(map_keys(*proxy.listen, keys).values()) == {"new"}
