"""The sans-I/O protocol layer: argument checks, encoders, reply framing, reply meaning.

Pure unit tests: no sockets, no server. The expected values are written from
the beanstalkd protocol document (``protocol.txt``), not read back from the
code under test.
"""

from __future__ import annotations

import array
import copy
import datetime
import enum
import pickle
import re
from typing import Any, Optional

import pytest

import beanstalkt
from beanstalkt import errors
from beanstalkt.models import Job
from beanstalkt.protocol import (
    COMMANDS,
    DEFAULT_PRIORITY,
    DEFAULT_TTR,
    MAX_JOB_ID,
    MAX_REPLY_LINE,
    MAX_RESERVE_TIMEOUT,
    MAX_UINT32,
    SERVER_ERRORS,
    CommandSpec,
    ProtocolError,
    Reply,
    ReplyParser,
    Result,
    check_body,
    check_integer,
    check_job_id,
    check_seconds,
    check_tube_name,
    checked_put,
    encode_command,
    encode_put,
    interpret,
    reply_error,
)

from . import recorded_replies as recorded

# A tube name of every punctuation character the protocol allows.
ODD = "$_();+/.-"
# Every character the protocol allows in a tube name.
NAME_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-+/;.$_()"


# --------------------------------------------------------------------------
# Constants.


def test_defaults_and_limits() -> None:
    assert DEFAULT_PRIORITY == 2**31
    assert DEFAULT_TTR == 120
    assert MAX_UINT32 == 4294967295
    assert MAX_JOB_ID == 18446744073709551615
    assert beanstalkt.DEFAULT_PRIORITY == DEFAULT_PRIORITY
    assert beanstalkt.DEFAULT_TTR == DEFAULT_TTR


# --------------------------------------------------------------------------
# Tube names.


@pytest.mark.parametrize(
    "name",
    [
        "default",
        "a",
        "Z",
        "0",
        "123",
        "+",
        "/",
        ";",
        ".",
        "$",
        "_",
        "(",
        ")",
        "a-b",
        "$_();+/.-",
        "emails/high-priority;v2.0",
        "(x)",
        NAME_CHARS,
        NAME_CHARS[::-1].lstrip("-") + "-",
    ],
)
def test_valid_tube_names_are_returned_as_ascii_bytes(name: str) -> None:
    encoded = check_tube_name(name)
    assert type(encoded) is bytes
    assert encoded == name.encode("ascii")


def test_every_allowed_character_is_accepted_alone_or_after_a_letter() -> None:
    for char in NAME_CHARS:
        assert check_tube_name("a" + char) == ("a" + char).encode()
        if char != "-":
            assert check_tube_name(char) == char.encode()


def test_tube_name_of_exactly_200_bytes_is_accepted() -> None:
    name = "x" * 200
    assert check_tube_name(name) == name.encode()
    mixed = (NAME_CHARS * 3)[:200]
    assert len(mixed) == 200
    assert check_tube_name(mixed) == mixed.encode()


def test_tube_name_of_201_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match=r"201 bytes long; the limit is 200"):
        check_tube_name("x" * 201)
    with pytest.raises(ValueError, match="limit is 200"):
        check_tube_name("y" * 10_000)


def test_empty_tube_name_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        check_tube_name("")


@pytest.mark.parametrize("name", ["-", "-abc", "--", "-" + "a" * 150])
def test_tube_name_starting_with_hyphen_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="must not start with a hyphen"):
        check_tube_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "a b",
        " a",
        "a ",
        "a\tb",
        "a\r\nput 0 0 1 1",
        "a\r",
        "a\n",
        "\n",
        "a\x00b",
        "tübe",
        "名前",
        "a\u00a0b",
        "a:b",
        "a#b",
        "a*b",
        "a,b",
        "a\\b",
        "a'b",
        'a"b',
        "a[b]",
        "a{b}",
        "a=b",
        "a@b",
        "a!b",
        "a%b",
        "a&b",
        "a~b",
        "a|b",
        "a<b>",
        "a?b",
        "a`b",
        "a^b",
        "\uff41",  # fullwidth letter: not ASCII
        "\uff10",  # fullwidth digit
    ],
)
def test_tube_name_with_forbidden_characters_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="has characters outside A-Za-z0-9-\\+/;\\.\\$_\\(\\)"):
        check_tube_name(name)


def test_tube_name_error_message_shows_the_name() -> None:
    with pytest.raises(ValueError) as info:
        check_tube_name("bad name\r\n")
    assert repr("bad name\r\n") in str(info.value)


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (b"default", "bytes"),
        (bytearray(b"default"), "bytearray"),
        (None, "NoneType"),
        (123, "int"),
        (1.5, "float"),
        (["default"], "list"),
        (True, "bool"),
    ],
)
def test_tube_name_must_be_str(value: object, type_name: str) -> None:
    with pytest.raises(TypeError, match=f"tube name must be str, not {type_name}$"):
        check_tube_name(value)


# --------------------------------------------------------------------------
# Integers, job ids.


@pytest.mark.parametrize("value", [0, 1, 1023, 1024, 2**31, MAX_UINT32])
@pytest.mark.parametrize("what", ["priority", "delay", "ttr", "timeout", "bound"])
def test_uint32_range_is_accepted(what: str, value: int) -> None:
    result = check_integer(what, value, 0, MAX_UINT32)
    assert result == value
    assert type(result) is int


@pytest.mark.parametrize("value", [-1, -(2**31), MAX_UINT32 + 1, 2**64])
@pytest.mark.parametrize("what", ["priority", "delay", "ttr"])
def test_uint32_out_of_range_is_refused(what: str, value: int) -> None:
    with pytest.raises(ValueError, match=f"^{what} must be between 0 and 4294967295, not {value}$"):
        check_integer(what, value, 0, MAX_UINT32)


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (True, "bool"),
        (False, "bool"),
        (1.0, "float"),
        (0.5, "float"),
        (float("nan"), "float"),
        ("1", "str"),
        (b"1", "bytes"),
        (None, "NoneType"),
        ([1], "list"),
    ],
)
def test_non_int_is_refused(value: object, type_name: str) -> None:
    with pytest.raises(TypeError, match=f"^priority must be an int, not {type_name}$"):
        check_integer("priority", value, 0, MAX_UINT32)


def test_int_subclass_other_than_bool_is_accepted() -> None:
    class Level(enum.IntEnum):
        HIGH = 10

    assert check_integer("priority", Level.HIGH, 0, MAX_UINT32) == 10
    assert encode_command(b"bury", 5, Level.HIGH) == b"bury 5 10\r\n"


