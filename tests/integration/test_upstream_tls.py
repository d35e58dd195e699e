"""TLS to upstream servers (issue 11 item 4): a backend with `tls:` is spoken
to over TLS, verified against a CA file (or the system store) and its
server_name, which is also sent as SNI. Certificates are made at test time
with the openssl CLI; the TLS backends are the suite's PlatformBackend with
each accepted socket wrapped in Python's ssl module, recording per connection
the SNI received and whether the session was resumed.

Covered: requests over TLS with pooled connections and resumed sessions;
verification failures (wrong CA, wrong name) replayed on a plain legacy
backend or answered 502, with the reason in the access log; verify: false
against a self-signed certificate; two server names to one TLS server never
sharing a pooled connection; active health checks over TLS (up, down when
the server stops, down when its certificate is refused); configuration
errors at the tls key's file:line:column."""

import os
import ssl
import subprocess

import pytest

import harness
from admin import jcmd
from admin import cmd
from backends import PlatformBackend, _Server, pattern_bytes, pattern_sha256
from client import Client

OPENSSL = "openssl"


# ------------------------------------------------------------ certificates --

def _openssl(*args):
    subprocess.run([OPENSSL] + list(args), check=True, capture_output=True, timeout=60)


def make_ca(d, name="ca"):
    """A CA certificate and key in d: (cert path, key path)."""
    cert, key = os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=turnout test " + name,
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return cert, key


def make_leaf(d, ca, name, names):
    """A certificate for DNS names `names`, signed by ca: (cert, key)."""
    cert, key = os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")
    csr, ext = os.path.join(d, name + ".csr"), os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=%s\nextendedKeyUsage=serverAuth\n"
                % ",".join("DNS:" + n for n in names))
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", key, "-out", csr, "-subj", "/CN=" + names[0])
    _openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
             "-out", cert, "-days", "2", "-extfile", ext)
    return cert, key


def make_self_signed(d, name, names):
    cert, key = os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=" + names[0],
             "-addext", "subjectAltName=" + ",".join("DNS:" + n for n in names))
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("pki"))
    ca = make_ca(d, "ca")
    other_ca = make_ca(d, "other-ca")
    return {
        "dir": d,
        "ca": ca[0],
        "other_ca": other_ca[0],
        "leaf": make_leaf(d, ca, "leaf", ["api.new.test", "a.new.test", "b.new.test"]),
        "self": make_self_signed(d, "self", ["self.test"]),
    }


# ---------------------------------------------------------------- backend --

class TLSBackend(PlatformBackend):
    """A PlatformBackend speaking TLS: each accepted connection does the
    server handshake in its own thread; tls_conns records, per connection
    index, the SNI received, the protocol and whether the session resumed."""

    def __init__(self, name, cert, key, **kw):
        super().__init__(name, **kw)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.set_alpn_protocols(["http/1.1"])
        self.ctx.sni_callback = self._on_sni
        self.tls_conns = {}  # connection index -> {"sni", "version", "resumed", "alpn"}
        self.handshake_errors = []

    @staticmethod
    def _on_sni(sock, name, ctx):
        sock.tn_sni = name

    def serve(self, c):
        raw = c.sock
        raw.settimeout(10 * harness.SLOW)
        try:
            s = self.ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as e:
            with self.lock:
                self.handshake_errors.append(repr(e))
            return
        s.settimeout(None)
        c.sock = s
        with self.lock:
            self.tls_conns[c.index] = {"sni": getattr(s, "tn_sni", None), "version": s.version(),
                                       "resumed": s.session_reused,
                                       "alpn": s.selected_alpn_protocol()}
        super().serve(c)

    def conns_snapshot(self):
        with self.lock:
            return dict(self.tls_conns)


class JunkBackend(_Server):
    """Answers every connection at once with a plain HTTP error, then closes:
    no TLS handshake can succeed."""

    def serve(self, c):
        c.sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")


@pytest.fixture
def tls_factory():
    started = []

    def make(name, cert_key, **kw):
        b = TLSBackend(name, cert_key[0], cert_key[1], **kw)
        started.append(b)
        return b.start()

    yield make
    for b in reversed(started):
        b.stop()


