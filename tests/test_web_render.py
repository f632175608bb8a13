"""Body display and input checks of the web console, and its tube-scoped commands."""

from __future__ import annotations

import asyncio
import logging
from typing import Optional

import pytest

import beanstalkt
from beanstalkt.ops.web._tube_ops import TubeOps
from beanstalkt.ops.web.guard import RateLimitedLog, host_allowed, origin_allowed, safe_next
from beanstalkt.ops.web.render import (
    BadInput,
    check_tube,
    hex_dump,
    parse_count,
    parse_job_id,
    view_body,
)
from beanstalkt.testing import BeanstalkdServer


def test_json_objects_are_pretty_printed() -> None:
    view = view_body(b'{"b": [1, "\xc3\xbc"], "a": null}')
    assert view.kind == "json"
    assert view.text == '{\n  "b": [\n    1,\n    "ü"\n  ],\n  "a": null\n}'
    assert view.description == "JSON, 27 bytes"


def test_json_scalars_and_broken_json_are_text() -> None:
    assert view_body(b"123").kind == "text"
    assert view_body(b"{not json").kind == "text"
    assert view_body(b"{not json").text == "{not json"


def test_markup_is_kept_verbatim_as_text() -> None:
    body = b"<script>alert(1)</script><b>x</b>"
    view = view_body(body)
    assert (view.kind, view.text, view.size, view.truncated) == ("text", body.decode(), 33, False)


def test_binary_and_control_characters_become_hex() -> None:
    view = view_body(b"ok\x00\xff" + bytes(range(16)))
    assert view.kind == "binary"
    assert view.text.splitlines()[0] == (
        "00000000  6f 6b 00 ff 00 01 02 03 04 05 06 07 08 09 0a 0b  ok.............."
    )
    assert view.text.splitlines()[1].startswith("00000010  0c 0d 0e 0f")
    assert view_body("é".encode("latin-1")).kind == "binary"
    assert view_body(b"tab\tnewline\r\n").kind == "text"


def test_big_bodies_are_truncated_with_their_size() -> None:
    view = view_body(b"a" * 50_000, limit=100)
    assert (view.kind, len(view.text), view.size, view.truncated) == ("text", 100, 50_000, True)
    assert view.description == "text, 50,000 bytes (truncated)"
    binary = view_body(b"\x00" * 10_000, hex_limit=32)
    assert binary.truncated and len(binary.text.splitlines()) == 2
    assert binary.description == "binary, shown as hex, 10,000 bytes (truncated)"
    big_json = view_body(b"[" + b"1," * 10_000 + b"1]", limit=50)
    assert big_json.kind == "json" and big_json.truncated and len(big_json.text) == 50


def test_empty_body() -> None:
    view = view_body(b"")
    assert (view.kind, view.text, view.description) == ("empty", "", "0 bytes")


def test_hex_dump_offsets() -> None:
    assert hex_dump(b"AB", offset=32) == "00000020  " + "41 42".ljust(47) + "  AB"


@pytest.mark.parametrize("name", ["default", "a-b", "x/y$(z);+_.", "A" * 200])
def test_good_tube_names(name: str) -> None:
    assert check_tube(name) == name


@pytest.mark.parametrize("name", ["", "-x", "a b", "é", "A" * 201, "a\r\nuse x"])
def test_bad_tube_names(name: str) -> None:
    with pytest.raises(BadInput):
        check_tube(name)


@pytest.mark.parametrize("text", ["abc", "0", "-1", "1.5", "٣", "1" * 21, ""])
def test_bad_job_ids(text: str) -> None:
    with pytest.raises(BadInput):
        parse_job_id(text)


def test_counts() -> None:
    assert parse_job_id("42") == 42
    assert parse_count("n", " 7 ") == 7
    with pytest.raises(BadInput, match="n must be a whole number from 1 to 4294967295, not 0"):
        parse_count("n", "0", low=1)
    with pytest.raises(BadInput):
        parse_count("n", "4294967296")


async def test_tube_ops_under_many_concurrent_callers(beanstalkd: BeanstalkdServer) -> None:
    """Puts, peeks and kicks for different tubes at once never act on the wrong tube."""
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        ops = TubeOps(client)
        tubes = [f"tube-{n}" for n in range(8)]

        async def fill(tube: str) -> list[int]:
            return [await ops.put(tube, tube.encode(), 10, 0, 60) for _ in range(5)]

        ids = await asyncio.gather(*(fill(tube) for tube in tubes))
        peeked = await asyncio.gather(*(ops.peek_ready(tube) for tube in tubes))
        assert [job.body for job in peeked] == [tube.encode() for tube in tubes]
        assert [job.id for job in peeked] == [job_ids[0] for job_ids in ids]
        for tube in tubes:
            assert (await client.stats_tube(tube))["current-jobs-ready"] == 5
        assert await client.list_tube_used() == "default"

        # Bury two jobs per tube, then kick one per tube, all at once.
        async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as worker:
            for job_ids in ids:
                for job_id in job_ids[:2]:
                    await worker.reserve_job(job_id)
                    await worker.bury(job_id)
        kicked = await asyncio.gather(*(ops.kick(tube, 1) for tube in tubes))
        assert kicked == [1] * len(tubes)
        buried = await asyncio.gather(*(ops.peek_buried(tube) for tube in tubes))
        assert [job.id for job in buried] == [job_ids[1] for job_ids in ids]
        with pytest.raises(beanstalkt.NotFound):
            await ops.peek_delayed(tubes[0])
        assert await client.list_tube_used() == "default"


