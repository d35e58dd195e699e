"""Clients of turnout's admin socket: a raw one (HAProxy-style text: one
command a line, every answer ending with an empty line) and the bundled
turnoutctl binary, next to the turnout binary under test."""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

import harness


def ctl_bin():
    return os.path.join(os.path.dirname(harness.turnout_bin()), "turnoutctl")


class Admin:
    """One connection to an admin socket."""

    def __init__(self, path, timeout=10.0):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout * harness.SLOW)
        self.sock.connect(path)
        self.buf = b""

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def read_answer(self):
        """The next answer, without its terminating empty line."""
        while True:
            if self.buf.startswith(b"\n"):
                self.buf = self.buf[1:]
                return ""
            i = self.buf.find(b"\n\n")
            if i >= 0:
                ans, self.buf = self.buf[:i + 1], self.buf[i + 2:]
                return ans.decode()
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("admin socket closed mid-answer; got %r" % self.buf)
            self.buf += data

    def cmd(self, line):
        self.send(line.encode() + b"\n")
        return self.read_answer()

    def json(self, line):
        ans = self.cmd(line + " json")
        assert not ans.startswith("ERR"), ans
        return json.loads(ans)


def cmd(path, line):
    with Admin(path) as a:
        return a.cmd(line)


def jcmd(path, line):
    with Admin(path) as a:
        return a.json(line)


def ctl(path, *args, env=None, timeout=20.0):
    """Runs turnoutctl -s path args...; returns the CompletedProcess."""
    argv = [ctl_bin()] + (["-s", path] if path else []) + list(args)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout * harness.SLOW,
                          env=env, stdin=subprocess.DEVNULL)


def route(path, name):
    for r in jcmd(path, "show routes"):
        if r["name"] == name:
            return r
    raise AssertionError("no route %s in show routes" % name)


def wait_percent(path, name, percent, timeout=10.0, source=None):
    def ok():
        r = route(path, name)
        return r if r["percent"] == percent and (source is None or r["source"] == source) else None
    return harness.wait_until(ok, timeout, "route %s at %s%% (%s)" % (name, percent, source))


class ShortDir:
    """A short temporary directory (unix socket paths are limited to 108
    bytes; pytest's tmp_path can be longer)."""

    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="tn-")

    def __call__(self, name):
        return os.path.join(self.path, name)

    def cleanup(self):
        shutil.rmtree(self.path, ignore_errors=True)