@pytest.fixture
def junk():
    b = JunkBackend("junk").start()
    yield b
    b.stop()


# ----------------------------------------------------------------- config --

def tls_backend(addr, **tls):
    return {"servers": [{"address": addr}], "tls": tls, "passive": {"failures": 0}}


def start(turnout_factory, backends, routes, short_dir=None, workers=2, access_log="file",
          extra=None):
    """turnout with backends given as name -> full backend mapping."""
    t = turnout_factory(backends={n: [] for n in backends}, routes=routes, workers=workers,
                        access_log=access_log, start=False, extra=extra)
    cfg = t.cfg
    cfg["backends"] = backends
    if short_dir is not None:
        cfg["admin"] = {"socket": short_dir("admin.sock")}
        t.sock = cfg["admin"]["socket"]
    t.write_config(cfg)
    return t.start()


def plain(addr):
    return {"servers": [{"address": addr}], "passive": {"failures": 0}}


def shift_all(frm="legacy", to="new"):
    return [{"name": "default", "shift": {"from": frm, "to": to, "percent": 100}}]


def pin(backend):
    return [{"name": "all", "backend": backend}]


def get(t, path="/", n=1, fresh=False):
    """n GETs over one keep-alive connection (fresh: one connection each)."""
    if fresh:
        return [get(t, path)[0] for _ in range(n)]
    with Client(*t.listen) as c:
        return [c.get(path) for _ in range(n)]


# ------------------------------------------------------------------ tests --

def test_tls_backend_serves_pools_and_gets_the_sni(turnout_factory, tls_factory, pki):
    new = tls_factory("new", pki["leaf"])
    t = start(turnout_factory,
              {"new": tls_backend(new.address, ca=pki["ca"], server_name="api.new.test")},
              pin("new"))
    rs = get(t, "/hello", n=50)
    assert [r.status for r in rs] == [200] * 50
    assert all(r.header("X-Platform") == "new" for r in rs)
    assert len(new.completed("/hello")) == 50
    conns = new.conns_snapshot()
    # one client connection lands on one worker: its pool keeps one connection
    assert 1 <= new.connections <= 2, new.connections
    assert len(conns) == new.connections, (conns, new.handshake_errors)
    for info in conns.values():
        assert info["sni"] == "api.new.test"
        assert info["version"] in ("TLSv1.2", "TLSv1.3")
        assert info["alpn"] == "http/1.1"
    # the Host the client sent goes through unchanged
    assert new.completed("/hello")[0].header("Host") == "test.local"
    log = t.wait_log(lambda r: r["path"] == "/hello")
    assert log["status"] == 200 and log["attempts"][0]["error"] is None


def test_tls_sessions_resume_on_new_connections(turnout_factory, tls_factory, pki):
    new = tls_factory("new", pki["leaf"])
    t = start(turnout_factory,
              {"new": tls_backend(new.address, ca=pki["ca"], server_name="api.new.test")},
              pin("new"), workers=1)
    # /close/N ends each response by closing: every request opens a connection
    rs = get(t, "/close/100", n=4, fresh=True)
    assert [r.status for r in rs] == [200] * 4
    assert all(len(r.body) == 100 for r in rs)
    conns = new.conns_snapshot()
    assert len(conns) == 4, conns
    assert not conns[0]["resumed"]
    assert all(conns[i]["resumed"] for i in (1, 2, 3)), conns
    # the server's close without close_notify ends the body cleanly
    assert all(r.complete for r in rs)
    logs = harness.wait_until(lambda: (lambda v: v if len(v) == 4 else None)(
        [x for x in t.log_lines() if x["path"] == "/close/100"]), 5, "four log lines")
    assert all(x["status"] == 200 and x["attempts"][0]["error"] is None for x in logs), logs


