"""Log lines for operators and for log shippers.

* A line about a task carries the task's id and method, in its text (``task <id>
  Service.method: ...``, whatever formatter prints it - mod_wsgi's error log included)
  and as the record's ``task_id`` and ``method`` attributes: :func:`about` gives the
  logger to write it with.
* ``ladon-tasks --log-format json`` (or ``LADON_TASKS_LOG_FORMAT=json``) writes one JSON
  object per line: ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, then
  ``task_id`` and ``method`` when the line is about a task and ``exception`` when it
  carries a traceback (:class:`JsonFormatter`).
"""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any, MutableMapping

#: The text format of ``--log-format text`` (the default).
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

LOG_FORMATS = ("text", "json")


class TaskLog(logging.LoggerAdapter):  # type: ignore[type-arg,unused-ignore]
    """A logger whose lines are about one task: its id and method lead the text and ride
    as attributes of the record."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        extra = dict(self.extra or {})
        kwargs["extra"] = {**extra, **kwargs.get("extra", {})}
        return f"task {extra['task_id']} {extra['method']}: {msg}", kwargs


def about(logger: logging.Logger, task: Any) -> TaskLog:
    """The logger for lines about ``task``: a :class:`~ladon_tasks.jobs.Job`,
    a :class:`~ladon_tasks.model.TaskRecord`, or a ``(task_id, method)`` pair."""
    if isinstance(task, tuple):
        task_id, method = task
    elif hasattr(task, "ref"):  # a job: the method is known with its service
        task_id, method = task.task_id, f"{task.ref.service}.{task.ref.method}"
    else:
        task_id, method = task.task_id, f"{task.service}.{task.method}" if task.service else task.method
    return TaskLog(logger, {"task_id": task_id, "method": method})


class JsonFormatter(logging.Formatter):
    """One JSON object per line (see the module's docstring for its keys)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in ("task_id", "method"):
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure(level: str = "INFO", log_format: str = "text") -> None:
    """Log to stderr at ``level`` in ``log_format`` (``text`` or ``json``), replacing any
    handler the root logger has."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