async def test_move_restores_the_job_when_the_put_fails(beanstalkd: BeanstalkdServer) -> None:
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        ops = TubeOps(client)
        job_id = await ops.put("src", b"x", 3, 0, 60)
        await client.reserve_job(job_id)
        await client.bury(job_id, 3)
        with pytest.raises(ValueError):
            await ops.move_job(job_id, "bad name")  # refused before anything is sent
        stats = await client.stats_job(job_id)
        assert (stats["state"], stats["pri"], stats["tube"]) == ("buried", 3, "src")
        assert await client.list_tube_used() == "default"


# ---------------------------------------------------------------------------
# The network guards' pure rules


@pytest.mark.parametrize(
    ("header", "allowed"),
    [
        ("localhost", True),
        ("LOCALHOST:8080", True),
        ("localhost.", True),
        ("127.0.0.1:8080", True),
        ("[::1]:8080", True),
        ("[::1]", True),
        ("10.1.2.3", True),  # an IP literal cannot be rebound
        ("console.internal", True),  # from --allow-host
        ("rebind.example", False),
        ("rebind.example:8080", False),
        ("localhost.rebind.example", False),
        ("127.0.0.1.nip.io", False),
        ("::1", False),  # not a valid Host header
        ("localhost:http", False),
        ("[::1]x", False),
        ("", False),
    ],
)
def test_host_allow_list(header: str, allowed: bool) -> None:
    assert host_allowed(header, {"localhost", "console.internal"}) is allowed


def test_origin_must_be_this_console_on_an_allowed_host() -> None:
    hosts = {"localhost"}
    assert origin_allowed("http://localhost:8080", "localhost:8080", hosts)
    assert origin_allowed("https://127.0.0.1:8443", "127.0.0.1:8443", hosts)
    assert not origin_allowed("http://localhost:8081", "localhost:8080", hosts)
    assert not origin_allowed("http://rebind.example:8080", "rebind.example:8080", hosts)
    assert not origin_allowed("null", "localhost:8080", hosts)
    assert not origin_allowed("file://", "localhost:8080", hosts)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/", "/"),
        ("/server/0/tube/emails", "/server/0/tube/emails"),
        ("/server/0/tube/a%2Fb?x=1", "/server/0/tube/a%2Fb?x=1"),
        ("", "/"),
        (None, "/"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("/\t/evil.example", "/"),
        ("/\n/evil.example", "/"),
        ("/%09/evil.example", "/"),
        ("/%2F/evil.example", "/"),
        ("/%5Cevil.example", "/"),
        ("https://evil.example/", "/"),
        ("javascript:alert(1)", "/"),
        ("evil.example", "/"),
        ("/caf\u00e9", "/"),
    ],
)
def test_next_accepts_only_paths_of_this_site(target: Optional[str], expected: str) -> None:
    assert safe_next(target) == expected


def test_rate_limited_log_counts_what_it_suppressed(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    limited = RateLimitedLog(logging.getLogger("test.limited"), period=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.limited"):
        assert limited.warning("accept", "cannot accept: %s", "EMFILE")
        for _ in range(500):
            assert not limited.warning("accept", "cannot accept: %s", "EMFILE")
        assert limited.warning("other", "another kind")
        now[0] += 10.0
        assert limited.warning("accept", "cannot accept: %s", "EMFILE")
    assert [record.getMessage() for record in caplog.records] == [
        "cannot accept: EMFILE",
        "another kind",
        "cannot accept: EMFILE (500 more like this since the last report)",
    ]


def test_job_ids_follow_the_protocol_range() -> None:
    assert parse_job_id("18446744073709551615") == 2**64 - 1
    for text in ("0", "18446744073709551616", "99999999999999999999", "1" * 1000, "-1", "1e3"):
        with pytest.raises(BadInput):
            parse_job_id(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (187, "3 m 07 s"), (18120, "5 h 02 m"), (273600, "3 d 04 h"), (-1, "\u2013"),
     (None, "\u2013"), (True, "\u2013")],
)  # fmt: skip
def test_durations_read_with_spaces_and_a_dash_when_unknown(seconds: object, text: str) -> None:
    from beanstalkt.ops.web.render import duration

    assert duration(seconds) == text
