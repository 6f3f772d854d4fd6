"""Where task state lives: one contract (:class:`TaskStore`), several backends."""

from ladon_tasks.stores.base import StoreError, TaskStore
from ladon_tasks.stores.memory import MemoryStore

__all__ = ["MemoryStore", "StoreError", "TaskStore"]
