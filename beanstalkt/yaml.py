"""The tiny YAML reader for beanstalkd's ``stats*`` and ``list-*`` replies.

beanstalkd emits a very small YAML subset: a ``---`` line, then either
``key: value`` lines (one flat mapping of scalars) or ``- item`` lines (a list
of tube names). This reader handles exactly that and types the values the way
a caller expects, which a generic YAML loader gets wrong:

* names are text even when they look like numbers: a tube called ``123`` stays
  ``'123'``, and list items are always strings;
* ``version: "1.12"`` is the string ``1.12``, quotes removed (a quoted value
  is always text);
* ``os: #1 SMP ...`` is kept whole: ``#`` starts no comment here;
* ``rusage-*`` values are floats, ``true``/``false`` are booleans, and other
  decimal values are ints.

Pure functions over bytes; no PyYAML.
"""

from __future__ import annotations

from typing import Union

Scalar = Union[str, int, float, bool]

#: Keys whose values are text whatever they look like, per reply kind.
STATS_TEXT_KEYS = frozenset({"version", "id", "hostname", "os", "platform"})
STATS_TUBE_TEXT_KEYS = frozenset({"name"})
STATS_JOB_TEXT_KEYS = frozenset({"tube", "state"})


class YAMLError(ValueError):
    """The data is not the YAML subset beanstalkd sends."""


def parse_mapping(data: bytes, text_keys: frozenset[str] = frozenset()) -> dict[str, Scalar]:
    """Read a flat ``key: value`` mapping; values under ``text_keys`` stay strings."""
    result: dict[str, Scalar] = {}
    for line in _content_lines(data):
        key, sep, raw = line.partition(":")
        if not sep or not key or key != key.strip():
            raise YAMLError(f"not a 'key: value' line: {line!r}")
        raw = raw.strip()
        value = _unquote(raw)
        # Quotes make a value text in YAML, whatever the key.
        quoted = len(value) != len(raw)
        result[key] = value if quoted or key in text_keys else _typed(key, value)
    return result


def parse_list(data: bytes) -> list[str]:
    """Read a list of ``- item`` lines; items are always strings."""
    items: list[str] = []
    for line in _content_lines(data):
        if not line.startswith("- "):
            raise YAMLError(f"not a '- item' line: {line!r}")
        items.append(_unquote(line[2:].strip()))
    return items


def _content_lines(data: bytes) -> list[str]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YAMLError(f"not UTF-8: {exc}") from None
    lines = text.splitlines()
    if lines and lines[0].rstrip() == "---":
        lines = lines[1:]
    return [line for line in lines if line.strip()]


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _typed(key: str, value: str) -> Scalar:
    if key.startswith("rusage-"):
        return _number(value, float)
    if value == "true":
        return True
    if value == "false":
        return False
    if _looks_like_int(value):
        return int(value)
    if _looks_like_float(value):
        return float(value)
    return value


def _number(value: str, kind: type[float]) -> Scalar:
    try:
        return kind(value)
    except ValueError:
        return value


def _looks_like_int(value: str) -> bool:
    digits = value[1:] if value[:1] == "-" else value
    return digits.isascii() and digits.isdigit()


def _looks_like_float(value: str) -> bool:
    whole, dot, fraction = value.partition(".")
    return bool(dot) and _looks_like_int(whole) and fraction.isascii() and fraction.isdigit()
