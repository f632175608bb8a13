"""How the console shows a job body and checks what people type: pure functions, no I/O.

A body is shown as JSON (pretty-printed) when it is a UTF-8 JSON object or
array, as text when it is UTF-8 without control characters, and otherwise as a
hex dump. Whatever the kind, the result is plain text: the templates escape it,
and the browser never sees a body as markup.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Optional

from ...protocol import MAX_JOB_ID, MAX_TUBE_NAME_BYTES, MAX_UINT32, check_job_id, check_tube_name
from ..monitor import format_duration

#: Characters of a body shown at most on the tube page; the size is always shown.
BODY_PREVIEW_CHARS = 16_384
#: Bytes of a binary body shown as hex at most (16 per line).
BODY_PREVIEW_BYTES = 4_096
#: Bodies larger than this are not parsed as JSON (only previewed as text).
JSON_PARSE_LIMIT = 1 << 20

# C0 controls other than tab, LF, FF and CR, and DEL: their presence means "not text".
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


class BadInput(ValueError):
    """Input the console refuses, with a message fit to show the person who typed it."""


@dataclass(frozen=True)
class BodyView:
    """A body ready to show: ``kind`` is ``json``, ``text``, ``binary`` or ``empty``."""

    kind: str
    text: str
    size: int
    truncated: bool

    @property
    def description(self) -> str:
        """One line saying what is shown, e.g. ``'JSON, 1,204 bytes'``."""
        names = {"json": "JSON", "text": "text", "binary": "binary, shown as hex", "empty": ""}
        size = f"{self.size:,} byte" + ("" if self.size == 1 else "s")
        what = names[self.kind]
        line = f"{what}, {size}" if what else size
        if self.truncated:
            line += " (truncated)"
        return line


def view_body(
    body: bytes, limit: int = BODY_PREVIEW_CHARS, hex_limit: int = BODY_PREVIEW_BYTES
) -> BodyView:
    """Describe ``body`` for display; at most ``limit`` characters of text are kept."""
    size = len(body)
    if not body:
        return BodyView("empty", "", 0, False)
    text = _as_text(body)
    if text is None:
        shown = body[:hex_limit]
        return BodyView("binary", hex_dump(shown), size, len(shown) < size)
    if size <= JSON_PARSE_LIMIT and text.lstrip()[:1] in ("{", "["):
        try:
            data = json.loads(text)
        except ValueError:
            pass
        else:
            pretty = json.dumps(data, indent=2, ensure_ascii=False)
            return BodyView("json", pretty[:limit], size, len(pretty) > limit)
    return BodyView("text", text[:limit], size, len(text) > limit)


def _as_text(body: bytes) -> Optional[str]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if _CONTROL.search(text) else text


def hex_dump(data: bytes, offset: int = 0) -> str:
    """``data`` as lines of offset, 16 hex bytes and their printable ASCII."""
    lines = []
    for start in range(0, len(data), 16):
        chunk = data[start : start + 16]
        hex_part = " ".join(f"{byte:02x}" for byte in chunk)
        ascii_part = "".join(chr(byte) if 32 <= byte < 127 else "." for byte in chunk)
        lines.append(f"{offset + start:08x}  {hex_part:<47}  {ascii_part}")
    return "\n".join(lines)


def check_tube(name: str) -> str:
    """Return ``name`` if the client accepts it as a tube name, else raise :class:`BadInput`.

    The rule is the protocol layer's (:func:`beanstalkt.protocol.check_tube_name`);
    this only words its refusal for a person.
    """
    if not name:
        raise BadInput("A tube name is required.")
    if len(name.encode("utf-8")) > MAX_TUBE_NAME_BYTES:
        raise BadInput(f"A tube name has at most {MAX_TUBE_NAME_BYTES} characters.")
    try:
        check_tube_name(name)
    except (TypeError, ValueError):
        raise BadInput(
            "A tube name uses only the characters A-Z a-z 0-9 - + / ; . $ _ ( ) "
            "and does not start with a hyphen."
        ) from None
    return name


def parse_job_id(text: str) -> int:
    """The job id in ``text`` (1 to 2**64-1, the protocol's range), else :class:`BadInput`."""
    # The length check first: int() of a huge digit string is slow.
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_JOB_ID)):
        raise BadInput(f"A job id is a whole number from 1 to {MAX_JOB_ID}, not {text[:40]!r}.")
    try:
        return check_job_id(int(text))
    except ValueError:
        raise BadInput(
            f"A job id is a whole number from 1 to {MAX_JOB_ID}, not {text[:40]!r}."
        ) from None


def parse_count(what: str, text: str, low: int = 0, high: int = MAX_UINT32) -> int:
    """The whole number ``text`` within ``low..high``, else :class:`BadInput` naming ``what``."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        raise BadInput(f"{what} must be a whole number from {low} to {high}, not {text!r}.")
    value = int(text)
    if not low <= value <= high:
        raise BadInput(f"{what} must be a whole number from {low} to {high}, not {value}.")
    return value


def duration(seconds: object) -> str:
    """``42 s``, ``3 m 07 s``, ``5 h 02 m``, ``3 d 04 h``; a dash when not known."""
    if type(seconds) is not int or seconds < 0:
        return "\u2013"
    return format_duration(seconds, space=" ")
