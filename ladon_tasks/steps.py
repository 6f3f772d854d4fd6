"""Steps with recovery inside a task body: a rerun skips the work that already succeeded.

A body names the parts of its work and runs each through ``kw['step']``::

    disks = step('list disks', list_disks, instance_id)
    for disk in disks:
        step(f'copy {disk}', copy_disk, disk)
    return step('register', register_clone, instance_id, rtype=InstanceInformation)

The first successful run of a step is recorded with the task, its result included
(JSON, through Ladon's converters when ``rtype`` names a Ladon type). Any later attempt
of the same task - a reissue after a dead worker or web process, a retry after an
exception, an operator's *recover* (a new task that starts with the steps of the old
one) - gets the recorded result back without calling the step again. A step that failed
or never finished runs again.

Rules, checked here:

* a step's name is unique within an attempt (a loop names its iterations); a repeated
  name is a :class:`StepError`, not a silent reuse of another iteration's result.
  Names are text of at most ``defaults.MAX_STEP_NAME`` characters, and an attempt runs
  at most ``defaults.MAX_STEPS`` steps;
* a step's result must be JSON (or of its ``rtype``), at most ``max_bytes`` of it and
  nested at most ``defaults.MAX_STEP_DEPTH`` levels deep (so that every reader can
  read it back); else it is a :class:`StepError` naming the step, and the step is
  recorded as failed with that error, its result not kept;
* a record is written for the attempt that runs, fenced like every write of it: a
  dead or cancelled attempt's late step result is never recorded (the body is stopped
  with :class:`~ladon_tasks.executors.base.TaskInterrupted` instead). A record the
  store could not take (Redis away) does not stop the body: the step runs again only
  if a later attempt is needed.

How a step's records reach the store is its executor's business (the
:class:`StepLedger`): straight to the store in a thread, through the supervising slot
for a child process; each store keeps them beside the task's record
(:mod:`ladon_tasks.stores.base`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Protocol, TypeVar

from ladon_tasks import codec, defaults

T = TypeVar("T")


class StepError(Exception):
    """A step cannot be run or recorded as asked: a repeated name, a result that is not
    JSON or too large. The message names the step."""


#: What a recorded step's ``state`` may say.
STEP_STATES = ("running", "succeeded", "failed")


@dataclass(frozen=True)
class StepRecord:
    """One step of a task as recorded: ``state`` is ``running``, ``succeeded`` or
    ``failed``; ``result`` is the JSON form of a succeeded step's result. ``attempt`` is
    the attempt that ran it; ``origin`` the task it was run for when that is another one
    (a step carried over by an operator's *recover*), else ``""``."""

    name: str
    state: str
    attempt: int
    started_at: float = 0.0
    finished_at: float = 0.0
    result: Any = None
    error: str = ""
    origin: str = ""

    def to_json(self) -> dict[str, Any]:
        """The stored form; ``error`` and ``origin`` only when they say something (a
        step's record is written twice per run, and kept as long as its task)."""
        data = dict(self.__dict__)
        for name in ("error", "origin"):
            if not data[name]:
                del data[name]
        return data

    @classmethod
    def from_json(cls, data: Any) -> "StepRecord":
        """The step a stored JSON object describes; ``ValueError`` when it is not one
        (stores read what anyone with access to the backend may have written)."""
        if not isinstance(data, dict) or not isinstance(data.get("name"), str) \
                or data.get("state") not in STEP_STATES:
            raise ValueError(f"not a recorded step: {str(data)[:80]}")
        try:
            return cls(
                name=data["name"], state=data["state"], attempt=int(data.get("attempt") or 0),
                started_at=float(data.get("started_at") or 0.0), finished_at=float(data.get("finished_at") or 0.0),
                result=data.get("result"), error=str(data.get("error") or ""), origin=str(data.get("origin") or ""),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not a recorded step: {exc}") from None


class StepLedger(Protocol):
    """Where an attempt's steps are read from and written to (its executor's channel to
    the task's record)."""

    def load_steps(self) -> dict[str, StepRecord]:
        """The steps recorded for the task so far, by name."""

    def record_step(self, step: StepRecord) -> bool:
        """Record ``step`` for the running attempt; ``False`` when the attempt may no
        longer write (superseded, cancelled, finished)."""


class Steps:
    """``kw['step']`` of one attempt. Recorded steps are read once, at the first step, so
    a body without steps costs nothing. Call it from the body's own thread (steps run
    one after the other; a body that runs work in parallel names its parts inside one
    step)."""

    def __init__(self, ledger: StepLedger, attempt: int, interrupted: Callable[[], BaseException],
                 max_bytes: int = defaults.MAX_STEP_BYTES) -> None:
        self._ledger = ledger
        self._attempt = attempt
        self._interrupted = interrupted
        self._max_bytes = max_bytes
        self._recorded: dict[str, StepRecord] | None = None
        self._seen: set[str] = set()

    def __call__(self, name: str, function: Callable[..., T], *args: Any, rtype: Any = None, **kwargs: Any) -> T:
        """Run ``function(*args, **kwargs)`` as the step ``name``, or return its recorded
        result when an earlier attempt ran it to success. The result comes back in the
        same form either way: as JSON reads it back (lists for tuples), or as ``rtype``
        when one is given - so a body never sees a difference between a first run and a
        rerun."""
        if not _fit_name(name):
            shown = repr(name) if len(repr(name)) <= 60 else repr(name)[:57] + "..."
            raise StepError(f"a step needs a name of 1 to {defaults.MAX_STEP_NAME} characters, got {shown}")
        if len(self._seen) >= defaults.MAX_STEPS:
            raise StepError(f"step {name!r}: an attempt runs at most {defaults.MAX_STEPS} steps")
        if name in self._seen:
            raise StepError(f"step {name!r} is named twice in this attempt: a step's name must be unique "
                            "(name loop iterations apart, e.g. f'copy {disk}')")
        self._seen.add(name)
        if rtype is not None:
            codec.declare(rtype)
        if self._recorded is None:
            self._recorded = self._ledger.load_steps()
        done = self._recorded.get(name)
        if done is not None and done.state == "succeeded":
            return self._decode(name, rtype, done.result)
        started = time.time()
        self._write(StepRecord(name, "running", self._attempt, started_at=started))
        try:
            encoded = self._encode(name, rtype, function(*args, **kwargs))
        except Exception as exc:
            self._write(StepRecord(name, "failed", self._attempt, started_at=started, finished_at=time.time(),
                                   error=f"{type(exc).__name__}: {exc}"[:defaults.STEP_ERROR_CHARS]))
            raise
        self._write(StepRecord(name, "succeeded", self._attempt, started_at=started, finished_at=time.time(),
                               result=encoded))
        return self._decode(name, rtype, encoded)

    def _write(self, step: StepRecord) -> None:
        if not self._ledger.record_step(step):
            raise self._interrupted()

    def _encode(self, name: str, rtype: Any, value: Any) -> Any:
        too_deep = StepError(f"step {name!r}: its result nests deeper than {defaults.MAX_STEP_DEPTH} levels of "
                             "lists and objects; record a flatter form")
        if deeper_than(value, defaults.MAX_STEP_DEPTH):  # before any recursive encoder sees it
            raise too_deep
        try:
            if rtype is not None:
                encoded = codec.encode(rtype, value)
            else:
                encoded = json.loads(json.dumps(value, allow_nan=False))
            size = len(codec.dumps(encoded).encode())
        except RecursionError:  # an object a Ladon type encodes into deeper nesting
            raise too_deep from None
        except (TypeError, ValueError) as exc:  # CodecError and UnicodeEncodeError are ValueErrors
            raise StepError(f"step {name!r}: its result cannot be recorded as JSON"
                            f"{' of ' + codec.type_name(rtype) if rtype is not None else ''}: {exc}") from None
        if deeper_than(encoded, defaults.MAX_STEP_DEPTH):
            raise too_deep
        if size > self._max_bytes:
            raise StepError(f"step {name!r}: its result takes {size} bytes of JSON, more than the limit of "
                            f"{self._max_bytes}; keep big data outside the task and record a reference")
        return encoded

    @staticmethod
    def _decode(name: str, rtype: Any, recorded: Any) -> Any:
        if rtype is None:
            return copy.deepcopy(recorded)  # the body may change it; the record must not
        try:
            return codec.decode(rtype, recorded)
        except Exception as exc:
            raise StepError(
                f"step {name!r}: its recorded result does not fit {codec.type_name(rtype)}: {exc}"
            ) from None


def deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests lists, tuples or dicts more than ``limit`` levels deep
    (``[[1]]`` is 2), found without recursion: the value may be 20,000 levels deep."""
    level: list[tuple[Any, int]] = [(value, 0)]
    while level:
        item, depth = level.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth + 1 > limit:
            return True
        level.extend((child, depth + 1) for child in children)
    return False


def _fit_name(name: Any) -> bool:
    """Text of 1 to ``MAX_STEP_NAME`` characters, not all blank, that UTF-8 can carry."""
    if not isinstance(name, str) or not name.strip() or len(name) > defaults.MAX_STEP_NAME:
        return False
    try:
        name.encode()
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def carried_over(steps: Iterable[StepRecord], from_task: str) -> list[StepRecord]:
    """The steps an operator's *recover* of task ``from_task`` starts with: its succeeded
    ones, in order, each saying the task it was run for (the first, along a chain of
    recovers)."""
    return [dataclasses.replace(step, origin=step.origin or from_task)
            for step in ordered(steps) if step.state == "succeeded"]


def ordered(steps: Iterable[StepRecord]) -> list[StepRecord]:
    """Steps in the order they started (a store keeps them by name)."""
    return sorted(steps, key=lambda step: (step.started_at, step.name))


def summary(steps: Iterable[StepRecord]) -> tuple[str, int]:
    """What a record says of these steps: the last one's name, and how many succeeded."""
    last, done = "", 0
    for step in ordered(steps):
        last = step.name
        done += step.state == "succeeded"
    return last, done
