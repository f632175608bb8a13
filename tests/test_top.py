"""``beanstalkt top``: the pure table logic, ``--once`` against a real server, and the live
view driven in a real terminal (tmux ``send-keys`` / ``capture-pane``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Optional

import pytest

import beanstalkt
from beanstalkt.models import Stats, StatsTube
from beanstalkt.ops import top
from beanstalkt.ops.monitor import ServerSnapshot, TubeSnapshot
from beanstalkt.testing import BeanstalkdServer, free_port

from .fake_server import FakeServer, MisbehavingStats

# Waiting for something that should happen well before this means it never will.
GUARD = 30.0


def tube(name: str, **stats: int) -> TubeSnapshot:
    values = {"name": name, **{key.replace("_", "-"): value for key, value in stats.items()}}
    return TubeSnapshot(name, StatsTube(**values))  # type: ignore[typeddict-item]


def snapshot(taken_at: float, *tubes: TubeSnapshot) -> ServerSnapshot:
    return ServerSnapshot("127.0.0.1:11300", taken_at, Stats(), tubes)


# ----------------------------------------------------------------------
# The pure part.


def test_rates_come_from_two_snapshots() -> None:
    before = snapshot(
        100.0,
        tube("steady", total_jobs=10, cmd_delete=4),
        tube("recreated", total_jobs=50, cmd_delete=50),
    )
    after = snapshot(
        102.0,
        tube("steady", total_jobs=30, cmd_delete=5),
        tube("recreated", total_jobs=6, cmd_delete=2),  # deleted and made anew in between
        tube("new", total_jobs=4, cmd_delete=0),
    )
    rows = {row.tube: row for row in top.tube_rows(after, before)}
    assert (rows["steady"].puts, rows["steady"].deletes) == (10.0, 0.5)
    assert (rows["recreated"].puts, rows["recreated"].deletes) == (3.0, 1.0)
    assert (rows["new"].puts, rows["new"].deletes) == (2.0, 0.0)
    first = top.tube_rows(before)
    assert [(row.puts, row.deletes) for row in first] == [(None, None), (None, None)]


def test_rows_sort_by_any_column() -> None:
    rows = [
        top.TubeRow("b", 5, 0, 0, 0, None, None, None, 0),
        top.TubeRow("a", 5, 1, 0, 0, 2.0, 1.0, 7, 30),
        top.TubeRow("c", 9, 0, 0, 2, 0.5, 0.0, 3, 0),
    ]
    assert [r.tube for r in top.sort_rows(rows, "tube")] == ["a", "b", "c"]
    # Numbers largest first, ties by name, unknown values last.
    assert [r.tube for r in top.sort_rows(rows, "ready")] == ["c", "a", "b"]
    assert [r.tube for r in top.sort_rows(rows, "puts")] == ["a", "c", "b"]
    assert [r.tube for r in top.sort_rows(rows, "oldest")] == ["a", "c", "b"]
    assert [r.tube for r in top.sort_rows(rows, "paused")] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="unknown column 'nope'"):
        top.sort_rows(rows, "nope")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (59, "59s"), (60, "1m00s"), (187, "3m07s"), (3600, "1h00m"), (18120, "5h02m"),
     (86399, "23h59m"), (273600, "3d04h")],
)  # fmt: skip
def test_durations_are_short(seconds: int, text: str) -> None:
    assert top.format_duration(seconds) == text


# ----------------------------------------------------------------------
# --once against a real server.


async def fill(server: BeanstalkdServer) -> None:
    """emails: 3 ready, 1 reserved (then released), 1 delayed, 1 buried; reports: paused."""
    async with beanstalkt.Client(server.host, server.port, use="emails") as producer:
        for body in (b"a", b"b", b"c", b"d"):
            await producer.put(body)
        await producer.put(b"e", delay=3600)
        await producer.use("reports")
        await producer.put(b"report")
        await producer.pause_tube("reports", 600)
    async with beanstalkt.Client(server.host, server.port, watch="emails") as worker:
        job = await worker.reserve(timeout=0)
        await worker.bury(job.id)


def table(output: str) -> list[list[str]]:
    """The rows of the table (after the server line and the heading), split into cells."""
    lines = output.splitlines()
    return [line.split() for line in lines[2:]]


def test_once_shows_the_server(
    beanstalkd: BeanstalkdServer, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(fill(beanstalkd))
    server = f"{beanstalkd.host}:{beanstalkd.port}"
    assert top.main(["--server", server, "--once", "--interval", "0"]) == 0
    output = capsys.readouterr().out
    lines = output.splitlines()
    assert re.fullmatch(
        rf"beanstalkd 1\.\d+\S* at {re.escape(server)} \| up \d+s \| \d+ connections "
        r"\(0 producing, 0 working, 0 waiting\) \| 3 tubes",
        lines[0],
    ), lines[0]
    assert lines[1].split() == [
        "TUBE*", "READY", "RESERVED", "DELAYED", "BURIED", "PUTS/S", "DELETES/S", "OLDEST",
        "PAUSED",
    ]  # fmt: skip
    rows = table(output)
    # Without an interval there is nothing to compute a rate from: "-".
    assert [row[:7] for row in rows] == [
        ["default", "0", "0", "0", "0", "-", "-"],
        ["emails", "3", "0", "1", "1", "-", "-"],
        ["reports", "1", "0", "0", "0", "-", "-"],
    ]
    assert rows[0][7:] == ["-", "-"]  # no ready job: no age
    assert re.fullmatch(r"\d+s", rows[1][7]) and rows[1][8] == "-"
    assert re.fullmatch(r"\d+s", rows[2][7]) and re.fullmatch(r"(9|10)m\d\ds", rows[2][8])


def test_once_sorted_and_filtered(
    beanstalkd: BeanstalkdServer, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(fill(beanstalkd))
    argv = ["--host", beanstalkd.host, "--port", str(beanstalkd.port), "--once", "--interval", "0"]
    assert top.main([*argv, "--sort", "ready"]) == 0
    output = capsys.readouterr().out
    assert [row[0] for row in table(output)] == ["emails", "reports", "default"]
    assert "READY*" in output.splitlines()[1]
    assert top.main([*argv, "--tubes", "rep*,nothing"]) == 0
    assert [row[0] for row in table(capsys.readouterr().out)] == ["reports"]


def test_once_measures_rates_over_the_interval(beanstalkd: BeanstalkdServer) -> None:
    """End to end, as users run it: a subprocess, while another client keeps putting."""

    async def run() -> str:
        command = [sys.executable, "-m", "beanstalkt.cmd", "top", "--once", "--interval", "1",
                   "--server", f"{beanstalkd.host}:{beanstalkd.port}"]  # fmt: skip
        async with busy_producer(beanstalkd, "busy"):
            process = await asyncio.create_subprocess_exec(
                *command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment()
            )
            out, err = await asyncio.wait_for(process.communicate(), GUARD)
        assert process.returncode == 0, err
        return out.decode()

    rows = {row[0]: row for row in table(asyncio.run(run()))}
    assert float(rows["busy"][5]) > 0  # puts per second
    assert float(rows["busy"][6]) > 0  # deletes per second
    assert rows["default"][5:7] == ["0.0", "0.0"]


def test_not_a_terminal_prints_once(beanstalkd: BeanstalkdServer) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "beanstalkt.top", "--interval", "0"],
        capture_output=True, text=True, timeout=GUARD,
        env=environment(BEANSTALKD_HOST=beanstalkd.host, BEANSTALKD_PORT=str(beanstalkd.port)),
    )  # fmt: skip
    assert (result.returncode, result.stderr) == (0, "")
    assert table(result.stdout) == [["default", "0", "0", "0", "0", "-", "-", "-", "-"]]


def test_unreachable_server(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    assert top.main(["--server", f"127.0.0.1:{port}", "--once"]) == 3
    # The server layer's reason, in one line.
    assert capsys.readouterr().err == (
        f"beanstalkt top: 127.0.0.1:{port} is out of rotation: "
        f"cannot connect to beanstalkd at 127.0.0.1:{port}: Connection refused\n"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # The messages of every command line (beanstalkt.cli.common).
        (["--server", "a:1", "--port", "2"], "give either --server, or --host/--port, not both"),
        (["--interval", "-1"], "expected a number of seconds >= 0"),
        (["--sort", "size"], "invalid choice: 'size'"),
        (["--port", "0"], "port must be between 1 and 65535, not 0"),
        (["--tubes", "bad name"], "--tubes:"),
        (["--timeout", "0", "--once"], "--timeout must be more than 0"),
    ],
)
def test_bad_arguments(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert top.main(argv) == 2
    assert message in capsys.readouterr().err


# ----------------------------------------------------------------------
# The live view in a real terminal.


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEANSTALKD_")}
    env.update(extra)
    return env


@contextlib.asynccontextmanager
async def busy_producer(server: BeanstalkdServer, name: str) -> AsyncIterator[list[int]]:
    """Puts and deletes jobs in tube ``name`` until the block ends; yields the put count."""
    count = [0]

    async def produce() -> None:
        async with beanstalkt.Client(server.host, server.port, use=name) as client:
            while True:
                job_id = await client.put(b"work")
                if count[0] % 2:
                    await client.delete(job_id)
                count[0] += 1
                await asyncio.sleep(0.005)

    task = asyncio.ensure_future(produce())
    try:
        yield count
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Terminal:
    """A tmux session on a private tmux server, running one command."""

    def __init__(self, command: list[str]) -> None:
        self.socket = f"beanstalkt-test-{uuid.uuid4().hex[:12]}"
        # The shell reports the exit status and lingers, so the pane stays readable.
        script = f"{shlex.join(command)}; echo EXIT:$?; sleep {GUARD}"
        self.tmux("new-session", "-d", "-x", "120", "-y", "30", "sh", "-c", script)

    def tmux(self, *args: str) -> str:
        result = subprocess.run(
            ["tmux", "-L", self.socket, *args],
            capture_output=True, text=True, check=True, timeout=GUARD,
            env=environment(TERM="xterm-256color"),
        )  # fmt: skip
        return result.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", *keys)

    async def wait_for(self, condition: Callable[[str], bool], what: str) -> str:
        """Poll the screen until ``condition(screen)``; fail after the guard."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + GUARD
        while True:
            screen = self.screen()
            if condition(screen):
                return screen
            if loop.time() > deadline:
                raise AssertionError(f"never saw {what}; the screen:\n{screen}")
            await asyncio.sleep(0.1)

    def close(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self.tmux("kill-server")


@pytest.fixture
def terminal() -> Iterator[Callable[[list[str]], Terminal]]:
    if shutil.which("tmux") is None:
        raise RuntimeError("tmux is not installed: apt-get install -y tmux (scripts/setup.sh does)")
    opened: list[Terminal] = []

    def open_terminal(command: list[str]) -> Terminal:
        opened.append(Terminal(command))
        return opened[-1]

    yield open_terminal
    for each in opened:
        each.close()


def cells(screen: str, tube_name: str) -> Optional[list[str]]:
    for line in screen.splitlines():
        words = line.split()
        if words and words[0] == tube_name:
            return words
    return None


def rate(screen: str, tube_name: str, column: int) -> Optional[float]:
    row = cells(screen, tube_name)
    if row is None or row[column] == "-":
        return None
    return float(row[column])


async def test_live_view_shows_rates_changing_and_quits_on_q(
    beanstalkd: BeanstalkdServer, terminal: Callable[[list[str]], Terminal]
) -> None:
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="busy") as client:
        await client.put(b"first")  # the tube exists from the start
    view = terminal(
        [
            sys.executable,
            "-m",
            "beanstalkt.top",
            "--interval",
            "0.3",
            "--server",
            f"{beanstalkd.host}:{beanstalkd.port}",
        ]
    )
    # Two refreshes with nothing going on: rates are known and zero.
    await view.wait_for(lambda s: rate(s, "busy", 5) == 0.0, "a quiet tube at 0.0 puts/s")
    assert "q quit" in view.screen()
    async with busy_producer(beanstalkd, "busy") as puts:
        screen = await view.wait_for(
            lambda s: (rate(s, "busy", 5) or 0) > 0 and (rate(s, "busy", 6) or 0) > 0,
            "puts and deletes per second above 0",
        )
        assert puts[0] > 0
        assert rate(screen, "default", 5) == 0.0
    # The producer stopped: the rates fall back to zero.
    await view.wait_for(
        lambda s: rate(s, "busy", 5) == 0.0 and rate(s, "busy", 6) == 0.0, "the rates back at 0"
    )
    # The server goes away: the view says so and keeps trying until it is back.
    beanstalkd.kill()
    await view.wait_for(lambda s: "unreachable: " in s, "the server reported unreachable")
    beanstalkd.start()
    # A fresh server: no 'busy' tube any more, and nothing else written over the view.
    await view.wait_for(
        lambda s: (
            "unreachable" not in s
            and cells(s, "busy") is None
            and cells(s, "default") == ["default", "0", "0", "0", "0", "0.0", "0.0", "-", "-"]
        ),
        "the restarted server",
    )
    assert "reconnect" not in view.screen()
    # '>' moves the sort column from TUBE to READY.
    assert "TUBE*" in view.screen()
    view.keys(">")
    await view.wait_for(lambda s: "READY*" in s and "TUBE*" not in s, "sorting by READY")
    view.keys("q")
    await view.wait_for(lambda s: "EXIT:0" in s, "top exiting with status 0 on q")


