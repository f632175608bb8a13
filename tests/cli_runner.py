"""Running ``python -m beanstalkt.cmd ARGS`` from tests: in this process, or for real.

One runner for every test file that drives the command line (``test_cmd``,
``test_pool``...): in this process by default, through ``beanstalkt.cmd.main``
with its own environment and standard streams (a subprocess per call made the
CLI tests most of the suite's run time); ``in_subprocess=True`` runs the real
command, as the few end-to-end tests do.
"""

from __future__ import annotations

import importlib
import io
import os
import subprocess
import sys
from typing import Any, Optional
from unittest import mock

from beanstalkt.cli import main as cmd
from beanstalkt.testing import BeanstalkdServer


def environment(server: Optional[BeanstalkdServer], **extra: str) -> dict[str, str]:
    """The parent's environment without BEANSTALKD_*, pointed at ``server`` (or at nothing)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEANSTALKD_")}
    if server is not None:
        env["BEANSTALKD_HOST"] = server.address
        env["BEANSTALKD_PORT"] = str(server.port)
    env.update(extra)
    return env


def cli(
    server: Optional[BeanstalkdServer],
    *args: str,
    stdin: bytes = b"",
    env: Optional[dict[str, str]] = None,
    in_subprocess: bool = False,
    module: str = "beanstalkt.cmd",
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m MODULE ARGS`` against ``server``; text stdout and stderr.

    ``MODULE`` is ``beanstalkt.cmd`` unless given (``beanstalkt.top``,
    ``beanstalkt.exporter``: any module whose ``main(argv)`` returns the exit
    status). In this process by default, through that ``main`` with its own
    environment, stdin, stdout and stderr (a subprocess per call made this
    file most of the suite's run time); ``in_subprocess=True`` runs the real
    command, as a few end-to-end tests do.
    """
    environment_ = env if env is not None else environment(server)
    if in_subprocess:
        finished = subprocess.run(
            [sys.executable, "-m", module, *args],
            input=stdin,  # bytes: bodies from stdin are raw bytes
            capture_output=True,
            env=environment_,
            timeout=30,
        )
        returncode, out, err = finished.returncode, finished.stdout, finished.stderr
    else:
        stdout, stderr = io.BytesIO(), io.BytesIO()
        streams: dict[str, Any] = {
            "stdin": io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"),
            "stdout": io.TextIOWrapper(stdout, encoding="utf-8", write_through=True),
            "stderr": io.TextIOWrapper(stderr, encoding="utf-8", write_through=True),
        }
        with (
            mock.patch.dict(os.environ, environment_, clear=True),
            mock.patch.multiple(sys, **streams),
            mock.patch.object(cmd, "_program_name", lambda: "python -m beanstalkt.cmd"),
        ):
            try:
                returncode = importlib.import_module(module).main(list(args))
            except SystemExit as exc:  # argparse's usage errors, in the other tools
                returncode = exc.code if isinstance(exc.code, int) else 1
            sys.stdout.flush()
            sys.stderr.flush()
        out, err = stdout.getvalue(), stderr.getvalue()
    result = subprocess.CompletedProcess(
        [sys.executable, "-m", module, *args],
        returncode,
        out.decode("utf-8"),
        err.decode("utf-8"),
    )
    assert "Traceback" not in result.stderr
    return result
