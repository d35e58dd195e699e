"""HTTP/1 protocol behaviour a client or backend notices: pipelining, target
forms, Host, hop-by-hop headers, X-Forwarded-*/Via, HTTP/1.0 keep-alive
rules, response framing conversions, HEAD, bodies, IPv6."""

import pytest

import harness
from backends import pattern_sha256
from client import Client, build_request, chunked_body


@pytest.fixture
def pinned(turnout_factory, legacy):
    return turnout_factory(backends={"legacy": [legacy.address]},
                           routes=[{"name": "all", "backend": "legacy"}])


def _joined(req, name):
    return ", ".join(req.header_all(name))


def test_three_pipelined_requests_answered_in_order(pinned, legacy, connect):
    c = connect(pinned)
    c.send(build_request("GET", "/p1") + build_request("POST", "/p2", body=b"abc")
           + build_request("GET", "/p3"))
    bodies = [c.response().text() for _ in range(3)]
    assert bodies == ["legacy GET /p1\n", "legacy POST /p2\n", "legacy GET /p3\n"]
    assert [q.target for q in legacy.completed()] == ["/p1", "/p2", "/p3"]
    assert legacy.completed()[1].body == b"abc"


def test_absolute_form_reduced_to_origin_form_with_host_from_target(pinned, legacy, connect):
    c = connect(pinned)
    c.send(b"GET http://example.com:8080/abs/path?x=1 HTTP/1.1\r\nHost: other.example\r\n\r\n")
    r = c.response()
    assert r.status == 200
    [q] = legacy.completed()
    assert q.target == "/abs/path?x=1"
    assert q.header_all("Host") == ["example.com:8080"]


def test_host_header_preserved(pinned, legacy, connect):
    c = connect(pinned)
    r = c.get("/h", host=None, headers=[("Host", "Video.Example:8080")])
    assert r.status == 200
    assert legacy.completed()[0].header_all("Host") == ["Video.Example:8080"]


HOP_REQ = [("Connection", "X-Foo, keep-alive"), ("X-Foo", "secret"), ("Keep-Alive", "timeout=5"),
           ("Proxy-Connection", "keep-alive"), ("TE", "trailers"), ("Trailer", "X-T"),
           ("Upgrade", "foo/1"), ("X-Keep", "yes")]


