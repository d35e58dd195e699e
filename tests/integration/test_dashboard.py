"""The live migration dashboard (GET /dashboard on admin.http): the page
loaded in Debian's headless chromium, driven over the DevTools protocol
(a minimal WebSocket client from the standard library below).

The test sends known traffic, then checks in the browser that
- the page logs no console message of level warning or error, throws no
  exception, and makes no request but to the admin listener (the page and
  /stats.json), none failing -- and that this watch works: a request to an
  outside address made from the page is caught (the CSP blocks it);
- the figures the page shows (read from elements carrying stable
  data-testid attributes, as text) are the traffic sent: requests and 5xx
  per side, replays by reason, the percent configured and in force, a
  weight change's source and event, the pinned route's requests, the
  servers, the listener;
- when turnout goes away, the page says "disconnected" and keeps polling
  without a JavaScript error.
docs/dashboard.md describes the page."""

import base64
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.request

import pytest

import harness
from admin import cmd
from client import Client
from flaky import FlakyBackend

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
NO_BUDGET = {"ratio": 100, "window": "10s", "min_per_second": 1000}


# ------------------------------------------------------------ WebSocket ----

class WebSocket:
    """A client WebSocket (RFC 6455) on a plain TCP socket: text frames out
    (masked), text frames in (fragmented or not); answers pings."""

    GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self, url, timeout=10.0):
        m = re.match(r"^ws://([^/:]+):(\d+)(/.*)$", url)
        assert m, url
        self.sock = socket.create_connection((m.group(1), int(m.group(2))), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n"
                           % (m.group(3), m.group(1), m.group(2), key)).encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            data = self.sock.recv(4096)
            if not data:
                raise ConnectionError("DevTools closed the WebSocket handshake")
            self.buf += data
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0].split(" ")[1] == "101", head
        accept = base64.b64encode(hashlib.sha1((key + self.GUID).encode()).digest()).decode()
        hdrs = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
        assert hdrs.get("sec-websocket-accept") == accept, head

    def close(self):
        try:
            self._send_frame(0x8, b"")
        except OSError:
            pass
        self.sock.close()

    def _send_frame(self, opcode, payload):
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        mask = os.urandom(4)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + body)

    def send(self, text):
        self._send_frame(0x1, text.encode())

    def _read(self, n):
        while len(self.buf) < n:
            data = self.sock.recv(max(65536, n - len(self.buf)))
            if not data:
                raise ConnectionError("DevTools closed the WebSocket")
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self, timeout):
        """The next text message, or None when none came within timeout."""
        self.sock.settimeout(timeout)
        try:
            parts = []
            while True:
                b0, b1 = self._read(2)
                n = b1 & 0x7F
                if n == 126:
                    n = struct.unpack("!H", self._read(2))[0]
                elif n == 127:
                    n = struct.unpack("!Q", self._read(8))[0]
                mask = self._read(4) if b1 & 0x80 else None
                payload = self._read(n)
                if mask:
                    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                op = b0 & 0x0F
                if op == 0x9:
                    self._send_frame(0xA, payload)
                    continue
                if op == 0xA:
                    continue
                if op == 0x8:
                    raise ConnectionError("DevTools closed the WebSocket")
                parts.append(payload)
                if b0 & 0x80:
                    return b"".join(parts).decode()
        except socket.timeout:
            return None
        finally:
            self.sock.settimeout(None)


# ------------------------------------------------------------- chromium ----

