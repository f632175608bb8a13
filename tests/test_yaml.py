"""The YAML reader for ``stats*`` and ``list-*`` replies: hand-written input, then a real server.

The real-server tests fetch the raw reply bytes over a plain socket (no
beanstalkt code involved), parse them with :mod:`beanstalkt.yaml`, and check
every line of the raw text against the parsed result with an independent,
line-by-line reading written here.
"""

from __future__ import annotations

import os
import signal
import socket
import time
import typing
from typing import Any, Union

import pytest

import beanstalkt
from beanstalkt.models import Stats, StatsJob, StatsTube
from beanstalkt.testing import BeanstalkdServer
from beanstalkt.yaml import (
    STATS_JOB_TEXT_KEYS,
    STATS_TEXT_KEYS,
    STATS_TUBE_TEXT_KEYS,
    YAMLError,
    parse_list,
    parse_mapping,
)

from . import recorded_replies as recorded

Scalar = Union[str, int, float, bool]
ODD_TUBE = "$_();+/.-"

# --------------------------------------------------------------------------
# Hand-written input.

STATS_SAMPLE = b"""---
current-jobs-urgent: 0
current-jobs-ready: 12
cmd-put: 123456789012
pid: 5037
version: "1.12"
rusage-utime: 0.001601
rusage-stime: 0.000000
uptime: 3600
binlog-max-size: 10485760
draining: false
id: 6d2c3a96f6a47ddc
hostname: 0123
os: #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)
platform: x86_64
"""


def test_stats_sample_is_typed() -> None:
    stats = parse_mapping(STATS_SAMPLE, STATS_TEXT_KEYS)
    assert stats == {
        "current-jobs-urgent": 0,
        "current-jobs-ready": 12,
        "cmd-put": 123456789012,
        "pid": 5037,
        "version": "1.12",
        "rusage-utime": 0.001601,
        "rusage-stime": 0.0,
        "uptime": 3600,
        "binlog-max-size": 10485760,
        "draining": False,
        "id": "6d2c3a96f6a47ddc",
        "hostname": "0123",
        "os": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)",
        "platform": "x86_64",
    }
    assert list(stats) == [line.split(":")[0] for line in STATS_SAMPLE.decode().split("\n")[1:-1]]
    assert type(stats["current-jobs-urgent"]) is int
    assert type(stats["rusage-utime"]) is float
    assert type(stats["rusage-stime"]) is float
    assert stats["draining"] is False
    assert type(stats["version"]) is str


def test_draining_true_is_a_boolean() -> None:
    assert parse_mapping(b"---\ndraining: true\n")["draining"] is True
    assert parse_mapping(b"---\ndraining: false\n")["draining"] is False


def test_version_is_unquoted_text() -> None:
    assert parse_mapping(b'---\nversion: "1.12"\n', STATS_TEXT_KEYS) == {"version": "1.12"}
    assert parse_mapping(b"---\nversion: 1.13\n", STATS_TEXT_KEYS) == {"version": "1.13"}
    assert parse_mapping(b"---\nversion: 2\n", STATS_TEXT_KEYS) == {"version": "2"}
    assert parse_mapping(b"---\nversion: 'v1'\n", STATS_TEXT_KEYS) == {"version": "v1"}


def test_quoted_values_are_text_whatever_the_key() -> None:
    # In YAML a quoted scalar is a string; the quotes are the type.
    parsed = parse_mapping(b'---\nfuture-field: "1.12"\nother: "42"\nflag: "true"\n')
    assert parsed == {"future-field": "1.12", "other": "42", "flag": "true"}


def test_os_with_hash_is_kept_whole() -> None:
    data = b"---\nos: #1 SMP PREEMPT_DYNAMIC Debian 6.1.129-1 (2025-03-06)\n"
    assert parse_mapping(data, STATS_TEXT_KEYS) == {
        "os": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.129-1 (2025-03-06)"
    }
    # Even without the text key, '#' starts no comment.
    assert parse_mapping(b"---\nos: #1 SMP @0\n") == {"os": "#1 SMP @0"}
    assert parse_mapping(b"---\nos: x # y\n") == {"os": "x # y"}


