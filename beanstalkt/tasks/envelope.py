"""The task envelope: the JSON body of a task job, version 1 (pure: no I/O).

A task job's body is one UTF-8 JSON object::

    {"v": 1,
     "id": "4f1c0e5e9b6d4c3fa1d2e3f405a6b7c8",
     "name": "myapp.tasks.send_welcome",
     "args": ["ada@example.com"],
     "kwargs": {"name": "Ada"},
     "enqueued_at": "2026-12-04T18:00:00.123456Z",
     "attempts": 0,
     "headers": {"traceparent": "00-..."},
     "reply_to": null}

* ``v``: the envelope version, ``1``. A reader refuses any other.
* ``id``: the task's id, chosen by the producer (32 hex digits by default;
  any non-empty string up to 200 characters). Results carry it back.
* ``name``: the registered task name the worker dispatches on.
* ``args`` / ``kwargs``: the call's arguments, plain JSON (a list and an
  object with string keys).
* ``enqueued_at``: when the producer deferred it, ISO 8601 in UTC.
* ``attempts``: attempts made before this job was put (0 from ``defer``). A
  beanstalkd job's body cannot change on release, so attempts of *this* job
  are counted by the server (its ``stats-job`` ``buries``, see the worker's
  documentation); the task's attempt number is ``attempts + job attempt``.
* ``headers``: string keys to string values, for middleware (trace context,
  correlation ids). Unknown headers are kept and ignored.
* ``reply_to``: the tube where the worker puts the result, or ``null``.

Unknown top-level keys are ignored (a producer may add its own), so that
version 1 can grow compatibly. A result is a JSON object too, see
:func:`encode_result`.
"""

from __future__ import annotations

import datetime
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from ..protocol import check_tube_name

#: The envelope version this module writes and reads.
VERSION = 1

_MAX_ID_LENGTH = 200


class EnvelopeError(ValueError):
    """A body that is not a valid version-1 task envelope (or a value JSON cannot carry)."""


@dataclass
class Envelope:
    """A decoded task envelope (see the module's documentation for each field)."""

    name: str
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    enqueued_at: datetime.datetime = field(
        default_factory=lambda: datetime.datetime.now(datetime.timezone.utc)
    )
    attempts: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    reply_to: Optional[str] = None

    def as_dict(self) -> dict[str, Any]:
        """The envelope as the JSON object it is sent as."""
        return {
            "v": VERSION,
            "id": self.id,
            "name": self.name,
            "args": self.args,
            "kwargs": self.kwargs,
            "enqueued_at": format_time(self.enqueued_at),
            "attempts": self.attempts,
            "headers": self.headers,
            "reply_to": self.reply_to,
        }

    def encode(self) -> bytes:
        """The job body: compact UTF-8 JSON. Raises :class:`EnvelopeError` for non-JSON values."""
        check_envelope_fields(self)
        return dumps(self.as_dict(), what=f"the arguments of task {self.name!r}")


def dumps(data: Any, what: str) -> bytes:
    """``data`` as compact UTF-8 JSON, or :class:`EnvelopeError` naming ``what`` and the value.

    Only what JSON carries exactly: ``None``, ``bool``, ``int``, finite
    ``float``, ``str``, lists (and tuples, sent as lists) and dicts with
    string keys. Anything else (a ``datetime``, a ``set``, bytes, an object,
    NaN) is refused rather than turned into something the worker would not
    recognise.
    """
    problem = _json_problem(data, "")
    if problem is not None:
        raise EnvelopeError(f"{what} cannot be sent as JSON: {problem}")
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _json_problem(value: Any, path: str) -> Optional[str]:
    """Why ``value`` (at ``path``) is not plain JSON, or None."""
    if value is None or isinstance(value, (bool, int, str)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path or 'value'} is {value!r}"
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            problem = _json_problem(item, f"{path}[{index}]")
            if problem is not None:
                return problem
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path or 'a dict'} has a non-string key {key!r}"
            problem = _json_problem(item, f"{path}[{key!r}]")
            if problem is not None:
                return problem
        return None
    return f"{path or 'value'} is a {type(value).__name__} ({value!r:.60})"


def check_envelope_fields(envelope: Envelope) -> None:
    """Refuse an envelope a reader would refuse (before anything is sent)."""
    if not isinstance(envelope.name, str) or not envelope.name:
        raise EnvelopeError("a task name must be a non-empty string")
    if not isinstance(envelope.id, str) or not 0 < len(envelope.id) <= _MAX_ID_LENGTH:
        raise EnvelopeError(f"a task id must be a string of 1 to {_MAX_ID_LENGTH} characters")
    for key, value in envelope.headers.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise EnvelopeError(f"headers map strings to strings, not {key!r}: {value!r}")
    if envelope.reply_to is not None:
        check_tube_name(envelope.reply_to)
    if isinstance(envelope.attempts, bool) or not isinstance(envelope.attempts, int):
        raise EnvelopeError("attempts must be an integer")
    if envelope.attempts < 0:
        raise EnvelopeError("attempts must not be negative")