class Chromium:
    """Headless chromium with one page, driven over the DevTools protocol.
    Records what the page logs, throws and requests. Stopped by pid."""

    def __init__(self, workdir, width=1600, height=1000):
        self.profile = tempfile.mkdtemp(prefix="chromium-", dir=str(workdir))
        self.stderr_path = os.path.join(str(workdir), "chromium.stderr")
        argv = [CHROMIUM, "--headless=new", "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1", "--user-data-dir=" + self.profile,
                "--no-first-run", "--no-default-browser-check", "--disable-gpu",
                "--disable-extensions", "--disable-background-networking", "--disable-sync",
                "--disable-component-update", "--disable-default-apps", "--mute-audio",
                "--metrics-recording-only", "--password-store=basic",
                "--window-size=%d,%d" % (width, height), "about:blank"]
        if os.geteuid() == 0:
            argv.insert(1, "--no-sandbox")  # chromium refuses to run as root with its sandbox
        self._err = open(self.stderr_path, "wb")
        # its own process group: its helpers (zygote, renderer) go with it
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._err,
                                     stderr=self._err, start_new_session=True)
        self.ws = None
        self.next_id = 0
        self.session = None
        self.events = []  # (method, params) of the page session, in order
        port_file = os.path.join(self.profile, "DevToolsActivePort")

        def endpoint():
            if self.proc.poll() is not None:
                raise AssertionError("chromium exited with %s:\n%s" % (
                    self.proc.returncode, self.stderr_tail()))
            try:
                with open(port_file) as f:
                    lines = f.read().split("\n")
            except FileNotFoundError:
                return None
            if len(lines) < 2 or not lines[1]:
                return None  # being written
            return "ws://127.0.0.1:%s%s" % (lines[0], lines[1])

        url = harness.wait_until(endpoint, 30, "chromium's DevTools endpoint", interval=0.05)
        self.ws = WebSocket(url)
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target,
                                 flatten=True)["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.call(domain + ".enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width,
                  height=height, deviceScaleFactor=1, mobile=False)

    def stderr_tail(self, n=30):
        with open(self.stderr_path, "rb") as f:
            return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-n:])

    def _pump(self, timeout):
        msg = self.ws.recv(timeout)
        if msg is None:
            return None
        m = json.loads(msg)
        if "method" in m and m.get("sessionId") == self.session and self.session:
            self.events.append((m["method"], m.get("params", {})))
        return m

    def call(self, method, session=False, timeout=20.0, **params):
        """Sends one command (to the page's session when session is true);
        returns its result, keeping the events that arrive meanwhile."""
        self.next_id += 1
        mid = self.next_id
        m = {"id": mid, "method": method, "params": params}
        if session:
            m["sessionId"] = self.session
        self.ws.send(json.dumps(m))
        deadline = time.monotonic() + timeout * harness.SLOW
        while time.monotonic() < deadline:
            r = self._pump(max(0.05, deadline - time.monotonic()))
            if r is not None and r.get("id") == mid:
                if "error" in r:
                    raise AssertionError("%s: %s" % (method, r["error"]))
                return r.get("result", {})
        raise harness.Timeout("no answer to %s" % method)

    def drain(self):
        while self._pump(0.01) is not None:
            pass

    def evaluate(self, expr):
        r = self.call("Runtime.evaluate", session=True, expression=expr, returnByValue=True)
        if "exceptionDetails" in r:
            raise AssertionError("evaluate %s: %s" % (expr, r["exceptionDetails"]))
        return r["result"].get("value")

    def navigate(self, url):
        """Loads url; returns once its load event fired."""
        n = len(self.events)
        r = self.call("Page.navigate", session=True, url=url)
        assert "errorText" not in r, r
        harness.wait_until(lambda: (self.drain(), any(
            m == "Page.loadEventFired" for m, _ in self.events[n:]))[1], 15, "%s loaded" % url)

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", session=True, format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def testids(self):
        """{data-testid: text} of every element carrying one, plus the poll
        count under "@polls"."""
        self.drain()
        return json.loads(self.evaluate(
            "JSON.stringify(!document.body ? {} : Object.assign("
            "{'@polls': document.body.getAttribute('data-polls')},"
            " Object.fromEntries([...document.querySelectorAll('[data-testid]')]"
            ".map(e => [e.getAttribute('data-testid'), e.textContent.trim()]))))"))

    # what the page did
    def console(self):
        """Console messages and log entries of level warning or error, and
        uncaught exceptions, as strings."""
        out = []
        for method, p in self.events:
            if method == "Runtime.consoleAPICalled" and p.get("type") in (
                    "error", "warning", "assert", "trace"):
                out.append("console.%s: %s" % (p["type"], " ".join(
                    str(a.get("value", a.get("description"))) for a in p.get("args", []))))
            elif method == "Runtime.exceptionThrown":
                out.append("exception: %s" % json.dumps(p.get("exceptionDetails"))[:600])
            elif method == "Log.entryAdded" and p["entry"].get("level") in ("error", "warning"):
                e = p["entry"]
                out.append("log %s/%s: %s %s" % (e.get("source"), e["level"], e.get("text"),
                                                  e.get("url", "")))
        return out

    def requests(self):
        """[(url, failure or None, status or None)] of every request the page made."""
        reqs, order = {}, []
        for method, p in self.events:
            if method == "Network.requestWillBeSent":
                if p["requestId"] not in reqs:
                    order.append(p["requestId"])
                reqs[p["requestId"]] = [p["request"]["url"], None, None]
            elif method == "Network.loadingFailed" and p["requestId"] in reqs:
                reqs[p["requestId"]][1] = "%s %s" % (p.get("errorText"), p.get("blockedReason", ""))
            elif method == "Network.responseReceived" and p["requestId"] in reqs:
                reqs[p["requestId"]][2] = p["response"]["status"]
        return [tuple(reqs[i]) for i in order]

    def stop(self):
        if self.ws is not None:
            try:
                self.call("Browser.close", timeout=5)
            except (AssertionError, OSError, ConnectionError):
                pass
            self.ws.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        try:  # helpers left in its process group (its pgid is its pid)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._err.close()
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture
def chromium(tmp_path):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail("chromium not found: install Debian's chromium (contrib/deps.sh)",
                    pytrace=False)
    browsers = []

    def make(**kw):
        b = Chromium(tmp_path, **kw)
        browsers.append(b)
        return b

    yield make
    for b in browsers:
        b.stop()