def test_value_with_colons_keeps_them() -> None:
    assert parse_mapping(b"---\nos: a: b: c\n", STATS_TEXT_KEYS) == {"os": "a: b: c"}


@pytest.mark.parametrize(
    ("key", "raw", "text_keys"),
    [
        ("hostname", "0123", STATS_TEXT_KEYS),
        ("hostname", "12345", STATS_TEXT_KEYS),
        ("hostname", "true", STATS_TEXT_KEYS),
        ("id", "1234567890", STATS_TEXT_KEYS),
        ("id", "1.5", STATS_TEXT_KEYS),
        ("platform", "64", STATS_TEXT_KEYS),
        ("os", "6", STATS_TEXT_KEYS),
        ("name", "123", STATS_TUBE_TEXT_KEYS),
        ("name", "0.5", STATS_TUBE_TEXT_KEYS),
        ("name", "false", STATS_TUBE_TEXT_KEYS),
        ("name", "007", STATS_TUBE_TEXT_KEYS),
        ("tube", "123", STATS_JOB_TEXT_KEYS),
        ("tube", "true", STATS_JOB_TEXT_KEYS),
        ("state", "1", STATS_JOB_TEXT_KEYS),
    ],
)
def test_text_keys_stay_strings_even_when_numeric_looking(
    key: str, raw: str, text_keys: frozenset[str]
) -> None:
    parsed = parse_mapping(f"---\n{key}: {raw}\n".encode(), text_keys)
    assert parsed == {key: raw}
    assert type(parsed[key]) is str


def test_stats_tube_sample() -> None:
    data = b"""---
name: 123
current-jobs-urgent: 1
current-jobs-ready: 1
total-jobs: 1
pause: 0
pause-time-left: 0
"""
    assert parse_mapping(data, STATS_TUBE_TEXT_KEYS) == {
        "name": "123",
        "current-jobs-urgent": 1,
        "current-jobs-ready": 1,
        "total-jobs": 1,
        "pause": 0,
        "pause-time-left": 0,
    }


def test_stats_job_sample() -> None:
    data = b"---\nid: 1\ntube: 123\nstate: ready\npri: 4294967295\nttr: 10\nfile: 0\n"
    job = parse_mapping(data, STATS_JOB_TEXT_KEYS)
    assert job == {
        "id": 1,
        "tube": "123",
        "state": "ready",
        "pri": 4294967295,
        "ttr": 10,
        "file": 0,
    }
    assert type(job["id"]) is int


def test_numbers_without_text_keys() -> None:
    parsed = parse_mapping(b"---\na: 0\nb: -5\nc: 1.5\nd: 007\ne: 18446744073709551615\n")
    assert parsed == {"a": 0, "b": -5, "c": 1.5, "d": 7, "e": 18446744073709551615}
    assert type(parsed["c"]) is float
    # Not numbers: left as text.
    parsed = parse_mapping(b"---\na: 1e5\nb: 0x10\nc: 1.\nd: -\ne: abc\nf: \xd9\xa3\n")
    assert parsed == {"a": "1e5", "b": "0x10", "c": "1.", "d": "-", "e": "abc", "f": "\u0663"}


def test_rusage_values_are_floats() -> None:
    parsed = parse_mapping(b"---\nrusage-utime: 0\nrusage-stime: 12.500000\nrusage-maxrss: 7\n")
    assert parsed == {"rusage-utime": 0.0, "rusage-stime": 12.5, "rusage-maxrss": 7.0}
    assert all(type(value) is float for value in parsed.values())


def test_header_and_blank_lines() -> None:
    assert parse_mapping(b"---\n") == {}
    assert parse_mapping(b"") == {}
    assert parse_mapping(b"---\r\na: 1\r\n\r\nb: 2\r\n") == {"a": 1, "b": 2}
    assert parse_mapping(b"a: 1\n") == {"a": 1}  # the header is optional
    assert parse_mapping(b"--- \na: 1\n") == {"a": 1}


def test_list_items_are_always_strings() -> None:
    items = parse_list(b"---\n- default\n- 123\n- 1.5\n- true\n- $_();+/.-\n- 007\n")
    assert items == ["default", "123", "1.5", "true", "$_();+/.-", "007"]
    assert all(type(item) is str for item in items)


