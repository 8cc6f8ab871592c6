import threading

from workers.watchdog import Watchdog


def test_fires_when_the_block_outlives_its_budget_and_not_otherwise():
    fired = threading.Event()
    with Watchdog(0.05, fired.set):
        assert fired.wait(5)
    quiet = threading.Event()
    with Watchdog(0.2, quiet.set):
        pass
    assert not quiet.wait(0.6), "a watchdog whose block ended in time must not fire"