def test_integer_bounds_are_inclusive_and_custom() -> None:
    assert check_integer("n", 5, 5, 7) == 5
    assert check_integer("n", 7, 5, 7) == 7
    with pytest.raises(ValueError, match=r"^n must be between 5 and 7, not 4$"):
        check_integer("n", 4, 5, 7)
    with pytest.raises(ValueError, match=r"^n must be between 5 and 7, not 8$"):
        check_integer("n", 8, 5, 7)


@pytest.mark.parametrize("job_id", [1, 2, 2**32, 2**63, MAX_JOB_ID])
def test_job_ids_in_range_are_accepted(job_id: int) -> None:
    assert check_job_id(job_id) == job_id


@pytest.mark.parametrize("job_id", [0, -1, MAX_JOB_ID + 1, 2**100])
def test_job_ids_out_of_range_are_refused(job_id: int) -> None:
    with pytest.raises(ValueError, match=f"^job id must be between 1 and {MAX_JOB_ID}, not "):
        check_job_id(job_id)


@pytest.mark.parametrize("job_id", [True, 1.0, "1", None])
def test_job_id_must_be_an_int(job_id: object) -> None:
    with pytest.raises(TypeError, match=r"^job id must be an int, not "):
        check_job_id(job_id)


async def test_client_checks_its_arguments_before_sending_anything() -> None:
    # Never connected: each refusal must come from the argument checks.
    client = beanstalkt.Client("127.0.0.1", 1)
    try:
        with pytest.raises(ValueError, match="priority must be between 0 and 4294967295"):
            client.put(b"x", priority=MAX_UINT32 + 1)
        with pytest.raises(ValueError, match="delay must be between 0 and 4294967295"):
            client.put(b"x", delay=-1)
        with pytest.raises(ValueError, match="ttr must be between 0 and 4294967295"):
            client.put(b"x", ttr=2**32)
        with pytest.raises(TypeError, match="priority must be an int, not bool"):
            client.put(b"x", priority=True)
        with pytest.raises(ValueError, match="delay must be whole seconds"):
            client.put(b"x", delay=1.5)
        with pytest.raises(TypeError, match="job body must be bytes"):
            client.put("text")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="job id must be between"):
            client.delete(0)
        with pytest.raises(TypeError, match="job id must be an int, not bool"):
            client.peek(True)
        with pytest.raises(ValueError, match="hyphen"):
            client.use("-x")
        with pytest.raises(ValueError, match="limit is 200"):
            client.watch("w" * 201)
        with pytest.raises(ValueError, match="bound must be between"):
            client.kick(-1)
        with pytest.raises(ValueError, match="delay must be between"):
            client.pause_tube("default", MAX_UINT32 + 1)
        with pytest.raises(ValueError, match="timeout must be between"):
            client.reserve(timeout=-1)
        assert client.in_flight == 0
    finally:
        await client.close()


# --------------------------------------------------------------------------
# Bodies.


def test_bytes_body_is_returned_unchanged() -> None:
    body = b"hello\r\nworld\x00\xff"
    assert check_body(body, None) is body
    assert check_body(body, "utf-8") is body


def test_bytearray_and_memoryview_bodies_become_bytes() -> None:
    result = check_body(bytearray(b"abc"), None)
    assert result == b"abc"
    assert type(result) is bytes
    result = check_body(memoryview(b"xyz\r\n"), None)
    assert result == b"xyz\r\n"
    assert type(result) is bytes
    assert check_body(memoryview(b"0123456789")[2:5], None) == b"234"
    # A memoryview of wider items is sent as its raw bytes.
    numbers = array.array("H", [1, 2])
    assert check_body(memoryview(numbers), None) == numbers.tobytes()


def test_empty_body_is_accepted() -> None:
    assert check_body(b"", None) == b""
    assert check_body(bytearray(), None) == b""
    assert check_body("", "utf-8") == b""


def test_bytes_subclass_body_is_accepted() -> None:
    class Payload(bytes):
        pass

    result = check_body(Payload(b"data"), None)
    assert result == b"data"
    assert isinstance(result, bytes)


def test_str_body_is_refused_without_encoding() -> None:
    with pytest.raises(TypeError, match="job body must be bytes; pass encoding='utf-8'"):
        check_body("hello", None)


def test_str_body_is_encoded_with_the_encoding() -> None:
    assert check_body("zoë", "utf-8") == "zoë".encode()
    assert check_body("zoë", "latin-1") == b"zo\xeb"
    assert check_body("a\r\nb", "ascii") == b"a\r\nb"
    with pytest.raises(UnicodeEncodeError):
        check_body("zoë", "ascii")


@pytest.mark.parametrize(
    ("body", "type_name"),
    [(None, "NoneType"), (123, "int"), (1.5, "float"), ([b"a"], "list"), ({"a": 1}, "dict")],
)
def test_other_body_types_are_refused(body: object, type_name: str) -> None:
    with pytest.raises(TypeError, match=f"^job body must be bytes, not {type_name}$"):
        check_body(body, None)
    with pytest.raises(TypeError, match=f"^job body must be bytes, not {type_name}$"):
        check_body(body, "utf-8")


# --------------------------------------------------------------------------
# Encoders.


def test_encode_put_exact_bytes() -> None:
    assert encode_put(b"hello", DEFAULT_PRIORITY, 0, DEFAULT_TTR) == (
        b"put 2147483648 0 120 5\r\nhello\r\n"
    )
    assert encode_put(b"x", 0, 10, 1) == b"put 0 10 1 1\r\nx\r\n"
    assert encode_put(b"big", MAX_UINT32, MAX_UINT32, MAX_UINT32) == (
        b"put 4294967295 4294967295 4294967295 3\r\nbig\r\n"
    )


def test_encode_put_empty_body() -> None:
    assert encode_put(b"", 1, 2, 3) == b"put 1 2 3 0\r\n\r\n"


def test_encode_put_binary_body_is_length_prefixed() -> None:
    body = b"a\r\nput 0 0 1 1\r\nb\r\n\x00\xff"
    data = encode_put(body, 5, 0, 60)
    assert data == b"put 5 0 60 %d\r\n" % len(body) + body + b"\r\n"
    line, _, rest = data.partition(b"\r\n")
    assert line == b"put 5 0 60 21"
    assert rest == body + b"\r\n"
    every_byte = bytes(range(256))
    assert encode_put(every_byte, 0, 0, 1) == b"put 0 0 1 256\r\n" + every_byte + b"\r\n"


