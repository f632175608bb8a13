"""``beanstalkt failures TUBE``: the buried jobs of a tube and why they failed.

Prints a JSON array, one object per buried job that has a failure record (see
:mod:`beanstalkt.worker.failures`)::

    [{"id": 42, "server": "localhost:11300", "tube": "emails",
      "error": "ValueError: bad address", "attempts": 5,
      "failed_at": "2026-12-04T20:00:00Z", "worker": {"host": "web-1", "pid": 4242},
      "traceback": "...", "state": "buried", "created": 1764870000.5}]

``--all`` also lists the jobs that were kicked since (their record follows
them until they are deleted or fail again), ``--retry`` kicks the listed
buried jobs (their records stay with them), ``--purge`` deletes them and
their records. Stale records (of deleted jobs) are swept on the way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any, Optional

from ..client import Client
from ..errors import BeanstalkConnectionError, BeanstalkException, NotFound
from ..worker.failures import purge_records, read_failures
from .common import (
    EXIT_CANNOT_CONNECT,
    EXIT_FAILED,
    EXIT_OK,
    add_connection_arguments,
    exit_codes_text,
    servers_or_usage_error,
    silence_library_loggers,
    tls_or_usage_error,
    tube_name,
)


def build_parser(
    prog: str = "beanstalkt failures", argv: Optional[Sequence[str]] = None
) -> argparse.ArgumentParser:
    """The argument parser of ``beanstalkt failures``."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Print the buried jobs of TUBE with why they failed (their failure "
        "records), as a JSON array; or retry (kick) or purge (delete) them.",
        epilog=f"exit status:\n{exit_codes_text()}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("tube", type=tube_name, help="the tube whose failures to show")
    action = parser.add_mutually_exclusive_group()
    action.add_argument(
        "--retry", action="store_true", help="kick the buried jobs listed (records stay)"
    )
    action.add_argument(
        "--purge", action="store_true", help="delete the buried jobs listed and their records"
    )
    parser.add_argument("--all", action="store_true", help="also the jobs kicked since they failed")
    add_connection_arguments(parser, several="every server is read", argv=argv)
    return parser


async def _one_server(
    client: Client[Any], server: str, arguments: argparse.Namespace
) -> list[dict[str, Any]]:
    records = await read_failures(client, arguments.tube)
    shown = [
        {"id": record["id"], "server": server, **record}
        for record in records
        if arguments.all or record["state"] == "buried"
    ]
    buried = [entry["id"] for entry in shown if entry["state"] == "buried"]
    if arguments.retry:
        for job_id in buried:
            await client.kick_job(job_id)
    elif arguments.purge:
        for job_id in buried:
            try:
                await client.delete(job_id)
            except NotFound:
                continue
        await purge_records(client, arguments.tube, buried)
    return shown


async def _run(
    arguments: argparse.Namespace, addresses: list[tuple[str, int]], ssl: Any
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for host, port in addresses:
        client: Client[bytes] = Client(host, port, ssl=ssl)
        await client.connect()
        try:
            found.extend(await _one_server(client, client.address, arguments))
        finally:
            client.close()
    return found


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    """Entry point of ``beanstalkt failures``; returns the exit status."""
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(prog or "beanstalkt failures", words)
    arguments = parser.parse_args(words)
    servers = servers_or_usage_error(parser, arguments)
    ssl_context = tls_or_usage_error(parser, arguments, servers)
    silence_library_loggers()
    try:
        found = asyncio.run(_run(arguments, list(servers.addresses), ssl_context))
    except BeanstalkConnectionError as exc:
        sys.stderr.write(f"{parser.prog}: {exc}\n")
        return EXIT_CANNOT_CONNECT
    except BeanstalkException as exc:
        sys.stderr.write(f"{parser.prog}: {exc}\n")
        return EXIT_FAILED
    json.dump(found, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return EXIT_OK


__all__ = ["build_parser", "main"]
