"""Instructions per command, counted by callgrind: a figure the machine's load does not move.

Run ``python benchmarks/instructions.py`` (``--help`` for options; needs
``valgrind``). Wall-clock figures on a shared machine move with what else runs;
the number of instructions the client's process executes for a fixed amount of
work does not. Each row runs its workload twice under ``valgrind
--tool=callgrind`` in a fresh Python process, with ``--small`` and ``--large``
commands, against one beanstalkd (not traced), and reports

    (instructions(large) - instructions(small)) / (large - small)

so the start-up of Python, imports and connecting cancel out and what is left
is the cost of one more command. Rows:

* ``put-sequential``: ``await client.put(body)`` one at a time;
* ``put-pipelined``: ``gather`` of ``Client.put`` (the minimal client's and
  beanstalkt's);
* ``tornado-lockstep``: the bare Tornado IOStream loop of :mod:`floor`.

``--iterations`` counts instead, natively (no valgrind), the event loop's
iterations per command (``_run_once`` calls) over ``--large`` commands: the
loop turns a reply costs, which callgrind's slowed-down client does not see
(see below). That figure moves with the machine's load: a client slowed down
by other work more often finds a reply already waiting when it reads, and
skips a turn.

A caveat: under valgrind the client runs some 50 times slower, so the server's
reply is usually in the socket by the time the client reads; the paths counted
are those (an inline read more often than natively). The figure is for
comparing one version of the client with another, not for converting to time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from typing import Optional

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)
for path in (_ROOT, _HERE):
    if path not in sys.path:
        sys.path.insert(0, path)

TUBE = "instructions"
BODY = b"x" * 100

ROWS = ("put-sequential", "put-pipelined", "floor-put-pipelined", "tornado-lockstep")


async def _workload(row: str, host: str, port: int, n: int) -> None:
    import floor

    if row == "floor-put-pipelined":
        from minimal_client import MinimalClient

        floor_client = await MinimalClient.connect(host, port)
        try:
            await floor_client.use(TUBE)
            await asyncio.gather(*[floor_client.put(BODY) for _ in range(n)])
        finally:
            floor_client.close()
        return
    if row == "tornado-lockstep":
        from tornado.tcpclient import TCPClient

        stream = await TCPClient().connect(host, port)
        stream.set_nodelay(True)
        buffer = bytearray(4096)

        async def reply() -> None:
            data = b""
            while not data.endswith(b"\r\n"):
                data += buffer[: await stream.read_into(buffer, partial=True)]

        try:
            stream.write(b"use %b\r\n" % TUBE.encode())
            await reply()
            command = b"put %d 0 %d %d\r\n%b\r\n" % (floor.PRIORITY, floor.TTR, len(BODY), BODY)
            for _ in range(n):
                stream.write(command)
                await reply()
        finally:
            stream.close()
        return
    import beanstalkt

    async with beanstalkt.Client(host, port, use=TUBE) as client:
        if row == "put-sequential":
            for _ in range(n):
                await client.put(BODY)
        else:
            await asyncio.gather(*[client.put(BODY) for _ in range(n)])


def _iterations(row: str, port: int, n: int) -> float:
    """Event-loop iterations per command of ``row``, counted natively."""
    turns = 0

    async def counted() -> None:
        nonlocal turns
        loop = asyncio.get_running_loop()
        run_once = loop._run_once  # type: ignore[attr-defined]

        def counting() -> None:
            nonlocal turns
            turns += 1
            run_once()

        await _workload(row, "127.0.0.1", port, 10)  # connect and warm up, uncounted
        loop._run_once = counting  # type: ignore[attr-defined]
        try:
            await _workload(row, "127.0.0.1", port, n)
        finally:
            del loop._run_once  # type: ignore[attr-defined]

    asyncio.run(counted())
    return turns / n


def _count(row: str, port: int, n: int) -> int:
    """Instructions of one child process doing ``n`` commands of ``row``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                os.path.abspath(__file__),
                "--child",
                row,
                str(port),
                str(n),
            ],
            check=True,
            # A fixed hash seed: dict and set layouts, and so the counts, repeat exactly.
            env={**os.environ, "PYTHONHASHSEED": "0"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with open(out) as data:
            match = re.search(r"^summary: (\d+)", data.read(), re.MULTILINE)
    if match is None:
        raise RuntimeError("callgrind wrote no summary")
    return int(match.group(1))


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--only", default="", help="rows whose name contains this")
    parser.add_argument("--small", type=int, default=1000, help="commands, first run")
    parser.add_argument("--large", type=int, default=3000, help="commands, second run")
    parser.add_argument(
        "--iterations", action="store_true", help="count loop iterations per command instead"
    )
    parser.add_argument("--child", nargs=3, metavar=("ROW", "PORT", "N"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict[str, float]:
    """Count and print the instructions per command of each selected row."""
    options = parse_args(argv)
    if options.child:
        row, port, n = options.child
        asyncio.run(_workload(row, "127.0.0.1", int(port), int(n)))
        return {}
    from beanstalkt.testing import BeanstalkdServer

    figures: dict[str, float] = {}
    with BeanstalkdServer(host="127.0.0.1") as server:
        for row in ROWS:
            if options.only not in row:
                continue
            if options.iterations:
                # One run of --large commands (its connect adds a few turns): the
                # figure moves with the load (see the module's docstring), so a
                # difference of two runs would mostly measure that.
                figures[row] = _iterations(row, server.port, options.large)
                print(f"{row:<24}{figures[row]:>12.2f} loop iterations per put", flush=True)
                continue
            small = _count(row, server.port, options.small)
            large = _count(row, server.port, options.large)
            figures[row] = (large - small) / (options.large - options.small)
            print(f"{row:<24}{figures[row]:>12,.0f} instructions per put", flush=True)
    return figures


if __name__ == "__main__":
    main()
