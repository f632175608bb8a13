"""``beanstalkt top``: a live view of a beanstalkd server's tubes.

::

    python -m beanstalkt.top --server 127.0.0.1:11300 --interval 1 --sort ready
    beanstalkt top --once            # one plain-text snapshot, for scripts

Per tube: ready, reserved, delayed and buried jobs, puts and deletes per
second since the previous refresh, the age of the job at the head of the
ready queue, and the time left on a pause; above them a line about the
server. Interactive keys: ``q`` quits, ``<`` / ``>`` move the sort column,
``1``-``9`` sort by that column. When stdout is not a terminal, ``top`` prints
one snapshot as plain text and exits, as with ``--once``.

The server and its liveness come from the server layer, as for the
exporter: a :class:`~beanstalkt.servers.ServerSet` of one server probes it in
the background (a server is in rotation once it has answered a ``stats``, and
out of it when it stops answering), and the statistics are read through
:meth:`ServerWatcher.of_server <beanstalkt.ops.monitor.ServerWatcher.of_server>`.
While the server is out of rotation the view says so and why (the server
layer's ``last_error``) above the last table, marked stale; ``--once`` prints
one line and exits 3 instead.

The data side (:func:`tube_rows`, :func:`render`, :func:`snapshot_notes`) is
pure and separate from the terminal side; the statistics come from
:mod:`beanstalkt.ops.monitor`, shared with the Prometheus exporter.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from ..cli.common import (
    EXIT_CANNOT_CONNECT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    add_connection_arguments,
    argument,
    exit_status,
    seconds,
    servers_or_usage_error,
    silence_library_loggers,
    tls_or_usage_error,
)
from ..errors import BeanstalkConnectionError
from ..servers import Server, ServerSet
from .monitor import ServerSnapshot, ServerWatcher, check_tube_patterns, format_duration

if TYPE_CHECKING:
    import curses

#: Column keys (for ``--sort``), in display order, with their headings.
COLUMNS = {
    "tube": "TUBE",
    "ready": "READY",
    "reserved": "RESERVED",
    "delayed": "DELAYED",
    "buried": "BURIED",
    "puts": "PUTS/S",
    "deletes": "DELETES/S",
    "oldest": "OLDEST",
    "paused": "PAUSED",
}


@dataclass(frozen=True)
class TubeRow:
    """One line of the table: a tube's counts and its rates since the previous snapshot.

    A rate is ``None`` when there is no previous snapshot to compare with;
    ``oldest`` is ``None`` when it was not measured, ``paused`` is the number
    of seconds of pause left (0: not paused).
    """

    tube: str
    ready: int
    reserved: int
    delayed: int
    buried: int
    puts: Optional[float]
    deletes: Optional[float]
    oldest: Optional[int]
    paused: int


#: Shown for a count the server sent as something other than a whole number.
BAD_COUNT = -1


def _count(stats: Any, key: str) -> int:
    """A counter of a stats reply; :data:`BAD_COUNT` when the server sent something else."""
    value = stats.get(key, 0)
    return value if type(value) is int and value >= 0 else BAD_COUNT


def _rate(now: int, before: Optional[int], seconds: float) -> Optional[float]:
    if now == BAD_COUNT or before == BAD_COUNT:
        return None
    # A counter that went down belongs to a tube deleted and made anew in
    # between: everything it counts happened since.
    if before is None or now < before:
        before = 0
    return (now - before) / seconds


def tube_rows(current: ServerSnapshot, previous: Optional[ServerSnapshot] = None) -> list[TubeRow]:
    """The table's rows for ``current``, with rates from ``previous`` (in name order).

    Puts per second come from the tubes' ``total-jobs`` counters, deletes per
    second from ``cmd-delete``. A tube absent from ``previous`` did not exist
    then, so all its puts and deletes happened in between.
    """
    seconds = current.taken_at - previous.taken_at if previous is not None else 0.0
    before = {tube.name: tube.stats for tube in previous.tubes} if previous is not None else {}
    rows = []
    for tube in current.tubes:
        stats = tube.stats
        puts = deletes = None
        if previous is not None and seconds > 0:
            old = before.get(tube.name)
            puts = _rate(
                _count(stats, "total-jobs"),
                _count(old, "total-jobs") if old is not None else None,
                seconds,
            )
            deletes = _rate(
                _count(stats, "cmd-delete"),
                _count(old, "cmd-delete") if old is not None else None,
                seconds,
            )
        oldest = tube.oldest_ready_age
        rows.append(
            TubeRow(
                tube=str(tube.name),
                ready=_count(stats, "current-jobs-ready"),
                reserved=_count(stats, "current-jobs-reserved"),
                delayed=_count(stats, "current-jobs-delayed"),
                buried=_count(stats, "current-jobs-buried"),
                puts=puts,
                deletes=deletes,
                oldest=oldest if type(oldest) is int else None,
                paused=_count(stats, "pause-time-left"),
            )
        )
    return rows


def sort_rows(rows: Sequence[TubeRow], column: str) -> list[TubeRow]:
    """Rows by ``column``: tube names A to Z, numbers largest first (unknowns last)."""
    if column not in COLUMNS:
        raise ValueError(f"unknown column {column!r}; choose from {', '.join(COLUMNS)}")
    if column == "tube":
        return sorted(rows, key=lambda row: row.tube)

    def key(row: TubeRow) -> tuple[bool, float, str]:
        value = getattr(row, column)
        unknown = value is None or value == BAD_COUNT
        return (unknown, 0.0 if unknown else -value, row.tube)

    return sorted(rows, key=key)


def _cell(row: TubeRow, column: str) -> str:
    value = getattr(row, column)
    if column == "tube":
        return str(value)
    if value == BAD_COUNT:
        return "?"  # the server sent something that is not a count
    if column in ("puts", "deletes"):
        return "-" if value is None else f"{value:.1f}"
    if column == "oldest":
        return "-" if value is None or row.ready == 0 else format_duration(value)
    if column == "paused":
        return format_duration(value) if value > 0 else "-"
    return str(value)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def server_line(snapshot: ServerSnapshot) -> str:
    """The line about the whole server above the table."""
    stats = snapshot.stats

    def shown(key: str) -> str:
        value = _count(stats, key)
        return "?" if value == BAD_COUNT else str(value)

    uptime = _count(stats, "uptime")
    connections = _count(stats, "current-connections")
    tubes = _count(stats, "current-tubes")
    parts = [
        f"beanstalkd {str(stats.get('version', '?'))[:40]} at {snapshot.address}",
        f"up {'?' if uptime == BAD_COUNT else format_duration(uptime)}",
        f"{'?' if connections == BAD_COUNT else _plural(connections, 'connection')} "
        f"({shown('current-producers')} producing, "
        f"{shown('current-workers')} working, "
        f"{shown('current-waiting')} waiting)",
        "? tubes" if tubes == BAD_COUNT else _plural(tubes, "tube"),
    ]
    if snapshot.tubes_dropped:
        parts.append(f"{snapshot.tubes_dropped} not shown")
    if stats.get("draining"):
        parts.append("DRAINING")
    return " | ".join(parts)


#: At most this many refused names and bad tubes are named; the rest are counted.
NOTES_NAMED = 5


def snapshot_notes(snapshot: ServerSnapshot) -> list[str]:
    """Lines about what the snapshot had to leave out or could not read (none: all is well).

    Tube names the client refuses (not shown in the table) and tubes whose
    reply had a counter that is not a whole number (shown, with ``?``).
    """
    notes = []
    refused = snapshot.refused_tubes
    if refused:
        named = ", ".join(refused[:NOTES_NAMED])
        more = f" and {len(refused) - NOTES_NAMED} more" if len(refused) > NOTES_NAMED else ""
        notes.append(
            f"{_plural(len(refused), 'tube name')} the client refuses, not shown: {named}{more}"
        )
    bad = snapshot.bad_tubes
    for tube in bad[:NOTES_NAMED]:
        notes.append(f"bad reply for tube {tube.name}: {tube.error}")
    if len(bad) > NOTES_NAMED:
        notes.append(f"and {_plural(len(bad) - NOTES_NAMED, 'more tube')} with bad replies")
    return notes


def render(
    current: ServerSnapshot, previous: Optional[ServerSnapshot] = None, sort: str = "tube"
) -> list[str]:
    """The whole view as lines of text: the server line, its notes, the heading, the tubes.

    The notes are :func:`snapshot_notes`; the heading of the sort column is marked with ``*``.
    """
    rows = sort_rows(tube_rows(current, previous), sort)
    headings = [title + ("*" if key == sort else "") for key, title in COLUMNS.items()]
    table = [headings] + [[_cell(row, key) for key in COLUMNS] for row in rows]
    widths = [max(len(line[index]) for line in table) for index in range(len(COLUMNS))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    return [server_line(current), *snapshot_notes(current), *(line(cells) for cells in table)]


def describe_error(error: BaseException, address: str, timeout: float) -> str:
    """One line saying why a refresh failed, for the screen and for ``--once``."""
    if isinstance(error, asyncio.TimeoutError):
        return f"unreachable: no answer within {timeout:g}s"
    if isinstance(error, BeanstalkConnectionError):
        return f"unreachable: {error}"
    return f"bad reply from {address}: {type(error).__name__}: {error}"


def out_of_rotation(server: Server, timeout: float) -> str:
    """Why ``server`` is not read now: the server layer's last error, or its silence."""
    why = server.last_error or f"no answer within {timeout:g}s"
    return f"{server.address} is out of rotation: {why}"


