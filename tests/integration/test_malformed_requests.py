"""Malformed requests: turnout answers the exact error status, closes the
connection (Connection: close, then EOF), and nothing malformed reaches a
backend.

Two kinds of cases:

- "head" cases: the request head itself is malformed (framing headers,
  bytes, names, Host, target, version, sizes). turnout must reject it before
  choosing a backend: the backend accepts no connection and receives no
  byte for it.

- "body" cases: the head is valid (Transfer-Encoding: chunked) and the chunked
  framing of the body is broken. turnout streams bodies, so the backend may
  already have received the head and the well-formed part of the body. What
  RFC 9112 requires of a proxy here is that the broken message is never
  completed downstream of it: turnout must not forward the bad framing,
  must abort the upstream connection (never return it to the pool, or the
  next request would be read as the rest of this body), and, since no
  response has started (the test backend answers only after a complete
  body), answer the client 400 and close. So the test asserts: 400 +
  close, the backend never got a complete request, and the upstream
  connection that carried the partial request was closed.

After each case a valid request on a new connection must still work, and it
must be the only request (and for head cases, the only bytes) the backend saw.
"""

import pytest

import harness
from client import Client, NoResponse

H = "Host: test.local\r\n"


def head(status, raw, id):
    return pytest.param("head", raw.encode("latin-1") if isinstance(raw, str) else raw, status,
                        id=id)


def body(raw_body, id):
    raw = ("POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n").encode() + raw_body
    return pytest.param("body", raw, 400, id=id)


LONG_TARGET = "/" + "a" * 9000  # request line > limits.uri (8k)
BIG_HEADERS = "".join("X-Big-%02d: %s\r\n" % (i, "v" * 1000) for i in range(20))  # > 16k
MANY_HEADERS = "".join("X-H%03d: v\r\n" % i for i in range(150))  # > 100 fields, ~1.5k

