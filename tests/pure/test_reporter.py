"""What a worker tells the registry about its jobs: one job never runs twice side by side on one worker."""

from __future__ import annotations

import threading

from workers.reporter import WorkerReporter


def test_a_second_run_of_a_job_on_one_worker_waits_for_the_first() -> None:
    reporter = WorkerReporter("celery", "tiny")
    order: list[str] = []
    first_in = threading.Event()

    def second() -> None:
        first_in.wait()
        with reporter.running("job-1"):
            order.append("second starts")

    thread = threading.Thread(target=second)
    thread.start()
    with reporter.running("job-1"):
        first_in.set()
        thread.join(0.3)  # the second run must still be waiting
        order.append("first ends")
        assert list(reporter.jobs) == ["job-1"]
    thread.join(10)
    assert order == ["first ends", "second starts"] and reporter.jobs == {}
