from ocr_engine.results import OcrResult, Usage
from workers.events import JobCancelled, JobCompleted, JobError, JobFailed, JobStarted, PageFinished
from workers.jobs import JobRecord, JobState


def test_events_drive_the_state_machine_and_terminal_states_stick():
    record = JobRecord(pages_total=2)
    assert record.state is JobState.QUEUED
    record.apply(JobStarted(pages_total=2))
    record.apply(PageFinished(page=0, pages_done=1, pages_total=2, finish_reason="stop"))
    assert (record.state, record.pages_done) == (JobState.RUNNING, 1)
    result = OcrResult(text="x", pages=[], usage=Usage(), finish_reason="stop")
    record.apply(JobCompleted(result=result))
    record.apply(JobCancelled())
    assert record.state is JobState.COMPLETED and record.result == result and record.finished_at is not None


def test_failure_keeps_the_error():
    record = JobRecord(pages_total=1)
    record.apply(JobFailed(error=JobError(code="x", message="boom")))
    assert record.state is JobState.FAILED and record.error.message == "boom"
