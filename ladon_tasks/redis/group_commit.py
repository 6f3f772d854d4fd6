"""Group commit: calls that arrive while one is in flight go together as the next one.

Why: every start of a task is one round trip to Redis and one script call, and under
load many request threads of one process start tasks at the same moment. Sending each
on its own costs a round trip, a command parse and a script entry per task, and the
threads queue up for the pool anyway. As databases do with their log, the calls that
arrive while one is in flight wait for it and then go together, as one call that the
first of them makes for all.

* A call that finds none in flight goes at once: a lone caller waits for no one, so
  batching adds no latency when there is no load to amortise.
* A batch holds what queued while the call before it was in flight (at most
  ``max_batch``), so its size follows the load by itself, with no timer.
* Each item gets its own answer: ``run`` answers one result per item, in order. When it
  raises instead (Redis away), every item of that batch gets the exception, each as its
  own copy, and each caller reports it in its own terms (the task it was creating).

One instance serves one destination (one Redis server, or one shard of a cluster): what
goes together must be able to go in one call.
"""

from __future__ import annotations

import copy
import threading
from typing import Callable, Generic, Sequence, TypeVar

Item = TypeVar("Item")
Answer = TypeVar("Answer")


class _Call(Generic[Item, Answer]):
    """One caller's item, and once its batch has run, its answer or error; ``lead``: the
    batch this caller is to run for everyone in it (it came first among them)."""

    __slots__ = ("item", "ready", "answer", "error", "lead")

    def __init__(self, item: Item) -> None:
        self.item = item
        self.ready = threading.Event()
        self.answer: Answer | None = None
        self.error: BaseException | None = None
        self.lead: list[_Call[Item, Answer]] | None = None

    def result(self) -> Answer:
        if self.error is not None:
            try:
                mine = copy.copy(self.error)  # not the object other threads raise too
            except Exception:
                raise self.error from None
            raise mine from self.error
        return self.answer  # type: ignore[return-value]


class GroupCommit(Generic[Item, Answer]):
    """``submit(item)`` answers ``run([item, ...])[i]`` for its item, batching the items
    submitted while a ``run`` is in flight (see the module)."""

    def __init__(self, run: Callable[[list[Item]], Sequence[Answer]], max_batch: int) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self._run = run
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._busy = False  # a batch is in flight
        self._queued: list[_Call[Item, Answer]] = []
        #: batches run, and items they held: what tests and benches read
        self.batches = 0
        self.items = 0

    def submit(self, item: Item) -> Answer:
        call: _Call[Item, Answer] = _Call(item)
        with self._lock:
            if self._busy:
                self._queued.append(call)
                batch = None
            else:
                self._busy = True
                batch = [call]
        if batch is None:
            call.ready.wait()
            if call.lead is None:
                return call.result()
            batch = call.lead  # the batch before was answered: this one is ours to run
        self._run_batch(batch)
        return call.result()

    def _run_batch(self, batch: list[_Call[Item, Answer]]) -> None:
        try:
            answers = self._run([call.item for call in batch])
            if len(answers) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} got {len(answers)} answers")
            for call, answer in zip(batch, answers, strict=True):
                call.answer = answer
        except BaseException as exc:  # every caller hears of it, and the queue moves on
            for call in batch:
                call.error = exc
        finally:
            with self._lock:
                self.batches += 1
                self.items += len(batch)
                following = self._queued[:self.max_batch]
                del self._queued[:self.max_batch]
                if not following:
                    self._busy = False
            for call in batch[1:]:
                call.ready.set()
            if following:
                following[0].lead = following
                following[0].ready.set()