def format_time(moment: datetime.datetime) -> str:
    """``moment`` in UTC as ISO 8601 with a ``Z`` (a naive one is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    text = moment.astimezone(datetime.timezone.utc).isoformat(timespec="microseconds")
    return text.replace("+00:00", "Z")


def parse_time(text: str) -> datetime.datetime:
    """An ISO 8601 time as written by :func:`format_time` (or with an offset) as aware UTC."""
    moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)


def decode(body: bytes | str) -> Envelope:
    """The envelope in a job body; :class:`EnvelopeError` says what is wrong with it."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EnvelopeError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise EnvelopeError(f"not a JSON object but {type(data).__name__}")
    version = data.get("v")
    if version != VERSION:
        raise EnvelopeError(f"envelope version {version!r} is not {VERSION}")
    name = data.get("name")
    task_id = data.get("id")
    args = data.get("args", [])
    kwargs = data.get("kwargs", {})
    headers = data.get("headers") or {}
    reply_to = data.get("reply_to")
    attempts = data.get("attempts", 0)
    if not isinstance(name, str) or not name:
        raise EnvelopeError("'name' must be a non-empty string")
    if not isinstance(task_id, str) or not 0 < len(task_id) <= _MAX_ID_LENGTH:
        raise EnvelopeError(f"'id' must be a string of 1 to {_MAX_ID_LENGTH} characters")
    if not isinstance(args, list):
        raise EnvelopeError("'args' must be a list")
    if not isinstance(kwargs, dict):
        raise EnvelopeError("'kwargs' must be an object")
    if not isinstance(headers, dict) or not all(
        isinstance(value, str) for value in headers.values()
    ):
        raise EnvelopeError("'headers' must be an object of strings")
    if reply_to is not None:
        if not isinstance(reply_to, str):
            raise EnvelopeError("'reply_to' must be a tube name or null")
        try:
            check_tube_name(reply_to)
        except (TypeError, ValueError) as exc:
            raise EnvelopeError(f"'reply_to': {exc}") from None
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
        raise EnvelopeError("'attempts' must be a non-negative integer")
    enqueued_text = data.get("enqueued_at")
    try:
        enqueued_at = (
            parse_time(enqueued_text)
            if isinstance(enqueued_text, str)
            else datetime.datetime.now(datetime.timezone.utc)
        )
    except ValueError:
        raise EnvelopeError(f"'enqueued_at' is not an ISO 8601 time: {enqueued_text!r}") from None
    return Envelope(
        name=name,
        args=args,
        kwargs=kwargs,
        id=task_id,
        enqueued_at=enqueued_at,
        attempts=attempts,
        headers=dict(headers),
        reply_to=reply_to,
    )


# ----------------------------------------------------------------------
# Results: what a worker puts in a reply tube.


def encode_result(task_id: str, value: Any) -> bytes:
    """A success reply: ``{"v": 1, "id": ..., "ok": true, "value": ...}``."""
    return dumps({"v": VERSION, "id": task_id, "ok": True, "value": value}, "the task's result")


def encode_failure(task_id: str, error_type: str, message: str) -> bytes:
    """A failure reply: ``{"v": 1, "id": ..., "ok": false, "error": {"type", "message"}}``."""
    return dumps(
        {
            "v": VERSION,
            "id": task_id,
            "ok": False,
            "error": {"type": error_type, "message": message},
        },
        "a failure",
    )


@dataclass
class Reply:
    """A decoded result: ``ok`` with its ``value``, or the error's type and message."""

    id: str
    ok: bool
    value: Any = None
    error_type: str = ""
    error_message: str = ""


def decode_result(body: bytes | str) -> Reply:
    """The reply in a reply-tube job; :class:`EnvelopeError` if it is not one."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EnvelopeError(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("v") != VERSION:
        raise EnvelopeError("not a version-1 result object")
    task_id, ok = data.get("id"), data.get("ok")
    if not isinstance(task_id, str) or not isinstance(ok, bool):
        raise EnvelopeError("a result needs a string 'id' and a boolean 'ok'")
    if ok:
        return Reply(task_id, True, data.get("value"))
    error = data.get("error")
    if not isinstance(error, Mapping):
        raise EnvelopeError("a failure needs an 'error' object")
    return Reply(
        task_id, False, None, str(error.get("type", "Exception")), str(error.get("message", ""))
    )


def error_name(error: BaseException) -> str:
    """``ValueError``, or ``module.Name`` for an exception outside the builtins."""
    kind = type(error)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def preview(body: bytes | str, limit: int = 200) -> str:
    """The start of a body as text, for a record or a log line."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return text if len(text) <= limit else text[:limit] + "..."


def check_arguments(name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    """Refuse arguments JSON cannot carry, naming the task and the argument (before sending)."""
    problem = _json_problem(list(args), "args") or _json_problem(dict(kwargs), "kwargs")
    if problem is not None:
        raise EnvelopeError(f"the arguments of task {name!r} cannot be sent as JSON: {problem}")