# ----------------------------------------------------------------------
# A server that talks garbage: top says so and goes on.


def test_string_counters_show_as_question_marks() -> None:
    odd = tube("odd", current_jobs_ready="lots", total_jobs=5)  # type: ignore[arg-type]
    lines = top.render(snapshot(2.0, odd), snapshot(1.0, tube("odd", total_jobs="x")))  # type: ignore[arg-type]
    assert lines[2].split()[:2] == ["odd", "?"]
    bad_server = ServerSnapshot("s:1", 1.0, Stats(uptime="soon", version=7), ())  # type: ignore[typeddict-item]
    assert "up ?" in top.server_line(bad_server)


def test_status_lines_wrap_the_error_and_mark_old_data() -> None:
    error = "bad reply from s:1: UnexpectedResponse: " + "x" * 100
    lines = top.status_lines(error, stale_for=75.0, width=50)
    assert "".join(lines[:-1]) == error and all(len(line) <= 50 for line in lines)
    assert lines[-1] == "STALE: the table below is from 1m15s ago"
    assert top.status_lines(error, None, 200) == [error]
    assert top.status_lines("", 3.0, 80) == []


def test_notes_name_refused_tubes_and_bad_replies_a_few_at_a_time() -> None:
    refused = tuple(f"'bad {index}'" for index in range(7))
    bad = tuple(
        TubeSnapshot(
            f"t{index}", StatsTube(name=f"t{index}"), None, "pause is 'x', not a whole number"
        )
        for index in range(6)
    )
    notes = top.snapshot_notes(
        ServerSnapshot("s:1", 1.0, Stats(), (tube("fine"), *bad), refused_tubes=refused)
    )
    assert notes == [
        "7 tube names the client refuses, not shown: "
        "'bad 0', 'bad 1', 'bad 2', 'bad 3', 'bad 4' and 2 more",
        *(f"bad reply for tube t{index}: pause is 'x', not a whole number" for index in range(5)),
        "and 1 more tube with bad replies",
    ]
    # Under the server line, above the heading; a sane snapshot has none.
    lines = top.render(
        ServerSnapshot("s:1", 1.0, Stats(), (tube("fine"),), refused_tubes=("'x y'",))
    )
    assert lines[1] == "1 tube name the client refuses, not shown: 'x y'"
    assert lines[2].startswith("TUBE*")
    assert top.snapshot_notes(snapshot(1.0, tube("fine"))) == []


