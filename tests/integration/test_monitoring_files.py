import test_metrics
from client import map_keys
def test_dump(turnout_factory, legacy, new):
    t = test_metrics.start(turnout_factory, legacy, new)
    map_keys(*t.listen, test_metrics.KEYS[:40])
    import time; time.sleep(0.3)
    print(test_metrics.fetch(t.http, "/metrics")[2].decode())