class OutOfRotation(Exception):
    """``--once`` found the server out of rotation (the message says why)."""


def status_lines(error: str, stale_for: Optional[float], width: int) -> list[str]:
    """The error of the last refresh, wrapped to ``width``, and whether the table is old.

    ``stale_for`` is the age in seconds of the data still shown (``None``: none shown).
    """
    if not error:
        return []
    width = max(20, width)
    lines = [error[start : start + width] for start in range(0, len(error), width)]
    if stale_for is not None:
        lines.append(f"STALE: the table below is from {format_duration(int(stale_for))} ago")
    return lines


# ----------------------------------------------------------------------
# Running it.


async def _once(
    servers: ServerSet, watcher: ServerWatcher, interval: float, sort: str
) -> list[str]:
    # The set of one proves the server first: a frozen server (one that
    # accepts and never answers) costs --timeout, then one line.
    (server,) = servers.servers
    await servers.start(wait=False)
    if not await servers.wait_for(server, watcher.timeout):
        raise OutOfRotation(out_of_rotation(server, watcher.timeout))
    first = await watcher.snapshot()
    if interval <= 0:
        return render(first, None, sort)
    await asyncio.sleep(interval)
    return render(await watcher.snapshot(), first, sort)


class _Screen:
    """The interactive view: draws with curses, reads keys without blocking the loop."""

    def __init__(
        self, window: curses.window, servers: ServerSet, watcher: ServerWatcher, args: Any
    ) -> None:
        import curses

        self.curses = curses
        self.window = window
        self.servers = servers
        (self.server,) = servers.servers
        self.watcher = watcher
        self.interval: float = args.interval
        self.sort: str = args.sort
        self.quit = False
        self.key_pressed = asyncio.Event()
        self.lines: list[str] = ["connecting to " + watcher.address]
        self.error = ""
        self.previous: Optional[ServerSnapshot] = None
        self.current: Optional[ServerSnapshot] = None
        self.current_at = 0.0

    def on_input(self) -> None:
        """Read every key waiting on stdin (called by the loop when it is readable)."""
        columns = list(COLUMNS)
        while True:
            key = self.window.getch()
            if key == -1:
                break
            if key in (ord("q"), ord("Q")):
                self.quit = True
            elif key in (ord("<"), ord(","), self.curses.KEY_LEFT):
                self.sort = columns[(columns.index(self.sort) - 1) % len(columns)]
            elif key in (ord(">"), ord("."), self.curses.KEY_RIGHT):
                self.sort = columns[(columns.index(self.sort) + 1) % len(columns)]
            elif ord("1") <= key <= ord("9"):
                self.sort = columns[key - ord("1")]
        self.key_pressed.set()

    def draw(self) -> None:
        curses = self.curses
        window = self.window
        window.erase()
        height, width = window.getmaxyx()
        if self.current is not None:
            try:
                lines = render(self.current, self.previous, self.sort)
            except Exception as exc:  # a view that cannot be drawn must not end top
                lines = [f"cannot show this snapshot: {type(exc).__name__}: {exc}"]
        else:
            lines = list(self.lines)
        stale_for = None
        if self.error and self.current is not None:
            stale_for = max(0.0, time.monotonic() - self.current_at)
        status = status_lines(self.error, stale_for, max(1, width - 1))
        lines[1:1] = status
        notes = len(snapshot_notes(self.current)) if self.current is not None else 0
        footer = "q quit   < > or 1-9 sort column   refresh every " + f"{self.interval:g}s"
        for y, text in enumerate(lines[: max(0, height - 1)]):
            attribute = curses.A_NORMAL
            if y == 0:
                attribute = curses.A_BOLD
            elif 1 <= y <= len(status):
                attribute = curses.A_STANDOUT
            elif 1 + len(status) <= y < 1 + len(status) + notes:
                attribute = curses.A_BOLD  # what the snapshot left out or could not read
            elif self.current is not None and y == 1 + len(status) + notes:
                attribute = curses.A_REVERSE
            elif status:
                attribute = curses.A_DIM  # old data
            window.addnstr(y, 0, text, max(0, width - 1), attribute)
        if height > 1:
            window.addnstr(height - 1, 0, footer, max(0, width - 1), curses.A_DIM)
        window.refresh()

    async def refresh(self) -> None:
        timeout = self.watcher.timeout
        try:
            # Liveness is the server layer's: out of rotation, nothing is asked
            # (the table stays, marked stale, under the reason).
            if not await self.servers.wait_for(self.server, timeout):
                self.error = "unreachable: " + out_of_rotation(self.server, timeout)
                return
            snapshot = await self.watcher.snapshot()
            # A snapshot that cannot be shown is as bad as no answer.
            render(snapshot, self.current, self.sort)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # whatever the server sent, top goes on and says why
            self.error = describe_error(exc, self.watcher.address, self.watcher.timeout)
        else:
            self.error = ""
            self.previous, self.current = self.current, snapshot
            self.current_at = time.monotonic()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.window.nodelay(True)
        self.window.keypad(True)
        loop.add_reader(sys.stdin.fileno(), self.on_input)
        try:
            next_refresh = loop.time()
            while not self.quit:
                if loop.time() >= next_refresh:
                    next_refresh = loop.time() + self.interval
                    await self.refresh()
                    if self.quit:
                        break
                self.draw()
                self.key_pressed.clear()
                # Wake up for a key, or when the next refresh is due.
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(
                        self.key_pressed.wait(), max(0.0, next_refresh - loop.time())
                    )
        finally:
            loop.remove_reader(sys.stdin.fileno())