def test_list_keeps_order_and_duplicates() -> None:
    assert parse_list(b"---\n- b\n- a\n- b\n") == ["b", "a", "b"]


def test_empty_list() -> None:
    assert parse_list(b"---\n") == []
    assert parse_list(b"") == []
    assert parse_list(b"---\n\n") == []


def test_list_without_header() -> None:
    assert parse_list(b"- default\n") == ["default"]


@pytest.mark.parametrize(
    "data",
    [
        b"---\nno colon here\n",
        b"---\n: value\n",
        b"---\n key: value\n",
        b"---\nkey : value\n",
        b"---\n- item\n",
        b"---\na: \xff\n",
    ],
)
def test_malformed_mapping_raises_yaml_error(data: bytes) -> None:
    with pytest.raises(YAMLError):
        parse_mapping(data)


@pytest.mark.parametrize(
    "data",
    [b"---\n-default\n", b"---\nkey: value\n", b"---\n * x\n", b"---\n- \xfe\n"],
)
def test_malformed_list_raises_yaml_error(data: bytes) -> None:
    with pytest.raises(YAMLError):
        parse_list(data)


def test_yaml_error_is_a_value_error() -> None:
    assert issubclass(YAMLError, ValueError)


# --------------------------------------------------------------------------
# Recorded from beanstalkd 1.13 (tests/recorded_replies.py): quoted values.


def test_recorded_1_13_stats_unquotes_and_types_every_value() -> None:
    stats = parse_mapping(recorded.body(recorded.STATS), STATS_TEXT_KEYS)
    # The same keys as 1.12, the ones the Stats TypedDict declares.
    assert set(stats) == set(typing.get_type_hints(Stats))
    text = {key: stats[key] for key in ("version", "id", "hostname", "os", "platform")}
    assert text == {
        "version": "1.13",
        "id": "fea0fba38ebef001",
        "hostname": "vm",
        "os": "#1 SMP PREEMPT_DYNAMIC @0",
        "platform": "x86_64",
    }
    assert (stats["rusage-utime"], stats["rusage-stime"]) == (0.000972, 0.0)
    assert (stats["draining"], stats["pid"], stats["max-job-size"]) == (False, 9718, 65535)
    others = set(stats) - set(text) - {"rusage-utime", "rusage-stime", "draining"}
    assert all(type(stats[key]) is int for key in others), stats


@pytest.mark.parametrize(
    ("reply", "name"),
    [
        (recorded.STATS_TUBE, "my-tube"),
        (recorded.STATS_TUBE_ODD_NAME, ODD_TUBE),
        (recorded.STATS_TUBE_NUMERIC_NAME, "123"),
    ],
)
def test_recorded_1_13_stats_tube_name_is_unquoted_text(reply: bytes, name: str) -> None:
    tube = parse_mapping(recorded.body(reply), STATS_TUBE_TEXT_KEYS)
    assert set(tube) == set(typing.get_type_hints(StatsTube))
    assert (tube["name"], type(tube["name"])) == (name, str)
    assert all(type(value) is int for key, value in tube.items() if key != "name")
    # Quotes make a value text even without the text key.
    assert parse_mapping(recorded.body(reply))["name"] == name


@pytest.mark.parametrize(
    ("reply", "tube", "priority"),
    [(recorded.STATS_JOB, "my-tube", 100), (recorded.STATS_JOB_ODD_TUBE, ODD_TUBE, 0)],
)
def test_recorded_1_13_stats_job_tube_is_unquoted_text(
    reply: bytes, tube: str, priority: int
) -> None:
    job = parse_mapping(recorded.body(reply), STATS_JOB_TEXT_KEYS)
    assert set(job) == set(typing.get_type_hints(StatsJob))
    assert (job["id"], job["tube"], job["state"], job["pri"]) == (1, tube, "ready", priority)
    assert (job["ttr"], job["time-left"], job["reserves"]) == (60, 0, 0)


