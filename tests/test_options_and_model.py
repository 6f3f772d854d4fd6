"""Decoration-time checks and the pure state machine: mistakes fail at import with the
option's name, and the record's rules hold without any I/O."""

from __future__ import annotations

import pytest

from ladon_tasks import codec
from ladon_tasks.model import (
    IllegalTransition, TaskRecord, TaskState, check_transition, clamp_progress, looks_like_task_id, new_task_id,
)
from ladon_tasks.options import TaskOptions


@pytest.mark.parametrize(
    "options, named",
    [
        ({"executor": "fibre"}, "executor"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": "10"}, "timeout"),
        ({"retries": -1}, "retries"),
        ({"retries": 1.5}, "retries"),
        ({"retry_delay": -1}, "retry_delay"),
        ({"result_ttl": 0}, "result_ttl"),
        ({"priority": 256}, "priority"),
        ({"priority": True}, "priority"),
        ({"tags": "one"}, "tags"),
        ({"enable": "yes"}, "enable"),
        ({"retires": 2}, "retires"),
    ],
)
def test_wrong_option_is_refused_with_its_name(options, named):
    with pytest.raises((ValueError, TypeError)) as caught:
        TaskOptions.parse(options)
    assert named in str(caught.value)


def test_options_parse_defaults_and_values():
    assert TaskOptions.parse(True) == TaskOptions()
    options = TaskOptions.parse({"executor": "process", "timeout": 600, "retries": 2, "tags": ["a", "b"]})
    assert options.max_attempts == 3 and options.tags == ("a", "b") and options.timeout == 600


def test_decorating_with_a_bad_option_fails_at_import():
    from ladon_tasks import ladonize

    with pytest.raises(ValueError, match="retries"):
        ladonize(int, rtype=int, tasktype={"retries": -2})


def test_state_machine_allows_retry_and_forbids_leaving_a_finished_state():
    check_transition(TaskState.QUEUED, TaskState.RUNNING)
    check_transition(TaskState.RUNNING, TaskState.QUEUED)  # retry / reissue
    for finished in (TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED):
        for target in TaskState:
            with pytest.raises(IllegalTransition):
                check_transition(finished, target)


def test_record_round_trips_through_json():
    record = TaskRecord(task_id=new_task_id(), service="S", method="m", args=["0"], result=[], tags=["x"])
    assert TaskRecord.from_json(record.to_json()) == record


@pytest.mark.parametrize("value, expected", [(-1, 0.0), (2, 1.0), (0.5, 0.5), (1, 1.0), (float("nan"), 0.0)])
def test_progress_is_clamped(value, expected):
    assert clamp_progress(value) == expected


def test_task_id_shape():
    assert looks_like_task_id(new_task_id())
    assert not looks_like_task_id("A" * 32) and not looks_like_task_id(12) and not looks_like_task_id("g" * 32)


@pytest.mark.parametrize("ladon_type, value", [(int, 0), (str, ""), (bool, False), (float, 0.0), ([int], []),
                                                ([str], ["", "x"]), (bytes, b"raw")])
def test_codec_round_trips_falsy_and_list_values(ladon_type, value):
    assert codec.decode(ladon_type, codec.loads(codec.dumps(codec.encode(ladon_type, value)))) == value


def test_codec_refuses_the_wrong_type():
    with pytest.raises(codec.CodecError, match=r"expected \[int\], got \[str, ...\]"):
        codec.encode([int], ["1"])


def test_ladon_redis_option_names_a_redis_store_and_memcache_is_refused():
    assert TaskOptions.parse({"redis_server": "cache.local"}).redis == "redis://cache.local:6379/0"
    with pytest.raises(ValueError, match="memcache_server"):
        TaskOptions.parse({"memcache_server": "cache.local"})
    with pytest.raises(ValueError, match="redis"):
        TaskOptions.parse({"redis": "http://nope"})
    sentinel = "redis+sentinel://s1:26379,s2:26379/tasks/0"
    assert TaskOptions.parse({"redis": sentinel}).redis == sentinel
