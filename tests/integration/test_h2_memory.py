"""HTTP/2 over TLS (ALPN h2) keeps memory bounded whatever the size of a
body or the speed of either side (issue 11): 100 MiB each way, with the
slow side paced, while a thread samples turnout's VmRSS from /proc.

- download, slow reader by flow control: the client gives its window back
  at a fixed rate (WINDOW_UPDATE paced), the backend sends at full speed;
- download, slow reader by TCP: the client opens its windows to 1 GiB and
  reads the socket at a fixed rate, so turnout's TLS output fills up;
- upload to a slow backend: the client sends as fast as its window allows,
  the backend (PlatformBackend /upload) reads at a fixed rate.

Each transfer checks the length and the sha256 of the bytes and takes
less than 60 s (times harness.SLOW under ASan). The peak RSS (the baseline
included, sampled every 10 ms, and VmHWM) stays under 64 MiB; under ASan
(TURNOUT_SANITIZED=1) shadow memory and the quarantine make RSS meaningless,
so only that assertion is skipped.
"""

import hashlib
import threading
import time

import h2.events
import h2.settings
import pytest

import harness
from backends import pattern_sha256, pattern_slices
from test_h2 import H2Client
from test_tls import client_ctx, make_cert, tls_listen

N = 100 << 20            # bytes each way
RATE = 12 << 20          # the slow side's pace, bytes per second (about 9 s for N)
RSS_LIMIT = 64 << 20
TIME_LIMIT = 60.0        # seconds per transfer (times SLOW)


class RssSampler:
    """Samples VmRSS of pid every 10 ms in a thread; .peak is the maximum."""

    def __init__(self, t):
        self.t = t
        self.peak = 0
        self.samples = 0
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self):
        try:
            rss = self.t.proc_status()["VmRSS"]
        except (OSError, KeyError, ValueError):
            return
        self.peak = max(self.peak, rss)
        self.samples += 1

    def _run(self):
        while not self.stop_ev.is_set():
            self._sample()
            self.stop_ev.wait(0.01)

    def __enter__(self):
        self._sample()
        self.thread.start()
        return self

    def __exit__(self, *a):
        self.stop_ev.set()
        self.thread.join(5)
        self._sample()

    def check(self, what):
        hwm = self.t.proc_status()["VmHWM"]
        print("%s: peak VmRSS %.1f MiB over %d samples, VmHWM %.1f MiB"
              % (what, self.peak / 2**20, self.samples, hwm / 2**20))
        assert self.samples >= 10, self.samples
        if harness.SANITIZED:
            return  # ASan's shadow memory and quarantine: RSS says nothing here
        assert self.peak < RSS_LIMIT, "%s: VmRSS reached %d bytes" % (what, self.peak)
        assert hwm < RSS_LIMIT, "%s: VmHWM %d bytes" % (what, hwm)


class CountingClient(H2Client):
    """H2Client that counts the flow-controlled bytes it has not given back."""

    def __init__(self, *a, **kw):
        self.unacked = {}
        super().__init__(*a, **kw)

    def _event(self, ev):
        super()._event(ev)
        if isinstance(ev, h2.events.DataReceived) and not self.window_updates:
            self.unacked[ev.stream_id] = self.unacked.get(ev.stream_id, 0) + \
                ev.flow_controlled_length


@pytest.fixture
def tls_turnout(turnout_factory, legacy, tmp_path):
    """turnout with one TLS listener (ALPN h2) in front of legacy, whose
    /upload reads at RATE."""
    legacy.upload_rate = RATE
    legacy.upload_read_size = 65536
    cert = make_cert(str(tmp_path), "h2mem", ["localhost"])
    port = harness.free_port()
    t = turnout_factory(backends={"legacy": [legacy.address]},
                        routes=[{"name": "all", "backend": "legacy"}], access_log="file",
                        start=False, timeouts={"response": "5s", "client_body": "5s"})
    t.cfg["listen"] = [tls_listen(port, [cert])]
    t.write_config(t.cfg)
    return t.start()


def _client(t, keep_body=0, **kw):
    return CountingClient(*t.listen, ssl_ctx=client_ctx(alpn=("h2",)), keep_body=keep_body, **kw)


