"""The command line client: ``python -m beanstalkt.cmd COMMAND ...`` (or ``beanstalkt``).

One command per run, over one connection made with :class:`beanstalkt.Client`
(with several servers, a :class:`beanstalkt.Pool`). Results go to stdout: a job id or a count as
a bare number, everything structured as JSON. Failures print one line on stderr
and exit with a status that tells them apart (see :data:`EXIT_CODES`).

This module holds the table of commands (:data:`SUBCOMMANDS`), the parser and
:func:`main`; what each command does is in :mod:`beanstalkt.cli.commands`, and
what every tool shares (servers, TLS, exit codes) in :mod:`beanstalkt.cli.common`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import NamedTuple, Optional

from .. import __version__
from ..address import DEFAULT_HOST, DEFAULT_PORT
from ..errors import BeanstalkConnectionError, BeanstalkException
from ..protocol import (
    DEFAULT_PRIORITY,
    DEFAULT_TTR,
    MAX_UINT32,
    check_integer,
    check_job_id,
)
from .commands import (
    POOL_HANDLERS,
    CommandError,
    CommandHandler,
    Endpoint,
    Server,
    cmd_delete,
    cmd_kick,
    cmd_kick_job,
    cmd_list_tubes,
    cmd_pause_tube,
    cmd_peek,
    cmd_put,
    cmd_reserve,
    cmd_reserve_job,
    cmd_stats,
    cmd_stats_job,
    cmd_stats_tube,
    job_json,
    peek_state,
)
from .common import (
    EXIT_CANNOT_CONNECT,
    EXIT_CODES,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    add_connection_arguments,
    exit_codes_text,
    exit_status,
    servers_or_usage_error,
    silence_library_loggers,
    split_global_options,
    tls_or_usage_error,
    tube_name,
)
from .options import Option, add_options, option

# --------------------------------------------------------------------------
# Arguments.


def _integer(what: str, low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be an integer, not {text!r}") from None
        try:
            return check_integer(what, value, low, high)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = what  # argparse names the type in some messages
    return parse


def _job_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"job id must be an integer, not {text!r}") from None
    try:
        return check_job_id(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_PRIORITY = _integer("priority", 0, MAX_UINT32)
_DELAY = _integer("delay", 0, MAX_UINT32)
_TTR = _integer("ttr", 0, MAX_UINT32)
_TIMEOUT = _integer("timeout", 0, MAX_UINT32)
_BOUND = _integer("bound", 0, MAX_UINT32)


def _epilog() -> str:
    return (
        "environment:\n"
        f"  BEANSTALKD_HOST  server host when --host is not given (default {DEFAULT_HOST})\n"
        f"  BEANSTALKD_PORT  server port when --port is not given (default {DEFAULT_PORT})\n"
        "  BEANSTALKD_SERVERS  several servers, HOST:PORT,HOST:PORT (when no --server,\n"
        "                   --host or --port is given)\n"
        "\n"
        "output: job ids and counts as bare numbers; jobs, stats and lists as JSON.\n"
        "With several servers, put prints HOST:PORT ID (the server holding the job and\n"
        "its id there; a random live server unless --key is given, which picks one\n"
        "server per key). "
        'Stats, stats-tube, list and kick print {"total": ..., "servers":\n'
        '{"HOST:PORT": ...}}, a server that did not answer as {"error": "..."}.\n'
        'A job body that is not UTF-8 is printed in base64, with "body_encoding": "base64".\n'
        "\n"
        f"{exit_codes_text()}"
        "\n\noperations: beanstalkt top [-h] ... (live view of the tubes),\n"
        "            beanstalkt exporter [-h] ... (Prometheus metrics; beanstalkt[metrics]),\n"
        "            beanstalkt web [-h] ... (the web console),\n"
        "            beanstalkt worker [-h] ... (run jobs through a handler),\n"
        "            beanstalkt failures [-h] TUBE (buried jobs and why they failed)\n"
        "The options --server, --host, --port and --tls... go before or after the\n"
        "name of a command or tool: beanstalkt --host H top = beanstalkt top --host H."
    )


def _useoption(doing: str) -> Option:
    return option(
        "-u",
        "--use",
        type=tube_name,
        default="default",
        metavar="TUBE",
        help=f"tube to {doing} (default: default)",
    )


class Command(NamedTuple):
    """One sub-command: its name, what runs it, its one-line summary and its arguments."""

    name: str
    handler: CommandHandler
    summary: str
    options: tuple[Option, ...] = ()
    #: The text of ``COMMAND -h`` (default: the summary as a sentence).
    description: Optional[str] = None


_JOB_ID = option("id", type=_job_id, metavar="ID", help="the job id")
_RAW = option(
    "--raw",
    action="store_true",
    help="print the YAML exactly as the server sent it instead of JSON",
)
# What reserve and reserve-job do with the job once printed.
_ACTION_OPTIONS = (
    option(
        "action",
        choices=["delete", "release", "bury"],
        help="what to do with the job once printed: delete it, release it back to "
        "ready (or delayed, with -d), or bury it",
    ),
    option(
        "-p",
        "--priority",
        type=_PRIORITY,
        help="new priority when releasing or burying (default: the job's own)",
    ),
    option(
        "-d",
        "--delay",
        type=_DELAY,
        help="when releasing: seconds the job stays delayed before it is ready again (default: 0)",
    ),
)

#: Every sub-command, in the order ``-h`` lists them.
SUBCOMMANDS: tuple[Command, ...] = (
    Command(
        "put",
        cmd_put,
        "put a job into a tube and print its id",
        (
            option("body", metavar="BODY", help="the job body, or - to read it from stdin"),
            option(
                "-k",
                "--key",
                help="with several servers: put every job with this key on the same server",
            ),
            option(
                "-p",
                "--priority",
                type=_PRIORITY,
                default=DEFAULT_PRIORITY,
                help=f"0 (most urgent) to {MAX_UINT32} (default: {DEFAULT_PRIORITY})",
            ),
            _useoption("put the job into"),
            option(
                "-d",
                "--delay",
                type=_DELAY,
                default=0,
                help="seconds the job waits, delayed, before it becomes ready (default: 0)",
            ),
            option(
                "-t",
                "--ttr",
                type=_TTR,
                default=DEFAULT_TTR,
                help="time to run: seconds a worker may hold the job before the server takes "
                f"it back (default: {DEFAULT_TTR})",
            ),
        ),
        "Put a job into a tube and print the new job's id. "
        "Give the body as an argument, or - to read it from stdin as raw bytes "
        "(binary and multi-line bodies work). A body starting with '-' goes after --.",
    ),
    Command(
        "reserve",
        cmd_reserve,
        "reserve a job, print it, then delete, release or bury it",
        (
            *_ACTION_OPTIONS,
            option(
                "-t",
                "--timeout",
                type=_TIMEOUT,
                help="give up (exit status 1) when no job comes within this many seconds; "
                "0 only takes a job that is ready now (default: wait forever)",
            ),
            option(
                "-w",
                "--watch",
                type=tube_name,
                action="append",
                default=[],
                metavar="TUBE",
                help="also watch this tube; repeat to watch several",
            ),
            option(
                "-i",
                "--ignore-default",
                action="store_true",
                help="do not watch the tube 'default' (needs at least one -w)",
            ),
        ),
        "Reserve a job from the watched tubes (default: the tube 'default'), "
        "print it as JSON, then delete, release or bury it. Without -t, waits until a job "
        "is ready.",
    ),
    Command(
        "reserve-job",
        cmd_reserve_job,
        "reserve a job by id, print it, then delete, release or bury it",
        (_JOB_ID, *_ACTION_OPTIONS),
        "Reserve the job with this id (ready, delayed or buried, in any tube), "
        "print it as JSON, then delete, release or bury it.",
    ),
    Command("delete", cmd_delete, "delete a job (ready, delayed or buried)", (_JOB_ID,)),
    Command("peek", cmd_peek, "print a job without reserving it", (_JOB_ID,)),
    *(
        Command(
            f"peek-{state}",
            peek_state(state),
            f"print the next {state} job of a tube without reserving it",
            (_useoption("look into"),),
        )
        for state in ("ready", "delayed", "buried")
    ),
    Command(
        "kick",
        cmd_kick,
        "move buried jobs (or, if none, delayed jobs) of a tube to ready; print how many",
        (
            option(
                "-b",
                "--bound",
                type=_BOUND,
                default=1,
                help="kick at most this many jobs (default: 1)",
            ),
            _useoption("kick jobs in"),
        ),
    ),
    Command("kick-job", cmd_kick_job, "move one buried or delayed job to ready", (_JOB_ID,)),
    Command("stats-job", cmd_stats_job, "print a job's statistics as JSON", (_JOB_ID, _RAW)),
    Command(
        "stats-tube",
        cmd_stats_tube,
        "print a tube's statistics, or every tube's, as JSON",
        (
            option(
                "name",
                nargs="?",
                type=tube_name,
                metavar="NAME",
                help="the tube (default: every tube)",
            ),
            _RAW,
        ),
        "Print a tube's statistics as JSON; without NAME, those of every tube, "
        "as a JSON object keyed by tube name (with --raw: one YAML document per tube).",
    ),
    Command("stats", cmd_stats, "print the server's statistics as JSON", (_RAW,)),
    *(
        Command(name, cmd_list_tubes, "print the names of all existing tubes as a JSON list")
        for name in ("list", "list-tubes")
    ),
    *(
        Command(
            name,
            cmd_pause_tube,
            "stop jobs of a tube from being reserved for a while",
            (
                option("name", type=tube_name, metavar="NAME", help="the tube to pause"),
                option(
                    "-d",
                    "--delay",
                    type=_DELAY,
                    default=0,
                    help="seconds to hold back reservations from the tube; 0 lifts a pause "
                    "(default: 0)",
                ),
            ),
        )
        for name in ("pause", "pause-tube")
    ),
)


#: What ``beanstalkt`` does with several servers, for ``--server -h``.
_SEVERAL = "put spreads jobs over them, stats, stats-tube, list and kick cover all"


#: The old name of :data:`SUBCOMMANDS` (:data:`beanstalkt.protocol.COMMANDS` is the wire's).
COMMANDS = SUBCOMMANDS
_COMMAND_NAMES = frozenset(command.name for command in SUBCOMMANDS)


def build_parser(
    prog: str = "beanstalkt", argv: Optional[Sequence[str]] = None
) -> argparse.ArgumentParser:
    """The argument parser of the whole program: the global options, then :data:`COMMANDS`.

    ``argv`` (the run's arguments) only makes ``-h`` say where that run's
    servers come from.
    """
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Beanstalkd command line client: one beanstalkd command per run.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_connection_arguments(parser, several=_SEVERAL, argv=argv)
    subparsers = parser.add_subparsers(
        dest="command",
        metavar="COMMAND",
        title="commands",
        help="the beanstalkd command to run; COMMAND -h explains its arguments",
    )
    subparsers.required = True
    for command in SUBCOMMANDS:
        summary = command.summary
        sub = subparsers.add_parser(
            command.name,
            help=summary,
            description=textwrap.fill(
                command.description or summary[0].upper() + summary[1:] + ".", 79
            ),
            epilog=_epilog(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_options(sub, command.options)
        # The program's options after the command's name too (beanstalkt stats --host H).
        add_connection_arguments(sub, several=_SEVERAL, argv=argv, suppress_defaults=True)
        sub.set_defaults(handler=command.handler, parser=sub)
    return parser


def _check_combinations(args: argparse.Namespace) -> None:
    """Refuse option combinations that would be silently ignored."""
    sub: argparse.ArgumentParser = args.parser
    if args.command == "reserve":
        if args.ignore_default and not args.watch:
            sub.error("-i/--ignore-default needs at least one -w/--watch TUBE")
        watched = args.watch if args.ignore_default else ["default", *args.watch]
        args.watch_list = list(dict.fromkeys(watched))
    if args.command in ("reserve", "reserve-job"):
        if args.delay is not None and args.action != "release":
            sub.error("-d/--delay applies only to release")
        if args.priority is not None and args.action == "delete":
            sub.error("-p/--priority applies only to release and bury")


def _server(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Endpoint:
    """The server address: flags first, then the environment, then the defaults.

    With several servers (``--server`` repeated, or ``BEANSTALKD_SERVERS``),
    ``args.pool_addresses`` lists them and the first is returned.
    """
    args.pool_addresses = None
    servers = servers_or_usage_error(parser, args)
    parsed = servers.addresses
    if len(parsed) > 1:
        if args.command not in POOL_HANDLERS:
            args.parser.error(
                f"{args.command} acts on one server: give --server once "
                "(put, stats, stats-tube, list and kick take several)"
            )
        if getattr(args, "raw", False):
            args.parser.error("--raw needs one server")
        args.pool_addresses = servers.texts
    # TLS (--tls...) applies to every server named.
    args.ssl_context = tls_or_usage_error(parser, args, servers)
    return Endpoint(*parsed[0], args.ssl_context)


def _program_name() -> str:
    """How the user ran us, for usage lines: ``python -m beanstalkt.cmd`` or the script."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return (
        "python -m beanstalkt.cmd"
        if getattr(spec, "name", None) == "beanstalkt.cmd"
        else "beanstalkt"
    )