@pytest.mark.parametrize(
    ("reply", "names"),
    [
        (recorded.LIST_TUBES, ["default", "my-tube"]),
        (recorded.LIST_TUBES_ODD_NAME, ["default", ODD_TUBE]),
        (recorded.LIST_TUBES_WATCHED, ["default"]),
    ],
)
def test_recorded_1_13_tube_lists(reply: bytes, names: list[str]) -> None:
    assert parse_list(recorded.body(reply)) == names


# --------------------------------------------------------------------------
# A real server, read with a plain socket.


class RawConnection:
    """A bare beanstalkd connection: send a line, read one reply (and its body)."""

    def __init__(self, server: BeanstalkdServer) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=10)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def _read_line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            assert chunk, "server closed the connection"
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def read(self, size: int) -> bytes:
        while len(self.buffer) < size:
            chunk = self.sock.recv(65536)
            assert chunk, "server closed the connection"
            self.buffer += chunk
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def line(self, command: bytes) -> bytes:
        """Send a command; return its one-line reply."""
        self.sock.sendall(command + b"\r\n")
        return self._read_line()

    def body(self, command: bytes) -> bytes:
        """Send a command answered by ``OK <bytes>``; return the raw body."""
        self.sock.sendall(command + b"\r\n")
        line = self._read_line()
        word, _, size = line.partition(b" ")
        assert word == b"OK", line
        data = self.read(int(size) + 2)
        assert data.endswith(b"\r\n")
        return data[:-2]


@pytest.fixture
def raw(beanstalkd: BeanstalkdServer) -> typing.Iterator[RawConnection]:
    connection = RawConnection(beanstalkd)
    yield connection
    connection.close()


def raw_pairs(data: bytes) -> list[tuple[str, str]]:
    """The ``key: value`` lines of a raw mapping, read independently of beanstalkt."""
    lines = data.decode().split("\n")
    assert lines[0] == "---"
    assert lines[-1] == ""
    pairs = []
    for line in lines[1:-1]:
        key, separator, value = line.partition(": ")
        assert separator, line
        pairs.append((key, value))
    return pairs


def expected_value(key: str, value: str, text_keys: frozenset[str]) -> Scalar:
    if key in text_keys:
        return value[1:-1] if value.startswith('"') and value.endswith('"') else value
    if key.startswith("rusage-"):
        return float(value)
    if value in ("true", "false"):
        return value == "true"
    return int(value)  # every other value beanstalkd sends is an integer


def check_mapping(data: bytes, text_keys: frozenset[str], typed: Any) -> dict[str, Any]:
    """Parse ``data`` and compare it, line by line, with the raw text."""
    parsed: dict[str, Any] = parse_mapping(data, text_keys)
    pairs = raw_pairs(data)
    assert list(parsed) == [key for key, _ in pairs]  # every key, in order, no extra
    assert len({key for key, _ in pairs}) == len(pairs)
    hints = typing.get_type_hints(typed)
    for key, value in pairs:
        expected = expected_value(key, value, text_keys)
        assert parsed[key] == expected, (key, value)
        assert type(parsed[key]) is type(expected), (key, value)
        # The TypedDict of the reply declares the key with this type.
        assert hints.get(key) is type(expected), (key, hints.get(key))
    return parsed


def check_list(data: bytes) -> list[str]:
    parsed = parse_list(data)
    lines = data.decode().split("\n")
    assert lines[0] == "---"
    assert lines[-1] == ""
    assert all(line.startswith("- ") for line in lines[1:-1])
    assert parsed == [line[2:] for line in lines[1:-1]]
    assert all(type(item) is str for item in parsed)
    return parsed


def test_raw_stats(raw: RawConnection) -> None:
    stats = check_mapping(raw.body(b"stats"), STATS_TEXT_KEYS, Stats)
    assert stats["draining"] is False
    assert stats["current-connections"] >= 1
    again = check_mapping(raw.body(b"stats"), STATS_TEXT_KEYS, Stats)
    assert again["cmd-stats"] == stats["cmd-stats"] + 1
    assert again["pid"] == stats["pid"]
    assert isinstance(stats["version"], str)
    assert stats["version"]
    assert not stats["version"].startswith('"')
    # beanstalkd reports uname(2) fields verbatim, and runs on this machine.
    uname = os.uname()
    assert stats["hostname"] == uname.nodename
    assert stats["os"] == uname.version
    assert stats["platform"] == uname.machine