@pytest.mark.parametrize(
    ("body", "priority", "delay", "ttr"),
    [
        (b"hello", DEFAULT_PRIORITY, 0, DEFAULT_TTR),  # the fast path: bytes and ints
        (b"", 0, MAX_UINT32, MAX_UINT32),
        (bytearray(b"ba"), 1, 2, 3),  # the per-field checks
        (memoryview(b"mv"), 1, 2.0, datetime.timedelta(minutes=2)),
        ("text", 1, 0, 60),
    ],
)
def test_checked_put_encodes_what_the_per_field_checks_accept(
    body: Any, priority: Any, delay: Any, ttr: Any
) -> None:
    expected = encode_put(
        check_body(body, "utf-8"),
        check_integer("priority", priority, 0, MAX_UINT32),
        check_seconds("delay", delay),
        check_seconds("ttr", ttr),
    )
    assert checked_put(body, priority, delay, ttr, "utf-8") == expected


@pytest.mark.parametrize(
    ("body", "priority", "delay", "ttr", "error", "words"),
    [
        ("text", 1, 0, 60, TypeError, "encoding="),  # no encoding given below
        (b"x", True, 0, 60, TypeError, "priority must be an int, not bool"),
        (b"x", -1, 0, 60, ValueError, "priority must be between 0 and 4294967295"),
        (b"x", MAX_UINT32 + 1, 0, 60, ValueError, "priority"),
        (b"x", 1, -1, 60, ValueError, "delay"),
        (b"x", 1, 0, MAX_UINT32 + 1, ValueError, "ttr"),
        (b"x", 1, 1.5, 60, ValueError, "delay"),
        (b"x", 1, 0, False, TypeError, "ttr"),
        (b"x", 1, 0, "60", TypeError, "ttr"),
        (1, 1, 0, 60, TypeError, "job body must be bytes"),
    ],
)
def test_checked_put_refuses_what_the_per_field_checks_refuse(
    body: Any, priority: Any, delay: Any, ttr: Any, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=re.escape(words)):
        checked_put(body, priority, delay, ttr, None)


def test_encode_command_exact_bytes() -> None:
    assert encode_command(b"stats") == b"stats\r\n"
    assert encode_command(b"delete", 42) == b"delete 42\r\n"
    assert encode_command(b"release", 7, DEFAULT_PRIORITY, 0) == b"release 7 2147483648 0\r\n"
    assert encode_command(b"use", b"emails") == b"use emails\r\n"
    assert encode_command(b"pause-tube", b"$_();+/.-", 30) == b"pause-tube $_();+/.- 30\r\n"
    assert encode_command(b"peek", MAX_JOB_ID) == b"peek 18446744073709551615\r\n"
    assert encode_command(b"watch", check_tube_name("123")) == b"watch 123\r\n"


# --------------------------------------------------------------------------
# ReplyParser: framing.

BINARY = bytes(range(256))
STREAM_REPLIES: list[tuple[bytes, Reply]] = [
    (b"INSERTED 12\r\n", Reply(b"INSERTED", [b"12"], None)),
    (b"RESERVED 12 7\r\nab\r\ncd!\r\n", Reply(b"RESERVED", [b"12"], b"ab\r\ncd!")),
    (b"RESERVED 3 0\r\n\r\n", Reply(b"RESERVED", [b"3"], b"")),
    (b"FOUND 4 2\r\n\r\n\r\n", Reply(b"FOUND", [b"4"], b"\r\n")),
    (b"FOUND 9 12\r\nINSERTED 1\r\n\r\n", Reply(b"FOUND", [b"9"], b"INSERTED 1\r\n")),
    (b"FOUND 10 256\r\n" + BINARY + b"\r\n", Reply(b"FOUND", [b"10"], BINARY)),
    (b"OK 20\r\n---\n- default\n- 123\n\r\n", Reply(b"OK", [], b"---\n- default\n- 123\n")),
    (b"OK 0\r\n\r\n", Reply(b"OK", [], b"")),
    (b"USING $_();+/.-\r\n", Reply(b"USING", [b"$_();+/.-"], None)),
    (b"DELETED\r\n", Reply(b"DELETED", [], None)),
    (b"NOT_FOUND\r\n", Reply(b"NOT_FOUND", [], None)),
    (b"BURIED 5\r\n", Reply(b"BURIED", [b"5"], None)),
    (b"BURIED\r\n", Reply(b"BURIED", [], None)),
    (b"WATCHING 2\r\n", Reply(b"WATCHING", [b"2"], None)),
    (b"KICKED\r\n", Reply(b"KICKED", [], None)),
    (b"KICKED 3\r\n", Reply(b"KICKED", [b"3"], None)),
    (b"TIMED_OUT\r\n", Reply(b"TIMED_OUT", [], None)),
    (b"DEADLINE_SOON\r\n", Reply(b"DEADLINE_SOON", [], None)),
    (b"PAUSED\r\n", Reply(b"PAUSED", [], None)),
    (b"TOUCHED\r\n", Reply(b"TOUCHED", [], None)),
    (b"RELEASED\r\n", Reply(b"RELEASED", [], None)),
    (b"NOT_IGNORED\r\n", Reply(b"NOT_IGNORED", [], None)),
    (b"EXPECTED_CRLF\r\n", Reply(b"EXPECTED_CRLF", [], None)),
    (b"JOB_TOO_BIG\r\n", Reply(b"JOB_TOO_BIG", [], None)),
    (b"DRAINING\r\n", Reply(b"DRAINING", [], None)),
    (b"OUT_OF_MEMORY\r\n", Reply(b"OUT_OF_MEMORY", [], None)),
    (b"INTERNAL_ERROR\r\n", Reply(b"INTERNAL_ERROR", [], None)),
    (b"BAD_FORMAT\r\n", Reply(b"BAD_FORMAT", [], None)),
    (b"UNKNOWN_COMMAND\r\n", Reply(b"UNKNOWN_COMMAND", [], None)),
    (
        b"RESERVED 18446744073709551615 1\r\nz\r\n",
        Reply(b"RESERVED", [b"18446744073709551615"], b"z"),
    ),
]
STREAM = b"".join(wire for wire, _ in STREAM_REPLIES)
EXPECTED = [reply for _, reply in STREAM_REPLIES]


def feed_all(parts: list[bytes]) -> list[Reply]:
    parser = ReplyParser()
    replies: list[Reply] = []
    for part in parts:
        replies.extend(parser.feed(part))
    assert parser.buffered == 0
    return replies


@pytest.mark.parametrize(("wire", "expected"), STREAM_REPLIES)
def test_one_reply(wire: bytes, expected: Reply) -> None:
    parser = ReplyParser()
    assert parser.feed(wire) == [expected]
    assert parser.buffered == 0


