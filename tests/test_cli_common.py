"""One command-line family (beanstalkt.cli.common): every tool finds its servers alike.

The rule is value-tested first (:func:`find_servers`, no sockets). Then each
tool -- ``beanstalkt`` and its commands, ``top``, ``exporter``, ``web``,
``worker`` -- is run against a real beanstalkd named only by
``BEANSTALKD_SERVERS``, or only by ``BEANSTALKD_HOST``/``BEANSTALKD_PORT``,
and must reach it; each ``-h`` must say where its servers come from; and the
program's options must mean the same before and after a tool's name.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import pytest

from beanstalkt import address
from beanstalkt.cli import common
from beanstalkt.cli.common import CommandLineServers, find_servers, split_global_options
from beanstalkt.testing import BeanstalkdServer, free_port

from .cli_runner import cli, environment

#: Generous: other test processes share the machine.
GUARD = 60.0

#: Every tool, as ``python -m beanstalkt.cmd`` runs it, and the arguments it needs besides servers.
TOOLS = {
    "beanstalkt": ("stats",),
    "top": ("top", "--once", "--interval", "0"),
    "exporter": ("exporter",),
    "web": ("web",),
    "worker": ("worker", "json:loads"),
}


@pytest.fixture(autouse=True)
def _no_stray_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """In-process runs must not see a developer's own BEANSTALKD_* settings."""
    for name in (address.SERVERS_VARIABLE, address.HOST_VARIABLE, address.PORT_VARIABLE):
        monkeypatch.delenv(name, raising=False)
    yield


# --------------------------------------------------------------------------
# The rule, as values.


SERVERS, HOST, PORT = "BEANSTALKD_SERVERS", "BEANSTALKD_HOST", "BEANSTALKD_PORT"


@pytest.mark.parametrize(
    ("servers", "host", "port", "environ", "expected"),
    [
        (None, None, None, {}, ((("localhost", 11300),), "the default")),
        (["a:1", "b"], None, None, {SERVERS: "c:3"}, ((("a", 1), ("b", 11300)), "--server")),
        (None, "h", None, {SERVERS: "c:3"}, ((("h", 11300),), "--host")),
        (None, None, 7, {SERVERS: "c:3"}, ((("localhost", 7),), "--port")),
        (None, None, None, {SERVERS: " c:3, [::1]:4 ,"}, ((("c", 3), ("::1", 4)), "$" + SERVERS)),
        (None, None, None, {SERVERS: "", HOST: "e"}, ((("e", 11300),), "$" + HOST)),
        (None, None, None, {PORT: "9"}, ((("localhost", 9),), "$" + PORT)),
        (None, None, None, {HOST: "e", PORT: "9"}, ((("e", 9),), f"${HOST} and ${PORT}")),
        (None, "h", None, {PORT: "9"}, ((("h", 9),), f"--host and ${PORT}")),
        (None, None, 5, {HOST: "e"}, ((("e", 5),), f"${HOST} and --port")),
        (None, "unix:/run/b.sock", None, {}, ((("unix:/run/b.sock", 11300),), "--host")),
    ],
)  # fmt: skip
def test_the_rule_and_where_each_server_came_from(
    servers: Optional[list[str]],
    host: Optional[str],
    port: Optional[int],
    environ: dict[str, str],
    expected: tuple[tuple[tuple[str, int], ...], str],
) -> None:
    found = find_servers(servers, host, port, environ)
    assert found == CommandLineServers(*expected)
    # The old name gives the same servers, from its old place too.
    assert common.command_line_servers(servers, host, port, environ) == list(expected[0])
    assert address.command_line_servers(servers, host, port, environ) == list(expected[0])


def test_the_rule_reads_the_real_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEANSTALKD_SERVERS", "q:1")
    assert find_servers(None, None, None).describe() == "q:1 (from $BEANSTALKD_SERVERS)"


