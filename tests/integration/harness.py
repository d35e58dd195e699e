"""Shared helpers for the turnout integration suite.

- deadlines: every wait in the suite goes through wait_until() with a bounded
  deadline (multiplied by SLOW under AddressSanitizer);
- the sticky bucket formula, so tests predict each key's backend;
- a small YAML emitter and the default test configuration;
- Turnout: one turnout process (config file, start, readiness, signals,
  stop by pid, memory figures from /proc).
"""

import json
import os
import re
import signal
import socket
import subprocess
import time

import xxhash

HERE = os.path.dirname(os.path.abspath(__file__))

SANITIZED = os.environ.get("TURNOUT_SANITIZED") == "1"
# Deadlines stretch under ASan; the amounts of work do not change.
SLOW = 3.0 if SANITIZED else 1.0


class Timeout(AssertionError):
    """A bounded wait ran out."""


def wait_until(cond, timeout, what, interval=0.02):
    """Poll cond() until it returns a truthy value, at most `timeout` seconds
    (times SLOW). Returns that value; raises Timeout naming `what`."""
    deadline = time.monotonic() + timeout * SLOW
    last_exc = None
    while True:
        try:
            v = cond()
            if v:
                return v
        except (OSError, ValueError) as e:  # a probe may fail while polling
            last_exc = e
        if time.monotonic() >= deadline:
            msg = "timed out after %.1fs waiting for %s" % (timeout * SLOW, what)
            if last_exc is not None:
                msg += " (last error: %r)" % (last_exc,)
            raise Timeout(msg)
        time.sleep(interval)


def free_port(host="127.0.0.1"):
    """A port nothing listens on right now (bound to port 0, then released)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def have_ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        return False
    try:
        s.bind(("::1", 0))
        return True
    except OSError:
        return False
    finally:
        s.close()


# ---------------------------------------------------------------- routing ----

def bucket(route, key):
    """The sticky bucket turnout computes: XXH3-64(route NUL key) mod 10^6."""
    if isinstance(key, str):
        key = key.encode()
    return xxhash.xxh3_64_intdigest(route.encode() + b"\0" + key) % 1_000_000


def shifted(route, key, percent):
    """True when `key` goes to the shift's `to` backend at `percent`."""
    return bucket(route, key) < round(percent * 10000)


def predict(route, key, percent, frm="legacy", to="new"):
    return to if shifted(route, key, percent) else frm


# ------------------------------------------------------------------- YAML ----

_PLAIN = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./-]*$")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def _scalar(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return ("%.2f" % v).rstrip("0").rstrip(".")
    s = str(v)
    if _PLAIN.match(s) and s.lower() not in _RESERVED:
        return s
    return json.dumps(s)  # a JSON string is a valid YAML double-quoted scalar


def to_yaml(obj, indent=0):
    """Block-style YAML for dicts, lists and scalars (the shapes of DESIGN.md)."""
    pad = " " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                out.append("%s%s:" % (pad, k))
                out.append(to_yaml(v, indent + 2))
            elif isinstance(v, dict):
                out.append("%s%s: {}" % (pad, k))
            elif isinstance(v, list):
                out.append("%s%s: []" % (pad, k))
            else:
                out.append("%s%s: %s" % (pad, k, _scalar(v)))
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, dict) and v:
                sub = to_yaml(v, indent + 2).split("\n")
                sub[0] = pad + "- " + sub[0][indent + 2:]
                out.append("\n".join(sub))
            elif isinstance(v, list) and v:
                out.append("%s-" % pad)
                out.append(to_yaml(v, indent + 2))
            else:
                out.append("%s- %s" % (pad, _scalar(v)))
    else:
        out.append(pad + _scalar(obj))
    return "\n".join(out)


DEFAULT_TIMEOUTS = {
    "client_header": "2s",
    "client_body": "2s",
    "client_idle": "5s",
    "connect": "1s",
    "response": "2s",
    "upstream_idle": "10s",
    "drain": "10s",
}

DEFAULT_LIMITS = {"header_size": "16k", "headers": 100, "uri": "8k", "connections": 1000}

DEFAULT_STICKY = [
    {"cookie": "uid"},
    {"header": "X-User-Id"},
    {"query": "user"},
    {"client_ip": True},
]


def default_routes(percent=30):
    """The brief's routes: beta users pinned to new, the rest shifted."""
    return [
        {"name": "beta", "match": {"header": {"X-User-Tier": "^beta$"}}, "backend": "new"},
        {"name": "default", "shift": {"from": "legacy", "to": "new", "percent": percent}},
    ]


def make_config(listen, backends, routes, access_log="off", workers=2,
                timeouts=None, limits=None, sticky_key=None, extra=None):
    """A config dict. listen: list of "host:port" strings; backends: name ->
    list of "host:port" server addresses; routes: list of route dicts."""
    t = dict(DEFAULT_TIMEOUTS)
    t.update(timeouts or {})
    lim = dict(DEFAULT_LIMITS)
    lim.update(limits or {})
    cfg = {
        "workers": workers,
        "listen": [{"address": a} for a in listen],
        "access_log": access_log,
        "timeouts": t,
        "limits": lim,
        "backends": {n: {"servers": [{"address": a} for a in addrs]}
                     for n, addrs in backends.items()},
        "sticky_key": sticky_key if sticky_key is not None else DEFAULT_STICKY,
        "routes": routes,
    }
    cfg.update(extra or {})
    return cfg


# ---------------------------------------------------------------- process ----

def turnout_bin():
    """The binary under test: $TURNOUT_BIN, else ../../build/turnout."""
    path = os.environ.get("TURNOUT_BIN") or os.path.join(HERE, "..", "..", "build", "turnout")
    return os.path.abspath(path)