def test_reply_fields() -> None:
    (reply,) = ReplyParser().feed(b"RESERVED 5 3\r\nabc\r\n")
    assert reply.status == b"RESERVED"
    assert reply.args == [b"5"]
    assert reply.body == b"abc"
    (reply,) = ReplyParser().feed(b"OK 4\r\n---\n\r\n")
    assert (reply.status, reply.args, reply.body) == (b"OK", [], b"---\n")


def test_many_replies_in_one_chunk() -> None:
    parser = ReplyParser()
    assert parser.feed(STREAM) == EXPECTED
    assert parser.buffered == 0


def test_stream_fed_one_byte_at_a_time() -> None:
    parser = ReplyParser()
    replies: list[Reply] = []
    for index in range(len(STREAM)):
        replies.extend(parser.feed(STREAM[index : index + 1]))
    assert replies == EXPECTED
    assert parser.buffered == 0


def test_stream_split_at_every_byte_boundary() -> None:
    for cut in range(len(STREAM) + 1):
        assert feed_all([STREAM[:cut], STREAM[cut:]]) == EXPECTED, cut


def test_every_reply_split_in_three_at_every_pair_of_boundaries() -> None:
    for wire, expected in STREAM_REPLIES:
        if len(wire) > 60:
            continue
        for first in range(len(wire) + 1):
            for second in range(first, len(wire) + 1):
                parts = [wire[:first], wire[first:second], wire[second:]]
                assert feed_all(parts) == [expected], parts


def test_replies_come_out_exactly_when_complete() -> None:
    parser = ReplyParser()
    wire = b"RESERVED 1 5\r\nhello\r\n"
    for index in range(len(wire) - 1):
        assert parser.feed(wire[index : index + 1]) == []
        assert parser.buffered == index + 1
    assert parser.feed(wire[-1:]) == [Reply(b"RESERVED", [b"1"], b"hello")]
    assert parser.buffered == 0


def test_partial_reply_is_kept_after_complete_ones() -> None:
    parser = ReplyParser()
    assert parser.feed(b"DELETED\r\nINSERTED 4\r\nRESERVED 4 2\r\nh") == [
        Reply(b"DELETED", [], None),
        Reply(b"INSERTED", [b"4"], None),
    ]
    assert parser.buffered == len(b"RESERVED 4 2\r\nh")
    assert parser.feed(b"i\r") == []
    assert parser.feed(b"\nTOUCHED\r\n") == [
        Reply(b"RESERVED", [b"4"], b"hi"),
        Reply(b"TOUCHED", [], None),
    ]
    assert parser.buffered == 0


def test_empty_feed_returns_nothing() -> None:
    parser = ReplyParser()
    assert parser.feed(b"") == []
    assert parser.feed(b"DELE") == []
    assert parser.feed(b"") == []
    assert parser.feed(b"TED\r\n") == [Reply(b"DELETED", [], None)]


def test_large_body_in_many_fragments() -> None:
    body = (b"0123456789\r\n" * 50_000)[:500_000]
    wire = b"FOUND 77 %d\r\n" % len(body) + body + b"\r\nDELETED\r\n"
    parts = [wire[index : index + 1000] for index in range(0, len(wire), 1000)]
    assert feed_all(parts) == [Reply(b"FOUND", [b"77"], body), Reply(b"DELETED", [], None)]


def test_reset_forgets_partial_reply() -> None:
    parser = ReplyParser()
    assert parser.feed(b"RESERVED 1 10\r\nabc") == []
    assert parser.buffered > 0
    parser.reset()
    assert parser.buffered == 0
    assert parser.feed(b"DELETED\r\n") == [Reply(b"DELETED", [], None)]


@pytest.mark.parametrize(
    "wire",
    [
        b"OK 3\r\n---\nDELETED\r\n",  # body shorter than announced: CR LF not where due
        b"OK 2\r\n--XY",
    ],
)
def test_stats_body_not_followed_by_crlf_is_a_protocol_error(wire: bytes) -> None:
    with pytest.raises(ProtocolError, match="body is not followed by CR LF"):
        ReplyParser().feed(wire)
    # Also when the body arrives byte by byte.
    parser = ReplyParser()
    with pytest.raises(ProtocolError, match="body is not followed by CR LF"):
        for index in range(len(wire)):
            parser.feed(wire[index : index + 1])


@pytest.mark.parametrize(
    "wire",
    [
        b"RESERVED 1 5\r\n\x00\x00\x00\x00\x00\x00\x00",  # a binlog record cut short
        b"RESERVED 1 2\r\nhiXY",
        b"RESERVED 1 2\r\nhi\n\r",
        b"FOUND 1 2\r\nhi\rX",
        b"RESERVED 1 0\r\nX\r",
    ],
)
def test_damaged_job_body_is_framed_by_its_length(wire: bytes) -> None:
    following = b"INSERTED 9\r\n"
    status = wire.split(b" ")[0]
    expected = [Reply(status, [b"1"], None), Reply(b"INSERTED", [b"9"], None)]
    assert ReplyParser().feed(wire + following) == expected
    parser = ReplyParser()
    replies: list[Reply] = []
    for byte in wire + following:
        replies += parser.feed(bytes([byte]))
    assert replies == expected


def test_damaged_job_raises_bad_job_with_its_id() -> None:
    damaged = b" 12 5\r\n\x00\x00\x00\x00\x00\x00\x00"
    for name, status in [
        ("reserve", "RESERVED"),
        ("reserve-with-timeout", "RESERVED"),
        ("reserve-job", "RESERVED"),
        ("peek", "FOUND"),
        ("peek-ready", "FOUND"),
    ]:
        reply = one_reply(status.encode() + damaged)
        with pytest.raises(
            errors.BadJob, match="job 12: its body is not followed by CR LF"
        ) as info:
            interpret(COMMANDS[name], reply, None)
        assert isinstance(info.value, errors.UnexpectedResponse)
        assert info.value.job_id == 12
        assert info.value.status == status


def test_body_missing_its_crlf_waits_for_it() -> None:
    parser = ReplyParser()
    assert parser.feed(b"RESERVED 1 2\r\nhi") == []
    assert parser.feed(b"\r") == []
    assert parser.feed(b"\n") == [Reply(b"RESERVED", [b"1"], b"hi")]


