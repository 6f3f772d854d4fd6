"""ladon-tasks: background task-type methods for Ladon that work on current Python,
across threads, processes and (with Redis) hosts.

    from ladon_tasks import ladonize      # drop-in for ladon.ladonizer.ladonize

Importing the package applies :mod:`ladon_tasks.compat` first, so Ladon 1.0.7 imports
and decorates on Python 3.11-3.13.
"""

from ladon_tasks import compat  # noqa: F401  (must run before anything imports Ladon)
from ladon_tasks.expand import TaskMethod, activate, ladonize
from ladon_tasks.model import TaskRecord, TaskState
from ladon_tasks.runtime import TaskRuntime, configure, get_runtime
from ladon_tasks.types import TaskInfoResponse, TaskProgressResponse

__version__ = "0.1.0"

__all__ = [
    "TaskInfoResponse",
    "TaskMethod",
    "TaskProgressResponse",
    "TaskRecord",
    "TaskRuntime",
    "TaskState",
    "activate",
    "configure",
    "get_runtime",
    "ladonize",
]