def turnout_env():
    env = dict(os.environ)
    if SANITIZED:
        # a small quarantine keeps ASan's own memory from hiding turnout's;
        # later options win, so these override what the caller set.
        prev = env.get("ASAN_OPTIONS", "")
        env["ASAN_OPTIONS"] = ":".join(
            x for x in (prev, "quarantine_size_mb=8", "detect_leaks=1") if x)
    return env


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "runtime error:", "ERROR: ThreadSanitizer", "WARNING: ThreadSanitizer")


class Turnout:
    """One turnout process. Stopped by pid, never by name."""

    def __init__(self, binary, workdir, config, name="turnout"):
        self.binary = binary
        self.workdir = str(workdir)
        self.name = name
        self.config_path = os.path.join(self.workdir, name + ".yaml")
        self.stderr_path = os.path.join(self.workdir, name + ".stderr")
        self.stdout_path = os.path.join(self.workdir, name + ".stdout")
        self.proc = None
        self.config = None
        self.killed_by_us = False
        self.history = []  # (pid, returncode) of earlier runs
        self.cfg = {"listen": [], "access_log": "off"}
        self.write_config(config)

    # config
    def write_config(self, config):
        """config: a dict (emitted as YAML) or raw YAML text."""
        self.config = config
        if isinstance(config, dict):
            self.cfg = config  # the last dict config: listeners, access log
        text = config if isinstance(config, str) else to_yaml(config) + "\n"
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config_path)

    @property
    def listen(self):
        """(host, port) of the first listener."""
        addr = self.cfg["listen"][0]["address"]
        host, _, port = addr.rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def port(self):
        return self.listen[1]

    @property
    def pid(self):
        return self.proc.pid

    @property
    def access_log(self):
        return self.cfg.get("access_log")

    # lifecycle
    def start(self, wait=True):
        assert self.proc is None or self.proc.poll() is not None
        if self.proc is not None:
            self.history.append((self.proc.pid, self.proc.returncode))
        self.killed_by_us = False
        self._err = open(self.stderr_path, "ab")
        self._out = open(self.stdout_path, "ab")
        self.proc = subprocess.Popen([self.binary, "-c", self.config_path],
                                     stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._err, env=turnout_env(), cwd=self.workdir)
        if wait:
            self.wait_ready()
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def accepts(self, host=None, port=None):
        h, p = self.listen
        host = host or h
        port = port or p
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(1.0)
        try:
            s.connect((host, port))
            return True
        except OSError:
            return False
        finally:
            s.close()

    def wait_ready(self, timeout=10.0, addresses=None):
        """Poll until every listener accepts a connection (bounded)."""
        if addresses is None:
            addresses = [a["address"] for a in self.cfg["listen"]]
        for addr in addresses:
            host, _, port = addr.rpartition(":")
            host = host.strip("[]")

            def ready():
                if self.proc.poll() is not None:
                    raise AssertionError("turnout exited with %s before listening on %s; stderr:\n%s"
                                         % (self.proc.returncode, addr, self.stderr_tail()))
                return self.accepts(host, int(port))

            wait_until(ready, timeout, "turnout to listen on %s" % addr)
        return self

    def signal(self, sig):
        assert self.running(), "turnout (pid %s) is not running" % (self.proc and self.proc.pid)
        os.kill(self.proc.pid, sig)

    def reload(self, config):
        """Write a new config and send SIGHUP."""
        self.write_config(config)
        self.signal(signal.SIGHUP)

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout=timeout * SLOW)
        except subprocess.TimeoutExpired:
            raise Timeout("turnout (pid %d) did not exit within %.1fs" % (self.proc.pid, timeout * SLOW))

    def stop(self, timeout=5.0):
        """SIGTERM, bounded wait, then SIGKILL. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout * SLOW)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_files()
        return self.proc.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.killed_by_us = True
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self._close_files()

    def _close_files(self):
        for f in (getattr(self, "_err", None), getattr(self, "_out", None)):
            if f is not None and not f.closed:
                f.close()

    # diagnostics
    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stderr_tail(self, n=40):
        return "\n".join(self.stderr_text().splitlines()[-n:])

    def crash_report(self):
        """A sanitizer report or a death by an unexpected signal, else None."""
        text = self.stderr_text()
        for m in SANITIZER_MARKERS:
            if m in text:
                i = text.index(m)
                return "sanitizer report in turnout stderr:\n" + text[max(0, i - 200):i + 4000]
        runs = list(self.history)
        if self.proc is not None and self.proc.returncode is not None:
            runs.append((self.proc.pid, self.proc.returncode))
        for pid, rc in runs:
            if rc is not None and rc < 0 and -rc in (signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS,
                                                     signal.SIGFPE, signal.SIGILL):
                return "turnout pid %d died by signal %d; stderr tail:\n%s" % (pid, -rc, self.stderr_tail())
        return None

    def proc_status(self):
        """VmHWM and VmRSS of the running process, in bytes."""
        out = {}
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith(("VmHWM:", "VmRSS:")):
                    k, v = line.split(":", 1)
                    out[k] = int(v.split()[0]) * 1024
        return out

    # access log
    def log_lines(self):
        path = self.access_log
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        out = []
        for line in data.split(b"\n"):
            if line.strip():
                out.append(json.loads(line))
        return out

    def wait_log(self, pred, timeout=5.0, what="an access log line"):
        """Poll the access log until a line satisfies pred; return it."""
        def find():
            for rec in self.log_lines():
                if pred(rec):
                    return rec
            return None
        return wait_until(find, timeout, what)


def run_check(binary, config_path, timeout=10.0):
    """`turnout -t -c FILE`: returns the CompletedProcess."""
    return subprocess.run([binary, "-t", "-c", config_path], stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=timeout * SLOW, env=turnout_env())