@pytest.mark.parametrize(
    "wire",
    [
        b"HELLO\r\n",
        b"\r\n",
        b" DELETED\r\n",
        b"inserted 1\r\n",
        b"deleted\r\n",
        b"DELETED\ngarbage\r\n",  # LF alone ends no line
        b"OK\r\n",
        b"OK 5 6\r\n",
        b"RESERVED 1\r\n",
        b"RESERVED 1 2 3\r\n",
        b"FOUND\r\n",
        b"OK abc\r\n",
        b"OK -1\r\n",
        b"OK +1\r\n",
        b"OK 1.5\r\n",
        b"OK \r\n",
        b"RESERVED 1 \xd9\xa3\r\n",  # Arabic-Indic digit: not an ASCII length
        b"\x00\x01\x02\r\n",
        b"HTTP/1.1 200 OK\r\n",
    ],
)
def test_garbage_lines_are_protocol_errors(wire: bytes) -> None:
    with pytest.raises(ProtocolError):
        ReplyParser().feed(wire)


def test_garbage_after_valid_replies_is_a_protocol_error() -> None:
    parser = ReplyParser()
    assert parser.feed(b"DELETED\r\n") == [Reply(b"DELETED", [], None)]
    with pytest.raises(ProtocolError, match="unexpected reply line b'GARBAGE'"):
        parser.feed(b"GARBAGE\r\n")


def test_protocol_error_is_sticky_until_reset() -> None:
    parser = ReplyParser()
    with pytest.raises(ProtocolError):
        parser.feed(b"GARBAGE\r\n")
    with pytest.raises(ProtocolError):
        parser.feed(b"DELETED\r\n")
    parser.reset()
    assert parser.feed(b"DELETED\r\n") == [Reply(b"DELETED", [], None)]


def feed_until_error(parts: list[bytes]) -> tuple[list[Reply], Optional[ProtocolError]]:
    """Replies delivered before the stream went bad, and the error (if raised).

    Replies completed in the same chunk as the garbage count as delivered if
    ``feed`` returned them or the error carries them as ``replies``.
    """
    parser = ReplyParser()
    replies: list[Reply] = []
    for part in [*parts, b""]:
        try:
            replies.extend(parser.feed(part))
        except ProtocolError as exc:
            replies.extend(getattr(exc, "replies", []))
            return replies, exc
    return replies, None


def test_replies_before_garbage_do_not_depend_on_chunking() -> None:
    # The server answered two commands, then the stream went bad. Whether the
    # good replies reach their commands must not depend on TCP segmentation.
    wire = b"DELETED\r\nINSERTED 3\r\nGARBAGE\r\n"
    good = [Reply(b"DELETED", [], None), Reply(b"INSERTED", [b"3"], None)]
    for cut in range(len(wire) + 1):
        replies, error = feed_until_error([wire[:cut], wire[cut:]])
        assert error is not None, cut
        assert replies == good, f"split at {cut}: {wire[:cut]!r} | {wire[cut:]!r}"


def test_over_long_line_without_crlf_is_a_protocol_error() -> None:
    parser = ReplyParser()
    assert parser.feed(b"X" * MAX_REPLY_LINE) == []  # still possibly a line
    with pytest.raises(ProtocolError, match=f"reply line longer than {MAX_REPLY_LINE} bytes"):
        parser.feed(b"X" * MAX_REPLY_LINE)
    with pytest.raises(ProtocolError, match="longer than"):
        ReplyParser().feed(b"INSERTED " + b"1" * 5000)
    # Byte by byte, the guard fires soon after the limit, not at the end.
    parser = ReplyParser()
    with pytest.raises(ProtocolError, match="longer than"):
        for _ in range(MAX_REPLY_LINE + 3):
            assert parser.feed(b"Y") == []
    assert MAX_REPLY_LINE <= parser.buffered <= MAX_REPLY_LINE + 2


def test_longest_real_reply_line_is_accepted_at_any_split() -> None:
    name = b"n" * 200
    wire = b"USING " + name + b"\r\n"
    expected = [Reply(b"USING", [name], None)]
    assert feed_all([wire[index : index + 1] for index in range(len(wire))]) == expected
    for cut in range(len(wire) + 1):
        assert feed_all([wire[:cut], wire[cut:]]) == expected


def test_over_long_line_is_refused_whatever_the_chunking() -> None:
    wire = b"INSERTED " + b"1" * (2 * MAX_REPLY_LINE) + b"\r\n"
    with pytest.raises(ProtocolError):
        feed_all([wire[index : index + 1] for index in range(len(wire))])
    # The same line arriving in one piece must be refused too.
    with pytest.raises(ProtocolError):
        ReplyParser().feed(wire)


# --------------------------------------------------------------------------
# The command table, checked against protocol.txt.

# name -> (success word, result, documented failure words and their exceptions)
PROTOCOL: dict[str, tuple[bytes, Result, dict[bytes, type[errors.BeanstalkException]]]] = {
    "put": (
        b"INSERTED",
        Result.INTEGER,
        {
            b"BURIED": errors.Buried,
            b"EXPECTED_CRLF": errors.ExpectedCRLF,
            b"JOB_TOO_BIG": errors.JobTooBig,
            b"DRAINING": errors.Draining,
        },
    ),
    "use": (b"USING", Result.NAME, {}),
    "reserve": (b"RESERVED", Result.JOB, {b"DEADLINE_SOON": errors.DeadlineSoon}),
    "reserve-with-timeout": (
        b"RESERVED",
        Result.JOB,
        {b"DEADLINE_SOON": errors.DeadlineSoon, b"TIMED_OUT": errors.TimedOut},
    ),
    "reserve-job": (b"RESERVED", Result.JOB, {b"NOT_FOUND": errors.NotFound}),
    "delete": (b"DELETED", Result.NOTHING, {b"NOT_FOUND": errors.NotFound}),
    "release": (
        b"RELEASED",
        Result.NOTHING,
        {b"BURIED": errors.Buried, b"NOT_FOUND": errors.NotFound},
    ),
    "bury": (b"BURIED", Result.NOTHING, {b"NOT_FOUND": errors.NotFound}),
    "touch": (b"TOUCHED", Result.NOTHING, {b"NOT_FOUND": errors.NotFound}),
    "watch": (b"WATCHING", Result.INTEGER, {}),
    "ignore": (b"WATCHING", Result.INTEGER, {b"NOT_IGNORED": errors.NotIgnored}),
    "peek": (b"FOUND", Result.JOB, {b"NOT_FOUND": errors.NotFound}),
    "peek-ready": (b"FOUND", Result.JOB, {b"NOT_FOUND": errors.NotFound}),
    "peek-delayed": (b"FOUND", Result.JOB, {b"NOT_FOUND": errors.NotFound}),
    "peek-buried": (b"FOUND", Result.JOB, {b"NOT_FOUND": errors.NotFound}),
    "kick": (b"KICKED", Result.INTEGER, {}),
    "kick-job": (b"KICKED", Result.NOTHING, {b"NOT_FOUND": errors.NotFound}),
    "stats-job": (b"OK", Result.MAPPING, {b"NOT_FOUND": errors.NotFound}),
    "stats-tube": (b"OK", Result.MAPPING, {b"NOT_FOUND": errors.NotFound}),
    "stats": (b"OK", Result.MAPPING, {}),
    "list-tubes": (b"OK", Result.LIST, {}),
    "list-tube-used": (b"USING", Result.NAME, {}),
    "list-tubes-watched": (b"OK", Result.LIST, {}),
    "pause-tube": (b"PAUSED", Result.NOTHING, {b"NOT_FOUND": errors.NotFound}),
}