@pytest.mark.parametrize(
    ("servers", "host", "port", "environ", "message"),
    [
        (["a:1"], "h", None, {}, "give either --server, or --host/--port, not both"),
        (["a:1"], None, 2, {}, "give either --server, or --host/--port, not both"),
        (["a:x"], None, None, {}, "--server: 'a:x': the port must be a number"),
        (None, None, None, {SERVERS: "a:1,h::x"}, "BEANSTALKD_SERVERS: 'h::x'"),
        (None, None, None, {PORT: "eleven"}, "BEANSTALKD_PORT='eleven': port must be an integer"),
        (None, None, None, {PORT: "0"}, "BEANSTALKD_PORT='0': port must be between 1 and 65535"),
    ],
)  # fmt: skip
def test_the_rule_refuses_naming_what_is_at_fault(
    servers: Optional[list[str]],
    host: Optional[str],
    port: Optional[int],
    environ: dict[str, str],
    message: str,
) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("[", r"\[").replace("(", r"\(")):
        find_servers(servers, host, port, environ)


@pytest.mark.parametrize(
    ("words", "leading", "rest"),
    [
        (["top", "--once"], [], ["top", "--once"]),
        (["--host", "h", "top"], ["--host", "h"], ["top"]),
        (["--server=a:1", "--tls", "--server", "b:2", "stats", "--raw"],
         ["--server=a:1", "--tls", "--server", "b:2"], ["stats", "--raw"]),
        (["--tls-ca", "ca.pem", "--port", "1", "web", "--read-only"],
         ["--tls-ca", "ca.pem", "--port", "1"], ["web", "--read-only"]),
        (["--version", "--host", "h"], [], ["--version", "--host", "h"]),
        (["--host"], ["--host"], []),
    ],
)  # fmt: skip
def test_split_global_options(words: list[str], leading: list[str], rest: list[str]) -> None:
    assert split_global_options(words) == (leading, rest)


def test_converters_turn_value_errors_into_usage_errors() -> None:
    assert common.port("11300") == 11300
    assert common.server_text("[::1]:5") == "[::1]:5"
    assert (common.seconds("0"), common.seconds("2.5"), common.positive_seconds("1e-3")) == (
        0.0,
        2.5,
        0.001,
    )
    for convert, text, message in (
        (common.port, "0", "port must be between 1 and 65535, not 0"),
        (common.port, "x", "port must be an integer, not 'x'"),
        (common.server_text, "a:", "'a:': the port is missing after ':'"),
        (common.seconds, "-1", "expected a number of seconds >= 0, not '-1'"),
        (common.seconds, "inf", "expected a number of seconds >= 0, not 'inf'"),
        (common.seconds, "soon", "expected a number of seconds, not 'soon'"),
        (common.positive_seconds, "0", "expected a positive number of seconds, not '0'"),
        (common.positive_seconds, "nan", "expected a positive number of seconds, not 'nan'"),
    ):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            convert(text)


@pytest.mark.parametrize(
    ("text", "default_port", "expected"),
    [
        ("127.0.0.1:9127", None, ("127.0.0.1", 9127)),
        (":9127", None, ("0.0.0.0", 9127)),  # every interface
        ("[::1]:80", None, ("::1", 80)),
        ("localhost", 8080, ("localhost", 8080)),
        (":8081", 8080, ("0.0.0.0", 8081)),
    ],
)
def test_listen_address_of_every_tool_that_serves(
    text: str, default_port: Optional[int], expected: tuple[str, int]
) -> None:
    assert common.listen_address(text, default_port) == expected