# ----------------------------------------------------------------- test ----

def digits(text):
    """The integer a count shows ("1,234" -> 1234); None for a dash."""
    d = re.sub(r"[^0-9]", "", text or "")
    return int(d) if d else None


def stats_json(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/stats.json" % port, timeout=5) as r:
        return json.loads(r.read())


def test_dashboard_shows_the_traffic_without_console_errors(turnout_factory, legacy, new,
                                                             short_dir, chromium):
    sock = short_dir("admin.sock")
    aport = harness.free_port()
    t = turnout_factory(backends={"legacy": [legacy.address], "new": [new.address]},
                        routes=harness.default_routes(30), workers=2, start=False,
                        extra={"admin": {"socket": sock, "http": "127.0.0.1:%d" % aport},
                               "rollback": {"budget": dict(NO_BUDGET)}})
    for b in ("legacy", "new"):  # 5xx answers must not eject a server here
        t.cfg["backends"][b]["passive"] = {"failures": 0}
    t.write_config(t.cfg)
    t.start()
    base = "http://127.0.0.1:%d" % aport

    # known traffic: keys whose side we predict at 30 %
    keys = ["user-%04d" % i for i in range(400)]
    to_legacy = [k for k in keys if harness.predict("default", k, 30) == "legacy"]
    to_new = [k for k in keys if harness.predict("default", k, 30) == "new"]
    plan = ([(k, "/", 200, "legacy") for k in to_legacy[:40]] +
            [(k, "/", 200, "new") for k in to_new[:20]] +
            [(k, "/status/500", 500, "legacy") for k in to_legacy[40:43]] +
            [(k, "/status/500", 500, "new") for k in to_new[20:25]] +   # 500: not replayed
            [(k, "/status/503", 503, "legacy") for k in to_new[25:29]])  # replayed on legacy
    with Client(*t.listen) as c:
        for k, target, status, platform in plan:
            c.request("GET", target, [("X-User-Id", k)])
            r = c.response()
            assert (r.status, r.header("X-Platform")) == (status, platform), (k, target, r)
        for i in range(6):
            c.request("GET", "/", [("X-User-Tier", "beta"), ("X-User-Id", "b%d" % i)])
            assert c.response().status == 200
    exp = {"from": {"requests": 47, "5xx": 7}, "to": {"requests": 25, "5xx": 5}}
    routed_to, routed = 20 + 5 + 4, 72  # the replayed requests were routed to "to"

    def counted():
        rows = {(r["route"], r["side"]): r for r in stats_json(aport)["stats"]}
        return all(rows.get(("default", s), {}).get("requests") == exp[s]["requests"]
                   for s in exp) and rows.get(("beta", "pinned"), {}).get("requests") == 6
    harness.wait_until(counted, 5, "the traffic counted in /stats.json")

    def settled():  # the 60 s window counts complete seconds only
        j = stats_json(aport)
        r = [x for x in j["routes"] if x["name"] == "default"][0]
        return j if "routed_60s" not in r or r["routed_60s"] == routed else None
    j = harness.wait_until(settled, 5, "the last second complete in /stats.json")

    b = chromium()
    b.navigate(base + "/dashboard")

    def shows(cond, what, timeout=15):
        """Waits until cond(testids) holds (the page polls every second)."""
        last = {}

        def probe():
            last.clear()
            last.update(b.testids())
            return dict(last) if cond(last) else None
        try:
            return harness.wait_until(probe, timeout, what, interval=0.2)
        except harness.Timeout as e:
            raise AssertionError("%s\npage shows: %s\nconsole: %s" % (e, json.dumps(
                last, indent=1, sort_keys=True), b.console())) from None

    R = "route-default-"
    ids = shows(lambda d: digits(d.get(R + "to-requests")) == 25 and
                int(d.get("@polls") or 0) >= 2, "the route's figures")
    assert ids["conn-state"] == "live"
    assert ids["render-error"] == ""
    for side in ("from", "to"):
        assert digits(ids[R + side + "-requests"]) == exp[side]["requests"], side
        assert digits(ids[R + side + "-5xx"]) == exp[side]["5xx"], side
        assert digits(ids[R + side + "-none"]) == 0, side
    assert (ids[R + "percent"], ids[R + "configured"], ids[R + "source"]) == ("30", "30", "config")
    assert digits(ids["route-beta-requests"]) == 6
    assert ids["info-workers"] == "2" and ids["redis-state"] == "off"
    # the error rate since start: 5xx / requests
    assert ids[R + "from-errpct"] == "%.2f" % (100.0 * 7 / 47)
    # the newer members, when this turnout reports them
    if "replays" in j["stats"][0]:
        assert digits(ids[R + "replays-total"]) == 4
        assert digits(ids[R + "replays-rollback_status"]) == 4
        assert digits(ids[R + "refused-total"]) == 0
    else:
        assert ids[R + "replays-total"] == "\u2014"
    if "upstream" in j["stats"][0]:
        assert digits(ids[R + "to-upstream-5xx"]) == 9  # before the replays
        assert digits(ids[R + "to-upstream-ok"]) == 20
        assert digits(ids[R + "from-upstream-ok"]) == 40
    route = [r for r in j["routes"] if r["name"] == "default"][0]
    if "actual" in route:
        assert route["routed_60s"] == routed
        assert ids[R + "actual"] == "%.1f" % route["actual"]
        assert abs(float(ids[R + "actual"]) - 100.0 * routed_to / routed) <= 0.1
    else:  # the page's fallback: the requests answered since start
        assert ids[R + "actual"] == "%.1f" % (100.0 * 25 / 72)
    if "series" in j:
        assert R + "chart-rps" in ids and R + "chart-latency" in ids
    # servers
    for be in j["backends"]:
        key = "server-%s/%s" % (be["backend"], be["server"])
        assert ids[key + "-state"] == "ready" and ids[key + "-ejected"] == "no", key
        if "connects" in be:
            assert digits(ids[key + "-connects"]) >= 1, key
    # listeners and fleet
    if "listeners" in j:
        lkey = "listener-%s:%d" % t.listen
        shows(lambda d: digits(d.get(lkey + "-accepted")) ==
              [x for x in stats_json(aport)["listeners"]
               if x["address"] == "%s:%d" % t.listen][0]["accepted"], "the listener's figures")
    assert "fleet-self-version" in ids
    # the auto-rollback panel is there only when /stats.json has its member
    hidden = b.evaluate("document.getElementById('rollback-panel').classList.contains('hidden')")
    assert hidden == ("rollback" not in j)
    if "rollback" in j:  # rollback.auto is off here
        assert ids["rollback-default-enabled"] == "off"

    # a weight change: the percent, its source and the newest event follow
    assert not cmd(sock, "set weight default 25").startswith("ERR")
    ids = shows(lambda d: d.get(R + "percent") == "25", "the new weight")
    assert ids[R + "source"] == "admin" and ids[R + "configured"] == "30"
    assert "default" in ids["event-0"] and "25" in ids["event-0"], ids["event-0"]

    # nothing logged, nothing thrown, nothing fetched but the admin listener
    b.drain()
    assert b.console() == []
    reqs = b.requests()
    assert reqs and all(u.startswith(base + "/") for u, _, _ in reqs), reqs
    assert [x for x in reqs if x[1] is not None or x[2] != 200] == [], reqs
    assert {u.split("?")[0] for u, _, _ in reqs} == {base + "/dashboard", base + "/stats.json"}
    assert any(u == base + "/stats.json?seconds=300" for u, _, _ in reqs)

    # the watch works: an outside request made from the page is blocked and seen
    n = len(b.events)
    b.evaluate("fetch('http://192.0.2.1/x').catch(() => 0); 1")
    harness.wait_until(lambda: (b.drain(), [x for x in b.console() if "192.0.2.1" in x and
                                            "Content Security Policy" in x])[1], 5,
                       "the blocked outside request seen")
    del b.events[n:]

    # turnout goes away: the page says so and keeps polling, without a JS error
    t.stop()
    ids = shows(lambda d: d.get("conn-state") == "disconnected", "the disconnected state")
    assert "Disconnected" in ids["conn-banner"] and ids["render-error"] == ""
    shows(lambda d: re.search(r"\((\d+) failures", d.get("conn-banner", "")) and
          int(re.search(r"\((\d+) failures", d["conn-banner"]).group(1)) >= 2,
          "a second failed poll")
    b.drain()
    # only the browser's own note of each refused connection
    assert [x for x in b.console() if "net::ERR_CONNECTION_REFUSED" not in x] == []


def test_dashboard_follows_an_automatic_rollback(turnout_factory, legacy, short_dir, chromium):
    """The judge's windows and verdicts, and the route rolled back to 0 % by
    it, appear on the page while it is open; still no console message."""
    new = FlakyBackend("new").start()
    try:
        sock = short_dir("admin.sock")
        aport = harness.free_port()
        t = turnout_factory(
            backends={"legacy": [legacy.address], "new": [new.address]},
            routes=[{"name": "default", "shift": {"from": "legacy", "to": "new", "percent": 50}}],
            workers=2, start=False,
            extra={"admin": {"socket": sock, "http": "127.0.0.1:%d" % aport},
                   "rollback": {"budget": dict(NO_BUDGET),
                                "auto": {"error_rate": "5%", "p99": "1s", "margin": "2%",
                                         "window": "1s", "windows": 2, "min_requests": 10}}})
        for be in t.cfg["backends"].values():
            be["passive"] = {"failures": 0}  # the judge, not ejection, acts here
        t.write_config(t.cfg)
        t.start()
        j = stats_json(aport)
        if "rollback" not in j:
            pytest.fail("/stats.json has no rollback member", pytrace=False)

        b = chromium()
        b.navigate("http://127.0.0.1:%d/dashboard" % aport)
        harness.wait_until(lambda: b.testids().get("route-default-percent") == "50", 10,
                           "the page at 50 %")
        assert b.testids()["rollback-default-enabled"] == "on"

        # load from many users while new fails half its requests (503: replayed)
        new.set_faults(fail_ratio=0.5)
        stop = threading.Event()
        errors = []

        def load(seed):
            i = seed
            try:
                with Client(*t.listen) as c:
                    while not stop.is_set():
                        c.request("GET", "/", [("X-User-Id", "user-%d" % (i % 500))])
                        assert c.response().status == 200  # every failure was replayed
                        i += 2
            except BaseException as e:  # reported below
                errors.append(e)
        threads = [threading.Thread(target=load, args=(k,), daemon=True) for k in range(2)]
        for th in threads:
            th.start()
        try:
            def rolled_back():
                r = [x for x in stats_json(aport)["routes"] if x["name"] == "default"][0]
                return r["source"] == "auto-rollback" and r["percent"] == 0
            harness.wait_until(rolled_back, 20, "the automatic rollback")
        finally:
            stop.set()
            for th in threads:
                th.join(10 * harness.SLOW)
        assert not errors, errors[0]

        rb = [x for x in stats_json(aport)["rollback"] if x["route"] == "default"][0]
        assert rb["rollbacks"] >= 1 and rb["windows"][-1]["verdict"] == "bad"
        ids = {}

        def shown():
            ids.clear()
            ids.update(b.testids())
            return (ids.get("route-default-percent") == "0" and
                    ids.get("route-default-source") == "auto-rollback" and
                    ids.get("rollback-default-verdict") == "bad")
        try:
            harness.wait_until(shown, 10, "the rollback on the page", interval=0.2)
        except harness.Timeout as e:
            raise AssertionError("%s: %s" % (e, json.dumps(ids, indent=1))) from None
        events = [v for k, v in ids.items() if k.startswith("event-")]
        assert any("default" in v and "0" in v and "auto" in v for v in events), events
        b.drain()
        assert b.console() == []
        assert ids["render-error"] == ""
    finally:
        new.stop()