def test_hop_by_hop_request_headers_removed(pinned, legacy, connect):
    c = connect(pinned)
    assert c.get("/hop-req", HOP_REQ).status == 200
    [q] = legacy.completed()
    names = {k.lower() for k, _ in q.headers}
    for gone in ("x-foo", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"):
        assert gone not in names, "%s reached the backend: %r" % (gone, q.headers)
    for v in q.header_all("Connection"):
        assert "x-foo" not in v.lower()
    assert q.header("X-Keep") == "yes"
    assert c.get("/again").status == 200  # the client's keep-alive connection goes on


def test_hop_by_hop_response_headers_removed(pinned, connect):
    c = connect(pinned)
    r = c.get("/hop")
    assert r.status == 200 and r.text() == "legacy GET /hop\n"
    names = {k.lower() for k, _ in r.headers}
    for gone in ("x-bar", "keep-alive", "proxy-connection", "trailer", "upgrade"):
        assert gone not in names, "%s reached the client: %r" % (gone, r.headers)
    for v in r.header_all("Connection"):
        assert "x-bar" not in v.lower()
    assert r.header("X-End-To-End") == "yes"
    assert c.get("/again").status == 200


def test_forwarding_headers_added(pinned, legacy, connect):
    c = connect(pinned)
    assert c.get("/fwd").status == 200
    q = legacy.completed()[0]
    assert _joined(q, "X-Forwarded-For") == "127.0.0.1"
    assert q.header_all("X-Forwarded-Proto") == ["http"]
    assert _joined(q, "Via") == "1.1 turnout"


def test_forwarding_headers_appended_to_incoming_ones(pinned, legacy, connect):
    c = connect(pinned)
    r = c.get("/fwd2", [("X-Forwarded-For", "192.0.2.1"), ("X-Forwarded-For", "198.51.100.2"),
                        ("X-Forwarded-Proto", "https"), ("Via", "1.0 edge")])
    assert r.status == 200
    q = legacy.completed()[0]
    assert _joined(q, "X-Forwarded-For") == "192.0.2.1, 198.51.100.2, 127.0.0.1"
    assert q.header_all("X-Forwarded-Proto") == ["http"]
    assert _joined(q, "Via") == "1.0 edge, 1.1 turnout"


def test_backend_gets_http11_origin_form(pinned, legacy, connect):
    c = connect(pinned)
    assert c.get("/v?q=1", version="HTTP/1.0").status == 200
    q = legacy.completed()[0]
    assert q.version == "HTTP/1.1" and q.target == "/v?q=1"


def test_http10_client_without_keepalive_gets_close(pinned, connect):
    c = connect(pinned)
    r = c.get("/ten", version="HTTP/1.0")
    assert r.status == 200 and r.text() == "legacy GET /ten\n"
    assert r.header("Transfer-Encoding") is None
    assert c.wait_closed(3) in ("eof", "reset")


def test_http10_keepalive_client_keeps_connection(pinned, legacy, connect):
    c = connect(pinned)
    for i in range(3):
        r = c.get("/ka/%d" % i, [("Connection", "keep-alive")], version="HTTP/1.0")
        assert r.status == 200 and r.framing == "length"
        assert "keep-alive" in (r.header("Connection") or "").lower(), r.headers
    assert c.is_open(0.3)


def test_http10_client_gets_chunked_response_unchunked(pinned, connect):
    n = 300001
    for keepalive in (False, True):
        c = connect(pinned)
        hdrs = [("Connection", "keep-alive")] if keepalive else []
        r = c.get("/chunked/%d" % n, hdrs, version="HTTP/1.0", keep_body=0)
        assert r.status == 200 and r.complete
        assert r.framing in ("close", "length") and r.header("Transfer-Encoding") is None
        assert r.body_len == n and r.body_sha256 == pattern_sha256(n)
        if r.framing == "close":
            assert c.eof


def test_close_delimited_response_reaches_http11_client_chunked_and_connection_stays(
        pinned, connect):
    n = 200003
    c = connect(pinned)
    r = c.get("/close/%d" % n, keep_body=0)
    assert r.status == 200 and r.framing == "chunked" and r.complete
    assert r.body_len == n and r.body_sha256 == pattern_sha256(n)
    r = c.get("/after-close")
    assert r.status == 200 and r.text() == "legacy GET /after-close\n"


def test_close_delimited_response_reaches_http10_client_close_delimited(pinned, connect):
    n = 200003
    c = connect(pinned)
    r = c.get("/close/%d" % n, version="HTTP/1.0", keep_body=0)
    assert r.status == 200 and r.framing == "close" and r.complete
    assert r.body_len == n and r.body_sha256 == pattern_sha256(n)


def test_http11_client_connection_close_honoured(pinned, connect):
    c = connect(pinned)
    r = c.get("/bye", [("Connection", "close")])
    assert r.status == 200
    assert (r.header("Connection") or "").lower() == "close"
    assert c.wait_closed(3) in ("eof", "reset")


def test_head_response_has_no_body_and_connection_continues(pinned, connect):
    c = connect(pinned)
    c.send(build_request("HEAD", "/size/1000") + build_request("HEAD", "/chunked/1000")
           + build_request("GET", "/after-head"))
    r = c.response(method="HEAD")
    assert r.status == 200 and r.header("Content-Length") == "1000" and r.body == b""
    r = c.response(method="HEAD")
    assert r.status == 200 and r.body == b""
    r = c.response()
    assert r.text() == "legacy GET /after-head\n"


def test_status_codes_and_bodyless_responses_pass_through(pinned, connect):
    c = connect(pinned)
    for st in (201, 404, 500, 503):
        r = c.get("/status/%d" % st)
        assert r.status == st and r.text() == "legacy status %d\n" % st
    for st in (204, 304):
        r = c.get("/status/%d" % st)
        assert r.status == st and r.body == b""
        assert r.header("Transfer-Encoding") is None
    assert c.get("/still").status == 200


def test_content_length_request_body_arrives_with_same_length(pinned, legacy, connect):
    c = connect(pinned)
    body = bytes(range(256)) * 400
    c.request("PUT", "/cl", body=body)
    assert c.response().status == 200
    [q] = legacy.completed()
    assert q.header("Content-Length") == str(len(body)) and not q.chunked
    assert q.body == body


def test_chunked_request_body_reframed_without_extensions_and_trailers(pinned, legacy, connect):
    c = connect(pinned)
    payload = b"0123456789abcdef" * 1000 + b"tail"
    c.request("POST", "/ch", [("Transfer-Encoding", "chunked"), ("Trailer", "X-Sum")],
              chunked_body(payload, 1000, ";ext=1", [("X-Sum", "42")]))
    assert c.response().status == 200
    [q] = legacy.completed()
    assert q.chunked and q.header("Content-Length") is None
    assert q.body == payload
    assert b";" not in q.raw_body, "chunk extensions forwarded: %r" % q.raw_body[:200]
    assert q.trailers == [], "trailers forwarded: %r" % q.trailers


def test_large_header_within_limits_passes_intact(pinned, legacy, connect):
    c = connect(pinned)
    value = "v" * 10000
    assert c.get("/big", [("X-Big", value)]).status == 200
    assert legacy.completed()[0].header("X-Big") == value


if harness.have_ipv6_loopback():
    def test_ipv6_listener_and_backend_on_loopback(turnout_factory, backend_factory):
        b6 = backend_factory("platform", "legacy", host="::1")
        p4 = harness.free_port()
        p6 = harness.free_port("::1")
        t = turnout_factory(listen=["127.0.0.1:%d" % p4, "[::1]:%d" % p6],
                            backends={"legacy": [b6.address]},
                            routes=[{"name": "all", "backend": "legacy"}])
        t.wait_ready()
        with Client("::1", p6) as c:
            r = c.get("/six", host="[::1]:%d" % p6)
        assert r.status == 200 and r.text() == "legacy GET /six\n"
        with Client("127.0.0.1", p4) as c:
            assert c.get("/four").status == 200
        six, four = b6.completed()
        assert _joined(six, "X-Forwarded-For") == "::1"
        assert six.header("Host") == "[::1]:%d" % p6
        assert _joined(four, "X-Forwarded-For") == "127.0.0.1"
