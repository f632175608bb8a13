"""The one reader of server addresses (beanstalkt.address), as every tool uses it."""

from __future__ import annotations

from typing import Optional

import pytest

from beanstalkt import parse_address as exported
from beanstalkt.address import (
    command_line_servers,
    format_address,
    parse_address,
    unix_socket_path,
)
from beanstalkt.ops.web import parse_address as web_parse_address


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("example.com:11301", ("example.com", 11301)),
        ("example.com", ("example.com", 11300)),
        ("10.0.0.1:1", ("10.0.0.1", 1)),
        ("[::1]:11302", ("::1", 11302)),
        ("[::1]", ("::1", 11300)),
        ("::1", ("::1", 11300)),  # a bare IPv6 address is a host
        ("fe80::1:2", ("fe80::1:2", 11300)),
        ("unix:/run/beanstalkd.sock", ("unix:/run/beanstalkd.sock", 0)),
    ],
)
def test_addresses_people_write(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected
    # Every tool reads them the same way: one function, exported twice.
    assert exported is parse_address
    assert web_parse_address is parse_address


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "a server address is 'host:port'"),
        (":11300", "a server address is 'host:port'"),
        ("host:", "the port is missing"),
        ("host:0", "from 1 to 65535"),
        ("host:x", "from 1 to 65535"),
        (" host:1", "a server address is 'host:port'"),
        ("::1:113000", "write an IPv6 address as '[address]:port'"),
        ("[::1", "an IPv6 address is '[address]:port'"),
        ("[::1]x", "an IPv6 address is '[address]:port'"),
        ("unix:", "a Unix socket address is 'unix:/path'"),
    ],
)
def test_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(
        ValueError, match=repr(text).replace("[", r"\[").replace("]", r"\]")
    ) as caught:
        parse_address(text)
    assert reason in str(caught.value)


def test_default_port_and_non_strings() -> None:
    assert parse_address("web", 8080) == ("web", 8080)
    with pytest.raises(TypeError, match="a server address is a string"):
        parse_address(11300)  # type: ignore[arg-type]


def test_one_spelling_per_server() -> None:
    for text in ("::1", "[::1]", "[::1]:11300"):
        assert format_address(*parse_address(text)) == "[::1]:11300"
    assert format_address("unix:/tmp/b.sock", 0) == "unix:/tmp/b.sock"
    assert format_address("localhost", 11300) == "localhost:11300"
    assert unix_socket_path("unix:/tmp/b.sock") == "/tmp/b.sock"
    assert unix_socket_path("localhost") is None


@pytest.mark.parametrize(
    ("servers", "host", "port", "environ", "expected"),
    [
        (None, None, None, {}, [("localhost", 11300)]),
        (["a:1", "b"], None, None, {"BEANSTALKD_SERVERS": "c:3"}, [("a", 1), ("b", 11300)]),
        (None, "h", None, {"BEANSTALKD_SERVERS": "c:3", "BEANSTALKD_PORT": "7"}, [("h", 7)]),
        (None, None, 9, {"BEANSTALKD_HOST": "e"}, [("e", 9)]),
        (None, None, None, {"BEANSTALKD_SERVERS": " c:3 , d:4 ,"}, [("c", 3), ("d", 4)]),
        (None, None, None, {"BEANSTALKD_HOST": "e", "BEANSTALKD_PORT": "5"}, [("e", 5)]),
    ],
)
def test_command_lines_find_their_servers_by_one_rule(
    servers: Optional[list[str]],
    host: Optional[str],
    port: Optional[int],
    environ: dict[str, str],
    expected: list[tuple[str, int]],
) -> None:
    assert command_line_servers(servers, host, port, environ) == expected


@pytest.mark.parametrize(
    ("servers", "host", "environ", "message"),
    [
        (["a:1"], "h", {}, "give either --server, or --host/--port, not both"),
        (["a:x"], None, {}, "--server: 'a:x': the port must be a number from 1 to 65535"),
        (None, None, {"BEANSTALKD_SERVERS": "::1:1130000"}, "BEANSTALKD_SERVERS: '::1:1130000'"),
        (None, None, {"BEANSTALKD_PORT": "eleven"}, "port must be an integer, not 'eleven'"),
        (None, None, {"BEANSTALKD_PORT": "0"}, "port must be between 1 and 65535, not 0"),
    ],
)
def test_command_line_servers_refused_with_what_is_at_fault(
    servers: Optional[list[str]], host: Optional[str], environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError) as caught:
        command_line_servers(servers, host, None, environ)
    assert message in str(caught.value)