#: The tools with command lines of their own: ``beanstalkt NAME ARGS`` runs ``MODULE.main(ARGS)``.
_TOOLS = {
    "top": "beanstalkt.ops.top",
    "exporter": "beanstalkt.ops.exporter",
    "web": "beanstalkt.ops.web",
    "worker": "beanstalkt.cli.worker",
    "failures": "beanstalkt.cli.failures",
}


def _run_tool(name: str, argv: list[str]) -> int:
    """Hand ``beanstalkt top|exporter|web|worker ARGS`` to that module's ``main``."""
    try:
        module = importlib.import_module(_TOOLS[name])
    except ImportError as exc:  # e.g. the exporter without prometheus_client
        return _fail(str(exc), EXIT_FAILED)
    try:
        status: int = module.main(argv, prog=f"{_program_name()} {name}")
    except SystemExit as exc:  # a tool's argparse: -h, usage errors
        return exit_status(exc.code)
    return status


def _fail(message: str, status: int) -> int:
    if sys.stderr is not None:
        sys.stderr.write(f"beanstalkt: {message}\n")
        sys.stderr.flush()
    return status


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one command line (``sys.argv[1:]`` by default); return the exit status."""
    if sys.stdout is None:
        # Started with stdout closed (`>&-`): say so before doing anything,
        # rather than put a job whose id cannot be printed.
        return _fail("standard output is closed; nothing was done", EXIT_FAILED)
    try:
        return _main(argv)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, and keep the
        # interpreter's final flush of stdout from failing a second time.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED


def _main(argv: Optional[Sequence[str]]) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    # The program's options may come before the name of a command or a tool:
    # they are handed over after it, where the command's own parser takes them.
    leading, rest = split_global_options(words)
    if rest and rest[0] in _TOOLS:  # tools with command lines of their own
        return _run_tool(rest[0], leading + rest[1:])
    if leading and rest and rest[0] in _COMMAND_NAMES:
        words = [rest[0], *leading, *rest[1:]]
    parser = build_parser(_program_name(), words)
    try:
        args = parser.parse_args(words)
        _check_combinations(args)
        server = _server(parser, args)
    except SystemExit as exc:  # argparse: -h, --version and usage errors
        return exit_status(exc.code)
    handler: CommandHandler = (
        args.handler if args.pool_addresses is None else POOL_HANDLERS[args.command]
    )
    try:
        if args.command == "put":
            # put - reads stdin once connected: the server's max-job-size bounds the read.
            body: str = args.body
            args.body_bytes = None if body == "-" else os.fsencode(body)
        # The library logs reconnect attempts; a one-shot command reports the loss itself.
        silence_library_loggers()
        asyncio.run(handler(args, server))
    except CommandError as exc:
        return _fail(str(exc), exc.status)
    except BeanstalkConnectionError as exc:
        return _fail(str(exc), EXIT_CANNOT_CONNECT)
    except BeanstalkException as exc:
        return _fail(str(exc), EXIT_FAILED)
    except BrokenPipeError:
        raise  # handled by main()
    except Exception as exc:  # anything else, e.g. stdin unreadable: one line, no traceback
        return _fail(f"{type(exc).__name__}: {exc}", EXIT_FAILED)
    return EXIT_OK


__all__ = [
    # The exit codes are those of every tool (beanstalkt.cli.common), kept here by name.
    "COMMANDS",
    "SUBCOMMANDS",
    "EXIT_CANNOT_CONNECT",
    "EXIT_CODES",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "Command",
    "CommandError",
    "Endpoint",
    "Server",
    "build_parser",
    "job_json",
    "main",
]