CASES = [
    # message framing: Content-Length / Transfer-Encoding
    head(400, "POST / HTTP/1.1\r\n" + H + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
         "0\r\n\r\n", "cl_and_te"),
    head(400, "POST / HTTP/1.1\r\n" + H + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
         "two_cl_same"),
    head(400, "POST / HTTP/1.1\r\n" + H + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
         "two_cl_different"),
    head(400, "POST / HTTP/1.1\r\n" + H + "Content-Length: +5\r\n\r\nhello", "cl_plus_sign"),
    head(400, "POST / HTTP/1.1\r\n" + H + "Content-Length: -5\r\n\r\nhello", "cl_minus_sign"),
    head(400, "POST / HTTP/1.1\r\n" + H + "Content-Length: 1 0\r\n\r\nhelloworld", "cl_inner_space"),
    head(400, "POST / HTTP/1.1\r\n" + H + "Content-Length: 5, 5\r\n\r\nhello", "cl_comma_list"),
    head(400, "POST / HTTP/1.1\r\n" + H + "Content-Length: 5a\r\n\r\nhello", "cl_non_digit"),
    head(400, "POST / HTTP/1.1\r\n" + H + "Content-Length: 0x5\r\n\r\nhello", "cl_hex"),
    head(400, "POST / HTTP/1.1\r\n" + H + "Content-Length: \r\n\r\n", "cl_empty"),
    head(400, "POST / HTTP/1.1\r\n" + H + "Content-Length: 99999999999999999999999\r\n\r\nhello",
         "cl_huge"),
    head(400, "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: gzip\r\n\r\nhello",
         "te_not_ending_in_chunked"),
    head(400, "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
         "te_chunked_not_last"),
    # RFC 9112 6.3: chunked not final in a request -> 400 (MUST); "xchunked" is not chunked
    head(400, "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
         "te_xchunked"),
    # RFC 9112 6.1: chunked MUST NOT be applied twice: broken framing -> 400
    head(400, "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
         "te_chunked_twice"),
    # valid framing with a coding turnout does not implement -> 501 (RFC 9112 6.1)
    head(501, "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
         "te_gzip_chunked"),
    head(400, "POST / HTTP/1.0\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
         "te_in_http10"),
    # bytes in the head
    head(400, "GET / HTTP/1.1\r\n" + H + "X-A: a\rb\r\n\r\n", "bare_cr_in_header"),
    head(400, "GET / HTTP/1.1\nHost: test.local\nX-A: b\n\n", "bare_lf_line_endings"),
    head(400, "GET / HTTP/1.1\n" + H + "\r\n", "bare_lf_after_request_line"),
    head(400, "GET / HTTP/1.1\r\n" + H + "X-A: a\x00b\r\n\r\n", "nul_in_header_value"),
    head(400, "GET / HTTP/1.1\r\n" + H + "X-A: a\x01b\r\n\r\n", "control_char_in_header_value"),
    head(400, "GET / HTTP/1.1\r\n" + H + "X-A: a\x7fb\r\n\r\n", "del_in_header_value"),
    head(400, "GET / HTTP/1.1\r\n" + H + "X-A: a\r\n folded\r\n\r\n", "obs_fold"),
    head(400, "GET / HTTP/1.1\r\n" + H + "X-A : b\r\n\r\n", "space_before_colon"),
    head(400, "GET / HTTP/1.1\r\n" + H + "X(A): b\r\n\r\n", "invalid_header_name_char"),
    head(400, b"GET / HTTP/1.1\r\n" + H.encode() + b"X-\xe9: b\r\n\r\n", "non_ascii_header_name"),
    head(400, "GET / HTTP/1.1\r\n" + H + ": b\r\n\r\n", "empty_header_name"),
    head(400, "GE(T / HTTP/1.1\r\n" + H + "\r\n", "invalid_method_char"),
    # Host
    head(400, "GET / HTTP/1.1\r\nX-A: b\r\n\r\n", "missing_host_http11"),
    head(400, "GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n", "two_host"),
    head(400, "GET / HTTP/1.1\r\nHost: bad host\r\n\r\n", "host_with_space"),
    head(400, "GET / HTTP/1.1\r\nHost: ex/ample\r\n\r\n", "host_with_slash"),
    head(400, "GET / HTTP/1.1\r\nHost: user@example.com\r\n\r\n", "host_with_userinfo"),
    # sizes
    head(414, "GET " + LONG_TARGET + " HTTP/1.1\r\n" + H + "\r\n", "request_line_too_long"),
    head(431, "GET / HTTP/1.1\r\n" + H + BIG_HEADERS + "\r\n", "head_too_large"),
    head(431, "GET / HTTP/1.1\r\n" + H + MANY_HEADERS + "\r\n", "too_many_headers"),
    # request line
    head(400, "GET /a#frag HTTP/1.1\r\n" + H + "\r\n", "hash_in_target"),
    head(400, "GET /a b HTTP/1.1\r\n" + H + "\r\n", "space_in_target"),
    head(400, "GET /a\x01b HTTP/1.1\r\n" + H + "\r\n", "control_char_in_target"),
    head(400, "GET HTTP/1.1\r\n" + H + "\r\n", "missing_target"),
    head(400, "GET /\r\n\r\n", "http09_request_line"),
    head(400, "GET / HTTP/1.x\r\n" + H + "\r\n", "bad_version_minor"),
    head(400, "GET / http/1.1\r\n" + H + "\r\n", "lowercase_version"),
    head(400, "GET / HTTP/11\r\n" + H + "\r\n", "version_without_dot"),
    head(505, "GET / HTTP/2.0\r\n" + H + "\r\n", "http2_request_line"),
    head(505, "GET / HTTP/3.0\r\n" + H + "\r\n", "http3_request_line"),
    head(501, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", "connect"),
    head(400, "GET ftp://example.com/x HTTP/1.1\r\nHost: example.com\r\n\r\n",
         "absolute_form_non_http_scheme"),
    # chunked body framing after a valid head
    body(b"zz\r\nhello\r\n0\r\n\r\n", "chunk_size_not_hex"),
    body(b"10000000000000000\r\nhello\r\n0\r\n\r\n", "chunk_size_too_long"),
    body(b"\r\nhello\r\n0\r\n\r\n", "chunk_size_empty"),
    body(b"5\r\nhelloXX0\r\n\r\n", "chunk_data_without_crlf"),
    body(b"5\nhello\r\n0\r\n\r\n", "chunk_line_bare_lf"),
    body(b"5\r\nhello\r\n-1\r\nx\r\n0\r\n\r\n", "chunk_size_negative"),
]


@pytest.fixture
def pinned(turnout_factory, legacy):
    return turnout_factory(backends={"legacy": [legacy.address]},
                           routes=[{"name": "all", "backend": "legacy"}], access_log="file")


@pytest.mark.parametrize("kind,raw,status", CASES)
def test_malformed_request_gets_error_status_and_close_and_never_reaches_backend(
        pinned, legacy, kind, raw, status):
    with Client(*pinned.listen, timeout=10) as c:
        c.send(raw)
        try:
            r = c.response(timeout=5)
        except NoResponse as e:
            pytest.fail("no %d response: %s" % (status, e))
        closed = c.wait_closed(3)
    assert r.status == status, "expected %d, got %d %r" % (status, r.status, r.body[:200])
    assert (r.header("Connection") or "").lower() == "close", r.headers
    assert closed in ("eof", "reset"), "connection still open after %d" % status

    # turnout still serves, and the backend saw only this valid request
    with Client(*pinned.listen) as c:
        ok = c.get("/sentinel")
    assert ok.status == 200 and ok.header("X-Platform") == "legacy"
    assert [q.target for q in legacy.completed()] == ["/sentinel"]
    if kind == "head":
        sentinel = legacy.completed()[0]
        assert legacy.bytes_received == len(sentinel.raw_head), (
            "the backend received bytes of the malformed request")
        assert legacy.connections == 1
        assert not legacy.partial
    else:
        # the partial request's upstream connection was aborted, not pooled
        harness.wait_until(lambda: legacy.in_progress == 0, 5,
                           "turnout to abort the upstream connection of the broken body")
        assert all(q.target == "/" for q in legacy.partial)
    assert not legacy.errors, legacy.errors