@pytest.mark.parametrize("name", sorted(PROTOCOL))
def test_every_protocol_command_is_in_the_table_as_documented(name: str) -> None:
    success, result, failures = PROTOCOL[name]
    spec = COMMANDS[name]
    assert spec.name == name.encode()
    assert spec.success == success
    assert spec.result is result
    for word, exception in failures.items():
        assert spec.failures.get(word) is exception, word


def test_only_reserve_commands_are_blocking() -> None:
    blocking = {name for name, spec in COMMANDS.items() if spec.blocking}
    assert blocking == {"reserve", "reserve-with-timeout"}


def test_stats_commands_declare_their_text_keys() -> None:
    assert COMMANDS["stats"].text_keys >= {"version", "id", "hostname", "os", "platform"}
    assert COMMANDS["stats-tube"].text_keys >= {"name"}
    assert COMMANDS["stats-job"].text_keys >= {"tube", "state"}
    assert "id" not in COMMANDS["stats-job"].text_keys  # the job id is a number


def test_command_spec_repr() -> None:
    assert repr(COMMANDS["reserve-with-timeout"]) == "<CommandSpec reserve-with-timeout>"


def test_exception_tree() -> None:
    for cls in (
        errors.NotFound,
        errors.JobTooBig,
        errors.ExpectedCRLF,
        errors.Draining,
        errors.NotIgnored,
        errors.ServerError,
    ):
        assert issubclass(cls, errors.CommandFailed)
    for seed in (
        errors.UnexpectedResponse,
        errors.CommandFailed,
        errors.Buried,
        errors.DeadlineSoon,
        errors.TimedOut,
    ):
        assert issubclass(seed, errors.BeanstalkException)
        assert getattr(beanstalkt, seed.__name__) is seed
    assert issubclass(errors.ConnectionLost, ConnectionError)


# --------------------------------------------------------------------------
# interpret: every command in COMMANDS, success and every failure.


def success_wire(spec: CommandSpec) -> tuple[bytes, Any]:
    """A success reply for ``spec`` as the server sends it, and the value it means."""
    word = spec.success
    if spec.result is Result.INTEGER:
        return word + b" 42\r\n", 42
    if spec.result is Result.NAME:
        return word + b" $_();+/.-\r\n", "$_();+/.-"
    if spec.result is Result.NOTHING:
        return word + b"\r\n", None
    if spec.result is Result.JOB:
        body = b"line one\r\nline two\x00\xff"
        return word + b" 7 %d\r\n" % len(body) + body + b"\r\n", Job(7, body)
    if spec.result is Result.MAPPING:
        lines = ["---"]
        expected: dict[str, Any] = {}
        for key in sorted(spec.text_keys):
            lines.append(f"{key}: 0123")
            expected[key] = "0123"
        lines += ["current-jobs-ready: 5", "draining: false", "rusage-utime: 0.25"]
        expected.update({"current-jobs-ready": 5, "draining": False, "rusage-utime": 0.25})
        yaml = ("\n".join(lines) + "\n").encode()
        return b"OK %d\r\n" % len(yaml) + yaml + b"\r\n", expected
    if spec.result is Result.LIST:
        yaml = b"---\n- default\n- 123\n- $_();+/.-\n"
        return b"OK %d\r\n" % len(yaml) + yaml + b"\r\n", ["default", "123", "$_();+/.-"]
    raise AssertionError(f"no sample reply for result kind {spec.result}")


def one_reply(wire: bytes) -> Reply:
    replies = ReplyParser().feed(wire)
    assert len(replies) == 1
    return replies[0]


def command_line_for(name: str) -> bytes:
    return name.encode() + b" 99\r\n"


ALL_COMMANDS = sorted(COMMANDS)


@pytest.mark.parametrize("name", ALL_COMMANDS)
def test_success_reply_gives_the_typed_value(name: str) -> None:
    spec = COMMANDS[name]
    wire, expected = success_wire(spec)
    value = interpret(spec, one_reply(wire), command_line_for(name))
    assert value == expected
    assert type(value) is type(expected)
    if isinstance(expected, dict):
        for key, item in expected.items():
            assert type(value[key]) is type(item), key
    if isinstance(expected, list):
        assert all(type(item) is str for item in value)


@pytest.mark.parametrize("name", ALL_COMMANDS)
def test_failure_words_raise_their_exception(name: str) -> None:
    spec = COMMANDS[name]
    line = command_line_for(name)
    for word, exception in spec.failures.items():
        reply = one_reply(word + b"\r\n")
        with pytest.raises(exception) as info:
            interpret(spec, reply, line)
        error = info.value
        assert type(error) is exception
        assert error.status == word.decode()
        assert error.command == f"{name} 99"
        assert word.decode() in str(error)
        assert f"{name} 99" in str(error)
        # reply_error builds the same exception without raising it.
        built = reply_error(spec, reply, line)
        assert type(built) is exception
        assert (built.status, built.command) == (error.status, error.command)


@pytest.mark.parametrize("name", ALL_COMMANDS)
def test_failure_without_command_line_names_the_command(name: str) -> None:
    spec = COMMANDS[name]
    words = [*spec.failures, *sorted(SERVER_ERRORS)]
    for word in words:
        with pytest.raises(errors.BeanstalkException) as info:
            interpret(spec, one_reply(word + b"\r\n"), None)
        assert info.value.command == name
        assert info.value.status == word.decode()


@pytest.mark.parametrize("name", ALL_COMMANDS)
@pytest.mark.parametrize("word", sorted(SERVER_ERRORS))
def test_server_errors_raise_server_error(name: str, word: bytes) -> None:
    spec = COMMANDS[name]
    with pytest.raises(errors.ServerError) as info:
        interpret(spec, one_reply(word + b"\r\n"), command_line_for(name))
    assert isinstance(info.value, errors.CommandFailed)
    assert info.value.status == word.decode()
    assert info.value.command == f"{name} 99"