def test_raw_stats_os_line_is_kept_whole(raw: RawConnection) -> None:
    data = raw.body(b"stats")
    stats = parse_mapping(data, STATS_TEXT_KEYS)
    (os_line,) = [line for line in data.decode().split("\n") if line.startswith("os: ")]
    written = os_line[len("os: ") :]
    if written.startswith('"'):  # beanstalkd 1.13 quotes it (1.12 does not)
        written = written[1:-1]
    assert stats["os"] == written


def test_raw_stats_while_draining(beanstalkd: BeanstalkdServer, raw: RawConnection) -> None:
    assert beanstalkd.process is not None
    beanstalkd.process.send_signal(signal.SIGUSR1)  # beanstalkd enters drain mode
    deadline = time.monotonic() + 5
    while True:
        stats = check_mapping(raw.body(b"stats"), STATS_TEXT_KEYS, Stats)
        if stats["draining"] is True or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert stats["draining"] is True
    assert raw.line(b"put 0 0 1 1\r\nx") == b"DRAINING"


def test_raw_stats_tube(raw: RawConnection) -> None:
    tube = check_mapping(raw.body(b"stats-tube default"), STATS_TUBE_TEXT_KEYS, StatsTube)
    assert tube["name"] == "default"
    assert tube["current-watching"] == 1


@pytest.mark.parametrize("name", ["123", "0123", "1.5", "true", ODD_TUBE, "(x)"])
def test_raw_stats_tube_with_odd_names(raw: RawConnection, name: str) -> None:
    assert raw.line(b"use " + name.encode()) == b"USING " + name.encode()
    assert raw.line(b"put 5 0 60 3\r\nabc").startswith(b"INSERTED ")
    tube = check_mapping(raw.body(b"stats-tube " + name.encode()), STATS_TUBE_TEXT_KEYS, StatsTube)
    assert tube["name"] == name
    assert type(tube["name"]) is str
    assert tube["current-jobs-ready"] == 1
    assert tube["current-jobs-urgent"] == 1


def test_raw_stats_job(raw: RawConnection) -> None:
    assert raw.line(b"use 123") == b"USING 123"
    job_id = int(raw.line(b"put 4294967295 0 60 5\r\nhello").split()[1])
    delayed_id = int(raw.line(b"put 7 3600 30 1\r\nx").split()[1])
    job = check_mapping(raw.body(b"stats-job %d" % job_id), STATS_JOB_TEXT_KEYS, StatsJob)
    assert job["id"] == job_id
    assert job["tube"] == "123"
    assert job["state"] == "ready"
    assert job["pri"] == 4294967295
    assert job["ttr"] == 60
    delayed = check_mapping(raw.body(b"stats-job %d" % delayed_id), STATS_JOB_TEXT_KEYS, StatsJob)
    assert (delayed["state"], delayed["delay"], delayed["pri"]) == ("delayed", 3600, 7)
    assert raw.line(b"watch 123") == b"WATCHING 2"
    assert raw.line(b"reserve-job %d" % job_id) == b"RESERVED %d 5" % job_id
    assert raw.read(7) == b"hello\r\n"
    reserved = check_mapping(raw.body(b"stats-job %d" % job_id), STATS_JOB_TEXT_KEYS, StatsJob)
    assert reserved["state"] == "reserved"
    assert reserved["reserves"] == 1
    assert raw.line(b"bury %d 3" % job_id) == b"BURIED"
    buried = check_mapping(raw.body(b"stats-job %d" % job_id), STATS_JOB_TEXT_KEYS, StatsJob)
    assert (buried["state"], buried["buries"], buried["pri"]) == ("buried", 1, 3)


