"""Malformed backend responses: the client gets 502 (or, once turnout has
already sent the response head, a cut connection with an incomplete body),
never the malformed bytes. Interim 1xx responses and Expect: 100-continue.

The raw backend sends the bytes and then keeps the connection open, so
turnout must reject the response for what it is, not because the backend
closed; with timeouts.response at 5 s the 502 must come well before that.
"""

import time

import pytest

from backends import pattern_sha256, pattern_slices
from client import NoResponse, build_request

RESPONSE_TIMEOUT = 5.0
QUICK = 3.0  # a verdict on a malformed response comes well before timeouts.response

BIG = "".join("X-Big-%02d: %s\r\n" % (i, "v" * 1000) for i in range(20))

BAD_HEADS = [
    pytest.param(b"HTTP/1.1 OK\r\nContent-Length: 2\r\n\r\nok", id="status_line_without_code"),
    pytest.param(b"HTTX/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", id="status_line_bad_protocol"),
    pytest.param(b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok", id="status_four_digits"),
    pytest.param(b"HTTP/1.1 099 Low\r\nContent-Length: 2\r\n\r\nok", id="status_099"),
    pytest.param(b"HTTP/1.1 600 High\r\nContent-Length: 2\r\n\r\nok", id="status_600"),
    pytest.param(b"garbage\r\n\r\n", id="not_http"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
                 id="two_different_content_length"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"2\r\nok\r\n0\r\n\r\n", id="content_length_and_chunked"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\nok", id="content_length_not_digits"),
    pytest.param(b"HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 2\r\n\r\nok", id="bare_lf_in_head"),
    pytest.param(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 2\r\n\r\nok",
                 id="obs_fold"),
    pytest.param(b"HTTP/1.1 200 OK\r\nX-A : 1\r\nContent-Length: 2\r\n\r\nok",
                 id="space_before_colon"),
    pytest.param(b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok",
                 id="nul_in_header_value"),
    pytest.param(("HTTP/1.1 200 OK\r\n" + BIG + "Content-Length: 2\r\n\r\nok").encode(),
                 id="head_too_large"),
    pytest.param(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: foo\r\n\r\n",
                 id="unsolicited_101"),
]


def _pinned(turnout_factory, backend):
    return turnout_factory(backends={"legacy": [backend.address]},
                           routes=[{"name": "all", "backend": "legacy"}],
                           timeouts={"response": "%ds" % RESPONSE_TIMEOUT})


@pytest.mark.parametrize("raw", BAD_HEADS)
def test_malformed_response_head_gives_client_502(turnout_factory, backend_factory, connect, raw):
    b = backend_factory("raw", "legacy", response=raw, after="hang")
    t = _pinned(turnout_factory, b)
    c = connect(t)
    t0 = time.monotonic()
    r = c.get("/", [("X-Req", "1")])
    elapsed = time.monotonic() - t0
    assert r.status == 502, r
    assert elapsed < QUICK, "502 took %.2fs (the response timeout is %ss)" % (
        elapsed, RESPONSE_TIMEOUT)
    # none of the backend's malformed bytes leaked into the client's response
    assert b"folded" not in r.raw_head and b"X-A" not in r.raw_head and b"X-Big" not in r.raw_head
    assert len(b.completed()) == 1


@pytest.mark.parametrize("mode", ["close", "reset"])
def test_backend_closing_or_resetting_without_answer_gives_502(turnout_factory, backend_factory,
                                                              connect, mode):
    b = backend_factory("raw", "legacy", mode=mode)
    t = _pinned(turnout_factory, b)
    c = connect(t)
    t0 = time.monotonic()
    r = c.get("/")
    assert r.status == 502
    assert time.monotonic() - t0 < QUICK
    assert len(b.completed()) >= 1


BAD_CHUNKS = [
    pytest.param(b"5\r\nhello\r\nzz\r\n", id="chunk_size_not_hex"),
    pytest.param(b"5\r\nhelloXX", id="chunk_data_without_crlf"),
    pytest.param(b"5\r\nhello\r\n3\nabc\r\n", id="chunk_line_bare_lf"),
]


@pytest.mark.parametrize("chunks", BAD_CHUNKS)
def test_bad_chunked_response_body_gives_502_or_cuts_client(turnout_factory, backend_factory,
                                                            connect, chunks):
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
    b = backend_factory("raw", "legacy", response=raw, after="hang")
    t = _pinned(turnout_factory, b)
    c = connect(t)
    t0 = time.monotonic()
    c.request("GET", "/")
    try:
        r = c.response(timeout=QUICK + 2)
    except NoResponse:
        # turnout committed to the response and aborted the connection before
        # its bytes reached the client: a cut, the client saw no response
        assert time.monotonic() - t0 < QUICK
        return
    if r.status == 502:
        # turnout had not forwarded the head yet
        return
    # the head was already forwarded: the body must end in a cut, never look complete
    assert r.status == 200
    assert not r.complete and r.cut in ("eof", "reset"), r
    assert time.monotonic() - t0 < QUICK
    assert c.wait_closed(1) in ("eof", "reset")


def test_truncated_content_length_response_cuts_client_connection(turnout_factory,
                                                                  backend_factory, connect):
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-part"
    b = backend_factory("raw", "legacy", response=raw, after="close")
    t = _pinned(turnout_factory, b)
    c = connect(t)
    c.request("GET", "/")
    try:
        r = c.response(timeout=QUICK + 2)
    except NoResponse:
        return  # aborted before the head reached the client: a cut all the same
    if r.status == 502:
        return
    assert r.status == 200 and r.header("Content-Length") == "100"
    assert not r.complete and r.body == b"only-part", r
    assert r.cut in ("eof", "reset")


def test_103_early_hints_reach_http11_client_before_200(turnout_factory, legacy, connect):
    t = _pinned(turnout_factory, legacy)
    c = connect(t)
    r = c.get("/early")
    assert [i.status for i in r.interim] == [103]
    assert r.interim[0].header("Link") == "</style.css>; rel=preload"
    assert r.status == 200 and r.text() == "legacy GET /early\n"
    # the connection goes on
    assert c.get("/next").status == 200


def test_http10_client_never_sees_1xx(turnout_factory, legacy, connect):
    t = _pinned(turnout_factory, legacy)
    c = connect(t)
    r = c.get("/early", version="HTTP/1.0")
    assert r.interim == []
    assert r.raw_head.startswith(b"HTTP/1.")
    assert r.status == 200 and r.text() == "legacy GET /early\n"
    assert b" 103 " not in r.raw_head


def test_expect_100_continue_flow(turnout_factory, legacy, connect):
    t = _pinned(turnout_factory, legacy)
    c = connect(t)
    n = 1 << 20
    c.send(build_request("POST", "/upload", [("Content-Length", str(n)),
                                             ("Expect", "100-continue")]))
    interim = c.read_head(timeout=5)
    assert interim.status == 100, "expected 100 Continue before sending the body, got %r" % interim
    for piece in pattern_slices(n):
        c.send(piece)
    r = c.response(timeout=10)
    assert r.status == 200
    assert r.text() == "%s %d\n" % (pattern_sha256(n), n)
    assert all(i.status == 100 for i in r.interim)

