"""TLS listeners (issue 11): certificates made at test time with the openssl
CLI; SNI picks the certificate (RSA and ECDSA side by side, the first is
the default), ALPN falls back to http/1.1, TLS 1.0/1.1 are refused,
sessions resume, X-Forwarded-Proto is https, a reload swaps a certificate
while connections stay open, a bad certificate is a config error with
OpenSSL's reason (and on reload the old one stays), a handshake that never
comes is closed, large bodies both ways, and replay on legacy over TLS."""

import hashlib
import os
import socket
import ssl
import subprocess
import time

import pytest

import harness
from backends import pattern_sha256

OPENSSL = "openssl"


def make_cert(d, name, names, kind="rsa", days=2):
    """A self-signed certificate for names (the first is the CN) in d:
    returns (cert path, key path)."""
    cert, key = os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")
    alg = ["-newkey", "rsa:2048"] if kind == "rsa" else [
        "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    san = ",".join("DNS:" + n for n in names)
    subprocess.run([OPENSSL, "req", "-x509"] + alg + [
        "-nodes", "-keyout", key, "-out", cert, "-days", str(days), "-subj", "/CN=" + names[0],
        "-addext", "subjectAltName=" + san], check=True, capture_output=True, timeout=60)
    return cert, key


def tls_listen(port, certs, **kw):
    tls = {"certificates": [{"cert": c, "key": k} for c, k in certs]}
    tls.update(kw)
    return {"address": "127.0.0.1:%d" % port, "tls": tls}


def start(turnout_factory, backends, certs, routes=None, tls_kw=None, workers=2, extra=None):
    port = harness.free_port()
    t = turnout_factory(backends=backends,
                        routes=routes or [{"name": "all", "backend": "legacy"}],
                        workers=workers, start=False, access_log="file", extra=extra)
    t.cfg["listen"] = [tls_listen(port, certs, **(tls_kw or {}))]
    for b in t.cfg["backends"].values():
        b["passive"] = {"failures": 0}
    t.write_config(t.cfg)
    return t.start()


def client_ctx(cafile=None, alpn=("http/1.1",), version=None, maxv=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        ctx.load_verify_locations(cafile)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if version:
        ctx.minimum_version = version
    if maxv:
        ctx.maximum_version = maxv
    return ctx


def connect(t, ctx, sni=None, session=None):
    raw = socket.create_connection(t.listen, timeout=10)
    s = ctx.wrap_socket(raw, server_hostname=sni, session=session)
    return s


def http_get(s, path="/", host="x", headers=()):
    """One keep-alive GET on an open TLS socket: (status, headers, body)."""
    req = "GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (
        path, host, "".join("%s: %s\r\n" % h for h in headers))
    s.sendall(req.encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        assert d, "closed before the head"
        buf += d
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    n = int(hdrs.get("content-length", "0"))
    while len(body) < n:
        d = s.recv(65536)
        assert d, "closed mid-body"
        body += d
    return status, hdrs, body


def peer_cn(s):
    der = s.getpeercert(binary_form=True)
    out = subprocess.run([OPENSSL, "x509", "-inform", "DER", "-noout", "-subject"], input=der,
                         capture_output=True, timeout=30, check=True).stdout.decode()
    return out.strip().split("CN", 1)[1].strip(" =")


@pytest.fixture
def certs(tmp_path):
    d = str(tmp_path)
    return {"a": make_cert(d, "a", ["a.test", "www.a.test"]),
            "a_ec": make_cert(d, "a_ec", ["a.test", "www.a.test"], kind="ec"),
            "b": make_cert(d, "b", ["b.test", "*.wild.test"], kind="ec"),
            "dir": d}


def test_sni_picks_the_certificate_and_the_first_is_the_default(turnout_factory, legacy, certs):
    t = start(turnout_factory, {"legacy": [legacy.address]},
              [certs["a"], certs["a_ec"], certs["b"]])
    for sni, cn in [("a.test", "a.test"), ("www.a.test", "a.test"), ("b.test", "b.test"),
                    ("x.wild.test", "b.test"), ("unknown.test", "a.test"), (None, "a.test")]:
        with connect(t, client_ctx(), sni=sni) as s:
            assert peer_cn(s) == cn, sni
            st, h, body = http_get(s, host=sni or "x")
            assert st == 200 and h["x-platform"] == "legacy"
    # RSA and ECDSA for the same names: the client's signature algorithms choose
    ctx = client_ctx()
    ctx.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with connect(t, ctx, sni="a.test") as s:
        assert s.cipher()[0] == "ECDHE-ECDSA-AES128-GCM-SHA256"
    ctx = client_ctx()
    ctx.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256")
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with connect(t, ctx, sni="a.test") as s:
        assert s.cipher()[0] == "ECDHE-RSA-AES128-GCM-SHA256"
    # the certificate verifies against itself as a CA, for its names
    with connect(t, client_ctx(cafile=certs["b"][0]), sni="b.test") as s:
        assert http_get(s, host="b.test")[0] == 200


def test_alpn_versions_and_forwarded_proto(turnout_factory, legacy, certs):
    t = start(turnout_factory, {"legacy": [legacy.address]}, [certs["a"]])
    with connect(t, client_ctx(alpn=("http/1.1",))) as s:
        assert s.selected_alpn_protocol() == "http/1.1"
        http_get(s, "/proto")
    with connect(t, client_ctx(alpn=None)) as s:  # no ALPN: HTTP/1.1
        assert s.selected_alpn_protocol() is None
        assert http_get(s)[0] == 200
    with connect(t, client_ctx(alpn=("spdy/3",))) as s:  # nothing we speak: HTTP/1.1
        assert http_get(s)[0] == 200
    for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        with connect(t, client_ctx(version=v, maxv=v)) as s:
            assert s.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2",
                                   ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[v]
    # TLS 1.0 and 1.1 are refused (the openssl CLI still speaks them)
    for flag in ("-tls1", "-tls1_1"):
        r = subprocess.run([OPENSSL, "s_client", "-connect", "%s:%d" % t.listen, flag,
                            "-cipher", "DEFAULT:@SECLEVEL=0"], input=b"", capture_output=True,
                           timeout=30)
        assert r.returncode != 0 and b"Cipher is (NONE)" in r.stdout + r.stderr, flag
    req = [r for r in legacy.completed() if r.target == "/proto"][0]
    assert req.header("X-Forwarded-Proto") == "https"
    logged = t.wait_log(lambda r: r["path"] == "/proto")
    assert logged["status"] == 200


def test_min_version_13_and_sessions_resume(turnout_factory, legacy, certs):
    t = start(turnout_factory, {"legacy": [legacy.address]}, [certs["a"]],
              tls_kw={"min_version": "1.3"})
    with pytest.raises(ssl.SSLError):
        connect(t, client_ctx(maxv=ssl.TLSVersion.TLSv1_2))
    ctx = client_ctx()
    with connect(t, ctx) as s:
        assert http_get(s)[0] == 200  # the TLS 1.3 ticket arrives with the first read
        sess = s.session
    with connect(t, ctx, session=sess) as s:
        assert http_get(s)[0] == 200
        assert s.session_reused
    # TLS 1.2 session resumption on a 1.2 listener, with tickets off: the cache
    t2 = start(turnout_factory, {"legacy": [legacy.address]}, [certs["a"]],
               tls_kw={"session_tickets": False})
    ctx = client_ctx(maxv=ssl.TLSVersion.TLSv1_2)
    with connect(t2, ctx) as s:
        http_get(s)
        sess = s.session
    with connect(t2, ctx, session=sess) as s:
        assert s.session_reused


def test_reload_swaps_a_certificate_with_connections_open(turnout_factory, legacy, certs):
    d = certs["dir"]
    cert, key = make_cert(d, "live", ["live.test"])
    t = start(turnout_factory, {"legacy": [legacy.address]}, [(cert, key)])
    old = connect(t, client_ctx(), sni="live.test")
    assert http_get(old)[0] == 200
    serial_old = old.getpeercert(binary_form=True)
    new_cert, new_key = make_cert(d, "live2", ["live.test"])
    os.replace(new_cert, cert)
    os.replace(new_key, key)
    t.signal(__import__("signal").SIGHUP)

    def swapped():
        with connect(t, client_ctx(), sni="live.test") as s:
            return s.getpeercert(binary_form=True) != serial_old
    harness.wait_until(swapped, 10, "the new certificate served")
    # the connection opened before keeps working, on its old session
    for _ in range(3):
        assert http_get(old)[0] == 200
    old.close()
    # a broken certificate on reload: an error, and the last good one stays
    with open(cert, "w") as f:
        f.write("not a certificate\n")
    t.signal(__import__("signal").SIGHUP)
    harness.wait_until(lambda: "cannot load the certificate" in t.stderr_tail(40), 10,
                       "the reload error")
    with connect(t, client_ctx(), sni="live.test") as s:
        assert http_get(s)[0] == 200


@pytest.mark.parametrize("case", ["mismatch", "missing", "garbage"])
def test_bad_certificate_is_a_config_error(case, turnout_factory, certs, tmp_path):
    c, k = certs["a"]
    if case == "mismatch":
        k = certs["b"][1]
    elif case == "missing":
        c = os.path.join(certs["dir"], "nope.pem")
    else:
        c = os.path.join(certs["dir"], "garbage.pem")
        with open(c, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    path = tmp_path / "bad.yaml"
    path.write_text('listen:\n  - address: "127.0.0.1:1"\n    tls:\n      certificates:\n'
                    '        - { cert: "%s", key: "%s" }\nbackends:\n  legacy:\n'
                    '    servers: [{ address: "127.0.0.1:2" }]\nroutes:\n'
                    '  - { name: all, backend: legacy }\n' % (c, k))
    r = harness.run_check(harness.turnout_bin(), str(path))
    assert r.returncode != 0
    err = r.stderr.decode().strip()
    assert err.startswith("%s:5:11: certificates: " % path), err
    want = {"mismatch": "does not match", "missing": "No such file or directory",
            "garbage": "cannot load the certificate"}[case]
    assert want in err, err


def test_a_handshake_that_never_comes_is_closed(turnout_factory, legacy, certs):
    t = start(turnout_factory, {"legacy": [legacy.address]}, [certs["a"]],
              tls_kw={"handshake_timeout": "300ms"})
    s = socket.create_connection(t.listen, timeout=10)
    t0 = time.monotonic()
    assert s.recv(100) == b""  # closed, nothing written
    assert time.monotonic() - t0 < 5
    s.close()


def test_large_bodies_both_ways(turnout_factory, legacy, certs):
    t = start(turnout_factory, {"legacy": [legacy.address]}, [certs["a"]])
    n = 20 << 20
    with connect(t, client_ctx()) as s:
        s.sendall(b"GET /size/%d HTTP/1.1\r\nHost: x\r\n\r\n" % n)
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += s.recv(65536)
        head, _, body = buf.partition(b"\r\n\r\n")
        h = hashlib.sha256(body)
        got = len(body)
        while got < n:
            d = s.recv(1 << 20)
            assert d
            h.update(d)
            got += len(d)
        assert got == n and h.hexdigest() == pattern_sha256(n)
        # and up: a 20 MiB upload, its digest answered by the backend
        payload = os.urandom(1 << 20) * 20
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(payload))
        s.sendall(payload)
        st, _, body = http_get_response(s)
        assert st == 200
        assert body.split()[0].decode() == hashlib.sha256(payload).hexdigest()


def http_get_response(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        assert d
        buf += d
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    hdrs = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    n = int(hdrs.get("content-length", "0"))
    while len(body) < n:
        body += s.recv(65536)
    return int(lines[0].split()[1]), hdrs, body


def test_replay_on_legacy_over_tls(turnout_factory, legacy, certs):
    from faults import FaultBackend
    new = FaultBackend("new", "status", status=503).start()
    try:
        t = start(turnout_factory, {"legacy": [legacy.address], "new": [new.address]},
                  [certs["a"]], routes=[{"name": "all", "shift": {
                      "from": "legacy", "to": "new", "percent": 100}}],
                  extra={"rollback": {"budget": {"ratio": 100, "window": "10s",
                                                 "min_per_second": 1000}}})
        with connect(t, client_ctx()) as s:
            for i in range(20):
                st, h, _ = http_get(s, "/r/%d" % i)
                assert st == 200 and h["x-platform"] == "legacy"
        for i in range(20):
            rec = t.wait_log(lambda r: r["path"] == "/r/%d" % i)
            assert rec["reason"] == "rollback_status", rec
            assert [a["backend"] for a in rec["attempts"]] == ["new", "legacy"]
    finally:
        new.stop()


def test_alpn_h2_over_tls(turnout_factory, legacy, certs):
    """ALPN offers h2 first: curl --http2 and python's client get HTTP/2 over
    TLS through the same routes; with h2: false, http/1.1."""
    t = start(turnout_factory, {"legacy": [legacy.address]}, [certs["a"]])
    with connect(t, client_ctx(alpn=("h2", "http/1.1"))) as s:
        assert s.selected_alpn_protocol() == "h2"
    url = "https://127.0.0.1:%d/size/100000" % t.listen[1]
    r = subprocess.run(["curl", "-sk", "--http2", "-o", "/dev/null", "-w",
                        "%{http_version} %{http_code} %{size_download}", url],
                       capture_output=True, timeout=30, text=True)
    assert r.stdout == "2 200 100000", r
    r = subprocess.run(["curl", "-sk", "--http1.1", "-o", "/dev/null", "-w",
                        "%{http_version} %{http_code}", url], capture_output=True, timeout=30,
                       text=True)
    assert r.stdout == "1.1 200", r
    req = [x for x in legacy.completed() if x.target == "/size/100000"]
    assert len(req) == 2 and all(x.header("X-Forwarded-Proto") == "https" for x in req)
    t2 = start(turnout_factory, {"legacy": [legacy.address]}, [certs["a"]], tls_kw={"h2": False})
    with connect(t2, client_ctx(alpn=("h2", "http/1.1"))) as s:
        assert s.selected_alpn_protocol() == "http/1.1"
        assert http_get(s)[0] == 200