def _deadline():
    return time.monotonic() + TIME_LIMIT * harness.SLOW


@pytest.mark.parametrize("slow", ["window", "socket"])
def test_100mib_download_to_a_slow_reader(slow, tls_turnout):
    t = tls_turnout
    c = _client(t, window_updates=False)
    try:
        if slow == "socket":
            # windows wide open: only the reading pace holds turnout back
            c.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: (1 << 31) - 1})
            c.conn.increment_flow_control_window(1 << 30)
            c.flush()
        t0 = time.monotonic()
        deadline = _deadline()
        with RssSampler(t) as rss:
            sid = c.start("/size/%d" % N)
            r = c.streams[sid]
            given = 0  # bytes of window given back (window pacing)
            got = 0    # bytes read off the socket (socket pacing)
            while not c.done(sid):
                now = time.monotonic()
                assert now < deadline and not c.closed, (
                    "%d of %d bytes after %.1fs (closed=%s)" % (r.length, N, now - t0, c.closed))
                allowed = RATE * (now - t0)
                if slow == "window":
                    c._recv_once(min(deadline, now + 0.02))
                    n = min(c.unacked.get(sid, 0), int(allowed - given))
                    if n > 0 and not c.done(sid):
                        c.conn.acknowledge_received_data(n, sid)
                        c.unacked[sid] -= n
                        given += n
                        c.flush()
                else:
                    if got > allowed:
                        time.sleep(min(0.02, (got - allowed) / RATE))  # the pace itself
                        continue
                    c.sock.settimeout(max(0.01, deadline - now))
                    data = c.sock.recv(16384)
                    if not data:
                        c.closed = True
                        continue
                    got += len(data)
                    for ev in c.conn.receive_data(data):
                        c._event(ev)
                    c.flush()
            elapsed = time.monotonic() - t0
        assert (r.status, r.reset) == (200, None)
        assert (r.length, r.sha.hexdigest()) == (N, pattern_sha256(N))
        # the reader set the pace: turnout held the rest back, in bounded memory
        assert elapsed >= 0.8 * N / RATE, elapsed
        rss.check("download, slow %s" % slow)
    finally:
        c.close()
    rec = t.wait_log(lambda x: x["path"] == "/size/%d" % N)
    assert (rec["status"], rec["proto"]) == (200, "HTTP/2") and rec["bytes_out"] >= N


def test_100mib_upload_to_a_slow_backend(tls_turnout, legacy):
    t = tls_turnout
    c = _client(t, keep_body=1024)
    try:
        t0 = time.monotonic()
        deadline = _deadline()
        with RssSampler(t) as rss:
            sid = c.start("/upload", method="POST", body=b"", end=False,
                          headers=[("content-length", str(N))])
            sha = hashlib.sha256()
            for piece in pattern_slices(N, 1 << 20):
                assert time.monotonic() < deadline, "the upload ran past its deadline"
                sha.update(piece)
                c.send_body(sid, bytes(piece), end=False,
                            timeout=max(1.0, deadline - time.monotonic()) / harness.SLOW)
            c.conn.end_stream(sid)
            c.flush()
            c.wait(lambda: c.done(sid), max(1.0, deadline - time.monotonic()) / harness.SLOW,
                   "the upload's answer")
            elapsed = time.monotonic() - t0
        r = c.streams[sid]
        assert (r.status, r.reset) == (200, None)
        assert bytes(r.body) == ("%s %d\n" % (sha.hexdigest(), N)).encode()
        assert sha.hexdigest() == pattern_sha256(N)
        # the backend set the pace: the client's window held the rest back
        assert elapsed >= 0.8 * N / RATE, elapsed
        rss.check("upload to a slow backend")
    finally:
        c.close()
    req = legacy.completed("/upload")[-1]
    assert req.header("Content-Length") == str(N) and req.header_all("Via") == ["2 turnout"]
    rec = t.wait_log(lambda x: x["path"] == "/upload")
    assert (rec["status"], rec["proto"]) == (200, "HTTP/2") and rec["bytes_in"] >= N
