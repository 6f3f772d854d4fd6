"""Finished tasks' answers, kept encoded: polling a finished task costs a record read.

A finished task's ``_progress`` answer never changes (a finished record never changes
again, only expires - :mod:`ladon_tasks.redis.notifier` keeps such records on the same
ground), yet every poll of it built the 18-field answer, encoded it for the interface
and wrote its JSON: more than the rest of the call. :class:`KeptAnswers` keeps, per
task id, the answer of its finished record with each interface's encoding made the
first time it is asked for - the values as they are for the JSON interfaces (with their
JSON text, written once), the values as text for SOAP - so a later poll of the same
record reuses them: what a poll pays beyond a plain call is the record read, which
still decides every call (an expired or purged task is unknown, another caller's is
not shown).

The record read decides which answer is kept: one is reused only for a record with
the same state, attempts and start and finish times - the same finish. A record that
finished again (a Redis that lost a finish runs the task again) gets a new answer.
Stores hand out their finished records uncopied (:meth:`~ladon_tasks.stores.base.
TaskStore.get`), so a poll most often reads the very record its answer was made from,
and knows it by identity, without comparing.

For JSON-WSP and JSON-RPC, :func:`framed` writes the kept JSON text into the frame
Ladon writes around a result, so the bytes sent are the bytes Ladon would send.
"""

from __future__ import annotations

import codecs
import functools
import json
import threading
from typing import Any, Callable

from ladon_tasks import defaults, waits, wire
from ladon_tasks.model import TaskRecord


class JsonAnswer(dict[str, Any]):
    """A JSON interface's encoding of an answer (a dict, as Ladon expects), with its JSON
    text in UTF-8 kept beside it (``None``: it cannot be written in UTF-8)."""

    __slots__ = ("json",)

    def __init__(self, values: dict[str, Any]) -> None:
        super().__init__(values)
        try:
            self.json: bytes | None = json.dumps(values, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: Ladon's own path says what happens
            self.json = None


class KeptResponse:
    """The answer of one finished record, shared by every call that reads that record:
    each encoding is made once, the first time an interface asks for it, and never
    changed. Ladon asks an answer for its encoding and nothing else (``__dict__``)."""

    def __init__(self, record: TaskRecord) -> None:
        #: The record answered: a store hands out its finished records uncopied, so a
        #: later read of the same finish is most often this very object.
        self.record = record
        self.response = wire.progress_response(record)
        self.finish = _finish_of(record)
        self._encodings: dict[bool, dict[str, Any]] = {}

    def __dict__(self, tc: Any, response_attachments: Any = None) -> dict[str, Any]:  # type: ignore[override]
        as_is = bool(tc.only_strings_to_unicode)
        encoded = self._encodings.get(as_is)
        if encoded is None:
            encoded = self.response.__dict__(tc, response_attachments)
            if as_is:
                encoded = JsonAnswer(encoded)
            self._encodings[as_is] = encoded  # two threads making it at once make the same
        return encoded


def _finish_of(record: TaskRecord) -> tuple[Any, ...]:
    """What tells one finish of a task from another."""
    return (type(record), record.state, record.attempts, record.started_at, record.finished_at)


class KeptAnswers:
    """Up to ``size`` finished tasks' answers, the oldest kept dropped first."""

    def __init__(self, size: int = defaults.KEPT_ANSWERS) -> None:
        if size < 0:
            raise ValueError(f"the kept answers are a number >= 0, got {size}")
        self.size = size
        self._kept: dict[str, KeptResponse] = {}
        self._lock = threading.Lock()

    def answer(self, record: TaskRecord, poll_after: float = 0.0) -> wire.TaskProgressResponse | KeptResponse:
        """The answer to give for ``record``: the kept one of its finish, if any; else a
        new one, kept when the record has finished."""
        kept = self._kept.get(record.task_id)  # one dict read: atomic, no lock needed
        if kept is not None and kept.record is record and poll_after == 0.0:
            return kept  # the very record answered before: the same finish
        if not (record.finished and record.finished_at and poll_after == 0.0 and self.size):
            return wire.progress_response(record, poll_after=poll_after)
        if kept is not None and kept.finish == _finish_of(record):
            kept.record = record  # the store's own object from now on (Redis keeps a copy of what it read)
            return kept
        kept = KeptResponse(record)
        waits.run_times.note(record)  # an end this process answers for the first time
        with self._lock:
            self._kept.pop(record.task_id, None)
            while len(self._kept) >= self.size:
                del self._kept[next(iter(self._kept))]
            self._kept[record.task_id] = kept
        return kept

    def __len__(self) -> int:
        return len(self._kept)


#: This process's kept answers: the wire methods' (:mod:`ladon_tasks.expand`).
kept_answers = KeptAnswers()

_MARK = b'"result": 0'


def framed(build: Callable[[dict[str, Any], str], bytes], res_dict: dict[str, Any], encoding: str,
           kind: str = "") -> bytes | None:
    """A JSON interface's answer with a kept JSON text, or ``None`` when it has none to
    give (the result is not a kept answer, the charset is not UTF-8). ``build(res_dict,
    encoding)`` is Ladon's writer of the interface's answer: it writes the frame around
    a stand-in result (``0``), and the kept text takes the stand-in's place - the bytes
    Ladon writes for the whole answer, the result's JSON written once per finish. The
    stand-in is the first ``"result": 0`` of the frame: the keys written before it are
    a service's name and number, and no JSON string holds an unescaped quote.

    ``kind`` names the writer (its interface): the frame of the same rest of the answer
    - service, method, a mirror or id of plain values - is then written once, too, and
    kept (``KEPT_FRAMES``)."""
    result = res_dict.get("result")
    if type(result) is not JsonAnswer or result.json is None or not _is_utf8(encoding):
        return None
    rest = dict(res_dict)
    del rest["result"]
    # The values' types too: an id of 1, 1.0 and true are equal keys, and written apart.
    key: tuple[Any, ...] | None = (kind, encoding, *rest.items(), *map(type, rest.values())) if kind else None
    try:
        parts = _frames.get(key) if key is not None else None
    except TypeError:  # a mirror of a list or an object: written each time
        key, parts = None, None
    if parts is None:
        frame = build({**res_dict, "result": 0}, encoding)
        at = frame.find(_MARK)
        if at < 0:
            return None
        parts = (frame[:at] + b'"result": ', frame[at + len(_MARK):])
        if key is not None:
            if len(_frames) >= defaults.KEPT_FRAMES:
                _frames.clear()
            _frames[key] = parts
    return b"".join((parts[0], result.json, parts[1]))


#: Frames written around kept answers, by writer, charset and the rest of the answer.
_frames: dict[tuple[Any, ...], tuple[bytes, bytes]] = {}


@functools.lru_cache(maxsize=64)
def _is_utf8(encoding: str) -> bool:
    try:
        return codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return False
