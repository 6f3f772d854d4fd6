"""The faults the runtime answers when it cannot do what a call asks: an id of the
wrong shape or one no store knows, arguments holding text no UTF-8 can carry, a store
that refused or failed. Each names what the client can act on, and none reaches an
executor: these are decided before anything starts.
"""

from __future__ import annotations

from typing import Any

from ladon_tasks import codec, faults
from ladon_tasks.model import looks_like_task_id
from ladon_tasks.spec import TaskSpec
from ladon_tasks.stores.base import CorruptRecord, StoreError, StoreFull


def check_task_id(task_id: Any) -> None:
    """Malformed ids are told apart from unknown ones without asking the store."""
    if not looks_like_task_id(task_id):
        shown = repr(task_id) if len(repr(task_id)) <= 80 else repr(task_id)[:77] + "..."
        raise faults.MalformedTaskId(f"{shown} is not a task id (32 lowercase hex digits)")


def unknown_task(task_id: str) -> faults.UnknownTask:
    return faults.UnknownTask(f"no task {task_id}: unknown, or expired after its result_ttl")


def not_unicode(spec: TaskSpec, encoded_args: list[Any]) -> faults.InvalidArgument:
    """The fault for arguments that hold text no UTF-8 can carry (lone surrogates, which
    JSON's ``\\ud800`` escapes let through), naming the first such argument."""
    names = spec.arg_names
    for position, value in enumerate(encoded_args):
        try:
            codec.dumps(value).encode()
        except UnicodeEncodeError:
            name = names[position] if position < len(names) else f"#{position + 1}"
            return faults.InvalidArgument(
                f"{spec.name}: argument {name} holds text that is not valid Unicode (a lone surrogate)"
            )
    return faults.InvalidArgument(f"{spec.name}: the arguments hold text that is not valid Unicode")


#: The faults :func:`as_faults` raises: the store refused or failed, nothing was
#: handed to an executor.
STORE_FAULTS = (faults.StoreUnavailable, faults.ServerBusy, faults.CorruptTask)


class _AsFaults:
    """The context manager :func:`as_faults` hands out: a class rather than a
    generator, since it wraps every read a ``_progress`` call makes and a generator-based
    one costs several times as much to enter and leave."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, traceback: Any) -> None:
        if isinstance(exc, StoreFull):
            raise faults.ServerBusy(f"task not started: {exc}") from None
        if isinstance(exc, CorruptRecord):
            raise faults.CorruptTask(str(exc)) from None
        if isinstance(exc, StoreError):
            raise faults.StoreUnavailable(f"task state is not reachable: {exc}") from None


_AS_FAULTS = _AsFaults()


def as_faults() -> _AsFaults:
    """Store exceptions as the faults a client sees (the way up: store to wire; the Redis
    backend's :func:`~ladon_tasks.redis.connection.as_store_errors` goes the way before
    it, Redis to store): a full store is ``ServerBusy`` (back off), one damaged record
    ``CorruptTask``, anything else ``StoreUnavailable``."""
    return _AS_FAULTS
