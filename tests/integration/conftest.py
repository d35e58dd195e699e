"""Fixtures of the turnout integration suite.

turnout_binary   the binary ($TURNOUT_BIN, default ../../build/turnout); a
                 missing binary fails every test that needs it, clearly.
backend_factory  starts PlatformBackend / RawBackend servers, stops them all.
legacy, new      two platform backends named "legacy" and "new".
turnout_factory  writes a config into tmp_path and starts turnout; at the
                 end closes the test's client connections, stops turnout by
                 pid (SIGTERM, then SIGKILL) and fails the test on a
                 sanitizer report or a crash.
proxy            turnout with the brief's default config (beta pin + 30 %
                 shift) in front of legacy and new, logging to tmp_path.
connect          opens client connections to a turnout, closed at the end.
short_dir        a short temporary directory for admin sockets.
redis_factory    real redis-server / redis-sentinel processes.
"""

import os

import pytest

import admin as admin_mod
import harness
import redis_server
from backends import PlatformBackend, RawBackend
from client import Client


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # keep each phase's report on the item, so fixtures know a test failed
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(scope="session")
def turnout_binary():
    path = harness.turnout_bin()
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail("turnout binary not found or not executable at %s: build it (make) or set "
                    "TURNOUT_BIN to its absolute path" % path, pytrace=False)
    return path


@pytest.fixture
def backend_factory():
    started = []

    def make(kind="platform", name=None, **kw):
        if kind == "platform":
            b = PlatformBackend(name or "platform", **kw)
        else:
            b = RawBackend(name or "raw", **kw)
        started.append(b)
        return b.start()

    yield make
    for b in reversed(started):
        b.stop()


@pytest.fixture
def legacy(backend_factory):
    return backend_factory("platform", "legacy")


@pytest.fixture
def new(backend_factory):
    return backend_factory("platform", "new")


@pytest.fixture
def turnout_factory(turnout_binary, tmp_path, request):
    procs = []

    def make(config=None, start=True, name=None, **kw):
        """config: a full config dict, or keyword arguments for
        harness.make_config (listen defaults to a fresh 127.0.0.1 port)."""
        if config is None:
            if "listen" not in kw:
                kw["listen"] = ["127.0.0.1:%d" % harness.free_port()]
            if kw.get("access_log") == "file":
                kw["access_log"] = str(tmp_path / ("access-%d.log" % len(procs)))
            config = harness.make_config(**kw)
        t = harness.Turnout(turnout_binary, tmp_path, config,
                            name=name or "turnout-%d" % len(procs))
        procs.append(t)
        if start:
            t.start()
        return t

    make.procs = procs
    yield make

    failed = any(getattr(request.node, "rep_" + w, None) is not None
                 and getattr(request.node, "rep_" + w).failed for w in ("setup", "call"))
    reports = []
    for t in procs:
        t.stop(timeout=5.0)
        rep = t.crash_report()
        if rep:
            reports.append(rep)
        if failed:
            print("---- %s (pid %s) stderr tail ----\n%s" % (
                t.name, t.proc.pid if t.proc else "-", t.stderr_tail(60)))
    if reports:
        pytest.fail("\n\n".join(reports), pytrace=False)


@pytest.fixture
def connect(turnout_factory):
    """connect(turnout, host=None, port=None, timeout=10) -> Client; every
    client is closed before turnout is stopped."""
    clients = []

    def make(t=None, host=None, port=None, timeout=10.0):
        if t is not None:
            h, p = t.listen
            host = host or h
            port = port or p
        c = Client(host, port, timeout=timeout)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def proxy(turnout_factory, legacy, new):
    """turnout with the brief's default configuration, access log in tmp_path."""
    return turnout_factory(backends={"legacy": [legacy.address], "new": [new.address]},
                           routes=harness.default_routes(30), access_log="file")


@pytest.fixture
def short_dir():
    """A short temporary directory for unix sockets (removed at the end)."""
    d = admin_mod.ShortDir()
    yield d
    d.cleanup()


@pytest.fixture
def redis_factory():
    """redis_factory(**kw) -> a started RedisServer; every one is killed and
    its directory removed at the end. redis_factory.sentinel(master_port)
    starts a redis-sentinel the same way."""
    started = []

    def make(**kw):
        r = redis_server.RedisServer(**kw)
        started.append(r)
        return r.start()

    def sentinel(master_port, **kw):
        s = redis_server.Sentinel(master_port, **kw)
        started.append(s)
        return s.start()

    make.sentinel = sentinel
    yield make
    for r in reversed(started):
        r.cleanup()
