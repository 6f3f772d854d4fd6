"""ladon-tasks: background task-type methods for Ladon that work on current Python,
across threads, processes and (with Redis) hosts.

    from ladon_tasks import ladonize      # drop-in for ladon.ladonizer.ladonize

Importing the package applies :mod:`ladon_tasks.compat` first, so Ladon 1.0.7 imports
and decorates on Python 3.11-3.13, and activates the plugin: services imported after it
that use Ladon's own ``ladonize(..., tasktype=True)`` get ladon-tasks' task methods,
even in an application built with Ladon's ``LadonWSGIApplication``.
"""

from ladon_tasks import compat  # noqa: F401  (must run before anything imports Ladon)
from ladon_tasks.expand import TaskMethod, activate, ladonize
from ladon_tasks.model import TaskRecord, TaskState
from ladon_tasks.policy import Retry, SoftTimeout, TaskTimeout
from ladon_tasks.runtime import TaskRuntime, configure, get_runtime
from ladon_tasks.spec import TaskSpec
from ladon_tasks.wire import TaskInfoResponse, TaskProgressResponse

__version__ = "0.1.0"

activate()

__all__ = [
    "Retry",
    "SoftTimeout",
    "TaskInfoResponse",
    "TaskMethod",
    "TaskProgressResponse",
    "TaskRecord",
    "TaskRuntime",
    "TaskSpec",
    "TaskState",
    "TaskTimeout",
    "activate",
    "configure",
    "get_runtime",
    "ladonize",
]
