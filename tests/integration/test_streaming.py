"""Streaming with backpressure: 100 MiB bodies cross turnout intact while its
memory stays bounded, because a slow reader on either side slows the writer
on the other instead of piling bytes up in turnout.

Memory is turnout's peak RSS (VmHWM in /proc/PID/status): under 64 MiB. In
the AddressSanitizer pass (TURNOUT_SANITIZED=1) ASan's shadow memory and
quarantine inflate RSS, so there the growth during the transfer (VmHWM after
minus VmRSS before) must stay under 64 MiB.
"""

import harness
from backends import pattern_sha256, pattern_slices
from client import build_request

MIB = 1 << 20
SIZE = 100 * MIB
LIMIT = 64 * MIB
SLOW_RATE = 32 * MIB  # bytes/s of the slow side, in 16 KiB reads


def _start(turnout_factory, backend):
    return turnout_factory(backends={"legacy": [backend.address]},
                           routes=[{"name": "all", "backend": "legacy"}],
                           timeouts={"response": "10s", "client_body": "5s"})


def _memory_before(t):
    return t.proc_status()["VmRSS"]


def _assert_bounded(t, rss_before):
    st = t.proc_status()
    if harness.SANITIZED:
        growth = st["VmHWM"] - rss_before
        assert growth < LIMIT, "peak RSS grew by %.1f MiB during the transfer" % (growth / MIB)
    else:
        assert st["VmHWM"] < LIMIT, "turnout peak RSS %.1f MiB" % (st["VmHWM"] / MIB)


def test_100mib_content_length_upload_to_slow_backend_is_intact_with_bounded_memory(
        turnout_factory, backend_factory, connect):
    b = backend_factory("platform", "legacy", upload_rate=SLOW_RATE, upload_read_size=16384)
    t = _start(turnout_factory, b)
    rss0 = _memory_before(t)
    c = connect(t, timeout=60)
    c.send(build_request("POST", "/upload", [("Content-Length", str(SIZE))]))
    for piece in pattern_slices(SIZE):
        c.send(piece)
    r = c.response(timeout=60)
    assert r.status == 200
    assert r.text() == "%s %d\n" % (pattern_sha256(SIZE), SIZE)
    [req] = b.completed("/upload")
    assert req.header("Content-Length") == str(SIZE)
    assert not req.chunked
    _assert_bounded(t, rss0)


def test_100mib_chunked_upload_to_slow_backend_is_intact_with_bounded_memory(
        turnout_factory, backend_factory, connect):
    b = backend_factory("platform", "legacy", upload_rate=SLOW_RATE, upload_read_size=16384)
    t = _start(turnout_factory, b)
    rss0 = _memory_before(t)
    c = connect(t, timeout=60)
    c.send(build_request("POST", "/upload", [("Transfer-Encoding", "chunked")]))
    for piece in pattern_slices(SIZE, 64 * 1024):
        c.send(b"%x\r\n" % len(piece) + bytes(piece) + b"\r\n")
    c.send(b"0\r\n\r\n")
    r = c.response(timeout=60)
    assert r.status == 200
    assert r.text() == "%s %d\n" % (pattern_sha256(SIZE), SIZE)
    [req] = b.completed("/upload")
    assert req.chunked, "a chunked request body reaches the backend chunked"
    assert req.header("Content-Length") is None
    _assert_bounded(t, rss0)


def test_100mib_download_to_slow_client_is_intact_with_bounded_memory(
        turnout_factory, backend_factory, connect):
    b = backend_factory("platform", "legacy")
    t = _start(turnout_factory, b)
    rss0 = _memory_before(t)
    c = connect(t, timeout=60)
    c.request("GET", "/size/%d" % SIZE)
    r = c.response(timeout=60, keep_body=0, read_size=16384, rate=SLOW_RATE)
    assert r.status == 200 and r.complete
    assert r.framing == "length" and r.header("Content-Length") == str(SIZE)
    assert r.body_len == SIZE
    assert r.body_sha256 == pattern_sha256(SIZE)
    _assert_bounded(t, rss0)


def test_chunked_download_passes_intact(turnout_factory, backend_factory, connect):
    b = backend_factory("platform", "legacy")
    t = _start(turnout_factory, b)
    c = connect(t, timeout=60)
    n = 8 * MIB + 3
    c.request("GET", "/chunked/%d" % n)
    r = c.response(timeout=60, keep_body=0)
    assert r.status == 200 and r.complete and r.framing == "chunked"
    assert r.body_len == n and r.body_sha256 == pattern_sha256(n)
    # the connection is still usable
    r = c.get("/after")
    assert r.status == 200 and r.text() == "legacy GET /after\n"


def test_closing_response_reaches_a_slow_http10_client_whole(turnout_factory, backend_factory,
                                                             connect):
    """An HTTP/1.0 client gets a chunked response close-delimited, so turnout
    closes after it. The close must wait until a slow reader has read every
    byte still queued (up to 256 KiB+), not cut it after the short linger."""
    b = backend_factory("platform", "legacy")
    t = _start(turnout_factory, b)
    c = connect(t, timeout=60)
    n = 1 * MIB + 5
    c.request("GET", "/chunked/%d" % n, version="HTTP/1.0")
    # 128 KiB/s: the bytes still queued when the response ends take about
    # 2.5 s to read, longer than the 1 s lingering close
    r = c.response(timeout=60, keep_body=0, read_size=8192, rate=128 * 1024)
    assert r.status == 200 and r.framing == "close", r
    assert r.body_len == n and r.body_sha256 == pattern_sha256(n)