@pytest.mark.parametrize(
    ("text", "default_port", "message"),
    [
        ("localhost", None, "--listen 'localhost': give a port"),
        ("unix:/run/x.sock", 8080, "--listen takes HOST:PORT, not a Unix socket"),
        ("host:notaport", 8080, "the port must be a number from 1 to 65535"),
    ],
)
def test_listen_address_refused(text: str, default_port: Optional[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        common.listen_address(text, default_port)


def test_one_exit_code_table_for_every_tool() -> None:
    from beanstalkt.cli import main

    assert main.EXIT_CODES is common.EXIT_CODES
    assert main.EXIT_CANNOT_CONNECT == common.EXIT_CANNOT_CONNECT == 3
    assert common.exit_codes_text().splitlines()[0] == "exit status:"
    assert [common.exit_status(code) for code in (None, 0, 2, "text")] == [0, 0, 2, 2]


# --------------------------------------------------------------------------
# -h of every tool says where its servers come from.


@pytest.mark.parametrize("tool", TOOLS)
@pytest.mark.parametrize(
    ("environ", "options", "said"),
    [
        ({}, [], "This run: localhost:11300 (from the default)."),
        ({"BEANSTALKD_SERVERS": "a:1,b:2"}, [], "This run: a:1, b:2 (from $BEANSTALKD_SERVERS)."),
        ({"BEANSTALKD_HOST": "e"}, [], "This run: e:11300 (from $BEANSTALKD_HOST)."),
        ({"BEANSTALKD_PORT": "9"}, [], "This run: localhost:9 (from $BEANSTALKD_PORT)."),
        ({"BEANSTALKD_SERVERS": "a:1"}, ["--host", "h"], "This run: h:11300 (from --host)."),
        ({"BEANSTALKD_PORT": "x"}, [], "This run: no usable server: BEANSTALKD_PORT='x'"),
    ],
)
def test_help_says_where_the_servers_come_from(
    tool: str, environ: dict[str, str], options: list[str], said: str
) -> None:
    name = TOOLS[tool][0]
    words = [name, *options, "-h"] if tool != "beanstalkt" else [*options, name, "-h"]
    result = cli(None, *words, env=environment(None, **environ))
    assert (result.returncode, result.stderr) == (0, "")
    assert said in " ".join(result.stdout.split())


# --------------------------------------------------------------------------
# Every tool reaches the server named by each environment variable.


def _environ_for(server: BeanstalkdServer, variable: str) -> dict[str, str]:
    if variable == "BEANSTALKD_SERVERS":
        return environment(None, BEANSTALKD_SERVERS=f"{server.host}:{server.port}")
    if variable == "BEANSTALKD_PORT":  # the host is the default, localhost
        return environment(None, BEANSTALKD_PORT=str(server.port))
    return environment(None, BEANSTALKD_HOST=server.host, BEANSTALKD_PORT=str(server.port))


def _address_for(server: BeanstalkdServer, variable: str) -> str:
    """How the tool names the server it was pointed at by ``variable``."""
    host = "localhost" if variable == "BEANSTALKD_PORT" else server.host
    return f"{host}:{server.port}"


VARIABLES = ("BEANSTALKD_SERVERS", "BEANSTALKD_HOST/PORT", "BEANSTALKD_PORT")


@pytest.mark.parametrize("variable", VARIABLES)
def test_beanstalkt_commands_honour_the_environment(
    beanstalkd: BeanstalkdServer, variable: str
) -> None:
    env = _environ_for(beanstalkd, variable)
    assert cli(None, "put", "x", env=env).stdout == "1\n"
    assert json.loads(cli(None, "stats", env=env).stdout)["current-jobs-ready"] == 1


@pytest.mark.parametrize("variable", VARIABLES)
def test_top_honours_the_environment(beanstalkd: BeanstalkdServer, variable: str) -> None:
    result = cli(None, "top", "--once", "--interval", "0", env=_environ_for(beanstalkd, variable))
    assert result.returncode == 0, result.stderr
    assert f"at {_address_for(beanstalkd, variable)}" in result.stdout.splitlines()[0]


def test_top_refuses_several_servers_rather_than_show_one(beanstalkd: BeanstalkdServer) -> None:
    env = environment(None, BEANSTALKD_SERVERS=f"127.0.0.1:{beanstalkd.port},127.0.0.1:1")
    result = cli(None, "top", "--once", env=env)
    assert result.returncode == 2
    assert "works with one server; $BEANSTALKD_SERVERS names 2" in result.stderr


def _serve(tool: str, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "beanstalkt.cmd", tool, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=GUARD)
    return out, err


def _get_when_listening(url: str, process: subprocess.Popen[str]) -> str:
    deadline = time.monotonic() + GUARD
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            with urllib.request.urlopen(url, timeout=GUARD) as response:
                return str(response.read().decode())
        except (ConnectionRefusedError, urllib.error.URLError) as exc:
            reason = getattr(exc, "reason", exc)
            if not isinstance(reason, ConnectionRefusedError):
                raise
        time.sleep(0.05)
    raise AssertionError(f"nothing listened on {url}")


@pytest.mark.parametrize("variable", VARIABLES)
def test_the_exporter_honours_the_environment(beanstalkd: BeanstalkdServer, variable: str) -> None:
    port = free_port()
    env = _environ_for(beanstalkd, variable)
    process = _serve("exporter", env, "--listen", f"127.0.0.1:{port}")
    try:
        text = _get_when_listening(f"http://127.0.0.1:{port}/metrics", process)
    finally:
        _, errors = _stop(process)
    assert process.returncode == 0, errors
    assert f'beanstalkd_up{{server="{_address_for(beanstalkd, variable)}"}} 1.0' in text
    assert 'server="localhost:11300"' not in text


@pytest.mark.parametrize("variable", VARIABLES)
def test_the_web_console_honours_the_environment(
    beanstalkd: BeanstalkdServer, variable: str
) -> None:
    port = free_port()
    process = _serve("web", _environ_for(beanstalkd, variable), "--listen", f"127.0.0.1:{port}")
    try:
        page = _get_when_listening(f"http://127.0.0.1:{port}/", process)
    finally:
        out, errors = _stop(process)
    assert process.returncode == 0, errors
    shown = _address_for(beanstalkd, variable)
    assert out.splitlines()[0].endswith(f" for {shown}")
    assert shown in page and "localhost:11300" not in page


@pytest.mark.parametrize("variable", VARIABLES)
def test_the_worker_honours_the_environment(
    beanstalkd: BeanstalkdServer, variable: str, tmp_path: Path
) -> None:
    (tmp_path / "done_handler.py").write_text(
        textwrap.dedent(
            f"""
            from pathlib import Path

            async def handle(job):
                Path({str(tmp_path / "done")!r}).write_bytes(job.body)
            """
        )
    )
    env = _environ_for(beanstalkd, variable)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    assert cli(None, "put", "the job", env=env).stdout == "1\n"
    process = _serve("worker", env, "done_handler:handle")
    try:
        deadline = time.monotonic() + GUARD
        while not (tmp_path / "done").exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the worker never ran the job"
            time.sleep(0.05)
    finally:
        _, errors = _stop(process)
    assert (tmp_path / "done").read_bytes() == b"the job"
    assert process.returncode == 0, errors


# --------------------------------------------------------------------------
# The program's options before or after a tool's name.


def test_top_options_before_or_after_its_name(beanstalkd: BeanstalkdServer) -> None:
    where = ["--host", beanstalkd.host, "--port", str(beanstalkd.port)]
    before = cli(None, *where, "top", "--once", "--interval", "0", env=environment(None))
    after = cli(None, "top", *where, "--once", "--interval", "0", env=environment(None))
    server = ["--server", f"{beanstalkd.host}:{beanstalkd.port}"]
    with_server = cli(None, *server, "top", "--once", "--interval", "0", env=environment(None))
    outputs = [result.stdout.splitlines()[0] for result in (before, after, with_server)]
    assert [result.returncode for result in (before, after, with_server)] == [0, 0, 0]
    assert all(f"at {beanstalkd.host}:{beanstalkd.port}" in line for line in outputs)


@pytest.mark.parametrize("tool", ["top", "exporter", "web", "worker", "stats", "put"])
def test_tls_options_before_or_after_the_name_are_the_tools(tool: str, tmp_path: Path) -> None:
    """``--tls-ca`` reaches the tool from either side: its check names the missing file."""
    missing = str(tmp_path / "missing.pem")
    rest = {"worker": ["json:loads"], "put": ["body"]}.get(tool, [])
    for words in (
        ["--tls-ca", missing, tool, *rest],
        [tool, "--tls-ca", missing, *rest],
    ):
        result = cli(None, *words, env=environment(None, BEANSTALKD_PORT=str(free_port())))
        assert result.returncode == 2, (words, result.stderr)
        assert f"--tls-ca {missing}: no such file" in result.stderr, words


@pytest.mark.parametrize("tool", ["top", "exporter", "web", "worker", "stats"])
def test_server_options_before_the_name_are_the_tools(tool: str) -> None:
    """``--server`` with ``--port`` is refused by each tool, whichever side each is on."""
    rest = ["json:loads"] if tool == "worker" else []
    for words in (
        ["--server", "a:1", tool, "--port", "2", *rest],
        ["--server", "a:1", "--port", "2", tool, *rest],
        [tool, "--server", "a:1", "--port", "2", *rest],
    ):
        result = cli(None, *words, env=environment(None))
        assert result.returncode == 2, (words, result.stderr)
        assert "give either --server, or --host/--port, not both" in result.stderr, words


def test_commands_take_the_options_after_their_name(beanstalkd: BeanstalkdServer) -> None:
    env = environment(None, BEANSTALKD_PORT=str(free_port()))  # the default: nobody there
    here = f"{beanstalkd.host}:{beanstalkd.port}"
    assert cli(None, "put", "--server", here, "a", env=env).stdout == "1\n"
    assert cli(None, "--server", here, "put", "b", env=env).stdout == "2\n"
    host = ["--host", beanstalkd.host, "--port", str(beanstalkd.port)]
    assert cli(None, "peek", *host, "2", env=env).stdout.count('"body": "b"') == 1
    assert cli(None, *host, "peek", "1", env=env).stdout.count('"body": "a"') == 1


def test_servers_before_and_after_a_command_add_up(servers: list[BeanstalkdServer]) -> None:
    first, second, _ = (f"{server.host}:{server.port}" for server in servers)
    result = cli(None, "--server", first, "stats", "--server", second, env=environment(None))
    assert result.returncode == 0, result.stderr
    assert sorted(json.loads(result.stdout)["servers"]) == sorted([first, second])


def test_beanstalkt_worker_is_the_worker_command_line() -> None:
    ours = cli(None, "worker", "-h", env=environment(None)).stdout
    theirs = cli(None, "-h", env=environment(None), module="beanstalkt.cli.worker").stdout
    assert ours.startswith("usage: python -m beanstalkt.cmd worker [-h]")
    assert theirs.startswith("usage: python -m beanstalkt.worker [-h]")
    assert ours.split("\n", 1)[1:] != [] and "--slots-per-connection" in ours
    assert "beanstalkt worker [-h]" in cli(None, "-h", env=environment(None)).stdout


def test_import_object_finds_a_module_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The console script has its own directory on sys.path, not the current one
    # (python -m has the current one): a handler module beside the user is found all the same.
    package = tmp_path / "importme_app"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "jobs.py").write_text("class Holder:\n    def handle(self, job):\n        pass\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "importme_app", raising=False)
    monkeypatch.delitem(sys.modules, "importme_app.jobs", raising=False)
    found = common.import_object("importme_app.jobs:Holder.handle", "handler", "module:function")
    assert found.__qualname__ == "Holder.handle"
    assert sys.path[0] == str(tmp_path)


def test_import_object_refuses_a_malformed_spec_and_a_missing_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for spec in ("no_colon", ":name", "module:"):
        with pytest.raises(ValueError, match="handler must look like module:function"):
            common.import_object(spec, "handler", "module:function")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModuleNotFoundError):
        common.import_object("surely_no_such_module_here:x", "handler", "module:function")
