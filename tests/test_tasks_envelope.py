"""The task envelope, results and failure records as plain values (no server)."""

from __future__ import annotations

import datetime
import json

import pytest

from beanstalkt.tasks.envelope import (
    Envelope,
    EnvelopeError,
    decode,
    decode_result,
    encode_failure,
    encode_result,
    format_time,
    parse_time,
)


def test_an_envelope_round_trips_and_reads_as_plain_json() -> None:
    moment = datetime.datetime(2026, 12, 4, 18, 0, 0, 123456, tzinfo=datetime.timezone.utc)
    envelope = Envelope(
        name="app.add",
        args=[1, [2, 3]],
        kwargs={"x": {"y": None}},
        id="abc",
        enqueued_at=moment,
        attempts=2,
        headers={"traceparent": "00-1-2-01"},
        reply_to="tasks.reply.1",
    )
    body = envelope.encode()
    assert json.loads(body) == {
        "v": 1,
        "id": "abc",
        "name": "app.add",
        "args": [1, [2, 3]],
        "kwargs": {"x": {"y": None}},
        "enqueued_at": "2026-12-04T18:00:00.123456Z",
        "attempts": 2,
        "headers": {"traceparent": "00-1-2-01"},
        "reply_to": "tasks.reply.1",
    }
    assert decode(body) == envelope
    assert decode(body.decode()) == envelope  # a str body (a worker with an encoding)


def test_a_minimal_hand_written_envelope_gets_the_defaults() -> None:
    envelope = decode(b'{"v": 1, "id": "1", "name": "n", "extra": "ignored"}')
    assert (envelope.args, envelope.kwargs, envelope.headers) == ([], {}, {})
    assert (envelope.attempts, envelope.reply_to) == (0, None)
    assert envelope.enqueued_at.tzinfo is not None


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object but list"),
        (b'{"id": "1", "name": "n"}', "envelope version None is not 1"),
        (b'{"v": 2, "id": "1", "name": "n"}', "envelope version 2 is not 1"),
        (b'{"v": 1, "id": "1", "name": ""}', "'name' must be a non-empty string"),
        (b'{"v": 1, "id": 7, "name": "n"}', "'id' must be a string"),
        (b'{"v": 1, "id": "1", "name": "n", "args": {}}', "'args' must be a list"),
        (b'{"v": 1, "id": "1", "name": "n", "kwargs": []}', "'kwargs' must be an object"),
        (b'{"v": 1, "id": "1", "name": "n", "headers": {"a": 1}}', "'headers' must be"),
        (b'{"v": 1, "id": "1", "name": "n", "reply_to": "a b"}', "'reply_to':"),
        (b'{"v": 1, "id": "1", "name": "n", "attempts": -1}', "'attempts' must be"),
        (b'{"v": 1, "id": "1", "name": "n", "attempts": true}', "'attempts' must be"),
        (b'{"v": 1, "id": "1", "name": "n", "enqueued_at": "yesterday"}', "not an ISO 8601"),
    ],
)
def test_what_is_not_an_envelope_says_why(body: bytes, says: str) -> None:
    with pytest.raises(EnvelopeError, match=says.replace("(", r"\(")):
        decode(body)


def test_encoding_refuses_what_a_reader_would_refuse() -> None:
    with pytest.raises(EnvelopeError, match="headers map strings to strings"):
        Envelope(name="n", headers={"a": 1}).encode()  # type: ignore[dict-item]
    with pytest.raises(EnvelopeError, match="task id"):
        Envelope(name="n", id="").encode()
    with pytest.raises(ValueError, match="tube name"):
        Envelope(name="n", reply_to="bad tube").encode()


def test_results_and_failures() -> None:
    ok = decode_result(encode_result("t1", {"total": 5}))
    assert (ok.id, ok.ok, ok.value) == ("t1", True, {"total": 5})
    failed = decode_result(encode_failure("t2", "ValueError", "bad"))
    assert (failed.ok, failed.error_type, failed.error_message) == (False, "ValueError", "bad")
    with pytest.raises(EnvelopeError, match="result"):
        encode_result("t3", object())
    for bad in (b"{}", b'{"v": 1, "id": "x"}', b'{"v": 1, "id": "x", "ok": false}', b"[]"):
        with pytest.raises(EnvelopeError):
            decode_result(bad)


def test_times_are_utc_with_a_z() -> None:
    naive = datetime.datetime(2026, 1, 1, 12, 0)
    assert format_time(naive) == "2026-01-01T12:00:00.000000Z"
    paris = datetime.timezone(datetime.timedelta(hours=1))
    assert format_time(datetime.datetime(2026, 1, 1, 13, 0, tzinfo=paris)).startswith(
        "2026-01-01T12:00:00"
    )
    assert parse_time("2026-01-01T12:00:00Z") == datetime.datetime(
        2026, 1, 1, 12, tzinfo=datetime.timezone.utc
    )