def test_large_bodies_both_ways_over_tls(turnout_factory, tls_factory, pki):
    new = tls_factory("new", pki["leaf"])
    t = start(turnout_factory,
              {"new": tls_backend(new.address, ca=pki["ca"], server_name="api.new.test")},
              pin("new"), workers=1)
    up = 3 << 20
    with Client(*t.listen) as c:
        c.request("POST", "/upload", body=pattern_bytes(up))
        r = c.response()
        assert r.status == 200 and r.text() == "%s %d\n" % (pattern_sha256(up), up)
        for path, n in (("/size/%d" % (5 << 20), 5 << 20), ("/chunked/%d" % (3 << 20), 3 << 20)):
            r = c.get(path, keep_body=0)
            assert r.status == 200 and r.complete
            assert (r.body_len, r.body_sha256) == (n, pattern_sha256(n))
    assert new.connections == 1


def test_a_reload_keeps_pooled_connections_of_the_same_identity_only(
        turnout_factory, tls_factory, pki, short_dir):
    new = tls_factory("new", pki["leaf"])
    backends = {"new": tls_backend(new.address, ca=pki["ca"], server_name="a.new.test")}
    t = start(turnout_factory, backends, pin("new"), short_dir=short_dir, workers=1)
    with Client(*t.listen) as c:
        assert c.get("/1").status == 200
        assert cmd(t.sock, "reload").startswith("reloaded")
        assert c.get("/2").status == 200
        assert new.connections == 1  # the same identity: the pooled connection
        t.cfg["backends"]["new"]["tls"]["server_name"] = "b.new.test"
        t.write_config(t.cfg)
        assert cmd(t.sock, "reload").startswith("reloaded")

        def on_b():
            assert c.get("/3").status == 200
            return [i for i, x in new.conns_snapshot().items() if x["sni"] == "b.new.test"]

        b = harness.wait_until(on_b, 5, "a connection with the new server name")
    assert new.connections == 2 and b == [1]
    last = new.completed("/3")[-1]
    assert last.conn == 1  # the a.new.test connection is not reused for b


@pytest.mark.parametrize("case", ["wrong_ca", "wrong_name"])
def test_verification_failure_is_replayed_on_legacy(turnout_factory, tls_factory, legacy, pki,
                                                    case):
    new = tls_factory("new", pki["leaf"])
    tls = {"wrong_ca": {"ca": pki["other_ca"], "server_name": "api.new.test"},
           "wrong_name": {"ca": pki["ca"], "server_name": "other.test"}}[case]
    t = start(turnout_factory, {"legacy": plain(legacy.address),
                                "new": tls_backend(new.address, **tls)}, shift_all())
    rs = get(t, "/r", n=3)
    assert [r.status for r in rs] == [200] * 3
    assert all(r.header("X-Platform") == "legacy" for r in rs)
    assert not new.completed() and len(legacy.completed("/r")) == 3
    harness.wait_until(lambda: len(new.handshake_errors) >= 3, 5, "new's refused handshakes")
    logs = harness.wait_until(lambda: [x for x in t.log_lines() if x["path"] == "/r"]
                              if len([x for x in t.log_lines() if x["path"] == "/r"]) == 3
                              else None, 5, "three log lines")
    for x in logs:
        assert x["reason"] == "rollback_connect", x
        a = x["attempts"]
        assert [(y["backend"], y["error"]) for y in a] == [("new", "connect_error"),
                                                           ("legacy", None)], a
        assert a[1]["status"] == 200
        assert a[0]["why"] == "tls_verify_failed" and "why" not in a[1], a
    # the detail is logged once per pool, not per request
    err = t.stderr_text()
    assert "TLS certificate verification failed" in err, err
    assert err.count("TLS certificate verification failed") <= 2, err


def test_verification_failure_without_replay_is_a_502(turnout_factory, tls_factory, pki):
    new = tls_factory("new", pki["leaf"])
    t = start(turnout_factory,
              {"new": tls_backend(new.address, ca=pki["other_ca"], server_name="api.new.test")},
              pin("new"))
    r = get(t, "/x")[0]
    assert r.status == 502
    log = t.wait_log(lambda x: x["path"] == "/x")
    assert log["status"] == 502 and log["reason"] == "tls_verify_failed", log
    assert log["attempts"][0]["error"] == "connect_error"