async def top_once(port: int) -> tuple[int, str, str]:
    """``top --once --interval 0`` as a subprocess: exit status, stdout, stderr."""
    return await top_once_with(port)


async def top_once_with(port: int, *options: str) -> tuple[int, str, str]:
    """``top --once --interval 0 OPTIONS`` as a subprocess: exit status, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "beanstalkt.top", "--once", "--interval", "0", *options,
        "--server", f"127.0.0.1:{port}", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), GUARD)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_once_against_a_garbage_server_says_why_without_a_traceback() -> None:
    fake = MisbehavingStats("garbage", bad_name=False)
    async with FakeServer(fake.script) as server:
        # Garbage is a dead server (the server layer): out of rotation, said in one line.
        status, out, err = await top_once(server.port)
        assert (status, out) == (3, ""), err
        assert err == (
            f"beanstalkt top: 127.0.0.1:{server.port} is out of rotation: reply from "
            f"127.0.0.1:{server.port} out of sync: unexpected reply line b'HELLO THERE'\n"
        )
        # What cannot be read shows as '?', the rest as usual.
        fake.mode = "bad-stats"
        status, out, err = await top_once(server.port)
        assert (status, err) == (0, "")
        assert "up ?" in out.splitlines()[0] and table(out)[0][:3] == ["default", "0", "0"]


async def test_once_names_refused_tubes_and_bad_counters_and_shows_the_rest() -> None:
    fake = MisbehavingStats("bad-counter", bad_name=True)
    async with FakeServer(fake.script) as server:
        status, out, err = await top_once(server.port)
        assert (status, err) == (0, "")
        lines = out.splitlines()
        # One tube name refused, one tube with a string counter: both said under
        # the server line; the tube still has its row, '?' where the count was.
        assert lines[1:3] == [
            "1 tube name the client refuses, not shown: 'bad name!'",
            "bad reply for tube default: current-jobs-ready is 'lots', not a whole number",
        ]
        assert lines[3].split()[0] == "TUBE*"
        assert [row[:2] for row in (line.split() for line in lines[4:])] == [["default", "?"]]
        # Sane again: no notes, the plain table.
        fake.mode, fake.bad_name = "sane", False
        status, out, err = await top_once(server.port)
        assert (status, err) == (0, "")
        assert out.splitlines()[1].split()[0] == "TUBE*"
        assert table(out) == [["default", "0", "0", "0", "0", "-", "-", "-", "-"]]


async def test_live_view_survives_garbage_and_marks_stale_data(
    terminal: Callable[[list[str]], Terminal],
) -> None:
    fake = MisbehavingStats("garbage", bad_name=False)
    async with FakeServer(fake.script) as server:
        view = terminal(
            [sys.executable, "-m", "beanstalkt.top", "--interval", "0.3",
             "--server", f"127.0.0.1:{server.port}"]
        )  # fmt: skip
        # Garbage is a dead server: out of rotation, with the server layer's reason.
        # (The status line wraps at the terminal's width: look for words early in it.)
        await view.wait_for(lambda s: "is out of rotation: reply from" in s, "the garbage")
        assert "Traceback" not in view.screen() and "EXIT:" not in view.screen()
        fake.mode = "sane"  # back in rotation after the server layer's backoff
        await view.wait_for(
            lambda s: "unreachable" not in s and cells(s, "default") is not None, "the table"
        )
        fake.mode = "garbage"
        screen = await view.wait_for(lambda s: "STALE: the table below is from" in s, "stale")
        # The snapshot met the garbage first ("bad reply"), or the probe did.
        assert "out of rotation" in screen or "bad reply from" in screen
        assert cells(screen, "default") is not None
        fake.mode = "sane"
        await view.wait_for(
            lambda s: "STALE" not in s and "unreachable" not in s and "bad reply" not in s,
            "fresh again",
        )
        view.keys("q")
        await view.wait_for(lambda s: "EXIT:0" in s, "top exiting with status 0 on q")


# ----------------------------------------------------------------------
# A real server frozen (SIGSTOP): the server layer takes it out of rotation.


async def test_once_against_a_frozen_server_ends_with_one_line(
    beanstalkd: BeanstalkdServer,
) -> None:
    """It accepts connections (the kernel does) and never answers: --once ends after
    --timeout (the documented bound) with one line and exit status 3."""
    assert beanstalkd.process is not None
    os.kill(beanstalkd.process.pid, signal.SIGSTOP)
    try:
        status, out, err = await top_once_with(beanstalkd.port, "--timeout", "1")
    finally:
        os.kill(beanstalkd.process.pid, signal.SIGCONT)
    assert (status, out) == (3, "")
    assert err == (
        f"beanstalkt top: 127.0.0.1:{beanstalkd.port} is out of rotation: no answer within 1s\n"
    )
    # Thawed, the same command shows the table.
    status, out, err = await top_once_with(beanstalkd.port, "--timeout", "1")
    assert (status, err) == (0, "")
    assert table(out)[0][0] == "default"


async def test_live_view_marks_a_frozen_server_stale_and_recovers(
    beanstalkd: BeanstalkdServer, terminal: Callable[[list[str]], Terminal]
) -> None:
    assert beanstalkd.process is not None
    view = terminal(
        [sys.executable, "-m", "beanstalkt.top", "--interval", "0.3", "--timeout", "1",
         "--server", f"{beanstalkd.host}:{beanstalkd.port}"]
    )  # fmt: skip
    await view.wait_for(lambda s: cells(s, "default") is not None, "the table")
    os.kill(beanstalkd.process.pid, signal.SIGSTOP)
    try:
        # The probe goes unanswered: out of rotation with the server layer's
        # reason, and the last table kept under it, marked stale.
        # (The status line is wrapped at the terminal's width: read it joined.)
        screen = await view.wait_for(
            lambda s: (
                "is out of rotation" in s
                and "left a probe unanswered for 1s" in "".join(s.splitlines())
            ),
            "the frozen server out of rotation",
        )
        await view.wait_for(lambda s: "STALE: the table below is from" in s, "the stale mark")
        assert cells(screen, "default") is not None
        assert "Traceback" not in screen and "EXIT:" not in screen
    finally:
        os.kill(beanstalkd.process.pid, signal.SIGCONT)
    await view.wait_for(
        lambda s: "STALE" not in s and "unreachable" not in s and cells(s, "default") is not None,
        "the thawed server back in rotation",
    )
    view.keys("q")
    await view.wait_for(lambda s: "EXIT:0" in s, "top exiting with status 0 on q")


async def test_q_quits_while_the_server_is_frozen(
    beanstalkd: BeanstalkdServer, terminal: Callable[[list[str]], Terminal]
) -> None:
    """Closing never waits on the frozen server's owed replies."""
    assert beanstalkd.process is not None
    view = terminal(
        [sys.executable, "-m", "beanstalkt.top", "--interval", "0.3", "--timeout", "1",
         "--server", f"{beanstalkd.host}:{beanstalkd.port}"]
    )  # fmt: skip
    await view.wait_for(lambda s: cells(s, "default") is not None, "the table")
    os.kill(beanstalkd.process.pid, signal.SIGSTOP)
    try:
        await view.wait_for(lambda s: "is out of rotation" in s, "the frozen server out")
        view.keys("q")
        await view.wait_for(lambda s: "EXIT:0" in s, "top exiting with status 0 on q")
    finally:
        os.kill(beanstalkd.process.pid, signal.SIGCONT)


