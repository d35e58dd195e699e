"""A platform whose faults the test turns up and down while it serves:
FlakyBackend(name) answers like PlatformBackend, except that

    fail_ratio  -- that exact share of its requests (deterministic: request
                   n fails when floor((n+1) * ratio) > floor(n * ratio)) is
                   answered with `fail_status` (503 by default);
    delay       -- every answer waits that many seconds first (latency).

Both can change at any time (set the attributes); `served` and `failed`
count what it did since start (or reset_counts())."""

import threading

from backends import PlatformBackend


class FlakyBackend(PlatformBackend):
    def __init__(self, name, host="127.0.0.1"):
        super().__init__(name, host)
        self.fail_ratio = 0.0
        self.fail_status = 503
        self.delay = 0.0
        self._lock = threading.Lock()
        self._n = 0
        self.served = 0
        self.failed = 0

    def set_faults(self, fail_ratio=None, delay=None):
        with self._lock:
            if fail_ratio is not None:
                self.fail_ratio = fail_ratio
                self._n = 0  # the exact share counts from now
            if delay is not None:
                self.delay = delay

    def reset_counts(self):
        with self._lock:
            self.served = self.failed = 0

    def respond(self, c, req):
        with self._lock:
            n, self._n = self._n, self._n + 1
            r = self.fail_ratio
            fail = r > 0 and int((n + 1) * r + 1e-9) > int(n * r + 1e-9)
            delay = self.delay
            self.served += 1
            self.failed += fail
        if delay and self.stopping.wait(delay):
            return False
        if fail and req.target.split("?")[0] != "/healthz":
            body = ("%s failing %s\n" % (self.name, req.target)).encode()
            self._send(c, self.fail_status, "Failing",
                       [("Content-Length", str(len(body)))], body,
                       req.method == "HEAD")
            return True
        return super().respond(c, req)