def _interactive(servers: ServerSet, watcher: ServerWatcher, args: Any) -> None:
    import curses

    def run(window: curses.window) -> None:
        with contextlib.suppress(curses.error):  # not every terminal can hide it
            curses.curs_set(0)
        asyncio.run(_run_screen(window, servers, watcher, args))

    curses.wrapper(run)  # restores the terminal however run() ends


async def _run_screen(
    window: curses.window, servers: ServerSet, watcher: ServerWatcher, args: Any
) -> None:
    try:
        await servers.start(wait=False)  # probing from now on; the view says how it goes
        await _Screen(window, servers, watcher, args).run()
    finally:
        await _close(servers, watcher)


# ----------------------------------------------------------------------
# Command line.


def build_parser(
    prog: str = "python -m beanstalkt.top", argv: Optional[Sequence[str]] = None
) -> argparse.ArgumentParser:
    """The command line of ``top`` (``argv``: the run's, for where ``-h`` says its server is)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="A live view of a beanstalkd server's tubes: job counts, put and delete "
        "rates, the age of the next ready job, pauses.",
        epilog="keys: q quits; < and > (or the arrow keys) move the sort column; 1-9 sort by "
        "that column. When stdout is not a terminal, one snapshot is printed, as with --once.",
    )
    parser.add_argument(
        "--interval",
        type=seconds,
        default=1.0,
        help="seconds between refreshes; with --once, the time over which rates are "
        "measured (0: no rates) (default 1)",
    )
    parser.add_argument(
        "--sort", choices=list(COLUMNS), default="tube", help="the column to sort by (default tube)"
    )
    parser.add_argument(
        "--tubes",
        type=argument(lambda text: check_tube_patterns(p.strip() for p in text.split(","))),
        help="comma-separated tube names or fnmatch patterns to show (default: all)",
    )
    parser.add_argument(
        "--timeout",
        type=seconds,
        default=5.0,
        help="seconds a refresh may wait for the server; one that leaves a probe unanswered "
        "this long is out of rotation until it answers again (default 5)",
    )
    parser.add_argument(
        "--once", action="store_true", help="print one snapshot as plain text and exit"
    )
    add_connection_arguments(parser, argv=argv)
    return parser


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    """Run ``top`` (``sys.argv[1:]`` by default); return the exit status."""
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(prog or "python -m beanstalkt.top", words)
    try:
        args = parser.parse_args(words)
        # The same rule as every command line (cli.common); top shows one server.
        servers = servers_or_usage_error(parser, args, one=True)
        address = servers.texts[0]
        ssl_context = tls_or_usage_error(parser, args, servers)
        if not args.once and sys.stdout.isatty() and args.interval <= 0:
            parser.error("--interval must be more than 0 for the live view")
        if args.timeout <= 0:
            parser.error("--timeout must be more than 0")
    except SystemExit as exc:
        return exit_status(exc.code)
    # The library logs lost connections and reconnects; on a curses screen
    # they would scribble over the view, which shows the failure itself.
    silence_library_loggers()
    # A set of one, built as the exporter builds its own: a command never
    # waits for a connection (disconnected_timeout=0), and a server silent for
    # --timeout is dropped (the probe's and the stall guard's bound alike).
    server_set = ServerSet(
        [address],
        probe_timeout=args.timeout,
        connect_timeout=args.timeout,
        disconnected_timeout=0.0,
        stall_timeout=args.timeout,
        ssl=ssl_context,
    )
    (server,) = server_set.servers
    watcher = ServerWatcher.of_server(server, server_set, timeout=args.timeout, tubes=args.tubes)
    try:
        if args.once or not sys.stdout.isatty():
            lines = asyncio.run(_once_and_close(server_set, watcher, args.interval, args.sort))
            sys.stdout.write("".join(line + "\n" for line in lines))
            sys.stdout.flush()
        else:
            _interactive(server_set, watcher, args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except OutOfRotation as exc:
        sys.stderr.write(f"beanstalkt top: {exc}\n")
        return EXIT_CANNOT_CONNECT
    except asyncio.TimeoutError:
        sys.stderr.write(f"beanstalkt top: no answer from {address} within {args.timeout:g}s\n")
        return EXIT_CANNOT_CONNECT
    except BeanstalkConnectionError as exc:
        sys.stderr.write(f"beanstalkt top: {exc}\n")
        return EXIT_CANNOT_CONNECT
    except Exception as exc:  # a bad reply: one clear line, no traceback
        sys.stderr.write(f"beanstalkt top: {describe_error(exc, address, args.timeout)}\n")
        return EXIT_FAILED
    return EXIT_OK


async def _once_and_close(
    servers: ServerSet, watcher: ServerWatcher, interval: float, sort: str
) -> list[str]:
    try:
        return await _once(servers, watcher, interval, sort)
    finally:
        await _close(servers, watcher)


async def _close(servers: ServerSet, watcher: ServerWatcher) -> None:
    await watcher.close()  # its peek connection; the set closes the rest
    await servers.close()


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "COLUMNS",
    "OutOfRotation",
    "TubeRow",
    "build_parser",
    "describe_error",
    "format_duration",
    "main",
    "out_of_rotation",
    "render",
    "server_line",
    "snapshot_notes",
    "sort_rows",
    "status_lines",
    "tube_rows",
]