def test_a_handshake_failure_that_is_not_verification(turnout_factory, junk, pki):
    """A plain HTTP answer to the ClientHello: the handshake fails, 502."""
    t = start(turnout_factory, {"new": tls_backend(junk.address, verify=False)}, pin("new"))
    r = get(t, "/hs")[0]
    assert r.status == 502
    log = t.wait_log(lambda x: x["path"] == "/hs")
    assert log["reason"] == "tls_handshake_failed", log
    assert log["attempts"][0]["error"] == "connect_error"
    assert "upstream %s: TLS handshake failed" % junk.address in t.stderr_text()


def test_the_connect_timeout_covers_the_handshake(turnout_factory, backend_factory, legacy, pki):
    """A plain HTTP server behind tls waits for a request head that never
    comes: the handshake stalls until timeouts.connect, then the request is
    replayed on legacy."""
    stall = backend_factory("platform", "stall")
    t = start(turnout_factory, {"legacy": plain(legacy.address),
                                "new": tls_backend(stall.address, verify=False)}, shift_all(),
              extra={"timeouts": dict(harness.DEFAULT_TIMEOUTS, connect="300ms")})
    r = get(t, "/slowhs")[0]
    assert r.status == 200 and r.header("X-Platform") == "legacy"
    log = t.wait_log(lambda x: x["path"] == "/slowhs")
    assert log["reason"] == "rollback_connect", log
    assert log["attempts"][0]["error"] == "connect_timeout", log
    assert stall.connections == 1


def test_verify_false_accepts_a_self_signed_certificate(turnout_factory, tls_factory, pki):
    new = tls_factory("new", pki["self"])
    t = start(turnout_factory, {"new": tls_backend(new.address, verify=False)}, pin("new"))
    rs = get(t, "/ss", n=5)
    assert [r.status for r in rs] == [200] * 5
    assert all(info["sni"] is None for info in new.conns_snapshot().values())
    assert "tls verify is false" in t.stderr_text()
    # with verification on, the same certificate is refused
    t2 = start(turnout_factory,
               {"new": tls_backend(new.address, server_name="self.test")}, pin("new"))
    assert get(t2, "/ss2")[0].status == 502


def test_two_server_names_to_one_server_never_share_a_connection(turnout_factory, tls_factory,
                                                                 pki):
    srv = tls_factory("shared", pki["leaf"])
    routes = [{"name": "a", "match": {"path": "^/a/"}, "backend": "a"},
              {"name": "b", "match": {"path": "^/b/"}, "backend": "b"}]
    t = start(turnout_factory,
              {"a": tls_backend(srv.address, ca=pki["ca"], server_name="a.new.test"),
               "b": tls_backend(srv.address, ca=pki["ca"], server_name="b.new.test")},
              routes, workers=1)
    with Client(*t.listen) as c:
        for i in range(20):
            side = "ab"[i % 2]
            assert c.get("/%s/%d" % (side, i)).status == 200
    conns = srv.conns_snapshot()
    reqs = srv.completed()
    assert len(reqs) == 20
    for r in reqs:
        side = r.target.split("/")[1]
        assert conns[r.conn]["sni"] == "%s.new.test" % side, (r, conns)
    # each name kept its own pooled connection
    assert len(conns) == 2, conns