async def test_live_view_names_refused_tubes_and_bad_counters_until_sane(
    terminal: Callable[[list[str]], Terminal],
) -> None:
    fake = MisbehavingStats("bad-counter", bad_name=True)
    async with FakeServer(fake.script) as server:
        view = terminal(
            [sys.executable, "-m", "beanstalkt.top", "--interval", "0.3",
             "--server", f"127.0.0.1:{server.port}"]
        )  # fmt: skip
        screen = await view.wait_for(
            lambda s: (
                "1 tube name the client refuses, not shown: 'bad name!'" in s
                and "bad reply for tube default: current-jobs-ready is 'lots'" in s
            ),
            "the refused name and the bad counter named",
        )
        # A degraded snapshot is still fresh: the table, with '?' for the bad count.
        assert "STALE" not in screen and "unreachable" not in screen
        assert (cells(screen, "default") or [])[:2] == ["default", "?"]
        fake.mode, fake.bad_name = "sane", False
        await view.wait_for(
            lambda s: (
                "refuses" not in s
                and "bad reply" not in s
                and (cells(s, "default") or [])[:2] == ["default", "0"]
            ),
            "the sane table",
        )
        view.keys("q")
        await view.wait_for(lambda s: "EXIT:0" in s, "top exiting with status 0 on q")
