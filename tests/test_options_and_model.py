"""Decoration-time checks and the pure state machine: mistakes fail at import with the
option's name, and the record's rules hold without any I/O."""

from __future__ import annotations

import pytest

from ladon_tasks import codec
from ladon_tasks.model import (
    IllegalTransition, TaskRecord, TaskState, check_transition, clamp_progress, looks_like_task_id, new_task_id,
)
from ladon_tasks.options import TaskOptions
from ladon_tasks.policy import retry_delay, should_retry


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
        ({"retry_on": [BaseException]}, "retry_on"),
        ({"retry_on": ["not a name"]}, "retry_on"),
        ({"no_retry_on": 3}, "no_retry_on"),
        ({"retry_on": [KeyError], "no_retry_on": ["builtins.KeyError"]}, "no_retry_on"),
        ({"retry_jitter": 1.5}, "retry_jitter"),
        ({"retry_jitter": -0.1}, "retry_jitter"),
        ({"retry_max_delay": 0}, "retry_max_delay"),
        ({"soft_timeout": 0}, "soft_timeout"),
        ({"on_success": "notify"}, "on_success"),
        ({"on_cancel": 3}, "on_cancel"),
        ({"soft_timeout": 10, "timeout": 10}, "soft_timeout"),
        ({"executor": "process", "max_tasks_per_child": 0}, "max_tasks_per_child"),
        ({"executor": "process", "max_tasks_per_child": 2.5}, "max_tasks_per_child"),
        ({"executor": "queue", "max_memory_per_child": -1}, "max_memory_per_child"),
        ({"max_tasks_per_child": 10}, "max_tasks_per_child"),  # a thread has no child to replace
        ({"executor": "thread", "max_memory_per_child": 200}, "max_memory_per_child"),
        ({"rate": "10"}, "rate"),
        ({"rate": "10/d"}, "rate"),
        ({"rate": "0/s"}, "rate"),
        ({"rate": "-1/m"}, "rate"),
        ({"rate": "ten/s"}, "rate"),
        ({"rate": " 10/s"}, "rate"),
        ({"rate": "inf/h"}, "rate"),
        ({"rate": 10}, "rate"),
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


def test_retry_policy_names_exceptions_by_qualified_name():
    class Outage(ConnectionError):
        pass

    options = TaskOptions.parse({"retry_on": [Outage, "KeyError"], "no_retry_on": "myapp.errors.Fatal"})
    assert options.retry_on == (f"{__name__}.test_retry_policy_names_exceptions_by_qualified_name.<locals>.Outage",
                                "KeyError")
    assert options.no_retry_on == ("myapp.errors.Fatal",)
    assert should_retry(Outage(), options.retry_on, options.no_retry_on)
    assert should_retry(KeyError(), options.retry_on, options.no_retry_on)
    assert not should_retry(ValueError(), options.retry_on, options.no_retry_on)
    assert should_retry(ConnectionResetError(), ["ConnectionError"], []), "a base's name matches"
    assert should_retry(ValueError(), [], []), "no retry_on: every failure is retried"
    assert not should_retry(ConnectionResetError(), [], ["builtins.OSError"])


def test_retry_delay_doubles_up_to_its_maximum_less_its_jitter():
    assert [retry_delay(n, 1.0, 5.0) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]
    delays = {retry_delay(10, 1.0, 8.0, jitter=0.5) for _ in range(200)}
    assert all(4.0 <= delay <= 8.0 for delay in delays) and len(delays) > 100
    assert retry_delay(1, 1.0, 5.0, jitter=0.5, asked=600) == 5.0
    assert retry_delay(3, 1.0, 5.0, jitter=0.5, asked=2.5) == 2.5, "an asked delay is kept as is"


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


def test_the_limits_in_force_name_a_delay_and_a_schedule():
    shown = TaskOptions.parse(dict(delay=5, every="15m", missed="skip")).in_force()
    assert shown["delay"] == 5
    assert shown["schedule"] == {"every": 900.0, "cron": None, "tz": None, "missed": "skip", "overlap": "skip"}
    by_cron = TaskOptions.parse(dict(cron="*/5 * * * *", tz="Europe/Brussels")).in_force()["schedule"]
    assert (by_cron["cron"], by_cron["tz"], by_cron["every"]) == ("*/5 * * * *", "Europe/Brussels", None)
    assert TaskOptions.parse(True).in_force()["schedule"] is None


def test_a_rate_is_its_interval_and_shown_in_force():
    assert TaskOptions.parse(dict(rate="10/s")).rate_interval == pytest.approx(0.1)
    assert TaskOptions.parse(dict(rate="30/m")).rate_interval == pytest.approx(2.0)
    assert TaskOptions.parse(dict(rate="2.5/h")).rate_interval == pytest.approx(1440.0)
    assert TaskOptions.parse(dict(rate="30/m")).in_force()["rate"] == "30/m"
    assert TaskOptions.parse(True).rate_interval == 0.0 and TaskOptions.parse(True).in_force()["rate"] is None