def test_health_checks_speak_tls(turnout_factory, tls_factory, pki, short_dir):
    new = tls_factory("new", pki["leaf"])
    hc = {"path": "/healthz", "interval": "200ms", "timeout": "150ms", "rise": 1, "fall": 1}
    be = tls_backend(new.address, ca=pki["ca"], server_name="api.new.test")
    be["health_check"] = hc
    bad = tls_factory("bad", pki["leaf"])
    beb = tls_backend(bad.address, ca=pki["other_ca"], server_name="api.new.test")
    beb["health_check"] = hc
    t = start(turnout_factory, {"new": be, "bad": beb}, pin("new"), short_dir=short_dir)

    def server(name):
        return {x["backend"]: x for x in jcmd(t.sock, "show backends")}[name]

    harness.wait_until(lambda: new.completed("/healthz"), 5, "a health check on new")
    s = harness.wait_until(lambda: (lambda x: x if x["last_check"].startswith("HTTP 200")
                                    else None)(server("new")), 5, "new checked")
    assert s["health"] == "up", s
    hz = new.completed("/healthz")[0]
    assert hz.header("Host") == "api.new.test"
    assert new.conns_snapshot()[hz.conn]["sni"] == "api.new.test"
    # the refused certificate: down, with the reason
    s = harness.wait_until(lambda: (lambda x: x if x["health"] == "down" else None)(server("bad")),
                           5, "bad down")
    assert s["last_check"].startswith("tls certificate verification failed"), s
    assert not bad.completed("/healthz")
    # the server stops: down
    new.stop()
    s = harness.wait_until(lambda: (lambda x: x if x["health"] == "down" else None)(server("new")),
                           5, "new down")
    assert s["last_check"].startswith(("connect", "tls")), s


def test_per_server_counters_count_tls_connects_and_errors(turnout_factory, tls_factory, pki,
                                                           short_dir):
    good = tls_factory("good", pki["leaf"])
    bad = tls_factory("bad", pki["leaf"])
    routes = [{"name": "g", "match": {"path": "^/g"}, "backend": "good"},
              {"name": "b", "match": {"path": "^/b"}, "backend": "bad"}]
    t = start(turnout_factory,
              {"good": tls_backend(good.address, ca=pki["ca"], server_name="api.new.test"),
               "bad": tls_backend(bad.address, ca=pki["other_ca"], server_name="api.new.test")},
              routes, short_dir=short_dir, workers=1)
    assert [r.status for r in get(t, "/g", n=5)] == [200] * 5
    assert [r.status for r in get(t, "/b", n=3, fresh=True)] == [502] * 3

    def counts():
        s = {x["backend"]: x for x in jcmd(t.sock, "show backends")}
        return s if s["bad"]["connect_errors"] == 3 else None

    s = harness.wait_until(counts, 5, "the counters")
    assert s["good"]["connects"] == 1 and s["good"]["connect_errors"] == 0, s["good"]
    assert s["bad"]["connects"] == 3, s["bad"]


def _tls_key_mark(text, backend):
    """1-based (line, column) of the `tls` key under backend `backend`."""
    lines = text.split("\n")
    inside = False
    for i, line in enumerate(lines):
        if line.strip() == backend + ":":
            inside = True
        elif inside and line.strip().startswith("tls:"):
            return i + 1, line.index("tls:") + 1
    raise AssertionError("no tls key in\n" + text)


@pytest.mark.parametrize("case", ["missing", "garbage", "no_server_name"])
def test_config_errors_point_at_the_tls_key(tmp_path, turnout_binary, pki, case):
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n"
                       "-----END CERTIFICATE-----\n")
    tls = {"missing": {"ca": str(tmp_path / "nope.pem"), "server_name": "api.new.test"},
           "garbage": {"ca": str(garbage), "server_name": "api.new.test"},
           "no_server_name": {"ca": pki["ca"]}}[case]
    cfg = harness.make_config(["127.0.0.1:1"], {"legacy": ["127.0.0.1:2"]}, pin("new"))
    cfg["backends"]["new"] = {"servers": [{"address": "127.0.0.1:3"}], "tls": tls}
    text = harness.to_yaml(cfg) + "\n"
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    r = harness.run_check(turnout_binary, str(path))
    assert r.returncode != 0
    err = r.stderr.decode().strip()
    line, col = _tls_key_mark(text, "new")
    assert err.startswith("%s:%d:%d: " % (path, line, col)), err
    want = {"missing": "cannot read the CA file %s: No such file or directory" % tls["ca"],
            "garbage": "cannot load the CA file",
            "no_server_name": "expected server_name in tls of backend new"}[case]
    assert want in err, err
    # the good CA passes
    tls.update({"ca": pki["ca"], "server_name": "api.new.test"})
    path.write_text(harness.to_yaml(cfg) + "\n")
    r = harness.run_check(turnout_binary, str(path))
    assert r.returncode == 0, r.stderr.decode()
