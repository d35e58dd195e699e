"""Real redis-server and redis-sentinel processes for the fleet tests, on
free 127.0.0.1 ports, each in its own directory, stopped by pid."""

import os
import shutil
import signal
import subprocess
import tempfile

import redis

import harness


class RedisServer:
    def __init__(self, port=None, password=None, replica_of=None):
        self.port = port or harness.free_port()
        self.password = password
        self.replica_of = replica_of
        self.dir = tempfile.mkdtemp(prefix="tn-redis-")
        self.proc = None

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def start(self):
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", self.dir,
                "--protected-mode", "no"]
        if self.password:
            argv += ["--requirepass", self.password, "--masterauth", self.password]
        if self.replica_of:
            argv += ["--replicaof", "127.0.0.1", str(self.replica_of)]
        self.log = open(os.path.join(self.dir, "redis.log"), "ab")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        harness.wait_until(self._ping, 10, "redis-server on port %d" % self.port)
        return self

    def client(self):
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password,
                           decode_responses=True, socket_timeout=5)

    def _ping(self):
        if self.proc.poll() is not None:
            raise AssertionError("redis-server exited: %s" % self.proc.returncode)
        try:
            return self.client().ping()
        except redis.RedisError:
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        if getattr(self, "log", None):
            self.log.close()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Sentinel:
    """One redis-sentinel watching master `name` at master_port."""

    def __init__(self, master_port, name="tnmaster", password=None):
        self.port = harness.free_port()
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="tn-sentinel-")
        conf = os.path.join(self.dir, "sentinel.conf")
        lines = ["port %d" % self.port, "bind 127.0.0.1", "dir %s" % self.dir,
                 "sentinel monitor %s 127.0.0.1 %d 1" % (name, master_port),
                 "sentinel down-after-milliseconds %s 1000" % name,
                 "sentinel failover-timeout %s 5000" % name,
                 "sentinel parallel-syncs %s 1" % name]
        if password:
            lines.append("sentinel auth-pass %s %s" % (name, password))
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.conf = conf
        self.proc = None

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def start(self):
        self.log = open(os.path.join(self.dir, "sentinel.log"), "ab")
        self.proc = subprocess.Popen(["redis-sentinel", self.conf], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        harness.wait_until(self._ready, 10, "redis-sentinel on port %d" % self.port)
        return self

    def client(self):
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True,
                           socket_timeout=5)

    def _ready(self):
        try:
            return self.client().execute_command("SENTINEL", "get-master-addr-by-name",
                                                 self.name)
        except redis.RedisError:
            return False

    def master_port(self):
        addr = self.client().execute_command("SENTINEL", "get-master-addr-by-name", self.name)
        return int(addr[1])

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
