"""``--tasks module:attr`` from both command lines, in a subprocess, against a real beanstalkd."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import beanstalkt
from beanstalkt.testing import BeanstalkdServer
from beanstalkt.worker.failures import read_failures

from .test_worker import HANG

APP = """
import os
from beanstalkt.tasks import Tasks

tasks = Tasks(host=os.environ["APP_HOST"], port=int(os.environ["APP_PORT"]))


@tasks.task(tube="cli.emails", name="cli.send")
async def send(to: str) -> None:
    print("sent to", to, flush=True)


@tasks.task(tube="cli.broken", name="cli.broken", max_attempts=1)
def broken() -> None:
    raise ValueError("cannot")
"""

SCRIPT = Path(sys.executable).parent / "beanstalkt"


@pytest.mark.parametrize(
    "command",
    [
        [str(SCRIPT), "worker"],  # the console script: its own directory on sys.path
        [sys.executable, "-m", "beanstalkt.worker"],  # the current directory on sys.path
    ],
    ids=["beanstalkt worker", "python -m beanstalkt.worker"],
)
async def test_both_command_lines_run_the_tasks_of_a_module_in_the_current_directory(
    beanstalkd: BeanstalkdServer, tmp_path: Path, command: list[str]
) -> None:
    assert SCRIPT.exists(), "install the package (pip install -e .) to get the console script"
    (tmp_path / "cli_app.py").write_text(APP)
    env = dict(os.environ, APP_HOST=beanstalkd.host, APP_PORT=str(beanstalkd.port))
    env.pop("PYTHONPATH", None)  # the app is found only because it is in the current directory
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        sent = []
        for to in ("ada@example.com", "bob@example.com"):
            body = {"v": 1, "id": to, "name": "cli.send", "args": [to]}
            sent.append(await client.put(json.dumps(body).encode(), tube="cli.emails"))
        broken = await client.put(b'{"v": 1, "id": "b", "name": "cli.broken"}', tube="cli.broken")
        finished = subprocess.run(
            [
                *command,
                "--tasks",
                "cli_app:tasks",
                "--host",
                beanstalkd.host,
                "--port",
                str(beanstalkd.port),
                "--burst",
                "--log-level",
                "WARNING",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=HANG,
        )
        assert finished.returncode == 0, finished.stderr
        assert sorted(finished.stdout.splitlines()) == [
            "sent to ada@example.com",
            "sent to bob@example.com",
        ]
        for job_id in sent:  # run, then deleted
            with pytest.raises(beanstalkt.NotFound):
                await client.stats_job(job_id)
        # The task's own max_attempts=1: buried at the first failure, the engine's record.
        (record,) = await read_failures(client, "cli.broken")
        assert (record["id"], record["error"]) == (broken, "ValueError: cannot")


def test_a_module_missing_from_the_current_directory_is_still_a_clear_usage_error(
    tmp_path: Path,
) -> None:
    finished = subprocess.run(
        [str(SCRIPT), "worker", "--tasks", "no_such_app_here:tasks"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    assert finished.returncode == 2
    assert "No module named 'no_such_app_here'" in finished.stderr
