"""The scheduler (inference/engine/scheduler.py) on its own: arrival order, the waiting bound
with its Retry-After guess, jobs whose client left while they waited, which job may join a
running batch, and how a job reports an error."""
from __future__ import annotations

import pytest

from inference.engine import EngineError, Failed, Job, QueueFull, UnsupportedContent
from inference.engine.scheduler import Scheduler
from tests.scripted import ask, spec


def job(model="a", request=..., **params) -> Job:
    return Job(spec(model), ask(**params) if request is ... else request, emit=lambda e: None)


def test_jobs_are_taken_in_arrival_order():
    scheduler = Scheduler()
    jobs = [job(m) for m in "abab"]
    for j in jobs:
        scheduler.submit(j)
    assert [scheduler.take(timeout=0) for _ in jobs] == jobs
    assert scheduler.take(timeout=0) is None  # empty: the time ran out


def test_the_bound_refuses_with_retry_after_and_never_refuses_a_preload():
    scheduler = Scheduler(max_queue=2)
    scheduler.submit(job())
    scheduler.submit(job())
    with pytest.raises(QueueFull) as caught:
        scheduler.submit(job())
    assert caught.value.code == "queue_full" and caught.value.details == {"retry_after": 1}
    assert "2 requests are already waiting" in str(caught.value) and "MLX_SERVER_MAX_QUEUE" in str(caught.value)
    scheduler.submit(job(request=None))  # a preload
    assert scheduler.waiting() == 3


def test_retry_after_follows_the_moving_average_of_a_job():
    scheduler = Scheduler(max_queue=1)
    scheduler.submit(job())
    scheduler.job_done(6.0)  # 0.8 * 1 + 0.2 * 6 = 2.0
    scheduler.job_done(6.0)  # 0.8 * 2 + 0.2 * 6 = 2.8
    with pytest.raises(QueueFull) as caught:
        scheduler.submit(job())
    assert caught.value.details["retry_after"] == 3  # whole seconds, rounded up


def test_no_bound_takes_everything():
    scheduler = Scheduler()
    for _ in range(50):
        scheduler.submit(job())
    assert scheduler.waiting() == 50


def test_a_cancelled_waiter_frees_its_place_and_is_never_taken():
    scheduler = Scheduler(max_queue=1)
    left = job()
    scheduler.submit(left)
    left.cancelled.set()  # the client left while it waited
    assert scheduler.waiting() == 0
    stays = job()
    scheduler.submit(stays)
    assert scheduler.take(timeout=0) is stays


def test_joiners_are_same_model_batchable_jobs_or_its_preloads():
    scheduler = Scheduler()
    same, preload = job("a"), job("a", request=None)
    scheduler.submit(same)
    scheduler.submit(preload)
    assert scheduler.take_joiner("a") is same
    assert scheduler.take_joiner("a") is preload
    assert scheduler.take_joiner("a") is None  # empty


@pytest.mark.parametrize("head", [job("b"), job("a", seed=1)], ids=["another model", "seeded"])
def test_a_head_that_cannot_join_stays_and_nobody_passes_it(head):
    scheduler = Scheduler()
    later = job("a")
    scheduler.submit(head)
    scheduler.submit(later)
    assert scheduler.take_joiner("a") is None
    assert scheduler.take(timeout=0) is head and scheduler.take(timeout=0) is later


def test_cancelled_heads_are_dropped_on_the_way_to_a_joiner():
    scheduler = Scheduler()
    gone_other, gone_same, joiner = job("b"), job("a"), job("a")
    for j in (gone_other, gone_same, joiner):
        scheduler.submit(j)
    gone_other.cancelled.set()
    gone_same.cancelled.set()
    assert scheduler.take_joiner("a") is joiner
    assert scheduler.waiting() == 0 and scheduler.take(timeout=0) is None


def test_a_job_reports_engine_errors_as_they_are_and_others_as_internal():
    events = []
    j = Job(spec("a"), ask(), emit=events.append)
    refused = UnsupportedContent("no images here", param="messages[0].content[1]")
    j.fail(refused)
    j.fail(ZeroDivisionError("division by zero"))
    assert events[0] == Failed(refused)
    assert isinstance(events[1], Failed) and type(events[1].error) is EngineError
    assert str(events[1].error) == "internal error: division by zero"