# Well-framed replies that are neither the command's success nor one of its failures.
OTHER_REPLIES = [
    b"INSERTED 1\r\n",
    b"USING x\r\n",
    b"RESERVED 1 1\r\nx\r\n",
    b"DELETED\r\n",
    b"NOT_FOUND\r\n",
    b"RELEASED\r\n",
    b"BURIED\r\n",
    b"TOUCHED\r\n",
    b"WATCHING 1\r\n",
    b"NOT_IGNORED\r\n",
    b"FOUND 1 1\r\nx\r\n",
    b"KICKED\r\n",
    b"OK 4\r\n---\n\r\n",
    b"PAUSED\r\n",
    b"TIMED_OUT\r\n",
    b"DEADLINE_SOON\r\n",
    b"DRAINING\r\n",
    b"JOB_TOO_BIG\r\n",
    b"EXPECTED_CRLF\r\n",
]


@pytest.mark.parametrize("name", ALL_COMMANDS)
def test_unexpected_status_raises_unexpected_response(name: str) -> None:
    spec = COMMANDS[name]
    checked = 0
    for wire in OTHER_REPLIES:
        reply = one_reply(wire)
        if reply.status == spec.success or reply.status in spec.failures:
            continue
        checked += 1
        with pytest.raises(errors.UnexpectedResponse) as info:
            interpret(spec, reply, command_line_for(name))
        assert info.value.status == reply.status.decode()
        assert info.value.command == f"{name} 99"
        assert "unexpected reply" in str(info.value)
    assert checked >= 5
    # A status word the protocol does not have at all.
    made_up = Reply(b"WHATEVER", [b"1"], None)
    with pytest.raises(errors.UnexpectedResponse) as info:
        interpret(spec, made_up, command_line_for(name))
    assert info.value.status == "WHATEVER"
    assert not isinstance(info.value, errors.CommandFailed)


@pytest.mark.parametrize("name", ALL_COMMANDS)
def test_malformed_success_reply_raises_unexpected_response(name: str) -> None:
    spec = COMMANDS[name]
    success = spec.success
    if spec.result is Result.INTEGER:
        bad = [
            Reply(success, [], None),
            Reply(success, [b"abc"], None),
            Reply(success, [b""], None),
        ]
    elif spec.result is Result.NAME:
        bad = [Reply(success, [], None), Reply(success, [b"t\xffbe"], None)]
    elif spec.result is Result.NOTHING:
        bad = [Reply(success, [b"extra"], None)]
    elif spec.result is Result.JOB:
        bad = [Reply(success, [b"x"], b"body")]
    elif spec.result is Result.MAPPING:
        bad = [Reply(success, [], b"---\nno colon here\n"), Reply(success, [], b"\xff: 1\n")]
    else:
        bad = [Reply(success, [], b"---\nnot an item\n"), Reply(success, [], b"- \xff\n")]
    for reply in bad:
        with pytest.raises(errors.UnexpectedResponse) as info:
            interpret(spec, reply, command_line_for(name))
        assert info.value.status == success.decode()
        assert info.value.command == f"{name} 99"
        assert f"malformed {success.decode()} reply to '{name} 99'" in str(info.value)


def test_job_body_is_decoded_with_the_encoding() -> None:
    spec = COMMANDS["reserve"]
    body = "zoë\r\n".encode()
    reply = one_reply(b"RESERVED 3 %d\r\n" % len(body) + body + b"\r\n")
    assert interpret(spec, reply, b"reserve\r\n") == Job(3, body)
    job = interpret(spec, reply, b"reserve\r\n", "utf-8")
    assert job == Job(3, "zoë\r\n")
    assert type(job.body) is str


def test_undecodable_job_body_raises_a_beanstalk_exception() -> None:
    spec = COMMANDS["reserve"]
    reply = one_reply(b"RESERVED 3 2\r\n\xff\xfe\r\n")
    with pytest.raises(errors.UndecodableBody) as info:
        interpret(spec, reply, b"reserve\r\n", "utf-8")
    assert isinstance(info.value, errors.UnexpectedResponse)
    assert info.value.command == "reserve"
    assert "utf-8" in str(info.value)
    # Enough to bury or delete the job the server did hand out.
    assert info.value.job_id == 3
    assert info.value.body == b"\xff\xfe"


def test_mapping_text_keys_follow_the_command() -> None:
    body = b"---\nid: 12\nname: 123\ntube: 456\nstate: 789\nversion: 1.12\n"
    reply = Reply(b"OK", [], body)
    job = interpret(COMMANDS["stats-job"], reply, None)
    assert job == {"id": 12, "name": 123, "tube": "456", "state": "789", "version": 1.12}
    tube = interpret(COMMANDS["stats-tube"], reply, None)
    assert tube["name"] == "123"
    assert tube["tube"] == 456
    stats = interpret(COMMANDS["stats"], reply, None)
    assert stats["id"] == "12"
    assert stats["version"] == "1.12"


def test_command_line_is_recorded_without_crlf() -> None:
    spec = COMMANDS["delete"]
    error = reply_error(spec, Reply(b"NOT_FOUND", [], None), b"delete 12\r\n")
    assert isinstance(error, errors.NotFound)
    assert error.command == "delete 12"
    assert str(error) == "NOT_FOUND in reply to 'delete 12'"


# --------------------------------------------------------------------------
# The seed exception names.


def test_buried_on_put_carries_the_job_id() -> None:
    with pytest.raises(errors.Buried) as info:
        interpret(COMMANDS["put"], one_reply(b"BURIED 12\r\n"), None)
    assert info.value.job_id == 12
    assert info.value.status == "BURIED"
    assert info.value.command == "put"
    assert not isinstance(info.value, errors.CommandFailed)


@pytest.mark.parametrize(
    ("name", "wire"),
    [("release", b"BURIED\r\n"), ("put", b"BURIED\r\n"), ("put", b"BURIED x\r\n")],
)
def test_buried_without_a_job_id(name: str, wire: bytes) -> None:
    with pytest.raises(errors.Buried) as info:
        interpret(COMMANDS[name], one_reply(wire), command_line_for(name))
    assert info.value.job_id is None
    assert info.value.status == "BURIED"


def test_bury_success_is_not_an_error() -> None:
    assert interpret(COMMANDS["bury"], one_reply(b"BURIED\r\n"), b"bury 1 5\r\n") is None


