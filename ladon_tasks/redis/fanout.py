"""Renewals on every shard of a Redis Cluster at once, none waiting for another.

A lease held on a healthy shard must not run out because another shard's primary died:
a call to a dead primary waits (connects, retries) until the cluster promotes its
replica, and renewals made shard after shard would wait behind it. So each shard's call
runs in a thread of its own, and the caller waits for them up to a deadline: a shard that
has not answered by then is reported (``StoreError``), its call left to finish in its
thread, and the next round skips that shard until it has - so no shard has more than one
call hanging, and every other shard is renewed on time.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Mapping

from ladon_tasks.stores.base import StoreError


class ShardLanes:
    """One lane per shard of ``name`` (for messages): at most one call in flight each."""

    def __init__(self, name: str, shards: int) -> None:
        self.name = name
        self._busy = [False] * shards
        self._lock = threading.Lock()

    def run(self, calls: Mapping[int, Callable[[], object]], wait: float) -> None:
        """Make each shard's call (by shard index) at once and wait up to ``wait``
        seconds for all; then raise the first ``StoreError`` of a shard that failed,
        did not answer in time, or still had a call hanging from an earlier round."""
        failed: list[BaseException] = []
        done: dict[int, threading.Event] = {}
        errors: dict[int, BaseException] = {}
        for index, call in calls.items():
            with self._lock:
                if self._busy[index]:
                    failed.append(StoreError(f"{self.name}: shard {index} has not answered an earlier call yet"))
                    continue
                self._busy[index] = True
            done[index] = threading.Event()
            threading.Thread(target=self._call, args=(index, call, done[index], errors),
                             name=f"ladon-tasks-shard-{index}", daemon=True).start()
        deadline = time.monotonic() + wait
        for index, event in done.items():
            if not event.wait(max(0.0, deadline - time.monotonic())):
                failed.append(StoreError(f"{self.name}: shard {index} did not answer within {wait:.2g}s"))
            elif index in errors:
                failed.append(errors[index])
        if failed:
            raise next((exc for exc in failed if not isinstance(exc, StoreError)), failed[0])

    def _call(self, index: int, call: Callable[[], object], done: threading.Event,
              errors: dict[int, BaseException]) -> None:
        try:
            call()
        except BaseException as exc:  # handed to the caller, if it still waits
            errors[index] = exc
        finally:
            with self._lock:
                self._busy[index] = False
            done.set()