def test_raw_list_tubes(raw: RawConnection) -> None:
    assert check_list(raw.body(b"list-tubes")) == ["default"]
    assert check_list(raw.body(b"list-tubes-watched")) == ["default"]
    assert raw.line(b"watch 123") == b"WATCHING 2"
    assert raw.line(b"watch " + ODD_TUBE.encode()) == b"WATCHING 3"
    assert raw.line(b"use 0123") == b"USING 0123"
    tubes = check_list(raw.body(b"list-tubes"))
    assert sorted(tubes) == sorted(["default", "123", ODD_TUBE, "0123"])
    watched = check_list(raw.body(b"list-tubes-watched"))
    assert watched == ["default", "123", ODD_TUBE]
    assert raw.line(b"ignore default") == b"WATCHING 2"
    # beanstalkd does not keep the watch list in order once a tube is ignored.
    assert sorted(check_list(raw.body(b"list-tubes-watched"))) == sorted(["123", ODD_TUBE])


# --------------------------------------------------------------------------
# The client's results equal the parse of the raw text.

VOLATILE_STATS = {
    "uptime",
    "rusage-utime",
    "rusage-stime",
    "cmd-stats",
    "cmd-list-tubes",
    "cmd-stats-tube",
    "cmd-stats-job",
}


def assert_same_types(left: dict[str, Any], right: dict[str, Any]) -> None:
    assert list(left) == list(right)
    for key in left:
        assert type(left[key]) is type(right[key]), key


async def test_client_stats_equal_raw_parse(
    beanstalkd: BeanstalkdServer, raw: RawConnection
) -> None:
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        from_client: dict[str, Any] = dict(await client.stats())
        from_raw = check_mapping(raw.body(b"stats"), STATS_TEXT_KEYS, Stats)
        assert_same_types(from_client, from_raw)
        for key, value in from_raw.items():
            if key in VOLATILE_STATS:
                continue
            assert from_client[key] == value, key
        assert from_raw["cmd-stats"] == from_client["cmd-stats"] + 1


async def test_client_stats_tube_and_list_tubes_equal_raw_parse(
    beanstalkd: BeanstalkdServer, raw: RawConnection
) -> None:
    async with beanstalkt.Client(
        beanstalkd.host, beanstalkd.port, use="123", watch=[ODD_TUBE, "0123"]
    ) as client:
        await client.put(b"job", priority=3)
        for name in ("default", "123", ODD_TUBE, "0123"):
            from_client = dict(await client.stats_tube(name))
            from_raw = check_mapping(
                raw.body(b"stats-tube " + name.encode()), STATS_TUBE_TEXT_KEYS, StatsTube
            )
            assert from_client == from_raw
            assert_same_types(from_client, from_raw)
            assert from_client["name"] == name
        from_client_tubes = await client.list_tubes()
        assert from_client_tubes == check_list(raw.body(b"list-tubes"))
        assert sorted(from_client_tubes) == sorted(["default", "123", ODD_TUBE, "0123"])
        assert all(type(item) is str for item in from_client_tubes)
        assert raw.line(b"watch " + ODD_TUBE.encode()) == b"WATCHING 2"
        assert raw.line(b"watch 0123") == b"WATCHING 3"
        assert raw.line(b"ignore default") == b"WATCHING 2"
        watched = await client.list_tubes_watched()
        assert sorted(watched) == sorted(check_list(raw.body(b"list-tubes-watched")))
        assert sorted(watched) == sorted([ODD_TUBE, "0123"])
        assert all(type(item) is str for item in watched)
        assert await client.list_tube_used() == "123"


async def test_client_stats_job_equal_raw_parse(
    beanstalkd: BeanstalkdServer, raw: RawConnection
) -> None:
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="123") as client:
        job_id = await client.put(b"payload", priority=9, delay=120, ttr=30)
        for _ in range(3):  # age and time-left tick each second: retry across a tick
            from_client = dict(await client.stats_job(job_id))
            from_raw = check_mapping(
                raw.body(b"stats-job %d" % job_id), STATS_JOB_TEXT_KEYS, StatsJob
            )
            if from_client == from_raw:
                break
        assert from_client == from_raw
        assert_same_types(from_client, from_raw)
        assert (from_client["id"], from_client["tube"], from_client["state"]) == (
            job_id,
            "123",
            "delayed",
        )
        assert (from_client["pri"], from_client["delay"], from_client["ttr"]) == (9, 120, 30)