@pytest.mark.parametrize("name", ["reserve", "reserve-with-timeout"])
def test_deadline_soon_and_timed_out(name: str) -> None:
    spec = COMMANDS[name]
    line = b"reserve-with-timeout 0\r\n" if name == "reserve-with-timeout" else b"reserve\r\n"
    with pytest.raises(errors.DeadlineSoon) as soon:
        interpret(spec, one_reply(b"DEADLINE_SOON\r\n"), line)
    assert soon.value.status == "DEADLINE_SOON"
    assert soon.value.command == line.decode().rstrip()
    with pytest.raises(errors.TimedOut) as timed_out:
        interpret(spec, one_reply(b"TIMED_OUT\r\n"), line)
    assert timed_out.value.status == "TIMED_OUT"


def test_not_found_is_a_command_failed() -> None:
    with pytest.raises(errors.CommandFailed) as info:
        interpret(COMMANDS["peek"], one_reply(b"NOT_FOUND\r\n"), b"peek 5\r\n")
    assert type(info.value) is errors.NotFound
    assert info.value.status == "NOT_FOUND"


def test_exception_constructors_keep_the_seed_signatures() -> None:
    error = errors.CommandFailed("NOT_FOUND", "delete 3")
    assert (error.status, error.command, str(error)) == (
        "NOT_FOUND",
        "delete 3",
        "NOT_FOUND in reply to 'delete 3'",
    )
    assert str(errors.UnexpectedResponse("X", "y", "custom text")) == "custom text"
    assert errors.Buried().status == "BURIED"
    assert errors.Buried(job_id=4).job_id == 4
    assert str(errors.TimedOut("TIMED_OUT")) == "TIMED_OUT"
    assert str(errors.DeadlineSoon()) == ""


# --------------------------------------------------------------------------
# Job.


def test_job_attributes_and_mapping_access() -> None:
    job = Job(5, b"payload")
    assert job.id == 5
    assert job.body == b"payload"
    assert job["id"] == 5
    assert job["body"] == b"payload"
    assert dict(job) == {"id": 5, "body": b"payload"}
    assert job == {"id": 5, "body": b"payload"}
    assert sorted(job) == ["body", "id"]
    assert isinstance(job, dict)


def test_job_repr_is_readable() -> None:
    assert repr(Job(5, b"payload")) == "Job(id=5, body=b'payload')"
    assert repr(Job(6, "text")) == "Job(id=6, body='text')"


def test_job_with_str_body() -> None:
    job = Job(1, "zoë")
    assert job.body == "zoë"
    assert job["body"] == "zoë"


def test_job_attributes_are_read_only_and_slotted() -> None:
    job = Job(5, b"x")
    with pytest.raises(AttributeError):
        job.id = 6  # type: ignore[misc]
    with pytest.raises(AttributeError):
        job.other = 1  # type: ignore[attr-defined]


def test_job_pickles_and_copies() -> None:
    job = Job(9, b"\x00\r\n")
    for clone in (pickle.loads(pickle.dumps(job)), copy.copy(job), copy.deepcopy(job)):
        assert type(clone) is Job
        assert clone == job
        assert (clone.id, clone.body) == (9, b"\x00\r\n")


@pytest.mark.parametrize(
    ("name", "wire"),
    [
        ("put", b"INSERTED -1\r\n"),
        ("put", b"INSERTED 1_0\r\n"),
        ("put", b"INSERTED +3\r\n"),
        ("watch", b"WATCHING  2\r\n"),
        ("kick", b"KICKED 0x10\r\n"),
        ("reserve", b"RESERVED -4 1\r\nx\r\n"),
        ("peek", b"FOUND 1_2 1\r\nx\r\n"),
    ],
)
def test_reply_numbers_must_be_plain_digits(name: str, wire: bytes) -> None:
    with pytest.raises(errors.UnexpectedResponse, match="malformed"):
        interpret(COMMANDS[name], one_reply(wire), None)


# --------------------------------------------------------------------------
# Replies recorded from beanstalkd 1.13 (quoted YAML values): framed and read
# as the client reads them, all at once and a byte at a time.

RECORDED_1_13 = [
    ("stats", recorded.STATS),
    ("stats-tube", recorded.STATS_TUBE),
    ("stats-tube", recorded.STATS_TUBE_ODD_NAME),
    ("stats-tube", recorded.STATS_TUBE_NUMERIC_NAME),
    ("stats-job", recorded.STATS_JOB),
    ("stats-job", recorded.STATS_JOB_ODD_TUBE),
    ("list-tubes", recorded.LIST_TUBES),
    ("list-tubes", recorded.LIST_TUBES_ODD_NAME),
    ("list-tubes-watched", recorded.LIST_TUBES_WATCHED),
]


def test_recorded_1_13_replies_frame_and_read_as_one_stream() -> None:
    stream = b"".join(wire for _, wire in RECORDED_1_13)
    for chunks in ([stream], [stream[i : i + 1] for i in range(len(stream))]):
        parser = ReplyParser()
        replies = [reply for chunk in chunks for reply in parser.feed(chunk)]
        assert parser.buffered == 0
        values = [
            interpret(COMMANDS[name], reply, None)
            for (name, _), reply in zip(RECORDED_1_13, replies, strict=True)
        ]
        stats, tube, odd_tube, numeric_tube, job, odd_job, tubes, odd_tubes, watched = values
        assert (stats["version"], stats["hostname"], stats["platform"]) == ("1.13", "vm", "x86_64")
        assert stats["os"] == "#1 SMP PREEMPT_DYNAMIC @0"
        assert stats["current-jobs-ready"] == 1
        assert [tube["name"], odd_tube["name"], numeric_tube["name"]] == ["my-tube", ODD, "123"]
        assert (job["tube"], job["state"], job["pri"], odd_job["tube"]) == (
            "my-tube",
            "ready",
            100,
            ODD,
        )
        assert (tubes, odd_tubes, watched) == (
            ["default", "my-tube"],
            ["default", ODD],
            ["default"],
        )


def test_recorded_1_13_bad_format_for_a_reserve_timeout_above_2_31() -> None:
    # What 1.13 answers when a client sends it; beanstalkt refuses such a
    # timeout before sending (tests/test_durations.py), so this is the proof
    # that the bound is the server's, and that the reply would be a ServerError.
    (reply,) = ReplyParser().feed(recorded.RESERVE_TIMEOUT_TOO_LONG)
    line = b"reserve-with-timeout 2147483648\r\n"
    with pytest.raises(errors.ServerError) as caught:
        interpret(COMMANDS["reserve-with-timeout"], reply, line)
    assert (caught.value.status, caught.value.command) == (
        "BAD_FORMAT",
        "reserve-with-timeout 2147483648",
    )
    assert MAX_RESERVE_TIMEOUT == 2**31 - 1
