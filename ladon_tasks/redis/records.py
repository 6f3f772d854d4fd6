"""Task records as the Redis store keeps them: one hash per task, each field the JSON
text of a :class:`~ladon_tasks.model.TaskRecord` field. Encoding for the scripts, and
decoding of their answers - strictly: a record that is not valid JSON of a task (written
by something else, or damaged) is :class:`~ladon_tasks.stores.base.CorruptRecord`,
never a ``TypeError`` somewhere later.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from ladon_tasks import codec
from ladon_tasks.model import TaskRecord, TaskState, UnreadableRecord
from ladon_tasks.steps import StepRecord
from ladon_tasks.redis.keys import Keys
from ladon_tasks.redis.replies import as_text
from ladon_tasks.stores.base import CorruptRecord
from ladon_tasks.stores.queues import JobChange

FIELDS = frozenset(TaskRecord.__dataclass_fields__)

#: Fields a new record leaves out of its hash while they hold their default (every
#: reader falls back to the default, and no script reads them before they are set):
#: about a third less memory per task, most of it per finished task kept for result_ttl.
OMITTED_WHEN_DEFAULT = frozenset({
    "message", "error_type", "error_message", "error_traceback", "attempt_errors", "idempotency_key", "tags",
    "owner", "cancel_requested", "result", "progress", "started_at", "finished_at", "step", "steps_done",
    "next_attempt_at", "not_before", "principal", "trace",
})
_DEFAULTS = TaskRecord(task_id="", service="", method="").to_json()

#: One encoder for every field: ``json.dumps`` with options builds a new encoder per call.
dumps = json.JSONEncoder(separators=(",", ":")).encode


def encode_new(record: TaskRecord) -> list[str]:
    """A new record's fields for the create script: name, JSON, name, JSON..."""
    fields: list[str] = []
    for name, value in record.to_json().items():
        if name in OMITTED_WHEN_DEFAULT and value == _DEFAULTS[name]:
            continue  # read back as the default; the scripts never need it
        fields += [name, dumps(value)]
    return fields


def encode_changes(changes: Mapping[str, Any]) -> list[str]:
    """Changed fields for the transition script: name, JSON, name, JSON..."""
    unknown = sorted(set(changes) - FIELDS)
    if unknown:
        raise ValueError(f"not fields of a task record: {', '.join(unknown)}")
    flat: list[str] = []
    for name, value in changes.items():
        flat += [name, dumps(value.value if isinstance(value, TaskState) else value)]
    return flat


#: Values per operation of :func:`job_ops`: kind, key, value, extra.
JOB_OP_WIDTH = 4

#: Values per step of :func:`encode_steps`: name, JSON.
STEP_WIDTH = 2


def job_ops(job: JobChange | None, keys: Keys) -> list[str]:
    """A :class:`JobChange` as the transition script's operations, ``JOB_OP_WIDTH`` values
    each, on the keys of ``keys``."""
    if job is None:
        return []
    ops: list[str] = []
    if job.release is not None:
        ops += ["ack", keys.stream(job.release.queue, job.release.priority), job.release.entry, ""]
    if job.enqueue is not None:
        ops += ["enqueue", keys.stream(job.enqueue.queue, job.enqueue.priority), job.enqueue.payload, ""]
    if job.delay is not None:
        waiting, due = job.delay
        ops += ["delay", keys.delayed(waiting.queue), waiting.payload, repr(float(due))]
    if job.read is not None:
        for priority in job.read.priorities:
            ops += ["read", keys.stream(job.read.queue, priority), job.read.consumer, str(job.read.count)]
    return ops


def _flat_pairs(flat: Any) -> list[tuple[Any, Any]]:
    """(name, value) pairs of HGETALL's answer (a flat list from Lua, or a dict under RESP3)."""
    return list(flat.items()) if isinstance(flat, dict) else [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]


def decode_record(flat: Any, task_id: str = "") -> TaskRecord:
    """A record from HGETALL's answer; :class:`CorruptRecord` (naming ``task_id``, or the
    id the record holds) when it is not UTF-8, not JSON, or not a task record."""
    try:
        pairs = [(as_text(k), as_text(v)) for k, v in _flat_pairs(flat)]
    except UnicodeDecodeError:
        raise CorruptRecord(task_id or _salvaged(flat).task_id, "it holds bytes that are not UTF-8") from None
    # Every value is a JSON text and every name a plain field name: one document, one
    # json.loads, instead of one per field (it sits on every progress call).
    document = "{" + ",".join(f'"{name}":{raw}' for name, raw in pairs if name in FIELDS) + "}"
    try:
        return TaskRecord.from_json(json.loads(document))
    except (ValueError, TypeError) as exc:
        raise CorruptRecord(task_id or _salvaged(flat).task_id, f"not a task record: {exc}") from exc


def _salvaged(flat: Any, problem: str = "") -> UnreadableRecord:
    """What can be read of a damaged record, field by field."""
    fields = {}
    for name, raw in _flat_pairs(flat):
        try:
            fields[as_text(name)] = json.loads(raw)
        except ValueError:  # UnicodeDecodeError and JSONDecodeError alike
            continue
    return UnreadableRecord.salvage(fields, problem)


def decode_listed(flat: Any) -> TaskRecord:
    """A listed record, or a stand-in marked unreadable: one damaged record must not
    hide the rest of a page."""
    try:
        return decode_record(flat)
    except CorruptRecord as exc:
        return _salvaged(flat, exc.problem)


def flat_size(flat: Any) -> int:
    """About how many bytes of JSON a record read as HGETALL's answer holds."""
    values = flat.values() if isinstance(flat, dict) else flat
    return sum(len(value) for value in values)


def encode_steps(steps: Sequence[StepRecord]) -> list[str]:
    """Steps for the create script: name, JSON, name, JSON..."""
    flat: list[str] = []
    for step in steps:
        flat += [step.name, codec.dumps(step.to_json())]
    return flat


def decode_steps(flat: Any) -> dict[str, StepRecord]:
    """A task's steps from HGETALL of its steps hash, by name; a step that cannot be read
    is left out (it runs again rather than hand the body a damaged result)."""
    steps: dict[str, StepRecord] = {}
    for name, raw in _flat_pairs(flat):
        try:
            step = StepRecord.from_json(json.loads(as_text(raw)))
            if step.name == as_text(name):
                steps[step.name] = step
        except ValueError:  # UnicodeDecodeError and JSONDecodeError alike
            continue
    return steps
